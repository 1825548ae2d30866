//! The configuration file (TOML; every key optional; secrets from `*_env` or `*_file`):
//! read, checked and resolved. A syntax error, an unknown key (with the closest known
//! one), a secret whose variable or file is missing, or a value that cannot be used is an
//! error naming the file, the line and what to write instead.

use crate::schedule::{CheckSchedule, parse_duration};
use serde::Deserialize;
use ses_dmarc_ops::dns::DnsOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// The line, when the error has one.
    pub line: Option<usize>,
    /// What is wrong and what to write instead.
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    database: Option<String>,
    listen: Option<String>,
    dns: Option<DnsSection>,
    schedule: Option<ScheduleSection>,
    watch: Option<WatchSection>,
    #[serde(default)]
    domain: Vec<Spanned<DomainSection>>,
    intake: Option<IntakeSection>,
    alert: Option<AlertSection>,
    serve: Option<ServeSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSection {
    #[serde(default)]
    nameservers: Vec<String>,
    timeout: Option<f64>,
    attempts: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSection {
    check: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    lease: Option<Spanned<String>>,
    poll: Option<Spanned<String>>,
    intake: Option<Spanned<String>>,
    retention_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchSection {
    unknown_after: Option<u32>,
    remind_after: Option<Spanned<String>>,
    new_source_min_failing: Option<u64>,
    pass_rate_min: Option<f64>,
    pass_rate_drop: Option<f64>,
    pass_rate_min_messages: Option<u64>,
    reports_missing_days: Option<u32>,
    concurrency: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainSection {
    name: String,
    #[serde(default)]
    regions: Vec<String>,
    mail_from: Option<String>,
    #[serde(default)]
    dkim_tokens: Vec<String>,
    #[serde(default)]
    selectors: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    from_ses: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeSection {
    #[serde(default)]
    imap: Vec<Spanned<ImapSection>>,
    #[serde(default)]
    s3: Vec<Spanned<S3Section>>,
    max_size_mb: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImapSection {
    name: Option<String>,
    host: String,
    port: Option<u16>,
    tls: Option<String>,
    ca_file: Option<PathBuf>,
    user: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    oauth2_token_env: Option<String>,
    oauth2_token_command: Option<String>,
    folder: Option<String>,
    processed_folder: Option<String>,
    failed_folder: Option<String>,
    #[serde(default)]
    delete_processed: bool,
    batch: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct S3Section {
    name: Option<String>,
    bucket: String,
    #[serde(default)]
    prefix: String,
    region: Option<String>,
    endpoint_url: Option<String>,
    processed_prefix: Option<String>,
    #[serde(default)]
    tag_processed: bool,
    queue_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertSection {
    #[serde(default)]
    webhook: Vec<Spanned<WebhookSection>>,
    #[serde(default)]
    slack: Vec<Spanned<SlackSection>>,
    #[serde(default)]
    email: Vec<Spanned<EmailSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSection {
    name: Option<String>,
    url: Option<String>,
    url_env: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackSection {
    name: Option<String>,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSection {
    name: Option<String>,
    smtp_host: String,
    smtp_port: Option<u16>,
    tls: Option<String>,
    ca_file: Option<PathBuf>,
    user: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    from: String,
    to: Vec<String>,
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSection {
    session_hours: Option<u32>,
    secure_cookies: Option<bool>,
}

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain, then STARTTLS before anything else.
    StartTls,
    /// None (loopback tests only).
    None,
}

/// A watched domain from `[[domain]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEntry {
    /// The domain.
    pub name: String,
    /// SES regions.
    pub regions: Vec<String>,
    /// The MAIL FROM label or name.
    pub mail_from: Option<String>,
    /// Easy DKIM tokens.
    pub dkim_tokens: Vec<String>,
    /// DKIM selectors.
    pub selectors: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Take MAIL FROM and tokens from SES at each check.
    pub from_ses: bool,
}

/// How a mailbox account signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapAuth {
    /// LOGIN (or PLAIN) with a password.
    Password(String),
    /// XOAUTH2 with a token read from an environment variable at each pass.
    OAuth2Env(String),
    /// XOAUTH2 with a token printed by a command at each pass.
    OAuth2Command(String),
}

/// An IMAP mailbox to take reports from (`[[intake.imap]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapSource {
    /// Its name in messages, checkpoints and events.
    pub name: String,
    /// Server name.
    pub host: String,
    /// Port (993 for implicit TLS, else 143).
    pub port: u16,
    /// TLS mode.
    pub tls: Tls,
    /// An extra trust anchor (PEM).
    pub ca_file: Option<PathBuf>,
    /// User name.
    pub user: String,
    /// How to sign in.
    pub auth: ImapAuth,
    /// The folder to read.
    pub folder: String,
    /// Where stored messages go (none: they stay).
    pub processed_folder: Option<String>,
    /// Where messages without a report go (none: they stay).
    pub failed_folder: Option<String>,
    /// Delete stored messages instead of moving them.
    pub delete_processed: bool,
    /// Messages fetched per batch.
    pub batch: u32,
}

/// An S3 prefix to take reports from (`[[intake.s3]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Source {
    /// Its name in messages, checkpoints and events.
    pub name: String,
    /// Bucket.
    pub bucket: String,
    /// Prefix to list.
    pub prefix: String,
    /// AWS region.
    pub region: String,
    /// Another endpoint (moto, MinIO).
    pub endpoint_url: Option<String>,
    /// Where stored objects are copied (then deleted from the prefix).
    pub processed_prefix: Option<String>,
    /// Tag stored objects instead of moving them.
    pub tag_processed: bool,
    /// Read S3 event notifications from this SQS queue instead of listing.
    pub queue_url: Option<String>,
}

/// A webhook channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChannel {
    /// The channel's name.
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// The HMAC-SHA256 key for `X-Ses-Dmarc-Signature`.
    pub secret: Option<String>,
}

/// A Slack-compatible incoming webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackChannel {
    /// The channel's name.
    pub name: String,
    /// The incoming-webhook URL.
    pub url: String,
}

/// When e-mail alerts go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailMode {
    /// One message per event.
    Each,
    /// One digest a day per recipient list.
    Daily,
}

/// An e-mail channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChannel {
    /// The channel's name.
    pub name: String,
    /// SMTP server.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub tls: Tls,
    /// An extra trust anchor (PEM).
    pub ca_file: Option<PathBuf>,
    /// Credentials, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// One message per event, or a daily digest.
    pub mode: EmailMode,
}

/// The thresholds of the watch (all configurable in `[watch]`).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSettings {
    /// Consecutive checks without an answer before `dns-unknown` (default 2).
    pub unknown_after: u32,
    /// An open problem is reminded after this long (default 7 days).
    pub remind_after: Duration,
    /// Failing messages a new source needs to be news (default 10).
    pub new_source_min_failing: u64,
    /// The 7-day DMARC pass rate below which `pass-rate-dropped` fires (default 0.9).
    pub pass_rate_min: f64,
    /// A drop from the previous 7 days that fires it too (default 0.10, ten points).
    pub pass_rate_drop: f64,
    /// Messages a 7-day window needs before its rate counts (default 100).
    pub pass_rate_min_messages: u64,
    /// Days without an aggregate report before `reports-missing` (default 3).
    pub reports_missing_days: u32,
    /// Domains checked at once (default 64).
    pub concurrency: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            unknown_after: 2,
            remind_after: Duration::from_secs(7 * 86_400),
            new_source_min_failing: 10,
            pass_rate_min: 0.9,
            pass_rate_drop: 0.10,
            pass_rate_min_messages: 100,
            reports_missing_days: 3,
            concurrency: 64,
        }
    }
}

