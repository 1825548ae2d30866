//! What changed between two checks of a domain: pure functions from the previous state
//! and the new report to events. A record that could not be fetched never raises a
//! finding nor resolves one; a lookup that fails is news only after several checks in a
//! row; a finding is raised once and resolved when it goes away.

use crate::config::WatchSettings;
use crate::events::{Event, EventKind, Severity};
use serde::{Deserialize, Serialize};
use ses_dmarc_audit::{DomainReport, FindingSeverity};
use ses_dmarc_dns::{Outcome, Rdata};
use std::collections::{BTreeMap, BTreeSet};

/// An error or warning finding, as remembered between checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingLine {
    /// Its code.
    pub code: String,
    /// The DNS name it is about.
    pub name: String,
    /// `error` or `warning`.
    pub severity: String,
    /// Its message.
    pub message: String,
    /// Its fix.
    pub fix: Option<String>,
}

/// What a check leaves to compare the next one with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// Whether SES mail passes DMARC (null: unknown).
    pub verdict: Option<bool>,
    /// The verdict's reason.
    pub reason: String,
    /// Error findings.
    pub errors: usize,
    /// Warning findings.
    pub warnings: usize,
    /// The error and warning findings.
    pub findings: Vec<FindingLine>,
    /// The watched records: `"name TYPE"` → their values (sorted, one per line), or
    /// `(none)` / `(no such name)`. Failed lookups are absent.
    pub records: BTreeMap<String, String>,
}

/// One value as a person reads it.
fn render(r: &Rdata) -> String {
    match r {
        Rdata::A(a) => a.to_string(),
        Rdata::Aaaa(a) => a.to_string(),
        Rdata::Name(n) => n.clone(),
        Rdata::Mx { preference, exchange } => format!("{preference} {exchange}"),
        Rdata::Txt(_) => r.txt_text().unwrap_or_default(),
    }
}

/// Whether a question is about the domain's own records (not a provider's include or
/// another domain's policy), and so worth a `record-changed`.
fn watched_key(domain: &str, key: &str) -> bool {
    let name = key.rsplit_once(' ').map(|(n, _)| n).unwrap_or(key);
    name == domain || name.ends_with(&format!(".{domain}"))
}

