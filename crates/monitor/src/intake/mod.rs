//! Report intake: every configured mailbox (`[[intake.imap]]`) and bucket (`[[intake.s3]]`)
//! read incrementally, each message or object ingested through the same path as
//! `reports ingest` (one transaction per report), and only after that commit moved out of
//! the way. A source that cannot be read is an `intake-failed` event, raised once and
//! closed when it works again; the other sources still run.
//!
//! The order of effects is what makes a crash harmless anywhere: (1) store the reports,
//! (2) move the message or object, (3) advance the checkpoint. A crash before (2) reads the
//! message again next time (its reports are duplicates, then it is moved); a crash before
//! (3) finds it gone.

pub mod imap;
#[cfg(feature = "aws")]
pub mod s3;

use crate::alerts::Alerter;
use crate::config::Config;
use crate::events::{Event, EventKind, Severity};
use crate::watch::{DeliveryOutcome, WatchError, deliver_due};
use crate::workers::{Worker, wall_clock};
use serde::Serialize;
use ses_dmarc_reports::unpack::UnpackLimits;
use ses_dmarc_store::ingest::{InputOutcome, ingest_reader};
use ses_dmarc_store::{CheckWrite, Database, IntakeFailure};

/// One message or object that was not stored, or only in part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// The message (`INBOX UID 7 <message-id>`) or object key.
    pub item: String,
    /// Why.
    pub reason: String,
}

/// What one pass did with one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceOutcome {
    /// The source's name (`name` in the configuration, else `imap#1`, `s3#1`).
    pub source: String,
    /// `imap` or `s3`.
    pub kind: &'static str,
    /// Where: `host:port/folder`, or `s3://bucket/prefix`.
    pub location: String,
    /// Messages (objects) read in this pass.
    pub messages: u64,
    /// Reports stored.
    pub reports: u64,
    /// Reports that were stored before.
    pub duplicates: u64,
    /// Messages with no report in them (left where they are).
    pub not_reports: u64,
    /// Messages whose report could not be read (moved to the failed folder when there is one).
    pub failed: u64,
    /// Messages moved to the processed folder or prefix (or deleted, or tagged, as configured).
    pub processed: u64,
    /// Messages moved to the failed folder.
    pub moved_to_failed: u64,
    /// Each message not stored (or stored in part), with the reason.
    pub failures: Vec<ItemFailure>,
    /// Why the source could not be read (or stopped part-way); the messages not yet taken
    /// stay for the next pass.
    pub error: Option<String>,
    /// Events raised or closed for the source.
    pub events: Vec<Event>,
    /// Whether an open `intake-failed` problem was closed (the source works again).
    pub recovered: bool,
    /// Another worker was reading the source (its lease): this pass left it alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// What one `intake run` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IntakeReport {
    /// Each source, in configuration order.
    pub sources: Vec<SourceOutcome>,
    /// Alert deliveries attempted at the end of the pass.
    pub deliveries: Vec<DeliveryOutcome>,
}

impl IntakeReport {
    /// Whether some source could not be read.
    pub fn any_source_failed(&self) -> bool {
        self.sources.iter().any(|s| s.error.is_some())
    }
}

/// Progress, for a bar on a terminal.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A source has this many new messages (objects: as listed so far).
    Found {
        /// The source.
        source: String,
        /// How many.
        count: u64,
    },
    /// One more message of the source was taken.
    Taken {
        /// The source.
        source: String,
    },
}

/// What a pass reads.
pub struct IntakeOptions<'a> {
    /// Only these sources (by name); empty: every source.
    pub only: &'a [String],
    /// The time of the pass (seconds since 1970).
    pub now: i64,
    /// Told of progress.
    pub progress: &'a (dyn Fn(Progress) + Send + Sync),
}

