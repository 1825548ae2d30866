//! `ses-dmarc reports ingest|summary|list|show` and `ses-dmarc rollout`.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::style::{self, OutFormat, Style, count};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ses_dmarc_ops::apply::{ApplyOptions, apply_dmarc_route53};
use ses_dmarc_ops::reports::ReportView;
use ses_dmarc_records::DomainName;
use ses_dmarc_reports::classify::{DkimProblem, Recognised, SpfProblem};
use ses_dmarc_reports::rollout::{Criteria, Origin, Rollout, Status, Treatment};
use ses_dmarc_reports::summary::{AddressSummary, GroupBy, SenderGroup, SesAlignment, Summary};
use ses_dmarc_reports::unpack::UnpackLimits;
use ses_dmarc_store::ingest::{IngestOutcome, InputOutcome, ingest_inputs, walk};
use ses_dmarc_store::{Database, Location, OpenMode};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum ReportsCommand {
    /// Store DMARC reports: XML, gzip, zip, e-mail (.eml), mbox, Maildir or directories.
    Ingest(IngestArgs),
    /// Totals and pass rates for a domain, overall and per sender: who sends as the domain.
    Summary(SummaryArgs),
    /// The stored aggregate reports: reporter, report id, period, messages, pass rate.
    List(ListArgs),
    /// One stored report: its metadata, the policy the reporter saw, every record.
    Show(ShowArgs),
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

/// `reports summary --format`: text, one JSON document, or CSV rows (one per address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SummaryFormat {
    Human,
    Json,
    Csv,
}

/// `reports summary --by`: one line per sender group, or its addresses under each too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SummaryBy {
    Group,
    Ip,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the summary was made (whatever it shows); 2 usage or input error (a database that does not exist, an --asn-db that cannot be read or has a malformed line)."
)]
pub(crate) struct SummaryArgs {
    /// The domain whose reports to summarize (the policy domain), e.g. example.com.
    pub(crate) domain: String,
    /// Reports of the last N days.
    #[arg(long, default_value_t = 30)]
    pub(crate) days: i64,
    /// Sender groups shown (the biggest first); the rest are summed up in one line.
    #[arg(long, value_name = "N", default_value_t = 20, conflicts_with = "all")]
    pub(crate) top: usize,
    /// Show every sender group (and with --by ip every address).
    #[arg(long)]
    pub(crate) all: bool,
    /// `group`: one line per sender; `ip`: the addresses under each sender too.
    #[arg(long, value_enum, default_value_t = SummaryBy::Group)]
    pub(crate) by: SummaryBy,
    /// An offline IP-to-ASN table (the CSV of the npm package @ip-location-db/asn:
    /// ip_range_start,ip_range_end,asn,name; plain or gzip; give it twice for the IPv4 and
    /// IPv6 files): addresses are grouped by the network that announces them. Never asks
    /// an online service.
    #[arg(long, value_name = "PATH")]
    pub(crate) asn_db: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[command(flatten)]
    pub(crate) ptr: PtrArg,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    /// human: the groups; json: everything, every address included; csv: one row per
    /// source address (and group), for spreadsheets.
    #[arg(long, short = 'f', value_enum, default_value_t = SummaryFormat::Human)]
    pub(crate) format: SummaryFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 listed (even none); 2 usage error or a database that does not exist.")]
pub(crate) struct ListArgs {
    /// Only the reports about this domain (the policy domain); default: every domain.
    pub(crate) domain: Option<String>,
    /// Reports whose period ended in the last N days.
    #[arg(long, default_value_t = 30)]
    pub(crate) days: i64,
    /// At most N reports, the newest first.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) limit: u64,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 shown; 1 no stored report has that id; 2 usage error (a reporter's id several reports share: their numbers are listed)."
)]
pub(crate) struct ShowArgs {
    /// The report: the number `reports list` shows in its ID column, or the reporter's own
    /// report id when only one stored report has it.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
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
        ReportsCommand::List(a) => list_cmd(a).await,
        ReportsCommand::Show(a) => show_cmd(a).await,
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
                store.defer_durability(true)?;
                ingest_inputs(store, inputs, &limits, workers, &mut |outcome| {
                    if let Some(pb) = &progress {
                        pb.inc(1);
                    }
                    stored.push(outcome);
                });
                store.defer_durability(false)?;
                // Nothing is reported stored before it is on disk.
                store.make_durable()?;
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
    let json = ses_dmarc_store::ingest::outcomes_json(database, outcomes);
    let totals = &json["totals"];
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?,
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

fn pct(part: u64, whole: u64) -> String {
    format!("{:.1}%", Summary::rate(part, whole) * 100.0)
}

async fn summary_cmd(args: SummaryArgs) -> anyhow::Result<Exit> {
    let domain = domain_arg(&args.domain)?;
    if args.top == 0 {
        bail!("--top is at least 1 (or --all for every sender)");
    }
    let asn = if args.asn_db.is_empty() {
        None
    } else {
        Some(std::sync::Arc::new(ses_dmarc_ops::reports::load_asn_tables(&args.asn_db)?))
    };
    let db = args.db.open(OpenMode::Existing).await?;
    let resolver = if args.ptr.ptr { Some(args.dns.resolver(&domain, 64)?) } else { None };
    let s = ses_dmarc_ops::reports::summary_with(&db, &domain, args.days, resolver.as_ref(), asn, ses_dmarc_ops::now())
        .await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        SummaryFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?,
        SummaryFormat::Csv => print_summary_csv(&mut out, &s)?,
        SummaryFormat::Human => {
            if s.reports == 0 && s.failures.reports == 0 {
                writeln!(out, "No reports for {domain} in the last {} days in {}.", args.days, db.name())?;
                return Ok(Exit::Success);
            }
            let limit = if args.all { usize::MAX } else { args.top };
            print_summary(&mut out, &s, limit, args.by)?;
        }
    }
    Ok(Exit::Success)
}

