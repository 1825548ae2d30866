//! The dashboard's pages: server-rendered HTML from the same queries as the API
//! (`api::overview`, `views::*`), charts as inline SVG, forms that work without script
//! and carry the session's CSRF token.

use crate::api::{self, DomainRow, Query};
use crate::auth::{self, LOGIN_COOKIE, Principal, SESSION_COOKIE};
use crate::html::{Viewer, age, esc, page, percent, seg};
use crate::{ApiError, Counters, Shared, charts};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Multipart, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ses_dmarc_audit::Expectations;
use ses_dmarc_monitor::schedule::rfc3339;
use ses_dmarc_monitor::views::{self, REPORT_DAYS};
use ses_dmarc_monitor::watch::watch_request;
use std::fmt::Write;
use std::net::SocketAddr;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/domains/{domain}", get(domain_page))
        .route("/domains/{domain}/reports/{id}", get(report_page))
        .route("/events", get(events_page))
        .route("/admin", get(admin_page))
        .route("/admin/domains", post(admin_add_domain))
        .route("/admin/domains/remove", post(admin_remove_domain))
        .route(
            "/admin/reports",
            post(admin_upload).layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024 + 64 * 1024)),
        )
        .route("/static/app.css", get(stylesheet))
}

const CSS: &str = include_str!("assets/app.css");

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// A page that says what went wrong.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>{} {}</h1><p class=\"error\">{}</p><p><a href=\"/\">Back to the domains</a></p>",
        status.as_u16(),
        esc(status.canonical_reason().unwrap_or("Error")),
        esc(message)
    );
    html(status, page(status.canonical_reason().unwrap_or("Error"), None, &body))
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0.status, &self.0.message)
    }
}

/// An [`ApiError`] shown as a page.
pub(crate) struct PageError(ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

fn viewer(who: &Principal) -> Viewer<'_> {
    Viewer { name: &who.user.name, admin: who.is_admin(), csrf: who.csrf.as_deref() }
}

fn verdict_badge(verdict: Option<bool>, checked: bool) -> &'static str {
    match (verdict, checked) {
        (Some(true), _) => "<span class=\"badge ok\">passes</span>",
        (Some(false), _) => "<span class=\"badge bad\">fails</span>",
        (None, true) => "<span class=\"badge unknown\">unknown</span>",
        (None, false) => "<span class=\"badge muted\">not checked yet</span>",
    }
}

fn when(t: Option<&str>, now: i64) -> String {
    match t.and_then(ses_dmarc_monitor::schedule::parse_rfc3339) {
        Some(secs) => format!("<time datetime=\"{}\">{} ago</time>", esc(t.unwrap_or_default()), esc(&age(now - secs))),
        None => "never".into(),
    }
}

// ---- login ----

fn login_body(next: &str, csrf: &str, message: Option<&str>) -> String {
    let mut h = String::from("<section class=\"login\"><h1>Sign in</h1>");
    if let Some(m) = message {
        let _ = write!(h, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    let _ = write!(
        h,
        "<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"muted\">No account? An admin adds one: <code>ses-dmarc user add NAME --role viewer</code>.</p></section>",
        esc(csrf),
        esc(next)
    );
    h
}

/// Only a path of this site is a place to go after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

fn login_page(state: &Shared, next: &str, message: Option<&str>, status: StatusCode) -> Response {
    let csrf = auth::random_token(16);
    let mut r = html(status, page("Sign in", None, &login_body(next, &csrf, message)));
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(LOGIN_COOKIE, &csrf, 3600, state.secure_cookies)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn login_form(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let fields = form_fields(q.unwrap_or_default().as_bytes());
    login_page(&state, &safe_next(field(&fields, "next")), None, StatusCode::OK)
}

/// A form's fields (`application/x-www-form-urlencoded`), refused beyond 64 KB.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Refuses a form posted from another site: `Sec-Fetch-Site` and `Origin`, when the
/// browser sends them, must say this site.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = || ApiError::forbidden("this form was sent from another site; open the page here and send it again");
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refuse());
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin == "null" || origin_host != host {
            return Err(refuse());
        }
    }
    Ok(())
}

