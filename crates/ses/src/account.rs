//! An SES account in one region, as SES and CloudWatch describe it: production access or
//! the sandbox, sending enabled or paused, the enforcement status, the sending quota, and
//! the reputation rates (`Reputation.BounceRate`, `Reputation.ComplaintRate`) against AWS's
//! published thresholds; what each state means, as findings with the next step. Pure: the
//! calls live in [`crate::aws`]; this module reads their answers.
//!
//! Sources (AWS SES developer guide): `faqs-enforcement.md` ("Sending review process FAQs":
//! Bounce FAQ Q4 and Complaint FAQ, feedback loops, Q5) for the thresholds;
//! `request-production-access.md` for the sandbox and production access; the SES v2
//! GetAccount reference for `EnforcementStatus` (HEALTHY, PROBATION, SHUTDOWN).

use crate::aws_error::AwsErrorKind;
use serde::{Deserialize, Serialize};

/// Where the rate thresholds come from.
pub const THRESHOLDS_SOURCE: &str = "AWS SES developer guide, \"Sending review process FAQs\" (docs.aws.amazon.com/ses/latest/dg/faqs-enforcement.html): Bounce FAQ Q4, Complaint FAQ Q5";

/// A reputation rate's thresholds, as fractions (0.05 is 5%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateThresholds {
    /// The CloudWatch metric (namespace `AWS/SES`).
    pub metric: &'static str,
    /// `bounce` or `complaint`.
    pub name: &'static str,
    /// From here on the rate is worth watching: for bounces AWS's own advice ("maintain a
    /// bounce rate below 2%"); for complaints half the review threshold (AWS publishes no
    /// lower figure).
    pub near: f64,
    /// AWS places the account under review at this rate or above.
    pub review: f64,
    /// AWS may pause the account's sending at this rate or above.
    pub pause: f64,
}

/// The bounce rate: under review at 5%, sending may be paused at 10% (AWS).
pub const BOUNCE: RateThresholds =
    RateThresholds { metric: "Reputation.BounceRate", name: "bounce", near: 0.02, review: 0.05, pause: 0.10 };

/// The complaint rate: under review at 0.1%, sending may be paused at 0.5% (AWS).
pub const COMPLAINT: RateThresholds =
    RateThresholds { metric: "Reputation.ComplaintRate", name: "complaint", near: 0.0005, review: 0.001, pause: 0.005 };

/// Where a rate stands against its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateLevel {
    /// Below the `near` mark.
    Ok,
    /// At or above `near`, below AWS's review threshold.
    Near,
    /// At or above AWS's review threshold: the account is (or will be) under review.
    Review,
    /// At or above the threshold where AWS may pause sending.
    Pause,
}

impl RateLevel {
    /// The name in the JSON output (`ok`, `near`, `review`, `pause`).
    pub fn as_str(self) -> &'static str {
        match self {
            RateLevel::Ok => "ok",
            RateLevel::Near => "near",
            RateLevel::Review => "review",
            RateLevel::Pause => "pause",
        }
    }

    /// The level below this one (`Ok` stays `Ok`).
    pub fn below(self) -> RateLevel {
        match self {
            RateLevel::Ok | RateLevel::Near => RateLevel::Ok,
            RateLevel::Review => RateLevel::Near,
            RateLevel::Pause => RateLevel::Review,
        }
    }
}

impl RateThresholds {
    /// The level of `rate` (a fraction).
    pub fn level(&self, rate: f64) -> RateLevel {
        if rate >= self.pause {
            RateLevel::Pause
        } else if rate >= self.review {
            RateLevel::Review
        } else if rate >= self.near {
            RateLevel::Near
        } else {
            RateLevel::Ok
        }
    }

    /// The rate from which `level` starts (0 for `Ok`).
    pub fn start_of(&self, level: RateLevel) -> f64 {
        match level {
            RateLevel::Ok => 0.0,
            RateLevel::Near => self.near,
            RateLevel::Review => self.review,
            RateLevel::Pause => self.pause,
        }
    }
}

/// A rate as a person reads it: `5.20%`, `0.120%`.
pub fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p.abs() < 1.0 { format!("{p:.3}%") } else { format!("{p:.2}%") }
}

