//! Hostile input, end to end, each run under a memory cap (prlimit) and a time limit: a
//! regression fails here instead of swapping the machine.

use crate::util::{capped, ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::{TestServer, with_soa};
use ses_dmarc_testkit::TempDir;

const GB: u64 = 1024 * 1024 * 1024;

/// An SPF record that fans out: each of 15 levels includes the next ten times.
fn fan_out_zone() -> String {
    let mut zone = String::new();
    for level in 0..15 {
        let includes: String = if level < 14 {
            (0..10).map(|_| format!(" include:l{}.fan.test", level + 1)).collect()
        } else {
            " ip4:192.0.2.0/24".into()
        };
        let name = if level == 0 { "@".to_string() } else { format!("l{level}") };
        zone.push_str(&format!("{name} 300 IN TXT \"v=spf1{includes} -all\"\n"));
    }
    zone.push_str("_dmarc 300 IN TXT \"v=DMARC1; p=none\"\n");
    zone
}

#[test]
fn an_spf_include_fan_out_stays_small_and_quick() {
    let s = TestServer::start(&[("fan.test.", &with_soa(&fan_out_zone()))]).unwrap();
    let ns = s.addr().to_string();
    let (o, took) = capped(&["spf", "fan.test", "--nameserver", &ns, "--format", "json"], GB, 60);
    assert_eq!(o.status.code(), Some(1), "permerror: {}", stderr(&o));
    assert!(took.as_secs() < 20, "{took:?}");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["permerror"], true);
    assert!(v["lookups"].as_u64().unwrap() > 10);
    let (o, took) = capped(&["check", "fan.test", "--nameserver", &ns, "--format", "json"], GB, 60);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(took.as_secs() < 20, "{took:?}");
}

