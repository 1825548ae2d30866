//! A watch pass: every watched domain that is due (or the ones named) is checked through
//! the same gather → snapshot → rules path as `check`; what changed since its last check
//! becomes events, written with their outbox rows in the same transaction as the new
//! state; then the outbox is delivered. A crash anywhere leaves every event either not
//! made yet or waiting in the outbox: none is lost, and a delivery is retried until the
//! channel accepts it (at least once, the event id as the idempotency key).

use crate::alerts::{Alerter, backoff};
use crate::config::{Config, DomainEntry};
use crate::diff::{WatchState, compare, state_of};
use crate::events::{Event, EventKind, Severity};
use crate::report_watch::{ReportChanges, ReportFacts, report_events};
use crate::schedule::{rfc3339, spread};
use crate::workers::{Swept, Worker, wall_clock};
use futures::StreamExt;
use serde::Serialize;
use ses_dmarc_audit::{DomainReport, Expectations, check_domain};
use ses_dmarc_dns::Resolver;
use ses_dmarc_ops::reports::summary_between;
use ses_dmarc_reports::rollout::{Criteria, Rollout, RolloutChange, Stage, Standing, advise};
use ses_dmarc_store::{CheckWrite, CheckedDomain, Database, DomainState, StoreError, WatchedDomain};
use std::collections::{BTreeMap, BTreeSet};

/// Why a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A domain named on the command line is not watched.
    #[error("{0} is not watched: `ses-dmarc watch add {0}` first")]
    NotWatched(String),
    /// A domain given is not usable.
    #[error("{0}")]
    Input(String),
}

/// What a pass checks.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only these domains (checked whether due or not); empty: every due domain.
    pub only: Vec<String>,
    /// The time of the pass (seconds since 1970).
    pub now: i64,
}

/// One domain's check, as the pass reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DomainOutcome {
    /// The domain.
    pub domain: String,
    /// Whether SES mail passes DMARC (null: unknown).
    pub verdict: Option<bool>,
    /// Error findings.
    pub errors: usize,
    /// Warning findings.
    pub warnings: usize,
    /// Questions DNS did not answer.
    pub unknown: usize,
    /// The events the check raised.
    pub events: Vec<Event>,
    /// What went wrong beside the check (SES could not be asked, the database failed).
    pub error: Option<String>,
}

/// One alert delivery attempt.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryOutcome {
    /// The event's id.
    pub event: String,
    /// The channel.
    pub channel: String,
    /// Whether the channel accepted it.
    pub delivered: bool,
    /// Why not.
    pub error: Option<String>,
    /// When it is tried again (RFC 3339), when it was not delivered.
    pub next_attempt: Option<String>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// The domains checked.
    pub checked: Vec<DomainOutcome>,
    /// The alert deliveries tried.
    pub deliveries: Vec<DeliveryOutcome>,
    /// Domains the configuration no longer lists (no longer watched).
    pub removed: Vec<String>,
    /// What the retention sweep deleted, when this pass ran it (`[schedule] retention_days`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<Swept>,
}

