//! Aggregate and failure reports: storing (one transaction per report, records in
//! multi-row INSERTs) and reading back for summaries.

use crate::sql::{Connection, Param, Row};
use crate::{Store, StoreError, unix_now};
use ses_dmarc_reports::aggregate::{DkimAuth, PolicyPublished, ReportHeader, ReportRecord, SpfAuth};
use ses_dmarc_reports::failure::FailureReport;
use std::net::IpAddr;

const INSERT_REPORT: &str =
    "INSERT INTO reports (org_name, report_id, domain, begin_ts, end_ts, email, schema, policy, origin, ingested_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (org_name, report_id, domain, begin_ts, end_ts) DO NOTHING RETURNING id";
const INSERT_FAILURE: &str =
    "INSERT INTO failures (domain, arrival_ts, source_ip, feedback_type, auth_failure, report, origin, ingested_at, digest)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (digest) DO NOTHING";
const SELECT_RECORDS: &str = "SELECT r.org_name, r.report_id, r.begin_ts, r.end_ts, r.schema, r.policy,
        c.source_ip, c.count, c.header_from, c.envelope_from, c.disposition, c.evaluated_dkim, c.evaluated_spf, c.dkim, c.spf
     FROM reports r JOIN records c ON c.report = r.id
     WHERE r.domain = $1 AND r.end_ts > $2 AND r.end_ts <= $3 ORDER BY r.begin_ts";
const SELECT_FAILURES: &str = "SELECT report FROM failures
     WHERE domain = $1 AND COALESCE(arrival_ts, ingested_at) > $2 AND COALESCE(arrival_ts, ingested_at) <= $3
     ORDER BY COALESCE(arrival_ts, ingested_at)";
const SELECT_SOURCE_IPS: &str = "SELECT DISTINCT c.source_ip FROM reports r JOIN records c ON c.report = r.id
     WHERE r.domain = $1 AND r.end_ts > $2 AND r.end_ts <= $3";
const SELECT_REPORTS: &str =
    "SELECT org_name, report_id, begin_ts, end_ts FROM reports WHERE domain = $1 AND end_ts > $2 AND end_ts <= $3";

const REPORT_COLUMNS: &str =
    "r.id, r.org_name, r.report_id, r.domain, r.begin_ts, r.end_ts, r.email, r.schema, r.policy,
        r.origin, r.ingested_at,
        (SELECT COUNT(*) FROM records c WHERE c.report = r.id),
        (SELECT CAST(COALESCE(SUM(c.count), 0) AS BIGINT) FROM records c WHERE c.report = r.id)";
static LIST_REPORTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {REPORT_COLUMNS} FROM reports r WHERE r.end_ts > $1 ORDER BY r.end_ts DESC, r.id DESC LIMIT $2")
});
static LIST_DOMAIN_REPORTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {REPORT_COLUMNS} FROM reports r WHERE r.domain = $1 AND r.end_ts > $2 ORDER BY r.end_ts DESC, r.id DESC LIMIT $3"
    )
});
static REPORT_BY_ROW: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {REPORT_COLUMNS} FROM reports r WHERE r.id = $1"));
static REPORTS_BY_REPORTER_ID: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {REPORT_COLUMNS} FROM reports r WHERE r.report_id = $1 ORDER BY r.id"));
const SELECT_REPORT_RECORDS: &str = "SELECT r.org_name, r.report_id, r.begin_ts, r.end_ts, r.schema, r.policy,
        c.source_ip, c.count, c.header_from, c.envelope_from, c.disposition, c.evaluated_dkim, c.evaluated_spf, c.dkim, c.spf
     FROM reports r JOIN records c ON c.report = r.id WHERE r.id = $1";

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

/// What storing one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, with its records and messages.
    New {
        /// Records stored.
        records: u64,
        /// Messages those records count.
        messages: u64,
    },
    /// Already in the database; nothing written.
    Duplicate,
}

/// One stored record with the report facts summaries need.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// The report's header (organization, id, period, schema, published policy).
    pub header: ReportHeader,
    /// The record.
    pub record: ReportRecord,
}

