//! `reports summary` of a busy domain (thousands of source addresses) grouped by sender,
//! with the synthetic offline ASN table of testdata/asn; `reports list` and `reports show`;
//! real reporters' quirks stored with their counts. On SQLite and PostgreSQL.

use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_testkit::{TempDir, databases, testdata};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const DOMAIN: &str = "busy.example";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn json(args: &[&str]) -> (Option<i32>, Value) {
    let o = ses_dmarc(args);
    let v =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}\n{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

fn asn_args() -> Vec<String> {
    let mut v = Vec::new();
    for f in ["asn/asn-ipv4.csv", "asn/asn-ipv6.csv"] {
        v.push("--asn-db".to_string());
        v.push(testdata(f).display().to_string());
    }
    v
}

/// One record: `dkim` and `spf` as (domain, result) pairs (the SPF ones for the MAIL FROM).
fn record(ip: &str, count: u64, dkim: &[(&str, &str)], spf: &[(&str, &str)], disposition: &str) -> String {
    let (dkim_pairs, spf_pairs) = (dkim, spf);
    let dkim: String =
        dkim.iter().map(|(d, r)| format!("<dkim><domain>{d}</domain><result>{r}</result></dkim>")).collect();
    let spf: String = spf
        .iter()
        .map(|(d, r)| format!("<spf><domain>{d}</domain><scope>mfrom</scope><result>{r}</result></spf>"))
        .collect();
    // The reporter's own verdicts, as a receiver would give them (relaxed alignment).
    let ours = |d: &str| d == DOMAIN || d.ends_with(".busy.example");
    let verdict = |pass: bool| if pass { "pass" } else { "fail" };
    let (evaluated_dkim, evaluated_spf) = (
        verdict(dkim_pairs.iter().any(|(d, r)| ours(d) && *r == "pass")),
        verdict(spf_pairs.iter().any(|(d, r)| ours(d) && *r == "pass")),
    );
    format!(
        "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated><disposition>{disposition}</disposition>\
         <dkim>{evaluated_dkim}</dkim><spf>{evaluated_spf}</spf></policy_evaluated></row><identifiers><header_from>{DOMAIN}</header_from></identifiers>\
         <auth_results>{dkim}{spf}</auth_results></record>"
    )
}

fn report(org: &str, id: &str, begin: i64, records: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{org}</org_name><email>dmarc@{org}</email>\
         <report_id>{id}</report_id><date_range><begin>{begin}</begin><end>{}</end></date_range></report_metadata>\
         <policy_published><domain>{DOMAIN}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>\
         {records}</feedback>",
        begin + 86_400
    )
}

/// What the generated reports hold, per sender: addresses and messages.
struct Expected {
    addresses: usize,
    messages: u64,
}

