//! `verify_message` end to end: messages signed with keys made here (RSA-2048, RSA-1024,
//! Ed25519), keys published on the in-process DNS server, verified over real sockets.

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use ses_dmarc_dns::StubClient;
use ses_dmarc_dns::testing::{TestServer, with_soa};
use ses_dmarc_receiver::dmarc::DmarcResult;
use ses_dmarc_receiver::spf::SpfResult;
use ses_dmarc_receiver::verify::{Verification, VerifyInput, verify_message};
use std::sync::OnceLock;
use std::time::Duration;

struct Keys {
    rsa2048: (Vec<u8>, String),
    rsa1024: (Vec<u8>, String),
    ed_seed: [u8; 32],
    ed_public: String,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = |bits| {
            let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits).unwrap();
            (
                k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
                b64(k.to_public_key().to_public_key_der().unwrap().as_bytes()),
            )
        };
        let ed_seed: [u8; 32] = rand::random();
        let ed_public = b64(&ed25519_dalek::SigningKey::from_bytes(&ed_seed).verifying_key().to_bytes());
        Keys { rsa2048: rsa(2048), rsa1024: rsa(1024), ed_seed, ed_public }
    })
}

fn txt(v: &str) -> String {
    (0..v.len()).step_by(255).map(|i| format!("\"{}\"", &v[i..(i + 255).min(v.len())])).collect::<Vec<_>>().join(" ")
}

fn server() -> TestServer {
    let k = keys();
    let example = with_soa(&format!(
        "s2048._domainkey TXT {}\ns1024._domainkey TXT {}\ned._domainkey TXT {}\nrevoked._domainkey TXT \"v=DKIM1; p=\"\ntesting._domainkey TXT {}\n\
         mail TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\nmail MX 10 feedback-smtp.us-east-1.amazonses.com.\n\
         _dmarc TXT \"v=DMARC1; p=reject; rua=mailto:d@example.com\"\n@ A 192.0.2.80\n",
        txt(&format!("v=DKIM1; k=rsa; p={}", k.rsa2048.1)),
        txt(&format!("v=DKIM1; k=rsa; p={}", k.rsa1024.1)),
        txt(&format!("v=DKIM1; k=ed25519; p={}", k.ed_public)),
        txt(&format!("v=DKIM1; k=rsa; t=y; p={}", k.rsa2048.1)),
    ));
    let strict = with_soa(&format!(
        "s2048._domainkey TXT {}\nmail TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc TXT \"v=DMARC1; p=quarantine; adkim=s; aspf=s\"\n@ A 192.0.2.81\n",
        txt(&format!("v=DKIM1; k=rsa; p={}", k.rsa2048.1))
    ));
    let ses = with_soa(&format!(
        "@ TXT \"v=spf1 ip4:54.240.0.0/18 -all\"\nus-east-1 TXT \"v=spf1 ip4:54.240.0.0/18 -all\"\nses._domainkey TXT {}\n",
        txt(&format!("v=DKIM1; k=rsa; p={}", k.rsa2048.1))
    ));
    TestServer::start(&[("example.com.", &example), ("strict.com.", &strict), ("amazonses.com.", &ses)]).unwrap()
}

const BODY: &str = "From: Alice <alice@{D}>\r\nTo: bob@example.net\r\nSubject: Hello\r\nDate: Sun, 22 Nov 2026 08:00:00 +0000\r\nMessage-ID: <1@{D}>\r\n\r\nHello Bob,\r\nthis is a test.\r\n";

fn message(domain: &str) -> String {
    BODY.replace("{D}", domain)
}

fn sign_rsa(msg: &str, key: &(Vec<u8>, String), d: &str, s: &str) -> String {
    let k = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.0.clone()))).unwrap();
    let sig = DkimSigner::from_key(k)
        .domain(d)
        .selector(s)
        .headers(["From", "To", "Subject", "Date"])
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header())
}

