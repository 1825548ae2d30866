//! Several workers on one PostgreSQL: three `serve` processes share 300 due domains (the
//! in-process DNS server answers them, slowly enough that a pass takes a while) and a
//! Dovecot mailbox of reports; one is killed with SIGKILL mid-pass. Then every domain is
//! checked exactly once, every report stored once, every event made once (the same events
//! a single worker makes) and every alert delivered (counted by idempotency key). And two
//! `serve` on one SQLite file: the second says it needs PostgreSQL.

use crate::intake::{PASSWORD, corpus_mailbox, deliver, expected_totals, imap_source, totals};
use crate::serve::Served;
use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::TestServer;
use ses_dmarc_store::{Location, Store};
use ses_dmarc_testkit::{TempDir, TestDb, unavailable};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOMAINS: usize = 300;

fn zones() -> Vec<(String, String)> {
    let ses = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones/amazonses.com.zone"),
    )
    .unwrap();
    let mut zones = vec![("amazonses.com.".to_string(), ses)];
    for i in 0..DOMAINS {
        let name = format!("w{i:03}.test");
        // Every third domain has no DMARC record, every fifth a MAIL FROM without SPF: some
        // domains raise events at their first check, some do not.
        let dmarc =
            if i % 3 == 0 { String::new() } else { format!("_dmarc TXT \"v=DMARC1; p=none; rua=mailto:d@{name}\"\n") };
        let spf =
            if i % 5 == 0 { String::new() } else { "mail TXT \"v=spf1 include:amazonses.com ~all\"\n".to_string() };
        zones.push((
            format!("{name}."),
            format!(
                "$ORIGIN {name}.\n$TTL 300\n@ 3600 IN SOA ns.test. h.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n\
                 @ TXT \"v=spf1 -all\"\nmail MX 10 feedback-smtp.us-east-1.amazonses.com.\n{spf}\
                 tokenone._domainkey CNAME tokenone.dkim.amazonses.com.\ntokentwo._domainkey CNAME tokentwo.dkim.amazonses.com.\n\
                 tokenthree._domainkey CNAME tokenthree.dkim.amazonses.com.\n{dmarc}"
            ),
        ));
    }
    zones
}

/// Counts webhook deliveries by idempotency key; answers 200.
fn receiver() -> (String, Arc<Mutex<BTreeMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut key, mut length) = (String::new(), 0usize);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((k, v)) = line.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "idempotency-key" => key = v.trim().to_string(),
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    *kept.lock().unwrap().entry(key).or_insert(0) += 1;
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                }
            });
        }
    });
    (url, seen)
}

