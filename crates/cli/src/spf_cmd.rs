//! `ses-dmarc spf`: the whole include tree with lookups per branch, every void lookup and
//! its cause, and, given an IP, the result a receiver computes and the path to it.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::style::{Style, escape};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ses_dmarc_ops::spf::spf_report;
use ses_dmarc_receiver::spf::{MAX_LOOKUPS, MAX_VOID_LOOKUPS, SpfCheck, SpfInput, TraceKind};
use ses_dmarc_receiver::spf_tree::{RecordState, SpfNode, SpfTree};
use ses_dmarc_records::{DomainName, Severity};
use std::io::Write;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SpfFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the record is usable; 1 it is not: receivers would return permerror (syntax, more than 10 lookups, more than 2 void lookups, a missing include), or there is no SPF record (or no such domain); 3 some answers unknown; 2 usage or input error."
)]
pub(crate) struct SpfArgs {
    /// The domain whose SPF record to show (an apex or a MAIL FROM name).
    pub(crate) domain: String,
    /// Evaluate the record for this client IP, as a receiver would.
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// The MAIL FROM address for the evaluation (default postmaster@DOMAIN).
    #[arg(long, value_name = "ADDR")]
    pub(crate) sender: Option<String>,
    /// The HELO name for the evaluation (default DOMAIN).
    #[arg(long, value_name = "NAME")]
    pub(crate) helo: Option<String>,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
    #[arg(long, short = 'f', value_enum, default_value_t = SpfFormat::Human)]
    pub(crate) format: SpfFormat,
}

pub(crate) async fn run(args: SpfArgs) -> anyhow::Result<Exit> {
    let domain =
        DomainName::parse(&args.domain).map_err(|e| anyhow::anyhow!("`{}` is not a domain name: {e}", args.domain))?;
    let ip: Option<IpAddr> = match &args.ip {
        Some(t) => Some(t.trim().parse().map_err(|_| anyhow::anyhow!("`{t}` is not an IP address (IPv4 or IPv6)"))?),
        None => None,
    };
    if ip.is_none() && (args.sender.is_some() || args.helo.is_some()) {
        bail!("--sender and --helo are used with --ip: add `--ip 192.0.2.1`");
    }
    let resolver = args.dns.resolver(domain.as_str(), 64)?;
    let client = ip.map(|ip| SpfInput {
        ip,
        mail_from: args.sender.clone().unwrap_or_else(|| format!("postmaster@{domain}")),
        helo: args.helo.clone().unwrap_or_else(|| domain.to_string()),
        receiver: None,
    });
    let report = spf_report(&resolver, domain.as_str(), client).await;
    let mut out = std::io::stdout().lock();
    match args.format {
        SpfFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?).context("writing to standard output")?
        }
        SpfFormat::Human => out
            .write_all(human(&report.tree, report.check.as_ref(), Style::for_stdout()).as_bytes())
            .context("writing to standard output")?,
    }
    let missing = matches!(report.tree.root.state, RecordState::Missing { .. });
    Ok(if report.permerror || missing {
        Exit::Problems
    } else if report.has_unknown() {
        Exit::Unknown
    } else {
        Exit::Success
    })
}

fn node_lines(n: &SpfNode, depth: usize, s: Style, tree: &SpfTree, out: &mut String) {
    let pad = "  ".repeat(depth);
    let state = match &n.state {
        RecordState::Found { record, diagnostics } => {
            let mut line = escape(record).into_owned();
            for d in diagnostics.iter().filter(|d| d.severity != Severity::Info) {
                line.push_str(&format!(
                    "\n{pad}    {} {}",
                    if d.severity == Severity::Error { s.red("✗") } else { s.yellow("!") },
                    escape(&d.message)
                ));
            }
            line
        }
        RecordState::Missing { nxdomain } => s.red(if *nxdomain { "no such domain" } else { "no SPF record" }),
        RecordState::Multiple { records } => s.red(&format!("{} SPF records: permerror", records.len())),
        RecordState::Quoted { records } => s.red(&format!("stored with literal quotes: {}", escape(&records[0]))),
        RecordState::Failed { failure } => s.yellow(&format!("lookup failed: {failure}")),
        RecordState::Pending => s.yellow("not fetched"),
        RecordState::Cut { reason } => s.yellow(&format!("not followed: {reason}")),
        RecordState::Repeated => s.dim(&format!("the record shown above ({} lookups again)", n.branch_lookups)),
    };
    out.push_str(&format!("{pad}{}: {state}\n", s.bold(&escape(&n.domain))));
    for t in &n.terms {
        let below = t.child.as_ref().map(|c| c.branch_lookups).unwrap_or(0);
        let mut count = match (t.lookups, below) {
            (0, _) => String::new(),
            (l, 0) => format!("{l} lookup"),
            (l, b) => format!("{l} lookup + {b} below"),
        };
        if t.void {
            let cause = tree.void_causes.iter().find(|v| v.term == t.term && v.domain == n.domain);
            count.push_str(&s.red(&format!(
                "  VOID{}",
                cause.map(|c| format!(" ({} {}: no records)", c.rtype.as_str(), escape(&c.name))).unwrap_or_default()
            )));
        }
        if let Some(note) = &t.note {
            count.push_str(&s.dim(&format!("  ({note})")));
        }
        out.push_str(&format!("{pad}  {:<40} {count}\n", escape(&t.term)));
        if let Some(c) = &t.child {
            node_lines(c, depth + 2, s, tree, out);
        }
    }
}

