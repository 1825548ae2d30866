//! DMARC aggregate reports (RFC 7489 Appendix C, RFC 9990, the pre-RFC draft), parsed as a
//! stream: records are handed to a callback one at a time and the document is never held
//! as a tree, so a report of any size parses in constant memory.
//!
//! Lenient with what real reporters send (any namespace or prefix, `identities` for
//! `identifiers`, case variants such as `Pass`, missing `<spf>`, empty `<reason><type/>`,
//! stray elements such as `<xs:schema>`, invalid UTF-8, fractional timestamps); strict
//! where it matters: a DOCTYPE (and so any entity declaration) is refused.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use std::io::BufRead;
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
    pub selector: Option<String>,
    /// Lower case: none, pass, fail, policy, neutral, temperror, permerror.
    pub result: String,
    pub human_result: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfAuth {
    pub domain: String,
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

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Seconds since 1970; fractional values are truncated.
fn timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    t.parse::<i64>().ok().or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

struct State {
    header: ReportHeader,
    record: Option<ReportRecord>,
    record_problem: Option<String>,
    saw_root: bool,
}

impl State {
    fn assign(&mut self, path: &[String], text: &str) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let h = &mut self.header;
        match p.as_slice() {
            ["feedback", "version"] => h.version = opt(text),
            ["feedback", "report_metadata", field] => match *field {
                "org_name" => h.metadata.org_name = text.trim().to_string(),
                "email" => h.metadata.email = opt(text),
                "extra_contact_info" => h.metadata.extra_contact_info = opt(text),
                "report_id" => h.metadata.report_id = text.trim().to_string(),
                "error" => h.metadata.errors.extend(opt(text)),
                "generator" => h.metadata.generator = opt(text),
                _ => {}
            },
            ["feedback", "report_metadata", "date_range", which] => {
                let v = timestamp(text);
                match (*which, v) {
                    ("begin", Some(v)) => h.metadata.begin = v,
                    ("end", Some(v)) => h.metadata.end = v,
                    _ => {}
                }
            }
            ["feedback", "policy_published", field] => {
                let pp = &mut h.policy;
                match *field {
                    "domain" => pp.domain = lower(text),
                    "adkim" => pp.adkim = opt(&lower(text)),
                    "aspf" => pp.aspf = opt(&lower(text)),
                    "p" => pp.p = opt(&lower(text)),
                    "sp" => pp.sp = opt(&lower(text)),
                    "np" => pp.np = opt(&lower(text)),
                    "pct" => pp.pct = text.trim().parse().ok(),
                    "fo" => pp.fo = opt(text),
                    "testing" => pp.testing = opt(&lower(text)),
                    "discovery_method" => pp.discovery_method = opt(&lower(text)),
                    _ => {}
                }
            }
            _ => self.assign_record(&p, text),
        }
    }

    fn assign_record(&mut self, p: &[&str], text: &str) {
        let Some(r) = self.record.as_mut() else { return };
        let ident = |s: &str| s == "identifiers" || s == "identities";
        match p {
            ["feedback", "record", "row", "source_ip"] => {
                r.source_ip_text = text.trim().to_string();
                r.source_ip = text.trim().parse().ok();
            }
            ["feedback", "record", "row", "count"] => match text.trim().parse::<u64>() {
                Ok(n) => r.count = n,
                Err(_) => self.record_problem = Some(format!("count `{}` is not a number", text.trim())),
            },
            ["feedback", "record", "row", "policy_evaluated", field] => match *field {
                "disposition" => r.disposition = opt(&lower(text)),
                "dkim" => r.evaluated_dkim = opt(&lower(text)),
                "spf" => r.evaluated_spf = opt(&lower(text)),
                _ => {}
            },
            ["feedback", "record", "row", "policy_evaluated", "reason", field] => {
                if let Some(reason) = r.reasons.last_mut() {
                    match *field {
                        "type" => reason.kind = lower(text),
                        "comment" => reason.comment = opt(text),
                        _ => {}
                    }
                }
            }
            ["feedback", "record", id, field] if ident(id) => match *field {
                "envelope_to" => r.envelope_to = opt(&lower(text)),
                "envelope_from" => r.envelope_from = opt(&lower(text)),
                "header_from" => r.header_from = lower(text),
                _ => {}
            },
            ["feedback", "record", "auth_results", "dkim", field] => {
                if let Some(d) = r.dkim.last_mut() {
                    match *field {
                        "domain" => d.domain = lower(text),
                        "selector" => d.selector = opt(text),
                        "result" => d.result = lower(text),
                        "human_result" => d.human_result = opt(text),
                        _ => {}
                    }
                }
            }
            ["feedback", "record", "auth_results", "spf", field] => {
                if let Some(s) = r.spf.last_mut() {
                    match *field {
                        "domain" => s.domain = lower(text),
                        "scope" => s.scope = opt(&lower(text)),
                        "result" => s.result = lower(text),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, path: &[String]) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["feedback", "record"] => {
                self.record = Some(ReportRecord::default());
                self.record_problem = None;
            }
            ["feedback", "record", "row", "policy_evaluated", "reason"] => {
                if let Some(r) = self.record.as_mut() {
                    r.reasons.push(PolicyReason::default());
                }
            }
            ["feedback", "record", "auth_results", "dkim"] => {
                if let Some(r) = self.record.as_mut() {
                    r.dkim.push(DkimAuth::default());
                }
            }
            ["feedback", "record", "auth_results", "spf"] => {
                if let Some(r) = self.record.as_mut() {
                    r.spf.push(SpfAuth::default());
                }
            }
            _ => {}
        }
    }
}

/// Repairs invalid UTF-8 on the fly (each bad byte becomes U+FFFD), so one broken byte in
/// a reporter's org name does not cost the whole report.
struct LossyUtf8<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    pending: Vec<u8>,
}

impl<R: BufRead> LossyUtf8<R> {
    fn new(inner: R) -> Self {
        LossyUtf8 { inner, out: Vec::new(), pos: 0, pending: Vec::new() }
    }

    fn refill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.pos = 0;
        loop {
            let chunk = self.inner.fill_buf()?;
            let eof = chunk.is_empty();
            self.pending.extend_from_slice(chunk);
            let n = chunk.len();
            self.inner.consume(n);
            let mut rest: &[u8] = &self.pending;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        self.out.extend_from_slice(s.as_bytes());
                        rest = &[];
                        break;
                    }
                    Err(e) => {
                        let (good, bad) = rest.split_at(e.valid_up_to());
                        self.out.extend_from_slice(good);
                        match e.error_len() {
                            Some(len) => {
                                self.out.extend_from_slice("\u{fffd}".as_bytes());
                                rest = &bad[len..];
                            }
                            None if eof => {
                                self.out.extend_from_slice("\u{fffd}".as_bytes());
                                rest = &[];
                                break;
                            }
                            None => {
                                rest = bad;
                                break;
                            }
                        }
                    }
                }
            }
            self.pending = rest.to_vec();
            if !self.out.is_empty() || eof {
                return Ok(());
            }
        }
    }
}

