//! What the commands do, as async functions returning typed results: checking a domain
//! with its expectations (with or without SES facts), SPF trees, SES status with the DNS
//! it needs, the SES account per region, the Route 53 apply workflow, report summaries
//! and rollout advice. The command line parses and renders around these; the service
//! calls the same functions, so the two never disagree. Nothing here blocks on a runtime of its own.

pub mod apply;
pub mod check;
pub mod dns;
mod error;
pub mod plan;
pub mod reports;
pub mod ses_account;
pub mod ses_status;
pub mod spf;

pub use error::OpsError;

/// Seconds since 1970 now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
