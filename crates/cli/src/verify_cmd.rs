//! `ses-dmarc verify`: a received message, the way a receiving server sees it.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::style::{Style, escape};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ses_dmarc_receiver::dmarc::DmarcResult;
use ses_dmarc_receiver::verify::{Verification, VerifyInput, verify_message};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Messages larger than this are refused (with a message saying so).
const MAX_MESSAGE: u64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 DMARC passes; 1 DMARC does not pass (fail, none, permerror); 3 temperror (a DNS answer could not be had); 2 usage or input error."
)]
pub(crate) struct VerifyArgs {
    /// The message (.eml, as received, headers included); `-` for standard input.
    pub(crate) message: PathBuf,
    /// The connecting client's IP. Without it, taken from the message's topmost
    /// Received-SPF or Authentication-Results header.
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// The SMTP MAIL FROM (envelope sender). Default: the Return-Path header.
    #[arg(long, value_name = "ADDR")]
    pub(crate) mail_from: Option<String>,
    /// The HELO/EHLO name.
    #[arg(long, value_name = "NAME")]
    pub(crate) helo: Option<String>,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = VerifyFormat::Human)]
    pub(crate) format: VerifyFormat,
}

fn read_message(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
    };
    reader.take(MAX_MESSAGE + 1).read_to_end(&mut raw).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.len() as u64 > MAX_MESSAGE {
        bail!("{} is larger than {} MB; verify reads whole messages", path.display(), MAX_MESSAGE / 1024 / 1024);
    }
    if raw.is_empty() {
        bail!("{} is empty: give a message with its headers (an .eml file, or `-` and pipe it in)", path.display());
    }
    Ok(raw)
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let ip = match &args.ip {
        Some(t) => Some(t.trim().parse().map_err(|_| anyhow::anyhow!("`{t}` is not an IP address (IPv4 or IPv6)"))?),
        None => None,
    };
    if ip.is_none() && (args.mail_from.is_some() || args.helo.is_some()) {
        bail!("--mail-from and --helo describe the connection: give --ip too");
    }
    let raw = read_message(&args.message)?;
    let resolver = args.dns.resolver("invalid", 64)?;
    let input = VerifyInput { ip, mail_from: args.mail_from.clone(), helo: args.helo.clone() };
    let v = verify_message(&resolver, &raw, &input)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.message.display()))?;
    let mut out = std::io::stdout().lock();
    match args.format {
        VerifyFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?,
        VerifyFormat::Human => out.write_all(human(&v, Style::for_stdout()).as_bytes())?,
    }
    Ok(match v.dmarc.result {
        DmarcResult::Pass => Exit::Success,
        DmarcResult::TempError => Exit::Unknown,
        _ => Exit::Problems,
    })
}

pub(crate) fn human(v: &Verification, s: Style) -> String {
    let mut out = String::new();
    let verdict = match v.dmarc.result {
        DmarcResult::Pass => s.green("DMARC pass"),
        DmarcResult::TempError => s.yellow("DMARC temperror"),
        other => s.red(&format!("DMARC {}", format!("{other:?}").to_ascii_lowercase())),
    };
    out.push_str(&format!("{} {}\n", s.bold(&format!("From: {}", escape(&v.from.join(", ")))), verdict));
    match &v.connection {
        Some(c) => out.push_str(&format!(
            "{}\n",
            s.dim(&format!("Connection: {} MAIL FROM <{}> (from {})", c.ip, escape(&c.mail_from), c.source))
        )),
        None => out.push_str(&format!("{}\n", s.dim("Connection: unknown (give --ip)"))),
    }
    for line in &v.explanation {
        out.push_str(&format!("  {}\n", escape(line)));
    }
    for p in &v.problems {
        out.push_str(&format!("  {} {}\n", s.red("problem:"), escape(p)));
    }
    for h in &v.hints {
        out.push_str(&format!("  {} {}\n", s.yellow("SES:"), escape(h)));
    }
    for r in &v.receiver {
        let results = format!(
            "{}: spf={} dkim={} dmarc={}",
            r.authserv_id.as_deref().unwrap_or("(no authserv-id)"),
            r.spf.as_deref().unwrap_or("-"),
            if r.dkim.is_empty() {
                "-".to_string()
            } else {
                r.dkim.iter().map(|(d, res)| format!("{res} ({d})")).collect::<Vec<_>>().join(",")
            },
            r.dmarc.as_deref().unwrap_or("-")
        );
        out.push_str(&format!("  {} {}\n", s.dim(r.header), escape(&results)));
    }
    for d in &v.disagreements {
        out.push_str(&format!("  {} {}\n", s.yellow("differs:"), escape(d)));
    }
    out
}
