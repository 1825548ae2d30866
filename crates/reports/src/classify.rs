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

/// How a sender, or a group of source addresses, was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recognised {
    /// A DKIM signature's `d=` under one of the sender's domains.
    Dkim,
    /// The envelope sender (the SPF / MAIL FROM domain) under one of the sender's domains.
    Envelope,
    /// The IP's forward-confirmed reverse name under one of the sender's domains (`--ptr`).
    Ptr,
    /// The IP's network owner (its autonomous system) in the offline table (`--asn-db`).
    Asn,
    /// The domain's own signature on mail from servers its envelope does not authorize.
    Forwarding,
    /// The organizational domain of the IP's forward-confirmed reverse name (`--ptr`).
    PtrDomain,
    /// Nothing but the address: its /24 (IPv4) or /48 (IPv6).
    Network,
}

impl Recognised {
    /// A few words for people: `DKIM`, `MAIL FROM`, `PTR`, ...
    pub fn label(self) -> &'static str {
        match self {
            Recognised::Dkim => "DKIM",
            Recognised::Envelope => "MAIL FROM",
            Recognised::Ptr => "PTR",
            Recognised::Asn => "ASN",
            Recognised::Forwarding => "your signature, their servers",
            Recognised::PtrDomain => "PTR domain",
            Recognised::Network => "network",
        }
    }
}

/// A sending service, and the names that give it away (each matched as a suffix: the name
/// itself or any name under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSender {
    /// The name summaries use (the `source` of its lines; stable).
    pub name: &'static str,
    /// What it is, for people.
    pub service: &'static str,
    /// Domains its DKIM signatures use as `d=` when it signs as itself.
    pub dkim: &'static [&'static str],
    /// Domains of its envelope senders (the SPF / MAIL FROM domain) when it bounces to itself.
    pub envelope: &'static [&'static str],
    /// Domains its outgoing servers' reverse names (PTR) end in.
    pub ptr: &'static [&'static str],
    /// Its autonomous systems, used only to group addresses by the offline network table
    /// (`--asn-db`): never to decide whose the mail is, since the same networks carry
    /// other customers' servers too.
    pub asn: &'static [u32],
}

/// Amazon SES: recognised by the DKIM signature it adds (`d=amazonses.com`), its default
/// envelope (`*.amazonses.com`) and its servers' names (`*.smtp-out.*.amazonses.com`). Its
/// networks are Amazon's, shared with everything else Amazon runs: no ASN.
pub const AMAZON_SES: KnownSender = KnownSender {
    name: "Amazon SES",
    service: "Amazon Simple Email Service",
    dkim: &["amazonses.com"],
    envelope: &["amazonses.com"],
    ptr: &["amazonses.com"],
    asn: &[],
};

