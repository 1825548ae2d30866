//! The `ses-dmarc` binary: argument parsing and rendering, nothing else.

mod aws_cmd;
mod check_cmd;
mod dns_args;
mod plan_cmd;
mod reports_cmd;
mod spf_cmd;
mod style;
mod verify_cmd;

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
    /// Amazon SES itself: an identity's status and advice; set the custom MAIL FROM.
    #[command(subcommand)]
    Ses(aws_cmd::SesCommand),
    /// Apply the plan to a Route 53 hosted zone: a diff, then one change batch.
    Apply(aws_cmd::ApplyArgs),
}

/// Exit codes (docs/commands.md): 0 success, 1 errors found, 2 usage or input error,
/// 3 some answers unknown.
pub const EXIT_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Spf(args) => spf_cmd::run(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Reports(cmd) => reports_cmd::run(cmd),
        Command::Rollout(args) => reports_cmd::rollout(args),
        Command::Ses(cmd) => aws_cmd::run_ses(cmd),
        Command::Apply(args) => aws_cmd::apply(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let mut stderr = std::io::stderr();
            style::error(&mut stderr, &format!("{e:#}"));
            ExitCode::from(EXIT_INPUT)
        }
    }
}
