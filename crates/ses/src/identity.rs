//! An SES domain identity as the SES API describes it (verification, Easy DKIM, MAIL FROM),
//! and what each state means for the user, with the next step. Pure: the API calls live in
//! [`crate::aws`]; this module only reads their answers.

use crate::plan::AdviceLevel;
use crate::regions;
use serde::Serialize;

/// SES's five verification states (identity, DKIM and MAIL FROM share them). SES v1 writes
/// `TemporaryFailure`, SES v2 `TEMPORARY_FAILURE`: both are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not started (for DKIM: Easy DKIM was never turned on).
    NotStarted,
    /// SES is looking for the DNS records.
    Pending,
    /// Verified.
    Success,
    /// SES gave up: the records were not found in time, or disappeared.
    Failed,
    /// SES could not read the domain's DNS; it retries by itself.
    TemporaryFailure,
}

impl State {
    /// Reads either spelling (`TemporaryFailure`, `TEMPORARY_FAILURE`), any case.
    pub fn parse(text: &str) -> Option<State> {
        let squashed: String = text.chars().filter(|c| *c != '_').collect::<String>().to_ascii_lowercase();
        Some(match squashed.as_str() {
            "notstarted" => State::NotStarted,
            "pending" => State::Pending,
            "success" => State::Success,
            "failed" => State::Failed,
            "temporaryfailure" => State::TemporaryFailure,
            _ => return None,
        })
    }

    /// The SES v2 spelling (`TEMPORARY_FAILURE`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotStarted => "NOT_STARTED",
            State::Pending => "PENDING",
            State::Success => "SUCCESS",
            State::Failed => "FAILED",
            State::TemporaryFailure => "TEMPORARY_FAILURE",
        }
    }
}

/// How long SES keeps looking for DNS records before it gives up (AWS SES guide).
pub const SES_GIVES_UP_AFTER_HOURS: i64 = 72;

/// The identity's DKIM: Easy DKIM or BYODKIM, verification and keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DkimState {
    /// DKIM signing is on for the identity.
    pub signing_enabled: bool,
    /// DKIM verification state, when SES gives one.
    pub status: Option<State>,
    /// The Easy DKIM tokens: SES looks for CNAMEs at `<token>._domainkey.<domain>`.
    pub tokens: Vec<String>,
    /// `AWS_SES` (Easy DKIM), `EXTERNAL` (BYODKIM), or `AWS_SES_<REGION>` for a
    /// Deterministic Easy DKIM replica of that parent region.
    pub signing_attributes_origin: Option<String>,
    /// Where SES publishes the keys (`dkim.amazonses.com`, ...), when the API gives it.
    pub signing_hosted_zone: Option<String>,
    /// Length of the key SES signs with now (`RSA_2048_BIT`).
    pub current_key_length: Option<String>,
    /// Length of the key SES rotates to next.
    pub next_key_length: Option<String>,
    /// When SES last generated the key pair (seconds since 1970): DKIM verification
    /// started then.
    pub last_key_generation: Option<i64>,
}

/// The identity's custom MAIL FROM domain and its verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailFromState {
    /// The MAIL FROM domain, lower case.
    pub domain: String,
    /// MAIL FROM verification state (SES looks for the MX), when SES gives one.
    pub status: Option<State>,
    /// `USE_DEFAULT_VALUE` or `REJECT_MESSAGE`.
    pub behavior_on_mx_failure: Option<String>,
}

/// An SES domain identity in one region, as the SES APIs describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdentityStatus {
    /// The identity's domain.
    pub domain: String,
    /// The region asked (`eu-west-1`).
    pub region: String,
    /// The identity exists in this region.
    pub exists: bool,
    /// The identity's verification state.
    pub verification: Option<State>,
    /// SES v2's reason for a failed verification (`HOST_NOT_FOUND`, `INVALID_VALUE`, ...).
    pub verification_error: Option<String>,
    /// DKIM signing and verification.
    pub dkim: DkimState,
    /// The custom MAIL FROM, when one is set.
    pub mail_from: Option<MailFromState>,
    /// Remarks about the answers themselves (an API that could not be read, ...).
    pub notes: Vec<String>,
}

