//! The record plan: from a domain, its SES region(s), MAIL FROM name, DKIM tokens and
//! DMARC wishes, the exact DNS records to publish and the advice that goes with them.

use crate::mail_from::{self, MailFromError};
use crate::receiving::{self, ReceiveError, ReceivePlan, ReceiveReportsInput};
use crate::regions::{self, Region};
use serde::Serialize;
use ses_dmarc_records::dmarc::{DmarcRecord, Policy, ReportUri};
use ses_dmarc_records::{DomainName, SpfRecord};

/// The SPF record SES asks for at the MAIL FROM name.
pub const MAIL_FROM_SPF: &str = "v=spf1 include:amazonses.com ~all";
/// TTL of planned records when none is given, in seconds (30 minutes).
pub const DEFAULT_TTL: u32 = 1800;
pub(crate) const MX_PREFERENCE: u16 = 10;

/// What the user asked for, as typed.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    /// The sender domain (the SES identity).
    pub domain: String,
    /// SES region codes; the first is the primary (its feedback host is the MAIL FROM MX).
    pub regions: Vec<String>,
    /// The custom MAIL FROM: a label (`mail`) or a full name under the domain.
    pub mail_from: Option<String>,
    /// `TOKEN` (first region) or `REGION:TOKEN`.
    pub dkim_tokens: Vec<String>,
    /// Where aggregate reports go (`mailto:...`).
    pub rua: Vec<String>,
    /// Where failure reports go.
    pub ruf: Vec<String>,
    /// The DMARC policy (`none` when absent).
    pub policy: Option<Policy>,
    /// The apex SPF record published now, if the user has one.
    pub current_apex_spf: Option<String>,
    /// TTL in seconds ([`DEFAULT_TTL`] when absent).
    pub ttl: Option<u32>,
    /// What SES is to do when it cannot find the MAIL FROM MX (goes into the SES call).
    pub behavior_on_mx_failure: MxFailureBehavior,
    /// DKIM signing zones that SES reported (region code → zone), overriding the table.
    pub dkim_signing_zones: std::collections::BTreeMap<String, String>,
    /// A reports address on the domain, received by SES into S3 (`--receive-reports`).
    pub receive_reports: Option<ReceiveReportsInput>,
}

/// SES's `BehaviorOnMxFailure`: what SES does when it cannot find the MAIL FROM MX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MxFailureBehavior {
    /// Send anyway, with a MAIL FROM under amazonses.com (SPF then stops aligning).
    #[default]
    UseDefaultValue,
    /// Refuse to send (`MailFromDomainNotVerified`).
    RejectMessage,
}

impl MxFailureBehavior {
    pub(crate) fn api_value(self) -> &'static str {
        match self {
            MxFailureBehavior::UseDefaultValue => "USE_DEFAULT_VALUE",
            MxFailureBehavior::RejectMessage => "REJECT_MESSAGE",
        }
    }
}

/// Why no plan can be made: which input is wrong, with what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The domain is not a valid host name, or has a single label.
    #[error("`{input}` is not a domain name: {reason}")]
    Domain {
        /// The domain as typed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "`{domain}` is a public suffix, not a domain someone registers; give your own domain such as example.{domain}"
    )]
    /// The domain is itself a public suffix (`co.uk`).
    PublicSuffix {
        /// The domain.
        domain: String,
    },
    /// No region given.
    #[error("no region given: add `--region us-east-1` (the SES region you send from)")]
    NoRegion,
    /// A region code SES does not have.
    #[error("`{input}` is not an SES region{hint}")]
    UnknownRegion {
        /// The region as typed.
        input: String,
        /// The codes it may have meant, or where to find the list.
        hint: String,
    },
    /// A region given twice; holds its code.
    #[error("the region {0} is given twice")]
    DuplicateRegion(String),
    /// The MAIL FROM name breaks SES's rules.
    #[error(transparent)]
    MailFrom(#[from] MailFromError),
    /// A DKIM token that cannot be one (empty, too long, not letters and digits).
    #[error("`{input}` is not a DKIM token: {reason}")]
    DkimToken {
        /// The token as typed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "{region}: SES gives three Easy DKIM tokens per identity, {count} given; pass all three (`--dkim-token T1 --dkim-token T2 --dkim-token T3`) or none for placeholders"
    )]
    /// A region with other than three DKIM tokens.
    DkimTokenCount {
        /// The region code.
        region: String,
        /// How many tokens were given.
        count: usize,
    },
    /// A `REGION:TOKEN` whose region is not among the regions given; holds its code.
    #[error("{0} is given as a DKIM token's region but not as `--region`")]
    DkimTokenRegion(String),
    /// A report address that is not a valid report URI.
    #[error("invalid report address `{input}`: {reason}")]
    ReportUri {
        /// The address as typed.
        input: String,
        /// What is wrong with it, and what to write.
        reason: String,
    },
    /// The current apex SPF record given does not start with `v=spf1`.
    #[error("the current apex SPF record is not SPF: it must start with `v=spf1`")]
    ApexSpfNotSpf,
    /// `--receive-reports` cannot be planned as asked.
    #[error(transparent)]
    Receive(#[from] ReceiveError),
}

/// What a planned record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The MX at the MAIL FROM name, pointing at SES's feedback host.
    MailFromMx,
    /// The SPF record at the MAIL FROM name.
    MailFromSpf,
    /// One of the Easy DKIM CNAMEs.
    DkimCname,
    /// The DMARC record at `_dmarc.<domain>`.
    Dmarc,
    /// The MX of the reports domain, pointing at SES's inbound endpoint (`--receive-reports`).
    ReportsMx,
    /// `<domain>._report._dmarc.<reports domain>` TXT `v=DMARC1`: the reports domain accepts
    /// the domain's reports (RFC 7489 §7.1, RFC 9990 §4), when it is another organization.
    ReportAuthorization,
}

