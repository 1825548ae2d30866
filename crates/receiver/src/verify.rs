//! A received message, the way a receiving server sees it: SPF for the connection facts,
//! every DKIM signature, DMARC alignment and the disposition the published policy asks
//! for; what the receiver itself concluded (its Authentication-Results), and where it and
//! we disagree; plain-language explanations with SES hints.

use crate::dkim::verify_dkim;
use crate::dmarc::{DkimIdentity, DmarcEvaluation, DmarcResult, SpfIdentity, evaluate};
use crate::dmarc_discovery::{discover_9989, tree_walk_names};
use crate::spf::{SpfCheck, SpfInput, SpfResult, check_mail_from};
use mail_auth::AuthenticatedMessage;
use serde::Serialize;
use ses_dmarc_dns::{Answer, Outcome, RecordType, Resolver};
use ses_dmarc_records::auth_results::{AuthenticationResults, ReceivedSpf};
use std::collections::HashMap;
use std::net::IpAddr;

/// Connection facts given for a message (`verify --ip --mail-from --helo`); what is missing
/// is read from the message's headers.
#[derive(Debug, Clone, Default)]
pub struct VerifyInput {
    /// The connecting client's IP address.
    pub ip: Option<IpAddr>,
    /// The SMTP MAIL FROM address.
    pub mail_from: Option<String>,
    /// The HELO/EHLO name.
    pub helo: Option<String>,
}

/// Why a message cannot be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the input is not an e-mail message: no header section could be read (an RFC 5322 message starts with `Name: value` header lines)"
    )]
    /// The input has no header section.
    NotAMessage,
}

/// Where the connection facts came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// The connecting client's IP address.
    pub ip: IpAddr,
    /// The SMTP MAIL FROM address (empty for a bounce).
    pub mail_from: String,
    /// The HELO/EHLO name, when known.
    pub helo: Option<String>,
    /// `flags`, or the header that was trusted and why.
    pub source: String,
}

/// The SPF check of a message, with its DMARC alignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfReport {
    /// The SPF result.
    pub result: SpfResult,
    /// The domain checked: the MAIL FROM domain, or the HELO name.
    pub domain: String,
    /// Whether SPF passed aligned with the From domain.
    pub aligned: bool,
    /// `strict`, `relaxed` or `none`: how the domain matches the From domain.
    pub alignment: &'static str,
    /// Why this result, in one sentence.
    pub reason: String,
    /// DNS-querying terms evaluated.
    pub lookups: usize,
    /// The full check with its trace (not in the JSON output).
    #[serde(skip)]
    pub check: SpfCheck,
}

/// One DKIM signature of a message, with its DMARC alignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimReport {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    /// `pass`, `fail`, `neutral`, `temperror`, `permerror` or `none`.
    pub result: String,
    /// Whether the signature passed aligned with the From domain.
    pub aligned: bool,
    /// `strict`, `relaxed` or `none`: how `d=` matches the From domain.
    pub alignment: &'static str,
    /// Why the signature did not pass, when it did not.
    pub reason: Option<String>,
    /// The signing algorithm (`a=`).
    pub algorithm: String,
    /// `l=`: the number of body bytes signed, when the signature limits it.
    pub body_length: Option<u64>,
    /// The key record says the domain is testing DKIM (`t=y`).
    pub key_testing: bool,
}

/// DMARC for a message: the result and what the policy asks the receiver to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcReport {
    /// The DMARC result.
    pub result: DmarcResult,
    /// The policy that applies to the From domain (`p`, `sp` or `np`), when there is a record.
    pub policy: Option<String>,
    /// What the policy asks the receiver to do with this message (`none` when DMARC passes).
    pub disposition: String,
    /// The domain whose `_dmarc` record applies, when one was found.
    pub policy_domain: Option<String>,
    /// The DMARC record's text, when one was found.
    pub record: Option<String>,
    /// RFC 9989 `t=y`: the disposition is one level weaker than the policy.
    pub testing: bool,
    /// The result explained in one sentence.
    pub reason: String,
}

/// One receiver header's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiverView {
    /// `Authentication-Results` or `ARC-Authentication-Results`.
    pub header: &'static str,
    /// The server that wrote the header, when it says.
    pub authserv_id: Option<String>,
    /// Its SPF result.
    pub spf: Option<String>,
    /// Its DKIM results: (signing domain, result).
    pub dkim: Vec<(String, String)>,
    /// Its DMARC result.
    pub dmarc: Option<String>,
}

