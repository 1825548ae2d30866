//! SPF records (RFC 7208 §4.6, §5, §6, §7, §12): parse every term, report every problem,
//! format back to text.

use crate::diag::{Diagnostic, Parsed, Severity, code};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// An SPF record (RFC 7208): `v=spf1` and its terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfRecord {
    /// The terms after `v=spf1`, in record order.
    pub terms: Vec<Term>,
}

/// One term of an SPF record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A mechanism with its qualifier (`-all`, `include:amazonses.com`).
    Directive(Directive),
    /// A `name=value` modifier (`redirect=`, `exp=`).
    Modifier(Modifier),
}

/// A mechanism and its qualifier: the result when the mechanism matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// `None` when the record wrote no qualifier (which means `+`).
    pub qualifier: Option<Qualifier>,
    /// What is matched against the client IP.
    pub mechanism: Mechanism,
}

impl Directive {
    /// The qualifier, `+` when none was written.
    pub fn effective_qualifier(&self) -> Qualifier {
        self.qualifier.unwrap_or(Qualifier::Pass)
    }
}

/// A directive's qualifier: the SPF result when its mechanism matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `+`: pass (the default).
    Pass,
    /// `-`: fail.
    Fail,
    /// `~`: softfail.
    SoftFail,
    /// `?`: neutral.
    Neutral,
}

impl Qualifier {
    pub(crate) fn symbol(self) -> char {
        match self {
            Qualifier::Pass => '+',
            Qualifier::Fail => '-',
            Qualifier::SoftFail => '~',
            Qualifier::Neutral => '?',
        }
    }

    fn from_symbol(c: u8) -> Option<Self> {
        match c {
            b'+' => Some(Qualifier::Pass),
            b'-' => Some(Qualifier::Fail),
            b'~' => Some(Qualifier::SoftFail),
            b'?' => Some(Qualifier::Neutral),
            _ => None,
        }
    }

    /// The SPF result a match with this qualifier gives.
    pub fn result_name(self) -> &'static str {
        match self {
            Qualifier::Pass => "pass",
            Qualifier::Fail => "fail",
            Qualifier::SoftFail => "softfail",
            Qualifier::Neutral => "neutral",
        }
    }
}

/// CIDR prefix lengths on `a` and `mx`: `/24`, `//64`, `/24//64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DualCidr {
    /// Prefix length for IPv4 addresses (`/24`), 32 when absent.
    pub v4: Option<u8>,
    /// Prefix length for IPv6 addresses (`//64`), 128 when absent.
    pub v6: Option<u8>,
}

/// An SPF mechanism (RFC 7208 §5): what a client IP is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// `all`: matches every IP.
    All,
    /// `include:<domain>`: matches when that domain's SPF record passes.
    Include(MacroString),
    /// `a[:<domain>][/cidr]`: the domain's A or AAAA addresses.
    A {
        /// The domain, the current domain when absent.
        domain: Option<MacroString>,
        /// Prefix lengths applied to the addresses.
        cidr: DualCidr,
    },
    /// `mx[:<domain>][/cidr]`: the addresses of the domain's MX hosts.
    Mx {
        /// The domain, the current domain when absent.
        domain: Option<MacroString>,
        /// Prefix lengths applied to the addresses.
        cidr: DualCidr,
    },
    /// `ptr[:<domain>]` (deprecated): the client's validated reverse name lies in the domain.
    Ptr(Option<MacroString>),
    /// `ip4:<addr>[/prefix]`.
    Ip4 {
        /// The network address.
        addr: Ipv4Addr,
        /// The prefix length, 32 when absent.
        prefix: Option<u8>,
    },
    /// `ip6:<addr>[/prefix]`.
    Ip6 {
        /// The network address.
        addr: Ipv6Addr,
        /// The prefix length, 128 when absent.
        prefix: Option<u8>,
    },
    /// `exists:<domain>`: matches when the expanded name has an A record.
    Exists(MacroString),
}

impl Mechanism {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mechanism::All => "all",
            Mechanism::Include(_) => "include",
            Mechanism::A { .. } => "a",
            Mechanism::Mx { .. } => "mx",
            Mechanism::Ptr(_) => "ptr",
            Mechanism::Ip4 { .. } => "ip4",
            Mechanism::Ip6 { .. } => "ip6",
            Mechanism::Exists(_) => "exists",
        }
    }

    /// Whether evaluating this mechanism costs one of the ten DNS-querying terms.
    pub fn counts_as_lookup(&self) -> bool {
        matches!(
            self,
            Mechanism::Include(_)
                | Mechanism::A { .. }
                | Mechanism::Mx { .. }
                | Mechanism::Ptr(_)
                | Mechanism::Exists(_)
        )
    }
}

/// An SPF modifier (RFC 7208 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modifier {
    /// `redirect=<domain>`: that domain's record decides when no mechanism matches.
    Redirect(MacroString),
    /// `exp=<domain>`: where the explanation for a fail is published.
    Exp(MacroString),
    /// A modifier RFC 7208 does not define; receivers ignore it.
    Unknown {
        /// The modifier name, as written.
        name: String,
        /// Its value.
        value: MacroString,
    },
}

/// A macro-string (RFC 7208 §7.1): literal text with `%{...}` macros and escapes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MacroString(pub Vec<MacroPart>);

/// One piece of a macro-string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacroPart {
    /// Text taken as written.
    Literal(String),
    /// A `%{...}` macro.
    Macro(Macro),
    /// `%%`
    Percent,
    /// `%_`
    Space,
    /// `%-`
    UrlSpace,
}