/// The CSV header of `reports summary --format csv` (docs/commands.md).
pub(crate) const SUMMARY_CSV_HEADER: &str = "ip,group,org,kind,source,ptr,asn,asn_name,messages,dmarc_pass,spf_aligned,dkim_aligned,disposition_none,disposition_quarantine,disposition_reject,first_seen,last_seen";

/// One CSV field: quoted when it holds a comma, a quote or a line end; text a spreadsheet
/// would take for a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970.
fn rfc3339(secs: i64) -> String {
    let rest = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        ses_dmarc_reports::rollout::utc_day(secs),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn print_summary_csv(out: &mut impl Write, s: &Summary) -> anyhow::Result<()> {
    writeln!(out, "{SUMMARY_CSV_HEADER}")?;
    let org: std::collections::HashMap<&str, &str> =
        s.groups.iter().filter_map(|g| g.org.as_deref().map(|o| (g.group.as_str(), o))).collect();
    for a in &s.addresses {
        let kind = serde_json::to_value(a.kind)?;
        let d = |k: &str| a.disposition.get(k).copied().unwrap_or(0);
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&a.ip),
            csv_field(&a.group),
            csv_field(org.get(a.group.as_str()).copied().unwrap_or("")),
            kind.as_str().unwrap_or(""),
            csv_field(&a.source),
            csv_field(a.ptr.as_deref().unwrap_or("")),
            a.asn.map(|n| n.to_string()).unwrap_or_default(),
            csv_field(a.asn_name.as_deref().unwrap_or("")),
            a.messages,
            a.dmarc_pass,
            a.spf_aligned,
            a.dkim_aligned,
            d("none"),
            d("quarantine"),
            d("reject"),
            rfc3339(a.first_seen),
            rfc3339(a.last_seen),
        )?;
    }
    Ok(())
}

