//! Persistence of DMARC reports behind one [`Store`]: SQLite by default (one file, created
//! on first use, WAL) or PostgreSQL for shared deployments. The same SQL serves both;
//! migrations are numbered and applied in order; one transaction per report; a report is
//! stored once per (org_name, report_id, policy domain, begin, end).

pub mod ingest;

use ses_dmarc_reports::aggregate::{DkimAuth, PolicyPublished, ReportHeader, ReportRecord, SpfAuth};
use ses_dmarc_reports::failure::FailureReport;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{0}` is not a database URL: use sqlite://PATH, a file path, or postgres://USER@HOST/DB")]
    BadUrl(String),
    #[error("cannot create {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("database {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: postgres::Error },
    #[error("the database {path} was written by a newer ses-dmarc (schema {found}, this one knows {known})")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("no report is being stored (begin_report first)")]
    NoOpenReport,
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Pg(#[from] postgres::Error),
}

/// Numbered migrations: (SQLite, PostgreSQL).
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            org_name TEXT NOT NULL, report_id TEXT NOT NULL, domain TEXT NOT NULL,
            begin_ts INTEGER NOT NULL, end_ts INTEGER NOT NULL, email TEXT,
            schema TEXT NOT NULL, policy TEXT NOT NULL, origin TEXT NOT NULL, ingested_at INTEGER NOT NULL,
            UNIQUE (org_name, report_id, domain, begin_ts, end_ts));
         CREATE TABLE records (
            report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
            source_ip TEXT NOT NULL, count INTEGER NOT NULL, header_from TEXT NOT NULL,
            envelope_from TEXT, disposition TEXT, evaluated_dkim TEXT, evaluated_spf TEXT,
            dkim TEXT NOT NULL, spf TEXT NOT NULL);
         CREATE INDEX records_report ON records(report);
         CREATE INDEX reports_domain ON reports(domain, begin_ts);",
        "CREATE TABLE reports (
            id BIGSERIAL PRIMARY KEY,
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
    ),
    (
        "CREATE TABLE failures (
            id INTEGER PRIMARY KEY, domain TEXT, arrival_ts INTEGER, source_ip TEXT,
            feedback_type TEXT NOT NULL, auth_failure TEXT, report TEXT NOT NULL,
            origin TEXT NOT NULL, ingested_at INTEGER NOT NULL);",
        "CREATE TABLE failures (
            id BIGSERIAL PRIMARY KEY, domain TEXT, arrival_ts BIGINT, source_ip TEXT,
            feedback_type TEXT NOT NULL, auth_failure TEXT, report TEXT NOT NULL,
            origin TEXT NOT NULL, ingested_at BIGINT NOT NULL);",
    ),
];

const INSERT_REPORT: &str =
    "INSERT INTO reports (org_name, report_id, domain, begin_ts, end_ts, email, schema, policy, origin, ingested_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (org_name, report_id, domain, begin_ts, end_ts) DO NOTHING";
const INSERT_RECORD: &str = "INSERT INTO records (report, source_ip, count, header_from, envelope_from, disposition, evaluated_dkim, evaluated_spf, dkim, spf)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const INSERT_FAILURE: &str =
    "INSERT INTO failures (domain, arrival_ts, source_ip, feedback_type, auth_failure, report, origin, ingested_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const SELECT_RECORDS: &str = "SELECT r.org_name, r.report_id, r.begin_ts, r.end_ts, r.schema, r.policy,
        c.source_ip, c.count, c.header_from, c.envelope_from, c.disposition, c.evaluated_dkim, c.evaluated_spf, c.dkim, c.spf
     FROM reports r JOIN records c ON c.report = r.id
     WHERE r.domain = $1 AND r.end_ts > $2 ORDER BY r.begin_ts";
const SELECT_FAILURES: &str = "SELECT report FROM failures
     WHERE domain = $1 AND COALESCE(arrival_ts, ingested_at) > $2 ORDER BY COALESCE(arrival_ts, ingested_at)";
const SELECT_SOURCE_IPS: &str = "SELECT DISTINCT c.source_ip FROM reports r JOIN records c ON c.report = r.id
     WHERE r.domain = $1 AND r.end_ts > $2";
const SELECT_REPORTS: &str =
    "SELECT org_name, report_id, begin_ts, end_ts FROM reports WHERE domain = $1 AND end_ts > $2";

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `sqlite://PATH`, `sqlite:PATH`, a plain path, or `postgres://...` / `postgresql://...`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(p) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if p.is_empty() {
                return Err(StoreError::BadUrl(url.into()));
            }
            return Ok(Location::Sqlite(PathBuf::from(p)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_string()));
        }
        if url.contains("://") || url.is_empty() {
            return Err(StoreError::BadUrl(url.into()));
        }
        Ok(Location::Sqlite(PathBuf::from(url)))
    }

    /// The default: `$XDG_DATA_HOME/ses-dmarc/reports.sqlite` (or ~/.local/share/...).
    pub fn default_location() -> Self {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        Location::Sqlite(base.join("ses-dmarc").join("reports.sqlite"))
    }
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