/// A `%{...}` macro (RFC 7208 §7.1): a letter with its transformers and delimiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macro {
    /// What the macro expands to.
    pub letter: MacroLetter,
    /// Upper-case letter: URL-escape the expansion.
    pub url_escape: bool,
    /// Keep only this many right-hand parts after splitting, when written.
    pub digits: Option<u32>,
    /// `r`: reverse the parts before keeping them.
    pub reverse: bool,
    /// The characters to split on (`.` when empty).
    pub delimiters: String,
}

/// A macro letter: which fact about the message or connection a macro expands to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacroLetter {
    /// `s`: the sender (`local@domain`).
    Sender,
    /// `l`: the local part of the sender.
    LocalPart,
    /// `o`: the domain of the sender.
    SenderDomain,
    /// `d`: the current domain.
    Domain,
    /// `i`: the client IP.
    Ip,
    /// `p`: the validated domain name of the client IP.
    ValidatedName,
    /// `v`: `in-addr` or `ip6`.
    IpVersion,
    /// `h`: the HELO/EHLO name.
    Helo,
    /// `c`: the client IP in readable form (exp only).
    ClientIp,
    /// `r`: the receiving host's name (exp only).
    Receiver,
    /// `t`: the current timestamp (exp only).
    Timestamp,
}

impl MacroLetter {
    fn from_char(c: char) -> Option<Self> {
        Some(match c.to_ascii_lowercase() {
            's' => MacroLetter::Sender,
            'l' => MacroLetter::LocalPart,
            'o' => MacroLetter::SenderDomain,
            'd' => MacroLetter::Domain,
            'i' => MacroLetter::Ip,
            'p' => MacroLetter::ValidatedName,
            'v' => MacroLetter::IpVersion,
            'h' => MacroLetter::Helo,
            'c' => MacroLetter::ClientIp,
            'r' => MacroLetter::Receiver,
            't' => MacroLetter::Timestamp,
            _ => return None,
        })
    }

    /// The letter as written in a record, lower case.
    pub fn as_char(self) -> char {
        match self {
            MacroLetter::Sender => 's',
            MacroLetter::LocalPart => 'l',
            MacroLetter::SenderDomain => 'o',
            MacroLetter::Domain => 'd',
            MacroLetter::Ip => 'i',
            MacroLetter::ValidatedName => 'p',
            MacroLetter::IpVersion => 'v',
            MacroLetter::Helo => 'h',
            MacroLetter::ClientIp => 'c',
            MacroLetter::Receiver => 'r',
            MacroLetter::Timestamp => 't',
        }
    }

    /// True for `c`, `r` and `t`, which only explanation text may use.
    pub fn exp_only(self) -> bool {
        matches!(self, MacroLetter::ClientIp | MacroLetter::Receiver | MacroLetter::Timestamp)
    }
}

impl MacroString {
    /// A macro-string of literal text only.
    pub fn literal(text: &str) -> Self {
        MacroString(vec![MacroPart::Literal(text.to_string())])
    }

    pub(crate) fn has_macros(&self) -> bool {
        self.0.iter().any(|p| !matches!(p, MacroPart::Literal(_)))
    }

    /// The text when it holds no macro at all.
    pub fn as_literal(&self) -> Option<String> {
        if self.has_macros() {
            return None;
        }
        Some(self.0.iter().map(|p| if let MacroPart::Literal(s) = p { s.as_str() } else { "" }).collect())
    }

    /// Parses a macro-string. `exp` allows the `c`, `r` and `t` letters (explanation text).
    pub fn parse(text: &str, exp: bool) -> Result<Self, MacroError> {
        Self::parse_inner(text, exp, false)
    }

    /// Parses the TXT text an `exp=` points to: an explain-string, macros (including `c`,
    /// `r`, `t`) and spaces (RFC 7208 §6.2).
    pub fn parse_explain_string(text: &str) -> Result<Self, MacroError> {
        Self::parse_inner(text, true, true)
    }

    fn parse_inner(text: &str, exp: bool, spaces: bool) -> Result<Self, MacroError> {
        let mut parts: Vec<MacroPart> = Vec::new();
        let mut literal = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let Some(&next) = bytes.get(i + 1) else {
                    return Err(MacroError {
                        at: i,
                        message: "a `%` at the end: write `%%` for a literal percent sign".into(),
                    });
                };
                let part = match next {
                    b'%' => {
                        i += 2;
                        MacroPart::Percent
                    }
                    b'_' => {
                        i += 2;
                        MacroPart::Space
                    }
                    b'-' => {
                        i += 2;
                        MacroPart::UrlSpace
                    }
                    b'{' => {
                        let (m, end) = parse_macro_expand(text, i, exp)?;
                        i = end;
                        MacroPart::Macro(m)
                    }
                    _ => {
                        return Err(MacroError {
                            at: i,
                            message:
                                "`%` must be followed by `{`, `%`, `_` or `-` (write `%%` for a literal percent sign)"
                                    .into(),
                        });
                    }
                };
                if !literal.is_empty() {
                    parts.push(MacroPart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
            } else if (0x21..=0x7e).contains(&b) || (spaces && b == b' ') {
                literal.push(b as char);
                i += 1;
            } else {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(MacroError {
                    at: i,
                    message: format!("the character {ch:?} is not allowed here (only visible ASCII)"),
                });
            }
        }
        if !literal.is_empty() {
            parts.push(MacroPart::Literal(literal));
        }
        Ok(MacroString(parts))
    }

