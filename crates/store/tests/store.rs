//! The store's own suite, run against every backend: SQLite always, PostgreSQL when a
//! server answers (required when `CI` is set).

use ses_dmarc_reports::aggregate::{DkimAuth, ReportHeader, ReportRecord, SpfAuth};
use ses_dmarc_reports::failure::FailureReport;
use ses_dmarc_store::{Database, Location, OpenMode, Store, StoreError, Stored, Totals};
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
        assert_eq!(store.totals().unwrap(), Totals { reports: 2, records: 151, messages: (1..=150).sum::<u64>() + 7 });

        let mut read = Vec::new();
        store.records_for("example.com", 0, &mut |r| read.push(r)).unwrap();
        assert_eq!(read.len(), 151);
        let first = &read[0];
        assert_eq!(first.header.metadata.report_id, "r1");
        assert_eq!(first.header.policy.p.as_deref(), Some("none"));
        assert_eq!(first.record.dkim[0].selector.as_deref(), Some("s1"));
        assert_eq!(first.record.spf[0].domain, "mail.example.com");
        assert!(read.iter().any(|r| r.record.source_ip_text == "2001:db8::1"), "IPv6 stored canonical");
        assert_eq!(store.reports_for("example.com", 0).unwrap().len(), 2);
        assert_eq!(store.reports_for("example.com", 1_700_086_400 + 86_399).unwrap().len(), 1, "{location:?}");
        assert_eq!(store.reports_for("other.test", 0).unwrap().len(), 0);
        let ips = store.source_ips("example.com", 0).unwrap();
        assert_eq!(ips.len(), 151, "150 IPv4 addresses and one IPv6");
    });
}

#[test]
fn an_abandoned_report_leaves_nothing() {
    each_store("abandon", |store, _| {
        assert!(store.begin_report(&header("half", 1_700_000_000), "cut.xml").unwrap());
        for i in 0..100 {
            store.add_record(record("192.0.2.1", i)).unwrap();
        }
        store.abandon_report();
        assert_eq!(store.totals().unwrap(), Totals::default());
        assert_eq!(store.add_record(record("192.0.2.1", 1)), Err(StoreError::NoOpenReport));
        assert_eq!(store.commit_report(), Err(StoreError::NoOpenReport));
        // The same report can be stored afterwards.
        assert!(store.begin_report(&header("half", 1_700_000_000), "whole.xml").unwrap());
        store.add_record(record("192.0.2.1", 3)).unwrap();
        assert_eq!(store.commit_report().unwrap(), (1, 3));
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
        let back = store.failures_for("example.com", 0).unwrap();
        assert_eq!(back, vec![report]);
        assert!(store.failures_for("example.com", 1_700_000_000).unwrap().is_empty());
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
            assert_eq!(totals, Totals { reports: 12, records: 12, messages: 24 }, "{}", db.kind);
        });
    }
}
