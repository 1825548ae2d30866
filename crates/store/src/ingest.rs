//! Ingestion: inputs (files, directories walked recursively — Maildir included — or
//! standard input) → containers → reports → the store, one transaction per report. A bad
//! input is reported and the batch goes on. Plain and gzip-compressed XML are parsed in
//! memory up to 16 MB and streamed above, whatever their size; other containers are
//! unpacked in memory within the size limit.

use crate::{PreparedRecord, Store, StoreError};
use flate2::read::MultiGzDecoder;
use serde::Serialize;
use ses_dmarc_reports::aggregate::{
    Limits, ReportError, ReportHeader, ReportRecord, ReportSink, parse_bytes_into, parse_into,
};
use ses_dmarc_reports::failure::{FailureReport, parse_failure};
use ses_dmarc_reports::unpack::{Content, UnpackLimits, mentions_feedback, too_large, unpack};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// What became of one input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestOutcome {
    /// Every report in it was stored.
    Ingested,
    /// Every report in it was stored before.
    Duplicate,
    /// Nothing in it could be stored.
    #[default]
    Failed,
    /// Some of it was stored, some failed.
    Partial,
}

/// One input's outcome, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputOutcome {
    /// The input's name (a path, `-`).
    pub path: String,
    /// What became of it.
    pub outcome: IngestOutcome,
    /// Reports stored now.
    pub reports: u64,
    /// Reports already stored.
    pub duplicates: u64,
    /// Reports or parts that failed.
    pub failed: u64,
    /// Records stored now.
    pub records: u64,
    /// Messages those records count.
    pub messages: u64,
    /// Why parts failed.
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
                IngestOutcome::Failed
            }
            (0, _) => IngestOutcome::Failed,
            (_, 0) if self.reports == 0 => IngestOutcome::Duplicate,
            (_, 0) => IngestOutcome::Ingested,
            _ => IngestOutcome::Partial,
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

/// What reading an input produces, in order; the store applies it (on another thread
/// when inputs are parsed in parallel).
enum Event {
    /// An aggregate report starts (its header is known).
    Begin {
        origin: String,
        header: Box<ReportHeader>,
    },
    Records(Vec<PreparedRecord>),
    /// The aggregate report that started last (if any) ends.
    End {
        origin: String,
        result: Result<(), String>,
    },
    Failure {
        origin: String,
        report: Box<FailureReport>,
    },
    /// Something in the input could not be read; the rest of the input goes on.
    Failed(String),
}

/// Records sent per [`Event::Records`].
const CHUNK: usize = 512;

/// Streams one aggregate report's events.
struct EventSink<'e> {
    origin: &'e str,
    chunk: Vec<PreparedRecord>,
    emit: &'e mut dyn FnMut(Event),
}

impl ReportSink for EventSink<'_> {
    fn header(&mut self, header: &ReportHeader) {
        (self.emit)(Event::Begin { origin: self.origin.to_string(), header: Box::new(header.clone()) });
    }

    fn record(&mut self, record: ReportRecord) {
        self.chunk.push(PreparedRecord::new(record));
        if self.chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            (self.emit)(Event::Records(full));
        }
    }
}

/// Below this size a plain or gzip XML document is read into memory and parsed without a
/// copy through the XML reader's buffer; above it, it is streamed.
const IN_MEMORY: u64 = 16 * 1024 * 1024;

/// The aggregate report a reader holds: parsed in memory when it is small enough (the
/// common case, and the fastest), streamed otherwise.
fn read_xml(origin: &str, mut reader: impl BufRead, emit: &mut dyn FnMut(Event)) {
    let mut head = Vec::new();
    if let Err(e) = reader.by_ref().take(IN_MEMORY).read_to_end(&mut head) {
        return emit(Event::Failed(format!("cannot read: {e}")));
    }
    if (head.len() as u64) < IN_MEMORY {
        read_xml_bytes(origin, &head, emit)
    } else {
        read_xml_stream(origin, std::io::Cursor::new(head).chain(reader), emit)
    }
}

fn read_xml_stream(origin: &str, reader: impl BufRead, emit: &mut dyn FnMut(Event)) {
    let mut sink = EventSink { origin, chunk: Vec::with_capacity(CHUNK), emit };
    let parsed = parse_into(reader, Limits::default(), &mut sink);
    sink.end(parsed.map(|_| ()));
}

