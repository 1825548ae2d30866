//! The schema, written once for both backends, as numbered migrations applied in order.
//! `{id}` is the row-id column (SQLite's rowid alias, PostgreSQL's BIGSERIAL) and
//! `{blob}` a byte string; every other type name means the same to both. A migration that
//! starts with `{postgres}` is applied on PostgreSQL only (SQLite records it as applied).

use crate::StoreError;
use crate::sql::{Connection, Dialect};

/// The migrations; a database records how many it has applied in `schema_version`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE reports (
        id {id},
        org_name TEXT NOT NULL, report_id TEXT NOT NULL, domain TEXT NOT NULL,
        begin_ts BIGINT NOT NULL, end_ts BIGINT NOT NULL, email TEXT,
        schema TEXT NOT NULL, policy TEXT NOT NULL, origin TEXT NOT NULL, ingested_at BIGINT NOT NULL,
        UNIQUE (org_name, report_id, domain, begin_ts, end_ts));
     CREATE TABLE records (
        report BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
        source_ip TEXT NOT NULL, count BIGINT NOT NULL, header_from TEXT NOT NULL,
        envelope_from TEXT, disposition TEXT, evaluated_dkim TEXT, evaluated_spf TEXT,
        dkim TEXT NOT NULL, spf TEXT NOT NULL);
     CREATE INDEX records_report ON records(report);
     CREATE INDEX reports_domain ON reports(domain, begin_ts);",
    "CREATE TABLE failures (
        id {id}, domain TEXT, arrival_ts BIGINT, source_ip TEXT,
        feedback_type TEXT NOT NULL, auth_failure TEXT, report TEXT NOT NULL,
        origin TEXT NOT NULL, ingested_at BIGINT NOT NULL);",
    // A failure report is stored once: the SHA-256 of its parsed content is its key.
    "ALTER TABLE failures ADD COLUMN digest TEXT;
     CREATE UNIQUE INDEX failures_digest ON failures(digest);",
    // Watching: the domains, each one's latest state, snapshot history (a row only when
    // something changed), events, the alert outbox, open problems, sources seen.
    "CREATE TABLE watched_domains (
        domain TEXT PRIMARY KEY, expectations TEXT NOT NULL, tags TEXT NOT NULL,
        from_ses BIGINT NOT NULL, source TEXT NOT NULL, added_at BIGINT NOT NULL,
        next_due BIGINT NOT NULL, last_checked BIGINT, checks BIGINT NOT NULL DEFAULT 0);
     CREATE INDEX watched_due ON watched_domains(next_due);
     CREATE TABLE domain_state (
        domain TEXT PRIMARY KEY, digest TEXT NOT NULL, judgement TEXT NOT NULL,
        failures TEXT NOT NULL, ses TEXT, rollout TEXT, checked_at BIGINT NOT NULL);
     CREATE TABLE snapshots (
        id {id}, domain TEXT NOT NULL, digest TEXT NOT NULL,
        first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, snapshot TEXT NOT NULL);
     CREATE INDEX snapshots_domain ON snapshots(domain, first_seen);
     CREATE TABLE events (
        id TEXT PRIMARY KEY, domain TEXT, at BIGINT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);
     CREATE INDEX events_domain ON events(domain, at);
     CREATE INDEX events_at ON events(at);
     CREATE TABLE outbox (
        event TEXT NOT NULL, channel TEXT NOT NULL, attempts BIGINT NOT NULL,
        next_attempt BIGINT NOT NULL, last_error TEXT, delivered_at BIGINT,
        PRIMARY KEY (event, channel));
     CREATE INDEX outbox_due ON outbox(delivered_at, next_attempt);
     CREATE TABLE open_problems (
        domain TEXT NOT NULL, problem TEXT NOT NULL, event TEXT NOT NULL,
        opened_at BIGINT NOT NULL, alerted_at BIGINT NOT NULL, PRIMARY KEY (domain, problem));
     CREATE TABLE known_sources (
        domain TEXT NOT NULL, source TEXT NOT NULL, first_seen BIGINT NOT NULL,
        PRIMARY KEY (domain, source));",
    // Intake: where each mailbox was read to (UIDVALIDITY + last UID), the objects of each
    // bucket already taken (key + ETag), and why messages or objects were not stored.
    "CREATE TABLE intake_checkpoints (
        source TEXT PRIMARY KEY, uid_validity BIGINT NOT NULL, last_uid BIGINT NOT NULL,
        updated_at BIGINT NOT NULL);
     CREATE TABLE intake_objects (
        source TEXT NOT NULL, object_key TEXT NOT NULL, etag TEXT NOT NULL, outcome TEXT NOT NULL,
        at BIGINT NOT NULL, PRIMARY KEY (source, object_key, etag));
     CREATE TABLE intake_failures (
        id {id}, source TEXT NOT NULL, item TEXT NOT NULL, reason TEXT NOT NULL, at BIGINT NOT NULL);
     CREATE INDEX intake_failures_source ON intake_failures(source, at);",
    // The service's people: users (argon2 password hashes), their login sessions and API
    // tokens (only SHA-256 digests of the secrets are kept); and each domain's latest
    // check as `check --format json` gives it, for the API and the domain page.
    "CREATE TABLE users (
        name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL, tags TEXT NOT NULL,
        created_at BIGINT NOT NULL);
     CREATE TABLE sessions (
        digest TEXT PRIMARY KEY, user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
     CREATE INDEX sessions_expiry ON sessions(expires_at);
     CREATE TABLE api_tokens (
        digest TEXT PRIMARY KEY, label TEXT NOT NULL, user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_at BIGINT NOT NULL, last_used BIGINT);
     ALTER TABLE domain_state ADD COLUMN report TEXT;",
    // Several workers on one database: the workers, their claims on due domains and on
    // alert deliveries (expiring unless renewed), and named leases (a mailbox, a bucket,
    // the retention sweep). The claim columns carry no index, so that claiming a row is a
    // heap-only update on PostgreSQL; the due index covers the claim's whole ORDER BY, so a
    // claim reads a few rows, not every due one.
    "CREATE TABLE workers (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, host TEXT NOT NULL, pid BIGINT NOT NULL,
        version TEXT NOT NULL, started_at BIGINT NOT NULL, seen_at BIGINT NOT NULL, stopped_at BIGINT);
     CREATE TABLE leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL, renew BIGINT NOT NULL);
     ALTER TABLE watched_domains ADD COLUMN claimed_by TEXT;
     ALTER TABLE watched_domains ADD COLUMN claim_until BIGINT;
     ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
     ALTER TABLE outbox ADD COLUMN claim_until BIGINT;
     DROP INDEX watched_due;
     CREATE INDEX watched_due ON watched_domains(next_due, domain);
     CREATE INDEX reports_end ON reports(end_ts);
     CREATE INDEX snapshots_seen ON snapshots(last_seen);",
    // PostgreSQL checked the records' foreign key with a query per row, more than half of
    // its ingest CPU; a record is only ever written in its report's transaction with the
    // id that insert returned, and the retention sweep deletes records before reports.
    "{postgres} ALTER TABLE records DROP CONSTRAINT IF EXISTS records_report_fkey;",
];

