//! Persistence behind one [`Store`]: SQLite by default (one file, WAL) or PostgreSQL
//! (cargo feature `postgres`) for shared deployments. Both backends implement one internal
//! interface (`sql::Connection`), so every query, the schema and its numbered migrations
//! are written once. [`Database`] gives async code its access: the connections live on
//! threads of their own, so nothing blocks the async runtime.
//!
//! Reports: one transaction per report; a report is stored once per (org_name, report_id,
//! policy domain, begin, end).

mod claims;
mod database;
pub mod ingest;
mod intake;
mod people;
#[cfg(feature = "postgres")]
mod postgres;
mod reports;
mod schema;
mod sql;
mod sqlite;
mod watch;

pub use claims::{Holdings, Lease, Pruned, QueueDepth, RETENTION_BATCH, WorkerInfo};
pub use database::Database;
pub use intake::{IntakeFailure, MailboxCheckpoint};
pub use people::{Session, TokenInfo, User};
pub use reports::{PreparedRecord, Stored, StoredRecord, StoredReport, Totals};
pub use watch::{
    CheckWrite, CheckedDomain, Delivery, DomainState, OpenProblem, Pending, ReportVersion, ServiceCounts, StoredEvent,
    WatchedDomain,
};

use sql::Connection;
use std::path::PathBuf;

/// What went wrong with the database, in words that say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `--database` is not something we can open.
    #[error("`{0}` is not a database URL: use sqlite://PATH, a file path, or postgres://USER@HOST/DB")]
    BadUrl(String),
    /// The database could not be opened or created.
    #[error("cannot open the database {name}: {reason}")]
    Open {
        /// The database's name (path, or URL without password).
        name: String,
        /// Why.
        reason: String,
    },
    /// A command that only reads was pointed at a database that does not exist.
    #[error("no database at {name}: `ses-dmarc reports ingest` creates it (or give --database)")]
    Missing {
        /// The path that does not exist.
        name: String,
    },
    /// A PostgreSQL URL given to a build without PostgreSQL support.
    #[error(
        "{name}: this ses-dmarc was built without PostgreSQL support (cargo feature `postgres`); reinstall with `cargo install --path crates/cli`"
    )]
    NoPostgres {
        /// The URL, without password.
        name: String,
    },
    /// The database's schema is newer than this program's.
    #[error("the database {name} was written by a newer ses-dmarc (schema {found}, this one knows {known})")]
    TooNew {
        /// The database.
        name: String,
        /// Its schema version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// `add_record` or `commit_report` without `begin_report`.
    #[error("no report is being stored (begin_report first)")]
    NoOpenReport,
    /// A check's claim on its domain expired and another worker took the domain over: the
    /// check's results are not written (the other worker's are).
    #[error("the claim on {0} expired and another worker took it over: this check's results were not written")]
    ClaimLost(String),
    /// The change would undo something that exists (the message says what to do).
    #[error("{0}")]
    Conflict(String),
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(String),
    /// PostgreSQL said no.
    #[error("database error: {0}")]
    Postgres(String),
    /// The work sent to the database panicked (a bug); its transaction was rolled back.
    #[error("internal error: a database operation panicked (its changes were rolled back)")]
    Panicked,
    /// The database's threads have stopped (the process is shutting down, or one panicked).
    #[error("the database connection is closed")]
    Closed,
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
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

    /// `--database`, or the default location when it is not given.
    pub fn from_arg(url: Option<&str>) -> Result<Self, StoreError> {
        match url {
            Some(u) => Location::parse(u),
            None => Ok(Location::default_location()),
        }
    }

    /// The default: `$XDG_DATA_HOME/ses-dmarc/reports.sqlite` (or ~/.local/share/...).
    pub fn default_location() -> Self {
        Location::Sqlite(default_data_dir().join("reports.sqlite"))
    }

    /// The name used in messages: the path, or the URL without its password.
    pub fn name(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// `$XDG_DATA_HOME/ses-dmarc`, else `~/.local/share/ses-dmarc`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ses-dmarc")
}

/// Whether opening may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (and its folder) when it does not exist: commands that store.
    Create,
    /// The database must exist: commands that only read.
    Existing,
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

/// One connection to the database, with the report being stored (if any).
pub struct Store {
    conn: Box<dyn Connection>,
    name: String,
    open: Option<reports::OpenReport>,
    /// Reports are committed without waiting for the disk (see [`Store::defer_durability`]).
    deferred: bool,
    /// The COPY data of the records being written, kept between reports.
    copy_buffer: Vec<u8>,
}

impl Store {
    /// Opens (creating it when needed) and migrates the database.
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        Store::open_with(location, OpenMode::Create)
    }

    /// Opens the database; with [`OpenMode::Existing`] a missing SQLite file is an error.
    pub fn open_with(location: &Location, mode: OpenMode) -> Result<Self, StoreError> {
        let name = location.name();
        let mut conn: Box<dyn Connection> = match location {
            Location::Sqlite(path) => Box::new(sqlite::SqliteConnection::open(path, mode)?),
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => Box::new(postgres::PgConnection::open(url, &name, mode)?),
            #[cfg(not(feature = "postgres"))]
            Location::Postgres(_) => return Err(StoreError::NoPostgres { name }),
        };
        schema::migrate(conn.as_mut(), &name)?;
        Ok(Store { conn, name, open: None, deferred: false, copy_buffer: Vec::new() })
    }

    /// The database's name for messages (a file path, or the URL without password).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// For a batch of reports (`reports ingest`): until `defer_durability(false)`, on
    /// PostgreSQL each report's transaction commits without waiting for its WAL to reach the
    /// disk (the session's `synchronous_commit = off`), as SQLite's `synchronous = NORMAL`
    /// commits without waiting for it. A committed report
    /// survives this process being killed; the last fraction of a second of commits could
    /// only be lost if the database server or its machine crashed. [`Store::make_durable`]
    /// ends the batch: after it, every report it committed is on disk. Intake, which
    /// deletes or moves a report's message once it is stored, never defers.
    pub fn defer_durability(&mut self, defer: bool) -> Result<(), StoreError> {
        if self.deferred != defer && self.conn.dialect() == sql::Dialect::Postgres {
            self.conn.batch(if defer { "SET synchronous_commit = off" } else { "RESET synchronous_commit" })?;
        }
        self.deferred = defer;
        Ok(())
    }

    /// Waits until every transaction committed so far is on disk: on PostgreSQL a
    /// transaction that commits synchronously (WAL is flushed in order, so the deferred
    /// commits before it are flushed with it); SQLite's commits need nothing more.
    pub fn make_durable(&mut self) -> Result<(), StoreError> {
        match self.conn.dialect() {
            sql::Dialect::Sqlite => Ok(()),
            // txid_current() gives the transaction an id, so its commit is a WAL record
            // that synchronous_commit (on for this transaction) waits to flush.
            sql::Dialect::Postgres => {
                self.conn.batch("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
            }
        }
    }

    /// Ends whatever transaction a failed operation left open.
    fn rollback(&mut self) {
        // A failed ROLLBACK leaves nothing to undo: the transaction is gone either way.
        let _ = self.conn.batch("ROLLBACK");
    }

    /// Runs `f` in one write transaction: committed when it returns `Ok`, rolled back
    /// otherwise.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.open.is_some() {
            self.abandon_report();
        }
        sql::begin_write(self.conn.as_mut())?;
        match f(self.conn.as_mut()) {
            Ok(v) => match self.conn.batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    self.rollback();
                    Err(e)
                }
            },
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
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
}
