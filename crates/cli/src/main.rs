//! The `ses-dmarc` binary: argument parsing and rendering, nothing else. What a command
//! does lives in `ses_dmarc_ops` and the crates below it.

mod aws_cmd;
mod check_cmd;
mod dns_args;
mod intake_cmd;
mod plan_cmd;
mod reports_cmd;
mod serve_cmd;
mod spf_cmd;
mod style;
mod verify_cmd;
mod watch_cmd;
mod workers_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// Reports are parsed on some threads and stored on another: glibc's allocator serialises
// those cross-thread frees; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Make Amazon SES mail pass DMARC, and keep it passing.
#[derive(Debug, Parser)]
#[command(name = "ses-dmarc", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to colour the output: auto (a terminal, not TERM=dumb, no NO_COLOR), always,
    /// never.
    #[arg(long, global = true, value_enum, default_value_t = style::ColorChoice::Auto, value_name = "WHEN")]
    color: style::ColorChoice,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the exact DNS records (and SES calls) that make SES mail pass DMARC.
    Plan(plan_cmd::PlanArgs),
    /// Audit the published DNS of one domain or many: what is wrong, the fix, and whether
    /// SES mail passes DMARC.
    Check(check_cmd::CheckArgs),
    /// Show a domain's whole SPF include tree with its lookup counts, and evaluate it for
    /// an IP.
    Spf(spf_cmd::SpfArgs),
    /// Show SPF, DKIM, DMARC and alignment for a received message, as a receiver computes
    /// them.
    Verify(verify_cmd::VerifyArgs),
    /// DMARC reports: ingest them, summarize what they say.
    #[command(subcommand)]
    Reports(reports_cmd::ReportsCommand),
    /// Say from the stored reports when p=none can become quarantine, then reject.
    Rollout(reports_cmd::RolloutArgs),
    /// Amazon SES itself: an identity's status and advice, the account in each region
    /// (sandbox, sending, reputation); set the custom MAIL FROM.
    #[command(subcommand)]
    Ses(aws_cmd::SesCommand),
    /// Apply the plan to a Route 53 hosted zone: a diff, then one change batch.
    Apply(aws_cmd::ApplyArgs),
    /// Keep it passing: watched domains checked daily, what changed as events, alerts.
    #[command(subcommand)]
    Watch(watch_cmd::WatchCommand),
    /// Take DMARC reports from mailboxes (IMAP) and buckets (S3, where SES writes what it
    /// receives), never losing one.
    #[command(subcommand)]
    Intake(intake_cmd::IntakeCommand),
    /// The dashboard and JSON API, with the watch and intake schedules, until SIGTERM
    /// (`--demo`: sample domains in a throw-away database).
    Serve(serve_cmd::ServeArgs),
    /// Who may sign in to `serve`: admins and viewers (viewers may be limited to tags).
    #[command(subcommand)]
    User(serve_cmd::UserCommand),
    /// API bearer tokens for `serve` (only their hashes are kept).
    #[command(subcommand)]
    Token(serve_cmd::TokenCommand),
    /// The processes sharing the database (`serve`, `watch run`, `intake run`): which are
    /// live, what each holds, and the work waiting.
    Workers(workers_cmd::WorkersArgs),
}

/// How a command ends (docs/commands.md gives each command's meaning of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done, nothing wrong.
    Success = 0,
    /// 1: it ran, and found problems (errors, blockers, failed inputs).
    Problems = 1,
    /// 2: usage or input error; the message says what to give instead.
    Usage = 2,
    /// 3: an answer could not be had (DNS failures, AWS unreachable or refusing).
    Unknown = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// The exit of a command that failed with `e`.
fn exit_for(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
        // The reader went away (`| head`): nothing more to say.
        return Exit::Success;
    }
    match e.downcast_ref::<ses_dmarc_ops::OpsError>() {
        Some(ops) if ops.is_unavailable() => Exit::Unknown,
        Some(ops) if ops.is_not_found() => Exit::Problems,
        _ => Exit::Usage,
    }
}

async fn run(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Plan(args) => plan_cmd::run(args).await,
        Command::Check(args) => check_cmd::run(args).await,
        Command::Spf(args) => spf_cmd::run(args).await,
        Command::Verify(args) => verify_cmd::run(args).await,
        Command::Reports(cmd) => reports_cmd::run(cmd).await,
        Command::Rollout(args) => reports_cmd::rollout(args).await,
        Command::Ses(cmd) => aws_cmd::run_ses(cmd).await,
        Command::Apply(args) => aws_cmd::apply(args).await,
        Command::Watch(cmd) => watch_cmd::run(cmd).await,
        Command::Intake(cmd) => intake_cmd::run(cmd).await,
        Command::Serve(args) => serve_cmd::serve(args).await,
        Command::User(cmd) => serve_cmd::user(cmd).await,
        Command::Token(cmd) => serve_cmd::token(cmd).await,
        Command::Workers(args) => workers_cmd::run(args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    style::set_color(cli.color);
    // The server answers requests on every core; a command needs one thread.
    let runtime = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let result = runtime
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|rt| rt.block_on(run(cli.command)));
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            let exit = exit_for(&e);
            if exit != Exit::Success {
                style::error(&mut std::io::stderr(), &format!("{e:#}"));
            }
            exit.into()
        }
    }
}
