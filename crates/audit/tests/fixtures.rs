//! One fixture zone per pitfall and per finding code (tests/fixtures/zones), served by a
//! real authoritative DNS server on loopback and checked through the stub client. The
//! findings of each are snapshot-tested (tests/snapshots), and each case must also show
//! the code it exists for.

mod common;

use common::start_server;
use ses_dmarc_audit::{DomainReport, Expectations, FindingSeverity, check_domain};
use ses_dmarc_dns::StubClient;
use std::collections::BTreeSet;
use std::time::Duration;

fn standard() -> Expectations {
    Expectations {
        regions: vec!["us-east-1".into()],
        mail_from: Some("mail".into()),
        dkim_tokens: vec!["tokenone".into(), "tokentwo".into(), "tokenthree".into()],
        selectors: vec![],
    }
}

/// (case, the code it exists for, expectations)
fn cases() -> Vec<(&'static str, Option<&'static str>, Expectations)> {
    let std = standard;
    let with = |f: &dyn Fn(&mut Expectations)| {
        let mut e = standard();
        f(&mut e);
        e
    };
    let tokens = |t: [&str; 3]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        ("correct", None, std()),
        ("correct-variants", None, std()),
        ("mx-missing", Some("mail-from-mx-missing"), std()),
        ("mx-multiple", Some("mail-from-mx-multiple"), std()),
        ("mx-not-ses", Some("mail-from-mx-not-ses"), std()),
        ("mx-unknown-region", Some("mail-from-mx-unknown-region"), std()),
        ("mx-other-region", Some("mail-from-mx-other-region"), std()),
        ("mf-spf-missing", Some("mail-from-spf-missing"), std()),
        ("mf-spf-multiple", Some("mail-from-spf-multiple"), std()),
        ("mf-spf-no-ses", Some("mail-from-spf-no-ses"), std()),
        ("mf-cname", Some("mail-from-cname-conflict"), std()),
        ("mf-not-subdomain", Some("mail-from-not-subdomain"), with(&|e| e.mail_from = Some("bounce.other.com".into()))),
        ("mf-is-domain", Some("mail-from-is-from-domain"), with(&|e| e.mail_from = Some("mf-is-domain.com".into()))),
        ("dkim-missing", Some("dkim-cname-missing"), std()),
        ("dkim-doubled", Some("dkim-cname-wrong-target"), std()),
        ("dkim-region", Some("dkim-cname-wrong-target"), with(&|e| e.regions = vec!["eu-south-1".into()])),
        ("dkim-txt-copy", Some("dkim-cname-missing"), std()),
        (
            "dkim-invalid",
            Some("dkim-key-invalid"),
            with(&|e| e.dkim_tokens = tokens(["garbage", "tokentwo", "tokenthree"])),
        ),
        ("dkim-weak", Some("dkim-key-weak"), with(&|e| e.dkim_tokens = tokens(["weak512", "short1024", "tokenthree"]))),
        (
            "dkim-revoked",
            Some("dkim-key-revoked"),
            with(&|e| e.dkim_tokens = tokens(["revoked", "tokentwo", "tokenthree"])),
        ),
        ("dmarc-missing", Some("dmarc-missing"), std()),
        ("dmarc-multiple", Some("dmarc-multiple"), std()),
        ("dmarc-syntax", Some("dmarc-syntax"), std()),
        ("dmarc-no-rua", Some("dmarc-no-rua"), std()),
        ("dmarc-rua-invalid", Some("dmarc-rua-invalid"), std()),
        ("dmarc-unauthorized", Some("dmarc-rua-unauthorized"), std()),
        ("authorized", None, std()),
        ("dmarc-aspf-strict", Some("dmarc-aspf-strict-ses"), std()),
        ("dmarc-obsolete", Some("dmarc-obsolete-tag"), std()),
        ("dmarc-sp-weaker", Some("dmarc-subdomain-policy-weaker"), std()),
        ("dmarc-quoted", Some("txt-quoted-value"), std()),
        ("dmarc-via-cname", None, std()),
        ("apex-spf-multiple", Some("spf-multiple"), std()),
        ("apex-spf-syntax", Some("spf-syntax"), std()),
        ("apex-spf-lookups", Some("spf-too-many-lookups"), std()),
        ("apex-spf-void", Some("spf-void-lookups"), std()),
        ("apex-spf-include-missing", Some("spf-include-missing"), std()),
        ("apex-spf-permissive", Some("spf-permissive-all"), std()),
        ("apex-spf-permissive", Some("spf-ptr"), std()),
        ("apex-ses-include", Some("spf-apex-ses-include-unaligned"), std()),
        ("apex-spf-quoted", Some("txt-quoted-value"), std()),
        ("no-mail-from", Some("mail-from-mx-missing"), std()),
        ("correct", Some("dmarc-policy-none"), std()),
        ("correct", Some("mail-from-not-checked"), Expectations::default()),
        ("correct", Some("dkim-selector-missing"), with(&|e| e.selectors = vec!["nosuchselector".into()])),
        ("a.shop.split", Some("dmarc-inherited"), std()),
        ("a.shop.split", Some("dmarc-discovery-differs"), std()),
        ("lint", Some("dmarc-lint"), std()),
        ("lint", Some("spf-lint"), std()),
        ("lint", Some("record-note"), std()),
        ("apex-spf-none", Some("spf-missing"), std()),
        ("no-such-domain", Some("domain-not-found"), std()),
        ("dkim-region", Some("region-assumed"), with(&|e| e.regions.clear())),
        (
            "byodkim",
            None,
            with(&|e| {
                e.dkim_tokens.clear();
                e.selectors = vec!["s2026".into()];
            }),
        ),
    ]
}