    /// Parses a domain-spec: a macro-string ending in a macro or in `.toplabel[.]`.
    pub fn parse_domain_spec(text: &str, exp: bool) -> Result<Self, MacroError> {
        if text.is_empty() {
            return Err(MacroError { at: 0, message: "the domain is empty".into() });
        }
        let ms = Self::parse(text, exp)?;
        match ms.0.last() {
            Some(MacroPart::Macro(_)) => Ok(ms),
            Some(MacroPart::Literal(s)) => {
                let s = s.strip_suffix('.').unwrap_or(s);
                let top = match s.rfind('.') {
                    Some(dot) => &s[dot + 1..],
                    None => {
                        return Err(MacroError {
                            at: 0,
                            message: format!(
                                "`{text}` has no `.` before its last label: a domain-spec must end in `.toplabel` or a macro"
                            ),
                        });
                    }
                };
                if is_toplabel(top) {
                    Ok(ms)
                } else {
                    Err(MacroError {
                        at: 0,
                        message: format!(
                            "`{text}` does not end in a valid top-level label (`{top}`): letters, digits and inner hyphens, not all digits"
                        ),
                    })
                }
            }
            _ => Err(MacroError { at: 0, message: format!("`{text}` must end in a domain name or a macro") }),
        }
    }
}

fn is_toplabel(s: &str) -> bool {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    let bytes = s.as_bytes();
    if s.contains('-') {
        bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric()
    } else {
        bytes.iter().any(|b| b.is_ascii_alphabetic())
    }
}

fn parse_macro_expand(text: &str, start: usize, exp: bool) -> Result<(Macro, usize), MacroError> {
    let bytes = text.as_bytes();
    let mut i = start + 2;
    let err = |at: usize, message: String| MacroError { at, message };
    let Some(&lb) = bytes.get(i) else {
        return Err(err(start, "unterminated macro `%{`".into()));
    };
    let letter_char = lb as char;
    let Some(letter) = MacroLetter::from_char(letter_char) else {
        return Err(err(i, format!("`{letter_char}` is not a macro letter (s l o d i p h v, and c r t in exp=)")));
    };
    if letter.exp_only() && !exp {
        return Err(err(i, format!("the macro letter `{letter_char}` may only be used in explanation text")));
    }
    i += 1;
    let digits_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let digits = if i > digits_start {
        let n = text[digits_start..i]
            .bytes()
            .fold(0u32, |acc, d| acc.saturating_mul(10).saturating_add(u32::from(d - b'0')));
        if n == 0 {
            return Err(err(digits_start, "a macro's digit transformer must be at least 1".into()));
        }
        Some(n)
    } else {
        None
    };
    let mut reverse = false;
    if i < bytes.len() && (bytes[i] == b'r' || bytes[i] == b'R') {
        reverse = true;
        i += 1;
    }
    let delim_start = i;
    while i < bytes.len() && b".-+,/_=".contains(&bytes[i]) {
        i += 1;
    }
    let delimiters = text[delim_start..i].to_string();
    if bytes.get(i) != Some(&b'}') {
        return Err(err(
            i,
            "malformed macro: expected `}` after letter, digits, `r` and delimiters (. - + , / _ =)".into(),
        ));
    }
    Ok((Macro { letter, url_escape: letter_char.is_ascii_uppercase(), digits, reverse, delimiters }, i + 1))
}

/// A malformed macro-string, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroError {
    /// Byte offset within the macro-string.
    pub at: usize,
    /// What is wrong, and what to write instead.
    pub message: String,
}

