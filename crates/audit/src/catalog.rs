//! The one table of finding codes `check` emits: each with its severity, the record it
//! concerns, a title, why it matters and how to fix it. docs/findings.md is generated from
//! this table (see [`crate::docs`]).

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSeverity {
    /// SES mail fails DMARC, or a record is broken: fix it.
    Error,
    /// Risky, or likely a mistake.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
    /// The answer needed to judge could not be had (DNS failure): never "missing".
    Unknown,
}

impl FindingSeverity {
    /// The name in lower case, as the JSON output writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingSeverity::Error => "error",
            FindingSeverity::Warning => "warning",
            FindingSeverity::Info => "info",
            FindingSeverity::Unknown => "unknown",
        }
    }
}

/// Which records a finding concerns: the sections of the human report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordGroup {
    /// The MAIL FROM name's MX and SPF records.
    MailFrom,
    /// The Easy DKIM CNAMEs and DKIM key records.
    Dkim,
    /// The DMARC record.
    Dmarc,
    /// The SPF records at the apex and at the MAIL FROM name.
    Spf,
    /// Any record (DNS failures, quoted values).
    AnyRecord,
}

impl RecordGroup {
    /// The section title in the human report.
    pub fn title(self) -> &'static str {
        match self {
            RecordGroup::MailFrom => "MAIL FROM",
            RecordGroup::Dkim => "DKIM",
            RecordGroup::Dmarc => "DMARC",
            RecordGroup::Spf => "SPF (apex and MAIL FROM)",
            RecordGroup::AnyRecord => "Any record",
        }
    }
}

/// One finding code, as docs/findings.md documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FindingKind {
    /// Stable code (`mail-from-mx-missing`).
    pub code: &'static str,
    /// The severity findings with this code have.
    pub severity: FindingSeverity,
    /// The records it concerns.
    pub group: RecordGroup,
    /// A title of a few words.
    pub title: &'static str,
    /// Why it matters.
    pub why: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

