//! The one interface both backends implement: statements with typed parameters, rows read
//! by column index, transactions as plain statements. Everything above it (reports,
//! migrations, queries) is written once.

use crate::StoreError;

/// The SQL dialect of a connection, for the few places where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

/// A statement parameter, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    I64(i64),
    OptI64(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
}

impl<'a> From<i64> for Param<'a> {
    fn from(v: i64) -> Self {
        Param::I64(v)
    }
}

impl<'a> From<Option<i64>> for Param<'a> {
    fn from(v: Option<i64>) -> Self {
        Param::OptI64(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::OptText(v)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::OptText(v.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(v)
    }
}

impl<'a> From<Option<&'a [u8]>> for Param<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Param::OptBytes(v)
    }
}

/// One result row; columns by index from 0.
pub(crate) trait Row {
    fn i64(&self, column: usize) -> Result<i64, StoreError>;
    fn opt_i64(&self, column: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: usize) -> Result<String, StoreError>;
    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError>;
    #[allow(dead_code, reason = "for the raw report XML, stored by the coming migrations")]
    fn opt_bytes(&self, column: usize) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A connection to one database. Statements use `$1`, `$2`, ... placeholders (both
/// SQLite and PostgreSQL read them).
pub(crate) trait Connection: Send {
    fn dialect(&self) -> Dialect;
    /// Runs statements without parameters or results (DDL, BEGIN, COMMIT).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Runs one statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError>;
    /// Runs a query and hands each row to `each`, in order.
    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// PostgreSQL's bulk path: `COPY ... FROM STDIN` with `data` in the format the statement
    /// names; the rows copied. Only a backend that says [`Connection::has_copy`] implements it.
    fn copy_in(&mut self, _sql: &str, _data: &[u8]) -> Result<u64, StoreError> {
        Err(StoreError::Postgres("COPY is PostgreSQL's".into()))
    }
    /// Whether [`Connection::copy_in`] and [`Connection::write_report`] work here.
    fn has_copy(&self) -> bool {
        false
    }
    /// Writes a whole report in one transaction, as few round trips as the backend can:
    /// its row by `insert` (which returns the id, or no row when the report is stored
    /// already), then the records `rows` encodes for `copy` with that id (`rows(None)`: a
    /// COPY of no rows, which ends the COPY begun beside the insert). `None`: stored
    /// already, nothing written. Only a backend that says [`Connection::has_copy`].
    fn write_report(
        &mut self,
        _insert: &str,
        _params: &[Param<'_>],
        _copy: &str,
        _rows: &mut dyn FnMut(Option<i64>) -> Vec<u8>,
    ) -> Result<Option<i64>, StoreError> {
        Err(StoreError::Postgres("COPY is PostgreSQL's".into()))
    }
}

impl dyn Connection + '_ {
    /// The first row's value, turned by `read`; `None` when there is no row.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        read: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.query(sql, params, &mut |row| {
            if out.is_none() {
                out = Some(read(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every row, turned by `read`.
    pub(crate) fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        read: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.query(sql, params, &mut |row| {
            out.push(read(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// A query's single integer (`COUNT(*)`, `MAX(...)`), 0 when it returns no row.
    pub(crate) fn query_i64(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64, StoreError> {
        Ok(self.query_opt(sql, params, |r| r.opt_i64(0))?.flatten().unwrap_or(0))
    }
}

/// Starts a transaction that will write: on SQLite it takes the write lock at once, so two
/// writers wait for each other (busy timeout) instead of one failing when it upgrades.
pub(crate) fn begin_write(conn: &mut dyn Connection) -> Result<(), StoreError> {
    conn.batch(match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    })
}
