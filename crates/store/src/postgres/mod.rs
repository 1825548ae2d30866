//! The PostgreSQL backend (cargo feature `postgres`): the synchronous client, used only
//! from the store's own threads (it runs a runtime of its own and must never be called
//! from async code; [`crate::Database`] gives async callers their access). Statements are
//! prepared once per connection.

use crate::sql::{Connection, Dialect, Param, Row};
use crate::{OpenMode, StoreError};
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::collections::HashMap;

pub(crate) struct PgConnection {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

fn error(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Postgres(e.to_string()),
    }
}

impl PgConnection {
    pub(crate) fn open(url: &str, name: &str, _mode: OpenMode) -> Result<Self, StoreError> {
        let client = postgres::Client::connect(url, postgres::NoTls)
            .map_err(|e| StoreError::Open { name: name.to_string(), reason: e.to_string() })?;
        Ok(PgConnection { client, statements: HashMap::new() })
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(error)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::I64(v) => v.to_sql(ty, out),
            Param::OptI64(v) => v.to_sql(ty, out),
            Param::Text(t) => t.to_sql(ty, out),
            Param::OptText(t) => t.to_sql(ty, out),
            Param::Bytes(b) => b.to_sql(ty, out),
            Param::OptBytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <&str as ToSql>::accepts(ty) || <&[u8] as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

struct PgRow<'r>(&'r postgres::Row);

impl Row for PgRow<'_> {
    fn i64(&self, column: usize) -> Result<i64, StoreError> {
        self.0.try_get(column).map_err(error)
    }

    fn opt_i64(&self, column: usize) -> Result<Option<i64>, StoreError> {
        self.0.try_get(column).map_err(error)
    }

    fn text(&self, column: usize) -> Result<String, StoreError> {
        self.0.try_get(column).map_err(error)
    }

    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        self.0.try_get(column).map_err(error)
    }

    fn opt_bytes(&self, column: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.try_get(column).map_err(error)
    }
}

fn params<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Connection for PgConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(error)
    }

    fn execute(&mut self, sql: &str, p: &[Param<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, &params(p)).map_err(error)
    }

    fn query(
        &mut self,
        sql: &str,
        p: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let statement = self.statement(sql)?;
        let mut rows = self.client.query_raw(&statement, params(p)).map_err(error)?;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(error)? {
            each(&PgRow(&row))?;
        }
        Ok(())
    }

    fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64, StoreError> {
        use std::io::Write;
        let statement = self.statement(sql)?;
        let mut writer = self.client.copy_in(&statement).map_err(error)?;
        writer.write_all(data).map_err(|e| StoreError::Postgres(format!("COPY: {e}")))?;
        writer.finish().map_err(error)
    }

    fn has_copy(&self) -> bool {
        true
    }
}
