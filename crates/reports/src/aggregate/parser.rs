//! The streaming parser: one state machine over the tokenizer's tokens, fed by either
//! reader (a stream through a buffer, or a document borrowed from memory).

use super::lossy_utf8::LossyUtf8;
use super::xml::{self, Step, Token};
use super::*;
use std::io::{BufRead, Read};

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
    /// Header elements seen, as (parent, element): one that identifies the report twice
    /// refuses the report.
    header_seen: Vec<(Tag, Tag)>,
    /// The current record's elements seen, as (parent, element).
    record_seen: Vec<(Tag, Tag)>,
}

/// The most messages one record may count: one source IP cannot send more in a report's
/// period, and sums over any realistic store then stay far from overflowing.
pub(crate) const MAX_RECORD_COUNT: u64 = u32::MAX as u64;

/// The earliest and latest report period accepted: 1970 (the RFC's own samples are dated
/// 1975 and 1979) to 2106-02-07, the end of unsigned 32-bit time. Periods in the future are
/// refused when a report is stored, against the clock.
const EARLIEST: i64 = 0;
const LATEST: i64 = u32::MAX as i64;
/// The longest report period accepted.
const MAX_PERIOD: i64 = 90 * 86_400;

/// Header elements that identify the report or its policy: twice is a refusal.
fn identifies_report(parent: Tag, field: Tag) -> bool {
    use Tag as T;
    matches!(
        (parent, field),
        (T::ReportMetadata, T::OrgName | T::ReportId | T::DateRange)
            | (T::DateRange, T::Begin | T::End)
            | (T::PolicyPublished, T::Domain | T::P | T::Sp | T::Np | T::Pct | T::Adkim | T::Aspf | T::Testing)
            | (T::Feedback, T::ReportMetadata | T::PolicyPublished)
    )
}

