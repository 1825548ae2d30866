//! `reports ingest`, `reports summary`, `rollout` end to end with a real SQLite file.

use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_testkit::{TempDir, databases, testdata};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn tmp(name: &str) -> TempDir {
    TempDir::new(&format!("reports-{name}"))
}

fn corpus() -> PathBuf {
    testdata("reports")
}

fn json(args: &[&str]) -> (Option<i32>, Value) {
    let o = ses_dmarc(args);
    let v =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}\n{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

#[test]
fn corpus_ingests_once_and_twice_stores_nothing_new() {
    let dir = tmp("corpus");
    for test_db in databases(dir.path(), "corpus") {
        let db = test_db.url.clone();
        let agg = corpus().join("aggregate");
        let (code, v) = json(&[
            "reports",
            "ingest",
            agg.to_str().unwrap(),
            corpus().join("failure").to_str().unwrap(),
            "--database",
            &db,
            "--format",
            "json",
        ]);
        assert_eq!(code, Some(1), "the *.expected.json files are not reports");
        for input in v["inputs"].as_array().unwrap() {
            let path = input["path"].as_str().unwrap();
            let expected = if path.ends_with(".json") { "failed" } else { "ingested" };
            assert_eq!(input["outcome"], expected, "{path}: {input}");
            if expected == "failed" {
                assert!(input["error"].as_str().unwrap().contains("not a DMARC report"));
            }
        }
        assert_eq!(v["totals"]["reports"], 25);
        let (_, again) = json(&["reports", "ingest", agg.to_str().unwrap(), "--database", &db, "--format", "json"]);
        assert_eq!(again["totals"]["reports"], 0);
        assert_eq!(again["totals"]["duplicates"], 20);
        let (code, s) =
            json(&["reports", "summary", "stalw.art", "--days", "100000", "--database", &db, "--format", "json"]);
        assert_eq!(code, Some(0));
        for field in ["domain", "from", "to", "messages", "dmarc_pass", "spf_aligned", "dkim_aligned", "sources"] {
            assert!(s.get(field).is_some(), "summary lacks {field}");
        }
        assert_eq!(s["messages"], 14);
        let sources = s["sources"].as_array().unwrap();
        assert_eq!(sources.iter().map(|x| x["messages"].as_u64().unwrap()).sum::<u64>(), 14);
        assert!(sources.iter().any(|x| x["kind"] == "amazon_ses"));
        // The failure reports show in the summary of the domain they report on.
        let (code, s) =
            json(&["reports", "summary", "example.net", "--days", "100000", "--database", &db, "--format", "json"]);
        assert_eq!(code, Some(0));
        let f = &s["failures"];
        assert_eq!(f["reports"], 2, "{s}");
        assert_eq!(f["by_auth_failure"]["bodyhash"], 1);
        assert_eq!(f["by_auth_failure"]["unspecified"], 1);
        assert_eq!(f["by_source_ip"][0], serde_json::json!(["192.0.2.1", 2]));
        assert_eq!(f["recent"][0]["arrival_date"], 1_271_272_531, "newest first: {f}");
        assert_eq!(f["recent"][1]["arrival_date"], 1_110_304_800, "newest first: {f}");
        let o = ses_dmarc(&["reports", "summary", "example.net", "--days", "100000", "--database", &db]);
        let text = stdout(&o);
        assert!(text.contains("Failure reports: 2 (bodyhash 1, unspecified 1)"), "{text}");
        assert!(text.contains("2005-03-08 18:00 UTC from 192.0.2.1"), "{text}");
    }
}

/// A record with no SES trace in it (no amazonses.com DKIM or envelope) from `ip`.
fn anonymous_record(ip: &str, count: u64) -> String {
    format!(
        "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated><disposition>none</disposition>\
         <dkim>fail</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>correct.com</header_from></identifiers>\
         <auth_results><spf><domain>mail.correct.com</domain><result>pass</result></spf></auth_results></record>"
    )
}

#[test]
fn ptr_lookups_recognise_ses_only_when_forward_confirmed() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let dir = tmp("ptr");
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    let soa = "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n";
    std::fs::write(
        zones.join("8.240.54.in-addr.arpa.zone"),
        format!(
            "$TTL 300\n{soa}1 PTR a8-1.smtp-out.us-east-1.amazonses.com.\n2 PTR a8-2.smtp-out.us-east-1.amazonses.com.\n"
        ),
    )
    .unwrap();
    // a8-2 claims to be SES in its PTR, but the SES name does not point back to it.
    std::fs::write(
        zones.join("amazonses.com.zone"),
        format!("$TTL 300\n{soa}a8-1.smtp-out.us-east-1 A 54.240.8.1\na8-2.smtp-out.us-east-1 A 192.0.2.77\n"),
    )
    .unwrap();
    let server = ses_dmarc_dns::testing::TestServer::start_zone_dir(&zones, 0).unwrap();
    let ns = server.addr().to_string();
    let xml = dir.join("r.xml");
    let rows = format!("{}{}", anonymous_record("54.240.8.1", 30), anonymous_record("54.240.8.2", 5));
    std::fs::write(&xml, report("correct.com", 1, now - 86_400 * 2, &rows)).unwrap();
    for test_db in databases(dir.path(), "ptr") {
        let db = test_db.url.clone();
        json(&["reports", "ingest", xml.to_str().unwrap(), "--database", &db, "--format", "json"]);
        let kinds = |s: &Value| -> Vec<(String, u64)> {
            s["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (x["source"].as_str().unwrap().to_string(), x["messages"].as_u64().unwrap()))
                .collect()
        };
        let (_, plain) = json(&["reports", "summary", "correct.com", "--database", &db, "--format", "json"]);
        assert_eq!(kinds(&plain), [("54.240.8.1".to_string(), 30), ("54.240.8.2".to_string(), 5)]);
        let (code, with_ptr) = json(&[
            "reports",
            "summary",
            "correct.com",
            "--ptr",
            "--nameserver",
            &ns,
            "--database",
            &db,
            "--format",
            "json",
        ]);
        assert_eq!(code, Some(0));
        assert_eq!(kinds(&with_ptr), [("Amazon SES".to_string(), 30), ("54.240.8.2".to_string(), 5)]);
        assert_eq!(with_ptr["ses"]["messages"], 30);
        assert_eq!(with_ptr["ses"]["aligned_via_mail_from"], 30);
    }
}

fn report(domain: &str, id: usize, begin: i64, records: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>google.com</org_name><report_id>{id}</report_id>\
         <date_range><begin>{begin}</begin><end>{}</end></date_range></report_metadata>\
         <policy_published><domain>{domain}</domain><p>none</p></policy_published>{records}</feedback>",
        begin + 86_400
    )
}

