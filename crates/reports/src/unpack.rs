//! Containers, recognised by content (never by file name): XML, gzip, zip (every member),
//! e-mail messages (attachments of any content type, base64 or quoted-printable, RFC 2231
//! split file names), mbox. Each report found is handed out with where it came from, one
//! at a time (a member is decompressed, handed out, and dropped before the next); each
//! problem is handed out as an error for that item, and the rest goes on.
//!
//! Limits hold for the whole input: the decompressed bytes of every member at every level
//! together stay within `max_size`, and the compression ratio is checked while inflating,
//! so a bomb is stopped at the first byte past either limit.
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::io::{BufRead, Cursor, Read};

/// What a found report is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An aggregate report's XML.
    Aggregate(Vec<u8>),
    /// A failure report (ARF, RFC 6591 / RFC 9991): the whole message.
    Failure(Vec<u8>),
}

/// One report found in an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Where the report was found: `input.zip!a.xml.gz`, `mailbox#3/report.xml.gz`.
    pub origin: String,
    /// The report.
    pub content: Content,
}

/// A part of an input that could not be read as a report, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct UnpackError {
    /// Where in the input (`input.zip!a.xml.gz`).
    pub origin: String,
    /// What is wrong with it.
    pub message: String,
    /// The input was read and holds no report at all (an e-mail without a report part),
    /// rather than a report that cannot be read: mail intake leaves such messages alone.
    pub no_report: bool,
}

/// Bounds on unpacking, against decompression bombs.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Largest decompressed size of one input, all its members together (default 256 MB).
    pub max_size: u64,
    /// Largest decompressed/compressed ratio for items over 1 MB (default 1000).
    pub max_ratio: u64,
    /// Containers inside containers (default 8).
    pub max_depth: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits { max_size: 256 * 1024 * 1024, max_ratio: 1000, max_depth: 8 }
    }
}

fn err(origin: &str, message: impl Into<String>) -> UnpackError {
    UnpackError { origin: origin.to_string(), message: message.into(), no_report: false }
}

fn skip_bom_and_space(data: &[u8]) -> &[u8] {
    let d = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let start = d.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(d.len());
    &d[start..]
}

/// What is said of a compressed report that decompresses past `max_size` bytes.
pub fn too_large(max_size: u64) -> String {
    format!("decompresses to more than {} MB (the limit); refused (`--max-size` raises it)", max_size / 1024 / 1024)
}

/// What is said of compressed data whose ratio gives it away as a bomb.
pub fn bomb(max_ratio: u64, compressed: u64, size: u64) -> String {
    format!(
        "compression ratio over {max_ratio}:1 ({compressed} bytes to more than {size}): a decompression bomb; refused"
    )
}

/// Decompressed bytes below which the ratio is not checked (small files compress well).
const RATIO_FREE: u64 = 1024 * 1024;

/// The decompressed bytes an input may still produce, over all its members.
struct Budget {
    left: u64,
    limits: UnpackLimits,
}

/// Gzip members one after the other (RFC 1952: a gzip file may hold several), with what
/// reporters leave after the last one: a few bytes of line ends or padding are ignored;
/// anything else is an error. A `BufRead` of the decompressed bytes.
pub struct GzMembers<R: BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    /// Reads the gzip data in `inner`.
    pub fn new(inner: R) -> Self {
        GzMembers { member: Some(flate2::bufread::GzDecoder::new(inner)) }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else { return Ok(0) };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(mut rest) = self.member.take().map(|m| m.into_inner()) else { return Ok(0) };
            // After a member: another member, padding, or the end.
            let mut padding = 0usize;
            loop {
                let head = rest.fill_buf()?;
                if head.is_empty() {
                    return Ok(0);
                }
                if padding == 0 && head.starts_with(&[0x1f, 0x8b]) {
                    self.member = Some(flate2::bufread::GzDecoder::new(rest));
                    break;
                }
                let blank = head.iter().take_while(|b| b.is_ascii_whitespace() || **b == 0).count();
                if blank == 0 || padding + blank > 1024 {
                    return Err(std::io::Error::other(format!(
                        "{} bytes after the end of the gzip data that are not gzip: the file is damaged",
                        head.len()
                    )));
                }
                padding += blank;
                rest.consume(blank);
            }
        }
    }
}

