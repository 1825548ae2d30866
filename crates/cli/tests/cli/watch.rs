//! `watch` end to end: a zone changed between passes on the in-process DNS server gives
//! exactly the expected events; they reach a webhook receiver in the test (signature
//! checked) and a real SMTP sink (aiosmtpd); a kill between storing and sending loses
//! nothing. On SQLite and PostgreSQL.

use crate::fake_aws::{FakeAccount, FakeIdentity, FakeSes, FakeState};
use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::{Fault, TestServer};
use ses_dmarc_testkit::{TempDir, databases};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "webhook-test-secret";

/// A webhook receiver: records every POST (event id → body, signature valid); answers
/// 200, 500, or never (by `mode`).
struct Webhook {
    url: String,
    received: Received,
    mode: Arc<AtomicU8>,
}

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

fn read_request(stream: &TcpStream) -> Option<(BTreeMap<String, String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

type Received = Arc<Mutex<Vec<(String, Value, bool)>>>;

/// One connection, on its own thread so that a hanging answer does not block the next.
fn answer(mut stream: TcpStream, received: &Received, mode: &AtomicU8) {
    let Some((headers, body)) = read_request(&stream) else { return };
    match mode.load(Ordering::SeqCst) {
        HANG => {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        FAIL => {
            let _ = stream
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops");
            return;
        }
        _ => {}
    }
    let expected = format!("sha256={}", ses_dmarc_monitor::alerts::sign(SECRET, &body));
    let signed = headers.get("x-ses-dmarc-signature") == Some(&expected);
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers.get("idempotency-key").cloned().unwrap_or_default();
    // Slack's incoming webhooks get a text, with no key.
    if !id.is_empty() {
        assert_eq!(Some(id.as_str()), value["id"].as_str(), "the idempotency key is the event id");
    }
    received.lock().unwrap().push((id, value, signed));
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(AtomicU8::new(OK));
        let (r, m) = (received.clone(), mode.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, m) = (r.clone(), m.clone());
                std::thread::spawn(move || answer(stream, &r, &m));
            }
        });
        Webhook { url, received, mode }
    }

    fn kinds(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v, _)| v["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// aiosmtpd on loopback, writing each message into a Maildir; killed on drop.
struct Smtp {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    fn start() -> Option<Smtp> {
        let python = ses_dmarc_testkit::venv_bin("python");
        if !python.exists() {
            ses_dmarc_testkit::unavailable("aiosmtpd (scripts/test installs it)", &python.display());
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = TempDir::new("smtp-sink");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let smtp = Smtp { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                ses_dmarc_testkit::unavailable("aiosmtpd", &"it did not listen within 20 s");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(smtp)
    }

    /// Every message received: (Subject, body).
    fn messages(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join("mail").join(sub)) else { continue };
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let (head, body) =
                    text.split_once("\r\n\r\n").or_else(|| text.split_once("\n\n")).unwrap_or((&text, ""));
                let subject = head.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_string();
                out.push((subject, body.replace("=\r\n", "").replace("=\n", "")));
            }
        }
        out
    }
}

fn amazonses() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones/amazonses.com.zone"),
    )
    .unwrap()
}

fn zone(dkim_one: bool, policy: &str) -> String {
    let mut z = String::from(
        "$ORIGIN watched.test.\n$TTL 300\n@ 3600 IN SOA ns.test. h.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n\
         @ TXT \"v=spf1 -all\"\nmail MX 10 feedback-smtp.us-east-1.amazonses.com.\nmail TXT \"v=spf1 include:amazonses.com ~all\"\n\
         tokentwo._domainkey CNAME tokentwo.dkim.amazonses.com.\ntokenthree._domainkey CNAME tokenthree.dkim.amazonses.com.\n",
    );
    if dkim_one {
        z.push_str("tokenone._domainkey CNAME tokenone.dkim.amazonses.com.\n");
    }
    z.push_str(&format!("_dmarc TXT \"v=DMARC1; p={policy}; rua=mailto:dmarc@watched.test\"\n"));
    z
}

