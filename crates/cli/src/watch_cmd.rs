//! `ses-dmarc watch add|list|remove|history|run`: domains watched every day, what changed
//! as events, alerts. The pass itself is `ses_dmarc_monitor::watch::run_pass`, which
//! `serve` runs too.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::reports_cmd::DatabaseArg;
use crate::style::{self, OutFormat, Style, count, escape};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ses_dmarc_audit::Expectations;
use ses_dmarc_monitor::Config;
use ses_dmarc_monitor::alerts::Alerter;
use ses_dmarc_monitor::watch::{PassOptions, run_pass, watch_request};
use ses_dmarc_monitor::workers::Worker;
use ses_dmarc_store::{Database, Location, OpenMode, WatchedDomain};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum WatchCommand {
    /// Watch domains: checked at once, then on the schedule (daily by default).
    Add(AddArgs),
    /// The watched domains, with their last verdict.
    List(ListArgs),
    /// Stop watching domains (their history is kept).
    Remove(RemoveArgs),
    /// A domain's timeline: every event, newest last.
    History(HistoryArgs),
    /// One pass: check every due domain (or those named), raise events, send alerts.
    Run(RunArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 added; 2 usage or input error (nothing added).")]
pub(crate) struct AddArgs {
    /// Domains to watch (the From: domains you send from).
    pub(crate) domains: Vec<String>,
    /// Read domains from a file, one per line, with `mail-from=`, `dkim-token=`, `selector=`,
    /// `region=` overrides as `check --file` takes them (`-` for standard input).
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
    /// SES region(s) you send from.
    #[arg(long = "region", short = 'r', value_name = "REGION")]
    pub(crate) regions: Vec<String>,
    /// The custom MAIL FROM: a label (`mail`) or a full name.
    #[arg(long, value_name = "NAME")]
    pub(crate) mail_from: Option<String>,
    /// An Easy DKIM token (give all three); `REGION:TOKEN` for another region.
    #[arg(long = "dkim-token", value_name = "T")]
    pub(crate) dkim_tokens: Vec<String>,
    /// A DKIM selector to check (BYODKIM or another signer); repeatable.
    #[arg(long = "selector", value_name = "S")]
    pub(crate) selectors: Vec<String>,
    /// Read the MAIL FROM name and DKIM tokens from SES at each check (and watch what SES
    /// says about the identity).
    #[arg(long)]
    pub(crate) from_ses: bool,
    /// A tag (an agency's client, a team); repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 removed; 1 some domain was not watched; 2 usage error.")]
pub(crate) struct RemoveArgs {
    /// The domains to stop watching.
    #[arg(required = true)]
    pub(crate) domains: Vec<String>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The watched domain, e.g. example.com.
    pub(crate) domain: String,
    /// Events of the last N days (default: all).
    #[arg(long, value_name = "N")]
    pub(crate) days: Option<i64>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the pass ran (whatever it found; failed deliveries stay in the outbox for the next pass); 2 bad configuration or usage.\n\nFrom cron: `17 6 * * * ses-dmarc watch run --config /etc/ses-dmarc.toml`"
)]
pub(crate) struct RunArgs {
    /// Only these domains (checked whether due or not).
    pub(crate) domains: Vec<String>,
    /// The configuration file (TOML: database, [dns], [schedule], [watch], [[domain]], alerts).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
    /// Run the pass as if it were this time (RFC 3339): for replaying and for tests.
    #[arg(long, value_name = "TIME", hide = true)]
    pub(crate) now: Option<String>,
}

/// The configuration given, or the defaults.
pub(crate) fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(ses_dmarc_monitor::config::load(p)?),
        None => Ok(Config::default()),
    }
}

/// The database: `--database`, else the configuration's, else the default.
pub(crate) async fn open_db(arg: &DatabaseArg, config: &Config, mode: OpenMode) -> anyhow::Result<Database> {
    let url = arg.database.clone().or(config.database.clone());
    Ok(Database::open(&Location::from_arg(url.as_deref())?, mode, 4).await?)
}

