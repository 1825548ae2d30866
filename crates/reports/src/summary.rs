//! Totals and pass rates over a domain's reports, overall and per source, counted in
//! messages (not rows), with the SES-specific lines.

use crate::aggregate::{ReportHeader, ReportRecord};
use crate::classify::{Classified, SourceKind};
use crate::failure::FailureReport;
use serde::Serialize;
use std::collections::BTreeMap;

/// One sending source's messages in a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceSummary {
    /// `Amazon SES`, a service name, `forwarded`, or the source IP.
    pub source: String,
    /// How the source was classified.
    pub kind: Option<SourceKind>,
    /// Messages from the source.
    pub messages: u64,
    /// Of those, the ones that pass DMARC.
    pub dmarc_pass: u64,
    /// Of those, the ones with SPF aligned.
    pub spf_aligned: u64,
    /// Of those, the ones with DKIM aligned.
    pub dkim_aligned: u64,
    /// Of those, the ones with a passing DKIM signature whose `d=` is the From domain
    /// itself (they would align under `adkim=s` too).
    pub dkim_strict_aligned: u64,
    /// Report periods (seconds since 1970) in which the source first and last appears.
    pub first_seen: i64,
    /// End of the last report period in which the source appears.
    pub last_seen: i64,
}

/// The Amazon SES messages of a summary, by how they align.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SesSummary {
    /// Messages sent through SES.
    pub messages: u64,
    /// SES messages aligned through the custom MAIL FROM (SPF).
    pub aligned_via_mail_from: u64,
    /// SES messages aligned through Easy DKIM.
    pub aligned_via_dkim: u64,
    /// SES messages sent with the default amazonses.com envelope.
    pub default_mail_from: u64,
}

/// A domain's reports summed up: totals, pass rates' parts, per-source lines, SES lines and
/// failure reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The policy domain.
    pub domain: String,
    /// Start of the earliest report period, seconds since 1970 (0 without reports).
    pub from: i64,
    /// End of the latest report period, seconds since 1970.
    pub to: i64,
    /// Aggregate reports counted.
    pub reports: u64,
    /// Messages in them.
    pub messages: u64,
    /// Messages that pass DMARC.
    pub dmarc_pass: u64,
    /// Messages with SPF aligned.
    pub spf_aligned: u64,
    /// Messages with DKIM aligned.
    pub dkim_aligned: u64,
    /// Messages whose reporter evaluated DMARC differently from the recomputation.
    pub reporter_differs: u64,
    /// Distinct days (UTC) covered by the reports.
    pub days: u32,
    /// Per source, most messages first.
    pub sources: Vec<SourceSummary>,
    /// The DMARC policies the reporters found published, as they wrote them, with the days
    /// their reports cover: how long each policy has been in force.
    pub policies: Vec<PolicySeen>,
    /// The Amazon SES messages.
    pub ses: SesSummary,
    /// The failure reports.
    pub failures: FailureSummary,
}

/// One DMARC policy as reporters found it published (`<policy_published>`), and the reports
/// that saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicySeen {
    /// `p` as written, lower case (`none`, `quarantine`, `reject`; empty when missing).
    pub p: String,
    /// `pct`, when the reporter wrote it (RFC 7489 reporters).
    pub pct: Option<u8>,
    /// `testing` (RFC 9990 reporters): `true` for `y`, `false` for `n`, absent when not written.
    pub testing: Option<bool>,
    /// Distinct days (UTC) covered by the reports that saw this policy.
    pub days: u32,
    /// Start of the earliest such report, seconds since 1970.
    pub first_seen: i64,
    /// End of the latest such report, seconds since 1970.
    pub last_seen: i64,
    /// Messages in those reports.
    pub messages: u64,
    /// The days themselves (days since 1970, UTC, ascending), for joining several policies.
    #[serde(skip)]
    pub day_numbers: Vec<i64>,
}

/// The days (days since 1970, UTC) a report period covers: at most 367.
fn period_days(begin: i64, end: i64) -> std::ops::RangeInclusive<i64> {
    let (b, e) = (begin.div_euclid(86_400), end.max(begin + 1).saturating_sub(1).div_euclid(86_400));
    b..=e.min(b + 366)
}

/// The failure (forensic) reports about the domain in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureSummary {
    /// Failure reports counted.
    pub reports: u64,
    /// Reports per Auth-Failure value (`dkim`, `spf`, `dmarc`, ...; `unspecified`).
    pub by_auth_failure: BTreeMap<String, u64>,
    /// Reports per source IP (`unknown` when the report has none), most first.
    pub by_source_ip: Vec<(String, u64)>,
    /// The latest reports, newest first (at most [`RECENT_FAILURES`]).
    pub recent: Vec<FailureLine>,
}

/// Failure reports listed one by one in a summary.
pub const RECENT_FAILURES: usize = 10;

/// One failure report, as a summary lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureLine {
    /// When the message arrived, seconds since 1970.
    pub arrival_date: Option<i64>,
    /// The IP the message came from.
    pub source_ip: Option<String>,
    /// What failed (`dkim`, `spf`, `dmarc`, ...).
    pub auth_failure: Option<String>,
    /// The message's MAIL FROM.
    pub original_mail_from: Option<String>,
    /// The failing DKIM signature's `d=`.
    pub dkim_domain: Option<String>,
    /// Its `s=`.
    pub dkim_selector: Option<String>,
    /// The server that made the report.
    pub reporting_mta: Option<String>,
}

impl Summary {
    /// `part / whole`, 0 when `whole` is 0.
    pub fn rate(part: u64, whole: u64) -> f64 {
        if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
    }
}

