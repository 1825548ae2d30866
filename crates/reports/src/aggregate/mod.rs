//! DMARC aggregate reports (RFC 7489 Appendix C, RFC 9990, the pre-RFC draft), parsed as a
//! stream: records are handed to a callback one at a time and the document is never held
//! as a tree, so a report of any size parses in constant memory.
//!
//! Lenient with what real reporters send (any namespace or prefix, `identities` for
//! `identifiers`, case variants such as `Pass`, missing `<spf>`, empty `<reason><type/>`,
//! stray elements such as `<xs:schema>`, invalid UTF-8, fractional timestamps); strict
//! where it matters: a DOCTYPE (and so any entity declaration) is refused.

mod lossy_utf8;
mod parser;

pub use parser::{ReportSink, parse, parse_bytes, parse_bytes_into, parse_into, parse_streaming};

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportMetadata {
    pub org_name: String,
    pub email: Option<String>,
    pub extra_contact_info: Option<String>,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub errors: Vec<String>,
    /// RFC 9990 `<generator>`.
    pub generator: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPublished {
    pub domain: String,
    pub adkim: Option<String>,
    pub aspf: Option<String>,
    pub p: Option<String>,
    pub sp: Option<String>,
    /// RFC 9990.
    pub np: Option<String>,
    /// RFC 7489 only.
    pub pct: Option<u8>,
    pub fo: Option<String>,
    /// RFC 9990 `testing` (`y`/`n`).
    pub testing: Option<String>,
    /// RFC 9990 `discovery_method` (`psl`/`treewalk`).
    pub discovery_method: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyReason {
    pub kind: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimAuth {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Lower case: none, pass, fail, policy, neutral, temperror, permerror.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_result: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfAuth {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Lower case: none, neutral, pass, fail, softfail, temperror, permerror.
    pub result: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportRecord {
    pub source_ip: Option<IpAddr>,
    /// The source IP as written, when it is not an address.
    pub source_ip_text: String,
    pub count: u64,
    pub disposition: Option<String>,
    /// The reporter's own DMARC evaluation (lower case); recomputed elsewhere, not trusted.
    pub evaluated_dkim: Option<String>,
    pub evaluated_spf: Option<String>,
    pub reasons: Vec<PolicyReason>,
    pub envelope_to: Option<String>,
    pub envelope_from: Option<String>,
    pub header_from: String,
    pub dkim: Vec<DkimAuth>,
    pub spf: Vec<SpfAuth>,
}

/// Everything in a report but its records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportHeader {
    pub version: Option<String>,
    /// `rfc9990` (dmarc-2.0 namespace or version 2.x), `rfc7489`, or `draft` (version 0.x
    /// documents without the new namespace).
    pub schema: &'static str,
    pub metadata: ReportMetadata,
    pub policy: PolicyPublished,
    /// Records that were skipped, and why (nothing is dropped silently).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AggregateReport {
    #[serde(flatten)]
    pub header: ReportHeader,
    pub records: Vec<ReportRecord>,
}

impl AggregateReport {
    /// Messages over all records.
    pub fn messages(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("refused: the XML has a DOCTYPE declaration (entity definitions can expand without bound)")]
    Doctype,
    #[error("not a DMARC aggregate report: the root element is <{0}>, not <feedback>")]
    NotAggregate(String),
    #[error("not a DMARC aggregate report: no XML element found")]
    Empty,
    #[error("malformed XML at byte {at}: {message}")]
    Xml { at: u64, message: String },
    #[error("XML nested deeper than {0} elements")]
    TooDeep(usize),
    #[error("an XML text of more than {0} bytes")]
    TextTooLong(usize),
    #[error("the report has no {0}")]
    Missing(&'static str),
    #[error("the XML ends before </feedback>: the report is truncated")]
    Truncated,
}

/// Bounds on what one document may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 32, max_text: 64 * 1024 }
    }
}
