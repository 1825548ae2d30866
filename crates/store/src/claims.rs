//! Work claiming, so that several workers (processes, on one machine or many) share one
//! database without doing anything twice:
//!
//! - a due domain is claimed by setting `claimed_by` / `claim_until` on its row; on
//!   PostgreSQL the claiming `UPDATE` picks its rows `FOR UPDATE SKIP LOCKED`, so two
//!   workers claiming at once take different domains. The check's results are written
//!   only while the claim is still the writer's ([`Store::commit_check`] fences on
//!   `claimed_by`), and that write moves `next_due` on and clears the claim in the same
//!   transaction: each due domain is checked once per window.
//! - alert deliveries are claimed the same way on their outbox rows;
//! - anything else (a mailbox or a bucket, the retention sweep) takes a named lease.
//!
//! Claims expire at `claim_until` unless the worker renews them ([`Store::heartbeat`]);
//! a killed worker's claims are taken over after that. Times here are the wall clock
//! (seconds since 1970), never a pass's own `--now`.

use crate::sql::{Connection, Dialect, Param, Row};
use crate::watch::{WATCHED_COLUMNS, read_event, read_watched};
use crate::{Delivery, Store, StoreError, WatchedDomain};

/// A worker as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its id (host, process id and a random part).
    pub id: String,
    /// What runs it: `serve`, `watch run`, `intake run`.
    pub kind: String,
    /// The machine.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// The ses-dmarc version.
    pub version: String,
    /// When it started.
    pub started_at: i64,
    /// When it last renewed its claims.
    pub seen_at: i64,
    /// When it stopped cleanly (releasing what it held); `None` while it runs or after a crash.
    pub stopped_at: Option<i64>,
}

/// A named lease (a mailbox, a bucket, the retention sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What it is for: `intake:<source>`, `retention`.
    pub name: String,
    /// The worker holding it.
    pub holder: String,
    /// When it was taken.
    pub acquired_at: i64,
    /// When it expires unless renewed.
    pub expires_at: i64,
}

/// Work waiting and work claimed, for `workers` and `/metrics` (the `queue` of
/// `workers --format json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// Watched domains due now and not claimed by a live claim.
    pub due_domains: i64,
    /// Domains claimed by a claim that has not expired.
    pub claimed_domains: i64,
    /// Alerts due now and not claimed.
    pub due_deliveries: i64,
    /// Alerts claimed by a claim that has not expired.
    pub claimed_deliveries: i64,
}

/// What one worker holds, for `workers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Domains it has claimed.
    pub domains: Vec<String>,
    /// Alert deliveries it has claimed.
    pub deliveries: i64,
    /// Its named leases.
    pub leases: Vec<Lease>,
}

/// How many rows one retention batch deletes: a short transaction, so ingest and checks
/// never wait long behind a sweep.
pub const RETENTION_BATCH: i64 = 1000;

/// What a retention sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Aggregate reports (with their records).
    pub reports: i64,
    /// Their records.
    pub records: i64,
    /// Failure reports.
    pub failures: i64,
    /// DNS snapshots (the latest of each domain is always kept).
    pub snapshots: i64,
    /// Events (with their delivered outbox rows; undelivered ones and those an open
    /// problem refers to are kept).
    pub events: i64,
    /// Intake failures.
    pub intake_failures: i64,
}

fn read_worker(r: &dyn Row) -> Result<WorkerInfo, StoreError> {
    Ok(WorkerInfo {
        id: r.text(0)?,
        kind: r.text(1)?,
        host: r.text(2)?,
        pid: r.i64(3)?,
        version: r.text(4)?,
        started_at: r.i64(5)?,
        seen_at: r.i64(6)?,
        stopped_at: r.opt_i64(7)?,
    })
}

const WORKER_COLUMNS: &str = "id, kind, host, pid, version, started_at, seen_at, stopped_at";

