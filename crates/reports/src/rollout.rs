//! When p=none can become quarantine, then reject: from the published record and the
//! evidence in the reports, the current stage, whether the next one is safe, every blocker
//! in numbers, and the exact next record. Steps follow RFC 9989 §7.4 pacing with `t=y`
//! (testing) stages: none → quarantine (t=y) → quarantine → reject (t=y) → reject.

use crate::classify::SourceKind;
use crate::summary::Summary;
use serde::Serialize;
use ses_dmarc_records::DmarcRecord;
use ses_dmarc_records::dmarc::Policy;

/// What the reports must show before a stricter policy is advised.
#[derive(Debug, Clone, Copy)]
pub struct Criteria {
    /// Days of reports needed (default 14).
    pub min_days: u32,
    /// DMARC pass rate every legitimate source needs (default 0.98).
    pub min_pass_rate: f64,
    /// A source first seen within this many days blocks the next step (default 7).
    pub quiet_days: i64,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria { min_days: 14, min_pass_rate: 0.98, quiet_days: 7 }
    }
}

/// One thing that stands in the way of the next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// Stable code (`no-rua`, `too-few-days`, `source-not-aligned`, `new-source`, ...).
    pub code: &'static str,
    /// What stands in the way, in numbers, and what to do.
    pub message: String,
}

/// Rollout advice for a domain: where its policy stands and whether to go on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// The domain.
    pub domain: String,
    /// The DMARC record published now.
    pub current_record: Option<String>,
    /// `none`, `quarantine-testing`, `quarantine`, `reject-testing`, `reject`, or `no-record`.
    pub stage: &'static str,
    /// True when nothing blocks the next step.
    pub ready: bool,
    /// What stands in the way (empty when ready).
    pub blockers: Vec<Blocker>,
    /// The record to publish next, when there is a next step.
    pub next_record: Option<String>,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Advises the next step. `now` is seconds since 1970.
