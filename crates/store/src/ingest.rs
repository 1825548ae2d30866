//! Ingestion: inputs (files, directories walked recursively — Maildir included — or
//! standard input) → containers → reports → the store, one transaction per report. A bad
//! input is reported and the batch goes on. Plain and gzip-compressed XML are parsed in
//! memory up to 16 MB and streamed above, whatever their size; other containers are
//! unpacked in memory within the size limit.

use crate::{PreparedRecord, Store, StoreError};
use serde::Serialize;
use ses_dmarc_reports::aggregate::{
    Limits, ReportError, ReportHeader, ReportRecord, ReportSink, parse_bytes_into, parse_into,
};
use ses_dmarc_reports::failure::{FailureReport, parse_failure};
use ses_dmarc_reports::unpack::{Content, GzMembers, UnpackLimits, bomb, mentions_feedback, too_large, unpack_each};
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
    /// Not read, on purpose (a link to a directory, a FIFO inside a directory).
    Skipped,
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
    /// Why parts failed (or why it was skipped).
    pub error: Option<String>,
    /// Whether a failure was the database's, not the input's (the input may be retried).
    #[serde(skip)]
    pub database_failed: bool,
    /// How many of the failures are e-mails that hold no report at all (counted in `failed`
    /// too, so `reports ingest` still says so).
    #[serde(skip)]
    pub no_report: u64,
    #[serde(skip)]
    skipped: bool,
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
        if self.skipped {
            self.outcome = IngestOutcome::Skipped;
            return self;
        }
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
        /// The records refused (each with its reason), or why the report is refused.
        result: Result<Vec<String>, String>,
    },
    Failure {
        origin: String,
        report: Box<FailureReport>,
    },
    /// Something in the input could not be read; the rest of the input goes on.
    Failed(String),
    /// The input (an e-mail) was read and holds no report.
    NoReport(String),
    /// The input is deliberately not read.
    Skipped(String),
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
    sink.end(parsed.map(|h| h.skipped));
}

fn read_xml_bytes(origin: &str, xml: &[u8], emit: &mut dyn FnMut(Event)) {
    let mut sink = EventSink { origin, chunk: Vec::with_capacity(CHUNK), emit };
    let parsed = parse_bytes_into(xml, Limits::default(), &mut sink);
    sink.end(parsed.map(|h| h.skipped));
}

impl EventSink<'_> {
    /// Sends the last records and the report's end.
    fn end(self, parsed: Result<Vec<String>, ReportError>) {
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
/// plain and gzip XML, unpacks the rest member by member within the limits.
fn read_input(origin: &str, input: impl Read, limits: &UnpackLimits, emit: &mut dyn FnMut(Event)) {
    let counted = Counted { inner: input, read: std::rc::Rc::new(std::cell::Cell::new(0)) };
    let consumed = counted.read.clone();
    let mut reader = BufReader::with_capacity(64 * 1024, counted);
    let head = match reader.fill_buf() {
        Ok(h) => h.to_vec(),
        Err(e) => return emit(Event::Failed(format!("cannot read: {e}"))),
    };
    if head.is_empty() {
        return emit(Event::Failed("an empty file: no report in it".into()));
    }
    if (starts_like_xml(&head) && mentions_feedback(&head)) || ses_dmarc_reports::unpack::is_wide_xml(&head) {
        return read_xml(origin, reader, emit);
    }
    let data = if head.starts_with(&[0x1f, 0x8b]) {
        let inflated = Limited::new(GzMembers::new(reader), limits, consumed);
        let mut inner = BufReader::with_capacity(64 * 1024, inflated);
        let inner_head = match inner.fill_buf() {
            Ok(h) => h.to_vec(),
            Err(e) => return emit(Event::Failed(format!("cannot decompress: {e}"))),
        };
        if starts_like_xml(&inner_head) || ses_dmarc_reports::unpack::is_wide_xml(&inner_head) {
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
                "larger than {} MB and not plain or gzip XML; refused (`--max-size` raises the limit)",
                limits.max_size / 1024 / 1024
            )));
        }
        data
    };
    unpack_each(origin, &data, limits, &mut |item| match item {
        Ok(item) => match item.content {
            Content::Aggregate(xml) => read_xml_bytes(&item.origin, &xml, emit),
            Content::Failure(raw) => match parse_failure(&raw) {
                Ok(report) => emit(Event::Failure { origin: item.origin, report: Box::new(report) }),
                Err(e) => emit(Event::Failed(format!("{}: {e}", item.origin))),
            },
        },
        Err(e) if e.no_report => emit(Event::NoReport(e.to_string())),
        Err(e) => emit(Event::Failed(e.to_string())),
    });
}