/// The SES lines in words: how the SES mail aligns, and why where it does not.
fn print_ses(out: &mut impl Write, s: &Summary) -> anyhow::Result<()> {
    let ses = &s.ses;
    let pass = ses.breakdown.iter().filter(|l| l.aligned_by != SesAlignment::None).map(|l| l.messages).sum::<u64>();
    writeln!(
        out,
        "  Amazon SES: {}, {} pass DMARC ({})",
        count_thousands(ses.messages, "message"),
        thousands(pass),
        pct(pass, ses.messages)
    )?;
    for line in &ses.breakdown {
        let spf = line.spf_problem.map(SpfProblem::explain).unwrap_or("SPF not aligned");
        let dkim = line.dkim_problem.map(DkimProblem::explain).unwrap_or("DKIM not aligned");
        let text = match line.aligned_by {
            SesAlignment::Both => "aligned by the custom MAIL FROM (SPF) and by Easy DKIM".to_string(),
            SesAlignment::MailFrom => format!("aligned by the custom MAIL FROM only: {dkim}"),
            SesAlignment::Dkim => format!("aligned by Easy DKIM only: {spf}"),
            SesAlignment::None => format!("not aligned, failing DMARC: {spf}; {dkim}"),
        };
        writeln!(out, "    {:>9} {text}", thousands(line.messages))?;
    }
    Ok(())
}

/// How a group was recognised, for people.
fn recognised(g: &SenderGroup) -> String {
    let mut ways: Vec<String> = g
        .recognised_by
        .iter()
        .map(|r| match (r, g.asn) {
            (Recognised::Asn, Some(n)) if g.by == GroupBy::Sender => format!("AS{n}"),
            (r, _) => r.label().to_string(),
        })
        .collect();
    ways.dedup();
    ways.join(", ")
}