pub fn advise(domain: &str, current: Option<&str>, summary: &Summary, now: i64, criteria: Criteria) -> Rollout {
    let parsed = current.and_then(|t| DmarcRecord::parse(t).value);
    let Some(record) = parsed else {
        return Rollout {
            domain: domain.to_string(),
            current_record: current.map(str::to_string),
            stage: "no-record",
            ready: false,
            blockers: vec![Blocker {
                code: "no-record",
                message: format!(
                    "{domain} publishes no DMARC record: start with `v=DMARC1; p=none; rua=mailto:...` (ses-dmarc plan)"
                ),
            }],
            next_record: None,
        };
    };
    let testing = record.testing == Some(true);
    let policy = record.policy.unwrap_or(Policy::None);
    let stage = match (policy, testing) {
        (Policy::None, _) => "none",
        (Policy::Quarantine, true) => "quarantine-testing",
        (Policy::Quarantine, false) => "quarantine",
        (Policy::Reject, true) => "reject-testing",
        (Policy::Reject, false) => "reject",
    };
    let mut next = record.clone();
    let next_step = match stage {
        "none" => Some((Policy::Quarantine, true)),
        "quarantine-testing" => Some((Policy::Quarantine, false)),
        "quarantine" => Some((Policy::Reject, true)),
        "reject-testing" => Some((Policy::Reject, false)),
        _ => None,
    };
    let mut blockers = Vec::new();
    if next_step.is_none() {
        // p=reject is the last step: nothing blocks it, whatever the evidence; keep watching.
        return Rollout {
            domain: domain.to_string(),
            current_record: current.map(str::to_string),
            stage,
            ready: false,
            blockers,
            next_record: None,
        };
    }
    if record.rua.is_empty() {
        blockers.push(Blocker {
            code: "no-rua",
            message: "the record has no rua: no reports arrive, so nothing can show it is safe".into(),
        });
    }
    if summary.days < criteria.min_days {
        blockers.push(Blocker {
            code: "too-few-days",
            message: format!("only {} days of reports; {} are needed", summary.days, criteria.min_days),
        });
    }
    for s in &summary.sources {
        let legitimate = matches!(s.kind, Some(SourceKind::AmazonSes) | Some(SourceKind::Known));
        if !legitimate || s.messages == 0 {
            continue;
        }
        let rate = Summary::rate(s.dmarc_pass, s.messages);
        if rate < criteria.min_pass_rate {
            blockers.push(Blocker {
                code: "source-not-aligned",
                message: format!(
                    "source {}: {:.1}% of {} messages not aligned (need at least {:.0}% passing)",
                    s.source,
                    (1.0 - rate) * 100.0,
                    thousands(s.messages),
                    criteria.min_pass_rate * 100.0
                ),
            });
        }
        let age_days = (now - s.first_seen).div_euclid(86_400);
        if age_days < criteria.quiet_days {
            blockers.push(Blocker {
                code: "new-source",
                message: format!(
                    "new source {} first seen {age_days} days ago (wait until it is {} days old)",
                    s.source, criteria.quiet_days
                ),
            });
        }
    }
    if let Some((Policy::Reject, _)) = next_step {
        let legit: u64 = summary
            .sources
            .iter()
            .filter(|s| matches!(s.kind, Some(SourceKind::AmazonSes) | Some(SourceKind::Known)))
            .map(|s| s.messages)
            .sum();
        let dkim: u64 = summary
            .sources
            .iter()
            .filter(|s| matches!(s.kind, Some(SourceKind::AmazonSes) | Some(SourceKind::Known)))
            .map(|s| s.dkim_aligned)
            .sum();
        if legit > 0 && Summary::rate(dkim, legit) < criteria.min_pass_rate {
            blockers.push(Blocker {
                code: "reject-needs-dkim",
                message: format!(
                    "only {:.1}% of legitimate mail is DKIM-aligned: RFC 9989 §7.4 says a domain publishing reject must sign with DKIM, not rely on SPF alone",
                    Summary::rate(dkim, legit) * 100.0
                ),
            });
        }
    }
    let next_record = next_step.map(|(p, t)| {
        next.policy = Some(p);
        next.testing = if t { Some(true) } else { None };
        next.pct = None;
        next.to_string()
    });
    Rollout {
        domain: domain.to_string(),
        current_record: current.map(str::to_string),
        stage,
        ready: blockers.is_empty() && next_record.is_some(),
        blockers,
        next_record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::SourceSummary;

    const DAY: i64 = 86_400;

    fn summary(days: u32, sources: Vec<SourceSummary>) -> Summary {
        Summary { domain: "example.com".into(), days, sources, ..Default::default() }
    }

    fn source(name: &str, kind: SourceKind, messages: u64, pass: u64, dkim: u64, first_seen: i64) -> SourceSummary {
        SourceSummary {
            source: name.into(),
            kind: Some(kind),
            messages,
            dmarc_pass: pass,
            dkim_aligned: dkim,
            first_seen,
            ..Default::default()
        }
    }

    #[test]
    fn ready_to_move_on() {
        let now = 100 * DAY;
        let s = summary(
            30,
            vec![
                source("Amazon SES", SourceKind::AmazonSes, 12_400, 12_400, 12_400, 10 * DAY),
                source("203.0.113.9", SourceKind::Unknown, 50, 0, 0, 95 * DAY),
            ],
        );
        let r = advise("example.com", Some("v=DMARC1; p=none; rua=mailto:d@example.com"), &s, now, Criteria::default());
        assert_eq!((r.stage, r.ready), ("none", true), "{:?}", r.blockers);
        assert_eq!(r.next_record.as_deref(), Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com; t=y"));
        let r = advise("example.com", r.next_record.as_deref(), &s, now, Criteria::default());
        assert_eq!(r.next_record.as_deref(), Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"));
        let r =
            advise("example.com", Some("v=DMARC1; p=reject; rua=mailto:d@example.com"), &s, now, Criteria::default());
        assert_eq!((r.stage, r.next_record), ("reject", None));
        // At reject with hardly any evidence: done, not blocked.
        let thin = summary(1, vec![source("203.0.113.9", SourceKind::Unknown, 3, 0, 0, 99 * DAY)]);
        let r = advise("example.com", Some("v=DMARC1; p=reject"), &thin, now, Criteria::default());
        assert_eq!((r.stage, r.ready, r.blockers.len()), ("reject", false, 0));
    }

    #[test]
    fn blockers_in_numbers() {
        let now = 100 * DAY;
        let s = summary(
            9,
            vec![
                source("Amazon SES", SourceKind::AmazonSes, 12_400, 12_016, 0, 10 * DAY),
                source("SendGrid", SourceKind::Known, 300, 300, 300, 98 * DAY),
            ],
        );
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"),
            &s,
            now,
            Criteria::default(),
        );
        let msgs: Vec<&str> = r.blockers.iter().map(|b| b.message.as_str()).collect();
        assert!(!r.ready);
        assert!(msgs.contains(&"only 9 days of reports; 14 are needed"), "{msgs:?}");
        assert!(
            msgs.contains(&"source Amazon SES: 3.1% of 12,400 messages not aligned (need at least 98% passing)"),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.starts_with("new source SendGrid first seen 2 days ago")));
        assert!(r.blockers.iter().any(|b| b.code == "reject-needs-dkim"));
        let none = advise("example.com", None, &s, now, Criteria::default());
        assert_eq!((none.stage, none.blockers[0].code), ("no-record", "no-record"));
        assert!(
            advise("example.com", Some("v=DMARC1; p=none"), &s, now, Criteria::default())
                .blockers
                .iter()
                .any(|b| b.code == "no-rua")
        );
    }
}