/// Three reports (from three reporters, one day each) about a busy domain: Amazon SES
/// (aligned, and a few default-MAIL-FROM messages), Google Workspace and Microsoft 365
/// signing as the domain itself (only the network table tells them apart) or as
/// themselves, SendGrid, forwarders, and 2,000 spoofing addresses spread over 250 /24s,
/// plus a documentation ISP (AS64500) in IPv4 and IPv6.
fn generate(dir: &Path) -> (PathBuf, BTreeMap<&'static str, Expected>) {
    let folder = dir.join("busy");
    std::fs::create_dir_all(&folder).unwrap();
    let own = [(DOMAIN, "pass")];
    let ses_aligned = [(DOMAIN, "pass"), ("amazonses.com", "pass")];
    let mail_from = [("mail.busy.example", "pass")];
    let mut per_report: Vec<String> = vec![String::new(), String::new(), String::new()];
    let mut add = |i: usize, r: String| per_report[i % 3].push_str(&r);
    // Every SES address appears in all three reports: 40 addresses, 10 messages each a day.
    for day in 0..3 {
        for i in 1..=40 {
            add(day, record(&format!("54.240.8.{i}"), 10, &ses_aligned, &mail_from, "none"));
        }
    }
    for i in 1..=5 {
        add(
            i,
            record(
                &format!("54.240.9.{i}"),
                4,
                &[("amazonses.com", "pass")],
                &[("us-east-1.amazonses.com", "pass")],
                "none",
            ),
        );
    }
    // Google Workspace signing d=busy.example: 60 IPv4 and 20 IPv6 addresses.
    for i in 1..=60 {
        add(i, record(&format!("209.85.{}.{}", 200 + i / 50, i % 50 + 1), 5, &own, &own, "none"));
    }
    for i in 1..=20 {
        add(i, record(&format!("2607:f8b0:4864:20::{i:x}"), 2, &own, &own, "none"));
    }
    // Microsoft 365: half sign as the tenant (onmicrosoft.com), half as the domain.
    for i in 1..=50 {
        let dkim: &[(&str, &str)] = if i % 2 == 0 { &[("busyexample.onmicrosoft.com", "pass")] } else { &own };
        add(i, record(&format!("40.92.{}.{}", i / 20, i % 20 + 1), 4, dkim, &own, "none"));
    }
    for i in 1..=10 {
        add(i, record(&format!("2a01:111:f400:7e00::{i:x}"), 1, &own, &own, "none"));
    }
    // SendGrid, as itself.
    for i in 1..=10 {
        add(i, record(&format!("167.89.0.{i}"), 3, &[("sendgrid.net", "pass")], &[("sendgrid.net", "pass")], "none"));
    }
    // Forwarders: the domain's signature, their servers (SPF fails for the domain).
    for i in 1..=30 {
        add(i, record(&format!("192.0.2.{i}"), 1, &own, &[(DOMAIN, "fail")], "none"));
    }
    // Strangers: 2,000 addresses over 250 /24s, one message each, and the documentation ISP.
    for i in 0..2_000 {
        add(i, record(&format!("100.64.{}.{}", i / 8, i % 8 + 1), 1, &[], &[(DOMAIN, "fail")], "reject"));
    }
    for i in 1..=30 {
        add(i, record(&format!("198.51.100.{i}"), 2, &[], &[(DOMAIN, "fail")], "quarantine"));
    }
    for i in 1..=10 {
        add(i, record(&format!("2001:db8:100::{i:x}"), 2, &[], &[(DOMAIN, "softfail")], "quarantine"));
    }
    let start = now() - 4 * 86_400;
    for (i, (org, records)) in ["google.com", "outlook.com", "yahoo.com"].iter().zip(&per_report).enumerate() {
        std::fs::write(
            folder.join(format!("{i}.xml")),
            report(org, &format!("r{i}"), start + i as i64 * 86_400, records),
        )
        .unwrap();
    }
    let expected = BTreeMap::from([
        ("Amazon SES", Expected { addresses: 45, messages: 1_200 + 20 }),
        ("Google", Expected { addresses: 80, messages: 300 + 40 }),
        ("Microsoft", Expected { addresses: 60, messages: 200 + 10 }),
        ("SendGrid", Expected { addresses: 10, messages: 30 }),
        ("forwarded", Expected { addresses: 30, messages: 30 }),
        ("AS64500 EXAMPLE-NET, Documentation ISP", Expected { addresses: 40, messages: 80 }),
    ]);
    (folder, expected)
}

fn sum(v: &Value, array: &str, field: &str) -> u64 {
    v[array].as_array().unwrap().iter().map(|x| x[field].as_u64().unwrap()).sum()
}