fn read_lease(r: &dyn Row) -> Result<Lease, StoreError> {
    Ok(Lease { name: r.text(0)?, holder: r.text(1)?, acquired_at: r.i64(2)?, expires_at: r.i64(3)? })
}

/// `FOR UPDATE SKIP LOCKED` where the database has it (PostgreSQL); SQLite has one writer
/// at a time, so its claims never race.
fn skip_locked(conn: &dyn Connection) -> &'static str {
    match conn.dialect() {
        Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    }
}

impl Store {
    /// Registers a worker. With `alone` (a `serve` on SQLite), another worker of the same
    /// kind still alive (seen within `alive_for` seconds and not stopped) is refused:
    /// a SQLite file serves one `serve` process; several need PostgreSQL.
    pub fn register_worker(&mut self, w: &WorkerInfo, alone: bool, alive_for: i64) -> Result<(), StoreError> {
        let name = self.name.clone();
        self.write(|conn| {
            if alone {
                let other = conn.query_opt(
                    &format!(
                        "SELECT {WORKER_COLUMNS} FROM workers WHERE kind = $1 AND id <> $2 AND stopped_at IS NULL
                         AND seen_at >= $3 ORDER BY seen_at DESC LIMIT 1"
                    ),
                    &[(&w.kind).into(), (&w.id).into(), (w.started_at - alive_for).into()],
                    read_worker,
                )?;
                if let Some(o) = other {
                    return Err(StoreError::Conflict(format!(
                        "another `{}` (process {} on {}, seen {} s ago) is using the SQLite database {name}: \
                         a SQLite file serves one process; several workers need PostgreSQL \
                         (database = \"postgres://...\" in every worker's configuration)",
                        o.kind,
                        o.pid,
                        o.host,
                        (w.started_at - o.seen_at).max(0)
                    )));
                }
            }
            conn.execute(
                "INSERT INTO workers (id, kind, host, pid, version, started_at, seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, stopped_at = NULL",
                &[
                    (&w.id).into(),
                    (&w.kind).into(),
                    (&w.host).into(),
                    w.pid.into(),
                    (&w.version).into(),
                    w.started_at.into(),
                ],
            )?;
            // Workers gone for a week are forgotten.
            conn.execute("DELETE FROM workers WHERE seen_at < $1", &[(w.started_at - 7 * 86_400).into()])?;
            Ok(())
        })
    }

    /// The worker is alive: its claims and renewable leases now last until `until`.
    /// Whether it still held anything.
    pub fn heartbeat(&mut self, worker: &str, now: i64, until: i64) -> Result<u64, StoreError> {
        self.write(|conn| {
            conn.execute("UPDATE workers SET seen_at = $2 WHERE id = $1", &[worker.into(), now.into()])?;
            let mut held = conn.execute(
                "UPDATE leases SET expires_at = $2 WHERE holder = $1 AND renew = 1",
                &[worker.into(), until.into()],
            )?;
            held += conn.execute(
                "UPDATE watched_domains SET claim_until = $2 WHERE claimed_by = $1",
                &[worker.into(), until.into()],
            )?;
            held += conn
                .execute("UPDATE outbox SET claim_until = $2 WHERE claimed_by = $1", &[worker.into(), until.into()])?;
            Ok(held)
        })
    }

