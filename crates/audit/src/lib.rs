//! Auditing a domain's DNS for Amazon SES and DMARC: gather every answer into a
//! [`Snapshot`], then run pure rules over it to get findings and a verdict.

pub mod catalog;
pub mod discovery;
pub mod docs;
pub mod gather;
pub mod rules;
pub mod snapshot;

pub use catalog::{FINDINGS, FindingKind, FindingSeverity, RecordGroup};
pub use gather::{DomainReport, check_domain, gather};
pub use rules::{Finding, Judgement, Verdict, judge, needed_queries};
pub use snapshot::{Expectations, Snapshot};
