//! The store's own suite, run against every backend: SQLite always, PostgreSQL when a
//! server answers (required when `CI` is set).

use ses_dmarc_reports::aggregate::{DkimAuth, ReportHeader, ReportRecord, SpfAuth};
use ses_dmarc_reports::failure::FailureReport;
use ses_dmarc_store::{
    CheckWrite, CheckedDomain, Database, DomainState, Location, OpenMode, Store, StoreError, Stored, StoredEvent,
    Totals, WatchedDomain, WorkerInfo,
};
use ses_dmarc_testkit::{TempDir, databases};

fn header(id: &str, begin: i64) -> ReportHeader {
    let mut h = ReportHeader::default();
    h.metadata.org_name = "reporter.test".into();
    h.metadata.report_id = id.into();
    h.metadata.begin = begin;
    h.metadata.end = begin + 86_400;
    h.policy.domain = "example.com".into();
    h.policy.p = Some("none".into());
    h
}

fn record(ip: &str, count: u64) -> ReportRecord {
    ReportRecord {
        source_ip: ip.parse().ok(),
        source_ip_text: ip.into(),
        count,
        header_from: "example.com".into(),
        envelope_from: Some("mail.example.com".into()),
        disposition: Some("none".into()),
        evaluated_dkim: Some("pass".into()),
        evaluated_spf: Some("fail".into()),
        dkim: vec![DkimAuth {
            domain: "example.com".into(),
            selector: Some("s1".into()),
            result: "pass".into(),
            ..Default::default()
        }],
        spf: vec![SpfAuth { domain: "mail.example.com".into(), result: "pass".into(), ..Default::default() }],
        ..Default::default()
    }
}

/// Runs SQL on the database behind the store's back.
fn execute(location: &Location, sql: &str) {
    match location {
        Location::Sqlite(path) => {
            rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
        }
        Location::Postgres(url) => {
            postgres::Client::connect(url, postgres::NoTls).unwrap().batch_execute(sql).unwrap();
        }
    }
}

/// The databases to run on: SQLite, and PostgreSQL when this build has it (`--all-features`,
/// as scripts/test runs).
fn backends(dir: &std::path::Path, name: &str) -> Vec<ses_dmarc_testkit::TestDb> {
    if cfg!(feature = "postgres") {
        databases(dir, name)
    } else {
        eprintln!("PostgreSQL half skipped: built without the `postgres` feature");
        vec![ses_dmarc_testkit::TestDb::sqlite(dir, name)]
    }
}

fn each_store(name: &str, test: impl Fn(&mut Store, &Location)) {
    let dir = TempDir::new(&format!("store-{name}"));
    for db in backends(dir.path(), name) {
        let location = Location::parse(&db.url).unwrap();
        let mut store = Store::open(&location).unwrap_or_else(|e| panic!("{}: {e}", db.kind));
        test(&mut store, &location);
    }
}

#[test]
fn reports_are_stored_once_and_read_back() {
    each_store("reports", |store, location| {
        let records: Vec<ReportRecord> = (0..150).map(|i| record(&format!("192.0.2.{}", i % 200), i + 1)).collect();
        let stored = store.store_aggregate(&header("r1", 1_700_000_000), "in.xml", records.clone()).unwrap();
        assert_eq!(stored, Stored::New { records: 150, messages: (1..=150).sum() });
        assert_eq!(
            store.store_aggregate(&header("r1", 1_700_000_000), "again.xml", records).unwrap(),
            Stored::Duplicate
        );
        // The same id over another period is another report.
        store.store_aggregate(&header("r1", 1_700_086_400), "next.xml", vec![record("2001:DB8::1", 7)]).unwrap();
        assert_eq!(
            store.totals().unwrap(),
            Totals { reports: 2, records: 151, messages: (1..=150).sum::<u64>() + 7, failures: 0 }
        );

        let mut read = Vec::new();
        store.records_for("example.com", 0, i64::MAX, &mut |r| read.push(r)).unwrap();
        assert_eq!(read.len(), 151);
        let first = &read[0];
        assert_eq!(first.header.metadata.report_id, "r1");
        assert_eq!(first.header.policy.p.as_deref(), Some("none"));
        assert_eq!(first.record.dkim[0].selector.as_deref(), Some("s1"));
        assert_eq!(first.record.spf[0].domain, "mail.example.com");
        assert!(read.iter().any(|r| r.record.source_ip_text == "2001:db8::1"), "IPv6 stored canonical");
        assert_eq!(store.reports_for("example.com", 0, i64::MAX).unwrap().len(), 2);
        assert_eq!(
            store.reports_for("example.com", 1_700_086_400 + 86_399, i64::MAX).unwrap().len(),
            1,
            "{location:?}"
        );
        assert_eq!(store.reports_for("other.test", 0, i64::MAX).unwrap().len(), 0);
        let ips = store.source_ips("example.com", 0, i64::MAX).unwrap();
        assert_eq!(ips.len(), 151, "150 IPv4 addresses and one IPv6");
    });
}

