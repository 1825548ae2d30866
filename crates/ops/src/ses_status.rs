//! What SES says about a domain identity, what each state means, and whether the records
//! SES looks for are in DNS; the account in each region beside it, and the regions the
//! reports show SES sending from; setting the custom MAIL FROM once its records are
//! published.

use crate::OpsError;
use crate::ses_account::{SesRegionsSeen, accounts, region_findings, ses_regions_seen};
use serde::Serialize;
use ses_dmarc_dns::{Outcome, Rdata, RecordType, Resolver};
use ses_dmarc_ses::account::{AccountFinding, AccountStatus, Severity};
use ses_dmarc_ses::identity::{IdentityStatus, NeededRecord, NeededType, StatusAdvice, advise};
use ses_dmarc_ses::plan::{AdviceLevel, MxFailureBehavior};
use ses_dmarc_ses::{AwsError, AwsErrorKind};
use ses_dmarc_store::Database;

/// What DNS holds for a record SES looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsState {
    /// The record is there, as SES wants it.
    Ok,
    /// An MAIL FROM MX naming another SES region's feedback host: fine, per AWS.
    OtherRegion,
    /// No such record.
    Missing,
    /// Something else is there.
    Wrong,
    /// DNS could not answer.
    Unknown,
    /// Not looked up (`--no-dns`).
    Unchecked,
}

/// A needed record as found in DNS.
#[derive(Debug, Clone, Serialize)]
pub struct ObservedRecord {
    /// What SES needs.
    #[serde(flatten)]
    pub record: NeededRecord,
    /// What DNS holds.
    pub dns: DnsState,
    /// The values found (CNAME targets, `PREF EXCHANGE` for MX).
    pub found: Vec<String>,
}

/// One region's answer: the identity, advice, the records in DNS; or why SES could not
/// be asked.
#[derive(Debug, Serialize)]
pub struct RegionStatus {
    /// The region asked.
    pub region: String,
    /// What SES said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,
    /// What each state means and what to do.
    pub advice: Vec<StatusAdvice>,
    /// The records SES looks for, as found in DNS.
    pub records: Vec<ObservedRecord>,
    /// Why SES could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kind of that failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<AwsErrorKind>,
    /// The SES account in the region (not asked with `--no-account`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountStatus>,
}

impl RegionStatus {
    /// Whether something needs doing: a warning, a record not (rightly) in DNS, or an
    /// account finding of severity error or warning.
    pub fn needs_work(&self) -> bool {
        self.advice.iter().any(|a| a.level == AdviceLevel::Warning)
            || self.records.iter().any(|x| !matches!(x.dns, DnsState::Ok | DnsState::OtherRegion | DnsState::Unchecked))
            || self.account.as_ref().is_some_and(AccountStatus::needs_work)
    }
}

/// `ses status` as a whole: each region, the regions the reports show SES sending from,
/// and what those mean.
#[derive(Debug, Serialize)]
pub struct DomainStatus {
    /// The domain.
    pub domain: String,
    /// Each region asked.
    pub regions: Vec<RegionStatus>,
    /// Where the stored reports show SES mail from (null: no reports read).
    pub reports: Option<SesRegionsSeen>,
    /// Findings across regions (`ses-region-unverified`, `ses-region-not-checked`).
    pub findings: Vec<AccountFinding>,
    /// Remarks (reports that could not be read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl DomainStatus {
    /// Whether something needs doing in any region, or across them.
    pub fn needs_work(&self) -> bool {
        self.regions.iter().any(RegionStatus::needs_work)
            || self.findings.iter().any(|f| matches!(f.severity, Severity::Error | Severity::Warning))
    }

    /// Whether SES could not be asked about the identity in some region (the account's
    /// failures are shown in its section and do not count here).
    pub fn failed(&self) -> bool {
        self.regions.iter().any(|r| r.error.is_some())
    }
}

/// What `ses status` reads beside the identities.
#[derive(Clone, Copy)]
pub struct StatusOptions<'a> {
    /// Another SES endpoint.
    pub endpoint_url: Option<&'a str>,
    /// Ask for the account in each region too.
    pub account: bool,
    /// The stored reports, and how many days of them, for the regions SES sends from.
    pub reports: Option<(&'a Database, i64)>,
    /// Now, in seconds since 1970.
    pub now: i64,
}

