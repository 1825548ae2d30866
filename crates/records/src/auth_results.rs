//! Headers a receiving server adds: Authentication-Results (RFC 8601),
//! ARC-Authentication-Results (RFC 8617) and Received-SPF (RFC 7208 §9.1).
//!
//! Lenient where real receivers differ from the grammar (Outlook omits the authserv-id and
//! writes properties without a ptype, Yahoo glues comments to results), strict enough that
//! garbage is an error, never a panic.

use serde::Serialize;

/// An Authentication-Results (RFC 8601) or ARC-Authentication-Results (RFC 8617) header,
/// parsed: who wrote it and one result per method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthenticationResults {
    /// The server that wrote the header (absent in Outlook's headers).
    pub authserv_id: Option<String>,
    /// The version after the authserv-id (`mx.example.com 1;`), when written.
    pub version: Option<u32>,
    /// ARC instance (`i=`), for ARC-Authentication-Results.
    pub instance: Option<u32>,
    /// One entry per `method=result` clause, in header order.
    pub results: Vec<MethodResult>,
}

/// One `method=result` clause: `spf=pass smtp.mailfrom=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodResult {
    /// Lower case: `spf`, `dkim`, `dmarc`, `arc`, `compauth`, ...
    pub method: String,
    /// The method's version (`dkim/1` gives `1`), when written.
    pub version: Option<String>,
    /// Lower case: `pass`, `fail`, `none`, ...
    pub result: String,
    /// The `reason=` value, when written.
    pub reason: Option<String>,
    /// `(ptype, property, value)`: `("header", "from", "example.com")`; ptype is empty for
    /// properties written without one (`action=none`).
    pub properties: Vec<(String, String, String)>,
    /// The comments, joined.
    pub comment: Option<String>,
}

impl MethodResult {
    /// A property by `ptype.property`, case-insensitively (`"header.from"`).
    pub fn property(&self, key: &str) -> Option<&str> {
        let (ptype, prop) = key.split_once('.').unwrap_or(("", key));
        self.properties
            .iter()
            .find(|(t, p, _)| t.eq_ignore_ascii_case(ptype) && p.eq_ignore_ascii_case(prop))
            .map(|(_, _, v)| v.as_str())
    }
}

/// A header value that could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {at})")]
pub struct HeaderError {
    /// Byte offset in the header value.
    pub at: usize,
    /// What was expected there.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Semi,
    Eq,
    Comment(String),
}

/// Splits a header value into words, quoted strings, `;`, `=` and comments. Words stop at
/// white space, `;`, `=` (unless `=` continues a base64 value), `(` and `"`.
fn tokens(text: &str) -> Result<Vec<(usize, Tok)>, HeaderError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b';' => {
                out.push((i, Tok::Semi));
                i += 1;
            }
            b'=' => {
                out.push((i, Tok::Eq));
                i += 1;
            }
            b'(' => {
                let start = i;
                let mut depth = 0usize;
                let mut s = String::new();
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(HeaderError { at: start, message: "unclosed comment `(`".into() });
                    };
                    match ch {
                        b'\\' => {
                            if let Some(&n) = b.get(i + 1) {
                                s.push(n as char);
                            }
                            i += 2;
                            continue;
                        }
                        b'(' => {
                            depth += 1;
                            if depth > 1 {
                                s.push('(');
                            }
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                            s.push(')');
                        }
                        _ => s.push(ch as char),
                    }
                    i += 1;
                }
                out.push((start, Tok::Comment(String::from_utf8_lossy(s.as_bytes()).trim().to_string())));
            }
            b')' => return Err(HeaderError { at: i, message: "`)` without `(`".into() }),
            b'"' => {
                let start = i;
                i += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(i) {
                        None => return Err(HeaderError { at: start, message: "unclosed quoted string".into() }),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            if let Some(&n) = b.get(i + 1) {
                                s.push(n);
                            }
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((start, Tok::Quoted(String::from_utf8_lossy(&s).into_owned())));
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b'"' | b'=' | b')') {
                    i += 1;
                }
                // A value such as base64 `header.b=AbC+/==` keeps its trailing `=`s when a
                // value was expected (the word follows an `=`).
                let after_eq = matches!(out.last(), Some((_, Tok::Eq)));
                if after_eq {
                    while i < b.len() && b[i] == b'=' {
                        i += 1;
                    }
                }
                out.push((start, Tok::Word(String::from_utf8_lossy(&b[start..i]).into_owned())));
            }
        }
    }
    Ok(out)
}