impl<R: BufRead> std::io::Read for LossyUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LossyUtf8<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
    }
}

fn close(
    state: &mut State,
    path: &mut Vec<String>,
    text: &mut String,
    record_index: &mut usize,
    sink: &mut dyn ReportSink,
) {
    if path.is_empty() {
        return;
    }
    state.assign(path, text);
    text.clear();
    if path.len() == 2 && path[1] == "record" {
        *record_index += 1;
        if let Some(r) = state.record.take() {
            match state.record_problem.take() {
                Some(problem) => state.header.skipped.push(format!("record {record_index}: {problem}")),
                None => sink.record(r),
            }
        }
    }
    path.pop();
}

/// Receives a report as it is parsed: the header once it is complete (when the first
/// record starts, or at the end of a report without records), then each record.
pub trait ReportSink {
    fn header(&mut self, header: &ReportHeader);
    fn record(&mut self, record: ReportRecord);
}

struct FnSink<'f> {
    on_record: &'f mut dyn FnMut(ReportRecord),
}

impl ReportSink for FnSink<'_> {
    fn header(&mut self, _header: &ReportHeader) {}
    fn record(&mut self, record: ReportRecord) {
        (self.on_record)(record)
    }
}

/// Parses a report, handing each record to `on_record` as soon as it is complete.
pub fn parse_streaming<R: BufRead>(
    input: R,
    limits: Limits,
    on_record: &mut dyn FnMut(ReportRecord),
) -> Result<ReportHeader, ReportError> {
    parse_into(input, limits, &mut FnSink { on_record })
}

