//! The XML tokenizer for reports: the subset of XML 1.0 reports are written in (elements,
//! attributes, text, character and entity references, CDATA, comments, processing
//! instructions), over a `&str` that may be a whole document or the part of a stream read
//! so far. A DOCTYPE is reported, not parsed: the parser refuses it.
//!
//! Tokens borrow from the input and nothing is allocated, so a stream's buffer only ever
//! holds the markup being read: text is handed out in pieces as it arrives, and markup
//! (a tag, a comment, a CDATA section) longer than [`MAX_MARKUP`] is refused.

/// The longest tag, comment, CDATA section or processing instruction accepted, in bytes.
pub(super) const MAX_MARKUP: usize = 1 << 20;

/// The longest entity or character reference's name (`&#x10FFFF;` is the longest XML
/// needs): an `&` with no `;` within it is a bare `&`.
const MAX_REFERENCE: usize = 32;

/// One piece of the document.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// `<name attributes>`, or `<name attributes/>` when `empty`.
    Start { name: &'a str, attributes: &'a str, empty: bool },
    /// `</name>` (names are not matched: lenient, the parser follows its own path).
    End,
    /// Character data, as written (references come as [`Token::Reference`]).
    Text(&'a str),
    /// A CDATA section's content.
    CData(&'a str),
    /// `&name;`: the name between `&` and `;` (`amp`, `#60`, `#x3c`).
    Reference(&'a str),
    /// `<!DOCTYPE`: not read further.
    Doctype,
    /// The end of the document.
    Eof,
}

/// What [`next`] found at the start of its input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// A token and the bytes it takes.
    Token(Token<'a>, usize),
    /// A comment, a processing instruction or the XML declaration: bytes to skip.
    Skip(usize),
    /// The input ends inside a token and more of the stream is to come.
    More,
}

/// A document that is not XML, and where (bytes from the start of [`next`]'s input).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct XmlError {
    pub(super) at: usize,
    pub(super) message: String,
    /// Accepted markup around something a report cannot hold (the parser's `Malformed`),
    /// rather than markup that is not XML at all.
    pub(super) malformed: bool,
}

fn error<T>(at: usize, message: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError { at, message: message.into(), malformed: false })
}

/// Reads the token at the start of `input`. `complete`: nothing follows `input` (a whole
/// document, or a stream's last bytes); otherwise a token cut by its end asks for
/// [`Step::More`].
pub(super) fn next(input: &str, complete: bool) -> Result<Step<'_>, XmlError> {
    let bytes = input.as_bytes();
    let Some(&first) = bytes.first() else {
        return Ok(if complete { Step::Token(Token::Eof, 0) } else { Step::More });
    };
    match first {
        b'<' => markup(input, complete),
        b'&' => reference(input, complete),
        _ => {
            let end = memchr::memchr2(b'<', b'&', bytes).unwrap_or(bytes.len());
            Ok(Step::Token(Token::Text(&input[..end]), end))
        }
    }
}

/// Finds `close` after `from`; the end of its input without it is an error (`what` is never
/// closed) or a request for more.
fn until(input: &str, from: usize, close: &str, complete: bool, what: &str) -> Result<Option<usize>, XmlError> {
    let rest = &input.as_bytes()[from..];
    let found = match close.as_bytes() {
        [byte] => memchr::memchr(*byte, rest),
        close => memchr::memmem::find(rest, close),
    };
    match found {
        Some(i) if from + i + close.len() > MAX_MARKUP => too_long(what),
        Some(i) => Ok(Some(from + i)),
        None if input.len() > MAX_MARKUP => too_long(what),
        None if complete => error(0, format!("{what} is never closed (no `{close}` before the end of the document)")),
        None => Ok(None),
    }
}

fn too_long<T>(what: &str) -> Result<T, XmlError> {
    error(0, format!("{what} longer than {} bytes: refused", MAX_MARKUP))
}

