//! Failure reports (ARF, RFC 5965 / RFC 6591 / RFC 9991): the feedback fields (source IP,
//! identities, the authentication failure) and the reported message's headers.

use mail_parser::{DateTime, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

/// A DMARC failure report (ARF): what the reporter says about one message that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FailureReport {
    /// Lower case: `auth-failure`, `abuse`, ...
    pub feedback_type: String,
    /// `User-Agent`: the software that made the report.
    pub user_agent: Option<String>,
    /// `Version` of the feedback format.
    pub version: Option<String>,
    /// Arrival-Date (or Received-Date), seconds since 1970.
    pub arrival_date: Option<i64>,
    /// `Source-IP`: the IP the message came from.
    pub source_ip: Option<String>,
    /// `Original-Mail-From`: the message's MAIL FROM.
    pub original_mail_from: Option<String>,
    /// `Original-Rcpt-To`: its recipient.
    pub original_rcpt_to: Option<String>,
    /// `Original-Envelope-Id`.
    pub original_envelope_id: Option<String>,
    /// `Reporting-MTA`: the server that made the report (the type prefix dropped).
    pub reporting_mta: Option<String>,
    /// `Reported-Domain` values, lower case.
    pub reported_domain: Vec<String>,
    /// `Reported-URI` values.
    pub reported_uri: Vec<String>,
    /// The receiver's `Authentication-Results` for the message.
    pub authentication_results: Vec<String>,
    /// Lower case: `dkim`, `spf`, `dmarc`, `bodyhash`, `revoked`, `signature`, `adsp`.
    pub auth_failure: Option<String>,
    /// `Delivery-Result`, lower case: `delivered`, `spam`, `policy`, `reject`, `other`.
    pub delivery_result: Option<String>,
    /// `DKIM-Domain`, lower case: the failing signature's `d=`.
    pub dkim_domain: Option<String>,
    /// `DKIM-Identity`: its `i=`.
    pub dkim_identity: Option<String>,
    /// `DKIM-Selector`: its `s=`.
    pub dkim_selector: Option<String>,
    /// `SPF-DNS`: the SPF records the reporter used.
    pub spf_dns: Option<String>,
    /// `Identity-Alignment`, lower case: which identifiers aligned (`none`, `dkim`, `spf`).
    pub identity_alignment: Option<String>,
    /// `Incidents`: how many messages the report stands for (1 when absent).
    pub incidents: u64,
    /// The reported message's header section, as sent.
    pub headers: Option<String>,
}

/// Why a message is not a usable failure report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureError {
    /// The input is not an e-mail message.
    #[error("not an e-mail message")]
    NotAMessage,
    /// No `message/feedback-report` part.
    #[error("no message/feedback-report part: not an ARF failure report")]
    NoFeedbackPart,
    /// The feedback part has no `Feedback-Type`.
    #[error("the feedback report has no Feedback-Type field")]
    NoFeedbackType,
}

/// `Name: value` fields with folded continuation lines joined.
fn fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push('\n');
                v.push_str(line);
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// Whether a text holds the fields of a failure report: an RFC 5965 feedback report
/// (`Feedback-Type:`), or the plain-text notice some MTAs send instead (`Sender Domain:`,
/// `Sender IP Address:`, "failed the published DMARC policy").
pub fn looks_like_feedback(text: &str) -> bool {
    let head = text.get(..text.len().min(64 * 1024)).unwrap_or(text);
    let f = notice_fields(head);
    let has = |k: &str| f.iter().any(|(name, _)| name == k);
    has("feedback-type")
        || (has("source-ip") && (has("reported-domain") || has("auth-failure")))
        || ((has("sender ip address") || has("source ip")) && (has("sender domain") || has("dmarc results")))
        || text.to_ascii_lowercase().contains("failed the published dmarc policy")
}

/// The fields of a plain-text notice, whose lines are often indented: each line on its own.
fn notice_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| !k.is_empty() && k.len() < 40)
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// Labels only the plain-text notices use.
const NOTICE_LABELS: &[&str] =
    &["sender domain", "sender ip address", "source ip", "received date", "dmarc results", "dmarc result"];

/// The message's header section, up to the first empty line.
fn header_section(raw: &[u8]) -> String {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| raw.windows(2).position(|w| w == b"\n\n"));
    String::from_utf8_lossy(&raw[..end.unwrap_or(raw.len())]).into_owned()
}

/// Whether bytes start like a message's header section with an origin (`From:`).
fn looks_like_original(raw: &[u8]) -> bool {
    let head = header_section(&raw[..raw.len().min(64 * 1024)]);
    let first = head.lines().next().unwrap_or_default();
    first
        .split_once(':')
        .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && head.lines().any(|l| l.to_ascii_lowercase().starts_with("from:"))
}

