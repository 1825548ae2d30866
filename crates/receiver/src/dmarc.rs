//! DMARC evaluation (RFC 9989 §4.7–§4.8, RFC 7489 §6.6): given the discovered policy
//! record and the SPF and DKIM results, is each identifier aligned with the From domain,
//! does DMARC pass, and what does the policy ask the receiver to do — as a receiver of
//! either generation reads the record ([`evaluate_under`]). Pure.

use crate::dmarc_discovery::{Discovered, DiscoveryBlocked};
use crate::spf::SpfResult;
use serde::Serialize;
use ses_dmarc_records::DmarcRecord;
use ses_dmarc_records::dmarc::{AlignmentMode, IdentifierMatch, Policy, Rfc};

/// The DMARC result for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResult {
    /// SPF or a DKIM signature passed with an identifier aligned with the From domain.
    Pass,
    /// Nothing passed aligned: the policy applies.
    Fail,
    /// No DMARC record: DMARC does not apply.
    None,
    /// The DMARC record could not be read (a DNS failure).
    TempError,
    /// The DMARC record is not valid, or there is no single From domain to evaluate.
    PermError,
}

/// The SPF result for the MAIL FROM identity (or HELO, for bounces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfIdentity {
    /// The SPF result.
    pub result: SpfResult,
    /// The domain SPF checked: the MAIL FROM domain, or the HELO name.
    pub domain: String,
}

/// One DKIM signature's verification result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimIdentity {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    /// Whether the signature verified.
    pub pass: bool,
}

/// How one authenticated identifier (SPF's domain, a DKIM `d=`) stands to the From domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alignment {
    /// The identifier's domain, lower case.
    pub domain: String,
    /// Whether the identifier authenticated (SPF pass, DKIM pass).
    pub authenticated: bool,
    /// Whether it counts for DMARC: authenticated, and matching under the record's mode.
    pub aligned: bool,
    /// `strict` (same name), `relaxed` (same organizational domain) or `none`.
    pub how: &'static str,
    /// The mode the record asks for.
    pub mode: AlignmentMode,
}

/// DMARC evaluated for one message: alignment of each identifier, the result, and what the
/// policy asks the receiver to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcEvaluation {
    /// The specification the receiver follows: RFC 9989 reads `t`, RFC 7489 reads `pct`.
    pub rfc: Rfc,
    /// The DMARC result.
    pub result: DmarcResult,
    /// The From header's domain, lower case.
    pub from_domain: String,
    /// The domain whose `_dmarc` record applies, when one was found.
    pub policy_domain: Option<String>,
    /// The DMARC record's text, when one was found.
    pub record: Option<String>,
    /// The policy that applies to the From domain (`p`, `sp` or `np`).
    pub policy: Option<Policy>,
    /// What the policy asks the receiver to do with this message. Under RFC 7489 with a
    /// `pct` from 1 to 99 this is what the sampled share gets; the rest gets one level
    /// weaker (`pct=0`: all failing mail gets one level weaker).
    pub disposition: Policy,
    /// RFC 9989 `t=y`: the disposition is one level weaker than the policy (always false
    /// under RFC 7489, which ignores `t`).
    pub testing: bool,
    /// RFC 7489 `pct`: the share of failing mail the policy applies to (under RFC 9989, which
    /// ignores `pct`, the record's value is still shown here for information).
    pub percent: u8,
    /// SPF's alignment, when SPF was checked.
    pub spf: Option<Alignment>,
    /// Each DKIM signature's alignment, in signature order.
    pub dkim: Vec<Alignment>,
    /// The result explained in one sentence.
    pub reason: String,
}

fn align(identifier: &str, from: &str, org: Option<&str>, mode: AlignmentMode, authenticated: bool) -> Alignment {
    let matched = IdentifierMatch::of(identifier, from, org);
    Alignment {
        domain: identifier.trim_end_matches('.').to_ascii_lowercase(),
        authenticated,
        aligned: authenticated && matched.aligns(mode),
        how: matched.as_str(),
        mode,
    }
}

/// Evaluates DMARC for a message whose From domain is `from_domain`, as an RFC 9989
/// receiver does. `from_exists` is false when the From domain does not exist (NXDOMAIN),
/// for `np`.
pub fn evaluate(
    discovery: Result<Discovered, DiscoveryBlocked>,
    from_domain: &str,
    from_exists: bool,
    spf: Option<&SpfIdentity>,
    dkim: &[DkimIdentity],
) -> DmarcEvaluation {
    evaluate_under(Rfc::Rfc9989, discovery, from_domain, from_exists, spf, dkim)
}