/// `ses status` with everything: [`status`], the account per region, and the regions the
/// reports show SES mail from.
pub async fn domain_status<R: Resolver>(
    domain: &str,
    regions: &[String],
    resolver: Option<&R>,
    options: StatusOptions<'_>,
) -> DomainStatus {
    let mut results = status(domain, regions, options.endpoint_url, resolver, options.now).await;
    if options.account {
        for (r, account) in results.iter_mut().zip(accounts(regions, options.endpoint_url, options.now).await) {
            r.account = Some(account);
        }
    }
    let mut out =
        DomainStatus { domain: domain.to_string(), regions: results, reports: None, findings: vec![], notes: vec![] };
    if let Some((db, days)) = options.reports {
        match ses_regions_seen(db, domain, days, resolver, options.now).await {
            Ok(seen) => {
                let identities: Vec<(String, Option<&IdentityStatus>)> =
                    out.regions.iter().map(|r| (r.region.clone(), r.identity.as_ref())).collect();
                out.findings = region_findings(domain, &identities, &seen);
                out.reports = Some(seen);
            }
            Err(e) => out.notes.push(format!("the stored reports could not be read: {e}")),
        }
    }
    out
}

/// The error for a domain that is not an SES identity in `region`.
pub(crate) fn not_an_identity(domain: &str, region: &str) -> OpsError {
    OpsError::Input(format!(
        "{domain} is not an SES identity in {region}; `ses-dmarc ses status {domain} --region {region}` says what to do"
    ))
}

/// The identity in each region, as SES v1 and v2 tell it.
#[cfg(feature = "aws")]
pub async fn identity_statuses(
    domain: &str,
    regions: &[String],
    endpoint_url: Option<&str>,
) -> Vec<(String, Result<IdentityStatus, AwsError>)> {
    let mut out = Vec::new();
    for region in regions {
        let ses = ses_dmarc_ses::aws::Ses::connect(region, endpoint_url).await;
        out.push((region.clone(), ses.identity_status(domain).await));
    }
    out
}

/// The identity in each region: without the AWS SDK, an error for each.
#[cfg(not(feature = "aws"))]
pub async fn identity_statuses(
    _domain: &str,
    regions: &[String],
    _endpoint_url: Option<&str>,
) -> Vec<(String, Result<IdentityStatus, AwsError>)> {
    regions.iter().map(|r| (r.clone(), Err(AwsError::not_built()))).collect()
}

/// Looks a needed record up and says what DNS holds.
pub async fn observe(resolver: &impl Resolver, r: &NeededRecord) -> ObservedRecord {
    let rtype = match r.rtype {
        NeededType::Mx => RecordType::Mx,
        NeededType::Cname => RecordType::Cname,
    };
    let answer = resolver.lookup(&r.name, rtype).await;
    let found: Vec<String> = answer
        .records()
        .iter()
        .filter_map(|d| match d {
            Rdata::Name(n) => Some(n.clone()),
            Rdata::Mx { preference, exchange } => Some(format!("{preference} {exchange}")),
            _ => None,
        })
        .collect();
    let want = r.value.to_ascii_lowercase();
    let dns = match &answer.outcome {
        Outcome::Failed(_) => DnsState::Unknown,
        Outcome::NoData | Outcome::NxDomain => DnsState::Missing,
        Outcome::Records(records) => {
            let hit = records.iter().any(|d| match d {
                Rdata::Name(n) => n.trim_end_matches('.') == want,
                Rdata::Mx { exchange, .. } => exchange.trim_end_matches('.') == want,
                _ => false,
            });
            let other_ses_region = rtype == RecordType::Mx
                && records.len() == 1
                && found
                    .first()
                    .and_then(|f| f.split_whitespace().nth(1))
                    .is_some_and(|host| matches!(ses_dmarc_ses::regions::region_of_feedback_host(host), Some(Ok(_))));
            if hit && (rtype == RecordType::Cname || records.len() == 1) {
                DnsState::Ok
            } else if other_ses_region {
                // One MAIL FROM MX naming any SES region serves them all (AWS SES guide).
                DnsState::OtherRegion
            } else {
                DnsState::Wrong
            }
        }
    };
    ObservedRecord { record: r.clone(), dns, found }
}

