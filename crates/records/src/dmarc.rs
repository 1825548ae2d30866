//! DMARC policy records under RFC 7489 and RFC 9989: parse every tag, report every
//! problem, say what the record means under each RFC, format back to text.

use crate::diag::{Diagnostic, Parsed, Severity, code};
use crate::domain::DomainName;
use serde::Serialize;
use std::fmt;
use std::ops::Range;

/// A DMARC policy (`p`, `sp`, `np`): what receivers do with mail that fails DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// `none`: deliver as usual; the domain only asks for reports.
    None,
    /// `quarantine`: treat as suspicious (usually the spam folder).
    Quarantine,
    /// `reject`: refuse the mail during the SMTP session.
    Reject,
}

impl Policy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// One level weaker: what `t=y` (RFC 9989) or the unsampled share under `pct`
    /// (RFC 7489) gets.
    pub fn weaker(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `adkim`/`aspf`: how closely an authenticated domain must match the From domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignmentMode {
    /// `r`: the same organizational domain is enough (the default).
    Relaxed,
    /// `s`: the very same name.
    Strict,
}

impl AlignmentMode {
    pub(crate) fn letter(self) -> char {
        match self {
            AlignmentMode::Relaxed => 'r',
            AlignmentMode::Strict => 's',
        }
    }
}

/// How an authenticated identifier (SPF's MAIL FROM domain, DKIM's `d=`) stands to the
/// From domain: the same name, the same organizational domain, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierMatch {
    /// The very same name.
    Strict,
    /// Different names with the same organizational domain.
    Relaxed,
    /// Different organizational domains, or an empty name.
    None,
}

impl IdentifierMatch {
    /// Compares `identifier` with `from` (case and a trailing dot do not matter).
    /// `discovered_org` is the organizational domain an RFC 9989 tree walk found for the From
    /// domain; names under it share it. Without it (or for names outside it), the public
    /// suffix list decides, as RFC 7489 does. An empty name matches nothing.
    pub fn of(identifier: &str, from: &str, discovered_org: Option<&str>) -> IdentifierMatch {
        let id = identifier.trim_end_matches('.').to_ascii_lowercase();
        let from = from.trim_end_matches('.').to_ascii_lowercase();
        if id.is_empty() || from.is_empty() {
            IdentifierMatch::None
        } else if id == from {
            IdentifierMatch::Strict
        } else if organizational(&id, discovered_org) == organizational(&from, discovered_org) {
            IdentifierMatch::Relaxed
        } else {
            IdentifierMatch::None
        }
    }

    /// Whether this match aligns under the record's `adkim`/`aspf` mode.
    pub fn aligns(self, mode: AlignmentMode) -> bool {
        match self {
            IdentifierMatch::Strict => true,
            IdentifierMatch::Relaxed => mode == AlignmentMode::Relaxed,
            IdentifierMatch::None => false,
        }
    }

    /// The match in lower case: `strict`, `relaxed` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierMatch::Strict => "strict",
            IdentifierMatch::Relaxed => "relaxed",
            IdentifierMatch::None => "none",
        }
    }
}

fn organizational(name: &str, discovered_org: Option<&str>) -> String {
    if let Some(org) = discovered_org
        && (name == org || name.strip_suffix(org).is_some_and(|head| head.ends_with('.')))
    {
        return org.to_string();
    }
    DomainName::parse(name).map(|d| d.organizational_domain().to_string()).unwrap_or_else(|_| name.to_string())
}

/// One `fo=` option: when the domain wants failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FailureOption {
    /// `0`: report when all mechanisms fail to align.
    AllFail,
    /// `1`: report when any mechanism fails.
    AnyFail,
    /// `d`: report DKIM failures.
    Dkim,
    /// `s`: report SPF failures.
    Spf,
}

impl FailureOption {
    fn letter(self) -> char {
        match self {
            FailureOption::AllFail => '0',
            FailureOption::AnyFail => '1',
            FailureOption::Dkim => 'd',
            FailureOption::Spf => 's',
        }
    }
}

/// `psd=` (RFC 9989): whether the record is a public suffix domain's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Psd {
    /// `y`: a public suffix domain's record.
    Yes,
    /// `n`: the organizational domain's record; the tree walk stops here.
    No,
    /// `u`: not said (the default).
    Unknown,
}