#[test]
fn any_text_and_many_records_round_trip_on_every_backend() {
    // PostgreSQL takes records by COPY in its binary format: any text (tab, newline,
    // backslash, a literal \N, none of them special there), NULL beside "\N", and large
    // counts must come back as they went in; and a report of more records than one COPY
    // holds is stored whole.
    each_store("copy", |store, location| {
        let odd = "a\tb\\c\nd\re \\N é";
        let mut r = record("192.0.2.9", 3);
        r.header_from = odd.into();
        r.envelope_from = None;
        r.disposition = Some("\\N".into());
        r.dkim[0].domain = odd.into();
        let mut records = vec![r.clone()];
        records.extend((0..9000).map(|i| record(&format!("198.51.{}.{}", i / 250, i % 250), 1)));
        let many = header("many", 1_700_000_000);
        store.store_aggregate(&many, "odd.xml", records.clone()).unwrap();
        assert_eq!(store.totals().unwrap().records, 9001, "{location:?}");
        assert_eq!(store.store_aggregate(&many, "again.xml", records).unwrap(), Stored::Duplicate);
        assert_eq!(store.totals().unwrap().records, 9001, "{location:?}");
        // A report of few records, written whole at its commit: the same text comes back; a
        // NUL, which no PostgreSQL text holds, is dropped on both.
        let mut few = r;
        few.source_ip_text = "192.0.2.10".into();
        few.source_ip = few.source_ip_text.parse().ok();
        few.count = 5_000_000_000;
        few.evaluated_spf = Some("pa\0ss".into());
        few.dkim[0].selector = Some("s\0".into());
        store.store_aggregate(&header("few", 1_700_000_000), "few.xml", [few]).unwrap();
        assert_eq!(store.totals().unwrap().records, 9002, "{location:?}");
        let mut found = std::collections::HashMap::new();
        store
            .records_for("example.com", 0, i64::MAX, &mut |r| {
                if r.record.source_ip_text.starts_with("192.0.2.") {
                    found.insert(r.record.source_ip_text.clone(), r.record);
                }
            })
            .unwrap();
        for ip in ["192.0.2.9", "192.0.2.10"] {
            let found = found.get(ip).unwrap_or_else(|| panic!("the odd record {ip} is stored ({location:?})"));
            assert_eq!(found.header_from, odd);
            assert_eq!(found.envelope_from, None, "NULL stays NULL");
            assert_eq!(found.disposition.as_deref(), Some("\\N"), "a literal \\N is text, not NULL");
            assert_eq!(found.dkim[0].domain, odd);
        }
        assert_eq!(found["192.0.2.9"].count, 3);
        assert_eq!(found["192.0.2.10"].count, 5_000_000_000, "a count past 32 bits");
        assert_eq!(found["192.0.2.10"].evaluated_spf.as_deref(), Some("pass"));
        assert_eq!(found["192.0.2.10"].dkim[0].selector.as_deref(), Some("s"));
    });
}