/// Services other than SES, recognised by the domains in their DKIM signatures, envelope
/// senders or PTR names (a table written for this project from the services' own
/// documentation of their sending domains; suffix match, first entry that matches wins).
pub const KNOWN_SENDERS: &[KnownSender] = &[
    KnownSender {
        name: "Google",
        service: "Google Workspace and Gmail",
        dkim: &["google.com", "gmail.com", "googlemail.com", "gappssmtp.com"],
        envelope: &["google.com", "googlemail.com", "gmail.com"],
        ptr: &["google.com", "googlemail.com", "1e100.net"],
        asn: &[15169],
    },
    KnownSender {
        name: "Microsoft",
        service: "Microsoft 365, Exchange Online and Outlook.com",
        dkim: &["onmicrosoft.com", "outlook.com", "hotmail.com"],
        envelope: &["onmicrosoft.com", "outlook.com", "hotmail.com"],
        ptr: &["outlook.com", "protection.outlook.com", "hotmail.com"],
        asn: &[8075],
    },
    KnownSender {
        name: "Yahoo",
        service: "Yahoo Mail and AOL",
        dkim: &["yahoo.com", "aol.com"],
        envelope: &["yahoo.com", "aol.com"],
        ptr: &["yahoo.com", "yahoodns.net", "aol.com"],
        asn: &[],
    },
    KnownSender {
        name: "SendGrid",
        service: "Twilio SendGrid",
        dkim: &["sendgrid.net", "sendgrid.com"],
        envelope: &["sendgrid.net"],
        ptr: &["sendgrid.net"],
        asn: &[11377],
    },
    KnownSender {
        name: "Mailgun",
        service: "Mailgun",
        dkim: &["mailgun.org", "mailgun.net", "mailgun.info"],
        envelope: &["mailgun.org", "mailgun.net", "mailgun.info"],
        ptr: &["mailgun.net", "mailgun.org", "mailgun.info"],
        asn: &[],
    },
    KnownSender {
        name: "Postmark",
        service: "Postmark",
        dkim: &["mtasv.net", "postmarkapp.com"],
        envelope: &["mtasv.net", "postmarkapp.com"],
        ptr: &["mtasv.net"],
        asn: &[],
    },
    KnownSender {
        name: "SparkPost",
        service: "SparkPost (Bird)",
        dkim: &["sparkpostmail.com", "sparkpost.com"],
        envelope: &["sparkpostmail.com"],
        ptr: &["sparkpostmail.com"],
        asn: &[],
    },
    KnownSender {
        name: "Mailchimp",
        service: "Mailchimp and Mandrill",
        dkim: &["mcsv.net", "mcdlv.net", "mailchimpapp.net", "mailchimp.com", "mandrillapp.com", "rsgsv.net"],
        envelope: &["mcsv.net", "mcdlv.net", "rsgsv.net", "mandrillapp.com", "mailchimp.com"],
        ptr: &["mcsv.net", "mcdlv.net", "rsgsv.net", "mandrillapp.com"],
        asn: &[],
    },
    KnownSender {
        name: "Mailjet",
        service: "Mailjet",
        dkim: &["mailjet.com"],
        envelope: &["mailjet.com"],
        ptr: &["mailjet.com"],
        asn: &[],
    },
    KnownSender {
        name: "Brevo",
        service: "Brevo (Sendinblue)",
        dkim: &["sendinblue.com", "brevo.com"],
        envelope: &["sendinblue.com", "brevo.com"],
        ptr: &["sendinblue.com", "brevo.com"],
        asn: &[],
    },
    KnownSender {
        name: "Salesforce",
        service: "Salesforce and Marketing Cloud (ExactTarget)",
        dkim: &["salesforce.com", "exacttarget.com", "exct.net"],
        envelope: &["salesforce.com", "exacttarget.com", "exct.net"],
        ptr: &["salesforce.com", "exacttarget.com", "exct.net"],
        asn: &[],
    },
    KnownSender {
        name: "HubSpot",
        service: "HubSpot",
        dkim: &["hubspotemail.net", "hubspot.com"],
        envelope: &["hubspotemail.net", "hubspot.com"],
        ptr: &["hubspotemail.net", "hubspot.com"],
        asn: &[],
    },
    KnownSender {
        name: "Zendesk",
        service: "Zendesk",
        dkim: &["zendesk.com"],
        envelope: &["zendesk.com"],
        ptr: &["zendesk.com"],
        asn: &[],
    },
    KnownSender {
        name: "Freshdesk",
        service: "Freshdesk and Freshworks",
        dkim: &["freshdesk.com", "freshemail.io"],
        envelope: &["freshdesk.com", "freshemail.io"],
        ptr: &["freshdesk.com", "freshemail.io"],
        asn: &[],
    },
    KnownSender {
        name: "Constant Contact",
        service: "Constant Contact",
        dkim: &["constantcontact.com", "ccsend.com"],
        envelope: &["constantcontact.com", "ccsend.com"],
        ptr: &["constantcontact.com", "ccsend.com"],
        asn: &[],
    },
    KnownSender {
        name: "Campaign Monitor",
        service: "Campaign Monitor",
        dkim: &["createsend.com", "cmail19.com", "cmail20.com"],
        envelope: &["createsend.com", "cmail19.com", "cmail20.com"],
        ptr: &["createsend.com", "cmail19.com", "cmail20.com"],
        asn: &[],
    },
    KnownSender {
        name: "Zoho",
        service: "Zoho Mail and Zoho Campaigns",
        dkim: &["zoho.com", "zohomail.com", "zcsend.net"],
        envelope: &["zoho.com", "zohomail.com", "zcsend.net"],
        ptr: &["zoho.com", "zohomail.com", "zcsend.net"],
        asn: &[],
    },
    KnownSender {
        name: "Fastmail",
        service: "Fastmail",
        dkim: &["messagingengine.com", "fastmail.com"],
        envelope: &["messagingengine.com", "fastmail.com"],
        ptr: &["messagingengine.com"],
        asn: &[],
    },
];