/// Reads a decompressing reader within the budget and the ratio limit, checked as the
/// bytes come out (a bomb is stopped at the first chunk past a limit).
fn inflate(
    origin: &str,
    mut reader: impl Read,
    compressed: &dyn Fn() -> u64,
    size_hint: u64,
    budget: &mut Budget,
) -> Result<Vec<u8>, UnpackError> {
    let limits = budget.limits;
    // A declared size (zip) is only a hint: never more than the budget allows, and the
    // limits are still checked on what comes out.
    let mut out = Vec::with_capacity(size_hint.min(budget.left).min(limits.max_size) as usize);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(origin, format!("cannot decompress: {e}"))),
        };
        out.extend_from_slice(&chunk[..n]);
        let size = out.len() as u64;
        if size > budget.left {
            return Err(err(origin, too_large(limits.max_size)));
        }
        let compressed = compressed().max(1);
        if size > RATIO_FREE && size / compressed > limits.max_ratio {
            return Err(err(origin, bomb(limits.max_ratio, compressed, size)));
        }
    }
    budget.left -= out.len() as u64;
    Ok(out)
}

/// Whether the first 8 KB of an XML document name a `feedback` element (any case), as an
/// aggregate report's root does.
pub fn mentions_feedback(xml: &[u8]) -> bool {
    xml[..xml.len().min(8192)].windows(8).any(|w| w.eq_ignore_ascii_case(b"feedback"))
}

fn looks_like_headers(data: &[u8]) -> bool {
    let first = data.split(|b| *b == b'\n').next().unwrap_or_default();
    match first.iter().position(|b| *b == b':') {
        Some(i) if i > 0 => first[..i].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'),
        _ => false,
    }
}

/// Unpacks one input, handing each report (or problem) to `each` as it is found.
pub fn unpack_each(origin: &str, data: &[u8], limits: &UnpackLimits, each: &mut dyn FnMut(Result<Item, UnpackError>)) {
    let mut budget = Budget { left: limits.max_size, limits: *limits };
    walk(origin, data, &mut budget, 0, each);
}

/// Unpacks one input into a list (tests and small inputs; ingestion uses [`unpack_each`]).
pub fn unpack(origin: &str, data: &[u8], limits: &UnpackLimits) -> Vec<Result<Item, UnpackError>> {
    let mut out = Vec::new();
    unpack_each(origin, data, limits, &mut |item| out.push(item));
    out
}

type Each<'e> = dyn FnMut(Result<Item, UnpackError>) + 'e;

/// As [`walk`], for decompressed bytes: a report is handed on as it is, not copied (a
/// 200 MB member would otherwise be held twice).
fn walk_owned(origin: &str, data: Vec<u8>, budget: &mut Budget, depth: usize, out: &mut Each<'_>) {
    if depth <= budget.limits.max_depth && is_aggregate_xml(&data) {
        out(Ok(Item { origin: origin.to_string(), content: Content::Aggregate(data) }));
    } else {
        walk(origin, &data, budget, depth, out);
    }
}

fn is_aggregate_xml(data: &[u8]) -> bool {
    let trimmed = skip_bom_and_space(data);
    is_wide_xml(data) || (trimmed.starts_with(b"<") && mentions_feedback(trimmed))
}