#[test]
fn a_report_the_database_refuses_leaves_nothing_and_the_connection_goes_on() {
    // The database refuses one record (a trigger, a constraint): the report it is in, short
    // (written whole at its commit) or long (written as it comes), is not stored, says why,
    // and the same connection stores the next report.
    each_store("refused", |store, location| {
        execute(
            location,
            match location {
                Location::Sqlite(_) => {
                    "CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.source_ip = '192.0.2.66'
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
                }
                Location::Postgres(_) => {
                    "ALTER TABLE records ADD CONSTRAINT refused_by_the_test CHECK (source_ip <> '192.0.2.66')"
                }
            },
        );
        for (stored_before, n) in [10, 5000].into_iter().enumerate() {
            let mut records: Vec<ReportRecord> = (0..n).map(|i| record("192.0.2.1", i + 1)).collect();
            records.push(record("192.0.2.66", 1));
            let e = store.store_aggregate(&header("refused", 1_700_000_000), "bad.xml", records).unwrap_err();
            assert!(e.to_string().contains("refused"), "{n}: {e}");
            assert_eq!(store.totals().unwrap().reports, stored_before as u64, "{n} {location:?}");
            assert_eq!(store.totals().unwrap().records, stored_before as u64, "{n} {location:?}");
            let stored = store.store_aggregate(
                &header(&format!("next-{n}"), 1_700_000_000),
                "good.xml",
                [record("192.0.2.2", 2)],
            );
            assert_eq!(stored.unwrap(), Stored::New { records: 1, messages: 2 }, "{n} {location:?}");
        }
        assert_eq!(store.totals().unwrap().reports, 2);
    });
}

#[test]
fn stored_reports_are_listed_and_found_by_either_id() {
    each_store("list", |store, location| {
        let mut first = header("shared", 1_700_000_000);
        first.metadata.email = Some("dmarc@reporter.test".into());
        store.store_aggregate(&first, "a.xml", (0..3).map(|i| record("192.0.2.1", i + 1))).unwrap();
        let mut second = header("shared", 1_700_086_400);
        second.metadata.org_name = "other.test".into();
        store.store_aggregate(&second, "b.xml", [record("192.0.2.2", 10)]).unwrap();
        let mut elsewhere = header("x1", 1_700_172_800);
        elsewhere.policy.domain = "other.example".into();
        store.store_aggregate(&elsewhere, "c.xml", Vec::new()).unwrap();

        let (reports, total) = store.list_reports(Some("example.com"), 0, 10).unwrap();
        assert_eq!(total, 2, "{location:?}");
        let seen: Vec<(&str, u64, u64)> =
            reports.iter().map(|r| (r.header.metadata.org_name.as_str(), r.records, r.messages)).collect();
        assert_eq!(seen, [("other.test", 1, 10), ("reporter.test", 3, 6)], "newest first");
        let r = &reports[1];
        assert_eq!((r.origin.as_str(), r.header.metadata.email.as_deref()), ("a.xml", Some("dmarc@reporter.test")));
        assert_eq!((r.header.policy.domain.as_str(), r.header.policy.p.as_deref()), ("example.com", Some("none")));
        assert!(r.ingested_at > 1_700_000_000);
        let (all, total) = store.list_reports(None, 0, 2).unwrap();
        assert_eq!((all.len(), total), (2, 3), "the limit, and how many there are");
        assert_eq!((all[0].records, all[0].messages), (0, 0), "a report without records");
        let (none, total) = store.list_reports(None, 1_700_172_800 + 86_400, 10).unwrap();
        assert!(none.is_empty() && total == 0, "periods ending in the window only");

        let by_row = store.report_by_id(r.id).unwrap().unwrap();
        assert_eq!(by_row.header.metadata.report_id, "shared");
        assert!(store.report_by_id(r.id + 1000).unwrap().is_none());
        assert_eq!(store.reports_by_reporter_id("shared").unwrap().len(), 2);
        assert_eq!(store.reports_by_reporter_id("x1").unwrap().len(), 1);
        assert!(store.reports_by_reporter_id("nope").unwrap().is_empty());
        let mut counts = Vec::new();
        store.report_records(r.id, &mut |rec| counts.push(rec.record.count)).unwrap();
        counts.sort();
        assert_eq!(counts, [1, 2, 3]);
    });
}

