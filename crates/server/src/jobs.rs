//! The schedules `serve` runs: a `watch` pass whenever domains are due (looked for every
//! `[schedule] poll`), an `intake` pass every `[schedule] intake`, both as this process's
//! worker, so several `serve` processes on one PostgreSQL divide the work. Both are the commands' own
//! passes (`run_pass`, `run_intake`); a pass that has begun finishes before `serve` exits.

use crate::{AppState, Counters, ServeError, log};
use ses_dmarc_monitor::alerts::Alerter;
use ses_dmarc_monitor::intake::{IntakeOptions, run_intake};
use ses_dmarc_monitor::watch::{PassOptions, run_pass};
use ses_dmarc_monitor::workers::Worker;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch::Receiver;

pub(crate) fn start(
    state: &Arc<AppState>,
    stopped: &Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(), ServeError> {
    let config = &state.config;
    let resolver = config.dns.resolver("invalid", 256).map_err(|e| ServeError::Config(e.to_string()))?;
    let alerter = Arc::new(Alerter::new(config).map_err(|e| ServeError::Config(e.to_string()))?);
    let Some(worker) = state.worker.clone() else { return Ok(()) };
    tasks.spawn(watch_loop(state.clone(), resolver, alerter.clone(), worker.clone(), stopped.clone()));
    if !config.imap.is_empty() || !config.s3.is_empty() {
        tasks.spawn(intake_loop(state.clone(), alerter, worker, stopped.clone()));
    }
    Ok(())
}

/// Sleeps `d`; false when told to stop meanwhile.
async fn pause(d: Duration, stop: &mut Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopped && !*stop.borrow()
}

async fn watch_loop(
    state: Arc<AppState>,
    resolver: ses_dmarc_ops::dns::ConfiguredResolver,
    alerter: Arc<Alerter>,
    worker: Arc<Worker>,
    mut stop: Receiver<bool>,
) {
    let every = state.config.schedule.poll.max(Duration::from_secs(1));
    loop {
        if *stop.borrow() {
            return;
        }
        let options = PassOptions { only: Vec::new(), now: ses_dmarc_ops::now() };
        match run_pass(&state.db, &resolver, &state.config, &alerter, &worker, &options).await {
            Ok(report) => {
                let c = &state.counters;
                Counters::add(&c.watch_passes, 1);
                Counters::add(&c.checks, report.checked.len() as u64);
                Counters::add(&c.check_errors, report.checked.iter().filter(|d| d.error.is_some()).count() as u64);
                if !report.checked.is_empty() {
                    let events: usize = report.checked.iter().map(|d| d.events.len()).sum();
                    log(&format!("watch: checked {} domain(s), {events} event(s)", report.checked.len()));
                }
                for d in report.checked.iter().filter(|d| d.error.is_some()) {
                    log(&format!("watch: {}: {}", d.domain, d.error.as_deref().unwrap_or_default()));
                }
                if let Some(swept) = &report.pruned {
                    let p = &swept.deleted;
                    log(&format!(
                        "retention: deleted {} report(s) ({} records), {} failure report(s), {} snapshot(s), {} event(s) before {}",
                        p.reports, p.records, p.failures, p.snapshots, p.events, swept.before
                    ));
                }
                for d in report.deliveries.iter().filter(|d| !d.delivered) {
                    log(&format!(
                        "alert {} to {} not delivered: {}",
                        d.event,
                        d.channel,
                        d.error.as_deref().unwrap_or_default()
                    ));
                }
            }
            Err(e) => log(&format!("watch pass failed: {e}")),
        }
        if !pause(every, &mut stop).await {
            return;
        }
    }
}

async fn intake_loop(state: Arc<AppState>, alerter: Arc<Alerter>, worker: Arc<Worker>, mut stop: Receiver<bool>) {
    let every = state.config.schedule.intake.max(Duration::from_secs(10));
    loop {
        if *stop.borrow() {
            return;
        }
        let progress = |_: ses_dmarc_monitor::intake::Progress| {};
        let options = IntakeOptions { only: &[], now: ses_dmarc_ops::now(), progress: &progress };
        match run_intake(&state.db, &state.config, &alerter, &worker, &options).await {
            Ok(report) => {
                let c = &state.counters;
                Counters::add(&c.intake_passes, 1);
                let mut stored = 0;
                for s in &report.sources {
                    Counters::add(&c.intake_messages, s.messages);
                    Counters::add(&c.intake_reports, s.reports);
                    Counters::add(&c.intake_failed, s.failed);
                    stored += s.reports;
                    if let Some(e) = &s.error {
                        Counters::add(&c.intake_source_errors, 1);
                        log(&format!("intake: {} ({}): {e}", s.source, s.location));
                    } else if s.reports > 0 || s.failed > 0 {
                        log(&format!("intake: {}: {} report(s) stored, {} failed", s.source, s.reports, s.failed));
                    }
                }
                if stored > 0 {
                    state.figures.invalidate();
                }
            }
            Err(e) => log(&format!("intake pass failed: {e}")),
        }
        if !pause(every, &mut stop).await {
            return;
        }
    }
}