/// The latest value of a reputation metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// The rate, a fraction (0.05 is 5%).
    pub rate: f64,
    /// Where it stands against AWS's thresholds.
    pub level: RateLevel,
    /// When CloudWatch has it from (seconds since 1970).
    pub at: i64,
}

impl Rate {
    /// A rate measured at `at`, judged against `t`.
    pub fn new(rate: f64, at: i64, t: &RateThresholds) -> Rate {
        Rate { rate, level: t.level(rate), at }
    }
}

/// A configuration set's own reputation rates (published when its reputation metrics are on).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigurationSetRates {
    /// The configuration set's name.
    pub name: String,
    /// Its bounce rate, a fraction.
    pub bounce_rate: Option<f64>,
    /// Its complaint rate, a fraction.
    pub complaint_rate: Option<f64>,
    /// Its bounce rate with level and time.
    pub bounce: Option<Rate>,
    /// Its complaint rate with level and time.
    pub complaint: Option<Rate>,
}

/// A call that failed, with the IAM permission it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallError {
    /// The API call (`GetAccount`, `GetMetricData`).
    pub operation: &'static str,
    /// The IAM permission it needs (`ses:GetAccount`, `cloudwatch:GetMetricData`).
    pub permission: String,
    /// What kind of failure.
    pub kind: AwsErrorKind,
    /// What happened and what to do.
    pub message: String,
}

/// The state of a request for production access, when SES gives one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductionAccessRequest {
    /// `PENDING`, `FAILED`, `GRANTED`, `DENIED`.
    pub status: Option<String>,
    /// The Support Center case.
    pub case_id: Option<String>,
}

/// How serious an account finding is (as `check`'s severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Mail is not going out, or soon will not: act now.
    Error,
    /// Something to act on.
    Warning,
    /// Worth knowing.
    Info,
    /// The fact could not be had (a permission missing, AWS unreachable).
    Unknown,
}

/// One finding about the account in a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountFinding {
    /// Stable code, one of [`ACCOUNT_FINDINGS`].
    pub code: &'static str,
    /// How serious.
    pub severity: Severity,
    /// What it means, in plain words.
    pub message: String,
    /// What to do.
    pub fix: Option<String>,
}

/// Stable codes of the account findings.
pub mod code {
    /// The account is in the sandbox in the region.
    pub const SANDBOX: &str = "ses-sandbox";
    /// The account has production access in the region.
    pub const PRODUCTION_ACCESS: &str = "ses-production-access";
    /// Sending is paused in the region.
    pub const SENDING_PAUSED: &str = "ses-sending-paused";
    /// The account is under review (PROBATION).
    pub const ENFORCEMENT_PROBATION: &str = "ses-enforcement-probation";
    /// AWS paused the account's sending (SHUTDOWN).
    pub const ENFORCEMENT_SHUTDOWN: &str = "ses-enforcement-shutdown";
    /// The bounce rate is near AWS's review threshold.
    pub const BOUNCE_NEAR: &str = "ses-bounce-rate-near";
    /// The bounce rate is at or above AWS's review threshold.
    pub const BOUNCE_REVIEW: &str = "ses-bounce-rate-review";
    /// The bounce rate is at or above the rate where AWS may pause sending.
    pub const BOUNCE_PAUSE: &str = "ses-bounce-rate-pause";
    /// The complaint rate is near AWS's review threshold.
    pub const COMPLAINT_NEAR: &str = "ses-complaint-rate-near";
    /// The complaint rate is at or above AWS's review threshold.
    pub const COMPLAINT_REVIEW: &str = "ses-complaint-rate-review";
    /// The complaint rate is at or above the rate where AWS may pause sending.
    pub const COMPLAINT_PAUSE: &str = "ses-complaint-rate-pause";
    /// CloudWatch has no reputation rates for the account.
    pub const RATES_UNKNOWN: &str = "ses-rates-unknown";
    /// A call was denied: the permission it needs is named.
    pub const PERMISSION_MISSING: &str = "ses-permission-missing";
    /// Reports show SES mail for the domain from a region where it is not a verified identity.
    pub const REGION_UNVERIFIED: &str = "ses-region-unverified";
    /// Reports show SES mail for the domain from a region that was not checked.
    pub const REGION_NOT_CHECKED: &str = "ses-region-not-checked";
}