#[test]
fn an_abandoned_report_leaves_nothing() {
    each_store("abandon", |store, _| {
        // A few records (held back until the commit) and more than one batch (written as
        // they come, in the report's open transaction): neither leaves anything.
        for n in [100, 5000] {
            store.begin_report(&header("half", 1_700_000_000), "cut.xml");
            for i in 0..n {
                store.add_record(record("192.0.2.1", i)).unwrap();
            }
            store.abandon_report();
            assert_eq!(store.totals().unwrap(), Totals::default(), "{n}");
        }
        assert_eq!(store.add_record(record("192.0.2.1", 1)), Err(StoreError::NoOpenReport));
        assert_eq!(store.commit_report(), Err(StoreError::NoOpenReport));
        // The same report can be stored afterwards.
        store.begin_report(&header("half", 1_700_000_000), "whole.xml");
        store.add_record(record("192.0.2.1", 3)).unwrap();
        assert_eq!(store.commit_report().unwrap(), Stored::New { records: 1, messages: 3 });
    });
}

#[test]
fn failure_reports_are_stored_and_read_by_domain() {
    each_store("failures", |store, _| {
        let report = FailureReport {
            feedback_type: "auth-failure".into(),
            arrival_date: Some(1_700_000_000),
            source_ip: Some("192.0.2.9".into()),
            reported_domain: vec!["example.com".into()],
            auth_failure: Some("dmarc".into()),
            ..Default::default()
        };
        assert!(matches!(store.store_failure(&report, "arf.eml").unwrap(), Stored::New { .. }));
        assert_eq!(store.store_failure(&report, "again.eml").unwrap(), Stored::Duplicate, "stored once");
        let back = store.failures_for("example.com", 0, i64::MAX).unwrap();
        assert_eq!(back, vec![report]);
        assert!(store.failures_for("example.com", 1_700_000_000, i64::MAX).unwrap().is_empty());
    });
}

#[test]
fn migrations_refuse_a_newer_schema_and_reopen_cleanly() {
    each_store("schema", |store, location| {
        store.store_aggregate(&header("x", 1), "x", vec![]).unwrap();
        // Reopening applies nothing twice and keeps the data.
        assert_eq!(Store::open(location).unwrap().totals().unwrap().reports, 1);
        // A schema newer than this build's is refused, naming the database.
        execute(location, "INSERT INTO schema_version (version) VALUES (999)");
        match Store::open(location) {
            Err(StoreError::TooNew { found: 999, .. }) => {}
            other => panic!("{location:?}: {:?}", other.err()),
        }
    });
}

#[test]
fn a_missing_sqlite_file_is_not_created_by_readers() {
    let dir = TempDir::new("store-missing");
    let path = dir.join("sub/never.sqlite");
    let err = Store::open_with(&Location::Sqlite(path.clone()), OpenMode::Existing).err().unwrap();
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(!dir.join("sub").exists(), "no folder created");
    assert!(Store::open_with(&Location::Sqlite(path.clone()), OpenMode::Create).is_ok());
    assert!(path.exists());
}

#[test]
fn bad_urls_and_unreachable_servers_are_clear_errors() {
    assert!(matches!(Location::parse("mysql://x/y"), Err(StoreError::BadUrl(_))));
    let err = Store::open(&Location::parse("postgres://nobody:secret@127.0.0.1:1/none").unwrap()).err().unwrap();
    let text = err.to_string();
    assert!(text.contains("postgres://nobody@127.0.0.1:1/none"), "{text}");
    assert!(!text.contains("secret"), "the password is never shown: {text}");
}

