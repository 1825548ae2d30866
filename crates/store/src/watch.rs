//! What the service keeps between passes: watched domains, each one's latest state, the
//! snapshot history (a row only when something changed, so unchanged passes do not grow
//! the database), events, the alert outbox, open problems and the sources seen. The
//! values are the service's own JSON: this module stores and reads them, it does not
//! interpret them.

use crate::sql::{Connection, Param, Row};
use crate::{Store, StoreError};

/// A domain being watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedDomain {
    /// The domain.
    pub domain: String,
    /// What to expect of it, as JSON (the service's own shape).
    pub expectations: String,
    /// Tags (an agency groups its clients' domains with them).
    pub tags: Vec<String>,
    /// Take the expectations from the SES identity at each check.
    pub from_ses: bool,
    /// Where it was added: `cli` (`watch add`) or `config` (`[[domain]]`).
    pub source: String,
    /// When it was added (seconds since 1970).
    pub added_at: i64,
    /// When it is next due.
    pub next_due: i64,
    /// When it was last checked.
    pub last_checked: Option<i64>,
    /// How many checks have run for it.
    pub checks: i64,
}

/// A domain's latest state, as the last check left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainState {
    /// The digest of the last snapshot (normalised answers).
    pub digest: String,
    /// The last judgement (findings, verdict) as JSON.
    pub judgement: String,
    /// Consecutive failed lookups per question, as JSON.
    pub failures: String,
    /// The SES facts read at the last check, as JSON.
    pub ses: Option<String>,
    /// The rollout standing (stage, status, advised record) at the last check, as JSON.
    pub rollout: Option<String>,
    /// The last check as `check --format json` gives it (findings, verdict, answers).
    pub report: Option<String>,
    /// When.
    pub checked_at: i64,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id (the idempotency key of its deliveries).
    pub id: String,
    /// The domain it is about, if any.
    pub domain: Option<String>,
    /// When (seconds since 1970).
    pub at: i64,
    /// Its kind (`finding-raised`, ...).
    pub kind: String,
    /// The whole event as JSON.
    pub body: String,
}

/// A problem still open: what raised it and when it was last alerted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenProblem {
    /// The problem's key (e.g. `finding-raised mail-from-mx-missing mail.example.com`).
    pub problem: String,
    /// The event that raised it.
    pub event: String,
    /// When it opened.
    pub opened_at: i64,
    /// When it was last alerted (raised or reminded).
    pub alerted_at: i64,
}

/// An alert still waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The event's id.
    pub event: String,
    /// The channel it is for (`webhook#1`, `email#2`, ...).
    pub channel: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it is tried next (seconds since 1970).
    pub next_attempt: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// One alert to send: the event and the channel, with the attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event.
    pub event: StoredEvent,
    /// The channel's name (from the configuration).
    pub channel: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// What one check (or one pass over a mailbox) writes, all in one transaction: the
/// domain's new state (when a domain was checked), the events with an outbox row per
/// channel, and the problems opened, closed or reminded.
#[derive(Debug, Clone, Default)]
pub struct CheckWrite {
    /// The domain checked, with its new state, snapshot and schedule.
    pub checked: Option<CheckedDomain>,
    /// New events.
    pub events: Vec<StoredEvent>,
    /// The alert channels each event goes to, with the delay before it is sent (0 at
    /// once; a daily digest waits for its time).
    pub channels: Vec<(String, i64)>,
    /// Problems opened: (domain, problem, event id).
    pub opened: Vec<(String, String, String)>,
    /// Problems closed: (domain, problem).
    pub closed: Vec<(String, String)>,
    /// Problems reminded now: (domain, problem).
    pub reminded: Vec<(String, String)>,
    /// Sources now known: (domain, source).
    pub sources: Vec<(String, String)>,
}

/// The part of a [`CheckWrite`] about the domain itself.
#[derive(Debug, Clone)]
pub struct CheckedDomain {
    /// The domain.
    pub domain: String,
    /// Its new state.
    pub state: DomainState,
    /// The snapshot as JSON; stored only when its digest differs from the last one.
    pub snapshot: String,
    /// When it is next due.
    pub next_due: i64,
    /// The worker whose claim this check ran under: the write happens only while the
    /// claim is still that worker's (see `claims`). `None`: an unclaimed write.
    pub claimed_by: Option<String>,
}