fn walk(origin: &str, data: &[u8], budget: &mut Budget, depth: usize, out: &mut Each<'_>) {
    let limits = budget.limits;
    if depth > limits.max_depth {
        out(Err(err(origin, format!("containers nested deeper than {}; refused", limits.max_depth))));
        return;
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        // The ratio is checked against the compressed bytes read so far, so a bomb is
        // caught at its first megabyte, not at its end.
        let consumed = std::cell::Cell::new(0u64);
        let counted = CountingSlice { data, at: &consumed };
        match inflate(origin, GzMembers::new(counted), &|| consumed.get(), 0, budget) {
            Ok(inner) => walk_owned(origin, inner, budget, depth + 1, out),
            Err(e) => out(Err(e)),
        }
        return;
    }
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        unzip(origin, data, budget, depth, out);
        return;
    }
    if is_aggregate_xml(data) {
        out(Ok(Item { origin: origin.to_string(), content: Content::Aggregate(data.to_vec()) }));
        return;
    }
    let trimmed = skip_bom_and_space(data);
    if trimmed.starts_with(b"<") {
        out(Err(err(origin, "XML, but not a DMARC aggregate report (no <feedback> element)")));
        return;
    }
    if trimmed.starts_with(b"From ") {
        mbox(origin, trimmed, budget, depth, out);
        return;
    }
    if looks_like_headers(trimmed) {
        message(origin, trimmed, budget, depth, out);
        return;
    }
    out(Err(err(
        origin,
        format!("not a DMARC report, gzip, zip, e-mail or mbox (it starts with {})", describe_start(trimmed)),
    )));
}

/// The first bytes of unrecognised data, for a message: as text when they are text, in
/// hex otherwise (never raw bytes on a terminal).
pub fn describe_start(data: &[u8]) -> String {
    let head = &data[..data.len().min(16)];
    let printable = head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if printable && !head.is_empty() {
        format!("`{}`", String::from_utf8_lossy(head).escape_debug())
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("the bytes {}", hex.join(" "))
    }
}

/// A byte slice read as a `BufRead` that counts what was consumed.
struct CountingSlice<'d, 'c> {
    data: &'d [u8],
    at: &'c std::cell::Cell<u64>,
}

impl Read for CountingSlice<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.at.get() as usize..self.at.get() as usize + n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for CountingSlice<'_, '_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(&self.data[(self.at.get() as usize).min(self.data.len())..])
    }

    fn consume(&mut self, amt: usize) {
        self.at.set((self.at.get() + amt as u64).min(self.data.len() as u64));
    }
}

/// UTF-16 or UTF-32 XML (a BOM, or `<` with zero bytes around it).
pub fn is_wide_xml(data: &[u8]) -> bool {
    matches!(
        data,
        [0xff, 0xfe, ..]
            | [0xfe, 0xff, ..]
            | [0, 0, 0xfe, 0xff, ..]
            | [b'<', 0, ..]
            | [0, b'<', ..]
            | [0, 0, 0, b'<', ..]
    )
}

fn unzip(origin: &str, data: &[u8], budget: &mut Budget, depth: usize, out: &mut Each<'_>) {
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(e) => return out(Err(err(origin, format!("not a readable zip archive: {e}")))),
    };
    if archive.is_empty() {
        return out(Err(err(origin, "an empty zip archive")));
    }
    // Directory entries may all point at one member: each member is read once.
    let mut seen = std::collections::HashSet::new();
    for i in 0..archive.len() {
        let (name, result) = match archive.by_index(i) {
            Ok(file) => {
                if file.is_dir() || !seen.insert(file.header_start()) {
                    continue;
                }
                let name = file.name().map(|n| n.to_string()).unwrap_or_else(|_| format!("#{i}"));
                let member = format!("{origin}!{name}");
                let (compressed, declared) = (file.compressed_size(), file.size());
                (member.clone(), inflate(&member, file, &|| compressed, declared, budget))
            }
            Err(e) => {
                out(Err(err(&format!("{origin}!#{i}"), format!("cannot read this zip member: {e}"))));
                continue;
            }
        };
        match result {
            Ok(inner) => walk_owned(&name, inner, budget, depth + 1, out),
            Err(e) => out(Err(e)),
        }
    }
}

fn mbox(origin: &str, data: &[u8], budget: &mut Budget, depth: usize, out: &mut Each<'_>) {
    let mut starts = vec![0];
    for (i, w) in data.windows(6).enumerate() {
        if w == b"\nFrom " {
            starts.push(i + 1);
        }
    }
    starts.push(data.len());
    for (n, pair) in starts.windows(2).enumerate() {
        let chunk = &data[pair[0]..pair[1]];
        // Drop the `From ` separator line.
        let body = chunk.iter().position(|b| *b == b'\n').map(|i| &chunk[i + 1..]).unwrap_or_default();
        message(&format!("{origin}#{}", n + 1), body, budget, depth + 1, out);
    }
}