#[test]
fn async_callers_reach_every_backend_through_database() {
    let dir = TempDir::new("store-async");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for db in backends(dir.path(), "async") {
        let location = Location::parse(&db.url).unwrap();
        rt.block_on(async {
            let database = Database::open(&location, OpenMode::Create, 3).await.unwrap();
            let tasks: Vec<_> = (0..12)
                .map(|i| {
                    let database = database.clone();
                    tokio::spawn(async move {
                        database
                            .run(move |s| {
                                s.store_aggregate(
                                    &header(&format!("r{i}"), 1_700_000_000),
                                    "t",
                                    vec![record("192.0.2.1", 2)],
                                )
                            })
                            .await
                    })
                })
                .collect();
            for t in tasks {
                assert!(matches!(t.await.unwrap().unwrap(), Stored::New { .. }), "{}", db.kind);
            }
            let totals = database.run(|s| s.totals()).await.unwrap();
            assert_eq!(totals, Totals { reports: 12, records: 12, messages: 24, failures: 0 }, "{}", db.kind);
        });
    }
}

fn watched(domain: &str, due: i64) -> WatchedDomain {
    WatchedDomain {
        domain: domain.into(),
        expectations: "{\"regions\":[\"us-east-1\"]}".into(),
        tags: vec!["client-a".into()],
        from_ses: false,
        source: "cli".into(),
        added_at: due,
        next_due: due,
        last_checked: None,
        checks: 0,
    }
}

fn event(id: &str, domain: &str, at: i64) -> StoredEvent {
    StoredEvent {
        id: id.into(),
        domain: Some(domain.into()),
        at,
        kind: "finding-raised".into(),
        body: format!("{{\"id\":\"{id}\"}}"),
    }
}

#[test]
fn watched_domains_checks_events_and_the_outbox() {
    each_store("watch", |store, _| {
        store.upsert_watched(&watched("b.test", 100)).unwrap();
        store.upsert_watched(&watched("a.test", 50)).unwrap();
        let mut again = watched("a.test", 999);
        again.tags = vec!["client-b".into()];
        store.upsert_watched(&again).unwrap();
        let all = store.watched_domains().unwrap();
        assert_eq!(all.iter().map(|w| w.domain.as_str()).collect::<Vec<_>>(), ["a.test", "b.test"]);
        assert_eq!((all[0].tags.clone(), all[0].next_due), (vec!["client-b".to_string()], 50), "schedule kept");
        assert_eq!(store.due_domains(60, 10).unwrap().len(), 1);

        // A check with two events for two channels, and an opened problem.
        let state = |digest: &str, at| DomainState {
            digest: digest.into(),
            judgement: "{}".into(),
            failures: "{}".into(),
            ses: None,
            rollout: Some("{\"stage\":\"none\"}".into()),
            checked_at: at,
            report: Some(format!("{{\"digest\":\"{digest}\"}}")),
        };
        let write = CheckWrite {
            checked: Some(CheckedDomain {
                domain: "a.test".into(),
                state: state("d1", 60),
                snapshot: "{\"s\":1}".into(),
                next_due: 160,
                claimed_by: None,
            }),
            events: vec![event("e1", "a.test", 60), event("e2", "a.test", 60)],
            channels: vec![("webhook".into(), 0), ("email".into(), 0)],
            opened: vec![("a.test".into(), "p1".into(), "e1".into())],
            sources: vec![("a.test".into(), "Amazon SES".into())],
            ..Default::default()
        };
        store.commit_check(&write).unwrap();
        // Claimed until the moment they are claimed at, so due again at any later one.
        let due = |store: &mut Store, at| store.claim_deliveries("w", at, at, at, 100).unwrap();
        let first = due(store, 60);
        let keys: Vec<_> = first.iter().map(|d| (d.event.id.as_str(), d.channel.as_str())).collect();
        assert_eq!(keys, [("e1", "email"), ("e1", "webhook"), ("e2", "email"), ("e2", "webhook")]);
        assert_eq!(first[3].event, event("e2", "a.test", 60));
        store.delivered("e1", "webhook", 61).unwrap();
        store.delivery_failed("e1", "email", "550 refused", 120).unwrap();
        assert_eq!(due(store, 61).len(), 2, "e2 twice");
        assert_eq!(due(store, 120).len(), 3, "e1 by email again at 120");
        assert_eq!(store.undelivered().unwrap().len(), 3);
        assert_eq!(store.open_problems("a.test").unwrap().len(), 1);
        assert_eq!(store.known_sources("a.test").unwrap(), ["Amazon SES"]);
        let w = store.watched("a.test").unwrap().unwrap();
        assert_eq!((w.checks, w.last_checked, w.next_due), (1, Some(60), 160));

        // An unchanged snapshot adds no row; a changed one does.
        let same = CheckWrite {
            checked: Some(CheckedDomain {
                domain: "a.test".into(),
                state: state("d1", 200),
                snapshot: "{\"s\":1}".into(),
                next_due: 300,
                claimed_by: None,
            }),
            closed: vec![("a.test".into(), "p1".into())],
            ..Default::default()
        };
        store.commit_check(&same).unwrap();
        assert_eq!(store.snapshot_history("a.test").unwrap(), vec![("d1".to_string(), 60, 200)]);
        let changed = CheckWrite {
            checked: Some(CheckedDomain {
                domain: "a.test".into(),
                state: state("d2", 300),
                snapshot: "{\"s\":2}".into(),
                next_due: 400,
                claimed_by: None,
            }),
            ..Default::default()
        };
        store.commit_check(&changed).unwrap();
        assert_eq!(store.snapshot_history("a.test").unwrap().len(), 2);
        assert_eq!(store.latest_snapshot("a.test").unwrap().as_deref(), Some("{\"s\":2}"));
        assert!(store.open_problems("a.test").unwrap().is_empty());
        let stored = store.domain_state("a.test").unwrap().unwrap();
        assert_eq!((stored.digest.as_str(), stored.rollout.as_deref()), ("d2", Some("{\"stage\":\"none\"}")));

        // The same event id twice is one event (idempotent writes).
        store.commit_check(&CheckWrite { events: vec![event("e1", "a.test", 60)], ..Default::default() }).unwrap();
        assert_eq!(store.events(Some("a.test"), 0, 100).unwrap().len(), 2);
        assert_eq!(store.events(None, 61, 100).unwrap().len(), 0);
        assert_eq!(store.events(Some("b.test"), 0, 100).unwrap().len(), 0);

        assert!(store.remove_watched("b.test").unwrap());
        assert!(!store.remove_watched("b.test").unwrap());
        let mut from_config = watched("c.test", 0);
        from_config.source = "config".into();
        store.upsert_watched(&from_config).unwrap();
        assert_eq!(store.prune_config_domains(&[]).unwrap(), ["c.test"]);
    });
}

