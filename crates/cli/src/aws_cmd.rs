//! `ses-dmarc ses status|account|set-mail-from`, `ses-dmarc apply --route53`, and
//! `--from-ses` for `plan` and `check`. The AWS calls need the `aws` feature (on by
//! default); without it these commands say so and exit 2.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::plan_cmd::{MxFailureArg, PlanInputArgs};
use crate::reports_cmd::DatabaseArg;
use crate::style::{self, OutFormat, Style, count};
use clap::{Args, Subcommand};
use ses_dmarc_ops::OpsError;
use ses_dmarc_ops::apply::{ApplyOptions, ApplyReport, apply_route53};
use ses_dmarc_ops::ses_status::{
    DnsState, DomainStatus, StatusOptions, mail_from_problems, set_mail_from as call_set_mail_from,
};
use ses_dmarc_ses::account::{
    AccountFinding, AccountStatus, BOUNCE, COMPLAINT, Rate, RateThresholds, Severity, percent,
};
use ses_dmarc_ses::identity::NeededType;
use ses_dmarc_ses::plan::{AdviceLevel, MxFailureBehavior};
use ses_dmarc_ses::route53::ChangeKind;
use ses_dmarc_ses::{AwsError, AwsErrorKind};
use ses_dmarc_store::{Location, OpenMode};
use std::io::Write;

#[derive(Debug, Subcommand)]
pub(crate) enum SesCommand {
    /// What SES says about a domain identity (verification, DKIM, MAIL FROM), what each
    /// state means, and whether the records SES looks for are in DNS.
    Status(StatusArgs),
    /// The SES account in each region: production access or the sandbox, sending enabled
    /// or paused, the enforcement status, the quota, and the bounce and complaint rates
    /// against AWS's thresholds.
    Account(AccountArgs),
    /// Tell SES to use the custom MAIL FROM domain, once its MX and SPF are published.
    SetMailFrom(SetMailFromArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 verified and complete; 1 something needs doing (see the advice and the account's findings); 3 AWS could not be asked about the identity; 2 usage error."
)]
pub(crate) struct StatusArgs {
    /// The domain identity in SES (the From: domain), e.g. example.com.
    pub(crate) domain: String,
    /// SES region(s) to ask (repeatable).
    #[arg(long = "region", short = 'r', value_name = "REGION", required = true)]
    pub(crate) regions: Vec<String>,
    /// Another SES endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// Do not look the records up in DNS.
    #[arg(long)]
    pub(crate) no_dns: bool,
    /// Do not ask for the account in each region (sandbox, sending, enforcement, rates).
    #[arg(long)]
    pub(crate) no_account: bool,
    // The reports read for the regions SES sends from (default: the default database, when
    // it exists).
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    /// Days of reports read for the regions SES sends from.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub(crate) days: i64,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 nothing to do; 1 something needs doing (the sandbox, sending paused, under review, a rate at or above AWS's review threshold); 3 some facts could not be had (a permission missing, AWS unreachable) and nothing needs doing; 2 usage error."
)]
pub(crate) struct AccountArgs {
    /// SES region(s) to ask (repeatable or comma-separated): each region's account is separate.
    #[arg(long = "region", short = 'r', value_name = "REGION", required = true)]
    pub(crate) regions: Vec<String>,
    /// Another SES and CloudWatch endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 SES now uses the MAIL FROM domain; 1 its MX or SPF is not published (nothing sent to SES; --force sends anyway); 3 AWS could not be asked or refused; 2 usage error."
)]
pub(crate) struct SetMailFromArgs {
    /// The domain identity in SES (the From: domain), e.g. example.com.
    pub(crate) domain: String,
    /// The SES region whose identity gets the MAIL FROM setting.
    #[arg(long, short = 'r', value_name = "REGION")]
    pub(crate) region: String,
    /// The MAIL FROM domain: a label (`mail`) or a full name under DOMAIN.
    #[arg(long, value_name = "NAME")]
    pub(crate) mail_from: String,
    /// What SES does while the MX cannot be found (BehaviorOnMxFailure).
    #[arg(long, value_enum, default_value_t = MxFailureArg::UseDefault)]
    pub(crate) on_mx_failure: MxFailureArg,
    /// Make the call even if the MX and SPF are not (yet) in DNS.
    #[arg(long)]
    pub(crate) force: bool,
    /// Another SES endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the zone holds the plan (or --dry-run showed the diff); 1 some records were left alone (conflicts, placeholders); 3 AWS could not be asked, refused, or the change was not INSYNC in time; 2 usage error."
)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    pub(crate) plan: PlanInputArgs,
    /// Apply to Route 53 (the only target so far).
    #[arg(long, required = true)]
    pub(crate) route53: bool,
    /// The hosted zone (default: the deepest public zone holding DOMAIN).
    #[arg(long, value_name = "ID")]
    pub(crate) hosted_zone_id: Option<String>,
    /// Show the diff, change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Seconds to wait for the change to be INSYNC.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub(crate) wait: u64,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