/// A domain to watch, as `watch add`, the dashboard and `POST /api/v1/domains` take it:
/// validated as `check` validates its flags, due at once.
pub fn watch_request(
    domain: &str,
    expectations: Expectations,
    tags: &[String],
    from_ses: bool,
    source: &str,
    now: i64,
) -> Result<WatchedDomain, ses_dmarc_ops::OpsError> {
    use ses_dmarc_ops::{OpsError, check};
    let domain = check::domain(domain)?;
    let expectations = Expectations { regions: check::regions(&expectations.regions)?, ..expectations };
    check::validate_tokens(&expectations)?;
    if from_ses && (expectations.regions.is_empty() || !expectations.dkim_tokens.is_empty()) {
        return Err(OpsError::Input("--from-ses needs --region (the SES regions to ask), and no --dkim-token".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    let tags: Vec<String> =
        tags.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty() && seen.insert(t.clone())).collect();
    if let Some(t) = tags.iter().find(|t| t.len() > 64 || t.chars().any(char::is_control)) {
        return Err(OpsError::Input(format!("tag `{}` is too long or holds control characters", t.escape_debug())));
    }
    Ok(WatchedDomain {
        domain,
        expectations: expectations_json(&expectations),
        tags,
        from_ses,
        source: source.to_string(),
        added_at: now,
        next_due: now,
        last_checked: None,
        checks: 0,
    })
}

/// What a watched domain's expectations JSON holds.
pub fn expectations_json(e: &Expectations) -> String {
    serde_json::to_string(e).unwrap_or_else(|_| "{}".into())
}

/// A `[[domain]]` of the configuration as a watched domain due now.
fn from_config(d: &DomainEntry, now: i64) -> WatchedDomain {
    WatchedDomain {
        domain: d.name.clone(),
        expectations: expectations_json(&Expectations {
            regions: d.regions.clone(),
            mail_from: d.mail_from.clone(),
            dkim_tokens: d.dkim_tokens.clone(),
            selectors: d.selectors.clone(),
        }),
        tags: d.tags.clone(),
        from_ses: d.from_ses,
        source: "config".into(),
        added_at: now,
        next_due: now,
        last_checked: None,
        checks: 0,
    }
}

/// Makes the watched domains agree with the configuration's `[[domain]]` list.
pub async fn sync_config(db: &Database, config: &Config, now: i64) -> Result<Vec<String>, WatchError> {
    let entries: Vec<WatchedDomain> = config.domains.iter().map(|d| from_config(d, now)).collect();
    let keep: Vec<String> = entries.iter().map(|e| e.domain.clone()).collect();
    let removed = db
        .run(move |s| {
            for e in &entries {
                s.upsert_watched(e)?;
            }
            s.prune_config_domains(&keep)
        })
        .await?;
    Ok(removed)
}

/// Runs one pass as `worker`: syncs the configuration's domains, claims the due (or
/// named) ones a few at a time and checks them, `concurrency` at once, then delivers the
/// alerts due (claimed too) and runs the retention sweep when it is this worker's turn.
/// Other workers on the same database claim the rest: no domain is checked twice.
pub async fn run_pass<R: Resolver>(
    db: &Database,
    resolver: &R,
    config: &Config,
    alerter: &Alerter,
    worker: &Worker,
    options: &PassOptions,
) -> Result<PassReport, WatchError> {
    let now = options.now;
    let mut report = PassReport { removed: sync_config(db, config, now).await?, ..Default::default() };
    let concurrency = config.watch.concurrency.max(1);
    let mut running = futures::stream::FuturesUnordered::new();
    if options.only.is_empty() {
        // Due within the jitter window: a pass started by cron finds every domain whose
        // spread puts it a few minutes after the pass.
        let due_by = now + config.schedule.jitter.as_secs() as i64;
        let mut exhausted = false;
        loop {
            while !exhausted && !worker.stopping() && running.len() < concurrency {
                let want = (concurrency - running.len()) as i64;
                let (id, wall, until) = (worker.id().to_string(), wall_clock(), worker.claim_until());
                let batch = db.run(move |s| s.claim_due_domains(&id, due_by, wall, until, want)).await?;
                exhausted = (batch.len() as i64) < want;
                for w in batch {
                    running.push(check_one(db, resolver, config, alerter, w, Some(worker.id()), now));
                }
            }
            match running.next().await {
                Some(outcome) => report.checked.push(outcome),
                None => break,
            }
        }
    } else {
        let mut claimed = Vec::new();
        for name in &options.only {
            let domain = ses_dmarc_ops::check::domain(name).map_err(|e| WatchError::Input(e.to_string()))?;
            let (id, d, wall, until) = (worker.id().to_string(), domain.clone(), wall_clock(), worker.claim_until());
            match db.run(move |s| s.claim_domain(&id, &d, wall, until)).await {
                Ok(Some(w)) => claimed.push(w),
                Ok(None) => {
                    release_all(db, worker, &claimed).await;
                    return Err(WatchError::NotWatched(domain));
                }
                Err(StoreError::Conflict(busy)) => report.checked.push(DomainOutcome::failed(&domain, busy)),
                Err(e) => {
                    release_all(db, worker, &claimed).await;
                    return Err(e.into());
                }
            }
        }
        let mut checks = futures::stream::iter(claimed)
            .map(|w| check_one(db, resolver, config, alerter, w, Some(worker.id()), now))
            .buffer_unordered(concurrency);
        while let Some(outcome) = checks.next().await {
            report.checked.push(outcome);
        }
    }
    report.checked.sort_by(|a, b| a.domain.cmp(&b.domain));
    report.deliveries = deliver_due(db, alerter, worker, now).await?;
    report.pruned = worker.sweep_retention(config.schedule.retention_days, now).await?;
    Ok(report)
}

async fn release_all(db: &Database, worker: &Worker, claimed: &[WatchedDomain]) {
    for w in claimed {
        let (id, d) = (worker.id().to_string(), w.domain.clone());
        let _ = db.run(move |s| s.release_domain(&id, &d)).await;
    }
}

impl DomainOutcome {
    fn unchecked(domain: &str) -> DomainOutcome {
        DomainOutcome {
            domain: domain.to_string(),
            verdict: None,
            errors: 0,
            warnings: 0,
            unknown: 0,
            events: vec![],
            error: None,
        }
    }

    fn failed(domain: &str, error: String) -> DomainOutcome {
        DomainOutcome { error: Some(error), ..DomainOutcome::unchecked(domain) }
    }
}

/// The SES facts of a domain, per region, as the watch compares them: verification, DKIM
/// status and signing, MAIL FROM status; and the account there (production access,
/// sending, enforcement status, the rates) under `account:<region>`, levels not yet
/// settled against the previous check ([`crate::ses_changes::settle`]). The second value
/// names the account calls that failed (the rest is still compared).
async fn ses_facts(
    domain: &str,
    regions: &[String],
    now: i64,
) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut out = BTreeMap::new();
    for (region, answer) in ses_dmarc_ops::ses_status::identity_statuses(domain, regions, None).await {
        let status = answer.map_err(|e| e.message)?;
        let state = |s: Option<ses_dmarc_ses::identity::State>| s.map(|x| x.as_str()).unwrap_or("unknown");
        let text = if status.exists {
            format!(
                "identity {}; DKIM {} (signing {}); MAIL FROM {}",
                state(status.verification),
                state(status.dkim.status),
                if status.dkim.signing_enabled { "on" } else { "off" },
                status
                    .mail_from
                    .as_ref()
                    .map(|m| format!("{} {}", m.domain, state(m.status)))
                    .unwrap_or("not set".into())
            )
        } else {
            "not an identity".to_string()
        };
        out.insert(region, text);
    }
    let mut failures = Vec::new();
    for account in ses_dmarc_ops::ses_account::accounts(regions, None, now).await {
        let raw = crate::ses_changes::account_facts(&account, None);
        out.insert(crate::ses_changes::account_key(&account.region), serde_json::to_string(&raw).unwrap_or_default());
        failures.extend(
            account
                .errors
                .iter()
                .map(|e| format!("SES account in {}: {} ({})", account.region, e.message, e.permission)),
        );
    }
    Ok((out, failures))
}

struct Previous {
    watched: Option<WatchedDomain>,
    state: Option<DomainState>,
    open: Vec<ses_dmarc_store::OpenProblem>,
    known: Vec<String>,
    latest_report_end: Option<i64>,
}

/// Checks one domain and writes what changed (see the module's doc); `claimed_by`: the
/// worker whose claim it runs under (its results are written only while the claim holds).
pub async fn check_one<R: Resolver>(
    db: &Database,
    resolver: &R,
    config: &Config,
    alerter: &Alerter,
    w: WatchedDomain,
    claimed_by: Option<&str>,
    now: i64,
) -> DomainOutcome {
    let domain = w.domain.clone();
    let mut outcome = DomainOutcome::unchecked(&domain);
    let base: Expectations = serde_json::from_str(&w.expectations).unwrap_or_default();
    let mut expectations = base.clone();
    let mut ses_now = None;
    if w.from_ses {
        match ses_dmarc_ops::check::expectations_from_ses(&domain, &base, None).await {
            Ok(e) => expectations = e,
            Err(e) => outcome.error = Some(format!("SES could not be asked: {e}")),
        }
        match ses_facts(&domain, &base.regions, now).await {
            Ok((facts, failures)) => {
                ses_now = Some(facts);
                if let Some(first) = failures.into_iter().next() {
                    outcome.error.get_or_insert(first);
                }
            }
            Err(e) => {
                outcome.error.get_or_insert(format!("SES could not be asked: {e}"));
            }
        }
    }
    let report: DomainReport = check_domain(resolver, &domain, expectations).await;
    match write_check(db, config, alerter, ClaimedCheck { watched: &w, claimed_by }, &report, ses_now, now).await {
        Ok(events) => outcome.events = events,
        Err(e @ StoreError::ClaimLost(_)) => outcome.error = Some(e.to_string()),
        Err(e) => outcome.error = Some(format!("the database failed: {e}")),
    }
    let (state, failed, _) = state_of(&report);
    outcome.verdict = state.verdict;
    outcome.errors = state.errors;
    outcome.warnings = state.warnings;
    outcome.unknown = failed.len();
    outcome
}

/// The check of one domain, under the claim of `claimed_by` (if any).
struct ClaimedCheck<'a> {
    watched: &'a WatchedDomain,
    claimed_by: Option<&'a str>,
}