fn sign_ed(msg: &str, d: &str, s: &str) -> String {
    let k = keys();
    let public = ed25519_dalek::SigningKey::from_bytes(&k.ed_seed).verifying_key().to_bytes();
    let key = Ed25519Key::from_seed_and_public_key(&k.ed_seed, &public).unwrap();
    let sig = DkimSigner::from_key(key)
        .domain(d)
        .selector(s)
        .headers(["From", "To", "Subject"])
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header())
}

fn run(server: &TestServer, raw: &str, ip: Option<&str>, mail_from: Option<&str>) -> Verification {
    let client = StubClient::new(vec![server.addr()], Duration::from_secs(2), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let input =
        VerifyInput { ip: ip.map(|i| i.parse().unwrap()), mail_from: mail_from.map(str::to_string), helo: None };
    rt.block_on(verify_message(&client, raw.as_bytes(), &input)).unwrap()
}

#[test]
fn rsa2048_pass_with_aligned_spf_and_dkim() {
    let s = server();
    let raw = sign_rsa(&message("example.com"), &keys().rsa2048, "example.com", "s2048");
    let v = run(&s, &raw, Some("192.0.2.10"), Some("bounce@mail.example.com"));
    let spf = v.spf.as_ref().unwrap();
    assert_eq!((spf.result, spf.aligned, spf.alignment), (SpfResult::Pass, true, "relaxed"));
    assert_eq!((v.dkim[0].result.as_str(), v.dkim[0].aligned, v.dkim[0].alignment), ("pass", true, "strict"));
    assert_eq!(v.dmarc.result, DmarcResult::Pass);
    assert!(
        v.explanation.iter().any(|l| l == "DKIM d=example.com s=s2048 pass, aligned (strict)"),
        "{:#?}",
        v.explanation
    );
    assert!(
        v.explanation
            .iter()
            .any(|l| l.starts_with("SPF pass for mail.example.com") && l.ends_with("aligned (relaxed)"))
    );
    assert!(v.problems.is_empty());
}

#[test]
fn rsa1024_and_ed25519_pass() {
    let s = server();
    let raw = sign_rsa(&message("example.com"), &keys().rsa1024, "example.com", "s1024");
    assert_eq!(run(&s, &raw, None, None).dkim[0].result, "pass");
    let raw = sign_ed(&message("example.com"), "example.com", "ed");
    let v = run(&s, &raw, None, None);
    assert_eq!(v.dkim[0].result, "pass", "{:?}", v.dkim);
    assert_eq!(v.dmarc.result, DmarcResult::Pass);
}

#[test]
fn changed_body_or_header_fails_and_dmarc_asks_for_reject() {
    let s = server();
    let raw = sign_rsa(&message("example.com"), &keys().rsa2048, "example.com", "s2048");
    let body_changed = raw.replace("this is a test", "this is a fraud");
    let v = run(&s, &body_changed, None, None);
    // Like Gmail ("dkim=neutral (body hash did not verify)"), mail-auth calls a body-hash
    // mismatch neutral; either way the signature does not pass.
    assert_eq!(v.dkim[0].result, "neutral");
    assert!(v.dkim[0].reason.as_deref().unwrap().to_ascii_lowercase().contains("body hash"), "{:?}", v.dkim[0].reason);
    assert_eq!((v.dmarc.result, v.dmarc.disposition.as_str()), (DmarcResult::Fail, "reject"));
    assert!(v.explanation.iter().any(|l| l.contains("SPF not evaluated")));
    let header_changed = raw.replace("Subject: Hello", "Subject: Invoice");
    assert_eq!(run(&s, &header_changed, None, None).dkim[0].result, "fail");
    // The body change does not matter when SPF aligns.
    assert_eq!(
        run(&s, &body_changed, Some("192.0.2.10"), Some("bounce@mail.example.com")).dmarc.result,
        DmarcResult::Pass
    );
}

#[test]
fn revoked_missing_and_wrong_selector() {
    let s = server();
    let msg = message("example.com");
    for (selector, key) in [("revoked", &keys().rsa2048), ("nokey", &keys().rsa2048), ("s1024", &keys().rsa2048)] {
        let v = run(&s, &sign_rsa(&msg, key, "example.com", selector), None, None);
        assert_ne!(v.dkim[0].result, "pass", "{selector}: {:?}", v.dkim);
        assert!(v.dkim[0].reason.is_some(), "{selector}");
        assert_eq!(v.dmarc.result, DmarcResult::Fail);
    }
}

#[test]
fn ses_like_message_with_two_signatures() {
    let s = server();
    let signed = sign_ed(&message("example.com"), "example.com", "ed");
    let raw = sign_rsa(&signed, &keys().rsa2048, "amazonses.com", "ses");
    let v = run(&s, &raw, Some("54.240.8.1"), Some("0100018f@us-east-1.amazonses.com"));
    assert_eq!(v.dkim.len(), 2);
    let customer = v.dkim.iter().find(|d| d.domain == "example.com").unwrap();
    let ses = v.dkim.iter().find(|d| d.domain == "amazonses.com").unwrap();
    assert!(customer.aligned && !ses.aligned && ses.result == "pass");
    assert!(v.explanation.iter().any(|l| l.contains("d=amazonses.com") && l.contains("SES's own signature, expected")));
    let spf = v.spf.as_ref().unwrap();
    assert_eq!((spf.result, spf.aligned), (SpfResult::Pass, false));
    assert!(v.hints.iter().any(|h| h.contains("no custom MAIL FROM")));
    assert_eq!(v.dmarc.result, DmarcResult::Pass);
    // Without the customer's signature: only SES's, envelope under amazonses.com: fails.
    let only_ses = sign_rsa(&message("example.com"), &keys().rsa2048, "amazonses.com", "ses");
    let v = run(&s, &only_ses, Some("54.240.8.1"), Some("0100018f@us-east-1.amazonses.com"));
    assert_eq!(v.dmarc.result, DmarcResult::Fail);
    assert!(v.hints.iter().any(|h| h.contains("Easy DKIM is not enabled")));
}

#[test]
fn strict_alignment() {
    let s = server();
    let msg = message("strict.com");
    let v = run(&s, &msg, Some("192.0.2.10"), Some("bounce@mail.strict.com"));
    assert_eq!(v.spf.as_ref().unwrap().result, SpfResult::Pass);
    assert_eq!(v.spf.as_ref().unwrap().alignment, "relaxed");
    assert_eq!((v.dmarc.result, v.dmarc.disposition.as_str()), (DmarcResult::Fail, "quarantine"));
    let v = run(&s, &sign_rsa(&msg, &keys().rsa2048, "strict.com", "s2048"), None, None);
    assert_eq!(v.dmarc.result, DmarcResult::Pass);
}

#[test]
fn connection_facts_from_the_receivers_headers() {
    let s = server();
    let signed = sign_rsa(&message("example.com"), &keys().rsa2048, "example.com", "s2048");
    let raw = format!(
        "Authentication-Results: mx.example.net; spf=pass (mx.example.net: domain of bounce@mail.example.com designates 192.0.2.10 as permitted sender) smtp.mailfrom=bounce@mail.example.com; dkim=fail header.d=example.com; dmarc=fail header.from=example.com\r\n{signed}"
    );
    let v = run(&s, &raw, None, None);
    let c = v.connection.as_ref().unwrap();
    assert_eq!(c.ip.to_string(), "192.0.2.10");
    assert!(c.source.contains("Authentication-Results"), "{}", c.source);
    assert_eq!(v.spf.as_ref().unwrap().result, SpfResult::Pass);
    assert!(
        v.disagreements.iter().any(|d| d.starts_with("DKIM d=example.com: mx.example.net says fail, we get pass")),
        "{:?}",
        v.disagreements
    );
    assert!(v.disagreements.iter().any(|d| d.starts_with("DMARC:")));
    let raw = format!(
        "Received-SPF: pass (x) client-ip=192.0.2.11; envelope-from=\"b@mail.example.com\"; helo=h.example.com;\r\n{signed}"
    );
    let v = run(&s, &raw, None, None);
    assert!(v.connection.as_ref().unwrap().source.contains("Received-SPF"));
}

#[test]
fn testing_keys_are_flagged() {
    let s = server();
    let v = run(&s, &sign_rsa(&message("example.com"), &keys().rsa2048, "example.com", "testing"), None, None);
    assert_eq!(v.dkim[0].result, "pass");
    assert!(v.dkim[0].key_testing);
    assert!(v.explanation.iter().any(|l| l.contains("testing mode (t=y)")), "{:#?}", v.explanation);
}

#[test]
fn body_length_and_expiry() {
    let s = server();
    let k = &keys().rsa2048;
    let key = || RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.0.clone()))).unwrap();
    let msg = message("example.com");
    let sig = DkimSigner::from_key(key())
        .domain("example.com")
        .selector("s2048")
        .headers(["From", "Subject"])
        .body_length(true)
        .sign(msg.as_bytes())
        .unwrap();
    let appended = format!("{}{msg}Appended by someone else.\r\n", sig.to_header());
    let v = run(&s, &appended, None, None);
    assert_eq!(v.dkim[0].result, "pass", "l= leaves appended text unsigned: {:?}", v.dkim[0]);
    assert!(v.dkim[0].body_length.is_some());
    assert!(v.explanation.iter().any(|l| l.contains("(l=)")), "{:#?}", v.explanation);
    let sig = DkimSigner::from_key(key())
        .domain("example.com")
        .selector("s2048")
        .headers(["From", "Subject"])
        .expiration(1)
        .sign(msg.as_bytes())
        .unwrap();
    let raw = format!("{}{msg}", sig.to_header());
    std::thread::sleep(Duration::from_millis(2100));
    let v = run(&s, &raw, None, None);
    assert_ne!(v.dkim[0].result, "pass", "an expired signature: {:?}", v.dkim[0]);
}