/// A reader that counts the bytes read through it (the compressed size, for the ratio).
struct Counted<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// A decompressing reader that fails, with the reason, at the first byte past the size
/// limit or the compression ratio: a report past a limit is refused, not stored cut short.
struct Limited<R> {
    inner: R,
    out: u64,
    limits: UnpackLimits,
    compressed: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R> Limited<R> {
    fn new(inner: R, limits: &UnpackLimits, compressed: std::rc::Rc<std::cell::Cell<u64>>) -> Self {
        Limited { inner, out: 0, limits: *limits, compressed }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > self.limits.max_size {
            return Err(std::io::Error::other(too_large(self.limits.max_size)));
        }
        let compressed = self.compressed.get().max(1);
        if self.out > 1024 * 1024 && self.out / compressed > self.limits.max_ratio {
            return Err(std::io::Error::other(bomb(self.limits.max_ratio, compressed, self.out)));
        }
        Ok(n)
    }
}

/// Applies one input's events to the store and keeps its outcome.
/// How far in the future a report's period may end (reporters' clocks differ).
const FUTURE_SLACK: i64 = 2 * 86_400;

struct Applier {
    out: InputOutcome,
    /// Why the report being read is refused before anything of it is stored.
    refusal: Option<String>,
    /// A report is being stored.
    open: bool,
    error: Option<StoreError>,
}

impl Applier {
    fn new(path: &str) -> Self {
        Applier {
            out: InputOutcome { path: path.to_string(), ..Default::default() },
            refusal: None,
            open: false,
            error: None,
        }
    }

    fn apply(&mut self, store: &mut Store, event: Event) {
        match event {
            Event::Begin { origin, header } => {
                self.error = None;
                self.refusal = None;
                let end = header.metadata.end;
                if end > crate::unix_now() + FUTURE_SLACK {
                    self.refusal = Some(format!(
                        "the report's period ends at {end} (seconds since 1970), in the future: a reporter's clock or a forgery; refused"
                    ));
                    return;
                }
                store.begin_report(&header, &origin);
                self.open = true;
            }
            Event::Records(records) => {
                if self.open && self.error.is_none() {
                    for r in records {
                        if let Err(e) = store.add_prepared(r) {
                            self.out.database_failed = true;
                            self.error = Some(e);
                            break;
                        }
                    }
                }
            }
            Event::End { origin, result } => {
                let open = std::mem::take(&mut self.open);
                if let Some(refusal) = self.refusal.take() {
                    store.abandon_report();
                    return self.out.fail(format!("{origin}: {refusal}"));
                }
                match (result, self.error.take()) {
                    (Err(e), _) => {
                        store.abandon_report();
                        self.out.fail(format!("{origin}: {e}"));
                    }
                    (_, Some(e)) => {
                        store.abandon_report();
                        self.out.fail(format!("{origin}: {e}"));
                    }
                    (Ok(_), None) if !open => self.out.fail(format!("{origin}: the report could not be stored")),
                    (Ok(refused), None) => match store.commit_report() {
                        Ok(crate::Stored::Duplicate) => self.out.duplicates += 1,
                        Ok(crate::Stored::New { records, messages }) => {
                            self.out.reports += 1;
                            self.out.records += records;
                            self.out.messages += messages;
                            for reason in refused {
                                self.out.fail(format!("{origin}: {reason}; that record was not stored"));
                            }
                        }
                        Err(e) => {
                            self.out.database_failed = true;
                            self.out.fail(format!("{origin}: {e}"))
                        }
                    },
                }
            }
            Event::Failure { origin, report } => match store.store_failure(&report, &origin) {
                Ok(crate::Stored::Duplicate) => self.out.duplicates += 1,
                Ok(crate::Stored::New { .. }) => self.out.reports += 1,
                Err(e) => {
                    self.out.database_failed = true;
                    self.out.fail(format!("{origin}: {e}"))
                }
            },
            Event::Failed(message) => self.out.fail(message),
            Event::NoReport(message) => {
                self.out.no_report += 1;
                self.out.fail(message)
            }
            Event::Skipped(reason) => {
                self.out.skipped = true;
                self.out.error = Some(reason);
            }
        }
    }