/// A planned record's type and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum RecordData {
    /// A mail server.
    #[serde(rename = "MX")]
    Mx {
        /// Lower is tried first.
        preference: u16,
        /// The mail server's name.
        exchange: String,
    },
    /// A text record.
    #[serde(rename = "TXT")]
    Txt {
        /// The value, unquoted and unsplit.
        text: String,
    },
    /// An alias.
    #[serde(rename = "CNAME")]
    Cname {
        /// The name it points to.
        target: String,
    },
}

impl RecordData {
    /// The record type as DNS writes it (`MX`, `TXT`, `CNAME`).
    pub fn type_name(&self) -> &'static str {
        match self {
            RecordData::Mx { .. } => "MX",
            RecordData::Txt { .. } => "TXT",
            RecordData::Cname { .. } => "CNAME",
        }
    }

    /// The value as a person reads it (TXT unquoted, names without trailing dot).
    pub fn display_value(&self) -> String {
        match self {
            RecordData::Mx { preference, exchange } => format!("{preference} {exchange}"),
            RecordData::Txt { text } => text.clone(),
            RecordData::Cname { target } => target.clone(),
        }
    }
}

/// One DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRecord {
    /// Owner name, absolute, without the trailing dot.
    pub name: String,
    /// Time to live, in seconds.
    pub ttl: u32,
    /// Type and value.
    #[serde(flatten)]
    pub data: RecordData,
    /// What the record is for.
    pub purpose: Purpose,
    /// The region a DKIM CNAME belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'static str>,
    /// True when the name and target hold `<dkim-token-N>` placeholders, not real tokens.
    pub placeholder: bool,
}

/// How much a piece of advice matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdviceLevel {
    /// Worth knowing.
    Info,
    /// Something to act on, or mail will not align.
    Warning,
}

/// One piece of advice that comes with a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// Stable code, one of [`advice_code`].
    pub code: &'static str,
    /// How much it matters.
    pub level: AdviceLevel,
    /// What to know or do, with the command to type.
    pub message: String,
}

/// An AWS call that must follow the records, as an AWS CLI command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SesCall {
    /// The region the call goes to.
    pub region: &'static str,
    /// What the call does.
    pub purpose: String,
    /// The AWS CLI command line.
    pub command: String,
}

/// One SES region of a plan, with the SES hosts it implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRegion {
    /// Region code (`eu-west-1`).
    pub code: &'static str,
    /// AWS's name for it (`Europe (Ireland)`).
    pub name: &'static str,
    /// The region's MAIL FROM MX target (`feedback-smtp.<region>.amazonses.com`).
    pub feedback_host: String,
    /// Where Easy DKIM CNAMEs point (`<token>.<zone>`).
    pub dkim_signing_zone: String,
    /// Whether DKIM tokens were given (else the CNAMEs hold placeholders).
    pub dkim_tokens_given: bool,
}

/// The DNS records one SES domain needs for DMARC, with advice and the SES calls that
/// follow them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The sender domain (the SES identity).
    pub domain: DomainName,
    /// The SES regions sending for it, the primary first.
    pub regions: Vec<PlanRegion>,
    /// The custom MAIL FROM domain, when one was asked for.
    pub mail_from: Option<DomainName>,
    /// What SES does when it cannot find the MAIL FROM MX.
    pub behavior_on_mx_failure: MxFailureBehavior,
    /// The DMARC record's text.
    pub dmarc: String,
    /// Every record to publish.
    pub records: Vec<PlannedRecord>,
    /// The advice, in order.
    pub advice: Vec<Advice>,
    /// AWS calls to make once the records are published.
    pub ses_calls: Vec<SesCall>,
    /// SES receiving for the reports address, with `--receive-reports`.
    pub receive_reports: Option<ReceivePlan>,
}

impl Plan {
    pub(crate) fn has_placeholders(&self) -> bool {
        self.records.iter().any(|r| r.placeholder)
    }

    /// Whether a planned record's name is under the domain (its zone is, as far as the plan
    /// knows, the domain's); records elsewhere (a reports domain of another organization)
    /// belong in another zone.
    pub fn is_under_domain(&self, record: &PlannedRecord) -> bool {
        DomainName::parse(&record.name).is_ok_and(|n| n.is_within(&self.domain))
    }
}

/// Advice codes, stable for scripts.
pub mod advice_code {
    /// No custom MAIL FROM asked for: SPF cannot align.
    pub const NO_MAIL_FROM: &str = "no-mail-from";
    /// What SES does if it cannot find the MAIL FROM MX.
    pub const MX_FAILURE_BEHAVIOR: &str = "mx-failure-behavior";
    /// One MAIL FROM MX serves every region; no MX per region.
    pub const ONE_MX_SERVES_REGIONS: &str = "one-mx-serves-regions";
    /// The apex SPF needs no `include:amazonses.com` for SES.
    pub const APEX_SPF_NOT_NEEDED: &str = "apex-spf-not-needed";
    /// The apex SPF includes amazonses.com, which never aligns SES mail.
    pub const APEX_SPF_INCLUDE_UNALIGNED: &str = "apex-spf-include-unaligned";
    /// The current apex SPF record has errors or warnings.
    pub const APEX_SPF_PROBLEMS: &str = "apex-spf-problems";
    /// The apex SPF alone has more than ten DNS-querying terms.
    pub const APEX_SPF_LOOKUPS: &str = "apex-spf-lookups";
    /// No DKIM tokens given: the CNAMEs hold placeholders.
    pub const DKIM_PLACEHOLDERS: &str = "dkim-placeholders";
    /// Each region's identity has its own DKIM tokens, unless DEED replicas.
    pub const DKIM_PER_REGION: &str = "dkim-per-region";
    /// No `rua`: nobody sends aggregate reports.
    pub const DMARC_NO_RUA: &str = "dmarc-no-rua";
    /// Reports go to another organization, which must authorize them (RFC 7489 §7.1).
    pub const DMARC_EXTERNAL_RUA: &str = "dmarc-external-destination";
    /// `p=none`, the right start.
    pub const DMARC_START_AT_NONE: &str = "dmarc-start-at-none";
    /// `quarantine` or `reject` from the start.
    pub const DMARC_ENFORCING_EARLY: &str = "dmarc-enforcing-early";
    /// The records alone change nothing: SES must be told the MAIL FROM domain.
    pub const SES_CALL_REQUIRED: &str = "ses-call-required";
    /// Sandbox and production access are per region.
    pub const SANDBOX_PER_REGION: &str = "sandbox-per-region";
    /// The MAIL FROM name must not receive mail of its own.
    pub const MAIL_FROM_NOT_FOR_RECEIVING: &str = "mail-from-not-for-receiving";
    /// A region whose feedback host and DKIM zone follow AWS's pattern, not a published table.
    pub const REGION_UNCONFIRMED: &str = "region-endpoint-assumed";
    /// The domain's suffix is not on the public suffix list (a lab or internal zone?).
    pub const SUFFIX_UNKNOWN: &str = "domain-suffix-unknown";
    /// Only one receipt rule set is active per region: add the rule to the active one.
    pub const RECEIVE_ONE_ACTIVE_RULE_SET: &str = "receive-one-active-rule-set";
    /// The reports domain must be covered by a verified SES identity in the receiving region.
    pub const RECEIVE_IDENTITY_REQUIRED: &str = "receive-identity-required";
    /// put-bucket-policy replaces the bucket's whole policy.
    pub const RECEIVE_BUCKET_POLICY: &str = "receive-bucket-policy";
    /// The account id in the policy and the rule ARN is a placeholder.
    pub const RECEIVE_ACCOUNT_PLACEHOLDER: &str = "receive-account-placeholder";
    /// The reports domain is not under the domain: its records go in another zone.
    pub const RECEIVE_OTHER_ZONE: &str = "receive-other-zone";
    /// The MAIL FROM name and the reports name stay apart.
    pub const RECEIVE_NOT_MAIL_FROM: &str = "receive-not-mail-from";
    /// The `[[intake.s3]]` section that makes `intake run` read the bucket.
    pub const RECEIVE_INTAKE: &str = "receive-intake";
}