/// Parses a failure report: well-formed ARF (a `message/feedback-report` part), or what
/// real MTAs send instead: the feedback fields in a part of another type (an attachment
/// named ATT00001, `application/octet-stream`), or a plain-text notice with
/// `Sender Domain:` / `Sender IP Address:` lines. The original headers come from a
/// `message/rfc822` or `text/rfc822-headers` part, or an attachment that holds them.
pub fn parse_failure(raw: &[u8]) -> Result<FailureReport, FailureError> {
    let msg = MessageParser::default().parse(raw).ok_or(FailureError::NotAMessage)?;
    let mut feedback: Option<String> = None;
    let mut guessed: Option<String> = None;
    let mut headers: Option<String> = None;
    let mut guessed_headers: Option<String> = None;
    for (i, part) in msg.parts.iter().enumerate() {
        let kind = part
            .content_type()
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase())
            .unwrap_or_else(|| "text/plain".into());
        match kind.as_str() {
            "message/feedback-report" => feedback = Some(String::from_utf8_lossy(part.contents()).into_owned()),
            "text/rfc822-headers" => headers = Some(String::from_utf8_lossy(part.contents()).into_owned()),
            "message/rfc822" | "message/global" => {
                let raw = match &part.body {
                    PartType::Message(m) => m.raw_message.as_ref(),
                    _ => part.contents(),
                };
                headers = Some(header_section(raw));
            }
            _ if i > 0 || msg.parts.len() == 1 => {
                let contents = part.contents();
                let text = String::from_utf8_lossy(&contents[..contents.len().min(256 * 1024)]);
                if guessed.is_none() && looks_like_feedback(&text) {
                    guessed = Some(text.into_owned());
                } else if guessed_headers.is_none() && looks_like_original(contents) {
                    guessed_headers = Some(header_section(contents));
                }
            }
            _ => {}
        }
    }
    let headers = headers.or(guessed_headers);
    let feedback = feedback.or(guessed).ok_or(FailureError::NoFeedbackPart)?;
    let mut r = FailureReport { incidents: 1, headers, ..Default::default() };
    let notice = notice_fields(&feedback).into_iter().filter(|(k, _)| NOTICE_LABELS.contains(&k.as_str()));
    for (k, v) in fields(&feedback).into_iter().filter(|(k, _)| !NOTICE_LABELS.contains(&k.as_str())).chain(notice) {
        let one = || Some(v.clone());
        match k.as_str() {
            "feedback-type" => r.feedback_type = v.to_ascii_lowercase(),
            "user-agent" => r.user_agent = one(),
            "version" => r.version = one(),
            "arrival-date" | "received-date" => r.arrival_date = DateTime::parse_rfc822(&v).map(|d| d.to_timestamp()),
            "source-ip" => r.source_ip = v.split_whitespace().next().map(str::to_string),
            "original-mail-from" => r.original_mail_from = one(),
            "original-rcpt-to" => r.original_rcpt_to = one(),
            "original-envelope-id" => r.original_envelope_id = one(),
            "reporting-mta" => {
                r.reporting_mta = Some(v.split_once(';').map(|(_, m)| m.trim().to_string()).unwrap_or(v.clone()))
            }
            "reported-domain" => r.reported_domain.push(v.to_ascii_lowercase()),
            "reported-uri" => r.reported_uri.push(v.clone()),
            "authentication-results" => r.authentication_results.push(v.clone()),
            "auth-failure" => r.auth_failure = Some(v.to_ascii_lowercase()),
            "delivery-result" => r.delivery_result = Some(v.to_ascii_lowercase()),
            "dkim-domain" => r.dkim_domain = Some(v.to_ascii_lowercase()),
            "dkim-identity" => r.dkim_identity = one(),
            "dkim-selector" => r.dkim_selector = one(),
            "spf-dns" => r.spf_dns = one(),
            "identity-alignment" => r.identity_alignment = Some(v.to_ascii_lowercase()),
            "incidents" => r.incidents = v.parse().unwrap_or(1),
            // The plain-text notices' labels.
            "sender domain" => r.reported_domain.push(v.to_ascii_lowercase()),
            "sender ip address" | "source ip" => r.source_ip = v.split_whitespace().next().map(str::to_string),
            "received date" => r.arrival_date = DateTime::parse_rfc822(&v).map(|d| d.to_timestamp()),
            "dmarc results" | "dmarc result" => {
                r.auth_failure.get_or_insert_with(|| "dmarc".into());
            }
            _ => {}
        }
    }
    if r.feedback_type.is_empty() && looks_like_feedback(&feedback) {
        // A notice without Feedback-Type: it reports an authentication failure.
        r.feedback_type = "auth-failure".into();
    }
    if r.source_ip.as_deref().is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
        r.source_ip = None;
    }
    if r.feedback_type.is_empty() {
        return Err(FailureError::NoFeedbackType);
    }
    Ok(r)
}
