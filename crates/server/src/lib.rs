//! `ses-dmarc serve`: the dashboard (server-rendered HTML with SVG charts, no script),
//! the JSON API under `/api/v1/` (described by `/api/v1/openapi.json`), `/health`,
//! `/metrics`, the login, and the schedules that run `watch` and `intake` passes. Every
//! figure comes from the same functions the commands use (`ses_dmarc_monitor::views`,
//! `ses_dmarc_ops`), so a page, the API and the command line never disagree.

mod api;
mod auth;
mod charts;
pub mod demo;
mod figures;
mod html;
mod jobs;
mod metrics;
mod pages;

pub use auth::{ROLES, UserError, create_token, hash_password, new_user};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ses_dmarc_monitor::Config;
use ses_dmarc_monitor::workers::Worker;
use ses_dmarc_store::Database;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What went wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot be served (the message says what to change).
    #[error("{0}")]
    Config(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] ses_dmarc_store::StoreError),
}

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Run the `watch` and `intake` schedules (off: only the web server).
    pub schedules: bool,
}

/// Counters `/metrics` shows beside what the store counts.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) watch_passes: AtomicU64,
    pub(crate) checks: AtomicU64,
    pub(crate) check_errors: AtomicU64,
    pub(crate) intake_passes: AtomicU64,
    pub(crate) intake_messages: AtomicU64,
    pub(crate) intake_reports: AtomicU64,
    pub(crate) intake_failed: AtomicU64,
    pub(crate) intake_source_errors: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) uploaded_reports: AtomicU64,
    pub(crate) logins_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What every request can reach.
pub(crate) struct AppState {
    pub(crate) db: Database,
    pub(crate) config: Config,
    pub(crate) secure_cookies: bool,
    pub(crate) limiter: auth::LoginLimiter,
    pub(crate) figures: figures::Figures,
    pub(crate) counters: Counters,
    /// The largest request body taken (a report upload), in bytes.
    pub(crate) max_upload: usize,
    /// This process as a worker, when it runs the schedules.
    pub(crate) worker: Option<Arc<Worker>>,
}

type Shared = Arc<AppState>;

/// An answer of the API that is not a success: `{"error": {"status", "message"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, what)
    }

    pub(crate) fn bad_request(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, what)
    }

    pub(crate) fn forbidden(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, what)
    }
}

impl From<ses_dmarc_store::StoreError> for ApiError {
    fn from(e: ses_dmarc_store::StoreError) -> Self {
        let status = match e {
            ses_dmarc_store::StoreError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<ses_dmarc_ops::OpsError> for ApiError {
    fn from(e: ses_dmarc_ops::OpsError) -> Self {
        let status = if e.is_not_found() {
            StatusCode::NOT_FOUND
        } else if matches!(e, ses_dmarc_ops::OpsError::Input(_) | ses_dmarc_ops::OpsError::Plan(_)) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"status": self.status.as_u16(), "message": self.message}});
        let mut r = (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"ses-dmarc\""));
        }
        r
    }
}

/// Whether a request is for the API (JSON errors) rather than a page (HTML errors).
pub(crate) fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

impl FromRequestParts<Shared> for auth::Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().to_string();
        match authenticate(state, &parts.headers).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) if is_api(&path) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "sign in: send `Authorization: Bearer <token>` (`ses-dmarc token create --user NAME` makes one)",
            )
            .into_response()),
            Ok(None) => {
                let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                Err(Redirect::to(&format!("/login?next={}", html::seg(next))).into_response())
            }
            Err(e) if is_api(&path) => Err(e.into_response()),
            Err(e) => Err(pages::error_page(e.status, &e.message)),
        }
    }
}