/// The DNS server, restarted on the same port with other zones between passes.
struct Dns {
    dir: TempDir,
    server: Option<TestServer>,
    port: u16,
}

impl Dns {
    fn start(zone_text: &str) -> Dns {
        let dir = TempDir::new("watch-zones");
        std::fs::write(dir.join("amazonses.com.zone"), amazonses()).unwrap();
        std::fs::write(dir.join("watched.test.zone"), zone_text).unwrap();
        std::fs::write(
            dir.join("quiet.test.zone"),
            "$ORIGIN quiet.test.\n$TTL 300\n@ 3600 IN SOA ns.test. h.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n\
             @ TXT \"v=spf1 -all\"\n_dmarc TXT \"v=DMARC1; p=none; rua=mailto:dmarc@quiet.test\"\n",
        )
        .unwrap();
        let server = TestServer::start_zone_dir(dir.path(), 0).unwrap();
        let port = server.addr().port();
        Dns { dir, server: Some(server), port }
    }

    fn change(&mut self, zone_text: &str) {
        std::fs::write(self.dir.join("watched.test.zone"), zone_text).unwrap();
        drop(self.server.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TestServer::start_zone_dir(self.dir.path(), self.port) {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("restart the DNS server: {e}"),
            }
        }
    }

    fn server(&self) -> &TestServer {
        self.server.as_ref().unwrap()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn report(id: &str, end: i64, rows: &[(&str, u64, bool)]) -> String {
    let records: String = rows
        .iter()
        .map(|(ip, n, aligned)| {
            // SES mail (aligned) signs twice and bounces to amazonses.com; the stranger does not.
            let (dkim, auth) = if *aligned {
                (
                    "pass",
                    "<dkim><domain>watched.test</domain><selector>tokenone</selector><result>pass</result></dkim>\
                     <dkim><domain>amazonses.com</domain><result>pass</result></dkim><spf><domain>amazonses.com</domain><result>pass</result></spf>",
                )
            } else {
                ("fail", "<dkim><domain>elsewhere.test</domain><result>pass</result></dkim><spf><domain>elsewhere.test</domain><result>pass</result></spf>")
            };
            format!(
                "<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition><dkim>{dkim}</dkim><spf>fail</spf></policy_evaluated></row>\
                 <identifiers><header_from>watched.test</header_from></identifiers><auth_results>{auth}</auth_results></record>"
            )
        })
        .collect();
    format!(
        "<feedback><report_metadata><org_name>receiver.test</org_name><report_id>{id}</report_id><date_range><begin>{}</begin><end>{end}</end></date_range></report_metadata>\
         <policy_published><domain>watched.test</domain><p>none</p></policy_published>{records}</feedback>",
        end - 86_400
    )
}

fn config(dir: &TempDir, db: &str, dns: &Dns, hook: &Webhook, smtp: Option<&Smtp>) -> std::path::PathBuf {
    let mut text = format!(
        "database = \"{db}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = 1.0\nattempts = 1\n[schedule]\ncheck = \"daily\"\njitter = \"0s\"\n\
         [[domain]]\nname = \"watched.test\"\nregions = [\"us-east-1\"]\nmail_from = \"mail\"\ndkim_tokens = [\"tokenone\", \"tokentwo\", \"tokenthree\"]\n\
         [[domain]]\nname = \"quiet.test\"\n\
         [[alert.webhook]]\nurl = \"{}\"\nsecret_env = \"SES_DMARC_TEST_WEBHOOK_SECRET\"\n",
        dns.addr(),
        hook.url
    );
    if let Some(s) = smtp {
        text.push_str(&format!(
            "[[alert.email]]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\nfrom = \"ses-dmarc@watch.test\"\nto = [\"ops@watch.test\"]\n",
            s.port
        ));
    }
    let path = dir.join(&format!("config-{}.toml", db.len()));
    std::fs::write(&path, text).unwrap();
    path
}

fn watch_run(config: &std::path::Path, at: i64) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(["watch", "run", "--config", config.to_str().unwrap(), "--format", "json", "--now"])
        .arg(ses_dmarc_monitor::schedule::rfc3339(at))
        .env("SES_DMARC_TEST_WEBHOOK_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn kinds_of(run: &Value, domain: &str) -> Vec<String> {
    run["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["domain"] == domain)
        .flat_map(|c| c["events"].as_array().unwrap().iter())
        .map(|e| {
            format!("{} {}", e["kind"].as_str().unwrap(), e["subject"].as_str().unwrap_or(e["code"].as_str().unwrap()))
        })
        .collect()
}

#[test]
fn changes_between_passes_become_events_and_alerts() {
    let smtp = Smtp::start();
    let dir = TempDir::new("watch");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let day = 86_400;
    for db in databases(dir.path(), "watch") {
        let mut dns = Dns::start(&zone(true, "reject"));
        let hook = Webhook::start();
        let cfg = config(&dir, &db.url, &dns, &hook, smtp.as_ref());
        // Reports before the first pass: the baseline of known sources.
        let r1 = dir.join("r1.xml");
        std::fs::write(&r1, report(&format!("base-{}", db.kind), now - 3600, &[("192.0.2.10", 300, true)])).unwrap();
        let o = ses_dmarc(&["reports", "ingest", r1.to_str().unwrap(), "--database", &db.url]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

        // Pass 1: everything fine.
        let t0 = now;
        let p1 = watch_run(&cfg, t0);
        assert_eq!(kinds_of(&p1, "watched.test"), Vec::<String>::new(), "{p1}");
        // Break things: a DKIM CNAME removed, p=reject → p=none, the MAIL FROM MX failing.
        dns.change(&zone(false, "none"));
        dns.server().set_fault("mail.watched.test", Fault::ServFail);
        let p2 = watch_run(&cfg, t0 + day);
        let k2 = kinds_of(&p2, "watched.test");
        assert!(k2.contains(&"finding-raised tokenone._domainkey.watched.test".to_string()), "{k2:?}");
        assert!(k2.contains(&"record-changed _dmarc.watched.test TXT".to_string()), "{k2:?}");
        assert!(!k2.iter().any(|k| k.starts_with("dns-unknown")), "one failure is not news: {k2:?}");
        assert!(
            !k2.iter().any(|k| k.contains("mail.watched.test") && k.starts_with("finding")),
            "no finding for an unfetched record: {k2:?}"
        );
        let changed = p2["checked"][1]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "record-changed")
            .unwrap()
            .clone();
        assert_eq!(changed["severity"], "error", "{changed}");
        assert!(
            changed["before"].as_str().unwrap().contains("p=reject")
                && changed["after"].as_str().unwrap().contains("p=none")
        );
        // Pass 2 again (same day, not due): nothing.
        let again = watch_run(&cfg, t0 + day + 60);
        assert!(again["checked"].as_array().unwrap().is_empty(), "not due: {again}");
        // Pass 3: the second failure in a row is news; the raised finding is not raised again.
        let p3 = watch_run(&cfg, t0 + 2 * day);
        let k3 = kinds_of(&p3, "watched.test");
        assert!(
            k3.contains(&"dns-unknown mail.watched.test MX".to_string())
                || k3.iter().any(|k| k.starts_with("dns-unknown mail.watched.test")),
            "{k3:?}"
        );
        assert!(!k3.iter().any(|k| k.starts_with("finding-raised")), "{k3:?}");
        // Reports: a new source failing DMARC, and the pass rate down.
        let r2 = dir.join("r2.xml");
        std::fs::write(
            &r2,
            report(&format!("new-{}", db.kind), now - 1800, &[("192.0.2.10", 200, true), ("203.0.113.66", 150, false)]),
        )
        .unwrap();
        ses_dmarc(&["reports", "ingest", r2.to_str().unwrap(), "--database", &db.url]);
        // The CNAME is back and the MX answers again.
        dns.change(&zone(true, "none"));
        let p4 = watch_run(&cfg, t0 + 3 * day + 3600);
        let k4 = kinds_of(&p4, "watched.test");
        assert!(k4.contains(&"finding-resolved tokenone._domainkey.watched.test".to_string()), "{k4:?}");
        assert!(k4.contains(&"new-source 203.0.113.66".to_string()), "{k4:?}");
        assert!(k4.iter().any(|k| k.starts_with("pass-rate-dropped")), "{k4:?}");
        // quiet.test asks for reports and none came in over three days.
        let kq = kinds_of(&p4, "quiet.test");
        assert!(kq.iter().any(|k| k.starts_with("reports-missing")), "{kq:?}");

        // Every event reached the webhook, signed, once.
        let received = hook.received.lock().unwrap().clone();
        assert!(received.iter().all(|(_, _, signed)| *signed), "every signature is valid");
        let all_events: Vec<String> = [&p1, &p2, &p3, &p4]
            .iter()
            .flat_map(|p| p["checked"].as_array().unwrap().iter())
            .flat_map(|c| c["events"].as_array().unwrap().iter())
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        let mut got: Vec<String> = received.iter().map(|(id, _, _)| id.clone()).collect();
        got.sort();
        got.dedup();
        let mut want = all_events.clone();
        want.sort();
        assert_eq!(got, want, "webhook: {:?}", hook.kinds());
        // And by e-mail, with the fix in the text.
        if let Some(smtp) = &smtp {
            let messages = smtp.messages();
            assert!(messages.len() >= all_events.len(), "{} messages for {} events", messages.len(), all_events.len());
            let dkim =
                messages.iter().find(|(s, _)| s.contains("finding-raised dkim-cname-missing")).expect("the DKIM alert");
            assert!(dkim.1.contains("Fix: tokenone._domainkey.watched.test. CNAME"), "{}", dkim.1);
        }
        // The history shows the timeline.
        let h = ses_dmarc(&["watch", "history", "watched.test", "--database", &db.url, "--format", "json"]);
        let h: Value = serde_json::from_str(&stdout(&h)).unwrap();
        assert!(h["events"].as_array().unwrap().len() >= 5);
        assert!(h["snapshots"].as_array().unwrap().len() >= 3, "a snapshot per change: {}", h["snapshots"]);
        let l = ses_dmarc(&["watch", "list", "--database", &db.url, "--format", "json"]);
        let l: Value = serde_json::from_str(&stdout(&l)).unwrap();
        assert_eq!(l[1]["domain"], "watched.test");
        assert_eq!(l[1]["checks"], 4);
        for field in ["domain", "tags", "last_checked", "checks", "verdict", "errors", "warnings"] {
            assert!(l[1].get(field).is_some(), "watch list lacks {field}");
        }
    }
}

#[test]
fn a_kill_between_storing_and_sending_loses_no_alert() {
    let dir = TempDir::new("watch-kill");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for db in databases(dir.path(), "kill") {
        let dns = Dns::start(&zone(false, "none"));
        let hook = Webhook::start();
        let cfg = config(&dir, &db.url, &dns, &hook, None);
        // The webhook never answers: the pass stores its events, then hangs sending; kill it.
        hook.mode.store(HANG, Ordering::SeqCst);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
            .args(["watch", "run", "--config", cfg.to_str().unwrap(), "--now"])
            .arg(ses_dmarc_monitor::schedule::rfc3339(now))
            .env("SES_DMARC_TEST_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        child.kill().unwrap();
        child.wait().unwrap();
        // A failing endpoint: the alerts stay in the outbox, and the pass says so.
        hook.mode.store(FAIL, Ordering::SeqCst);
        let failing = watch_run(&cfg, now + 60);
        let deliveries = failing["deliveries"].as_array().unwrap();
        assert!(!deliveries.is_empty() && deliveries.iter().all(|d| d["delivered"] == false), "{failing}");
        assert!(deliveries[0]["error"].as_str().unwrap().contains("500"), "{failing}");
        // Working again, after the back-off: everything is delivered, nothing lost.
        hook.mode.store(OK, Ordering::SeqCst);
        let later = watch_run(&cfg, now + 3600);
        assert!(later["deliveries"].as_array().unwrap().iter().all(|d| d["delivered"] == true), "{later}");
        let h = ses_dmarc(&["watch", "history", "watched.test", "--database", &db.url, "--format", "json"]);
        let h: Value = serde_json::from_str(&stdout(&h)).unwrap();
        let stored: Vec<String> =
            h["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
        let got: Vec<String> = hook.received.lock().unwrap().iter().map(|(id, _, _)| id.clone()).collect();
        assert!(!stored.is_empty());
        for id in &stored {
            assert!(got.contains(id), "event {id} was never delivered");
        }
        let _ = dns.server();
    }
}

#[test]
fn ses_status_changes_are_events_and_bad_config_exits_2() {
    let dir = TempDir::new("watch-ses");
    let dns = Dns::start(&zone(true, "reject"));
    let identity = FakeIdentity {
        verification: "Success",
        dkim_status_v1: "Success",
        dkim_status_v2: "SUCCESS",
        dkim_enabled: true,
        tokens: vec!["tokenone".into(), "tokentwo".into(), "tokenthree".into()],
        origin: "AWS_SES",
        current_key: "RSA_2048_BIT",
        mail_from: Some(("mail.watched.test".into(), "Success", "UseDefaultValue")),
        ..Default::default()
    };
    let ses =
        FakeSes::start(FakeState { identities: [("watched.test".to_string(), identity)].into(), ..Default::default() });
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let add = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/x")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/x")
            .env("AWS_ENDPOINT_URL", &ses.url)
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let o = add(&[
        "watch",
        "add",
        "watched.test",
        "--region",
        "us-east-1",
        "--from-ses",
        "--tag",
        "client-a",
        "--database",
        &db,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ns = dns.addr();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let run = |at: i64| {
        let o = add(&[
            "watch",
            "run",
            "--database",
            &db,
            "--nameserver",
            &ns,
            "--format",
            "json",
            "--now",
            &ses_dmarc_monitor::schedule::rfc3339(at),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()
    };
    let first = run(now);
    assert!(first["checked"][0]["error"].is_null(), "{first}");
    ses.state.lock().unwrap().identities.get_mut("watched.test").unwrap().dkim_status_v2 = "FAILED";
    ses.state.lock().unwrap().identities.get_mut("watched.test").unwrap().dkim_status_v1 = "Failed";
    let second = run(now + 86_400);
    let events = second["checked"][0]["events"].as_array().unwrap();
    let changed = events.iter().find(|e| e["kind"] == "ses-status-changed").unwrap_or_else(|| panic!("{second}"));
    assert!(changed["after"].as_str().unwrap().contains("FAILED"), "{changed}");
    assert_eq!(changed["severity"], "error");

    // A configuration with a typo, a missing secret, or a bad schedule: exit 2, file and line.
    for (text, hint) in [
        ("[dns]\nnameserver = [\"127.0.0.1\"]\n", "did you mean `nameservers`"),
        ("[[alert.webhook]]\nurl = \"http://x.test\"\nsecret_env = \"SES_DMARC_UNSET_VAR\"\n", "SES_DMARC_UNSET_VAR"),
        ("[schedule]\n\ncheck = \"whenever\"\n", "line 3"),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let o = ses_dmarc(&["watch", "run", "--config", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}");
        assert!(stderr(&o).contains("bad.toml") && stderr(&o).contains(hint), "{text}: {}", stderr(&o));
    }
}

#[test]
fn ses_account_changes_are_events_and_a_rate_at_the_threshold_does_not_flap() {
    let dir = TempDir::new("watch-account");
    let dns = Dns::start(&zone(true, "reject"));
    let identity = FakeIdentity {
        verification: "Success",
        dkim_status_v1: "Success",
        dkim_status_v2: "SUCCESS",
        dkim_enabled: true,
        tokens: vec!["tokenone".into(), "tokentwo".into(), "tokenthree".into()],
        origin: "AWS_SES",
        current_key: "RSA_2048_BIT",
        mail_from: Some(("mail.watched.test".into(), "Success", "UseDefaultValue")),
        ..Default::default()
    };
    let ses = FakeSes::start(FakeState {
        identities: [("watched.test".to_string(), identity)].into(),
        accounts: [("us-east-1".to_string(), FakeAccount::sandbox())].into(),
        ..Default::default()
    });
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let aws = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/x")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/x")
            .env("AWS_ENDPOINT_URL", &ses.url)
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let o = aws(&["watch", "add", "watched.test", "--region", "us-east-1", "--from-ses", "--database", &db]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ns = dns.addr();
    let day = 86_400;
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // One pass a day; the bounce rate CloudWatch has an hour before each.
    let pass = |n: i64, bounce: f64| -> Vec<(String, String)> {
        let at = start + n * day;
        ses.state.lock().unwrap().metric("us-east-1", "Reputation.BounceRate", None, &[(at - 3600, bounce)]);
        let o = aws(&[
            "watch",
            "run",
            "--database",
            &db,
            "--nameserver",
            &ns,
            "--format",
            "json",
            "--now",
            &ses_dmarc_monitor::schedule::rfc3339(at),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["checked"][0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "ses-status-changed")
            .map(|e| (e["severity"].as_str().unwrap().to_string(), e["message"].as_str().unwrap().to_string()))
            .collect()
    };
    let account = |f: &dyn Fn(&mut FakeAccount)| {
        let mut st = ses.state.lock().unwrap();
        f(st.accounts.get_mut("us-east-1").unwrap());
    };
    assert!(pass(0, 0.03).is_empty(), "the first check has nothing to compare with");
    // Sandbox → production.
    account(&|a| *a = FakeAccount::default());
    let events = pass(1, 0.031);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "info");
    assert!(events[0].1.contains("SES account in us-east-1: production access granted"), "{events:?}");
    // Sending paused, and the bounce rate crosses AWS's review threshold.
    account(&|a| a.sending_enabled = false);
    let events = pass(2, 0.051);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        ("error".into(), "SES account in us-east-1: sending paused; SES refuses every message there".into())
    );
    assert_eq!(events[1].0, "error");
    assert!(
        events[1].1.contains("bounce rate 5.10% reached AWS's review threshold of 5.00% (was near (3.10%))"),
        "{events:?}"
    );
    // Hovering just under the threshold: no news either way.
    assert!(pass(3, 0.048).is_empty());
    assert!(pass(4, 0.0502).is_empty());
    assert!(pass(5, 0.046).is_empty());
    // Clearly below, and sending resumed.
    account(&|a| a.sending_enabled = true);
    let events = pass(6, 0.040);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].1.contains("sending resumed") && events[1].1.contains("fell back to near"), "{events:?}");
    // The enforcement status, and a check where GetAccount is denied: that is no change.
    account(&|a| a.enforcement_status = "PROBATION");
    let events = pass(7, 0.040);
    assert_eq!(
        events,
        [(
            "warning".to_string(),
            "SES account in us-east-1: enforcement status HEALTHY → PROBATION: AWS placed the account under review"
                .to_string()
        )]
    );
    ses.state.lock().unwrap().fail_ops.insert("GetAccount", (403, "AccessDeniedException"));
    let o = aws(&[
        "watch",
        "run",
        "--database",
        &db,
        "--nameserver",
        &ns,
        "--format",
        "json",
        "--now",
        &ses_dmarc_monitor::schedule::rfc3339(start + 8 * day),
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["checked"][0]["error"].as_str().unwrap().contains("ses:GetAccount"), "{v}");
    let kinds: Vec<&str> =
        v["checked"][0]["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(!kinds.contains(&"ses-status-changed"), "{v}");
}

/// Unaligned SES mail: the default MAIL FROM and no Easy DKIM, so only amazonses.com passes.
fn unaligned_ses_report(id: &str, end: i64, count: u64) -> String {
    report(id, end, &[("192.0.2.10", count, true)])
        .replace("<dkim><domain>watched.test</domain><selector>tokenone</selector><result>pass</result></dkim>", "")
        .replace("<dkim>pass</dkim>", "<dkim>fail</dkim>")
}

#[test]
fn the_rollout_becoming_ready_or_blocked_is_an_event_once() {
    let dir = TempDir::new("watch-rollout");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let day = 86_400;
    for db in databases(dir.path(), "rollout") {
        let dns = Dns::start(&zone(true, "none"));
        let hook = Webhook::start();
        let cfg = config(&dir, &db.url, &dns, &hook, None);
        // 20 days of aligned SES mail at p=none: ready for the testing step of quarantine.
        let reports = dir.join(&format!("reports-{}", db.kind));
        std::fs::create_dir_all(&reports).unwrap();
        for d in 1..=20 {
            std::fs::write(
                reports.join(format!("r{d}.xml")),
                report(&format!("day-{d}-{}", db.kind), now - d * day, &[("192.0.2.10", 40, true)]),
            )
            .unwrap();
        }
        let o = ses_dmarc(&["reports", "ingest", reports.to_str().unwrap(), "--database", &db.url]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let first = watch_run(&cfg, now);
        assert!(kinds_of(&first, "watched.test").contains(&"rollout-ready none".to_string()), "{first}");
        assert!(!kinds_of(&first, "quiet.test").iter().any(|k| k.starts_with("rollout")), "{first}");
        let ready = first["checked"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["events"].as_array().unwrap().iter())
            .find(|e| e["kind"] == "rollout-ready")
            .unwrap()
            .clone();
        assert_eq!(ready["severity"], "info");
        assert_eq!(ready["before"], "v=DMARC1; p=none; rua=mailto:dmarc@watched.test");
        assert_eq!(ready["after"], "v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@watched.test; t=y");
        assert!(ready["fix"].as_str().unwrap().contains("rollout watched.test --apply --route53"), "{ready}");
        // Still ready the next day: not news.
        let second = watch_run(&cfg, now + day);
        assert!(!kinds_of(&second, "watched.test").iter().any(|k| k.starts_with("rollout")), "{second}");
        // Then a day of unaligned SES mail: no longer ready, once.
        let bad = dir.join(&format!("bad-{}.xml", db.kind));
        std::fs::write(&bad, unaligned_ses_report(&format!("bad-{}", db.kind), now + day, 1000)).unwrap();
        ses_dmarc(&["reports", "ingest", bad.to_str().unwrap(), "--database", &db.url]);
        let third = watch_run(&cfg, now + 2 * day);
        let k3 = kinds_of(&third, "watched.test");
        assert!(k3.contains(&"rollout-blocked none".to_string()), "{k3:?}");
        let fourth = watch_run(&cfg, now + 3 * day);
        assert!(!kinds_of(&fourth, "watched.test").iter().any(|k| k.starts_with("rollout")), "{fourth}");
        let _ = dns.server();
    }
}

#[test]
fn slack_a_daily_digest_and_a_refused_login_each_get_their_alerts() {
    let Some(smtp) = Smtp::start() else { return };
    let dir = TempDir::new("watch-channels");
    let dns = Dns::start(&zone(false, "none"));
    let hook = Webhook::start();
    let slack = Webhook::start();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let cfg = dir.join("channels.toml");
    std::fs::write(
        &cfg,
        format!(
            "database = \"{db}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = 1.0\n[schedule]\njitter = \"0s\"\n\
             [[domain]]\nname = \"watched.test\"\nregions = [\"us-east-1\"]\nmail_from = \"mail\"\ndkim_tokens = [\"tokenone\", \"tokentwo\", \"tokenthree\"]\n\
             [[alert.webhook]]\nurl = \"{}\"\nsecret_env = \"SES_DMARC_TEST_WEBHOOK_SECRET\"\n\
             [[alert.slack]]\nurl = \"{}\"\n\
             [[alert.email]]\nname = \"digest\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"none\"\nfrom = \"ses-dmarc@watch.test\"\nto = [\"ops@watch.test\"]\nmode = \"daily\"\n\
             [[alert.email]]\nname = \"login\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"none\"\nuser = \"alerts\"\npassword_env = \"SES_DMARC_TEST_WEBHOOK_SECRET\"\nfrom = \"ses-dmarc@watch.test\"\nto = [\"ops@watch.test\"]\n",
            dns.addr(),
            hook.url,
            slack.url,
            port = smtp.port
        ),
    )
    .unwrap();
    // 03:00 UTC: the digest waits for 06:00.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let t0 = now / 86_400 * 86_400 + 3 * 3600;
    let first = watch_run(&cfg, t0);
    let events: Vec<&Value> =
        first["checked"].as_array().unwrap().iter().flat_map(|c| c["events"].as_array().unwrap().iter()).collect();
    assert!(events.iter().any(|e| e["code"] == "dkim-cname-missing"), "{first}");
    let deliveries = first["deliveries"].as_array().unwrap();
    let by = |channel: &str| deliveries.iter().filter(|d| d["channel"] == channel).collect::<Vec<_>>();
    assert_eq!(by("webhook#1").len(), events.len(), "{first}");
    assert!(by("webhook#1").iter().all(|d| d["delivered"] == true));
    assert!(by("slack#1").iter().all(|d| d["delivered"] == true) && by("slack#1").len() == events.len());
    assert!(by("digest").is_empty(), "the digest is not due before 06:00: {first}");
    // A server that does not take the login: a clear error, the alert kept, the rest sent.
    let login = by("login");
    assert_eq!(login.len(), events.len(), "{first}");
    for d in &login {
        assert_eq!(d["delivered"], false);
        assert!(d["error"].as_str().unwrap().starts_with("SMTP 127.0.0.1:"), "{d}");
        assert!(d["next_attempt"].is_string());
    }
    // Slack got a text with the fix.
    let texts: Vec<String> = slack
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v, _)| v["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("dkim-cname-missing") && t.contains("tokenone._domainkey.watched.test")),
        "{texts:?}"
    );
    assert!(smtp.messages().is_empty(), "nothing by e-mail yet");
    // 07:00: not due for a check; the digest goes out as one message with every event.
    let later = watch_run(&cfg, t0 + 4 * 3600);
    assert!(later["checked"].as_array().unwrap().is_empty(), "{later}");
    let digest: Vec<&Value> =
        later["deliveries"].as_array().unwrap().iter().filter(|d| d["channel"] == "digest").collect();
    assert_eq!(digest.len(), events.len(), "{later}");
    assert!(digest.iter().all(|d| d["delivered"] == true), "{later}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one digest: {messages:?}");
    assert!(messages[0].0.starts_with("[ses-dmarc] digest:"), "{}", messages[0].0);
    assert!(messages[0].1.contains("tokenone._domainkey.watched.test"), "{}", messages[0].1);
    // Nothing is sent twice.
    let again = watch_run(&cfg, t0 + 5 * 3600);
    assert!(again["deliveries"].as_array().unwrap().iter().all(|d| d["channel"] == "login"), "{again}");
    assert_eq!(smtp.messages().len(), 1);
}