/// A stored aggregate report, as `reports list` and `reports show` see it: its row id, its
/// header as stored (the original XML is not kept), and what it counts.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// The database's id of the report (`reports show ID`).
    pub id: i64,
    /// Reporter, report id, period, contact, schema, the published policy.
    pub header: ReportHeader,
    /// Where it was read from (a path, `-`, a member inside an archive).
    pub origin: String,
    /// When it was stored, seconds since 1970.
    pub ingested_at: i64,
    /// Records stored.
    pub records: u64,
    /// Messages they count.
    pub messages: u64,
}

fn read_report(row: &dyn Row) -> Result<StoredReport, StoreError> {
    let mut header = ReportHeader::default();
    header.metadata.org_name = row.text(1)?;
    header.metadata.report_id = row.text(2)?;
    let domain = row.text(3)?;
    header.metadata.begin = row.i64(4)?;
    header.metadata.end = row.i64(5)?;
    header.metadata.email = row.opt_text(6)?;
    header.schema = if row.text(7)? == "rfc9990" { "rfc9990" } else { "rfc7489" };
    header.policy = serde_json::from_str::<PolicyPublished>(&row.text(8)?).unwrap_or_default();
    if header.policy.domain.is_empty() {
        header.policy.domain = domain;
    }
    Ok(StoredReport {
        id: row.i64(0)?,
        header,
        origin: row.text(9)?,
        ingested_at: row.i64(10)?,
        records: row.i64(11)?.max(0) as u64,
        messages: row.i64(12)?.max(0) as u64,
    })
}

/// Everything stored, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Aggregate reports.
    pub reports: u64,
    /// Their records.
    pub records: u64,
    /// The messages those records count.
    pub messages: u64,
    /// Failure reports.
    pub failures: u64,
}

/// The report being stored: its row (written when the first batch of records is, or with
/// all of them), counts, and records not yet written.
pub(crate) struct OpenReport {
    row: ReportRow,
    written: Written,
    records: u64,
    messages: u64,
    pending: Vec<RecordRow>,
}

/// How far an open report has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Nothing yet: no transaction is open.
    Nothing,
    /// Its transaction is open and the report's row has this id.
    Into(i64),
    /// It was stored before: the transaction ended, its records are dropped.
    Duplicate,
}

/// One `reports` row, owned.
struct ReportRow {
    org_name: String,
    report_id: String,
    domain: String,
    begin: i64,
    end: i64,
    email: Option<String>,
    schema: &'static str,
    policy: String,
    origin: String,
}

impl ReportRow {
    fn new(header: &ReportHeader, origin: &str) -> Self {
        let m = &header.metadata;
        ReportRow {
            org_name: m.org_name.clone(),
            report_id: m.report_id.clone(),
            domain: header.policy.domain.clone(),
            begin: m.begin,
            end: m.end,
            email: m.email.clone(),
            schema: header.schema,
            policy: serde_json::to_string(&header.policy).unwrap_or_default(),
            origin: origin.to_string(),
        }
    }

    fn params(&self) -> [Param<'_>; 10] {
        [
            (&self.org_name).into(),
            (&self.report_id).into(),
            (&self.domain).into(),
            self.begin.into(),
            self.end.into(),
            (&self.email).into(),
            self.schema.into(),
            (&self.policy).into(),
            (&self.origin).into(),
            unix_now().into(),
        ]
    }
}

/// A record turned into its database row (encoding included), so that the work can be
/// done on the thread that parses, not on the one that stores.
pub struct PreparedRecord(RecordRow);

impl PreparedRecord {
    /// Encodes the record as its row.
    pub fn new(r: ReportRecord) -> Self {
        PreparedRecord(RecordRow::new(r))
    }
}