/// Parses a report into a [`ReportSink`].
pub fn parse_into<R: BufRead>(
    input: R,
    limits: Limits,
    sink: &mut dyn ReportSink,
) -> Result<ReportHeader, ReportError> {
    let mut reader = Reader::from_reader(LossyUtf8::new(input));
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = false;
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut state = State {
        header: ReportHeader { schema: "rfc7489", ..Default::default() },
        record: None,
        record_problem: None,
        saw_root: false,
    };
    let mut record_index = 0usize;
    let mut header_sent = false;
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event_into(&mut buf).map_err(|e| ReportError::Xml { at, message: e.to_string() })?;
        match event {
            Event::DocType(_) => return Err(ReportError::Doctype),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let self_closing = matches!(event, Event::Empty(_));
                let local = e.local_name().as_ref().to_ascii_lowercase();
                if path.is_empty() {
                    if local != "feedback" {
                        return Err(ReportError::NotAggregate(local));
                    }
                    state.saw_root = true;
                    for attr in e.attributes().flatten() {
                        // The RFC's namespace, and the one its drafts used.
                        if matches!(
                            attr.value.as_ref(),
                            "urn:ietf:params:xml:ns:dmarc-2.0" | "http://dmarc.org/dmarc-xml/0.2"
                        ) {
                            state.header.schema = "rfc9990";
                        }
                    }
                }
                path.push(local);
                if path.len() > limits.max_depth {
                    return Err(ReportError::TooDeep(limits.max_depth));
                }
                if !header_sent && path.len() == 2 && path[1] == "record" {
                    header_sent = true;
                    sink.header(&state.header);
                }
                state.start(&path);
                text.clear();
                if self_closing {
                    close(&mut state, &mut path, &mut text, &mut record_index, sink);
                }
            }
            Event::Text(t) => {
                text.push_str(&t);
                if text.len() > limits.max_text {
                    return Err(ReportError::TextTooLong(limits.max_text));
                }
            }
            Event::CData(t) => text.push_str(&t),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        text.push(c);
                    }
                } else if let Some(c) = named_entity(&r) {
                    text.push(c);
                } else {
                    text.push('&');
                    text.push_str(&r);
                    text.push(';');
                }
            }
            Event::End(_) => close(&mut state, &mut path, &mut text, &mut record_index, sink),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !state.saw_root {
        return Err(ReportError::Empty);
    }
    let mut h = state.header;
    if h.version.as_deref().is_some_and(|v| v.trim().starts_with('2')) {
        h.schema = "rfc9990";
    }
    if h.version.as_deref().is_some_and(|v| v.starts_with("0.")) && h.schema != "rfc9990" {
        h.schema = "draft";
    }
    if h.policy.domain.is_empty() {
        return Err(ReportError::Missing("policy_published/domain"));
    }
    if !header_sent {
        sink.header(&h);
    }
    Ok(h)
}

/// Parses a whole report into memory (small reports, tests).
pub fn parse(input: impl BufRead) -> Result<AggregateReport, ReportError> {
    let mut records = Vec::new();
    let header = parse_streaming(input, Limits::default(), &mut |r| records.push(r))?;
    Ok(AggregateReport { header, records })
}