/// Record elements whose second copy makes the record ambiguous.
fn identifies_record(parent: Tag, field: Tag) -> bool {
    use Tag as T;
    matches!(
        (parent, field),
        (T::Record, T::Row | T::Identifiers)
            | (T::Row, T::SourceIp | T::Count | T::PolicyEvaluated)
            | (T::PolicyEvaluated, T::Disposition)
            | (T::Identifiers, T::HeaderFrom)
    )
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
                Ok(n) if n <= MAX_RECORD_COUNT => r.count = n,
                Ok(n) => {
                    self.record_problem.get_or_insert(format!(
                        "count {n} is more than one source can send in a report's period (at most {MAX_RECORD_COUNT})"
                    ));
                }
                Err(_) => {
                    self.record_problem.get_or_insert(format!("count `{}` is not a number", text.trim()));
                }
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
/// size. The encoding comes from the byte-order mark or the XML declaration; invalid
/// UTF-8 is repaired on the fly.
pub fn parse_into<R: BufRead>(
    mut input: R,
    limits: Limits,
    sink: &mut dyn ReportSink,
) -> Result<ReportHeader, ReportError> {
    // The first kilobyte decides the encoding, whatever the reader's buffer size (a small
    // buffer would otherwise hide the end of the XML declaration).
    let mut head = Vec::with_capacity(1024);
    (&mut input)
        .take(1024)
        .read_to_end(&mut head)
        .map_err(|e| ReportError::Xml { at: Position::at(0), message: e.to_string() })?;
    let detected = encoding::detect(&head)?;
    let input = std::io::Cursor::new(head).chain(input);
    match detected {
        encoding::Detected::Utf8 => parse_reader(LossyUtf8::new(input), limits, sink),
        other => parse_reader(LossyUtf8::new(encoding::Transcoder::new(input, other)), limits, sink),
    }
}

fn parse_reader<R: BufRead>(
    mut input: R,
    limits: Limits,
    sink: &mut dyn ReportSink,
) -> Result<ReportHeader, ReportError> {
    let mut parser = Parser::new(limits, sink);
    // The stream read so far and not yet tokenized, which starts `base` bytes into the
    // document.
    let mut buffer = String::new();
    let (mut base, mut complete) = (0u64, false);
    while let Fed::More(read) = parser.feed(&buffer, base, complete)? {
        buffer.drain(..read);
        base += read as u64;
        // The token is read again from its start once more has come: at least twice what is
        // held, so a long tag is scanned a few times, not once per read.
        let wanted = (buffer.len() * 2).max(1);
        while buffer.len() < wanted && !complete {
            let chunk =
                input.fill_buf().map_err(|e| ReportError::Xml { at: Position::at(base), message: e.to_string() })?;
            let len = chunk.len();
            if len == 0 {
                complete = true;
                break;
            }
            // The reader repairs UTF-8 and never splits a character.
            let text = std::str::from_utf8(chunk)
                .map_err(|e| ReportError::Encoding(format!("invalid UTF-8 after repair: {e}")))?;
            buffer.push_str(text);
            input.consume(len);
        }
    }
    parser.finish()
}

/// A tokenizer's error, `at` bytes into the document where its input started.
fn located(e: xml::XmlError, at: u64) -> ReportError {
    let at = Position::at(at + e.at as u64);
    match e.malformed {
        true => ReportError::Malformed { at, message: e.message },
        false => ReportError::Xml { at, message: e.message },
    }
}

/// Parses a report held in memory into a [`ReportSink`]: the same as [`parse_into`],
/// without copying the document through a buffer; errors give line and column.
pub fn parse_bytes_into(data: &[u8], limits: Limits, sink: &mut dyn ReportSink) -> Result<ReportHeader, ReportError> {
    let text = encoding::decode_all(data)?;
    parse_text(&text, limits, sink).map_err(|e| e.locate(&text))
}

fn parse_text(text: &str, limits: Limits, sink: &mut dyn ReportSink) -> Result<ReportHeader, ReportError> {
    let mut parser = Parser::new(limits, sink);
    match parser.feed(text, 0, true)? {
        Fed::Ended => parser.finish(),
        // A complete input always ends; kept as an error rather than a panic.
        Fed::More(read) => {
            Err(ReportError::Xml { at: Position::at(read as u64), message: "the document ends inside markup".into() })
        }
    }
}

/// What [`Parser::feed`] did with its input.
enum Fed {
    /// The document ended.
    Ended,
    /// A token is cut by the end of the input: this many bytes were read before it.
    More(usize),
}

/// The DMARC report namespaces (RFC 9990's, and its drafts'): elements in another
/// namespace are not the report's, whatever their local name.
fn is_report_namespace(uri: &str) -> bool {
    matches!(
        uri.trim(),
        "urn:ietf:params:xml:ns:dmarc-2.0" | "http://dmarc.org/dmarc-xml/0.1" | "http://dmarc.org/dmarc-xml/0.2"
    )
}

/// The path from `<feedback>` down (empty outside it).
fn report_path(path: &[Tag], root: Option<usize>) -> &[Tag] {
    match root {
        Some(r) if path.len() > r => &path[r..],
        _ => &[],
    }
}

/// The event handling shared by both readers.
struct Parser<'s> {
    limits: Limits,
    sink: &'s mut dyn ReportSink,
    /// Every open element, outermost first; elements before and around `<feedback>`
    /// (stray wrappers such as `<xs:schema>`) included.
    path: Vec<Tag>,
    /// Where each open element started.
    opened: Vec<u64>,
    /// Each open element's name as written (for messages), one after another in `names`,
    /// each ending where `name_ends` says (no allocation per element).
    names: String,
    name_ends: Vec<usize>,
    /// Namespace prefixes declared by open elements: (depth, prefix, a report namespace).
    prefixes: Vec<(usize, String, bool)>,
    /// The depth of the first element outside the report's namespaces, if one is open.
    foreign_from: Option<usize>,
    /// Where `<feedback>` is in `path`, once found.
    root: Option<usize>,
    /// The default namespace `<feedback>` declares (the report's, whatever it is).
    report_default: Option<String>,
    /// The `<feedback>` element has ended.
    ended: bool,
    /// The first element's name, for the message when there is no `<feedback>`.
    first_element: Option<String>,
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
            opened: Vec::new(),
            names: String::new(),
            name_ends: Vec::new(),
            prefixes: Vec::new(),
            foreign_from: None,
            root: None,
            report_default: None,
            ended: false,
            first_element: None,
            text: String::new(),
            state: State {
                header: ReportHeader { schema: "rfc7489", ..Default::default() },
                record: None,
                record_problem: None,
                saw_root: false,
                header_seen: Vec::new(),
                record_seen: Vec::new(),
            },
            record_index: 0,
            header_sent: false,
        }
    }

    /// The name, as written, of the open element `i` (0 the outermost).
    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.name_ends[i - 1] };
        &self.names[start..self.name_ends[i]]
    }

    /// The innermost open element's name as written.
    fn last_name(&self) -> &str {
        self.name_ends.len().checked_sub(1).map_or("", |i| self.name(i))
    }

    /// Whether an element with this name and attributes belongs to the report: inside
    /// `<feedback>`, an element in another namespace than the report's (a prefix bound
    /// elsewhere, or a default namespace changed to another) is not, whatever its local name.
    fn in_report_namespace(&self, prefix: Option<&str>, attributes: &str) -> bool {
        let ours = |uri: &str| is_report_namespace(uri) || self.report_default.as_deref() == Some(uri.trim());
        match prefix {
            None => {
                if self.root.is_none() || attributes.is_empty() {
                    return true;
                }
                xml::attributes(attributes).find(|(key, _)| *key == "xmlns").is_none_or(|(_, uri)| ours(uri))
            }
            Some(p) => {
                let declared_here =
                    xml::attributes(attributes).find(|(key, _)| key.strip_prefix("xmlns:").is_some_and(|d| d == p));
                match declared_here {
                    Some((_, uri)) => ours(uri),
                    None => self.prefixes.iter().rev().find(|(_, q, _)| q == p).is_some_and(|(_, _, ok)| *ok),
                }
            }
        }
    }

    /// Reads the tokens of `input`, which starts `base` bytes into the document; `complete`:
    /// nothing follows it.
    fn feed(&mut self, input: &str, base: u64, complete: bool) -> Result<Fed, ReportError> {
        let mut pos = 0;
        loop {
            let at = base + pos as u64;
            match xml::next(&input[pos..], complete).map_err(|e| located(e, at))? {
                Step::Token(token, len) => {
                    if self.event(token, at)? {
                        return Ok(Fed::Ended);
                    }
                    pos += len;
                }
                Step::Skip(len) => pos += len,
                Step::More => return Ok(Fed::More(pos)),
            }
        }
    }

    /// Handles one token that started at byte `at`; true at the end of the document.
    fn event(&mut self, token: Token<'_>, at: u64) -> Result<bool, ReportError> {
        match token {
            Token::Doctype => return Err(ReportError::Doctype),
            Token::Start { name: written, attributes, empty } => {
                if written.contains(['<', '&', '"']) {
                    return Err(ReportError::Malformed {
                        at: Position::at(at),
                        message: format!(
                            "`<{written}>` is not an element name: a `<` inside a text (it must be written &lt;), or a tag left unfinished"
                        ),
                    });
                }
                self.first_element.get_or_insert_with(|| written.to_ascii_lowercase());
                let depth = self.path.len();
                // Most elements have no attributes: nothing to look up then.
                let attributes = attributes.trim_ascii();
                if !attributes.is_empty() {
                    for (key, uri) in xml::attributes(attributes) {
                        if let Some(p) = key.strip_prefix("xmlns:") {
                            let uri = uri.trim();
                            let ours = is_report_namespace(uri) || self.report_default.as_deref() == Some(uri);
                            self.prefixes.push((depth, p.to_string(), ours));
                        }
                    }
                }
                let (prefix, local) = match memchr::memchr(b':', written.as_bytes()) {
                    Some(colon) => (Some(&written[..colon]), &written[colon + 1..]),
                    None => (None, written),
                };
                let ours = self.in_report_namespace(prefix, attributes);
                if self.root.is_some() && self.foreign_from.is_none() && !ours {
                    self.foreign_from = Some(depth);
                }
                let mut tag = if self.foreign_from.is_some() || !ours { Tag::Other } else { Tag::of(local) };
                if self.root.is_none() {
                    if tag == Tag::Feedback {
                        if self.ended {
                            return Err(ReportError::SecondReport { at: Position::at(at) });
                        }
                        self.root = Some(depth);
                        self.state.saw_root = true;
                        self.report_default = xml::attributes(attributes)
                            .find(|(key, _)| *key == "xmlns")
                            .map(|(_, uri)| uri.trim().to_string());
                        // The RFC's namespace, and the one its drafts used.
                        if xml::attributes(attributes).any(|(_, value)| {
                            matches!(value, "urn:ietf:params:xml:ns:dmarc-2.0" | "http://dmarc.org/dmarc-xml/0.2")
                        }) {
                            self.state.header.schema = "rfc9990";
                        }
                    } else {
                        // Outside the report (a stray wrapper): nothing in it is the report's.
                        tag = Tag::Other;
                    }
                }
                self.path.push(tag);
                self.opened.push(at);
                self.names.push_str(written);
                self.name_ends.push(self.names.len());
                if self.path.len() > self.limits.max_depth {
                    return Err(ReportError::TooDeep(self.limits.max_depth));
                }
                self.opened_element(at)?;
                self.text.clear();
                if empty {
                    self.close(at)?;
                }
            }
            Token::Text(t) | Token::CData(t) => {
                // XML allows no NUL anywhere (and `&#0;` is refused); one written raw is dropped.
                match memchr::memchr(0, t.as_bytes()) {
                    None => self.text.push_str(t),
                    Some(_) => self.text.extend(t.chars().filter(|&c| c != '\0')),
                }
                if self.text.len() > self.limits.max_text {
                    return Err(ReportError::TextTooLong(self.limits.max_text));
                }
            }
            Token::Reference(name) => {
                if name.starts_with('#') {
                    match xml::character(name) {
                        Some(c) => self.text.push(c),
                        None => {
                            return Err(ReportError::Malformed {
                                at: Position::at(at),
                                message: format!(
                                    "`&{name};` is not a character XML allows (NUL, a surrogate, or out of range)"
                                ),
                            });
                        }
                    }
                } else if let Some(c) = named_entity(name) {
                    self.text.push(c);
                } else {
                    return Err(ReportError::Malformed {
                        at: Position::at(at),
                        message: format!(
                            "`&{name};` is not an entity XML defines (only &amp; &lt; &gt; &quot; &apos;); a bare `&` must be written &amp;"
                        ),
                    });
                }
            }
            Token::End => self.close(at)?,
            Token::Eof => return Ok(true),
        }
        Ok(false)
    }

    /// Bookkeeping when an element opens: records start, duplicates are caught.
    fn opened_element(&mut self, at: u64) -> Result<(), ReportError> {
        let rel = report_path(&self.path, self.root);
        if rel.len() >= 2 {
            let (parent, tag) = (rel[rel.len() - 2], rel[rel.len() - 1]);
            let in_record = rel.len() > 2 && rel[1] == Tag::Record;
            if in_record {
                if identifies_record(parent, tag) {
                    if self.state.record_seen.contains(&(parent, tag)) && self.state.record_problem.is_none() {
                        self.state.record_problem = Some(format!("two <{}> elements", self.last_name()));
                    }
                    self.state.record_seen.push((parent, tag));
                }
            } else if identifies_report(parent, tag) {
                if self.state.header_seen.contains(&(parent, tag)) {
                    return Err(ReportError::Duplicate {
                        element: self.last_name().to_ascii_lowercase(),
                        at: Position::at(at),
                    });
                }
                self.state.header_seen.push((parent, tag));
            }
        }
        if !self.header_sent && rel.len() == 2 && rel[1] == Tag::Record {
            self.header_sent = true;
            self.sink.header(&self.state.header);
        }
        if rel.len() == 2 && rel[1] == Tag::Record {
            self.state.record_seen.clear();
        }
        self.state.start(rel);
        Ok(())
    }

    fn close(&mut self, _at: u64) -> Result<(), ReportError> {
        let Some(&last) = self.path.last() else { return Ok(()) };
        let rel = report_path(&self.path, self.root);
        self.state.assign(rel, &self.text);
        self.text.clear();
        if rel.len() == 2 && last == Tag::Record {
            self.record_index += 1;
            if let Some(r) = self.state.record.take() {
                let seen = |p, t| self.state.record_seen.contains(&(p, t));
                let missing = if !seen(Tag::Row, Tag::Count) {
                    Some("no <count>".to_string())
                } else if !seen(Tag::Row, Tag::SourceIp) {
                    Some("no <source_ip>".to_string())
                } else {
                    None
                };
                match self.state.record_problem.take().or(missing) {
                    Some(problem) => self.state.header.skipped.push(format!("record {}: {problem}", self.record_index)),
                    None => self.sink.record(r),
                }
            }
        }
        if self.root == Some(self.path.len() - 1) {
            self.root = None;
            self.ended = true;
        }
        if self.foreign_from == Some(self.path.len() - 1) {
            self.foreign_from = None;
        }
        let depth = self.path.len() - 1;
        self.prefixes.retain(|(d, _, _)| *d < depth);
        self.path.pop();
        self.opened.pop();
        self.name_ends.pop();
        self.names.truncate(self.name_ends.last().copied().unwrap_or(0));
        Ok(())
    }

    fn finish(self) -> Result<ReportHeader, ReportError> {
        if !self.state.saw_root {
            return Err(match self.first_element {
                Some(name) => ReportError::NotAggregate(name),
                None => ReportError::Empty,
            });
        }
        if self.root.is_some() {
            // Inside <feedback>: the innermost element left open says where.
            let open = self.name_ends.len() - 1;
            return Err(ReportError::Truncated {
                open: self.name(open).to_string(),
                at: Position::at(self.opened[open]),
            });
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
        let (begin, end) = (h.metadata.begin, h.metadata.end);
        if !self.state.header_seen.contains(&(Tag::DateRange, Tag::Begin))
            || !self.state.header_seen.contains(&(Tag::DateRange, Tag::End))
        {
            return Err(ReportError::Missing("report_metadata/date_range (begin and end)"));
        }
        if !(EARLIEST..=LATEST).contains(&begin) || !(EARLIEST..=LATEST).contains(&end) {
            return Err(ReportError::BadPeriod(format!(
                "begin {begin} and end {end} must be seconds since 1970, at most 4294967295 (the year 2106)"
            )));
        }
        if end < begin {
            return Err(ReportError::BadPeriod(format!("it ends ({end}) before it begins ({begin})")));
        }
        if end - begin > MAX_PERIOD {
            return Err(ReportError::BadPeriod(format!(
                "{} days long; reports cover a day or so, at most 90 days are accepted",
                (end - begin) / 86_400
            )));
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