async fn write_check(
    db: &Database,
    config: &Config,
    alerter: &Alerter,
    check: ClaimedCheck<'_>,
    report: &DomainReport,
    ses_now: Option<BTreeMap<String, String>>,
    now: i64,
) -> Result<Vec<Event>, StoreError> {
    let ClaimedCheck { watched: w, claimed_by } = check;
    let domain = w.domain.clone();
    let d = domain.clone();
    let prev = db
        .run(move |s| {
            Ok(Previous {
                watched: s.watched(&d)?,
                state: s.domain_state(&d)?,
                open: s.open_problems(&d)?,
                known: s.known_sources(&d)?,
                latest_report_end: s.latest_report_end(&d)?,
            })
        })
        .await?;
    let settings = &config.watch;
    let (state, failed, digest) = state_of(report);
    let previous_state: Option<WatchState> = prev.state.as_ref().and_then(|s| serde_json::from_str(&s.judgement).ok());
    let previous_failures: BTreeMap<String, u32> =
        prev.state.as_ref().and_then(|s| serde_json::from_str(&s.failures).ok()).unwrap_or_default();
    let mut changes = compare(&domain, previous_state.as_ref(), &previous_failures, &state, &failed, settings, now);
    // What SES says, compared with the last check (account rates settled with hysteresis).
    let previous_ses: Option<BTreeMap<String, String>> =
        prev.state.as_ref().and_then(|s| s.ses.as_deref()).and_then(|t| serde_json::from_str(t).ok());
    let mut ses_now = ses_now;
    if let Some(now_facts) = ses_now.as_mut() {
        crate::ses_changes::settle(now_facts, previous_ses.as_ref());
    }
    if let (Some(before), Some(after)) = (&previous_ses, &ses_now) {
        changes.events.extend(crate::ses_changes::ses_events(&domain, before, after, now));
    }
    // What the reports say.
    let open: BTreeSet<String> = prev.open.iter().map(|p| p.problem.clone()).collect();
    let known: BTreeSet<String> = prev.known.iter().cloned().collect();
    let dmarc_text = crate::views::dmarc_record_of(&state, &domain);
    let asks_for_reports = dmarc_text
        .as_deref()
        .and_then(|t| ses_dmarc_records::DmarcRecord::parse(t).value)
        .is_some_and(|r| !r.rua.is_empty());
    let mut report_changes = ReportChanges::default();
    let mut rollout_standing = prev.state.as_ref().and_then(|s| s.rollout.clone());
    if prev.latest_report_end.is_some() {
        let (day, none) = (86_400, None::<&ses_dmarc_dns::NoFallback>);
        let current = summary_between(db, &domain, now - 7 * day, i64::MAX, none).await;
        let previous = summary_between(db, &domain, now - 14 * day, now - 7 * day, none).await;
        let evidence = summary_between(db, &domain, now - ROLLOUT_DAYS * day, i64::MAX, none).await;
        if let (Ok(current), Ok(previous)) = (&current, &previous) {
            let facts = ReportFacts {
                current,
                previous,
                latest_report_end: prev.latest_report_end,
                asks_for_reports,
                watched_since: prev.watched.as_ref().map(|w| w.added_at).unwrap_or(now),
            };
            report_changes = report_events(&domain, &facts, &known, &open, settings, now);
        }
        if let Ok(evidence) = &evidence {
            let rollout = advise(&domain, dmarc_text.as_deref(), evidence, now, Criteria::default());
            let before: Option<Standing> = rollout_standing.as_deref().and_then(|t| serde_json::from_str(t).ok());
            if let Some(change) = ses_dmarc_reports::rollout::compare(before.as_ref(), &rollout)
                .filter(|_| rollout.stage != Stage::NoRecord)
            {
                report_changes.events.push(rollout_event(&rollout, change, now));
            }
            rollout_standing = serde_json::to_string(&rollout.standing()).ok();
        }
    } else {
        let none = ses_dmarc_reports::summary::Summary::default();
        let facts = ReportFacts {
            current: &none,
            previous: &none,
            latest_report_end: None,
            asks_for_reports,
            watched_since: prev.watched.as_ref().map(|w| w.added_at).unwrap_or(now),
        };
        report_changes = report_events(&domain, &facts, &known, &open, settings, now);
    }
    let mut events = changes.events;
    events.extend(report_changes.events);
    let mut opened: Vec<(String, String, String)> =
        changes.opened.into_iter().map(|(k, id)| (domain.clone(), k, id)).collect();
    opened.extend(report_changes.opened.into_iter().map(|(k, id)| (domain.clone(), k, id)));
    let mut closed: Vec<String> = changes.closed;
    closed.extend(report_changes.closed);
    // Reminders of problems still open.
    let remind = settings.remind_after.as_secs() as i64;
    let mut reminded = Vec::new();
    for p in &prev.open {
        if closed.contains(&p.problem) || now - p.alerted_at < remind {
            continue;
        }
        let id = p.event.clone();
        let Some(original) = db.run(move |s| s.event(&id)).await? else { continue };
        let Ok(mut e) = serde_json::from_str::<Event>(&original.body) else { continue };
        let first = Event::new(now, Some(&domain), e.kind, e.severity, String::new());
        e.message = format!("still open since {}: {}", rfc3339(p.opened_at), e.message);
        e.reminder_of = Some(e.id.clone());
        e.id = first.id;
        e.at = first.at;
        events.push(e);
        reminded.push((domain.clone(), p.problem.clone()));
    }
    let next_due = config.schedule.check.next_due(now, spread(&domain, config.schedule.jitter));
    let write = CheckWrite {
        checked: Some(CheckedDomain {
            domain: domain.clone(),
            state: DomainState {
                digest,
                judgement: serde_json::to_string(&state).unwrap_or_default(),
                failures: serde_json::to_string(&changes.failures).unwrap_or_default(),
                ses: ses_now.map(|s| serde_json::to_string(&s).unwrap_or_default()).or(prev.state.and_then(|s| s.ses)),
                rollout: rollout_standing,
                checked_at: now,
                report: serde_json::to_string(report).ok(),
            },
            snapshot: serde_json::to_string(&report.snapshot).unwrap_or_default(),
            next_due,
            claimed_by: claimed_by.map(str::to_string),
        }),
        events: events.iter().map(|e| e.stored(now)).collect(),
        channels: alerter.schedule(now).into_iter().map(|(name, at)| (name, at - now)).collect(),
        opened,
        closed: closed.into_iter().map(|k| (domain.clone(), k)).collect(),
        reminded,
        sources: report_changes.known.into_iter().map(|s| (domain.clone(), s)).collect(),
    };
    db.run(move |s| s.commit_check(&write)).await?;
    Ok(events)
}

