//! The `ses-dmarc` binary: argument parsing and rendering, nothing else.

mod plan_cmd;
mod style;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
}

/// Exit codes (docs/commands.md): 0 success, 2 usage or input error.
pub const EXIT_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan_cmd::run(args),
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
