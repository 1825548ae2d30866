//! The PostgreSQL backend (cargo feature `postgres`): tokio-postgres driven by a runtime of
//! the connection's own, used only from the store's own threads (it must never be called
//! from async code; [`crate::Database`] gives async callers their access). Statements are
//! prepared once per connection. A whole report is written with its requests pipelined
//! ([`Connection::write_report`]): two round trips instead of five.

use crate::sql::{Connection, Dialect, Param, Row};
use crate::{OpenMode, StoreError};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::pin::pin;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

pub(crate) struct PgConnection {
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
    /// Drives the connection (spawned on it) while a request is waited for.
    runtime: tokio::runtime::Runtime,
}

fn error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Postgres(e.to_string()),
    }
}

impl PgConnection {
    pub(crate) fn open(url: &str, name: &str, _mode: OpenMode) -> Result<Self, StoreError> {
        let failed = |reason: String| StoreError::Open { name: name.to_string(), reason };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start the connection's runtime: {e}")))?;
        let (client, connection) =
            runtime.block_on(tokio_postgres::connect(url, tokio_postgres::NoTls)).map_err(|e| failed(e.to_string()))?;
        // A connection that ends (the server went away) fails the requests waiting on it.
        runtime.spawn(connection);
        Ok(PgConnection { client, statements: HashMap::new(), runtime })
    }

    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.runtime.block_on(self.client.prepare(sql)).map_err(error)?;
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

struct PgRow<'r>(&'r tokio_postgres::Row);

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
        self.runtime.block_on(self.client.batch_execute(sql)).map_err(error)
    }

    fn execute(&mut self, sql: &str, p: &[Param<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        self.runtime.block_on(self.client.execute(&statement, &params(p))).map_err(error)
    }

    fn query(
        &mut self,
        sql: &str,
        p: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let statement = self.statement(sql)?;
        let client = &self.client;
        self.runtime.block_on(async {
            let mut rows = pin!(client.query_raw(&statement, params(p)).await.map_err(error)?);
            while let Some(row) = rows.next().await {
                each(&PgRow(&row.map_err(error)?))?;
            }
            Ok(())
        })
    }

    fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        let client = &self.client;
        self.runtime.block_on(async {
            let mut sink = pin!(client.copy_in::<_, Bytes>(&statement).await.map_err(error)?);
            sink.send(Bytes::copy_from_slice(data)).await.map_err(error)?;
            sink.finish().await.map_err(error)
        })
    }

    fn has_copy(&self) -> bool {
        true
    }

    fn write_report(
        &mut self,
        insert: &str,
        p: &[Param<'_>],
        copy: &str,
        rows: &mut dyn FnMut(Option<i64>) -> Vec<u8>,
    ) -> Result<Option<i64>, StoreError> {
        let (insert, copy) = (self.statement(insert)?, self.statement(copy)?);
        let client = &self.client;
        self.runtime.block_on(async {
            let written = async {
                // One round trip: BEGIN, the report's row and the start of the COPY go
                // together; the COPY answers once the two before it have.
                let report = params(p);
                let (begun, inserted, started) = futures::join!(
                    client.batch_execute("BEGIN"),
                    client.query_opt(&insert, &report),
                    client.copy_in::<_, Bytes>(&copy),
                );
                begun.map_err(error)?;
                let inserted = inserted.map_err(error)?;
                let mut sink = Box::pin(started.map_err(error)?);
                let id = match inserted {
                    Some(row) => Some(row.try_get::<_, i64>(0).map_err(error)?),
                    None => None,
                };
                // A duplicate's COPY still needs a whole (empty) stream to end cleanly.
                sink.send(Bytes::from(rows(id))).await.map_err(error)?;
                // The other: the records, the COPY's end, and COMMIT (ROLLBACK when the
                // report was stored already).
                let end = if id.is_some() { "COMMIT" } else { "ROLLBACK" };
                let (copied, ended) = futures::join!(sink.as_mut().finish(), client.batch_execute(end));
                copied.map_err(error)?;
                ended.map_err(error)?;
                Ok(id)
            }
            .await;
            // A COPY left unfinished was abandoned when the block above ended (its sink
            // dropped), so the ROLLBACK is not queued behind it.
            if written.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            written
        })
    }
}
