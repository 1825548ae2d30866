//! `ses-dmarc intake run`: one pass over every configured mailbox and bucket. The pass
//! itself is `ses_dmarc_monitor::intake::run_intake`, which `serve` runs too.

use crate::Exit;
use crate::reports_cmd::DatabaseArg;
use crate::style::{OutFormat, Style, count, escape};
use crate::watch_cmd::{load_config, open_db};
use clap::{Args, Subcommand};
use ses_dmarc_monitor::alerts::Alerter;
use ses_dmarc_monitor::intake::{IntakeOptions, Progress, run_intake};
use ses_dmarc_monitor::workers::Worker;
use ses_dmarc_store::OpenMode;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum IntakeCommand {
    /// One pass: read every configured mailbox and bucket, store the reports, move what
    /// was stored (only after the database commit).
    Run(RunArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 every source read, every message stored or left as not a report; \
1 some message could not be stored (see failures); 2 usage or configuration error; \
3 some mailbox or bucket could not be read (an intake-failed event is raised).")]
pub(crate) struct RunArgs {
    /// The configuration file (TOML: database, [[intake.imap]], [[intake.s3]], alerts).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Only this source (its `name`); repeatable.
    #[arg(long = "source", value_name = "NAME")]
    pub(crate) sources: Vec<String>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

pub(crate) async fn run(cmd: IntakeCommand) -> anyhow::Result<Exit> {
    match cmd {
        IntakeCommand::Run(a) => pass(a).await,
    }
}

async fn pass(args: RunArgs) -> anyhow::Result<Exit> {
    let config = load_config(Some(&args.config))?;
    if config.imap.is_empty() && config.s3.is_empty() {
        anyhow::bail!(
            "{} has no [[intake.imap]] or [[intake.s3]] section: nothing to read (docs/config.md shows both)",
            args.config.display()
        );
    }
    let db = open_db(&args.db, &config, OpenMode::Create).await?;
    let alerter = Alerter::new(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} messages ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let progress = |p: Progress| {
        if let Some(pb) = &bar {
            match p {
                Progress::Found { source, count } => {
                    pb.set_message(source);
                    pb.inc_length(count);
                }
                Progress::Taken { .. } => pb.inc(1),
            }
        }
    };
    let options = IntakeOptions { only: &args.sources, now: ses_dmarc_ops::now(), progress: &progress };
    let worker = Worker::start(&db, "intake run", config.schedule.lease).await?;
    let report = run_intake(&db, &config, &alerter, &worker, &options).await;
    worker.stop().await?;
    let report = report?;
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        OutFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        OutFormat::Human => {
            let s = Style::for_stdout();
            for src in &report.sources {
                writeln!(
                    out,
                    "{} ({}): {}: {} stored, {}, {} not a report, {}; {} moved on{}",
                    s.bold(&src.source),
                    escape(&src.location),
                    count(src.messages, "new message"),
                    count(src.reports, "report"),
                    count(src.duplicates, "duplicate"),
                    src.not_reports,
                    if src.failed > 0 { s.red(&format!("{} failed", src.failed)) } else { "0 failed".to_string() },
                    src.processed,
                    if src.moved_to_failed > 0 {
                        format!(", {} to the failed folder", src.moved_to_failed)
                    } else {
                        String::new()
                    },
                )?;
                for f in &src.failures {
                    writeln!(out, "  {} {}: {}", s.yellow("not stored:"), escape(&f.item), escape(&f.reason))?;
                }
                if let Some(e) = &src.error {
                    writeln!(out, "  {} {}", s.red("error:"), escape(e))?;
                }
                if src.recovered {
                    writeln!(out, "  {}", s.green("works again (the intake-failed problem is closed)"))?;
                }
                for e in &src.events {
                    writeln!(out, "  {} {}", s.dim(e.kind.as_str()), escape(&e.message))?;
                }
            }
            for d in &report.deliveries {
                match &d.error {
                    None => writeln!(out, "{} {} → {}", s.green("sent"), d.event, d.channel)?,
                    Some(e) => {
                        writeln!(out, "{} {} → {}: {} (kept)", s.red("not sent"), d.event, d.channel, escape(e))?
                    }
                }
            }
        }
    }
    Ok(if report.any_source_failed() {
        Exit::Unknown
    } else if report.sources.iter().any(|s| s.failed > 0) {
        Exit::Problems
    } else {
        Exit::Success
    })
}