    /// The worker stops: everything it holds is released (others may take it at once),
    /// except the leases that mark work done for a while (the retention sweep).
    pub fn worker_stopped(&mut self, worker: &str, now: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE workers SET seen_at = $2, stopped_at = $2 WHERE id = $1",
                &[worker.into(), now.into()],
            )?;
            conn.execute("DELETE FROM leases WHERE holder = $1 AND renew = 1", &[worker.into()])?;
            conn.execute(
                "UPDATE watched_domains SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = $1",
                &[worker.into()],
            )?;
            conn.execute(
                "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = $1",
                &[worker.into()],
            )?;
            Ok(())
        })
    }

    /// Every worker known, the most recently seen first.
    pub fn workers(&mut self) -> Result<Vec<WorkerInfo>, StoreError> {
        self.conn.query_all(
            &format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY seen_at DESC, id"),
            &[],
            read_worker,
        )
    }

    /// What a worker holds now.
    pub fn holdings(&mut self, worker: &str, now: i64) -> Result<Holdings, StoreError> {
        let domains = self.conn.query_all(
            "SELECT domain FROM watched_domains WHERE claimed_by = $1 AND claim_until >= $2 ORDER BY domain",
            &[worker.into(), now.into()],
            |r| r.text(0),
        )?;
        let deliveries = self.conn.query_i64(
            "SELECT COUNT(*) FROM outbox WHERE claimed_by = $1 AND claim_until >= $2",
            &[worker.into(), now.into()],
        )?;
        let leases = self.conn.query_all(
            "SELECT name, holder, acquired_at, expires_at FROM leases WHERE holder = $1 AND expires_at >= $2 ORDER BY name",
            &[worker.into(), now.into()],
            read_lease,
        )?;
        Ok(Holdings { domains, deliveries, leases })
    }

    /// Every named lease that has not expired.
    pub fn leases(&mut self, now: i64) -> Result<Vec<Lease>, StoreError> {
        self.conn.query_all(
            "SELECT name, holder, acquired_at, expires_at FROM leases WHERE expires_at >= $1 ORDER BY name",
            &[now.into()],
            read_lease,
        )
    }

    /// Work waiting (due by `due_by`) and claimed at `now`.
    pub fn queue_depth(&mut self, now: i64, due_by: i64) -> Result<QueueDepth, StoreError> {
        let c = &mut self.conn;
        Ok(QueueDepth {
            due_domains: c.query_i64(
                "SELECT COUNT(*) FROM watched_domains WHERE next_due <= $1 AND (claimed_by IS NULL OR claim_until < $2)",
                &[due_by.into(), now.into()],
            )?,
            claimed_domains: c.query_i64(
                "SELECT COUNT(*) FROM watched_domains WHERE claimed_by IS NOT NULL AND claim_until >= $1",
                &[now.into()],
            )?,
            due_deliveries: c.query_i64(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND next_attempt <= $1
                 AND (claimed_by IS NULL OR claim_until < $2)",
                &[due_by.into(), now.into()],
            )?,
            claimed_deliveries: c.query_i64(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND claimed_by IS NOT NULL AND claim_until >= $1",
                &[now.into()],
            )?,
        })
    }

    /// Claims up to `limit` domains due by `due_by` that no live claim holds, earliest
    /// first, for `worker` until `until`.
    pub fn claim_due_domains(
        &mut self,
        worker: &str,
        due_by: i64,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<WatchedDomain>, StoreError> {
        self.write(|conn| {
            let lock = skip_locked(conn);
            let mut claimed = conn.query_all(
                &format!(
                    "UPDATE watched_domains SET claimed_by = $1, claim_until = $4 WHERE domain IN (
                        SELECT domain FROM watched_domains WHERE next_due <= $2 AND (claimed_by IS NULL OR claim_until < $3)
                        ORDER BY next_due, domain LIMIT $5 {lock})
                     RETURNING {WATCHED_COLUMNS}"
                ),
                &[worker.into(), due_by.into(), now.into(), until.into(), limit.into()],
                read_watched,
            )?;
            claimed.sort_by(|a, b| a.next_due.cmp(&b.next_due).then_with(|| a.domain.cmp(&b.domain)));
            Ok(claimed)
        })
    }

    /// Claims one domain whether due or not (a pass that names it). `Ok(None)` when it is
    /// not watched; a [`StoreError::Conflict`] naming the holder when another worker's live
    /// claim has it.
    pub fn claim_domain(
        &mut self,
        worker: &str,
        domain: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<WatchedDomain>, StoreError> {
        self.write(|conn| {
            let claimed = conn.query_opt(
                &format!(
                    "UPDATE watched_domains SET claimed_by = $1, claim_until = $4 WHERE domain = $2
                        AND (claimed_by IS NULL OR claimed_by = $1 OR claim_until < $3)
                     RETURNING {WATCHED_COLUMNS}"
                ),
                &[worker.into(), domain.into(), now.into(), until.into()],
                read_watched,
            )?;
            if claimed.is_some() {
                return Ok(claimed);
            }
            let holder =
                conn.query_opt("SELECT claimed_by FROM watched_domains WHERE domain = $1", &[domain.into()], |r| {
                    r.opt_text(0)
                })?;
            match holder {
                None => Ok(None),
                Some(h) => Err(StoreError::Conflict(format!(
                    "{domain} is being checked by worker {} right now",
                    h.unwrap_or_default()
                ))),
            }
        })
    }

    /// Gives a domain's claim back without checking it (the worker is stopping).
    pub fn release_domain(&mut self, worker: &str, domain: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE watched_domains SET claimed_by = NULL, claim_until = NULL WHERE domain = $1 AND claimed_by = $2",
                &[domain.into(), worker.into()],
            )
        })?;
        Ok(())
    }

    /// Claims up to `limit` alert deliveries due by `due_by` that no live claim holds,
    /// oldest first, for `worker` until `until`.
    pub fn claim_deliveries(
        &mut self,
        worker: &str,
        due_by: i64,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.write(|conn| {
            let lock = skip_locked(conn);
            let keys = conn.query_all(
                &format!(
                    "UPDATE outbox SET claimed_by = $1, claim_until = $4 WHERE (event, channel) IN (
                        SELECT event, channel FROM outbox WHERE delivered_at IS NULL AND next_attempt <= $2
                        AND (claimed_by IS NULL OR claim_until < $3) ORDER BY next_attempt, event, channel LIMIT $5 {lock})
                     RETURNING event, channel, attempts, next_attempt"
                ),
                &[worker.into(), due_by.into(), now.into(), until.into(), limit.into()],
                |r| Ok((r.text(0)?, r.text(1)?, r.i64(2)?, r.i64(3)?)),
            )?;
            // The claimed rows' events, read at once (an event goes to each of its channels).
            let mut ids: Vec<&str> = keys.iter().map(|(event, ..)| event.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut events = std::collections::HashMap::with_capacity(ids.len());
            if !ids.is_empty() {
                let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
                let params: Vec<Param<'_>> = ids.iter().map(|&id| id.into()).collect();
                conn.query(
                    &format!("SELECT id, domain, at, kind, body FROM events WHERE id IN ({})", placeholders.join(", ")),
                    &params,
                    &mut |r| {
                        let e = read_event(r)?;
                        events.insert(e.id.clone(), e);
                        Ok(())
                    },
                )?;
            }
            let mut out = Vec::with_capacity(keys.len());
            for (event, channel, attempts, next_attempt) in &keys {
                if let Some(event) = events.get(event) {
                    out.push((*next_attempt, Delivery { event: event.clone(), channel: channel.clone(), attempts: *attempts }));
                }
            }
            out.sort_by(|a, b| {
                (a.0, a.1.event.at, &a.1.event.id, &a.1.channel).cmp(&(b.0, b.1.event.at, &b.1.event.id, &b.1.channel))
            });
            Ok(out.into_iter().map(|(_, d)| d).collect())
        })
    }

    /// Takes the named lease for `worker` until `until` when it is free, expired or
    /// already `worker`'s; with `renew` the worker's heartbeat extends it. `Ok(None)`
    /// when taken; otherwise the lease as its holder has it.
    pub fn try_lease(
        &mut self,
        name: &str,
        worker: &str,
        now: i64,
        until: i64,
        renew: bool,
    ) -> Result<Option<Lease>, StoreError> {
        self.write(|conn| {
            let taken = conn.execute(
                "INSERT INTO leases (name, holder, acquired_at, expires_at, renew) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
                    expires_at = excluded.expires_at, renew = excluded.renew
                 WHERE leases.expires_at < $3 OR leases.holder = excluded.holder",
                &[name.into(), worker.into(), now.into(), until.into(), i64::from(renew).into()],
            )?;
            if taken > 0 {
                return Ok(None);
            }
            conn.query_opt(
                "SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1",
                &[name.into()],
                read_lease,
            )
        })
    }

    /// Gives a named lease back (when `worker` holds it).
    pub fn release_lease(&mut self, name: &str, worker: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[name.into(), worker.into()])
        })?;
        Ok(())
    }

    /// Deletes, one short transaction of at most [`RETENTION_BATCH`] rows at a time, what
    /// is older than `cutoff`: aggregate reports whose period ended before it (with their
    /// records), failure reports and intake failures from before it, snapshots last seen
    /// before it (never a domain's latest), and events from before it that are delivered
    /// everywhere and that no open problem refers to.
    pub fn prune(&mut self, cutoff: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        loop {
            let (reports, records) = self.write(|conn| {
                let ids = conn.query_all(
                    "SELECT id FROM reports WHERE end_ts < $1 ORDER BY id LIMIT $2",
                    &[cutoff.into(), RETENTION_BATCH.into()],
                    |r| r.i64(0),
                )?;
                let (Some(first), Some(last)) = (ids.first(), ids.last()) else { return Ok((0, 0)) };
                let range = [(*first).into(), (*last).into(), cutoff.into()];
                let records = conn.execute(
                    "DELETE FROM records WHERE report IN (SELECT id FROM reports WHERE id BETWEEN $1 AND $2 AND end_ts < $3)",
                    &range,
                )?;
                let reports = conn.execute("DELETE FROM reports WHERE id BETWEEN $1 AND $2 AND end_ts < $3", &range)?;
                Ok((reports as i64, records as i64))
            })?;
            pruned.reports += reports;
            pruned.records += records;
            if reports == 0 {
                break;
            }
        }
        pruned.failures = self.prune_rows(
            "DELETE FROM failures WHERE id IN (SELECT id FROM failures WHERE ingested_at < $1 LIMIT $2)",
            cutoff,
        )?;
        pruned.intake_failures = self.prune_rows(
            "DELETE FROM intake_failures WHERE id IN (SELECT id FROM intake_failures WHERE at < $1 LIMIT $2)",
            cutoff,
        )?;
        pruned.snapshots = self.prune_rows(
            "DELETE FROM snapshots WHERE id IN (SELECT s.id FROM snapshots s WHERE s.last_seen < $1
                AND s.id <> (SELECT l.id FROM snapshots l WHERE l.domain = s.domain ORDER BY l.last_seen DESC, l.id DESC LIMIT 1)
                LIMIT $2)",
            cutoff,
        )?;
        loop {
            let events = self.write(|conn| {
                let ids = conn.query_all(
                    "SELECT e.id FROM events e WHERE e.at < $1
                        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event = e.id AND o.delivered_at IS NULL)
                        AND NOT EXISTS (SELECT 1 FROM open_problems p WHERE p.event = e.id)
                     LIMIT $2",
                    &[cutoff.into(), RETENTION_BATCH.into()],
                    |r| r.text(0),
                )?;
                for id in &ids {
                    conn.execute("DELETE FROM outbox WHERE event = $1", &[id.into()])?;
                    conn.execute("DELETE FROM events WHERE id = $1", &[id.into()])?;
                }
                Ok(ids.len() as i64)
            })?;
            pruned.events += events;
            if events < RETENTION_BATCH {
                break;
            }
        }
        Ok(pruned)
    }

    /// Runs a `DELETE ... LIMIT $2` batch by batch until it deletes nothing; the rows.
    fn prune_rows(&mut self, sql: &str, cutoff: i64) -> Result<i64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.write(|conn| conn.execute(sql, &[cutoff.into(), RETENTION_BATCH.into()]))? as i64;
            total += n;
            if n < RETENTION_BATCH {
                return Ok(total);
            }
        }
    }
}