fn markup(input: &str, complete: bool) -> Result<Step<'_>, XmlError> {
    let bytes = input.as_bytes();
    // Not knowing yet whether the input is a comment, a CDATA section or a DOCTYPE.
    let undecided =
        |prefixes: &[&[u8]]| !complete && prefixes.iter().any(|p| bytes.len() < p.len() && p.starts_with(bytes));
    match bytes.get(1) {
        None if !complete => Ok(Step::More),
        None => error(0, "the document ends with a `<`"),
        Some(b'!') => {
            if undecided(&[b"<!--", b"<![CDATA[", b"<!DOCTYPE"]) {
                return Ok(Step::More);
            }
            if bytes.starts_with(b"<!--") {
                return Ok(until(input, 4, "-->", complete, "a comment")?.map_or(Step::More, |i| Step::Skip(i + 3)));
            }
            if bytes.starts_with(b"<![CDATA[") {
                return Ok(until(input, 9, "]]>", complete, "a CDATA section")?
                    .map_or(Step::More, |i| Step::Token(Token::CData(&input[9..i]), i + 3)));
            }
            if bytes.starts_with(b"<!DOCTYPE") {
                return Ok(Step::Token(Token::Doctype, 9));
            }
            error(0, "`<!` begins neither a comment (`<!--`), a CDATA section nor a DOCTYPE")
        }
        Some(b'?') => {
            Ok(until(input, 2, "?>", complete, "a processing instruction")?.map_or(Step::More, |i| Step::Skip(i + 2)))
        }
        Some(b'/') => {
            Ok(until(input, 2, ">", complete, "an end tag")?.map_or(Step::More, |i| Step::Token(Token::End, i + 1)))
        }
        Some(_) => start_tag(input, complete),
    }
}

/// `<name attributes>` or `<name attributes/>`: the tag ends at the first `>` outside a
/// quoted attribute value.
fn start_tag(input: &str, complete: bool) -> Result<Step<'_>, XmlError> {
    let bytes = input.as_bytes();
    let mut end = None;
    let mut i = 1;
    // Jumps from quote to quote: a `>` inside a quoted attribute value ends nothing.
    while let Some(found) = memchr::memchr3(b'>', b'"', b'\'', &bytes[i..]) {
        let at = i + found;
        if at >= MAX_MARKUP {
            return too_long("a tag");
        }
        if bytes[at] == b'>' {
            end = Some(at);
            break;
        }
        match memchr::memchr(bytes[at], &bytes[at + 1..]) {
            Some(close) => i = at + 1 + close + 1,
            None => break,
        }
    }
    if end.is_none() && bytes.len() > MAX_MARKUP {
        return too_long("a tag");
    }
    let Some(end) = end else {
        if !complete {
            return Ok(Step::More);
        }
        let name = tag_name(&input[1..]);
        return error(0, format!("the document ends inside the tag `<{name}` (no `>`)"));
    };
    let inner = &input[1..end];
    let (inner, empty) = match inner.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (inner, false),
    };
    let name = tag_name(inner);
    if name.is_empty() {
        return Err(XmlError {
            at: 0,
            message: "a `<` that begins no tag: a `<` inside a text must be written &lt;".into(),
            malformed: true,
        });
    }
    Ok(Step::Token(Token::Start { name, attributes: &inner[name.len()..], empty }, end + 1))
}

fn tag_name(inner: &str) -> &str {
    let end = inner.bytes().position(|b| b.is_ascii_whitespace() || b == b'/' || b == b'>').unwrap_or(inner.len());
    &inner[..end]
}

fn reference(input: &str, complete: bool) -> Result<Step<'_>, XmlError> {
    let window = &input.as_bytes()[1..input.len().min(MAX_REFERENCE + 2)];
    match memchr::memchr(b';', window) {
        Some(i) => Ok(Step::Token(Token::Reference(&input[1..1 + i]), i + 2)),
        None if !complete && window.len() <= MAX_REFERENCE => Ok(Step::More),
        None => Err(XmlError {
            at: 0,
            message: "a bare `&` (no `;` ends a reference): it must be written &amp;".into(),
            malformed: true,
        }),
    }
}

/// A tag's attributes, as (name, value as written); a malformed one ends the list.
pub(super) fn attributes(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        let s = rest.trim_start();
        let eq = s.find('=')?;
        let key = s[..eq].trim_end();
        if key.is_empty() || key.contains(|c: char| c.is_ascii_whitespace()) {
            rest = "";
            return None;
        }
        let after = s[eq + 1..].trim_start();
        let quote = after.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let close = after[1..].find(quote)?;
        rest = &after[close + 2..];
        Some((key, &after[1..close + 1]))
    })
}