/// The schedules (`[schedule]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedules {
    /// When domains are checked.
    pub check: CheckSchedule,
    /// How far scheduled checks are spread.
    pub jitter: Duration,
    /// How long a worker's claim on a job lasts unless renewed.
    pub lease: Duration,
    /// How often mailboxes and buckets are read.
    pub intake: Duration,
    /// How often `serve` looks for due domains and alerts.
    pub poll: Duration,
    /// Days of records, snapshots and events kept (none: kept for ever).
    pub retention_days: Option<u32>,
}

impl Default for Schedules {
    fn default() -> Self {
        Schedules {
            check: CheckSchedule::Every(Duration::from_secs(86_400)),
            jitter: Duration::from_secs(600),
            lease: Duration::from_secs(60),
            intake: Duration::from_secs(300),
            poll: Duration::from_secs(30),
            retention_days: None,
        }
    }
}

/// The configuration, resolved: secrets read, durations parsed, defaults filled in.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from (none: defaults only).
    pub path: Option<PathBuf>,
    /// `database`.
    pub database: Option<String>,
    /// `listen`.
    pub listen: Option<String>,
    /// `[dns]`.
    pub dns: DnsOptions,
    /// `[schedule]`.
    pub schedule: Schedules,
    /// `[watch]`.
    pub watch: WatchSettings,
    /// `[[domain]]`.
    pub domains: Vec<DomainEntry>,
    /// `[[intake.imap]]`.
    pub imap: Vec<ImapSource>,
    /// `[[intake.s3]]`.
    pub s3: Vec<S3Source>,
    /// Largest decompressed report accepted from intake, in MB (default 256).
    pub intake_max_size_mb: u64,
    /// `[[alert.webhook]]`.
    pub webhooks: Vec<WebhookChannel>,
    /// `[[alert.slack]]`.
    pub slack: Vec<SlackChannel>,
    /// `[[alert.email]]`.
    pub email: Vec<EmailChannel>,
    /// `[serve] session_hours` (default 12).
    pub session_hours: u32,
    /// `[serve] secure_cookies` (default: when listening on anything but loopback).
    pub secure_cookies: Option<bool>,
}