/// A sender domain as typed: a host name of two labels or more that is not itself a public
/// suffix. (Whether its suffix is on the public suffix list is for the caller to judge.)
pub fn parse_domain(input: &str) -> Result<DomainName, PlanError> {
    let domain = DomainName::parse_hostname(input)
        .map_err(|e| PlanError::Domain { input: input.to_string(), reason: e.to_string() })?;
    if domain.label_count() < 2 {
        return Err(PlanError::Domain {
            input: input.to_string(),
            reason: "a single label; give the full domain, such as example.com".into(),
        });
    }
    if domain.is_public_suffix() {
        return Err(PlanError::PublicSuffix { domain: domain.to_string() });
    }
    Ok(domain)
}

/// An SES region code as typed, or what it may have meant.
pub fn parse_region(input: &str) -> Result<&'static Region, PlanError> {
    regions::find(input.trim()).ok_or_else(|| {
        let s = regions::suggest(input);
        let hint = if s.is_empty() {
            "; see `ses-dmarc plan --help` for the list".to_string()
        } else {
            format!("; did you mean {}?", s.join(", "))
        };
        PlanError::UnknownRegion { input: input.to_string(), hint }
    })
}

fn validate_token(input: &str) -> Result<String, PlanError> {
    let t = input.trim().to_ascii_lowercase();
    let bad = |reason: &str| PlanError::DkimToken { input: input.to_string(), reason: reason.to_string() };
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    if t.len() > 63 {
        return Err(bad("longer than a DNS label (63 characters); SES tokens are 32 letters and digits"));
    }
    if !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad("SES tokens are 32 letters and digits, as in DkimAttributes.Tokens"));
    }
    Ok(t)
}

fn validate_uris(inputs: &[String]) -> Result<Vec<ReportUri>, PlanError> {
    inputs
        .iter()
        .map(|u| ReportUri::parse(u).map_err(|reason| PlanError::ReportUri { input: u.clone(), reason }))
        .collect()
}