#[test]
fn broken_messages_get_a_verdict_or_an_error() {
    let s = server();
    let no_from = message("example.com").replace("From: Alice <alice@example.com>\r\n", "");
    let v = run(&s, &no_from, None, None);
    assert!(v.problems.iter().any(|p| p.contains("no From")));
    assert_eq!(v.dmarc.result, DmarcResult::PermError);
    let two_from = format!("From: eve@evil.test\r\n{}", message("example.com"));
    let v = run(&s, &two_from, None, None);
    assert!(v.problems.iter().any(|p| p.contains("2 From headers")));
    let junk: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let client = StubClient::new(vec![s.addr()], Duration::from_secs(1), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _ = rt.block_on(verify_message(&client, &junk, &VerifyInput::default()));
    let eight_bit = "From: J\u{fc}rgen <j@example.com>\r\nSubject: \u{ff}\u{fe}\r\n\r\n\u{80}\u{81}body".to_string();
    let _ = rt.block_on(verify_message(&client, eight_bit.as_bytes(), &VerifyInput::default())).unwrap();
    assert!(rt.block_on(verify_message(&client, b"", &VerifyInput::default())).is_err());
    let broken_mime = format!(
        "{}Content-Type: multipart/mixed; boundary=\"never-closed\r\n\r\n--never-closed\r\nContent-Type: text/plain; charset=\"\r\n\r\n\u{fffd}half a part",
        message("example.com").split("\r\n\r\n").next().unwrap().to_string() + "\r\n"
    );
    let v = rt.block_on(verify_message(&client, broken_mime.as_bytes(), &VerifyInput::default())).unwrap();
    assert_eq!(v.from_domain.as_deref(), Some("example.com"));
    assert_eq!(v.dmarc.result, DmarcResult::Fail);
    let big =
        format!("{}{}", message("example.com"), "x".repeat(78).repeat(50 * 1024 * 1024 / 80).replace("xx", "x\r\n"));
    let raw = sign_rsa(&message("example.com"), &keys().rsa2048, "example.com", "s2048");
    let big_signed = format!("{raw}{}", &big[big.find("\r\n\r\n").unwrap() + 4..]);
    let v = rt.block_on(verify_message(&client, big_signed.as_bytes(), &VerifyInput::default())).unwrap();
    assert_eq!(v.dkim[0].result, "neutral", "50 MB with a body that differs from the signed one: {:?}", v.dkim[0]);
}

#[test]
fn a_signature_that_leaves_from_unsigned_fails() {
    let s = server();
    let k = &keys().rsa2048;
    let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.0.clone()))).unwrap();
    let msg = message("example.com");
    let sig = DkimSigner::from_key(key)
        .domain("example.com")
        .selector("s2048")
        .headers(["To", "Subject"])
        .sign(msg.as_bytes());
    let Ok(sig) = sig else { return }; // a signer that refuses to leave From out is fine too
    let raw = format!("{}{msg}", sig.to_header());
    if !raw.to_ascii_lowercase().contains("h=to:subject") {
        return;
    }
    let v = run(&s, &raw, None, None);
    assert_eq!(v.dkim[0].result, "fail", "{:?}", v.dkim[0]);
    assert!(v.dkim[0].reason.as_deref().unwrap().contains("From MUST be signed"), "{:?}", v.dkim[0]);
    assert_ne!(v.dmarc.result, DmarcResult::Pass);
}