/// Days of reports the rollout advice weighs (as `rollout`'s default `--days`).
const ROLLOUT_DAYS: i64 = crate::views::REPORT_DAYS;

fn rollout_event(rollout: &Rollout, change: RolloutChange, now: i64) -> Event {
    let (kind, severity) = match change {
        RolloutChange::Ready => (EventKind::RolloutReady, Severity::Info),
        RolloutChange::Blocked => (EventKind::RolloutBlocked, Severity::Warning),
        RolloutChange::MovedBack => (EventKind::RolloutBlocked, Severity::Error),
    };
    let mut e = Event::new(now, Some(&rollout.domain), kind, severity, rollout.event_message(change));
    e.subject = Some(rollout.stage.as_str().to_string());
    e.before = rollout.current_record.clone();
    e.after = rollout.next_record.clone();
    e.fix = Some(match (change, &rollout.next_record) {
        (RolloutChange::Blocked, _) | (_, None) => {
            format!("`ses-dmarc rollout {}` lists what blocks the step", rollout.domain)
        }
        (_, Some(next)) => format!(
            "publish `_dmarc.{} TXT \"{next}\"` (`ses-dmarc rollout {} --apply --route53` does it in Route 53)",
            rollout.domain, rollout.domain
        ),
    });
    e
}

