//! `ses-dmarc reports ingest|summary` and `ses-dmarc rollout`.

use crate::dns_args::{DnsArgs, runtime};
use crate::style::{self, OutFormat, Style};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ses_dmarc_dns::RecordType;
use ses_dmarc_receiver::dmarc_discovery::{discover_9989, tree_walk_names};
use ses_dmarc_records::DomainName;
use ses_dmarc_reports::classify::classify;
use ses_dmarc_reports::rollout::{Criteria, advise};
use ses_dmarc_reports::summary::{Summary, SummaryBuilder};
use ses_dmarc_reports::unpack::UnpackLimits;
use ses_dmarc_store::ingest::{Input, InputOutcome, files_under, ingest_inputs};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ReportsCommand {
    /// Store DMARC reports: XML, gzip, zip, e-mail (.eml), mbox, Maildir or directories.
    Ingest(IngestArgs),
    /// Totals and pass rates for a domain, overall and per source.
    Summary(SummaryArgs),
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// sqlite://PATH or a file path; default: ~/.local/share/ses-dmarc/reports.sqlite.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every input ingested or already stored; 1 some input failed (the others are stored); 2 usage error."
)]
pub struct IngestArgs {
    /// Files or directories (walked recursively); `-` for standard input.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Largest decompressed size of one report, in MB.
    #[arg(long, value_name = "MB", default_value_t = 256)]
    pub max_size: u64,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub format: OutFormat,
}

/// `--ptr`: reverse DNS of the source IPs for classification.
#[derive(Debug, Args)]
pub struct PtrArg {
    /// Look up the source IPs' reverse names (forward-confirmed) to recognise senders such
    /// as Amazon SES (*.amazonses.com) that the report rows alone do not give away.
    #[arg(long)]
    pub ptr: bool,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    pub domain: String,
    /// Reports of the last N days.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    #[command(flatten)]
    pub db: DatabaseArg,
    #[command(flatten)]
    pub ptr: PtrArg,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub format: OutFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the next stage is safe (or reject is reached); 1 blockers remain; 3 the DMARC record could not be read; 2 usage error."
)]
pub struct RolloutArgs {
    pub domain: String,
    /// Evidence from the last N days of reports.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Days of reports needed before a step.
    #[arg(long, default_value_t = 14)]
    pub min_days: u32,
    /// DMARC pass rate (percent) every legitimate source needs.
    #[arg(long, default_value_t = 98.0)]
    pub min_pass: f64,
    /// A source first seen within this many days blocks the next step.
    #[arg(long, default_value_t = 7)]
    pub quiet_days: i64,
    #[command(flatten)]
    pub db: DatabaseArg,
    #[command(flatten)]
    pub ptr: PtrArg,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub format: OutFormat,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn domain_arg(text: &str) -> anyhow::Result<String> {
    Ok(DomainName::parse_hostname(text).map_err(|e| anyhow::anyhow!("`{text}` is not a domain name: {e}"))?.to_string())
}

pub fn run(cmd: ReportsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReportsCommand::Ingest(a) => ingest(a),
        ReportsCommand::Summary(a) => summary_cmd(a),
    }
}

fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut store = ses_dmarc_store::open(args.db.database.as_deref())?;
    let limits = UnpackLimits { max_size: args.max_size.max(1) * 1024 * 1024, ..UnpackLimits::default() };
    let mut files = Vec::new();
    let mut outcomes: Vec<InputOutcome> = Vec::new();
    for input in &args.inputs {
        if input.as_os_str() == "-" {
            files.push(Input::Stdin);
            continue;
        }
        match files_under(input) {
            Ok(list) => files.extend(list.into_iter().map(Input::File)),
            Err(e) => outcomes.push(InputOutcome::unreadable(&input.display().to_string(), &e)),
        }
    }
    let progress = (std::io::stderr().is_terminal() && files.len() > 1).then(|| {
        let pb = indicatif::ProgressBar::new(files.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} inputs {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
    ingest_inputs(&mut store, &files, &limits, workers, &mut |outcome| {
        if let Some(pb) = &progress {
            pb.inc(1);
        }
        outcomes.push(outcome);
    });
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
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
                &serde_json::json!({"database": store.path(), "inputs": outcomes, "totals": totals})
            )?
        )?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            for o in &outcomes {
                let mark = match o.outcome {
                    "ingested" => s.green("ingested "),
                    "duplicate" => s.dim("duplicate"),
                    "partial" => s.yellow("partial  "),
                    _ => s.red("failed   "),
                };
                write!(
                    out,
                    "{mark} {}: {} report(s), {} record(s), {} message(s)",
                    o.path, o.reports, o.records, o.messages
                )?;
                if o.duplicates > 0 {
                    write!(out, ", {} already stored", o.duplicates)?;
                }
                writeln!(out)?;
                if let Some(e) = &o.error {
                    writeln!(out, "          {}", s.dim(e))?;
                }
            }
            writeln!(
                out,
                "Stored in {}: {} new report(s), {} duplicate(s), {} failed.",
                store.path(),
                totals["reports"],
                totals["duplicates"],
                totals["failed"]
            )?;
        }
    }
    Ok(ExitCode::from(if outcomes.iter().any(|o| o.outcome == "failed" || o.outcome == "partial") { 1 } else { 0 }))
}

