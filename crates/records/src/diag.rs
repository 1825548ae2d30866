//! Diagnostics: every problem a parser sees, with a stable code, a severity and the byte
//! span of the input it concerns.

use serde::Serialize;
use std::ops::Range;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The record is invalid, or a receiver will not do what the owner meant.
    Error,
    /// Valid, but risky, deprecated or likely a mistake.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

impl Severity {
    /// The name in lower case, as the JSON output writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One problem in one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, listed in [`DIAGNOSTIC_CODES`].
    pub code: &'static str,
    /// How serious the problem is.
    pub severity: Severity,
    /// What is wrong and, when there is one, what to write instead.
    pub message: String,
    /// Byte range of the input the diagnostic concerns.
    pub span: Range<usize>,
}

/// What a parser produced: the value (absent only when the input is not a record of this
/// kind at all) and every diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The record; `None` when the input is not a record of this kind at all.
    pub value: Option<T>,
    /// Every problem found, in input order.
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Parsed<T> {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// True when a diagnostic has this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.diagnostics.iter().any(|d| d.code == code)
    }

    /// The value when there is one and no error-level diagnostic.
    pub fn valid(&self) -> Option<&T> {
        if self.has_errors() { None } else { self.value.as_ref() }
    }
}

/// The documentation of one diagnostic code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiagnosticCode {
    /// The stable code (`spf-syntax`).
    pub code: &'static str,
    /// The severity a diagnostic with this code has.
    pub severity: Severity,
    /// What the code means, in one or two sentences.
    pub summary: &'static str,
}

