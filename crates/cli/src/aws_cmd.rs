//! `ses-dmarc ses status|set-mail-from`, `ses-dmarc apply --route53`, and `--from-ses` for
//! `plan` and `check`. The AWS calls need the `aws` feature (on by default); without it
//! these commands say so and exit 2.

use crate::check_cmd::{validate_domain, validate_region};
use crate::dns_args::{DnsArgs, runtime};
use crate::plan_cmd::{MxFailureArg, PlanInputArgs};
use crate::style::{self, OutFormat, Style};
use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;
use ses_dmarc_dns::{Outcome, Rdata, RecordType, Resolver};
use ses_dmarc_ses::identity::{IdentityStatus, NeededRecord, StatusAdvice, advise};
use ses_dmarc_ses::plan::{AdviceLevel, MxFailureBehavior, PlanInput};
use ses_dmarc_ses::route53::{Change, ChangeKind};
use std::io::Write;
use std::process::ExitCode;

/// Exit code when AWS could not be asked or refused (docs/commands.md).
const EXIT_AWS: u8 = 3;

#[derive(Debug, Subcommand)]
pub enum SesCommand {
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
pub struct StatusArgs {
    pub domain: String,
    /// SES region(s) to ask (repeatable).
    #[arg(long = "region", short = 'r', value_name = "REGION", required = true)]
    pub regions: Vec<String>,
    /// Another SES endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Do not look the records up in DNS.
    #[arg(long)]
    pub no_dns: bool,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 SES now uses the MAIL FROM domain; 1 its MX or SPF is not published (nothing sent to SES; --force sends anyway); 3 AWS could not be asked or refused; 2 usage error."
)]
pub struct SetMailFromArgs {
    pub domain: String,
    #[arg(long, short = 'r', value_name = "REGION")]
    pub region: String,
    /// The MAIL FROM domain: a label (`mail`) or a full name under DOMAIN.
    #[arg(long, value_name = "NAME")]
    pub mail_from: String,
    /// What SES does while the MX cannot be found (BehaviorOnMxFailure).
    #[arg(long, value_enum, default_value_t = MxFailureArg::UseDefault)]
    pub on_mx_failure: MxFailureArg,
    /// Make the call even if the MX and SPF are not (yet) in DNS.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub dns: DnsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the zone holds the plan (or --dry-run showed the diff); 1 some records were left alone (conflicts, placeholders); 3 AWS could not be asked, refused, or the change was not INSYNC in time; 2 usage error."
)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub plan: PlanInputArgs,
    /// Apply to Route 53 (the only target so far).
    #[arg(long, required = true)]
    pub route53: bool,
    /// The hosted zone (default: the deepest public zone holding DOMAIN).
    #[arg(long, value_name = "ID")]
    pub hosted_zone_id: Option<String>,
    /// Show the diff, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for the change to be INSYNC.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub wait: u64,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub format: OutFormat,
}

pub fn run_ses(cmd: SesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SesCommand::Status(a) => status(a),
        SesCommand::SetMailFrom(a) => set_mail_from(a),
    }
}

#[cfg(feature = "aws")]
fn identity_statuses(
    domain: &str,
    regions: &[String],
    endpoint_url: Option<&str>,
) -> Vec<(String, Result<IdentityStatus, String>)> {
    let Ok(rt) = runtime() else {
        return regions.iter().map(|r| (r.clone(), Err("cannot start the async runtime".to_string()))).collect();
    };
    rt.block_on(async {
        let mut out = Vec::new();
        for region in regions {
            let ses = ses_dmarc_ses::aws::Ses::connect(region, endpoint_url).await;
            out.push((region.clone(), ses.identity_status(domain).await.map_err(|e| e.message)));
        }
        out
    })
}

#[cfg(not(feature = "aws"))]
fn identity_statuses(
    _domain: &str,
    regions: &[String],
    _endpoint_url: Option<&str>,
) -> Vec<(String, Result<IdentityStatus, String>)> {
    regions.iter().map(|r| (r.clone(), Err(NO_AWS.to_string()))).collect()
}

#[cfg(not(feature = "aws"))]
const NO_AWS: &str = "this ses-dmarc was built without AWS support (cargo feature `aws`): reinstall with `cargo install --path crates/cli`";