/// Forward-confirmed reverse names of the domain's source IPs (see `--ptr`).
fn reverse_names(
    store: &mut ses_dmarc_store::Store,
    domain: &str,
    since: i64,
    dns: &DnsArgs,
) -> anyhow::Result<HashMap<String, String>> {
    let ips: Vec<(String, IpAddr)> =
        store.source_ips(domain, since)?.into_iter().filter_map(|t| t.parse().ok().map(|ip| (t, ip))).collect();
    let resolver = dns.resolver(domain, 64)?;
    let names = runtime()?.block_on(futures::future::join_all(
        ips.iter().map(|(_, ip)| ses_dmarc_dns::confirmed_reverse_name(&resolver, *ip)),
    ));
    Ok(ips.into_iter().zip(names).filter_map(|((text, _), name)| name.map(|n| (text, n))).collect())
}

fn build_summary(
    store: &mut ses_dmarc_store::Store,
    domain: &str,
    days: i64,
    ptr: Option<&DnsArgs>,
) -> anyhow::Result<Summary> {
    if days <= 0 {
        bail!("--days must be at least 1");
    }
    let since = now() - days * 86_400;
    let names = match ptr {
        Some(dns) => reverse_names(store, domain, since, dns)?,
        None => HashMap::new(),
    };
    let mut b = SummaryBuilder::new(domain);
    for h in store.reports_for(domain, since)? {
        b.add_report(&h);
    }
    store.records_for(domain, since, &mut |r| {
        let ip = r.record.source_ip.map(|i| i.to_string()).unwrap_or_else(|| r.record.source_ip_text.clone());
        let c = classify(&r.record, &r.header.policy, names.get(&ip).map(String::as_str));
        b.add_record(&r.header, &r.record, &c);
    })?;
    for f in store.failures_for(domain, since)? {
        b.add_failure(&f);
    }
    Ok(b.finish())
}

fn pct(part: u64, whole: u64) -> String {
    format!("{:.1}%", Summary::rate(part, whole) * 100.0)
}

fn summary_cmd(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    let domain = domain_arg(&args.domain)?;
    let mut store = ses_dmarc_store::open(args.db.database.as_deref())?;
    let s = build_summary(&mut store, &domain, args.days, args.ptr.ptr.then_some(&args.dns))?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?,
        OutFormat::Human => {
            if s.reports == 0 && s.failures.reports == 0 {
                writeln!(out, "No reports for {domain} in the last {} days in {}.", args.days, store.path())?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "{}: {} reports over {} days, {} messages", domain, s.reports, s.days, s.messages)?;
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
                    src.source,
                    src.messages,
                    pct(src.dmarc_pass, src.messages),
                    pct(src.spf_aligned, src.messages),
                    pct(src.dkim_aligned, src.messages)
                )?;
            }
            if s.failures.reports > 0 {
                let f = &s.failures;
                let kinds: Vec<String> = f.by_auth_failure.iter().map(|(k, n)| format!("{k} {n}")).collect();
                writeln!(out, "  Failure reports: {} ({})", f.reports, kinds.join(", "))?;
                for line in &f.recent {
                    writeln!(
                        out,
                        "    {} from {}: {} failed{}{}",
                        line.arrival_date.map(style::utc_date).unwrap_or_else(|| "date unknown".into()),
                        line.source_ip.as_deref().unwrap_or("unknown IP"),
                        line.auth_failure.as_deref().unwrap_or("authentication"),
                        line.dkim_domain.as_deref().map(|d| format!(", DKIM d={d}")).unwrap_or_default(),
                        line.original_mail_from.as_deref().map(|m| format!(", MAIL FROM {m}")).unwrap_or_default(),
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rollout(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let domain = domain_arg(&args.domain)?;
    if !(0.0..=100.0).contains(&args.min_pass) {
        bail!("--min-pass is a percentage from 0 to 100");
    }
    let mut store = ses_dmarc_store::open(args.db.database.as_deref())?;
    let summary = build_summary(&mut store, &domain, args.days, args.ptr.ptr.then_some(&args.dns))?;
    let resolver = args.dns.resolver(&domain, 16)?;
    let names: Vec<String> = tree_walk_names(&domain).into_iter().map(|n| format!("_dmarc.{n}")).collect();
    let answers = runtime()?.block_on(async {
        use ses_dmarc_dns::Resolver;
        futures::future::join_all(names.iter().map(|n| resolver.lookup(n, RecordType::Txt))).await
    });
    let map: HashMap<String, ses_dmarc_dns::Answer> = names.into_iter().zip(answers).collect();
    let current = match discover_9989(&|n: &str| map.get(n), &domain) {
        Ok(d) => d.record.filter(|_| d.own),
        Err(_) => {
            style::error(
                &mut std::io::stderr(),
                &format!("the DMARC record of {domain} could not be read (DNS failure)"),
            );
            return Ok(ExitCode::from(3));
        }
    };
    let criteria =
        Criteria { min_days: args.min_days, min_pass_rate: args.min_pass / 100.0, quiet_days: args.quiet_days };
    let r = advise(&domain, current.as_deref(), &summary, now(), criteria);
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&r).context("serializing")?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            writeln!(
                out,
                "{}: stage {} ({})",
                s.bold(&domain),
                r.stage,
                r.current_record.as_deref().unwrap_or("no record")
            )?;
            if r.ready {
                writeln!(out, "  {} publish: {}", s.green("ready:"), r.next_record.as_deref().unwrap_or_default())?;
            } else if r.next_record.is_none() && r.blockers.is_empty() {
                writeln!(out, "  p=reject is in force: nothing left to tighten")?;
            } else {
                writeln!(
                    out,
                    "  {} before {}:",
                    s.yellow("not yet"),
                    r.next_record.as_deref().unwrap_or("the next step")
                )?;
                for b in &r.blockers {
                    writeln!(out, "    - {} {}", b.message, s.dim(&format!("[{}]", b.code)))?;
                }
            }
        }
    }
    Ok(ExitCode::from(if r.ready || (r.next_record.is_none() && r.blockers.is_empty()) { 0 } else { 1 }))
}