/// A multipart message whose closing boundary never comes (`--B--` missing): the closing
/// line is added, so the last part is read to the end of the message instead of lost.
fn close_boundary(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let head_end =
        data.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| data.windows(2).position(|w| w == b"\n\n"));
    // Searched as bytes: a lossy text of a head with invalid UTF-8 is longer than the head.
    let head = data[..head_end.unwrap_or(data.len()).min(64 * 1024)].to_ascii_lowercase();
    let Some(at) = memchr::memmem::find(&head, b"boundary=") else { return std::borrow::Cow::Borrowed(data) };
    // The boundary as written (case kept), quoted or not.
    let raw = String::from_utf8_lossy(&data[at + "boundary=".len()..(at + 200).min(data.len())]).into_owned();
    let boundary = match raw.strip_prefix('"') {
        Some(q) => q.split('"').next().unwrap_or_default().to_string(),
        None => raw.split(|c: char| c == ';' || c.is_whitespace()).next().unwrap_or_default().to_string(),
    };
    if boundary.is_empty() {
        return std::borrow::Cow::Borrowed(data);
    }
    let closing = format!("--{boundary}--");
    let opening = format!("--{boundary}");
    let body = &data[head_end.unwrap_or(0)..];
    let has = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
    if !has(&opening) || has(&closing) {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut owned = data.to_vec();
    owned.extend_from_slice(format!("\r\n{closing}\r\n").as_bytes());
    std::borrow::Cow::Owned(owned)
}

fn message(origin: &str, data: &[u8], budget: &mut Budget, depth: usize, out: &mut Each<'_>) {
    let data = close_boundary(data);
    let data = data.as_ref();
    let Some(msg) = MessageParser::default().parse(data) else {
        return out(Err(err(origin, "an e-mail message that cannot be parsed")));
    };
    let is_arf = msg.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|r| r.eq_ignore_ascii_case("feedback-report"))
    });
    if is_arf {
        return out(Ok(Item { origin: origin.to_string(), content: Content::Failure(data.to_vec()) }));
    }
    let mut found = 0usize;
    let mut failure_like = false;
    let mut inner: Vec<(String, &[u8])> = Vec::new();
    for (i, part) in msg.parts.iter().enumerate() {
        let name = part.attachment_name().map(str::to_string).unwrap_or_else(|| format!("part{i}"));
        let part_origin = format!("{origin}/{name}");
        match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                if crate::failure::looks_like_feedback(&String::from_utf8_lossy(&b[..b.len().min(64 * 1024)])) {
                    failure_like = true;
                } else {
                    inner.push((part_origin, b));
                }
            }
            PartType::Text(t) => {
                let bytes = skip_bom_and_space(t.as_bytes());
                if bytes.starts_with(b"<") && mentions_feedback(bytes) {
                    inner.push((part_origin, bytes));
                } else if crate::failure::looks_like_feedback(t) {
                    failure_like = true;
                }
            }
            PartType::Message(_) => inner.push((part_origin, part.contents())),
            _ => {}
        }
    }
    let mut errors = Vec::new();
    for (part_origin, bytes) in inner {
        walk(&part_origin, bytes, budget, depth + 1, &mut |item| match item {
            Ok(item) => {
                found += 1;
                out(Ok(item));
            }
            Err(e) => errors.push(e),
        });
    }
    if found == 0 && failure_like {
        // A failure report that is not well-formed ARF: the feedback fields sit in a part
        // of another type (an attachment named ATT00001), or in the text of a notice.
        return out(Ok(Item { origin: origin.to_string(), content: Content::Failure(data.to_vec()) }));
    }
    let nothing = found == 0 && errors.is_empty();
    for e in errors {
        out(Err(e));
    }
    if !nothing {
        return;
    }
    out(Err(UnpackError {
        no_report: true,
        ..err(origin, "an e-mail with no DMARC report in it (no XML, gzip or zip part, no failure report)")
    }));
}
