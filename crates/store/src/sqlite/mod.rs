//! The SQLite backend: one file, WAL, created on first use (when asked to).

use crate::sql::{Connection, Dialect, Param, Row};
use crate::{OpenMode, StoreError};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::path::Path;

pub(crate) struct SqliteConnection {
    conn: rusqlite::Connection,
    /// Statements with `$N` placeholders rewritten as SQLite's `?N` (see [`numbered`]).
    rewritten: std::collections::HashMap<String, String>,
}

/// `$N` placeholders as `?N`: SQLite reads `$1` as a *named* parameter and numbers named
/// parameters by first appearance, so `SET a = $3 WHERE b = $1` would bind the wrong
/// values; `?N` binds parameter N wherever it appears. Quoted text is left alone.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '$' if !quoted && chars.peek().is_some_and(|d| d.is_ascii_digit()) => out.push('?'),
            _ => out.push(c),
        }
    }
    out
}

fn error(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e.to_string())
}

impl SqliteConnection {
    pub(crate) fn open(path: &Path, mode: OpenMode) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let at = |e: rusqlite::Error| StoreError::Open { name: name.clone(), reason: e.to_string() };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match mode {
            OpenMode::Create => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                        name: name.clone(),
                        reason: format!("cannot create {}: {e}", dir.display()),
                    })?;
                }
                rusqlite::Connection::open_with_flags(path, flags | rusqlite::OpenFlags::SQLITE_OPEN_CREATE)
                    .map_err(at)?
            }
            OpenMode::Existing => {
                if !path.is_file() {
                    return Err(StoreError::Missing { name });
                }
                rusqlite::Connection::open_with_flags(path, flags).map_err(at)?
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(at)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(at)?;
        Ok(SqliteConnection { conn, rewritten: Default::default() })
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::I64(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::OptI64(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::Text(t) | Param::OptText(Some(t)) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Param::Bytes(b) | Param::OptBytes(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::OptI64(None) | Param::OptText(None) | Param::OptBytes(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

struct SqliteRow<'r, 's>(&'r rusqlite::Row<'s>);

impl Row for SqliteRow<'_, '_> {
    fn i64(&self, column: usize) -> Result<i64, StoreError> {
        self.0.get(column).map_err(error)
    }

    fn opt_i64(&self, column: usize) -> Result<Option<i64>, StoreError> {
        self.0.get(column).map_err(error)
    }

    fn text(&self, column: usize) -> Result<String, StoreError> {
        self.0.get(column).map_err(error)
    }

    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        self.0.get(column).map_err(error)
    }

    fn opt_bytes(&self, column: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(column).map_err(error)
    }
}

impl Connection for SqliteConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(error)
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        if !self.rewritten.contains_key(sql) {
            self.rewritten.insert(sql.to_string(), numbered(sql));
        }
        let sql = &self.rewritten[sql];
        let mut stmt = self.conn.prepare_cached(sql).map_err(error)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter())).map_err(error)? as u64)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if !self.rewritten.contains_key(sql) {
            self.rewritten.insert(sql.to_string(), numbered(sql));
        }
        let sql = &self.rewritten[sql];
        let mut stmt = self.conn.prepare_cached(sql).map_err(error)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(error)?;
        while let Some(row) = rows.next().map_err(error)? {
            each(&SqliteRow(row))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            super::numbered("UPDATE t SET a = $3 WHERE b = $1 AND c = '$2'"),
            "UPDATE t SET a = ?3 WHERE b = ?1 AND c = '$2'"
        );
    }
}