/// The character a character reference (`#60`, `#x3C`) stands for; `None` when it stands
/// for none XML allows (NUL, a surrogate, beyond U+10FFFF, not a number).
pub(super) fn character(reference: &str) -> Option<char> {
    let digits = reference.strip_prefix('#')?;
    let code = match digits.strip_prefix(['x', 'X']) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()?
        }
        Some(_) => return None,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok()?,
        None => return None,
    };
    char::from_u32(code).filter(|&c| c != '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of a document, adjacent texts joined, or the error (where, what) that
    /// ends it; the document is made available `available` bytes at first, then a byte more
    /// each time the tokenizer asks.
    fn read(doc: &str, mut available: usize) -> Result<Vec<String>, (usize, String)> {
        let mut out: Vec<String> = Vec::new();
        let mut pos = 0;
        loop {
            let step = next(&doc[pos..available], available == doc.len()).map_err(|e| (pos + e.at, e.message))?;
            match step {
                Step::Token(Token::Eof, _) => return Ok(out),
                Step::Token(Token::Text(t), n) => {
                    match out.last_mut().filter(|last| last.starts_with("text ")) {
                        Some(last) => last.push_str(t),
                        None => out.push(format!("text {t}")),
                    }
                    pos += n;
                }
                Step::Token(t, n) => {
                    out.push(format!("{t:?}"));
                    pos += n;
                }
                Step::Skip(n) => pos += n,
                Step::More => {
                    available += 1;
                    while !doc.is_char_boundary(available) {
                        available += 1;
                    }
                }
            }
        }
    }

    /// The tokens of a document read whole, checked to be the same (or the same error) when
    /// it is read as a stream cut anywhere.
    fn tokens(doc: &str) -> Result<Vec<String>, (usize, String)> {
        let whole = read(doc, doc.len());
        for cut in (0..doc.len()).filter(|&c| doc.is_char_boundary(c)) {
            assert_eq!(read(doc, cut), whole, "{doc:?} cut at {cut}");
        }
        whole
    }

    proptest::proptest! {
        #[test]
        fn a_stream_cut_anywhere_reads_as_the_whole_document(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "<", ">", "/", "!", "?", "-", "--", "[", "]", "&", ";", "#", "x", "=", "\"", "'", " ",
                    "a", "é", "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE", "<?", "?>", "&amp;", "&#60;",
                ]),
                0..24,
            )
        ) {
            let _ = tokens(&parts.concat());
        }
    }

    #[test]
    fn reads_the_report_subset_whole_and_streamed() {
        let doc =
            "<?xml version=\"1.0\"?>\n<!-- a > comment --><f a=\"x>y\" b='z'>t&amp;u<![CDATA[<c>]]>&#x3c;<e/></f>";
        assert_eq!(
            tokens(doc).unwrap(),
            [
                "text \n",
                "Start { name: \"f\", attributes: \" a=\\\"x>y\\\" b='z'\", empty: false }",
                "text t",
                "Reference(\"amp\")",
                "text u",
                "CData(\"<c>\")",
                "Reference(\"#x3c\")",
                "Start { name: \"e\", attributes: \"\", empty: true }",
                "End",
            ]
        );
    }

    #[test]
    fn attributes_and_character_references() {
        let found: Vec<_> = attributes(" xmlns=\"urn:a\"  xmlns:d = 'urn:b' junk").collect();
        assert_eq!(found, [("xmlns", "urn:a"), ("xmlns:d", "urn:b")]);
        assert_eq!(character("#60"), Some('<'));
        assert_eq!(character("#x10FFFF"), Some('\u{10FFFF}'));
        for bad in ["#0", "#xD800", "#x110000", "#", "#x", "#12a", "amp", "#99999999999"] {
            assert_eq!(character(bad), None, "{bad}");
        }
    }

    #[test]
    fn what_is_not_xml_is_refused_with_a_reason() {
        for (doc, says) in [
            ("<a", "ends inside the tag `<a`"),
            ("<!-- never", "a comment is never closed"),
            ("<![CDATA[ x", "a CDATA section is never closed"),
            ("<!ELEMENT x>", "neither a comment"),
            ("<", "ends with a `<`"),
            ("& x", "a bare `&`"),
            ("< b>", "a `<` that begins no tag"),
        ] {
            let e = next(doc, true).unwrap_err();
            assert!(e.message.contains(says), "{doc}: {}", e.message);
        }
        let long = format!("<!--{}", "x".repeat(MAX_MARKUP));
        assert!(next(&long, false).unwrap_err().message.contains("longer than"));
        assert_eq!(next("<!DOC", false), Ok(Step::More));
        assert_eq!(next("<!DOCTYPE x>", true), Ok(Step::Token(Token::Doctype, 9)));
    }
}