pub(crate) fn read_watched(r: &dyn Row) -> Result<WatchedDomain, StoreError> {
    Ok(WatchedDomain {
        domain: r.text(0)?,
        expectations: r.text(1)?,
        tags: serde_json::from_str(&r.text(2)?).unwrap_or_default(),
        from_ses: r.i64(3)? != 0,
        source: r.text(4)?,
        added_at: r.i64(5)?,
        next_due: r.i64(6)?,
        last_checked: r.opt_i64(7)?,
        checks: r.i64(8)?,
    })
}

pub(crate) const WATCHED_COLUMNS: &str =
    "domain, expectations, tags, from_ses, source, added_at, next_due, last_checked, checks";

pub(crate) fn read_event(r: &dyn Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent { id: r.text(0)?, domain: r.opt_text(1)?, at: r.i64(2)?, kind: r.text(3)?, body: r.text(4)? })
}

fn insert_event(conn: &mut dyn Connection, e: &StoredEvent) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO events (id, domain, at, kind, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        &[(&e.id).into(), (&e.domain).into(), e.at.into(), (&e.kind).into(), (&e.body).into()],
    )?;
    Ok(())
}

impl Store {
    /// Adds a watched domain, or updates its expectations, tags and source (a domain
    /// already watched keeps its schedule and history).
    pub fn upsert_watched(&mut self, w: &WatchedDomain) -> Result<(), StoreError> {
        let tags = serde_json::to_string(&w.tags).unwrap_or_else(|_| "[]".into());
        self.write(|conn| {
            conn.execute(
                "INSERT INTO watched_domains (domain, expectations, tags, from_ses, source, added_at, next_due, checks)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0)
                 ON CONFLICT (domain) DO UPDATE SET expectations = excluded.expectations, tags = excluded.tags,
                    from_ses = excluded.from_ses, source = excluded.source",
                &[
                    (&w.domain).into(),
                    (&w.expectations).into(),
                    tags.as_str().into(),
                    i64::from(w.from_ses).into(),
                    (&w.source).into(),
                    w.added_at.into(),
                    w.next_due.into(),
                ],
            )
        })?;
        Ok(())
    }

    /// Stops watching a domain; its history is kept. `false` when it was not watched.
    pub fn remove_watched(&mut self, domain: &str) -> Result<bool, StoreError> {
        let n = self.write(|conn| conn.execute("DELETE FROM watched_domains WHERE domain = $1", &[domain.into()]))?;
        Ok(n > 0)
    }

    /// Removes the domains the configuration file added and no longer lists.
    pub fn prune_config_domains(&mut self, keep: &[String]) -> Result<Vec<String>, StoreError> {
        let listed =
            self.conn.query_all("SELECT domain FROM watched_domains WHERE source = 'config'", &[], |r| r.text(0))?;
        let gone: Vec<String> = listed.into_iter().filter(|d| !keep.contains(d)).collect();
        for d in &gone {
            self.remove_watched(d)?;
        }
        Ok(gone)
    }

    /// Every watched domain, by name.
    pub fn watched_domains(&mut self) -> Result<Vec<WatchedDomain>, StoreError> {
        self.conn.query_all(
            &format!("SELECT {WATCHED_COLUMNS} FROM watched_domains ORDER BY domain"),
            &[],
            read_watched,
        )
    }

