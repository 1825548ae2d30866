//! `ses-dmarc check`: audit one domain or a million.

use crate::dns_args::{DnsArgs, runtime};
use crate::style::{self, Style};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use ses_dmarc_audit::rules::Passed;
use ses_dmarc_audit::{DomainReport, Expectations, FindingSeverity, RecordGroup, check_domain};
use ses_dmarc_records::DomainName;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
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
pub struct CheckArgs {
    /// Domains to check (the From: domains you send from).
    pub domains: Vec<String>,
    /// Read domains from a file, one per line (`-` for standard input). `#` starts a
    /// comment; after the domain, `mail-from=L`, `dkim-token=T`, `selector=S`, `region=R`
    /// override the flags for that line.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// SES region(s) you send from (for the MX region and DKIM signing zone checks).
    #[arg(long = "region", short = 'r', value_name = "REGION")]
    pub regions: Vec<String>,
    /// The custom MAIL FROM: a label (`mail`) or a full name.
    #[arg(long, value_name = "NAME")]
    pub mail_from: Option<String>,
    /// An Easy DKIM token (give all three); `REGION:TOKEN` for another region.
    #[arg(long = "dkim-token", value_name = "T")]
    pub dkim_tokens: Vec<String>,
    /// A DKIM selector to check (BYODKIM or another signer); repeatable.
    #[arg(long = "selector", value_name = "S")]
    pub selectors: Vec<String>,
    /// Take the MAIL FROM name and DKIM tokens from the SES identity in each --region
    /// (domains on the command line; AWS credentials from the standard chain).
    #[arg(long)]
    pub from_ses: bool,
    /// Another SES endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub dns: DnsArgs,
    /// DNS queries in flight at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub concurrency: usize,
    #[arg(long, short = 'f', value_enum, default_value_t = CheckFormat::Human)]
    pub format: CheckFormat,
}

struct Job {
    domain: String,
    expectations: Expectations,
}

pub fn validate_region(r: &str) -> anyhow::Result<String> {
    match ses_dmarc_ses::regions::find(r) {
        Some(region) => Ok(region.code.to_string()),
        None => {
            let s = ses_dmarc_ses::regions::suggest(r);
            if s.is_empty() {
                bail!("`{r}` is not an SES region")
            }
            bail!("`{r}` is not an SES region; did you mean {}?", s.join(", "))
        }
    }
}

pub fn validate_domain(text: &str) -> anyhow::Result<String> {
    let d = DomainName::parse_hostname(text).map_err(|e| anyhow::anyhow!("`{text}` is not a domain name: {e}"))?;
    if d.label_count() < 2 {
        bail!("`{text}` is not a domain name: give the full domain, such as example.com");
    }
    Ok(d.to_string())
}

