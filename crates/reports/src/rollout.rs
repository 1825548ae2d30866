//! When p=none can become quarantine, then reject: from the published record and the
//! evidence in the reports, the current stage, whether the next one is safe, every
//! criterion with its numbers, each source and whose it is, the exact next record (the same
//! meaning for RFC 7489 and RFC 9989 receivers), the earliest date of the step after it,
//! and what to watch for. Pure.
//!
//! The path (docs/rollout.md gives the reasons): `p=none` → `p=quarantine; pct=0; t=y`
//! (testing: RFC 7489 reads `pct=0`, RFC 9989 reads `t=y`, both deliver failing mail as
//! before) → `p=quarantine` → `p=reject; pct=0; t=y` (both quarantine) → `p=reject`. A
//! partial `pct` such as 25 is never proposed: RFC 9989 receivers ignore it and apply the
//! whole policy, and RFC 7489 receivers sample it unevenly (DMARCbis appendix A.6).

use crate::classify::SourceKind;
use crate::summary::{PolicySeen, SourceSummary, Summary};
use serde::{Deserialize, Serialize};
use ses_dmarc_records::DmarcRecord;
use ses_dmarc_records::dmarc::{AlignmentMode, Policy, Rfc};
use std::collections::BTreeSet;

const DAY: i64 = 86_400;

/// What the reports must show before a stricter policy is advised.
#[derive(Debug, Clone, Copy)]
pub struct Criteria {
    /// Days of reports needed at the current stage before the next (default 14).
    pub min_days: u32,
    /// DMARC pass rate every legitimate source needs (default 0.98).
    pub min_pass_rate: f64,
    /// A legitimate source first seen within this many days blocks the next step (default 7).
    pub quiet_days: i64,
    /// Messages from legitimate sources needed in the reports (default
    /// [`DEFAULT_MIN_MESSAGES`]).
    pub min_messages: u64,
}

/// The default of [`Criteria::min_messages`]: with no failure among n messages, the 95%
/// upper bound of the true failure rate is about 3/n (the rule of three); for it to be
/// within the 2% that the default 98% pass rate allows, n must be at least 150.
pub const DEFAULT_MIN_MESSAGES: u64 = 150;

impl Default for Criteria {
    fn default() -> Self {
        Criteria { min_days: 14, min_pass_rate: 0.98, quiet_days: 7, min_messages: DEFAULT_MIN_MESSAGES }
    }
}

/// Where a domain's DMARC policy stands on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// No DMARC record of its own.
    NoRecord,
    /// `p=none`: reports only.
    None,
    /// `p=quarantine; pct=0; t=y`: failing mail delivered as before under both RFCs.
    QuarantineTesting,
    /// `p=quarantine`: failing mail quarantined under both RFCs.
    Quarantine,
    /// `p=reject; pct=0; t=y`: failing mail quarantined under both RFCs.
    RejectTesting,
    /// `p=reject`: failing mail refused under both RFCs.
    Reject,
    /// A record that RFC 7489 and RFC 9989 receivers treat differently (`t=y` without
    /// `pct=0`, `pct=0` without `t=y`, a partial `pct`).
    Mixed,
}

impl Stage {
    /// The stages of the path, in order.
    pub const PATH: [Stage; 5] =
        [Stage::None, Stage::QuarantineTesting, Stage::Quarantine, Stage::RejectTesting, Stage::Reject];