/// Builds the plan, or says exactly which input is wrong and what to type instead.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let domain = parse_domain(&input.domain)?;
    if input.regions.is_empty() {
        return Err(PlanError::NoRegion);
    }
    let mut regions: Vec<&'static Region> = Vec::new();
    for r in &input.regions {
        let region = parse_region(r)?;
        if regions.contains(&region) {
            return Err(PlanError::DuplicateRegion(region.code.to_string()));
        }
        regions.push(region);
    }
    let mail_from = input.mail_from.as_deref().map(|m| mail_from::resolve(&domain, m)).transpose()?;

    let mut tokens: Vec<Vec<String>> = vec![Vec::new(); regions.len()];
    for raw in &input.dkim_tokens {
        let (index, token) = match raw.split_once(':') {
            Some((r, t)) => {
                let region = parse_region(r)?;
                let i = regions
                    .iter()
                    .position(|x| *x == region)
                    .ok_or_else(|| PlanError::DkimTokenRegion(region.code.to_string()))?;
                (i, t)
            }
            None => (0, raw.as_str()),
        };
        tokens[index].push(validate_token(token)?);
    }
    for (region, t) in regions.iter().zip(&tokens) {
        if !t.is_empty() && t.len() != 3 {
            return Err(PlanError::DkimTokenCount { region: region.code.to_string(), count: t.len() });
        }
    }
    let mut rua = validate_uris(&input.rua)?;
    let ruf = validate_uris(&input.ruf)?;
    let apex_spf = match &input.current_apex_spf {
        Some(text) => {
            let parsed = SpfRecord::parse(text);
            if parsed.value.is_none() {
                return Err(PlanError::ApexSpfNotSpf);
            }
            Some(parsed)
        }
        None => None,
    };
    let policy = input.policy.unwrap_or(Policy::None);
    let ttl = input.ttl.unwrap_or(DEFAULT_TTL);
    let primary = regions[0];
    let receive = input
        .receive_reports
        .as_ref()
        .map(|r| receiving::plan_receive(r, &domain, mail_from.as_ref(), &regions))
        .transpose()?;
    if let Some(rx) = &receive {
        let given = rua.iter().any(|u| u.mailto_address().is_some_and(|a| a.eq_ignore_ascii_case(&rx.address)));
        if !given {
            rua.push(ReportUri { uri: format!("mailto:{}", rx.address), size_limit: None });
        }
    }

    let mut records = Vec::new();
    if let Some(mf) = &mail_from {
        records.push(PlannedRecord {
            name: mf.to_string(),
            ttl,
            data: RecordData::Mx { preference: MX_PREFERENCE, exchange: primary.feedback_host() },
            purpose: Purpose::MailFromMx,
            region: Some(primary.code),
            placeholder: false,
        });
        records.push(PlannedRecord {
            name: mf.to_string(),
            ttl,
            data: RecordData::Txt { text: MAIL_FROM_SPF.to_string() },
            purpose: Purpose::MailFromSpf,
            region: None,
            placeholder: false,
        });
    }
    let signing_zone = |region: &Region| -> String {
        input
            .dkim_signing_zones
            .get(region.code)
            .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_else(|| region.dkim_signing_zone.to_string())
    };
    for (region, t) in regions.iter().zip(&tokens) {
        for i in 0..3 {
            let (token, placeholder) = match t.get(i) {
                Some(tok) => (tok.clone(), false),
                None if regions.len() == 1 => (format!("<dkim-token-{}>", i + 1), true),
                None => (format!("<{}-dkim-token-{}>", region.code, i + 1), true),
            };
            records.push(PlannedRecord {
                name: format!("{token}._domainkey.{domain}"),
                ttl,
                data: RecordData::Cname { target: format!("{token}.{}", signing_zone(region)) },
                purpose: Purpose::DkimCname,
                region: Some(region.code),
                placeholder,
            });
        }
    }
    let dmarc_record = DmarcRecord { policy: Some(policy), rua: rua.clone(), ruf: ruf.clone(), ..Default::default() };
    let dmarc = dmarc_record.to_string();
    records.push(PlannedRecord {
        name: format!("_dmarc.{domain}"),
        ttl,
        data: RecordData::Txt { text: dmarc.clone() },
        purpose: Purpose::Dmarc,
        region: None,
        placeholder: false,
    });
    if let Some(rx) = &receive {
        records.push(PlannedRecord {
            name: rx.reports_domain.to_string(),
            ttl,
            data: RecordData::Mx { preference: MX_PREFERENCE, exchange: rx.inbound_host.clone() },
            purpose: Purpose::ReportsMx,
            region: Some(rx.region),
            placeholder: false,
        });
        if let Some(name) = &rx.authorization {
            records.push(PlannedRecord {
                name: name.clone(),
                ttl,
                data: RecordData::Txt { text: "v=DMARC1".into() },
                purpose: Purpose::ReportAuthorization,
                region: None,
                placeholder: false,
            });
        }
    }

    let mut advice = Vec::new();
    let mut say =
        |code: &'static str, level: AdviceLevel, message: String| advice.push(Advice { code, level, message });
    use advice_code as c;
    let suffix = domain.public_suffix();
    if !suffix.known {
        say(
            c::SUFFIX_UNKNOWN,
            AdviceLevel::Warning,
            format!(
                "`.{}` is not a top-level domain on the public suffix list: fine for a lab or internal zone, but receivers on the internet cannot find these records; check the spelling if {domain} is meant to be public.",
                suffix.suffix
            ),
        );
    }
    match &mail_from {
        None => say(
            c::NO_MAIL_FROM,
            AdviceLevel::Warning,
            format!(
                "No custom MAIL FROM: SES mail keeps an envelope sender under amazonses.com, so SPF passes but never aligns with {domain}; only DKIM can carry DMARC. Add `--mail-from mail` for mail.{domain}."
            ),
        ),
        Some(mf) => {
            say(
                c::MX_FAILURE_BEHAVIOR,
                AdviceLevel::Info,
                match input.behavior_on_mx_failure {
                    MxFailureBehavior::UseDefaultValue => format!(
                        "BehaviorOnMxFailure = USE_DEFAULT_VALUE: if SES cannot find the MX at {mf}, it silently sends with amazonses.com as MAIL FROM and SPF stops aligning (DKIM still can). REJECT_MESSAGE makes sending fail with MailFromDomainNotVerified instead."
                    ),
                    MxFailureBehavior::RejectMessage => format!(
                        "BehaviorOnMxFailure = REJECT_MESSAGE: if SES cannot find the MX at {mf}, sending fails with MailFromDomainNotVerified instead of silently falling back to amazonses.com."
                    ),
                },
            );
            say(
                c::MAIL_FROM_NOT_FOR_RECEIVING,
                AdviceLevel::Info,
                format!(
                    "{mf} must not receive mail of its own: its only MX is SES's feedback endpoint, and no other MX, TXT or CNAME may sit at that name."
                ),
            );
            if regions.len() > 1 {
                say(
                    c::ONE_MX_SERVES_REGIONS,
                    AdviceLevel::Info,
                    format!(
                        "One MAIL FROM domain serves all {} regions with ONE MX record ({}); bounces go there first and SES routes them on (AWS SES guide, regions). Do not add an MX per region: more than one MX makes SES verification fail.",
                        regions.len(),
                        primary.feedback_host()
                    ),
                );
            }
        }
    }
    match &apex_spf {
        None if mail_from.is_none() => {}
        None => say(
            c::APEX_SPF_NOT_NEEDED,
            AdviceLevel::Info,
            format!(
                "The apex SPF record of {domain} needs no `include:amazonses.com` for SES: with a custom MAIL FROM, receivers check SPF on the MAIL FROM name. Keep the apex SPF for the senders that use the apex (Google Workspace, Microsoft 365, ...)."
            ),
        ),
        Some(parsed) => {
            if let Some(spf) = &parsed.value {
                if spf.includes("amazonses.com") {
                    let level = if mail_from.is_some() { AdviceLevel::Info } else { AdviceLevel::Warning };
                    say(
                        c::APEX_SPF_INCLUDE_UNALIGNED,
                        level,
                        format!(
                            "The apex SPF has `include:amazonses.com`: it authorizes SES for {domain} but never aligns SES mail, whose envelope is {}. It can go, saving one of the ten DNS lookups.",
                            mail_from.as_ref().map(|m| m.to_string()).unwrap_or_else(|| "under amazonses.com".into())
                        ),
                    );
                }
                let n = spf.direct_lookup_count();
                if n > 10 {
                    say(
                        c::APEX_SPF_LOOKUPS,
                        AdviceLevel::Warning,
                        format!(
                            "The apex SPF record alone has {n} DNS-querying terms; RFC 7208 allows 10 per check, so receivers return permerror. `ses-dmarc check` counts the includes too."
                        ),
                    );
                }
            }
            let problems: Vec<String> = parsed
                .diagnostics
                .iter()
                .filter(|d| d.severity != ses_dmarc_records::Severity::Info)
                .map(|d| format!("{} ({})", d.message, d.code))
                .collect();
            if !problems.is_empty() {
                say(
                    c::APEX_SPF_PROBLEMS,
                    AdviceLevel::Warning,
                    format!("The current apex SPF record: {}", problems.join("; ")),
                );
            }
        }
    }
    let missing: Vec<&str> = regions.iter().zip(&tokens).filter(|(_, t)| t.is_empty()).map(|(r, _)| r.code).collect();
    if !missing.is_empty() {
        let get = missing
            .iter()
            .map(|r| format!("`aws sesv2 get-email-identity --email-identity {domain} --region {r}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let again = if regions.len() == 1 {
            "then run plan again with `--dkim-token` three times".to_string()
        } else {
            let form: Vec<String> = missing.iter().map(|r| format!("`--dkim-token {r}:TOKEN`")).collect();
            format!(
                "then run plan again with three {} (the first region's tokens may be given bare)",
                form.join(", three ")
            )
        };
        say(
            c::DKIM_PLACEHOLDERS,
            AdviceLevel::Warning,
            format!(
                "The DKIM names for {} are placeholders: SES makes the three tokens when the identity is created (`aws sesv2 create-email-identity`). Read them with {get} (DkimAttributes.Tokens; the console shows them under the identity's DKIM tab), {again}.",
                missing.join(", ")
            ),
        );
    }
    if regions.len() > 1 {
        say(
            c::DKIM_PER_REGION,
            AdviceLevel::Info,
            "Each region's identity has its own Easy DKIM tokens and needs its own three CNAMEs, unless the other regions are Deterministic Easy DKIM (DEED) replicas of one parent region: replicas sign with the parent's tokens, so the parent's CNAMEs serve them all. Give tokens per region as `--dkim-token REGION:TOKEN`.".into(),
        );
    }
    if rua.is_empty() {
        say(
            c::DMARC_NO_RUA,
            AdviceLevel::Warning,
            format!(
                "No `rua`: nobody will send you aggregate reports, so you cannot see what fails before tightening the policy. Add `--rua mailto:dmarc-reports@{domain}` (any mailbox you read, or an address `ses-dmarc reports ingest` reads)."
            ),
        );
    }
    let ours = |uri: &ReportUri| {
        receive.as_ref().is_some_and(|rx| uri.mailto_address().is_some_and(|a| a.eq_ignore_ascii_case(&rx.address)))
    };
    for uri in rua.iter().chain(&ruf) {
        if let Some(dest) = uri.destination_domain()
            && dest.organizational_domain() != domain.organizational_domain()
            && !ours(uri)
        {
            say(
                c::DMARC_EXTERNAL_RUA,
                AdviceLevel::Warning,
                format!(
                    "Reports for {domain} go to {dest}, another organization: receivers only send them if {dest} publishes TXT `{domain}._report._dmarc.{dest}` = \"v=DMARC1\" (RFC 7489 §7.1). Ask its owner, or reports silently never arrive."
                ),
            );
        }
    }
    match policy {
        Policy::None => say(
            c::DMARC_START_AT_NONE,
            AdviceLevel::Info,
            "p=none is the right start: it asks for reports and changes no delivery. Watch the reports for 2 to 4 weeks until all legitimate mail aligns, then move to quarantine and later reject (`ses-dmarc rollout` says when).".into(),
        ),
        p => say(
            c::DMARC_ENFORCING_EARLY,
            AdviceLevel::Warning,
            format!(
                "p={p} from the start blocks any legitimate sender you have not aligned yet. RFC 9989 §7.4: run p=none for at least a month, then quarantine about as long; a domain that publishes reject must sign with DKIM and not rely on SPF alone."
            ),
        ),
    }
    let unconfirmed: Vec<&str> = regions.iter().filter(|r| !r.feedback_host_documented).map(|r| r.code).collect();
    if !unconfirmed.is_empty() {
        say(
            c::REGION_UNCONFIRMED,
            AdviceLevel::Info,
            format!(
                "For {} the feedback host and DKIM signing zone follow AWS's pattern for newer regions, not a table AWS published; `aws sesv2 get-email-identity` shows DkimAttributes.SigningHostedZone, the final word.",
                unconfirmed.join(", ")
            ),
        );
    }
    say(
        c::SES_CALL_REQUIRED,
        AdviceLevel::Warning,
        "DNS records alone change nothing: SES must be told the MAIL FROM domain (put-email-identity-mail-from-attributes) in every region, or it keeps sending as amazonses.com. DKIM and MAIL FROM verification can take up to 72 hours; then SES gives up (FAILED).".into(),
    );
    say(
        c::SANDBOX_PER_REGION,
        AdviceLevel::Info,
        "Sandbox (200 messages a day, verified recipients only) and production access are per region: `aws sesv2 get-account --region REGION` shows ProductionAccessEnabled for each.".into(),
    );

    if let Some(rx) = &receive {
        receive_advice(rx, &domain, mail_from.as_ref(), &regions, &mut say);
    }

    let mut ses_calls = Vec::new();
    for (region, t) in regions.iter().zip(&tokens) {
        let r = region.code;
        ses_calls.push(SesCall {
            region: r,
            purpose: if t.is_empty() {
                "create the identity; prints the three DKIM tokens (DkimAttributes.Tokens)".into()
            } else {
                "create the identity, if it does not exist yet".into()
            },
            command: format!("aws sesv2 create-email-identity --email-identity {domain} --region {r}"),
        });
        if let Some(mf) = &mail_from {
            ses_calls.push(SesCall {
                region: r,
                purpose: "set the custom MAIL FROM domain, after the MX and SPF records are published".into(),
                command: format!(
                    "aws sesv2 put-email-identity-mail-from-attributes --email-identity {domain} --mail-from-domain {mf} --behavior-on-mx-failure {} --region {r}",
                    input.behavior_on_mx_failure.api_value()
                ),
            });
        }
        ses_calls.push(SesCall {
            region: r,
            purpose: "watch verification: VerifiedForSendingStatus, DkimAttributes.Status, MailFromAttributes.MailFromDomainStatus".into(),
            command: format!("aws sesv2 get-email-identity --email-identity {domain} --region {r}"),
        });
    }

    if let Some(rx) = &receive {
        ses_calls.extend(receive_calls(rx));
    }

    Ok(Plan {
        regions: regions
            .iter()
            .zip(&tokens)
            .map(|(r, t)| PlanRegion {
                code: r.code,
                name: r.name,
                feedback_host: r.feedback_host(),
                dkim_signing_zone: signing_zone(r),
                dkim_tokens_given: !t.is_empty(),
            })
            .collect(),
        domain,
        mail_from,
        behavior_on_mx_failure: input.behavior_on_mx_failure,
        dmarc,
        records,
        advice,
        ses_calls,
        receive_reports: receive,
    })
}