/// `us-east-1` for `AWS_SES_US_EAST_1`; `None` for `AWS_SES`, `EXTERNAL` and the unknown.
pub fn deed_parent_region(origin: &str) -> Option<&'static str> {
    let rest = origin.strip_prefix("AWS_SES_")?;
    regions::find(&rest.replace('_', "-").to_ascii_lowercase()).map(|r| r.code)
}

/// A normalised `RSA_2048_BIT` → `2048`.
fn key_bits(length: &str) -> Option<u32> {
    length.trim_start_matches("RSA_").trim_end_matches("_BIT").parse().ok()
}

/// The type of a record an identity needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NeededType {
    /// An Easy DKIM CNAME.
    Cname,
    /// The MAIL FROM MX.
    Mx,
}

impl NeededType {
    /// The type's name as DNS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            NeededType::Cname => "CNAME",
            NeededType::Mx => "MX",
        }
    }
}

/// One record the identity needs in DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeededRecord {
    /// Owner name, without the trailing dot.
    pub name: String,
    /// `CNAME` or `MX`.
    pub rtype: NeededType,
    /// The target (CNAME) or exchange (MX).
    pub value: String,
}

impl IdentityStatus {
    /// The zone the DKIM CNAMEs point into: the API's answer, else this project's table.
    pub fn signing_zone(&self) -> Option<String> {
        if let Some(zone) = &self.dkim.signing_hosted_zone {
            return Some(zone.trim_end_matches('.').to_ascii_lowercase());
        }
        let region = match self.dkim.signing_attributes_origin.as_deref().and_then(deed_parent_region) {
            Some(parent) => parent,
            None => &self.region,
        };
        regions::find(region).map(|r| r.dkim_signing_zone.to_string())
    }

    /// True when the identity is a Deterministic Easy DKIM replica (origin `AWS_SES_<REGION>`):
    /// it signs with its parent region's keys and tokens.
    pub fn is_deed_replica(&self) -> bool {
        self.dkim.signing_attributes_origin.as_deref().and_then(deed_parent_region).is_some()
    }

    /// True when the identity signs with a key of its own (BYODKIM, origin `EXTERNAL`).
    pub fn is_byodkim(&self) -> bool {
        self.dkim.signing_attributes_origin.as_deref() == Some("EXTERNAL")
    }

    /// The Easy DKIM CNAMEs, then the MAIL FROM MX.
    pub fn needed_records(&self) -> Vec<NeededRecord> {
        let mut out = Vec::new();
        if !self.is_byodkim()
            && let Some(zone) = self.signing_zone()
        {
            for t in &self.dkim.tokens {
                out.push(NeededRecord {
                    name: format!("{t}._domainkey.{}", self.domain),
                    rtype: NeededType::Cname,
                    value: format!("{t}.{zone}"),
                });
            }
        }
        if let (Some(mf), Some(region)) = (&self.mail_from, regions::find(&self.region)) {
            out.push(NeededRecord { name: mf.domain.clone(), rtype: NeededType::Mx, value: region.feedback_host() });
        }
        out
    }
}

/// What one part of an identity's state means, and the next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusAdvice {
    /// Stable code, one of [`advice_code`].
    pub code: &'static str,
    /// Warning when something must be done, info otherwise.
    pub level: AdviceLevel,
    /// What the state means and what to type.
    pub message: String,
}

