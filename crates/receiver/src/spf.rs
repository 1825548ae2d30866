//! SPF `check_host()` (RFC 7208 §4–§7) with a full trace: every record fetched, every
//! term evaluated, every DNS lookup with the term that caused it, the lookup and
//! void-lookup counts, and the reason for the result.

use serde::Serialize;
use ses_dmarc_dns::{Outcome, Rdata, RecordType, Resolver};
use ses_dmarc_records::spf::{
    Directive, DualCidr, MacroLetter, MacroPart, MacroString, Mechanism, Qualifier, SpfRecord, Term, is_spf1,
};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// RFC 7208 §4.6.4 limits.
pub const MAX_LOOKUPS: usize = 10;
/// At most two void lookups (NODATA or NXDOMAIN) per check; more is a permerror.
pub const MAX_VOID_LOOKUPS: usize = 2;
pub(crate) const MAX_MX_NAMES: usize = 10;
pub(crate) const MAX_PTR_NAMES: usize = 10;

/// An SPF result (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    /// No SPF record, or no valid domain to check.
    None,
    /// The record says nothing about this IP (`?`, or no term matched).
    Neutral,
    /// The IP is authorized.
    Pass,
    /// The IP is not authorized (`-`).
    Fail,
    /// The IP is probably not authorized (`~`).
    SoftFail,
    /// A transient DNS error; the check may succeed later.
    TempError,
    /// The record cannot be evaluated (syntax error, too many lookups, two records).
    PermError,
}

impl SpfResult {
    /// The result's name in lower case (`softfail`), as headers write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }

    /// Reads a result name, any case (`hardfail` is read as fail).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "none" => SpfResult::None,
            "neutral" => SpfResult::Neutral,
            "pass" => SpfResult::Pass,
            "fail" | "hardfail" => SpfResult::Fail,
            "softfail" => SpfResult::SoftFail,
            "temperror" => SpfResult::TempError,
            "permerror" => SpfResult::PermError,
            _ => return None,
        })
    }

    fn of(q: Qualifier) -> Self {
        match q {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

impl std::fmt::Display for SpfResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an SPF check, for the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// 0 for the checked domain, +1 per include or redirect.
    pub depth: usize,
    /// The domain whose record was being evaluated.
    pub domain: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: TraceKind,
}

/// What one step of an SPF check did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceKind {
    /// The SPF record selected at `domain` (or why there is none).
    Record {
        /// The record's text (None: no record selected).
        record: Option<String>,
        /// Why no record was selected (empty when one was).
        note: String,
    },
    /// One DNS query.
    Lookup {
        /// The name queried.
        name: String,
        /// The record type queried.
        rtype: RecordType,
        /// What came back, in words (`2 record(s)`, `no data`, `NXDOMAIN`, `failed: ...`).
        outcome: String,
        /// The term that caused it.
        cause: String,
        /// Whether it returned nothing (NODATA or NXDOMAIN) and counted as a void lookup.
        void: bool,
    },
    /// A mechanism or modifier evaluated, and whether it matched.
    Term {
        /// The term as written.
        term: String,
        /// Whether it matched the client IP.
        matched: bool,
        /// What the term looked at (`3 address(es) at example.com`, `include.example gave
        /// fail`); empty for `ip4`, `ip6` and `all`.
        note: String,
        /// DNS-querying terms counted so far in the check, this term and its includes counted.
        lookups_so_far: usize,
    },
    /// How the evaluation of `domain` ended.
    Result {
        /// The result for `domain`.
        result: SpfResult,
        /// Why.
        reason: String,
    },
}

/// The outcome of an SPF check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfCheck {
    /// The SPF result.
    pub result: SpfResult,
    /// The domain checked (the MAIL FROM's domain, or the HELO name).
    pub domain: String,
    /// The identity checked: `mailfrom` or `helo`.
    pub identity: &'static str,
    /// Why this result, in one sentence.
    pub reason: String,
    /// The explanation (`exp=`) for a fail, when the domain published one.
    pub explanation: Option<String>,
    /// The term that decided the result, and the domain whose record held it.
    pub matched: Option<MatchedTerm>,
    /// DNS-querying terms evaluated (limit [`MAX_LOOKUPS`]).
    pub lookups: usize,
    /// Lookups that returned nothing (limit [`MAX_VOID_LOOKUPS`]).
    pub void_lookups: usize,
    /// Every step, in order.
    pub trace: Vec<TraceEvent>,
}