fn receive_advice(
    rx: &ReceivePlan,
    domain: &DomainName,
    mail_from: Option<&DomainName>,
    regions: &[&'static Region],
    say: &mut impl FnMut(&'static str, AdviceLevel, String),
) {
    use advice_code as c;
    let (r, reports, set) = (rx.region, &rx.reports_domain, &rx.rule_set);
    if rx.rule_set_existing {
        say(
            c::RECEIVE_ONE_ACTIVE_RULE_SET,
            AdviceLevel::Warning,
            format!(
                "The rule goes into the existing rule set {set}, which is neither created nor activated: SES runs only the ONE active rule set of {r}, so check that {set} is it (`aws ses describe-active-receipt-rule-set --region {r}`)."
            ),
        );
    } else {
        say(
            c::RECEIVE_ONE_ACTIVE_RULE_SET,
            AdviceLevel::Warning,
            format!(
                "SES runs only ONE active receipt rule set per region: activating {set} stops every rule of the set active now, and all mail it receives for other addresses is rejected. Run `aws ses describe-active-receipt-rule-set --region {r}` first; if it names a set, plan again with `--receipt-rule-set THAT-SET` to add the rule to it instead (`apply` does so by itself)."
            ),
        );
    }
    let verified = if reports.is_within(domain) {
        if regions.iter().any(|x| x.code == r) {
            format!(
                "{domain}, verified in {r} for sending, covers it; until SES says it is verified there, mail to {} is rejected",
                rx.address
            )
        } else {
            format!(
                "{r} is not one of the regions planned for sending: create and verify {domain} there too (`aws sesv2 create-email-identity --email-identity {domain} --region {r}` and its DKIM CNAMEs)"
            )
        }
    } else {
        format!(
            "verify {reports} (or a parent domain of it) in {r}: `aws sesv2 create-email-identity --email-identity {reports} --region {r}`"
        )
    };
    say(
        c::RECEIVE_IDENTITY_REQUIRED,
        AdviceLevel::Warning,
        format!(
            "SES receives only for its verified identities in the region of the rule: {reports} must be a verified domain identity in {r}, or under one; {verified}."
        ),
    );
    say(
        c::RECEIVE_BUCKET_POLICY,
        AdviceLevel::Info,
        format!(
            "The bucket policy comes first: SES writes a test object ({}AMAZON_SES_SETUP_NOTIFICATION) when the rule is created and refuses the rule if it cannot. `put-bucket-policy` replaces the bucket's whole policy: if {} has one (`aws s3api get-bucket-policy --bucket {}`), add the statement to it instead (`apply` merges it). The bucket must be in a region where SES receives mail.",
            rx.prefix, rx.bucket, rx.bucket
        ),
    );
    if rx.account_id_placeholder {
        say(
            c::RECEIVE_ACCOUNT_PLACEHOLDER,
            AdviceLevel::Warning,
            "The bucket policy and the rule ARN hold `<account-id>`: pass `--account-id` with your 12-digit AWS account id (`aws sts get-caller-identity --query Account --output text`).".into(),
        );
    }
    if !reports.is_within(domain) {
        let auth = rx
            .authorization
            .as_ref()
            .map(|a| {
                format!(
                    ", and the TXT {a} = \"v=DMARC1\" that lets {reports} accept {domain}'s reports (RFC 7489 §7.1),"
                )
            })
            .unwrap_or_default();
        say(
            c::RECEIVE_OTHER_ZONE,
            AdviceLevel::Warning,
            format!(
                "{reports} is not under {domain}: its MX{auth} belong in the zone that holds {reports}, which may not be {domain}'s. With the default address (dmarc@dmarc-reports.{domain}) everything stays in {domain}'s zone and no authorization record is needed."
            ),
        );
    }
    if let Some(mf) = mail_from {
        say(
            c::RECEIVE_NOT_MAIL_FROM,
            AdviceLevel::Info,
            format!(
                "{reports} receives the reports; {mf} stays the MAIL FROM name. Never make them one name: the MAIL FROM's only MX must be SES's feedback host."
            ),
        );
    }
    say(
        c::RECEIVE_INTAKE,
        AdviceLevel::Info,
        format!(
            "SES writes each message to s3://{}/{} as it arrives; `ses-dmarc intake run --config FILE` stores the reports with this section in FILE: {}",
            rx.bucket,
            rx.prefix,
            rx.intake_config.trim_end().replace('\n', "; ")
        ),
    );
}

fn receive_calls(rx: &ReceivePlan) -> Vec<SesCall> {
    let r = rx.region;
    let set = &rx.rule_set;
    let mut calls = vec![SesCall {
        region: r,
        purpose: "check first: only one receipt rule set is active per region; if one is, add the rule to it (--receipt-rule-set NAME)".into(),
        command: format!("aws ses describe-active-receipt-rule-set --region {r}"),
    }];
    calls.push(SesCall {
        region: r,
        purpose: "let SES write to the bucket (replaces its whole policy: merge the statement into one already there)"
            .into(),
        command: format!(
            "aws s3api put-bucket-policy --bucket {} --policy '{}' --region {r}",
            rx.bucket, rx.bucket_policy
        ),
    });
    if !rx.rule_set_existing {
        calls.push(SesCall {
            region: r,
            purpose: "create the receipt rule set".into(),
            command: format!("aws ses create-receipt-rule-set --rule-set-name {set} --region {r}"),
        });
    }
    calls.push(SesCall {
        region: r,
        purpose: format!("write mail to {} into s3://{}/{}", rx.address, rx.bucket, rx.prefix),
        command: format!("aws ses create-receipt-rule --rule-set-name {set} --rule '{}' --region {r}", rx.receipt_rule),
    });
    if !rx.rule_set_existing {
        calls.push(SesCall {
            region: r,
            purpose: "make it the active rule set (replaces the active one, if any)".into(),
            command: format!("aws ses set-active-receipt-rule-set --rule-set-name {set} --region {r}"),
        });
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(domain: &str, regions: &[&str]) -> PlanInput {
        PlanInput {
            domain: domain.into(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            mail_from: Some("mail".into()),
            ..Default::default()
        }
    }

    #[test]
    fn single_region_plan() {
        let mut i = input("Example.com", &["us-east-1"]);
        i.dkim_tokens = vec!["AAAA1111".into(), "bbbb2222".into(), "cccc3333".into()];
        i.rua = vec!["mailto:dmarc@example.com".into()];
        let p = plan(&i).unwrap();
        let lines: Vec<String> =
            p.records.iter().map(|r| format!("{} {} {}", r.name, r.data.type_name(), r.data.display_value())).collect();
        assert_eq!(
            lines,
            vec![
                "mail.example.com MX 10 feedback-smtp.us-east-1.amazonses.com",
                "mail.example.com TXT v=spf1 include:amazonses.com ~all",
                "aaaa1111._domainkey.example.com CNAME aaaa1111.dkim.amazonses.com",
                "bbbb2222._domainkey.example.com CNAME bbbb2222.dkim.amazonses.com",
                "cccc3333._domainkey.example.com CNAME cccc3333.dkim.amazonses.com",
                "_dmarc.example.com TXT v=DMARC1; p=none; rua=mailto:dmarc@example.com",
            ]
        );
        assert!(!p.has_placeholders());
        let codes: Vec<&str> = p.advice.iter().map(|a| a.code).collect();
        assert!(codes.contains(&advice_code::APEX_SPF_NOT_NEEDED));
        assert!(codes.contains(&advice_code::SES_CALL_REQUIRED));
        assert!(!codes.contains(&advice_code::DMARC_NO_RUA));
        assert!(p.ses_calls.iter().any(|c| c.command.contains(
            "put-email-identity-mail-from-attributes --email-identity example.com --mail-from-domain mail.example.com"
        )));
        assert!(ses_dmarc_records::DmarcRecord::parse(&p.dmarc).diagnostics.is_empty());
    }

    #[test]
    fn regional_signing_zone_and_one_mx_for_several_regions() {
        let mut i = input("example.com", &["eu-south-1", "us-east-1"]);
        i.dkim_tokens = vec!["us-east-1:t1".into(), "us-east-1:t2".into(), "us-east-1:t3".into()];
        let p = plan(&i).unwrap();
        let mx: Vec<_> = p.records.iter().filter(|r| r.purpose == Purpose::MailFromMx).collect();
        assert_eq!(mx.len(), 1);
        assert_eq!(mx[0].data.display_value(), "10 feedback-smtp.eu-south-1.amazonses.com");
        let cnames: Vec<_> = p.records.iter().filter(|r| r.purpose == Purpose::DkimCname).collect();
        assert_eq!(cnames.len(), 6);
        assert!(cnames[0].placeholder && cnames[0].data.display_value().ends_with(".dkim.eu-south-1.amazonses.com"));
        assert_eq!(cnames[3].data.display_value(), "t1.dkim.amazonses.com");
        assert!(p.advice.iter().any(|a| a.code == advice_code::ONE_MX_SERVES_REGIONS));
        let placeholders = p.advice.iter().find(|a| a.code == advice_code::DKIM_PLACEHOLDERS).unwrap();
        assert!(placeholders.message.contains("--region eu-south-1"), "{}", placeholders.message);
        assert!(placeholders.message.contains("`--dkim-token eu-south-1:TOKEN`"), "{}", placeholders.message);
        assert!(!placeholders.message.contains("--region us-east-1"), "{}", placeholders.message);
    }

    #[test]
    fn bad_inputs_say_what_to_type() {
        let e = plan(&input("example", &["us-east-1"])).unwrap_err();
        assert!(e.to_string().contains("example.com"), "{e}");
        // A lab or internal zone outside the public suffix list: planned, with a warning.
        let lab = plan(&input("example.notatld", &["us-east-1"])).unwrap();
        assert!(lab.advice.iter().any(|a| a.code == advice_code::SUFFIX_UNKNOWN && a.level == AdviceLevel::Warning));
        assert!(matches!(plan(&input("co.uk", &["us-east-1"])).unwrap_err(), PlanError::PublicSuffix { .. }));
        let e = plan(&input("example.com", &["us-east1"])).unwrap_err();
        assert!(e.to_string().contains("did you mean us-east-1"), "{e}");
        assert_eq!(plan(&input("example.com", &[])).unwrap_err(), PlanError::NoRegion);
        let mut i = input("example.com", &["us-east-1"]);
        i.mail_from = Some("example.com".into());
        assert!(plan(&i).unwrap_err().to_string().contains("--mail-from mail"));
        i.mail_from = Some("bounce.example.org".into());
        assert!(matches!(plan(&i).unwrap_err(), PlanError::MailFrom(MailFromError::NotSubdomain { .. })));
        let mut i = input("example.com", &["us-east-1"]);
        i.rua = vec!["dmarc@example.com".into()];
        assert!(plan(&i).unwrap_err().to_string().contains("mailto:dmarc@example.com"));
        let mut i = input("example.com", &["us-east-1"]);
        i.dkim_tokens = vec!["abc".into()];
        assert!(matches!(plan(&i).unwrap_err(), PlanError::DkimTokenCount { count: 1, .. }));
        i.dkim_tokens = vec!["eu-west-1:abc".into()];
        assert!(matches!(plan(&i).unwrap_err(), PlanError::DkimTokenRegion(_)));
        i.dkim_tokens = vec!["a_b".into(), "c".into(), "d".into()];
        assert!(matches!(plan(&i).unwrap_err(), PlanError::DkimToken { .. }));
    }

    #[test]
    fn apex_spf_advice() {
        let mut i = input("example.com", &["us-east-1"]);
        i.current_apex_spf = Some("v=spf1 include:_spf.google.com include:amazonses.com ~all".into());
        let p = plan(&i).unwrap();
        assert!(p.advice.iter().any(|a| a.code == advice_code::APEX_SPF_INCLUDE_UNALIGNED));
        i.current_apex_spf = Some("not spf".into());
        assert_eq!(plan(&i).unwrap_err(), PlanError::ApexSpfNotSpf);
        let many = (0..11).map(|n| format!("include:s{n}.example.net")).collect::<Vec<_>>().join(" ");
        i.current_apex_spf = Some(format!("v=spf1 {many} -all"));
        assert!(plan(&i).unwrap().advice.iter().any(|a| a.code == advice_code::APEX_SPF_LOOKUPS));
    }

    #[test]
    fn receive_reports_plan() {
        let mut i = input("example.com", &["eu-central-2", "eu-west-1"]);
        i.rua = vec!["mailto:dmarc@dmarc-reports.example.com".into(), "mailto:x@example.com".into()];
        i.receive_reports = Some(ReceiveReportsInput {
            bucket: Some("example-dmarc".into()),
            account_id: Some("123456789012".into()),
            ..Default::default()
        });
        let p = plan(&i).unwrap();
        let rx = p.receive_reports.as_ref().unwrap();
        assert_eq!(rx.region, "eu-west-1", "the first region that receives");
        // The address given as --rua is not repeated.
        assert_eq!(p.dmarc, "v=DMARC1; p=none; rua=mailto:dmarc@dmarc-reports.example.com,mailto:x@example.com");
        let mx = p.records.iter().find(|r| r.purpose == Purpose::ReportsMx).unwrap();
        assert_eq!(
            (mx.name.as_str(), mx.data.display_value()),
            ("dmarc-reports.example.com", "10 inbound-smtp.eu-west-1.amazonaws.com".into())
        );
        assert!(!p.records.iter().any(|r| r.purpose == Purpose::ReportAuthorization));
        let calls: Vec<String> = p
            .ses_calls
            .iter()
            .filter(|c| c.command.contains("receipt") || c.command.contains("s3api"))
            .map(|c| c.command.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            calls,
            [
                "aws ses describe-active-receipt-rule-set",
                "aws s3api put-bucket-policy",
                "aws ses create-receipt-rule-set",
                "aws ses create-receipt-rule",
                "aws ses set-active-receipt-rule-set"
            ]
        );
        let codes: Vec<&str> = p.advice.iter().map(|a| a.code).collect();
        for c in [
            advice_code::RECEIVE_ONE_ACTIVE_RULE_SET,
            advice_code::RECEIVE_IDENTITY_REQUIRED,
            advice_code::RECEIVE_BUCKET_POLICY,
            advice_code::RECEIVE_NOT_MAIL_FROM,
            advice_code::RECEIVE_INTAKE,
        ] {
            assert!(codes.contains(&c), "{c}: {codes:?}");
        }
        assert!(!codes.contains(&advice_code::RECEIVE_ACCOUNT_PLACEHOLDER));
        assert!(!codes.contains(&advice_code::RECEIVE_OTHER_ZONE));

        // An existing rule set: the rule only; another organization: the authorization record.
        i.rua.clear();
        i.receive_reports = Some(ReceiveReportsInput {
            address: Some("r@reports.example.net".into()),
            bucket: Some("example-dmarc".into()),
            existing_rule_set: Some("inbound".into()),
            ..Default::default()
        });
        let p = plan(&i).unwrap();
        assert!(!p.ses_calls.iter().any(|c| c.command.contains("create-receipt-rule-set")));
        assert!(!p.ses_calls.iter().any(|c| c.command.contains("set-active")));
        assert!(p.ses_calls.iter().any(|c| c.command.contains("create-receipt-rule --rule-set-name inbound")));
        let auth = p.records.iter().find(|r| r.purpose == Purpose::ReportAuthorization).unwrap();
        assert_eq!(auth.name, "example.com._report._dmarc.reports.example.net");
        assert!(!p.is_under_domain(auth));
        let codes: Vec<&str> = p.advice.iter().map(|a| a.code).collect();
        assert!(
            codes.contains(&advice_code::RECEIVE_ACCOUNT_PLACEHOLDER)
                && codes.contains(&advice_code::RECEIVE_OTHER_ZONE)
        );
        assert!(!codes.contains(&advice_code::DMARC_EXTERNAL_RUA), "the authorization is planned: {codes:?}");
        assert!(!codes.contains(&advice_code::DMARC_NO_RUA));
    }

    #[test]
    fn external_report_destination() {
        let mut i = input("example.com", &["us-east-1"]);
        i.rua = vec!["mailto:x@reports.vendor.net".into()];
        let p = plan(&i).unwrap();
        let a = p.advice.iter().find(|a| a.code == advice_code::DMARC_EXTERNAL_RUA).unwrap();
        assert!(a.message.contains("example.com._report._dmarc.reports.vendor.net"));
    }
}
