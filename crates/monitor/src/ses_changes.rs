//! What SES says that a watch compares between checks, per region: the identity (one line
//! of text) and the account (production access, sending, enforcement status, and the
//! bounce and complaint rates' levels, with hysteresis so that a rate hovering at a
//! threshold does not flap); each change becomes a `ses-status-changed` event. Pure.
//!
//! Stored as one map: region → the identity's line, and `account:<region>` → the
//! account's facts as JSON ([`AccountFacts`]).

use crate::events::{Event, EventKind, Severity};
use serde::{Deserialize, Serialize};
use ses_dmarc_ses::account::{AccountStatus, BOUNCE, COMPLAINT, RateLevel, RateThresholds, percent};
use std::collections::BTreeMap;

/// How far below a threshold (a fraction of it) a rate must fall before its level drops.
pub const HYSTERESIS: f64 = 0.1;

/// The key of a region's account facts in the stored map.
pub fn account_key(region: &str) -> String {
    format!("account:{region}")
}

/// The level of `rate` given the level the previous check left: the rate rises into a
/// level as soon as it reaches the level's threshold, and leaves a level only once it is
/// below that threshold by [`HYSTERESIS`] of it. A bounce rate at 5% is `review`; back at
/// 4.6% it stays `review`, at 4.4% it is `near`.
pub fn level_with_hysteresis(t: &RateThresholds, rate: f64, previous: Option<RateLevel>) -> RateLevel {
    let raw = t.level(rate);
    let Some(mut level) = previous else { return raw };
    if raw >= level {
        return raw;
    }
    while level > raw && rate < t.start_of(level) * (1.0 - HYSTERESIS) {
        level = level.below();
    }
    level
}

/// A rate as the watch remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateFact {
    /// The latest value, a fraction.
    pub rate: f64,
    /// Its level, with hysteresis.
    pub level: RateLevel,
}

/// The account in a region, as the watch remembers it. A fact that could not be had this
/// time keeps its last known value, so that "unknown" is never a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountFacts {
    /// Production access (true) or the sandbox.
    pub production_access: Option<bool>,
    /// Sending enabled (true) or paused.
    pub sending_enabled: Option<bool>,
    /// HEALTHY, PROBATION, SHUTDOWN.
    pub enforcement_status: Option<String>,
    /// The account's bounce rate.
    pub bounce: Option<RateFact>,
    /// The account's complaint rate.
    pub complaint: Option<RateFact>,
}

/// The facts of `status`, the levels given the previous check's, unknowns carried over.
pub fn account_facts(status: &AccountStatus, previous: Option<&AccountFacts>) -> AccountFacts {
    let before = previous.cloned().unwrap_or_default();
    let rate = |t: &RateThresholds, now: Option<f64>, then: Option<RateFact>| match now {
        Some(r) => Some(RateFact { rate: r, level: level_with_hysteresis(t, r, then.map(|f| f.level)) }),
        None => then,
    };
    AccountFacts {
        production_access: status.production_access.or(before.production_access),
        sending_enabled: status.sending_enabled.or(before.sending_enabled),
        enforcement_status: status.enforcement_status.clone().or(before.enforcement_status),
        bounce: rate(&BOUNCE, status.bounce_rate, before.bounce),
        complaint: rate(&COMPLAINT, status.complaint_rate, before.complaint),
    }
}

fn event(
    domain: &str,
    region: &str,
    severity: Severity,
    message: String,
    before: String,
    after: String,
    at: i64,
) -> Event {
    let mut e = Event::new(at, Some(domain), EventKind::SesStatusChanged, severity, message);
    e.subject = Some(region.to_string());
    e.before = Some(before);
    e.after = Some(after);
    e.fix = Some(format!("`ses-dmarc ses account --region {region}` says what each state means and what to do"));
    e
}

fn rate_event(
    domain: &str,
    region: &str,
    t: &RateThresholds,
    before: Option<RateFact>,
    after: Option<RateFact>,
    at: i64,
) -> Option<Event> {
    let (Some(b), Some(a)) = (before, after) else { return None };
    if a.level == b.level {
        return None;
    }
    let shown = format!("{} ({})", a.level.as_str(), percent(a.rate));
    let then = format!("{} ({})", b.level.as_str(), percent(b.rate));
    let (severity, what) = if a.level > b.level {
        let severity = match a.level {
            RateLevel::Pause => Severity::Error,
            RateLevel::Review => Severity::Error,
            _ => Severity::Warning,
        };
        let what = match a.level {
            RateLevel::Pause => format!("reached {}, where AWS may pause the account's sending", percent(t.pause)),
            RateLevel::Review => format!("reached AWS's review threshold of {}", percent(t.review)),
            _ => format!("passed {}, on its way to AWS's review threshold of {}", percent(t.near), percent(t.review)),
        };
        (severity, what)
    } else {
        (Severity::Info, format!("fell back to {}", a.level.as_str()))
    };
    Some(event(
        domain,
        region,
        severity,
        format!("SES account in {region}: the {} rate {} {what} (was {then})", t.name, percent(a.rate)),
        then,
        shown,
        at,
    ))
}

