//! The schema, written once for both backends, as numbered migrations applied in order.
//! `{id}` is the row-id column (SQLite's rowid alias, PostgreSQL's BIGSERIAL) and
//! `{blob}` a byte string; every other type name means the same to both.

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
];

/// A migration's text for one dialect.
fn render(sql: &str, dialect: Dialect) -> String {
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