/// Evaluates DMARC for a message as a receiver following `rfc` reads the record: RFC 9989
/// applies `t=y` (one level weaker) and ignores `pct`; RFC 7489 applies `pct` (`pct=0`:
/// one level weaker for all failing mail) and ignores `t`, has no `np`, and ignores a
/// record with neither a valid `p` nor a `rua`.
pub fn evaluate_under(
    rfc: Rfc,
    discovery: Result<Discovered, DiscoveryBlocked>,
    from_domain: &str,
    from_exists: bool,
    spf: Option<&SpfIdentity>,
    dkim: &[DkimIdentity],
) -> DmarcEvaluation {
    let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let mut eval = DmarcEvaluation {
        rfc,
        result: DmarcResult::None,
        from_domain: from.clone(),
        policy_domain: None,
        record: None,
        policy: None,
        disposition: Policy::None,
        testing: false,
        percent: 100,
        spf: None,
        dkim: vec![],
        reason: String::new(),
    };
    let discovered = match discovery {
        Ok(d) => d,
        Err(DiscoveryBlocked::Failed { name, failure }) => {
            eval.result = DmarcResult::TempError;
            eval.reason = format!("the DMARC record could not be read: TXT {name}: {failure}");
            return eval;
        }
        Err(DiscoveryBlocked::Pending) => {
            eval.result = DmarcResult::TempError;
            eval.reason = "the DMARC record was not fetched".into();
            return eval;
        }
    };
    eval.policy_domain = discovered.policy_domain.clone();
    eval.record = discovered.record.clone();
    let Some(text) = &discovered.record else {
        eval.reason = format!("no DMARC record for {from}: DMARC does not apply");
        return eval;
    };
    let Some(record) = DmarcRecord::parse(text).value else {
        eval.result = DmarcResult::PermError;
        eval.reason = "the DMARC record is not valid".into();
        return eval;
    };
    let meaning = record.meaning(rfc);
    if !meaning.usable {
        eval.reason = format!("{}: DMARC does not apply", meaning.summary);
        return eval;
    }
    let org = Some(discovered.organizational_domain.as_str());
    eval.spf = spf.map(|s| align(&s.domain, &from, org, meaning.aspf, s.result == SpfResult::Pass));
    eval.dkim = dkim.iter().map(|d| align(&d.domain, &from, org, meaning.adkim, d.pass)).collect();
    let pass = eval.spf.as_ref().is_some_and(|a| a.aligned) || eval.dkim.iter().any(|a| a.aligned);
    let policy = if discovered.own {
        meaning.policy
    } else if from_exists {
        meaning.subdomain_policy
    } else {
        meaning.nonexistent_policy.unwrap_or(meaning.subdomain_policy)
    };
    eval.policy = Some(policy);
    eval.testing = meaning.testing;
    eval.percent = record.meaning(Rfc::Rfc7489).percent;
    let by: Vec<String> = eval
        .spf
        .iter()
        .filter(|a| a.aligned)
        .map(|a| format!("SPF {} ({})", a.domain, a.how))
        .chain(eval.dkim.iter().filter(|a| a.aligned).map(|a| format!("DKIM d={} ({})", a.domain, a.how)))
        .collect();
    if pass {
        eval.result = DmarcResult::Pass;
        eval.reason = format!("aligned through {}", by.join(" and "));
    } else {
        eval.result = DmarcResult::Fail;
        let weaker = meaning.testing || (rfc == Rfc::Rfc7489 && eval.percent == 0);
        eval.disposition = if weaker { policy.weaker() } else { policy };
        let mut reason = format!("neither SPF nor any DKIM signature passes aligned with {from}; policy {policy}");
        if meaning.testing {
            reason.push_str(&format!(", testing (t=y): {}", eval.disposition));
        }
        match (rfc, eval.percent) {
            (_, 100) => {}
            (Rfc::Rfc7489, 0) => reason.push_str(&format!(", pct=0: {}", eval.disposition)),
            (Rfc::Rfc7489, n) => {
                reason.push_str(&format!("; applied to {n}% of failing mail (pct), {} to the rest", policy.weaker()))
            }
            (Rfc::Rfc9989, n) => reason
                .push_str(&format!("; RFC 7489 receivers apply it to {n}% of failing mail (RFC 9989 ignores pct)")),
        }
        eval.reason = reason;
    }
    eval
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(record: &str, own: bool) -> Result<Discovered, DiscoveryBlocked> {
        Ok(Discovered {
            policy_domain: Some("example.com".into()),
            record: Some(record.into()),
            organizational_domain: "example.com".into(),
            own,
        })
    }

    fn spf(result: SpfResult, domain: &str) -> SpfIdentity {
        SpfIdentity { result, domain: domain.into() }
    }

    fn dkim(domain: &str, pass: bool) -> DkimIdentity {
        DkimIdentity { domain: domain.into(), selector: "s".into(), pass }
    }

    #[test]
    fn ses_with_custom_mail_from_and_easy_dkim() {
        let e = evaluate(
            disc("v=DMARC1; p=reject", true),
            "example.com",
            true,
            Some(&spf(SpfResult::Pass, "mail.example.com")),
            &[dkim("example.com", true), dkim("amazonses.com", true)],
        );
        assert_eq!(e.result, DmarcResult::Pass);
        assert_eq!(e.spf.as_ref().unwrap().how, "relaxed");
        assert_eq!(e.dkim[0].how, "strict");
        assert!(!e.dkim[1].aligned);
        assert_eq!(e.disposition, Policy::None);
    }

    #[test]
    fn default_ses_fails() {
        let e = evaluate(
            disc("v=DMARC1; p=quarantine", true),
            "example.com",
            true,
            Some(&spf(SpfResult::Pass, "us-east-1.amazonses.com")),
            &[dkim("amazonses.com", true)],
        );
        assert_eq!(e.result, DmarcResult::Fail);
        assert_eq!(e.disposition, Policy::Quarantine);
    }

    #[test]
    fn strict_alignment_and_testing() {
        let e = evaluate(
            disc("v=DMARC1; p=reject; aspf=s; t=y", true),
            "example.com",
            true,
            Some(&spf(SpfResult::Pass, "mail.example.com")),
            &[dkim("example.com", false)],
        );
        assert_eq!(e.result, DmarcResult::Fail);
        assert!(!e.spf.as_ref().unwrap().aligned);
        assert_eq!(e.disposition, Policy::Quarantine, "t=y: one level weaker");
        let e = evaluate(
            disc("v=DMARC1; p=reject; adkim=s", true),
            "example.com",
            true,
            None,
            &[dkim("sub.example.com", true)],
        );
        assert_eq!(e.result, DmarcResult::Fail);
        assert_eq!(e.dkim[0].how, "relaxed");
    }

    #[test]
    fn each_generation_reads_its_own_tag() {
        let failing = |record: &str, rfc: Rfc| {
            let e = evaluate_under(
                rfc,
                disc(record, true),
                "example.com",
                true,
                Some(&spf(SpfResult::Pass, "spoofer.test")),
                &[],
            );
            assert_eq!((e.result, e.rfc), (DmarcResult::Fail, rfc), "{record}");
            e.disposition
        };
        use Policy::{None as N, Quarantine as Q, Reject as R};
        use Rfc::{Rfc7489 as Old, Rfc9989 as New};
        for (record, old, new) in [
            // t=y alone: RFC 7489 ignores it and applies the policy in full.
            ("v=DMARC1; p=quarantine; t=y", Q, N),
            // pct=0 alone: RFC 9989 ignores it and applies the policy in full.
            ("v=DMARC1; p=quarantine; pct=0", N, Q),
            // Both tags: each generation reads its own, and they agree.
            ("v=DMARC1; p=quarantine; pct=0; t=y", N, N),
            ("v=DMARC1; p=reject; pct=0; t=y", Q, Q),
            ("v=DMARC1; p=quarantine", Q, Q),
            ("v=DMARC1; p=reject", R, R),
            ("v=DMARC1; p=none; pct=0; t=y", N, N),
        ] {
            assert_eq!((failing(record, Old), failing(record, New)), (old, new), "{record}");
        }
        let e = evaluate_under(Old, disc("v=DMARC1; p=quarantine; pct=25", true), "example.com", true, None, &[]);
        assert_eq!((e.disposition, e.percent), (Q, 25));
        assert!(e.reason.contains("applied to 25% of failing mail (pct), none to the rest"), "{}", e.reason);
        // Without p and rua, an RFC 7489 receiver has no policy at all.
        let e = evaluate_under(Old, disc("v=DMARC1", true), "example.com", true, None, &[]);
        assert_eq!(e.result, DmarcResult::None);
        assert_eq!(
            evaluate_under(New, disc("v=DMARC1", true), "example.com", true, None, &[]).result,
            DmarcResult::Fail
        );
    }

    #[test]
    fn subdomain_and_nonexistent_policies() {
        let r = "v=DMARC1; p=reject; sp=quarantine; np=none";
        let e = evaluate(disc(r, false), "news.example.com", true, None, &[]);
        assert_eq!((e.result, e.disposition), (DmarcResult::Fail, Policy::Quarantine));
        let e = evaluate(disc(r, false), "nope.example.com", false, None, &[]);
        assert_eq!(e.disposition, Policy::None);
        let e = evaluate(
            Err(DiscoveryBlocked::Failed {
                name: "_dmarc.example.com".into(),
                failure: ses_dmarc_dns::Failure::ServFail,
            }),
            "example.com",
            true,
            None,
            &[],
        );
        assert_eq!(e.result, DmarcResult::TempError);
        let none = evaluate(
            Ok(Discovered {
                policy_domain: None,
                record: None,
                organizational_domain: "example.com".into(),
                own: false,
            }),
            "example.com",
            true,
            None,
            &[],
        );
        assert_eq!(none.result, DmarcResult::None);
    }
}