/// Which DMARC specification to read a record by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Rfc {
    /// RFC 7489 (2015): `pct`, `rf` and `ri`, the public suffix list for organizational domains.
    #[serde(rename = "rfc7489")]
    Rfc7489,
    /// RFC 9989 (2026): `np`, `psd` and `t`, the DNS tree walk for organizational domains.
    #[serde(rename = "rfc9989")]
    Rfc9989,
}

/// One `rua`/`ruf` destination: the URI and, under RFC 7489, an optional size limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportUri {
    /// The URI without the size suffix (`mailto:dmarc@example.com`).
    pub uri: String,
    /// The `!size` suffix as written (`10m`), ignored under RFC 9989.
    pub size_limit: Option<String>,
}

impl ReportUri {
    /// Parses one destination; the error says what to write instead.
    pub fn parse(text: &str) -> Result<ReportUri, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty report URI (a stray comma?)".into());
        }
        let (uri, size_limit) = match text.rsplit_once('!') {
            Some((u, s)) if is_size(s) => (u, Some(s.to_string())),
            Some((_, s)) => {
                return Err(format!("`!{s}` is not a size limit (digits with an optional k, m, g or t)"));
            }
            None => (text, None),
        };
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Err(if uri.contains('@') {
                format!("`{uri}` has no URI scheme: write `mailto:{uri}`")
            } else {
                format!("`{uri}` is not a URI: write `mailto:reports@example.com`")
            });
        };
        let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return Err(format!("`{uri}` does not start with a URI scheme such as `mailto:`"));
        }
        if scheme.eq_ignore_ascii_case("mailto") {
            let Some((local, domain)) = rest.rsplit_once('@') else {
                return Err(format!("`{uri}` has no `@`: write `mailto:reports@example.com`"));
            };
            if local.is_empty() || local.bytes().any(|b| b <= b' ' || b == b',' || b == b';' || b >= 0x7f) {
                return Err(format!("`{uri}`: the part before `@` is empty or has a character that must be %-encoded"));
            }
            DomainName::parse_hostname(domain).map_err(|e| format!("`{uri}`: {e}"))?;
        } else if rest.is_empty() || rest.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(format!("`{uri}` is not a valid URI"));
        }
        Ok(ReportUri { uri: uri.to_string(), size_limit })
    }

    pub(crate) fn is_mailto(&self) -> bool {
        self.uri.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
    }

    /// The address of a `mailto:` URI.
    pub fn mailto_address(&self) -> Option<&str> {
        if self.is_mailto() { self.uri.get(7..) } else { None }
    }

    /// The domain that receives the reports (for `mailto:`, the address's domain).
    pub fn destination_domain(&self) -> Option<DomainName> {
        let addr = self.mailto_address()?;
        let (_, domain) = addr.rsplit_once('@')?;
        DomainName::parse_hostname(domain).ok()
    }
}

fn is_size(s: &str) -> bool {
    let digits = s.trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T']);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && s.len() - digits.len() <= 1
}

impl fmt::Display for ReportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)?;
        if let Some(s) = &self.size_limit {
            write!(f, "!{s}")?;
        }
        Ok(())
    }
}

/// A DMARC record's tags, typed. Tags not written are `None`; the defaults are applied by
/// [`DmarcRecord::meaning`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmarcRecord {
    /// `p`: the policy for the domain itself.
    pub policy: Option<Policy>,
    /// `sp`: the policy for subdomains (`p` when absent).
    pub subdomain_policy: Option<Policy>,
    /// `np` (RFC 9989): the policy for subdomains that do not exist (`sp` when absent).
    pub nonexistent_policy: Option<Policy>,
    /// `adkim`: DKIM identifier alignment (relaxed when absent).
    pub adkim: Option<AlignmentMode>,
    /// `aspf`: SPF identifier alignment (relaxed when absent).
    pub aspf: Option<AlignmentMode>,
    /// `fo`: when failure reports are wanted (`0` when absent).
    pub failure_options: Option<Vec<FailureOption>>,
    /// `pct` (RFC 7489 only): the percentage of failing mail the policy applies to.
    pub pct: Option<u8>,
    /// `rf` (RFC 7489 only): the failure report format, as written (only `afrf` exists).
    pub report_format: Option<String>,
    /// `ri` (RFC 7489 only): the requested aggregate report interval, in seconds.
    pub report_interval: Option<u32>,
    /// `rua`: where aggregate reports go.
    pub rua: Vec<ReportUri>,
    /// `ruf`: where failure reports go.
    pub ruf: Vec<ReportUri>,
    /// `psd` (RFC 9989): whether this is a public suffix domain's record.
    pub psd: Option<Psd>,
    /// `t` (RFC 9989): `Some(true)` for `t=y`, testing mode.
    pub testing: Option<bool>,
    /// Tags neither RFC defines, lower-cased name and value as written.
    pub unknown_tags: Vec<(String, String)>,
}