#[test]
fn an_l_larger_than_the_body_is_remarked() {
    let s = server();
    let k = &keys().rsa2048;
    let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.0.clone()))).unwrap();
    let msg = message("example.com");
    let sig = DkimSigner::from_key(key)
        .domain("example.com")
        .selector("s2048")
        .headers(["From", "Subject"])
        .body_length(true)
        .sign(msg.as_bytes())
        .unwrap();
    let header = sig.to_header();
    // Claim more than the body holds.
    let raw = format!("{}{msg}", header.replacen("l=", "l=99", 1));
    let v = run(&s, &raw, None, None);
    assert!(v.explanation.iter().any(|l| l.contains("more than the body's")), "{:#?} {:?}", v.explanation, v.dkim);
}

#[test]
fn a_thousand_signatures_whose_keys_never_come_are_capped_and_bounded() {
    let s = server();
    let msg = message("example.com");
    let mut raw = String::new();
    for i in 0..1000 {
        let name = format!("dead{i}._domainkey.example.com");
        s.set_fault(&name, ses_dmarc_dns::testing::Fault::Drop);
        raw.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=dead{i}; h=from; bh=AAAA; b=AAAA\r\n"
        ));
    }
    raw.push_str(&msg);
    let started = std::time::Instant::now();
    let v = run(&s, &raw, None, None);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(v.dkim.len() <= 10, "{}", v.dkim.len());
    assert!(v.problems.iter().any(|p| p.contains("990 skipped")), "{:?}", v.problems);
}