struct Cursor {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Cursor {
    fn comments(&mut self) -> Vec<String> {
        let mut c = Vec::new();
        while let Some((_, Tok::Comment(s))) = self.toks.get(self.pos) {
            c.push(s.clone());
            self.pos += 1;
        }
        c
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|(a, _)| *a).unwrap_or(self.end)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }
    fn err(&self, message: String) -> HeaderError {
        HeaderError { at: self.at(), message }
    }
    fn value(&mut self) -> Result<String, HeaderError> {
        self.comments();
        match self.next() {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => Ok(w),
            _ => {
                self.pos -= 1;
                Err(self.err("expected a value".into()))
            }
        }
    }
}

fn parse_resinfo(c: &mut Cursor) -> Result<MethodResult, HeaderError> {
    c.comments();
    let method_word = match c.next() {
        Some(Tok::Word(w)) => w,
        _ => {
            c.pos -= 1;
            return Err(c.err("expected `method=result`".into()));
        }
    };
    let (method, version) = match method_word.split_once('/') {
        Some((m, v)) => (m.to_ascii_lowercase(), Some(v.to_string())),
        None => (method_word.to_ascii_lowercase(), None),
    };
    c.comments();
    if c.next() != Some(Tok::Eq) {
        c.pos -= 1;
        return Err(c.err(format!("expected `=` after the method `{method}`")));
    }
    let result = c.value()?.to_ascii_lowercase();
    let mut r = MethodResult { method, version, result, reason: None, properties: vec![], comment: None };
    let mut comments = c.comments();
    while let Some(Tok::Word(key)) = c.peek().cloned() {
        c.pos += 1;
        c.comments();
        if c.next() != Some(Tok::Eq) {
            c.pos -= 1;
            return Err(c.err(format!("expected `=` after `{key}`")));
        }
        let value = c.value().unwrap_or_default();
        if key.eq_ignore_ascii_case("reason") {
            r.reason = Some(value);
        } else {
            let (ptype, prop) = key
                .rsplit_once('.')
                .map(|(t, p)| (t.to_ascii_lowercase(), p.to_ascii_lowercase()))
                .unwrap_or((String::new(), key.to_ascii_lowercase()));
            r.properties.push((ptype, prop, value));
        }
        comments.extend(c.comments());
    }
    if !comments.is_empty() {
        r.comment = Some(comments.join("; "));
    }
    Ok(r)
}

fn parse_results(text: &str, arc: bool) -> Result<AuthenticationResults, HeaderError> {
    let toks = tokens(text)?;
    let mut c = Cursor { toks, pos: 0, end: text.len() };
    let mut ar = AuthenticationResults { authserv_id: None, version: None, instance: None, results: vec![] };
    c.comments();
    if arc {
        match (c.next(), c.next(), c.next()) {
            (Some(Tok::Word(i)), Some(Tok::Eq), Some(Tok::Word(n))) if i.eq_ignore_ascii_case("i") => {
                ar.instance = Some(n.parse().map_err(|_| c.err(format!("`i={n}` is not an ARC instance number")))?);
            }
            _ => return Err(HeaderError { at: 0, message: "ARC-Authentication-Results starts with `i=N;`".into() }),
        }
        c.comments();
        if c.next() != Some(Tok::Semi) {
            c.pos -= 1;
            return Err(c.err("expected `;` after the ARC instance".into()));
        }
        c.comments();
    }
    // The authserv-id, unless the header starts right away with `method=result` (Outlook).
    let starts_with_result =
        matches!((c.toks.get(c.pos), c.toks.get(c.pos + 1)), (Some((_, Tok::Word(_))), Some((_, Tok::Eq))));
    if !starts_with_result {
        ar.authserv_id = Some(c.value().map_err(|_| c.err("expected the authserv-id".into()))?);
        c.comments();
        if let Some(Tok::Word(v)) = c.peek().cloned()
            && v.bytes().all(|b| b.is_ascii_digit())
        {
            c.pos += 1;
            ar.version = v.parse().ok();
        }
        c.comments();
        match c.next() {
            Some(Tok::Semi) => {}
            None => return Ok(ar),
            _ => {
                c.pos -= 1;
                return Err(c.err("expected `;` after the authserv-id".into()));
            }
        }
    }
    loop {
        c.comments();
        match c.peek() {
            None => break,
            Some(Tok::Semi) => {
                c.pos += 1;
                continue;
            }
            Some(Tok::Word(w))
                if w.eq_ignore_ascii_case("none") && c.toks.get(c.pos + 1).is_none_or(|(_, t)| *t != Tok::Eq) =>
            {
                c.pos += 1;
                continue;
            }
            _ => {}
        }
        ar.results.push(parse_resinfo(&mut c)?);
        c.comments();
        match c.next() {
            Some(Tok::Semi) | None => {}
            _ => {
                c.pos -= 1;
                return Err(c.err("expected `;` between results".into()));
            }
        }
    }
    Ok(ar)
}