/// `ses status`: each region's identity, its advice, and (with a resolver) each record SES
/// looks for as DNS has it.
pub async fn status<R: Resolver>(
    domain: &str,
    regions: &[String],
    endpoint_url: Option<&str>,
    resolver: Option<&R>,
    now: i64,
) -> Vec<RegionStatus> {
    let mut results = Vec::new();
    for (region, answer) in identity_statuses(domain, regions, endpoint_url).await {
        match answer {
            Ok(identity) => {
                let needed = identity.needed_records();
                let records = match resolver {
                    Some(r) => futures::future::join_all(needed.iter().map(|n| observe(r, n))).await,
                    None => needed
                        .into_iter()
                        .map(|record| ObservedRecord { record, dns: DnsState::Unchecked, found: vec![] })
                        .collect(),
                };
                let advice = advise(&identity, now);
                results.push(RegionStatus {
                    region,
                    identity: Some(identity),
                    advice,
                    records,
                    error: None,
                    error_kind: None,
                    account: None,
                });
            }
            Err(e) => results.push(RegionStatus {
                region,
                identity: None,
                advice: vec![],
                records: vec![],
                error: Some(e.message),
                error_kind: Some(e.kind),
                account: None,
            }),
        }
    }
    results
}

/// What is wrong with the MAIL FROM records in DNS, as `set-mail-from` needs them (empty:
/// nothing).
pub async fn mail_from_problems(resolver: &impl Resolver, mail_from: &str, region: &str) -> Vec<String> {
    let feedback = ses_dmarc_ses::regions::find(region).map(|r| r.feedback_host()).unwrap_or_default();
    let mut problems = Vec::new();
    let mx = resolver.lookup(mail_from, RecordType::Mx).await;
    let exchanges: Vec<String> = mx
        .records()
        .iter()
        .filter_map(|r| match r {
            Rdata::Mx { exchange, .. } => Some(exchange.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    match &mx.outcome {
        Outcome::Failed(f) => problems.push(format!("the MX of {mail_from} could not be read ({f})")),
        _ if exchanges.is_empty() => {
            problems.push(format!("{mail_from} has no MX: publish `{mail_from}. MX 10 {feedback}.`"))
        }
        _ if exchanges.len() > 1 => problems.push(format!(
            "{mail_from} has {} MX records ({}): SES wants exactly one, `10 {feedback}`",
            exchanges.len(),
            exchanges.join(", ")
        )),
        _ if ses_dmarc_ses::regions::region_of_feedback_host(&exchanges[0]).and_then(|r| r.ok()).is_none() => {
            problems.push(format!("the MX of {mail_from} is {}, not SES's `{feedback}`", exchanges[0]))
        }
        _ => {}
    }
    let txt = resolver.lookup(mail_from, RecordType::Txt).await;
    let spf: Vec<String> =
        txt.records().iter().filter_map(Rdata::txt_text).filter(|t| ses_dmarc_records::spf::is_spf1(t)).collect();
    match (&txt.outcome, spf.as_slice()) {
        (Outcome::Failed(f), _) => problems.push(format!("the TXT records of {mail_from} could not be read ({f})")),
        (_, []) => problems.push(format!(
            "{mail_from} has no SPF record: publish `{mail_from}. TXT \"v=spf1 include:amazonses.com ~all\"`"
        )),
        (_, [one]) => {
            let includes = ses_dmarc_records::SpfRecord::parse(one).value.is_some_and(|r| r.includes("amazonses.com"));
            if !includes {
                problems.push(format!("the SPF record of {mail_from} (`{one}`) lacks include:amazonses.com"));
            }
        }
        (_, many) => problems.push(format!("{mail_from} has {} SPF records: SPF allows one", many.len())),
    }
    problems
}

/// Tells SES to use `mail_from` for `domain` in `region` (SetIdentityMailFromDomain).
#[cfg(feature = "aws")]
pub async fn set_mail_from(
    domain: &str,
    mail_from: &str,
    region: &str,
    behavior: MxFailureBehavior,
    endpoint_url: Option<&str>,
) -> Result<(), OpsError> {
    let ses = ses_dmarc_ses::aws::Ses::connect(region, endpoint_url).await;
    let status = ses.identity_status(domain).await?;
    if !status.exists {
        return Err(AwsError {
            kind: AwsErrorKind::NotFound,
            message: format!(
                "{domain} is not an SES identity in {region}: create it first (`ses-dmarc ses status {domain} --region {region}` says how)"
            ),
        }
        .into());
    }
    Ok(ses.set_mail_from(domain, mail_from, behavior).await?)
}

/// Without the AWS SDK: says so.
#[cfg(not(feature = "aws"))]
pub async fn set_mail_from(
    _domain: &str,
    _mail_from: &str,
    _region: &str,
    _behavior: MxFailureBehavior,
    _endpoint_url: Option<&str>,
) -> Result<(), OpsError> {
    Err(AwsError::not_built().into())
}