/// Everything `verify` concludes about a message: SPF, DKIM, DMARC as a receiver sees them,
/// what the receivers themselves wrote, and the explanations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The From header's addresses, lower case.
    pub from: Vec<String>,
    /// The From domain, when the message has exactly one From address.
    pub from_domain: Option<String>,
    /// The connection facts SPF was checked with, when known.
    pub connection: Option<Connection>,
    /// The SPF check, when there was a client IP to check.
    pub spf: Option<SpfReport>,
    /// Every DKIM signature, in header order.
    pub dkim: Vec<DkimReport>,
    /// The DMARC result.
    pub dmarc: DmarcReport,
    /// One line per fact, in plain words.
    pub explanation: Vec<String>,
    /// What to change on the SES side, in plain words.
    pub hints: Vec<String>,
    /// Each receiver header's own results, topmost first.
    pub receiver: Vec<ReceiverView>,
    /// Where a receiver's results differ from ours.
    pub disagreements: Vec<String>,
    /// Bytes in the message's body.
    pub body_bytes: u64,
    /// Problems with the message itself (no From, two From, unparseable signatures).
    pub problems: Vec<String>,
}

fn unfold(v: &[u8]) -> String {
    String::from_utf8_lossy(v).replace("\r\n", "").replace('\n', "").trim().to_string()
}

fn headers<'a>(msg: &'a AuthenticatedMessage<'a>, name: &str) -> Vec<String> {
    msg.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| unfold(v)).collect()
}

fn domain_of(addr: &str) -> Option<String> {
    let a = addr.trim().trim_start_matches('<').trim_end_matches('>');
    a.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()).filter(|d| !d.is_empty())
}

/// The client IP a receiver wrote into an SPF comment ("designates 192.0.2.1 as permitted
/// sender", "sender IP is 192.0.2.1").
fn ip_in_comment(comment: &str) -> Option<IpAddr> {
    comment
        .split(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == '(' || c == ';')
        .filter_map(|w| w.trim_end_matches('.').parse::<IpAddr>().ok())
        .next()
}

/// Every parseable Authentication-Results header, then every ARC-Authentication-Results
/// header, topmost first, with the header's name.
fn receiver_results(msg: &AuthenticatedMessage<'_>) -> Vec<(&'static str, AuthenticationResults)> {
    let mut out = Vec::new();
    for (name, arc) in [("Authentication-Results", false), ("ARC-Authentication-Results", true)] {
        for h in headers(msg, name) {
            let parsed = if arc { AuthenticationResults::parse_arc(&h) } else { AuthenticationResults::parse(&h) };
            if let Ok(ar) = parsed {
                out.push((name, ar));
            }
        }
    }
    out
}