impl AuthenticationResults {
    /// Parses the value of an Authentication-Results header (after the colon).
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        parse_results(value, false)
    }

    /// Parses the value of an ARC-Authentication-Results header (`i=N; ...`).
    pub fn parse_arc(value: &str) -> Result<Self, HeaderError> {
        parse_results(value, true)
    }

    /// The results of one method (`spf`, `dkim`, `dmarc`).
    pub fn method<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a MethodResult> + 'a {
        self.results.iter().filter(move |r| r.method == method)
    }
}

/// A Received-SPF header (RFC 7208 §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedSpf {
    /// Lower case: `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`.
    pub result: String,
    /// The comments after the result, joined.
    pub comment: Option<String>,
    /// `client-ip`, `envelope-from`, `helo`, `receiver`, `identity`, `mechanism`, `problem`,
    /// ... lower-cased keys, values as written.
    pub pairs: Vec<(String, String)>,
}

impl ReceivedSpf {
    /// Parses the value of a Received-SPF header (after the colon).
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let toks = tokens(value)?;
        let mut c = Cursor { toks, pos: 0, end: value.len() };
        c.comments();
        let result = match c.next() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            _ => {
                return Err(HeaderError {
                    at: 0,
                    message: "Received-SPF starts with a result (pass, fail, ...)".into(),
                });
            }
        };
        let comments = c.comments();
        let mut pairs = Vec::new();
        loop {
            c.comments();
            match c.next() {
                None => break,
                Some(Tok::Semi) => continue,
                Some(Tok::Word(k)) => {
                    c.comments();
                    if c.next() != Some(Tok::Eq) {
                        c.pos -= 1;
                        return Err(c.err(format!("expected `=` after `{k}`")));
                    }
                    let v = c.value()?;
                    pairs.push((k.to_ascii_lowercase(), v));
                }
                Some(_) => {
                    c.pos -= 1;
                    return Err(c.err("expected `key=value`".into()));
                }
            }
        }
        Ok(ReceivedSpf { result, comment: (!comments.is_empty()).then(|| comments.join("; ")), pairs })
    }

    /// The value of one `key=value` pair, the key case-insensitively (`"client-ip"`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Header shapes as the receivers' public documentation and help pages show them.
    const GMAIL: &str = "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=20230601 header.b=AbCdEf12;\r\n       dkim=pass header.i=@amazonses.com header.s=224i4yxa5dv7c2xz3womw6peuasteono header.b=Zz9+/w==;\r\n       spf=pass (google.com: domain of bounce@mail.example.com designates 54.240.8.1 as permitted sender) smtp.mailfrom=bounce@mail.example.com;\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com";
    const OUTLOOK: &str = "spf=pass (sender IP is 54.240.8.1) smtp.mailfrom=mail.example.com; dkim=pass (signature was verified) header.d=example.com;dmarc=pass action=none header.from=example.com;compauth=pass reason=100";
    const YAHOO: &str = "atlas-production.v2.mail-production.bf2.yahoo.com;\r\n dkim=pass header.i=@example.com header.s=abc;\r\n spf=pass smtp.mailfrom=mail.example.com;\r\n dmarc=pass(p=REJECT) header.from=example.com;";
    const FASTMAIL: &str = "mx6.messagingengine.com;\n    dkim=pass (2048-bit rsa key sha256) header.d=example.com header.i=@example.com header.b=AbCd header.a=rsa-sha256 header.s=abc x-bits=2048;\n    dmarc=pass policy.published-domain-policy=none policy.applied-disposition=none (p=none,d=none,d.eval=none) policy.policy-from=p header.from=example.com;\n    spf=pass smtp.mailfrom=bounce@mail.example.com smtp.helo=a8-1.smtp-out.amazonses.com";

    #[test]
    fn gmail() {
        let ar = AuthenticationResults::parse(GMAIL).unwrap();
        assert_eq!(ar.authserv_id.as_deref(), Some("mx.google.com"));
        assert_eq!(ar.results.len(), 4);
        let dkim: Vec<_> = ar.method("dkim").collect();
        assert_eq!(dkim[1].property("header.i"), Some("@amazonses.com"));
        assert_eq!(dkim[1].property("header.b"), Some("Zz9+/w=="));
        let spf = ar.method("spf").next().unwrap();
        assert_eq!(spf.property("smtp.mailfrom"), Some("bounce@mail.example.com"));
        assert!(spf.comment.as_deref().unwrap().contains("designates 54.240.8.1"));
        let dmarc = ar.method("dmarc").next().unwrap();
        assert_eq!((dmarc.result.as_str(), dmarc.property("header.from")), ("pass", Some("example.com")));
        assert_eq!(dmarc.comment.as_deref(), Some("p=NONE sp=NONE dis=NONE"));
    }

    #[test]
    fn outlook_without_authserv_id() {
        let ar = AuthenticationResults::parse(OUTLOOK).unwrap();
        assert_eq!(ar.authserv_id, None);
        assert_eq!(
            ar.results.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
            vec!["spf", "dkim", "dmarc", "compauth"]
        );
        assert_eq!(ar.method("dmarc").next().unwrap().property("action"), Some("none"));
        assert_eq!(ar.method("compauth").next().unwrap().reason.as_deref(), Some("100"));
    }

    #[test]
    fn yahoo_and_fastmail() {
        let ar = AuthenticationResults::parse(YAHOO).unwrap();
        let dmarc = ar.method("dmarc").next().unwrap();
        assert_eq!(dmarc.comment.as_deref(), Some("p=REJECT"));
        assert_eq!(dmarc.property("header.from"), Some("example.com"));
        let ar = AuthenticationResults::parse(FASTMAIL).unwrap();
        assert_eq!(ar.method("dmarc").next().unwrap().property("policy.applied-disposition"), Some("none"));
        assert_eq!(ar.method("spf").next().unwrap().property("smtp.helo"), Some("a8-1.smtp-out.amazonses.com"));
        assert_eq!(ar.method("dkim").next().unwrap().property("x-bits"), Some("2048"));
    }

    #[test]
    fn arc_none_and_version() {
        let ar = AuthenticationResults::parse_arc("i=1; mx.google.com; dkim=pass header.d=example.com").unwrap();
        assert_eq!(ar.instance, Some(1));
        assert_eq!(ar.results[0].method, "dkim");
        let none = AuthenticationResults::parse("example.org 1; none").unwrap();
        assert_eq!((none.version, none.results.len()), (Some(1), 0));
        let rfc = AuthenticationResults::parse("example.com; spf=pass smtp.mailfrom=example.net (comment) ; dkim/2=fail reason=\"bad sig\" header.i=@x.example").unwrap();
        assert_eq!(rfc.results[1].version.as_deref(), Some("2"));
        assert_eq!(rfc.results[1].reason.as_deref(), Some("bad sig"));
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "example.com; spf",
            "example.com; spf=pass (unclosed",
            "example.com; =pass",
            "x; spf=pass \"open",
            ")",
            "i=x; a",
        ] {
            assert!(
                AuthenticationResults::parse(bad).is_err() || AuthenticationResults::parse_arc(bad).is_err(),
                "{bad}"
            );
        }
        assert!(AuthenticationResults::parse_arc("mx.google.com; dkim=pass").is_err());
    }

    #[test]
    fn received_spf() {
        let r = ReceivedSpf::parse("pass (mybox.example.org: domain of myname@example.com designates 192.0.2.1 as permitted sender) receiver=mybox.example.org; client-ip=192.0.2.1; envelope-from=\"myname@example.com\"; helo=foo.example.com;").unwrap();
        assert_eq!(r.result, "pass");
        assert_eq!(r.get("client-ip"), Some("192.0.2.1"));
        assert_eq!(r.get("envelope-from"), Some("myname@example.com"));
        assert!(r.comment.unwrap().contains("designates"));
        assert!(ReceivedSpf::parse("(only a comment)").is_err());
        assert!(ReceivedSpf::parse("pass client-ip").is_err());
    }
}
