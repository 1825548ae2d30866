//! What the watch has found, as the command line (`watch list`, `watch history`) and the
//! server (pages and `/api/v1`) both show it: one query per view, so the two never
//! disagree.

use crate::diff::WatchState;
use crate::events::Event;
use crate::schedule::rfc3339;
use serde::Serialize;
use ses_dmarc_ops::OpsError;
use ses_dmarc_ops::reports::summary_between;
use ses_dmarc_reports::rollout::{Criteria, Rollout, Standing, advise};
use ses_dmarc_reports::summary::{DayTotals, Summary};
use ses_dmarc_store::{Database, StoreError, WatchedDomain};

/// Days of reports the rollout advice and the dashboard's figures weigh.
pub const REPORT_DAYS: i64 = 30;

/// One watched domain as `watch list --format json` and `GET /api/v1/domains` give it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainListing {
    /// The domain.
    pub domain: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was last checked (RFC 3339).
    pub last_checked: Option<String>,
    /// How many checks were run for it.
    pub checks: i64,
    /// Whether SES mail passes DMARC at the last check (null: unknown or never checked).
    pub verdict: Option<bool>,
    /// The verdict in one sentence.
    pub reason: Option<String>,
    /// Error findings at the last check.
    pub errors: usize,
    /// Warning findings at the last check.
    pub warnings: usize,
    /// The identity's MAIL FROM and DKIM come from SES at each check.
    pub from_ses: bool,
    /// `cli` (`watch add`), `config` (`[[domain]]`) or `api` (the dashboard, the API).
    pub source: String,
    /// When it is next due (RFC 3339).
    pub next_due: String,
    /// The rollout stage at the last check (`none`, `quarantine`, ...), when reports exist.
    pub rollout_stage: Option<String>,
    /// The rollout status at the last check (`ready`, `blocked`, `step-back`, `done`).
    pub rollout_status: Option<String>,
}

impl DomainListing {
    fn of(w: &WatchedDomain, state: Option<&ses_dmarc_store::DomainState>) -> DomainListing {
        let judged: Option<WatchState> = state.and_then(|s| serde_json::from_str(&s.judgement).ok());
        let standing: Option<Standing> =
            state.and_then(|s| s.rollout.as_deref()).and_then(|t| serde_json::from_str(t).ok());
        DomainListing {
            domain: w.domain.clone(),
            tags: w.tags.clone(),
            last_checked: w.last_checked.map(rfc3339),
            checks: w.checks,
            verdict: judged.as_ref().and_then(|s| s.verdict),
            reason: judged.as_ref().map(|s| s.reason.clone()).filter(|r| !r.is_empty()),
            errors: judged.as_ref().map(|s| s.errors).unwrap_or(0),
            warnings: judged.as_ref().map(|s| s.warnings).unwrap_or(0),
            from_ses: w.from_ses,
            source: w.source.clone(),
            next_due: rfc3339(w.next_due),
            rollout_stage: standing.as_ref().map(|s| json_name(&s.stage)),
            rollout_status: standing.as_ref().map(|s| json_name(&s.status)),
        }
    }

    /// Whether a user limited to `tags` may see the domain (no tags: every domain).
    pub fn visible_to(&self, tags: &[String]) -> bool {
        tags.is_empty() || self.tags.iter().any(|t| tags.contains(t))
    }
}

/// A unit enum's JSON name (`step-back`).
fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Every watched domain with its last verdict, by name.
pub async fn listing(db: &Database) -> Result<Vec<DomainListing>, StoreError> {
    let rows = db.run(|s| s.watched_with_state()).await?;
    Ok(rows.iter().map(|(w, state)| DomainListing::of(w, state.as_ref())).collect())
}

/// One watched domain's listing, if it is watched.
pub async fn listing_of(db: &Database, domain: &str) -> Result<Option<DomainListing>, StoreError> {
    let d = domain.to_string();
    let found = db.run(move |s| Ok(s.watched(&d)?.map(|w| (w, s.domain_state(&d))))).await?;
    match found {
        None => Ok(None),
        Some((w, state)) => Ok(Some(DomainListing::of(&w, state?.as_ref()))),
    }
}

/// One snapshot of a domain's DNS answers in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotSpan {
    /// The digest of its normalised answers.
    pub digest: String,
    /// When these answers were first seen (RFC 3339).
    pub first_seen: String,
    /// When they were last seen.
    pub last_seen: String,
}

/// A domain's timeline as `watch history --format json` and the API give it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// The domain.
    pub domain: String,
    /// Its events, oldest first.
    pub events: Vec<Event>,
    /// The distinct snapshots of its DNS answers, oldest first.
    pub snapshots: Vec<SnapshotSpan>,
}