fn read_xml_bytes(origin: &str, xml: &[u8], emit: &mut dyn FnMut(Event)) {
    let mut sink = EventSink { origin, chunk: Vec::with_capacity(CHUNK), emit };
    let parsed = parse_bytes_into(xml, Limits::default(), &mut sink);
    sink.end(parsed.map(|_| ()));
}

impl EventSink<'_> {
    /// Sends the last records and the report's end.
    fn end(self, parsed: Result<(), ReportError>) {
        let EventSink { origin, chunk, emit } = self;
        if !chunk.is_empty() {
            emit(Event::Records(chunk));
        }
        emit(Event::End { origin: origin.to_string(), result: parsed.map_err(|e| e.to_string()) });
    }
}

fn starts_like_xml(head: &[u8]) -> bool {
    let h = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    h.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// Reads one input (a file's content): recognises the container by content, streams
/// plain and gzip XML, unpacks the rest in memory within the limits.
fn read_input(origin: &str, input: impl Read, limits: &UnpackLimits, emit: &mut dyn FnMut(Event)) {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let head = match reader.fill_buf() {
        Ok(h) => h.to_vec(),
        Err(e) => return emit(Event::Failed(format!("cannot read: {e}"))),
    };
    if head.is_empty() {
        return emit(Event::Failed("empty input".into()));
    }
    if starts_like_xml(&head) && mentions_feedback(&head) {
        return read_xml(origin, reader, emit);
    }
    let data = if head.starts_with(&[0x1f, 0x8b]) {
        let mut inner =
            BufReader::with_capacity(64 * 1024, SizeLimited::new(MultiGzDecoder::new(reader), limits.max_size));
        let inner_head = inner.fill_buf().map(|h| h.to_vec()).unwrap_or_default();
        if starts_like_xml(&inner_head) {
            return read_xml(origin, inner, emit);
        }
        let mut data = Vec::new();
        if let Err(e) = inner.read_to_end(&mut data) {
            return emit(Event::Failed(format!("cannot decompress: {e}")));
        }
        data
    } else {
        let mut data = Vec::new();
        if let Err(e) = reader.take(limits.max_size + 1).read_to_end(&mut data) {
            return emit(Event::Failed(format!("cannot read: {e}")));
        }
        if data.len() as u64 > limits.max_size {
            return emit(Event::Failed(format!(
                "larger than {} MB and not plain or gzip XML; refused",
                limits.max_size / 1024 / 1024
            )));
        }
        data
    };
    for item in unpack(origin, &data, limits) {
        match item {
            Ok(item) => match item.content {
                Content::Aggregate(xml) => read_xml_bytes(&item.origin, &xml, emit),
                Content::Failure(raw) => match parse_failure(&raw) {
                    Ok(report) => emit(Event::Failure { origin: item.origin, report: Box::new(report) }),
                    Err(e) => emit(Event::Failed(format!("{}: {e}", item.origin))),
                },
            },
            Err(e) => emit(Event::Failed(e.to_string())),
        }
    }
}

/// A decompressing reader that fails, with the reason, once more than `limit` bytes have
/// come out of it: a report past the limit is refused, not stored cut short.
struct SizeLimited<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R> SizeLimited<R> {
    fn new(inner: R, limit: u64) -> Self {
        SizeLimited { inner, left: limit, limit }
    }
}

impl<R: Read> Read for SizeLimited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| std::io::Error::other(too_large(self.limit)))?;
        Ok(n)
    }
}

/// Applies one input's events to the store and keeps its outcome.
struct Applier {
    out: InputOutcome,
    /// The report being stored; `Some(false)` while a duplicate's records are skipped.
    open: Option<bool>,
    error: Option<StoreError>,
}

impl Applier {
    fn new(path: &str) -> Self {
        Applier { out: InputOutcome { path: path.to_string(), ..Default::default() }, open: None, error: None }
    }

