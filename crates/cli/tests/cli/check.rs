//! `ses-dmarc check` and `ses-dmarc spf` end to end: the binary against the in-process
//! authoritative server over real UDP/TCP on loopback.

use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::{Fault, TestServer};
use std::io::Write;
use std::time::{Duration, Instant};

fn server() -> TestServer {
    TestServer::start_zone_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones"),
        0,
    )
    .unwrap()
}

const SES: [&str; 10] = [
    "--region",
    "us-east-1",
    "--mail-from",
    "mail",
    "--dkim-token",
    "tokenone",
    "--dkim-token",
    "tokentwo",
    "--dkim-token",
    "tokenthree",
];

fn check(server: &TestServer, extra: &[&str]) -> std::process::Output {
    let ns = server.addr().to_string();
    let mut args = vec!["check", "--nameserver", &ns, "--timeout", "1"];
    args.extend(SES);
    args.extend(extra);
    ses_dmarc(&args)
}

#[test]
fn correct_domain_passes_with_exit_0() {
    let s = server();
    let o = check(&s, &["correct.com"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("SES mail passes DMARC: yes"), "{out}");
    assert!(out.contains("✓ mail.correct.com: MX 10 feedback-smtp.us-east-1.amazonses.com"));
}

#[test]
fn json_has_the_contract_fields_and_exit_1_on_errors() {
    let s = server();
    let o = check(&s, &["mx-missing.com", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["domain"], "mx-missing.com");
    assert_eq!(v["verdict"]["ses_mail_passes_dmarc"], true);
    assert_eq!(v["verdict"]["spf_aligned"], false);
    assert_eq!(v["verdict"]["dkim_aligned"], true);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "mail-from-mx-missing").unwrap();
    assert_eq!(f["severity"], "error");
    assert_eq!(f["name"], "mail.mx-missing.com");
    assert!(f["message"].as_str().unwrap().contains("no MX"));
    assert_eq!(f["fix"], "mail.mx-missing.com. MX 10 feedback-smtp.us-east-1.amazonses.com.");
    assert!(v["snapshot"]["answers"]["mail.mx-missing.com MX"].is_object());
}

#[test]
fn servfail_gives_unknown_and_exit_3() {
    let s = server();
    s.set_fault("mail.correct.com", Fault::ServFail);
    let o = check(&s, &["correct.com", "--format", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["verdict"]["spf_aligned"].is_null());
    let unknown: Vec<&Value> =
        v["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "unknown").collect();
    assert!(
        unknown
            .iter()
            .any(|f| f["code"] == "dns-lookup-failed" && f["message"].as_str().unwrap().contains("mail.correct.com"))
    );
    assert!(!v["findings"].as_array().unwrap().iter().any(|f| f["code"].as_str().unwrap().ends_with("-missing")));
}

#[test]
fn bulk_file_streams_jsonl_and_reports_bad_lines() {
    let s = server();
    let dir = std::env::temp_dir().join(format!("ses-dmarc-bulk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("domains.txt");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "# agency customers\ncorrect.com\n\nmx-missing.com   # broken MX\nbyodkim.com selector=s2026\nnot a domain\ndkim-region.com region=eu-south-1").unwrap();
    drop(f);
    let o = check(&s, &["--file", file.to_str().unwrap(), "--format", "jsonl", "--concurrency", "8"]);
    assert_eq!(o.status.code(), Some(2), "a bad line makes the exit code 2");
    assert!(stderr(&o).contains("line 6"), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let domains: std::collections::BTreeSet<&str> = lines.iter().map(|v| v["domain"].as_str().unwrap()).collect();
    assert_eq!(
        domains.into_iter().collect::<Vec<_>>(),
        vec!["byodkim.com", "correct.com", "dkim-region.com", "mx-missing.com"]
    );
    let byodkim = lines.iter().find(|v| v["domain"] == "byodkim.com").unwrap();
    assert_eq!(byodkim["verdict"]["ses_mail_passes_dmarc"], true);
    let region = lines.iter().find(|v| v["domain"] == "dkim-region.com").unwrap();
    assert!(region["findings"].as_array().unwrap().iter().any(|f| f["code"] == "dkim-cname-wrong-target"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn zone_file_checks_records_before_they_are_published() {
    let s = server();
    let dir = std::env::temp_dir().join(format!("ses-dmarc-zone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // What `plan --format zone` prints, for a domain the server does not know.
    let plan = crate::util::ok(&[
        "plan",
        "staged.com",
        "--region",
        "us-east-1",
        "--mail-from",
        "mail",
        "--dkim-token",
        "tokenone",
        "--dkim-token",
        "tokentwo",
        "--dkim-token",
        "tokenthree",
        "--rua",
        "mailto:dmarc@staged.com",
        "--format",
        "zone",
    ]);
    let zone = dir.join("staged.zone");
    std::fs::write(
        &zone,
        format!("$ORIGIN staged.com.\n@ 300 IN SOA ns.staged.com. h.staged.com. 1 3600 600 86400 60\n{plan}"),
    )
    .unwrap();
    let o = check(&s, &["staged.com", "--zone", zone.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("SES mail passes DMARC: yes"));
    let missing = dir.join("nope.zone");
    let o = check(&s, &["staged.com", "--zone", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.zone"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn spf_tree_and_evaluation() {
    let s = server();
    let ns = s.addr().to_string();
    let o = ses_dmarc(&["spf", "apex-spf-lookups.com", "--nameserver", &ns]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("11 DNS-querying terms (limit 10)"), "{out}");
    assert!(out.contains("s10._spf.apex-spf-lookups.com: v=spf1 ip4:192.0.2.10 -all"), "the tree goes past 10: {out}");
    let o = ses_dmarc(&["spf", "mail.correct.com", "--nameserver", &ns, "--ip", "54.240.8.1", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["check"]["result"], "pass");
    assert_eq!(v["lookups"], 1);
    let o = ses_dmarc(&["spf", "mail.correct.com", "--nameserver", &ns, "--ip", "192.0.2.99"]);
    assert!(stdout(&o).contains("Result: softfail"), "{}", stdout(&o));
}

#[test]
fn bad_input_exits_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["check"], "no domain given"),
        (&["check", "exa mple.com", "--nameserver", "127.0.0.1"], "not a domain name"),
        (&["check", "example.com", "--region", "us-east1", "--nameserver", "127.0.0.1"], "did you mean us-east-1"),
        (&["check", "example.com", "--nameserver", "dns.example"], "not a nameserver address"),
        (&["check", "example.com", "--nameserver", "127.0.0.1", "--timeout", "0"], "--timeout"),
        (&["check", "--file", "/nonexistent/domains.txt", "--nameserver", "127.0.0.1"], "cannot read --file"),
        (&["spf", "example.com", "--ip", "999.1.1.1", "--nameserver", "127.0.0.1"], "not an IP address"),
        (&["spf", "example.com", "--helo", "x", "--nameserver", "127.0.0.1"], "--ip"),
    ];
    for (args, hint) in cases {
        let o = ses_dmarc(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(hint), "{args:?}: {}", stderr(&o));
    }
}

/// With 50 ms added to every answer, one check takes about (longest chain of dependent
/// lookups + 1) × 50 ms, not (number of queries) × 50 ms.
#[test]
fn lookups_run_concurrently() {
    let s = server();
    s.set_delay(Some(Duration::from_millis(50)));
    let before = s.query_count();
    let start = Instant::now();
    let o = check(&s, &["correct.com", "--format", "json"]);
    let elapsed = start.elapsed();
    let queries = s.query_count() - before;
    assert_eq!(o.status.code(), Some(0));
    // correct.com: round 1 (everything independent), round 2 (amazonses.com's SPF via the
    // MAIL FROM include; the DKIM keys behind the CNAMEs follow within their own lookups).
    eprintln!("50 ms per answer: {queries} queries in {} ms", elapsed.as_millis());
    assert!(queries >= 14, "{queries}");
    assert!(elapsed < Duration::from_millis(50 * 5 + 400), "{elapsed:?} for {queries} queries");
}