/// The events between two checks' account facts in `region`.
pub fn account_events(domain: &str, region: &str, before: &AccountFacts, after: &AccountFacts, at: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let text = |b: Option<bool>, yes: &str, no: &str| match b {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => "unknown".to_string(),
    };
    if let (Some(b), Some(a)) = (before.production_access, after.production_access)
        && a != b
    {
        let (severity, message) = if a {
            (
                Severity::Info,
                format!("SES account in {region}: production access granted; mail may now go to any address"),
            )
        } else {
            (
                Severity::Error,
                format!("SES account in {region}: back in the sandbox; mail goes only to verified addresses"),
            )
        };
        let t = |v| text(Some(v), "production", "sandbox");
        out.push(event(domain, region, severity, message, t(b), t(a), at));
    }
    if let (Some(b), Some(a)) = (before.sending_enabled, after.sending_enabled)
        && a != b
    {
        let (severity, message) = if a {
            (Severity::Info, format!("SES account in {region}: sending resumed"))
        } else {
            (Severity::Error, format!("SES account in {region}: sending paused; SES refuses every message there"))
        };
        let t = |v| text(Some(v), "sending enabled", "sending paused");
        out.push(event(domain, region, severity, message, t(b), t(a), at));
    }
    if let (Some(b), Some(a)) = (&before.enforcement_status, &after.enforcement_status)
        && a != b
    {
        let severity = match a.as_str() {
            "SHUTDOWN" => Severity::Error,
            "PROBATION" => Severity::Warning,
            _ => Severity::Info,
        };
        let meaning = match a.as_str() {
            "SHUTDOWN" => ": AWS paused the account's sending",
            "PROBATION" => ": AWS placed the account under review",
            "HEALTHY" => ": no reputation issue",
            _ => "",
        };
        out.push(event(
            domain,
            region,
            severity,
            format!("SES account in {region}: enforcement status {b} → {a}{meaning}"),
            b.clone(),
            a.clone(),
            at,
        ));
    }
    out.extend(rate_event(domain, region, &BOUNCE, before.bounce, after.bounce, at));
    out.extend(rate_event(domain, region, &COMPLAINT, before.complaint, after.complaint, at));
    out
}

