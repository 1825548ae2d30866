//! `ses-dmarc reports ingest|summary` and `ses-dmarc rollout`.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::style::{self, OutFormat, Style, count};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ses_dmarc_ops::apply::{ApplyOptions, apply_dmarc_route53};
use ses_dmarc_ops::dns::ConfiguredResolver;
use ses_dmarc_records::DomainName;
use ses_dmarc_reports::rollout::{Criteria, Origin, Rollout, Status, Treatment};
use ses_dmarc_reports::summary::Summary;
use ses_dmarc_reports::unpack::UnpackLimits;
use ses_dmarc_store::ingest::{IngestOutcome, InputOutcome, ingest_inputs, walk};
use ses_dmarc_store::{Database, Location, OpenMode};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum ReportsCommand {
    /// Store DMARC reports: XML, gzip, zip, e-mail (.eml), mbox, Maildir or directories.
    Ingest(IngestArgs),
    /// Totals and pass rates for a domain, overall and per source.
    Summary(SummaryArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DatabaseArg {
    #[arg(long, value_name = "URL", help = database_help())]
    pub(crate) database: Option<String>,
}

/// `--database`'s help, naming the default as this machine resolves it.
fn database_help() -> String {
    format!(
        "sqlite://PATH, a file path, or postgres://USER@HOST/DB; default: {}",
        ses_dmarc_store::Location::default_location().name()
    )
}

impl DatabaseArg {
    /// Opens the database (one connection); `mode` says whether it may be created.
    pub(crate) async fn open(&self, mode: OpenMode) -> anyhow::Result<Database> {
        Ok(Database::open(&Location::from_arg(self.database.as_deref())?, mode, 1).await?)
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every input ingested or already stored; 1 some input failed (the others are stored); 2 usage error."
)]
pub(crate) struct IngestArgs {
    /// Files or directories (walked recursively); `-` for standard input.
    #[arg(required = true)]
    pub(crate) inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    /// Largest decompressed size of one input (every member at every level together), in MB.
    #[arg(long, value_name = "MB", default_value_t = 256)]
    pub(crate) max_size: u64,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

/// `--ptr`: reverse DNS of the source IPs for classification.
#[derive(Debug, Args)]
pub(crate) struct PtrArg {
    /// Look up the source IPs' reverse names (forward-confirmed) to recognise senders such
    /// as Amazon SES (*.amazonses.com) that the report rows alone do not give away.
    #[arg(long)]
    pub(crate) ptr: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    /// The domain whose reports to summarize (the policy domain), e.g. example.com.
    pub(crate) domain: String,
    /// Reports of the last N days.
    #[arg(long, default_value_t = 30)]
    pub(crate) days: i64,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[command(flatten)]
    pub(crate) ptr: PtrArg,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the next stage is safe (or reject is reached; with --apply: the next record is published, or the dry run ran); 1 blockers remain, or legitimate mail fails and the advice is to step back (with --apply: the step back is published and exit is 0), or the zone holds another record (left alone); 3 the DMARC record could not be read, or AWS could not be asked; 2 usage error."
)]
pub(crate) struct RolloutArgs {
    /// The domain whose reports to judge (the policy domain), e.g. example.com.
    pub(crate) domain: String,
    /// Evidence from the last N days of reports.
    #[arg(long, default_value_t = 30)]
    pub(crate) days: i64,
    /// Days of reports needed before a step.
    #[arg(long, default_value_t = 14)]
    pub(crate) min_days: u32,
    /// DMARC pass rate (percent) every legitimate source needs.
    #[arg(long, default_value_t = 98.0)]
    pub(crate) min_pass: f64,
    /// A source first seen within this many days blocks the next step.
    #[arg(long, default_value_t = 7)]
    pub(crate) quiet_days: i64,
    /// Messages from your own sources needed in the reports (150: with none failing, the
    /// failure rate is then below 2% with 95% confidence).
    #[arg(long, default_value_t = ses_dmarc_reports::rollout::DEFAULT_MIN_MESSAGES)]
    pub(crate) min_messages: u64,
    /// Publish the next record (only the `_dmarc` TXT), when it is ready or the advice is to
    /// step back: with --route53, the same diff as `apply`.
    #[arg(long, requires = "route53")]
    pub(crate) apply: bool,
    /// Publish in a Route 53 hosted zone (the only target so far).
    #[arg(long, requires = "apply")]
    pub(crate) route53: bool,
    /// The hosted zone (default: the deepest public zone holding DOMAIN).
    #[arg(long, value_name = "ID", requires = "apply")]
    pub(crate) hosted_zone_id: Option<String>,
    /// Show the diff, change nothing.
    #[arg(long, requires = "apply")]
    pub(crate) dry_run: bool,
    /// Seconds to wait for the change to be INSYNC.
    #[arg(long, value_name = "SECS", default_value_t = 300, requires = "apply")]
    pub(crate) wait: u64,
    /// Another Route 53 endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL", requires = "apply")]
    pub(crate) endpoint_url: Option<String>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[command(flatten)]
    pub(crate) ptr: PtrArg,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

fn domain_arg(text: &str) -> anyhow::Result<String> {
    Ok(DomainName::parse_hostname(text).map_err(|e| anyhow::anyhow!("`{text}` is not a domain name: {e}"))?.to_string())
}

pub(crate) async fn run(cmd: ReportsCommand) -> anyhow::Result<Exit> {
    match cmd {
        ReportsCommand::Ingest(a) => ingest(a).await,
        ReportsCommand::Summary(a) => summary_cmd(a).await,
    }
}

async fn ingest(args: IngestArgs) -> anyhow::Result<Exit> {
    if !(1..=MAX_SIZE_MB).contains(&args.max_size) {
        bail!("--max-size is in MB, from 1 to {MAX_SIZE_MB}, not {}", args.max_size);
    }
    let limits = UnpackLimits { max_size: args.max_size * 1024 * 1024, ..UnpackLimits::default() };
    let mut outcomes: Vec<InputOutcome> = Vec::new();
    // Nothing to read: say so, and create no database.
    let readable = args.inputs.iter().any(|p| p.as_os_str() == "-" || p.exists());
    if readable {
        let db = args.db.open(OpenMode::Create).await?;
        let progress = std::io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} inputs ({per_sec}) {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            pb
        });
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
        let inputs = walk(&args.inputs);
        let stored = db
            .run(move |store| {
                let mut stored = Vec::new();
                ingest_inputs(store, inputs, &limits, workers, &mut |outcome| {
                    if let Some(pb) = &progress {
                        pb.inc(1);
                    }
                    stored.push(outcome);
                });
                if let Some(pb) = progress {
                    pb.finish_and_clear();
                }
                Ok(stored)
            })
            .await?;
        outcomes.extend(stored);
        print_ingest(&args, Some(db.name()), &outcomes)
    } else {
        for p in &args.inputs {
            let e = std::io::Error::from(std::io::ErrorKind::NotFound);
            outcomes.push(InputOutcome::unreadable(&p.display().to_string(), &e));
        }
        print_ingest(&args, None, &outcomes)
    }
}

/// The largest `--max-size`, in MB (64 GB).
const MAX_SIZE_MB: u64 = 65_536;

fn print_ingest(args: &IngestArgs, database: Option<&str>, outcomes: &[InputOutcome]) -> anyhow::Result<Exit> {
    let total = |f: fn(&InputOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let totals = serde_json::json!({
        "reports": total(|o| o.reports),
        "duplicates": total(|o| o.duplicates),
        "failed": total(|o| o.failed),
        "records": total(|o| o.records),
        "messages": total(|o| o.messages),
    });
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"database": database, "inputs": outcomes, "totals": totals})
            )?
        )?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            for o in outcomes {
                let mark = match o.outcome {
                    IngestOutcome::Ingested => s.green("ingested "),
                    IngestOutcome::Duplicate => s.dim("duplicate"),
                    IngestOutcome::Partial => s.yellow("partial  "),
                    IngestOutcome::Failed => s.red("failed   "),
                    IngestOutcome::Skipped => s.dim("skipped  "),
                };
                write!(
                    out,
                    "{mark} {}: {}, {}, {}",
                    style::escape(&o.path),
                    count(o.reports, "report"),
                    count(o.records, "record"),
                    count(o.messages, "message")
                )?;
                if o.duplicates > 0 {
                    write!(out, ", {} already stored", o.duplicates)?;
                }
                writeln!(out)?;
                if let Some(e) = &o.error {
                    writeln!(out, "          {}", s.dim(&style::escape(e)))?;
                }
            }
            let n = |k: &str| totals[k].as_u64().unwrap_or(0);
            match database {
                Some(db) => writeln!(
                    out,
                    "Stored in {db}: {}, {} already stored, {} failed.",
                    count(n("reports"), "new report"),
                    n("duplicates"),
                    n("failed")
                )?,
                None => writeln!(out, "Nothing stored: no input could be read (no database was created).")?,
            }
        }
    }
    let trouble = outcomes.iter().any(|o| matches!(o.outcome, IngestOutcome::Failed | IngestOutcome::Partial));
    Ok(if trouble { Exit::Problems } else { Exit::Success })
}