    fn finish(self, store: &mut Store) -> InputOutcome {
        if self.open {
            store.abandon_report();
        }
        self.out.finish()
    }
}

/// The JSON `reports ingest --format json` prints and `POST /api/v1/reports` answers:
/// `{"database", "inputs": [...], "totals": {...}}`.
pub fn outcomes_json(database: Option<&str>, outcomes: &[InputOutcome]) -> serde_json::Value {
    let total = |f: fn(&InputOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    serde_json::json!({
        "database": database,
        "inputs": outcomes,
        "totals": {
            "reports": total(|o| o.reports),
            "duplicates": total(|o| o.duplicates),
            "failed": total(|o| o.failed),
            "records": total(|o| o.records),
            "messages": total(|o| o.messages),
        },
    })
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
    /// Something found that is not read: `failed` says whether that is a failure (a path
    /// given that cannot be read) or a deliberate skip (a link to a directory, a FIFO met
    /// in a directory).
    NotRead {
        /// The path.
        path: String,
        /// Why it is not read.
        reason: String,
        /// A failure (exit 1), or a skip.
        failed: bool,
    },
}

impl Input {
    /// The input's name in outcomes and messages.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
            Input::NotRead { path, .. } => path.clone(),
        }
    }
}

/// Events buffered per parsing thread before it waits for the store.
const QUEUE: usize = 32;

/// Ingests a batch: `workers` threads read and parse inputs while this thread stores them,
/// in input order, one transaction per report. Inputs are taken from the iterator as the
/// workers get to them (a directory walk is never listed whole first). `on_outcome` sees
/// each input's outcome in order, as soon as it is stored.
pub fn ingest_inputs(
    store: &mut Store,
    inputs: impl Iterator<Item = Input> + Send,
    limits: &UnpackLimits,
    workers: usize,
    on_outcome: &mut dyn FnMut(InputOutcome),
) {
    enum Message {
        Event(Event),
        Done(String),
    }
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(workers);
        let mut feeds = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Message>(QUEUE);
            let (feed, work) = std::sync::mpsc::sync_channel::<Input>(1);
            receivers.push(rx);
            feeds.push(feed);
            scope.spawn(move || {
                for input in work {
                    let name = input.name();
                    let mut emit = |event| {
                        // The store side only hangs up when it stops altogether.
                        let _ = tx.send(Message::Event(event));
                    };
                    match input {
                        Input::Stdin => read_input(&name, std::io::stdin(), limits, &mut emit),
                        Input::File(path) => match open_regular(&path) {
                            Ok(file) => read_input(&name, file, limits, &mut emit),
                            Err(message) => emit(Event::Failed(message)),
                        },
                        Input::NotRead { reason, failed: true, .. } => emit(Event::Failed(reason)),
                        Input::NotRead { reason, failed: false, .. } => emit(Event::Skipped(reason)),
                    }
                    if tx.send(Message::Done(name)).is_err() {
                        return;
                    }
                }
            });
        }
        // Inputs go round-robin to the workers; the store reads their results in the same
        // order, so outcomes come out in input order.
        let (order_tx, order_rx) = std::sync::mpsc::sync_channel::<usize>(workers * 2);
        scope.spawn(move || {
            for (i, input) in inputs.enumerate() {
                if feeds[i % workers].send(input).is_err() || order_tx.send(i % workers).is_err() {
                    return;
                }
            }
        });
        for worker in order_rx {
            let mut applier: Option<Applier> = None;
            loop {
                match receivers[worker].recv() {
                    Ok(Message::Event(event)) => applier.get_or_insert_with(|| Applier::new("")).apply(store, event),
                    Ok(Message::Done(name)) => {
                        let mut a = applier.take().unwrap_or_else(|| Applier::new(&name));
                        a.out.path = name;
                        on_outcome(a.finish(store));
                        break;
                    }
                    Err(_) => {
                        let mut a = applier.take().unwrap_or_else(|| Applier::new(""));
                        a.apply(store, Event::Failed("the parsing thread stopped".into()));
                        on_outcome(a.finish(store));
                        break;
                    }
                }
            }
        }
    });
}

