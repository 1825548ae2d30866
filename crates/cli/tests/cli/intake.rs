//! `intake run` against a real Dovecot (IMAP over TLS and STARTTLS, with and without MOVE)
//! and moto's S3: every report stored once, only stored mail moved, other mail untouched,
//! a failing source raised once, and a killed pass that loses nothing.

use crate::fake_aws::{Moto, ses_dmarc_aws};
use crate::util::{stderr, stdout};
use base64::Engine;
use serde_json::Value;
use ses_dmarc_store::{Location, Store, Totals};
use ses_dmarc_testkit::{Dovecot, DovecotOptions, TempDir, databases, gzip, testdata, unavailable, zip};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const PASSWORD: &str = "s3cret-pw";

/// What a test message is, and so where it must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Holds a report: stored, then moved to the processed folder.
    Report,
    /// Holds no report: left where it is, flags untouched.
    Other,
    /// Holds a report that cannot be read: the failed folder.
    Broken,
}

pub(crate) struct Mail {
    name: String,
    body: Vec<u8>,
    kind: Kind,
}

fn mail(name: impl Into<String>, body: Vec<u8>, kind: Kind) -> Mail {
    Mail { name: name.into(), body, kind }
}

/// A report mail as reporters send it: a text part and the report attached in base64.
fn mime(subject: &str, attachments: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
    let id: String = subject.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut m = format!(
        "From: noreply-dmarc-support@google.com\r\nTo: dmarc@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@reports.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n\
         --b0undary\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is an aggregate report.\r\n"
    );
    for (name, content_type, data) in attachments {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        let lines: Vec<&str> = encoded.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
        m.push_str(&format!(
            "--b0undary\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            lines.join("\r\n")
        ));
    }
    m.push_str("--b0undary--\r\n");
    m.into_bytes()
}

fn plain(subject: &str) -> Vec<u8> {
    format!(
        "From: a.friend@example.org\r\nTo: dmarc@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@friends.test>\r\n\r\n\
         Are you free on Friday?\r\n",
        subject.len()
    )
    .into_bytes()
}

/// A report attached as XML, gzip or zip (by `n`).
fn attached(subject: &str, file: &str, xml: &[u8], n: usize) -> Vec<u8> {
    match n % 3 {
        0 => mime(subject, &[(file, "text/xml", xml.to_vec())]),
        1 => mime(subject, &[(&format!("{file}.gz"), "application/gzip", gzip(xml))]),
        _ => mime(subject, &[(&format!("{file}.zip"), "application/zip", zip(&[(file, xml)]))]),
    }
}