/// A domain's events since `since` (at most `limit`, the newest) and its snapshots.
pub async fn history(db: &Database, domain: &str, since: i64, limit: i64) -> Result<History, StoreError> {
    let d = domain.to_string();
    let (events, snapshots) = db.run(move |s| Ok((s.events(Some(&d), since, limit)?, s.snapshot_history(&d)?))).await?;
    Ok(History {
        domain: domain.to_string(),
        events: events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect(),
        snapshots: snapshots
            .into_iter()
            .map(|(digest, first, last)| SnapshotSpan { digest, first_seen: rfc3339(first), last_seen: rfc3339(last) })
            .collect(),
    })
}

/// Events of every domain (or one), of the given kinds (none: all), since `since`, at most
/// `limit` (the newest), oldest first.
pub async fn events(
    db: &Database,
    domain: Option<&str>,
    kinds: &[String],
    since: i64,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let d = domain.map(str::to_string);
    let stored = db.run(move |s| s.events(d.as_deref(), since, limit)).await?;
    Ok(stored
        .iter()
        .filter(|e| kinds.is_empty() || kinds.contains(&e.kind))
        .filter_map(|e| serde_json::from_str(&e.body).ok())
        .collect())
}

/// The domain's last check as `check --format json` gave it, if it was checked.
pub async fn latest_check(db: &Database, domain: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let d = domain.to_string();
    let state = db.run(move |s| s.domain_state(&d)).await?;
    Ok(state.and_then(|s| s.report).and_then(|r| serde_json::from_str(&r).ok()))
}

/// The DMARC record the domain published at the last check (its `_dmarc` TXT starting
/// with `v=DMARC1`), as `watch` and the rollout advice read it.
pub fn dmarc_record_of(state: &WatchState, domain: &str) -> Option<String> {
    state
        .records
        .get(&format!("_dmarc.{domain} TXT"))
        .and_then(|v| v.lines().find(|l| l.trim_start().starts_with("v=DMARC1")).map(str::to_string))
}

/// The report figures of the dashboard: `days` days of reports, their messages per day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportFigures {
    /// Aggregate reports in the window.
    pub reports: u64,
    /// Messages in them.
    pub messages: u64,
    /// Of them, passing DMARC (recomputed alignment, as `reports summary`).
    pub dmarc_pass: u64,
    /// `dmarc_pass / messages` (null without messages).
    pub pass_rate: Option<f64>,
    /// Messages per day, oldest first.
    pub daily: Vec<DayTotals>,
}

impl ReportFigures {
    /// The figures of a summary.
    pub fn of(s: &Summary) -> ReportFigures {
        ReportFigures {
            reports: s.reports,
            messages: s.messages,
            dmarc_pass: s.dmarc_pass,
            pass_rate: (s.messages > 0).then(|| s.dmarc_pass as f64 / s.messages as f64),
            daily: s.daily.clone(),
        }
    }
}

/// The summary of the last `days` days of reports (as `reports summary --days`).
pub async fn recent_summary(db: &Database, domain: &str, days: i64, now: i64) -> Result<Summary, OpsError> {
    let since = now.saturating_sub(days.max(1).saturating_mul(86_400));
    summary_between(db, domain, since, i64::MAX, None::<&ses_dmarc_dns::NoFallback>).await
}

/// The rollout advice from the stored evidence and the DMARC record seen at the last
/// check (as `watch` computes it), for a domain that was checked.
pub async fn rollout(db: &Database, domain: &str, now: i64) -> Result<Option<Rollout>, OpsError> {
    if !was_checked(db, domain).await? {
        return Ok(None);
    }
    let evidence = recent_summary(db, domain, REPORT_DAYS, now).await?;
    rollout_from(db, domain, &evidence, now).await
}

async fn was_checked(db: &Database, domain: &str) -> Result<bool, StoreError> {
    let d = domain.to_string();
    Ok(db.run(move |s| s.domain_state(&d)).await?.is_some())
}

/// [`rollout`] from evidence already summarized (the last [`REPORT_DAYS`] days, as
/// [`recent_summary`] gives them), so that a page showing both summarizes once.
pub async fn rollout_from(
    db: &Database,
    domain: &str,
    evidence: &Summary,
    now: i64,
) -> Result<Option<Rollout>, OpsError> {
    let d = domain.to_string();
    let state = db.run(move |s| s.domain_state(&d)).await?;
    let Some(judged) = state.and_then(|s| serde_json::from_str::<WatchState>(&s.judgement).ok()) else {
        return Ok(None);
    };
    let record = dmarc_record_of(&judged, domain);
    Ok(Some(advise(domain, record.as_deref(), evidence, now, Criteria::default())))
}

/// The failure reports about `domain` that arrived since `since`, oldest first.
pub async fn failure_reports(
    db: &Database,
    domain: &str,
    since: i64,
) -> Result<Vec<ses_dmarc_reports::failure::FailureReport>, StoreError> {
    let d = domain.to_string();
    db.run(move |s| s.failures_for(&d, since, i64::MAX)).await
}