/// A group's name as shown: a network holding one address is shown as that address.
fn group_label<'a>(g: &'a SenderGroup, addresses: &[&'a AddressSummary]) -> &'a str {
    match (g.by, addresses) {
        (GroupBy::Network, [only]) if g.addresses == 1 => &only.ip,
        _ => &g.group,
    }
}

/// Shortens `text` to `width` characters (an ellipsis in place of the rest).
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn print_summary(out: &mut impl Write, s: &Summary, limit: usize, by: SummaryBy) -> anyhow::Result<()> {
    writeln!(
        out,
        "{}: {} over {}, {} from {}",
        s.domain,
        count(s.reports, "report"),
        count(u64::from(s.days), "day"),
        count_thousands(s.messages, "message"),
        addresses(s.addresses.iter().map(|a| a.ip.as_str()).collect::<std::collections::HashSet<_>>().len() as u64)
    )?;
    writeln!(
        out,
        "  DMARC pass {}, SPF aligned {}, DKIM aligned {}",
        pct(s.dmarc_pass, s.messages),
        pct(s.spf_aligned, s.messages),
        pct(s.dkim_aligned, s.messages)
    )?;
    if s.ses.messages > 0 {
        print_ses(out, s)?;
    }
    if s.reporter_differs > 0 {
        writeln!(
            out,
            "  {} where the reporter's own evaluation differs from the recomputation",
            count_thousands(s.reporter_differs, "message")
        )?;
    }
    if !s.groups.is_empty() {
        let mut by_group: std::collections::HashMap<&str, Vec<&AddressSummary>> = std::collections::HashMap::new();
        for a in &s.addresses {
            by_group.entry(a.group.as_str()).or_default().push(a);
        }
        let shown = &s.groups[..s.groups.len().min(limit)];
        let none: Vec<&AddressSummary> = Vec::new();
        let labels: Vec<String> = shown
            .iter()
            .map(|g| style::escape(group_label(g, by_group.get(g.group.as_str()).unwrap_or(&none))).into_owned())
            .collect();
        // An address as listed under its group (--by ip): with its reverse name, when known.
        let address_label = |a: &AddressSummary| -> String {
            match &a.ptr {
                Some(p) => style::escape(&format!("{} ({})", a.ip, p)).into_owned(),
                None => style::escape(&a.ip).into_owned(),
            }
        };
        let mut width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(6);
        if by == SummaryBy::Ip {
            for g in shown {
                for a in by_group.get(g.group.as_str()).unwrap_or(&none).iter().take(limit) {
                    width = width.max(address_label(a).chars().count() + 2);
                }
            }
        }
        let width = width.clamp(6, 48);
        writeln!(
            out,
            "  {:<width$} {:>9} {:>10} {:>7} {:>7} {:>7}  RECOGNISED BY",
            "SENDER", "ADDRESSES", "MESSAGES", "DMARC", "SPF", "DKIM"
        )?;
        for (g, label) in shown.iter().zip(&labels) {
            writeln!(
                out,
                "  {:<width$} {:>9} {:>10} {:>7} {:>7} {:>7}  {}",
                fit(label, width),
                thousands(g.addresses),
                thousands(g.messages),
                pct(g.dmarc_pass, g.messages),
                pct(g.spf_aligned, g.messages),
                pct(g.dkim_aligned, g.messages),
                recognised(g)
            )?;
            if by == SummaryBy::Ip {
                let addresses = by_group.get(g.group.as_str()).unwrap_or(&none);
                let iwidth = width - 2;
                for a in addresses.iter().take(limit) {
                    writeln!(
                        out,
                        "    {:<iwidth$} {:>9} {:>10} {:>7} {:>7} {:>7}",
                        fit(&address_label(a), iwidth),
                        "",
                        thousands(a.messages),
                        pct(a.dmarc_pass, a.messages),
                        pct(a.spf_aligned, a.messages),
                        pct(a.dkim_aligned, a.messages),
                    )?;
                }
                if addresses.len() > limit {
                    let rest = &addresses[limit..];
                    let n = rest.len() as u64;
                    let noun = if n == 1 { "address" } else { "addresses" };
                    writeln!(out, "    ... {} more {noun} (--all shows them)", thousands(n))?;
                }
            }
        }
        let rest = &s.groups[shown.len()..];
        if !rest.is_empty() {
            let (addresses, messages, pass) =
                rest.iter().fold((0, 0, 0), |(a, m, p), g| (a + g.addresses, m + g.messages, p + g.dmarc_pass));
            writeln!(
                out,
                "  ... {} more {}: {}, {}, DMARC pass {} (--top N or --all shows them; --format json or csv lists every address)",
                thousands(rest.len() as u64),
                if rest.len() == 1 { "sender" } else { "senders" },
                self::addresses(addresses),
                count_thousands(messages, "message"),
                pct(pass, messages)
            )?;
        }
    }
    if s.failures.reports > 0 {
        let f = &s.failures;
        let kinds: Vec<String> = f.by_auth_failure.iter().map(|(k, n)| format!("{} {n}", style::escape(k))).collect();
        writeln!(out, "  Failure reports: {} ({})", f.reports, kinds.join(", "))?;
        for line in &f.recent {
            writeln!(
                out,
                "    {} from {}: {} failed{}{}",
                line.arrival_date.map(style::utc_date).unwrap_or_else(|| "date unknown".into()),
                style::escape(line.source_ip.as_deref().unwrap_or("unknown IP")),
                style::escape(line.auth_failure.as_deref().unwrap_or("authentication")),
                line.dkim_domain.as_deref().map(|d| format!(", DKIM d={}", style::escape(d))).unwrap_or_default(),
                line.original_mail_from
                    .as_deref()
                    .map(|m| format!(", MAIL FROM {}", style::escape(m)))
                    .unwrap_or_default(),
            )?;
        }
    }
    Ok(())
}

async fn list_cmd(args: ListArgs) -> anyhow::Result<Exit> {
    let domain = args.domain.as_deref().map(domain_arg).transpose()?;
    if args.limit == 0 {
        bail!("--limit is at least 1");
    }
    let db = args.db.open(OpenMode::Existing).await?;
    let list =
        ses_dmarc_ops::reports::list_reports(&db, domain.as_deref(), args.days, args.limit, ses_dmarc_ops::now())
            .await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?,
        OutFormat::Human => {
            let about = domain.as_deref().map(|d| format!(" for {d}")).unwrap_or_default();
            if list.reports.is_empty() {
                writeln!(out, "No reports{about} in the last {} days in {}.", args.days, db.name())?;
                return Ok(Exit::Success);
            }
            let esc = |t: &str| style::escape(t).into_owned();
            let reporter_w =
                list.reports.iter().map(|r| esc(&r.reporter).chars().count()).max().unwrap_or(8).clamp(8, 28);
            let id_w = list.reports.iter().map(|r| esc(&r.report_id).chars().count()).max().unwrap_or(9).clamp(9, 28);
            let domain_w = list.reports.iter().map(|r| r.domain.chars().count()).max().unwrap_or(6).clamp(6, 32);
            let num_w = list.reports.iter().map(|r| r.id.to_string().len()).max().unwrap_or(2).max(2);
            writeln!(
                out,
                "{:>num_w$}  {:<reporter_w$}  {:<id_w$}  {:<domain_w$}  {:<36}  {:>10}  {:>6}",
                "ID", "REPORTER", "REPORT ID", "DOMAIN", "PERIOD (UTC)", "MESSAGES", "DMARC"
            )?;
            for r in &list.reports {
                let period = format!(
                    "{} to {}",
                    style::utc_date(r.begin).trim_end_matches(" UTC"),
                    style::utc_date(r.end).trim_end_matches(" UTC")
                );
                writeln!(
                    out,
                    "{:>num_w$}  {:<reporter_w$}  {:<id_w$}  {:<domain_w$}  {:<36}  {:>10}  {:>6}",
                    r.id,
                    fit(&esc(&r.reporter), reporter_w),
                    fit(&esc(&r.report_id), id_w),
                    fit(&esc(&r.domain), domain_w),
                    period,
                    thousands(r.messages),
                    pct(r.dmarc_pass, r.messages)
                )?;
            }
            if list.total > list.reports.len() as u64 {
                writeln!(
                    out,
                    "The newest {} of {} reports{about} in the last {} days (--limit N for more). `ses-dmarc reports show ID` shows one.",
                    list.reports.len(),
                    thousands(list.total),
                    args.days
                )?;
            } else {
                writeln!(
                    out,
                    "{}{about} in the last {} days. `ses-dmarc reports show ID` shows one.",
                    count_thousands(list.total, "report"),
                    args.days
                )?;
            }
        }
    }
    Ok(Exit::Success)
}

