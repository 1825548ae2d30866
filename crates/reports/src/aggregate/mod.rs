//! DMARC aggregate reports (RFC 7489 Appendix C, RFC 9990, the pre-RFC draft), parsed as a
//! stream: records are handed to a callback one at a time and the document is never held
//! as a tree, so a report of any size parses in constant memory.
//!
//! Lenient with what real reporters send (any namespace or prefix, `identities` for
//! `identifiers`, case variants such as `Pass`, missing `<spf>`, empty `<reason><type/>`,
//! stray elements such as `<xs:schema>`, invalid UTF-8, fractional timestamps); strict
//! where it matters: a DOCTYPE (and so any entity declaration) is refused.

mod encoding;
mod lossy_utf8;
mod parser;
mod xml;

pub use parser::{ReportSink, parse, parse_bytes, parse_bytes_into, parse_into, parse_streaming};

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `<report_metadata>`: who sent the report, its id and the period it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportMetadata {
    /// The reporting organization (`google.com`).
    pub org_name: String,
    /// The reporter's contact address.
    pub email: Option<String>,
    /// Where to learn more about the reporter, as written.
    pub extra_contact_info: Option<String>,
    /// The reporter's id for this report.
    pub report_id: String,
    /// Start of the period, seconds since 1970 (UTC).
    pub begin: i64,
    /// End of the period, seconds since 1970 (UTC).
    pub end: i64,
    /// `<error>` texts: problems the reporter met while evaluating.
    pub errors: Vec<String>,
    /// RFC 9990 `<generator>`.
    pub generator: Option<String>,
}

/// `<policy_published>`: the DMARC record the reporter found, tag values as written
/// (lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPublished {
    /// The policy domain, lower case.
    pub domain: String,
    /// `adkim` (`r`/`s`).
    pub adkim: Option<String>,
    /// `aspf` (`r`/`s`).
    pub aspf: Option<String>,
    /// `p`: the domain's policy.
    pub p: Option<String>,
    /// `sp`: the subdomain policy.
    pub sp: Option<String>,
    /// RFC 9990.
    pub np: Option<String>,
    /// RFC 7489 only.
    pub pct: Option<u8>,
    /// `fo`: the failure reporting options.
    pub fo: Option<String>,
    /// RFC 9990 `testing` (`y`/`n`).
    pub testing: Option<String>,
    /// RFC 9990 `discovery_method` (`psl`/`treewalk`).
    pub discovery_method: Option<String>,
}

/// `<reason>`: why the reporter applied another disposition than the policy's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyReason {
    /// `<type>`: `forwarded`, `local_policy`, `mailing_list`, `policy_test_mode`, ...
    pub kind: String,
    /// `<comment>`, when written.
    pub comment: Option<String>,
}

/// One `<auth_results><dkim>`: a DKIM signature the reporter checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimAuth {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    /// The selector (`s=`), when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Lower case: none, pass, fail, policy, neutral, temperror, permerror.
    pub result: String,
    /// The reporter's own words about the result, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_result: Option<String>,
}

/// One `<auth_results><spf>`: an SPF check the reporter made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfAuth {
    /// The domain checked, lower case.
    pub domain: String,
    /// `mfrom` (MAIL FROM) or `helo`, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Lower case: none, neutral, pass, fail, softfail, temperror, permerror.
    pub result: String,
}

/// One `<record>`: messages from one source IP with the same identifiers and results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportRecord {
    /// The sending IP, when the text is an address.
    pub source_ip: Option<IpAddr>,
    /// The source IP as written, when it is not an address.
    pub source_ip_text: String,
    /// How many messages the row stands for.
    pub count: u64,
    /// What the reporter did with them: `none`, `quarantine`, `reject` (RFC 9990 also `pass`).
    pub disposition: Option<String>,
    /// The reporter's own DMARC evaluation (lower case); recomputed elsewhere, not trusted.
    pub evaluated_dkim: Option<String>,
    /// The reporter's SPF verdict for DMARC (aligned pass or not), lower case.
    pub evaluated_spf: Option<String>,
    /// Why the reporter applied another disposition, when it says.
    pub reasons: Vec<PolicyReason>,
    /// The recipient domain, when reported.
    pub envelope_to: Option<String>,
    /// The MAIL FROM domain, when reported.
    pub envelope_from: Option<String>,
    /// The From header's domain.
    pub header_from: String,
    /// The DKIM signatures checked.
    pub dkim: Vec<DkimAuth>,
    /// The SPF checks made.
    pub spf: Vec<SpfAuth>,
}

