//! Containers, recognised by content (never by file name): XML, gzip, zip (every member),
//! e-mail messages (attachments of any content type, base64 or quoted-printable, RFC 2231
//! split file names), mbox. Each report found is returned with where it came from; each
//! problem is returned as an error for that item, and the rest goes on.

use flate2::read::MultiGzDecoder;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::io::{Cursor, Read};

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
}

/// Bounds on unpacking, against decompression bombs.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Largest decompressed size of one item (default 256 MB).
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
    UnpackError { origin: origin.to_string(), message: message.into() }
}

fn skip_bom_and_space(data: &[u8]) -> &[u8] {
    let d = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let start = d.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(d.len());
    &d[start..]
}

/// What is said of a compressed report that decompresses past `max_size` bytes.
pub fn too_large(max_size: u64) -> String {
    format!("decompresses to more than {} MB (the limit); refused", max_size / 1024 / 1024)
}

/// Reads a decompressing reader with the size and ratio limits.
fn inflate(
    origin: &str,
    mut reader: impl Read,
    compressed: u64,
    limits: &UnpackLimits,
) -> Result<Vec<u8>, UnpackError> {
    let mut out = Vec::new();
    (&mut reader)
        .take(limits.max_size + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(origin, format!("cannot decompress: {e}")))?;
    if out.len() as u64 > limits.max_size {
        return Err(err(origin, too_large(limits.max_size)));
    }
    let size = out.len() as u64;
    if size > 1024 * 1024 && size / compressed.max(1) > limits.max_ratio {
        return Err(err(
            origin,
            format!(
                "compression ratio over {}:1 ({} bytes to {size}): a decompression bomb; refused",
                limits.max_ratio, compressed
            ),
        ));
    }
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

/// Unpacks one input.
pub fn unpack(origin: &str, data: &[u8], limits: &UnpackLimits) -> Vec<Result<Item, UnpackError>> {
    let mut out = Vec::new();
    walk(origin, data, limits, 0, &mut out);
    out
}

fn walk(origin: &str, data: &[u8], limits: &UnpackLimits, depth: usize, out: &mut Vec<Result<Item, UnpackError>>) {
    if depth > limits.max_depth {
        out.push(Err(err(origin, format!("containers nested deeper than {}; refused", limits.max_depth))));
        return;
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        match inflate(origin, MultiGzDecoder::new(data), data.len() as u64, limits) {
            Ok(inner) => walk(origin, &inner, limits, depth + 1, out),
            Err(e) => out.push(Err(e)),
        }
        return;
    }
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        unzip(origin, data, limits, depth, out);
        return;
    }
    let trimmed = skip_bom_and_space(data);
    if trimmed.starts_with(b"<") {
        if mentions_feedback(trimmed) {
            out.push(Ok(Item { origin: origin.to_string(), content: Content::Aggregate(data.to_vec()) }));
        } else {
            out.push(Err(err(origin, "XML, but not a DMARC aggregate report (no <feedback> element)")));
        }
        return;
    }
    if trimmed.starts_with(b"From ") {
        mbox(origin, trimmed, limits, depth, out);
        return;
    }
    if looks_like_headers(trimmed) {
        message(origin, trimmed, limits, depth, out);
        return;
    }
    let start: String = String::from_utf8_lossy(&trimmed[..trimmed.len().min(16)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    out.push(Err(err(origin, format!("not a DMARC report, gzip, zip, e-mail or mbox (it starts with `{start}`)"))));
}

fn unzip(origin: &str, data: &[u8], limits: &UnpackLimits, depth: usize, out: &mut Vec<Result<Item, UnpackError>>) {
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(e) => return out.push(Err(err(origin, format!("not a readable zip archive: {e}")))),
    };
    if archive.is_empty() {
        return out.push(Err(err(origin, "an empty zip archive")));
    }
    for i in 0..archive.len() {
        let (name, result) = match archive.by_index(i) {
            Ok(file) => {
                if file.is_dir() {
                    continue;
                }
                let name = file.name().map(|n| n.to_string()).unwrap_or_else(|_| format!("#{i}"));
                let member = format!("{origin}!{name}");
                let compressed = file.compressed_size();
                (member.clone(), inflate(&member, file, compressed, limits))
            }
            Err(e) => {
                out.push(Err(err(&format!("{origin}!#{i}"), format!("cannot read this zip member: {e}"))));
                continue;
            }
        };
        match result {
            Ok(inner) => walk(&name, &inner, limits, depth + 1, out),
            Err(e) => out.push(Err(e)),
        }
    }
}

fn mbox(origin: &str, data: &[u8], limits: &UnpackLimits, depth: usize, out: &mut Vec<Result<Item, UnpackError>>) {
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
        message(&format!("{origin}#{}", n + 1), body, limits, depth + 1, out);
    }
}

fn message(origin: &str, data: &[u8], limits: &UnpackLimits, depth: usize, out: &mut Vec<Result<Item, UnpackError>>) {
    let Some(msg) = MessageParser::default().parse(data) else {
        return out.push(Err(err(origin, "an e-mail message that cannot be parsed")));
    };
    let is_arf = msg.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|r| r.eq_ignore_ascii_case("feedback-report"))
    });
    if is_arf {
        return out.push(Ok(Item { origin: origin.to_string(), content: Content::Failure(data.to_vec()) }));
    }
    let before = out.len();
    for (i, part) in msg.parts.iter().enumerate() {
        let name = part.attachment_name().map(str::to_string).unwrap_or_else(|| format!("part{i}"));
        let part_origin = format!("{origin}/{name}");
        match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => walk(&part_origin, b, limits, depth + 1, out),
            PartType::Text(t) => {
                let t = skip_bom_and_space(t.as_bytes());
                if t.starts_with(b"<") && mentions_feedback(t) {
                    walk(&part_origin, t, limits, depth + 1, out);
                }
            }
            PartType::Message(_) => walk(&part_origin, part.contents(), limits, depth + 1, out),
            _ => {}
        }
    }
    if out.len() == before {
        out.push(Err(err(origin, "an e-mail with no DMARC report in it (no XML, gzip or zip part)")));
    }
}