impl fmt::Display for MacroString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.0 {
            match part {
                MacroPart::Literal(s) => f.write_str(s)?,
                MacroPart::Percent => f.write_str("%%")?,
                MacroPart::Space => f.write_str("%_")?,
                MacroPart::UrlSpace => f.write_str("%-")?,
                MacroPart::Macro(m) => {
                    let letter =
                        if m.url_escape { m.letter.as_char().to_ascii_uppercase() } else { m.letter.as_char() };
                    write!(f, "%{{{letter}")?;
                    if let Some(d) = m.digits {
                        write!(f, "{d}")?;
                    }
                    if m.reverse {
                        f.write_str("r")?;
                    }
                    write!(f, "{}}}", m.delimiters)?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for DualCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v4) = self.v4 {
            write!(f, "/{v4}")?;
        }
        if let Some(v6) = self.v6 {
            write!(f, "//{v6}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mechanism::All => f.write_str("all"),
            Mechanism::Include(d) => write!(f, "include:{d}"),
            Mechanism::A { domain, cidr } | Mechanism::Mx { domain, cidr } => {
                f.write_str(self.name())?;
                if let Some(d) = domain {
                    write!(f, ":{d}")?;
                }
                write!(f, "{cidr}")
            }
            Mechanism::Ptr(d) => match d {
                Some(d) => write!(f, "ptr:{d}"),
                None => f.write_str("ptr"),
            },
            Mechanism::Ip4 { addr, prefix } => {
                write!(f, "ip4:{addr}")?;
                if let Some(p) = prefix {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Mechanism::Ip6 { addr, prefix } => {
                write!(f, "ip6:{addr}")?;
                if let Some(p) = prefix {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Mechanism::Exists(d) => write!(f, "exists:{d}"),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Directive(d) => {
                if let Some(q) = d.qualifier {
                    write!(f, "{}", q.symbol())?;
                }
                write!(f, "{}", d.mechanism)
            }
            Term::Modifier(Modifier::Redirect(d)) => write!(f, "redirect={d}"),
            Term::Modifier(Modifier::Exp(d)) => write!(f, "exp={d}"),
            Term::Modifier(Modifier::Unknown { name, value }) => write!(f, "{name}={value}"),
        }
    }
}

impl fmt::Display for SpfRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=spf1")?;
        for t in &self.terms {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

/// True when the text announces itself as SPF version 1 (how a receiver selects the SPF
/// record among a name's TXT records, RFC 7208 §4.5).
pub fn is_spf1(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

impl SpfRecord {
    /// Parses an SPF record as the concatenation of a TXT record's strings, checking that no
    /// single string exceeds 255 bytes.
    pub fn parse_strings<S: AsRef<[u8]>>(strings: &[S]) -> Parsed<SpfRecord> {
        let mut joined = Vec::new();
        let mut long = Vec::new();
        for s in strings {
            let s = s.as_ref();
            if s.len() > 255 {
                long.push(Diagnostic {
                    code: code::SPF_STRING_TOO_LONG,
                    severity: Severity::Error,
                    message: format!(
                        "a TXT string of {} bytes: split the record into strings of at most 255 bytes",
                        s.len()
                    ),
                    span: joined.len()..joined.len() + s.len(),
                });
            }
            joined.extend_from_slice(s);
        }
        let text = String::from_utf8_lossy(&joined);
        let mut parsed = Self::parse(&text);
        parsed.diagnostics.extend(long);
        parsed
    }

    /// Parses one SPF record. The value is `None` only when the text is not `v=spf1`.
    pub fn parse(text: &str) -> Parsed<SpfRecord> {
        let mut diags = Vec::new();
        if !is_spf1(text) {
            diags.push(Diagnostic {
                code: code::SPF_NOT_SPF,
                severity: Severity::Error,
                message: "an SPF record starts with `v=spf1` followed by a space".into(),
                span: 0..text.len().min(6),
            });
            return Parsed { value: None, diagnostics: diags };
        }
        let mut terms = Vec::new();
        let mut spans = Vec::new();
        let mut pos = 6;
        for token in text[6..].split(' ') {
            let start = pos;
            pos += token.len() + 1;
            if token.is_empty() {
                continue;
            }
            let span = start..start + token.len();
            match parse_term(token, span.start) {
                Ok(term) => {
                    terms.push(term);
                    spans.push(span);
                }
                Err(d) => diags.push(d),
            }
        }
        lint_record(text, &terms, &spans, &mut diags);
        Parsed { value: Some(SpfRecord { terms }), diagnostics: diags }
    }

    pub(crate) fn directives(&self) -> impl Iterator<Item = &Directive> {
        self.terms.iter().filter_map(|t| if let Term::Directive(d) = t { Some(d) } else { None })
    }

    /// The `redirect=` target, when there is one.
    pub fn redirect(&self) -> Option<&MacroString> {
        self.terms.iter().find_map(|t| if let Term::Modifier(Modifier::Redirect(d)) = t { Some(d) } else { None })
    }

    /// The `exp=` target, when there is one.
    pub fn exp(&self) -> Option<&MacroString> {
        self.terms.iter().find_map(|t| if let Term::Modifier(Modifier::Exp(d)) = t { Some(d) } else { None })
    }

    /// The DNS-querying terms written in this record itself (not counting what includes
    /// and redirects add).
    pub fn direct_lookup_count(&self) -> usize {
        self.directives().filter(|d| d.mechanism.counts_as_lookup()).count() + usize::from(self.redirect().is_some())
    }

    /// True when an `include:` names this domain (literally, case-insensitively).
    pub fn includes(&self, domain: &str) -> bool {
        self.directives().any(|d| match &d.mechanism {
            Mechanism::Include(ms) => ms
                .as_literal()
                .is_some_and(|l| l.trim_end_matches('.').eq_ignore_ascii_case(domain.trim_end_matches('.'))),
            _ => false,
        })
    }

    /// The qualifier of the `all` mechanism, when the record has one.
    pub fn all_qualifier(&self) -> Option<Qualifier> {
        self.directives().find(|d| d.mechanism == Mechanism::All).map(|d| d.effective_qualifier())
    }
}

/// Whether a term as written is an `all` mechanism, whatever its qualifier.
fn is_all_term(term: &str) -> bool {
    term.trim_start_matches(['+', '-', '~', '?']).eq_ignore_ascii_case("all")
}

/// One SPF record from several published at one name (receivers return permerror for
/// two): every term of each, once, in order, then the `all` (or `redirect=`) of the first
/// that has one. `None` when none of them is SPF.
pub fn merge(texts: &[&str]) -> Option<String> {
    let mut terms: Vec<&str> = Vec::new();
    let mut last: Option<&str> = None;
    let mut any = false;
    for text in texts.iter().filter(|t| is_spf1(t)) {
        any = true;
        for term in text.split_ascii_whitespace().skip(1) {
            let redirect = term.len() >= 9 && term[..9].eq_ignore_ascii_case("redirect=");
            if is_all_term(term) || redirect {
                last = last.or(Some(term));
            } else if !terms.iter().any(|t| t.eq_ignore_ascii_case(term)) {
                terms.push(term);
            }
        }
    }
    if !any {
        return None;
    }
    let mut out = String::from("v=spf1");
    for t in terms.iter().copied().chain(last) {
        out.push(' ');
        out.push_str(t);
    }
    Some(out)
}

/// Edit distance with transpositions (optimal string alignment), for spelling repairs.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The record with the term at byte `at` put right: a misspelled mechanism or modifier
/// name corrected (`inlcude:` → `include:`), anything else unreadable left out. `None`
/// when `at` is not inside a term.
pub fn repair(text: &str, at: usize) -> Option<String> {
    const NAMES: &[&str] = &["include", "all", "a", "mx", "ptr", "ip4", "ip6", "exists", "redirect", "exp"];
    let mut out = Vec::new();
    let mut found = false;
    let mut offset = 0;
    for token in text.split(' ') {
        let (start, end) = (offset, offset + token.len());
        offset = end + 1;
        if token.is_empty() {
            continue;
        }
        if !(start <= at && at < end.max(start + 1)) || found {
            out.push(token.to_string());
            continue;
        }
        found = true;
        let body = token.trim_start_matches(['+', '-', '~', '?']);
        let qualifier = &token[..token.len() - body.len()];
        let split = body.find([':', '=', '/']).unwrap_or(body.len());
        let (name, rest) = body.split_at(split);
        let lower = name.to_ascii_lowercase();
        let best = NAMES.iter().filter(|n| n.len() > 2 || lower.len() <= 3).min_by_key(|n| distance(&lower, n));
        match best {
            Some(n) if distance(&lower, n) <= 2 && lower != *n => out.push(format!("{qualifier}{n}{rest}")),
            _ => {}
        }
    }
    found.then(|| out.join(" "))
}

/// The record with its `all` written with `qualifier` (`~all`, `-all`); `None` when the
/// record has no `all`.
pub fn with_all(text: &str, qualifier: &str) -> Option<String> {
    let terms: Vec<&str> = text.split_ascii_whitespace().collect();
    if !terms.iter().any(|t| is_all_term(t)) {
        return None;
    }
    let all = format!("{qualifier}all");
    Some(terms.iter().map(|t| if is_all_term(t) { all.as_str() } else { t }).collect::<Vec<_>>().join(" "))
}

/// The SPF record text with `include:<domain>` added before its `all` (or `redirect=`),
/// or at the end; the text unchanged when it already includes the domain. `None` when the
/// text is not an SPF record.
pub fn add_include(text: &str, domain: &str) -> Option<String> {
    let record = SpfRecord::parse(text).value?;
    if record.includes(domain) {
        return Some(text.to_string());
    }
    let mut terms: Vec<&str> = text.split_ascii_whitespace().collect();
    let position = terms
        .iter()
        .position(|t| {
            let t = t.to_ascii_lowercase();
            t.trim_start_matches(['+', '-', '~', '?']) == "all" || t.starts_with("redirect=")
        })
        .unwrap_or(terms.len());
    let include = format!("include:{}", domain.trim_end_matches('.'));
    terms.insert(position, &include);
    Some(terms.join(" "))
}

fn syntax(code: &'static str, span: Range<usize>, message: String) -> Diagnostic {
    Diagnostic { code, severity: Severity::Error, message, span }
}

fn parse_term(token: &str, offset: usize) -> Result<Term, Diagnostic> {
    let span = offset..offset + token.len();
    let bytes = token.as_bytes();
    let qualifier = Qualifier::from_symbol(bytes[0]);
    let body = if qualifier.is_some() { &token[1..] } else { token };
    let body_offset = offset + (token.len() - body.len());
    let name_len = body
        .bytes()
        .enumerate()
        .take_while(
            |&(i, b)| {
                if i == 0 { b.is_ascii_alphabetic() } else { b.is_ascii_alphanumeric() || b"-_.".contains(&b) }
            },
        )
        .count();
    if name_len == 0 {
        return Err(syntax(code::SPF_SYNTAX, span, format!("`{token}` is not a mechanism or modifier")));
    }
    let name = &body[..name_len];
    let rest = &body[name_len..];
    let rest_offset = body_offset + name_len;

    if let Some(value) = rest.strip_prefix('=') {
        if qualifier.is_some() {
            return Err(syntax(code::SPF_SYNTAX, span, format!("the modifier `{name}=` cannot take a qualifier")));
        }
        let value_span = rest_offset + 1..offset + token.len();
        let lower = name.to_ascii_lowercase();
        let modifier = match lower.as_str() {
            "redirect" => Modifier::Redirect(domain_spec(value, value_span)?),
            "exp" => Modifier::Exp(domain_spec(value, value_span)?),
            _ => {
                let value = MacroString::parse(value, false).map_err(|e| {
                    syntax(code::SPF_INVALID_MACRO, value_span.clone(), format!("in modifier `{name}`: {}", e.message))
                })?;
                Modifier::Unknown { name: name.to_string(), value }
            }
        };
        return Ok(Term::Modifier(modifier));
    }

    let lower = name.to_ascii_lowercase();
    let arg_span = rest_offset..offset + token.len();
    let mechanism = match lower.as_str() {
        "all" => {
            if !rest.is_empty() {
                return Err(syntax(code::SPF_SYNTAX, span, format!("`all` takes no argument, found `{rest}`")));
            }
            Mechanism::All
        }
        "include" | "exists" => {
            let Some(arg) = rest.strip_prefix(':') else {
                return Err(syntax(code::SPF_SYNTAX, span, format!("`{lower}` needs a domain: `{lower}:example.com`")));
            };
            let d = domain_spec(arg, arg_span.start + 1..arg_span.end)?;
            if lower == "include" { Mechanism::Include(d) } else { Mechanism::Exists(d) }
        }
        "a" | "mx" => {
            let (domain_part, cidr) = split_dual_cidr(rest, &arg_span)?;
            let domain = if domain_part.is_empty() {
                None
            } else if let Some(arg) = domain_part.strip_prefix(':') {
                Some(domain_spec(arg, arg_span.start + 1..arg_span.start + domain_part.len())?)
            } else {
                return Err(syntax(
                    code::SPF_SYNTAX,
                    span,
                    format!("`{token}`: expected `:domain` or `/prefix` after `{lower}`"),
                ));
            };
            if lower == "a" { Mechanism::A { domain, cidr } } else { Mechanism::Mx { domain, cidr } }
        }
        "ptr" => {
            if rest.is_empty() {
                Mechanism::Ptr(None)
            } else if let Some(arg) = rest.strip_prefix(':') {
                Mechanism::Ptr(Some(domain_spec(arg, arg_span.start + 1..arg_span.end)?))
            } else {
                return Err(syntax(code::SPF_SYNTAX, span, format!("`{token}`: expected `ptr` or `ptr:domain`")));
            }
        }
        "ip4" | "ip6" => {
            let Some(arg) = rest.strip_prefix(':') else {
                return Err(syntax(
                    code::SPF_INVALID_IP,
                    span,
                    format!(
                        "`{lower}` needs an address: `{lower}:{}`",
                        if lower == "ip4" { "192.0.2.0/24" } else { "2001:db8::/32" }
                    ),
                ));
            };
            let (addr_text, prefix_text) = match arg.rsplit_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (arg, None),
            };
            let max = if lower == "ip4" { 32 } else { 128 };
            let prefix = match prefix_text {
                Some(p) => Some(parse_cidr(p, max).ok_or_else(|| {
                    syntax(code::SPF_INVALID_IP, span.clone(), format!("`/{p}` is not a prefix length from 0 to {max}"))
                })?),
                None => None,
            };
            let bad = || {
                syntax(
                    code::SPF_INVALID_IP,
                    span.clone(),
                    format!("`{addr_text}` is not an {} address", if lower == "ip4" { "IPv4" } else { "IPv6" }),
                )
            };
            if lower == "ip4" {
                Mechanism::Ip4 { addr: addr_text.parse().map_err(|_| bad())?, prefix }
            } else {
                Mechanism::Ip6 { addr: addr_text.parse().map_err(|_| bad())?, prefix }
            }
        }
        _ => {
            return Err(syntax(
                code::SPF_UNKNOWN_MECHANISM,
                span,
                format!(
                    "`{name}` is not an SPF mechanism (all, include, a, mx, ptr, ip4, ip6, exists) nor a modifier (`name=value`)"
                ),
            ));
        }
    };
    Ok(Term::Directive(Directive { qualifier, mechanism }))
}

fn domain_spec(text: &str, span: Range<usize>) -> Result<MacroString, Diagnostic> {
    MacroString::parse_domain_spec(text, false).map_err(|e| {
        // Only a domain-spec that holds a macro can have a bad macro.
        let code = if text.contains('%') { code::SPF_INVALID_MACRO } else { code::SPF_INVALID_DOMAIN_SPEC };
        syntax(code, span, e.message)
    })
}

/// A CIDR length: `0` or a number without leading zeros, at most `max`.
fn parse_cidr(text: &str, max: u8) -> Option<u8> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
        || text.len() > 3
    {
        return None;
    }
    let n: u16 = text.parse().ok()?;
    (n <= u16::from(max)).then_some(n as u8)
}

fn split_dual_cidr<'a>(rest: &'a str, span: &Range<usize>) -> Result<(&'a str, DualCidr), Diagnostic> {
    let mut cidr = DualCidr::default();
    let mut s = rest;
    let digits_after = |s: &str, i: usize| !s[i..].is_empty() && s[i..].bytes().all(|b| b.is_ascii_digit());
    if let Some(i) = s.rfind("//")
        && digits_after(s, i + 2)
    {
        let text = &s[i + 2..];
        cidr.v6 = Some(parse_cidr(text, 128).ok_or_else(|| {
            syntax(code::SPF_INVALID_IP, span.clone(), format!("`//{text}` is not an IPv6 prefix length from 0 to 128"))
        })?);
        s = &s[..i];
    }
    if let Some(i) = s.rfind('/')
        && digits_after(s, i + 1)
    {
        let text = &s[i + 1..];
        cidr.v4 = Some(parse_cidr(text, 32).ok_or_else(|| {
            syntax(code::SPF_INVALID_IP, span.clone(), format!("`/{text}` is not an IPv4 prefix length from 0 to 32"))
        })?);
        s = &s[..i];
    }
    Ok((s, cidr))
}

fn lint_record(text: &str, terms: &[Term], spans: &[Range<usize>], diags: &mut Vec<Diagnostic>) {
    let warn =
        |code, span: Range<usize>, message: String| Diagnostic { code, severity: Severity::Warning, message, span };
    let mut seen_all: Option<usize> = None;
    let mut redirects = 0;
    let mut exps = 0;
    for (term, span) in terms.iter().zip(spans) {
        match term {
            Term::Directive(d) => {
                if let Some(all_at) = seen_all {
                    diags.push(warn(
                        code::SPF_TERMS_AFTER_ALL,
                        span.clone(),
                        format!("`{term}` comes after `all` (at byte {all_at}) and is never evaluated"),
                    ));
                }
                match &d.mechanism {
                    Mechanism::All => {
                        if seen_all.is_none() {
                            seen_all = Some(span.start);
                        }
                        match d.effective_qualifier() {
                            Qualifier::Pass => diags.push(warn(code::SPF_PERMISSIVE_ALL, span.clone(), format!("`{term}` authorizes every host on the Internet to send as this domain; use `~all` or `-all`"))),
                            Qualifier::Neutral => diags.push(warn(code::SPF_PERMISSIVE_ALL, span.clone(), "`?all` makes no statement about unlisted hosts; use `~all` or `-all`".into())),
                            _ => {}
                        }
                    }
                    Mechanism::Ptr(_) => diags.push(warn(code::SPF_PTR, span.clone(), "`ptr` is deprecated (RFC 7208 §5.5): list the addresses with `ip4`/`ip6` or `include` the provider".into())),
                    Mechanism::Ip4 { prefix: Some(0), .. } | Mechanism::Ip6 { prefix: Some(0), .. } if d.effective_qualifier() == Qualifier::Pass => {
                        diags.push(warn(code::SPF_IP_ALL, span.clone(), format!("`{term}` authorizes every address")))
                    }
                    _ => {}
                }
            }
            Term::Modifier(m) => match m {
                Modifier::Redirect(_) => {
                    redirects += 1;
                    if redirects == 2 {
                        diags.push(syntax(
                            code::SPF_DUPLICATE_MODIFIER,
                            span.clone(),
                            "`redirect=` appears more than once (RFC 7208 §6: permerror)".into(),
                        ));
                    }
                }
                Modifier::Exp(_) => {
                    exps += 1;
                    if exps == 2 {
                        diags.push(syntax(
                            code::SPF_DUPLICATE_MODIFIER,
                            span.clone(),
                            "`exp=` appears more than once (RFC 7208 §6: permerror)".into(),
                        ));
                    }
                }
                Modifier::Unknown { name, .. } => diags.push(Diagnostic {
                    code: code::SPF_UNKNOWN_MODIFIER,
                    severity: Severity::Info,
                    message: format!("unknown modifier `{name}=`: receivers ignore it"),
                    span: span.clone(),
                }),
            },
        }
    }
    if redirects > 0 && seen_all.is_some() {
        let span = terms
            .iter()
            .zip(spans)
            .find(|(t, _)| matches!(t, Term::Modifier(Modifier::Redirect(_))))
            .map(|(_, s)| s.clone())
            .unwrap_or(0..0);
        diags.push(warn(
            code::SPF_REDIRECT_WITH_ALL,
            span,
            "`redirect=` is ignored because the record has `all`".into(),
        ));
    }
    if redirects == 0 && seen_all.is_none() {
        diags.push(Diagnostic {
            code: code::SPF_NO_ALL,
            severity: Severity::Info,
            message: "no `all` and no `redirect=`: unlisted hosts get `neutral`; end with `~all` or `-all`".into(),
            span: text.len()..text.len(),
        });
    }
    if text.len() > 512 {
        diags.push(warn(
            code::SPF_RECORD_TOO_LONG,
            0..text.len(),
            format!("the record is {} bytes, over 512: the DNS answer needs EDNS or TCP", text.len()),
        ));
    } else if text.len() > 450 {
        diags.push(warn(
            code::SPF_RECORD_LONG,
            0..text.len(),
            format!("the record is {} bytes, over the 450 RFC 7208 §3.4 recommends", text.len()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_and_all() {
        assert_eq!(
            merge(&["v=spf1 mx -all", "v=spf1 include:amazonses.com mx ~all"]).as_deref(),
            Some("v=spf1 mx include:amazonses.com -all")
        );
        assert_eq!(merge(&["not spf"]), None);
        assert_eq!(with_all("v=spf1 mx +all", "~").as_deref(), Some("v=spf1 mx ~all"));
        assert_eq!(with_all("v=spf1 mx ALL", "-").as_deref(), Some("v=spf1 mx -all"));
        assert_eq!(with_all("v=spf1 mx", "-"), None);
        assert_eq!(
            repair("v=spf1 inlcude:amazonses.com -all", 8).as_deref(),
            Some("v=spf1 include:amazonses.com -all")
        );
        assert_eq!(repair("v=spf1 mx ~ip4:1.2.3.4 zzzz -all", 23).as_deref(), Some("v=spf1 mx ~ip4:1.2.3.4 -all"));
        assert_eq!(repair("v=spf1 mx", 99), None);
    }

    #[test]
    fn includes_are_added_before_all_or_redirect() {
        assert_eq!(add_include("v=spf1 mx -all", "amazonses.com").unwrap(), "v=spf1 mx include:amazonses.com -all");
        assert_eq!(
            add_include("v=spf1  redirect=_spf.x.test", "amazonses.com").unwrap(),
            "v=spf1 include:amazonses.com redirect=_spf.x.test"
        );
        assert_eq!(
            add_include("v=spf1 ip4:192.0.2.1", "amazonses.com").unwrap(),
            "v=spf1 ip4:192.0.2.1 include:amazonses.com"
        );
        assert_eq!(
            add_include("v=spf1 include:AmazonSES.com ~all", "amazonses.com").unwrap(),
            "v=spf1 include:AmazonSES.com ~all"
        );
        assert_eq!(add_include("hello", "amazonses.com"), None);
    }

    fn codes(text: &str) -> Vec<&'static str> {
        SpfRecord::parse(text).diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn ses_mail_from_record() {
        let p = SpfRecord::parse("v=spf1 include:amazonses.com ~all");
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let r = p.value.unwrap();
        assert!(r.includes("amazonses.com"));
        assert_eq!(r.all_qualifier(), Some(Qualifier::SoftFail));
        assert_eq!(r.direct_lookup_count(), 1);
        assert_eq!(r.to_string(), "v=spf1 include:amazonses.com ~all");
    }

    #[test]
    fn full_grammar() {
        let text = "v=spf1 a mx:mail.example.com/24//64 a//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 ptr:example.org exists:%{ir}.%{l1r+-}._spf.%{d} include:_spf.google.com -all exp=explain.%{d} foo=bar";
        let p = SpfRecord::parse(text);
        let r = p.value.clone().unwrap();
        assert_eq!(r.terms.len(), 11, "{:?}", p.diagnostics);
        assert_eq!(r.to_string(), text);
        assert!(p.has_code(code::SPF_PTR));
        assert!(p.has_code(code::SPF_UNKNOWN_MODIFIER));
        assert!(!p.has_errors());
        match &r.terms[1] {
            Term::Directive(Directive { mechanism: Mechanism::Mx { cidr, .. }, .. }) => {
                assert_eq!(*cidr, DualCidr { v4: Some(24), v6: Some(64) })
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn not_spf() {
        assert!(SpfRecord::parse("v=spf10 -all").value.is_none());
        assert!(SpfRecord::parse("spf1").value.is_none());
        assert!(SpfRecord::parse("V=SPF1 -all").value.is_some());
    }

    #[test]
    fn errors() {
        assert_eq!(codes("v=spf1 inlcude:x.com -all"), vec![code::SPF_UNKNOWN_MECHANISM]);
        assert_eq!(codes("v=spf1 ip4:1.2.3.4/33 -all"), vec![code::SPF_INVALID_IP]);
        assert_eq!(codes("v=spf1 ip4:1.2.3 -all"), vec![code::SPF_INVALID_IP]);
        assert_eq!(codes("v=spf1 ip4:1.2.3.4/024 -all"), vec![code::SPF_INVALID_IP]);
        assert_eq!(codes("v=spf1 a/33 -all"), vec![code::SPF_INVALID_IP]);
        assert_eq!(codes("v=spf1 include:foo.1 -all"), vec![code::SPF_INVALID_DOMAIN_SPEC]);
        assert_eq!(codes("v=spf1 include:a ~all"), vec![code::SPF_INVALID_DOMAIN_SPEC]);
        assert_eq!(codes("v=spf1 include:%{x}.com -all"), vec![code::SPF_INVALID_MACRO]);
        assert_eq!(codes("v=spf1 exists:%{c}.x.com -all"), vec![code::SPF_INVALID_MACRO]);
        assert_eq!(codes("v=spf1 -all exp=%{c}.example.com"), vec![code::SPF_INVALID_MACRO]);
        assert!(MacroString::parse_explain_string("Connections from %{c} not authorized.").is_ok());
        assert_eq!(codes("v=spf1 include -all"), vec![code::SPF_SYNTAX]);
        assert_eq!(codes("v=spf1 all:x"), vec![code::SPF_SYNTAX, code::SPF_NO_ALL]);
        assert_eq!(codes("v=spf1 -redirect=x.com"), vec![code::SPF_SYNTAX, code::SPF_NO_ALL]);
        assert_eq!(codes("v=spf1 redirect=a.com redirect=b.com"), vec![code::SPF_DUPLICATE_MODIFIER]);
        assert_eq!(codes("v=spf1 a:%"), vec![code::SPF_INVALID_MACRO, code::SPF_NO_ALL]);
    }

    #[test]
    fn warnings() {
        assert_eq!(codes("v=spf1 +all"), vec![code::SPF_PERMISSIVE_ALL]);
        assert_eq!(codes("v=spf1 all"), vec![code::SPF_PERMISSIVE_ALL]);
        assert_eq!(codes("v=spf1 ?all"), vec![code::SPF_PERMISSIVE_ALL]);
        assert_eq!(codes("v=spf1 -all a"), vec![code::SPF_TERMS_AFTER_ALL]);
        assert_eq!(codes("v=spf1 -all redirect=x.com"), vec![code::SPF_REDIRECT_WITH_ALL]);
        assert_eq!(codes("v=spf1 ip4:0.0.0.0/0 -all"), vec![code::SPF_IP_ALL]);
        let long = format!("v=spf1 {} -all", (0..40).map(|i| format!("ip4:192.0.2.{i}")).collect::<Vec<_>>().join(" "));
        assert!(SpfRecord::parse(&long).has_code(code::SPF_RECORD_TOO_LONG));
        let medium =
            format!("v=spf1 {} -all", (0..30).map(|i| format!("ip4:192.0.2.{i}")).collect::<Vec<_>>().join(" "));
        assert!(SpfRecord::parse(&medium).has_code(code::SPF_RECORD_LONG));
    }

    #[test]
    fn strings_over_255() {
        let first = format!("v=spf1 {}", "ip4:192.0.2.1 ".repeat(20));
        let p = SpfRecord::parse_strings(&[first.as_bytes(), b"-all"]);
        assert!(p.has_code(code::SPF_STRING_TOO_LONG));
        let p = SpfRecord::parse_strings(&[&b"v=spf1 include:a.example.com "[..], b"-all"]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.value.unwrap().terms.len(), 2);
    }

    #[test]
    fn spans_point_at_the_term() {
        let text = "v=spf1 ip4:1.2.3.4 inlcude:x.com -all";
        let p = SpfRecord::parse(text);
        let d = &p.diagnostics[0];
        assert_eq!(&text[d.span.clone()], "inlcude:x.com");
    }

    #[test]
    fn macros_round_trip() {
        for m in ["%{d}", "%{ir}.%{v}._spf.%{d2}", "%{L5r-.}x.com", "a%%b%_c%-d.%{h}", "%{o}"] {
            let ms = MacroString::parse(m, false).unwrap();
            assert_eq!(ms.to_string(), m);
        }
        assert!(MacroString::parse("%{d0}", false).is_err());
        assert!(MacroString::parse("%{d", false).is_err());
        assert!(MacroString::parse("%x", false).is_err());
        assert!(MacroString::parse("é", false).is_err());
    }
}
