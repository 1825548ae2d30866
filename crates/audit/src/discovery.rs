//! DMARC policy discovery over a snapshot (the logic is `receiver::dmarc_discovery`).

use crate::snapshot::Snapshot;
use ses_dmarc_dns::RecordType;
pub use ses_dmarc_receiver::dmarc_discovery::{Discovered, DiscoveryBlocked, DmarcAt, tree_walk_names};

pub(crate) fn dmarc_at(snap: &Snapshot, name: &str) -> DmarcAt {
    ses_dmarc_receiver::dmarc_discovery::dmarc_at(&|n: &str| snap.get(n, RecordType::Txt), name)
}

pub(crate) fn discover_9989(snap: &Snapshot, name: &str) -> Result<Discovered, DiscoveryBlocked> {
    ses_dmarc_receiver::dmarc_discovery::discover_9989(&|n: &str| snap.get(n, RecordType::Txt), name)
}

pub(crate) fn discover_7489(snap: &Snapshot, name: &str) -> Result<Discovered, DiscoveryBlocked> {
    ses_dmarc_receiver::dmarc_discovery::discover_7489(&|n: &str| snap.get(n, RecordType::Txt), name)
}
