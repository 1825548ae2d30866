//! `ses-dmarc ses status|set-mail-from`, `ses-dmarc apply --route53`, and `--from-ses` for
//! `plan` and `check`. The AWS calls need the `aws` feature (on by default); without it
//! these commands say so and exit 2.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::plan_cmd::{MxFailureArg, PlanInputArgs};
use crate::style::{self, OutFormat, Style, count};
use clap::{Args, Subcommand};
use ses_dmarc_ops::apply::{ApplyOptions, ApplyReport, apply_route53};
use ses_dmarc_ops::ses_status::{DnsState, RegionStatus, mail_from_problems, set_mail_from as call_set_mail_from};
use ses_dmarc_ses::identity::NeededType;
use ses_dmarc_ses::plan::{AdviceLevel, MxFailureBehavior};
use ses_dmarc_ses::route53::ChangeKind;
use std::io::Write;

#[derive(Debug, Subcommand)]
pub(crate) enum SesCommand {
    /// What SES says about a domain identity (verification, DKIM, MAIL FROM), what each
    /// state means, and whether the records SES looks for are in DNS.
    Status(StatusArgs),
    /// Tell SES to use the custom MAIL FROM domain, once its MX and SPF are published.
    SetMailFrom(SetMailFromArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 verified and complete; 1 something needs doing (see the advice); 3 AWS could not be asked; 2 usage error."
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
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
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
        SesCommand::SetMailFrom(a) => set_mail_from(a).await,
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<Exit> {
    let domain = ses_dmarc_ops::check::domain(&args.domain)?;
    let regions = ses_dmarc_ops::check::regions(&args.regions)?;
    let resolver = if args.no_dns { None } else { Some(args.dns.resolver(&domain, 16)?) };
    let results = ses_dmarc_ops::ses_status::status(
        &domain,
        &regions,
        args.endpoint_url.as_deref(),
        resolver.as_ref(),
        ses_dmarc_ops::now(),
    )
    .await;
    let failed = results.iter().any(|r| r.error.is_some());
    let needs_work = results.iter().any(RegionStatus::needs_work);
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"domain": domain, "regions": results}))?
        )?,
        OutFormat::Human => print_status(&mut out, &domain, &results)?,
    }
    Ok(if failed {
        Exit::Unknown
    } else if needs_work {
        Exit::Problems
    } else {
        Exit::Success
    })
}

fn print_status(out: &mut impl Write, domain: &str, results: &[RegionStatus]) -> anyhow::Result<()> {
    let s = Style::for_stdout();
    for r in results {
        writeln!(out, "{}", s.bold(&format!("{domain} in SES {}", r.region)))?;
        if let Some(e) = &r.error {
            writeln!(out, "  {} {e}", s.red("error:"))?;
            continue;
        }
        let Some(id) = &r.identity else { continue };
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
    let input = args.plan.to_input().await?;
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
    if !completed {
        // Stopped before the diff was known: say nothing that reads like a result.
        return Ok(());
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