/// Marks a migration that only PostgreSQL applies (SQLite records it as applied).
const POSTGRES_ONLY: &str = "{postgres}";

/// A migration's text for one dialect.
fn render(sql: &str, dialect: Dialect) -> String {
    let sql = match sql.strip_prefix(POSTGRES_ONLY) {
        Some(_) if dialect == Dialect::Sqlite => return String::new(),
        Some(rest) => rest,
        None => sql,
    };
    let (id, blob) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", "BLOB"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BYTEA"),
    };
    sql.replace("{id}", id).replace("{blob}", blob)
}

/// How many migrations this build knows.
pub(crate) fn known() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the migrations the database lacks, all in one transaction; on PostgreSQL one
/// migrator at a time across every machine sharing the database.
pub(crate) fn migrate(conn: &mut dyn Connection, name: &str) -> Result<(), StoreError> {
    crate::sql::begin_write(conn)?;
    let result = apply(conn, name);
    match result {
        Ok(()) => conn.batch("COMMIT"),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

fn apply(conn: &mut dyn Connection, name: &str) -> Result<(), StoreError> {
    if conn.dialect() == Dialect::Postgres {
        conn.batch("SELECT pg_advisory_xact_lock(727172)")?;
    }
    conn.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let current = conn.query_i64("SELECT MAX(version) FROM schema_version", &[])?;
    let known = known();
    if current > known {
        return Err(StoreError::TooNew { name: name.to_string(), found: current, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        conn.batch(&render(sql, conn.dialect()))?;
        conn.execute("INSERT INTO schema_version (version) VALUES ($1)", &[(i as i64 + 1).into()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_rendered() {
        for sql in MIGRATIONS {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let text = render(sql, dialect);
                assert!(!text.contains('{'), "{text}");
            }
        }
    }
}
