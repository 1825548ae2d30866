//! DMARC reports. So far: aggregate reports, parsed as a stream (see [`aggregate`]).

pub mod aggregate;
pub mod failure;
pub mod unpack;

pub use aggregate::{AggregateReport, ReportError, ReportRecord, parse, parse_streaming};
