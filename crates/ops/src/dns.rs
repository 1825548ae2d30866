//! The resolver the commands and the service use: zone files first (`--zone`), then the
//! nameservers (or the system's), with a cap on queries in flight.

use crate::OpsError;
use ses_dmarc_dns::{Answer, Limited, MemoryResolver, NoFallback, RecordType, Resolver, StubClient};
use std::path::PathBuf;
use std::time::Duration;

/// How to ask DNS.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsOptions {
    /// `IP` or `IP:PORT`; empty: the system's resolvers (/etc/resolv.conf).
    pub nameservers: Vec<String>,
    /// Seconds to wait for each answer (more than 0, at most 120).
    pub timeout: f64,
    /// Times each query is sent to each nameserver.
    pub attempts: usize,
    /// Zone files that answer for the names they hold.
    pub zones: Vec<PathBuf>,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions { nameservers: vec![], timeout: 3.0, attempts: 2, zones: vec![] }
    }
}

/// Zone files first, then the live client; or zone files alone when no nameserver can be
/// found.
#[derive(Debug)]
pub enum ConfiguredResolver {
    /// Zone files in front of the nameservers.
    Live(Limited<MemoryResolver<StubClient>>),
    /// Zone files only (no nameserver configured anywhere).
    ZonesOnly(Limited<MemoryResolver<NoFallback>>),
}

impl Resolver for ConfiguredResolver {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        match self {
            ConfiguredResolver::Live(r) => r.lookup(name, rtype).await,
            ConfiguredResolver::ZonesOnly(r) => r.lookup(name, rtype).await,
        }
    }
}

impl DnsOptions {
    /// Builds the resolver; `default_origin` names zone files that have no `$ORIGIN`.
    pub fn resolver(&self, default_origin: &str, in_flight: usize) -> Result<ConfiguredResolver, OpsError> {
        if !(self.timeout > 0.0 && self.timeout <= 120.0) {
            return Err(OpsError::Input(format!(
                "--timeout must be more than 0 and at most 120 seconds, not {}",
                self.timeout
            )));
        }
        let mut memory = MemoryResolver::new();
        for path in &self.zones {
            memory.load_zone_file(path, &format!("{}.", default_origin.trim_end_matches('.')))?;
        }
        let timeout = Duration::from_secs_f64(self.timeout);
        match StubClient::from_args(&self.nameservers, timeout, self.attempts) {
            Ok(client) => Ok(ConfiguredResolver::Live(Limited::new(memory.with_fallback(client), in_flight))),
            Err(_) if self.nameservers.is_empty() && !self.zones.is_empty() => {
                Ok(ConfiguredResolver::ZonesOnly(Limited::new(memory, in_flight)))
            }
            Err(e) => Err(e.into()),
        }
    }
}
