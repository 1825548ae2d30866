//! Who sent the mail in a report record: Amazon SES, another known service, a forwarder,
//! or unknown; and DMARC alignment recomputed from the authentication results and the
//! published policy (never copied from the reporter's `policy_evaluated`).

use crate::aggregate::{PolicyPublished, ReportRecord};
use serde::Serialize;
use ses_dmarc_records::dmarc::{AlignmentMode, IdentifierMatch};

/// Who sent the mail a report record counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Amazon SES: a DKIM domain, the envelope or the reverse name under amazonses.com.
    AmazonSes,
    /// A service from [`KNOWN_SENDERS`].
    Known,
    /// Mail relayed by a forwarder or a list: signed by the domain (or by SES), but sent
    /// from an IP its envelope does not authorize; aligned DKIM passes when the message
    /// arrived intact, fails when it was altered on the way.
    Forwarded,
    /// None of the above.
    Unknown,
}

/// Services recognised by the domains in their DKIM signatures, envelope senders or PTR
/// names (a small table written for this project; suffix match).
pub const KNOWN_SENDERS: &[(&str, &[&str])] = &[
    ("Google", &["google.com", "googlemail.com", "1e100.net"]),
    ("Microsoft", &["outlook.com", "protection.outlook.com", "onmicrosoft.com", "hotmail.com"]),
    ("SendGrid", &["sendgrid.net", "sendgrid.com"]),
    ("Mailgun", &["mailgun.org", "mailgun.net", "mailgun.info"]),
    ("Postmark", &["mtasv.net", "postmarkapp.com", "pm.mtasv.net"]),
    ("Mailchimp", &["mcsv.net", "mcdlv.net", "mailchimp.com", "mandrillapp.com", "rsgsv.net"]),
    ("Salesforce", &["salesforce.com", "exacttarget.com", "exct.net"]),
    ("Zendesk", &["zendesk.com"]),
    ("HubSpot", &["hubspotemail.net", "hubspot.com"]),
    ("Brevo", &["sendinblue.com", "brevo.com"]),
];

/// A report record classified, with DMARC alignment recomputed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classified {
    /// Who sent it.
    pub kind: SourceKind,
    /// `Amazon SES`, a service name, `forwarded`, or the source IP for unknown sources.
    pub source: String,
    /// SPF passed for the MAIL FROM domain, aligned with the From domain.
    pub spf_aligned: bool,
    /// A DKIM signature passed, aligned with the From domain.
    pub dkim_aligned: bool,
    /// A DKIM signature passed whose `d=` is the From domain itself (what `adkim=s` needs).
    pub dkim_strict: bool,
    /// DMARC passes: SPF or DKIM aligned.
    pub dmarc_pass: bool,
    /// The reporter's policy_evaluated says otherwise than the recomputation.
    pub reporter_differs: bool,
    /// SES mail whose envelope is under amazonses.com (no custom MAIL FROM).
    pub ses_default_mail_from: bool,
}

fn within(name: &str, suffix: &str) -> bool {
    name == suffix || name.ends_with(&format!(".{suffix}"))
}

fn aligned(identifier: &str, from: &str, mode: Option<&str>) -> bool {
    let mode = if mode == Some("s") { AlignmentMode::Strict } else { AlignmentMode::Relaxed };
    IdentifierMatch::of(identifier, from, None).aligns(mode)
}