#[test]
fn text_and_random_bytes_are_not_messages() {
    let s = server();
    let client = StubClient::new(vec![s.addr()], Duration::from_secs(1), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let junk: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for input in [&b"Dear Bob,\nthis is a letter, not a message.\n"[..], &junk, b"\x00\x01\x02: x"] {
        let r = rt.block_on(verify_message(&client, input, &VerifyInput::default()));
        assert!(matches!(r, Err(ses_dmarc_receiver::verify::VerifyError::NotAMessage)), "{:?}", r.map(|v| v.dmarc));
    }
}

#[test]
fn disagreements_with_the_receiver_are_listed_with_their_cause() {
    let s = server();
    // The receiver saw a DKIM pass; the message as given has no signature.
    let raw = format!(
        "Authentication-Results: mx.receiver.test; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com\r\n{}",
        message("example.com")
    );
    let v = run(&s, &raw, None, None);
    assert!(v.disagreements.iter().any(|d| d.contains("holds no signature by d=example.com")), "{:?}", v.disagreements);
    assert!(
        v.disagreements.iter().any(|d| d.starts_with("DMARC:") && d.contains("likely cause")),
        "{:?}",
        v.disagreements
    );
    // Two From addresses: the cause says so, not "DNS changed".
    let two = raw.replace("From: Alice <alice@example.com>", "From: Alice <alice@example.com>, eve@evil.test");
    let v = run(&s, &two, None, None);
    let dmarc = v.disagreements.iter().find(|d| d.starts_with("DMARC:")).unwrap();
    assert!(dmarc.contains("From is not one address"), "{dmarc}");
}
