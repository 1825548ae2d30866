//! The streaming parser: one state machine over quick-xml's events, fed by either reader
//! (a stream through a buffer, or a document borrowed from memory).

use super::lossy_utf8::LossyUtf8;
use super::*;
use quick_xml::Reader;
use quick_xml::events::Event;
use std::io::BufRead;

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

fn lower_opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_ascii_lowercase())
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

/// Element names the parser knows, interned without allocation (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Feedback,
    Version,
    ReportMetadata,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    DateRange,
    Begin,
    End,
    Error,
    Generator,
    PolicyPublished,
    Domain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    Record,
    Row,
    SourceIp,
    Count,
    PolicyEvaluated,
    Disposition,
    Dkim,
    Spf,
    Reason,
    Type,
    Comment,
    Identifiers,
    EnvelopeTo,
    EnvelopeFrom,
    HeaderFrom,
    AuthResults,
    Selector,
    Result,
    HumanResult,
    Scope,
    Other,
}

impl Tag {
    fn of(local: &str) -> Tag {
        let bytes = local.as_bytes();
        let tag = Tag::of_lower(bytes);
        if tag != Tag::Other || !bytes.iter().any(u8::is_ascii_uppercase) {
            return tag;
        }
        let mut buf = [0u8; 24];
        if bytes.len() > buf.len() {
            return Tag::Other;
        }
        for (d, s) in buf.iter_mut().zip(bytes) {
            *d = s.to_ascii_lowercase();
        }
        Tag::of_lower(&buf[..bytes.len()])
    }

    fn of_lower(name: &[u8]) -> Tag {
        match name {
            b"feedback" => Tag::Feedback,
            b"version" => Tag::Version,
            b"report_metadata" => Tag::ReportMetadata,
            b"org_name" => Tag::OrgName,
            b"email" => Tag::Email,
            b"extra_contact_info" => Tag::ExtraContactInfo,
            b"report_id" => Tag::ReportId,
            b"date_range" => Tag::DateRange,
            b"begin" => Tag::Begin,
            b"end" => Tag::End,
            b"error" => Tag::Error,
            b"generator" => Tag::Generator,
            b"policy_published" => Tag::PolicyPublished,
            b"domain" => Tag::Domain,
            b"adkim" => Tag::Adkim,
            b"aspf" => Tag::Aspf,
            b"p" => Tag::P,
            b"sp" => Tag::Sp,
            b"np" => Tag::Np,
            b"pct" => Tag::Pct,
            b"fo" => Tag::Fo,
            b"testing" => Tag::Testing,
            b"discovery_method" => Tag::DiscoveryMethod,
            b"record" => Tag::Record,
            b"row" => Tag::Row,
            b"source_ip" => Tag::SourceIp,
            b"count" => Tag::Count,
            b"policy_evaluated" => Tag::PolicyEvaluated,
            b"disposition" => Tag::Disposition,
            b"dkim" => Tag::Dkim,
            b"spf" => Tag::Spf,
            b"reason" => Tag::Reason,
            b"type" => Tag::Type,
            b"comment" => Tag::Comment,
            b"identifiers" => Tag::Identifiers,
            b"envelope_to" => Tag::EnvelopeTo,
            b"envelope_from" => Tag::EnvelopeFrom,
            b"header_from" => Tag::HeaderFrom,
            b"auth_results" => Tag::AuthResults,
            b"selector" => Tag::Selector,
            b"result" => Tag::Result,
            b"human_result" => Tag::HumanResult,
            b"scope" => Tag::Scope,
            b"identities" => Tag::Identifiers,
            _ => Tag::Other,
        }
    }
}

impl State {
    fn assign(&mut self, path: &[Tag], text: &str) {
        use Tag as T;
        let h = &mut self.header;
        match path {
            [T::Feedback, T::Version] => h.version = opt(text),
            [T::Feedback, T::ReportMetadata, field] => match *field {
                T::OrgName => h.metadata.org_name = text.trim().to_string(),
                T::Email => h.metadata.email = opt(text),
                T::ExtraContactInfo => h.metadata.extra_contact_info = opt(text),
                T::ReportId => h.metadata.report_id = text.trim().to_string(),
                T::Error => h.metadata.errors.extend(opt(text)),
                T::Generator => h.metadata.generator = opt(text),
                _ => {}
            },
            [T::Feedback, T::ReportMetadata, T::DateRange, which] => {
                let v = timestamp(text);
                match (*which, v) {
                    (T::Begin, Some(v)) => h.metadata.begin = v,
                    (T::End, Some(v)) => h.metadata.end = v,
                    _ => {}
                }
            }
            [T::Feedback, T::PolicyPublished, field] => {
                let pp = &mut h.policy;
                match *field {
                    T::Domain => pp.domain = lower(text),
                    T::Adkim => pp.adkim = lower_opt(text),
                    T::Aspf => pp.aspf = lower_opt(text),
                    T::P => pp.p = lower_opt(text),
                    T::Sp => pp.sp = lower_opt(text),
                    T::Np => pp.np = lower_opt(text),
                    T::Pct => pp.pct = text.trim().parse().ok(),
                    T::Fo => pp.fo = opt(text),
                    T::Testing => pp.testing = lower_opt(text),
                    T::DiscoveryMethod => pp.discovery_method = lower_opt(text),
                    _ => {}
                }
            }
            _ => self.assign_record(path, text),
        }
    }