/// The normalised answers (values sorted), so that a server's record order does not look
/// like a change; the failed questions; the digest of the whole.
pub fn normalise(report: &DomainReport) -> (BTreeMap<String, String>, BTreeSet<String>, String) {
    use sha2::Digest;
    let mut all = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for (key, answer) in &report.snapshot.answers {
        let value = match &answer.outcome {
            Outcome::Records(records) => {
                let mut values: Vec<String> = records.iter().map(render).collect();
                values.sort();
                values.join("\n")
            }
            Outcome::NoData => "(none)".into(),
            Outcome::NxDomain => "(no such name)".into(),
            Outcome::Failed(f) => {
                failed.insert(key.clone());
                format!("(failed: {f})")
            }
        };
        all.insert(key.clone(), value);
    }
    let digest = sha2::Sha256::digest(serde_json::to_string(&all).unwrap_or_default().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    (all, failed, hex)
}

/// The state a report leaves.
pub fn state_of(report: &DomainReport) -> (WatchState, BTreeSet<String>, String) {
    let (all, failed, digest) = normalise(report);
    let findings: Vec<FindingLine> = report
        .judgement
        .findings
        .iter()
        .filter(|f| matches!(f.severity, FindingSeverity::Error | FindingSeverity::Warning))
        .map(|f| FindingLine {
            code: f.code.to_string(),
            name: f.name.clone(),
            severity: f.severity.as_str().to_string(),
            message: f.message.clone(),
            fix: f.fix.clone(),
        })
        .collect();
    let records = all
        .into_iter()
        .filter(|(k, _)| !failed.contains(k) && watched_key(&report.domain, k))
        .map(|(k, v)| {
            // The apex and MAIL FROM TXT: the SPF record is what matters, not every
            // verification token beside it.
            let spf_only = k.ends_with(" TXT") && !k.starts_with("_dmarc.") && !k.contains("._domainkey.");
            if spf_only && v.contains('\n') {
                let spf: Vec<&str> = v.lines().filter(|l| ses_dmarc_records::spf::is_spf1(l)).collect();
                (k, if spf.is_empty() { "(no SPF record)".to_string() } else { spf.join("\n") })
            } else if spf_only && !v.starts_with('(') && !ses_dmarc_records::spf::is_spf1(&v) {
                (k, "(no SPF record)".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let v = &report.judgement.verdict;
    let state = WatchState {
        verdict: v.ses_mail_passes_dmarc,
        reason: v.reason.clone(),
        errors: findings.iter().filter(|f| f.severity == "error").count(),
        warnings: findings.iter().filter(|f| f.severity == "warning").count(),
        findings,
        records,
    };
    (state, failed, digest)
}

/// What comparing two checks gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// New events.
    pub events: Vec<Event>,
    /// Problems these events open (their keys).
    pub opened: Vec<(String, String)>,
    /// Problems that went away (their keys).
    pub closed: Vec<String>,
    /// Consecutive failures per question after this check.
    pub failures: BTreeMap<String, u32>,
}

fn severity_of(text: &str) -> Severity {
    if text == "error" { Severity::Error } else { Severity::Warning }
}

/// Compares the previous state (none on a domain's first check) with the new one.
pub fn compare(
    domain: &str,
    previous: Option<&WatchState>,
    previous_failures: &BTreeMap<String, u32>,
    now: &WatchState,
    failed: &BTreeSet<String>,
    settings: &WatchSettings,
    at: i64,
) -> Changes {
    let mut c = Changes::default();
    // Lookups that fail: counted per question; news at the Nth failure in a row.
    for key in failed {
        let n = previous_failures.get(key).copied().unwrap_or(0).saturating_add(1);
        c.failures.insert(key.clone(), n);
        if n == settings.unknown_after {
            let mut e = Event::new(
                at,
                Some(domain),
                EventKind::DnsUnknown,
                Severity::Warning,
                format!("{key}: no answer on {n} checks in a row; the checks that need it are unknown, not failed"),
            );
            e.subject = Some(key.clone());
            e.fix =
                Some("check the domain's name servers (`dig +trace`); nothing is reported missing meanwhile".into());
            c.opened.push((e.problem(), e.id.clone()));
            c.events.push(e);
        }
    }
    for key in previous_failures.keys().filter(|k| !failed.contains(*k)) {
        c.closed.push(format!("{} {} {key}", EventKind::DnsUnknown.as_str(), EventKind::DnsUnknown.as_str()));
    }
    let failed_names: BTreeSet<&str> = failed.iter().filter_map(|k| k.rsplit_once(' ').map(|(n, _)| n)).collect();
    let key = |f: &FindingLine| (f.code.clone(), f.name.clone());
    let before: BTreeMap<(String, String), &FindingLine> =
        previous.map(|p| p.findings.iter().map(|f| (key(f), f)).collect()).unwrap_or_default();
    let after: BTreeMap<(String, String), &FindingLine> = now.findings.iter().map(|f| (key(f), f)).collect();
    for (k, f) in &after {
        if !before.contains_key(k) {
            let mut e =
                Event::new(at, Some(domain), EventKind::FindingRaised, severity_of(&f.severity), f.message.clone());
            e.code = f.code.clone();
            e.subject = Some(f.name.clone());
            e.fix = f.fix.clone();
            c.opened.push((e.problem(), e.id.clone()));
            c.events.push(e);
        }
    }
    for (k, f) in &before {
        // Gone because its record could not be read this time: not resolved.
        if after.contains_key(k) || failed_names.contains(f.name.as_str()) {
            continue;
        }
        let mut e = Event::new(
            at,
            Some(domain),
            EventKind::FindingResolved,
            Severity::Info,
            format!("resolved: {}", f.message),
        );
        e.code = f.code.clone();
        e.subject = Some(f.name.clone());
        c.closed.push(format!("{} {} {}", EventKind::FindingRaised.as_str(), f.code, f.name));
        c.events.push(e);
    }
    if let Some(p) = previous {
        for (k, after) in &now.records {
            let Some(before) = p.records.get(k) else { continue };
            if before == after {
                continue;
            }
            let shown = |v: &str| v.replace('\n', " | ");
            let weakened = k.starts_with("_dmarc.") && policy_rank(before) > policy_rank(after);
            let mut e = Event::new(
                at,
                Some(domain),
                EventKind::RecordChanged,
                if weakened { Severity::Error } else { Severity::Warning },
                format!(
                    "{k} changed: `{}` → `{}`{}",
                    shown(before),
                    shown(after),
                    if weakened { " (the DMARC policy is weaker now)" } else { "" }
                ),
            );
            e.subject = Some(k.clone());
            e.before = Some(before.clone());
            e.after = Some(after.clone());
            c.events.push(e);
        }
    }
    c
}

/// A DMARC record's policy as a rank (none 0, quarantine 1, reject 2); -1 for no record.
fn policy_rank(value: &str) -> i32 {
    let lower = value.to_ascii_lowercase();
    let p = lower.split(';').filter_map(|t| t.trim().strip_prefix("p=")).next().map(str::trim).unwrap_or("");
    match p {
        "reject" => 2,
        "quarantine" => 1,
        "none" => 0,
        _ if lower.contains("v=dmarc1") => 0,
        _ => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(findings: &[(&str, &str, &str)], records: &[(&str, &str)]) -> WatchState {
        WatchState {
            findings: findings
                .iter()
                .map(|(c, n, s)| FindingLine {
                    code: c.to_string(),
                    name: n.to_string(),
                    severity: s.to_string(),
                    message: format!("{c} at {n}"),
                    fix: Some("do this".into()),
                })
                .collect(),
            records: records.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn raised_resolved_changed_and_unknown_only_after_two() {
        let s = WatchSettings::default();
        let before = state(
            &[("dkim-cname-missing", "t1._domainkey.example.com", "error")],
            &[
                ("_dmarc.example.com TXT", "v=DMARC1; p=reject"),
                ("mail.example.com MX", "10 feedback-smtp.us-east-1.amazonses.com"),
            ],
        );
        let after = state(
            &[("mail-from-mx-missing", "mail.example.com", "error")],
            &[("_dmarc.example.com TXT", "v=DMARC1; p=none"), ("mail.example.com MX", "(none)")],
        );
        let c = compare("example.com", Some(&before), &BTreeMap::new(), &after, &BTreeSet::new(), &s, 1000);
        let kinds: Vec<&str> = c.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["finding-raised", "finding-resolved", "record-changed", "record-changed"]);
        let dmarc = c.events.iter().find(|e| e.subject.as_deref() == Some("_dmarc.example.com TXT")).unwrap();
        assert_eq!(dmarc.severity, Severity::Error, "p=reject → p=none is news: {dmarc:?}");
        assert_eq!(c.closed, ["finding-raised dkim-cname-missing t1._domainkey.example.com"]);

        // A lookup failing once is not news; twice is; a finding whose record failed is
        // neither raised nor resolved.
        let failed: BTreeSet<String> = ["mail.example.com MX".to_string()].into();
        let mut partial = after.clone();
        partial.findings.clear();
        partial.records.remove("mail.example.com MX");
        let once = compare("example.com", Some(&after), &BTreeMap::new(), &partial, &failed, &s, 2000);
        assert!(once.events.is_empty(), "{:?}", once.events);
        let twice = compare("example.com", Some(&partial), &once.failures, &partial, &failed, &s, 3000);
        assert_eq!(twice.events.len(), 1);
        assert_eq!(twice.events[0].kind, EventKind::DnsUnknown);
        let thrice = compare("example.com", Some(&partial), &twice.failures, &partial, &failed, &s, 4000);
        assert!(thrice.events.is_empty(), "raised once");
        let back = compare("example.com", Some(&partial), &thrice.failures, &after, &BTreeSet::new(), &s, 5000);
        assert!(back.closed.iter().any(|p| p.starts_with("dns-unknown")), "{:?}", back.closed);
        assert!(back.failures.is_empty());
    }

    #[test]
    fn a_first_check_raises_what_is_wrong_but_changes_nothing() {
        let now = state(&[("dmarc-missing", "_dmarc.example.com", "error")], &[("example.com TXT", "v=spf1 -all")]);
        let c = compare("example.com", None, &BTreeMap::new(), &now, &BTreeSet::new(), &WatchSettings::default(), 1);
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.events[0].kind, EventKind::FindingRaised);
        assert_eq!(c.opened.len(), 1);
    }

    #[test]
    fn policy_ranks() {
        assert!(policy_rank("v=DMARC1; p=reject") > policy_rank("v=DMARC1; p=quarantine"));
        assert!(policy_rank("v=DMARC1; p=none") > policy_rank("(none)"));
    }
}