impl Config {
    /// The names of every alert channel, as the outbox knows them.
    pub fn channel_names(&self) -> Vec<String> {
        self.webhooks
            .iter()
            .map(|c| c.name.clone())
            .chain(self.slack.iter().map(|c| c.name.clone()))
            .chain(self.email.iter().map(|c| c.name.clone()))
            .collect()
    }
}

/// The keys a table may hold, for "did you mean".
const KEYS: &[&str] = &[
    "database",
    "listen",
    "dns",
    "schedule",
    "watch",
    "domain",
    "intake",
    "alert",
    "serve",
    "nameservers",
    "timeout",
    "attempts",
    "check",
    "jitter",
    "lease",
    "poll",
    "retention_days",
    "unknown_after",
    "remind_after",
    "new_source_min_failing",
    "pass_rate_min",
    "pass_rate_drop",
    "pass_rate_min_messages",
    "reports_missing_days",
    "concurrency",
    "name",
    "regions",
    "mail_from",
    "dkim_tokens",
    "selectors",
    "tags",
    "from_ses",
    "imap",
    "s3",
    "max_size_mb",
    "host",
    "port",
    "tls",
    "ca_file",
    "user",
    "password_env",
    "password_file",
    "oauth2_token_env",
    "oauth2_token_command",
    "folder",
    "processed_folder",
    "failed_folder",
    "delete_processed",
    "batch",
    "bucket",
    "prefix",
    "region",
    "endpoint_url",
    "processed_prefix",
    "tag_processed",
    "queue_url",
    "webhook",
    "slack",
    "email",
    "url",
    "url_env",
    "url_file",
    "secret_env",
    "secret_file",
    "smtp_host",
    "smtp_port",
    "from",
    "to",
    "mode",
    "session_hours",
    "secure_cookies",
];

/// Edit distance (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            row.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

fn closest(key: &str) -> Option<&'static str> {
    KEYS.iter().copied().filter(|k| distance(key, k) <= 2.max(key.len() / 4)).min_by_key(|k| distance(key, k))
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

struct Reader<'t> {
    path: String,
    text: &'t str,
}