/// Everything in a report but its records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportHeader {
    /// `<version>`, when written.
    pub version: Option<String>,
    /// `rfc9990` (dmarc-2.0 namespace or version 2.x), `rfc7489`, or `draft` (version 0.x
    /// documents without the new namespace).
    pub schema: &'static str,
    /// Who sent the report, and for which period.
    pub metadata: ReportMetadata,
    /// The DMARC record the reporter found.
    pub policy: PolicyPublished,
    /// Records that were skipped, and why (nothing is dropped silently).
    pub skipped: Vec<String>,
}

/// A whole aggregate report, records held in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AggregateReport {
    /// Everything but the records.
    #[serde(flatten)]
    pub header: ReportHeader,
    /// The records, in document order.
    pub records: Vec<ReportRecord>,
}

impl AggregateReport {
    /// Messages over all records.
    pub fn messages(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }
}

/// Where in a document something is: the byte offset, and the line and column (1-based)
/// when the document was read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Bytes from the start of the (decoded) document.
    pub byte: u64,
    /// Line and column, when known.
    pub line_column: Option<(u64, u64)>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line_column {
            Some((line, column)) => write!(f, "line {line}, column {column}"),
            None => write!(f, "byte {}", self.byte),
        }
    }
}

impl Position {
    pub(crate) fn at(byte: u64) -> Position {
        Position { byte, line_column: None }
    }

    /// Fills in the line and column from the document's text.
    pub(crate) fn locate(&mut self, text: &str) {
        let end = (self.byte as usize).min(text.len());
        let before = &text.as_bytes()[..end];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let start = before.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
        let column = String::from_utf8_lossy(&before[start..]).chars().count() as u64 + 1;
        self.line_column = Some((line, column));
    }
}

/// Why a document is not a report that can be stored.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A DOCTYPE (and so possibly entity declarations).
    #[error("refused: the XML has a DOCTYPE declaration (entity definitions can expand without bound)")]
    Doctype,
    /// XML, but not an aggregate report.
    #[error("not a DMARC aggregate report: no <feedback> element (the root element is <{0}>)")]
    NotAggregate(String),
    /// No element at all.
    #[error("not a DMARC aggregate report: no XML element found")]
    Empty,
    /// The XML reader gave up.
    #[error("malformed XML at {at}: {message}")]
    Xml {
        /// Where.
        at: Position,
        /// What the reader said.
        message: String,
    },
    /// Something the XML reader accepts but a report cannot hold (a `<` in a text, an
    /// undefined entity, a NUL or surrogate character reference).
    #[error("malformed XML at {at}: {message}")]
    Malformed {
        /// Where.
        at: Position,
        /// What is wrong.
        message: String,
    },
    /// Elements nested deeper than the limit.
    #[error("XML nested deeper than {0} elements")]
    TooDeep(usize),
    /// A text longer than the limit.
    #[error("an XML text of more than {0} bytes")]
    TextTooLong(usize),
    /// A required element is missing.
    #[error("the report has no {0}")]
    Missing(&'static str),
    /// The document ends with elements still open.
    #[error(
        "the XML ends before </feedback>: <{open}>, opened at {at}, is never closed (the report is cut short, or that element is left open)"
    )]
    Truncated {
        /// The innermost element left open.
        open: String,
        /// Where it was opened.
        at: Position,
    },
    /// An element that identifies the report appears twice.
    #[error("two <{element}> elements (the second at {at}): which one is meant cannot be known; refused")]
    Duplicate {
        /// The element.
        element: String,
        /// Where the second one is.
        at: Position,
    },
    /// A second `<feedback>` after the first ended: two reports in one document.
    #[error(
        "a second <feedback> at {at}: two reports in one document (two gzip members?); store them as separate files"
    )]
    SecondReport {
        /// Where it starts.
        at: Position,
    },
    /// The report's period cannot be right.
    #[error("the report period is impossible: {0}")]
    BadPeriod(String),
    /// The document's encoding cannot be read.
    #[error("{0}")]
    Encoding(String),
}

impl ReportError {
    /// Fills in line and column from the document's text.
    pub(crate) fn locate(mut self, text: &str) -> Self {
        match &mut self {
            ReportError::Xml { at, .. }
            | ReportError::Malformed { at, .. }
            | ReportError::Truncated { at, .. }
            | ReportError::Duplicate { at, .. }
            | ReportError::SecondReport { at } => at.locate(text),
            _ => {}
        }
        self
    }
}

/// Bounds on what one document may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest element nesting allowed (default 32).
    pub max_depth: usize,
    /// Longest text of one element, in bytes (default 64 KiB).
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 32, max_text: 64 * 1024 }
    }
}