/// The summary the command asked for (with `--ptr`, reverse names from DNS).
async fn build_summary(
    db: &Database,
    domain: &str,
    days: i64,
    ptr: Option<&ConfiguredResolver>,
) -> anyhow::Result<Summary> {
    Ok(ses_dmarc_ops::reports::summary(db, domain, days, ptr, ses_dmarc_ops::now()).await?)
}

fn pct(part: u64, whole: u64) -> String {
    format!("{:.1}%", Summary::rate(part, whole) * 100.0)
}

async fn summary_cmd(args: SummaryArgs) -> anyhow::Result<Exit> {
    let domain = domain_arg(&args.domain)?;
    let db = args.db.open(OpenMode::Existing).await?;
    let resolver = if args.ptr.ptr { Some(args.dns.resolver(&domain, 64)?) } else { None };
    let s = build_summary(&db, &domain, args.days, resolver.as_ref()).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?,
        OutFormat::Human => {
            if s.reports == 0 && s.failures.reports == 0 {
                writeln!(out, "No reports for {domain} in the last {} days in {}.", args.days, db.name())?;
                return Ok(Exit::Success);
            }
            writeln!(
                out,
                "{}: {} over {}, {}",
                domain,
                count(s.reports, "report"),
                count(u64::from(s.days), "day"),
                count(s.messages, "message")
            )?;
            writeln!(
                out,
                "  DMARC pass {}, SPF aligned {}, DKIM aligned {}",
                pct(s.dmarc_pass, s.messages),
                pct(s.spf_aligned, s.messages),
                pct(s.dkim_aligned, s.messages)
            )?;
            if s.ses.messages > 0 {
                writeln!(
                    out,
                    "  Amazon SES: {} messages; aligned through the custom MAIL FROM {}, through DKIM {}; default amazonses.com envelope {}",
                    s.ses.messages,
                    pct(s.ses.aligned_via_mail_from, s.ses.messages),
                    pct(s.ses.aligned_via_dkim, s.ses.messages),
                    pct(s.ses.default_mail_from, s.ses.messages)
                )?;
            }
            if s.reporter_differs > 0 {
                writeln!(
                    out,
                    "  {} messages where the reporter's own evaluation differs from the recomputation",
                    s.reporter_differs
                )?;
            }
            writeln!(out, "  {:<28} {:>10} {:>8} {:>8} {:>8}", "SOURCE", "MESSAGES", "DMARC", "SPF", "DKIM")?;
            for src in &s.sources {
                writeln!(
                    out,
                    "  {:<28} {:>10} {:>8} {:>8} {:>8}",
                    style::escape(&src.source),
                    src.messages,
                    pct(src.dmarc_pass, src.messages),
                    pct(src.spf_aligned, src.messages),
                    pct(src.dkim_aligned, src.messages)
                )?;
            }
            if s.failures.reports > 0 {
                let f = &s.failures;
                let kinds: Vec<String> =
                    f.by_auth_failure.iter().map(|(k, n)| format!("{} {n}", style::escape(k))).collect();
                writeln!(out, "  Failure reports: {} ({})", f.reports, kinds.join(", "))?;
                for line in &f.recent {
                    writeln!(
                        out,
                        "    {} from {}: {} failed{}{}",
                        line.arrival_date.map(style::utc_date).unwrap_or_else(|| "date unknown".into()),
                        style::escape(line.source_ip.as_deref().unwrap_or("unknown IP")),
                        style::escape(line.auth_failure.as_deref().unwrap_or("authentication")),
                        line.dkim_domain
                            .as_deref()
                            .map(|d| format!(", DKIM d={}", style::escape(d)))
                            .unwrap_or_default(),
                        line.original_mail_from
                            .as_deref()
                            .map(|m| format!(", MAIL FROM {}", style::escape(m)))
                            .unwrap_or_default(),
                    )?;
                }
            }
        }
    }
    Ok(Exit::Success)
}

