//! What a new user hits (the wrong answers and confusing edges found by trying every
//! command as one would): each case here failed before its fix.

use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::TestServer;
use ses_dmarc_testkit::{TempDir, testdata};
use std::process::{Command, Stdio};

fn fixtures() -> TestServer {
    TestServer::start_zone_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones"),
        0,
    )
    .unwrap()
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"));
    c.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ses-dmarc")
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
fn a_zone_file_answers_only_for_the_names_it_holds() {
    let s = fixtures();
    let dir = TempDir::new("zone-partial");
    // Only the DMARC record is in the file: the MX, SPF and DKIM CNAMEs come from DNS.
    let zone = dir.join("dmarc-only.zone");
    std::fs::write(&zone, "$ORIGIN correct.com.\n_dmarc TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@correct.com\"\n")
        .unwrap();
    let o = check(&s, &["correct.com", "--zone", zone.to_str().unwrap(), "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(!codes.iter().any(|c| c.ends_with("-missing")), "{codes:?}");
    assert_eq!(v["verdict"]["ses_mail_passes_dmarc"], true);
    assert_eq!(v["from_zone_file"], serde_json::json!(["_dmarc.correct.com TXT"]));
    assert!(stderr(&o).contains("no $TTL: 300 seconds assumed"), "{}", stderr(&o));
    // The human output says which answers came from the file.
    let o = check(&s, &["correct.com", "--zone", zone.to_str().unwrap()]);
    assert!(stdout(&o).contains("dmarc-only.zone: _dmarc.correct.com TXT"), "{}", stdout(&o));
    // An empty file, and a bad line, are errors that say so.
    let empty = dir.join("empty.zone");
    std::fs::write(&empty, "; nothing here\n").unwrap();
    let o = check(&s, &["correct.com", "--zone", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds no record"), "{}", stderr(&o));
    let bad = dir.join("bad.zone");
    std::fs::write(&bad, "$ORIGIN correct.com.\n$TTL 60\n_dmarc TXT \"v=DMARC1; p=none\"\nmail MX ten nowhere\n")
        .unwrap();
    let o = check(&s, &["correct.com", "--zone", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 4"), "{}", stderr(&o));
    let missing = dir.join("nope.zone");
    let o = check(&s, &["correct.com", "--zone", missing.to_str().unwrap()]);
    assert_eq!(stderr(&o).matches("No such file").count(), 1, "said once: {}", stderr(&o));
}

#[test]
fn one_or_two_dkim_tokens_are_refused_as_plan_refuses_them() {
    let s = fixtures();
    let ns = s.addr().to_string();
    let o =
        ses_dmarc(&["check", "correct.com", "--nameserver", &ns, "--region", "us-east-1", "--dkim-token", "tokenone"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("three Easy DKIM tokens"), "{}", stderr(&o));
    let dir = TempDir::new("two-tokens");
    let list = dir.join("domains.txt");
    std::fs::write(&list, "correct.com dkim-token=tokenone dkim-token=tokentwo\n").unwrap();
    let o = ses_dmarc(&["check", "--file", list.to_str().unwrap(), "--nameserver", &ns, "--region", "us-east-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("2 given") && stderr(&o).contains("(line skipped)"), "{}", stderr(&o));
}

#[test]
fn several_domains_as_json_are_one_array_and_an_empty_list_is_an_error() {
    let s = fixtures();
    let o = check(&s, &["correct.com", "dmarc-missing.com", "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert_eq!(v.as_array().unwrap().len(), 2);
    let one: Value = serde_json::from_str(&stdout(&check(&s, &["correct.com", "--format", "json"]))).unwrap();
    assert!(one.is_object(), "one domain stays one object");
    let dir = TempDir::new("empty-list");
    let list = dir.join("none.txt");
    std::fs::write(&list, "# nothing yet\n\n").unwrap();
    let o = check(&s, &["--file", list.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds no domain"), "{}", stderr(&o));
}

#[test]
fn a_missing_domain_says_so_first_and_the_region_comes_from_the_mx() {
    let s = fixtures();
    let o = check(&s, &["no-such-domain.com", "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["findings"][0]["code"], "domain-not-found");
    assert_eq!(v["findings"].as_array().unwrap().len(), 1, "one reason, not a list of missing records");
    let ns = s.addr().to_string();
    let o = ses_dmarc(&[
        "check",
        "dkim-region.com",
        "--nameserver",
        &ns,
        "--mail-from",
        "mail",
        "--dkim-token",
        "tokenone",
        "--dkim-token",
        "tokentwo",
        "--dkim-token",
        "tokenthree",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let assumed = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "region-assumed").unwrap();
    assert!(assumed["message"].as_str().unwrap().contains("us-east-1 assumed"), "{assumed}");
}

#[test]
fn spf_of_a_missing_domain_is_not_usable_and_one_truth_is_told() {
    let s = fixtures();
    let ns = s.addr().to_string();
    let o = ses_dmarc(&["spf", "no-such-domain.com", "--nameserver", &ns]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("does not exist"), "{}", stdout(&o));
    // Over ten lookups, but this IP matches before the limit: both facts, no contradiction.
    let o = ses_dmarc(&["spf", "apex-spf-lookups.com", "--nameserver", &ns, "--ip", "192.0.2.1"]);
    let out = stdout(&o);
    assert!(!out.contains("Receivers return permerror for this record."), "{out}");
    if out.contains("Result: pass") {
        assert!(out.contains("for any client not matched before the limits"), "{out}");
    }
}

#[test]
fn verify_refuses_what_is_not_a_message() {
    let dir = TempDir::new("not-a-message");
    let text = dir.join("letter.txt");
    std::fs::write(&text, "Dear Bob,\nthis is not an e-mail.\n").unwrap();
    let o = ses_dmarc(&["verify", text.to_str().unwrap(), "--nameserver", "127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("not an e-mail message"), "{}", stderr(&o));
}

#[test]
fn readers_never_create_a_database() {
    let dir = TempDir::new("no-db");
    let path = dir.join("sub/x.sqlite");
    let db = path.to_str().unwrap();
    for args in
        [vec!["reports", "summary", "example.com", "--database", db], vec!["rollout", "example.com", "--database", db]]
    {
        let o = ses_dmarc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(db) && stderr(&o).contains("reports ingest"), "{}", stderr(&o));
        assert!(!dir.join("sub").exists(), "{args:?} created the folder");
    }
    // Nothing to read: no database either.
    let o = ses_dmarc(&["reports", "ingest", dir.join("missing.xml").to_str().unwrap(), "--database", db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no database was created"), "{}", stdout(&o));
    assert!(!dir.join("sub").exists());
}

fn write_report(dir: &TempDir, name: &str, domain: &str, id: &str, body: &str) -> std::path::PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // All of yesterday (UTC), so the report covers exactly one day whatever the hour.
    let yesterday = (now / 86_400 - 1) * 86_400;
    let xml = format!(
        "<feedback><report_metadata><org_name>r.test</org_name><report_id>{id}</report_id><date_range><begin>{}</begin><end>{}</end></date_range></report_metadata><policy_published><domain>{domain}</domain><p>none</p></policy_published>{body}</feedback>",
        yesterday,
        yesterday + 86_399
    );
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

const RECORD: &str = "<record><row><source_ip>192.0.2.1</source_ip><count>3</count></row><identifiers><header_from>lint.com</header_from></identifiers></record>";

#[test]
fn ingest_says_what_is_wrong_where_and_counts_refused_records() {
    let dir = TempDir::new("ingest-messages");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let malformed = write_report(
        &dir,
        "bad.xml",
        "lint.com",
        "m1",
        &RECORD.replace("<header_from>lint.com", "<header_from>bad<xml.net"),
    );
    let bad_count = write_report(
        &dir,
        "count.xml",
        "lint.com",
        "m2",
        &format!("{RECORD}{}", RECORD.replace("<count>3", "<count>many")),
    );
    let empty = dir.join("empty.xml");
    std::fs::write(&empty, "").unwrap();
    let fake_gz = dir.join("fake.xml.gz");
    std::fs::write(&fake_gz, b"\x00\x01\x02\x1b[31mnot gzip").unwrap();
    let o = ses_dmarc(&[
        "reports",
        "ingest",
        malformed.to_str().unwrap(),
        bad_count.to_str().unwrap(),
        empty.to_str().unwrap(),
        fake_gz.to_str().unwrap(),
        "--database",
        &db,
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let inputs = v["inputs"].as_array().unwrap();
    let err = |i: usize| inputs[i]["error"].as_str().unwrap_or_default().to_string();
    assert!(err(0).contains("line 1, column") && err(0).contains("&lt;"), "{}", err(0));
    assert_eq!(inputs[1]["outcome"], "partial", "{}", inputs[1]);
    assert!(err(1).contains("count `many` is not a number"), "{}", err(1));
    assert!(err(2).contains("an empty file"), "{}", err(2));
    assert!(err(3).contains("the bytes 00 01 02 1b"), "{}", err(3));
    let o = ses_dmarc(&["reports", "ingest", "--max-size", "17592186044416", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--max-size is in MB, from 1 to"), "{}", stderr(&o));
    let o = ses_dmarc(&["check", "x.com", "--timeout", "0"]);
    assert!(stderr(&o).contains("more than 0"), "{}", stderr(&o));
}

#[test]
fn the_same_failure_report_twice_is_stored_once() {
    let dir = TempDir::new("arf-twice");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let arf = testdata("reports/failure/mailauth-arf-001.eml");
    let first = ses_dmarc(&["reports", "ingest", arf.to_str().unwrap(), "--database", &db, "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(v["totals"]["reports"], 1);
    let again = ses_dmarc(&["reports", "ingest", arf.to_str().unwrap(), "--database", &db, "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!((v["totals"]["reports"].as_u64(), v["totals"]["duplicates"].as_u64()), (Some(0), Some(1)), "{v}");
}

#[test]
fn directory_links_are_not_followed() {
    let dir = TempDir::new("loops");
    let cur = dir.join("cur");
    std::fs::create_dir_all(cur.join("sub")).unwrap();
    write_report(&dir, "cur/sub/r.xml", "lint.com", "l1", RECORD);
    std::os::unix::fs::symlink("..", cur.join("sub/loop")).unwrap();
    std::os::unix::fs::symlink(".", cur.join("self")).unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let o = ses_dmarc(&["reports", "ingest", cur.to_str().unwrap(), "--database", &db, "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["totals"]["reports"], 1);
    let skipped: Vec<&Value> = v["inputs"].as_array().unwrap().iter().filter(|i| i["outcome"] == "skipped").collect();
    assert_eq!(skipped.len(), 2, "{v}");
    assert!(skipped[0]["error"].as_str().unwrap().contains("not followed"));
    assert_eq!(o.status.code(), Some(0), "skips are not failures");
}

#[test]
fn rollout_at_reject_is_done_not_blocked() {
    let s = fixtures();
    let dir = TempDir::new("at-reject");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let r = write_report(&dir, "r.xml", "byodkim.com", "a1", &RECORD.replace("lint.com", "byodkim.com"));
    ses_dmarc(&["reports", "ingest", r.to_str().unwrap(), "--database", &db]);
    let ns = s.addr().to_string();
    let o = ses_dmarc(&["rollout", "byodkim.com", "--database", &db, "--nameserver", &ns]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("p=reject is in force"), "{}", stdout(&o));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let s = fixtures();
    let ns = s.addr().to_string();
    for args in [
        vec!["spf", "apex-spf-lookups.com", "--nameserver", &ns, "--format", "json"],
        vec!["plan", "example.com", "--region", "us-east-1", "--format", "json"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert!(!stderr(&o).contains("Broken pipe"), "{args:?}: {}", stderr(&o));
        assert_ne!(o.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn help_documents_arguments_and_the_default_database_where_it_is() {
    for args in [
        ["reports", "summary", "--help"],
        ["rollout", "--help", ""],
        ["ses", "status", "--help"],
        ["ses", "set-mail-from", "--help"],
    ] {
        let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
        let out = stdout(&ses_dmarc(&args));
        assert!(out.contains("<DOMAIN>") && out.contains("e.g. example.com"), "{args:?}: {out}");
    }
    let out = stdout(&run_env(&["reports", "ingest", "--help"], &[("XDG_DATA_HOME", "/srv/data")]));
    assert!(out.contains("/srv/data/ses-dmarc/reports.sqlite"), "{out}");
    assert!(stdout(&ses_dmarc(&["plan", "--help"])).contains("Exit codes"));
    let set = stdout(&ses_dmarc(&["ses", "set-mail-from", "--help"]));
    assert!(set.contains("The SES region whose identity gets the MAIL FROM setting"), "{set}");
}

#[test]
fn plurals_and_colour() {
    let dir = TempDir::new("plurals");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let r = write_report(&dir, "r.xml", "lint.com", "p1", RECORD);
    let o = ses_dmarc(&["reports", "ingest", r.to_str().unwrap(), "--database", &db]);
    assert!(stdout(&o).contains("1 report, 1 record, 3 messages"), "{}", stdout(&o));
    let o = ses_dmarc(&["reports", "summary", "lint.com", "--database", &db]);
    assert!(stdout(&o).contains("1 report over 1 day"), "{}", stdout(&o));
    let o = run_env(&["plan", "example.com", "--region", "us-east-1", "--color", "always"], &[]);
    assert!(stdout(&o).contains('\x1b'), "--color always colours a pipe");
    let o = run_env(&["plan", "example.com", "--region", "us-east-1", "--color", "never"], &[("TERM", "xterm")]);
    assert!(!stdout(&o).contains('\x1b'));
}

#[test]
fn an_apex_spf_domain_without_a_dot_is_a_domain_spec_problem() {
    let o = ses_dmarc(&["plan", "example.com", "--region", "us-east-1", "--apex-spf", "v=spf1 include:a ~all"]);
    let out = stdout(&o);
    assert!(out.contains("spf-invalid-domain-spec") && !out.contains("spf-invalid-macro"), "{out}");
}

#[test]
fn aws_failures_exit_3_everywhere_in_plain_words() {
    let home = TempDir::new("aws-home");
    let env = [
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ];
    for args in [
        vec!["plan", "example.com", "--region", "us-east-1", "--from-ses"],
        vec!["check", "example.com", "--region", "us-east-1", "--from-ses", "--nameserver", "127.0.0.1:9"],
        vec!["ses", "status", "example.com", "--region", "us-east-1", "--no-dns"],
        vec!["ses", "account", "--region", "us-east-1"],
        vec!["apply", "example.com", "--route53", "--region", "us-east-1", "--dry-run"],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"));
        c.args(&args)
            .env("NO_COLOR", "1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(3), "{args:?}: {all}");
        assert!(!all.contains("DispatchFailure") && !all.contains("ConnectorError"), "{args:?}: {all}");
        assert!(!all.contains("would be submitted"), "{args:?}: {all}");
    }
    let o = run_env(
        &["ses", "status", "example.com", "--region", "us-east-1", "--no-dns"],
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("AWS_PROFILE", "nosuch"),
            ("AWS_CONFIG_FILE", "/nonexistent/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("`nosuch`") && !all.contains("set AWS_PROFILE ("), "{all}");
}
