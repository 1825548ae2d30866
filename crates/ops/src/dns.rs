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

/// Zone files first (for the names and types they hold), then the live client; or zone
/// files alone when no nameserver can be found.
#[derive(Debug)]
pub struct ConfiguredResolver {
    inner: Inner,
    notes: Vec<String>,
}

#[derive(Debug)]
enum Inner {
    Live(Limited<MemoryResolver<StubClient>>),
    ZonesOnly(Limited<MemoryResolver<NoFallback>>),
}

impl Resolver for ConfiguredResolver {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        match &self.inner {
            Inner::Live(r) => r.lookup(name, rtype).await,
            Inner::ZonesOnly(r) => r.lookup(name, rtype).await,
        }
    }
}

impl ConfiguredResolver {
    /// Whether the answer to this question comes from a `--zone` file.
    pub fn from_zone_file(&self, name: &str, rtype: RecordType) -> bool {
        match &self.inner {
            Inner::Live(r) => !r.inner().is_empty() && r.inner().answers_locally(name, rtype),
            Inner::ZonesOnly(r) => r.inner().answers_locally(name, rtype),
        }
    }

    /// Whether zone files were given.
    pub fn has_zone_files(&self) -> bool {
        match &self.inner {
            Inner::Live(r) => !r.inner().is_empty(),
            Inner::ZonesOnly(_) => true,
        }
    }

    /// What loading the zone files assumed (for the user to read).
    pub fn notes(&self) -> &[String] {
        &self.notes
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
        let mut notes = Vec::new();
        for path in &self.zones {
            let loaded = memory.load_zone_file(path, &format!("{}.", default_origin.trim_end_matches('.')))?;
            if loaded.assumed_ttl {
                notes.push(format!(
                    "{} has no $TTL: {} seconds assumed for records without a TTL",
                    path.display(),
                    ses_dmarc_dns::DEFAULT_ZONE_TTL
                ));
            }
        }
        let timeout = Duration::from_secs_f64(self.timeout);
        let inner = match StubClient::from_args(&self.nameservers, timeout, self.attempts) {
            Ok(client) => Inner::Live(Limited::new(memory.in_front_of(client), in_flight)),
            Err(_) if self.nameservers.is_empty() && !self.zones.is_empty() => {
                Inner::ZonesOnly(Limited::new(memory, in_flight))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ConfiguredResolver { inner, notes })
    }
}