/// The known sender (SES included) whose networks include `asn`.
pub fn sender_by_asn(asn: u32) -> Option<&'static KnownSender> {
    std::iter::once(&AMAZON_SES).chain(KNOWN_SENDERS).find(|s| s.asn.contains(&asn))
}

/// The known sender (SES included) called `name` (its `source` in summaries).
pub fn sender_named(name: &str) -> Option<&'static KnownSender> {
    std::iter::once(&AMAZON_SES).chain(KNOWN_SENDERS).find(|s| s.name == name)
}

/// Why SES mail (or any mail) is not SPF-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpfProblem {
    /// The envelope is SES's default, under amazonses.com: no custom MAIL FROM.
    DefaultMailFrom,
    /// SPF passed for a MAIL FROM under the From domain, but `aspf=s` asks for the From
    /// domain itself.
    AspfStrict,
    /// The MAIL FROM is under the From domain, but SPF did not pass for it.
    MailFromSpfFailed,
    /// The MAIL FROM is another organization's domain.
    MailFromOtherDomain,
    /// The report gives no SPF result.
    NoSpfResult,
}

impl SpfProblem {
    /// The problem in words.
    pub fn explain(self) -> &'static str {
        match self {
            SpfProblem::DefaultMailFrom => "sent with the default amazonses.com MAIL FROM (no custom MAIL FROM)",
            SpfProblem::AspfStrict => "aspf=s, and the MAIL FROM is a subdomain",
            SpfProblem::MailFromSpfFailed => "SPF did not pass for the custom MAIL FROM",
            SpfProblem::MailFromOtherDomain => "the MAIL FROM is another domain",
            SpfProblem::NoSpfResult => "no SPF result reported",
        }
    }
}

/// Why mail is not DKIM-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkimProblem {
    /// No signature for the From domain at all (SES: only `d=amazonses.com`, Easy DKIM not
    /// set up or not yet verified).
    NoDomainSignature,
    /// A signature for the From domain, failing (a key not published, the message altered).
    DomainSignatureFailed,
    /// A passing signature under the From domain, but `adkim=s` asks for the domain itself.
    AdkimStrict,
}

impl DkimProblem {
    /// The problem in words.
    pub fn explain(self) -> &'static str {
        match self {
            DkimProblem::NoDomainSignature => "no DKIM signature for the From domain (Easy DKIM not in use)",
            DkimProblem::DomainSignatureFailed => "the DKIM signature for the From domain failed",
            DkimProblem::AdkimStrict => "adkim=s, and the signature's d= is a subdomain",
        }
    }
}

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
    /// How the sender was recognised: for SES and known services, the name that gave it
    /// away; [`Recognised::Forwarding`] for forwarded mail; `None` for unknown sources.
    pub recognised_by: Option<Recognised>,
    /// Why SPF is not aligned (`None` when it is).
    pub spf_problem: Option<SpfProblem>,
    /// Why DKIM is not aligned (`None` when it is).
    pub dkim_problem: Option<DkimProblem>,
}