impl Reader<'_> {
    fn err(&self, span: Option<std::ops::Range<usize>>, message: String) -> ConfigError {
        ConfigError { path: self.path.clone(), line: span.map(|s| line_of(self.text, s.start)), message }
    }

    /// A secret from `NAME_env` (a variable) or `NAME_file` (a file's first line).
    fn secret(
        &self,
        span: &std::ops::Range<usize>,
        what: &str,
        env: Option<&String>,
        file: Option<&PathBuf>,
    ) -> Result<Option<String>, ConfigError> {
        match (env, file) {
            (Some(_), Some(_)) => {
                Err(self.err(Some(span.clone()), format!("give {what}_env or {what}_file, not both")))
            }
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => Err(self.err(
                    Some(span.clone()),
                    format!("{what}_env names `{var}`, which is not set: `export {var}=...` before starting, or use {what}_file"),
                )),
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(Some(text.lines().next().unwrap_or_default().trim().to_string())),
                Err(e) => Err(self.err(
                    Some(span.clone()),
                    format!("{what}_file {}: {e}", path.display()),
                )),
            },
            (None, None) => Ok(None),
        }
    }

    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        parse_duration(value.get_ref()).map_err(|e| self.err(Some(value.span()), format!("{key}: {e}")))
    }

    fn tls(&self, span: &std::ops::Range<usize>, value: Option<&str>, default: Tls) -> Result<Tls, ConfigError> {
        match value {
            None => Ok(default),
            Some("implicit") => Ok(Tls::Implicit),
            Some("starttls") => Ok(Tls::StartTls),
            Some("none") => Ok(Tls::None),
            Some(other) => Err(self.err(
                Some(span.clone()),
                format!("tls = \"{other}\" is not a TLS mode: write \"implicit\", \"starttls\" or \"none\""),
            )),
        }
    }
}

/// Reads and resolves the configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: display.clone(),
        line: None,
        message: format!("cannot read it: {e}"),
    })?;
    let mut config = parse(&text, &display)?;
    config.path = Some(path.to_path_buf());
    Ok(config)
}