/// The principal behind a request's bearer token or session cookie, if any. A bearer
/// token that matches nothing is refused outright (not treated as no credentials).
async fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<Option<auth::Principal>, ApiError> {
    let now = ses_dmarc_ops::now();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        let Some(token) = text.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "the Authorization header must be `Bearer <token>`"));
        };
        let d = auth::digest(token);
        return match state.db.run(move |s| s.token_user(&d, now)).await? {
            Some(user) => Ok(Some(auth::Principal { user, csrf: None })),
            None => {
                Err(ApiError::new(StatusCode::UNAUTHORIZED, "this token is not valid (revoked, or never made here)"))
            }
        };
    }
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(secret) = auth::cookie(cookies, auth::SESSION_COOKIE) else { return Ok(None) };
    let d = auth::digest(secret);
    let session = state.db.run(move |s| s.session(&d, now)).await?;
    Ok(session.map(|s| auth::Principal { user: s.user, csrf: Some(s.csrf) }))
}

/// Security headers on every answer: no script at all, no framing, no sniffing.
async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(request).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn router(state: Shared) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .merge(metrics::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if is_api(uri.path()) {
        ApiError::not_found(format!("no such resource: {}", uri.path())).into_response()
    } else {
        pages::error_page(StatusCode::NOT_FOUND, "There is no such page.")
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("{method} is not allowed on {}", uri.path());
    if is_api(uri.path()) {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message).into_response()
    } else {
        pages::error_page(StatusCode::METHOD_NOT_ALLOWED, &message)
    }
}

/// Whether cookies need `Secure`: as configured, else whenever the address is not loopback
/// (a server reachable from elsewhere sits behind TLS).
fn secure_cookies(config: &Config, listen: &SocketAddr) -> bool {
    config.secure_cookies.unwrap_or(!listen.ip().is_loopback())
}

/// Serves until SIGTERM or Ctrl-C: binds `listen`, says so through `on_listening`, runs
/// the schedules when asked, and on the signal stops taking requests, lets the running
/// pass finish, and returns.
pub async fn serve(
    db: Database,
    config: Config,
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .map_err(|e| ServeError::Listen { address: options.listen.clone(), reason: e.to_string() })?;
    let address = listener
        .local_addr()
        .map_err(|e| ServeError::Listen { address: options.listen.clone(), reason: e.to_string() })?;
    let max_upload = (config.intake_max_size_mb.clamp(1, 64) * 1024 * 1024) as usize;
    let worker = match options.schedules {
        true => Some(Arc::new(Worker::start(&db, "serve", config.schedule.lease).await?)),
        false => None,
    };
    let state = Arc::new(AppState {
        worker: worker.clone(),
        secure_cookies: secure_cookies(&config, &address),
        db,
        config,
        limiter: auth::LoginLimiter::default(),
        figures: figures::Figures::default(),
        counters: Counters::default(),
        max_upload,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(figures::keep_fresh(state.clone(), stopped.clone()));
    if options.schedules {
        jobs::start(&state, &stopped, &mut tasks)?;
    }
    // Listening for SIGTERM from here on: a signal that comes right after the line that
    // says the server listens still stops it cleanly.
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    on_listening(address);
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown({
            let worker = worker.clone();
            async move {
                shutdown_signal(terminate).await;
                if let Some(w) = &worker {
                    w.request_stop();
                }
                let _ = stop.send(true);
            }
        })
        .await;
    // The schedules finish the checks they hold (claiming no more), then everything this
    // worker still holds is given back for the others.
    while tasks.join_next().await.is_some() {}
    if let Some(w) = &worker
        && let Err(e) = w.stop().await
    {
        log(&format!("could not release this worker's claims (they expire by themselves): {e}"));
    }
    result.map_err(|e| ServeError::Listen { address: address.to_string(), reason: e.to_string() })
}

async fn shutdown_signal(terminate: Option<tokio::signal::unix::Signal>) {
    let terminate = async {
        match terminate {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

/// One line on standard error, with the time: what the service did or could not do.
pub(crate) fn log(message: &str) {
    eprintln!("{} {message}", ses_dmarc_monitor::schedule::rfc3339(ses_dmarc_ops::now()));
}