/// Opens a file to read it as a report; anything but a regular file (a FIFO that may never
/// be written, a device) is refused, since reading it could block the batch forever.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({}): give it as `-` on standard input to read it",
            file_kind(&meta.file_type())
        ));
    }
    std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

/// The inputs under the paths given, found lazily in name order: `-` is standard input, a
/// file is itself, a directory is walked (each folder is read when the walk reaches it).
/// Inside a directory, links to directories are not followed (a link back up would never
/// end) and anything but a regular file is skipped; both are said as skipped inputs.
pub fn walk(paths: &[PathBuf]) -> impl Iterator<Item = Input> + Send + use<> {
    Walk { top: paths.iter().rev().cloned().collect(), stack: Vec::new() }
}

struct Walk {
    top: Vec<PathBuf>,
    /// Folders being walked: their entries not yet visited, in reverse name order.
    stack: Vec<Vec<PathBuf>>,
}

impl Iterator for Walk {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        loop {
            if let Some(entries) = self.stack.last_mut() {
                let Some(path) = entries.pop() else {
                    self.stack.pop();
                    continue;
                };
                let name = path.display().to_string();
                let Ok(link) = std::fs::symlink_metadata(&path) else {
                    return Some(Input::NotRead { path: name, reason: "vanished while walking".into(), failed: true });
                };
                if link.is_dir() {
                    if let Some(found) = self.enter(&path) {
                        return Some(found);
                    }
                    continue;
                }
                let target = std::fs::metadata(&path);
                return Some(match target {
                    Ok(m) if m.is_file() => Input::File(path),
                    Ok(m) if m.is_dir() => Input::NotRead {
                        path: name,
                        reason: "a symbolic link to a directory: not followed (give the directory itself to read it)"
                            .into(),
                        failed: false,
                    },
                    Ok(m) => Input::NotRead {
                        path: name,
                        reason: format!("{}: skipped", file_kind(&m.file_type())),
                        failed: false,
                    },
                    Err(e) => Input::NotRead { path: name, reason: format!("cannot read: {e}"), failed: true },
                });
            }
            let path = self.top.pop()?;
            if path.as_os_str() == "-" {
                return Some(Input::Stdin);
            }
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    if let Some(found) = self.enter(&path) {
                        return Some(found);
                    }
                }
                Ok(_) => return Some(Input::File(path)),
                Err(e) => {
                    return Some(Input::NotRead {
                        path: path.display().to_string(),
                        reason: format!("cannot read: {e}"),
                        failed: true,
                    });
                }
            }
        }
    }
}

impl Walk {
    /// Starts walking a folder; an unreadable folder is the input returned.
    fn enter(&mut self, dir: &Path) -> Option<Input> {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort_by(|a, b| b.cmp(a));
                self.stack.push(paths);
                None
            }
            Err(e) => Some(Input::NotRead {
                path: dir.display().to_string(),
                reason: format!("cannot read this folder: {e}"),
                failed: true,
            }),
        }
    }
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
        ingest_inputs(&mut parallel, inputs.clone().into_iter(), &limits, 3, &mut |o| got.push(o));
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
        let o = ingest("over.xml.gz", &gzip(big.as_bytes()), &tight);
        assert_eq!((o.outcome, o.reports, o.records), (IngestOutcome::Failed, 0, 0), "{o:?}");
        assert!(o.error.as_deref().unwrap().contains("more than 8 MB (the limit)"), "{o:?}");
        assert!(o.error.as_deref().unwrap().contains("--max-size"), "says which flag raises it: {o:?}");
        // A bomb is refused by its ratio, at its first megabyte, even under a generous size limit.
        let generous = UnpackLimits { max_size: 1 << 40, ..UnpackLimits::default() };
        let mut best = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut best, &vec![0u8; 20 << 20]).unwrap();
        let o = ingest("zeros.gz", &best.finish().unwrap(), &generous);
        assert_eq!((o.outcome, o.reports, o.records), (IngestOutcome::Failed, 0, 0), "{o:?}");
        assert!(o.error.as_deref().unwrap().contains("decompression bomb"), "{o:?}");
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