    /// The stage's name as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::NoRecord => "no-record",
            Stage::None => "none",
            Stage::QuarantineTesting => "quarantine-testing",
            Stage::Quarantine => "quarantine",
            Stage::RejectTesting => "reject-testing",
            Stage::Reject => "reject",
            Stage::Mixed => "mixed",
        }
    }

    fn rung(self) -> Option<usize> {
        Stage::PATH.iter().position(|s| *s == self)
    }

    /// The stage after this one on the path.
    pub fn next(self) -> Option<Stage> {
        self.rung().and_then(|i| Stage::PATH.get(i + 1).copied())
    }

    /// Where to step back to from an enforcing stage when legitimate mail fails: the
    /// nearest stage whose failing mail gets one level less.
    pub fn step_back(self) -> Option<Stage> {
        match self {
            Stage::Quarantine | Stage::RejectTesting => Some(Stage::QuarantineTesting),
            Stage::Reject => Some(Stage::RejectTesting),
            _ => None,
        }
    }

    /// What failing mail gets at this stage, under either RFC.
    pub fn disposition(self) -> Policy {
        match self {
            Stage::Quarantine | Stage::RejectTesting => Policy::Quarantine,
            Stage::Reject => Policy::Reject,
            _ => Policy::None,
        }
    }

    /// `p` and whether the stage is a testing one (`pct=0; t=y`).
    fn tags(self) -> Option<(Policy, bool)> {
        match self {
            Stage::None => Some((Policy::None, false)),
            Stage::QuarantineTesting => Some((Policy::Quarantine, true)),
            Stage::Quarantine => Some((Policy::Quarantine, false)),
            Stage::RejectTesting => Some((Policy::Reject, true)),
            Stage::Reject => Some((Policy::Reject, false)),
            Stage::NoRecord | Stage::Mixed => None,
        }
    }

    /// The record of this stage built from `base` (its other tags kept): `p`, and `pct=0`
    /// with `t=y` for a testing stage, neither otherwise.
    pub fn record_from(self, base: &DmarcRecord) -> Option<DmarcRecord> {
        let (policy, testing) = self.tags()?;
        let mut r = base.clone();
        r.policy = Some(policy);
        r.pct = testing.then_some(0);
        r.testing = testing.then_some(true);
        Some(r)
    }

    /// The stage as the published `p`, `pct` and `testing` of one report show it: what that
    /// reporter applied.
    fn of_published(p: &PolicySeen) -> Option<Stage> {
        let weaker = p.testing == Some(true) || p.pct == Some(0);
        match p.p.as_str() {
            "none" => Some(Stage::None),
            "quarantine" if weaker => Some(Stage::QuarantineTesting),
            "quarantine" => Some(Stage::Quarantine),
            "reject" if weaker => Some(Stage::RejectTesting),
            "reject" => Some(Stage::Reject),
            _ => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a receiver of one generation treats failing mail under a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Treatment {
    /// The specification the receiver follows.
    pub rfc: Rfc,
    /// `p` as that receiver reads it.
    pub policy: Policy,
    /// What failing mail gets (the sampled share of it when `percent` is below 100).
    pub disposition: Policy,
    /// The share of failing mail that gets `disposition` (below 100 only for an RFC 7489
    /// `pct` from 1 to 99).
    pub percent: u8,
    /// What the rest of failing mail gets, when `percent` is below 100.
    pub rest: Option<Policy>,
    /// The treatment in one sentence.
    pub explanation: String,
}

/// How a receiver following `rfc` treats failing mail under `record`.
pub fn treatment(record: &DmarcRecord, rfc: Rfc) -> Treatment {
    let m = record.meaning(rfc);
    let p = m.policy;
    let mut t = Treatment { rfc, policy: p, disposition: p, percent: 100, rest: None, explanation: String::new() };
    if !m.usable {
        t.disposition = Policy::None;
        t.explanation = "no valid p= and no rua: RFC 7489 receivers ignore the record".into();
        return t;
    }
    match rfc {
        Rfc::Rfc7489 => {
            let ignored = if record.testing.is_some() { " (`t` ignored: RFC 7489 has no such tag)" } else { "" };
            if p == Policy::None {
                t.explanation = format!("p=none: failing mail is delivered as usual{ignored}");
            } else if m.percent == 0 {
                t.disposition = p.weaker();
                t.explanation =
                    format!("p={p} applied to 0% of failing mail (pct=0): all of it gets {}{ignored}", p.weaker());
            } else if m.percent < 100 {
                t.percent = m.percent;
                t.rest = Some(p.weaker());
                t.explanation = format!(
                    "p={p} applied to a sample of about {}% of failing mail, {} to the rest; receivers sample unevenly{ignored}",
                    m.percent,
                    p.weaker()
                );
            } else {
                t.explanation = format!("p={p}: failing mail gets {p}{ignored}");
            }
        }
        Rfc::Rfc9989 => {
            let ignored = match record.pct {
                Some(n) if p != Policy::None => format!(" (pct={n} ignored: RFC 9989 removed it)"),
                _ => String::new(),
            };
            if p == Policy::None {
                t.explanation = format!("p=none: failing mail is delivered as usual{ignored}");
            } else if m.testing {
                t.disposition = p.weaker();
                t.explanation = format!("p={p} in testing mode (t=y): failing mail gets {}{ignored}", p.weaker());
            } else {
                t.explanation = format!("p={p}: failing mail gets {p}{ignored}");
            }
        }
    }
    t
}

impl Treatment {
    /// What failing mail gets, in a few words (`quarantine`, `quarantine for 25%, none for
    /// the rest`).
    pub fn short(&self) -> String {
        match self.rest {
            Some(rest) if self.percent < 100 => {
                format!("{} for {}%, {rest} for the rest", self.disposition, self.percent)
            }
            _ => self.disposition.to_string(),
        }
    }

    fn same_effect(&self, other: &Treatment) -> bool {
        (self.disposition, self.percent, self.rest) == (other.disposition, other.percent, other.rest)
    }

    /// The path stages this treatment lies between: (lower, upper); equal when it is one.
    fn stages(&self) -> (Stage, Stage) {
        let weaker = |p: Policy| match p {
            Policy::None => Stage::None,
            Policy::Quarantine => Stage::QuarantineTesting,
            Policy::Reject => Stage::RejectTesting,
        };
        let full = |p: Policy| match p {
            Policy::None => Stage::None,
            Policy::Quarantine => Stage::Quarantine,
            Policy::Reject => Stage::Reject,
        };
        if self.policy == Policy::None {
            (Stage::None, Stage::None)
        } else if self.percent < 100 {
            (weaker(self.policy), full(self.policy))
        } else if self.disposition == self.policy {
            (full(self.policy), full(self.policy))
        } else {
            (weaker(self.policy), weaker(self.policy))
        }
    }
}

/// A record and what it means to each generation of receivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordMeaning {
    /// The record's text.
    pub record: String,
    /// Its stage (`mixed` when the two generations treat it differently).
    pub stage: Stage,
    /// How an RFC 7489 receiver treats failing mail.
    pub rfc7489: Treatment,
    /// How an RFC 9989 receiver treats failing mail.
    pub rfc9989: Treatment,
    /// Whether both treat failing mail alike.
    pub consistent: bool,
}

/// What `record` means to receivers of both generations, and its stage.
pub fn record_meaning(record: &DmarcRecord) -> RecordMeaning {
    let (old, new) = (treatment(record, Rfc::Rfc7489), treatment(record, Rfc::Rfc9989));
    let consistent = old.same_effect(&new);
    let stage = match (old.stages(), new.stages()) {
        ((a, b), (c, d)) if consistent && a == b && c == d && a == c => a,
        _ => Stage::Mixed,
    };
    RecordMeaning { record: record.to_string(), stage, rfc7489: old, rfc9989: new, consistent }
}

/// The stage of a record's text: `no-record` when it is not a DMARC record.
pub fn stage_of(text: Option<&str>) -> Stage {
    match text.and_then(|t| DmarcRecord::parse(t).value) {
        Some(r) => record_meaning(&r).stage,
        None => Stage::NoRecord,
    }
}

/// One thing that stands in the way of the next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// Stable code (`no-record`, `no-rua`, `too-few-days`, `too-few-messages`,
    /// `source-not-aligned`, `new-source`, `reject-needs-dkim`).
    pub code: &'static str,
    /// What stands in the way, in numbers, and what to do.
    pub message: String,
}

/// One criterion of the next step, met or not, with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    /// `rua`, `days`, `messages`, `aligned`, `quiet` or `dkim`.
    pub code: &'static str,
    /// Whether the evidence meets it.
    pub met: bool,
    /// What the evidence shows: days (`days`, `quiet`: the newest legitimate source's age),
    /// messages (`messages`), a fraction from 0 to 1 (`aligned`: the lowest legitimate
    /// source's pass rate; `dkim`: the DKIM-aligned share of legitimate mail), 1 or 0 (`rua`).
    pub observed: f64,
    /// What is needed, in the same unit.
    pub required: f64,
    /// The criterion and how it is met, in one sentence.
    pub message: String,
}

/// Whose mail a source sends, as far as the reports tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Amazon SES sending for the domain.
    Ses,
    /// A service the tool recognises (Google, SendGrid, ...): yours, to align if it fails.
    Service,
    /// An unrecognised sender that mostly authenticates as the domain: yours (your own
    /// server, or a service not in the table).
    Own,
    /// The domain's mail relayed by forwarders and mailing lists: not yours to fix.
    Forwarder,
    /// Mail that does not authenticate as the domain and carries no signature of its:
    /// spoofing (or a sender of yours never set up).
    Spoofing,
}

impl Origin {
    /// Whether the source's mail is the domain's own (its failures block the next step).
    pub fn legitimate(self) -> bool {
        matches!(self, Origin::Ses | Origin::Service | Origin::Own)
    }
}

