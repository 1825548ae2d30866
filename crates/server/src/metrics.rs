//! `/health` (no sign-in) and `/metrics` (Prometheus text format, signed in): checks,
//! findings by severity, the age of each domain's last report, ingest and intake counts,
//! alert deliveries and failures, the workers sharing the database and the queue.

use crate::auth::Principal;
use crate::{ApiError, Shared};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/health", get(health)).route("/metrics", get(metrics))
}

async fn health(State(state): State<Shared>) -> Response {
    match state.db.run(|s| s.totals()).await {
        Ok(_) => ([(header::CONTENT_TYPE, "application/json")], "{\"status\":\"ok\"}").into_response(),
        Err(e) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the database does not answer: {e}")).into_response()
        }
    }
}

/// A label value, escaped as the text format wants (`\`, `"`, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let _ = write!(self.0, "{}{k}=\"{}\"", if i > 0 { "," } else { "" }, label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

async fn metrics(State(state): State<Shared>, _who: Principal) -> Result<Response, ApiError> {
    let now = ses_dmarc_ops::now();
    let (totals, counts, versions) =
        state.db.run(|s| Ok((s.totals()?, s.service_counts()?, s.report_versions()?))).await?;
    let listing = ses_dmarc_monitor::views::listing(&state.db).await?;
    let c = &state.counters;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut t = Text(String::with_capacity(4096 + listing.len() * 200));
    t.one("ses_dmarc_watched_domains", "gauge", "Domains watched.", listing.len());
    t.one(
        "ses_dmarc_checks_total",
        "counter",
        "Checks run for the watched domains (as the store counts them).",
        listing.iter().map(|l| l.checks).sum::<i64>(),
    );
    t.one("ses_dmarc_watch_passes_total", "counter", "Watch passes this process ran.", get(&c.watch_passes));
    t.one("ses_dmarc_checks_this_process_total", "counter", "Checks this process ran.", get(&c.checks));
    t.one("ses_dmarc_check_errors_total", "counter", "Checks this process could not finish.", get(&c.check_errors));
    t.family("ses_dmarc_findings", "gauge", "Findings at each domain's last check, by severity.");
    t.sample("ses_dmarc_findings", &[("severity", "error")], listing.iter().map(|l| l.errors).sum::<usize>());
    t.sample("ses_dmarc_findings", &[("severity", "warning")], listing.iter().map(|l| l.warnings).sum::<usize>());
    t.family("ses_dmarc_domains_by_verdict", "gauge", "Watched domains by whether SES mail passes DMARC.");
    for (name, v) in [("passes", Some(true)), ("fails", Some(false)), ("unknown", None)] {
        t.sample(
            "ses_dmarc_domains_by_verdict",
            &[("verdict", name)],
            listing.iter().filter(|l| l.verdict == v).count(),
        );
    }
    t.family(
        "ses_dmarc_last_report_age_seconds",
        "gauge",
        "Seconds since the newest aggregate report's period ended, per domain.",
    );
    let watched: std::collections::BTreeSet<&str> = listing.iter().map(|l| l.domain.as_str()).collect();
    for v in versions.iter().filter(|v| watched.contains(v.domain.as_str())) {
        t.sample("ses_dmarc_last_report_age_seconds", &[("domain", &v.domain)], (now - v.latest_end).max(0));
    }
    t.one("ses_dmarc_reports_stored", "gauge", "Aggregate reports in the store.", totals.reports);
    t.one("ses_dmarc_records_stored", "gauge", "Aggregate report records in the store.", totals.records);
    t.one("ses_dmarc_messages_stored", "gauge", "Messages the stored records count.", totals.messages);
    t.one("ses_dmarc_failure_reports_stored", "gauge", "Failure reports in the store.", totals.failures);
    t.one("ses_dmarc_uploads_total", "counter", "Report files uploaded to this process.", get(&c.uploads));
    t.one(
        "ses_dmarc_uploaded_reports_total",
        "counter",
        "Reports stored from uploads by this process.",
        get(&c.uploaded_reports),
    );
    t.one("ses_dmarc_intake_passes_total", "counter", "Intake passes this process ran.", get(&c.intake_passes));
    t.one(
        "ses_dmarc_intake_messages_total",
        "counter",
        "Messages and objects intake read in this process.",
        get(&c.intake_messages),
    );
    t.one(
        "ses_dmarc_intake_reports_total",
        "counter",
        "Reports intake stored in this process.",
        get(&c.intake_reports),
    );
    t.one(
        "ses_dmarc_intake_failed_total",
        "counter",
        "Messages and objects intake could not store, in this process.",
        get(&c.intake_failed),
    );
    t.one(
        "ses_dmarc_intake_source_errors_total",
        "counter",
        "Intake sources that could not be read, per pass, in this process.",
        get(&c.intake_source_errors),
    );
    t.one(
        "ses_dmarc_intake_failures_stored",
        "gauge",
        "Messages and objects intake could not store (kept with the reason).",
        counts.intake_failures,
    );
    t.one("ses_dmarc_events_stored", "gauge", "Events raised.", counts.events);
    t.one("ses_dmarc_alert_deliveries_total", "counter", "Alerts their channel accepted.", counts.delivered);
    t.one(
        "ses_dmarc_alert_delivery_failures_total",
        "counter",
        "Alert delivery attempts a channel refused or did not answer.",
        counts.failed_attempts,
    );
    t.one("ses_dmarc_alerts_pending", "gauge", "Alerts waiting in the outbox.", counts.pending);
    t.one("ses_dmarc_login_failures_total", "counter", "Failed sign-ins in this process.", get(&c.logins_failed));
    let workers = ses_dmarc_monitor::workers::view(&state.db, state.config.schedule.lease, now).await?;
    t.family("ses_dmarc_workers", "gauge", "Workers sharing the database seen in the last week, by state.");
    for st in ["live", "gone", "stopped"] {
        t.sample("ses_dmarc_workers", &[("state", st)], workers.workers.iter().filter(|w| w.state == st).count());
    }
    t.family("ses_dmarc_worker_claims", "gauge", "What each live worker holds: domains, alerts, named leases.");
    for w in workers.workers.iter().filter(|w| w.state == "live") {
        t.sample("ses_dmarc_worker_claims", &[("worker", &w.id), ("kind", "domains")], w.domains.len());
        t.sample("ses_dmarc_worker_claims", &[("worker", &w.id), ("kind", "alerts")], w.deliveries);
        t.sample("ses_dmarc_worker_claims", &[("worker", &w.id), ("kind", "leases")], w.leases.len());
    }
    let q = workers.queue;
    t.family("ses_dmarc_queue_depth", "gauge", "Work due and not claimed (waiting) or claimed (running).");
    t.sample("ses_dmarc_queue_depth", &[("queue", "domains"), ("state", "waiting")], q.due_domains);
    t.sample("ses_dmarc_queue_depth", &[("queue", "domains"), ("state", "running")], q.claimed_domains);
    t.sample("ses_dmarc_queue_depth", &[("queue", "alerts"), ("state", "waiting")], q.due_deliveries);
    t.sample("ses_dmarc_queue_depth", &[("queue", "alerts"), ("state", "running")], q.claimed_deliveries);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t.0).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_help_type_and_escaped_labels() {
        let mut t = Text(String::new());
        t.family("x", "gauge", "An x.");
        t.sample("x", &[("domain", "a\"b\\c\nd")], 3);
        assert_eq!(t.0, "# HELP x An x.\n# TYPE x gauge\nx{domain=\"a\\\"b\\\\c\\nd\"} 3\n");
    }
}