/// Stable codes of [`advise`].
pub mod advice_code {
    /// The domain is not an SES identity in the region.
    pub const NOT_AN_IDENTITY: &str = "identity-missing";
    /// The identity itself is not verified.
    pub const VERIFICATION: &str = "identity-verification";
    /// Easy DKIM is not started: mail carries only SES's own `d=amazonses.com` signature.
    pub const DKIM_NOT_STARTED: &str = "dkim-not-started";
    /// SES is looking for the DKIM CNAMEs.
    pub const DKIM_PENDING: &str = "dkim-pending";
    /// DKIM pending past the 72 hours after which SES gives up.
    pub const DKIM_PENDING_TOO_LONG: &str = "dkim-pending-given-up";
    /// DKIM verified: SES signs with the domain, which aligns.
    pub const DKIM_SUCCESS: &str = "dkim-verified";
    /// DKIM verified, but signing is disabled.
    pub const DKIM_SIGNING_OFF: &str = "dkim-signing-disabled";
    /// SES stopped looking for the DKIM CNAMEs.
    pub const DKIM_FAILED: &str = "dkim-failed";
    /// SES could not read the domain's DNS for DKIM; it retries.
    pub const DKIM_TEMPORARY_FAILURE: &str = "dkim-temporary-failure";
    /// A Deterministic Easy DKIM replica: signs with its parent region's keys.
    pub const DKIM_DEED_REPLICA: &str = "dkim-deed-replica";
    /// Bring Your Own DKIM: SES looks for the domain's own key record.
    pub const DKIM_BYODKIM: &str = "dkim-byodkim";
    /// SES signs with a 1024-bit key, and no 2048-bit key is next.
    pub const DKIM_KEY_1024: &str = "dkim-key-1024";
    /// No custom MAIL FROM: SPF never aligns.
    pub const NO_MAIL_FROM: &str = "mail-from-not-set";
    /// SES has not found the MAIL FROM MX yet.
    pub const MAIL_FROM_PENDING: &str = "mail-from-pending";
    /// MAIL FROM verified: SPF aligns.
    pub const MAIL_FROM_SUCCESS: &str = "mail-from-verified";
    /// SES cannot find the MAIL FROM MX.
    pub const MAIL_FROM_FAILED: &str = "mail-from-failed";
    /// SES could not read the MAIL FROM domain's DNS; it retries.
    pub const MAIL_FROM_TEMPORARY_FAILURE: &str = "mail-from-temporary-failure";
    /// What SES does while the MAIL FROM MX is not verified (`BehaviorOnMxFailure`).
    pub const MX_FAILURE_BEHAVIOR: &str = "mail-from-mx-failure-behavior";
}