    fn apply(&mut self, store: &mut Store, event: Event) {
        match event {
            Event::Begin { origin, header } => {
                self.error = None;
                match store.begin_report(&header, &origin) {
                    Ok(new) => self.open = Some(new),
                    Err(e) => self.error = Some(e),
                }
            }
            Event::Records(records) => {
                if self.open == Some(true) && self.error.is_none() {
                    for r in records {
                        if let Err(e) = store.add_prepared(r) {
                            self.error = Some(e);
                            break;
                        }
                    }
                }
            }
            Event::End { origin, result } => {
                let open = self.open.take();
                match (result, self.error.take()) {
                    (Err(e), _) => {
                        store.abandon_report();
                        self.out.fail(format!("{origin}: {e}"));
                    }
                    (_, Some(e)) => {
                        store.abandon_report();
                        self.out.fail(format!("{origin}: {e}"));
                    }
                    (Ok(()), None) => match open {
                        Some(false) => self.out.duplicates += 1,
                        Some(true) => match store.commit_report() {
                            Ok((records, messages)) => {
                                self.out.reports += 1;
                                self.out.records += records;
                                self.out.messages += messages;
                            }
                            Err(e) => self.out.fail(format!("{origin}: {e}")),
                        },
                        None => self.out.fail(format!("{origin}: the report could not be stored")),
                    },
                }
            }
            Event::Failure { origin, report } => match store.store_failure(&report, &origin) {
                Ok(()) => self.out.reports += 1,
                Err(e) => self.out.fail(format!("{origin}: {e}")),
            },
            Event::Failed(message) => self.out.fail(message),
        }
    }

    fn finish(self, store: &mut Store) -> InputOutcome {
        if self.open.is_some() {
            store.abandon_report();
        }
        self.out.finish()
    }
}

/// Ingests one input (a file's content as a reader) on this thread.
pub fn ingest_reader(store: &mut Store, origin: &str, input: impl Read, limits: &UnpackLimits) -> InputOutcome {
    let mut applier = Applier::new(origin);
    read_input(origin, input, limits, &mut |event| applier.apply(store, event));
    applier.finish(store)
}

/// One input of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Input {
    /// The input's name in outcomes and messages.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Events buffered per parsing thread before it waits for the store.
const QUEUE: usize = 32;