/// Accumulates reports into a [`Summary`].
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    summary: Summary,
    sources: BTreeMap<String, SourceSummary>,
    days: std::collections::BTreeSet<i64>,
    failure_ips: BTreeMap<String, u64>,
    policies: BTreeMap<(String, Option<u8>, Option<bool>), PolicySeen>,
    policy_days: BTreeMap<(String, Option<u8>, Option<bool>), std::collections::BTreeSet<i64>>,
}

impl SummaryBuilder {
    /// An empty summary for `domain`.
    pub fn new(domain: &str) -> Self {
        SummaryBuilder {
            summary: Summary { domain: domain.to_string(), from: i64::MAX, ..Default::default() },
            ..Default::default()
        }
    }

    /// Adds an aggregate report's header: its period and its days.
    pub fn add_report(&mut self, header: &ReportHeader) {
        let s = &mut self.summary;
        s.reports += 1;
        s.from = s.from.min(header.metadata.begin);
        s.to = s.to.max(header.metadata.end);
        for day in period_days(header.metadata.begin, header.metadata.end) {
            self.days.insert(day);
        }
    }

    /// Counts the published policy of the report a record comes from.
    fn add_policy(&mut self, header: &ReportHeader, messages: u64) {
        let m = &header.metadata;
        let policy = &header.policy;
        let testing = policy.testing.as_deref().and_then(|t| match t.trim().to_ascii_lowercase().as_str() {
            "y" => Some(true),
            "n" => Some(false),
            _ => None,
        });
        let key = (policy.p.as_deref().unwrap_or("").trim().to_ascii_lowercase(), policy.pct, testing);
        let entry = self.policies.entry(key.clone()).or_insert_with(|| PolicySeen {
            p: key.0.clone(),
            pct: key.1,
            testing: key.2,
            first_seen: m.begin,
            last_seen: m.end,
            ..Default::default()
        });
        entry.messages += messages;
        entry.first_seen = entry.first_seen.min(m.begin);
        entry.last_seen = entry.last_seen.max(m.end);
        self.policy_days.entry(key).or_default().extend(period_days(m.begin, m.end));
    }

    /// Adds one record of the report `header`, classified as `c`.
    pub fn add_record(&mut self, header: &ReportHeader, record: &ReportRecord, c: &Classified) {
        let n = record.count;
        self.add_policy(header, n);
        let s = &mut self.summary;
        s.messages += n;
        s.dmarc_pass += if c.dmarc_pass { n } else { 0 };
        s.spf_aligned += if c.spf_aligned { n } else { 0 };
        s.dkim_aligned += if c.dkim_aligned { n } else { 0 };
        s.reporter_differs += if c.reporter_differs { n } else { 0 };
        if c.kind == SourceKind::AmazonSes {
            s.ses.messages += n;
            s.ses.aligned_via_mail_from += if c.spf_aligned { n } else { 0 };
            s.ses.aligned_via_dkim += if c.dkim_aligned { n } else { 0 };
            s.ses.default_mail_from += if c.ses_default_mail_from { n } else { 0 };
        }
        let e = self.sources.entry(c.source.clone()).or_insert_with(|| SourceSummary {
            source: c.source.clone(),
            kind: Some(c.kind),
            first_seen: header.metadata.begin,
            last_seen: header.metadata.end,
            ..Default::default()
        });
        e.messages += n;
        e.dmarc_pass += if c.dmarc_pass { n } else { 0 };
        e.spf_aligned += if c.spf_aligned { n } else { 0 };
        e.dkim_aligned += if c.dkim_aligned { n } else { 0 };
        e.dkim_strict_aligned += if c.dkim_strict { n } else { 0 };
        e.first_seen = e.first_seen.min(header.metadata.begin);
        e.last_seen = e.last_seen.max(header.metadata.end);
    }

    /// Adds a failure report (any order).
    pub fn add_failure(&mut self, report: &FailureReport) {
        let f = &mut self.summary.failures;
        f.reports += 1;
        *f.by_auth_failure.entry(report.auth_failure.clone().unwrap_or_else(|| "unspecified".into())).or_default() += 1;
        *self.failure_ips.entry(report.source_ip.clone().unwrap_or_else(|| "unknown".into())).or_default() += 1;
        f.recent.push(FailureLine {
            arrival_date: report.arrival_date,
            source_ip: report.source_ip.clone(),
            auth_failure: report.auth_failure.clone(),
            original_mail_from: report.original_mail_from.clone(),
            dkim_domain: report.dkim_domain.clone(),
            dkim_selector: report.dkim_selector.clone(),
            reporting_mta: report.reporting_mta.clone(),
        });
        f.recent.sort_by_key(|b| std::cmp::Reverse(b.arrival_date));
        f.recent.truncate(RECENT_FAILURES);
    }

    /// The summary, sources sorted by messages.
    pub fn finish(mut self) -> Summary {
        let mut ips: Vec<(String, u64)> = std::mem::take(&mut self.failure_ips).into_iter().collect();
        ips.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self.summary.failures.by_source_ip = ips;
        if self.summary.from == i64::MAX {
            self.summary.from = 0;
        }
        self.summary.days = self.days.len() as u32;
        let mut sources: Vec<SourceSummary> = self.sources.into_values().collect();
        sources.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.source.cmp(&b.source)));
        self.summary.sources = sources;
        let mut policy_days = std::mem::take(&mut self.policy_days);
        self.summary.policies = std::mem::take(&mut self.policies)
            .into_iter()
            .map(|(key, mut p)| {
                p.day_numbers = policy_days.remove(&key).unwrap_or_default().into_iter().collect();
                p.days = p.day_numbers.len() as u32;
                p
            })
            .collect();
        self.summary
    }
}