macro_rules! codes {
    ($( $ident:ident = $code:literal, $sev:ident, $summary:literal; )*) => {
        /// Diagnostic codes as constants, so a typo is a compile error.
        pub mod code {
            $( #[doc = $summary] pub const $ident: &str = $code; )*
        }
        /// Every diagnostic code a parser in this crate can emit.
        pub const DIAGNOSTIC_CODES: &[DiagnosticCode] = &[
            $( DiagnosticCode { code: $code, severity: Severity::$sev, summary: $summary }, )*
        ];
    };
}

codes! {
    SPF_NOT_SPF = "spf-not-spf1", Error, "The text does not start with `v=spf1` followed by a space or its end: it is not an SPF record.";
    SPF_SYNTAX = "spf-syntax", Error, "A term does not follow the RFC 7208 grammar; receivers return permerror for the whole record.";
    SPF_UNKNOWN_MECHANISM = "spf-unknown-mechanism", Error, "A mechanism name RFC 7208 does not define (a typo such as `inlcude`); receivers return permerror.";
    SPF_INVALID_IP = "spf-invalid-ip", Error, "An `ip4`/`ip6` address or CIDR prefix length is malformed or out of range.";
    SPF_INVALID_DOMAIN_SPEC = "spf-invalid-domain-spec", Error, "A domain-spec is empty, has an invalid macro, or does not end in a valid top label.";
    SPF_INVALID_MACRO = "spf-invalid-macro", Error, "A `%` macro is malformed, or uses `c`, `r` or `t` outside explanation text.";
    SPF_DUPLICATE_MODIFIER = "spf-duplicate-modifier", Error, "`redirect=` or `exp=` appears more than once; RFC 7208 §6 makes that a permerror.";
    SPF_PTR = "spf-ptr", Warning, "The `ptr` mechanism is deprecated (RFC 7208 §5.5): slow, unreliable, and some receivers ignore it.";
    SPF_PERMISSIVE_ALL = "spf-permissive-all", Warning, "`+all` authorizes every host on the Internet; `?all` says nothing. Use `~all` or `-all`.";
    SPF_REDIRECT_WITH_ALL = "spf-redirect-with-all", Warning, "`redirect=` is ignored when the record has an `all` mechanism.";
    SPF_TERMS_AFTER_ALL = "spf-terms-after-all", Warning, "Mechanisms after `all` are never evaluated.";
    SPF_UNKNOWN_MODIFIER = "spf-unknown-modifier", Info, "An unknown modifier; receivers ignore it, but it may be a typo.";
    SPF_NO_ALL = "spf-no-all", Info, "No `all` mechanism and no `redirect=`: hosts not listed get `neutral`.";
    SPF_STRING_TOO_LONG = "spf-string-too-long", Error, "A single character-string in the TXT record is over 255 bytes; DNS cannot carry it, split it.";
    SPF_RECORD_LONG = "spf-record-long", Warning, "The record is over 450 bytes; RFC 7208 §3.4 asks to stay under it so the answer fits a 512-byte UDP reply.";
    SPF_RECORD_TOO_LONG = "spf-record-too-long", Warning, "The record is over 512 bytes; answers need EDNS or TCP, and some receivers fail.";
    SPF_IP_ALL = "spf-ip-all", Warning, "An `ip4:0.0.0.0/0` or `ip6:::/0` term authorizes every address.";
    DMARC_NOT_DMARC = "dmarc-not-dmarc1", Error, "The record does not start with `v=DMARC1`: receivers ignore it.";
    DMARC_SYNTAX = "dmarc-syntax", Error, "A tag is not of the form `name=value`, or its value is invalid.";
    DMARC_POLICY_MISSING = "dmarc-policy-missing", Warning, "No `p=` tag: invalid under RFC 7489 (unless `rua` is valid, then p=none); RFC 9989 reads it as p=none.";
    DMARC_POLICY_NOT_SECOND = "dmarc-policy-not-second", Warning, "RFC 7489 requires `p=` right after `v=DMARC1`; some receivers still enforce that order.";
    DMARC_DUPLICATE_TAG = "dmarc-duplicate-tag", Error, "A tag appears twice; receivers differ in which one they use.";
    DMARC_UNKNOWN_TAG = "dmarc-unknown-tag", Warning, "A tag neither RFC 7489 nor RFC 9989 defines; receivers ignore it, and it may be a typo.";
    DMARC_OBSOLETE_TAG = "dmarc-obsolete-tag", Info, "`pct`, `rf` or `ri`: defined by RFC 7489, removed by RFC 9989 (for testing, `t=y` together with `pct=0`).";
    DMARC_URI_INVALID = "dmarc-uri-invalid", Error, "A `rua`/`ruf` entry is not a valid URI (for e-mail: `mailto:user@example.com`).";
    DMARC_URI_NOT_MAILTO = "dmarc-uri-not-mailto", Warning, "A `rua`/`ruf` URI is not `mailto:`; RFC 9990 defines only mailto delivery.";
    DMARC_URI_SIZE = "dmarc-uri-size", Info, "The `!size` suffix on a report URI is ignored under RFC 9989.";
    DMARC_TAG_CASE = "dmarc-tag-case", Warning, "A tag name is not lower case; some receivers match tag names case-sensitively.";
    DMARC_TESTING = "dmarc-testing", Info, "`t=y` (RFC 9989): the policy is applied one level weaker (reject as quarantine, quarantine as none); RFC 7489 receivers ignore `t`, so write `pct=0` beside it for them.";
    DMARC_PCT_PARTIAL = "dmarc-pct-partial", Info, "`pct` below 100: under RFC 7489 the policy applies to that share of failing mail only.";
    DKIM_SYNTAX = "dkim-syntax", Error, "The key record is not a list of `tag=value` pairs, or a tag value is malformed.";
    DKIM_VERSION = "dkim-version", Error, "`v=` is present but is not `DKIM1` in first position; verifiers ignore the record.";
    DKIM_KEY_MISSING = "dkim-key-missing", Error, "No `p=` tag: the record holds no key.";
    DKIM_KEY_REVOKED = "dkim-key-revoked", Error, "`p=` is empty: the key is revoked and every signature with this selector fails.";
    DKIM_KEY_INVALID = "dkim-key-invalid", Error, "The `p=` value is not valid base64, not a key of the stated type, or of the wrong length.";
    DKIM_KEY_WEAK = "dkim-key-weak", Error, "An RSA key under 1024 bits; RFC 8301 makes verifiers reject it.";
    DKIM_KEY_1024 = "dkim-key-1024", Info, "A 1024-bit RSA key: accepted, but 2048 bits is recommended (RFC 8301).";
    DKIM_UNKNOWN_KEY_TYPE = "dkim-unknown-key-type", Error, "`k=` names a key type other than `rsa` or `ed25519`; verifiers cannot use the key.";
    DKIM_SHA1_ONLY = "dkim-sha1-only", Error, "`h=` allows only sha1; RFC 8301 forbids rsa-sha1, so no signature can verify.";
    DKIM_NOT_EMAIL = "dkim-not-email", Error, "`s=` does not include `email` or `*`: the key may not be used for mail.";
    DKIM_TESTING = "dkim-testing", Info, "`t=y`: the domain is testing DKIM; verifiers may treat failures as unsigned.";
    DKIM_DUPLICATE_TAG = "dkim-duplicate-tag", Error, "A tag appears twice; RFC 6376 makes the record invalid.";
    DOMAIN_INVALID = "domain-invalid", Error, "Not a valid domain name (empty label, bad character, label over 63 or name over 253 bytes).";
}
