//! The JSON API under `/api/v1/` (documented by `openapi.json` beside this file). Every
//! answer is JSON; every refusal is `{"error": {"status", "message"}}` with a 4xx status.

use crate::auth::Principal;
use crate::figures::DomainFigures;
use crate::{ApiError, AppState, Counters, Shared};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use ses_dmarc_audit::Expectations;
use ses_dmarc_monitor::views::{self, DomainListing, REPORT_DAYS, ReportFigures};
use ses_dmarc_monitor::watch::watch_request;
use ses_dmarc_store::ingest::{IngestOutcome, InputOutcome, ingest_reader, outcomes_json};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/domains", get(list_domains).post(add_domain))
        .route("/api/v1/domains/{domain}", get(domain_check).delete(remove_domain))
        .route("/api/v1/domains/{domain}/history", get(domain_history))
        .route("/api/v1/domains/{domain}/summary", get(domain_summary))
        .route("/api/v1/domains/{domain}/rollout", get(domain_rollout))
        .route("/api/v1/domains/{domain}/reports", get(domain_reports))
        .route("/api/v1/reports", post(upload_report))
        .route("/api/v1/reports/{id}", get(report))
        .route("/api/v1/events", get(events))
}

/// The OpenAPI document of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the answer: {e}")).into_response()
        }
    }
}

async fn openapi(_who: Principal) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The query string's pairs; a key may appear once, except those in `repeatable`.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>, known: &[&str]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
        for (k, _) in &pairs {
            if !known.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{}` (this URL takes: {})",
                    k.escape_debug(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
        }
        Ok(Query(pairs))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub(crate) fn int(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "`{key}` must be a whole number from {min} to {max}, not `{}`",
                    v.escape_debug()
                ))),
            },
        }
    }

    pub(crate) fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => ses_dmarc_monitor::schedule::parse_rfc3339(v.trim()).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{key}` must be an RFC 3339 time (2026-12-01T06:00:00Z), not `{}`",
                    v.escape_debug()
                ))
            }),
        }
    }
}

/// The domain named in a path, if the principal may see it.
pub(crate) async fn visible_domain(
    state: &AppState,
    who: &Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<DomainListing, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::bad_request(format!("the domain in the URL cannot be read: {e}")))?;
    let unknown = || ApiError::not_found(format!("`{}` is not a watched domain", text.escape_debug()));
    let Ok(domain) = ses_dmarc_ops::check::domain(&text) else { return Err(unknown()) };
    match views::listing_of(&state.db, &domain).await? {
        Some(l) if l.visible_to(who.tags()) => Ok(l),
        _ => Err(unknown()),
    }
}

/// One row of the overview: the watch's listing with its report figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DomainRow {
    #[serde(flatten)]
    pub(crate) listing: DomainListing,
    /// The last 30 days of reports.
    pub(crate) reports: ReportFigures,
    /// When the newest report's period ends (RFC 3339).
    pub(crate) last_report_end: Option<String>,
    /// 0 needs attention now (fails, errors), 1 unknown, 2 worth a look, 3 fine.
    pub(crate) attention: u8,
}

fn attention(l: &DomainListing, f: Option<&DomainFigures>, now: i64) -> u8 {
    let rate = f.and_then(|f| f.figures.pass_rate);
    let silent = l.last_checked.is_some() && f.and_then(|f| f.latest_report_end).is_none_or(|t| now - t > 3 * 86_400);
    if l.verdict == Some(false) || l.errors > 0 {
        0
    } else if l.verdict.is_none() {
        1
    } else if l.warnings > 0 || rate.is_some_and(|r| r < 0.9) || silent {
        2
    } else {
        3
    }
}

/// The domains a principal sees, filtered by tag and search text, the ones that need
/// attention first.
pub(crate) async fn overview(
    state: &AppState,
    who: &Principal,
    tag: Option<&str>,
    search: Option<&str>,
) -> Result<Vec<DomainRow>, ApiError> {
    let now = ses_dmarc_ops::now();
    let listing = views::listing(&state.db).await?;
    let figures = state.figures.current(state).await;
    let search = search.map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
    let mut rows: Vec<DomainRow> = listing
        .into_iter()
        .filter(|l| l.visible_to(who.tags()))
        .filter(|l| tag.is_none_or(|t| l.tags.iter().any(|x| x == t)))
        .filter(|l| search.as_deref().is_none_or(|s| l.domain.contains(s)))
        .map(|l| {
            let f = figures.get(&l.domain);
            DomainRow {
                attention: attention(&l, f, now),
                reports: f.map(|f| f.figures.clone()).unwrap_or_default(),
                last_report_end: f.and_then(|f| f.latest_report_end).map(ses_dmarc_monitor::schedule::rfc3339),
                listing: l,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let rate = |r: &DomainRow| r.reports.pass_rate.unwrap_or(2.0);
        a.attention
            .cmp(&b.attention)
            .then(b.listing.errors.cmp(&a.listing.errors))
            .then(rate(a).total_cmp(&rate(b)))
            .then(b.listing.warnings.cmp(&a.listing.warnings))
            .then(a.listing.domain.cmp(&b.listing.domain))
    });
    Ok(rows)
}

async fn list_domains(
    State(state): State<Shared>,
    who: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), &["tag", "q"])?;
    let rows = overview(&state, &who, q.get("tag"), q.get("q")).await?;
    Ok(json(StatusCode::OK, &rows))
}

