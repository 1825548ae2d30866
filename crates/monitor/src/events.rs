//! Events: what changed, as the webhook body, the e-mail, the API and `watch history`
//! show it (`{"id", "at", "domain", "kind", "code", "severity", "message", "fix"}` and more).

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// An error or warning finding appeared.
    FindingRaised,
    /// An error or warning finding went away.
    FindingResolved,
    /// A watched record's value changed.
    RecordChanged,
    /// A lookup failed on several checks in a row.
    DnsUnknown,
    /// A sender not seen before, with messages failing DMARC.
    NewSource,
    /// The 7-day DMARC pass rate fell.
    PassRateDropped,
    /// No aggregate report for days although the record asks for them.
    ReportsMissing,
    /// What SES says about the identity or the account changed.
    SesStatusChanged,
    /// A mailbox or bucket could not be read.
    IntakeFailed,
    /// The domain is ready for its next DMARC step.
    RolloutReady,
    /// The domain moved back: something blocks the step it was ready for.
    RolloutBlocked,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 11] = [
        EventKind::FindingRaised,
        EventKind::FindingResolved,
        EventKind::RecordChanged,
        EventKind::DnsUnknown,
        EventKind::NewSource,
        EventKind::PassRateDropped,
        EventKind::ReportsMissing,
        EventKind::SesStatusChanged,
        EventKind::IntakeFailed,
        EventKind::RolloutReady,
        EventKind::RolloutBlocked,
    ];

    /// The kind as events write it (`finding-raised`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::FindingRaised => "finding-raised",
            EventKind::FindingResolved => "finding-resolved",
            EventKind::RecordChanged => "record-changed",
            EventKind::DnsUnknown => "dns-unknown",
            EventKind::NewSource => "new-source",
            EventKind::PassRateDropped => "pass-rate-dropped",
            EventKind::ReportsMissing => "reports-missing",
            EventKind::SesStatusChanged => "ses-status-changed",
            EventKind::IntakeFailed => "intake-failed",
            EventKind::RolloutReady => "rollout-ready",
            EventKind::RolloutBlocked => "rollout-blocked",
        }
    }
}

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Mail fails or will fail; act now.
    Error,
    /// Worth a look soon.
    Warning,
    /// For the record.
    Info,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique, time-ordered; the idempotency key of every delivery.
    pub id: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The domain it is about (none for a mailbox failure).
    pub domain: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// The finding code, or the kind again where there is none.
    pub code: String,
    /// How much it matters.
    pub severity: Severity,
    /// What happened, in words.
    pub message: String,
    /// What to do, when there is something.
    pub fix: Option<String>,
    /// What it is about within the domain: a DNS name, `name TYPE`, a source, a mailbox.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// The value before (record-changed, ses-status-changed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub before: Option<String>,
    /// The value after.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after: Option<String>,
    /// A reminder of a problem still open (raised first at `opened_at`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reminder_of: Option<String>,
}

impl Event {
    /// A new event now (its id and time filled in).
    pub fn new(at: i64, domain: Option<&str>, kind: EventKind, severity: Severity, message: String) -> Event {
        Event {
            id: uuid::Uuid::now_v7().to_string(),
            at: crate::schedule::rfc3339(at),
            domain: domain.map(str::to_string),
            kind,
            code: kind.as_str().to_string(),
            severity,
            message,
            fix: None,
            subject: None,
            before: None,
            after: None,
            reminder_of: None,
        }
    }

    /// The event's open-problem key: the same problem gives the same key (raised once,
    /// reminded later, closed when it goes away).
    pub fn problem(&self) -> String {
        format!("{} {} {}", self.kind.as_str(), self.code, self.subject.as_deref().unwrap_or(""))
    }

    /// As the store keeps it.
    pub fn stored(&self, at: i64) -> ses_dmarc_store::StoredEvent {
        ses_dmarc_store::StoredEvent {
            id: self.id.clone(),
            domain: self.domain.clone(),
            at,
            kind: self.kind.as_str().to_string(),
            body: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}