/// One source in the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceLine {
    /// `Amazon SES`, a service name, `forwarded`, or the source IP.
    pub source: String,
    /// How the report rows were classified.
    pub kind: Option<SourceKind>,
    /// Whose mail it is.
    pub origin: Origin,
    /// Whether its failures count against the next step.
    pub legitimate: bool,
    /// Messages.
    pub messages: u64,
    /// Of those, passing DMARC.
    pub dmarc_pass: u64,
    /// `dmarc_pass / messages`.
    pub pass_rate: f64,
    /// Of those, SPF-aligned.
    pub spf_aligned: u64,
    /// Of those, DKIM-aligned.
    pub dkim_aligned: u64,
    /// Of those, DKIM-aligned with `d=` the From domain itself (strict).
    pub dkim_strict_aligned: u64,
    /// Start of the first report that shows it, seconds since 1970.
    pub first_seen: i64,
    /// End of the last report that shows it, seconds since 1970.
    pub last_seen: i64,
    /// Whose it is and, when it fails, what to do.
    pub note: String,
}

/// What the reports show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Start of the earliest report, seconds since 1970 (0 without reports).
    pub from: i64,
    /// End of the latest report, seconds since 1970.
    pub to: i64,
    /// Distinct days (UTC) covered by the reports.
    pub days: u32,
    /// Of those, the days whose reports show the current policy (as the reporters found it
    /// published).
    pub days_at_stage: u32,
    /// Messages in the reports.
    pub messages: u64,
    /// Of those, passing DMARC.
    pub dmarc_pass: u64,
    /// `dmarc_pass / messages`.
    pub pass_rate: f64,
    /// Messages from legitimate sources.
    pub legitimate_messages: u64,
    /// Of those, passing DMARC.
    pub legitimate_pass: u64,
    /// Every source: the legitimate ones first (Amazon SES first), then forwarders, then
    /// spoofing; most messages first within each.
    pub sources: Vec<SourceLine>,
}

/// A record to publish, with how each generation treats it and when it can be taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The stage it leads to.
    pub stage: Stage,
    /// The record's text.
    pub record: String,
    /// How an RFC 7489 receiver treats failing mail under it.
    pub rfc7489: Treatment,
    /// How an RFC 9989 receiver treats failing mail under it.
    pub rfc9989: Treatment,
    /// Why this record, in a sentence or two.
    pub why: String,
    /// The earliest date (UTC, `YYYY-MM-DD`) the step can be taken by the criteria that
    /// depend on time alone (days at the stage, a new source's quiet days).
    pub not_before: String,
}

/// Whether to go on, wait, or go back: what `watch` compares between two results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Nothing blocks the next step.
    Ready,
    /// Blockers stand in the way of the next step; nothing is lost meanwhile.
    Blocked,
    /// The policy enforces and legitimate mail fails it: step back (or align the source).
    StepBack,
    /// `p=reject` and legitimate mail passes: nothing left to tighten.
    Done,
}

/// A change of the record that the evidence offers besides the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordOption {
    /// `adkim-strict`.
    pub code: &'static str,
    /// The record with the option.
    pub record: String,
    /// Why it is offered.
    pub message: String,
}

/// Rollout advice for a domain: where its policy stands and whether to go on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// The domain.
    pub domain: String,
    /// The DMARC record published now.
    pub current_record: Option<String>,
    /// Where the policy stands.
    pub stage: Stage,
    /// True when nothing blocks the next step.
    pub ready: bool,
    /// What stands in the way (empty when ready or done).
    pub blockers: Vec<Blocker>,
    /// The record to publish next (the step back, when the status is `step-back`).
    pub next_record: Option<String>,
    /// Ready, blocked, step back, or done.
    pub status: Status,
    /// What the current record means to each generation of receivers.
    pub current: Option<RecordMeaning>,
    /// What the reports show.
    pub evidence: Evidence,
    /// The criteria of the next step, met or not.
    pub criteria: Vec<Criterion>,
    /// The next record, with its meaning.
    pub next: Option<Step>,
    /// The step after the next one, with the earliest date it can be taken.
    pub step_after: Option<Step>,
    /// Changes the evidence allows besides the step (`adkim=s`).
    pub options: Vec<RecordOption>,
    /// What to watch for once the next record is published.
    pub watch_for: Vec<String>,
    /// Other things worth knowing about the record.
    pub notes: Vec<String>,
}

/// What changed between two consecutive results, for `watch`'s events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutChange {
    /// The domain became ready for its next step (event `rollout-ready`).
    Ready,
    /// It was ready and no longer is (event `rollout-blocked`).
    Blocked,
    /// Legitimate mail now fails an enforcing policy: step back (event `rollout-blocked`).
    MovedBack,
}

impl RolloutChange {
    /// The event kind `watch` raises for it.
    pub fn event_kind(self) -> &'static str {
        match self {
            RolloutChange::Ready => "rollout-ready",
            RolloutChange::Blocked | RolloutChange::MovedBack => "rollout-blocked",
        }
    }
}

/// What [`compare`] needs of a result, small enough for `watch` to keep between passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// Where the policy stood.
    pub stage: Stage,
    /// Ready, blocked, step back, or done.
    pub status: Status,
    /// The record that was advised.
    pub next_record: Option<String>,
}

/// What changed from the `previous` result (none for the first) to `current`, if it is
/// worth an event: newly ready (or ready for another record), ready no more at the same
/// stage, or newly told to step back. Taking a step (the stage changes) while not yet ready
/// for the one after is no event.
pub fn compare(previous: Option<&Standing>, current: &Rollout) -> Option<RolloutChange> {
    match current.status {
        Status::Ready => {
            let same = previous.is_some_and(|p| p.status == Status::Ready && p.next_record == current.next_record);
            (!same).then_some(RolloutChange::Ready)
        }
        Status::StepBack => {
            let same = previous.is_some_and(|p| p.status == Status::StepBack && p.stage == current.stage);
            (!same).then_some(RolloutChange::MovedBack)
        }
        Status::Blocked => previous
            .is_some_and(|p| p.status == Status::Ready && p.stage == current.stage)
            .then_some(RolloutChange::Blocked),
        Status::Done => None,
    }
}

impl Rollout {
    /// What the next pass compares with.
    pub fn standing(&self) -> Standing {
        Standing { stage: self.stage, status: self.status, next_record: self.next_record.clone() }
    }