fn render(r: &DomainReport) -> String {
    let v = &r.judgement.verdict;
    let mut out = format!(
        "verdict: passes={:?} spf_aligned={:?} dkim_aligned={:?} policy={:?}\nreason: {}\n",
        v.ses_mail_passes_dmarc, v.spf_aligned, v.dkim_aligned, v.policy, v.reason
    );
    for f in &r.judgement.findings {
        out.push_str(&format!("{} {} {}: {}\n", f.severity.as_str(), f.code, f.name, f.message));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("  fix: {fix}\n"));
        }
    }
    out
}

#[test]
fn every_fixture_gives_its_findings() {
    let server = start_server();
    let client = StubClient::new(vec![server.addr()], Duration::from_secs(2), 2).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut seen_codes = BTreeSet::new();
    let mut snapshotted = BTreeSet::new();
    for (case, code, expectations) in cases() {
        let domain = format!("{case}.com");
        let no_expectations = expectations == Expectations::default();
        let report = rt.block_on(check_domain(&client, &domain, expectations));
        let codes: BTreeSet<&str> = report.judgement.findings.iter().map(|f| f.code).collect();
        assert!(!codes.contains("dns-lookup-failed"), "{case}: {}", render(&report));
        match code {
            Some(c) => assert!(codes.contains(c), "{case} should report {c}:\n{}", render(&report)),
            None => {
                let bad: Vec<_> = report
                    .judgement
                    .findings
                    .iter()
                    .filter(|f| matches!(f.severity, FindingSeverity::Error | FindingSeverity::Warning))
                    .collect();
                assert!(bad.is_empty(), "{case} should be clean:\n{}", render(&report));
                assert_eq!(report.judgement.verdict.ses_mail_passes_dmarc, Some(true), "{case}");
            }
        }
        let no_fix: Vec<&str> = report
            .judgement
            .findings
            .iter()
            .filter(|f| matches!(f.severity, FindingSeverity::Error | FindingSeverity::Warning) && f.fix.is_none())
            .map(|f| f.code)
            .collect();
        assert!(no_fix.is_empty(), "{case}: error and warning findings without a fix: {no_fix:?}");
        seen_codes.extend(codes.iter().map(|c| c.to_string()));
        let name = if no_expectations { format!("{case}-no-expectations") } else { case.to_string() };
        if snapshotted.insert(name.clone()) {
            insta::assert_snapshot!(name, render(&report));
        }
    }
    let unproduced: Vec<&str> = ses_dmarc_audit::FINDINGS
        .iter()
        .map(|f| f.code)
        .filter(|c| *c != "dns-lookup-failed") // the fault tests produce it
        .filter(|c| !seen_codes.contains(*c))
        .collect();
    assert!(unproduced.is_empty(), "no fixture produces {unproduced:?}");
}