/// Applies hysteresis and carries unknowns over: the account entries of `now` (as read,
/// levels without history) made relative to `previous`. The identity lines are untouched.
pub fn settle(now: &mut BTreeMap<String, String>, previous: Option<&BTreeMap<String, String>>) {
    for (key, value) in now.iter_mut() {
        if !key.starts_with("account:") {
            continue;
        }
        let before: Option<AccountFacts> = previous.and_then(|p| p.get(key)).and_then(|t| serde_json::from_str(t).ok());
        let Ok(raw) = serde_json::from_str::<AccountFacts>(value) else { continue };
        let status = AccountStatus {
            production_access: raw.production_access,
            sending_enabled: raw.sending_enabled,
            enforcement_status: raw.enforcement_status,
            bounce_rate: raw.bounce.map(|r| r.rate),
            complaint_rate: raw.complaint.map(|r| r.rate),
            ..Default::default()
        };
        let settled = account_facts(&status, before.as_ref());
        *value = serde_json::to_string(&settled).unwrap_or_default();
    }
    // An account entry that could not be read this time keeps the last one.
    if let Some(p) = previous {
        for (key, value) in p.iter().filter(|(k, _)| k.starts_with("account:")) {
            now.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

/// The `ses-status-changed` events between two checks' SES facts.
pub fn ses_events(
    domain: &str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    at: i64,
) -> Vec<Event> {
    let mut out = Vec::new();
    for (key, now_text) in after {
        let Some(then) = before.get(key) else { continue };
        if then == now_text {
            continue;
        }
        if let Some(region) = key.strip_prefix("account:") {
            let (Ok(b), Ok(a)) =
                (serde_json::from_str::<AccountFacts>(then), serde_json::from_str::<AccountFacts>(now_text))
            else {
                continue;
            };
            out.extend(account_events(domain, region, &b, &a, at));
            continue;
        }
        let region = key;
        let worse = ["FAILED", "TEMPORARY_FAILURE", "PENDING", "not an identity", "signing off"]
            .iter()
            .any(|w| now_text.contains(w) && !then.contains(w));
        let mut e = Event::new(
            at,
            Some(domain),
            EventKind::SesStatusChanged,
            if worse { Severity::Error } else { Severity::Info },
            format!("SES {region}: {then} → {now_text}"),
        );
        e.subject = Some(region.clone());
        e.before = Some(then.clone());
        e.after = Some(now_text.clone());
        e.fix = Some(format!("`ses-dmarc ses status {domain} --region {region}` says what each state means"));
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_keeps_a_level_until_the_rate_is_clearly_below() {
        let h = |rate, prev| level_with_hysteresis(&BOUNCE, rate, prev);
        // Without history: the plain level.
        assert_eq!(h(0.051, None), RateLevel::Review);
        // Rising: at once.
        assert_eq!(h(0.05, Some(RateLevel::Near)), RateLevel::Review);
        assert_eq!(h(0.11, Some(RateLevel::Ok)), RateLevel::Pause);
        // Falling just below the threshold: kept.
        assert_eq!(h(0.049, Some(RateLevel::Review)), RateLevel::Review);
        assert_eq!(h(0.0451, Some(RateLevel::Review)), RateLevel::Review);
        // Clearly below (under 4.5%): down one level, or more when far below.
        assert_eq!(h(0.044, Some(RateLevel::Review)), RateLevel::Near);
        assert_eq!(h(0.001, Some(RateLevel::Pause)), RateLevel::Ok);
        assert_eq!(h(0.095, Some(RateLevel::Pause)), RateLevel::Pause);
        assert_eq!(h(0.085, Some(RateLevel::Pause)), RateLevel::Review);
        // Complaints: the same rule at their thresholds.
        assert_eq!(level_with_hysteresis(&COMPLAINT, 0.00095, Some(RateLevel::Review)), RateLevel::Review);
        assert_eq!(level_with_hysteresis(&COMPLAINT, 0.00085, Some(RateLevel::Review)), RateLevel::Near);
    }

    #[test]
    fn a_rate_hovering_at_the_threshold_is_one_event() {
        let mut previous: Option<BTreeMap<String, String>> = None;
        let mut events = Vec::new();
        for (i, rate) in [0.03, 0.051, 0.049, 0.0505, 0.048, 0.052, 0.040, 0.041].iter().enumerate() {
            let raw = AccountFacts {
                production_access: Some(true),
                sending_enabled: Some(true),
                enforcement_status: Some("HEALTHY".into()),
                bounce: Some(RateFact { rate: *rate, level: BOUNCE.level(*rate) }),
                complaint: None,
            };
            let mut now: BTreeMap<String, String> =
                [(account_key("eu-west-1"), serde_json::to_string(&raw).unwrap())].into();
            settle(&mut now, previous.as_ref());
            if let Some(p) = &previous {
                events.extend(ses_events("example.com", p, &now, i as i64));
            }
            previous = Some(now);
        }
        let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("bounce rate 5.10% reached AWS's review threshold of 5.00%"), "{messages:?}");
        assert_eq!(events[0].severity, Severity::Error);
        assert!(messages[1].contains("fell back to near"), "{messages:?}");
        assert_eq!(events[1].severity, Severity::Info);
    }

    #[test]
    fn sandbox_to_production_paused_and_enforcement_are_events_and_unknown_is_none() {
        let before = AccountFacts {
            production_access: Some(false),
            sending_enabled: Some(true),
            enforcement_status: Some("HEALTHY".into()),
            ..Default::default()
        };
        let after = AccountFacts {
            production_access: Some(true),
            sending_enabled: Some(false),
            enforcement_status: Some("SHUTDOWN".into()),
            ..Default::default()
        };
        let events = account_events("example.com", "us-east-1", &before, &after, 0);
        let got: Vec<(Severity, &str)> = events.iter().map(|e| (e.severity, e.message.as_str())).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].1.contains("production access granted") && got[0].0 == Severity::Info);
        assert!(got[1].1.contains("sending paused") && got[1].0 == Severity::Error);
        assert!(got[2].1.contains("HEALTHY → SHUTDOWN") && got[2].0 == Severity::Error);
        assert_eq!(events[0].before.as_deref(), Some("sandbox"));
        assert_eq!(events[0].after.as_deref(), Some("production"));

        // A check where GetAccount failed: the facts carry over, nothing is news.
        let unknown = AccountStatus::default();
        let carried = account_facts(&unknown, Some(&after));
        assert_eq!(carried, after);
        assert!(account_events("example.com", "us-east-1", &after, &carried, 0).is_empty());
    }
}