pub(crate) async fn run_ses(cmd: SesCommand) -> anyhow::Result<Exit> {
    match cmd {
        SesCommand::Status(a) => status(a).await,
        SesCommand::Account(a) => account(a).await,
        SesCommand::SetMailFrom(a) => set_mail_from(a).await,
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<Exit> {
    let domain = ses_dmarc_ops::check::domain(&args.domain)?;
    let regions = ses_dmarc_ops::check::regions(&args.regions)?;
    let resolver = if args.no_dns { None } else { Some(args.dns.resolver(&domain, 16)?) };
    // The reports: the database given, or the default one when it exists (none is created).
    let db = match &args.db.database {
        Some(_) => Some(args.db.open(OpenMode::Existing).await?),
        None => match Location::default_location() {
            Location::Sqlite(path) if path.exists() => args.db.open(OpenMode::Existing).await.ok(),
            _ => None,
        },
    };
    let options = StatusOptions {
        endpoint_url: args.endpoint_url.as_deref(),
        account: !args.no_account,
        reports: db.as_ref().map(|d| (d, args.days)),
        now: ses_dmarc_ops::now(),
    };
    let result = ses_dmarc_ops::ses_status::domain_status(&domain, &regions, resolver.as_ref(), options).await;
    if result.regions.iter().any(|r| r.error_kind == Some(AwsErrorKind::NotBuilt)) {
        return Err(OpsError::from(AwsError::not_built()).into());
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?,
        OutFormat::Human => print_status(&mut out, &result, options.now)?,
    }
    Ok(if result.failed() {
        Exit::Unknown
    } else if result.needs_work() {
        Exit::Problems
    } else {
        Exit::Success
    })
}

async fn account(args: AccountArgs) -> anyhow::Result<Exit> {
    let regions = ses_dmarc_ops::check::regions(&args.regions)?;
    let now = ses_dmarc_ops::now();
    let results = ses_dmarc_ops::ses_account::accounts(&regions, args.endpoint_url.as_deref(), now).await;
    if results.iter().flat_map(|a| &a.errors).any(|e| e.kind == AwsErrorKind::NotBuilt) {
        return Err(OpsError::from(AwsError::not_built()).into());
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            for a in &results {
                writeln!(out, "{}", s.bold(&format!("SES account in {}", a.region)))?;
                print_account(&mut out, a, now, "  ")?;
            }
        }
    }
    Ok(if results.iter().any(AccountStatus::needs_work) {
        Exit::Problems
    } else if results.iter().any(|a| !a.errors.is_empty()) {
        Exit::Unknown
    } else {
        Exit::Success
    })
}

fn rate_line(rate: Option<&Rate>, t: &RateThresholds, now: i64) -> String {
    let limits = format!("review at {}, pause at {}", percent(t.review), percent(t.pause));
    match rate {
        Some(r) => {
            let hours = (now - r.at).max(0) / 3600;
            format!("{} {} ({limits}; {} h old)", percent(r.rate), r.level.as_str(), hours)
        }
        None => format!("unknown ({limits})"),
    }
}

fn finding_mark(s: Style, f: &AccountFinding) -> String {
    match f.severity {
        Severity::Error => s.red("x"),
        Severity::Warning => s.yellow("!"),
        Severity::Info => s.dim("-"),
        Severity::Unknown => s.yellow("?"),
    }
}

/// The account in one region, as lines under `indent`.
fn print_account(out: &mut dyn Write, a: &AccountStatus, now: i64, indent: &str) -> anyhow::Result<()> {
    let s = Style::for_stdout();
    let unknown = || "unknown".to_string();
    let num = |n: f64| if n.fract() == 0.0 { format!("{}", n as i64) } else { format!("{n}") };
    let quota = match (a.max_24h_send, a.max_send_rate) {
        (Some(d), Some(r)) => {
            let sent = a.sent_last_24h.map(|n| format!("; {} sent in the last 24 hours", num(n))).unwrap_or_default();
            format!(" ({} a day, {} a second{sent})", num(d), num(r))
        }
        _ => String::new(),
    };
    let access = match a.production_access {
        Some(true) => "production".to_string(),
        Some(false) => s.yellow("sandbox"),
        None => unknown(),
    };
    writeln!(out, "{indent}access       {access}{quota}")?;
    let sending = match a.sending_enabled {
        Some(true) => "enabled".to_string(),
        Some(false) => s.red("paused"),
        None => unknown(),
    };
    writeln!(out, "{indent}sending      {sending}")?;
    writeln!(out, "{indent}enforcement  {}", a.enforcement_status.clone().unwrap_or_else(unknown))?;
    writeln!(out, "{indent}bounce       {}", rate_line(a.bounce.as_ref(), &BOUNCE, now))?;
    writeln!(out, "{indent}complaint    {}", rate_line(a.complaint.as_ref(), &COMPLAINT, now))?;
    for set in &a.configuration_sets {
        let part =
            |r: Option<&Rate>| r.map(|r| format!("{} {}", percent(r.rate), r.level.as_str())).unwrap_or(unknown());
        writeln!(
            out,
            "{indent}  configuration set {}: bounce {}, complaint {}",
            set.name,
            part(set.bounce.as_ref()),
            part(set.complaint.as_ref())
        )?;
    }
    for f in &a.findings {
        writeln!(out, "{indent}{} {} {}", finding_mark(s, f), f.message, s.dim(&format!("[{}]", f.code)))?;
        if let Some(fix) = f.fix.as_deref().filter(|_| f.severity != Severity::Info) {
            writeln!(out, "{indent}    {} {fix}", s.dim("fix:"))?;
        }
    }
    for e in &a.errors {
        writeln!(out, "{indent}{} {} ({}): {}", s.yellow("error:"), e.operation, e.permission, e.message)?;
    }
    for n in &a.notes {
        writeln!(out, "{indent}{} {n}", s.dim("note:"))?;
    }
    Ok(())
}

fn print_status(out: &mut impl Write, status: &DomainStatus, now: i64) -> anyhow::Result<()> {
    let s = Style::for_stdout();
    let domain = &status.domain;
    for r in &status.regions {
        writeln!(out, "{}", s.bold(&format!("{domain} in SES {}", r.region)))?;
        if let Some(e) = &r.error {
            writeln!(out, "  {} {e}", s.red("error:"))?;
        }
        let account = |out: &mut dyn Write| -> anyhow::Result<()> {
            if let Some(a) = &r.account {
                writeln!(out, "  {}", s.dim(&format!("the SES account in {}:", r.region)))?;
                print_account(out, a, now, "    ")?;
            }
            Ok(())
        };
        let Some(id) = &r.identity else {
            account(out)?;
            continue;
        };
        if id.exists {
            let state = |st: Option<ses_dmarc_ses::identity::State>| st.map(|x| x.as_str()).unwrap_or("unknown");
            writeln!(out, "  identity   {}", state(id.verification))?;
            let mut dkim =
                format!("{}, signing {}", state(id.dkim.status), if id.dkim.signing_enabled { "on" } else { "off" });
            if let Some(o) = &id.dkim.signing_attributes_origin {
                dkim.push_str(&format!(", origin {o}"));
            }
            if let Some(k) = &id.dkim.current_key_length {
                dkim.push_str(&format!(", key {k}"));
            }
            if let Some(t) = id.dkim.last_key_generation {
                dkim.push_str(&format!(", keys made {}", style::utc_date(t)));
            }
            writeln!(out, "  DKIM       {dkim}")?;
            match &id.mail_from {
                Some(m) => writeln!(
                    out,
                    "  MAIL FROM  {} {}, BehaviorOnMxFailure {}",
                    m.domain,
                    state(m.status),
                    m.behavior_on_mx_failure.as_deref().unwrap_or("unknown")
                )?,
                None => writeln!(out, "  MAIL FROM  not set")?,
            }
        }
        if !r.records.is_empty() {
            writeln!(out, "  {}", s.dim("records SES looks for, and what DNS answers:"))?;
            let w = r.records.iter().map(|x| x.record.name.len()).max().unwrap_or(0);
            for x in &r.records {
                let mark = match x.dns {
                    DnsState::Ok => s.green("ok     "),
                    DnsState::Missing => s.red("missing"),
                    DnsState::Wrong => s.red("wrong  "),
                    DnsState::Unknown => s.yellow("unknown"),
                    DnsState::OtherRegion => s.dim("ok*    "),
                    DnsState::Unchecked => s.dim("-      "),
                };
                let value = if x.record.rtype == NeededType::Mx {
                    format!("10 {}", x.record.value)
                } else {
                    x.record.value.clone()
                };
                write!(out, "    {mark} {:<w$}  {:<5} {value}", x.record.name, x.record.rtype.as_str())?;
                match x.dns {
                    DnsState::Wrong => write!(out, "  (found: {})", x.found.join(", "))?,
                    DnsState::OtherRegion => write!(
                        out,
                        "  (found: {}; another SES region's feedback host also serves, bounces are forwarded)",
                        x.found.join(", ")
                    )?,
                    _ => {}
                }
                writeln!(out)?;
            }
        }
        for a in &r.advice {
            let mark = match a.level {
                AdviceLevel::Warning => s.yellow("!"),
                AdviceLevel::Info => s.dim("-"),
            };
            writeln!(out, "  {mark} {} {}", a.message, s.dim(&format!("[{}]", a.code)))?;
        }
        for n in id.notes.iter() {
            writeln!(out, "  {} {n}", s.dim("note:"))?;
        }
        account(out)?;
    }
    if let Some(seen) = &status.reports {
        let regions: Vec<String> = seen.regions.iter().map(|r| format!("{} {}", r.region, r.messages)).collect();
        writeln!(out, "{}", s.bold(&format!("SES mail for {domain} in the reports of the last {} days", seen.days)))?;
        writeln!(
            out,
            "  {} messages from SES; by region: {}{}",
            seen.ses_messages,
            if regions.is_empty() { "none named".to_string() } else { regions.join(", ") },
            if seen.unattributed > 0 {
                format!("; {} without a region in their names", seen.unattributed)
            } else {
                String::new()
            }
        )?;
    }
    for f in &status.findings {
        writeln!(out, "  {} {} {}", finding_mark(s, f), f.message, s.dim(&format!("[{}]", f.code)))?;
        if let Some(fix) = &f.fix {
            writeln!(out, "      {} {fix}", s.dim("fix:"))?;
        }
    }
    for n in &status.notes {
        writeln!(out, "{} {n}", s.dim("note:"))?;
    }
    Ok(())
}

async fn set_mail_from(args: SetMailFromArgs) -> anyhow::Result<Exit> {
    let domain = ses_dmarc_ops::check::domain(&args.domain)?;
    let region = ses_dmarc_ops::check::region(&args.region)?;
    let parsed =
        ses_dmarc_records::DomainName::parse_hostname(&domain).map_err(|e| anyhow::anyhow!("`{domain}`: {e}"))?;
    let mail_from = ses_dmarc_ses::mail_from::resolve(&parsed, &args.mail_from)?.to_string();
    let behavior = match args.on_mx_failure {
        MxFailureArg::UseDefault => MxFailureBehavior::UseDefaultValue,
        MxFailureArg::Reject => MxFailureBehavior::RejectMessage,
    };
    let mut out = std::io::stdout().lock();
    let resolver = args.dns.resolver(&domain, 8)?;
    let problems = mail_from_problems(&resolver, &mail_from, &region).await;
    if !problems.is_empty() {
        for p in &problems {
            style::warning(&mut std::io::stderr(), p);
        }
        if !args.force {
            writeln!(
                out,
                "Nothing sent to SES: publish the records above first (`ses-dmarc plan {domain} --region {region} --mail-from {mail_from}`), or pass --force."
            )?;
            return Ok(Exit::Problems);
        }
    }
    match call_set_mail_from(&domain, &mail_from, &region, behavior, args.endpoint_url.as_deref()).await {
        Ok(()) => {
            writeln!(out, "SES {region} now uses {mail_from} as the MAIL FROM domain of {domain}.")?;
            writeln!(
                out,
                "{}",
                match behavior {
                    MxFailureBehavior::UseDefaultValue => format!(
                        "BehaviorOnMxFailure USE_DEFAULT_VALUE: whenever SES cannot find the MX at {mail_from}, it sends with amazonses.com as MAIL FROM (SPF then stops aligning; DKIM still can). --on-mx-failure reject makes sending fail instead."
                    ),
                    MxFailureBehavior::RejectMessage => format!(
                        "BehaviorOnMxFailure REJECT_MESSAGE: whenever SES cannot find the MX at {mail_from}, sending fails with MailFromDomainNotVerified instead of leaving unaligned."
                    ),
                }
            )?;
            writeln!(
                out,
                "SES verifies the MX within minutes to hours: `ses-dmarc ses status {domain} --region {region}`."
            )?;
            Ok(Exit::Success)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn apply(args: ApplyArgs) -> anyhow::Result<Exit> {
    let mut input = args.plan.to_input().await?;
    if let Some(rx) = input.receive_reports.as_mut().filter(|rx| rx.account_id.is_none()) {
        // The bucket policy names the account: ask STS for the credentials' own.
        let id = ses_dmarc_ops::apply::account_id(args.plan.endpoint_url.as_deref()).await?;
        rx.account_id = Some(id);
    }
    let plan = ses_dmarc_ses::plan(&input)?;
    let options = ApplyOptions {
        hosted_zone_id: args.hosted_zone_id.clone(),
        dry_run: args.dry_run,
        wait: std::time::Duration::from_secs(args.wait),
        endpoint_url: args.plan.endpoint_url.clone(),
    };
    let (report, result) = apply_route53(&plan, &options).await;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            if let Err(e) = &result {
                v["error"] = e.to_string().into();
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        OutFormat::Human => print_apply(&mut out, &report, result.is_ok())?,
    }
    if let Err(e) = result {
        // Whatever stopped it (AWS, the zone found there), Route 53 was not changed as
        // planned: exit 3, as documented.
        style::error(&mut std::io::stderr(), &e.to_string());
        return Ok(Exit::Unknown);
    }
    if report.insync == Some(false) {
        return Ok(Exit::Unknown);
    }
    Ok(if report.left_alone() { Exit::Problems } else { Exit::Success })
}

pub(crate) fn print_apply(out: &mut impl Write, r: &ApplyReport, completed: bool) -> anyhow::Result<()> {
    let s = Style::for_stdout();
    if let Some((name, id)) = &r.hosted_zone {
        writeln!(out, "{}", s.bold(&format!("Route 53 zone {name} ({id}) for {}", r.domain)))?;
    }
    for c in &r.changes {
        let mark = match c.kind {
            ChangeKind::Create => s.green("create   "),
            ChangeKind::Update => s.yellow("update   "),
            ChangeKind::Unchanged => s.dim("unchanged"),
            ChangeKind::Conflict => s.red("conflict "),
            ChangeKind::Skipped => s.dim("skipped  "),
        };
        writeln!(out, "  {mark} {} {}", c.name, c.rtype)?;
        if c.kind == ChangeKind::Update {
            for v in &c.before {
                writeln!(out, "      {} {v}", s.red("-"))?;
            }
            for v in &c.after {
                writeln!(out, "      {} {v}", s.green("+"))?;
            }
        } else if c.kind == ChangeKind::Create {
            for v in &c.after {
                writeln!(out, "      {} {v}", s.green("+"))?;
            }
        }
        if let Some(n) = &c.note {
            writeln!(out, "      {}", s.dim(n))?;
        }
    }
    if let Some(rx) = &r.receiving {
        writeln!(
            out,
            "{}",
            s.bold(&format!(
                "SES receiving in {} for {}: s3://{}/{}, rule {} in the set {}",
                rx.region, rx.address, rx.bucket, rx.prefix, rx.rule, rx.rule_set
            ))
        )?;
        for step in &rx.steps {
            let mark = match step.kind {
                ChangeKind::Create => s.green(if r.dry_run { "create   " } else { "created  " }),
                ChangeKind::Update => s.yellow(if r.dry_run { "update   " } else { "updated  " }),
                ChangeKind::Unchanged => s.dim("unchanged"),
                ChangeKind::Conflict => s.red("conflict "),
                ChangeKind::Skipped => s.dim("skipped  "),
            };
            writeln!(out, "  {mark} {}", step.action)?;
            if let Some(n) = &step.note {
                writeln!(out, "      {}", s.dim(n))?;
            }
        }
    }
    if !completed {
        // Stopped before the diff was known: say nothing that reads like a result.
        return Ok(());
    }
    if let Some(rx) = &r.receiving {
        let n = rx.changed() as u64;
        match (r.dry_run, n) {
            (true, n) => writeln!(out, "Dry run: {} to SES receiving would be made.", count(n, "change"))?,
            (false, 0) => writeln!(out, "SES receiving: nothing to change.")?,
            (false, n) => writeln!(out, "SES receiving: {} made.", count(n, "change"))?,
        }
    }
    match (r.dry_run, r.submitted, r.insync) {
        (true, n, _) => {
            writeln!(out, "Dry run: {} would be submitted; nothing was changed.", count(n as u64, "change"))?
        }
        (false, 0, _) => writeln!(out, "Nothing to change: the zone already holds the plan.")?,
        (false, n, Some(true)) => {
            writeln!(out, "Submitted {}; Route 53 reports them INSYNC.", count(n as u64, "change"))?
        }
        (false, n, Some(false)) => writeln!(
            out,
            "Submitted {} ({}), not INSYNC before the --wait timeout; Route 53 finishes them anyway.",
            count(n as u64, "change"),
            r.change_id.as_deref().unwrap_or("")
        )?,
        (false, _, None) => {}
    }
    Ok(())
}