pub struct Store {
    backend: Backend,
    name: String,
    open: Option<OpenReport>,
}

/// What storing one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New { records: u64, messages: u64 },
    Duplicate,
}

/// One stored record with the report facts it needs for summaries.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub header: ReportHeader,
    pub record: ReportRecord,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A PostgreSQL URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn record_from(
    org: String,
    report_id: String,
    begin: i64,
    end: i64,
    schema: String,
    policy: String,
    ip: String,
    count: i64,
    header_from: String,
    envelope_from: Option<String>,
    disposition: Option<String>,
    evaluated_dkim: Option<String>,
    evaluated_spf: Option<String>,
    dkim: String,
    spf: String,
) -> StoredRecord {
    let mut header = ReportHeader::default();
    header.metadata.org_name = org;
    header.metadata.report_id = report_id;
    header.metadata.begin = begin;
    header.metadata.end = end;
    header.schema = if schema == "rfc9990" { "rfc9990" } else { "rfc7489" };
    header.policy = serde_json::from_str::<PolicyPublished>(&policy).unwrap_or_default();
    StoredRecord {
        header,
        record: ReportRecord {
            source_ip: ip.parse().ok(),
            source_ip_text: ip,
            count: count.max(0) as u64,
            header_from,
            envelope_from,
            disposition,
            evaluated_dkim,
            evaluated_spf,
            dkim: serde_json::from_str::<Vec<DkimAuth>>(&dkim).unwrap_or_default(),
            spf: serde_json::from_str::<Vec<SpfAuth>>(&spf).unwrap_or_default(),
            reasons: vec![],
            envelope_to: None,
        },
    }
}