macro_rules! findings {
    ($( $ident:ident = $code:literal, $sev:ident, $group:ident, $title:literal, $why:literal, $fix:literal; )*) => {
        /// Finding codes as constants, so a typo is a compile error.
        pub mod code {
            $( #[doc = $title] pub const $ident: &str = $code; )*
        }
        /// Every finding code `check` can emit.
        pub const FINDINGS: &[FindingKind] = &[
            $( FindingKind { code: $code, severity: FindingSeverity::$sev, group: RecordGroup::$group, title: $title, why: $why, fix: $fix }, )*
        ];
    };
}

findings! {
    MAIL_FROM_MX_MISSING = "mail-from-mx-missing", Error, MailFrom,
        "No MX record at the MAIL FROM name",
        "SES verifies the custom MAIL FROM domain by its MX record. Without it the status stays PENDING then FAILED, and with BehaviorOnMxFailure=USE_DEFAULT_VALUE SES silently sends as amazonses.com: SPF no longer aligns.",
        "Publish `<mail-from> MX 10 feedback-smtp.<region>.amazonses.com`.";
    MAIL_FROM_MX_MULTIPLE = "mail-from-mx-multiple", Error, MailFrom,
        "More than one MX record at the MAIL FROM name",
        "SES requires exactly one MX record at the MAIL FROM domain; with more, verification fails. One MX serves every region.",
        "Keep only `10 feedback-smtp.<region>.amazonses.com` and delete the others.";
    MAIL_FROM_MX_NOT_SES = "mail-from-mx-not-ses", Error, MailFrom,
        "The MAIL FROM MX does not point to SES",
        "The MX must name SES's feedback endpoint so bounces and complaints reach SES; SES does not verify a MAIL FROM domain whose MX points elsewhere.",
        "Replace the MX with `10 feedback-smtp.<region>.amazonses.com`.";
    MAIL_FROM_MX_UNKNOWN_REGION = "mail-from-mx-unknown-region", Error, MailFrom,
        "The MAIL FROM MX names a region SES does not have",
        "The target has the shape feedback-smtp.<region>.amazonses.com but the region is not an SES region (usually a typo), so the name does not resolve and verification fails.",
        "Correct the region in the MX target.";
    MAIL_FROM_MX_OTHER_REGION = "mail-from-mx-other-region", Info, MailFrom,
        "The MAIL FROM MX names another SES region",
        "AWS lets one MAIL FROM domain serve identities in several regions with one MX naming any one region; bounces go there first and are redirected. This is fine; some guides wrongly call it an error.",
        "Nothing to do. To keep bounces in one region, name the region you send from.";
    MAIL_FROM_SPF_MISSING = "mail-from-spf-missing", Error, MailFrom,
        "No SPF record at the MAIL FROM name",
        "Receivers check SPF against the MAIL FROM domain; without a record SPF returns none and cannot align, so only DKIM can carry DMARC.",
        "Publish `<mail-from> TXT \"v=spf1 include:amazonses.com ~all\"`.";
    MAIL_FROM_SPF_MULTIPLE = "mail-from-spf-multiple", Error, MailFrom,
        "More than one SPF record at the MAIL FROM name",
        "Two `v=spf1` records at one name make SPF return permerror (RFC 7208 §4.5): SPF fails for all SES mail.",
        "Merge them into one: `v=spf1 include:amazonses.com ~all`.";
    MAIL_FROM_SPF_NO_SES = "mail-from-spf-no-ses", Error, MailFrom,
        "The MAIL FROM SPF record does not authorize SES",
        "SES sends from addresses listed under amazonses.com; an SPF record at the MAIL FROM name without `include:amazonses.com` fails SES mail.",
        "Add `include:amazonses.com` to the MAIL FROM SPF record.";
    MAIL_FROM_CNAME_CONFLICT = "mail-from-cname-conflict", Error, MailFrom,
        "A CNAME at the MAIL FROM name",
        "A CNAME cannot coexist with other records (RFC 1034): the MX and SPF TXT at the MAIL FROM name are hidden or refused by the DNS host.",
        "Delete the CNAME and publish the MX and TXT records directly at the name.";
    MAIL_FROM_NOT_SUBDOMAIN = "mail-from-not-subdomain", Error, MailFrom,
        "The MAIL FROM domain is not under the From domain",
        "SES requires the MAIL FROM domain to be a subdomain of the verified identity, and DMARC aligns SPF only within the same organizational domain.",
        "Choose a name under the domain, such as mail.<domain>.";
    MAIL_FROM_NOT_CHECKED = "mail-from-not-checked", Info, MailFrom,
        "Custom MAIL FROM not checked",
        "Which MAIL FROM name SES uses is set in SES, not visible in DNS; without it the MAIL FROM records were not checked and SPF alignment of SES mail is unknown.",
        "Pass `--mail-from LABEL` (for example `--mail-from mail`).";
    MAIL_FROM_IS_FROM_DOMAIN = "mail-from-is-from-domain", Error, MailFrom,
        "The MAIL FROM domain is the From domain itself",
        "SES refuses the identity's own domain as MAIL FROM: its MX must point to SES, which would take over the domain's incoming mail.",
        "Use a subdomain such as mail.<domain>.";
    DKIM_CNAME_MISSING = "dkim-cname-missing", Error, Dkim,
        "An Easy DKIM CNAME is missing",
        "SES verifies Easy DKIM only when all three CNAMEs resolve; one missing record keeps the status PENDING, then FAILED after 72 hours, and mail is not signed with the domain.",
        "Publish `<token>._domainkey.<domain> CNAME <token>.<signing zone>` for each of the three tokens.";
    DKIM_CNAME_WRONG_TARGET = "dkim-cname-wrong-target", Error, Dkim,
        "An Easy DKIM CNAME points to the wrong target",
        "The CNAME must point to `<token>.<signing zone>` of the region (dkim.amazonses.com in most regions). A doubled zone suffix or another region's zone leaves the key unreachable.",
        "Correct the CNAME target to `<token>.<signing zone>`.";
    DKIM_KEY_INVALID = "dkim-key-invalid", Error, Dkim,
        "The DKIM key record behind a selector is invalid",
        "Verifiers could not use the key: not valid base64, not a key of the stated type, missing `p=`, or a syntax error, so every signature with this selector fails.",
        "Publish the key exactly as SES or your signer gives it.";
    DKIM_KEY_WEAK = "dkim-key-weak", Error, Dkim,
        "A DKIM key under 1024 bits",
        "RFC 8301 makes verifiers reject RSA keys under 1024 bits: every signature with this selector fails.",
        "Use a 2048-bit key (SES: set the signing key length to RSA_2048_BIT).";
    DKIM_KEY_1024 = "dkim-key-1024", Info, Dkim,
        "A 1024-bit DKIM key",
        "Accepted by verifiers, but RFC 8301 recommends 2048 bits and SES uses 2048 by default.",
        "Move to a 2048-bit key (SES: PutEmailIdentityDkimSigningAttributes with RSA_2048_BIT).";
    DKIM_SELECTOR_MISSING = "dkim-selector-missing", Error, Dkim,
        "No DKIM key at a selector",
        "A selector given with --selector has no key record: signatures with it fail.",
        "Publish the key at `<selector>._domainkey.<domain>` (TXT `v=DKIM1; k=rsa; p=...`), or the CNAME your provider gives.";
    DKIM_NOT_CHECKED = "dkim-not-checked", Info, Dkim,
        "DKIM not checked",
        "DKIM key names cannot be listed from DNS; without the Easy DKIM tokens or a selector the DKIM records were not checked and DKIM alignment is unknown.",
        "Pass the three tokens (`--dkim-token`, from `aws sesv2 get-email-identity`) or `--selector`.";
    DKIM_KEY_REVOKED = "dkim-key-revoked", Error, Dkim,
        "The DKIM key is revoked",
        "An empty `p=` means the key is revoked: every signature with this selector fails.",
        "Sign with a selector whose key is published, or publish the key again.";
    DMARC_MISSING = "dmarc-missing", Error, Dmarc,
        "No DMARC record",
        "Without a record at _dmarc.<domain> (or at the organizational domain) receivers apply no policy and send no reports.",
        "Publish `_dmarc.<domain> TXT \"v=DMARC1; p=none; rua=mailto:<address>\"`.";
    DMARC_MULTIPLE = "dmarc-multiple", Error, Dmarc,
        "More than one DMARC record",
        "Two `v=DMARC1` records at one name mean no policy at all: receivers ignore both.",
        "Keep one record and merge what the others said.";
    DMARC_SYNTAX = "dmarc-syntax", Error, Dmarc,
        "The DMARC record has syntax errors",
        "An invalid tag value, duplicate tag, or a record that does not start with `v=DMARC1` makes receivers ignore the tag or the whole record.",
        "Correct the record; `ses-dmarc plan` prints a valid one.";
    DMARC_POLICY_NONE = "dmarc-policy-none", Info, Dmarc,
        "The DMARC policy is none",
        "p=none asks for reports and changes no delivery: right while monitoring, but spoofed mail is still delivered.",
        "When reports show all legitimate mail aligned, move to p=quarantine, then p=reject (`ses-dmarc rollout`).";
    DMARC_NO_RUA = "dmarc-no-rua", Warning, Dmarc,
        "No aggregate report address",
        "Without `rua` nobody sends you aggregate reports, so you cannot see what fails before tightening the policy.",
        "Add `rua=mailto:<address>` to the DMARC record.";
    DMARC_RUA_INVALID = "dmarc-rua-invalid", Error, Dmarc,
        "An invalid report address",
        "A `rua`/`ruf` entry that is not a valid URI (for example an address without `mailto:`) is ignored by receivers.",
        "Write each destination as `mailto:user@example.com`, separated by commas.";
    DMARC_RUA_UNAUTHORIZED = "dmarc-rua-unauthorized", Warning, Dmarc,
        "An external report destination has not authorized the reports",
        "When reports go to another organization's domain, receivers send them only if that domain publishes `<domain>._report._dmarc.<destination>` TXT \"v=DMARC1\" (RFC 7489 §7.1); otherwise reports silently never arrive.",
        "Ask the destination's owner to publish `<domain>._report._dmarc.<destination> TXT \"v=DMARC1\"`.";
    DMARC_ASPF_STRICT_SES = "dmarc-aspf-strict-ses", Warning, Dmarc,
        "aspf=s with an SES custom MAIL FROM",
        "The custom MAIL FROM is a subdomain of the From domain, so strict SPF alignment never passes for SES mail; only DKIM can carry DMARC.",
        "Remove `aspf=s` (relaxed is the default); `adkim=s` works with Easy DKIM.";
    DMARC_OBSOLETE_TAG = "dmarc-obsolete-tag", Info, Dmarc,
        "A tag removed by RFC 9989",
        "`pct`, `rf` and `ri` are RFC 7489 tags; RFC 9989 receivers ignore them (pct: the policy applies to all mail).",
        "Remove them; while testing, write `pct=0` together with `t=y` (each generation reads its own tag; see docs/rollout.md), never a partial `pct`.";
    DMARC_INHERITED = "dmarc-inherited", Info, Dmarc,
        "The DMARC policy comes from a parent domain",
        "The domain has no record of its own; receivers apply the organizational domain's record (its `sp`, or `np` for names that do not exist).",
        "Nothing to do if that policy is what you want; publish `_dmarc.<domain>` to set one of its own.";
    DMARC_DISCOVERY_DIFFERS = "dmarc-discovery-differs", Info, Dmarc,
        "RFC 7489 and RFC 9989 receivers find different records",
        "RFC 7489 finds the organizational domain by the public suffix list, RFC 9989 by walking the DNS tree (`psd=`); receivers of both generations are in the field for years, so they apply different policies.",
        "Publish a record at the domain itself so both methods find the same one.";
    DMARC_LINT = "dmarc-lint", Warning, Dmarc,
        "A DMARC record problem receivers may handle differently",
        "The record is valid but risky: `p` missing or not second, a tag in upper case, an unknown tag (often a typo), or a non-mailto report URI.",
        "Rewrite the record as `ses-dmarc plan` prints it.";
    DMARC_SUBDOMAIN_POLICY_WEAKER = "dmarc-subdomain-policy-weaker", Warning, Dmarc,
        "The subdomain policy is weaker than the domain's",
        "`sp` (or `np` for non-existent subdomains) weaker than `p` leaves subdomains open to spoofing: p=reject; sp=none protects only the apex.",
        "Remove `sp`/`np`, or set them to the same policy as `p`.";
    SPF_MULTIPLE = "spf-multiple", Error, Spf,
        "More than one SPF record",
        "Two `v=spf1` records at one name make SPF return permerror (RFC 7208 §4.5).",
        "Merge the records into one.";
    SPF_SYNTAX = "spf-syntax", Error, Spf,
        "The SPF record has syntax errors",
        "Any syntax error makes SPF return permerror for every message.",
        "Correct the record; the finding names the term.";
    SPF_TOO_MANY_LOOKUPS = "spf-too-many-lookups", Error, Spf,
        "More than 10 DNS-querying terms",
        "RFC 7208 allows 10 include, a, mx, ptr, exists and redirect terms per check, counted through every include; beyond that receivers return permerror.",
        "Remove includes you do not use (the apex needs no include:amazonses.com with a custom MAIL FROM), or flatten.";
    SPF_VOID_LOOKUPS = "spf-void-lookups", Error, Spf,
        "More than 2 void DNS lookups",
        "Lookups that return no records count as void; after two, RFC 7208 §4.6.4 makes receivers return permerror.",
        "Remove the terms that name domains without records.";
    SPF_PERMISSIVE_ALL = "spf-permissive-all", Warning, Spf,
        "`+all` or `?all`",
        "`+all` authorizes every host on the Internet to send as the domain; `?all` says nothing about unlisted hosts.",
        "End the record with `~all` or `-all`.";
    SPF_PTR = "spf-ptr", Warning, Spf,
        "The deprecated `ptr` mechanism",
        "`ptr` is slow, unreliable and deprecated (RFC 7208 §5.5); some receivers skip it.",
        "Replace it with `ip4`/`ip6` ranges or the provider's include.";
    SPF_MISSING = "spf-missing", Info, Spf,
        "No SPF record at the apex",
        "SES mail with a custom MAIL FROM does not need one, but without it anyone can use the apex as envelope sender and SPF says nothing.",
        "If the apex sends no mail of its own, publish `<domain> TXT \"v=spf1 -all\"`; otherwise list its senders.";
    SPF_INCLUDE_MISSING = "spf-include-missing", Error, Spf,
        "An include or redirect names a domain without an SPF record",
        "RFC 7208 §5.2 and §6.1: an include or redirect target without an SPF record makes the whole check permerror.",
        "Remove the term, or correct the domain it names.";
    SPF_LINT = "spf-lint", Warning, Spf,
        "An SPF record problem that weakens it",
        "Terms after `all`, `redirect` beside `all`, an address range of everything, or a record too long for a 512-byte answer.",
        "Rewrite the record; the message names the term.";
    SPF_APEX_SES_INCLUDE_UNALIGNED = "spf-apex-ses-include-unaligned", Info, Spf,
        "include:amazonses.com at the apex does not align SES mail",
        "With a custom MAIL FROM, SES mail is checked against the MAIL FROM name; an apex include authorizes SES for the apex but never aligns, and costs one of the ten lookups.",
        "Remove `include:amazonses.com` from the apex record, unless SES sends with the apex as envelope sender.";
    TXT_QUOTED_VALUE = "txt-quoted-value", Error, AnyRecord,
        "Literal quote characters stored in a TXT value",
        "The DNS host stored the quotes as part of the value (\"\\\"v=spf1 ...\\\"\"), so the record no longer starts with `v=spf1`/`v=DMARC1` and receivers ignore it.",
        "Enter the value without surrounding quotes in the DNS host's form.";
    RECORD_NOTE = "record-note", Info, AnyRecord,
        "A note on a record",
        "Something worth knowing that needs no change: testing mode, a partial pct, no `all` term.",
        "Nothing to do.";
    DOMAIN_NOT_FOUND = "domain-not-found", Error, AnyRecord,
        "The domain does not exist",
        "DNS answers NXDOMAIN for the domain itself: nothing can be published under a name that does not exist, so every record is missing for one reason.",
        "Check the spelling; a new domain needs its delegation (NS records at the registrar) first.";
    REGION_ASSUMED = "region-assumed", Info, MailFrom,
        "The SES region was taken from the MAIL FROM MX",
        "Without `--region` the region is read from the MAIL FROM MX (its feedback host names one); the DKIM signing zone and the fixes follow that region.",
        "Pass `--region` to check against the regions you send from.";
    DNS_LOOKUP_FAILED = "dns-lookup-failed", Unknown, AnyRecord,
        "A DNS lookup failed",
        "The answer could not be had (SERVFAIL, REFUSED, timeout): the checks that need it are unknown, not failed, and nothing is reported missing because of it.",
        "Retry later, or check the domain's name servers (`dig +trace`).";
}

pub(crate) fn find(code: &str) -> Option<&'static FindingKind> {
    FINDINGS.iter().find(|f| f.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for f in FINDINGS {
            assert!(seen.insert(f.code), "duplicate {}", f.code);
            assert!(f.code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{}", f.code);
            assert!(f.why.len() > 20 && !f.fix.is_empty() && !f.title.is_empty());
        }
    }

    #[test]
    fn design_codes_are_all_present() {
        let design = "mail-from-mx-missing mail-from-mx-multiple mail-from-mx-not-ses mail-from-mx-unknown-region \
            mail-from-mx-other-region mail-from-spf-missing mail-from-spf-multiple mail-from-spf-no-ses \
            mail-from-cname-conflict mail-from-not-subdomain mail-from-is-from-domain dkim-cname-missing \
            dkim-cname-wrong-target dkim-key-invalid dkim-key-weak dkim-key-revoked dmarc-missing dmarc-multiple \
            dmarc-syntax dmarc-policy-none dmarc-no-rua dmarc-rua-invalid dmarc-rua-unauthorized \
            dmarc-aspf-strict-ses dmarc-obsolete-tag dmarc-subdomain-policy-weaker spf-multiple spf-syntax \
            spf-too-many-lookups spf-void-lookups spf-permissive-all spf-ptr spf-apex-ses-include-unaligned \
            txt-quoted-value dns-lookup-failed";
        for c in design.split_whitespace() {
            assert!(find(c).is_some(), "{c} missing from the table");
        }
    }
}
