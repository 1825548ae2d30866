//! Ingestion: inputs (files, directories walked recursively — Maildir included — or
//! standard input) → containers → reports → the store, one transaction per report. A bad
//! input is reported and the batch goes on. Plain and gzip-compressed XML are streamed,
//! whatever their size; other containers are unpacked in memory within the size limit.

use crate::{ReportWriter, Store, StoreError};
use flate2::read::MultiGzDecoder;
use serde::Serialize;
use ses_dmarc_reports::aggregate::{Limits, ReportHeader, ReportRecord, ReportSink, parse_into};
use ses_dmarc_reports::failure::parse_failure;
use ses_dmarc_reports::unpack::{Content, UnpackLimits, unpack};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputOutcome {
    pub path: String,
    /// `ingested`, `duplicate`, `failed` or `partial`.
    pub outcome: &'static str,
    pub reports: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub records: u64,
    pub messages: u64,
    pub error: Option<String>,
}

impl InputOutcome {
    /// An input that could not even be opened.
    pub fn unreadable(path: &str, error: &std::io::Error) -> Self {
        InputOutcome { path: path.to_string(), ..Default::default() }.with_failure(format!("cannot read: {error}"))
    }

    fn with_failure(mut self, message: String) -> Self {
        self.fail(message);
        self.finish()
    }

    fn finish(mut self) -> Self {
        self.outcome = match (self.reports + self.duplicates, self.failed) {
            (0, 0) => {
                if self.error.is_none() {
                    self.error = Some("no DMARC report found".into());
                }
                "failed"
            }
            (0, _) => "failed",
            (_, 0) if self.reports == 0 => "duplicate",
            (_, 0) => "ingested",
            _ => "partial",
        };
        self
    }

    fn fail(&mut self, message: String) {
        self.failed += 1;
        match &mut self.error {
            Some(e) => {
                e.push_str("; ");
                e.push_str(&message);
            }
            None => self.error = Some(message),
        }
    }
}

struct StoreSink<'a> {
    store: Option<&'a mut Store>,
    origin: &'a str,
    writer: Option<ReportWriter<'a>>,
    duplicate: bool,
    error: Option<StoreError>,
}

impl<'a> ReportSink for StoreSink<'a> {
    fn header(&mut self, header: &ReportHeader) {
        if let Some(store) = self.store.take() {
            match store.begin_report(header, self.origin) {
                Ok(Some(w)) => self.writer = Some(w),
                Ok(None) => self.duplicate = true,
                Err(e) => self.error = Some(e),
            }
        }
    }

    fn record(&mut self, record: ReportRecord) {
        if let (Some(w), None) = (self.writer.as_mut(), &self.error)
            && let Err(e) = w.add(&record)
        {
            self.error = Some(e);
        }
    }
}

/// Parses one aggregate report from a reader straight into the store.
fn ingest_xml(store: &mut Store, origin: &str, reader: impl BufRead, out: &mut InputOutcome) {
    let mut sink = StoreSink { store: Some(store), origin, writer: None, duplicate: false, error: None };
    let parsed = parse_into(reader, Limits::default(), &mut sink);
    let StoreSink { writer, duplicate, error, .. } = sink;
    match (parsed, error) {
        (Err(e), _) => out.fail(format!("{origin}: {e}")),
        (_, Some(e)) => out.fail(format!("{origin}: {e}")),
        (Ok(_), None) if duplicate => out.duplicates += 1,
        (Ok(_), None) => match writer.map(|w| w.commit()) {
            Some(Ok((records, messages))) => {
                out.reports += 1;
                out.records += records;
                out.messages += messages;
            }
            Some(Err(e)) => out.fail(format!("{origin}: {e}")),
            None => out.fail(format!("{origin}: the report could not be stored")),
        },
    }
}

fn starts_like_xml(head: &[u8]) -> bool {
    let h = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    h.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// Ingests one input (a file's content as a reader).
pub fn ingest_reader(store: &mut Store, origin: &str, input: impl Read, limits: &UnpackLimits) -> InputOutcome {
    let mut out = InputOutcome { path: origin.to_string(), ..Default::default() };
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let head = match reader.fill_buf() {
        Ok(h) => h.to_vec(),
        Err(e) => {
            out.fail(format!("cannot read: {e}"));
            return out.finish();
        }
    };
    if head.is_empty() {
        out.fail("empty input".into());
        return out.finish();
    }
    if starts_like_xml(&head) && String::from_utf8_lossy(&head).to_ascii_lowercase().contains("feedback") {
        ingest_xml(store, origin, reader, &mut out);
        return out.finish();
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut inner = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(reader).take(limits.max_size + 1));
        let inner_head = inner.fill_buf().map(|h| h.to_vec()).unwrap_or_default();
        if starts_like_xml(&inner_head) {
            ingest_xml(store, origin, inner, &mut out);
            return out.finish();
        }
        let mut data = Vec::new();
        if let Err(e) = inner.read_to_end(&mut data) {
            out.fail(format!("cannot decompress: {e}"));
            return out.finish();
        }
        return unpack_and_store(store, origin, &data, limits, out);
    }
    let mut data = Vec::new();
    if let Err(e) = reader.take(limits.max_size + 1).read_to_end(&mut data) {
        out.fail(format!("cannot read: {e}"));
        return out.finish();
    }
    if data.len() as u64 > limits.max_size {
        out.fail(format!("larger than {} MB and not plain or gzip XML; refused", limits.max_size / 1024 / 1024));
        return out.finish();
    }
    unpack_and_store(store, origin, &data, limits, out)
}

fn unpack_and_store(
    store: &mut Store,
    origin: &str,
    data: &[u8],
    limits: &UnpackLimits,
    mut out: InputOutcome,
) -> InputOutcome {
    for item in unpack(origin, data, limits) {
        match item {
            Ok(item) => match item.content {
                Content::Aggregate(xml) => ingest_xml(store, &item.origin, &xml[..], &mut out),
                Content::Failure(raw) => match parse_failure(&raw) {
                    Ok(report) => match store.store_failure(&report, &item.origin) {
                        Ok(()) => out.reports += 1,
                        Err(e) => out.fail(format!("{}: {e}", item.origin)),
                    },
                    Err(e) => out.fail(format!("{}: {e}", item.origin)),
                },
            },
            Err(e) => out.fail(e.to_string()),
        }
    }
    out.finish()
}

/// Files under a path: the path itself, or every file below a directory, sorted.
pub fn files_under(path: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