pub(crate) fn human(tree: &SpfTree, check: Option<&SpfCheck>, s: Style) -> String {
    let mut out = String::new();
    node_lines(&tree.root, 0, s, tree, &mut out);
    let lookups = format!("{} DNS-querying terms (limit {MAX_LOOKUPS})", tree.lookups);
    let voids = format!("{} void lookups (limit {MAX_VOID_LOOKUPS})", tree.void_lookups);
    out.push_str(&format!(
        "\nTotal: {}; {}\n",
        if tree.lookups > MAX_LOOKUPS { s.red(&lookups) } else { lookups },
        if tree.void_lookups > MAX_VOID_LOOKUPS { s.red(&voids) } else { voids }
    ));
    for v in &tree.void_causes {
        out.push_str(&format!(
            "  void: `{}` in {} ({} {})\n",
            escape(&v.term),
            escape(&v.domain),
            v.rtype.as_str(),
            escape(&v.name)
        ));
    }
    for f in &tree.failed {
        out.push_str(&format!(
            "  {} {} {}: {} (for `{}`)\n",
            s.yellow("unknown:"),
            f.rtype.as_str(),
            f.name,
            f.failure,
            f.cause
        ));
    }
    for u in &tree.unexpanded {
        out.push_str(&format!("  not followed (needs the sender or IP): {}\n", escape(u)));
    }
    if let RecordState::Missing { nxdomain } = tree.root.state {
        let what = if nxdomain {
            format!("{} does not exist (NXDOMAIN): is it spelled right?", tree.root.domain)
        } else {
            format!("{} publishes no SPF record: receivers find nothing to check (result none).", tree.root.domain)
        };
        out.push_str(&format!("{}\n", s.red(&what)));
    } else if tree.permerror() {
        let limit_only = tree.lookups > MAX_LOOKUPS || tree.void_lookups > MAX_VOID_LOOKUPS;
        let broken = tree.nodes().iter().any(|n| {
            !matches!(n.state, RecordState::Found { .. } | RecordState::Repeated | RecordState::Cut { .. } | RecordState::Pending)
                || matches!(&n.state, RecordState::Found { diagnostics, .. } if diagnostics.iter().any(|d| d.severity == Severity::Error))
        });
        let text = if limit_only && !broken {
            format!(
                "Receivers return permerror for any client not matched before the limits are reached ({MAX_LOOKUPS} lookups, {MAX_VOID_LOOKUPS} void): the record is broken for most senders."
            )
        } else {
            "Receivers return permerror for this record, whatever the client.".to_string()
        };
        out.push_str(&format!("{}\n", s.red(&text)));
    }
    if let Some(c) = check {
        out.push_str(&format!(
            "\n{} {} for {} ({} identity): {}\n",
            s.bold("Result:"),
            s.bold(c.result.as_str()),
            c.domain,
            c.identity,
            c.reason
        ));
        if let Some(e) = &c.explanation {
            out.push_str(&format!("Explanation: {}\n", escape(e)));
        }
        out.push_str(&format!("{}, {} void. Path:\n", crate::style::count(c.lookups as u64, "lookup"), c.void_lookups));
        for ev in &c.trace {
            let pad = "  ".repeat(ev.depth + 1);
            match &ev.kind {
                TraceKind::Record { record, note } => out.push_str(&format!(
                    "{pad}{}: {}\n",
                    escape(&ev.domain),
                    escape(record.as_deref().unwrap_or(note))
                )),
                TraceKind::Lookup { name, rtype, outcome, void, .. } => out.push_str(&format!(
                    "{pad}  {} {} {} → {outcome}{}\n",
                    s.dim("query"),
                    rtype.as_str(),
                    escape(name),
                    if *void { " (void)" } else { "" }
                )),
                TraceKind::Term { term, matched, note, .. } => out.push_str(&format!(
                    "{pad}  {} {}{}\n",
                    if *matched { s.green("match") } else { s.dim("no match") },
                    escape(term),
                    if note.is_empty() { String::new() } else { format!(" ({})", escape(note)) }
                )),
                TraceKind::Result { result, .. } => out.push_str(&format!("{pad}  → {result}\n")),
            }
        }
    }
    out
}