/// Parses configuration text (`name` is the file's name in messages).
pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
    let r = Reader { path: name.to_string(), text };
    let file: File = toml::from_str(text).map_err(|e| {
        let mut message = e.message().trim().to_string();
        if let Some(key) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
            let key = key.to_string();
            message = match closest(&key) {
                Some(k) => format!("unknown key `{key}`: did you mean `{k}`?"),
                None => format!("unknown key `{key}` (docs/config.md lists the keys)"),
            };
        }
        r.err(e.span(), message)
    })?;
    let mut c = Config { intake_max_size_mb: 256, session_hours: 12, ..Default::default() };
    c.database = file.database;
    c.listen = file.listen;
    if let Some(dns) = file.dns {
        c.dns.nameservers = dns.nameservers;
        c.dns.timeout = dns.timeout.unwrap_or(c.dns.timeout);
        c.dns.attempts = dns.attempts.unwrap_or(c.dns.attempts);
        if !(c.dns.timeout > 0.0 && c.dns.timeout <= 120.0) {
            return Err(r.err(None, format!("[dns] timeout = {} must be more than 0 and at most 120", c.dns.timeout)));
        }
        for ns in &c.dns.nameservers {
            ses_dmarc_dns::parse_nameserver(ns).map_err(|e| r.err(None, format!("[dns] nameservers: {e}")))?;
        }
    }
    if let Some(s) = file.schedule {
        if let Some(v) = &s.check {
            c.schedule.check =
                CheckSchedule::parse(v.get_ref()).map_err(|e| r.err(Some(v.span()), format!("check: {e}")))?;
        }
        if let Some(v) = &s.jitter {
            c.schedule.jitter = r.duration(v, "jitter")?;
        }
        if let Some(v) = &s.lease {
            c.schedule.lease = r.duration(v, "lease")?;
        }
        if let Some(v) = &s.intake {
            c.schedule.intake = r.duration(v, "intake")?;
        }
        if let Some(v) = &s.poll {
            c.schedule.poll = r.duration(v, "poll")?;
        }
        if c.schedule.lease < Duration::from_secs(2) {
            return Err(r.err(
                s.lease.as_ref().map(|v| v.span()),
                "lease: at least 2s (workers renew it every third of it)".into(),
            ));
        }
        c.schedule.retention_days = s.retention_days;
    }
    if let Some(w) = file.watch {
        let d = WatchSettings::default();
        c.watch = WatchSettings {
            unknown_after: w.unknown_after.unwrap_or(d.unknown_after).max(1),
            remind_after: match &w.remind_after {
                Some(v) => r.duration(v, "remind_after")?,
                None => d.remind_after,
            },
            new_source_min_failing: w.new_source_min_failing.unwrap_or(d.new_source_min_failing),
            pass_rate_min: w.pass_rate_min.unwrap_or(d.pass_rate_min),
            pass_rate_drop: w.pass_rate_drop.unwrap_or(d.pass_rate_drop),
            pass_rate_min_messages: w.pass_rate_min_messages.unwrap_or(d.pass_rate_min_messages),
            reports_missing_days: w.reports_missing_days.unwrap_or(d.reports_missing_days),
            concurrency: w.concurrency.unwrap_or(d.concurrency).clamp(1, 4096),
        };
        for (key, v) in [("pass_rate_min", c.watch.pass_rate_min), ("pass_rate_drop", c.watch.pass_rate_drop)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(r.err(None, format!("[watch] {key} = {v} is a fraction from 0 to 1 (0.9 for 90%)")));
            }
        }
    }
    for d in file.domain {
        let span = d.span();
        let d = d.into_inner();
        let name =
            ses_dmarc_ops::check::domain(&d.name).map_err(|e| r.err(Some(span.clone()), format!("[[domain]] {e}")))?;
        let regions = ses_dmarc_ops::check::regions(&d.regions)
            .map_err(|e| r.err(Some(span.clone()), format!("[[domain]] {name}: {e}")))?;
        c.domains.push(DomainEntry {
            name,
            regions,
            mail_from: d.mail_from,
            dkim_tokens: d.dkim_tokens,
            selectors: d.selectors,
            tags: d.tags,
            from_ses: d.from_ses,
        });
    }
    if let Some(intake) = file.intake {
        c.intake_max_size_mb = intake.max_size_mb.unwrap_or(256).clamp(1, 65_536);
        for (i, s) in intake.imap.into_iter().enumerate() {
            let span = s.span();
            let s = s.into_inner();
            let tls = r.tls(&span, s.tls.as_deref(), Tls::Implicit)?;
            let loopback = s.host == "localhost" || s.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if tls == Tls::None && !loopback {
                return Err(r.err(
                    Some(span),
                    format!(
                        "[[intake.imap]] tls = \"none\" would send the password to {} in clear: \
                         it is for a server on loopback; write \"implicit\" or \"starttls\"",
                        s.host
                    ),
                ));
            }
            let password = r.secret(&span, "password", s.password_env.as_ref(), s.password_file.as_ref())?;
            let auth = match (password, s.oauth2_token_env, s.oauth2_token_command) {
                (Some(p), None, None) => ImapAuth::Password(p),
                (None, Some(var), None) => ImapAuth::OAuth2Env(var),
                (None, None, Some(cmd)) => ImapAuth::OAuth2Command(cmd),
                (None, None, None) => {
                    return Err(r.err(
                        Some(span),
                        "[[intake.imap]] needs password_env, password_file, oauth2_token_env or oauth2_token_command"
                            .into(),
                    ));
                }
                _ => return Err(r.err(Some(span), "[[intake.imap]]: give one way to sign in, not several".into())),
            };
            c.imap.push(ImapSource {
                name: s.name.unwrap_or_else(|| format!("imap#{}", i + 1)),
                port: s.port.unwrap_or(if tls == Tls::Implicit { 993 } else { 143 }),
                host: s.host,
                tls,
                ca_file: s.ca_file,
                user: s.user,
                auth,
                folder: s.folder.unwrap_or_else(|| "INBOX".into()),
                processed_folder: s.processed_folder,
                failed_folder: s.failed_folder,
                delete_processed: s.delete_processed,
                batch: s.batch.unwrap_or(100).clamp(1, 10_000),
            });
        }
        for (i, s) in intake.s3.into_iter().enumerate() {
            let span = s.span();
            let s = s.into_inner();
            if s.bucket.is_empty() {
                return Err(r.err(Some(span), "[[intake.s3]] bucket is empty".into()));
            }
            c.s3.push(S3Source {
                name: s.name.unwrap_or_else(|| format!("s3#{}", i + 1)),
                bucket: s.bucket,
                prefix: s.prefix,
                region: s.region.unwrap_or_else(|| "us-east-1".into()),
                endpoint_url: s.endpoint_url,
                processed_prefix: s.processed_prefix,
                tag_processed: s.tag_processed,
                queue_url: s.queue_url,
            });
        }
    }
    if let Some(alert) = file.alert {
        for (i, w) in alert.webhook.into_iter().enumerate() {
            let span = w.span();
            let w = w.into_inner();
            let url = match (w.url, r.secret(&span, "url", w.url_env.as_ref(), None)?) {
                (Some(u), None) | (None, Some(u)) => u,
                _ => return Err(r.err(Some(span), "[[alert.webhook]] needs url (or url_env), once".into())),
            };
            check_url(&r, &span, &url)?;
            c.webhooks.push(WebhookChannel {
                name: w.name.unwrap_or_else(|| format!("webhook#{}", i + 1)),
                url,
                secret: r.secret(&span, "secret", w.secret_env.as_ref(), w.secret_file.as_ref())?,
            });
        }
        for (i, s) in alert.slack.into_iter().enumerate() {
            let span = s.span();
            let s = s.into_inner();
            let url = match (s.url, r.secret(&span, "url", s.url_env.as_ref(), s.url_file.as_ref())?) {
                (Some(u), None) | (None, Some(u)) => u,
                _ => return Err(r.err(Some(span), "[[alert.slack]] needs url, url_env or url_file, once".into())),
            };
            check_url(&r, &span, &url)?;
            c.slack.push(SlackChannel { name: s.name.unwrap_or_else(|| format!("slack#{}", i + 1)), url });
        }
        for (i, e) in alert.email.into_iter().enumerate() {
            let span = e.span();
            let e = e.into_inner();
            let tls = r.tls(&span, e.tls.as_deref(), Tls::StartTls)?;
            let password = r.secret(&span, "password", e.password_env.as_ref(), e.password_file.as_ref())?;
            let credentials = match (e.user, password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    return Err(r.err(
                        Some(span),
                        "[[alert.email]]: user and password_env (or password_file) go together".into(),
                    ));
                }
            };
            if e.to.is_empty() {
                return Err(r.err(Some(span), "[[alert.email]] to = [] names nobody: add an address".into()));
            }
            let mode = match e.mode.as_deref() {
                None | Some("each") => EmailMode::Each,
                Some("daily") => EmailMode::Daily,
                Some(other) => {
                    return Err(r.err(Some(span), format!("mode = \"{other}\": write \"each\" or \"daily\"")));
                }
            };
            c.email.push(EmailChannel {
                name: e.name.unwrap_or_else(|| format!("email#{}", i + 1)),
                host: e.smtp_host,
                port: e.smtp_port.unwrap_or(match tls {
                    Tls::Implicit => 465,
                    Tls::StartTls => 587,
                    Tls::None => 25,
                }),
                tls,
                ca_file: e.ca_file,
                credentials,
                from: e.from,
                to: e.to,
                mode,
            });
        }
    }
    if let Some(s) = file.serve {
        c.session_hours = s.session_hours.unwrap_or(12).clamp(1, 24 * 90);
        c.secure_cookies = s.secure_cookies;
    }
    let mut names = c.channel_names();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(r.err(None, "two alert channels have the same name: give each its own `name`".into()));
    }
    Ok(c)
}