/// What a record asks receivers to do, read by one RFC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyMeaning {
    /// The RFC the record was read by.
    pub rfc: Rfc,
    /// `false` when the RFC makes receivers ignore the record (no usable `p` under 7489).
    pub usable: bool,
    /// The policy for the domain itself (`none` when `p` is missing).
    pub policy: Policy,
    /// The policy for subdomains: `sp`, else `p`.
    pub subdomain_policy: Policy,
    /// Only RFC 9989 has `np`.
    pub nonexistent_policy: Option<Policy>,
    /// DKIM identifier alignment, the default applied.
    pub adkim: AlignmentMode,
    /// SPF identifier alignment, the default applied.
    pub aspf: AlignmentMode,
    /// Percentage of failing mail the policy applies to (RFC 7489 `pct`; always 100 under 9989).
    pub percent: u8,
    /// RFC 9989 `t=y`.
    pub testing: bool,
    /// The policy most failing mail from the domain itself actually gets.
    pub applied: Policy,
    /// The meaning in one sentence, for people.
    pub summary: String,
}

impl DmarcRecord {
    /// A record with only `p=`.
    pub fn with_policy(policy: Policy) -> Self {
        DmarcRecord { policy: Some(policy), ..Default::default() }
    }

    /// Parses one DMARC record. The value is `None` only when the text does not start with
    /// `v=DMARC1` (receivers then ignore it).
    pub fn parse(text: &str) -> Parsed<DmarcRecord> {
        let mut diags = Vec::new();
        let mut segments = Vec::new();
        let mut offset = 0;
        for seg in text.split(';') {
            let lead = seg.len() - seg.trim_start().len();
            let trimmed = seg.trim();
            if !trimmed.is_empty() {
                segments.push((trimmed, offset + lead..offset + lead + trimmed.len()));
            }
            offset += seg.len() + 1;
        }
        let version_ok = segments
            .first()
            .is_some_and(|(s, _)| s.split_once('=').is_some_and(|(n, v)| n.trim() == "v" && v.trim() == "DMARC1"));
        if !version_ok {
            diags.push(Diagnostic {
                code: code::DMARC_NOT_DMARC,
                severity: Severity::Error,
                message: "a DMARC record starts with `v=DMARC1` (exactly that case)".into(),
                span: segments.first().map(|(_, s)| s.clone()).unwrap_or(0..0),
            });
            return Parsed { value: None, diagnostics: diags };
        }
        let mut rec = DmarcRecord::default();
        let mut seen: Vec<String> = vec!["v".into()];
        let mut p_position = None;
        let mut spans: Vec<(String, Range<usize>)> = Vec::new();
        for (index, (seg, span)) in segments.iter().enumerate().skip(1) {
            let span = span.clone();
            let Some((name, value)) = seg.split_once('=') else {
                diags.push(err(code::DMARC_SYNTAX, span, format!("`{seg}` is not `tag=value`")));
                continue;
            };
            let raw_name = name.trim();
            let value = value.trim();
            if raw_name.is_empty() || !raw_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                diags.push(err(code::DMARC_SYNTAX, span, format!("`{raw_name}` is not a tag name")));
                continue;
            }
            let name = raw_name.to_ascii_lowercase();
            if name != raw_name {
                diags.push(warn(code::DMARC_TAG_CASE, span.clone(), format!("write the tag `{raw_name}` as `{name}`")));
            }
            if seen.contains(&name) {
                diags.push(err(
                    code::DMARC_DUPLICATE_TAG,
                    span,
                    format!("`{name}` appears more than once; the first one is used here, but receivers differ"),
                ));
                continue;
            }
            seen.push(name.clone());
            spans.push((name.clone(), span.clone()));
            apply_tag(&mut rec, &name, value, span, &mut diags);
            if name == "p" {
                p_position = Some(index);
            }
        }
        if rec.pct == Some(0) && rec.testing == Some(true) {
            // The testing step written for both generations: each reads its own tag and
            // ignores the other's, so `pct` is not obsolete here but needed.
            let span_of = |tag: &str| spans.iter().find(|(n, _)| n == tag).map(|(_, s)| s.clone()).unwrap_or(0..0);
            let (pct_span, t_span) = (span_of("pct"), span_of("t"));
            diags.retain(|d| !(d.span == pct_span || d.span == t_span) || d.severity != Severity::Info);
            diags.push(info(
                code::DMARC_TESTING,
                t_span,
                "`pct=0` with `t=y`: RFC 7489 receivers read pct=0 and ignore `t`, RFC 9989 receivers read t=y and ignore `pct`; both apply the policy one level weaker (a testing step)".into(),
            ));
        }
        match p_position {
            None => diags.push(warn(
                code::DMARC_POLICY_MISSING,
                0..text.len(),
                "no `p=` tag: RFC 7489 receivers ignore the record unless `rua` is valid (then p=none); RFC 9989 reads p=none. Write `p=none` explicitly".into(),
            )),
            Some(i) if i != 1 => diags.push(warn(
                code::DMARC_POLICY_NOT_SECOND,
                segments[i].1.clone(),
                "`p=` should come right after `v=DMARC1` (RFC 7489 §6.4)".into(),
            )),
            _ => {}
        }
        Parsed { value: Some(rec), diagnostics: diags }
    }

    /// What the record means to a receiver following `rfc`.
    pub fn meaning(&self, rfc: Rfc) -> PolicyMeaning {
        let rua_valid = !self.rua.is_empty();
        let (usable, policy) = match (self.policy, rfc) {
            (Some(p), _) => (true, p),
            (None, Rfc::Rfc9989) => (true, Policy::None),
            (None, Rfc::Rfc7489) => (rua_valid, Policy::None),
        };
        let subdomain_policy = self.subdomain_policy.unwrap_or(policy);
        let nonexistent_policy = match rfc {
            Rfc::Rfc9989 => Some(self.nonexistent_policy.unwrap_or(subdomain_policy)),
            Rfc::Rfc7489 => None,
        };
        let (percent, testing) = match rfc {
            Rfc::Rfc7489 => (self.pct.unwrap_or(100), false),
            Rfc::Rfc9989 => (100, self.testing == Some(true)),
        };
        let applied = if testing || percent == 0 { policy.weaker() } else { policy };
        let summary = if !usable {
            "no valid p= tag and no rua: RFC 7489 receivers ignore this record".to_string()
        } else if testing {
            format!("p={policy} in testing mode (t=y): failing mail gets {}", policy.weaker())
        } else if percent < 100 && policy != Policy::None {
            format!("p={policy} applied to {percent}% of failing mail, {} to the rest", policy.weaker())
        } else {
            format!("p={policy}: failing mail gets {policy}")
        };
        PolicyMeaning {
            rfc,
            usable,
            policy,
            subdomain_policy,
            nonexistent_policy,
            adkim: self.adkim.unwrap_or(AlignmentMode::Relaxed),
            aspf: self.aspf.unwrap_or(AlignmentMode::Relaxed),
            percent,
            testing,
            applied,
            summary,
        }
    }
}

