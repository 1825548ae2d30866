//! The DNS flags `check`, `spf` and `verify` share, and the resolver they build.

use anyhow::{Context, bail};
use clap::Args;
use ses_dmarc_dns::{Answer, Limited, MemoryResolver, NoFallback, RecordType, Resolver, StubClient};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args, Clone)]
pub struct DnsArgs {
    /// Nameserver to ask, IP or IP:PORT (repeatable); default: /etc/resolv.conf's.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// Seconds to wait for each DNS answer.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub timeout: f64,
    /// Times each query is sent to each nameserver before it counts as failed.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub attempts: usize,
    /// Answer from this zone file for the names it holds (check records before publishing
    /// them); other names are asked of the nameservers. Repeatable.
    #[arg(long = "zone", value_name = "FILE")]
    pub zones: Vec<PathBuf>,
}

/// Zone files first, then the live client; or zone files alone when no nameserver can be
/// found.
pub enum CliResolver {
    Live(Limited<MemoryResolver<StubClient>>),
    ZonesOnly(Limited<MemoryResolver<NoFallback>>),
}

impl Resolver for CliResolver {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        match self {
            CliResolver::Live(r) => r.lookup(name, rtype).await,
            CliResolver::ZonesOnly(r) => r.lookup(name, rtype).await,
        }
    }
}

impl DnsArgs {
    /// Builds the resolver; `default_origin` names zone files that have no `$ORIGIN`.
    pub fn resolver(&self, default_origin: &str, in_flight: usize) -> anyhow::Result<CliResolver> {
        if !(self.timeout > 0.0 && self.timeout <= 120.0) {
            bail!("--timeout must be between 0 and 120 seconds, not {}", self.timeout);
        }
        let mut memory = MemoryResolver::new();
        for path in &self.zones {
            memory
                .load_zone_file(path, &format!("{}.", default_origin.trim_end_matches('.')))
                .with_context(|| format!("cannot use --zone {}", path.display()))?;
        }
        let timeout = Duration::from_secs_f64(self.timeout);
        match StubClient::from_args(&self.nameservers, timeout, self.attempts) {
            Ok(client) => Ok(CliResolver::Live(Limited::new(memory.with_fallback(client), in_flight))),
            Err(e) if self.nameservers.is_empty() && !self.zones.is_empty() => {
                let _ = e;
                Ok(CliResolver::ZonesOnly(Limited::new(memory, in_flight)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A current-thread runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}