/// `--from-ses` for `plan` and `apply`: DKIM tokens, MAIL FROM and signing zones from SES.
/// Regions that are Deterministic Easy DKIM replicas of another listed region are left out
/// of the plan (their records are the parent's).
pub fn complete_from_ses(input: &mut PlanInput, endpoint_url: Option<&str>) -> anyhow::Result<()> {
    let domain = validate_domain(&input.domain)?;
    let regions: Vec<String> = input.regions.iter().map(|r| validate_region(r)).collect::<anyhow::Result<_>>()?;
    let mut kept = Vec::new();
    for (region, answer) in identity_statuses(&domain, &regions, endpoint_url) {
        let status = answer.map_err(|e| anyhow::anyhow!("SES in {region}: {e}"))?;
        if !status.exists {
            bail!(
                "{domain} is not an SES identity in {region}; `ses-dmarc ses status {domain} --region {region}` says what to do"
            );
        }
        if let Some(parent) =
            status.dkim.signing_attributes_origin.as_deref().and_then(ses_dmarc_ses::identity::deed_parent_region)
            && regions.iter().any(|r| r == parent)
        {
            style::warning(
                &mut std::io::stderr(),
                &format!(
                    "{region} is a Deterministic Easy DKIM replica of {parent}: its DKIM records are {parent}'s, planned once"
                ),
            );
            continue;
        }
        if input.mail_from.is_none() {
            input.mail_from = status.mail_from.as_ref().map(|m| m.domain.clone());
        }
        if status.dkim.tokens.len() == 3 && !status.is_byodkim() {
            input.dkim_tokens.extend(status.dkim.tokens.iter().map(|t| format!("{region}:{t}")));
        }
        if let Some(zone) = status.signing_zone() {
            input.dkim_signing_zones.insert(region.clone(), zone);
        }
        kept.push(region);
    }
    input.regions = kept;
    Ok(())
}

/// `--from-ses` for `check`: (MAIL FROM, REGION:TOKEN list) from SES.
pub fn check_facts_from_ses(
    domain: &str,
    regions: &[String],
    endpoint_url: Option<&str>,
) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let mut mail_from = None;
    let mut tokens: Vec<String> = Vec::new();
    for (region, answer) in identity_statuses(domain, regions, endpoint_url) {
        let status = answer.map_err(|e| anyhow::anyhow!("SES in {region}: {e}"))?;
        if !status.exists {
            bail!(
                "{domain} is not an SES identity in {region}; `ses-dmarc ses status {domain} --region {region}` says what to do"
            );
        }
        if mail_from.is_none() {
            mail_from = status.mail_from.as_ref().map(|m| m.domain.clone());
        }
        for t in &status.dkim.tokens {
            if !tokens.iter().any(|x| x.ends_with(&format!(":{t}"))) {
                tokens.push(format!("{region}:{t}"));
            }
        }
    }
    Ok((mail_from, tokens))
}

/// A needed record as found in DNS.
#[derive(Debug, Clone, Serialize)]
struct ObservedRecord {
    #[serde(flatten)]
    record: NeededRecord,
    /// `ok`, `other-region` (an MX naming another SES region's feedback host: fine),
    /// `missing`, `wrong`, `unknown` (DNS failed) or `unchecked`.
    dns: &'static str,
    found: Vec<String>,
}

async fn observe(resolver: &impl Resolver, r: &NeededRecord) -> ObservedRecord {
    let rtype = if r.rtype == "MX" { RecordType::Mx } else { RecordType::Cname };
    let answer = resolver.lookup(&r.name, rtype).await;
    let found: Vec<String> = answer
        .records()
        .iter()
        .filter_map(|d| match d {
            Rdata::Name(n) => Some(n.clone()),
            Rdata::Mx { preference, exchange } => Some(format!("{preference} {exchange}")),
            _ => None,
        })
        .collect();
    let want = r.value.to_ascii_lowercase();
    let dns = match &answer.outcome {
        Outcome::Failed(_) => "unknown",
        Outcome::NoData | Outcome::NxDomain => "missing",
        Outcome::Records(records) => {
            let hit = records.iter().any(|d| match d {
                Rdata::Name(n) => n.trim_end_matches('.') == want,
                Rdata::Mx { exchange, .. } => exchange.trim_end_matches('.') == want,
                _ => false,
            });
            let other_ses_region = rtype == RecordType::Mx
                && records.len() == 1
                && found
                    .first()
                    .and_then(|f| f.split_whitespace().nth(1))
                    .is_some_and(|host| matches!(ses_dmarc_ses::regions::region_of_feedback_host(host), Some(Ok(_))));
            if hit && (rtype == RecordType::Cname || records.len() == 1) {
                "ok"
            } else if other_ses_region {
                // One MAIL FROM MX naming any SES region serves them all (AWS SES guide).
                "other-region"
            } else {
                "wrong"
            }
        }
    };
    ObservedRecord { record: r.clone(), dns, found }
}