fn err(code: &'static str, span: Range<usize>, message: String) -> Diagnostic {
    Diagnostic { code, severity: Severity::Error, message, span }
}

fn warn(code: &'static str, span: Range<usize>, message: String) -> Diagnostic {
    Diagnostic { code, severity: Severity::Warning, message, span }
}

fn info(code: &'static str, span: Range<usize>, message: String) -> Diagnostic {
    Diagnostic { code, severity: Severity::Info, message, span }
}

fn apply_tag(rec: &mut DmarcRecord, name: &str, value: &str, span: Range<usize>, diags: &mut Vec<Diagnostic>) {
    let bad = |what: &str| err(code::DMARC_SYNTAX, span.clone(), format!("`{name}={value}`: {what}"));
    match name {
        "p" | "sp" | "np" => match Policy::parse(value) {
            Some(p) => match name {
                "p" => rec.policy = Some(p),
                "sp" => rec.subdomain_policy = Some(p),
                _ => rec.nonexistent_policy = Some(p),
            },
            None => diags.push(bad("must be none, quarantine or reject")),
        },
        "adkim" | "aspf" => {
            let mode = match value {
                "r" | "R" => AlignmentMode::Relaxed,
                "s" | "S" => AlignmentMode::Strict,
                _ => return diags.push(bad("must be r (relaxed) or s (strict)")),
            };
            if name == "adkim" {
                rec.adkim = Some(mode);
            } else {
                rec.aspf = Some(mode);
            }
        }
        "fo" => {
            let mut opts = Vec::new();
            for part in value.split(':') {
                match part.trim() {
                    "0" => opts.push(FailureOption::AllFail),
                    "1" => opts.push(FailureOption::AnyFail),
                    "d" | "D" => opts.push(FailureOption::Dkim),
                    "s" | "S" => opts.push(FailureOption::Spf),
                    _ => return diags.push(bad("must be 0, 1, d or s, separated by colons")),
                }
            }
            rec.failure_options = Some(opts);
        }
        "pct" => {
            diags.push(info(
                code::DMARC_OBSOLETE_TAG,
                span.clone(),
                "`pct` is removed by RFC 9989; RFC 9989 receivers apply the policy to all mail (use `t=y` for testing)"
                    .into(),
            ));
            match value.parse::<u8>() {
                Ok(n) if n <= 100 && !value.starts_with('+') => {
                    rec.pct = Some(n);
                    if n < 100 {
                        diags.push(info(
                            code::DMARC_PCT_PARTIAL,
                            span,
                            format!("`pct={n}`: RFC 7489 receivers apply the policy to {n}% of failing mail"),
                        ));
                    }
                }
                _ => diags.push(bad("must be a whole number from 0 to 100")),
            }
        }
        "rf" => {
            diags.push(info(
                code::DMARC_OBSOLETE_TAG,
                span.clone(),
                "`rf` is removed by RFC 9989 (only AFRF exists)".into(),
            ));
            if value.split(':').all(|f| f.trim().eq_ignore_ascii_case("afrf")) {
                rec.report_format = Some(value.to_string());
            } else {
                diags.push(bad("the only report format is afrf"));
            }
        }
        "ri" => {
            diags.push(info(
                code::DMARC_OBSOLETE_TAG,
                span.clone(),
                "`ri` is removed by RFC 9989; reports come daily".into(),
            ));
            match value.parse::<u32>() {
                Ok(n) if !value.starts_with('+') => rec.report_interval = Some(n),
                _ => diags.push(bad("must be a number of seconds")),
            }
        }
        "rua" | "ruf" => {
            let mut uris = Vec::new();
            for part in value.split(',') {
                match ReportUri::parse(part) {
                    Ok(u) => {
                        if !u.is_mailto() {
                            diags.push(warn(
                                code::DMARC_URI_NOT_MAILTO,
                                span.clone(),
                                format!("`{}` is not a mailto: URI; receivers only deliver reports by e-mail", u.uri),
                            ));
                        }
                        if u.size_limit.is_some() {
                            diags.push(info(
                                code::DMARC_URI_SIZE,
                                span.clone(),
                                format!("the size limit in `{u}` is ignored under RFC 9989"),
                            ));
                        }
                        uris.push(u);
                    }
                    Err(e) => diags.push(err(code::DMARC_URI_INVALID, span.clone(), format!("in `{name}`: {e}"))),
                }
            }
            if name == "rua" {
                rec.rua = uris;
            } else {
                rec.ruf = uris;
            }
        }
        "psd" => match value {
            "y" => rec.psd = Some(Psd::Yes),
            "n" => rec.psd = Some(Psd::No),
            "u" => rec.psd = Some(Psd::Unknown),
            _ => diags.push(bad("must be y, n or u")),
        },
        "t" => match value {
            "y" => {
                rec.testing = Some(true);
                diags.push(info(
                    code::DMARC_TESTING,
                    span,
                    "`t=y`: RFC 9989 receivers apply the policy one level weaker; RFC 7489 receivers ignore `t`".into(),
                ));
            }
            "n" => rec.testing = Some(false),
            _ => diags.push(bad("must be y or n")),
        },
        _ => {
            let hint = match name {
                "rue" | "ru" | "rau" | "ura" => " (did you mean `rua`?)",
                "policy" => " (did you mean `p`?)",
                _ => "",
            };
            diags.push(warn(
                code::DMARC_UNKNOWN_TAG,
                span,
                format!("`{name}` is not a DMARC tag; receivers ignore it{hint}"),
            ));
            rec.unknown_tags.push((name.to_string(), value.to_string()));
        }
    }
}