pub(crate) async fn run(cmd: WatchCommand) -> anyhow::Result<Exit> {
    match cmd {
        WatchCommand::Add(a) => add(a).await,
        WatchCommand::List(a) => list(a).await,
        WatchCommand::Remove(a) => remove(a).await,
        WatchCommand::History(a) => history(a).await,
        WatchCommand::Run(a) => pass(a).await,
    }
}

async fn add(args: AddArgs) -> anyhow::Result<Exit> {
    use ses_dmarc_ops::check;
    if args.domains.is_empty() && args.file.is_none() {
        bail!("no domain given: `ses-dmarc watch add example.com --region us-east-1 ...` or `--file domains.txt`");
    }
    let base = Expectations {
        regions: check::regions(&args.regions)?,
        mail_from: args.mail_from.clone(),
        dkim_tokens: args.dkim_tokens.clone(),
        selectors: args.selectors.clone(),
    };
    check::validate_tokens(&base)?;
    if args.from_ses && (base.regions.is_empty() || !base.dkim_tokens.is_empty()) {
        bail!("--from-ses needs --region (the SES regions to ask), and no --dkim-token");
    }
    let mut jobs = Vec::new();
    for d in &args.domains {
        jobs.push(check::CheckJob { domain: check::domain(d)?, expectations: base.clone() });
    }
    if let Some(path) = &args.file {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("cannot read --file {}", path.display()))?,
            ))
        };
        for (i, line) in check::bounded_lines(reader).enumerate() {
            let line = line.with_context(|| format!("{} line {}", path.display(), i + 1))?;
            match check::parse_line(&line, &base) {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => {}
                Err(e) => bail!("{} line {}: {}", path.display(), i + 1, escape(&e.to_string())),
            }
        }
    }
    if jobs.is_empty() {
        bail!("no domain to watch in {}", args.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
    }
    let db = args.db.open(OpenMode::Create).await?;
    let now = ses_dmarc_ops::now();
    let rows: Vec<WatchedDomain> = jobs
        .iter()
        .map(|j| watch_request(&j.domain, j.expectations.clone(), &args.tags, args.from_ses, "cli", now))
        .collect::<Result<_, _>>()?;
    let n = rows.len();
    db.run(move |s| {
        for r in &rows {
            s.upsert_watched(r)?;
        }
        Ok(())
    })
    .await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Watching {} in {} (due now: `ses-dmarc watch run`, or `serve`).",
        count(n as u64, "more domain"),
        db.name()
    )?;
    Ok(Exit::Success)
}

async fn list(args: ListArgs) -> anyhow::Result<Exit> {
    let db = args.db.open(OpenMode::Existing).await?;
    let listed = ses_dmarc_monitor::views::listing(&db).await?;
    let items: Vec<serde_json::Value> = listed.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            if items.is_empty() {
                writeln!(out, "No domain is watched in {}: `ses-dmarc watch add example.com ...`.", db.name())?;
            }
            for i in &items {
                let verdict = match i["verdict"].as_bool() {
                    Some(true) => s.green("passes"),
                    Some(false) => s.red("fails "),
                    None if i["last_checked"].is_null() => s.dim("not checked yet"),
                    None => s.yellow("unknown"),
                };
                let tags: Vec<&str> =
                    i["tags"].as_array().map(|t| t.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
                writeln!(
                    out,
                    "{:<32} {verdict}  {} errors, {} warnings  last {}  {}{}",
                    i["domain"].as_str().unwrap_or_default(),
                    i["errors"],
                    i["warnings"],
                    i["last_checked"].as_str().unwrap_or("never"),
                    count(i["checks"].as_u64().unwrap_or(0), "check"),
                    if tags.is_empty() { String::new() } else { format!("  [{}]", tags.join(", ")) }
                )?;
            }
        }
    }
    Ok(Exit::Success)
}

async fn remove(args: RemoveArgs) -> anyhow::Result<Exit> {
    let db = args.db.open(OpenMode::Existing).await?;
    let mut missing = false;
    for d in &args.domains {
        let domain = ses_dmarc_ops::check::domain(d)?;
        let name = domain.clone();
        if db.run(move |s| s.remove_watched(&name)).await? {
            println!("{domain}: no longer watched (its history is kept)");
        } else {
            missing = true;
            style::warning(&mut std::io::stderr(), &format!("{domain} is not watched"));
        }
    }
    Ok(if missing { Exit::Problems } else { Exit::Success })
}