/// Every account finding code with its severity and a title (docs/commands.md lists them;
/// a test keeps them equal).
pub const ACCOUNT_FINDINGS: &[(&str, Severity, &str)] = &[
    (code::SANDBOX, Severity::Warning, "The account is in the SES sandbox in this region"),
    (code::PRODUCTION_ACCESS, Severity::Info, "The account has production access in this region"),
    (code::SENDING_PAUSED, Severity::Error, "Sending is paused in this region"),
    (code::ENFORCEMENT_PROBATION, Severity::Warning, "AWS placed the account under review"),
    (code::ENFORCEMENT_SHUTDOWN, Severity::Error, "AWS paused the account's sending"),
    (code::BOUNCE_NEAR, Severity::Info, "The bounce rate is above 2% (AWS's advice), below the 5% review threshold"),
    (code::BOUNCE_REVIEW, Severity::Warning, "The bounce rate is at or above 5%: AWS reviews the account"),
    (code::BOUNCE_PAUSE, Severity::Error, "The bounce rate is at or above 10%: AWS may pause sending"),
    (code::COMPLAINT_NEAR, Severity::Info, "The complaint rate is above 0.05%, below the 0.1% review threshold"),
    (code::COMPLAINT_REVIEW, Severity::Warning, "The complaint rate is at or above 0.1%: AWS reviews the account"),
    (code::COMPLAINT_PAUSE, Severity::Error, "The complaint rate is at or above 0.5%: AWS may pause sending"),
    (code::RATES_UNKNOWN, Severity::Info, "CloudWatch has no reputation rates for the account"),
    (code::PERMISSION_MISSING, Severity::Unknown, "A call was denied; the IAM permission it needs is named"),
    (
        code::REGION_UNVERIFIED,
        Severity::Error,
        "Reports show SES mail from a region where the domain is not a verified identity",
    ),
    (code::REGION_NOT_CHECKED, Severity::Warning, "Reports show SES mail from a region that was not checked"),
];

fn severity_of(code: &str) -> Severity {
    ACCOUNT_FINDINGS.iter().find(|(c, _, _)| *c == code).map(|(_, s, _)| *s).unwrap_or(Severity::Info)
}

impl AccountFinding {
    /// A finding with its code's severity.
    pub fn new(code: &'static str, message: String, fix: Option<String>) -> AccountFinding {
        AccountFinding { code, severity: severity_of(code), message, fix }
    }
}

/// The account in one region: what SES and CloudWatch said, what it means, and which calls
/// failed. Facts that could not be had are `None`, never a guess.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountStatus {
    /// The region.
    pub region: String,
    /// Production access (true) or the sandbox (false).
    pub production_access: Option<bool>,
    /// Whether the account may send in the region (false: paused).
    pub sending_enabled: Option<bool>,
    /// `HEALTHY`, `PROBATION` (under review) or `SHUTDOWN` (sending paused by AWS).
    pub enforcement_status: Option<String>,
    /// The latest request for production access.
    pub production_access_request: Option<ProductionAccessRequest>,
    /// Messages the account may send in 24 hours.
    pub max_24h_send: Option<f64>,
    /// Messages the account may send per second.
    pub max_send_rate: Option<f64>,
    /// Messages sent in the last 24 hours.
    pub sent_last_24h: Option<f64>,
    /// The account's bounce rate, a fraction.
    pub bounce_rate: Option<f64>,
    /// The account's complaint rate, a fraction.
    pub complaint_rate: Option<f64>,
    /// The bounce rate with its level and time.
    pub bounce: Option<Rate>,
    /// The complaint rate with its level and time.
    pub complaint: Option<Rate>,
    /// Configuration sets whose reputation metrics CloudWatch has.
    pub configuration_sets: Vec<ConfigurationSetRates>,
    /// What it all means.
    pub findings: Vec<AccountFinding>,
    /// The calls that failed.
    pub errors: Vec<CallError>,
    /// Remarks that are no finding.
    pub notes: Vec<String>,
}