impl fmt::Display for DmarcRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=DMARC1")?;
        if let Some(p) = self.policy {
            write!(f, "; p={p}")?;
        }
        if let Some(p) = self.subdomain_policy {
            write!(f, "; sp={p}")?;
        }
        if let Some(p) = self.nonexistent_policy {
            write!(f, "; np={p}")?;
        }
        if let Some(m) = self.adkim {
            write!(f, "; adkim={}", m.letter())?;
        }
        if let Some(m) = self.aspf {
            write!(f, "; aspf={}", m.letter())?;
        }
        if let Some(n) = self.pct {
            write!(f, "; pct={n}")?;
        }
        if let Some(fo) = &self.failure_options {
            let s: Vec<String> = fo.iter().map(|o| o.letter().to_string()).collect();
            write!(f, "; fo={}", s.join(":"))?;
        }
        if let Some(rf) = &self.report_format {
            write!(f, "; rf={rf}")?;
        }
        if let Some(ri) = self.report_interval {
            write!(f, "; ri={ri}")?;
        }
        for (name, uris) in [("rua", &self.rua), ("ruf", &self.ruf)] {
            if !uris.is_empty() {
                let s: Vec<String> = uris.iter().map(|u| u.to_string()).collect();
                write!(f, "; {name}={}", s.join(","))?;
            }
        }
        if let Some(psd) = self.psd {
            let c = match psd {
                Psd::Yes => 'y',
                Psd::No => 'n',
                Psd::Unknown => 'u',
            };
            write!(f, "; psd={c}")?;
        }
        if let Some(t) = self.testing {
            write!(f, "; t={}", if t { 'y' } else { 'n' })?;
        }
        for (name, value) in &self.unknown_tags {
            write!(f, "; {name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<&'static str> {
        DmarcRecord::parse(text).diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn identifier_match() {
        use IdentifierMatch as M;
        assert_eq!(M::of("example.com", "Example.COM.", None), M::Strict);
        assert_eq!(M::of("mail.example.com", "example.com", None), M::Relaxed);
        assert_eq!(M::of("mail.shop.example.co.uk", "example.co.uk", None), M::Relaxed);
        assert_eq!(M::of("badexample.com", "example.com", None), M::None);
        assert_eq!(M::of("amazonses.com", "example.com", None), M::None);
        assert_eq!(M::of("", "example.com", None), M::None);
        // An RFC 9989 tree walk can set the organizational domain below the PSL's.
        assert_eq!(M::of("a.dept.example.com", "b.dept.example.com", Some("dept.example.com")), M::Relaxed);
        assert_eq!(M::of("other.example.com", "b.dept.example.com", Some("dept.example.com")), M::None);
        assert!(M::Relaxed.aligns(AlignmentMode::Relaxed));
        assert!(!M::Relaxed.aligns(AlignmentMode::Strict));
        assert!(M::Strict.aligns(AlignmentMode::Strict));
        assert!(!M::None.aligns(AlignmentMode::Relaxed));
    }

    #[test]
    fn typical_record() {
        let p = DmarcRecord::parse("v=DMARC1; p=none; rua=mailto:dmarc@example.com");
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let r = p.value.unwrap();
        assert_eq!(r.policy, Some(Policy::None));
        assert_eq!(r.rua[0].destination_domain().unwrap().as_str(), "example.com");
        assert_eq!(r.to_string(), "v=DMARC1; p=none; rua=mailto:dmarc@example.com");
    }

    #[test]
    fn not_dmarc() {
        assert!(DmarcRecord::parse("v=dmarc1; p=none").value.is_none());
        assert!(DmarcRecord::parse("p=none; v=DMARC1").value.is_none());
        assert!(DmarcRecord::parse("").value.is_none());
        assert!(DmarcRecord::parse("v = DMARC1 ; p = reject").value.is_some());
    }

    #[test]
    fn diagnostics() {
        assert_eq!(codes("v=DMARC1"), vec![code::DMARC_POLICY_MISSING]);
        assert_eq!(codes("v=DMARC1; rua=mailto:a@b.com; p=none"), vec![code::DMARC_POLICY_NOT_SECOND]);
        assert_eq!(codes("v=DMARC1; p=none; p=reject"), vec![code::DMARC_DUPLICATE_TAG]);
        assert_eq!(codes("v=DMARC1; p=block"), vec![code::DMARC_SYNTAX]);
        assert_eq!(codes("v=DMARC1; p=none; pct=50"), vec![code::DMARC_OBSOLETE_TAG, code::DMARC_PCT_PARTIAL]);
        assert_eq!(codes("v=DMARC1; p=none; pct=150"), vec![code::DMARC_OBSOLETE_TAG, code::DMARC_SYNTAX]);
        assert_eq!(codes("v=DMARC1; p=none; rua=dmarc@example.com"), vec![code::DMARC_URI_INVALID]);
        assert_eq!(codes("v=DMARC1; p=none; rua=mailto:a@b.com!10m"), vec![code::DMARC_URI_SIZE]);
        assert_eq!(codes("v=DMARC1; p=none; rua=https://x.example/r"), vec![code::DMARC_URI_NOT_MAILTO]);
        assert_eq!(codes("v=DMARC1; p=none; rue=mailto:a@b.com"), vec![code::DMARC_UNKNOWN_TAG]);
        assert_eq!(codes("v=DMARC1; P=none"), vec![code::DMARC_TAG_CASE]);
        assert_eq!(codes("v=DMARC1; p=none; foo"), vec![code::DMARC_SYNTAX]);
        assert_eq!(codes("v=DMARC1; p=reject; t=y"), vec![code::DMARC_TESTING]);
        // pct=0 beside t=y is the testing step for both generations, not an obsolete tag.
        assert_eq!(codes("v=DMARC1; p=quarantine; pct=0; t=y"), vec![code::DMARC_TESTING]);
        assert_eq!(codes("v=DMARC1; p=quarantine; pct=0"), vec![code::DMARC_OBSOLETE_TAG, code::DMARC_PCT_PARTIAL]);
        let p = DmarcRecord::parse("v=DMARC1; p=none; rua=dmarc@example.com");
        assert!(p.diagnostics[0].message.contains("mailto:dmarc@example.com"));
    }

    #[test]
    fn meaning_differs_by_rfc() {
        let r = DmarcRecord::parse("v=DMARC1; p=reject; pct=50; t=y; np=reject; sp=none").value.unwrap();
        let old = r.meaning(Rfc::Rfc7489);
        assert_eq!(old.percent, 50);
        assert!(!old.testing);
        assert_eq!(old.nonexistent_policy, None);
        assert_eq!(old.applied, Policy::Reject);
        let new = r.meaning(Rfc::Rfc9989);
        assert_eq!(new.percent, 100);
        assert!(new.testing);
        assert_eq!(new.applied, Policy::Quarantine);
        assert_eq!(new.subdomain_policy, Policy::None);
        assert_eq!(new.nonexistent_policy, Some(Policy::Reject));

        let no_p = DmarcRecord::parse("v=DMARC1; rua=mailto:a@b.com").value.unwrap();
        assert!(no_p.meaning(Rfc::Rfc7489).usable);
        let bare = DmarcRecord::parse("v=DMARC1").value.unwrap();
        assert!(!bare.meaning(Rfc::Rfc7489).usable);
        assert!(bare.meaning(Rfc::Rfc9989).usable);
        let zero = DmarcRecord::parse("v=DMARC1; p=quarantine; pct=0").value.unwrap();
        assert_eq!(zero.meaning(Rfc::Rfc7489).applied, Policy::None);
    }

    #[test]
    fn report_uri_suggestions() {
        assert!(ReportUri::parse("dmarc@example.com").unwrap_err().contains("mailto:dmarc@example.com"));
        assert!(ReportUri::parse("mailto:nobody").is_err());
        assert!(ReportUri::parse("mailto:a@-bad.com").is_err());
        assert!(ReportUri::parse("mailto:a@b.com!x").is_err());
        assert_eq!(ReportUri::parse(" mailto:a@b.com!10m ").unwrap().size_limit.as_deref(), Some("10m"));
    }
}