pub(crate) async fn rollout(args: RolloutArgs) -> anyhow::Result<Exit> {
    let domain = domain_arg(&args.domain)?;
    if !(0.0..=100.0).contains(&args.min_pass) {
        bail!("--min-pass is a percentage from 0 to 100");
    }
    let db = args.db.open(OpenMode::Existing).await?;
    let resolver = args.dns.resolver(&domain, 16)?;
    let criteria = Criteria {
        min_days: args.min_days,
        min_pass_rate: args.min_pass / 100.0,
        quiet_days: args.quiet_days,
        min_messages: args.min_messages,
    };
    let r = ses_dmarc_ops::reports::rollout(
        &db,
        &resolver,
        &domain,
        args.days,
        criteria,
        args.ptr.ptr,
        ses_dmarc_ops::now(),
    )
    .await?;
    // --apply publishes what the advice says to publish: the next step when ready, the
    // step back when legitimate mail fails.
    let publish = matches!(r.status, Status::Ready | Status::StepBack);
    let applied = match (&r.next_record, args.apply && publish) {
        (Some(next), true) => {
            let options = ApplyOptions {
                hosted_zone_id: args.hosted_zone_id.clone(),
                dry_run: args.dry_run,
                wait: std::time::Duration::from_secs(args.wait),
                endpoint_url: args.endpoint_url.clone(),
            };
            Some(apply_dmarc_route53(&domain, next, r.current_record.as_deref(), &options).await)
        }
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => {
            let mut v = serde_json::to_value(&r).context("serializing")?;
            if args.apply {
                v["apply"] = match &applied {
                    Some((report, result)) => {
                        let mut a = serde_json::to_value(report)?;
                        if let Err(e) = result {
                            a["error"] = e.to_string().into();
                        }
                        a
                    }
                    None => serde_json::Value::Null,
                };
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        OutFormat::Human => {
            print_rollout(&mut out, &r, &criteria)?;
            match &applied {
                Some((report, result)) => {
                    writeln!(out)?;
                    crate::aws_cmd::print_apply(&mut out, report, result.is_ok())?;
                }
                None if args.apply => {
                    writeln!(out)?;
                    writeln!(out, "Nothing published: the rollout is not ready for a next record.")?;
                }
                None => {}
            }
        }
    }
    if let Some((report, result)) = applied {
        if let Err(e) = result {
            style::error(&mut std::io::stderr(), &e.to_string());
            // As `apply`: whatever stopped it, Route 53 was not changed as advised.
            return Ok(Exit::Unknown);
        }
        if report.insync == Some(false) {
            return Ok(Exit::Unknown);
        }
        return Ok(if report.left_alone() { Exit::Problems } else { Exit::Success });
    }
    Ok(match r.status {
        Status::Ready | Status::Done => Exit::Success,
        Status::Blocked | Status::StepBack => Exit::Problems,
    })
}

/// One treatment line: both generations at once when they agree.
fn print_treatments(out: &mut impl Write, indent: &str, old: &Treatment, new: &Treatment) -> anyhow::Result<()> {
    if old.explanation == new.explanation {
        writeln!(out, "{indent}RFC 7489 and RFC 9989 receivers: {}", style::escape(&old.explanation))?;
    } else {
        writeln!(out, "{indent}RFC 7489 receivers: {}", style::escape(&old.explanation))?;
        writeln!(out, "{indent}RFC 9989 receivers: {}", style::escape(&new.explanation))?;
    }
    Ok(())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_rollout(out: &mut impl Write, r: &Rollout, criteria: &Criteria) -> anyhow::Result<()> {
    let s = Style::for_stdout();
    let e = &r.evidence;
    writeln!(out, "{}: stage {}", s.bold(&r.domain), r.stage)?;
    match &r.current {
        Some(m) => {
            writeln!(out, "  record  {}", style::escape(r.current_record.as_deref().unwrap_or(&m.record)))?;
            print_treatments(out, "  ", &m.rfc7489, &m.rfc9989)?;
        }
        None => writeln!(out, "  no DMARC record of its own")?,
    }
    for n in &r.notes {
        writeln!(out, "  {}", s.yellow(&style::escape(n)))?;
    }
    writeln!(out)?;
    if e.messages == 0 {
        writeln!(out, "Evidence: no reports in the period.")?;
    } else {
        writeln!(
            out,
            "Evidence: {} of reports ({} to {}), {} at this stage; {}, DMARC pass {}",
            count(u64::from(e.days), "day"),
            ses_dmarc_reports::rollout::utc_day(e.from),
            ses_dmarc_reports::rollout::utc_day(e.to.max(e.from + 1) - 1),
            e.days_at_stage,
            count_thousands(e.messages, "message"),
            pct(e.dmarc_pass, e.messages)
        )?;
        writeln!(out, "  {:<24} {:>10} {:>7} {:>7} {:>7}  WHOSE", "SOURCE", "MESSAGES", "DMARC", "SPF", "DKIM")?;
        for src in &e.sources {
            let whose = match src.origin {
                Origin::Ses | Origin::Service | Origin::Own => "yours",
                Origin::Forwarder => "forwarded",
                Origin::Spoofing => "not yours",
            };
            writeln!(
                out,
                "  {:<24} {:>10} {:>7} {:>7} {:>7}  {whose}",
                style::escape(&src.source),
                thousands(src.messages),
                pct(src.dmarc_pass, src.messages),
                pct(src.spf_aligned, src.messages),
                pct(src.dkim_aligned, src.messages),
            )?;
        }
        let unaligned: Vec<_> = e.sources.iter().filter(|x| x.dmarc_pass < x.messages).collect();
        if unaligned.is_empty() {
            writeln!(out, "  Unaligned sources: none")?;
        } else {
            writeln!(out, "  Unaligned sources:")?;
            for src in unaligned {
                writeln!(
                    out,
                    "    {}: {} failing of {}: {}",
                    style::escape(&src.source),
                    thousands(src.messages - src.dmarc_pass),
                    thousands(src.messages),
                    style::escape(&src.note)
                )?;
            }
        }
    }
    if !r.criteria.is_empty() {
        writeln!(out)?;
        writeln!(out, "Criteria:")?;
        for c in &r.criteria {
            let mark = if c.met { s.green("met    ") } else { s.red("not met") };
            writeln!(out, "  {mark} {:<9}{}", c.code, style::escape(&c.message))?;
        }
    }
    writeln!(out)?;
    match r.status {
        Status::Done => {
            writeln!(
                out,
                "p=reject is in force: nothing left to tighten; keep the reports coming and watch for new sources (`ses-dmarc reports summary {}`)",
                r.domain
            )?;
        }
        Status::Ready => writeln!(out, "{} publish", s.green("Ready:"))?,
        Status::Blocked => writeln!(
            out,
            "{} before {}:",
            s.yellow("Not yet"),
            style::escape(r.next_record.as_deref().unwrap_or("the next step"))
        )?,
        Status::StepBack => writeln!(
            out,
            "{} legitimate mail fails the policy in force (align it, or step back):",
            s.red("Step back:")
        )?,
    }
    if matches!(r.status, Status::Blocked | Status::StepBack) {
        for b in &r.blockers {
            writeln!(out, "  - {} {}", style::escape(&b.message), s.dim(&format!("[{}]", b.code)))?;
        }
        if r.status == Status::StepBack {
            writeln!(out, "  publish")?;
        }
    }
    if let Some(next) = &r.next {
        if r.status != Status::Blocked {
            writeln!(out, "    {}", s.bold(&style::escape(&next.record)))?;
        }
        writeln!(out, "  stage {}:", next.stage)?;
        print_treatments(out, "    ", &next.rfc7489, &next.rfc9989)?;
        if !next.why.is_empty() {
            writeln!(out, "    {}", s.dim(&next.why))?;
        }
        if r.status == Status::Blocked {
            writeln!(out, "  Not before {} by the days alone.", next.not_before)?;
        }
    }
    if let Some(after) = &r.step_after {
        writeln!(
            out,
            "  Then, not before {} ({} of reports at {}): {}",
            after.not_before,
            count(u64::from(criteria.min_days), "day"),
            r.next.as_ref().map(|n| n.stage.as_str()).unwrap_or("the next stage"),
            style::escape(&after.record)
        )?;
    }
    for o in &r.options {
        writeln!(out, "  Option: {}", style::escape(&o.message))?;
        writeln!(out, "    {}", style::escape(&o.record))?;
    }
    if !r.watch_for.is_empty() {
        writeln!(out, "  Watch for:")?;
        for w in &r.watch_for {
            writeln!(out, "    - {}", style::escape(w))?;
        }
    }
    Ok(())
}

/// `count` with thousands separators.
fn count_thousands(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{} {noun}s", thousands(n)) }
}
