//! `ses-dmarc check`: audit one domain or a million.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::style::{self, Style, escape};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use ses_dmarc_audit::rules::Passed;
use ses_dmarc_audit::{DomainReport, Expectations, FindingSeverity, RecordGroup};
use ses_dmarc_dns::RecordType;
use ses_dmarc_ops::check::{self, CheckJob};
use ses_dmarc_ops::dns::ConfiguredResolver;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    /// Grouped by record, with pass/fail marks and fixes to paste.
    Human,
    /// One JSON object per domain (docs/json.md).
    Json,
    /// One JSON object per line, for bulk runs.
    Jsonl,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 no errors; 1 at least one error finding; 3 some answers unknown (DNS failures) and no errors; 2 usage or input error.\n\nExample: ses-dmarc check example.com --region us-east-1 --mail-from mail --dkim-token T1 --dkim-token T2 --dkim-token T3"
)]
pub(crate) struct CheckArgs {
    /// Domains to check (the From: domains you send from).
    pub(crate) domains: Vec<String>,
    /// Read domains from a file, one per line (`-` for standard input). `#` starts a
    /// comment; after the domain, `mail-from=L`, `dkim-token=T`, `selector=S`, `region=R`
    /// override the flags for that line.
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
    /// SES region(s) you send from (for the MX region and DKIM signing zone checks).
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
    /// Take the MAIL FROM name and DKIM tokens from the SES identity in each --region
    /// (domains on the command line; AWS credentials from the standard chain).
    #[arg(long)]
    pub(crate) from_ses: bool,
    /// Another SES endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    /// DNS queries in flight at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) concurrency: usize,
    #[arg(long, short = 'f', value_enum, default_value_t = CheckFormat::Human)]
    pub(crate) format: CheckFormat,
}

pub(crate) async fn run(args: CheckArgs) -> anyhow::Result<Exit> {
    if args.domains.is_empty() && args.file.is_none() {
        bail!("no domain given: `ses-dmarc check example.com` or `--file domains.txt`");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let base = Expectations {
        regions: check::regions(&args.regions)?,
        mail_from: args.mail_from.clone(),
        dkim_tokens: args.dkim_tokens.clone(),
        selectors: args.selectors.clone(),
    };
    check::validate_tokens(&base)?;
    if args.from_ses && args.file.is_some() {
        bail!("--from-ses needs domains on the command line (not --file)");
    }
    let mut jobs: Vec<CheckJob> = Vec::new();
    for d in &args.domains {
        let domain = check::domain(d)?;
        let expectations = if args.from_ses {
            check::expectations_from_ses(&domain, &base, args.endpoint_url.as_deref()).await?
        } else {
            base.clone()
        };
        jobs.push(CheckJob { domain, expectations });
    }
    let default_origin = jobs.first().map(|j| j.domain.clone()).unwrap_or_else(|| "invalid".into());
    let resolver = args.dns.resolver(&default_origin, args.concurrency)?;

    let lines: Box<dyn Iterator<Item = std::io::Result<String>>> = match &args.file {
        None => Box::new(std::iter::empty()),
        Some(p) if p.as_os_str() == "-" => Box::new(check::bounded_lines(std::io::stdin().lock())),
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("cannot read --file {}", p.display()))?;
            Box::new(check::bounded_lines(std::io::BufReader::new(f)))
        }
    };
    let bad_input = std::cell::Cell::new(0usize);
    let file_name = args.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let file_jobs = lines.enumerate().filter_map(|(i, line)| match line {
        Ok(l) => match check::parse_line(&l, &base) {
            Ok(job) => job,
            Err(e) => {
                bad_input.set(bad_input.get() + 1);
                style::warning(
                    &mut std::io::stderr(),
                    &format!("{file_name} line {}: {} (line skipped)", i + 1, clip(&e.to_string())),
                );
                None
            }
        },
        Err(e) => {
            bad_input.set(bad_input.get() + 1);
            style::warning(&mut std::io::stderr(), &format!("{file_name} line {}: {e} (line skipped)", i + 1));
            None
        }
    });
    let all_jobs = jobs.into_iter().chain(file_jobs);

    let bulk = args.file.is_some() || args.domains.len() > 1;
    let progress = (bulk && std::io::stderr().is_terminal() && args.format != CheckFormat::Human).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} domains checked ({per_sec}) {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb
    });
    let style = Style::for_stdout();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut errors, mut unknown, mut checked) = (false, false, 0usize);
    for note in resolver.notes() {
        style::warning(&mut std::io::stderr(), note);
    }
    let mut reports = std::pin::pin!(check::check_all(&resolver, all_jobs, args.concurrency));
    // Several domains as JSON are one document: an array.
    let array = bulk && args.format == CheckFormat::Json;
    let write_result: std::io::Result<()> = async {
        if array {
            out.write_all(b"[")?;
        }
        while let Some(report) = reports.next().await {
            errors |= report.has_errors();
            unknown |= report.has_unknown();
            let from_zone = zone_answers(&resolver, &report);
            match args.format {
                CheckFormat::Human => {
                    out.write_all(human(&report, style).as_bytes())?;
                    if !from_zone.is_empty() {
                        let files: Vec<String> = args.dns.zones.iter().map(|p| p.display().to_string()).collect();
                        writeln!(
                            out,
                            "  {}\n",
                            style.dim(&format!("from {}: {}", files.join(", "), from_zone.join(", ")))
                        )?;
                    }
                }
                CheckFormat::Json => {
                    if array {
                        out.write_all(if checked == 0 { b"\n" } else { b",\n" })?;
                    }
                    write_json(&mut out, &report, &from_zone, true)?;
                    if !array {
                        out.write_all(b"\n")?;
                    }
                }
                CheckFormat::Jsonl => {
                    write_json(&mut out, &report, &from_zone, false)?;
                    out.write_all(b"\n")?;
                }
            }
            checked += 1;
            out.flush()?;
            if let Some(pb) = &progress {
                pb.inc(1);
            }
        }
        if array {
            out.write_all(if checked == 0 { b"]\n" } else { b"\n]\n" })?;
            out.flush()?;
        }
        Ok(())
    }
    .await;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    match write_result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(Exit::Success),
        other => other.context("writing the results")?,
    }
    if checked == 0 && bad_input.get() == 0 {
        let source = if file_name == "-" { "standard input" } else { file_name.as_str() };
        bail!("{source} holds no domain: one per line (`example.com`, optionally `mail-from=...`), `#` for comments");
    }
    Ok(if bad_input.get() > 0 {
        Exit::Usage
    } else if errors {
        Exit::Problems
    } else if unknown {
        Exit::Unknown
    } else {
        Exit::Success
    })
}