async fn domain_check(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let l = visible_domain(&state, &who, path).await?;
    match views::latest_check(&state.db, &l.domain).await? {
        Some(report) => Ok(json(StatusCode::OK, &report)),
        None => Err(ApiError::not_found(format!("{} has not been checked yet (it is due {})", l.domain, l.next_due))),
    }
}

async fn domain_history(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), &["since", "limit"])?;
    let l = visible_domain(&state, &who, path).await?;
    let since = q.time("since")?.unwrap_or(i64::MIN);
    let limit = q.int("limit", 1000, 1, 100_000)?;
    Ok(json(StatusCode::OK, &views::history(&state.db, &l.domain, since, limit).await?))
}

async fn domain_summary(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), &["days"])?;
    let l = visible_domain(&state, &who, path).await?;
    let days = q.int("days", REPORT_DAYS, 1, 3660)?;
    let summary = views::recent_summary(&state.db, &l.domain, days, ses_dmarc_ops::now()).await?;
    Ok(json(StatusCode::OK, &summary))
}

async fn domain_rollout(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let l = visible_domain(&state, &who, path).await?;
    match views::rollout(&state.db, &l.domain, ses_dmarc_ops::now()).await? {
        Some(r) => Ok(json(StatusCode::OK, &r)),
        None => {
            Err(ApiError::not_found(format!("{} has not been checked yet: its DMARC record is not known", l.domain)))
        }
    }
}

async fn domain_reports(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), &["days", "limit"])?;
    let l = visible_domain(&state, &who, path).await?;
    let days = q.int("days", REPORT_DAYS, 1, 3660)?;
    let limit = q.int("limit", 100, 1, 10_000)?;
    let list =
        ses_dmarc_ops::reports::list_reports(&state.db, Some(&l.domain), days, limit as u64, ses_dmarc_ops::now())
            .await?;
    Ok(json(StatusCode::OK, &list))
}

/// A stored report the principal may see.
pub(crate) async fn visible_report(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<ses_dmarc_ops::reports::ReportView, ApiError> {
    let unknown = || ApiError::not_found(format!("no report `{}`", id.escape_debug()));
    if id.parse::<i64>().is_err() {
        return Err(unknown());
    }
    let view = match ses_dmarc_ops::reports::show_report(&state.db, id).await {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    if !who.tags().is_empty() {
        match views::listing_of(&state.db, &view.domain).await? {
            Some(l) if l.visible_to(who.tags()) => {}
            _ => return Err(unknown()),
        }
    }
    Ok(view)
}

async fn report(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::bad_request(format!("the report id cannot be read: {e}")))?;
    Ok(json(StatusCode::OK, &visible_report(&state, &who, &id).await?))
}

async fn events(State(state): State<Shared>, who: Principal, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), &["since", "domain", "kind", "limit"])?;
    Ok(json(StatusCode::OK, &events_query(&state, &who, &q).await?))
}

