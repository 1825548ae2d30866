//! This process as one worker among others on one database: it registers itself, renews
//! its claims every third of `[schedule] lease` while it lives, and gives back what it
//! holds when it stops. A worker that dies (SIGKILL, a crashed host) renews nothing: its
//! claims expire and the others take the work over (see `ses_dmarc_store` `claims`).

use serde::Serialize;
use ses_dmarc_store::{Database, Pruned, QueueDepth, StoreError, WorkerInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The named lease of the retention sweep: taken for an hour and not given back, so the
/// sweep runs at most once an hour across all workers.
pub const RETENTION_LEASE: &str = "retention";
const RETENTION_EVERY: i64 = 3600;

/// What a retention sweep deleted, and the cut-off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Everything older than this went (RFC 3339).
    pub before: String,
    /// What went.
    #[serde(flatten)]
    pub deleted: Pruned,
}

/// A running worker. [`Worker::stop`] releases what it holds; dropping it without that
/// stops the renewals (its claims then expire, as a killed worker's do).
pub struct Worker {
    id: String,
    db: Database,
    lease: Duration,
    stopping: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish()
    }
}

/// The wall clock, seconds since 1970: claims expire by it, whatever time a pass is for.
pub fn wall_clock() -> i64 {
    ses_dmarc_ops::now()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process of this machine still runs (a zombie does not count).
fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `Z` zombie, `X` dead.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
        }
        // Without /proc (not Linux) nothing can be known: assume alive, the lease decides.
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

impl Worker {
    /// Registers this process as a `kind` worker (`serve`, `watch run`, `intake run`) and
    /// starts renewing its claims. A `serve` on SQLite refuses to start beside another
    /// live `serve` on the same file.
    pub async fn start(db: &Database, kind: &str, lease: Duration) -> Result<Worker, StoreError> {
        let host = hostname();
        let pid = std::process::id();
        let random = uuid::Uuid::now_v7().simple().to_string();
        let id = format!("{host}:{pid}:{}", &random[random.len() - 8..]);
        let now = wall_clock();
        let info = WorkerInfo {
            id: id.clone(),
            kind: kind.to_string(),
            host,
            pid: i64::from(pid),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now,
            seen_at: now,
            stopped_at: None,
        };
        let alone = kind == "serve" && !db.is_shared();
        let alive_for = lease.as_secs() as i64;
        db.run(move |s| {
            // A worker of this machine whose process is gone (killed, crashed) holds
            // nothing any more: its claims go now rather than when they expire, so a
            // `watch run` killed by cron's timeout and run again does not wait a lease.
            for w in s.workers()? {
                if w.host == info.host && w.stopped_at.is_none() && w.pid != info.pid && !process_alive(w.pid) {
                    s.worker_stopped(&w.id, now)?;
                }
            }
            s.register_worker(&info, alone, alive_for)
        })
        .await?;
        let heartbeat = tokio::spawn(renew(db.clone(), id.clone(), lease));
        Ok(Worker { id, db: db.clone(), lease, stopping: Arc::new(AtomicBool::new(false)), heartbeat })
    }

    /// The worker's id, as claims and leases name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Until when a claim taken now lasts (wall clock).
    pub fn claim_until(&self) -> i64 {
        wall_clock() + self.lease.as_secs() as i64
    }

    /// Asks the passes to take no more work (what they hold, they finish).
    pub fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`Worker::request_stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops renewing and releases every claim and lease (the retention mark stays).
    pub async fn stop(&self) -> Result<(), StoreError> {
        self.heartbeat.abort();
        let id = self.id.clone();
        self.db.run(move |s| s.worker_stopped(&id, wall_clock())).await
    }

    /// Runs the retention sweep when `days` is set and no worker ran it in the last hour.
    pub async fn sweep_retention(&self, days: Option<u32>, now: i64) -> Result<Option<Swept>, StoreError> {
        let Some(days) = days else { return Ok(None) };
        let (id, wall) = (self.id.clone(), wall_clock());
        let held = self.db.run(move |s| s.try_lease(RETENTION_LEASE, &id, wall, wall + RETENTION_EVERY, false)).await?;
        if held.is_some() {
            return Ok(None);
        }
        let cutoff = now - i64::from(days) * 86_400;
        let deleted = self.db.run(move |s| s.prune(cutoff)).await?;
        Ok(Some(Swept { before: crate::schedule::rfc3339(cutoff), deleted }))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn renew(db: Database, id: String, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        let (id, now) = (id.clone(), wall_clock());
        let until = now + lease.as_secs() as i64;
        // A failed renewal is tried again at the next beat; if they all fail, the claims
        // expire and other workers take the work, which is what should happen.
        let _ = db.run(move |s| s.heartbeat(&id, now, until)).await;
    }
}

/// One worker as `workers` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRow {
    /// Its id.
    pub id: String,
    /// `serve`, `watch run`, `intake run`.
    pub kind: String,
    /// The machine and process.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// The ses-dmarc version.
    pub version: String,
    /// `live` (renewing its claims), `stopped` (it released them) or `gone` (it stopped
    /// renewing: killed or cut off; its claims expire and the others take them).
    pub state: &'static str,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it last renewed (RFC 3339).
    pub seen_at: String,
    /// The domains it is checking now.
    pub domains: Vec<String>,
    /// Alert deliveries it holds.
    pub deliveries: i64,
    /// Its named leases (`intake:<source>`, `retention`).
    pub leases: Vec<String>,
}

/// The workers of a database, with their leases and the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkersView {
    /// Every worker seen in the last week, live ones first.
    pub workers: Vec<WorkerRow>,
    /// The queue.
    pub queue: QueueDepth,
}

/// The workers view at `now` (wall clock); a worker not seen for `lease` is `gone`.
pub async fn view(db: &Database, lease: Duration, now: i64) -> Result<WorkersView, StoreError> {
    let lease = lease.as_secs() as i64;
    db.run(move |s| {
        let mut rows = Vec::new();
        for w in s.workers()? {
            let held = s.holdings(&w.id, now)?;
            let state = match w.stopped_at {
                Some(_) => "stopped",
                None if w.seen_at >= now - lease => "live",
                None => "gone",
            };
            rows.push(WorkerRow {
                state,
                started_at: crate::schedule::rfc3339(w.started_at),
                seen_at: crate::schedule::rfc3339(w.seen_at),
                domains: held.domains,
                deliveries: held.deliveries,
                leases: held.leases.into_iter().map(|l| l.name).collect(),
                id: w.id,
                kind: w.kind,
                host: w.host,
                pid: w.pid,
                version: w.version,
            });
        }
        let rank = |s: &str| match s {
            "live" => 0,
            "gone" => 1,
            _ => 2,
        };
        rows.sort_by_key(|r| rank(r.state));
        Ok(WorkersView { workers: rows, queue: s.queue_depth(now, now)? })
    })
    .await
}
