//! The DNS flags `check`, `spf`, `verify` and others share.

use clap::Args;
use ses_dmarc_ops::OpsError;
use ses_dmarc_ops::dns::{ConfiguredResolver, DnsOptions};
use std::path::PathBuf;

#[derive(Debug, Args, Clone)]
pub(crate) struct DnsArgs {
    /// Nameserver to ask, IP or IP:PORT (repeatable); default: /etc/resolv.conf's.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub(crate) nameservers: Vec<String>,
    /// Seconds to wait for each DNS answer.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub(crate) timeout: f64,
    /// Times each query is sent to each nameserver before it counts as failed.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) attempts: usize,
    /// Answer from this zone file for the names it holds (check records before publishing
    /// them); other names are asked of the nameservers. Repeatable.
    #[arg(long = "zone", value_name = "FILE")]
    pub(crate) zones: Vec<PathBuf>,
}

impl DnsArgs {
    pub(crate) fn options(&self) -> DnsOptions {
        DnsOptions {
            nameservers: self.nameservers.clone(),
            timeout: self.timeout,
            attempts: self.attempts,
            zones: self.zones.clone(),
        }
    }

    /// The resolver; `default_origin` names zone files that have no `$ORIGIN`.
    pub(crate) fn resolver(&self, default_origin: &str, in_flight: usize) -> Result<ConfiguredResolver, OpsError> {
        self.options().resolver(default_origin, in_flight)
    }
}