    /// The event message for `change`: the stage, the record, and the first blockers.
    pub fn event_message(&self, change: RolloutChange) -> String {
        let blockers: Vec<&str> = self.blockers.iter().take(3).map(|b| b.message.as_str()).collect();
        match change {
            RolloutChange::Ready => format!(
                "{} is ready to leave {}: publish {}",
                self.domain,
                self.stage,
                self.next_record.as_deref().unwrap_or("the next record")
            ),
            RolloutChange::Blocked => {
                format!("{} is no longer ready to leave {}: {}", self.domain, self.stage, blockers.join("; "))
            }
            RolloutChange::MovedBack => format!(
                "{} at {}: legitimate mail fails the policy ({}); align it, or step back to {}",
                self.domain,
                self.stage,
                blockers.join("; "),
                self.next_record.as_deref().unwrap_or("a weaker policy")
            ),
        }
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{} {noun}s", thousands(n)) }
}

/// `YYYY-MM-DD` (UTC) of a time in seconds since 1970.
pub fn utc_day(secs: i64) -> String {
    // Days to the civil calendar (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = secs.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn origin_of(s: &SourceSummary) -> Origin {
    match s.kind {
        Some(SourceKind::AmazonSes) => Origin::Ses,
        Some(SourceKind::Known) => Origin::Service,
        Some(SourceKind::Forwarded) => Origin::Forwarder,
        _ if s.messages > 0 && s.dmarc_pass * 2 >= s.messages => Origin::Own,
        _ => Origin::Spoofing,
    }
}

fn source_note(s: &SourceSummary, origin: Origin, summary: &Summary, domain: &str, min_pass: f64) -> String {
    let rate = Summary::rate(s.dmarc_pass, s.messages);
    let failing = s.messages - s.dmarc_pass.min(s.messages);
    let fails = rate < min_pass;
    let within = if failing > 0 {
        format!(" ({} fail, within the {:.0}% allowed)", thousands(failing), (1.0 - min_pass) * 100.0)
    } else {
        String::new()
    };
    match origin {
        Origin::Ses if !fails => format!("yours: Amazon SES, aligned{within}"),
        Origin::Ses => {
            let ses = &summary.ses;
            let mut why = Vec::new();
            if ses.default_mail_from > 0 {
                why.push(format!(
                    "{} sent with the default amazonses.com MAIL FROM",
                    plural(ses.default_mail_from, "message")
                ));
            }
            if s.dkim_aligned < s.messages {
                why.push(format!(
                    "{} without an aligned Easy DKIM signature",
                    plural(s.messages - s.dkim_aligned, "message")
                ));
            }
            format!(
                "yours: Amazon SES mail not aligned ({}); set up Easy DKIM and the custom MAIL FROM (`ses-dmarc check {domain}`)",
                why.join(", ")
            )
        }
        Origin::Service if !fails => format!("yours: {}, aligned{within}", s.source),
        Origin::Service => format!(
            "yours: a service you forgot to align: set up its DKIM signing for {domain} (or a return path under {domain})"
        ),
        Origin::Own if !fails => {
            format!("yours: an unrecognised sender that authenticates as you (your own server?){within}")
        }
        Origin::Own => format!(
            "yours, probably: it authenticates as you for {} of its mail; {} fail: check its DKIM signing and your SPF",
            percent(rate),
            thousands(failing)
        ),
        Origin::Forwarder => format!(
            "not yours to fix: your mail relayed by forwarders and lists (your signature, their servers); {} arrived intact, {} altered on the way",
            thousands(s.dkim_aligned),
            thousands(failing)
        ),
        Origin::Spoofing => format!(
            "not yours: no aligned SPF or DKIM and no signature of yours: spoofing, which enforcement stops (if you do send from {}, align it before going on)",
            s.source
        ),
    }
}

fn evidence(summary: &Summary, domain: &str, days_at_stage: u32, min_pass: f64) -> Evidence {
    let mut sources: Vec<SourceLine> = summary
        .sources
        .iter()
        .map(|s| {
            let origin = origin_of(s);
            SourceLine {
                source: s.source.clone(),
                kind: s.kind,
                origin,
                legitimate: origin.legitimate(),
                messages: s.messages,
                dmarc_pass: s.dmarc_pass,
                pass_rate: Summary::rate(s.dmarc_pass, s.messages),
                spf_aligned: s.spf_aligned,
                dkim_aligned: s.dkim_aligned,
                dkim_strict_aligned: s.dkim_strict_aligned,
                first_seen: s.first_seen,
                last_seen: s.last_seen,
                note: source_note(s, origin, summary, domain, min_pass),
            }
        })
        .collect();
    let rank = |o: Origin| match o {
        Origin::Ses => 0,
        Origin::Service | Origin::Own => 1,
        Origin::Forwarder => 2,
        Origin::Spoofing => 3,
    };
    sources.sort_by(|a, b| rank(a.origin).cmp(&rank(b.origin)).then(b.messages.cmp(&a.messages)));
    let legit = sources.iter().filter(|s| s.legitimate);
    let (legitimate_messages, legitimate_pass) =
        legit.fold((0, 0), |(m, p), s| (m + s.messages, p + s.dmarc_pass.min(s.messages)));
    Evidence {
        from: summary.from,
        to: summary.to,
        days: summary.days,
        days_at_stage,
        messages: summary.messages,
        dmarc_pass: summary.dmarc_pass,
        pass_rate: Summary::rate(summary.dmarc_pass, summary.messages),
        legitimate_messages,
        legitimate_pass,
        sources,
    }
}

/// Days of reports whose published policy is one of `stages`.
fn days_at(summary: &Summary, stages: &[Stage]) -> u32 {
    let days: BTreeSet<i64> = summary
        .policies
        .iter()
        .filter(|p| Stage::of_published(p).is_some_and(|s| stages.contains(&s)))
        .flat_map(|p| p.day_numbers.iter().copied())
        .collect();
    days.len() as u32
}

fn policy_words(stage: Stage) -> &'static str {
    match stage {
        Stage::None => "p=none",
        Stage::QuarantineTesting => "p=quarantine in testing (pct=0, t=y)",
        Stage::Quarantine => "p=quarantine",
        Stage::RejectTesting => "p=reject in testing (pct=0, t=y)",
        Stage::Reject => "p=reject",
        Stage::Mixed => "this record",
        Stage::NoRecord => "no record",
    }
}

fn why(stage: Stage) -> String {
    match stage {
        Stage::None => "p=none changes no delivery: reports only.".into(),
        Stage::QuarantineTesting => "Testing quarantine: pct=0 is for RFC 7489 receivers, t=y for RFC 9989 receivers; each ignores the other's tag, so both keep delivering failing mail while reports and mailing lists already see p=quarantine. Not pct=25: RFC 9989 receivers ignore pct and would quarantine all failing mail, and RFC 7489 receivers apply values other than 0 and 100 unevenly (the reason RFC 9989 removed pct, DMARCbis appendix A.6).".into(),
        Stage::Quarantine => "Quarantine for all failing mail under both specifications (no pct, no t).".into(),
        Stage::RejectTesting => "Testing reject: pct=0 (RFC 7489) and t=y (RFC 9989) both make failing mail quarantined, not refused, while receivers and lists already see p=reject.".into(),
        Stage::Reject => "Reject for all failing mail under both specifications.".into(),
        Stage::Mixed | Stage::NoRecord => String::new(),
    }
}

fn step(stage: Stage, base: &DmarcRecord, not_before: i64) -> Option<Step> {
    let record = stage.record_from(base)?;
    Some(Step {
        stage,
        record: record.to_string(),
        rfc7489: treatment(&record, Rfc::Rfc7489),
        rfc9989: treatment(&record, Rfc::Rfc9989),
        why: why(stage),
        not_before: utc_day(not_before),
    })
}

