//! The overview's report figures (30 days of messages and pass rates per domain), kept
//! between requests: the summary of every domain is too much work for each view of `/`
//! with hundreds of domains. A domain's figures are recomputed — with the same summary
//! `reports summary` gives — when a report for it is stored, or once a day as the window
//! moves; a task does so in the background.

use crate::{AppState, log};
use ses_dmarc_monitor::views::{REPORT_DAYS, ReportFigures, recent_summary};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One domain's figures and when its newest report ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct DomainFigures {
    pub(crate) figures: ReportFigures,
    pub(crate) latest_report_end: Option<i64>,
}

#[derive(Default)]
struct Cache {
    /// (reports stored, newest id, the day computed) per domain.
    versions: HashMap<String, (i64, i64, i64)>,
    figures: Arc<HashMap<String, DomainFigures>>,
    refreshed: Option<Instant>,
}

/// The figures of every domain with reports.
#[derive(Default)]
pub(crate) struct Figures {
    cache: Mutex<Cache>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

/// How old the figures may be before a request refreshes them itself.
const FRESH: Duration = Duration::from_secs(30);

impl Figures {
    /// The figures, refreshed first when older than [`FRESH`].
    pub(crate) async fn current(&self, state: &AppState) -> Arc<HashMap<String, DomainFigures>> {
        let stale = {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.refreshed.is_none_or(|t| t.elapsed() > FRESH)
        };
        if stale {
            self.refresh(state).await;
        }
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).figures.clone()
    }

    /// Recomputes the domains whose reports changed (or whose day moved on).
    pub(crate) async fn refresh(&self, state: &AppState) {
        let _one = self.refreshing.lock().await;
        let now = ses_dmarc_ops::now();
        let today = now.div_euclid(86_400);
        let versions = match state.db.run(|s| s.report_versions()).await {
            Ok(v) => v,
            Err(e) => {
                log(&format!("report figures not refreshed: {e}"));
                return;
            }
        };
        let (known, mut figures) = {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            (c.versions.clone(), (*c.figures).clone())
        };
        let mut next_versions = HashMap::with_capacity(versions.len());
        figures.retain(|d, _| versions.iter().any(|v| &v.domain == d));
        for v in versions {
            let version = (v.reports, v.newest_id, today);
            if known.get(&v.domain) != Some(&version) || !figures.contains_key(&v.domain) {
                match recent_summary(&state.db, &v.domain, REPORT_DAYS, now).await {
                    Ok(s) => {
                        figures.insert(
                            v.domain.clone(),
                            DomainFigures { figures: ReportFigures::of(&s), latest_report_end: Some(v.latest_end) },
                        );
                    }
                    Err(e) => {
                        log(&format!("report figures of {} not refreshed: {e}", v.domain));
                        continue;
                    }
                }
            }
            next_versions.insert(v.domain, version);
        }
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.versions = next_versions;
        c.figures = Arc::new(figures);
        c.refreshed = Some(Instant::now());
    }

    /// Forgets when the figures were refreshed, so the next request refreshes them (after
    /// an upload).
    pub(crate) fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).refreshed = None;
    }
}

/// Refreshes the figures every [`FRESH`] / 2 until told to stop.
pub(crate) async fn keep_fresh(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        state.figures.refresh(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(FRESH / 2) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