/// The events `GET /api/v1/events` gives for `since`, `domain`, `kind`, `limit`: those of
/// the domains the principal sees (and, for admins, those of no domain).
pub(crate) async fn events_query(
    state: &AppState,
    who: &Principal,
    q: &Query,
) -> Result<Vec<ses_dmarc_monitor::Event>, ApiError> {
    let since = q.time("since")?.unwrap_or(i64::MIN);
    let limit = q.int("limit", 1000, 1, 100_000)?;
    let kinds = q.all("kind");
    for k in &kinds {
        if !ses_dmarc_monitor::EventKind::ALL.iter().any(|x| x.as_str() == k) {
            return Err(ApiError::bad_request(format!("`{}` is not an event kind", k.escape_debug())));
        }
    }
    let domain = match q.get("domain") {
        Some(d) => Some(ses_dmarc_ops::check::domain(d).map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let mut found = views::events(&state.db, domain.as_deref(), &kinds, since, limit).await?;
    if !who.tags().is_empty() {
        let visible: std::collections::BTreeSet<String> = views::listing(&state.db)
            .await?
            .into_iter()
            .filter(|l| l.visible_to(who.tags()))
            .map(|l| l.domain)
            .collect();
        found.retain(|e| e.domain.as_ref().is_some_and(|d| visible.contains(d)));
    }
    Ok(found)
}

/// The body of `POST /api/v1/domains`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    domain: String,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    mail_from: Option<String>,
    #[serde(default)]
    dkim_tokens: Vec<String>,
    #[serde(default)]
    selectors: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    from_ses: bool,
}

/// Refuses a request that needs an admin, and a cookie-borne one without its CSRF token
/// (`X-CSRF-Token`), so no other site can make a signed-in browser change anything.
fn admin_change(who: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    if !who.is_admin() {
        return Err(ApiError::forbidden("only an admin may change this"));
    }
    if let Some(csrf) = &who.csrf {
        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if sent != Some(csrf.as_str()) {
            return Err(ApiError::forbidden("a signed-in browser must send the session's X-CSRF-Token header"));
        }
    }
    Ok(())
}

/// The body, refused when it is larger than `limit` (413) or not of an accepted type (415).
async fn body_of(headers: &HeaderMap, body: Body, limit: usize, types: &[&str]) -> Result<Bytes, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !types.contains(&essence.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type `{}` is not accepted here (send one of: {})",
                content_type.escape_debug(),
                types.join(", ")
            ),
        ));
    }
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {} MB", limit / (1024 * 1024)))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if c.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            cause = c.source();
        }
        ApiError::bad_request(format!("the body could not be read: {e}"))
    })
}

async fn add_domain(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    admin_change(&who, &headers)?;
    let bytes = body_of(&headers, body, 64 * 1024, &["application/json"]).await?;
    let new: NewDomain = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the body is not a domain to watch: {e}"))
    })?;
    let expectations = Expectations {
        regions: new.regions,
        mail_from: new.mail_from,
        dkim_tokens: new.dkim_tokens,
        selectors: new.selectors,
    };
    let row = watch_request(&new.domain, expectations, &new.tags, new.from_ses, "api", ses_dmarc_ops::now())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let domain = row.domain.clone();
    state.db.run(move |s| s.upsert_watched(&row)).await?;
    let listing = views::listing_of(&state.db, &domain).await?.ok_or_else(|| ApiError::not_found(domain.clone()))?;
    Ok(json(StatusCode::CREATED, &listing))
}

async fn remove_domain(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    admin_change(&who, &headers)?;
    let l = visible_domain(&state, &who, path).await?;
    let d = l.domain.clone();
    state.db.run(move |s| s.remove_watched(&d)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The content types a report upload may have.
pub(crate) const REPORT_TYPES: [&str; 8] = [
    "application/xml",
    "text/xml",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "message/rfc822",
    "application/octet-stream",
    "text/plain",
];

/// Stores an uploaded report file through the one ingest path (`reports ingest`'s).
pub(crate) async fn ingest_upload(state: &AppState, who: &Principal, name: &str, bytes: Bytes) -> InputOutcome {
    let origin = format!("upload by {}: {name}", who.user.name);
    let limits = ses_dmarc_monitor::intake::limits(&state.config);
    let outcome = state
        .db
        .run(move |s| Ok(ingest_reader(s, &origin, std::io::Cursor::new(bytes), &limits)))
        .await
        .unwrap_or_else(|e| InputOutcome::unreadable(name, &std::io::Error::other(e.to_string())));
    Counters::add(&state.counters.uploads, 1);
    Counters::add(&state.counters.uploaded_reports, outcome.reports);
    if outcome.reports > 0 {
        state.figures.invalidate();
    }
    outcome
}

async fn upload_report(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    admin_change(&who, &headers)?;
    let bytes = body_of(&headers, body, state.max_upload, &REPORT_TYPES).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body is empty: send the report file as the body"));
    }
    let outcome = ingest_upload(&state, &who, "request body", bytes).await;
    let status = if outcome.database_failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else if outcome.outcome == IngestOutcome::Failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut answer = outcomes_json(None, std::slice::from_ref(&outcome));
    if status != StatusCode::OK {
        let message = outcome.error.clone().unwrap_or_else(|| "the report was not stored".to_owned());
        answer["error"] = serde_json::json!({ "status": status.as_u16(), "message": message });
    }
    Ok(json(status, &answer))
}