/// The term that decided an SPF result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedTerm {
    /// The domain whose record holds the term.
    pub domain: String,
    /// The term as written.
    pub term: String,
}

/// Connection facts for a check.
#[derive(Debug, Clone)]
pub struct SpfInput {
    /// The connecting client's IP address.
    pub ip: IpAddr,
    /// The SMTP MAIL FROM address; empty for a bounce (then the HELO identity is checked).
    pub mail_from: String,
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The receiving host's name, for the `%{r}` macro.
    pub receiver: Option<String>,
}

enum Stop {
    Temp(String),
    Perm(String),
}

type Flow<T> = Result<T, Stop>;
type BoxedFlow<'s, T> = Pin<Box<dyn Future<Output = Flow<T>> + Send + 's>>;

struct Eval<'a, R> {
    resolver: &'a R,
    ip: IpAddr,
    local: String,
    sender_domain: String,
    helo: String,
    receiver: String,
    lookups: usize,
    voids: usize,
    trace: Vec<TraceEvent>,
    matched: Option<MatchedTerm>,
    explanation: Option<String>,
}

/// Checks the MAIL FROM identity (or, for an empty MAIL FROM, the HELO identity), the way
/// a receiver does (RFC 7208 §2.3, §2.4, §4.3).
pub async fn check_mail_from<R: Resolver>(resolver: &R, input: &SpfInput) -> SpfCheck {
    let mail_from = input.mail_from.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain, identity) = if mail_from.is_empty() {
        ("postmaster".to_string(), input.helo.clone(), "helo")
    } else {
        match mail_from.rsplit_once('@') {
            Some((l, d)) => {
                (if l.is_empty() { "postmaster".to_string() } else { l.to_string() }, d.to_string(), "mailfrom")
            }
            None => ("postmaster".to_string(), mail_from.to_string(), "mailfrom"),
        }
    };
    check_host_with(resolver, input, &local, &domain, identity).await
}

/// `check_host(ip, domain, sender)` for an explicit domain and sender local part.
pub async fn check_host_with<R: Resolver>(
    resolver: &R,
    input: &SpfInput,
    local: &str,
    domain: &str,
    identity: &'static str,
) -> SpfCheck {
    let ip = match input.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(input.ip),
        v4 => v4,
    };
    let domain = domain.trim_end_matches('.').to_string();
    let mut eval = Eval {
        resolver,
        ip,
        local: local.to_string(),
        sender_domain: domain.clone(),
        helo: input.helo.clone(),
        receiver: input.receiver.clone().unwrap_or_else(|| "unknown".into()),
        lookups: 0,
        voids: 0,
        trace: Vec::new(),
        matched: None,
        explanation: None,
    };
    let (result, reason) = if !valid_initial_domain(&domain) {
        (SpfResult::None, format!("`{domain}` is not a valid multi-label domain name (RFC 7208 §4.3)"))
    } else {
        match eval.check(domain.clone(), 0).await {
            Ok((r, reason)) => (r, reason),
            Err(Stop::Temp(m)) => (SpfResult::TempError, m),
            Err(Stop::Perm(m)) => (SpfResult::PermError, m),
        }
    };
    if matches!(result, SpfResult::TempError | SpfResult::PermError | SpfResult::None) {
        eval.explanation = None;
    }
    SpfCheck {
        result,
        domain,
        identity,
        reason,
        explanation: if result == SpfResult::Fail { eval.explanation } else { None },
        matched: eval.matched,
        lookups: eval.lookups,
        void_lookups: eval.voids,
        trace: eval.trace,
    }
}

/// RFC 7208 §4.3: malformed, or not multi-label → `none`.
fn valid_initial_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63 && !l.contains(['[', ']']))
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Records(r) => format!("{} record(s)", r.len()),
        Outcome::NoData => "no data".into(),
        Outcome::NxDomain => "NXDOMAIN".into(),
        Outcome::Failed(f) => format!("failed: {f}"),
    }
}