#[test]
fn a_busy_domain_is_summed_up_by_sender_in_a_screenful() {
    let dir = TempDir::new("summary-busy");
    let (folder, expected) = generate(dir.path());
    let asn = asn_args();
    let asn: Vec<&str> = asn.iter().map(String::as_str).collect();
    for test_db in databases(dir.path(), "busy") {
        let db = test_db.url.clone();
        let (code, ingested) =
            json(&["reports", "ingest", folder.to_str().unwrap(), "--database", &db, "--format", "json"]);
        assert_eq!(code, Some(0), "{ingested}");
        let base = ["reports", "summary", DOMAIN, "--database", &db];
        let with = |extra: &[&str]| -> Vec<String> {
            base.iter().chain(asn.iter()).chain(extra).map(|s| s.to_string()).collect()
        };
        let run = |args: &[String]| ses_dmarc(&args.iter().map(String::as_str).collect::<Vec<_>>());

        // JSON: every address kept, grouped; the totals are the ungrouped ones.
        let started = std::time::Instant::now();
        let (code, grouped) = json(&with(&["--format", "json"]).iter().map(String::as_str).collect::<Vec<_>>());
        let took = started.elapsed();
        assert_eq!(code, Some(0));
        let (_, plain) = json(&base.iter().copied().chain(["--format", "json"]).collect::<Vec<_>>());
        let distinct: HashSet<&str> =
            grouped["addresses"].as_array().unwrap().iter().map(|a| a["ip"].as_str().unwrap()).collect();
        assert_eq!(distinct.len(), 2_265, "every source address is kept");
        assert_eq!(grouped["addresses"].as_array().unwrap().len(), 2_265, "one line per address (and group)");
        for field in ["messages", "dmarc_pass", "spf_aligned", "dkim_aligned"] {
            assert_eq!(grouped[field], plain[field], "{field}: the table changes no total");
            assert_eq!(sum(&grouped, "groups", field), grouped[field].as_u64().unwrap(), "groups' {field}");
            assert_eq!(sum(&grouped, "addresses", field), grouped[field].as_u64().unwrap(), "addresses' {field}");
            assert_eq!(sum(&grouped, "sources", field), grouped[field].as_u64().unwrap(), "sources' {field}");
        }
        assert_eq!(grouped["messages"], 1_220 + 340 + 210 + 30 + 30 + 2_000 + 80);
        assert_eq!(sum(&grouped, "groups", "addresses"), 2_265);
        assert_eq!(grouped["sources"], plain["sources"], "the sources (what rollout and watch read) are unchanged");
        assert_eq!(grouped["ses"]["messages"], 1_220);
        assert_eq!(grouped["reporter_differs"], 0, "the generated reporters agree with the recomputation");
        let groups: BTreeMap<String, &Value> = grouped["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["group"].as_str().unwrap().to_string(), g))
            .collect();
        for (name, want) in &expected {
            let g = groups.get(*name).unwrap_or_else(|| panic!("no group {name}: {:?}", groups.keys().take(12)));
            assert_eq!(
                (g["addresses"].as_u64().unwrap() as usize, g["messages"].as_u64().unwrap()),
                (want.addresses, want.messages),
                "{name}: {g}"
            );
        }
        let field = |g: &str, f: &str| groups[g][f].clone();
        assert_eq!(field("Amazon SES", "recognised_by"), serde_json::json!(["dkim"]));
        assert_eq!(field("Google", "recognised_by"), serde_json::json!(["asn"]), "only the table knows these");
        assert_eq!((field("Google", "asn"), field("Google", "by")), (Value::from(15169), Value::from("sender")));
        assert_eq!(field("Google", "org"), "Google Workspace and Gmail");
        assert_eq!(field("Microsoft", "recognised_by"), serde_json::json!(["dkim", "asn"]));
        assert_eq!(field("AS64500 EXAMPLE-NET, Documentation ISP", "by"), "asn");
        assert_eq!(field("forwarded", "kind"), "forwarded");
        assert_eq!(
            (field("100.64.0.0/24", "addresses"), field("100.64.0.0/24", "by")),
            (Value::from(8), Value::from("network"))
        );
        assert_eq!(groups.len(), 6 + 250, "the named groups and 250 networks of strangers");
        // Without the table, the same addresses are networks.
        assert!(plain["groups"].as_array().unwrap().iter().all(|g| g["group"] != "Google"));
        assert!(plain["groups"].as_array().unwrap().iter().any(|g| g["group"] == "209.85.200.0/24"));
        // The SES lines by how they align.
        let breakdown = grouped["ses"]["breakdown"].as_array().unwrap();
        assert_eq!(
            breakdown[0],
            serde_json::json!({"aligned_by": "both", "spf_problem": null, "dkim_problem": null, "messages": 1200})
        );
        assert_eq!(
            breakdown[1],
            serde_json::json!({"aligned_by": "none", "spf_problem": "default-mail-from", "dkim_problem": "no-domain-signature", "messages": 20})
        );

        // Human: the top 20 senders and one line for the rest; at most a few more lines.
        let o = run(&with(&[]));
        let text = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        eprintln!("{text}");
        let lines = text.lines().count();
        assert!(lines <= 20 + 10, "{lines} lines:\n{text}");
        for line in [
            "busy.example: 3 reports over 4 days, 3,910 messages from 2,265 addresses",
            "  Amazon SES: 1,220 messages, 1,200 pass DMARC (98.4%)",
            "        1,200 aligned by the custom MAIL FROM (SPF) and by Easy DKIM",
            "           20 not aligned, failing DMARC: sent with the default amazonses.com MAIL FROM (no custom MAIL FROM); no DKIM signature for the From domain (Easy DKIM not in use)",
            "  ... 236 more senders: 1,888 addresses, 1,888 messages, DMARC pass 0.0%",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("  {name} ")))
                .unwrap_or_else(|| panic!("{name}:\n{text}"))
                .to_string()
        };
        assert!(
            row("Amazon SES").split_whitespace().collect::<Vec<_>>().starts_with(&["Amazon", "SES", "45", "1,220"]),
            "{}",
            row("Amazon SES")
        );
        assert!(
            row("Google").split_whitespace().collect::<Vec<_>>().starts_with(&["Google", "80", "340", "100.0%"]),
            "{}",
            row("Google")
        );
        assert!(row("Google").ends_with("AS15169"), "{}", row("Google"));
        assert!(
            row("Microsoft").contains(" 60 ") && row("Microsoft").ends_with("DKIM, AS8075"),
            "{}",
            row("Microsoft")
        );
        // --top, --all, --by ip.
        let count_rows = |t: &str| {
            t.lines().filter(|l| l.contains('%') && !l.contains("DMARC pass") && !l.contains("pass DMARC")).count()
        };
        let top5 = stdout(&run(&with(&["--top", "5"])));
        assert_eq!(count_rows(&top5), 5, "{top5}");
        let all = stdout(&run(&with(&["--all"])));
        assert_eq!(count_rows(&all), 256, "every group");
        assert!(!all.contains(" more senders"), "{all}");
        let by_ip = stdout(&run(&with(&["--by", "ip", "--top", "3"])));
        assert!(by_ip.contains("    54.240.8."), "{by_ip}");
        assert!(by_ip.contains("    ... 42 more addresses (--all shows them)"), "{by_ip}");
        assert_eq!(count_rows(&by_ip), 3 + 3 * 3, "3 groups and 3 addresses in each:\n{by_ip}");

        // CSV: one row per address, the documented header, the same totals.
        let o = run(&with(&["--format", "csv"]));
        let csv = stdout(&o);
        let mut rows = csv.lines();
        assert_eq!(
            rows.next(),
            Some(
                "ip,group,org,kind,source,ptr,asn,asn_name,messages,dmarc_pass,spf_aligned,dkim_aligned,disposition_none,disposition_quarantine,disposition_reject,first_seen,last_seen"
            )
        );
        let rows: Vec<&str> = rows.collect();
        assert_eq!(rows.len(), 2_265);
        let find = |ip: &str| {
            *rows.iter().find(|r| r.starts_with(&format!("{ip},"))).unwrap_or_else(|| panic!("{ip}: {:?}", &rows[..5]))
        };
        let example = find("198.51.100.1");
        assert!(
            example.starts_with("198.51.100.1,\"AS64500 EXAMPLE-NET, Documentation ISP\",\"EXAMPLE-NET, Documentation ISP\",unknown,198.51.100.1,,64500,\"EXAMPLE-NET, Documentation ISP\",2,0,0,0,0,2,0,"),
            "{example}"
        );
        let google = find("209.85.200.2");
        assert!(
            google.starts_with(
                "209.85.200.2,Google,Google Workspace and Gmail,unknown,209.85.200.2,,15169,GOOGLE,5,5,5,5,5,0,0,"
            ),
            "{google}"
        );
        eprintln!("{db}: summary of 2,265 addresses in {took:?}");
    }
}