    /// Every watched domain with its latest state (one query, for the overview).
    pub fn watched_with_state(&mut self) -> Result<Vec<(WatchedDomain, Option<DomainState>)>, StoreError> {
        let columns = WATCHED_COLUMNS.split(", ").map(|c| format!("w.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let n = WATCHED_COLUMNS.split(", ").count();
        self.conn.query_all(
            &format!(
                "SELECT {columns}, s.digest, s.judgement, s.failures, s.ses, s.rollout, s.checked_at
                 FROM watched_domains w LEFT JOIN domain_state s ON s.domain = w.domain ORDER BY w.domain"
            ),
            &[],
            |r| {
                let w = read_watched(r)?;
                let state = match r.opt_text(n)? {
                    None => None,
                    Some(digest) => Some(DomainState {
                        digest,
                        judgement: r.text(n + 1)?,
                        failures: r.text(n + 2)?,
                        ses: r.opt_text(n + 3)?,
                        rollout: r.opt_text(n + 4)?,
                        checked_at: r.i64(n + 5)?,
                        report: None,
                    }),
                };
                Ok((w, state))
            },
        )
    }

    /// Per policy domain with reports: how many are stored, the newest row id (both change
    /// whenever one is stored, so caches of report figures know when to recompute) and when
    /// the newest period ends.
    pub fn report_versions(&mut self) -> Result<Vec<ReportVersion>, StoreError> {
        self.conn.query_all("SELECT domain, COUNT(*), MAX(id), MAX(end_ts) FROM reports GROUP BY domain", &[], |r| {
            Ok(ReportVersion { domain: r.text(0)?, reports: r.i64(1)?, newest_id: r.i64(2)?, latest_end: r.i64(3)? })
        })
    }

    /// One watched domain.
    pub fn watched(&mut self, domain: &str) -> Result<Option<WatchedDomain>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {WATCHED_COLUMNS} FROM watched_domains WHERE domain = $1"),
            &[domain.into()],
            read_watched,
        )
    }

    /// The domains due by `until`, earliest first.
    pub fn due_domains(&mut self, until: i64, limit: i64) -> Result<Vec<WatchedDomain>, StoreError> {
        self.conn.query_all(
            &format!(
                "SELECT {WATCHED_COLUMNS} FROM watched_domains WHERE next_due <= $1 ORDER BY next_due, domain LIMIT $2"
            ),
            &[until.into(), limit.into()],
            read_watched,
        )
    }

    /// A domain's latest state.
    pub fn domain_state(&mut self, domain: &str) -> Result<Option<DomainState>, StoreError> {
        self.conn.query_opt(
            "SELECT digest, judgement, failures, ses, rollout, checked_at, report FROM domain_state WHERE domain = $1",
            &[domain.into()],
            |r| {
                Ok(DomainState {
                    digest: r.text(0)?,
                    judgement: r.text(1)?,
                    failures: r.text(2)?,
                    ses: r.opt_text(3)?,
                    rollout: r.opt_text(4)?,
                    checked_at: r.i64(5)?,
                    report: r.opt_text(6)?,
                })
            },
        )
    }

    /// A domain's latest snapshot (JSON), if it was ever checked.
    pub fn latest_snapshot(&mut self, domain: &str) -> Result<Option<String>, StoreError> {
        self.conn.query_opt(
            "SELECT snapshot FROM snapshots WHERE domain = $1 ORDER BY last_seen DESC, id DESC LIMIT 1",
            &[domain.into()],
            |r| r.text(0),
        )
    }

    /// A domain's snapshot history: (digest, first seen, last seen), oldest first.
    pub fn snapshot_history(&mut self, domain: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.conn.query_all(
            "SELECT digest, first_seen, last_seen FROM snapshots WHERE domain = $1 ORDER BY first_seen, id",
            &[domain.into()],
            |r| Ok((r.text(0)?, r.i64(1)?, r.i64(2)?)),
        )
    }

    /// A domain's open problems.
    pub fn open_problems(&mut self, domain: &str) -> Result<Vec<OpenProblem>, StoreError> {
        self.conn.query_all(
            "SELECT problem, event, opened_at, alerted_at FROM open_problems WHERE domain = $1 ORDER BY problem",
            &[domain.into()],
            |r| Ok(OpenProblem { problem: r.text(0)?, event: r.text(1)?, opened_at: r.i64(2)?, alerted_at: r.i64(3)? }),
        )
    }

    /// The sources known for a domain.
    pub fn known_sources(&mut self, domain: &str) -> Result<Vec<String>, StoreError> {
        self.conn.query_all("SELECT source FROM known_sources WHERE domain = $1", &[domain.into()], |r| r.text(0))
    }