fn checked(domain: &str, at: i64, next_due: i64, claimed_by: Option<&str>) -> CheckWrite {
    CheckWrite {
        checked: Some(CheckedDomain {
            domain: domain.into(),
            state: DomainState {
                digest: format!("d{at}"),
                judgement: "{}".into(),
                failures: "{}".into(),
                ses: None,
                rollout: None,
                checked_at: at,
                report: None,
            },
            snapshot: "{}".into(),
            next_due,
            claimed_by: claimed_by.map(str::to_string),
        }),
        events: vec![event(&format!("e-{domain}-{at}"), domain, at)],
        channels: vec![("webhook".into(), 0)],
        ..Default::default()
    }
}

fn worker(id: &str, kind: &str, at: i64) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        kind: kind.into(),
        host: "host.test".into(),
        pid: 42,
        version: "0".into(),
        started_at: at,
        seen_at: at,
        stopped_at: None,
    }
}

#[test]
fn claims_divide_the_due_domains_expire_and_fence_the_write() {
    each_store("claims", |store, _| {
        for i in 0..10 {
            store.upsert_watched(&watched(&format!("d{i}.test"), 100)).unwrap();
        }
        store.upsert_watched(&watched("later.test", 10_000)).unwrap();
        // Two workers claim 4 each, then the rest: disjoint, never the one not due.
        let a = store.claim_due_domains("a", 200, 1000, 1060, 4).unwrap();
        let b = store.claim_due_domains("b", 200, 1000, 1060, 4).unwrap();
        let rest = store.claim_due_domains("b", 200, 1000, 1060, 100).unwrap();
        let mut all: Vec<String> = a.iter().chain(&b).chain(&rest).map(|w| w.domain.clone()).collect();
        assert_eq!((a.len(), b.len(), rest.len()), (4, 4, 2));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10, "{all:?}");
        assert!(store.claim_due_domains("c", 200, 1000, 1060, 100).unwrap().is_empty(), "all held");
        assert_eq!(store.queue_depth(1000, 200).unwrap().claimed_domains, 10);

        // The holder writes: the claim is cleared, the domain is due next window.
        let first = a[0].domain.clone();
        store.commit_check(&checked(&first, 150, 5000, Some("a"))).unwrap();
        let w = store.watched(&first).unwrap().unwrap();
        assert_eq!((w.checks, w.next_due), (1, 5000));
        assert_eq!(store.holdings("a", 1000).unwrap().domains.len(), 3);

        // a stops renewing: after expiry c takes a's domains over; a's late write is refused
        // and leaves nothing (no state, no event, no outbox row).
        assert_eq!(store.heartbeat("b", 1050, 1200).unwrap(), 6);
        let taken = store.claim_due_domains("c", 200, 1100, 1160, 100).unwrap();
        let mut expect: Vec<String> = a[1..].iter().map(|w| w.domain.clone()).collect();
        expect.sort();
        let mut got: Vec<String> = taken.iter().map(|w| w.domain.clone()).collect();
        got.sort();
        assert_eq!(got, expect, "only a's, not b's renewed claims");
        let late = a[1].domain.clone();
        let lost = store.commit_check(&checked(&late, 150, 5000, Some("a"))).unwrap_err();
        assert_eq!(lost, StoreError::ClaimLost(late.clone()));
        assert!(store.domain_state(&late).unwrap().is_none());
        assert!(store.event(&format!("e-{late}-150")).unwrap().is_none());
        store.commit_check(&checked(&late, 160, 5000, Some("c"))).unwrap();
        assert_eq!(store.watched(&late).unwrap().unwrap().checks, 1);

        // A named check claims one domain whether due or not, unless another holds it.
        assert_eq!(store.claim_domain("a", "later.test", 1100, 1160).unwrap().unwrap().domain, "later.test");
        let busy = store.claim_domain("b", "later.test", 1100, 1160).unwrap_err();
        assert!(matches!(&busy, StoreError::Conflict(m) if m.contains("worker a")), "{busy}");
        assert!(store.claim_domain("b", "nowhere.test", 1100, 1160).unwrap().is_none());

        // Stopping releases at once.
        store.worker_stopped("b", 1110).unwrap();
        assert_eq!(store.claim_due_domains("d", 200, 1110, 1170, 100).unwrap().len(), 6, "b's six");

        // Deliveries: claimed once; delivered or failed clears the claim.
        let first_batch = store.claim_deliveries("a", 1000, 1110, 1170, 1).unwrap();
        let second_batch = store.claim_deliveries("b", 1000, 1110, 1170, 10).unwrap();
        assert_eq!((first_batch.len(), second_batch.len()), (1, 1));
        assert_ne!(first_batch[0].event.id, second_batch[0].event.id);
        assert!(store.claim_deliveries("c", 1000, 1110, 1170, 10).unwrap().is_empty());
        store.delivery_failed(&first_batch[0].event.id, "webhook", "503", 900).unwrap();
        let again = store.claim_deliveries("c", 1000, 1110, 1170, 10).unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1), "the failed one, for anyone");
    });
}

