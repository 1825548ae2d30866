//! The document's character encoding, from its byte-order mark, the shape of its first
//! bytes, or its XML declaration (XML 1.0 appendix F), and the text decoded to UTF-8. UTF-8
//! itself goes through [`super::lossy_utf8`]; other encodings are decoded here (UTF-16 and
//! the single-byte ones by encoding_rs, UTF-32 by hand).

use super::ReportError;
use std::borrow::Cow;
use std::io::BufRead;

/// What the first bytes say about the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    /// UTF-8 (or no declaration): the byte-order mark's length to skip.
    Utf8,
    /// An encoding encoding_rs decodes; the byte-order mark's length.
    Other(&'static encoding_rs::Encoding, usize),
    /// UTF-32; big-endian or not; the byte-order mark's length.
    Utf32 { big_endian: bool, bom: usize },
}

/// The encoding of a document that starts with `head` (its first bytes: 1 KB is plenty).
pub(crate) fn detect(head: &[u8]) -> Result<Detected, ReportError> {
    use encoding_rs::{UTF_16BE, UTF_16LE};
    Ok(match head {
        [0x00, 0x00, 0xfe, 0xff, ..] => Detected::Utf32 { big_endian: true, bom: 4 },
        [0xff, 0xfe, 0x00, 0x00, ..] => Detected::Utf32 { big_endian: false, bom: 4 },
        [0xef, 0xbb, 0xbf, ..] => Detected::Utf8,
        [0xfe, 0xff, ..] => Detected::Other(UTF_16BE, 2),
        [0xff, 0xfe, ..] => Detected::Other(UTF_16LE, 2),
        [0x00, 0x00, 0x00, b'<', ..] => Detected::Utf32 { big_endian: true, bom: 0 },
        [b'<', 0x00, 0x00, 0x00, ..] => Detected::Utf32 { big_endian: false, bom: 0 },
        [0x00, b'<', 0x00, ..] => Detected::Other(UTF_16BE, 0),
        [b'<', 0x00, _, 0x00, ..] => Detected::Other(UTF_16LE, 0),
        _ => match declared(head) {
            None => Detected::Utf8,
            Some(label) => match encoding_rs::Encoding::for_label(label.as_bytes()) {
                Some(e) if e == encoding_rs::UTF_8 => Detected::Utf8,
                // A declaration read in ASCII cannot truthfully say UTF-16: the bytes would
                // look otherwise. Treat the document as the UTF-8 it is.
                Some(e) if e == UTF_16LE || e == UTF_16BE => Detected::Utf8,
                Some(e) => Detected::Other(e, 0),
                None if label.eq_ignore_ascii_case("utf-32") || label.eq_ignore_ascii_case("ucs-4") => Detected::Utf8,
                None => {
                    return Err(ReportError::Encoding(format!(
                        "the XML declares encoding=\"{label}\", which this reader does not know; refused"
                    )));
                }
            },
        },
    })
}

/// The `encoding` of an XML declaration at the start of `head`, if there is one.
fn declared(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(&head[..head.len().min(1024)]).unwrap_or_else(|e| {
        // The declaration itself is ASCII; whatever follows may be in any encoding.
        std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
    });
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let decl = text.strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].trim().to_string())
}

/// A whole document decoded to UTF-8 (invalid UTF-8 repaired with U+FFFD).
pub(crate) fn decode_all(data: &[u8]) -> Result<Cow<'_, str>, ReportError> {
    Ok(match detect(data)? {
        // `from_utf8` checks valid text much faster than `from_utf8_lossy` does.
        Detected::Utf8 => match std::str::from_utf8(data) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(data),
        },
        Detected::Other(encoding, bom) => {
            let (text, _) = encoding.decode_without_bom_handling(&data[bom..]);
            Cow::Owned(text.into_owned())
        }
        Detected::Utf32 { big_endian, bom } => {
            let mut out = String::with_capacity(data.len() / 4);
            let mut decoder = Utf32 { big_endian, pending: Vec::new() };
            decoder.decode(&data[bom..], &mut out, true);
            Cow::Owned(out)
        }
    })
}

/// UTF-32 to UTF-8; a bad code unit becomes U+FFFD.
struct Utf32 {
    big_endian: bool,
    pending: Vec<u8>,
}