/// Classifies one record. `ptr` is the source IP's reverse name, when looked up.
pub fn classify(record: &ReportRecord, policy: &PolicyPublished, ptr: Option<&str>) -> Classified {
    let from = record.header_from.trim_end_matches('.').to_ascii_lowercase();
    let from = if from.is_empty() { policy.domain.clone() } else { from };
    let dkim_aligned =
        record.dkim.iter().any(|d| d.result == "pass" && aligned(&d.domain, &from, policy.adkim.as_deref()));
    let dkim_strict = record.dkim.iter().any(|d| d.result == "pass" && aligned(&d.domain, &from, Some("s")));
    let spf_pass: Vec<&str> = record
        .spf
        .iter()
        .filter(|s| s.result == "pass" && s.scope.as_deref().is_none_or(|sc| sc == "mfrom"))
        .map(|s| s.domain.as_str())
        .collect();
    let spf_aligned = spf_pass.iter().any(|d| aligned(d, &from, policy.aspf.as_deref()));
    let dmarc_pass = spf_aligned || dkim_aligned;
    let reporter_differs = match (record.evaluated_dkim.as_deref(), record.evaluated_spf.as_deref()) {
        (Some(d), Some(s)) => (d == "pass") != dkim_aligned || (s == "pass") != spf_aligned,
        _ => false,
    };
    let envelope =
        record.envelope_from.clone().or_else(|| record.spf.first().map(|s| s.domain.clone())).unwrap_or_default();
    let mut names: Vec<&str> = record.dkim.iter().map(|d| d.domain.as_str()).collect();
    names.push(envelope.as_str());
    if let Some(p) = ptr {
        names.push(p);
    }
    let ses = names.iter().any(|n| within(&n.to_ascii_lowercase(), "amazonses.com"));
    let ses_default_mail_from = ses && within(&envelope.to_ascii_lowercase(), "amazonses.com");
    // Ours: the From domain's organization, or SES signing and sending for it.
    let ours = |name: &str| aligned(name, &from, None) || within(&name.to_ascii_lowercase(), "amazonses.com");
    let signed_by_us = record.dkim.iter().any(|d| ours(&d.domain));
    // SPF said something about the IP for one of our envelopes: pass (our server or SES),
    // or an answer that is no verdict on the IP (a broken SPF record is not forwarding).
    let spf_ours_not_refused = record.spf.iter().any(|s| {
        ours(&s.domain) && !matches!(s.result.as_str(), "fail" | "softfail") && s.scope.as_deref() != Some("helo")
    });
    let ptr_ses = ptr.is_some_and(|p| within(&p.to_ascii_lowercase(), "amazonses.com"));
    let relayed = signed_by_us && !record.spf.is_empty() && !spf_ours_not_refused && !ptr_ses;
    let (kind, source) = if relayed {
        (SourceKind::Forwarded, "forwarded".to_string())
    } else if ses {
        (SourceKind::AmazonSes, "Amazon SES".to_string())
    } else if let Some((service, _)) = KNOWN_SENDERS
        .iter()
        .find(|(_, domains)| names.iter().any(|n| domains.iter().any(|d| within(&n.to_ascii_lowercase(), d))))
    {
        (SourceKind::Known, service.to_string())
    } else if dkim_aligned && !record.spf.iter().any(|s| s.result == "pass") {
        (SourceKind::Forwarded, "forwarded".to_string())
    } else {
        (SourceKind::Unknown, record.source_ip.map(|i| i.to_string()).unwrap_or_else(|| record.source_ip_text.clone()))
    };
    Classified {
        kind,
        source,
        spf_aligned,
        dkim_aligned,
        dkim_strict,
        dmarc_pass,
        reporter_differs,
        ses_default_mail_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{DkimAuth, SpfAuth};

    fn rec(dkim: &[(&str, &str)], spf: &[(&str, &str)], envelope: Option<&str>) -> ReportRecord {
        ReportRecord {
            source_ip: "54.240.8.1".parse().ok(),
            count: 10,
            header_from: "example.com".into(),
            envelope_from: envelope.map(str::to_string),
            evaluated_dkim: Some("pass".into()),
            evaluated_spf: Some("pass".into()),
            dkim: dkim
                .iter()
                .map(|(d, r)| DkimAuth {
                    domain: d.to_string(),
                    selector: None,
                    result: r.to_string(),
                    human_result: None,
                })
                .collect(),
            spf: spf
                .iter()
                .map(|(d, r)| SpfAuth { domain: d.to_string(), scope: Some("mfrom".into()), result: r.to_string() })
                .collect(),
            ..Default::default()
        }
    }

    fn policy(adkim: Option<&str>, aspf: Option<&str>) -> PolicyPublished {
        PolicyPublished {
            domain: "example.com".into(),
            adkim: adkim.map(str::to_string),
            aspf: aspf.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn ses_with_custom_mail_from_and_easy_dkim() {
        let r = rec(
            &[("example.com", "pass"), ("amazonses.com", "pass")],
            &[("mail.example.com", "pass")],
            Some("mail.example.com"),
        );
        let c = classify(&r, &policy(None, None), None);
        assert_eq!((c.kind, c.spf_aligned, c.dkim_aligned, c.dmarc_pass), (SourceKind::AmazonSes, true, true, true));
        assert!(!c.ses_default_mail_from && !c.reporter_differs);
        // aspf=s: the MAIL FROM subdomain does not align strictly.
        assert!(!classify(&r, &policy(None, Some("s")), None).spf_aligned);
    }

    #[test]
    fn default_ses_forwarded_known_unknown() {
        let r = rec(&[("amazonses.com", "pass")], &[("us-east-1.amazonses.com", "pass")], None);
        let c = classify(&r, &policy(None, None), None);
        assert_eq!(
            (c.kind, c.dmarc_pass, c.ses_default_mail_from, c.reporter_differs),
            (SourceKind::AmazonSes, false, true, true)
        );
        let fwd = rec(&[("example.com", "pass")], &[("list.example.org", "fail")], None);
        assert_eq!(classify(&fwd, &policy(None, None), None).kind, SourceKind::Forwarded);
        let google = rec(&[("example.com", "pass")], &[("example.com", "pass")], None);
        let c = classify(&google, &policy(None, None), Some("mail-qv1-xf4a.google.com"));
        assert_eq!((c.kind, c.source.as_str()), (SourceKind::Known, "Google"));
        let spoof = rec(&[], &[("evil.test", "pass")], None);
        let c = classify(&spoof, &policy(None, None), None);
        assert_eq!((c.kind, c.source.as_str(), c.dmarc_pass), (SourceKind::Unknown, "54.240.8.1", false));
    }

    #[test]
    fn ses_mail_relayed_by_a_forwarder_is_forwarded_not_ses() {
        // Intact: both signatures pass, SPF fails for our MAIL FROM from the forwarder's IP.
        let intact = rec(
            &[("example.com", "pass"), ("amazonses.com", "pass")],
            &[("mail.example.com", "fail")],
            Some("mail.example.com"),
        );
        let c = classify(&intact, &policy(None, None), None);
        assert_eq!(
            (c.kind, c.source.as_str(), c.dmarc_pass, c.dkim_strict),
            (SourceKind::Forwarded, "forwarded", true, true)
        );
        // Altered by a list (footer added): the signatures break; SRS envelope of the list passes.
        let altered = rec(
            &[("example.com", "fail"), ("amazonses.com", "fail")],
            &[("lists.example.org", "pass")],
            Some("lists.example.org"),
        );
        let c = classify(&altered, &policy(None, None), None);
        assert_eq!((c.kind, c.dmarc_pass), (SourceKind::Forwarded, false));
        // A broken SPF record at the MAIL FROM is no forwarding: still SES.
        let broken_spf =
            rec(&[("example.com", "pass"), ("amazonses.com", "pass")], &[("mail.example.com", "permerror")], None);
        assert_eq!(classify(&broken_spf, &policy(None, None), None).kind, SourceKind::AmazonSes);
        // An SES reverse name wins.
        let c = classify(&intact, &policy(None, None), Some("a8-1.smtp-out.us-east-1.amazonses.com"));
        assert_eq!(c.kind, SourceKind::AmazonSes);
        // Relaxed DKIM alignment only (d= a subdomain) is not strict.
        let sub = rec(&[("news.example.com", "pass")], &[("mail.example.com", "pass")], None);
        let c = classify(&sub, &policy(None, None), None);
        assert!(c.dkim_aligned && !c.dkim_strict);
    }
}
