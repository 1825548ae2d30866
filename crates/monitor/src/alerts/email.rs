//! Alerts by e-mail (SMTP with implicit TLS, STARTTLS or none): one message per event, or
//! a daily digest.

use super::DeliveryError;
use crate::config::{EmailChannel, Tls};
use crate::events::Event;
use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as LettreTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// The next digest time after `at`: 06:00 UTC.
pub fn digest_time(at: i64) -> i64 {
    let day = at.div_euclid(86_400) * 86_400 + 6 * 3600;
    if day > at { day } else { day + 86_400 }
}

/// (subject, body) of one event's message, with the fix in the text.
pub fn render_one(e: &Event) -> (String, String) {
    let domain = e.domain.as_deref().unwrap_or("ses-dmarc");
    let subject = format!("[ses-dmarc] {domain}: {} {}", e.kind.as_str(), e.code);
    let mut body = format!("{}\n\n{}\n", e.message, e.at);
    if let Some(fix) = &e.fix {
        body.push_str(&format!("\nFix: {fix}\n"));
    }
    if let (Some(b), Some(a)) = (&e.before, &e.after) {
        body.push_str(&format!("\nBefore: {b}\nAfter:  {a}\n"));
    }
    body.push_str(&format!("\nEvent {} ({}, {})\n", e.id, e.kind.as_str(), severity(e)));
    (subject, body)
}

fn severity(e: &Event) -> &'static str {
    match e.severity {
        crate::events::Severity::Error => "error",
        crate::events::Severity::Warning => "warning",
        crate::events::Severity::Info => "info",
    }
}

/// (subject, body) of a digest of several events.
pub fn render_digest(events: &[Event]) -> (String, String) {
    let domains: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e.domain.as_deref()).collect();
    let subject = format!(
        "[ses-dmarc] digest: {} event{} for {} domain{}",
        events.len(),
        if events.len() == 1 { "" } else { "s" },
        domains.len(),
        if domains.len() == 1 { "" } else { "s" }
    );
    let mut body = String::new();
    for e in events {
        let (s, b) = render_one(e);
        body.push_str(&format!("== {}\n{b}\n", s.trim_start_matches("[ses-dmarc] ")));
    }
    (subject, body)
}

fn transport(c: &EmailChannel) -> Result<AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
    let fail = |m: String| DeliveryError { message: format!("{}:{}: {m}", c.host, c.port) };
    let tls_parameters = || -> Result<TlsParameters, DeliveryError> {
        let mut b = TlsParameters::builder(c.host.clone());
        if let Some(path) = &c.ca_file {
            let pem = std::fs::read(path).map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| fail(format!("TLS: {e}")))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
        .port(c.port)
        .timeout(Some(std::time::Duration::from_secs(20)));
    builder = match c.tls {
        Tls::Implicit => builder.tls(LettreTls::Wrapper(tls_parameters()?)),
        Tls::StartTls => builder.tls(LettreTls::Required(tls_parameters()?)),
        Tls::None => builder.tls(LettreTls::None),
    };
    if let Some((user, password)) = &c.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Sends the events: one message each, or one digest (`mode = "daily"`).
pub(super) async fn send(c: &EmailChannel, events: &[Event]) -> Result<(), DeliveryError> {
    let fail = |m: String| DeliveryError { message: format!("SMTP {}:{}: {m}", c.host, c.port) };
    let from: Mailbox = c.from.parse().map_err(|e| fail(format!("from `{}`: {e}", c.from)))?;
    let mut to = Vec::new();
    for t in &c.to {
        to.push(t.parse::<Mailbox>().map_err(|e| fail(format!("to `{t}`: {e}")))?);
    }
    let messages: Vec<(String, String)> = match c.mode {
        crate::config::EmailMode::Each => events.iter().map(render_one).collect(),
        crate::config::EmailMode::Daily if events.is_empty() => vec![],
        crate::config::EmailMode::Daily => vec![render_digest(events)],
    };
    let mailer = transport(c)?;
    for (subject, body) in messages {
        let mut b = Message::builder().from(from.clone()).subject(subject).header(ContentType::TEXT_PLAIN);
        for t in &to {
            b = b.to(t.clone());
        }
        let message = b.body(body).map_err(|e| fail(e.to_string()))?;
        mailer.send(message).await.map_err(|e| {
            let mut cause: &dyn std::error::Error = &e;
            let mut text = e.to_string();
            while let Some(next) = cause.source() {
                cause = next;
                text = format!("{text}: {next}");
            }
            fail(text)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_times() {
        assert_eq!(super::digest_time(0), 6 * 3600);
        assert_eq!(super::digest_time(6 * 3600), 86_400 + 6 * 3600);
        assert_eq!(super::digest_time(7 * 3600), 86_400 + 6 * 3600);
    }
}