fn check_url(r: &Reader<'_>, span: &std::ops::Range<usize>, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(r.err(Some(span.clone()), format!("`{url}` is not an http(s) URL")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_resolves() {
        // SAFETY: tests set a variable nobody else reads.
        unsafe { std::env::set_var("SES_DMARC_TEST_SECRET", "s3cret") };
        let c = parse(
            r#"
database = "sqlite:///tmp/x.sqlite"
listen = "127.0.0.1:8480"
[dns]
nameservers = ["127.0.0.1:5353"]
[schedule]
check = "0 6 * * *"
jitter = "10m"
[watch]
unknown_after = 3
[[domain]]
name = "Example.COM"
regions = ["us-east-1"]
mail_from = "mail"
dkim_tokens = ["t1", "t2", "t3"]
tags = ["client-a"]
[[alert.webhook]]
url = "https://hooks.example.com/dmarc"
secret_env = "SES_DMARC_TEST_SECRET"
[[alert.email]]
smtp_host = "127.0.0.1"
smtp_port = 2525
tls = "none"
from = "ses-dmarc@example.com"
to = ["ops@example.com"]
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.domains[0].name, "example.com");
        assert_eq!(c.webhooks[0].secret.as_deref(), Some("s3cret"));
        assert_eq!(c.watch.unknown_after, 3);
        assert_eq!(c.channel_names(), ["webhook#1", "email#1"]);
        assert_eq!(c.email[0].tls, Tls::None);
    }

    #[test]
    fn a_short_lease_or_a_bad_poll_is_refused_with_its_line() {
        let e = parse("[schedule]\nlease = \"1s\"\n", "c.toml").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("at least 2s"), "{e}");
        let e = parse("[schedule]\npoll = \"soon\"\n", "c.toml").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let c = parse("[schedule]\nlease = \"5s\"\npoll = \"2s\"\n", "c.toml").unwrap();
        assert_eq!((c.schedule.lease.as_secs(), c.schedule.poll.as_secs()), (5, 2));
    }

    #[test]
    fn errors_name_the_line_and_what_to_write() {
        let e = parse("[dns]\nnameserver = [\"1.2.3.4\"]\n", "c.toml").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("did you mean `nameservers`"), "{e}");
        let e = parse("database = \n", "c.toml").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        let e = parse(
            "[[alert.webhook]]\nurl = \"https://x.test\"\nsecret_env = \"SES_DMARC_NOT_SET_ANYWHERE\"\n",
            "c.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("SES_DMARC_NOT_SET_ANYWHERE") && e.to_string().contains("export"), "{e}");
        let e = parse("[schedule]\ncheck = \"sometimes\"\n", "c.toml").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e = parse("[[domain]]\nname = \"example.com\"\nregions = [\"us-east1\"]\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("us-east-1"), "{e}");
        let e = parse("[[alert.email]]\nsmtp_host = \"x\"\nfrom = \"a@b\"\nto = [\"c@d\"]\ntls = \"ssl\"\n", "c.toml")
            .unwrap_err();
        assert!(e.to_string().contains("\"implicit\", \"starttls\" or \"none\""), "{e}");
        assert!(load(Path::new("/nonexistent/ses-dmarc.toml")).unwrap_err().to_string().contains("cannot read"));
        let e = parse(
            "[[intake.imap]]\nhost = \"imap.example.com\"\ntls = \"none\"\nuser = \"u\"\noauth2_token_env = \"T\"\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("in clear"), "{e}");
        let ok = "[[intake.imap]]\nhost = \"127.0.0.1\"\ntls = \"none\"\nuser = \"u\"\noauth2_token_env = \"T\"\n";
        assert_eq!(parse(ok, "c.toml").unwrap().imap[0].port, 143);
        let c = parse("[[intake.s3]]\nbucket = \"b\"\nqueue_url = \"https://sqs.example/q\"\n", "c.toml").unwrap();
        assert_eq!(c.s3[0].queue_url.as_deref(), Some("https://sqs.example/q"));
    }
}