#[derive(Debug, Serialize)]
struct RegionStatus {
    region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityStatus>,
    advice: Vec<StatusAdvice>,
    records: Vec<ObservedRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let domain = validate_domain(&args.domain)?;
    let regions: Vec<String> =
        args.regions.iter().flat_map(|r| r.split(',')).map(validate_region).collect::<anyhow::Result<_>>()?;
    let resolver = if args.no_dns { None } else { Some(args.dns.resolver(&domain, 16)?) };
    let mut results = Vec::new();
    for (region, answer) in identity_statuses(&domain, &regions, args.endpoint_url.as_deref()) {
        match answer {
            Ok(identity) => {
                let needed = identity.needed_records();
                let records = match &resolver {
                    Some(r) => runtime()?.block_on(futures::future::join_all(needed.iter().map(|n| observe(r, n)))),
                    None => needed
                        .into_iter()
                        .map(|record| ObservedRecord { record, dns: "unchecked", found: vec![] })
                        .collect(),
                };
                let advice = advise(&identity, now());
                results.push(RegionStatus { region, identity: Some(identity), advice, records, error: None });
            }
            Err(e) => {
                results.push(RegionStatus { region, identity: None, advice: vec![], records: vec![], error: Some(e) })
            }
        }
    }
    let failed = results.iter().any(|r| r.error.is_some());
    let needs_work = results.iter().any(|r| {
        r.advice.iter().any(|a| a.level == AdviceLevel::Warning)
            || r.records.iter().any(|x| !matches!(x.dns, "ok" | "other-region" | "unchecked"))
    });
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"domain": domain, "regions": results}))?
        )?,
        OutFormat::Human => print_status(&mut out, &domain, &results)?,
    }
    Ok(ExitCode::from(if failed {
        EXIT_AWS
    } else if needs_work {
        1
    } else {
        0
    }))
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
                    "ok" => s.green("ok     "),
                    "missing" => s.red("missing"),
                    "wrong" => s.red("wrong  "),
                    "unknown" => s.yellow("unknown"),
                    "other-region" => s.dim("ok*    "),
                    _ => s.dim("-      "),
                };
                let value =
                    if x.record.rtype == "MX" { format!("10 {}", x.record.value) } else { x.record.value.clone() };
                write!(out, "    {mark} {:<w$}  {:<5} {value}", x.record.name, x.record.rtype)?;
                match x.dns {
                    "wrong" => write!(out, "  (found: {})", x.found.join(", "))?,
                    "other-region" => write!(
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

/// The MAIL FROM records in DNS, as `set-mail-from` needs them: (MX ok, SPF ok, problems).
async fn mail_from_published(resolver: &impl Resolver, mail_from: &str, region: &str) -> Vec<String> {
    let feedback = ses_dmarc_ses::regions::find(region).map(|r| r.feedback_host()).unwrap_or_default();
    let mut problems = Vec::new();
    let mx = resolver.lookup(mail_from, RecordType::Mx).await;
    let exchanges: Vec<String> = mx
        .records()
        .iter()
        .filter_map(|r| match r {
            Rdata::Mx { exchange, .. } => Some(exchange.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    match &mx.outcome {
        Outcome::Failed(f) => problems.push(format!("the MX of {mail_from} could not be read ({f:?})")),
        _ if exchanges.is_empty() => {
            problems.push(format!("{mail_from} has no MX: publish `{mail_from}. MX 10 {feedback}.`"))
        }
        _ if exchanges.len() > 1 => problems.push(format!(
            "{mail_from} has {} MX records ({}): SES wants exactly one, `10 {feedback}`",
            exchanges.len(),
            exchanges.join(", ")
        )),
        _ if ses_dmarc_ses::regions::region_of_feedback_host(&exchanges[0]).and_then(|r| r.ok()).is_none() => {
            problems.push(format!("the MX of {mail_from} is {}, not SES's `{feedback}`", exchanges[0]))
        }
        _ => {}
    }
    let txt = resolver.lookup(mail_from, RecordType::Txt).await;
    let spf: Vec<String> = txt
        .records()
        .iter()
        .filter_map(|r| match r {
            Rdata::Txt(strings) => Some(String::from_utf8_lossy(&strings.concat()).into_owned()),
            _ => None,
        })
        .filter(|t| ses_dmarc_records::spf::is_spf1(t))
        .collect();
    match (&txt.outcome, spf.as_slice()) {
        (Outcome::Failed(f), _) => problems.push(format!("the TXT records of {mail_from} could not be read ({f:?})")),
        (_, []) => problems.push(format!(
            "{mail_from} has no SPF record: publish `{mail_from}. TXT \"v=spf1 include:amazonses.com ~all\"`"
        )),
        (_, [one]) => {
            let includes = ses_dmarc_records::SpfRecord::parse(one).value.is_some_and(|r| r.includes("amazonses.com"));
            if !includes {
                problems.push(format!("the SPF record of {mail_from} (`{one}`) lacks include:amazonses.com"));
            }
        }
        (_, many) => problems.push(format!("{mail_from} has {} SPF records: SPF allows one", many.len())),
    }
    problems
}

fn set_mail_from(args: SetMailFromArgs) -> anyhow::Result<ExitCode> {
    let domain = validate_domain(&args.domain)?;
    let region = validate_region(&args.region)?;
    let parsed = ses_dmarc_records::DomainName::parse_hostname(&domain)?;
    let mail_from = ses_dmarc_ses::mail_from::resolve(&parsed, &args.mail_from)?.to_string();
    let behavior = match args.on_mx_failure {
        MxFailureArg::UseDefault => MxFailureBehavior::UseDefaultValue,
        MxFailureArg::Reject => MxFailureBehavior::RejectMessage,
    };
    let mut out = std::io::stdout().lock();
    let resolver = args.dns.resolver(&domain, 8)?;
    let problems = runtime()?.block_on(mail_from_published(&resolver, &mail_from, &region));
    if !problems.is_empty() {
        for p in &problems {
            style::warning(&mut std::io::stderr(), p);
        }
        if !args.force {
            writeln!(
                out,
                "Nothing sent to SES: publish the records above first (`ses-dmarc plan {domain} --region {region} --mail-from {mail_from}`), or pass --force."
            )?;
            return Ok(ExitCode::from(1));
        }
    }
    match call_set_mail_from(&domain, &mail_from, &region, behavior, args.endpoint_url.as_deref()) {
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
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            style::error(&mut std::io::stderr(), &e);
            Ok(ExitCode::from(EXIT_AWS))
        }
    }
}

#[cfg(feature = "aws")]
fn call_set_mail_from(
    domain: &str,
    mail_from: &str,
    region: &str,
    behavior: MxFailureBehavior,
    endpoint_url: Option<&str>,
) -> Result<(), String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let ses = ses_dmarc_ses::aws::Ses::connect(region, endpoint_url).await;
        let status = ses.identity_status(domain).await.map_err(|e| e.message)?;
        if !status.exists {
            return Err(format!(
                "{domain} is not an SES identity in {region}: create it first (`ses-dmarc ses status {domain} --region {region}` says how)"
            ));
        }
        ses.set_mail_from(domain, mail_from, behavior).await.map_err(|e| e.message)
    })
}

#[cfg(not(feature = "aws"))]
fn call_set_mail_from(
    _domain: &str,
    _mail_from: &str,
    _region: &str,
    _behavior: MxFailureBehavior,
    _endpoint_url: Option<&str>,
) -> Result<(), String> {
    Err(NO_AWS.to_string())
}

#[derive(Debug, Serialize)]
struct ApplyReport {
    domain: String,
    hosted_zone: Option<(String, String)>,
    changes: Vec<Change>,
    dry_run: bool,
    submitted: usize,
    change_id: Option<String>,
    insync: Option<bool>,
}

pub fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let input = args.plan.to_input()?;
    let plan = ses_dmarc_ses::plan(&input)?;
    let domain = plan.domain.to_string();
    let mut report = ApplyReport {
        domain: domain.clone(),
        hosted_zone: None,
        changes: vec![],
        dry_run: args.dry_run,
        submitted: 0,
        change_id: None,
        insync: None,
    };
    let result = apply_route53(&plan, &args, &mut report);
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            if let Err(e) = &result {
                v["error"] = e.clone().into();
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        OutFormat::Human => print_apply(&mut out, &report)?,
    }
    if let Err(e) = result {
        style::error(&mut std::io::stderr(), &e);
        return Ok(ExitCode::from(EXIT_AWS));
    }
    if report.insync == Some(false) {
        return Ok(ExitCode::from(EXIT_AWS));
    }
    let left_alone = report.changes.iter().any(|c| matches!(c.kind, ChangeKind::Conflict | ChangeKind::Skipped));
    Ok(ExitCode::from(if left_alone { 1 } else { 0 }))
}