/// Ingests a batch: `workers` threads read and parse inputs while this thread stores them,
/// in input order, one transaction per report. `on_outcome` sees each input's outcome in
/// order, as soon as it is stored.
pub fn ingest_inputs(
    store: &mut Store,
    inputs: &[Input],
    limits: &UnpackLimits,
    workers: usize,
    on_outcome: &mut dyn FnMut(InputOutcome),
) {
    enum Message {
        Event(Event),
        Done,
    }
    let workers = workers.clamp(1, inputs.len().max(1));
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Message>(QUEUE);
            receivers.push(rx);
            scope.spawn(move || {
                for input in inputs.iter().skip(w).step_by(workers) {
                    let name = input.name();
                    let mut emit = |event| {
                        // The store side only hangs up when it stops altogether.
                        let _ = tx.send(Message::Event(event));
                    };
                    match input {
                        Input::Stdin => read_input(&name, std::io::stdin(), limits, &mut emit),
                        Input::File(path) => match std::fs::File::open(path) {
                            Ok(file) => read_input(&name, file, limits, &mut emit),
                            Err(e) => emit(Event::Failed(format!("cannot read: {e}"))),
                        },
                    }
                    if tx.send(Message::Done).is_err() {
                        return;
                    }
                }
            });
        }
        for (i, input) in inputs.iter().enumerate() {
            let mut applier = Applier::new(&input.name());
            loop {
                match receivers[i % workers].recv() {
                    Ok(Message::Event(event)) => applier.apply(store, event),
                    Ok(Message::Done) => break,
                    Err(_) => {
                        applier.apply(store, Event::Failed("the parsing thread stopped".into()));
                        break;
                    }
                }
            }
            on_outcome(applier.finish(store));
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn report(id: usize, records: usize) -> String {
        let rows: String = (0..records)
            .map(|i| {
                format!(
                    "<record><row><source_ip>192.0.2.{}</source_ip><count>{}</count></row>\
                     <identifiers><header_from>example.com</header_from></identifiers>\
                     <auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>",
                    i % 250,
                    i + 1
                )
            })
            .collect();
        format!(
            "<feedback><report_metadata><org_name>test</org_name><report_id>{id}</report_id>\
             <date_range><begin>1700000000</begin><end>1700086400</end></date_range></report_metadata>\
             <policy_published><domain>example.com</domain><p>none</p></policy_published>{rows}</feedback>"
        )
    }

    #[test]
    fn parallel_ingest_equals_one_input_after_another() {
        let dir = std::env::temp_dir().join(format!("ses-dmarc-ingest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut inputs = Vec::new();
        for i in 0..14 {
            let path = dir.join(format!("in{i:02}"));
            let body = match i % 7 {
                5 => b"not a report".to_vec(),
                6 => report(i - 6, 3).into_bytes(), // the same report as input i-6: a duplicate
                3 => report(i, 0).into_bytes(),
                _ => report(i, i * 300).into_bytes(), // up to 3,900 records: several chunks
            };
            std::fs::write(&path, body).unwrap();
            inputs.push(Input::File(path));
        }
        inputs.push(Input::File(dir.join("missing")));
        let limits = UnpackLimits::default();
        let mut parallel = Store::open(&Location::Sqlite(dir.join("p.sqlite"))).unwrap();
        let mut got = Vec::new();
        ingest_inputs(&mut parallel, &inputs, &limits, 3, &mut |o| got.push(o));
        let mut sequential = Store::open(&Location::Sqlite(dir.join("s.sqlite"))).unwrap();
        let want: Vec<InputOutcome> = inputs
            .iter()
            .map(|input| {
                let Input::File(path) = input else { unreachable!() };
                match std::fs::File::open(path) {
                    Ok(f) => ingest_reader(&mut sequential, &input.name(), f, &limits),
                    Err(e) => InputOutcome { path: input.name(), ..Default::default() }
                        .with_failure(format!("cannot read: {e}")),
                }
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(parallel.totals().unwrap(), sequential.totals().unwrap());
        let outcomes: Vec<IngestOutcome> = got.iter().map(|o| o.outcome).collect();
        assert_eq!(outcomes.iter().filter(|o| **o == IngestOutcome::Duplicate).count(), 2, "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == IngestOutcome::Failed).count(), 3, "{outcomes:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn streamed_and_in_memory_reports_store_the_same_and_limits_refuse_clearly() {
        let dir = std::env::temp_dir().join(format!("ses-dmarc-ingest-sizes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // About 24 MB of XML: above IN_MEMORY, so plain and gzip are streamed.
        let big = report(1, 100_000);
        assert!(big.len() as u64 > IN_MEMORY);
        let small = report(2, 1_000);
        let limits = UnpackLimits::default();
        let ingest = |name: &str, data: &[u8], limits: &UnpackLimits| {
            let mut store = Store::open(&Location::Sqlite(dir.join(format!("{name}.sqlite")))).unwrap();
            ingest_reader(&mut store, name, data, limits)
        };
        for (name, data) in [("big.xml", big.clone().into_bytes()), ("big.xml.gz", gzip(big.as_bytes()))] {
            let o = ingest(name, &data, &limits);
            assert_eq!((o.outcome, o.reports, o.records), (IngestOutcome::Ingested, 1, 100_000), "{name}: {o:?}");
            assert_eq!(o.messages, (1..=100_000u64).sum::<u64>());
        }
        for (name, data) in [("small.xml", small.clone().into_bytes()), ("small.xml.gz", gzip(small.as_bytes()))] {
            let o = ingest(name, &data, &limits);
            assert_eq!((o.outcome, o.records), (IngestOutcome::Ingested, 1_000), "{name}: {o:?}");
        }
        // A gzip report past --max-size, streamed or not: refused with the reason, nothing stored.
        let tight = UnpackLimits { max_size: 8 * 1024 * 1024, ..UnpackLimits::default() };
        for (name, data) in [("over.xml.gz", gzip(big.as_bytes())), ("zeros.gz", gzip(&vec![0u8; 20 << 20]))] {
            let o = ingest(name, &data, &tight);
            assert_eq!((o.outcome, o.reports, o.records), (IngestOutcome::Failed, 0, 0), "{name}: {o:?}");
            assert!(o.error.as_deref().unwrap().contains("more than 8 MB (the limit)"), "{name}: {o:?}");
        }
        // Cut short: the gzip stream ends early, or the XML itself does.
        let gz = gzip(big.as_bytes());
        let truncated = [
            ("cut.xml.gz", gz[..gz.len() / 2].to_vec()),
            ("cut.xml", big.as_bytes()[..big.len() - "</feedback>".len()].to_vec()),
            ("cut-small.xml", small.as_bytes()[..small.len() - "</record></feedback>".len()].to_vec()),
        ];
        for (name, data) in truncated {
            let o = ingest(name, &data, &limits);
            assert_eq!((o.outcome, o.reports, o.records), (IngestOutcome::Failed, 0, 0), "{name}: {o:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