#[test]
fn leases_workers_and_one_serve_per_sqlite_file() {
    each_store("leases", |store, location| {
        assert!(store.try_lease("intake:inbox", "a", 100, 160, true).unwrap().is_none());
        let held = store.try_lease("intake:inbox", "b", 110, 170, true).unwrap().unwrap();
        assert_eq!((held.holder.as_str(), held.expires_at), ("a", 160));
        assert!(store.try_lease("intake:inbox", "a", 120, 180, true).unwrap().is_none(), "the holder renews");
        assert!(store.try_lease("intake:inbox", "b", 181, 240, true).unwrap().is_none(), "expired: b's");
        store.release_lease("intake:inbox", "a").unwrap();
        assert_eq!(store.leases(190).unwrap()[0].holder, "b", "only the holder releases");
        store.release_lease("intake:inbox", "b").unwrap();
        assert!(store.leases(190).unwrap().is_empty());

        let alone = matches!(location, Location::Sqlite(_));
        store.register_worker(&worker("w1", "serve", 1000), alone, 60).unwrap();
        let second = store.register_worker(&worker("w2", "serve", 1010), alone, 60);
        if alone {
            let e = second.unwrap_err();
            assert!(e.to_string().contains("several workers need PostgreSQL"), "{e}");
            // A worker gone past its lease no longer blocks.
            store.register_worker(&worker("w2", "serve", 1100), true, 60).unwrap();
        } else {
            second.unwrap();
        }
        store.register_worker(&worker("w3", "watch run", 1100), false, 60).unwrap();
        let ids: Vec<String> = store.workers().unwrap().into_iter().map(|w| w.id).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        store.worker_stopped("w3", 1120).unwrap();
        assert_eq!(store.workers().unwrap().iter().find(|w| w.id == "w3").unwrap().stopped_at, Some(1120));
    });
}

