//! A DNS failure on any single name a check queries never becomes a "missing" or other
//! error finding: the affected checks are unknown, name the failed query, and the
//! verdict is never a false "fails".

mod common;

use ses_dmarc_audit::{Expectations, FindingSeverity, check_domain};
use ses_dmarc_dns::StubClient;
use ses_dmarc_dns::testing::Fault;
use std::time::Duration;

fn expectations() -> Expectations {
    Expectations {
        regions: vec!["us-east-1".into()],
        mail_from: Some("mail".into()),
        dkim_tokens: vec!["tokenone".into(), "tokentwo".into(), "tokenthree".into()],
        selectors: vec![],
    }
}

fn names_queried(domain: &str, client: &StubClient, rt: &tokio::runtime::Runtime) -> Vec<String> {
    let report = rt.block_on(check_domain(client, domain, expectations()));
    let mut names: Vec<String> = report
        .snapshot
        .answers
        .keys()
        .map(|k| k.rsplit_once(' ').map(|(n, _)| n.to_string()).unwrap_or_default())
        .collect();
    names.dedup();
    names
}

fn run_faults(domain: &str, fault: Fault, timeout: Duration) {
    let server = common::start_server();
    let client = StubClient::new(vec![server.addr()], timeout, 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let names = names_queried(domain, &client, &rt);
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        server.clear_faults();
        server.set_fault(name, fault);
        let report = rt.block_on(check_domain(&client, domain, expectations()));
        let errors: Vec<String> = report
            .judgement
            .findings
            .iter()
            .filter(|f| f.severity == FindingSeverity::Error || f.severity == FindingSeverity::Warning)
            .map(|f| format!("{} {}: {}", f.code, f.name, f.message))
            .collect();
        assert!(errors.is_empty(), "{fault:?} on {name} gave: {errors:#?}");
        let unknown: Vec<_> =
            report.judgement.findings.iter().filter(|f| f.severity == FindingSeverity::Unknown).collect();
        assert!(
            unknown.iter().any(|f| f.code == "dns-lookup-failed" && f.message.contains(name.as_str())),
            "{fault:?} on {name}: no unknown finding names it: {:#?}",
            report.judgement.findings
        );
        assert!(report.has_unknown() && !report.has_errors(), "exit code 3 for {name}");
        assert_ne!(report.judgement.verdict.ses_mail_passes_dmarc, Some(false), "{fault:?} on {name}");
    }
}

#[test]
fn servfail_on_any_single_name_is_unknown_never_missing() {
    run_faults("correct.com", Fault::ServFail, Duration::from_secs(2));
    // Also the external report-destination authorization and a DMARC record behind a CNAME.
    run_faults("authorized.com", Fault::ServFail, Duration::from_secs(2));
    run_faults("dmarc-via-cname.com", Fault::ServFail, Duration::from_secs(2));
}

#[test]
fn refused_on_any_single_name_is_unknown_never_missing() {
    run_faults("correct.com", Fault::Refused, Duration::from_secs(2));
}

#[test]
fn timeout_on_any_single_name_is_unknown_never_missing() {
    run_faults("correct.com", Fault::Drop, Duration::from_millis(150));
}

#[test]
fn truncated_udp_answers_are_retried_over_tcp() {
    let server = common::start_server();
    let client = StubClient::new(vec![server.addr()], Duration::from_secs(2), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for name in names_queried("correct.com", &client, &rt) {
        server.set_fault(&name, Fault::Truncate);
    }
    let report = rt.block_on(check_domain(&client, "correct.com", expectations()));
    assert_eq!(report.judgement.verdict.ses_mail_passes_dmarc, Some(true));
    assert!(!report.has_unknown());
}