/// Runs one pass over every configured source (or those named) as `worker`, each source
/// under its lease so that one worker at a time reads it (a source another worker is
/// reading is left to it), then delivers the alerts that are due.
pub async fn run_intake(
    db: &Database,
    config: &Config,
    alerter: &Alerter,
    worker: &Worker,
    options: &IntakeOptions<'_>,
) -> Result<IntakeReport, WatchError> {
    for name in options.only {
        if !config.imap.iter().any(|s| &s.name == name) && !config.s3.iter().any(|s| &s.name == name) {
            let known: Vec<&str> =
                config.imap.iter().map(|s| s.name.as_str()).chain(config.s3.iter().map(|s| s.name.as_str())).collect();
            return Err(WatchError::Input(format!(
                "no intake source is named `{name}` (the configuration has: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
    }
    let wanted = |name: &str| options.only.is_empty() || options.only.iter().any(|n| n == name);
    let limits = limits(config);
    let mut report = IntakeReport::default();
    for source in config.imap.iter().filter(|s| wanted(&s.name)) {
        let location = format!("{}:{}/{}", source.host, source.port, source.folder);
        let out = match take_source(db, worker, &source.name, "imap", &location).await? {
            Some(busy) => busy,
            None => {
                let mut out = imap::poll(source, db, &limits, options).await;
                raise_or_close(db, alerter, &mut out, options.now).await?;
                give_back(db, worker, &source.name).await;
                out
            }
        };
        report.sources.push(out);
    }
    for source in config.s3.iter().filter(|s| wanted(&s.name)) {
        let location = format!("s3://{}/{}", source.bucket, source.prefix);
        if let Some(busy) = take_source(db, worker, &source.name, "s3", &location).await? {
            report.sources.push(busy);
            continue;
        }
        #[cfg(feature = "aws")]
        let mut out = s3::poll(source, db, &limits, options).await;
        #[cfg(not(feature = "aws"))]
        let mut out = SourceOutcome {
            source: source.name.clone(),
            kind: "s3",
            location,
            error: Some("this build of ses-dmarc has no AWS support (built without the `aws` feature)".into()),
            ..Default::default()
        };
        raise_or_close(db, alerter, &mut out, options.now).await?;
        give_back(db, worker, &source.name).await;
        report.sources.push(out);
    }
    report.deliveries = deliver_due(db, alerter, worker, options.now).await?;
    Ok(report)
}

/// The lease that lets one worker at a time read a source.
fn source_lease(name: &str) -> String {
    format!("intake:{name}")
}

/// Takes the source's lease; when another worker holds it, the outcome that says so.
async fn take_source(
    db: &Database,
    worker: &Worker,
    name: &str,
    kind: &'static str,
    location: &str,
) -> Result<Option<SourceOutcome>, WatchError> {
    let (lease, id, wall, until) = (source_lease(name), worker.id().to_string(), wall_clock(), worker.claim_until());
    let held = db.run(move |s| s.try_lease(&lease, &id, wall, until, true)).await?;
    Ok(held.map(|l| SourceOutcome {
        source: name.to_string(),
        kind,
        location: location.to_string(),
        held_by: Some(l.holder),
        ..Default::default()
    }))
}

async fn give_back(db: &Database, worker: &Worker, name: &str) {
    let (lease, id) = (source_lease(name), worker.id().to_string());
    // Not given back, it expires by itself.
    let _ = db.run(move |s| s.release_lease(&lease, &id)).await;
}

/// The size limits intake reads with: `[intake] max_size_mb`, the other limits as
/// `reports ingest` has them.
pub fn limits(config: &Config) -> UnpackLimits {
    UnpackLimits { max_size: config.intake_max_size_mb * 1024 * 1024, ..UnpackLimits::default() }
}

/// What becomes of one message once it went through ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its reports are stored (now or before): it goes to the processed folder. A part that
    /// failed beside them is said in `partial`.
    Stored {
        /// Why some part failed, if one did.
        partial: Option<String>,
    },
    /// No report in it: left where it is.
    NotAReport,
    /// It holds something that looks like a report but cannot be read: the failed folder.
    Failed(String),
    /// The database failed: nothing is moved, the pass stops, the message is read again.
    DatabaseFailed(String),
}

/// Ingests one message (raw MIME, or a bare report file) through `reports ingest`'s path.
pub(crate) async fn ingest_message(
    db: &Database,
    origin: String,
    body: Vec<u8>,
    limits: &UnpackLimits,
) -> (Verdict, InputOutcome) {
    let limits = *limits;
    let outcome = match db.run(move |s| Ok(ingest_reader(s, &origin, &body[..], &limits))).await {
        Ok(o) => o,
        Err(e) => return (Verdict::DatabaseFailed(e.to_string()), InputOutcome::default()),
    };
    (judge(&outcome), outcome)
}

pub(crate) fn judge(o: &InputOutcome) -> Verdict {
    let reason = || o.error.clone().unwrap_or_else(|| "no report could be read".into());
    if o.database_failed {
        Verdict::DatabaseFailed(reason())
    } else if o.reports + o.duplicates > 0 {
        Verdict::Stored { partial: (o.failed > 0).then(reason) }
    } else if o.failed == o.no_report {
        Verdict::NotAReport
    } else {
        Verdict::Failed(reason())
    }
}

impl SourceOutcome {
    /// Keeps the reason an item was not stored: in the pass's outcome, and in the database
    /// for the dashboard (losing that row loses no message, so its error is not fatal).
    pub(crate) async fn note_failure(&mut self, db: &Database, item: &str, reason: String, at: i64) {
        let f = IntakeFailure { source: self.source.clone(), item: item.to_string(), reason: reason.clone(), at };
        let _ = db.run(move |s| s.record_intake_failure(&f)).await;
        self.failures.push(ItemFailure { item: item.to_string(), reason });
    }

    /// Counts a message not downloaded because it is larger than the limit; the reason.
    pub(crate) async fn too_large(
        &mut self,
        db: &Database,
        item: &str,
        size: u64,
        limits: &UnpackLimits,
        at: i64,
    ) -> String {
        let reason = format!(
            "{} MB, more than [intake] max_size_mb = {}: not read",
            size / 1024 / 1024,
            limits.max_size / 1024 / 1024
        );
        self.messages += 1;
        self.failed += 1;
        self.note_failure(db, item, reason.clone(), at).await;
        reason
    }

    /// Counts one message's verdict and keeps its failure, if any; a database failure is
    /// the error that stops the source (nothing is counted: the message is read again).
    pub(crate) async fn tally(
        &mut self,
        db: &Database,
        item: &str,
        verdict: &Verdict,
        outcome: &InputOutcome,
        at: i64,
    ) -> Result<(), String> {
        if let Verdict::DatabaseFailed(reason) = verdict {
            return Err(format!("the database failed, the rest is left for the next pass: {reason}"));
        }
        self.messages += 1;
        self.reports += outcome.reports;
        self.duplicates += outcome.duplicates;
        match verdict {
            Verdict::Stored { partial: Some(reason) } => {
                self.note_failure(db, item, format!("stored in part: {reason}"), at).await
            }
            Verdict::NotAReport => self.not_reports += 1,
            Verdict::Failed(reason) => {
                self.failed += 1;
                self.note_failure(db, item, reason.clone(), at).await;
            }
            Verdict::Stored { partial: None } | Verdict::DatabaseFailed(_) => {}
        }
        Ok(())
    }
}

/// The open-problem key of a source's failure (problems about no domain are kept under "").
fn problem_key(source: &str) -> String {
    let mut e = Event::new(0, None, EventKind::IntakeFailed, Severity::Error, String::new());
    e.subject = Some(source.to_string());
    e.problem()
}

/// Raises `intake-failed` when a source failed and no such problem is open, and closes the
/// problem when the source works again.
async fn raise_or_close(db: &Database, alerter: &Alerter, out: &mut SourceOutcome, now: i64) -> Result<(), WatchError> {
    let key = problem_key(&out.source);
    let open = {
        let key = key.clone();
        db.run(move |s| Ok(s.open_problems("")?.into_iter().any(|p| p.problem == key))).await?
    };
    match (&out.error, open) {
        (Some(error), false) => {
            let mut e = Event::new(
                now,
                None,
                EventKind::IntakeFailed,
                Severity::Error,
                format!("{} ({}) could not be read: {error}", out.source, out.location),
            );
            e.subject = Some(out.source.clone());
            e.fix = Some(format!(
                "check the [[intake.{}]] entry named `{}` (server, credentials, TLS, permissions); `ses-dmarc intake run --source {}` tries it again",
                out.kind, out.source, out.source
            ));
            let write = CheckWrite {
                events: vec![e.stored(now)],
                channels: alerter.schedule(now).into_iter().map(|(name, at)| (name, at - now)).collect(),
                opened: vec![(String::new(), key, e.id.clone())],
                ..Default::default()
            };
            db.run(move |s| s.commit_check(&write)).await?;
            out.events.push(e);
        }
        (None, true) => {
            let write = CheckWrite { closed: vec![(String::new(), key)], ..Default::default() };
            db.run(move |s| s.commit_check(&write)).await?;
            out.recovered = true;
        }
        _ => {}
    }
    Ok(())
}

/// The value of a header in a message's header section (the first occurrence, unfolded),
/// for naming a message in failures.
pub(crate) fn header_value(message: &[u8], name: &str) -> Option<String> {
    let end =
        message.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| message.windows(2).position(|w| w == b"\n\n"));
    let head = String::from_utf8_lossy(&message[..end.unwrap_or(message.len().min(64 * 1024))]);
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((n, v)) = line.split_once(':') else { continue };
        if !n.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = v.trim().to_string();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(next.trim());
            lines.next();
        }
        return Some(value.chars().take(200).collect());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // InputOutcome has a private field: no struct literal from this crate.
    #[allow(clippy::field_reassign_with_default)]
    fn outcome(reports: u64, duplicates: u64, failed: u64, database_failed: bool) -> InputOutcome {
        let mut o = InputOutcome::default();
        o.reports = reports;
        o.duplicates = duplicates;
        o.failed = failed;
        o.database_failed = database_failed;
        o.error = (failed > 0).then(|| "broken".to_string());
        o
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&outcome(1, 0, 0, false)), Verdict::Stored { partial: None });
        assert_eq!(judge(&outcome(0, 1, 0, false)), Verdict::Stored { partial: None });
        assert_eq!(judge(&outcome(1, 0, 1, false)), Verdict::Stored { partial: Some("broken".into()) });
        assert_eq!(judge(&outcome(0, 0, 0, false)), Verdict::NotAReport);
        assert_eq!(judge(&outcome(0, 0, 1, false)), Verdict::Failed("broken".into()));
        let mut mail = outcome(0, 0, 1, false);
        mail.no_report = 1;
        assert_eq!(judge(&mail), Verdict::NotAReport, "an e-mail without a report");
        mail.failed = 2;
        assert!(matches!(judge(&mail), Verdict::Failed(_)), "and a broken part beside it");
        assert_eq!(judge(&outcome(1, 0, 1, true)), Verdict::DatabaseFailed("broken".into()));
    }

    #[test]
    fn header_values() {
        let m = b"Subject: Report\r\nMessage-ID:\r\n <a@b>\r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(header_value(m, "message-id").as_deref(), Some("<a@b>"));
        assert_eq!(header_value(m, "subject").as_deref(), Some("Report"));
        assert_eq!(header_value(m, "from"), None);
        assert_eq!(header_value(b"no header at all", "subject"), None);
    }
}