impl AccountStatus {
    /// Sets the account's rates (fractions with their times).
    pub fn set_rates(&mut self, bounce: Option<(f64, i64)>, complaint: Option<(f64, i64)>) {
        self.bounce = bounce.map(|(r, at)| Rate::new(r, at, &BOUNCE));
        self.complaint = complaint.map(|(r, at)| Rate::new(r, at, &COMPLAINT));
        self.bounce_rate = self.bounce.map(|r| r.rate);
        self.complaint_rate = self.complaint.map(|r| r.rate);
    }

    /// Whether something needs doing: an error or warning finding.
    pub fn needs_work(&self) -> bool {
        self.findings.iter().any(|f| matches!(f.severity, Severity::Error | Severity::Warning))
    }

    /// Whether a finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

impl ConfigurationSetRates {
    /// A configuration set's rates (fractions with their times).
    pub fn new(name: &str, bounce: Option<(f64, i64)>, complaint: Option<(f64, i64)>) -> ConfigurationSetRates {
        let bounce = bounce.map(|(r, at)| Rate::new(r, at, &BOUNCE));
        let complaint = complaint.map(|(r, at)| Rate::new(r, at, &COMPLAINT));
        ConfigurationSetRates {
            name: name.to_string(),
            bounce_rate: bounce.map(|r| r.rate),
            complaint_rate: complaint.map(|r| r.rate),
            bounce,
            complaint,
        }
    }
}

fn age(at: i64, now: i64) -> String {
    let hours = (now - at).max(0) / 3600;
    match hours {
        0 => "measured within the hour".to_string(),
        1 => "measured an hour ago".to_string(),
        h if h < 48 => format!("measured {h} hours ago"),
        h => format!("measured {} days ago", h / 24),
    }
}

fn rate_finding(t: &RateThresholds, rate: &Rate, whose: &str, region: &str, now: i64) -> Option<AccountFinding> {
    let (near, review, pause) = if t.name == "bounce" {
        (code::BOUNCE_NEAR, code::BOUNCE_REVIEW, code::BOUNCE_PAUSE)
    } else {
        (code::COMPLAINT_NEAR, code::COMPLAINT_REVIEW, code::COMPLAINT_PAUSE)
    };
    let shown =
        format!("{whose} {} rate in {region} is {} ({}, {})", t.name, percent(rate.rate), t.metric, age(rate.at, now));
    let limits =
        format!("AWS reviews an account at {} and may pause its sending at {}", percent(t.review), percent(t.pause));
    let fix = if t.name == "bounce" {
        "remove addresses that bounced (SES's suppression list, bounce notifications through SNS), and send only to addresses that asked for mail; a sudden rise can also be mail failing authentication: compare with `ses-dmarc reports summary`"
    } else {
        "stop mailing those who complained, make unsubscribing easy, send only what recipients signed up for; complaint notifications through SNS name them"
    };
    let (code, message) = match rate.level {
        RateLevel::Ok => return None,
        RateLevel::Near => (near, format!("{shown}: below AWS's review threshold, but rising towards it; {limits}.")),
        RateLevel::Review => (
            review,
            format!(
                "{shown}: at or above AWS's review threshold ({}); {limits}. Under review, mail still goes out; unfixed, AWS may pause it.",
                percent(t.review)
            ),
        ),
        RateLevel::Pause => (
            pause,
            format!(
                "{shown}: at or above the rate ({}) where AWS may pause the account's sending; {limits}.",
                percent(t.pause)
            ),
        ),
    };
    Some(AccountFinding::new(code, message, Some(fix.to_string())))
}

/// What the facts mean: fills `status.findings` (replacing what was there). `now` (seconds
/// since 1970) dates the rates.
pub fn judge(status: &mut AccountStatus, now: i64) {
    let region = status.region.clone();
    let mut findings = Vec::new();
    for e in &status.errors {
        if e.kind == AwsErrorKind::AccessDenied {
            findings.push(AccountFinding::new(
                code::PERMISSION_MISSING,
                format!("{} was denied in {region}: the credentials lack `{}`; what it tells is unknown here, the rest is shown.", e.operation, e.permission),
                Some(format!("add `{}` to the IAM policy of the credentials in use (docs/commands.md lists every read permission ses-dmarc needs)", e.permission)),
            ));
        }
    }
    let quota = match (status.max_24h_send, status.max_send_rate) {
        (Some(day), Some(second)) => format!("{} messages a day, {} a second", trim(day), trim(second)),
        _ => "200 messages a day, 1 a second".to_string(),
    };
    match status.production_access {
        Some(false) => {
            let request = match status.production_access_request.as_ref().and_then(|r| r.status.as_deref()) {
                Some("PENDING") => " A request for production access is pending: AWS answers in its Support Center case.".to_string(),
                Some("DENIED") => " The last request for production access was denied: reply to the Support Center case with how you collect addresses and handle bounces and complaints.".to_string(),
                Some("FAILED") => " The last request for production access failed: send it again.".to_string(),
                _ => String::new(),
            };
            findings.push(AccountFinding::new(
                code::SANDBOX,
                format!(
                    "The account is in the SES sandbox in {region}: it sends only to verified addresses and domains (and the mailbox simulator), at most {quota}. Production access is granted per region, after AWS reviews a request (allow a business day), so request it early, in every region you send from, not on the day you launch.{request}"
                ),
                Some(format!(
                    "the SES console in {region}: Account dashboard → Request production access (or `aws sesv2 put-account-details --region {region} --production-access-enabled --mail-type TRANSACTIONAL --website-url https://... --use-case-description \"...\"`)"
                )),
            ));
        }
        Some(true) => findings.push(AccountFinding::new(
            code::PRODUCTION_ACCESS,
            format!("The account has production access in {region}: it may send to any address, up to {quota}."),
            None,
        )),
        None => {}
    }
    let shutdown = status.enforcement_status.as_deref() == Some("SHUTDOWN");
    if status.sending_enabled == Some(false) {
        let by = if shutdown {
            "AWS paused it (enforcement status SHUTDOWN)"
        } else {
            "paused by the account itself (UpdateAccountSendingEnabled, often a CloudWatch alarm) or by AWS"
        };
        findings.push(AccountFinding::new(
            code::SENDING_PAUSED,
            format!("Sending is paused in {region}: SES refuses every message the account sends there; {by}."),
            Some(if shutdown {
                "fix what AWS's notice names, then reply to the Support Center case AWS opened".to_string()
            } else {
                format!("if the account paused itself, resume with `aws sesv2 put-account-sending-attributes --sending-enabled --region {region}` once the cause is fixed")
            }),
        ));
    }
    match status.enforcement_status.as_deref() {
        Some("PROBATION") => findings.push(AccountFinding::new(
            code::ENFORCEMENT_PROBATION,
            format!("AWS placed the account under review in {region} (enforcement status PROBATION): mail still goes out, but unless the cause is fixed before the review period ends AWS may pause sending."),
            Some("read AWS's notice (sent to the account's e-mail address), fix the cause, then reply to the Support Center case".into()),
        )),
        Some("SHUTDOWN") => findings.push(AccountFinding::new(
            code::ENFORCEMENT_SHUTDOWN,
            format!("AWS paused the account's sending in {region} (enforcement status SHUTDOWN)."),
            Some("fix what AWS's notice names, then ask for a review in the Support Center case".into()),
        )),
        _ => {}
    }
    for (t, rate) in [(&BOUNCE, status.bounce), (&COMPLAINT, status.complaint)] {
        if let Some(f) = rate.and_then(|r| rate_finding(t, &r, "The account's", &region, now)) {
            findings.push(f);
        }
    }
    for set in &status.configuration_sets {
        for (t, rate) in [(&BOUNCE, set.bounce), (&COMPLAINT, set.complaint)] {
            let whose = format!("Configuration set {}'s", set.name);
            if let Some(f) = rate.and_then(|r| rate_finding(t, &r, &whose, &region, now)) {
                findings.push(f);
            }
        }
    }
    let metrics_denied = status.errors.iter().any(|e| e.operation == "GetMetricData");
    if status.bounce.is_none() && status.complaint.is_none() && !metrics_denied {
        findings.push(AccountFinding::new(
            code::RATES_UNKNOWN,
            format!("CloudWatch has no Reputation.BounceRate or Reputation.ComplaintRate for the account in {region} in the last 14 days: SES publishes them once the account has sent enough mail to compute them."),
            None,
        ));
    }
    status.findings = findings;
}

fn trim(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_at_and_around_the_thresholds() {
        assert_eq!(BOUNCE.level(0.0), RateLevel::Ok);
        assert_eq!(BOUNCE.level(0.0199), RateLevel::Ok);
        assert_eq!(BOUNCE.level(0.02), RateLevel::Near);
        assert_eq!(BOUNCE.level(0.0499), RateLevel::Near);
        assert_eq!(BOUNCE.level(0.05), RateLevel::Review);
        assert_eq!(BOUNCE.level(0.0999), RateLevel::Review);
        assert_eq!(BOUNCE.level(0.10), RateLevel::Pause);
        assert_eq!(COMPLAINT.level(0.0004), RateLevel::Ok);
        assert_eq!(COMPLAINT.level(0.0008), RateLevel::Near);
        assert_eq!(COMPLAINT.level(0.001), RateLevel::Review);
        assert_eq!(COMPLAINT.level(0.005), RateLevel::Pause);
        assert_eq!(percent(0.052), "5.20%");
        assert_eq!(percent(0.0012), "0.120%");
    }

    #[test]
    fn sandbox_paused_probation_and_rates_are_said() {
        let now = 1_800_000_000;
        let mut s = AccountStatus {
            region: "eu-west-1".into(),
            production_access: Some(false),
            sending_enabled: Some(false),
            enforcement_status: Some("PROBATION".into()),
            production_access_request: Some(ProductionAccessRequest { status: Some("PENDING".into()), case_id: None }),
            max_24h_send: Some(200.0),
            max_send_rate: Some(1.0),
            ..Default::default()
        };
        s.set_rates(Some((0.06, now - 7200)), Some((0.0002, now)));
        s.configuration_sets.push(ConfigurationSetRates::new("marketing", None, Some((0.006, now))));
        judge(&mut s, now);
        let codes: Vec<&str> = s.findings.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            [
                code::SANDBOX,
                code::SENDING_PAUSED,
                code::ENFORCEMENT_PROBATION,
                code::BOUNCE_REVIEW,
                code::COMPLAINT_PAUSE
            ]
        );
        let sandbox = &s.findings[0].message;
        assert!(sandbox.contains("200 messages a day, 1 a second") && sandbox.contains("per region"), "{sandbox}");
        assert!(sandbox.contains("pending"), "{sandbox}");
        assert!(s.findings[3].message.contains("6.00%") && s.findings[3].message.contains("2 hours ago"));
        assert!(s.findings[4].message.contains("marketing"));
        assert!(s.needs_work() && s.has_errors());
    }