async fn show_cmd(args: ShowArgs) -> anyhow::Result<Exit> {
    let db = args.db.open(OpenMode::Existing).await?;
    let r = ses_dmarc_ops::reports::show_report(&db, &args.id).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?,
        OutFormat::Human => print_report(&mut out, &r)?,
    }
    Ok(Exit::Success)
}

fn print_report(out: &mut impl Write, r: &ReportView) -> anyhow::Result<()> {
    let s = Style::for_stdout();
    let esc = |t: &str| style::escape(t).into_owned();
    writeln!(out, "{} {}: from {}, report id {}", s.bold("Report"), r.id, esc(&r.reporter), esc(&r.report_id))?;
    writeln!(out, "  domain    {}", esc(&r.domain))?;
    writeln!(out, "  period    {} to {}", style::utc_date(r.begin), style::utc_date(r.end))?;
    if let Some(e) = &r.email {
        writeln!(out, "  contact   {}", esc(e))?;
    }
    writeln!(out, "  schema    {}", r.schema)?;
    writeln!(out, "  stored    {} from {}", style::utc_date(r.ingested_at), esc(&r.origin))?;
    let p = &r.policy;
    let mut tags = Vec::new();
    for (tag, value) in [
        ("p", p.p.clone()),
        ("sp", p.sp.clone()),
        ("np", p.np.clone()),
        ("adkim", p.adkim.clone()),
        ("aspf", p.aspf.clone()),
        ("pct", p.pct.map(|n| n.to_string())),
        ("fo", p.fo.clone()),
        ("t", p.testing.clone()),
    ] {
        if let Some(v) = value {
            tags.push(format!("{tag}={}", esc(&v)));
        }
    }
    writeln!(
        out,
        "  policy    {}{}",
        if tags.is_empty() { "(none written)".to_string() } else { tags.join("; ") },
        p.discovery_method.as_deref().map(|d| format!(" (discovered by {})", esc(d))).unwrap_or_default()
    )?;
    writeln!(
        out,
        "  messages  {} in {}, DMARC pass {} (recomputed)",
        thousands(r.messages),
        count_thousands(r.records.len() as u64, "record"),
        pct(r.dmarc_pass, r.messages)
    )?;
    writeln!(out, "  {}", s.dim("The original XML is not kept: this is the report as stored."))?;
    for rec in &r.records {
        writeln!(out)?;
        let verdict = if rec.dmarc_pass { s.green("DMARC pass") } else { s.red("DMARC fail") };
        let how = match (rec.spf_aligned, rec.dkim_aligned) {
            (true, true) => "SPF and DKIM aligned",
            (true, false) => "SPF aligned",
            (false, true) => "DKIM aligned",
            (false, false) => "nothing aligned",
        };
        writeln!(
            out,
            "  {}  {}  {} ({how})  disposition {}  sender {}",
            esc(&rec.source_ip),
            count_thousands(rec.count, "message"),
            verdict,
            esc(rec.disposition.as_deref().unwrap_or("unspecified")),
            esc(&rec.source)
        )?;
        writeln!(
            out,
            "    From {}{}",
            esc(&rec.header_from),
            rec.envelope_from.as_deref().map(|e| format!(", MAIL FROM {}", esc(e))).unwrap_or_default()
        )?;
        let dkim: Vec<String> = rec
            .dkim
            .iter()
            .map(|d| {
                format!(
                    "{} {}{}",
                    esc(&d.domain),
                    esc(&d.result),
                    d.selector.as_deref().map(|x| format!(" (s={})", esc(x))).unwrap_or_default()
                )
            })
            .collect();
        writeln!(out, "    DKIM {}", if dkim.is_empty() { "none".to_string() } else { dkim.join(", ") })?;
        let spf: Vec<String> = rec
            .spf
            .iter()
            .map(|x| {
                format!(
                    "{} {}{}",
                    esc(&x.domain),
                    esc(&x.result),
                    x.scope.as_deref().map(|sc| format!(" ({})", esc(sc))).unwrap_or_default()
                )
            })
            .collect();
        writeln!(out, "    SPF  {}", if spf.is_empty() { "none".to_string() } else { spf.join(", ") })?;
        if rec.evaluated_dkim.is_some() || rec.evaluated_spf.is_some() {
            writeln!(
                out,
                "    reporter's evaluation: dkim {}, spf {}",
                esc(rec.evaluated_dkim.as_deref().unwrap_or("-")),
                esc(rec.evaluated_spf.as_deref().unwrap_or("-"))
            )?;
        }
    }
    Ok(())
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

/// `N addresses`, with thousands separators.
fn addresses(n: u64) -> String {
    if n == 1 { "1 address".into() } else { format!("{} addresses", thousands(n)) }
}

/// `count` with thousands separators.
fn count_thousands(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{} {noun}s", thousands(n)) }
}