fn watch_for(next: Stage, status: Status, ev: &Evidence, domain: &str, min_pass: f64) -> Vec<String> {
    let mut out = Vec::new();
    let min = format!("{:.0}%", min_pass * 100.0);
    match (status, next) {
        (Status::StepBack, _) => {
            out.push(format!(
                "Align the failing source (see its line), then run `ses-dmarc rollout {domain}` again; its failures count until they leave the --days window (a shorter --days shows the recent mail alone)."
            ));
        }
        (_, Stage::QuarantineTesting) => {
            out.push("Nothing is quarantined yet: reports show failing mail with disposition none (reason sampled_out from RFC 7489 receivers, policy_test_mode from RFC 9990 ones).".into());
            out.push("Mailing lists may start rewriting From: for your domain (they see p=quarantine): fewer forwarded rows in the reports is expected.".into());
        }
        (_, Stage::Quarantine) => {
            out.push(format!("Failing mail now goes to spam: a legitimate source below {min} loses mail; look at `ses-dmarc reports summary {domain} --days 7` daily in the first week."));
            out.push("SES bounce messages sent with SendBounce are signed only by amazonses.com: they fail DMARC and are quarantined too.".into());
        }
        (_, Stage::RejectTesting) => {
            out.push("Failing mail is still quarantined, not refused; receivers and lists now see p=reject.".into());
        }
        (_, Stage::Reject) => {
            out.push("Failing mail is now refused during SMTP: a legitimate source that stops aligning bounces; `ses-dmarc rollout` then says step-back.".into());
            out.push("Users who post to mailing lists may be hindered (RFC 9989 §7.4).".into());
        }
        _ => {}
    }
    if status != Status::StepBack {
        out.push(format!(
            "A new sending source: if it is yours and not aligned at quarantine or reject, `ses-dmarc rollout {domain}` says step-back."
        ));
    }
    for s in ev.sources.iter().filter(|s| s.origin == Origin::Forwarder && s.dmarc_pass < s.messages) {
        out.push(format!(
            "{} forwarded messages ({}) fail after relaying: once the policy enforces, those recipients may lose them unless the forwarder rewrites From or the receiver trusts its ARC seal.",
            thousands(s.messages - s.dmarc_pass),
            percent(1.0 - s.pass_rate)
        ));
    }
    out
}