/// A message about a `--file` line, made safe and short: the line may be anything, of any
/// length.
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    let escaped = escape(text);
    match escaped.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} more characters)", &escaped[..at], escaped[at..].chars().count()),
        None => escaped.into_owned(),
    }
}

/// The snapshot's questions that a `--zone` file answered (`name TYPE`).
fn zone_answers(resolver: &ConfiguredResolver, report: &DomainReport) -> Vec<String> {
    if !resolver.has_zone_files() {
        return vec![];
    }
    report
        .snapshot
        .answers
        .keys()
        .filter(|key| {
            key.rsplit_once(' ')
                .and_then(|(name, t)| Some((name, RecordType::parse(t)?)))
                .is_some_and(|(name, t)| resolver.from_zone_file(name, t))
        })
        .cloned()
        .collect()
}

/// One report as JSON; with zone files, `from_zone_file` lists what they answered.
fn write_json(out: &mut impl Write, report: &DomainReport, from_zone: &[String], pretty: bool) -> std::io::Result<()> {
    fn write(out: &mut impl Write, value: &impl serde::Serialize, pretty: bool) -> std::io::Result<()> {
        if pretty {
            serde_json::to_writer_pretty(out, value)?
        } else {
            serde_json::to_writer(out, value)?
        }
        Ok(())
    }
    if from_zone.is_empty() {
        return write(out, report, pretty);
    }
    let mut value = serde_json::to_value(report)?;
    value["from_zone_file"] = serde_json::json!(from_zone);
    write(out, &value, pretty)
}

fn mark(s: Style, severity: FindingSeverity) -> String {
    match severity {
        FindingSeverity::Error => s.red("✗ error"),
        FindingSeverity::Warning => s.yellow("! warning"),
        FindingSeverity::Info => s.dim("i info"),
        FindingSeverity::Unknown => s.yellow("? unknown"),
    }
}

pub(crate) fn human(r: &DomainReport, s: Style) -> String {
    let v = &r.judgement.verdict;
    let answer = match v.ses_mail_passes_dmarc {
        Some(true) => s.green("yes"),
        Some(false) => s.red("no"),
        None => s.yellow("unknown"),
    };
    let yn = |x: Option<bool>| match x {
        Some(true) => "aligned",
        Some(false) => "not aligned",
        None => "unknown",
    };
    let mut out = format!(
        "{}  SES mail passes DMARC: {answer} ({})\n  SPF {}, DKIM {}{}\n",
        s.bold(&r.domain),
        escape(&v.reason),
        yn(v.spf_aligned),
        yn(v.dkim_aligned),
        v.policy.map(|p| format!(", policy p={p}")).unwrap_or_default()
    );
    for group in
        [RecordGroup::MailFrom, RecordGroup::Dkim, RecordGroup::Dmarc, RecordGroup::Spf, RecordGroup::AnyRecord]
    {
        let passed: Vec<&Passed> = r.judgement.passed.iter().filter(|p| p.group == group).collect();
        let findings: Vec<_> = r.judgement.findings.iter().filter(|f| f.group == group).collect();
        if passed.is_empty() && findings.is_empty() {
            continue;
        }
        out.push_str(&format!("  {}\n", s.bold(group.title())));
        for p in passed {
            out.push_str(&format!("    {} {}: {}\n", s.green("✓"), escape(&p.name), escape(&p.message)));
        }
        for f in findings {
            out.push_str(&format!(
                "    {} {} {}: {}\n",
                mark(s, f.severity),
                s.dim(f.code),
                escape(&f.name),
                escape(&f.message)
            ));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("        fix: {}\n", escape(fix)));
            }
        }
    }
    out.push('\n');
    out
}