impl Utf32 {
    fn decode(&mut self, input: &[u8], out: &mut String, last: bool) {
        self.pending.extend_from_slice(input);
        let whole = self.pending.len() / 4 * 4;
        for unit in self.pending[..whole].chunks_exact(4) {
            let bytes = [unit[0], unit[1], unit[2], unit[3]];
            let value = if self.big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) };
            out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
        }
        self.pending.drain(..whole);
        if last && !self.pending.is_empty() {
            out.push('\u{fffd}');
            self.pending.clear();
        }
    }
}

enum Decoder {
    Whatwg(encoding_rs::Decoder),
    Utf32(Utf32),
}

/// A reader of a document in another encoding that gives UTF-8, chunk by chunk, in
/// constant memory.
pub(crate) struct Transcoder<R> {
    inner: R,
    decoder: Decoder,
    out: String,
    pos: usize,
    done: bool,
    skip: usize,
}

impl<R: BufRead> Transcoder<R> {
    pub(crate) fn new(inner: R, detected: Detected) -> Transcoder<R> {
        let (decoder, skip) = match detected {
            Detected::Other(e, bom) => (Decoder::Whatwg(e.new_decoder_without_bom_handling()), bom),
            Detected::Utf32 { big_endian, bom } => (Decoder::Utf32(Utf32 { big_endian, pending: Vec::new() }), bom),
            Detected::Utf8 => (Decoder::Whatwg(encoding_rs::UTF_8.new_decoder_without_bom_handling()), 0),
        };
        Transcoder { inner, decoder, out: String::new(), pos: 0, done: false, skip }
    }

    fn refill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() && !self.done {
            let chunk = self.inner.fill_buf()?;
            let mut chunk = chunk.to_vec();
            let n = chunk.len();
            if self.skip > 0 {
                let drop = self.skip.min(chunk.len());
                chunk.drain(..drop);
                self.skip -= drop;
            }
            let last = n == 0;
            match &mut self.decoder {
                Decoder::Whatwg(d) => {
                    self.out.reserve(d.max_utf8_buffer_length(chunk.len()).unwrap_or(chunk.len() * 3) + 4);
                    let (_, read, _) = d.decode_to_string(&chunk, &mut self.out, last);
                    debug_assert_eq!(read, chunk.len());
                }
                Decoder::Utf32(d) => d.decode(&chunk, &mut self.out, last),
            }
            self.inner.consume(n);
            self.done = last;
        }
        Ok(())
    }
}

impl<R: BufRead> std::io::Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Transcoder<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out.as_bytes()[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xff, 0xfe] } else { vec![] };
        out.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        out
    }

    fn utf32be(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0, 0, 0xfe, 0xff] } else { vec![] };
        out.extend(text.chars().flat_map(|c| (c as u32).to_be_bytes()));
        out
    }

    #[test]
    fn every_encoding_decodes_whole_and_streamed() {
        let text = "<?xml version=\"1.0\"?><feedback><org_name>Réseau ✓</org_name></feedback>";
        let latin1 =
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><feedback><org_name>R\u{e9}seau</org_name></feedback>";
        let latin1_bytes: Vec<u8> = latin1.chars().map(|c| c as u32 as u8).collect();
        let cases: Vec<(Vec<u8>, String)> = vec![
            (utf16le(text, true), text.to_string()),
            (utf16le(text, false), text.to_string()),
            (utf32be(text, true), text.to_string()),
            (utf32be(text, false), text.to_string()),
            (latin1_bytes, latin1.to_string()),
            (text.as_bytes().to_vec(), text.to_string()),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_all(&bytes).unwrap(), want);
            let detected = detect(&bytes).unwrap();
            if detected != Detected::Utf8 {
                let mut streamed = String::new();
                Transcoder::new(std::io::BufReader::with_capacity(7, bytes.as_slice()), detected)
                    .read_to_string(&mut streamed)
                    .unwrap();
                assert_eq!(streamed, want);
            }
        }
        let unknown = b"<?xml version='1.0' encoding='x-martian'?><feedback/>";
        assert!(decode_all(unknown).unwrap_err().to_string().contains("x-martian"));
    }
}