/// Advises the next step. `now` is seconds since 1970.
pub fn advise(domain: &str, current: Option<&str>, summary: &Summary, now: i64, criteria: Criteria) -> Rollout {
    let parsed = current.and_then(|t| DmarcRecord::parse(t).value);
    let Some(record) = parsed else {
        let ev = evidence(summary, domain, 0, criteria.min_pass_rate);
        return Rollout {
            domain: domain.to_string(),
            current_record: current.map(str::to_string),
            stage: Stage::NoRecord,
            ready: false,
            blockers: vec![Blocker {
                code: "no-record",
                message: format!(
                    "{domain} publishes no DMARC record: start with `v=DMARC1; p=none; rua=mailto:...` (ses-dmarc plan)"
                ),
            }],
            next_record: None,
            status: Status::Blocked,
            current: None,
            evidence: ev,
            criteria: vec![],
            next: None,
            step_after: None,
            options: vec![],
            watch_for: vec![],
            notes: vec![],
        };
    };
    let meaning = record_meaning(&record);
    let (lower, upper) = if meaning.stage == Stage::Mixed {
        let ((a, b), (c, d)) = (meaning.rfc7489.stages(), meaning.rfc9989.stages());
        (a.min(c), b.max(d))
    } else {
        (meaning.stage, meaning.stage)
    };
    let days_at_stage = days_at(summary, &[lower, upper]);
    let ev = evidence(summary, domain, days_at_stage, criteria.min_pass_rate);
    let stage = meaning.stage;
    let mut notes = Vec::new();
    if stage == Stage::Mixed {
        notes.push(format!(
            "RFC 7489 and RFC 9989 receivers treat this record differently (failing mail gets {} from the one, {} from the other): it is no step of the path; the next record is one both read alike.",
            meaning.rfc7489.short(),
            meaning.rfc9989.short()
        ));
    }

    // The base of the next record: every tag kept, but aspf=s dropped for SES.
    let mut base = record.clone();
    let ses_sends = ev.sources.iter().any(|s| s.origin == Origin::Ses && s.messages > 0);
    if record.aspf == Some(AlignmentMode::Strict) && ses_sends {
        base.aspf = None;
        notes.push("aspf=s is dropped from the next record: SES's custom MAIL FROM is a subdomain, which never aligns strictly, so SPF could not carry DMARC for SES mail.".into());
    }

    // The step forward: the next stage, or for a mixed record the stage of the receivers
    // that already enforce more.
    let forward = match stage {
        Stage::Mixed => Some(upper).filter(|s| *s != Stage::None),
        s => s.next(),
    };
    let reject_step = forward.is_some_and(|s| matches!(s, Stage::RejectTesting | Stage::Reject));

    // The criteria and their blockers.
    let legit: Vec<&SourceLine> = ev.sources.iter().filter(|s| s.legitimate && s.messages > 0).collect();
    let mut crit = Vec::new();
    let mut blockers = Vec::new();
    let at = policy_words(stage);
    let rua = !record.rua.is_empty();
    crit.push(Criterion {
        code: "rua",
        met: rua,
        observed: f64::from(u8::from(rua)),
        required: 1.0,
        message: if rua {
            let list: Vec<String> = record.rua.iter().map(|u| u.to_string()).collect();
            format!("aggregate reports are requested (rua={})", list.join(","))
        } else {
            "the record has no rua: no reports arrive".into()
        },
    });
    if !rua {
        blockers.push(Blocker {
            code: "no-rua",
            message: "the record has no rua: no reports arrive, so nothing can show it is safe".into(),
        });
    }
    let days_met = days_at_stage >= criteria.min_days;
    let days_missing = i64::from(criteria.min_days.saturating_sub(days_at_stage));
    crit.push(Criterion {
        code: "days",
        met: days_met,
        observed: f64::from(days_at_stage),
        required: f64::from(criteria.min_days),
        message: format!(
            "{} of reports at {at} ({} needed)",
            plural(u64::from(days_at_stage), "day"),
            criteria.min_days
        ),
    });
    if !days_met {
        blockers.push(Blocker {
            code: "too-few-days",
            message: format!(
                "only {} of reports at {at}; {} are needed (not before {})",
                plural(u64::from(days_at_stage), "day"),
                criteria.min_days,
                utc_day(now + days_missing * DAY)
            ),
        });
    }
    let messages_met = ev.legitimate_messages >= criteria.min_messages;
    crit.push(Criterion {
        code: "messages",
        met: messages_met,
        observed: ev.legitimate_messages as f64,
        required: criteria.min_messages as f64,
        message: format!(
            "{} from your own sources over {} ({} needed)",
            plural(ev.legitimate_messages, "message"),
            plural(u64::from(ev.days), "day"),
            thousands(criteria.min_messages)
        ),
    });
    if !messages_met {
        blockers.push(Blocker {
            code: "too-few-messages",
            message: format!(
                "only {} from your own sources in the reports; {} are needed to judge a {:.0}% pass rate",
                plural(ev.legitimate_messages, "message"),
                thousands(criteria.min_messages),
                criteria.min_pass_rate * 100.0
            ),
        });
    }
    let lowest = legit.iter().min_by(|a, b| a.pass_rate.total_cmp(&b.pass_rate));
    let failing: Vec<&&SourceLine> = legit.iter().filter(|s| s.pass_rate < criteria.min_pass_rate).collect();
    crit.push(Criterion {
        code: "aligned",
        met: failing.is_empty(),
        observed: lowest.map(|s| s.pass_rate).unwrap_or(1.0),
        required: criteria.min_pass_rate,
        message: match lowest {
            Some(s) => format!(
                "every legitimate source passes DMARC at {:.0}% or more (lowest: {} at {})",
                criteria.min_pass_rate * 100.0,
                s.source,
                percent(s.pass_rate)
            ),
            None => "no legitimate source in the reports to judge".into(),
        },
    });
    for s in &failing {
        blockers.push(Blocker {
            code: "source-not-aligned",
            message: format!(
                "source {}: {} of {} messages not aligned (need at least {:.0}% passing)",
                s.source,
                percent(1.0 - s.pass_rate),
                thousands(s.messages),
                criteria.min_pass_rate * 100.0
            ),
        });
    }
    let age = |s: &SourceLine| (now - s.first_seen).div_euclid(DAY);
    let newest = legit.iter().min_by_key(|s| age(s));
    let new_sources: Vec<&&SourceLine> = legit.iter().filter(|s| age(s) < criteria.quiet_days).collect();
    crit.push(Criterion {
        code: "quiet",
        met: new_sources.is_empty(),
        observed: newest.map(|s| age(s) as f64).unwrap_or(0.0),
        required: criteria.quiet_days as f64,
        message: match newest {
            Some(s) => format!(
                "no new legitimate source in the last {} (newest: {}, first seen {} ago)",
                plural(criteria.quiet_days.max(0) as u64, "day"),
                s.source,
                plural(age(s).max(0) as u64, "day")
            ),
            None => {
                format!("no new legitimate source in the last {}", plural(criteria.quiet_days.max(0) as u64, "day"))
            }
        },
    });
    let mut quiet_until = now;
    for s in &new_sources {
        let until = s.first_seen + criteria.quiet_days * DAY;
        quiet_until = quiet_until.max(until);
        blockers.push(Blocker {
            code: "new-source",
            message: format!(
                "new source {} first seen {} days ago (wait until it is {} days old: {})",
                s.source,
                age(s),
                criteria.quiet_days,
                utc_day(until)
            ),
        });
    }
    if reject_step {
        let dkim: u64 = legit.iter().map(|s| s.dkim_aligned).sum();
        let rate = Summary::rate(dkim, ev.legitimate_messages);
        let met = ev.legitimate_messages == 0 || rate >= criteria.min_pass_rate;
        crit.push(Criterion {
            code: "dkim",
            met,
            observed: rate,
            required: criteria.min_pass_rate,
            message: format!(
                "{} of legitimate mail is DKIM-aligned ({:.0}% needed: a domain publishing p=reject must sign with DKIM, RFC 9989 §7.4)",
                percent(rate),
                criteria.min_pass_rate * 100.0
            ),
        });
        if !met {
            blockers.push(Blocker {
                code: "reject-needs-dkim",
                message: format!(
                    "only {} of legitimate mail is DKIM-aligned: RFC 9989 §7.4 says a domain publishing reject must sign with DKIM, not rely on SPF alone",
                    percent(rate)
                ),
            });
        }
    }

    // Go on, wait, go back, or stay.
    let aligned_ok = failing.is_empty();
    let enforcing = match stage {
        Stage::Mixed => upper.disposition() != Policy::None,
        s => s.disposition() != Policy::None,
    };
    let (status, target) = if !aligned_ok && enforcing {
        let back = match stage {
            Stage::Mixed => Some(lower).filter(|s| s.disposition() != upper.disposition()).or(lower.step_back()),
            s => s.step_back(),
        };
        (Status::StepBack, back)
    } else if forward.is_none() {
        (Status::Done, None)
    } else if blockers.is_empty() {
        (Status::Ready, forward)
    } else {
        (Status::Blocked, forward)
    };
    if status == Status::Done {
        // p=reject is the last step: keep only what tells whether it still holds.
        crit.retain(|c| c.code == "aligned");
        blockers.clear();
    }
    let not_before = match status {
        Status::Blocked => (now + days_missing * DAY).max(quiet_until),
        _ => now,
    };
    let next = target.and_then(|s| step(s, &base, not_before));
    let step_after = next.as_ref().and_then(|n| {
        let after = n.stage.next()?;
        step(after, &base, not_before.max(now) + i64::from(criteria.min_days) * DAY)
    });

    // adkim=s: when every aligned SES message aligns by DKIM exactly, and no other source
    // relies on relaxed DKIM alignment.
    let mut options = Vec::new();
    let ses = legit.iter().find(|s| s.origin == Origin::Ses);
    let strict_ok = ses.is_some_and(|s| s.dmarc_pass > 0 && s.dkim_strict_aligned >= s.dmarc_pass)
        && legit.iter().filter(|s| s.origin != Origin::Ses).all(|s| s.dkim_strict_aligned >= s.dkim_aligned);
    if strict_ok && record.adkim != Some(AlignmentMode::Strict) && status != Status::StepBack {
        let mut with = match &next {
            Some(n) => DmarcRecord::parse(&n.record).value.unwrap_or_else(|| base.clone()),
            None => base.clone(),
        };
        with.adkim = Some(AlignmentMode::Strict);
        let n = ses.map(|s| s.dmarc_pass).unwrap_or(0);
        options.push(RecordOption {
            code: "adkim-strict",
            record: with.to_string(),
            message: format!(
                "adkim=s (strict DKIM alignment) can be added: every aligned SES message ({}) is signed d={domain} exactly. aspf stays relaxed: SES's MAIL FROM is a subdomain and never aligns strictly.",
                thousands(n)
            ),
        });
    }
    let watch = match &next {
        Some(n) => watch_for(n.stage, status, &ev, domain, criteria.min_pass_rate),
        None => watch_for(Stage::Reject, status, &ev, domain, criteria.min_pass_rate)
            .into_iter()
            .filter(|w| w.starts_with("A new sending source") || w.contains("forwarded"))
            .collect(),
    };
    Rollout {
        domain: domain.to_string(),
        current_record: current.map(str::to_string),
        stage,
        ready: status == Status::Ready,
        blockers,
        next_record: next.as_ref().map(|n| n.record.clone()),
        status,
        current: Some(meaning),
        evidence: ev,
        criteria: crit,
        next,
        step_after,
        options,
        watch_for: watch,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::SourceSummary;

    const NOW: i64 = 100 * DAY;

    fn summary(days: u32, p: &str, sources: Vec<SourceSummary>) -> Summary {
        let policy =
            PolicySeen { p: p.into(), days, day_numbers: (100 - i64::from(days)..100).collect(), ..Default::default() };
        Summary { domain: "example.com".into(), days, sources, policies: vec![policy], ..Default::default() }
    }

    fn source(name: &str, kind: SourceKind, messages: u64, pass: u64, dkim: u64, first_seen: i64) -> SourceSummary {
        SourceSummary {
            source: name.into(),
            kind: Some(kind),
            messages,
            dmarc_pass: pass,
            dkim_aligned: dkim,
            dkim_strict_aligned: dkim,
            first_seen,
            ..Default::default()
        }
    }

    #[test]
    fn the_path_one_step_at_a_time() {
        let s = summary(
            30,
            "none",
            vec![
                source("Amazon SES", SourceKind::AmazonSes, 12_400, 12_400, 12_400, 10 * DAY),
                source("203.0.113.9", SourceKind::Unknown, 50, 0, 0, 95 * DAY),
            ],
        );
        let rua = "rua=mailto:d@example.com";
        let r = advise("example.com", Some(&format!("v=DMARC1; p=none; {rua}")), &s, NOW, Criteria::default());
        assert_eq!((r.stage, r.status, r.ready), (Stage::None, Status::Ready, true), "{:?}", r.blockers);
        assert_eq!(r.next_record.as_deref(), Some("v=DMARC1; p=quarantine; pct=0; rua=mailto:d@example.com; t=y"));
        let next = r.next.as_ref().unwrap();
        assert_eq!(
            (next.stage, next.rfc7489.disposition, next.rfc9989.disposition),
            (Stage::QuarantineTesting, Policy::None, Policy::None)
        );
        assert_eq!(next.not_before, "1970-04-11");
        let after = r.step_after.as_ref().unwrap();
        assert_eq!(
            (after.stage, after.record.as_str()),
            (Stage::Quarantine, "v=DMARC1; p=quarantine; rua=mailto:d@example.com")
        );
        assert_eq!(after.not_before, "1970-04-25", "14 days after the next step");
        assert_eq!(r.options[0].code, "adkim-strict");
        assert!(r.options[0].record.contains("adkim=s"));
        assert!(r.criteria.iter().all(|c| c.met), "{:?}", r.criteria);
        // The spoofer is shown, not held against the domain.
        let spoof = r.evidence.sources.iter().find(|l| l.source == "203.0.113.9").unwrap();
        assert_eq!((spoof.origin, spoof.legitimate), (Origin::Spoofing, false));
        assert_eq!(r.evidence.sources[0].source, "Amazon SES");

        // Each step's record, once the reports show it for 30 days, leads to the next.
        let mut record = r.next_record.unwrap();
        let mut stages = vec![];
        for p in ["quarantine", "quarantine", "reject", "reject"] {
            let mut s = s.clone();
            let testing = record.contains("t=y");
            s.policies[0] = PolicySeen {
                p: p.into(),
                pct: testing.then_some(0),
                days: 30,
                day_numbers: (70..100).collect(),
                ..Default::default()
            };
            let r = advise("example.com", Some(&record), &s, NOW, Criteria::default());
            stages.push((r.stage, r.status));
            match r.next_record {
                Some(n) => record = n,
                None => break,
            }
        }
        assert_eq!(
            stages,
            [
                (Stage::QuarantineTesting, Status::Ready),
                (Stage::Quarantine, Status::Ready),
                (Stage::RejectTesting, Status::Ready),
                (Stage::Reject, Status::Done)
            ]
        );
        // At reject with hardly any evidence: done, not blocked.
        let thin = summary(1, "reject", vec![source("203.0.113.9", SourceKind::Unknown, 3, 0, 0, 99 * DAY)]);
        let r = advise("example.com", Some("v=DMARC1; p=reject"), &thin, NOW, Criteria::default());
        assert_eq!((r.stage, r.status, r.ready, r.blockers.len()), (Stage::Reject, Status::Done, false, 0));
    }

    #[test]
    fn blockers_in_numbers() {
        let s = summary(
            9,
            "quarantine",
            vec![
                source("Amazon SES", SourceKind::AmazonSes, 12_400, 12_400, 0, 10 * DAY),
                source("SendGrid", SourceKind::Known, 300, 300, 300, 98 * DAY),
            ],
        );
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"),
            &s,
            NOW,
            Criteria::default(),
        );
        let msgs: Vec<&str> = r.blockers.iter().map(|b| b.message.as_str()).collect();
        assert_eq!((r.status, r.ready), (Status::Blocked, false));
        assert!(
            msgs.contains(&"only 9 days of reports at p=quarantine; 14 are needed (not before 1970-04-16)"),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.starts_with("new source SendGrid first seen 2 days ago")), "{msgs:?}");
        assert!(r.blockers.iter().any(|b| b.code == "reject-needs-dkim"));
        assert_eq!(r.next.as_ref().unwrap().not_before, "1970-04-16");
        let none = advise("example.com", None, &s, NOW, Criteria::default());
        assert_eq!((none.stage, none.blockers[0].code), (Stage::NoRecord, "no-record"));
        assert!(
            advise("example.com", Some("v=DMARC1; p=none"), &s, NOW, Criteria::default())
                .blockers
                .iter()
                .any(|b| b.code == "no-rua")
        );
        let few = summary(20, "none", vec![source("Amazon SES", SourceKind::AmazonSes, 40, 40, 40, 10 * DAY)]);
        let r =
            advise("example.com", Some("v=DMARC1; p=none; rua=mailto:d@example.com"), &few, NOW, Criteria::default());
        assert_eq!(r.blockers.iter().map(|b| b.code).collect::<Vec<_>>(), ["too-few-messages"]);
        assert_eq!(
            r.blockers[0].message,
            "only 40 messages from your own sources in the reports; 150 are needed to judge a 98% pass rate"
        );
    }

    #[test]
    fn an_unaligned_legitimate_source_at_quarantine_steps_back() {
        let s = summary(
            20,
            "quarantine",
            vec![
                source("Amazon SES", SourceKind::AmazonSes, 10_000, 10_000, 10_000, 10 * DAY),
                source("SendGrid", SourceKind::Known, 500, 0, 0, 97 * DAY),
            ],
        );
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"),
            &s,
            NOW,
            Criteria::default(),
        );
        assert_eq!((r.status, r.ready), (Status::StepBack, false));
        assert_eq!(r.next_record.as_deref(), Some("v=DMARC1; p=quarantine; pct=0; rua=mailto:d@example.com; t=y"));
        let sendgrid = r.evidence.sources.iter().find(|l| l.source == "SendGrid").unwrap();
        assert!(sendgrid.note.contains("a service you forgot to align"), "{}", sendgrid.note);
        // At reject, one level back: quarantine, not none.
        let r =
            advise("example.com", Some("v=DMARC1; p=reject; rua=mailto:d@example.com"), &s, NOW, Criteria::default());
        assert_eq!((r.status, r.next.as_ref().unwrap().stage), (Status::StepBack, Stage::RejectTesting));
        // At the testing stage nothing is lost: blocked, not back.
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; pct=0; rua=mailto:d@example.com; t=y"),
            &s,
            NOW,
            Criteria::default(),
        );
        assert_eq!(r.status, Status::Blocked);
    }

    #[test]
    fn records_the_two_generations_read_differently_are_mixed() {
        for (text, old, new) in [
            ("v=DMARC1; p=quarantine; t=y", Policy::Quarantine, Policy::None),
            ("v=DMARC1; p=quarantine; pct=0", Policy::None, Policy::Quarantine),
            ("v=DMARC1; p=reject; pct=0", Policy::Quarantine, Policy::Reject),
            ("v=DMARC1; p=quarantine; pct=25", Policy::Quarantine, Policy::Quarantine),
        ] {
            let m = record_meaning(&DmarcRecord::parse(text).value.unwrap());
            assert_eq!((m.stage, m.consistent), (Stage::Mixed, false), "{text}");
            assert_eq!((m.rfc7489.disposition, m.rfc9989.disposition), (old, new), "{text}");
        }
        let m = record_meaning(&DmarcRecord::parse("v=DMARC1; p=quarantine; pct=25").value.unwrap());
        assert_eq!((m.rfc7489.percent, m.rfc7489.rest), (25, Some(Policy::None)));
        assert!(m.rfc9989.explanation.contains("pct=25 ignored"), "{}", m.rfc9989.explanation);
        for (text, stage) in [
            ("v=DMARC1; p=none; pct=0; t=y", Stage::None),
            ("v=DMARC1; p=quarantine; pct=0; t=y", Stage::QuarantineTesting),
            ("v=DMARC1; p=quarantine; pct=100; t=n", Stage::Quarantine),
            ("v=DMARC1; p=reject; t=y; pct=0", Stage::RejectTesting),
            ("v=DMARC1; p=reject", Stage::Reject),
        ] {
            assert_eq!(stage_of(Some(text)), stage, "{text}");
        }
        // The record this tool once advised: quarantine at RFC 7489 receivers already.
        let s =
            summary(20, "quarantine", vec![source("Amazon SES", SourceKind::AmazonSes, 9_000, 9_000, 9_000, 10 * DAY)]);
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com; t=y"),
            &s,
            NOW,
            Criteria::default(),
        );
        assert_eq!((r.stage, r.status), (Stage::Mixed, Status::Ready));
        assert_eq!(r.next_record.as_deref(), Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"));
        assert!(r.notes[0].contains("treat this record differently"), "{:?}", r.notes);
        let bad =
            summary(20, "quarantine", vec![source("Amazon SES", SourceKind::AmazonSes, 9_000, 4_000, 4_000, 10 * DAY)]);
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com; t=y"),
            &bad,
            NOW,
            Criteria::default(),
        );
        assert_eq!((r.status, r.next.as_ref().unwrap().stage), (Status::StepBack, Stage::QuarantineTesting));
    }

    #[test]
    fn aspf_strict_is_dropped_and_adkim_strict_needs_exact_dkim() {
        let mut ses = source("Amazon SES", SourceKind::AmazonSes, 1_000, 1_000, 1_000, 10 * DAY);
        ses.dkim_strict_aligned = 900;
        let s = summary(20, "none", vec![ses]);
        let r = advise(
            "example.com",
            Some("v=DMARC1; p=none; aspf=s; rua=mailto:d@example.com"),
            &s,
            NOW,
            Criteria::default(),
        );
        assert!(!r.next_record.as_deref().unwrap().contains("aspf"), "{:?}", r.next_record);
        assert!(r.notes.iter().any(|n| n.starts_with("aspf=s is dropped")));
        assert!(r.options.is_empty(), "100 SES messages align only relaxed: {:?}", r.options);
    }

    #[test]
    fn compare_says_ready_blocked_and_moved_back_once() {
        let good =
            summary(20, "none", vec![source("Amazon SES", SourceKind::AmazonSes, 1_000, 1_000, 1_000, 10 * DAY)]);
        let rec = "v=DMARC1; p=none; rua=mailto:d@example.com";
        let ready = advise("example.com", Some(rec), &good, NOW, Criteria::default());
        assert_eq!(compare(None, &ready), Some(RolloutChange::Ready));
        assert_eq!(compare(Some(&ready.standing()), &ready), None, "no repeat");
        let mut with_new = good.clone();
        with_new.sources.push(source("Mailgun", SourceKind::Known, 200, 200, 200, 98 * DAY));
        let blocked = advise("example.com", Some(rec), &with_new, NOW, Criteria::default());
        assert_eq!(blocked.status, Status::Blocked);
        assert_eq!(compare(Some(&ready.standing()), &blocked), Some(RolloutChange::Blocked));
        assert_eq!(compare(Some(&blocked.standing()), &blocked), None);
        assert_eq!(compare(Some(&blocked.standing()), &ready), Some(RolloutChange::Ready));
        // A step taken: the new stage is not ready yet, which is no event.
        let mut fresh = good.clone();
        fresh.policies.clear();
        let taken = advise("example.com", ready.next_record.as_deref(), &fresh, NOW, Criteria::default());
        assert_eq!(taken.status, Status::Blocked);
        assert_eq!(compare(Some(&ready.standing()), &taken), None);
        // At quarantine a new unaligned legitimate source: moved back, raised once.
        let mut q = good.clone();
        q.policies[0].p = "quarantine".into();
        let at_q = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"),
            &q,
            NOW,
            Criteria::default(),
        );
        q.sources.push(source("Zendesk", SourceKind::Known, 400, 0, 0, 98 * DAY));
        let back = advise(
            "example.com",
            Some("v=DMARC1; p=quarantine; rua=mailto:d@example.com"),
            &q,
            NOW,
            Criteria::default(),
        );
        assert_eq!(compare(Some(&at_q.standing()), &back), Some(RolloutChange::MovedBack));
        assert_eq!(compare(Some(&back.standing()), &back), None);
        assert_eq!(RolloutChange::MovedBack.event_kind(), "rollout-blocked");
        assert_eq!(RolloutChange::Ready.event_kind(), "rollout-ready");
        assert!(
            back.event_message(RolloutChange::MovedBack).contains("source Zendesk: 100.0% of 400 messages not aligned")
        );
    }

    #[test]
    fn days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_795_350_645), "2026-11-22");
    }
}