impl Store {
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        let mut store = match location {
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
                }
                let name = path.display().to_string();
                let sql = |source| StoreError::Sqlite { path: name.clone(), source };
                let conn = rusqlite::Connection::open(path).map_err(sql)?;
                conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sql)?;
                conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
                    .map_err(sql)?;
                Store { backend: Backend::Sqlite(conn), name, open: None }
            }
            Location::Postgres(url) => {
                let client = postgres::Client::connect(url, postgres::NoTls)
                    .map_err(|source| StoreError::Connect { url: redact(url), source })?;
                Store { backend: Backend::Postgres(client), name: redact(url), open: None }
            }
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database's name for messages (a file path, or the URL without password).
    pub fn path(&self) -> &str {
        &self.name
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
                let current: i64 =
                    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
                if current > known {
                    return Err(StoreError::TooNew { path: self.name.clone(), found: current, known });
                }
                for (i, (sql, _)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                    let tx = conn.transaction()?;
                    tx.execute_batch(sql)?;
                    tx.execute("INSERT INTO schema_version (version) VALUES ($1)", [i as i64 + 1])?;
                    tx.commit()?;
                }
            }
            Backend::Postgres(client) => {
                let mut tx = client.transaction()?;
                // One migrator at a time across machines sharing the database.
                tx.execute("SELECT pg_advisory_xact_lock(727172)", &[])?;
                tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
                let current: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?.get(0);
                if current > known {
                    return Err(StoreError::TooNew { path: self.name.clone(), found: current, known });
                }
                for (i, (_, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                    tx.batch_execute(sql)?;
                    tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(i as i64 + 1)])?;
                }
                tx.commit()?;
            }
        }
        Ok(())
    }

    /// Starts storing one report: one transaction, the report row first. `false` when the
    /// report is already stored (then nothing is written and no report is open).
    pub fn begin_report(&mut self, header: &ReportHeader, origin: &str) -> Result<bool, StoreError> {
        if self.open.is_some() {
            self.abandon_report();
        }
        let m = &header.metadata;
        let policy = serde_json::to_string(&header.policy).unwrap_or_default();
        let now = unix_now();
        let id = match &mut self.backend {
            Backend::Sqlite(conn) => {
                conn.execute_batch("BEGIN")?;
                let inserted = conn.prepare_cached(INSERT_REPORT)?.execute(rusqlite::params![
                    m.org_name,
                    m.report_id,
                    header.policy.domain,
                    m.begin,
                    m.end,
                    m.email,
                    header.schema,
                    policy,
                    origin,
                    now
                ]);
                match inserted {
                    Ok(1) => conn.last_insert_rowid(),
                    other => {
                        conn.execute_batch("ROLLBACK")?;
                        other?;
                        return Ok(false);
                    }
                }
            }
            Backend::Postgres(client) => {
                client.batch_execute("BEGIN")?;
                let row = client.query_opt(
                    &format!("{INSERT_REPORT} RETURNING id"),
                    &[
                        &m.org_name,
                        &m.report_id,
                        &header.policy.domain,
                        &m.begin,
                        &m.end,
                        &m.email,
                        &header.schema,
                        &policy,
                        &origin,
                        &now,
                    ],
                );
                match row {
                    Ok(Some(row)) => row.get(0),
                    other => {
                        client.batch_execute("ROLLBACK")?;
                        other?;
                        return Ok(false);
                    }
                }
            }
        };
        self.open = Some(OpenReport { id, records: 0, messages: 0, pending: Vec::with_capacity(BATCH) });
        Ok(true)
    }

    /// Adds a record to the report opened by [`Store::begin_report`].
    pub fn add_record(&mut self, r: ReportRecord) -> Result<(), StoreError> {
        self.add_prepared(PreparedRecord::new(r))
    }

    /// Adds a record already turned into its row (see [`PreparedRecord`]).
    pub fn add_prepared(&mut self, record: PreparedRecord) -> Result<(), StoreError> {
        let Some(open) = self.open.as_mut() else { return Err(StoreError::NoOpenReport) };
        let mut row = record.0;
        row.report = open.id;
        open.records += 1;
        open.messages += row.count as u64;
        open.pending.push(row);
        if open.pending.len() >= BATCH {
            let rows = std::mem::take(&mut open.pending);
            let rows = self.insert_rows(rows)?;
            if let Some(open) = self.open.as_mut() {
                open.pending = rows;
            }
        }
        Ok(())
    }

    /// Inserts buffered rows; gives the emptied buffer back for reuse.
    fn insert_rows(&mut self, mut rows: Vec<RecordRow>) -> Result<Vec<RecordRow>, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                let mut full = rows.chunks_exact(BATCH);
                if full.len() > 0 {
                    let mut stmt = conn.prepare_cached(&BATCH_INSERT)?;
                    for chunk in &mut full {
                        stmt.execute(rusqlite::params_from_iter(chunk.iter().flat_map(RecordRow::sqlite_params)))?;
                    }
                }
                let rest = full.remainder();
                if !rest.is_empty() {
                    let mut stmt = conn.prepare_cached(INSERT_RECORD)?;
                    for row in rest {
                        stmt.execute(rusqlite::params_from_iter(row.sqlite_params()))?;
                    }
                }
            }
            Backend::Postgres(client) => {
                for chunk in rows.chunks(BATCH) {
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                        chunk.iter().flat_map(RecordRow::pg_params).collect();
                    if chunk.len() == BATCH {
                        client.execute(BATCH_INSERT.as_str(), &params)?;
                    } else {
                        client.execute(multi_row_insert(chunk.len()).as_str(), &params)?;
                    }
                }
            }
        }
        rows.clear();
        Ok(rows)
    }

    /// Commits the open report; returns its (records, messages).
    pub fn commit_report(&mut self) -> Result<(u64, u64), StoreError> {
        let Some(open) = self.open.take() else { return Err(StoreError::NoOpenReport) };
        let counts = (open.records, open.messages);
        let result = self.insert_rows(open.pending).and_then(|_| match &mut self.backend {
            Backend::Sqlite(conn) => Ok(conn.execute_batch("COMMIT")?),
            Backend::Postgres(client) => Ok(client.batch_execute("COMMIT")?),
        });
        match result {
            Ok(()) => Ok(counts),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Drops the open report: nothing of it is stored.
    pub fn abandon_report(&mut self) {
        if self.open.take().is_some() {
            self.rollback();
        }
    }

    fn rollback(&mut self) {
        // A failed ROLLBACK leaves nothing to undo: the transaction is gone either way.
        let _ = match &mut self.backend {
            Backend::Sqlite(conn) => conn.execute_batch("ROLLBACK").map_err(StoreError::from),
            Backend::Postgres(client) => client.batch_execute("ROLLBACK").map_err(StoreError::from),
        };
    }

    /// Stores one whole report (see [`Store::begin_report`]).
    pub fn store_aggregate(
        &mut self,
        header: &ReportHeader,
        origin: &str,
        records: impl IntoIterator<Item = ReportRecord>,
    ) -> Result<Stored, StoreError> {
        if !self.begin_report(header, origin)? {
            return Ok(Stored::Duplicate);
        }
        for r in records {
            if let Err(e) = self.add_record(r) {
                self.abandon_report();
                return Err(e);
            }
        }
        let (records, messages) = self.commit_report()?;
        Ok(Stored::New { records, messages })
    }

    pub fn store_failure(&mut self, report: &FailureReport, origin: &str) -> Result<(), StoreError> {
        let json = serde_json::to_string(report).unwrap_or_default();
        let domain = report.reported_domain.first().cloned();
        let now = unix_now();
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                conn.execute(
                    INSERT_FAILURE,
                    rusqlite::params![
                        domain,
                        report.arrival_date,
                        report.source_ip,
                        report.feedback_type,
                        report.auth_failure,
                        json,
                        origin,
                        now
                    ],
                )?;
            }
            Backend::Postgres(client) => {
                client.execute(
                    INSERT_FAILURE,
                    &[
                        &domain,
                        &report.arrival_date,
                        &report.source_ip,
                        &report.feedback_type,
                        &report.auth_failure,
                        &json,
                        &origin,
                        &now,
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Every record of reports for `domain` whose period ends after `since`.
    pub fn records_for(
        &mut self,
        domain: &str,
        since: i64,
        each: &mut dyn FnMut(StoredRecord),
    ) -> Result<(), StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare(SELECT_RECORDS)?;
                let mut rows = stmt.query(rusqlite::params![domain, since])?;
                while let Some(row) = rows.next()? {
                    each(record_from(
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                        row.get(9)?,
                        row.get(10)?,
                        row.get(11)?,
                        row.get(12)?,
                        row.get(13)?,
                        row.get(14)?,
                    ));
                }
            }
            Backend::Postgres(client) => {
                let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&domain, &since];
                let mut rows = client.query_raw(SELECT_RECORDS, params)?;
                while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
                    each(record_from(
                        row.get(0),
                        row.get(1),
                        row.get(2),
                        row.get(3),
                        row.get(4),
                        row.get(5),
                        row.get(6),
                        row.get(7),
                        row.get(8),
                        row.get(9),
                        row.get(10),
                        row.get(11),
                        row.get(12),
                        row.get(13),
                        row.get(14),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Report headers (one per stored report) for `domain` since `since`.
    pub fn reports_for(&mut self, domain: &str, since: i64) -> Result<Vec<ReportHeader>, StoreError> {
        let make = |org: String, id: String, begin: i64, end: i64| {
            let mut h = ReportHeader::default();
            h.metadata.org_name = org;
            h.metadata.report_id = id;
            h.metadata.begin = begin;
            h.metadata.end = end;
            h
        };
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare(SELECT_REPORTS)?;
                let rows = stmt.query_map(rusqlite::params![domain, since], |r| {
                    Ok(make(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            }
            Backend::Postgres(client) => Ok(client
                .query(SELECT_REPORTS, &[&domain, &since])?
                .iter()
                .map(|r| make(r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()),
        }
    }

    /// Failure reports about `domain` that arrived after `since` (oldest first).
    pub fn failures_for(&mut self, domain: &str, since: i64) -> Result<Vec<FailureReport>, StoreError> {
        let texts: Vec<String> = match &mut self.backend {
            Backend::Sqlite(conn) => conn
                .prepare(SELECT_FAILURES)?
                .query_map(rusqlite::params![domain, since], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
            Backend::Postgres(client) => {
                client.query(SELECT_FAILURES, &[&domain, &since])?.iter().map(|r| r.get(0)).collect()
            }
        };
        Ok(texts.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
    }

    /// The distinct source IPs (as stored) in `domain`'s reports since `since`.
    pub fn source_ips(&mut self, domain: &str, since: i64) -> Result<Vec<String>, StoreError> {
        Ok(match &mut self.backend {
            Backend::Sqlite(conn) => conn
                .prepare(SELECT_SOURCE_IPS)?
                .query_map(rusqlite::params![domain, since], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
            Backend::Postgres(client) => {
                client.query(SELECT_SOURCE_IPS, &[&domain, &since])?.iter().map(|r| r.get(0)).collect()
            }
        })
    }

    /// (reports, records, messages) stored in all.
    pub fn totals(&mut self) -> Result<(u64, u64, u64), StoreError> {
        const REPORTS: &str = "SELECT COUNT(*) FROM reports";
        const RECORDS: &str = "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM records";
        let (reports, records, messages): (i64, i64, i64) = match &mut self.backend {
            Backend::Sqlite(conn) => {
                let reports = conn.query_row(REPORTS, [], |r| r.get(0))?;
                let (a, b) = conn.query_row(RECORDS, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                (reports, a, b)
            }
            Backend::Postgres(client) => {
                let reports = client.query_one(REPORTS, &[])?.get(0);
                let row = client.query_one("SELECT COUNT(*), COALESCE(SUM(count), 0)::BIGINT FROM records", &[])?;
                (reports, row.get(0), row.get(1))
            }
        };
        Ok((reports as u64, records as u64, messages as u64))
    }
}

/// Rows per multi-row INSERT (one statement, or one PostgreSQL round trip, each).
const BATCH: usize = 64;

const RECORD_COLUMNS: usize = 10;

static BATCH_INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| multi_row_insert(BATCH));

fn multi_row_insert(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO records (report, source_ip, count, header_from, envelope_from, disposition, evaluated_dkim, evaluated_spf, dkim, spf) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..RECORD_COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", i * RECORD_COLUMNS + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// The report being stored: its row id, counts, and records not yet inserted.
struct OpenReport {
    id: i64,
    records: u64,
    messages: u64,
    pending: Vec<RecordRow>,
}

/// A record turned into its database row (encoding included), so that the work can be
/// done on the thread that parses, not on the one that stores.
pub struct PreparedRecord(RecordRow);

impl PreparedRecord {
    pub fn new(r: ReportRecord) -> Self {
        PreparedRecord(RecordRow::new(0, r))
    }
}

/// One `records` row, owned, in column order.
struct RecordRow {
    report: i64,
    source_ip: String,
    count: i64,
    header_from: String,
    envelope_from: Option<String>,
    disposition: Option<String>,
    evaluated_dkim: Option<String>,
    evaluated_spf: Option<String>,
    dkim: String,
    spf: String,
}

impl RecordRow {
    fn new(report: i64, r: ReportRecord) -> Self {
        RecordRow {
            report,
            source_ip: match r.source_ip {
                // The parser takes only the canonical dotted quad (no leading zeros).
                Some(IpAddr::V4(_)) | None => r.source_ip_text,
                Some(ip @ IpAddr::V6(_)) => ip.to_string(),
            },
            count: r.count.min(i64::MAX as u64) as i64,
            dkim: serde_json::to_string(&r.dkim).unwrap_or_default(),
            spf: serde_json::to_string(&r.spf).unwrap_or_default(),
            header_from: r.header_from,
            envelope_from: r.envelope_from,
            disposition: r.disposition,
            evaluated_dkim: r.evaluated_dkim,
            evaluated_spf: r.evaluated_spf,
        }
    }

    fn sqlite_params(&self) -> [&dyn rusqlite::ToSql; RECORD_COLUMNS] {
        [
            &self.report,
            &self.source_ip,
            &self.count,
            &self.header_from,
            &self.envelope_from,
            &self.disposition,
            &self.evaluated_dkim,
            &self.evaluated_spf,
            &self.dkim,
            &self.spf,
        ]
    }

    fn pg_params(&self) -> [&(dyn postgres::types::ToSql + Sync); RECORD_COLUMNS] {
        [
            &self.report,
            &self.source_ip,
            &self.count,
            &self.header_from,
            &self.envelope_from,
            &self.disposition,
            &self.evaluated_dkim,
            &self.evaluated_spf,
            &self.dkim,
            &self.spf,
        ]
    }
}

/// Resolves `--database` (None: the default location).
pub fn open(url: Option<&str>) -> Result<Store, StoreError> {
    let location = match url {
        Some(u) => Location::parse(u)?,
        None => Location::default_location(),
    };
    Store::open(&location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(Location::parse("sqlite:///tmp/x.db").unwrap(), Location::Sqlite("/tmp/x.db".into()));
        assert_eq!(Location::parse("reports.db").unwrap(), Location::Sqlite("reports.db".into()));
        assert!(matches!(Location::parse("postgres://u@h/db").unwrap(), Location::Postgres(_)));
        assert!(Location::parse("mysql://x").is_err());
        assert!(Location::parse("sqlite://").is_err());
        assert_eq!(redact("postgres://user:secret@host/db"), "postgres://user@host/db");
    }

    #[test]
    fn source_ips_are_stored_in_canonical_form() {
        let row = |text: &str| {
            let r = ReportRecord { source_ip: text.parse().ok(), source_ip_text: text.into(), ..Default::default() };
            RecordRow::new(0, r).source_ip
        };
        assert_eq!(row("192.0.2.1"), "192.0.2.1");
        assert_eq!(row("2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(row("192.000.2.1"), "192.000.2.1", "not an address: kept as written");
        assert!("192.000.2.1".parse::<IpAddr>().is_err(), "leading zeros are refused, so a parsed IPv4 is canonical");
    }
}