/// Parses one line of `--file`: `domain [key=value]...`.
fn parse_line(line: &str, base: &Expectations) -> anyhow::Result<Option<Job>> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let domain = validate_domain(parts.next().unwrap_or_default())?;
    let mut e = base.clone();
    let mut tokens = Vec::new();
    let mut selectors = Vec::new();
    let mut regions = Vec::new();
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            bail!("`{p}` is not key=value (mail-from=, dkim-token=, selector=, region=)")
        };
        match k {
            "mail-from" => e.mail_from = Some(v.to_string()),
            "dkim-token" => tokens.push(v.to_string()),
            "selector" => selectors.push(v.to_string()),
            "region" => regions.push(validate_region(v)?),
            _ => bail!("unknown key `{k}` (mail-from=, dkim-token=, selector=, region=)"),
        }
    }
    if !tokens.is_empty() {
        e.dkim_tokens = tokens;
    }
    if !selectors.is_empty() {
        e.selectors = selectors;
    }
    if !regions.is_empty() {
        e.regions = regions;
    }
    Ok(Some(Job { domain, expectations: e }))
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.domains.is_empty() && args.file.is_none() {
        bail!("no domain given: `ses-dmarc check example.com` or `--file domains.txt`");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let base = Expectations {
        regions: args.regions.iter().flat_map(|r| r.split(',')).map(validate_region).collect::<anyhow::Result<_>>()?,
        mail_from: args.mail_from.clone(),
        dkim_tokens: args.dkim_tokens.clone(),
        selectors: args.selectors.clone(),
    };
    let mut jobs: Vec<Job> = Vec::new();
    if args.from_ses && (base.regions.is_empty() || args.file.is_some() || !args.dkim_tokens.is_empty()) {
        bail!("--from-ses needs --region, domains on the command line (not --file), and no --dkim-token");
    }
    for d in &args.domains {
        let domain = validate_domain(d)?;
        let mut expectations = base.clone();
        if args.from_ses {
            let (mail_from, tokens) =
                crate::aws_cmd::check_facts_from_ses(&domain, &base.regions, args.endpoint_url.as_deref())?;
            expectations.mail_from = expectations.mail_from.or(mail_from);
            expectations.dkim_tokens = tokens;
        }
        jobs.push(Job { domain, expectations });
    }
    let default_origin = jobs.first().map(|j| j.domain.clone()).unwrap_or_else(|| "invalid".into());
    let resolver = args.dns.resolver(&default_origin, args.concurrency)?;

    let lines: Box<dyn Iterator<Item = std::io::Result<String>>> = match &args.file {
        None => Box::new(std::iter::empty()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock().lines()),
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("cannot read --file {}", p.display()))?;
            Box::new(std::io::BufReader::new(f).lines())
        }
    };
    let bad_input = std::cell::Cell::new(0usize);
    let file_name = args.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let file_jobs = lines.enumerate().filter_map(|(i, line)| match line {
        Ok(l) => match parse_line(&l, &base) {
            Ok(job) => job,
            Err(e) => {
                bad_input.set(bad_input.get() + 1);
                style::warning(&mut std::io::stderr(), &format!("{file_name} line {}: {e:#}; skipped", i + 1));
                None
            }
        },
        Err(e) => {
            bad_input.set(bad_input.get() + 1);
            style::warning(&mut std::io::stderr(), &format!("{file_name} line {}: {e}; skipped", i + 1));
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
    let (mut errors, mut unknown) = (false, false);
    let rt = runtime()?;
    let domains_in_flight = args.concurrency.clamp(1, 4096);
    let write_result: anyhow::Result<()> = rt.block_on(async {
        let resolver = &resolver;
        let mut reports = futures::stream::iter(all_jobs)
            .map(|job| async move { check_domain(resolver, &job.domain, job.expectations).await })
            .buffer_unordered(domains_in_flight);
        while let Some(report) = reports.next().await {
            errors |= report.has_errors();
            unknown |= report.has_unknown();
            match args.format {
                CheckFormat::Human => out.write_all(human(&report, style).as_bytes())?,
                CheckFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &report)?;
                    out.write_all(b"\n")?;
                }
                CheckFormat::Jsonl => {
                    serde_json::to_writer(&mut out, &report)?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
            if let Some(pb) = &progress {
                pb.inc(1);
            }
        }
        Ok(())
    });
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    match write_result {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            return Ok(ExitCode::SUCCESS);
        }
        other => other.context("writing the results")?,
    }
    Ok(ExitCode::from(if bad_input.get() > 0 {
        crate::EXIT_INPUT
    } else if errors {
        1
    } else if unknown {
        3
    } else {
        0
    }))
}

fn mark(s: Style, severity: FindingSeverity) -> String {
    match severity {
        FindingSeverity::Error => s.red("✗ error"),
        FindingSeverity::Warning => s.yellow("! warning"),
        FindingSeverity::Info => s.dim("i info"),
        FindingSeverity::Unknown => s.yellow("? unknown"),
    }
}

pub fn human(r: &DomainReport, s: Style) -> String {
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
        v.reason,
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
            out.push_str(&format!("    {} {}: {}\n", s.green("✓"), p.name, p.message));
        }
        for f in findings {
            out.push_str(&format!("    {} {} {}: {}\n", mark(s, f.severity), s.dim(f.code), f.name, f.message));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("        fix: {fix}\n"));
            }
        }
    }
    out.push('\n');
    out
}