fn ses_record(count: u64, aligned: bool) -> String {
    let dkim = if aligned {
        "<dkim><domain>correct.com</domain><selector>tokenone</selector><result>pass</result></dkim>"
    } else {
        ""
    };
    let spf_domain = if aligned { "mail.correct.com" } else { "us-east-1.amazonses.com" };
    format!(
        "<record><row><source_ip>54.240.8.1</source_ip><count>{count}</count><policy_evaluated><disposition>none</disposition>\
         <dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>correct.com</header_from></identifiers>\
         <auth_results>{dkim}<dkim><domain>amazonses.com</domain><result>pass</result></dkim><spf><domain>{spf_domain}</domain><result>pass</result></spf></auth_results></record>"
    )
}

fn server() -> ses_dmarc_dns::testing::TestServer {
    ses_dmarc_dns::testing::TestServer::start_zone_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones"),
        0,
    )
    .unwrap()
}

#[test]
fn rollout_from_evidence() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let dir = tmp("rollout");
    let s = server();
    // 20 days of SES mail, all aligned: ready for quarantine (t=y).
    let good = dir.join("good");
    std::fs::create_dir_all(&good).unwrap();
    for day in 0..20 {
        std::fs::write(
            good.join(format!("r{day}.xml")),
            report("correct.com", day, now - (21 - day as i64) * 86_400, &ses_record(620, true)),
        )
        .unwrap();
    }
    // Then a day of unaligned SES mail (default MAIL FROM, no Easy DKIM).
    let bad = dir.join("bad.xml");
    std::fs::write(&bad, report("correct.com", 99, now - 2 * 86_400, &ses_record(1000, false))).unwrap();
    for test_db in databases(dir.path(), "rollout") {
        let db = test_db.url.clone();
        let ns = s.addr().to_string();
        let (code, _) = json(&["reports", "ingest", good.to_str().unwrap(), "--database", &db, "--format", "json"]);
        assert_eq!(code, Some(0));
        let (code, r) = json(&["rollout", "correct.com", "--database", &db, "--nameserver", &ns, "--format", "json"]);
        assert_eq!((code, &r["stage"], &r["ready"]), (Some(0), &Value::from("none"), &Value::from(true)), "{db}: {r}");
        assert_eq!(r["current_record"], "v=DMARC1; p=none; rua=mailto:dmarc@correct.com");
        // The testing step both generations read alike: pct=0 for RFC 7489, t=y for RFC 9989.
        assert_eq!(r["next_record"], "v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@correct.com; t=y");
        assert_eq!(r["blockers"].as_array().unwrap().len(), 0);
        assert_eq!(r["status"], "ready");
        assert_eq!(r["next"]["stage"], "quarantine-testing");
        assert_eq!(r["next"]["rfc7489"]["disposition"], "none");
        assert_eq!(r["next"]["rfc9989"]["disposition"], "none");
        assert_eq!(r["step_after"]["record"], "v=DMARC1; p=quarantine; rua=mailto:dmarc@correct.com");
        assert_eq!(
            (&r["evidence"]["days_at_stage"], &r["evidence"]["messages"]),
            (&Value::from(21), &Value::from(12_400))
        );
        let days = r["criteria"].as_array().unwrap().iter().find(|c| c["code"] == "days").unwrap();
        assert_eq!(
            (&days["met"], &days["observed"], &days["required"]),
            (&Value::from(true), &Value::from(21.0), &Value::from(14.0))
        );
        assert_eq!(r["evidence"]["sources"][0]["origin"], "ses");
        assert_eq!(r["options"][0]["code"], "adkim-strict");

        // The human output: the evidence, the criteria, the record, the date after it.
        let o = ses_dmarc(&["rollout", "correct.com", "--database", &db, "--nameserver", &ns]);
        let text = stdout(&o);
        for line in [
            "correct.com: stage none",
            "  RFC 7489 and RFC 9989 receivers: p=none: failing mail is delivered as usual",
            "12,400 messages, DMARC pass 100.0%",
            "  Amazon SES                   12,400  100.0%  100.0%  100.0%  yours",
            "  Unaligned sources: none",
            "  met     days     21 days of reports at p=none (14 needed)",
            "  met     messages 12,400 messages from your own sources over 21 days (150 needed)",
            "Ready: publish\n    v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@correct.com; t=y\n",
            "    RFC 7489 receivers: p=quarantine applied to 0% of failing mail (pct=0): all of it gets none",
            "    RFC 9989 receivers: p=quarantine in testing mode (t=y): failing mail gets none",
            "  Then, not before ",
            "(14 days of reports at quarantine-testing): v=DMARC1; p=quarantine; rua=mailto:dmarc@correct.com",
            "  Option: adkim=s (strict DKIM alignment) can be added: every aligned SES message (12,400) is signed d=correct.com exactly.",
            "  Watch for:",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert_eq!(o.status.code(), Some(0));

        json(&["reports", "ingest", bad.to_str().unwrap(), "--database", &db, "--format", "json"]);
        let (code, r) = json(&["rollout", "correct.com", "--database", &db, "--nameserver", &ns, "--format", "json"]);
        assert_eq!((code, &r["ready"], &r["status"]), (Some(1), &Value::from(false), &Value::from("blocked")));
        let msgs: Vec<&str> =
            r["blockers"].as_array().unwrap().iter().map(|b| b["message"].as_str().unwrap()).collect();
        assert!(
            msgs.iter().any(|m| m.starts_with("source Amazon SES: 7.5% of 13,400 messages not aligned")),
            "{msgs:?}"
        );
        let text = stdout(&ses_dmarc(&["rollout", "correct.com", "--database", &db, "--nameserver", &ns]));
        assert!(
            text.contains(
                "  not met aligned  every legitimate source passes DMARC at 98% or more (lowest: Amazon SES at 92.5%)"
            ),
            "{text}"
        );
        assert!(text.contains("Amazon SES: 1,000 failing of 13,400: yours: Amazon SES mail not aligned (1,000 messages sent with the default amazonses.com MAIL FROM"), "{text}");
        assert!(
            text.contains("Not yet before v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@correct.com; t=y:"),
            "{text}"
        );
        // --apply without a next step to take publishes nothing.
        let o = ses_dmarc(&[
            "rollout",
            "correct.com",
            "--database",
            &db,
            "--nameserver",
            &ns,
            "--apply",
            "--route53",
            "--dry-run",
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stdout(&o).contains("Nothing published: the rollout is not ready for a next record."),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn killing_ingest_midway_then_rerunning_stores_what_one_clean_run_does() {
    let dir = tmp("kill");
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let records: String = (0..200).map(|i| ses_record(i % 7 + 1, i % 3 == 0)).collect();
    // Enough reports that a quiet machine does not store them all before the first poll.
    for i in 0..600 {
        std::fs::write(
            inputs.join(format!("{i:03}.xml")),
            report("correct.com", i, 1_700_000_000 + i as i64 * 86_400, &records),
        )
        .unwrap();
    }
    let killed = databases(dir.path(), "killed");
    let clean = databases(dir.path(), "clean");
    for (k, c) in killed.iter().zip(&clean) {
        let (killed_db, clean_db) = (k.url.clone(), c.url.clone());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
            .args(["reports", "ingest", inputs.to_str().unwrap(), "--database", &killed_db, "--format", "json"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once some reports are stored, well before all 600 are.
        let location = ses_dmarc_store::Location::parse(&killed_db).unwrap();
        let started = std::time::Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(5));
            let stored =
                ses_dmarc_store::Store::open(&location).and_then(|mut s| s.totals()).map(|t| t.reports).unwrap_or(0);
            if stored >= 3 || started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let totals = ses_dmarc_store::Store::open(&location).unwrap().totals().unwrap();
        let stored = totals.reports;
        assert!(stored > 0 && stored < 600, "killed after {stored} reports");
        // One transaction per report: every report stored is whole, none half.
        assert_eq!(totals.records, stored * 200, "{killed_db}");
        let (code, _) =
            json(&["reports", "ingest", inputs.to_str().unwrap(), "--database", &killed_db, "--format", "json"]);
        assert_eq!(code, Some(0));
        json(&["reports", "ingest", inputs.to_str().unwrap(), "--database", &clean_db, "--format", "json"]);
        let summary = |db: &str| {
            json(&["reports", "summary", "correct.com", "--days", "100000", "--database", db, "--format", "json"]).1
        };
        let (a, b) = (summary(&killed_db), summary(&clean_db));
        assert_eq!(a["reports"], 600);
        for k in ["reports", "messages", "dmarc_pass", "spf_aligned", "dkim_aligned"] {
            assert_eq!(a[k], b[k], "{k} ({killed_db})");
        }
    }
}

#[test]
fn bad_database_and_inputs() {
    let o = ses_dmarc(&[
        "reports",
        "ingest",
        "/nonexistent/x.xml",
        "--database",
        "sqlite:///tmp/ses-dmarc-never.sqlite",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("cannot read"));
    let o = ses_dmarc(&["reports", "summary", "example.com", "--database", "mysql://x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("sqlite://"), "{}", stderr(&o));
    let o = ses_dmarc(&["reports", "summary", "not a domain", "--database", "sqlite:///tmp/ses-dmarc-never.sqlite"]);
    assert_eq!(o.status.code(), Some(2));
}