#[test]
fn bad_asn_tables_are_refused_with_the_line() {
    let dir = TempDir::new("summary-asn-errors");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let xml = dir.join("r.xml");
    std::fs::write(&xml, report("google.com", "x1", now() - 2 * 86_400, &record("192.0.2.1", 1, &[], &[], "none")))
        .unwrap();
    assert!(ses_dmarc(&["reports", "ingest", xml.to_str().unwrap(), "--database", &db]).status.success());
    let missing = dir.join("missing.csv");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "1.0.0.0,1.0.0.255,13335,CLOUDFLARENET\n8.8.8.0,8.8.8.255,15169,GOOGLE\n8.8.4.0,8.8.4.x,15169,GOOGLE\n",
    )
    .unwrap();
    let empty = dir.join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    for (path, message) in [
        (missing.as_path(), "cannot read the ASN table".to_string()),
        (bad.as_path(), format!("{} line 3: `8.8.4.x` is not an IP address", bad.display())),
        (empty.as_path(), "no IP range in it".to_string()),
        (dir.path(), "cannot read the ASN table".to_string()),
    ] {
        let o =
            ses_dmarc(&["reports", "summary", "busy.example", "--database", &db, "--asn-db", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}: {}", path.display(), stderr(&o));
        assert!(stderr(&o).contains(&message) && stderr(&o).contains(path.to_str().unwrap()), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let o = ses_dmarc(&["reports", "summary", "busy.example", "--database", &db, "--top", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ses_dmarc(&["reports", "summary", "busy.example", "--database", &db, "--top", "3", "--all"]);
    assert_eq!(o.status.code(), Some(2), "--top and --all exclude each other");
}

#[test]
fn stored_reports_are_listed_and_shown() {
    let dir = TempDir::new("reports-list");
    let start = now() - 5 * 86_400;
    let ses = record(
        "54.240.8.1",
        30,
        &[(DOMAIN, "pass"), ("amazonses.com", "pass")],
        &[("mail.busy.example", "pass")],
        "none",
    );
    let spoof = record("203.0.113.9", 10, &[], &[(DOMAIN, "fail")], "none");
    let files = [
        ("a.xml", report("google.com", "g-1", start, &format!("{ses}{spoof}"))),
        ("b.xml", report("outlook.com", "shared", start + 86_400, &ses)),
        ("c.xml", report("yahoo.com", "shared", start + 2 * 86_400, &spoof)),
        ("d.xml", report("google.com", "g-2", start, &ses).replace(DOMAIN, "other.example")),
    ];
    for (name, xml) in &files {
        std::fs::write(dir.join(name), xml).unwrap();
    }
    for test_db in databases(dir.path(), "list") {
        let db = test_db.url.clone();
        for (name, _) in &files {
            let o = ses_dmarc(&["reports", "ingest", dir.join(name).to_str().unwrap(), "--database", &db]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        let (code, list) = json(&["reports", "list", DOMAIN, "--database", &db, "--format", "json"]);
        assert_eq!(code, Some(0));
        assert_eq!((&list["domain"], &list["total"]), (&Value::from(DOMAIN), &Value::from(3)));
        let reports = list["reports"].as_array().unwrap();
        let reporters: Vec<&str> = reports.iter().map(|r| r["reporter"].as_str().unwrap()).collect();
        assert_eq!(reporters, ["yahoo.com", "outlook.com", "google.com"], "newest first");
        let g = &reports[2];
        assert_eq!(
            (&g["report_id"], &g["messages"], &g["dmarc_pass"], &g["records"]),
            (&Value::from("g-1"), &Value::from(40), &Value::from(30), &Value::from(2))
        );
        assert_eq!(g["pass_rate"], 0.75);
        assert_eq!(g["email"], "dmarc@google.com");
        assert_eq!(g["end"].as_i64().unwrap() - g["begin"].as_i64().unwrap(), 86_400);
        let (_, every) = json(&["reports", "list", "--database", &db, "--format", "json"]);
        assert_eq!(every["total"], 4);
        assert_eq!(every["domain"], Value::Null);
        let (_, limited) = json(&["reports", "list", "--database", &db, "--limit", "1", "--format", "json"]);
        assert_eq!((limited["total"].as_u64(), limited["reports"].as_array().unwrap().len()), (Some(4), 1));
        let text = stdout(&ses_dmarc(&["reports", "list", DOMAIN, "--database", &db]));
        assert!(text.starts_with("ID  REPORTER     REPORT ID  DOMAIN        PERIOD (UTC)"), "{text}");
        assert!(text.contains("  google.com   g-1        busy.example  "), "{text}");
        assert!(text.contains("          40   75.0%\n"), "{text}");
        assert!(text.contains("3 reports for busy.example in the last 30 days."), "{text}");
        let text = stdout(&ses_dmarc(&["reports", "list", "--database", &db, "--limit", "2"]));
        assert!(text.contains("The newest 2 of 4 reports in the last 30 days (--limit N for more)"), "{text}");

        // show: by the number, or by the reporter's id when it is unique.
        let id = g["id"].as_i64().unwrap().to_string();
        let (code, shown) = json(&["reports", "show", &id, "--database", &db, "--format", "json"]);
        assert_eq!(code, Some(0));
        assert_eq!(
            (&shown["reporter"], &shown["report_id"], &shown["messages"]),
            (&Value::from("google.com"), &Value::from("g-1"), &Value::from(40))
        );
        assert_eq!((&shown["original_kept"], &shown["original"]), (&Value::from(false), &Value::Null));
        assert_eq!(shown["policy"]["p"], "none");
        let records = shown["records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            (&records[0]["source_ip"], &records[0]["source"], &records[0]["dmarc_pass"]),
            (&Value::from("54.240.8.1"), &Value::from("Amazon SES"), &Value::from(true))
        );
        assert_eq!(
            (&records[1]["source_ip"], &records[1]["kind"], &records[1]["dmarc_pass"]),
            (&Value::from("203.0.113.9"), &Value::from("unknown"), &Value::from(false))
        );
        let (_, by_reporter_id) = json(&["reports", "show", "g-1", "--database", &db, "--format", "json"]);
        assert_eq!(by_reporter_id["id"], shown["id"]);
        let o = ses_dmarc(&["reports", "show", &id, "--database", &db]);
        let text = stdout(&o);
        let first = format!("Report {id}: from google.com, report id g-1");
        for line in [
            first.as_str(),
            "  domain    busy.example",
            "  contact   dmarc@google.com",
            "  policy    p=none; adkim=r; aspf=r; pct=100",
            "  messages  40 in 2 records, DMARC pass 75.0% (recomputed)",
            "  The original XML is not kept: this is the report as stored.",
            "  54.240.8.1  30 messages  DMARC pass (SPF and DKIM aligned)  disposition none  sender Amazon SES",
            "    DKIM busy.example pass, amazonses.com pass",
            "    SPF  mail.busy.example pass (mfrom)",
            "  203.0.113.9  10 messages  DMARC fail (nothing aligned)  disposition none  sender 203.0.113.9",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        // Not there: exit 1; a reporter's id two reports share: exit 2 with their numbers.
        let o = ses_dmarc(&["reports", "show", "999999", "--database", &db]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("no stored report has the id `999999`"), "{}", stderr(&o));
        let o = ses_dmarc(&["reports", "show", "shared", "--database", &db]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("2 stored reports have the report id `shared` (from outlook.com, yahoo.com)"),
            "{}",
            stderr(&o)
        );
        let o = ses_dmarc(&["reports", "list", "not a domain", "--database", &db]);
        assert_eq!(o.status.code(), Some(2));
    }
    let o = ses_dmarc(&["reports", "show", "1", "--database", dir.join("none.sqlite").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a database that does not exist");
    assert!(!dir.join("none.sqlite").exists());
}

/// Reports as real reporters send them (issue 17, section 1), each kind built here: stored
/// with the right counts.
#[test]
fn real_reporters_quirks_are_stored_with_their_counts() {
    let tmp = TempDir::new("quirks");
    let dir = tmp.join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let start = now() - 3 * 86_400;
    let two = format!("{}{}", record("192.0.2.10", 3, &[], &[], "none"), record("192.0.2.11", 4, &[], &[], "none"));
    // A stray XML Schema start tag, never closed, in front of <feedback>.
    let wrapped = report("wrapper.test", "w1", start, &two)
        .replace("<feedback>", "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\n<feedback>");
    std::fs::write(dir.join("wrapped.xml"), wrapped).unwrap();
    // A complete gzip stream followed by a stray CR LF.
    let mut padded = ses_dmarc_testkit::gzip(
        report("gzip.test", "g1", start, &record("192.0.2.12", 5, &[], &[], "none")).as_bytes(),
    );
    padded.extend_from_slice(b"\r\n");
    std::fs::write(dir.join("padded.xml.gz"), padded).unwrap();
    // Failure reports that are not well-formed ARF: fields in ATT00001, and a plain notice.
    let original = format!("From: ceo@{DOMAIN}\r\nTo: victim@receiver.test\r\nSubject: Pay this\r\n\r\nbody\r\n");
    let att = format!(
        "From: postmaster@receiver.test\r\nTo: ruf@{DOMAIN}\r\nSubject: DMARC failure\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nA message failed.\r\n--b\r\nContent-Type: application/octet-stream; name=\"ATT00001\"\r\nContent-Disposition: attachment; filename=\"ATT00001\"\r\n\r\nFeedback-Type: auth-failure\r\nVersion: 1\r\nSource-IP: 198.51.100.7\r\nReported-Domain: {DOMAIN}\r\nAuth-Failure: dmarc\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=\"ATT00002\"\r\n\r\n{original}\r\n--b--\r\n"
    );
    std::fs::write(dir.join("att.eml"), att).unwrap();
    let notice = format!(
        "From: dmarc@mta.test\r\nTo: ruf@{DOMAIN}\r\nSubject: DMARC failure report\r\nContent-Type: text/plain\r\n\r\nA message claiming to be from you has failed the published DMARC policy for your domain.\r\n\r\n  Sender Domain: {DOMAIN}\r\n  Sender IP Address: 203.0.113.45\r\n  Received Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n  SPF Alignment: no\r\n  DKIM Alignment: no\r\n  DMARC Results: Reject\r\n\r\n{original}"
    );
    std::fs::write(dir.join("notice.eml"), notice).unwrap();
    for test_db in databases(tmp.path(), "quirks") {
        let db = test_db.url.clone();
        let (code, v) = json(&["reports", "ingest", dir.to_str().unwrap(), "--database", &db, "--format", "json"]);
        let outcomes: Vec<(&str, &str)> = v["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["path"].as_str().unwrap().rsplit('/').next().unwrap(), i["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("att.eml", "ingested"),
                ("notice.eml", "ingested"),
                ("padded.xml.gz", "ingested"),
                ("wrapped.xml", "ingested")
            ],
            "{v}"
        );
        assert_eq!(code, Some(0), "{v}");
        assert_eq!((&v["totals"]["reports"], &v["totals"]["messages"]), (&Value::from(4), &Value::from(12)), "{v}");
        let (_, s) = json(&["reports", "summary", DOMAIN, "--database", &db, "--format", "json"]);
        assert_eq!(s["failures"]["reports"], 2, "{s}");
        let ips: Vec<&str> =
            s["failures"]["by_source_ip"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap()).collect();
        assert_eq!(ips, ["198.51.100.7", "203.0.113.45"]);
        assert_eq!((&s["reports"], &s["messages"]), (&Value::from(2), &Value::from(12)), "{s}");
        let (_, list) = json(&["reports", "list", DOMAIN, "--database", &db, "--format", "json"]);
        let counts: Vec<(&str, u64)> = list["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["reporter"].as_str().unwrap(), r["messages"].as_u64().unwrap()))
            .collect();
        assert_eq!(counts.len(), 2);
        assert!(counts.contains(&("wrapper.test", 7)) && counts.contains(&("gzip.test", 5)), "{counts:?}");
    }
}
