//! Auditing a domain's DNS for Amazon SES and DMARC. So far: the table of finding codes
//! and the documentation generated from it.

pub mod catalog;
pub mod docs;

pub use catalog::{FINDINGS, FindingKind, FindingSeverity, RecordGroup};
