//! What the stored reports say that is news: a sender not seen before failing DMARC, a
//! pass rate that fell, reports that stopped coming. Pure: the summaries in, events out.

use crate::config::WatchSettings;
use crate::events::{Event, EventKind, Severity};
use ses_dmarc_reports::summary::Summary;
use std::collections::BTreeSet;

/// The marker stored among a domain's known sources once its first reports were taken as
/// the baseline (so that a later first sighting is news, not baseline).
pub const BASELINE: &str = "(baseline)";

/// What the watch knows about a domain's reports.
#[derive(Debug, Clone)]
pub struct ReportFacts<'a> {
    /// The last 7 days.
    pub current: &'a Summary,
    /// The 7 days before them.
    pub previous: &'a Summary,
    /// When the newest aggregate report ends.
    pub latest_report_end: Option<i64>,
    /// Whether the published DMARC record asks for aggregate reports (`rua`).
    pub asks_for_reports: bool,
    /// When the domain started being watched.
    pub watched_since: i64,
}

/// The report events of one pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportChanges {
    /// New events.
    pub events: Vec<Event>,
    /// Problems opened: (key, event id).
    pub opened: Vec<(String, String)>,
    /// Problems that went away.
    pub closed: Vec<String>,
    /// Sources now known.
    pub known: Vec<String>,
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// Compares the report facts with what is known and open.
pub fn report_events(
    domain: &str,
    facts: &ReportFacts<'_>,
    known: &BTreeSet<String>,
    open: &BTreeSet<String>,
    settings: &WatchSettings,
    at: i64,
) -> ReportChanges {
    let mut c = ReportChanges::default();
    // New sources.
    if known.is_empty() {
        if !facts.current.sources.is_empty() {
            c.known.push(BASELINE.into());
            c.known.extend(facts.current.sources.iter().map(|s| s.source.clone()));
        }
    } else {
        for s in &facts.current.sources {
            if known.contains(&s.source) {
                continue;
            }
            let failing = s.messages.saturating_sub(s.dmarc_pass);
            if failing >= settings.new_source_min_failing {
                let mut e = Event::new(
                    at,
                    Some(domain),
                    EventKind::NewSource,
                    Severity::Warning,
                    format!(
                        "a new source sends as {domain}: {} ({} of {} messages failing DMARC in the last 7 days)",
                        s.source, failing, s.messages
                    ),
                );
                e.subject = Some(s.source.clone());
                e.fix = Some(format!(
                    "if it is yours, align it (custom MAIL FROM or DKIM for {domain}); if not, it is spoofing that p=quarantine or p=reject stops (`ses-dmarc rollout {domain}`)"
                ));
                c.known.push(s.source.clone());
                c.events.push(e);
            } else if s.messages > 0 && failing == 0 {
                c.known.push(s.source.clone());
            }
        }
    }
    // The pass rate.
    let key = format!("{} {} ", EventKind::PassRateDropped.as_str(), EventKind::PassRateDropped.as_str());
    let cur = facts.current;
    if cur.messages >= settings.pass_rate_min_messages {
        let rate = Summary::rate(cur.dmarc_pass, cur.messages);
        let prev = facts.previous;
        let drop = (prev.messages >= settings.pass_rate_min_messages)
            .then(|| Summary::rate(prev.dmarc_pass, prev.messages) - rate)
            .filter(|d| *d >= settings.pass_rate_drop);
        let low = rate < settings.pass_rate_min;
        if low || drop.is_some() {
            if !open.contains(&key) {
                let why = match drop {
                    Some(d) => format!("down {:.1} points from the 7 days before", d * 100.0),
                    None => format!("below {}", pct(settings.pass_rate_min)),
                };
                let mut e = Event::new(
                    at,
                    Some(domain),
                    EventKind::PassRateDropped,
                    Severity::Warning,
                    format!(
                        "DMARC pass rate of {domain} over the last 7 days: {} of {} messages ({}), {why}",
                        cur.dmarc_pass,
                        cur.messages,
                        pct(rate)
                    ),
                );
                e.fix = Some(format!("`ses-dmarc reports summary {domain} --days 7` shows which sources fail"));
                c.opened.push((key.clone(), e.id.clone()));
                c.events.push(e);
            }
        } else if open.contains(&key) {
            c.closed.push(key.clone());
        }
    }
    // Reports that stopped coming.
    let key = format!("{} {} ", EventKind::ReportsMissing.as_str(), EventKind::ReportsMissing.as_str());
    let window = i64::from(settings.reports_missing_days) * 86_400;
    let last = facts.latest_report_end.unwrap_or(facts.watched_since);
    let missing = facts.asks_for_reports && at - last > window && at - facts.watched_since > window;
    if missing && !open.contains(&key) {
        let since = match facts.latest_report_end {
            Some(t) => format!("the last one ended {}", crate::schedule::rfc3339(t)),
            None => "none has arrived since it is watched".to_string(),
        };
        let mut e = Event::new(
            at,
            Some(domain),
            EventKind::ReportsMissing,
            Severity::Warning,
            format!(
                "no aggregate report for {domain} in {} days although its DMARC record has rua; {since}",
                settings.reports_missing_days
            ),
        );
        e.fix = Some(
            "check the rua mailbox and the intake (`ses-dmarc intake run`), and that an external rua destination authorized the reports".into(),
        );
        c.opened.push((key.clone(), e.id.clone()));
        c.events.push(e);
    } else if !missing && open.contains(&key) {
        c.closed.push(key);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use ses_dmarc_reports::summary::SourceSummary;

    fn summary(sources: &[(&str, u64, u64)]) -> Summary {
        Summary {
            messages: sources.iter().map(|s| s.1).sum(),
            dmarc_pass: sources.iter().map(|s| s.2).sum(),
            sources: sources
                .iter()
                .map(|(n, m, p)| SourceSummary {
                    source: n.to_string(),
                    messages: *m,
                    dmarc_pass: *p,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn new_sources_pass_rates_and_missing_reports() {
        let s = WatchSettings::default();
        let empty = summary(&[]);
        let first = summary(&[("Amazon SES", 500, 500), ("198.51.100.7", 40, 0)]);
        let facts = ReportFacts {
            current: &first,
            previous: &empty,
            latest_report_end: Some(990),
            asks_for_reports: true,
            watched_since: 0,
        };
        let c = report_events("example.com", &facts, &BTreeSet::new(), &BTreeSet::new(), &s, 1000);
        assert!(c.events.is_empty(), "the first reports are the baseline: {:?}", c.events);
        assert!(c.known.contains(&BASELINE.to_string()));
        let known: BTreeSet<String> = c.known.into_iter().collect();
        let later = summary(&[("Amazon SES", 500, 495), ("203.0.113.9", 30, 0), ("192.0.2.44", 5, 0)]);
        let facts = ReportFacts {
            current: &later,
            previous: &first,
            latest_report_end: Some(2000),
            asks_for_reports: true,
            watched_since: 0,
        };
        let c = report_events("example.com", &facts, &known, &BTreeSet::new(), &s, 2000);
        let kinds: Vec<&str> = c.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["new-source"], "five failing messages are not news yet: {kinds:?}");
        // A rate below 90%: raised once, closed when back.
        let bad = summary(&[("Amazon SES", 100, 50), ("x", 100, 100)]);
        let facts = ReportFacts {
            current: &bad,
            previous: &empty,
            latest_report_end: Some(3000),
            asks_for_reports: true,
            watched_since: 0,
        };
        let c = report_events("example.com", &facts, &known, &BTreeSet::new(), &s, 3000);
        assert_eq!(c.events[0].kind, EventKind::PassRateDropped);
        let open: BTreeSet<String> = c.opened.iter().map(|(k, _)| k.clone()).collect();
        let again = report_events("example.com", &facts, &known, &open, &s, 3100);
        assert!(again.events.iter().all(|e| e.kind != EventKind::PassRateDropped), "raised once");
        let good = summary(&[("Amazon SES", 200, 200)]);
        let facts = ReportFacts {
            current: &good,
            previous: &bad,
            latest_report_end: Some(4000),
            asks_for_reports: true,
            watched_since: 0,
        };
        assert_eq!(report_events("example.com", &facts, &known, &open, &s, 4000).closed.len(), 1);
        // Reports missing after 3 days, only when the record asks for them.
        let facts = ReportFacts {
            current: &empty,
            previous: &empty,
            latest_report_end: Some(0),
            asks_for_reports: true,
            watched_since: 0,
        };
        let c = report_events("example.com", &facts, &known, &BTreeSet::new(), &s, 4 * 86_400);
        assert_eq!(c.events[0].kind, EventKind::ReportsMissing);
        let no_rua = ReportFacts { asks_for_reports: false, ..facts };
        assert!(report_events("example.com", &no_rua, &known, &BTreeSet::new(), &s, 4 * 86_400).events.is_empty());
    }
}