/// What each part of the identity's state means, and the next step. `now` is seconds
/// since 1970.
pub fn advise(s: &IdentityStatus, now: i64) -> Vec<StatusAdvice> {
    use AdviceLevel::{Info, Warning};
    use advice_code as c;
    let mut out = Vec::new();
    let mut say = |code, level, message: String| out.push(StatusAdvice { code, level, message });
    let (domain, region) = (&s.domain, &s.region);
    if !s.exists {
        say(
            c::NOT_AN_IDENTITY,
            Warning,
            format!(
                "{domain} is not an SES identity in {region}. If it is set up in another region, pass that --region; otherwise create it: `aws sesv2 create-email-identity --email-identity {domain} --region {region}` (Easy DKIM starts with it), then `ses-dmarc plan {domain} --region {region} --from-ses` for the records."
            ),
        );
        return out;
    }
    match s.verification {
        Some(State::Success) | None => {}
        Some(state) => {
            let why = s.verification_error.as_deref().map(|e| format!(" (SES says {e})")).unwrap_or_default();
            say(
                c::VERIFICATION,
                Warning,
                format!(
                    "The identity is {}{why}: SES sends from {domain} only once the DKIM records (or the legacy _amazonses TXT) verify it. See the DKIM line.",
                    state.as_str()
                ),
            );
        }
    }
    let d = &s.dkim;
    let hours = d.last_key_generation.map(|t| (now - t).max(0) / 3600);
    if let Some(parent) = d.signing_attributes_origin.as_deref().and_then(deed_parent_region) {
        say(
            c::DKIM_DEED_REPLICA,
            Info,
            format!(
                "Deterministic Easy DKIM replica of {parent}: {region} signs with {parent}'s keys and tokens, so the CNAMEs are the ones already published for {parent}; nothing new to publish. If {parent}'s identity is deleted, signing here stops."
            ),
        );
    }
    if s.is_byodkim() {
        say(
            c::DKIM_BYODKIM,
            Info,
            format!(
                "Bring Your Own DKIM: SES looks for the TXT record <selector>._domainkey.{domain} holding your public key (p=...); `ses-dmarc check {domain} --selector <selector>` reads it."
            ),
        );
    }
    let cname_fix = "the DNS column says which one is missing or wrong";
    match d.status {
        None | Some(State::NotStarted) => say(
            c::DKIM_NOT_STARTED,
            Warning,
            format!(
                "Easy DKIM is not started: SES mail from {domain} carries only SES's own d=amazonses.com signature, which never aligns. Start it: `aws ses verify-domain-dkim --domain {domain} --region {region}`, then publish the three CNAMEs it returns (`ses-dmarc plan {domain} --region {region} --from-ses`)."
            ),
        ),
        Some(State::Pending) => match hours {
            Some(h) if h > SES_GIVES_UP_AFTER_HOURS => say(
                c::DKIM_PENDING_TOO_LONG,
                Warning,
                format!(
                    "DKIM PENDING for {h} hours: SES gives up at {SES_GIVES_UP_AFTER_HOURS}. Fix the CNAME records below ({cname_fix}), then restart verification: `aws sesv2 put-email-identity-dkim-attributes --email-identity {domain} --no-signing-enabled --region {region}` and again with --signing-enabled."
                ),
            ),
            Some(h) => say(
                c::DKIM_PENDING,
                Info,
                format!(
                    "DKIM PENDING for {h} hours: SES looks for the three CNAMEs for up to {SES_GIVES_UP_AFTER_HOURS} hours ({} left). Make sure all three below are published; one wrong record keeps all of DKIM pending.",
                    SES_GIVES_UP_AFTER_HOURS - h
                ),
            ),
            None => say(
                c::DKIM_PENDING,
                Info,
                format!(
                    "DKIM PENDING: SES looks for the three CNAMEs for up to {SES_GIVES_UP_AFTER_HOURS} hours after DKIM was started. Make sure all three below are published; one wrong record keeps all of DKIM pending."
                ),
            ),
        },
        Some(State::Success) => say(
            c::DKIM_SUCCESS,
            Info,
            "DKIM verified: SES signs as d=".to_string() + domain + ", which aligns with DMARC.",
        ),
        Some(State::Failed) => say(
            c::DKIM_FAILED,
            Warning,
            format!(
                "DKIM FAILED: SES stopped looking for the CNAMEs (after {SES_GIVES_UP_AFTER_HOURS} hours, or because they disappeared). Fix the records below ({cname_fix}), then restart verification: `aws sesv2 put-email-identity-dkim-attributes --email-identity {domain} --no-signing-enabled --region {region}` and again with --signing-enabled."
            ),
        ),
        Some(State::TemporaryFailure) => say(
            c::DKIM_TEMPORARY_FAILURE,
            Warning,
            format!(
                "DKIM TEMPORARY_FAILURE: SES could not read {domain}'s DNS (a nameserver timing out or answering SERVFAIL). SES retries by itself; `ses-dmarc check {domain}` shows whether your nameservers answer. Nothing to re-enable."
            ),
        ),
    }
    if d.status == Some(State::Success) && !d.signing_enabled {
        say(
            c::DKIM_SIGNING_OFF,
            Warning,
            format!(
                "DKIM is verified but signing is disabled: turn it on with `aws sesv2 put-email-identity-dkim-attributes --email-identity {domain} --signing-enabled --region {region}`."
            ),
        );
    }
    if d.current_key_length.as_deref().and_then(key_bits) == Some(1024)
        && d.next_key_length.as_deref().and_then(key_bits) != Some(2048)
    {
        say(
            c::DKIM_KEY_1024,
            Info,
            format!(
                "SES signs with a 1024-bit key. 2048 bits is SES's default and what receivers expect: `aws sesv2 put-email-identity-dkim-signing-attributes --email-identity {domain} --signing-attributes-origin AWS_SES --signing-attributes NextSigningKeyLength=RSA_2048_BIT --region {region}` (the CNAMEs stay the same)."
            ),
        );
    }
    let Some(mf) = &s.mail_from else {
        say(
            c::NO_MAIL_FROM,
            Warning,
            format!(
                "No custom MAIL FROM: SES mail leaves with an envelope under amazonses.com, so SPF never aligns with {domain} and DMARC rests on DKIM alone. Publish the MX and SPF (`ses-dmarc plan {domain} --region {region} --mail-from mail`), then `ses-dmarc ses set-mail-from {domain} --region {region} --mail-from mail.{domain}`."
            ),
        );
        return out;
    };
    let feedback = regions::find(region)
        .map(|r| r.feedback_host())
        .unwrap_or_else(|| "feedback-smtp.<region>.amazonses.com".into());
    let fallback = match mf.behavior_on_mx_failure.as_deref() {
        Some("REJECT_MESSAGE") | Some("RejectMessage") => "SES refuses to send (MailFromDomainNotVerified)",
        _ => "SES quietly sends with amazonses.com as MAIL FROM, and SPF stops aligning",
    };
    match mf.status {
        Some(State::Success) => say(
            c::MAIL_FROM_SUCCESS,
            Info,
            format!("MAIL FROM {} verified: SES mail passes SPF aligned with {domain}.", mf.domain),
        ),
        Some(State::Pending) | None | Some(State::NotStarted) => say(
            c::MAIL_FROM_PENDING,
            Warning,
            format!(
                "MAIL FROM {} PENDING: SES has not found the MX `10 {feedback}` at {} yet. Until it does, {fallback}.",
                mf.domain, mf.domain
            ),
        ),
        Some(State::Failed) => say(
            c::MAIL_FROM_FAILED,
            Warning,
            format!(
                "MAIL FROM {} FAILED: SES cannot find the MX `10 {feedback}` at {} (or it is gone). Meanwhile {fallback}. Publish the MX and SPF below; SES checks again by itself.",
                mf.domain, mf.domain
            ),
        ),
        Some(State::TemporaryFailure) => say(
            c::MAIL_FROM_TEMPORARY_FAILURE,
            Warning,
            format!(
                "MAIL FROM {} TEMPORARY_FAILURE: SES could not read the DNS of {}. Meanwhile {fallback}. SES retries by itself.",
                mf.domain, mf.domain
            ),
        ),
    }
    if mf.status != Some(State::Success) {
        say(
            c::MX_FAILURE_BEHAVIOR,
            Info,
            format!(
                "BehaviorOnMxFailure is {}: while the MX is not verified, {fallback}.",
                mf.behavior_on_mx_failure.as_deref().unwrap_or("USE_DEFAULT_VALUE")
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(dkim: Option<State>, mail_from: Option<State>) -> IdentityStatus {
        IdentityStatus {
            domain: "example.com".into(),
            region: "eu-west-1".into(),
            exists: true,
            verification: Some(State::Success),
            dkim: DkimState {
                signing_enabled: true,
                status: dkim,
                tokens: vec!["tok1".into(), "tok2".into(), "tok3".into()],
                signing_attributes_origin: Some("AWS_SES".into()),
                ..Default::default()
            },
            mail_from: mail_from.map(|st| MailFromState {
                domain: "mail.example.com".into(),
                status: Some(st),
                behavior_on_mx_failure: Some("USE_DEFAULT_VALUE".into()),
            }),
            ..Default::default()
        }
    }

    fn codes(s: &IdentityStatus, now: i64) -> Vec<&'static str> {
        advise(s, now).into_iter().map(|a| a.code).collect()
    }

    #[test]
    fn states_parse_in_both_api_spellings() {
        assert_eq!(State::parse("TemporaryFailure"), Some(State::TemporaryFailure));
        assert_eq!(State::parse("TEMPORARY_FAILURE"), Some(State::TemporaryFailure));
        assert_eq!(State::parse("NotStarted"), Some(State::NotStarted));
        assert_eq!(State::parse("Success"), Some(State::Success));
        assert_eq!(State::parse("weird"), None);
    }

    #[test]
    fn every_dkim_state_has_its_advice() {
        use advice_code as c;
        let now = 1_800_000_000;
        assert_eq!(codes(&status(Some(State::NotStarted), Some(State::Success)), now)[0], c::DKIM_NOT_STARTED);
        assert_eq!(
            codes(&status(Some(State::Success), Some(State::Success)), now),
            [c::DKIM_SUCCESS, c::MAIL_FROM_SUCCESS]
        );
        assert_eq!(codes(&status(Some(State::Failed), Some(State::Success)), now)[0], c::DKIM_FAILED);
        assert_eq!(
            codes(&status(Some(State::TemporaryFailure), Some(State::Success)), now)[0],
            c::DKIM_TEMPORARY_FAILURE
        );
        let mut pending = status(Some(State::Pending), Some(State::Success));
        assert_eq!(codes(&pending, now)[0], c::DKIM_PENDING);
        pending.dkim.last_key_generation = Some(now - 80 * 3600);
        let advice = advise(&pending, now);
        assert_eq!(advice[0].code, c::DKIM_PENDING_TOO_LONG);
        assert!(
            advice[0].message.starts_with("DKIM PENDING for 80 hours: SES gives up at 72."),
            "{}",
            advice[0].message
        );
        pending.dkim.last_key_generation = Some(now - 5 * 3600);
        assert!(advise(&pending, now)[0].message.contains("(67 left)"));
    }

    #[test]
    fn mail_from_states_and_missing_identity() {
        use advice_code as c;
        let now = 0;
        assert_eq!(codes(&status(Some(State::Success), None), now), [c::DKIM_SUCCESS, c::NO_MAIL_FROM]);
        let pending = status(Some(State::Success), Some(State::Pending));
        let advice = advise(&pending, now);
        assert_eq!(advice[1].code, c::MAIL_FROM_PENDING);
        assert!(advice[1].message.contains("10 feedback-smtp.eu-west-1.amazonses.com"));
        assert!(advice[2].message.contains("quietly sends with amazonses.com"));
        let mut rejecting = status(Some(State::Success), Some(State::Failed));
        rejecting.mail_from.as_mut().unwrap().behavior_on_mx_failure = Some("REJECT_MESSAGE".into());
        assert!(advise(&rejecting, now)[1].message.contains("MailFromDomainNotVerified"));
        let missing = IdentityStatus { domain: "x.test".into(), region: "us-east-1".into(), ..Default::default() };
        assert_eq!(codes(&missing, now), [c::NOT_AN_IDENTITY]);
    }

    #[test]
    fn deed_replica_uses_the_parent_signing_zone() {
        let mut s = status(Some(State::Success), Some(State::Success));
        s.region = "us-west-2".into();
        s.dkim.signing_attributes_origin = Some("AWS_SES_AF_SOUTH_1".into());
        assert!(s.is_deed_replica());
        assert_eq!(codes(&s, 0)[0], advice_code::DKIM_DEED_REPLICA);
        assert_eq!(s.signing_zone().as_deref(), Some("dkim.af-south-1.amazonses.com"));
        assert_eq!(s.needed_records()[0].value, "tok1.dkim.af-south-1.amazonses.com");
        s.dkim.signing_hosted_zone = Some("dkim.example-zone.amazonses.com.".into());
        assert_eq!(s.signing_zone().as_deref(), Some("dkim.example-zone.amazonses.com"));
        assert_eq!(s.needed_records()[3].value, "feedback-smtp.us-west-2.amazonses.com");
    }
}