/// `name` is `suffix` or a name under it (no allocation: called for every record).
fn within(name: &str, suffix: &str) -> bool {
    name == suffix
        || (name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
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
    let lower = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
    let dkim_names: Vec<String> = record.dkim.iter().map(|d| lower(&d.domain)).collect();
    let envelope_name = lower(&envelope);
    let ptr_name = ptr.map(lower);
    // The first way a sender's names show in the record: its DKIM d=, its envelope, its PTR.
    let recognise = |sender: &KnownSender| -> Option<Recognised> {
        let any = |names: &[&str], name: &str| names.iter().any(|d| within(name, d));
        if dkim_names.iter().any(|n| any(sender.dkim, n)) {
            Some(Recognised::Dkim)
        } else if !envelope_name.is_empty() && any(sender.envelope, &envelope_name) {
            Some(Recognised::Envelope)
        } else if ptr_name.as_deref().is_some_and(|p| any(sender.ptr, p)) {
            Some(Recognised::Ptr)
        } else {
            None
        }
    };
    let ses_by = recognise(&AMAZON_SES);
    let ses = ses_by.is_some();
    let ses_default_mail_from = ses && within(&envelope_name, "amazonses.com");
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
    let known = || KNOWN_SENDERS.iter().find_map(|s| recognise(s).map(|by| (s, by)));
    let (kind, source, recognised_by) = if relayed {
        (SourceKind::Forwarded, "forwarded".to_string(), Some(Recognised::Forwarding))
    } else if ses {
        (SourceKind::AmazonSes, AMAZON_SES.name.to_string(), ses_by)
    } else if let Some((service, by)) = known() {
        (SourceKind::Known, service.name.to_string(), Some(by))
    } else if dkim_aligned && !record.spf.iter().any(|s| s.result == "pass") {
        (SourceKind::Forwarded, "forwarded".to_string(), Some(Recognised::Forwarding))
    } else {
        let ip = record.source_ip.map(|i| i.to_string()).unwrap_or_else(|| record.source_ip_text.clone());
        (SourceKind::Unknown, ip, None)
    };
    let spf_problem = (!spf_aligned).then(|| {
        if within(&envelope_name, "amazonses.com") {
            return SpfProblem::DefaultMailFrom;
        }
        if record.spf.is_empty() {
            return SpfProblem::NoSpfResult;
        }
        let under_from: Vec<&crate::aggregate::SpfAuth> = record
            .spf
            .iter()
            .filter(|s| s.scope.as_deref().is_none_or(|sc| sc == "mfrom") && aligned(&s.domain, &from, None))
            .collect();
        if under_from.iter().any(|s| s.result == "pass") {
            SpfProblem::AspfStrict
        } else if !under_from.is_empty() {
            SpfProblem::MailFromSpfFailed
        } else {
            SpfProblem::MailFromOtherDomain
        }
    });
    let dkim_problem = (!dkim_aligned).then(|| {
        let under_from: Vec<&crate::aggregate::DkimAuth> =
            record.dkim.iter().filter(|d| aligned(&d.domain, &from, None)).collect();
        if under_from.is_empty() {
            DkimProblem::NoDomainSignature
        } else if under_from.iter().any(|d| d.result == "pass") {
            DkimProblem::AdkimStrict
        } else {
            DkimProblem::DomainSignatureFailed
        }
    });
    Classified {
        kind,
        source,
        spf_aligned,
        dkim_aligned,
        dkim_strict,
        dmarc_pass,
        reporter_differs,
        ses_default_mail_from,
        recognised_by,
        spf_problem,
        dkim_problem,
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

    #[test]
    fn known_senders_are_recognised_by_dkim_envelope_or_ptr() {
        let c = classify(
            &rec(&[("sendgrid.net", "pass")], &[("em1.example.org", "pass")], None),
            &policy(None, None),
            None,
        );
        assert_eq!(
            (c.kind, c.source.as_str(), c.recognised_by),
            (SourceKind::Known, "SendGrid", Some(Recognised::Dkim))
        );
        let c = classify(&rec(&[], &[("pm.mtasv.net", "pass")], Some("pm.mtasv.net")), &policy(None, None), None);
        assert_eq!((c.source.as_str(), c.recognised_by), ("Postmark", Some(Recognised::Envelope)));
        let own = rec(&[("example.com", "pass")], &[("example.com", "pass")], None);
        let c = classify(&own, &policy(None, None), Some("mta-12.sparkpostmail.com."));
        assert_eq!((c.source.as_str(), c.recognised_by), ("SparkPost", Some(Recognised::Ptr)));
        let c = classify(&own, &policy(None, None), Some("mail-eopbgr1.outbound.protection.outlook.com"));
        assert_eq!(c.source, "Microsoft");
        let c = classify(&rec(&[("example.com.20230601.gappssmtp.com", "pass")], &[], None), &policy(None, None), None);
        assert_eq!(c.source, "Google", "Google Workspace's default signature");
        // A name that only ends like a service's is not it.
        let c = classify(&rec(&[("notsendgrid.net", "pass")], &[], None), &policy(None, None), None);
        assert_eq!(c.kind, SourceKind::Unknown);
        let c = classify(&rec(&[("amazonses.com", "pass")], &[], None), &policy(None, None), None);
        assert_eq!((c.kind, c.recognised_by), (SourceKind::AmazonSes, Some(Recognised::Dkim)));
        let c = classify(&own, &policy(None, None), Some("a8-1.smtp-out.us-east-1.amazonses.com"));
        assert_eq!((c.kind, c.recognised_by), (SourceKind::AmazonSes, Some(Recognised::Ptr)));
        // The table: names unique, every entry recognisable, ASNs only where they name the sender.
        let mut names: Vec<&str> = KNOWN_SENDERS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KNOWN_SENDERS.len());
        assert!(KNOWN_SENDERS.iter().all(|s| !s.dkim.is_empty() && !s.envelope.is_empty() && !s.ptr.is_empty()));
        assert_eq!(sender_by_asn(15169).map(|s| s.name), Some("Google"));
        assert_eq!(sender_by_asn(8075).map(|s| s.name), Some("Microsoft"));
        assert_eq!(sender_by_asn(16509), None, "Amazon's network is not SES");
        assert_eq!(sender_named("Amazon SES").map(|s| s.service), Some("Amazon Simple Email Service"));
    }

    #[test]
    fn why_mail_does_not_align() {
        let p = policy(None, None);
        let default_ses = rec(&[("amazonses.com", "pass")], &[("us-east-1.amazonses.com", "pass")], None);
        let c = classify(&default_ses, &p, None);
        assert_eq!(
            (c.spf_problem, c.dkim_problem),
            (Some(SpfProblem::DefaultMailFrom), Some(DkimProblem::NoDomainSignature))
        );
        let aligned = rec(&[("example.com", "pass")], &[("mail.example.com", "pass")], None);
        assert_eq!(classify(&aligned, &p, None).spf_problem, None);
        let c = classify(&aligned, &policy(Some("s"), Some("s")), None);
        assert_eq!((c.spf_problem, c.dkim_problem), (Some(SpfProblem::AspfStrict), None));
        let sub = rec(&[("news.example.com", "pass")], &[("mail.example.com", "fail")], None);
        let c = classify(&sub, &policy(Some("s"), None), None);
        assert_eq!(
            (c.spf_problem, c.dkim_problem),
            (Some(SpfProblem::MailFromSpfFailed), Some(DkimProblem::AdkimStrict))
        );
        let broken = rec(&[("example.com", "fail")], &[("bounce.other.test", "pass")], None);
        let c = classify(&broken, &p, None);
        assert_eq!(
            (c.spf_problem, c.dkim_problem),
            (Some(SpfProblem::MailFromOtherDomain), Some(DkimProblem::DomainSignatureFailed))
        );
        let c = classify(&rec(&[], &[], None), &p, None);
        assert_eq!(c.spf_problem, Some(SpfProblem::NoSpfResult));
    }
}