/// Every container kind of the corpus (raw report mail, failure reports, XML, gzip and zip
/// attachments, RFC 9990 reports), a duplicate, mail that holds no report and a broken
/// attachment.
pub(crate) fn corpus_mailbox() -> Vec<Mail> {
    let mut mails = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["reports/aggregate", "reports/failure", "reports/rfc9990"] {
        for e in std::fs::read_dir(testdata(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    for (n, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        if name.ends_with(".eml") {
            mails.push(mail(name, data, Kind::Report));
        } else if name.ends_with(".xml") {
            mails.push(mail(name.clone(), attached(&format!("Report {name}"), &name, &data, n), Kind::Report));
        }
    }
    let acme = std::fs::read(testdata("reports/aggregate/drv-acme.xml")).unwrap();
    mails.push(mail("duplicate", attached("Report again", "acme.xml", &acme, 2), Kind::Report));
    mails.push(mail("lunch", plain("lunch?"), Kind::Other));
    mails.push(mail("lunch-seen", plain("lunch on Friday?"), Kind::Other));
    let broken = gzip(&acme)[..200].to_vec();
    mails.push(mail("broken", mime("Report broken", &[("broken.xml.gz", "application/gzip", broken)]), Kind::Broken));
    mails
}

pub(crate) fn deliver(dovecot: &Dovecot, user: &str, mails: &[Mail]) {
    for (i, m) in mails.iter().enumerate() {
        // Maildir orders by file name: keep the list's order.
        let file = format!("{:05}.{}", i, m.name.replace(['.', ':', '/'], "_"));
        dovecot.deliver(user, "INBOX", &file, &m.body);
        if m.name.ends_with("-seen") {
            dovecot.mark_seen(user, "INBOX", &file);
        }
    }
}

/// What `reports ingest` stores from the same messages: what intake must store.
pub(crate) fn expected_totals(dir: &Path, name: &str, mails: &[Mail]) -> Totals {
    expected(dir, name, mails).0
}

/// [`expected_totals`] and the duplicates `reports ingest` found among the messages.
fn expected(dir: &Path, name: &str, mails: &[Mail]) -> (Totals, u64) {
    let inputs = dir.join(format!("{name}-files"));
    std::fs::create_dir_all(&inputs).unwrap();
    for (i, m) in mails.iter().enumerate() {
        std::fs::write(inputs.join(format!("{i:05}.eml")), &m.body).unwrap();
    }
    let db = format!("sqlite://{}", dir.join(format!("{name}-expected.sqlite")).display());
    let o = crate::util::ses_dmarc(&["reports", "ingest", inputs.to_str().unwrap(), "--database", &db, "-f", "json"]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "reports ingest: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    (totals(&db), v["totals"]["duplicates"].as_u64().unwrap())
}

pub(crate) fn totals(db: &str) -> Totals {
    Store::open(&Location::parse(db).unwrap()).unwrap().totals().unwrap()
}

fn bodies(dovecot: &Dovecot, user: &str, folder: &str) -> Vec<Vec<u8>> {
    let mut b: Vec<Vec<u8>> = dovecot.messages(user, folder).into_iter().map(|(body, _)| body).collect();
    b.sort();
    b
}

fn of_kind(mails: &[Mail], kind: Kind) -> Vec<Vec<u8>> {
    let mut b: Vec<Vec<u8>> = mails.iter().filter(|m| m.kind == kind).map(|m| m.body.clone()).collect();
    b.sort();
    b
}

fn intake_command(config: &Path, db: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"));
    c.args(["intake", "run", "--config", config.to_str().unwrap(), "--database", db, "--format", "json"])
        .args(extra)
        .env("NO_COLOR", "1")
        .env("SES_DMARC_TEST_IMAP_PASSWORD", PASSWORD)
        .env("SES_DMARC_TEST_WRONG_PASSWORD", "not-the-password");
    c
}

fn intake(config: &Path, db: &str, extra: &[&str]) -> (Option<i32>, Value) {
    json_of(&intake_command(config, db, extra).output().expect("run ses-dmarc"))
}

fn json_of(o: &Output) -> (Option<i32>, Value) {
    let v =
        serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("intake run: {e}\n{}\n{}", stdout(o), stderr(o)));
    (o.status.code(), v)
}

fn source<'v>(v: &'v Value, name: &str) -> &'v Value {
    v["sources"].as_array().unwrap().iter().find(|s| s["source"] == name).unwrap_or_else(|| panic!("{name} in {v}"))
}

pub(crate) fn start(users: &[(&str, &str)], options: &DovecotOptions) -> Option<Dovecot> {
    match Dovecot::start(users, options) {
        Ok(d) => Some(d),
        Err(e) => {
            unavailable("Dovecot (Debian's dovecot-imapd)", &e);
            None
        }
    }
}

/// An `[[intake.imap]]` entry for this Dovecot.
pub(crate) fn imap_source(d: &Dovecot, name: &str, user: &str, tls: &str, extra: &str) -> String {
    let port = if tls == "implicit" { d.tls_port } else { d.plain_port };
    format!(
        "[[intake.imap]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\n\
         user = \"{user}\"\npassword_env = \"SES_DMARC_TEST_IMAP_PASSWORD\"\n{extra}\n",
        d.ca_file.display()
    )
}

const FOLDERS: &str = "processed_folder = \"Reports/Done\"\nfailed_folder = \"Reports/Failed\"\nbatch = 7\n";

#[test]
fn imap_over_tls_stores_each_report_once_and_moves_only_what_was_stored() {
    let dir = TempDir::new("intake-imap");
    let mails = corpus_mailbox();
    let (expected, duplicates) = expected(dir.path(), "corpus", &mails);
    assert!(expected.reports >= 20 && expected.failures >= 5, "{expected:?}");
    assert!(duplicates >= 1, "the corpus mailbox holds a duplicate");
    for test_db in databases(dir.path(), "imap") {
        let db = test_db.url.clone();
        let Some(d) = start(&[("reports", PASSWORD)], &DovecotOptions::default()) else { return };
        deliver(&d, "reports", &mails);
        let config = dir.join(&format!("{}.toml", test_db.kind));
        std::fs::write(&config, imap_source(&d, "mailbox", "reports", "implicit", FOLDERS)).unwrap();

        let (code, v) = intake(&config, &db, &[]);
        let s = source(&v, "mailbox");
        assert_eq!(code, Some(1), "the broken attachment is a failure: {v}\n{}", d.log());
        assert!(s["error"].is_null(), "{s}");
        assert_eq!(s["messages"], mails.len(), "{s}");
        assert_eq!(s["reports"], expected.reports + expected.failures, "{s}");
        assert_eq!(s["duplicates"], duplicates, "{s}");
        assert_eq!(s["not_reports"], 2, "{s}");
        assert_eq!(s["failed"], 1, "{s}");
        assert_eq!(s["processed"], mails.iter().filter(|m| m.kind == Kind::Report).count(), "{s}");
        assert_eq!(s["moved_to_failed"], 1, "{s}");
        let failures = s["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1, "{s}");
        assert!(failures[0]["item"].as_str().unwrap().contains("<Reportbroken@reports.test>"), "{s}");
        assert!(!failures[0]["reason"].as_str().unwrap().is_empty(), "{s}");
        assert_eq!(totals(&db), expected, "{}", test_db.kind);

        assert_eq!(bodies(&d, "reports", "Reports/Done"), of_kind(&mails, Kind::Report));
        assert_eq!(bodies(&d, "reports", "Reports/Failed"), of_kind(&mails, Kind::Broken));
        let mut left = d.messages("reports", "INBOX");
        left.sort();
        let mut others: Vec<(Vec<u8>, String)> = mails
            .iter()
            .filter(|m| m.kind == Kind::Other)
            .map(|m| (m.body.clone(), if m.name.ends_with("-seen") { "S".to_string() } else { String::new() }))
            .collect();
        others.sort();
        assert_eq!(left, others, "mail that is not a report stays, its flags untouched");

        let (code, again) = intake(&config, &db, &[]);
        assert_eq!(code, Some(0), "{again}");
        let s = source(&again, "mailbox");
        for field in ["messages", "reports", "duplicates", "processed", "moved_to_failed"] {
            assert_eq!(s[field], 0, "a second pass reads nothing again ({field}): {s}");
        }
        assert_eq!(totals(&db), expected);

        // New mail after the checkpoint is read, and only it.
        let fresh = std::fs::read(testdata("reports/aggregate/mailauth-001.xml")).unwrap();
        let xml = String::from_utf8(fresh).unwrap().replacen("<report_id>", "<report_id>fresh-", 1);
        d.deliver("reports", "INBOX", "99999.fresh", &attached("Report fresh", "fresh.xml", xml.as_bytes(), 1));
        let (code, third) = intake(&config, &db, &[]);
        assert_eq!(code, Some(0), "{third}");
        let s = source(&third, "mailbox");
        assert_eq!(
            (s["messages"].as_u64(), s["reports"].as_u64(), s["processed"].as_u64()),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(totals(&db).reports, expected.reports + 1);
    }
}

#[test]
fn starttls_without_move_copies_then_expunges_and_delete_processed_deletes() {
    let dir = TempDir::new("intake-nomove");
    // Dovecot's own capabilities, less MOVE.
    let options = DovecotOptions {
        capabilities: Some("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS STARTTLS".into()),
        ..Default::default()
    };
    let Some(d) = start(&[("moving", PASSWORD), ("deleting", PASSWORD)], &options) else { return };
    let mails = corpus_mailbox();
    deliver(&d, "moving", &mails);
    deliver(&d, "deleting", &mails);
    let expected = expected_totals(dir.path(), "corpus", &mails);
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            imap_source(&d, "moving", "moving", "starttls", FOLDERS),
            imap_source(&d, "deleting", "deleting", "none", "delete_processed = true\n")
        ),
    )
    .unwrap();
    for (user, kind) in [("moving", "moving"), ("deleting", "deleting")] {
        let db = format!("sqlite://{}", dir.join(&format!("{kind}.sqlite")).display());
        let (code, v) = intake(&config, &db, &["--source", user]);
        assert_eq!(code, Some(1), "{v}\n{}", d.log());
        assert_eq!(v["sources"].as_array().unwrap().len(), 1, "--source reads only that one: {v}");
        let s = source(&v, user);
        assert!(s["error"].is_null(), "{s}");
        assert_eq!(totals(&db), expected, "{user}");
        let reports = mails.iter().filter(|m| m.kind == Kind::Report).count();
        assert_eq!(s["processed"], reports, "{s}");
    }
    assert_eq!(bodies(&d, "moving", "Reports/Done"), of_kind(&mails, Kind::Report));
    assert_eq!(bodies(&d, "moving", "Reports/Failed"), of_kind(&mails, Kind::Broken));
    assert_eq!(bodies(&d, "moving", "INBOX"), of_kind(&mails, Kind::Other), "\\Deleted copies are expunged");
    // Stored mail is deleted; the rest stays (no failed folder is set).
    let mut rest = of_kind(&mails, Kind::Other);
    rest.extend(of_kind(&mails, Kind::Broken));
    rest.sort();
    assert_eq!(bodies(&d, "deleting", "INBOX"), rest);
    assert!(bodies(&d, "deleting", "Reports/Done").is_empty());
}

#[test]
fn a_mailbox_that_refuses_the_login_is_raised_once_and_closed_when_it_works_again() {
    let dir = TempDir::new("intake-refused");
    let Some(d) = start(&[("good", PASSWORD), ("wrong", PASSWORD)], &DovecotOptions::default()) else { return };
    let report = std::fs::read(testdata("reports/aggregate/mailauth-100.eml")).unwrap();
    d.deliver("good", "INBOX", "1.report", &report);
    d.deliver("wrong", "INBOX", "1.report", &report);
    let refused = imap_source(&d, "wrong", "wrong", "implicit", FOLDERS)
        .replace("SES_DMARC_TEST_IMAP_PASSWORD", "SES_DMARC_TEST_WRONG_PASSWORD");
    let untrusted = imap_source(&d, "untrusted", "good", "implicit", "")
        .replace(&format!("ca_file = \"{}\"\n", d.ca_file.display()), "");
    let config = dir.join("c.toml");
    let write = |refused: &str| {
        std::fs::write(&config, format!("{refused}{}{untrusted}", imap_source(&d, "good", "good", "implicit", FOLDERS)))
            .unwrap()
    };
    write(&refused);
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());

    let (code, v) = intake(&config, &db, &[]);
    assert_eq!(code, Some(3), "{v}");
    let wrong = source(&v, "wrong");
    let error = wrong["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("login") || error.contains("AUTHENTICATIONFAILED"), "{error}");
    assert!(!error.contains(PASSWORD) && !error.contains("not-the-password"), "no password in messages: {error}");
    let events = wrong["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{wrong}");
    assert_eq!(events[0]["kind"], "intake-failed");
    let untrusted_error = source(&v, "untrusted")["error"].as_str().unwrap().to_lowercase();
    assert!(untrusted_error.contains("certificate"), "{untrusted_error}");
    let good = source(&v, "good");
    assert!(good["error"].is_null(), "the other sources still run: {good}");
    assert_eq!(good["reports"], 1);

    let (code, v) = intake(&config, &db, &[]);
    assert_eq!(code, Some(3));
    assert_eq!(source(&v, "wrong")["events"].as_array().unwrap().len(), 0, "raised once, not at every pass: {v}");

    write(&imap_source(&d, "wrong", "wrong", "implicit", FOLDERS));
    let (code, v) = intake(&config, &db, &["--source", "wrong", "--source", "good"]);
    assert_eq!(code, Some(0), "{v}");
    let wrong = source(&v, "wrong");
    assert_eq!(wrong["recovered"], true, "{wrong}");
    assert_eq!(wrong["duplicates"], 1, "the same report, already stored from `good`: {wrong}");
    assert_eq!(wrong["processed"], 1);

    let o = intake_command(&config, &db, &["--source", "nobody"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no intake source is named `nobody`"), "{}", stderr(&o));
}

/// Reports enough that a pass takes a while, each its own report id.
fn kill_mailbox() -> Vec<Mail> {
    let records: String = (0..20)
        .map(|i| {
            format!(
                "<record><row><source_ip>54.240.8.{i}</source_ip><count>{}</count><policy_evaluated><disposition>none</disposition>\
                 <dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>correct.com</header_from></identifiers>\
                 <auth_results><dkim><domain>correct.com</domain><result>pass</result></dkim><spf><domain>amazonses.com</domain><result>pass</result></spf></auth_results></record>",
                i + 1
            )
        })
        .collect();
    let mut mails = Vec::new();
    for i in 0..400usize {
        let begin = 1_700_000_000 + i as i64 * 86_400;
        let xml = format!(
            "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>google.com</org_name><report_id>kill-{i}</report_id>\
             <date_range><begin>{begin}</begin><end>{}</end></date_range></report_metadata>\
             <policy_published><domain>correct.com</domain><p>none</p></policy_published>{records}</feedback>",
            begin + 86_400
        );
        mails.push(mail(format!("r{i}"), attached(&format!("Report {i}"), "r.xml", xml.as_bytes(), i), Kind::Report));
        if i % 40 == 7 {
            mails.push(mail(format!("other{i}"), plain(&format!("hello {i}")), Kind::Other));
        }
        if i % 80 == 11 {
            let broken = gzip(xml.as_bytes())[..60].to_vec();
            mails.push(mail(
                format!("broken{i}"),
                mime(&format!("Broken {i}"), &[("r.xml.gz", "application/gzip", broken)]),
                Kind::Broken,
            ));
        }
    }
    mails
}

#[test]
fn killing_intake_at_random_points_then_rerunning_loses_and_doubles_nothing() {
    let dir = TempDir::new("intake-kill");
    let mails = kill_mailbox();
    let expected = expected_totals(dir.path(), "kill", &mails);
    let seeds = [3u64, 17, 29, 41, 58];
    let users: Vec<String> = seeds.iter().map(|s| format!("seed{s}")).collect();
    let logins: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), PASSWORD)).collect();
    let Some(d) = start(&logins, &DovecotOptions::default()) else { return };
    let mut killed_midway = 0;
    for (seed, user) in seeds.iter().zip(&users) {
        deliver(&d, user, &mails);
        let config = dir.join(&format!("{user}.toml"));
        std::fs::write(&config, imap_source(&d, user, user, "implicit", &FOLDERS.replace("batch = 7", "batch = 25")))
            .unwrap();
        let db = format!("sqlite://{}", dir.join(&format!("{user}.sqlite")).display());
        let mut child = intake_command(&config, &db, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Kill after a seed-chosen number of stored reports (odd seeds) or moved messages
        // (even seeds): inside an ingest, between a commit and its move, or mid-move.
        let threshold = 5 + (seed * 7919) % 300;
        let location = Location::parse(&db).unwrap();
        let started = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(3));
            let progress = if seed % 2 == 1 {
                Store::open(&location).and_then(|mut s| s.totals()).map(|t| t.reports).unwrap_or(0)
            } else {
                d.messages(user, "Reports/Done").len() as u64
            };
            if progress >= threshold || started.elapsed() > Duration::from_secs(120) {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
        }
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let (code, v) = intake(&config, &db, &[]);
        assert_eq!(code, Some(1), "the broken mails fail ({user}): {v}");
        assert_eq!(totals(&db), expected, "{user}: the totals of one clean pass");
        assert_eq!(bodies(&d, user, "Reports/Done"), of_kind(&mails, Kind::Report), "{user}: every report moved once");
        assert_eq!(bodies(&d, user, "Reports/Failed"), of_kind(&mails, Kind::Broken), "{user}");
        assert_eq!(bodies(&d, user, "INBOX"), of_kind(&mails, Kind::Other), "{user}: nothing left unmoved");
    }
    assert!(killed_midway >= 3, "only {killed_midway} of {} passes were killed before they ended", seeds.len());
}

