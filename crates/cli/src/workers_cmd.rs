//! `ses-dmarc workers`: the processes sharing the database (live, stopped, gone), what
//! each holds, and the work waiting. The view is `ses_dmarc_monitor::workers::view`, which
//! `/metrics` reads too.

use crate::Exit;
use crate::reports_cmd::DatabaseArg;
use crate::style::{OutFormat, Style, count, escape};
use crate::watch_cmd::{load_config, open_db};
use clap::Args;
use ses_dmarc_store::OpenMode;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 shown; 2 usage error (no database, bad configuration).")]
pub(crate) struct WorkersArgs {
    /// The configuration file the workers run with (its database and `[schedule] lease`).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

pub(crate) async fn run(args: WorkersArgs) -> anyhow::Result<Exit> {
    let config = load_config(args.config.as_ref())?;
    let db = open_db(&args.db, &config, OpenMode::Existing).await?;
    let view = ses_dmarc_monitor::workers::view(&db, config.schedule.lease, ses_dmarc_ops::now()).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            if view.workers.is_empty() {
                writeln!(out, "No worker has run on {} in the last week.", db.name())?;
            }
            for w in &view.workers {
                let state = match w.state {
                    "live" => s.green("live"),
                    "gone" => s.red("gone"),
                    other => s.dim(other),
                };
                writeln!(
                    out,
                    "{:<36} {state:<7} {} (pid {}, {}), started {}, seen {}",
                    s.bold(&escape(&w.id)),
                    w.kind,
                    w.pid,
                    w.version,
                    w.started_at,
                    w.seen_at
                )?;
                if !w.domains.is_empty() || w.deliveries > 0 || !w.leases.is_empty() {
                    writeln!(
                        out,
                        "  holds {}, {}{}",
                        count(w.domains.len() as u64, "domain"),
                        count(w.deliveries as u64, "alert"),
                        if w.leases.is_empty() { String::new() } else { format!(", {}", w.leases.join(", ")) }
                    )?;
                }
            }
            let q = &view.queue;
            writeln!(
                out,
                "Queue: {} due ({} being checked), {} due ({} being sent).",
                count(q.due_domains as u64, "domain"),
                q.claimed_domains,
                count(q.due_deliveries as u64, "alert"),
                q.claimed_deliveries
            )?;
        }
    }
    Ok(Exit::Success)
}