fn in_prefix(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

pub use ses_dmarc_dns::reverse_name;

fn nibbles(octets: [u8; 16]) -> Vec<u8> {
    octets.iter().flat_map(|b| [b >> 4, b & 0xf]).collect()
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Drops leftmost labels until the name fits 253 bytes (RFC 7208 §7.3).
fn shorten(name: &str) -> String {
    let mut n = name.trim_end_matches('.');
    while n.len() > 253 {
        match n.split_once('.') {
            Some((_, rest)) => n = rest,
            None => break,
        }
    }
    n.to_string()
}

fn valid_target(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

impl<'a, R: Resolver> Eval<'a, R> {
    fn event(&mut self, depth: usize, domain: &str, kind: TraceKind) {
        self.trace.push(TraceEvent { depth, domain: domain.to_string(), kind });
    }

    fn count_lookup(&mut self, term: &str) -> Flow<()> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(Stop::Perm(format!(
                "`{term}` is DNS-querying term number {}: RFC 7208 allows {MAX_LOOKUPS} per check",
                self.lookups
            )));
        }
        Ok(())
    }

    /// One query, traced; `void_counts` makes NODATA/NXDOMAIN count as a void lookup.
    async fn query(
        &mut self,
        depth: usize,
        domain: &str,
        name: &str,
        rtype: RecordType,
        cause: &str,
        void_counts: bool,
    ) -> Flow<Outcome> {
        let answer = self.resolver.lookup(name, rtype).await;
        let void = void_counts && matches!(answer.outcome, Outcome::NoData | Outcome::NxDomain);
        self.event(
            depth,
            domain,
            TraceKind::Lookup {
                name: name.to_string(),
                rtype,
                outcome: outcome_text(&answer.outcome),
                cause: cause.to_string(),
                void,
            },
        );
        if void {
            self.voids += 1;
            if self.voids > MAX_VOID_LOOKUPS {
                return Err(Stop::Perm(format!(
                    "void lookup number {} ({name} {} for `{cause}`): RFC 7208 allows {MAX_VOID_LOOKUPS}",
                    self.voids,
                    rtype.as_str()
                )));
            }
        }
        Ok(answer.outcome)
    }

    fn address_type(&self) -> RecordType {
        if self.ip.is_ipv4() { RecordType::A } else { RecordType::Aaaa }
    }

    async fn addresses(
        &mut self,
        depth: usize,
        domain: &str,
        name: &str,
        cause: &str,
        void_counts: bool,
    ) -> Flow<Vec<IpAddr>> {
        let rtype = self.address_type();
        match self.query(depth, domain, name, rtype, cause, void_counts).await? {
            Outcome::Records(r) => Ok(r
                .into_iter()
                .filter_map(|d| match d {
                    Rdata::A(a) => Some(IpAddr::V4(a)),
                    Rdata::Aaaa(a) => Some(IpAddr::V6(a)),
                    _ => None,
                })
                .collect()),
            Outcome::NoData | Outcome::NxDomain => Ok(Vec::new()),
            Outcome::Failed(f) => {
                Err(Stop::Temp(format!("{} lookup for {name} failed ({f}) for `{cause}`", rtype.as_str())))
            }
        }
    }

    fn cidr_match(&self, addrs: &[IpAddr], cidr: DualCidr) -> bool {
        let prefix = if self.ip.is_ipv4() { cidr.v4.unwrap_or(32) } else { cidr.v6.unwrap_or(128) };
        addrs.iter().any(|a| in_prefix(self.ip, *a, prefix))
    }

    /// The validated domain names of the client IP (RFC 7208 §5.5), at most ten PTR names.
    async fn validated_names(
        &mut self,
        depth: usize,
        domain: &str,
        cause: &str,
        void_counts: bool,
    ) -> Flow<Vec<String>> {
        let names = match self.query(depth, domain, &reverse_name(self.ip), RecordType::Ptr, cause, void_counts).await?
        {
            Outcome::Records(r) => r
                .into_iter()
                .filter_map(|d| if let Rdata::Name(n) = d { Some(n) } else { None })
                .take(MAX_PTR_NAMES)
                .collect::<Vec<_>>(),
            _ => return Ok(Vec::new()),
        };
        let mut validated = Vec::new();
        for name in names {
            match self.addresses(depth, domain, &name, cause, false).await {
                Ok(addrs) if addrs.contains(&self.ip) => validated.push(name),
                _ => {}
            }
        }
        Ok(validated)
    }

    fn expand<'s>(&'s mut self, ms: &'s MacroString, domain: &'s str, depth: usize, exp: bool) -> BoxedFlow<'s, String>
    where
        R: 's,
    {
        Box::pin(async move {
            let mut out = String::new();
            for part in &ms.0 {
                match part {
                    MacroPart::Literal(s) => out.push_str(s),
                    MacroPart::Percent => out.push('%'),
                    MacroPart::Space => out.push(' '),
                    MacroPart::UrlSpace => out.push_str("%20"),
                    MacroPart::Macro(m) => {
                        if m.letter.exp_only() && !exp {
                            return Err(Stop::Perm(format!(
                                "macro %{{{}}} is only allowed in explanation text",
                                m.letter.as_char()
                            )));
                        }
                        let value = match m.letter {
                            MacroLetter::Sender => format!("{}@{}", self.local, self.sender_domain),
                            MacroLetter::LocalPart => self.local.clone(),
                            MacroLetter::SenderDomain => self.sender_domain.clone(),
                            MacroLetter::Domain => domain.to_string(),
                            MacroLetter::Ip => match self.ip {
                                IpAddr::V4(v4) => v4.to_string(),
                                IpAddr::V6(v6) => {
                                    nibbles(v6.octets()).iter().map(|n| format!("{n:X}")).collect::<Vec<_>>().join(".")
                                }
                            },
                            MacroLetter::ClientIp => self.ip.to_string(),
                            MacroLetter::IpVersion => if self.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_string(),
                            MacroLetter::Helo => self.helo.clone(),
                            MacroLetter::Receiver => self.receiver.clone(),
                            MacroLetter::Timestamp => std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs())
                                .unwrap_or(0)
                                .to_string(),
                            MacroLetter::ValidatedName => {
                                let names =
                                    self.validated_names(depth, domain, "%{p}", false).await.unwrap_or_default();
                                let lower = domain.to_ascii_lowercase();
                                names
                                    .iter()
                                    .find(|n| **n == lower)
                                    .or_else(|| names.iter().find(|n| n.ends_with(&format!(".{lower}"))))
                                    .or(names.first())
                                    .cloned()
                                    .unwrap_or_else(|| "unknown".into())
                            }
                        };
                        let delims: &str = if m.delimiters.is_empty() { "." } else { &m.delimiters };
                        let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
                        if m.reverse {
                            parts.reverse();
                        }
                        if let Some(n) = m.digits {
                            let n = n as usize;
                            if n < parts.len() {
                                parts = parts.split_off(parts.len() - n);
                            }
                        }
                        let joined = parts.join(".");
                        out.push_str(&if m.url_escape { url_escape(&joined) } else { joined });
                    }
                }
            }
            Ok(out)
        })
    }

    async fn target(&mut self, ms: &MacroString, domain: &str, depth: usize) -> Flow<String> {
        let expanded = self.expand(ms, domain, depth, false).await?;
        Ok(shorten(&expanded))
    }

    /// The domain a mechanism names: its expanded domain-spec, or the current domain.
    async fn target_or_current(&mut self, ms: Option<&MacroString>, domain: &str, depth: usize) -> Flow<String> {
        match ms {
            Some(ms) => self.target(ms, domain, depth).await,
            None => Ok(domain.to_string()),
        }
    }

    fn check<'s>(&'s mut self, domain: String, depth: usize) -> BoxedFlow<'s, (SpfResult, String)>
    where
        R: 's,
    {
        Box::pin(async move {
            let outcome = self.query(depth, &domain, &domain, RecordType::Txt, "record lookup", false).await?;
            let texts: Vec<Vec<u8>> = match outcome {
                Outcome::Failed(f) => {
                    return Err(Stop::Temp(format!("the TXT lookup for {domain} failed ({f})")));
                }
                Outcome::NxDomain | Outcome::NoData => {
                    self.event(depth, &domain, TraceKind::Record { record: None, note: "no TXT records".into() });
                    return Ok((SpfResult::None, format!("{domain} has no SPF record")));
                }
                Outcome::Records(r) => {
                    r.into_iter().filter_map(|d| if let Rdata::Txt(s) = d { Some(s.concat()) } else { None }).collect()
                }
            };
            let spf: Vec<&Vec<u8>> = texts.iter().filter(|t| is_spf1(&String::from_utf8_lossy(t))).collect();
            let text = match spf.as_slice() {
                [] => {
                    self.event(
                        depth,
                        &domain,
                        TraceKind::Record { record: None, note: "no TXT record starts with v=spf1".into() },
                    );
                    return Ok((SpfResult::None, format!("{domain} has no SPF record")));
                }
                [one] => String::from_utf8_lossy(one).into_owned(),
                many => {
                    self.event(
                        depth,
                        &domain,
                        TraceKind::Record { record: None, note: format!("{} SPF records", many.len()) },
                    );
                    return Err(Stop::Perm(format!(
                        "{domain} has {} SPF records; RFC 7208 §4.5 allows one",
                        many.len()
                    )));
                }
            };
            let parsed = SpfRecord::parse(&text);
            self.event(depth, &domain, TraceKind::Record { record: Some(text.clone()), note: String::new() });
            let record = match (parsed.has_errors(), parsed.value) {
                (false, Some(r)) => r,
                _ => {
                    let first = parsed
                        .diagnostics
                        .iter()
                        .find(|d| d.severity == ses_dmarc_records::Severity::Error)
                        .map(|d| d.message.clone())
                        .unwrap_or_default();
                    return Err(Stop::Perm(format!("the SPF record of {domain} has a syntax error: {first}")));
                }
            };
            for term in &record.terms {
                let Term::Directive(directive) = term else { continue };
                let text = term.to_string();
                let (matched, note) = self.directive(directive, &text, &domain, depth).await?;
                let lookups_so_far = self.lookups;
                self.event(depth, &domain, TraceKind::Term { term: text.clone(), matched, note, lookups_so_far });
                if matched {
                    let result = SpfResult::of(directive.effective_qualifier());
                    self.matched = Some(MatchedTerm { domain: domain.clone(), term: text.clone() });
                    if result == SpfResult::Fail {
                        self.explanation = self.explain(&record, &domain, depth).await;
                    }
                    let reason = format!("`{text}` in the record of {domain} matched");
                    self.event(depth, &domain, TraceKind::Result { result, reason: reason.clone() });
                    return Ok((result, reason));
                }
            }
            if let Some(target_ms) = record.redirect() {
                let text = format!("redirect={target_ms}");
                self.count_lookup(&text)?;
                let target = self.target(target_ms, &domain, depth).await?;
                self.event(
                    depth,
                    &domain,
                    TraceKind::Term {
                        term: text.clone(),
                        matched: true,
                        note: format!("to {target}"),
                        lookups_so_far: self.lookups,
                    },
                );
                if !valid_target(&target) {
                    return Err(Stop::Perm(format!("`{text}` names no valid domain (`{target}`)")));
                }
                let (result, reason) = self.check(target.clone(), depth + 1).await?;
                if result == SpfResult::None {
                    return Err(Stop::Perm(format!("`{text}`: {target} has no SPF record (RFC 7208 §6.1: permerror)")));
                }
                return Ok((result, reason));
            }
            let reason = format!("no term in the record of {domain} matched, and it has no redirect");
            self.event(depth, &domain, TraceKind::Result { result: SpfResult::Neutral, reason: reason.clone() });
            Ok((SpfResult::Neutral, reason))
        })
    }

    async fn explain(&mut self, record: &SpfRecord, domain: &str, depth: usize) -> Option<String> {
        let ms = record.exp()?;
        let target = self.target(ms, domain, depth).await.ok()?;
        if !valid_target(&target) {
            return None;
        }
        let texts = match self.query(depth, domain, &target, RecordType::Txt, "exp=", false).await.ok()? {
            Outcome::Records(r) => r,
            _ => return None,
        };
        let [Rdata::Txt(strings)] = texts.as_slice() else { return None };
        let text = String::from_utf8(strings.concat()).ok()?;
        let ms = MacroString::parse_explain_string(&text).ok()?;
        self.expand(&ms, domain, depth, true).await.ok()
    }

    async fn directive(&mut self, d: &Directive, text: &str, domain: &str, depth: usize) -> Flow<(bool, String)> {
        match &d.mechanism {
            Mechanism::All => Ok((true, String::new())),
            Mechanism::Ip4 { addr, prefix } => {
                Ok((in_prefix(self.ip, IpAddr::V4(*addr), prefix.unwrap_or(32)), String::new()))
            }
            Mechanism::Ip6 { addr, prefix } => {
                Ok((in_prefix(self.ip, IpAddr::V6(*addr), prefix.unwrap_or(128)), String::new()))
            }
            Mechanism::Include(ms) => {
                self.count_lookup(text)?;
                let target = self.target(ms, domain, depth).await?;
                if !valid_target(&target) {
                    return Err(Stop::Perm(format!("`{text}` names no valid domain (`{target}`)")));
                }
                let (result, _) = self.check(target.clone(), depth + 1).await?;
                match result {
                    SpfResult::Pass => Ok((true, format!("{target} passed"))),
                    SpfResult::None => {
                        Err(Stop::Perm(format!("`{text}`: {target} has no SPF record (RFC 7208 §5.2: permerror)")))
                    }
                    other => Ok((false, format!("{target} gave {other}"))),
                }
            }
            Mechanism::A { domain: target_ms, cidr } => {
                self.count_lookup(text)?;
                let target = self.target_or_current(target_ms.as_ref(), domain, depth).await?;
                if !valid_target(&target) {
                    return Ok((false, format!("`{target}` is not a valid name")));
                }
                let addrs = self.addresses(depth, domain, &target, text, true).await?;
                Ok((self.cidr_match(&addrs, *cidr), format!("{} address(es) at {target}", addrs.len())))
            }
            Mechanism::Mx { domain: target_ms, cidr } => {
                self.count_lookup(text)?;
                let target = self.target_or_current(target_ms.as_ref(), domain, depth).await?;
                if !valid_target(&target) {
                    return Ok((false, format!("`{target}` is not a valid name")));
                }
                let exchanges: Vec<String> =
                    match self.query(depth, domain, &target, RecordType::Mx, text, true).await? {
                        Outcome::Records(r) => r
                            .into_iter()
                            .filter_map(|d| if let Rdata::Mx { exchange, .. } = d { Some(exchange) } else { None })
                            .collect(),
                        Outcome::NoData | Outcome::NxDomain => Vec::new(),
                        Outcome::Failed(f) => {
                            return Err(Stop::Temp(format!("MX lookup for {target} failed ({f}) for `{text}`")));
                        }
                    };
                if exchanges.len() > MAX_MX_NAMES {
                    return Err(Stop::Perm(format!(
                        "`{text}`: {target} has {} MX records; RFC 7208 §4.6.4 allows looking up {MAX_MX_NAMES}",
                        exchanges.len()
                    )));
                }
                for exchange in &exchanges {
                    if exchange.is_empty() {
                        continue;
                    }
                    let addrs = self.addresses(depth, domain, exchange, text, false).await?;
                    if self.cidr_match(&addrs, *cidr) {
                        return Ok((true, format!("via MX {exchange}")));
                    }
                }
                Ok((false, format!("{} MX host(s) at {target}", exchanges.len())))
            }
            Mechanism::Ptr(target_ms) => {
                self.count_lookup(text)?;
                let target = self.target_or_current(target_ms.as_ref(), domain, depth).await?.to_ascii_lowercase();
                let names = self.validated_names(depth, domain, text, false).await.unwrap_or_default();
                let hit = names.iter().find(|n| **n == target || n.ends_with(&format!(".{target}")));
                Ok((hit.is_some(), hit.map(|h| format!("validated name {h}")).unwrap_or_default()))
            }
            Mechanism::Exists(ms) => {
                self.count_lookup(text)?;
                let target = self.target(ms, domain, depth).await?;
                if !valid_target(&target) {
                    return Ok((false, format!("`{target}` is not a valid name")));
                }
                match self.query(depth, domain, &target, RecordType::A, text, true).await? {
                    Outcome::Records(r) => Ok((!r.is_empty(), format!("{target} exists"))),
                    Outcome::NoData | Outcome::NxDomain => Ok((false, format!("{target} has no A record"))),
                    Outcome::Failed(f) => Err(Stop::Temp(format!("A lookup for {target} failed ({f}) for `{text}`"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let ip: IpAddr = "192.0.2.130".parse().unwrap();
        assert!(in_prefix(ip, "192.0.2.0".parse().unwrap(), 24));
        assert!(!in_prefix(ip, "192.0.2.0".parse().unwrap(), 25));
        assert!(in_prefix(ip, "10.0.0.0".parse().unwrap(), 0));
        assert!(!in_prefix(ip, "::".parse().unwrap(), 0));
        assert_eq!(reverse_name("192.0.2.1".parse().unwrap()), "1.2.0.192.in-addr.arpa");
        assert!(reverse_name("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0.0.0.0.0."));
        assert_eq!(url_escape("a b/c"), "a%20b%2Fc");
        assert!(shorten(&format!("{}.example.com", "a.".repeat(200))).len() <= 253);
    }
}