    /// When the domain's newest aggregate report ends, if there is one.
    pub fn latest_report_end(&mut self, domain: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_opt("SELECT MAX(end_ts) FROM reports WHERE domain = $1", &[domain.into()], |r| r.opt_i64(0))
            .map(Option::flatten)
    }

    /// Writes one check's results in one transaction (see [`CheckWrite`]): a crash
    /// leaves either all of it or none, so no event is stored without its outbox rows.
    pub fn commit_check(&mut self, w: &CheckWrite) -> Result<(), StoreError> {
        self.write(|conn| {
            if let Some(c) = &w.checked {
                let s = &c.state;
                // First, so that on PostgreSQL the row stays locked to the end: a claim
                // that expired and was taken over by another worker writes nothing.
                let fenced = conn.execute(
                    "UPDATE watched_domains SET last_checked = $2, checks = checks + 1, next_due = $3,
                        claimed_by = NULL, claim_until = NULL
                     WHERE domain = $1 AND (CAST($4 AS TEXT) IS NULL OR claimed_by = $4)",
                    &[(&c.domain).into(), s.checked_at.into(), c.next_due.into(), (&c.claimed_by).into()],
                )?;
                if fenced == 0 && c.claimed_by.is_some() {
                    return Err(StoreError::ClaimLost(c.domain.clone()));
                }
                conn.execute(
                    "INSERT INTO domain_state (domain, digest, judgement, failures, ses, rollout, checked_at, report)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (domain) DO UPDATE SET digest = excluded.digest, judgement = excluded.judgement,
                        failures = excluded.failures, ses = excluded.ses, rollout = excluded.rollout,
                        checked_at = excluded.checked_at, report = excluded.report",
                    &[
                        (&c.domain).into(),
                        (&s.digest).into(),
                        (&s.judgement).into(),
                        (&s.failures).into(),
                        (&s.ses).into(),
                        (&s.rollout).into(),
                        s.checked_at.into(),
                        (&s.report).into(),
                    ],
                )?;
                let changed = conn.execute(
                    "UPDATE snapshots SET last_seen = $3 WHERE id = (SELECT id FROM snapshots WHERE domain = $1
                        ORDER BY last_seen DESC, id DESC LIMIT 1) AND digest = $2",
                    &[(&c.domain).into(), (&s.digest).into(), s.checked_at.into()],
                )? == 0;
                if changed {
                    conn.execute(
                        "INSERT INTO snapshots (domain, digest, first_seen, last_seen, snapshot) VALUES ($1, $2, $3, $3, $4)",
                        &[(&c.domain).into(), (&s.digest).into(), s.checked_at.into(), (&c.snapshot).into()],
                    )?;
                }
            }
            for e in &w.events {
                insert_event(conn, e)?;
                for (channel, delay) in &w.channels {
                    conn.execute(
                        "INSERT INTO outbox (event, channel, attempts, next_attempt) VALUES ($1, $2, 0, $3)
                         ON CONFLICT (event, channel) DO NOTHING",
                        &[(&e.id).into(), channel.into(), (e.at + delay).into()],
                    )?;
                }
            }
            let at = w.events.first().map(|e| e.at).or(w.checked.as_ref().map(|c| c.state.checked_at)).unwrap_or(0);
            for (domain, problem, event) in &w.opened {
                conn.execute(
                    "INSERT INTO open_problems (domain, problem, event, opened_at, alerted_at) VALUES ($1, $2, $3, $4, $4)
                     ON CONFLICT (domain, problem) DO NOTHING",
                    &[domain.into(), problem.into(), event.into(), at.into()],
                )?;
            }
            for (domain, problem) in &w.closed {
                conn.execute(
                    "DELETE FROM open_problems WHERE domain = $1 AND problem = $2",
                    &[domain.into(), problem.into()],
                )?;
            }
            for (domain, problem) in &w.reminded {
                conn.execute(
                    "UPDATE open_problems SET alerted_at = $3 WHERE domain = $1 AND problem = $2",
                    &[domain.into(), problem.into(), at.into()],
                )?;
            }
            for (domain, source) in &w.sources {
                conn.execute(
                    "INSERT INTO known_sources (domain, source, first_seen) VALUES ($1, $2, $3)
                     ON CONFLICT (domain, source) DO NOTHING",
                    &[domain.into(), source.into(), at.into()],
                )?;
            }
            Ok(())
        })
    }

    /// One event by its id.
    pub fn event(&mut self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        self.conn.query_opt("SELECT id, domain, at, kind, body FROM events WHERE id = $1", &[id.into()], read_event)
    }

    /// Alerts not delivered yet, the next due first.
    pub fn undelivered(&mut self) -> Result<Vec<Pending>, StoreError> {
        self.conn.query_all(
            "SELECT event, channel, attempts, next_attempt, last_error FROM outbox WHERE delivered_at IS NULL ORDER BY next_attempt",
            &[],
            |r| {
                Ok(Pending {
                    event: r.text(0)?,
                    channel: r.text(1)?,
                    attempts: r.i64(2)?,
                    next_attempt: r.i64(3)?,
                    last_error: r.opt_text(4)?,
                })
            },
        )
    }

    /// The channel accepted the alert.
    pub fn delivered(&mut self, event: &str, channel: &str, at: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE outbox SET delivered_at = $3, attempts = attempts + 1, last_error = NULL, claimed_by = NULL, claim_until = NULL
                 WHERE event = $1 AND channel = $2",
                &[event.into(), channel.into(), at.into()],
            )
        })?;
        Ok(())
    }

    /// The channel refused the alert or did not answer: try again at `next_attempt`.
    pub fn delivery_failed(
        &mut self,
        event: &str,
        channel: &str,
        error: &str,
        next_attempt: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $3, next_attempt = $4, claimed_by = NULL, claim_until = NULL
                 WHERE event = $1 AND channel = $2",
                &[event.into(), channel.into(), error.into(), next_attempt.into()],
            )
        })?;
        Ok(())
    }

    /// Events, newest last: of one domain (or all), since `since`, at most `limit`.
    pub fn events(&mut self, domain: Option<&str>, since: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let params: [Param<'_>; 3] = [domain.into(), since.into(), limit.into()];
        self.conn.query_all(
            "SELECT id, domain, at, kind, body FROM (
                SELECT id, domain, at, kind, body FROM events WHERE (CAST($1 AS TEXT) IS NULL OR domain = $1) AND at >= $2
                ORDER BY at DESC, id DESC LIMIT $3) newest ORDER BY at, id",
            &params,
            read_event,
        )
    }

    /// What `/metrics` counts from the store: alert deliveries and intake failures.
    pub fn service_counts(&mut self) -> Result<ServiceCounts, StoreError> {
        let delivered = self.conn.query_i64("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL", &[])?;
        let pending = self.conn.query_i64("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL", &[])?;
        let failed_attempts = self.conn.query_i64(
            "SELECT CAST(COALESCE(SUM(CASE WHEN delivered_at IS NULL THEN attempts ELSE attempts - 1 END), 0) AS BIGINT) FROM outbox",
            &[],
        )?;
        let intake_failures = self.conn.query_i64("SELECT COUNT(*) FROM intake_failures", &[])?;
        let events = self.conn.query_i64("SELECT COUNT(*) FROM events", &[])?;
        Ok(ServiceCounts { delivered, pending, failed_attempts, intake_failures, events })
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    /// Alerts their channel accepted.
    pub delivered: i64,
    /// Alerts still in the outbox.
    pub pending: i64,
    /// Delivery attempts a channel refused or did not answer.
    pub failed_attempts: i64,
    /// Messages and objects intake could not store.
    pub intake_failures: i64,
    /// Events raised.
    pub events: i64,
}

/// A domain's stored reports, in brief (see [`Store::report_versions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportVersion {
    /// The policy domain.
    pub domain: String,
    /// Reports stored.
    pub reports: i64,
    /// The newest report's row id.
    pub newest_id: i64,
    /// When the newest period ends (seconds since 1970).
    pub latest_end: i64,
}
