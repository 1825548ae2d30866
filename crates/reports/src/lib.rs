//! DMARC reports: aggregate reports parsed as a stream ([`aggregate`]), containers
//! ([`unpack`]), failure reports ([`failure`]), source classification ([`classify`]),
//! summaries ([`summary`]) with source addresses grouped by sender (an offline IP → ASN
//! table: [`asn`]), and rollout advice ([`rollout`]). Pure: no I/O beyond readers.

pub mod aggregate;
pub mod asn;
pub mod classify;
pub mod failure;
pub mod rollout;
pub mod summary;
pub mod unpack;

pub use aggregate::{AggregateReport, ReportError, ReportRecord, parse, parse_bytes, parse_streaming};