/// One `records` row but its report's id, owned, in column order.
pub(crate) struct RecordRow {
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

/// Drops the NUL characters of a text: no PostgreSQL text may hold one, and SQLite's
/// would, so that the two backends would store different things.
fn strip_nul(s: &mut String) {
    if s.as_bytes().contains(&0) {
        s.retain(|c| c != '\0');
    }
}

impl RecordRow {
    fn new(mut r: ReportRecord) -> Self {
        for s in [&mut r.source_ip_text, &mut r.header_from] {
            strip_nul(s);
        }
        for s in [&mut r.envelope_from, &mut r.disposition, &mut r.evaluated_dkim, &mut r.evaluated_spf] {
            s.iter_mut().for_each(strip_nul);
        }
        for d in &mut r.dkim {
            strip_nul(&mut d.domain);
            strip_nul(&mut d.result);
            d.selector.iter_mut().chain(d.human_result.iter_mut()).for_each(strip_nul);
        }
        for s in &mut r.spf {
            strip_nul(&mut s.domain);
            strip_nul(&mut s.result);
            s.scope.iter_mut().for_each(strip_nul);
        }
        RecordRow {
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

    fn push_params<'a>(&'a self, report: i64, out: &mut Vec<Param<'a>>) {
        out.extend([
            Param::I64(report),
            Param::Text(&self.source_ip),
            Param::I64(self.count),
            Param::Text(&self.header_from),
            Param::OptText(self.envelope_from.as_deref()),
            Param::OptText(self.disposition.as_deref()),
            Param::OptText(self.evaluated_dkim.as_deref()),
            Param::OptText(self.evaluated_spf.as_deref()),
            Param::Text(&self.dkim),
            Param::Text(&self.spf),
        ]);
    }
}

/// Records held before they are written: a report of at most this many is written whole
/// at its commit (its transaction is open only while it is written, not while it is read);
/// a longer one from here on, this many at a time (one COPY each on PostgreSQL).
const HELD: usize = 4096;

const COPY_RECORDS: &str = "COPY records (report, source_ip, count, header_from, envelope_from, disposition, evaluated_dkim, evaluated_spf, dkim, spf) FROM STDIN (FORMAT binary)";

/// The records of report `report` as one whole COPY in PostgreSQL's binary format: a
/// header, per row its field count then each field as a 32-bit length (-1 for NULL) and its
/// bytes (BIGINT as 8 bytes big-endian, TEXT as its UTF-8), and a trailer. No field needs
/// escaping, so neither side scans the text for delimiters.
fn copy_rows(report: i64, rows: &[RecordRow], out: &mut Vec<u8>) {
    const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
    const FIELDS: i16 = 10;
    fn int8(out: &mut Vec<u8>, value: i64) {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
    fn text(out: &mut Vec<u8>, value: Option<&str>) {
        match value {
            // PostgreSQL refuses a field over 1 GB, so a longer one (which no report
            // within the unpack limits holds) fails the COPY instead of misframing it.
            Some(v) => {
                out.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out.clear();
    out.extend_from_slice(HEADER);
    for r in rows {
        out.extend_from_slice(&FIELDS.to_be_bytes());
        int8(out, report);
        text(out, Some(&r.source_ip));
        int8(out, r.count);
        text(out, Some(&r.header_from));
        text(out, r.envelope_from.as_deref());
        text(out, r.disposition.as_deref());
        text(out, r.evaluated_dkim.as_deref());
        text(out, r.evaluated_spf.as_deref());
        text(out, Some(&r.dkim));
        text(out, Some(&r.spf));
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// Inserts rows of report `report`: one COPY on PostgreSQL (encoded into `buffer`), else
/// 64 per statement.
fn insert_rows(
    conn: &mut dyn Connection,
    report: i64,
    rows: &[RecordRow],
    buffer: &mut Vec<u8>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    if conn.has_copy() {
        copy_rows(report, rows, buffer);
        conn.copy_in(COPY_RECORDS, buffer)?;
        return Ok(());
    }
    let mut params = Vec::with_capacity(BATCH * RECORD_COLUMNS);
    for chunk in rows.chunks(BATCH) {
        params.clear();
        for row in chunk {
            row.push_params(report, &mut params);
        }
        if chunk.len() == BATCH {
            conn.execute(&BATCH_INSERT, &params)?;
        } else {
            conn.execute(&multi_row_insert(chunk.len()), &params)?;
        }
    }
    Ok(())
}

fn read_record(row: &dyn Row) -> Result<StoredRecord, StoreError> {
    let mut header = ReportHeader::default();
    header.metadata.org_name = row.text(0)?;
    header.metadata.report_id = row.text(1)?;
    header.metadata.begin = row.i64(2)?;
    header.metadata.end = row.i64(3)?;
    header.schema = if row.text(4)? == "rfc9990" { "rfc9990" } else { "rfc7489" };
    header.policy = serde_json::from_str::<PolicyPublished>(&row.text(5)?).unwrap_or_default();
    let ip = row.text(6)?;
    Ok(StoredRecord {
        header,
        record: ReportRecord {
            source_ip: ip.parse().ok(),
            source_ip_text: ip,
            count: row.i64(7)?.max(0) as u64,
            header_from: row.text(8)?,
            envelope_from: row.opt_text(9)?,
            disposition: row.opt_text(10)?,
            evaluated_dkim: row.opt_text(11)?,
            evaluated_spf: row.opt_text(12)?,
            dkim: serde_json::from_str::<Vec<DkimAuth>>(&row.text(13)?).unwrap_or_default(),
            spf: serde_json::from_str::<Vec<SpfAuth>>(&row.text(14)?).unwrap_or_default(),
            reasons: vec![],
            envelope_to: None,
        },
    })
}

impl Store {
    /// Starts storing one report. Nothing is written yet: a report of few records is
    /// written whole by [`Store::commit_report`], a longer one from its first full batch of
    /// records on, in one transaction either way.
    pub fn begin_report(&mut self, header: &ReportHeader, origin: &str) {
        if self.open.is_some() {
            self.abandon_report();
        }
        self.open = Some(OpenReport {
            row: ReportRow::new(header, origin),
            written: Written::Nothing,
            records: 0,
            messages: 0,
            pending: Vec::new(),
        });
    }

    /// Adds a record to the report opened by [`Store::begin_report`].
    pub fn add_record(&mut self, r: ReportRecord) -> Result<(), StoreError> {
        self.add_prepared(PreparedRecord::new(r))
    }

    /// Adds a record already turned into its row (see [`PreparedRecord`]).
    pub fn add_prepared(&mut self, record: PreparedRecord) -> Result<(), StoreError> {
        let Some(open) = self.open.as_mut() else { return Err(StoreError::NoOpenReport) };
        if open.written == Written::Duplicate {
            return Ok(());
        }
        open.records += 1;
        open.messages += record.0.count as u64;
        open.pending.push(record.0);
        if open.pending.len() >= HELD {
            let result = self.write_pending();
            if result.is_err() {
                self.abandon_report();
            }
            result?;
        }
        Ok(())
    }

    /// Writes the open report's buffered records, opening its transaction and writing its
    /// row first when nothing is written yet.
    fn write_pending(&mut self) -> Result<(), StoreError> {
        let Some(open) = self.open.as_mut() else { return Err(StoreError::NoOpenReport) };
        let id = match open.written {
            Written::Duplicate => {
                open.pending.clear();
                return Ok(());
            }
            Written::Into(id) => id,
            Written::Nothing => {
                crate::sql::begin_write(self.conn.as_mut())?;
                let inserted = self.conn.query_opt(INSERT_REPORT, &open.row.params(), |r| r.i64(0));
                if !matches!(inserted, Ok(Some(_))) {
                    // Nothing was written: a failed ROLLBACK leaves nothing to undo.
                    let _ = self.conn.batch("ROLLBACK");
                }
                match inserted? {
                    Some(id) => {
                        open.written = Written::Into(id);
                        id
                    }
                    None => {
                        open.written = Written::Duplicate;
                        open.pending = Vec::new();
                        return Ok(());
                    }
                }
            }
        };
        insert_rows(self.conn.as_mut(), id, &open.pending, &mut self.copy_buffer)?;
        open.pending.clear();
        Ok(())
    }

    /// Commits the open report: [`Stored::New`] with its records and messages, or
    /// [`Stored::Duplicate`] when it was stored before (then nothing of it is written).
    pub fn commit_report(&mut self) -> Result<Stored, StoreError> {
        let Some(open) = self.open.as_mut() else { return Err(StoreError::NoOpenReport) };
        if open.written == Written::Nothing && self.conn.has_copy() {
            // PostgreSQL: the whole report in two round trips; nothing is left open either way.
            let pending = std::mem::take(&mut open.pending);
            let written = self.conn.write_report(INSERT_REPORT, &open.row.params(), COPY_RECORDS, &mut |id| {
                let mut data = Vec::new();
                match id {
                    Some(id) => {
                        data.reserve(pending.len() * 256);
                        copy_rows(id, &pending, &mut data);
                    }
                    None => copy_rows(0, &[], &mut data),
                }
                data
            });
            let open = self.open.take().ok_or(StoreError::NoOpenReport)?;
            return Ok(match written? {
                Some(_) => Stored::New { records: open.records, messages: open.messages },
                None => Stored::Duplicate,
            });
        }
        let written = self.write_pending().and_then(|()| match self.open.as_ref().map(|o| o.written) {
            Some(Written::Into(_)) => self.conn.batch("COMMIT"),
            _ => Ok(()),
        });
        match written {
            Ok(()) => {
                let open = self.open.take().ok_or(StoreError::NoOpenReport)?;
                Ok(match open.written {
                    Written::Into(_) => Stored::New { records: open.records, messages: open.messages },
                    _ => Stored::Duplicate,
                })
            }
            Err(e) => {
                self.abandon_report();
                Err(e)
            }
        }
    }

    /// Drops the open report: nothing of it is stored.
    pub fn abandon_report(&mut self) {
        if let Some(open) = self.open.take()
            && matches!(open.written, Written::Into(_))
        {
            self.rollback();
        }
    }

    /// Stores one whole report (see [`Store::begin_report`]).
    pub fn store_aggregate(
        &mut self,
        header: &ReportHeader,
        origin: &str,
        records: impl IntoIterator<Item = ReportRecord>,
    ) -> Result<Stored, StoreError> {
        self.begin_report(header, origin);
        for r in records {
            self.add_record(r)?;
        }
        self.commit_report()
    }

    /// Stores one failure report, once: the same report again (the same content, from
    /// wherever it came) is [`Stored::Duplicate`].
    pub fn store_failure(&mut self, report: &FailureReport, origin: &str) -> Result<Stored, StoreError> {
        use sha2::Digest;
        let json = serde_json::to_string(report).unwrap_or_default();
        let digest: String = sha2::Sha256::digest(json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let domain = report.reported_domain.first().map(String::as_str);
        let inserted = self.write(|conn| {
            conn.execute(
                INSERT_FAILURE,
                &[
                    domain.into(),
                    report.arrival_date.into(),
                    (&report.source_ip).into(),
                    (&report.feedback_type).into(),
                    (&report.auth_failure).into(),
                    json.as_str().into(),
                    origin.into(),
                    unix_now().into(),
                    digest.as_str().into(),
                ],
            )
        })?;
        Ok(if inserted == 0 { Stored::Duplicate } else { Stored::New { records: 0, messages: 0 } })
    }

    /// Every record of reports for `domain` whose period ends after `since` and at the
    /// latest at `until`.
    pub fn records_for(
        &mut self,
        domain: &str,
        since: i64,
        until: i64,
        each: &mut dyn FnMut(StoredRecord),
    ) -> Result<(), StoreError> {
        self.conn.query(SELECT_RECORDS, &[domain.into(), since.into(), until.into()], &mut |row| {
            each(read_record(row)?);
            Ok(())
        })
    }

    /// Report headers (one per stored report) for `domain`, ending after `since` and at the
    /// latest at `until`.
    pub fn reports_for(&mut self, domain: &str, since: i64, until: i64) -> Result<Vec<ReportHeader>, StoreError> {
        self.conn.query_all(SELECT_REPORTS, &[domain.into(), since.into(), until.into()], |r| {
            let mut h = ReportHeader::default();
            h.metadata.org_name = r.text(0)?;
            h.metadata.report_id = r.text(1)?;
            h.metadata.begin = r.i64(2)?;
            h.metadata.end = r.i64(3)?;
            Ok(h)
        })
    }

    /// Failure reports about `domain` that arrived after `since` and at the latest at
    /// `until` (oldest first).
    pub fn failures_for(&mut self, domain: &str, since: i64, until: i64) -> Result<Vec<FailureReport>, StoreError> {
        let texts =
            self.conn.query_all(SELECT_FAILURES, &[domain.into(), since.into(), until.into()], |r| r.text(0))?;
        Ok(texts.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
    }

    /// The distinct source IPs (as stored) in `domain`'s reports in the window.
    pub fn source_ips(&mut self, domain: &str, since: i64, until: i64) -> Result<Vec<String>, StoreError> {
        self.conn.query_all(SELECT_SOURCE_IPS, &[domain.into(), since.into(), until.into()], |r| r.text(0))
    }

    /// Stored reports whose period ends after `since`, for `domain` or for every domain,
    /// newest first, at most `limit`; and how many there are in all.
    pub fn list_reports(
        &mut self,
        domain: Option<&str>,
        since: i64,
        limit: u64,
    ) -> Result<(Vec<StoredReport>, u64), StoreError> {
        let limit = limit.min(i64::MAX as u64) as i64;
        let (reports, total) = match domain {
            Some(d) => (
                self.conn.query_all(&LIST_DOMAIN_REPORTS, &[d.into(), since.into(), limit.into()], read_report)?,
                self.conn.query_i64(
                    "SELECT COUNT(*) FROM reports WHERE domain = $1 AND end_ts > $2",
                    &[d.into(), since.into()],
                )?,
            ),
            None => (
                self.conn.query_all(&LIST_REPORTS, &[since.into(), limit.into()], read_report)?,
                self.conn.query_i64("SELECT COUNT(*) FROM reports WHERE end_ts > $1", &[since.into()])?,
            ),
        };
        Ok((reports, total.max(0) as u64))
    }

    /// The stored report with the database id `id`.
    pub fn report_by_id(&mut self, id: i64) -> Result<Option<StoredReport>, StoreError> {
        self.conn.query_opt(&REPORT_BY_ROW, &[id.into()], read_report)
    }

    /// The stored reports whose reporter gave them the id `report_id` (several reporters
    /// may have used the same one).
    pub fn reports_by_reporter_id(&mut self, report_id: &str) -> Result<Vec<StoredReport>, StoreError> {
        self.conn.query_all(&REPORTS_BY_REPORTER_ID, &[report_id.into()], read_report)
    }

    /// Every record of the stored report `id` (in no particular order).
    pub fn report_records(&mut self, id: i64, each: &mut dyn FnMut(StoredRecord)) -> Result<(), StoreError> {
        self.conn.query(SELECT_REPORT_RECORDS, &[id.into()], &mut |row| {
            each(read_record(row)?);
            Ok(())
        })
    }

    /// Reports, records, messages and failure reports stored in all.
    pub fn totals(&mut self) -> Result<Totals, StoreError> {
        let reports = self.conn.query_i64("SELECT COUNT(*) FROM reports", &[])?;
        let (records, messages) = self
            .conn
            .query_opt("SELECT COUNT(*), CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM records", &[], |r| {
                Ok((r.i64(0)?, r.i64(1)?))
            })?
            .unwrap_or((0, 0));
        let failures = self.conn.query_i64("SELECT COUNT(*) FROM failures", &[])?;
        Ok(Totals {
            reports: reports as u64,
            records: records as u64,
            messages: messages as u64,
            failures: failures as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ips_are_stored_in_canonical_form() {
        let row = |text: &str| {
            let r = ReportRecord { source_ip: text.parse().ok(), source_ip_text: text.into(), ..Default::default() };
            RecordRow::new(r).source_ip
        };
        assert_eq!(row("192.0.2.1"), "192.0.2.1");
        assert_eq!(row("2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(row("192.000.2.1"), "192.000.2.1", "not an address: kept as written");
        assert!("192.000.2.1".parse::<IpAddr>().is_err(), "leading zeros are refused, so a parsed IPv4 is canonical");
    }
}