fn connection_from_headers(
    msg: &AuthenticatedMessage<'_>,
    results: &[(&'static str, AuthenticationResults)],
) -> Option<Connection> {
    if let Some(rs) = headers(msg, "Received-SPF").first().and_then(|h| ReceivedSpf::parse(h).ok())
        && let Some(ip) = rs.get("client-ip").and_then(|i| i.parse().ok())
    {
        return Some(Connection {
            ip,
            mail_from: rs.get("envelope-from").unwrap_or_default().to_string(),
            helo: rs.get("helo").map(str::to_string),
            source: "the topmost Received-SPF header (added by the last receiving server, so the most trustworthy)"
                .into(),
        });
    }
    for (name, ar) in results {
        let Some(spf) = ar.method("spf").next() else { continue };
        let Some(ip) = spf
            .property("smtp.client-ip")
            .and_then(|i| i.parse().ok())
            .or_else(|| spf.comment.as_deref().and_then(ip_in_comment))
        else {
            continue;
        };
        return Some(Connection {
            ip,
            mail_from: spf.property("smtp.mailfrom").unwrap_or_default().to_string(),
            helo: spf.property("smtp.helo").map(str::to_string),
            source: format!(
                "the topmost {name} header with an SPF result{} (its SPF comment names the client IP)",
                ar.authserv_id.as_deref().map(|a| format!(", written by {a}")).unwrap_or_default()
            ),
        });
    }
    None
}

fn receiver_views(results: &[(&'static str, AuthenticationResults)]) -> Vec<ReceiverView> {
    results
        .iter()
        .map(|(header, ar)| ReceiverView {
            header,
            authserv_id: ar.authserv_id.clone(),
            spf: ar.method("spf").next().map(|r| r.result.clone()),
            dkim: ar
                .method("dkim")
                .map(|r| {
                    let d = r
                        .property("header.d")
                        .map(str::to_string)
                        .or_else(|| r.property("header.i").and_then(domain_of))
                        .unwrap_or_default();
                    (d.to_ascii_lowercase(), r.result.clone())
                })
                .collect(),
            dmarc: ar.method("dmarc").next().map(|r| r.result.clone()),
        })
        .collect()
}

/// Verifies a raw message.
pub async fn verify_message<R: Resolver>(
    resolver: &R,
    raw: &[u8],
    input: &VerifyInput,
) -> Result<Verification, VerifyError> {
    // Not strict: verify `l=` signatures as RFC 6376 receivers do, and explain their risk.
    if !starts_like_a_message(raw) {
        return Err(VerifyError::NotAMessage);
    }
    let mut msg = AuthenticatedMessage::parse_with_opts(raw, None, false).ok_or(VerifyError::NotAMessage)?;
    if msg.headers.is_empty() {
        return Err(VerifyError::NotAMessage);
    }
    let mut problems = Vec::new();
    if msg.dkim_headers.len() > crate::dkim::MAX_SIGNATURES {
        problems.push(format!(
            "{} DKIM signatures: only the first {} were verified, {} skipped (no sender signs that often; receivers stop early too)",
            msg.dkim_headers.len(),
            crate::dkim::MAX_SIGNATURES,
            msg.dkim_headers.len() - crate::dkim::MAX_SIGNATURES
        ));
        msg.dkim_headers.truncate(crate::dkim::MAX_SIGNATURES);
    }
    let from_headers = headers(&msg, "From");
    let from: Vec<String> = msg.from.iter().map(|f| f.to_ascii_lowercase()).collect();
    match (from_headers.len(), from.len()) {
        (0, _) => {
            problems.push("no From header: DMARC has no domain to evaluate (receivers usually reject such mail)".into())
        }
        (1, 1) => {}
        (1, 0) => problems.push(format!("the From header `{}` holds no address", from_headers[0])),
        (1, n) => problems.push(format!(
            "the From header holds {n} addresses: DMARC evaluates messages with exactly one author domain"
        )),
        (n, _) => problems
            .push(format!("{n} From headers: RFC 5322 allows one, and DMARC receivers reject or ignore such messages")),
    }
    for e in &msg.errors {
        problems.push(format!("a signature header could not be parsed: {:?}", e.header));
    }
    let from_domain = if from_headers.len() == 1 && from.len() == 1 { domain_of(&from[0]) } else { None };

    let results = receiver_results(&msg);
    // Connection facts.
    let connection = match input.ip {
        Some(ip) => {
            let mail_from = input
                .mail_from
                .clone()
                .or_else(|| {
                    headers(&msg, "Return-Path")
                        .first()
                        .map(|r| r.trim_matches(|c| c == '<' || c == '>' || c == ' ').to_string())
                })
                .unwrap_or_default();
            Some(Connection {
                ip,
                mail_from,
                helo: input.helo.clone(),
                source: "the command line (--ip, --mail-from, --helo; Return-Path for a missing --mail-from)".into(),
            })
        }
        None => connection_from_headers(&msg, &results),
    };

    // SPF.
    let spf = match &connection {
        Some(c) => {
            let helo = c.helo.clone().or_else(|| domain_of(&c.mail_from)).unwrap_or_default();
            let check =
                check_mail_from(resolver, &SpfInput { ip: c.ip, mail_from: c.mail_from.clone(), helo, receiver: None })
                    .await;
            Some(check)
        }
        None => None,
    };
    // DKIM.
    let dkim = verify_dkim(resolver, &msg).await;

    // DMARC.
    let dmarc_eval: Option<DmarcEvaluation> = match &from_domain {
        None => None,
        Some(fd) => {
            let names: Vec<String> = tree_walk_names(fd).into_iter().map(|n| format!("_dmarc.{n}")).collect();
            let (answers, exists): (Vec<Answer>, Answer) = futures::join!(
                futures::future::join_all(names.iter().map(|n| resolver.lookup(n, RecordType::Txt))),
                resolver.lookup(fd, RecordType::A)
            );
            let map: HashMap<String, Answer> = names.iter().cloned().zip(answers).collect();
            let discovered = discover_9989(&|n: &str| map.get(n), fd);
            let spf_id = spf.as_ref().map(|c| SpfIdentity { result: c.result, domain: c.domain.clone() });
            let dkim_ids: Vec<DkimIdentity> = dkim
                .iter()
                .map(|d| DkimIdentity { domain: d.domain.clone(), selector: d.selector.clone(), pass: d.passed() })
                .collect();
            Some(evaluate(discovered, fd, exists.outcome != Outcome::NxDomain, spf_id.as_ref(), &dkim_ids))
        }
    };

    let spf_report = spf.map(|check| {
        let a = dmarc_eval.as_ref().and_then(|e| e.spf.clone());
        SpfReport {
            result: check.result,
            domain: check.domain.clone(),
            aligned: a.as_ref().is_some_and(|a| a.aligned),
            alignment: a.as_ref().map(|a| a.how).unwrap_or("none"),
            reason: check.reason.clone(),
            lookups: check.lookups,
            check,
        }
    });
    let dkim_reports: Vec<DkimReport> = dkim
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let a = dmarc_eval.as_ref().and_then(|e| e.dkim.get(i).cloned());
            DkimReport {
                domain: d.domain.clone(),
                selector: d.selector.clone(),
                result: d.result.clone(),
                aligned: a.as_ref().is_some_and(|a| a.aligned),
                alignment: a.as_ref().map(|a| a.how).unwrap_or("none"),
                reason: d.reason.clone(),
                algorithm: d.algorithm.clone(),
                body_length: d.body_length,
                key_testing: d.key_testing,
            }
        })
        .collect();
    let dmarc = match &dmarc_eval {
        Some(e) => DmarcReport {
            result: e.result,
            policy: e.policy.map(|p| p.to_string()),
            disposition: e.disposition.to_string(),
            policy_domain: e.policy_domain.clone(),
            record: e.record.clone(),
            testing: e.testing,
            reason: e.reason.clone(),
        },
        None => DmarcReport {
            result: DmarcResult::PermError,
            policy: None,
            disposition: "none".into(),
            policy_domain: None,
            record: None,
            testing: false,
            reason: "no single From domain: DMARC cannot be evaluated".into(),
        },
    };

    let mut v = Verification {
        from,
        from_domain,
        connection,
        spf: spf_report,
        dkim: dkim_reports,
        dmarc,
        explanation: vec![],
        hints: vec![],
        receiver: receiver_views(&results),
        disagreements: vec![],
        body_bytes: raw.len().saturating_sub(msg.body_offset as usize) as u64,
        problems,
    };
    explain(&mut v);
    Ok(v)
}

/// Whether the input starts as an RFC 5322 message does: a header field (`Name: value`,
/// the name printable ASCII without `:`), possibly after an mbox `From ` line.
fn starts_like_a_message(raw: &[u8]) -> bool {
    let raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
    let mut lines = raw.split(|b| *b == b'\n');
    let mut first = lines.next().unwrap_or_default();
    if first.starts_with(b"From ") {
        first = lines.next().unwrap_or_default();
    }
    match first.iter().position(|b| *b == b':') {
        Some(i) if i > 0 => first[..i].iter().all(|b| (33..=126).contains(b)),
        _ => false,
    }
}

fn under_amazonses(domain: &str) -> bool {
    domain == "amazonses.com" || domain.ends_with(".amazonses.com")
}

fn explain(v: &mut Verification) {
    let mut lines = Vec::new();
    match (&v.spf, &v.connection) {
        (Some(s), Some(c)) => {
            let align = if s.aligned {
                format!("aligned ({})", s.alignment)
            } else if under_amazonses(&s.domain) {
                "not aligned: the envelope sender is SES's own".into()
            } else {
                "not aligned".into()
            };
            lines.push(format!("SPF {} for {} from {}, {align}", s.result, s.domain, c.ip));
            if under_amazonses(&s.domain) {
                v.hints.push("The envelope sender is under amazonses.com: no custom MAIL FROM is in use, so SPF can never align. Set one up (`ses-dmarc plan DOMAIN --mail-from mail`) and make the SES call.".into());
            }
        }
        _ => lines.push("SPF not evaluated: no client IP (give --ip, or a message with a Received-SPF or Authentication-Results header)".into()),
    }
    for d in &v.dkim {
        let align = if d.aligned {
            format!("aligned ({})", d.alignment)
        } else if under_amazonses(&d.domain) {
            "not aligned: SES's own signature, expected".into()
        } else if d.result == "pass" {
            "not aligned".into()
        } else {
            d.reason.clone().unwrap_or_default()
        };
        lines.push(format!("DKIM d={} s={} {}, {align}", d.domain, d.selector, d.result));
        if d.key_testing {
            lines.push(format!(
                "  the key of d={} s={} is in testing mode (t=y): receivers may treat its failures as if unsigned",
                d.domain, d.selector
            ));
        }
        if let Some(l) = d.body_length {
            if l > v.body_bytes {
                lines.push(format!(
                    "  the d={} signature says l={l}, more than the body's {} bytes: the body was cut after signing, or l= is wrong; verifiers that honour l= then fail it",
                    d.domain, v.body_bytes
                ));
            } else {
                lines.push(format!(
                    "  the d={} signature covers only the first {l} bytes of the body (l=): anything appended after them is unsigned",
                    d.domain
                ));
            }
        }
    }
    if v.dkim.is_empty() {
        lines.push("DKIM: the message is not signed".into());
    }
    if !v.dkim.is_empty() && v.dkim.iter().all(|d| under_amazonses(&d.domain)) {
        v.hints.push("Only a d=amazonses.com signature: Easy DKIM is not enabled or not verified for this identity, so DKIM cannot align. Publish the three CNAMEs (`ses-dmarc plan`) and check them (`ses-dmarc check`).".into());
    }
    lines.push(format!("DMARC {}: {}", format!("{:?}", v.dmarc.result).to_ascii_lowercase(), v.dmarc.reason));
    if v.dmarc.result == DmarcResult::Fail {
        lines.push(format!(
            "the policy asks the receiver to {}",
            match v.dmarc.disposition.as_str() {
                "reject" => "reject the message",
                "quarantine" => "quarantine the message (spam folder)",
                _ => "deliver it anyway (policy none), and report it",
            }
        ));
    }
    // Where the receiver's own conclusion differs from ours, with the likeliest cause.
    if let Some(r) = v.receiver.iter().find(|r| r.header == "Authentication-Results") {
        let who = r.authserv_id.clone().unwrap_or_else(|| "the receiver".into());
        let from_problem = v.problems.iter().find(|p| p.contains("From")).cloned();
        let altered =
            v.dkim.iter().any(|d| d.reason.as_deref().is_some_and(|r| r.to_ascii_lowercase().contains("body")));
        let cause = |what: &str| {
            match (&from_problem, what) {
            (Some(p), _) => format!("the message's From is not one address ({p}); receivers treat that differently"),
            (None, "dkim") if altered => "the message was changed after the receiver checked it (a forwarder, a mailing list, or a client re-encoding it)".to_string(),
            (None, "spf") => "the connection facts differ: give --ip and --mail-from as the receiver saw them".to_string(),
            _ => "DNS may have changed since delivery (records edited, keys rotated)".to_string(),
        }
        };
        if let (Some(theirs), Some(ours)) = (&r.spf, &v.spf)
            && theirs != ours.result.as_str()
        {
            v.disagreements.push(format!(
                "SPF: {who} says {theirs}, we get {} ({}); likely cause: {}",
                ours.result,
                ours.reason,
                cause("spf")
            ));
        }
        for (d, theirs) in &r.dkim {
            match v.dkim.iter().find(|x| &x.domain == d) {
                Some(ours) if &ours.result != theirs => v.disagreements.push(format!(
                    "DKIM d={d}: {who} says {theirs}, we get {}; likely cause: {}",
                    ours.result,
                    cause("dkim")
                )),
                Some(_) => {}
                None if theirs != "none" => v.disagreements.push(format!(
                    "DKIM d={d}: {who} says {theirs}, but the message holds no signature by d={d}: its DKIM-Signature header was removed or the message is not the one the receiver saw"
                )),
                None => {}
            }
        }
        let ours = format!("{:?}", v.dmarc.result).to_ascii_lowercase();
        if let Some(theirs) = &r.dmarc
            && theirs != &ours
        {
            v.disagreements
                .push(format!("DMARC: {who} says {theirs}, we get {ours}; likely cause: {}", cause("dmarc")));
        }
    }
    v.explanation = lines;
}