    #[test]
    fn a_healthy_account_and_an_unknown_one() {
        let mut s = AccountStatus {
            region: "us-east-1".into(),
            production_access: Some(true),
            sending_enabled: Some(true),
            enforcement_status: Some("HEALTHY".into()),
            max_24h_send: Some(50_000.0),
            max_send_rate: Some(14.0),
            ..Default::default()
        };
        s.set_rates(Some((0.004, 0)), Some((0.0, 0)));
        judge(&mut s, 0);
        assert_eq!(s.findings.len(), 1, "{:?}", s.findings);
        assert!(s.findings[0].message.contains("50000 messages a day, 14 a second"));
        assert!(!s.needs_work());

        let mut unknown = AccountStatus {
            region: "us-east-1".into(),
            errors: vec![CallError {
                operation: "GetAccount",
                permission: "ses:GetAccount".into(),
                kind: AwsErrorKind::AccessDenied,
                message: "denied".into(),
            }],
            ..Default::default()
        };
        judge(&mut unknown, 0);
        let codes: Vec<&str> = unknown.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, [code::PERMISSION_MISSING, code::RATES_UNKNOWN]);
        assert!(unknown.findings[0].message.contains("`ses:GetAccount`"));
    }

    #[test]
    fn every_code_is_in_the_docs() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
        let docs = std::fs::read_to_string(&path).expect("docs/commands.md");
        for (code, severity, _) in ACCOUNT_FINDINGS {
            let row = format!("| `{code}` | {} |", serde_json::to_value(severity).unwrap().as_str().unwrap());
            assert!(docs.contains(&row), "docs/commands.md lacks the row `{row}`");
        }
    }
}