/// A signed-in form: same origin, and the session's CSRF token in the `csrf` field.
fn check_form(who: &Principal, headers: &HeaderMap, fields: &[(String, String)]) -> Result<(), ApiError> {
    same_origin(headers)?;
    match &who.csrf {
        Some(csrf) if field(fields, "csrf") == Some(csrf.as_str()) => Ok(()),
        Some(_) => {
            Err(ApiError::forbidden("the form's CSRF token is missing or old: reload the page and send it again"))
        }
        None => Err(ApiError::forbidden("forms need a signed-in browser session, not a bearer token")),
    }
}

async fn read_form(body: axum::body::Body) -> Result<Vec<(String, String)>, ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is larger than 64 KB"))?;
    Ok(form_fields(&bytes))
}

async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let fields = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return PageError(e).into_response(),
    };
    let next = safe_next(field(&fields, "next"));
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let expected = auth::cookie(cookies, LOGIN_COOKIE);
    if same_origin(&headers).is_err() || expected.is_none() || expected != field(&fields, "csrf") {
        return login_page(
            &state,
            &next,
            Some("The sign-in form expired or came from elsewhere: please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = field(&fields, "user").unwrap_or_default().trim().to_string();
    let password = field(&fields, "password").unwrap_or_default().to_string();
    let address = peer.ip().to_string();
    if let Err(wait) = state.limiter.check(&address, &user) {
        let message = format!("Too many failed sign-ins: wait {} and try again.", age(wait as i64));
        let mut r = login_page(&state, &next, Some(&message), StatusCode::TOO_MANY_REQUESTS);
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    let name = user.clone();
    let found = match state.db.run(move |s| s.user_with_hash(&name)).await {
        Ok(f) => f,
        Err(e) => return PageError(e.into()).into_response(),
    };
    let hash = found.as_ref().map(|(_, h)| h.clone()).unwrap_or_else(|| auth::decoy_hash().to_string());
    let matches = tokio::task::spawn_blocking(move || auth::password_matches(&password, &hash)).await.unwrap_or(false);
    let Some((user_row, _)) = found.filter(|_| matches) else {
        state.limiter.failed(&address, &user);
        Counters::add(&state.counters.logins_failed, 1);
        return login_page(&state, &next, Some("Wrong user name or password."), StatusCode::UNAUTHORIZED);
    };
    state.limiter.succeeded(&address, &user);
    let secret = auth::random_token(32);
    let csrf = auth::random_token(24);
    let now = ses_dmarc_ops::now();
    let hours = i64::from(state.config.session_hours.max(1));
    let expires = now + hours * 3600;
    let (d, u) = (auth::digest(&secret), user_row.name.clone());
    if let Err(e) = state.db.run(move |s| s.create_session(&d, &u, &csrf, now, expires)).await {
        return PageError(e.into()).into_response();
    }
    let mut r = Redirect::to(&next).into_response();
    let cookies = [
        auth::set_cookie(SESSION_COOKIE, &secret, hours * 3600, state.secure_cookies),
        auth::set_cookie(LOGIN_COOKIE, "", 0, state.secure_cookies),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

async fn logout(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PageError> {
    let fields = read_form(body).await?;
    check_form(&who, &headers, &fields)?;
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(secret) = auth::cookie(cookies, SESSION_COOKIE) {
        let d = auth::digest(secret);
        state.db.run(move |s| s.end_session(&d)).await?;
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

// ---- the overview ----

fn overview_row(h: &mut String, r: &DomainRow, now: i64) {
    let l = &r.listing;
    let _ = write!(
        h,
        "<tr class=\"attention-{}\"><td><a href=\"/domains/{}\">{}</a>",
        r.attention,
        seg(&l.domain),
        esc(&l.domain)
    );
    for t in &l.tags {
        let _ = write!(h, " <a class=\"tag\" href=\"/?tag={}\">{}</a>", seg(t), esc(t));
    }
    let _ = write!(
        h,
        "</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
        verdict_badge(l.verdict, l.last_checked.is_some()),
        esc(l.rollout_stage.as_deref().unwrap_or("–")),
        l.errors,
        l.warnings
    );
    let _ = write!(
        h,
        "<td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&percent(r.reports.pass_rate)),
        charts::sparkline(&r.reports.daily, REPORT_DAYS, now),
        when(l.last_checked.as_deref(), now),
        when(r.last_report_end.as_deref(), now),
    );
}

async fn overview(State(state): State<Shared>, who: Principal, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = Query::parse(q.as_deref(), &["tag", "q"])?;
    let (tag, search) = (q.get("tag").filter(|t| !t.is_empty()), q.get("q"));
    let rows = api::overview(&state, &who, tag, search).await?;
    let now = ses_dmarc_ops::now();
    let mut h = String::with_capacity(256 + rows.len() * 1200);
    let failing = rows.iter().filter(|r| r.attention == 0).count();
    let _ = write!(
        h,
        "<h1>Domains</h1><p class=\"summary\">{} watched · <strong>{}</strong> need attention</p>",
        rows.len(),
        failing
    );
    let _ = write!(
        h,
        "<form class=\"filter\" method=\"get\" action=\"/\"><label>Search <input name=\"q\" value=\"{}\" placeholder=\"example.com\"></label>\
         <label>Tag <input name=\"tag\" value=\"{}\"></label><button type=\"submit\">Filter</button></form>",
        esc(search.unwrap_or_default()),
        esc(tag.unwrap_or_default())
    );
    if rows.is_empty() {
        h.push_str("<p>No domain to show. Watch one: <code>ses-dmarc watch add example.com --region us-east-1</code>, or Admin → Add a domain.</p>");
    } else {
        h.push_str(
            "<div class=\"scroll\"><table class=\"domains\"><thead><tr><th>Domain</th><th>SES mail</th><th>Rollout</th>\
             <th>Errors</th><th>Warnings</th><th>DMARC pass (30 d)</th><th>Trend</th><th>Checked</th><th>Last report</th></tr></thead><tbody>",
        );
        for r in &rows {
            overview_row(&mut h, r, now);
        }
        h.push_str("</tbody></table></div>");
    }
    Ok(html(StatusCode::OK, page("Domains", Some(&viewer(&who)), &h)))
}

// ---- a domain ----

fn findings_section(h: &mut String, check: Option<&serde_json::Value>) {
    h.push_str("<section><h2>Findings</h2>");
    let Some(check) = check else {
        h.push_str("<p>Not checked yet: the next watch pass checks it.</p></section>");
        return;
    };
    let reason = check["verdict"]["reason"].as_str().unwrap_or_default();
    let _ = write!(h, "<p class=\"verdict\">{}</p>", esc(reason));
    let findings = check["findings"].as_array().map(Vec::as_slice).unwrap_or_default();
    if findings.is_empty() {
        h.push_str("<p class=\"ok\">No findings.</p>");
    } else {
        h.push_str("<ul class=\"findings\">");
        for f in findings {
            let severity = f["severity"].as_str().unwrap_or("info");
            let _ = write!(
                h,
                "<li class=\"finding {}\"><span class=\"sev\">{}</span> <code>{}</code> <span class=\"name\">{}</span><p>{}</p>",
                esc(severity),
                esc(severity),
                esc(f["code"].as_str().unwrap_or_default()),
                esc(f["name"].as_str().unwrap_or_default()),
                esc(f["message"].as_str().unwrap_or_default())
            );
            if let Some(fix) = f["fix"].as_str() {
                let _ = write!(h, "<p class=\"fix\">Fix: <code>{}</code></p>", esc(fix));
            }
            h.push_str("</li>");
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

fn rollout_section(h: &mut String, rollout: Option<&ses_dmarc_reports::rollout::Rollout>) {
    h.push_str("<section><h2>Rollout</h2>");
    let Some(r) = rollout else {
        h.push_str("<p>Not checked yet.</p></section>");
        return;
    };
    let status = serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let _ = write!(
        h,
        "<p>Stage <strong>{}</strong> · <span class=\"status {}\">{}</span></p>",
        esc(r.stage.as_str()),
        esc(&status),
        esc(&status)
    );
    if let Some(current) = &r.current_record {
        let _ = write!(h, "<p>Published: <code>{}</code></p>", esc(current));
    }
    if let Some(next) = &r.next {
        let _ = write!(
            h,
            "<p>Next record: <code class=\"record\">_dmarc.{} TXT \"{}\"</code></p><p>{}</p><ul class=\"muted\"><li>Not before {}.</li><li>RFC 7489 receivers: {}.</li><li>RFC 9989 receivers: {}.</li></ul>",
            esc(&r.domain),
            esc(&next.record),
            esc(&next.why),
            esc(&next.not_before),
            esc(&next.rfc7489.explanation),
            esc(&next.rfc9989.explanation),
        );
    }
    if !r.blockers.is_empty() {
        h.push_str("<ul class=\"blockers\">");
        for b in &r.blockers {
            let _ = write!(h, "<li><code>{}</code> {}</li>", esc(b.code), esc(&b.message));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

fn sources_section(h: &mut String, s: &ses_dmarc_reports::summary::Summary) {
    h.push_str("<section><h2>Who sends as this domain (30 days)</h2>");
    if s.groups.is_empty() {
        h.push_str("<p>No aggregate report yet.</p></section>");
        return;
    }
    h.push_str(
        "<div class=\"scroll\"><table class=\"sources\"><thead><tr><th>Sender</th><th>Kind</th><th>Addresses</th><th>Messages</th>\
         <th>DMARC pass</th><th>SPF aligned</th><th>DKIM aligned</th></tr></thead><tbody>",
    );
    for g in s.groups.iter().take(200) {
        let kind = serde_json::to_value(g.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let rate = |n: u64| percent((g.messages > 0).then(|| n as f64 / g.messages as f64));
        let label = match (&g.org, g.asn) {
            (Some(org), _) => format!("{} ({})", g.group, org),
            (None, Some(asn)) => format!("{} (AS{asn})", g.group),
            _ => g.group.clone(),
        };
        let _ = write!(
            h,
            "<tr class=\"kind-{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&kind),
            esc(&label),
            esc(&kind),
            g.addresses,
            g.messages,
            esc(&rate(g.dmarc_pass)),
            esc(&rate(g.spf_aligned)),
            esc(&rate(g.dkim_aligned)),
        );
    }
    h.push_str("</tbody></table></div></section>");
}

/// `local@domain` → `…@domain`, unless shown in full.
fn redact(address: &str, reveal: bool) -> String {
    if reveal {
        return address.to_string();
    }
    match address.rsplit_once('@') {
        Some((_, domain)) => format!("…@{domain}"),
        None => "…".into(),
    }
}

fn failures_section(
    h: &mut String,
    domain: &str,
    failures: &[ses_dmarc_reports::failure::FailureReport],
    admin: bool,
    reveal: bool,
) {
    h.push_str("<section><h2>Failure reports</h2>");
    if failures.is_empty() {
        h.push_str("<p>None in 30 days.</p></section>");
        return;
    }
    if admin && !reveal {
        let _ = write!(
            h,
            "<p class=\"muted\">Local parts are hidden. <a href=\"/domains/{}?reveal=1\">Show them</a></p>",
            seg(domain)
        );
    } else if !admin {
        h.push_str("<p class=\"muted\">Local parts are hidden (admins can show them).</p>");
    }
    h.push_str(
        "<div class=\"scroll\"><table class=\"failures\"><thead><tr><th>Arrived</th><th>Source</th><th>From</th><th>To</th>\
         <th>Failure</th><th>Reporter</th></tr></thead><tbody>",
    );
    for f in failures.iter().rev().take(100) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.arrival_date.map(rfc3339).unwrap_or_default()),
            esc(f.source_ip.as_deref().unwrap_or_default()),
            esc(&redact(f.original_mail_from.as_deref().unwrap_or_default(), reveal)),
            esc(&redact(f.original_rcpt_to.as_deref().unwrap_or_default(), reveal)),
            esc(f.auth_failure.as_deref().unwrap_or_default()),
            esc(f.reporting_mta.as_deref().or(f.user_agent.as_deref()).unwrap_or_default()),
        );
    }
    h.push_str("</tbody></table></div></section>");
}

fn history_section(h: &mut String, history: &views::History) {
    h.push_str("<section><h2>DNS history</h2>");
    let changes: Vec<&ses_dmarc_monitor::Event> = history
        .events
        .iter()
        .filter(|e| {
            use ses_dmarc_monitor::EventKind::*;
            matches!(e.kind, RecordChanged | FindingRaised | FindingResolved | DnsUnknown)
        })
        .collect();
    let _ = write!(h, "<p class=\"muted\">{} distinct sets of answers seen.</p>", history.snapshots.len());
    if changes.is_empty() {
        h.push_str("<p>No change seen since watching began.</p>");
    } else {
        h.push_str("<ol class=\"timeline\">");
        for e in changes.iter().rev().take(100) {
            let _ = write!(
                h,
                "<li class=\"{}\"><time>{}</time> <span class=\"kind\">{}</span> {}",
                esc(e.kind.as_str()),
                esc(&e.at),
                esc(e.kind.as_str()),
                esc(&e.message)
            );
            if let (Some(before), Some(after)) = (&e.before, &e.after) {
                let _ = write!(h, "<div class=\"diff\"><del>{}</del><ins>{}</ins></div>", esc(before), esc(after));
            }
            h.push_str("</li>");
        }
        h.push_str("</ol>");
    }
    h.push_str("</section>");
}

fn reports_section(h: &mut String, domain: &str, list: &ses_dmarc_ops::reports::ReportList) {
    h.push_str("<section><h2>Aggregate reports (30 days)</h2>");
    if list.reports.is_empty() {
        h.push_str("<p>None yet.</p></section>");
        return;
    }
    h.push_str("<div class=\"scroll\"><table class=\"reports\"><thead><tr><th>Reporter</th><th>Period</th><th>Messages</th><th>DMARC pass</th></tr></thead><tbody>");
    for r in &list.reports {
        let _ = write!(
            h,
            "<tr><td><a href=\"/domains/{}/reports/{}\">{}</a></td><td>{} – {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            seg(domain),
            r.id,
            esc(&r.reporter),
            esc(&rfc3339(r.begin)),
            esc(&rfc3339(r.end)),
            r.messages,
            esc(&percent((r.messages > 0).then_some(r.pass_rate))),
        );
    }
    let _ = write!(
        h,
        "</tbody></table></div><p class=\"muted\">{} of {} shown.</p></section>",
        list.reports.len(),
        list.total
    );
}

async fn domain_page(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let q = Query::parse(q.as_deref(), &["reveal"])?;
    let l = api::visible_domain(&state, &who, path).await?;
    let reveal = who.is_admin() && q.get("reveal") == Some("1");
    let now = ses_dmarc_ops::now();
    let d = l.domain.clone();
    let (check, summary, history, reports) = tokio::join!(
        views::latest_check(&state.db, &d),
        views::recent_summary(&state.db, &d, REPORT_DAYS, now),
        views::history(&state.db, &d, now - 365 * 86_400, 2000),
        ses_dmarc_ops::reports::list_reports(&state.db, Some(&d), REPORT_DAYS, 50, now),
    );
    let (check, summary, history, reports) = (check?, summary?, history?, reports?);
    let rollout = views::rollout_from(&state.db, &d, &summary, now).await?;
    let failures = views::failure_reports(&state.db, &d, now - REPORT_DAYS * 86_400).await?;
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<h1>{} {}</h1><p class=\"summary\">Rollout stage <strong>{}</strong> · {} errors · {} warnings · checked {} · last report {}",
        esc(&l.domain),
        verdict_badge(l.verdict, l.last_checked.is_some()),
        esc(l.rollout_stage.as_deref().unwrap_or("–")),
        l.errors,
        l.warnings,
        when(l.last_checked.as_deref(), now),
        esc(&if summary.to > 0 { format!("{} ago", age(now - summary.to)) } else { "never".into() }),
    );
    for t in &l.tags {
        let _ = write!(h, " <a class=\"tag\" href=\"/?tag={}\">{}</a>", seg(t), esc(t));
    }
    h.push_str("</p>");
    findings_section(&mut h, check.as_ref());
    let _ = write!(
        h,
        "<section><h2>Messages per day</h2><p>{} messages in 30 days, {} pass DMARC ({}).</p>{}<p class=\"legend\"><span class=\"key pass\"></span>pass <span class=\"key fail\"></span>fail</p></section>",
        summary.messages,
        summary.dmarc_pass,
        esc(&percent((summary.messages > 0).then(|| summary.dmarc_pass as f64 / summary.messages as f64))),
        charts::stacked_days(&summary.daily, REPORT_DAYS, now)
    );
    rollout_section(&mut h, rollout.as_ref());
    sources_section(&mut h, &summary);
    failures_section(&mut h, &l.domain, &failures, who.is_admin(), reveal);
    history_section(&mut h, &history);
    reports_section(&mut h, &l.domain, &reports);
    Ok(html(StatusCode::OK, page(&l.domain, Some(&viewer(&who)), &h)))
}

async fn report_page(
    State(state): State<Shared>,
    who: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, PageError> {
    let Path((domain, id)) = path.map_err(|e| ApiError::bad_request(format!("the URL cannot be read: {e}")))?;
    let r = api::visible_report(&state, &who, &id).await?;
    if ses_dmarc_ops::check::domain(&domain).ok().as_deref() != Some(r.domain.as_str()) {
        return Err(ApiError::not_found(format!("no report `{id}` for this domain")).into());
    }
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<p><a href=\"/domains/{}\">← {}</a></p><h1>Report {} from {}</h1><p class=\"summary\">{} – {} · {} messages · {} pass DMARC · published <code>p={}</code> · received as {}</p>",
        seg(&r.domain),
        esc(&r.domain),
        esc(&r.report_id),
        esc(&r.reporter),
        esc(&rfc3339(r.begin)),
        esc(&rfc3339(r.end)),
        r.messages,
        r.dmarc_pass,
        esc(r.policy.p.as_deref().unwrap_or("(none)")),
        esc(&r.origin),
    );
    h.push_str(
        "<div class=\"scroll\"><table class=\"records\"><thead><tr><th>Source</th><th>Sender</th><th>Messages</th><th>Disposition</th>\
         <th>Header From</th><th>Envelope From</th><th>DKIM</th><th>SPF</th><th>DMARC</th></tr></thead><tbody>",
    );
    for rec in &r.records {
        let dkim: Vec<String> = rec.dkim.iter().map(|d| format!("{} {}", d.domain, d.result)).collect();
        let spf: Vec<String> = rec.spf.iter().map(|s| format!("{} {}", s.domain, s.result)).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&rec.source_ip),
            esc(&rec.source),
            rec.count,
            esc(rec.disposition.as_deref().unwrap_or_default()),
            esc(&rec.header_from),
            esc(rec.envelope_from.as_deref().unwrap_or_default()),
            esc(&dkim.join(", ")),
            esc(&spf.join(", ")),
            if rec.dmarc_pass { "pass" } else { "fail" },
        );
    }
    h.push_str("</tbody></table></div>");
    let json = serde_json::to_string_pretty(&r).unwrap_or_default();
    let _ = write!(
        h,
        "<details><summary>The report as stored (JSON; the original XML is not kept)</summary><pre>{}</pre></details>",
        esc(&json)
    );
    Ok(html(StatusCode::OK, page(&format!("Report {}", r.report_id), Some(&viewer(&who)), &h)))
}

// ---- events ----

async fn events_page(
    State(state): State<Shared>,
    who: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let raw = q.unwrap_or_default();
    let q = Query::parse(Some(&raw), &["domain", "kind", "severity", "days"])?;
    let days = q.int("days", 30, 1, 3660)?;
    let kinds = q.all("kind");
    let severity = q.get("severity").filter(|s| !s.is_empty()).map(str::to_string);
    let domain_filter = q.get("domain").filter(|d| !d.is_empty()).map(str::to_string);
    let mut query = String::from("since=");
    let _ = write!(query, "{}", seg(&rfc3339(ses_dmarc_ops::now() - days * 86_400)));
    for k in &kinds {
        let _ = write!(query, "&kind={}", seg(k));
    }
    if let Some(d) = &domain_filter {
        let _ = write!(query, "&domain={}", seg(d));
    }
    let events = events_for(&state, &who, &query).await?;
    let events: Vec<&ses_dmarc_monitor::Event> = events
        .iter()
        .filter(|e| {
            severity.as_deref().is_none_or(|s| {
                serde_json::to_value(e.severity).ok().and_then(|v| v.as_str().map(|x| x == s)) == Some(true)
            })
        })
        .collect();
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<h1>Events</h1><form class=\"filter\" method=\"get\" action=\"/events\">");
    let _ = write!(
        h,
        "<label>Domain <input name=\"domain\" value=\"{}\"></label>",
        esc(domain_filter.as_deref().unwrap_or_default())
    );
    h.push_str("<label>Kind <select name=\"kind\"><option value=\"\">any</option>");
    for k in ses_dmarc_monitor::EventKind::ALL {
        let selected = if kinds.iter().any(|x| x == k.as_str()) { " selected" } else { "" };
        let _ = write!(h, "<option{selected}>{}</option>", k.as_str());
    }
    h.push_str("</select></label><label>Severity <select name=\"severity\"><option value=\"\">any</option>");
    for s in ["error", "warning", "info"] {
        let selected = if severity.as_deref() == Some(s) { " selected" } else { "" };
        let _ = write!(h, "<option{selected}>{s}</option>");
    }
    let _ = write!(
        h,
        "</select></label><label>Days <input name=\"days\" type=\"number\" min=\"1\" value=\"{days}\"></label><button type=\"submit\">Filter</button></form>"
    );
    if events.is_empty() {
        h.push_str("<p>No event matches.</p>");
    } else {
        h.push_str("<div class=\"scroll\"><table class=\"events\"><thead><tr><th>When</th><th>Domain</th><th>Kind</th><th>Message</th><th>Fix</th></tr></thead><tbody>");
        for e in events.iter().rev().take(1000) {
            let sev =
                serde_json::to_value(e.severity).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let domain = e.domain.as_deref().unwrap_or_default();
            let _ = write!(
                h,
                "<tr class=\"{}\"><td>{}</td><td><a href=\"/domains/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&sev),
                esc(&e.at),
                seg(domain),
                esc(domain),
                esc(e.kind.as_str()),
                esc(&e.message),
                esc(e.fix.as_deref().unwrap_or_default()),
            );
        }
        h.push_str("</tbody></table></div>");
    }
    Ok(html(StatusCode::OK, page("Events", Some(&viewer(&who)), &h)))
}

/// The events the API's `GET /api/v1/events?{query}` gives this principal.
async fn events_for(state: &Shared, who: &Principal, query: &str) -> Result<Vec<ses_dmarc_monitor::Event>, ApiError> {
    let q = Query::parse(Some(query), &["since", "domain", "kind", "limit"])?;
    api::events_query(state, who, &q).await
}

// ---- admin ----

async fn admin_page(State(state): State<Shared>, who: Principal) -> Result<Response, PageError> {
    if !who.is_admin() {
        return Err(ApiError::forbidden("only an admin may open this page").into());
    }
    Ok(html(StatusCode::OK, admin_html(&state, &who, None).await?))
}

async fn admin_html(state: &Shared, who: &Principal, message: Option<(&str, bool)>) -> Result<String, ApiError> {
    let csrf = who.csrf.as_deref().unwrap_or_default();
    let listing = views::listing(&state.db).await?;
    let mut h = String::from("<h1>Admin</h1>");
    if let Some((m, ok)) = message {
        let _ = write!(h, "<p class=\"{}\" role=\"status\">{}</p>", if ok { "ok" } else { "error" }, esc(m));
    }
    let _ = write!(
        h,
        "<section><h2>Watch a domain</h2><form method=\"post\" action=\"/admin/domains\" class=\"stack\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Domain <input name=\"domain\" required placeholder=\"example.com\"></label>\
         <label>SES regions <input name=\"regions\" placeholder=\"us-east-1, eu-west-1\"></label>\
         <label>MAIL FROM <input name=\"mail_from\" placeholder=\"mail\"></label>\
         <label>Easy DKIM tokens <input name=\"dkim_tokens\" placeholder=\"three tokens, comma-separated\"></label>\
         <label>Tags <input name=\"tags\" placeholder=\"client-a\"></label>\
         <button type=\"submit\">Watch</button></form></section>",
        csrf = esc(csrf)
    );
    let _ = write!(
        h,
        "<section><h2>Upload a report</h2><form method=\"post\" action=\"/admin/reports\" enctype=\"multipart/form-data\" class=\"stack\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Aggregate or failure report (XML, .gz, .zip, .eml; up to {} MB) <input type=\"file\" name=\"report\" required></label>\
         <button type=\"submit\">Upload</button></form></section>",
        esc(csrf),
        state.max_upload / (1024 * 1024)
    );
    h.push_str("<section><h2>Watched domains</h2><div class=\"scroll\"><table><thead><tr><th>Domain</th><th>Added by</th><th>Tags</th><th></th></tr></thead><tbody>");
    for l in &listing {
        let _ = write!(
            h,
            "<tr><td><a href=\"/domains/{}\">{}</a></td><td>{}</td><td>{}</td><td>",
            seg(&l.domain),
            esc(&l.domain),
            esc(&l.source),
            esc(&l.tags.join(", "))
        );
        if l.source == "config" {
            h.push_str("<span class=\"muted\">in the configuration file</span>");
        } else {
            let _ = write!(
                h,
                "<form method=\"post\" action=\"/admin/domains/remove\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"domain\" value=\"{}\"><button type=\"submit\" class=\"danger\">Stop watching</button></form>",
                esc(csrf),
                esc(&l.domain)
            );
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</tbody></table></div></section>");
    Ok(page("Admin", Some(&viewer(who)), &h))
}

fn list_field(fields: &[(String, String)], name: &str) -> Vec<String> {
    field(fields, name)
        .unwrap_or_default()
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn admin_add_domain(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PageError> {
    if !who.is_admin() {
        return Err(ApiError::forbidden("only an admin may add a domain").into());
    }
    let fields = read_form(body).await?;
    check_form(&who, &headers, &fields)?;
    let expectations = Expectations {
        regions: list_field(&fields, "regions"),
        mail_from: field(&fields, "mail_from").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string),
        dkim_tokens: list_field(&fields, "dkim_tokens"),
        selectors: Vec::new(),
    };
    let domain = field(&fields, "domain").unwrap_or_default();
    let row =
        match watch_request(domain, expectations, &list_field(&fields, "tags"), false, "api", ses_dmarc_ops::now()) {
            Ok(r) => r,
            Err(e) => {
                let page = admin_html(&state, &who, Some((&e.to_string(), false))).await?;
                return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, page));
            }
        };
    let name = row.domain.clone();
    state.db.run(move |s| s.upsert_watched(&row)).await?;
    let message = format!("Watching {name}: it is checked on the next pass.");
    Ok(html(StatusCode::OK, admin_html(&state, &who, Some((&message, true))).await?))
}

async fn admin_remove_domain(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, PageError> {
    if !who.is_admin() {
        return Err(ApiError::forbidden("only an admin may remove a domain").into());
    }
    let fields = read_form(body).await?;
    check_form(&who, &headers, &fields)?;
    let domain = field(&fields, "domain").unwrap_or_default().to_string();
    let d = domain.clone();
    let removed = state.db.run(move |s| s.remove_watched(&d)).await?;
    let message = if removed {
        format!("{domain} is no longer watched (its history is kept).")
    } else {
        format!("{domain} was not watched.")
    };
    Ok(html(StatusCode::OK, admin_html(&state, &who, Some((&message, removed))).await?))
}

async fn admin_upload(
    State(state): State<Shared>,
    who: Principal,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    if !who.is_admin() {
        return Err(ApiError::forbidden("only an admin may upload reports").into());
    }
    same_origin(&headers)?;
    let mut multipart = multipart
        .map_err(|e| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("the upload is not a form: {e}")))?;
    let mut csrf = None;
    let mut file: Option<(String, axum::body::Bytes)> = None;
    loop {
        let next = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::new(e.status(), format!("the upload could not be read: {}", e.body_text())))?;
        let Some(f) = next else { break };
        match f.name() {
            Some("csrf") => csrf = Some(f.text().await.map_err(|e| ApiError::new(e.status(), e.body_text()))?),
            Some("report") => {
                let name = f.file_name().unwrap_or("upload").to_string();
                let bytes = f
                    .bytes()
                    .await
                    .map_err(|e| ApiError::new(e.status(), format!("the file could not be read: {}", e.body_text())))?;
                if bytes.len() > state.max_upload {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the file is larger than {} MB", state.max_upload / (1024 * 1024)),
                    )
                    .into());
                }
                file = Some((name, bytes));
            }
            _ => {}
        }
    }
    check_form(&who, &headers, &[("csrf".to_string(), csrf.unwrap_or_default())])?;
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return Ok(html(
            StatusCode::BAD_REQUEST,
            admin_html(&state, &who, Some(("Choose a report file to upload.", false))).await?,
        ));
    };
    let outcome = api::ingest_upload(&state, &who, &name, bytes).await;
    let ok = outcome.reports + outcome.duplicates > 0;
    let message = format!(
        "{}: {} report(s) stored, {} already stored, {} failed{}",
        name,
        outcome.reports,
        outcome.duplicates,
        outcome.failed,
        outcome.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    let status = if ok { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(html(status, admin_html(&state, &who, Some((&message, ok))).await?))
}