#[cfg(feature = "aws")]
fn apply_route53(plan: &ses_dmarc_ses::Plan, args: &ApplyArgs, report: &mut ApplyReport) -> Result<(), String> {
    use ses_dmarc_ses::route53::{diff, pick_zone};
    let endpoint = args.plan.endpoint_url.as_deref();
    let domain = plan.domain.to_string();
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let r53 = ses_dmarc_ses::aws::Route53::connect(endpoint).await;
        let zone = match &args.hosted_zone_id {
            Some(id) => {
                let zone = r53.zone(id).await.map_err(|e| e.message)?;
                let zone_name = ses_dmarc_ses::route53::normalize_name(&zone.0);
                if !(domain == zone_name || domain.ends_with(&format!(".{zone_name}"))) {
                    return Err(format!("hosted zone {id} is {zone_name}, which does not hold {domain}"));
                }
                zone
            }
            None => {
                let zones = r53.zones().await.map_err(|e| e.message)?;
                pick_zone(&domain, &zones).cloned().ok_or_else(|| {
                    format!("no public Route 53 hosted zone holds {domain} in this account: create one, or pass --hosted-zone-id")
                })?
            }
        };
        report.hosted_zone = Some((zone.0.clone(), zone.1.clone()));
        let existing = r53.record_sets(&zone.1).await.map_err(|e| e.message)?;
        report.changes = diff(plan, &existing);
        let submit: Vec<Change> = report.changes.iter().filter(|c| c.is_submitted()).cloned().collect();
        report.submitted = submit.len();
        if args.dry_run || submit.is_empty() {
            return Ok(());
        }
        let id = r53.submit(&zone.1, &submit, &format!("ses-dmarc apply for {domain}")).await.map_err(|e| e.message)?;
        report.change_id = Some(id.clone());
        let poll = std::time::Duration::from_millis(if args.wait < 30 { 500 } else { 5_000 });
        let insync =
            r53.wait_insync(&id, std::time::Duration::from_secs(args.wait), poll).await.map_err(|e| e.message)?;
        report.insync = Some(insync);
        Ok(())
    })
}

#[cfg(not(feature = "aws"))]
fn apply_route53(_plan: &ses_dmarc_ses::Plan, _args: &ApplyArgs, _report: &mut ApplyReport) -> Result<(), String> {
    Err(NO_AWS.to_string())
}

fn print_apply(out: &mut impl Write, r: &ApplyReport) -> anyhow::Result<()> {
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
    match (r.dry_run, r.submitted, r.insync) {
        (true, n, _) => writeln!(out, "Dry run: {n} change(s) would be submitted; nothing was changed.")?,
        (false, 0, _) => writeln!(out, "Nothing to change: the zone already holds the plan.")?,
        (false, n, Some(true)) => writeln!(out, "Submitted {n} change(s); Route 53 reports them INSYNC.")?,
        (false, n, Some(false)) => writeln!(
            out,
            "Submitted {n} change(s) ({}), not INSYNC before the --wait timeout; Route 53 finishes them anyway.",
            r.change_id.as_deref().unwrap_or("")
        )?,
        (false, _, None) => {}
    }
    Ok(())
}