async fn history(args: HistoryArgs) -> anyhow::Result<Exit> {
    let domain = ses_dmarc_ops::check::domain(&args.domain)?;
    let db = args.db.open(OpenMode::Existing).await?;
    let since = args.days.map(|d| ses_dmarc_ops::now() - d.max(1) * 86_400).unwrap_or(i64::MIN);
    let history = ses_dmarc_monitor::views::history(&db, &domain, since, 100_000).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&history)?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            if history.events.is_empty() {
                writeln!(out, "No events for {domain} (yet): `ses-dmarc watch run {domain}` checks it now.")?;
            }
            for e in &history.events {
                let kind = match e.severity {
                    ses_dmarc_monitor::Severity::Error => s.red(e.kind.as_str()),
                    ses_dmarc_monitor::Severity::Warning => s.yellow(e.kind.as_str()),
                    ses_dmarc_monitor::Severity::Info => s.dim(e.kind.as_str()),
                };
                writeln!(out, "{}  {kind}  {}", e.at, escape(&e.message))?;
                if let Some(fix) = &e.fix {
                    writeln!(out, "    fix: {}", escape(fix))?;
                }
            }
            writeln!(
                out,
                "{}",
                s.dim(&format!("{} of the DNS answers.", count(history.snapshots.len() as u64, "distinct snapshot")))
            )?;
        }
    }
    Ok(Exit::Success)
}

async fn pass(args: RunArgs) -> anyhow::Result<Exit> {
    let mut config = load_config(args.config.as_ref())?;
    if !args.dns.nameservers.is_empty() || !args.dns.zones.is_empty() {
        config.dns = args.dns.options();
    }
    let db = open_db(&args.db, &config, OpenMode::Create).await?;
    let resolver = config.dns.resolver("invalid", 256)?;
    let alerter = Alerter::new(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = match &args.now {
        Some(t) => ses_dmarc_monitor::schedule::parse_rfc3339(t)
            .ok_or_else(|| anyhow::anyhow!("--now `{t}` is not an RFC 3339 time (2026-12-01T06:00:00Z)"))?,
        None => ses_dmarc_ops::now(),
    };
    let options = PassOptions { only: args.domains.clone(), now };
    let worker = Worker::start(&db, "watch run", config.schedule.lease).await?;
    let report = run_pass(&db, &resolver, &config, &alerter, &worker, &options).await;
    worker.stop().await?;
    let report = report?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            if report.checked.is_empty() {
                writeln!(out, "No domain due in {} (`watch list` shows when each is).", db.name())?;
            }
            for c in &report.checked {
                let verdict = match c.verdict {
                    Some(true) => s.green("passes"),
                    Some(false) => s.red("fails"),
                    None => s.yellow("unknown"),
                };
                writeln!(
                    out,
                    "{}: {verdict}, {} errors, {} warnings{}; {}",
                    s.bold(&c.domain),
                    c.errors,
                    c.warnings,
                    if c.unknown > 0 { format!(", {} unanswered", c.unknown) } else { String::new() },
                    count(c.events.len() as u64, "event")
                )?;
                for e in &c.events {
                    writeln!(out, "  {} {}", s.dim(e.kind.as_str()), escape(&e.message))?;
                }
                if let Some(err) = &c.error {
                    writeln!(out, "  {} {}", s.red("error:"), escape(err))?;
                }
            }
            for d in &report.deliveries {
                match &d.error {
                    None => writeln!(out, "{} {} → {}", s.green("sent"), d.event, d.channel)?,
                    Some(e) => writeln!(
                        out,
                        "{} {} → {}: {} (kept; tried again at {})",
                        s.red("not sent"),
                        d.event,
                        d.channel,
                        escape(e),
                        d.next_attempt.as_deref().unwrap_or("later")
                    )?,
                }
            }
            for r in &report.removed {
                writeln!(out, "{r}: no longer in the configuration, no longer watched")?;
            }
        }
    }
    Ok(Exit::Success)
}
