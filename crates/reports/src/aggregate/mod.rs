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

/// Why a document is not a usable aggregate report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A DOCTYPE declaration, refused.
    #[error("refused: the XML has a DOCTYPE declaration (entity definitions can expand without bound)")]
    Doctype,
    /// Another XML document; holds its root element's name.
    #[error("not a DMARC aggregate report: the root element is <{0}>, not <feedback>")]
    NotAggregate(String),
    /// No XML element at all.
    #[error("not a DMARC aggregate report: no XML element found")]
    Empty,
    /// Not well-formed XML.
    #[error("malformed XML at byte {at}: {message}")]
    Xml {
        /// Byte offset of the error.
        at: u64,
        /// What the XML reader said.
        message: String,
    },
    /// Elements nested deeper than the limit; holds the limit.
    #[error("XML nested deeper than {0} elements")]
    TooDeep(usize),
    /// A text longer than the limit; holds the limit.
    #[error("an XML text of more than {0} bytes")]
    TextTooLong(usize),
    /// A required element is missing; holds its path (`policy_published/domain`).
    #[error("the report has no {0}")]
    Missing(&'static str),
    /// The document ends before `</feedback>`.
    #[error("the XML ends before </feedback>: the report is truncated")]
    Truncated,
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