#[test]
fn s3_objects_are_stored_once_then_moved_or_tagged_and_a_missing_bucket_is_raised() {
    let Some(moto) = Moto::start() else { return };
    let dir = TempDir::new("intake-s3");
    let google = std::fs::read(testdata("reports/aggregate/drv-google.xml")).unwrap();
    let yahoo = std::fs::read(testdata("reports/aggregate/drv-yahoo.xml")).unwrap();
    let objects: Vec<(&str, Vec<u8>, Kind)> = vec![
        ("inbound/m7c3b0fak1", std::fs::read(testdata("reports/aggregate/mailauth-100.eml")).unwrap(), Kind::Report),
        ("inbound/m7c3b0fak2", std::fs::read(testdata("reports/failure/mailauth-arf-001.eml")).unwrap(), Kind::Report),
        ("inbound/google.xml.gz", gzip(&google), Kind::Report),
        ("inbound/yahoo.zip", zip(&[("yahoo.xml", &yahoo)]), Kind::Report),
        (
            "inbound/AMAZON_SES_SETUP_NOTIFICATION",
            b"From: no-reply-aws@amazon.com\r\nSubject: Amazon SES Setup Notification\r\n\r\nHello,\r\n\r\nThis is a notification from Amazon SES.\r\n"
                .to_vec(),
            Kind::Other,
        ),
        ("inbound/broken.xml.gz", gzip(&google)[..100].to_vec(), Kind::Broken),
        ("tagged/yahoo again.zip", zip(&[("yahoo.xml", &yahoo)]), Kind::Report),
    ];
    let files = dir.join("objects");
    std::fs::create_dir_all(&files).unwrap();
    let mut puts = String::from(
        "s3.create_bucket(Bucket='reports', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n",
    );
    for (i, (key, body, _)) in objects.iter().enumerate() {
        let path = files.join(i.to_string());
        std::fs::write(&path, body).unwrap();
        puts.push_str(&format!(
            "s3.put_object(Bucket='reports', Key={key:?}, Body=open({:?}, 'rb').read())\n",
            path.display().to_string()
        ));
    }
    moto.boto(&puts);
    let inbound: Vec<Mail> =
        objects.iter().filter(|o| o.0.starts_with("inbound/")).map(|(k, b, kind)| mail(*k, b.clone(), *kind)).collect();
    let expected = expected_totals(dir.path(), "s3", &inbound);
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[[intake.s3]]\nname = \"ses-inbound\"\nbucket = \"reports\"\nprefix = \"inbound/\"\nregion = \"eu-west-1\"\n\
             endpoint_url = \"{url}\"\nprocessed_prefix = \"processed/\"\n\n\
             [[intake.s3]]\nname = \"tagged\"\nbucket = \"reports\"\nprefix = \"tagged/\"\nregion = \"eu-west-1\"\n\
             endpoint_url = \"{url}\"\ntag_processed = true\n\n\
             [[intake.s3]]\nname = \"missing\"\nbucket = \"no-such-bucket\"\nregion = \"eu-west-1\"\nendpoint_url = \"{url}\"\n",
            url = moto.url
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let run = |extra: &[&str]| {
        let mut args = vec!["intake", "run", "--config", config.to_str().unwrap(), "--database", &db, "-f", "json"];
        args.extend_from_slice(extra);
        json_of(&ses_dmarc_aws(&args))
    };

    let (code, v) = run(&["--source", "ses-inbound"]);
    assert_eq!(code, Some(1), "{v}");
    let s = source(&v, "ses-inbound");
    assert!(s["error"].is_null(), "{s}");
    assert_eq!(s["messages"], 6, "{s}");
    assert_eq!(s["processed"], 4, "{s}");
    assert_eq!(s["not_reports"], 1, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["failures"][0]["item"], "inbound/broken.xml.gz", "{s}");
    assert_eq!(totals(&db), expected);
    let listing = moto
        .boto("print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='reports').get('Contents', []))))");
    let keys: Vec<String> = serde_json::from_str(&listing).unwrap();
    let mut want: Vec<String> = objects
        .iter()
        .map(|(k, _, kind)| match kind {
            Kind::Report if k.starts_with("inbound/") => k.replacen("inbound/", "processed/", 1),
            _ => k.to_string(),
        })
        .collect();
    want.sort();
    assert_eq!(keys, want, "stored objects moved under processed/, the rest left");

    let (code, again) = run(&["--source", "ses-inbound"]);
    assert_eq!(code, Some(0), "{again}");
    let s = source(&again, "ses-inbound");
    assert_eq!((s["messages"].as_u64(), s["processed"].as_u64()), (Some(0), Some(0)), "{s}");
    assert_eq!(totals(&db), expected);

    let (code, v) = run(&["--source", "tagged"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(source(&v, "tagged")["duplicates"], 1, "{v}");
    let tags =
        moto.boto("print(json.dumps(s3.get_object_tagging(Bucket='reports', Key='tagged/yahoo again.zip')['TagSet']))");
    assert!(tags.contains("ses-dmarc") && tags.contains("stored"), "{tags}");
    let (_, v) = run(&["--source", "tagged"]);
    assert_eq!(source(&v, "tagged")["messages"], 0, "a tagged object is not read again: {v}");

    let (code, v) = run(&["--source", "missing"]);
    assert_eq!(code, Some(3), "{v}");
    let s = source(&v, "missing");
    assert!(s["error"].as_str().unwrap().contains("NoSuchBucket"), "{s}");
    assert_eq!(s["events"][0]["kind"], "intake-failed", "{s}");
}

#[test]
fn s3_event_notifications_from_sqs_name_the_objects_to_take() {
    let Some(moto) = Moto::start() else { return };
    let dir = TempDir::new("intake-sqs");
    let report = std::fs::read(testdata("reports/aggregate/mailauth-100.eml")).unwrap();
    let google = gzip(&std::fs::read(testdata("reports/aggregate/drv-google.xml")).unwrap());
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, &report).unwrap();
    std::fs::write(&b, &google).unwrap();
    let setup = format!(
        "sqs = boto3.client('sqs', region_name='eu-west-1', **k)\n\
         q = sqs.create_queue(QueueName='reports-events')['QueueUrl']\n\
         arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         s3.create_bucket(Bucket='inbound', CreateBucketConfiguration={{'LocationConstraint': 'eu-west-1'}})\n\
         s3.put_bucket_notification_configuration(Bucket='inbound', NotificationConfiguration={{'QueueConfigurations': [\
         {{'QueueArn': arn, 'Events': ['s3:ObjectCreated:*'], 'Filter': {{'Key': {{'FilterRules': [{{'Name': 'prefix', 'Value': 'dmarc/'}}]}}}}}}]}})\n\
         s3.put_object(Bucket='inbound', Key='dmarc/m 1', Body=open({a:?}, 'rb').read())\n\
         s3.put_object(Bucket='inbound', Key='dmarc/google.xml.gz', Body=open({b:?}, 'rb').read())\n\
         s3.put_object(Bucket='inbound', Key='dmarc/not-notified-twice', Body=open({b:?}, 'rb').read())\n\
         sqs.send_message(QueueUrl=q, MessageBody='hello')\n\
         print(q)\n",
        a = a.display().to_string(),
        b = b.display().to_string()
    );
    let queue = moto.boto(&setup).trim().to_string();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[[intake.s3]]\nname = \"notified\"\nbucket = \"inbound\"\nprefix = \"dmarc/\"\nregion = \"eu-west-1\"\n\
             endpoint_url = \"{}\"\nprocessed_prefix = \"done/\"\nqueue_url = \"{queue}\"\n",
            moto.url
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let run = || {
        json_of(&ses_dmarc_aws(&[
            "intake",
            "run",
            "--config",
            config.to_str().unwrap(),
            "--database",
            &db,
            "-f",
            "json",
        ]))
    };
    let (code, v) = run();
    assert_eq!(code, Some(0), "{v}");
    let s = source(&v, "notified");
    assert!(s["error"].is_null(), "{s}");
    // The third object repeats the second's report: a duplicate.
    assert_eq!(
        (s["messages"].as_u64(), s["reports"].as_u64(), s["duplicates"].as_u64()),
        (Some(3), Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(s["processed"], 3, "{s}");
    let failures = s["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "the message that is not a notification: {s}");
    assert!(failures[0]["reason"].as_str().unwrap().contains("not JSON"), "{s}");
    let state = moto.boto(&format!(
        "sqs = boto3.client('sqs', region_name='eu-west-1', **k)\n\
         left = sqs.receive_message(QueueUrl={queue:?}, WaitTimeSeconds=0).get('Messages', [])\n\
         keys = sorted(o['Key'] for o in s3.list_objects_v2(Bucket='inbound').get('Contents', []))\n\
         print(json.dumps({{'left': len(left), 'keys': keys}}))"
    ));
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["left"], 0, "every queue message is deleted once taken: {state}");
    assert_eq!(
        state["keys"],
        serde_json::json!(["done/google.xml.gz", "done/m 1", "done/not-notified-twice"]),
        "{state}"
    );
    assert_eq!(totals(&db).reports, 2);

    let (code, v) = run();
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(source(&v, "notified")["messages"], 0, "an empty queue reads nothing: {v}");
}

#[test]
fn a_message_over_the_size_limit_is_not_downloaded_and_goes_to_the_failed_folder() {
    let dir = TempDir::new("intake-size");
    let Some(d) = start(&[("reports", PASSWORD)], &DovecotOptions::default()) else { return };
    let report = std::fs::read(testdata("reports/aggregate/mailauth-100.eml")).unwrap();
    let filler: String = "x".repeat(75).repeat(30_000).chars().collect();
    let big = mime("Report huge", &[("huge.xml", "text/xml", filler.into_bytes())]);
    assert!(big.len() > 2 * 1024 * 1024);
    d.deliver("reports", "INBOX", "1.report", &report);
    d.deliver("reports", "INBOX", "2.huge", &big);
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!("[intake]\nmax_size_mb = 1\n{}", imap_source(&d, "mailbox", "reports", "implicit", FOLDERS)),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let (code, v) = intake(&config, &db, &[]);
    assert_eq!(code, Some(1), "{v}");
    let s = source(&v, "mailbox");
    assert_eq!(
        (s["messages"].as_u64(), s["reports"].as_u64(), s["failed"].as_u64()),
        (Some(2), Some(1), Some(1)),
        "{s}"
    );
    let reason = s["failures"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("max_size_mb = 1") && reason.contains("not read"), "{reason}");
    assert_eq!(bodies(&d, "reports", "Reports/Failed"), vec![big]);
    assert_eq!(bodies(&d, "reports", "Reports/Done"), vec![report]);
    // Dovecot logs the body bytes each session sent: the small report's, not the huge one's.
    let log = d.log();
    let sent: u64 = log
        .lines()
        .filter_map(|l| l.split("body_bytes=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .sum();
    assert!(log.contains("body_bytes="), "{log}");
    assert!(sent < 1024 * 1024, "{sent} body bytes sent: the huge message was downloaded\n{log}");
}

#[test]
fn a_server_that_does_not_speak_imap_is_a_clear_error_not_a_hang_or_a_panic() {
    let dir = TempDir::new("intake-garbage");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Answers every connection as a web server would, then hangs up.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff garbage\r\n");
        }
    });
    let config = dir.join("c.toml");
    let mut sources = String::new();
    for (name, tls) in [("plain", "none"), ("starttls", "starttls"), ("implicit", "implicit")] {
        sources.push_str(&format!(
            "[[intake.imap]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nuser = \"u\"\n\
             password_env = \"SES_DMARC_TEST_IMAP_PASSWORD\"\n"
        ));
    }
    std::fs::write(&config, sources).unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let started = Instant::now();
    let (code, v) = intake(&config, &db, &[]);
    assert_eq!(code, Some(3), "{v}");
    assert!(started.elapsed() < Duration::from_secs(60), "no wait for a step timeout");
    for name in ["plain", "starttls", "implicit"] {
        let s = source(&v, name);
        let error = s["error"].as_str().unwrap_or_else(|| panic!("{name}: an error: {s}"));
        assert!(!error.is_empty() && !error.contains('\0'), "{name}: {error}");
        assert!(!error.contains("input: ["), "no parser dump: {error}");
        assert_eq!(s["events"][0]["kind"], "intake-failed", "{name}: {s}");
    }
}