fn config(dir: &TempDir, name: &str, db: &str, dns: &TestServer, hook: &str, imap: &str) -> std::path::PathBuf {
    let mut text = format!(
        "database = \"{db}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = 2.0\nattempts = 2\n\
         [schedule]\ncheck = \"daily\"\njitter = \"0s\"\nlease = \"3s\"\npoll = \"1s\"\nintake = \"10s\"\n\
         [watch]\nconcurrency = 8\n[[alert.webhook]]\nurl = \"{hook}\"\n{imap}",
        dns.addr()
    );
    for i in 0..DOMAINS {
        text.push_str(&format!(
            "[[domain]]\nname = \"w{i:03}.test\"\nregions = [\"us-east-1\"]\nmail_from = \"mail\"\n\
             dkim_tokens = [\"tokenone\", \"tokentwo\", \"tokenthree\"]\n"
        ));
    }
    let path = dir.join(&format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Each domain's events as (domain, kind, code), sorted: what must match between runs.
fn events_of(store: &mut Store) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = store
        .events(None, 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|e| {
            let body: Value = serde_json::from_str(&e.body).unwrap();
            (e.domain.unwrap_or_default(), e.kind, body["code"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    out.sort();
    out
}

fn start_worker(config: &std::path::Path) -> Served {
    Served::start_with_env(config, &[("SES_DMARC_TEST_IMAP_PASSWORD", PASSWORD)])
}

#[test]
fn three_workers_one_killed_mid_pass_do_everything_once() {
    let pg = match TestDb::postgres("workers") {
        Ok(db) => db,
        Err(e) => return unavailable("PostgreSQL", &e),
    };
    let Some(dovecot) = crate::intake::start(&[("reports", PASSWORD)], &Default::default()) else { return };
    let dir = TempDir::new("workers");
    let zone_list = zones();
    let refs: Vec<(&str, &str)> = zone_list.iter().map(|(o, t)| (o.as_str(), t.as_str())).collect();
    let dns = TestServer::start(&refs).unwrap();
    let mails = corpus_mailbox();
    let expected = expected_totals(dir.path(), "workers", &mails);
    deliver(&dovecot, "reports", &mails);
    let imap = imap_source(&dovecot, "inbox", "reports", "implicit", "processed_folder = \"Done\"\nbatch = 5\n");

    // The reference: one worker, on SQLite, the same domains (no mailbox).
    let (hook_ref, _) = receiver();
    let reference_db = format!("sqlite://{}", dir.join("reference.sqlite").display());
    let reference = config(&dir, "reference", &reference_db, &dns, &hook_ref, "");
    let o = ses_dmarc(&["watch", "run", "--config", reference.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut reference_store = Store::open(&Location::parse(&reference_db).unwrap()).unwrap();
    let reference_events = events_of(&mut reference_store);
    assert!(reference_events.len() >= DOMAINS / 3, "{}", reference_events.len());

    // Three workers on PostgreSQL; DNS slowed so that the pass is long enough to kill into.
    dns.set_delay(Some(Duration::from_millis(25)));
    let (hook, received) = receiver();
    let shared = config(&dir, "shared", &pg.url, &dns, &hook, &imap);
    let location = Location::parse(&pg.url).unwrap();
    let mut workers: Vec<Served> = (0..3).map(|_| start_worker(&shared)).collect();
    let mut store = Store::open(&location).unwrap();
    let victim_pid = i64::from(workers[0].pid());
    let deadline = Instant::now() + Duration::from_secs(60);
    let held_at_kill = loop {
        let checked: i64 = store.watched_domains().unwrap().iter().map(|w| w.checks).sum();
        let victim = store.workers().unwrap().into_iter().find(|w| w.pid == victim_pid);
        let held = match &victim {
            Some(w) => store.holdings(&w.id, ses_dmarc_ops::now()).unwrap().domains.len(),
            None => 0,
        };
        if checked >= 40 && held > 0 {
            workers[0].kill();
            break held;
        }
        assert!(checked < DOMAINS as i64, "the pass ended before the kill ({checked} checked)");
        assert!(Instant::now() < deadline, "no pass started: {}", workers[0].log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(held_at_kill > 0);

    // The others finish the pass, the killed worker's domains once its claims expire.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let watched = store.watched_domains().unwrap();
        let unchecked = watched.iter().filter(|w| w.checks == 0).count();
        let pending = store.undelivered().unwrap().len();
        let stored = store.totals().unwrap();
        if unchecked == 0 && pending == 0 && stored.reports == expected.reports && stored.failures == expected.failures
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done: {unchecked} unchecked, {pending} alerts pending, {stored:?} of {expected:?}\n{}\n{}",
            workers[1].log(),
            workers[2].log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));

    let watched = store.watched_domains().unwrap();
    let twice: Vec<&str> = watched.iter().filter(|w| w.checks != 1).map(|w| w.domain.as_str()).collect();
    assert!(twice.is_empty(), "checked other than once: {twice:?}");
    assert_eq!(totals(&pg.url), expected, "every report stored once");
    assert_eq!(events_of(&mut store), reference_events, "the events one worker makes, each once");
    let events = store.events(None, 0, i64::MAX).unwrap();
    let counts = received.lock().unwrap().clone();
    for e in &events {
        let n = counts.get(&e.id).copied().unwrap_or(0);
        assert!(n >= 1, "event {} ({}) never delivered", e.id, e.kind);
    }
    // At least once: only an alert in flight when the worker died may come twice.
    let again: usize = counts.values().map(|n| n - 1).sum();
    assert!(again <= 1, "{again} alerts delivered more than once: {counts:?}");
    assert_eq!(counts.len(), events.len(), "no delivery of an unknown event");

    // `workers` shows the killed one as gone and the two others live, then stopped.
    std::thread::sleep(Duration::from_secs(3));
    let view = workers_json(&shared);
    let states: Vec<&str> = view["workers"].as_array().unwrap().iter().map(|w| w["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["live", "live", "gone"], "{view}");
    assert_eq!(view["queue"]["due_domains"], 0, "{view}");
    for w in workers.drain(1..) {
        assert_eq!(w.stop(), Some(0));
    }
    let view = workers_json(&shared);
    let stopped = view["workers"].as_array().unwrap().iter().filter(|w| w["state"] == "stopped").count();
    assert_eq!(stopped, 2, "{view}");
}

fn workers_json(config: &std::path::Path) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(["workers", "--config", config.to_str().unwrap(), "--format", "json"])
        .env("SES_DMARC_TEST_IMAP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn two_serve_on_one_sqlite_file_are_refused() {
    let dir = TempDir::new("workers-sqlite");
    let dns = TestServer::start(&[]).unwrap();
    let db = format!("sqlite://{}", dir.join("one.sqlite").display());
    let config_path = dir.join("one.toml");
    std::fs::write(
        &config_path,
        format!("database = \"{db}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = 1.0\nattempts = 1\n", dns.addr()),
    )
    .unwrap();
    let first = Served::start(&config_path);
    let second = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(["serve", "--config", config_path.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    let message = stderr(&second);
    assert!(message.contains("several workers need PostgreSQL"), "{message}");
    assert!(message.contains(&first.pid().to_string()), "names the other process: {message}");
    // A `watch run` beside it is fine: it claims what it checks.
    let o = ses_dmarc(&["watch", "run", "--config", config_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(first.stop(), Some(0));
    // Once the first has stopped, another may start.
    let again = Served::start(&config_path);
    assert_eq!(again.stop(), Some(0));
}
