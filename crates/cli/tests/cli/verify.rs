//! `ses-dmarc verify` end to end against the fixture zones on the in-process server.
//! (Signed messages are covered in crates/receiver/tests/verify.rs.)

use crate::util::{ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::TestServer;

fn server() -> TestServer {
    TestServer::start_zone_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones"),
        0,
    )
    .unwrap()
}

fn write(name: &str, content: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ses-dmarc-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const MSG: &[u8] = b"From: Shop <orders@correct.com>\r\nTo: c@example.net\r\nSubject: Your order\r\n\r\nThanks.\r\n";

#[test]
fn spf_aligned_through_the_custom_mail_from_passes() {
    let s = server();
    let ns = s.addr().to_string();
    let p = write("ok.eml", MSG);
    let args = [
        "verify",
        p.to_str().unwrap(),
        "--nameserver",
        &ns,
        "--ip",
        "54.240.8.1",
        "--mail-from",
        "b@mail.correct.com",
        "--format",
        "json",
    ];
    let o = ses_dmarc(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["spf"]["result"], "pass");
    assert_eq!(v["spf"]["domain"], "mail.correct.com");
    assert_eq!(v["spf"]["aligned"], true);
    assert_eq!(v["dkim"].as_array().unwrap().len(), 0);
    assert_eq!(v["dmarc"]["result"], "pass");
    assert_eq!(v["dmarc"]["policy"], "none");
    assert_eq!(v["dmarc"]["disposition"], "none");
    let o = ses_dmarc(&[
        "verify",
        p.to_str().unwrap(),
        "--nameserver",
        &ns,
        "--ip",
        "192.0.2.99",
        "--mail-from",
        "b@mail.correct.com",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("SPF softfail for mail.correct.com"), "{}", stdout(&o));
}

#[test]
fn default_ses_envelope_gets_the_hint() {
    let s = server();
    let ns = s.addr().to_string();
    let p = write("ses.eml", MSG);
    let o = ses_dmarc(&[
        "verify",
        p.to_str().unwrap(),
        "--nameserver",
        &ns,
        "--ip",
        "54.240.8.1",
        "--mail-from",
        "x@amazonses.com",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("no custom MAIL FROM"), "{out}");
    assert!(out.contains("DKIM: the message is not signed"));
}

#[test]
fn bad_input_exits_2_and_junk_never_panics() {
    let s = server();
    let ns = s.addr().to_string();
    let empty = write("empty.eml", b"");
    let junk = write("junk.eml", &(0..20000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect::<Vec<_>>());
    for (args, hint) in [
        (vec!["verify", "/nonexistent.eml", "--nameserver", &ns], "cannot read"),
        (vec!["verify", empty.to_str().unwrap(), "--nameserver", &ns], "is empty"),
        (vec!["verify", empty.to_str().unwrap(), "--helo", "x", "--nameserver", &ns], "--ip"),
        (vec!["verify", empty.to_str().unwrap(), "--ip", "nope", "--nameserver", &ns], "not an IP address"),
    ] {
        let o = ses_dmarc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(hint), "{args:?}: {}", stderr(&o));
    }
    let o = ses_dmarc(&["verify", junk.to_str().unwrap(), "--nameserver", &ns]);
    assert!(matches!(o.status.code(), Some(1) | Some(2)), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}