/// Delivers every alert due now that no other worker has claimed: a channel that refuses
/// keeps its alerts for later, with back-off; the others go on.
pub async fn deliver_due(
    db: &Database,
    alerter: &Alerter,
    worker: &Worker,
    now: i64,
) -> Result<Vec<DeliveryOutcome>, WatchError> {
    let mut out = Vec::new();
    loop {
        let (id, wall, until) = (worker.id().to_string(), wall_clock(), worker.claim_until());
        let due = db.run(move |s| s.claim_deliveries(&id, now, wall, until, DELIVERY_BATCH)).await?;
        let last = (due.len() as i64) < DELIVERY_BATCH;
        out.extend(deliver(db, alerter, due, now).await?);
        if last || worker.stopping() {
            return Ok(out);
        }
    }
}

/// Alerts claimed at a time: other workers deliver the rest meanwhile.
const DELIVERY_BATCH: i64 = 500;

async fn deliver(
    db: &Database,
    alerter: &Alerter,
    due: Vec<ses_dmarc_store::Delivery>,
    now: i64,
) -> Result<Vec<DeliveryOutcome>, WatchError> {
    let mut by_channel: BTreeMap<String, Vec<ses_dmarc_store::Delivery>> = BTreeMap::new();
    for d in due {
        by_channel.entry(d.channel.clone()).or_default().push(d);
    }
    let mut out = Vec::new();
    for (channel, deliveries) in by_channel {
        let batches: Vec<Vec<ses_dmarc_store::Delivery>> = if alerter.is_digest(&channel) {
            vec![deliveries]
        } else {
            deliveries.into_iter().map(|d| vec![d]).collect()
        };
        for batch in batches {
            let events: Vec<Event> = batch.iter().filter_map(|d| serde_json::from_str(&d.event.body).ok()).collect();
            let result = alerter.send(&channel, &events).await;
            for d in &batch {
                let (event, chan) = (d.event.id.clone(), channel.clone());
                match &result {
                    Ok(()) => {
                        db.run(move |s| s.delivered(&event, &chan, now)).await?;
                        out.push(DeliveryOutcome {
                            event: d.event.id.clone(),
                            channel: channel.clone(),
                            delivered: true,
                            error: None,
                            next_attempt: None,
                        });
                    }
                    Err(e) => {
                        let next = now + backoff(d.attempts);
                        let message = e.message.clone();
                        db.run(move |s| s.delivery_failed(&event, &chan, &message, next)).await?;
                        out.push(DeliveryOutcome {
                            event: d.event.id.clone(),
                            channel: channel.clone(),
                            delivered: false,
                            error: Some(e.message.clone()),
                            next_attempt: Some(rfc3339(next)),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}