    fn assign_record(&mut self, path: &[Tag], text: &str) {
        use Tag as T;
        let Some(r) = self.record.as_mut() else { return };
        match path {
            [T::Feedback, T::Record, T::Row, T::SourceIp] => {
                r.source_ip_text = text.trim().to_string();
                r.source_ip = text.trim().parse().ok();
            }
            [T::Feedback, T::Record, T::Row, T::Count] => match text.trim().parse::<u64>() {
                Ok(n) => r.count = n,
                Err(_) => self.record_problem = Some(format!("count `{}` is not a number", text.trim())),
            },
            [T::Feedback, T::Record, T::Row, T::PolicyEvaluated, field] => match *field {
                T::Disposition => r.disposition = lower_opt(text),
                T::Dkim => r.evaluated_dkim = lower_opt(text),
                T::Spf => r.evaluated_spf = lower_opt(text),
                _ => {}
            },
            [T::Feedback, T::Record, T::Row, T::PolicyEvaluated, T::Reason, field] => {
                if let Some(reason) = r.reasons.last_mut() {
                    match *field {
                        T::Type => reason.kind = lower(text),
                        T::Comment => reason.comment = opt(text),
                        _ => {}
                    }
                }
            }
            [T::Feedback, T::Record, T::Identifiers, field] => match *field {
                T::EnvelopeTo => r.envelope_to = lower_opt(text),
                T::EnvelopeFrom => r.envelope_from = lower_opt(text),
                T::HeaderFrom => r.header_from = lower(text),
                _ => {}
            },
            [T::Feedback, T::Record, T::AuthResults, T::Dkim, field] => {
                if let Some(d) = r.dkim.last_mut() {
                    match *field {
                        T::Domain => d.domain = lower(text),
                        T::Selector => d.selector = opt(text),
                        T::Result => d.result = lower(text),
                        T::HumanResult => d.human_result = opt(text),
                        _ => {}
                    }
                }
            }
            [T::Feedback, T::Record, T::AuthResults, T::Spf, field] => {
                if let Some(s) = r.spf.last_mut() {
                    match *field {
                        T::Domain => s.domain = lower(text),
                        T::Scope => s.scope = lower_opt(text),
                        T::Result => s.result = lower(text),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, path: &[Tag]) {
        use Tag as T;
        match path {
            [T::Feedback, T::Record] => {
                self.record = Some(ReportRecord::default());
                self.record_problem = None;
            }
            [T::Feedback, T::Record, T::Row, T::PolicyEvaluated, T::Reason] => {
                if let Some(r) = self.record.as_mut() {
                    r.reasons.push(PolicyReason::default());
                }
            }
            [T::Feedback, T::Record, T::AuthResults, T::Dkim] => {
                if let Some(r) = self.record.as_mut() {
                    r.dkim.push(DkimAuth::default());
                }
            }
            [T::Feedback, T::Record, T::AuthResults, T::Spf] => {
                if let Some(r) = self.record.as_mut() {
                    r.spf.push(SpfAuth::default());
                }
            }
            _ => {}
        }
    }
}

/// Receives a report as it is parsed: the header once it is complete (when the first
/// record starts, or at the end of a report without records), then each record.
pub trait ReportSink {
    /// Called once with the report's header, before its first record.
    fn header(&mut self, header: &ReportHeader);
    /// Called with each record, in document order.
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

/// Parses a report read as a stream into a [`ReportSink`]: constant memory whatever the
/// size. Invalid UTF-8 is repaired on the fly.
pub fn parse_into<R: BufRead>(
    input: R,
    limits: Limits,
    sink: &mut dyn ReportSink,
) -> Result<ReportHeader, ReportError> {
    let mut reader = Reader::from_reader(LossyUtf8::new(input));
    configure(&mut reader);
    let mut parser = Parser::new(limits, sink);
    let mut buf = Vec::new();
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event_into(&mut buf).map_err(|e| ReportError::Xml { at, message: e.to_string() })?;
        if parser.event(event)? {
            break;
        }
        buf.clear();
    }
    parser.finish()
}

/// Parses a report held in memory into a [`ReportSink`]: the same as [`parse_into`],
/// without copying the document through a buffer. Invalid UTF-8 is repaired first.
pub fn parse_bytes_into(data: &[u8], limits: Limits, sink: &mut dyn ReportSink) -> Result<ReportHeader, ReportError> {
    // `from_utf8` checks valid text much faster than `from_utf8_lossy` does.
    let text = match std::str::from_utf8(data) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(data),
    };
    let mut reader = Reader::from_str(&text);
    configure(&mut reader);
    let mut parser = Parser::new(limits, sink);
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|e| ReportError::Xml { at, message: e.to_string() })?;
        if parser.event(event)? {
            break;
        }
    }
    parser.finish()
}

fn configure<R>(reader: &mut Reader<R>) {
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = false;
}

/// The event handling shared by both readers.
struct Parser<'s> {
    limits: Limits,
    sink: &'s mut dyn ReportSink,
    path: Vec<Tag>,
    text: String,
    state: State,
    record_index: usize,
    header_sent: bool,
}