#[test]
fn retention_keeps_the_latest_snapshot_and_undelivered_events() {
    each_store("retention", |store, _| {
        let day = 86_400;
        for i in 0..5 {
            let records = vec![record("192.0.2.1", 1), record("192.0.2.2", 2)];
            store.store_aggregate(&header(&format!("r{i}"), 1_700_000_000 + i * day), "in.xml", records).unwrap();
        }
        store.upsert_watched(&watched("a.test", 0)).unwrap();
        for (at, digest) in [(100, "x"), (200, "y"), (300, "y")] {
            let mut w = checked("a.test", at, 0, None);
            w.checked.as_mut().unwrap().state.digest = digest.into();
            w.events.clear();
            store.commit_check(&w).unwrap();
        }
        let mut w = checked("a.test", 310, 0, None);
        w.checked = None;
        w.events = vec![event("old-delivered", "a.test", 310), event("old-pending", "a.test", 310)];
        store.commit_check(&w).unwrap();
        store.delivered("old-delivered", "webhook", 311).unwrap();

        // Cut off after the second report and after every snapshot and event.
        let pruned = store.prune(1_700_000_000 + 2 * day + 1).unwrap();
        assert_eq!((pruned.reports, pruned.records), (2, 4));
        assert_eq!(pruned.snapshots, 1, "x goes, y (the latest) stays");
        assert_eq!(pruned.events, 1, "the delivered one");
        assert_eq!(store.totals().unwrap().reports, 3);
        assert_eq!(store.snapshot_history("a.test").unwrap().len(), 1);
        assert!(store.event("old-pending").unwrap().is_some());
        assert!(store.event("old-delivered").unwrap().is_none());
        assert_eq!(store.prune(1_700_000_000 + 2 * day + 1).unwrap(), Default::default(), "nothing twice");
    });
}

#[test]
fn deferred_reports_are_committed_at_once_and_made_durable_at_the_end() {
    each_store("deferred", |store, location| {
        store.defer_durability(true).unwrap();
        store.begin_report(&header("deferred", 1_700_000_000), "a.xml");
        for i in 0..10 {
            store.add_record(record("192.0.2.1", i + 1)).unwrap();
        }
        assert_eq!(store.commit_report().unwrap(), Stored::New { records: 10, messages: 55 });
        // Committed, so another connection sees it before the batch ends.
        let mut other = Store::open(location).unwrap();
        assert_eq!(other.totals().unwrap().records, 10);
        // An abandoned report leaves nothing, deferred or not.
        store.begin_report(&header("cut", 1_700_000_000), "b.xml");
        store.add_record(record("192.0.2.2", 1)).unwrap();
        store.abandon_report();
        store.defer_durability(false).unwrap();
        store.make_durable().unwrap();
        assert_eq!(other.totals().unwrap().reports, 1);
        // Records go with their report when retention deletes it (no foreign key does it
        // on PostgreSQL any more).
        let pruned = store.prune(i64::MAX).unwrap();
        assert_eq!(pruned.reports, 1);
        assert_eq!(other.totals().unwrap(), Totals::default());
    });
}
