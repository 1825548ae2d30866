//! Persistence of DMARC reports. SQLite (one file, created on first use) behind [`Store`];
//! migrations are numbered and applied in order; one transaction per report; a report is
//! stored once per (org_name, report_id, policy domain, begin, end).

pub mod ingest;

use rusqlite::{Connection, OptionalExtension, params};
use ses_dmarc_reports::aggregate::{DkimAuth, PolicyPublished, ReportHeader, ReportRecord, SpfAuth};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{0}` is not a database URL: use sqlite://PATH (or a plain file path)")]
    BadUrl(String),
    #[error("{0} databases are not supported yet: use sqlite://PATH")]
    Unsupported(String),
    #[error("cannot create {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("database {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("the database {path} was written by a newer ses-dmarc (schema {found}, this one knows {known})")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("database error: {0}")]
    Query(#[from] rusqlite::Error),
}

const MIGRATIONS: &[&str] = &[
    // 1: reports and their records.
    "CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        org_name TEXT NOT NULL,
        report_id TEXT NOT NULL,
        domain TEXT NOT NULL,
        begin_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        email TEXT,
        schema TEXT NOT NULL,
        policy TEXT NOT NULL,
        origin TEXT NOT NULL,
        ingested_at INTEGER NOT NULL,
        UNIQUE (org_name, report_id, domain, begin_ts, end_ts)
    );
    CREATE TABLE records (
        report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
        source_ip TEXT NOT NULL,
        count INTEGER NOT NULL,
        header_from TEXT NOT NULL,
        envelope_from TEXT,
        disposition TEXT,
        evaluated_dkim TEXT,
        evaluated_spf TEXT,
        dkim TEXT NOT NULL,
        spf TEXT NOT NULL
    );
    CREATE INDEX records_report ON records(report);
    CREATE INDEX reports_domain ON reports(domain, begin_ts);",
    // 2: failure reports.
    "CREATE TABLE failures (
        id INTEGER PRIMARY KEY,
        domain TEXT,
        arrival_ts INTEGER,
        source_ip TEXT,
        feedback_type TEXT NOT NULL,
        auth_failure TEXT,
        report TEXT NOT NULL,
        origin TEXT NOT NULL,
        ingested_at INTEGER NOT NULL
    );",
];

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
}

impl Location {
    /// `sqlite://PATH`, `sqlite:PATH`, a plain path, or `postgres://...` (not yet).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(p) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if p.is_empty() {
                return Err(StoreError::BadUrl(url.into()));
            }
            return Ok(Location::Sqlite(PathBuf::from(p)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(StoreError::Unsupported("PostgreSQL".into()));
        }
        if url.contains("://") {
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

pub struct Store {
    conn: Connection,
    path: String,
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

impl Store {
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        let Location::Sqlite(path) = location;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        }
        let display = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite { path: display.clone(), source })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| StoreError::Sqlite { path: display.clone(), source })?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|source| StoreError::Sqlite { path: display.clone(), source })?;
        let mut store = Store { conn, path: display };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let current: i64 =
            self.conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found: current, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", params![i as i64 + 1])?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Starts storing one report: one transaction, the report row first. `None` when the
    /// report is already stored (then nothing is written).
    pub fn begin_report(
        &mut self,
        header: &ReportHeader,
        origin: &str,
    ) -> Result<Option<ReportWriter<'_>>, StoreError> {
        let tx = self.conn.transaction()?;
        let m = &header.metadata;
        let inserted = tx.execute(
            "INSERT INTO reports (org_name, report_id, domain, begin_ts, end_ts, email, schema, policy, origin, ingested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (org_name, report_id, domain, begin_ts, end_ts) DO NOTHING",
            params![
                m.org_name,
                m.report_id,
                header.policy.domain,
                m.begin,
                m.end,
                m.email,
                header.schema,
                serde_json::to_string(&header.policy).unwrap_or_default(),
                origin,
                unix_now()
            ],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        Ok(Some(ReportWriter { tx, id, records: 0, messages: 0 }))
    }

    /// Stores one whole report (see [`Store::begin_report`]).
    pub fn store_aggregate(
        &mut self,
        header: &ReportHeader,
        origin: &str,
        records: impl IntoIterator<Item = ReportRecord>,
    ) -> Result<Stored, StoreError> {
        let Some(mut w) = self.begin_report(header, origin)? else { return Ok(Stored::Duplicate) };
        for r in records {
            w.add(&r)?;
        }
        let (records, messages) = w.commit()?;
        Ok(Stored::New { records, messages })
    }

    pub fn store_failure(
        &mut self,
        report: &ses_dmarc_reports::failure::FailureReport,
        origin: &str,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        self.conn.execute(
            "INSERT INTO failures (domain, arrival_ts, source_ip, feedback_type, auth_failure, report, origin, ingested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                report.reported_domain.first(),
                report.arrival_date,
                report.source_ip,
                report.feedback_type,
                report.auth_failure,
                serde_json::to_string(report).unwrap_or_default(),
                origin,
                now
            ],
        )?;
        Ok(())
    }

    /// Every record of reports for `domain` whose period ends after `since`.
    pub fn records_for(&self, domain: &str, since: i64, each: &mut dyn FnMut(StoredRecord)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.org_name, r.report_id, r.begin_ts, r.end_ts, r.schema, r.policy,
                    c.source_ip, c.count, c.header_from, c.envelope_from, c.disposition, c.evaluated_dkim, c.evaluated_spf, c.dkim, c.spf
             FROM reports r JOIN records c ON c.report = r.id
             WHERE r.domain = ?1 AND r.end_ts > ?2 ORDER BY r.begin_ts",
        )?;
        let mut rows = stmt.query(params![domain, since])?;
        while let Some(row) = rows.next()? {
            let mut header = ReportHeader::default();
            header.metadata.org_name = row.get(0)?;
            header.metadata.report_id = row.get(1)?;
            header.metadata.begin = row.get(2)?;
            header.metadata.end = row.get(3)?;
            header.schema = if row.get::<_, String>(4)? == "rfc9990" { "rfc9990" } else { "rfc7489" };
            header.policy = serde_json::from_str::<PolicyPublished>(&row.get::<_, String>(5)?).unwrap_or_default();
            let ip: String = row.get(6)?;
            let record = ReportRecord {
                source_ip: ip.parse().ok(),
                source_ip_text: ip,
                count: row.get::<_, i64>(7)?.max(0) as u64,
                header_from: row.get(8)?,
                envelope_from: row.get(9)?,
                disposition: row.get(10)?,
                evaluated_dkim: row.get(11)?,
                evaluated_spf: row.get(12)?,
                dkim: serde_json::from_str::<Vec<DkimAuth>>(&row.get::<_, String>(13)?).unwrap_or_default(),
                spf: serde_json::from_str::<Vec<SpfAuth>>(&row.get::<_, String>(14)?).unwrap_or_default(),
                reasons: vec![],
                envelope_to: None,
            };
            each(StoredRecord { header, record });
        }
        Ok(())
    }

    /// Report headers (one per stored report) for `domain` since `since`.
    pub fn reports_for(&self, domain: &str, since: i64) -> Result<Vec<ReportHeader>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT org_name, report_id, begin_ts, end_ts FROM reports WHERE domain = ?1 AND end_ts > ?2")?;
        let rows = stmt.query_map(params![domain, since], |row| {
            let mut h = ReportHeader::default();
            h.metadata.org_name = row.get(0)?;
            h.metadata.report_id = row.get(1)?;
            h.metadata.begin = row.get(2)?;
            h.metadata.end = row.get(3)?;
            Ok(h)
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// (reports, records, messages) stored in all.
    pub fn totals(&self) -> Result<(u64, u64, u64), StoreError> {
        let reports: i64 = self.conn.query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))?;
        let (records, messages): (i64, Option<i64>) =
            self.conn.query_row("SELECT COUNT(*), SUM(count) FROM records", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((reports as u64, records as u64, messages.unwrap_or(0) as u64))
    }

    pub fn has_report(&self, org: &str, report_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM reports WHERE org_name = ?1 AND report_id = ?2", params![org, report_id], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A report being stored: dropping it without [`ReportWriter::commit`] stores nothing.
pub struct ReportWriter<'a> {
    tx: rusqlite::Transaction<'a>,
    id: i64,
    records: u64,
    messages: u64,
}

impl ReportWriter<'_> {
    pub fn add(&mut self, r: &ReportRecord) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO records (report, source_ip, count, header_from, envelope_from, disposition, evaluated_dkim, evaluated_spf, dkim, spf)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let ip = r.source_ip.map(|i| i.to_string()).unwrap_or(r.source_ip_text.clone());
        stmt.execute(params![
            self.id,
            ip,
            r.count.min(i64::MAX as u64) as i64,
            r.header_from,
            r.envelope_from,
            r.disposition,
            r.evaluated_dkim,
            r.evaluated_spf,
            serde_json::to_string(&r.dkim).unwrap_or_default(),
            serde_json::to_string(&r.spf).unwrap_or_default()
        ])?;
        self.records += 1;
        self.messages += r.count;
        Ok(())
    }

    /// Commits; returns (records, messages).
    pub fn commit(self) -> Result<(u64, u64), StoreError> {
        let counts = (self.records, self.messages);
        self.tx.commit()?;
        Ok(counts)
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

pub fn location_display(path: &Path) -> String {
    path.display().to_string()
}
