//! Alert channels: a webhook (the event as JSON, signed with HMAC-SHA256), a
//! Slack-compatible incoming webhook (text), e-mail by SMTP (one message per event, or a
//! daily digest). A channel that refuses or does not answer leaves the alert in the
//! outbox; it is tried again later, with the event's id as the idempotency key.

mod email;
mod http;

pub use email::{digest_time, render_digest, render_one};

use crate::config::{Config, EmailChannel, EmailMode, SlackChannel, WebhookChannel};
use crate::events::Event;
use std::collections::BTreeMap;

/// Why an alert was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What happened, in words.
    pub message: String,
}

/// The configured channels, by name.
pub struct Alerter {
    channels: BTreeMap<String, Channel>,
    http: http::Client,
}

enum Channel {
    Webhook(WebhookChannel),
    Slack(SlackChannel),
    Email(EmailChannel),
}

/// How long to wait before trying an alert again after `attempts` failures: a minute,
/// doubling, at most six hours.
pub fn backoff(attempts: i64) -> i64 {
    60i64.saturating_mul(1i64 << attempts.clamp(0, 12)).min(6 * 3600)
}

impl Alerter {
    /// The channels of a configuration.
    pub fn new(config: &Config) -> Result<Alerter, DeliveryError> {
        let mut channels = BTreeMap::new();
        for c in &config.webhooks {
            channels.insert(c.name.clone(), Channel::Webhook(c.clone()));
        }
        for c in &config.slack {
            channels.insert(c.name.clone(), Channel::Slack(c.clone()));
        }
        for c in &config.email {
            channels.insert(c.name.clone(), Channel::Email(c.clone()));
        }
        Ok(Alerter { channels, http: http::Client::new()? })
    }

    /// The channels and when each takes an event made at `at`: at once, or (a daily
    /// digest) at the next digest time.
    pub fn schedule(&self, at: i64) -> Vec<(String, i64)> {
        self.channels
            .iter()
            .map(|(name, c)| match c {
                Channel::Email(e) if e.mode == EmailMode::Daily => (name.clone(), digest_time(at)),
                _ => (name.clone(), at),
            })
            .collect()
    }

    /// Whether the channel sends digests (all due events in one message).
    pub fn is_digest(&self, channel: &str) -> bool {
        matches!(self.channels.get(channel), Some(Channel::Email(e)) if e.mode == EmailMode::Daily)
    }

    /// Sends events to one channel: one each, or one digest for a daily channel.
    pub async fn send(&self, channel: &str, events: &[Event]) -> Result<(), DeliveryError> {
        let Some(c) = self.channels.get(channel) else {
            return Err(DeliveryError {
                message: format!("the channel `{channel}` is no longer in the configuration; the alert waits for it"),
            });
        };
        match c {
            Channel::Webhook(w) => {
                for e in events {
                    let body = serde_json::to_vec(e).unwrap_or_default();
                    let mut headers = vec![
                        ("content-type".to_string(), "application/json".to_string()),
                        ("idempotency-key".to_string(), e.id.clone()),
                        ("x-ses-dmarc-event".to_string(), e.kind.as_str().to_string()),
                    ];
                    if let Some(secret) = &w.secret {
                        headers.push(("x-ses-dmarc-signature".to_string(), format!("sha256={}", sign(secret, &body))));
                    }
                    self.http.post(&w.url, headers, body).await?;
                }
                Ok(())
            }
            Channel::Slack(s) => {
                for e in events {
                    let body = serde_json::to_vec(&serde_json::json!({ "text": slack_text(e) })).unwrap_or_default();
                    let headers = vec![("content-type".to_string(), "application/json".to_string())];
                    self.http.post(&s.url, headers, body).await?;
                }
                Ok(())
            }
            Channel::Email(m) => email::send(m, events).await,
        }
    }
}

/// HMAC-SHA256 of `body` with `secret`, in hex (what `X-Ses-Dmarc-Signature: sha256=`
/// carries).
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// One line (and the fix) for a Slack-compatible channel.
pub fn slack_text(e: &Event) -> String {
    let domain = e.domain.as_deref().unwrap_or("ses-dmarc");
    let mut text = format!("*{domain}* {} `{}`: {}", e.kind.as_str(), e.code, e.message);
    if let Some(fix) = &e.fix {
        text.push_str(&format!("\nFix: {fix}"));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_and_backoff() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(super::backoff(0), 60);
        assert_eq!(super::backoff(3), 480);
        assert_eq!(super::backoff(40), 6 * 3600);
    }
}