#[test]
fn zip_bombs_and_big_batches_stay_within_the_limits() {
    let dir = TempDir::new("bombs");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    // 1,000 directory entries pointing at one 200 MB member.
    let zeros = vec![0u8; 200 * 1024 * 1024];
    let repeated = dir.join("repeated.zip");
    std::fs::write(&repeated, ses_dmarc_testkit::zip_with_repeated_entry("big.xml", &zeros, 1000)).unwrap();
    drop(zeros);
    let (o, took) =
        capped(&["reports", "ingest", repeated.to_str().unwrap(), "--database", &db, "--format", "json"], GB, 60);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(v["inputs"][0]["outcome"], "failed", "{v}");
    assert!(v["inputs"][0]["error"].as_str().unwrap().contains("decompression bomb"), "{v}");
    assert_eq!(v["inputs"][0]["failed"], 1, "the member is read once: {v}");
    assert!(took.as_secs() < 30, "{took:?}");
    // Twenty members of 4 MB of text (no bomb) against a 16 MB limit for the whole input.
    let text: Vec<u8> =
        (0..4 * 1024 * 1024u32).map(|i| b"0123456789abcdef"[(i.wrapping_mul(2654435761) >> 28) as usize]).collect();
    let names: Vec<String> = (0..20).map(|i| format!("m{i}.xml")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), text.as_slice())).collect();
    let many = dir.join("many.zip");
    std::fs::write(&many, ses_dmarc_testkit::zip(&members)).unwrap();
    let (o, _) = capped(
        &["reports", "ingest", many.to_str().unwrap(), "--database", &db, "--max-size", "16", "--format", "json"],
        GB,
        60,
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let error = v["inputs"][0]["error"].as_str().unwrap();
    assert!(error.contains("more than 16 MB") && error.contains("--max-size"), "{error}");
    // A gzip bomb under a generous size limit: refused by its ratio, at once.
    let mut best = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..64 {
        std::io::Write::write_all(&mut best, &vec![0u8; 64 * 1024 * 1024]).unwrap();
    }
    let bomb = dir.join("bomb.xml.gz");
    std::fs::write(&bomb, best.finish().unwrap()).unwrap();
    let (o, took) = capped(
        &["reports", "ingest", bomb.to_str().unwrap(), "--database", &db, "--max-size", "4096", "--format", "json"],
        GB,
        60,
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert!(v["inputs"][0]["error"].as_str().unwrap().contains("decompression bomb"), "{v}");
    assert!(took.as_secs() < 10, "{took:?}");
}

#[test]
fn fifos_and_huge_inputs_never_block_or_flood() {
    let dir = TempDir::new("fifo");
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let fifo = inbox.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (o, took) = capped(
        &["reports", "ingest", inbox.to_str().unwrap(), fifo.to_str().unwrap(), "--database", &db, "--format", "json"],
        GB,
        20,
    );
    assert!(took.as_secs() < 10, "blocked on the FIFO: {took:?}");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let outcomes: Vec<&str> = v["inputs"].as_array().unwrap().iter().map(|i| i["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["skipped", "failed"], "{v}");
    assert!(v["inputs"][1]["error"].as_str().unwrap().contains("a FIFO"), "{v}");
    // A zone file far past what checking one domain needs.
    let zone = dir.join("huge.zone");
    let line = "x IN TXT \"padding padding padding padding padding padding padding padding\"\n";
    std::fs::write(&zone, format!("$ORIGIN big.test.\n$TTL 60\n{}", line.repeat(17 * 1024 * 1024 / line.len())))
        .unwrap();
    let (o, took) = capped(&["check", "big.test", "--zone", zone.to_str().unwrap()], GB, 20);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("more than 16777216 bytes"), "{}", stderr(&o));
    assert!(took.as_secs() < 10);
    // A 10 MB line in --file is not echoed back whole.
    let list = dir.join("list.txt");
    std::fs::write(&list, format!("{}\n", "a".repeat(10 * 1024 * 1024))).unwrap();
    let (o, _) =
        capped(&["check", "--file", list.to_str().unwrap(), "--nameserver", "127.0.0.1:9", "--timeout", "0.2"], GB, 20);
    assert!(o.stderr.len() < 4096, "{} bytes on stderr", o.stderr.len());
}

#[test]
fn control_characters_from_outside_never_reach_the_terminal() {
    // Raw control characters inside the quoted TXT values.
    let zone = "@ 300 IN TXT \"v=spf1 include:evil\x1b]0;owned\x07.test -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=none; rua=mailto:x\x1b[2J@esc.test\"\n";
    let s = TestServer::start(&[("esc.test.", &with_soa(zone))]).unwrap();
    let ns = s.addr().to_string();
    for args in [vec!["check", "esc.test", "--nameserver", &ns], vec!["spf", "esc.test", "--nameserver", &ns]] {
        let o = ses_dmarc(&args);
        assert!(!o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07), "{args:?}: {}", stdout(&o));
        assert!(stdout(&o).contains("\\u{1b}"), "{args:?} shows the escape as text: {}", stdout(&o));
    }
    let dir = TempDir::new("esc");
    let list = dir.join("list.txt");
    std::fs::write(&list, "bad\x1b]0;owned\x07domain\n").unwrap();
    let o = ses_dmarc(&["check", "--file", list.to_str().unwrap(), "--nameserver", &ns]);
    assert!(!o.stderr.contains(&0x1b), "{}", stderr(&o));
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let report = format!(
        "<feedback><report_metadata><org_name>evil&#27;[31m</org_name><report_id>e1</report_id><date_range><begin>{}</begin><end>{}</end></date_range></report_metadata><policy_published><domain>esc.test</domain><p>none</p></policy_published><record><row><source_ip>192.0.2.1&#27;]0;x&#7;</source_ip><count>1</count></row><identifiers><header_from>esc.test</header_from></identifiers></record></feedback>",
        now - 86_400,
        now - 60
    );
    let path = dir.join("r.xml");
    std::fs::write(&path, report).unwrap();
    ses_dmarc(&["reports", "ingest", path.to_str().unwrap(), "--database", &db]);
    let o = ses_dmarc(&["reports", "summary", "esc.test", "--database", &db]);
    assert!(!o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07), "{}", stdout(&o));
}