impl<'s> Parser<'s> {
    fn new(limits: Limits, sink: &'s mut dyn ReportSink) -> Self {
        Parser {
            limits,
            sink,
            path: Vec::new(),
            text: String::new(),
            state: State {
                header: ReportHeader { schema: "rfc7489", ..Default::default() },
                record: None,
                record_problem: None,
                saw_root: false,
            },
            record_index: 0,
            header_sent: false,
        }
    }

    /// Handles one event; true at the end of the document.
    fn event(&mut self, event: Event<'_>) -> Result<bool, ReportError> {
        match event {
            Event::DocType(_) => return Err(ReportError::Doctype),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let self_closing = matches!(event, Event::Empty(_));
                let local_name = e.local_name();
                let local = local_name.as_ref();
                let tag = Tag::of(local);
                if self.path.is_empty() {
                    if tag != Tag::Feedback {
                        return Err(ReportError::NotAggregate(local.to_ascii_lowercase()));
                    }
                    self.state.saw_root = true;
                    for attr in e.attributes().flatten() {
                        // The RFC's namespace, and the one its drafts used.
                        if matches!(
                            attr.value.as_ref(),
                            "urn:ietf:params:xml:ns:dmarc-2.0" | "http://dmarc.org/dmarc-xml/0.2"
                        ) {
                            self.state.header.schema = "rfc9990";
                        }
                    }
                }
                self.path.push(tag);
                if self.path.len() > self.limits.max_depth {
                    return Err(ReportError::TooDeep(self.limits.max_depth));
                }
                if !self.header_sent && self.path.len() == 2 && tag == Tag::Record {
                    self.header_sent = true;
                    self.sink.header(&self.state.header);
                }
                self.state.start(&self.path);
                self.text.clear();
                if self_closing {
                    self.close();
                }
            }
            Event::Text(t) => {
                self.text.push_str(&t);
                if self.text.len() > self.limits.max_text {
                    return Err(ReportError::TextTooLong(self.limits.max_text));
                }
            }
            Event::CData(t) => self.text.push_str(&t),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        self.text.push(c);
                    }
                } else if let Some(c) = named_entity(&r) {
                    self.text.push(c);
                } else {
                    self.text.push('&');
                    self.text.push_str(&r);
                    self.text.push(';');
                }
            }
            Event::End(_) => self.close(),
            Event::Eof => return Ok(true),
            _ => {}
        }
        Ok(false)
    }

    fn close(&mut self) {
        let Some(&last) = self.path.last() else { return };
        self.state.assign(&self.path, &self.text);
        self.text.clear();
        if self.path.len() == 2 && last == Tag::Record {
            self.record_index += 1;
            if let Some(r) = self.state.record.take() {
                match self.state.record_problem.take() {
                    Some(problem) => self.state.header.skipped.push(format!("record {}: {problem}", self.record_index)),
                    None => self.sink.record(r),
                }
            }
        }
        self.path.pop();
    }

    fn finish(self) -> Result<ReportHeader, ReportError> {
        if !self.state.saw_root {
            return Err(ReportError::Empty);
        }
        if !self.path.is_empty() {
            return Err(ReportError::Truncated);
        }
        let mut h = self.state.header;
        if h.version.as_deref().is_some_and(|v| v.trim().starts_with('2')) {
            h.schema = "rfc9990";
        }
        if h.version.as_deref().is_some_and(|v| v.starts_with("0.")) && h.schema != "rfc9990" {
            h.schema = "draft";
        }
        if h.policy.domain.is_empty() {
            return Err(ReportError::Missing("policy_published/domain"));
        }
        if !self.header_sent {
            self.sink.header(&h);
        }
        Ok(h)
    }
}

/// Parses a whole report into memory (small reports, tests).
pub fn parse(input: impl BufRead) -> Result<AggregateReport, ReportError> {
    let mut records = Vec::new();
    let header = parse_streaming(input, Limits::default(), &mut |r| records.push(r))?;
    Ok(AggregateReport { header, records })
}

/// [`parse`] for a report already in memory.
pub fn parse_bytes(data: &[u8]) -> Result<AggregateReport, ReportError> {
    let mut records = Vec::new();
    let header = parse_bytes_into(data, Limits::default(), &mut FnSink { on_record: &mut |r| records.push(r) })?;
    Ok(AggregateReport { header, records })
}
