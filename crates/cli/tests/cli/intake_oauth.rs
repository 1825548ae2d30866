//! `intake run` signing in with XOAUTH2 to a real Dovecot whose oauth2 passdb asks a small
//! introspection server on loopback (RFC 7662, POST `token=...`) about each token: a good
//! token reads the mailbox, a wrong one fails the source without the token in any output.

use crate::util::{stderr, stdout};
use serde_json::Value;
use ses_dmarc_testkit::{Dovecot, DovecotOptions, TempDir, testdata, unavailable};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "ya29.good-token-4f2a9c";
const WRONG_TOKEN: &str = "ya29.wrong-token-77d1e0";

/// An introspection endpoint: a token is active when it is [`TOKEN`]; every token it was
/// asked about is kept, in order.
struct Introspection {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Introspection {
    fn start() -> Introspection {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the introspection server");
        let url = format!("http://127.0.0.1:{}/introspect", listener.local_addr().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Introspection { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answers the requests of one connection (Dovecot's HTTP client keeps it open).
fn serve(stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut expect_continue) = (0usize, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "expect" => expect_continue = value.trim().eq_ignore_ascii_case("100-continue"),
                    _ => {}
                }
            }
        }
        if expect_continue && out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let form = String::from_utf8_lossy(&body).into_owned();
        let token = form.split('&').find_map(|pair| pair.strip_prefix("token=")).map(form_decode).unwrap_or_default();
        let answer = if request_line.starts_with("POST ") && token == TOKEN {
            r#"{"active":true,"username":"reports"}"#
        } else {
            r#"{"active":false}"#
        };
        seen.lock().unwrap().push(token);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// `application/x-www-form-urlencoded` to text.
fn form_decode(s: &str) -> String {
    let mut bytes = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                match std::str::from_utf8(&hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => bytes.push(v),
                    None => {
                        bytes.push(b'%');
                        bytes.extend(hex);
                    }
                }
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn config(d: &Dovecot, token: &str) -> String {
    format!(
        "[[intake.imap]]\nname = \"oauth\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\n\
         user = \"reports\"\noauth2_token_command = \"printf %s {token}\"\n\
         processed_folder = \"Reports/Done\"\n",
        d.tls_port,
        d.ca_file.display()
    )
}

fn intake(config: &Path, db: &str) -> (Option<i32>, Value, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(["intake", "run", "--config", config.to_str().unwrap(), "--database", db, "--format", "json"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run ses-dmarc");
    let (out, err) = (stdout(&o), stderr(&o));
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("intake run: {e}\n{out}\n{err}"));
    (o.status.code(), v, out, err)
}

fn source(v: &Value) -> &Value {
    v["sources"].as_array().unwrap().iter().find(|s| s["source"] == "oauth").unwrap_or_else(|| panic!("oauth in {v}"))
}

#[test]
fn imap_xoauth2_signs_in_with_a_token_the_server_introspects_and_a_wrong_one_is_refused() {
    let dir = TempDir::new("intake-oauth");
    let introspection = Introspection::start();
    let options = DovecotOptions { oauth2_introspection_url: Some(introspection.url.clone()), ..Default::default() };
    let d = match Dovecot::start(&[("reports", "a-password-not-used-here")], &options) {
        Ok(d) => d,
        Err(e) => {
            unavailable("Dovecot (Debian's dovecot-imapd)", &e);
            return;
        }
    };
    let report = std::fs::read(testdata("reports/aggregate/mailauth-100.eml")).unwrap();
    d.deliver("reports", "INBOX", "1.report", &report);
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());

    let good = dir.join("good.toml");
    std::fs::write(&good, config(&d, TOKEN)).unwrap();
    let (code, v, _, err) = intake(&good, &db);
    assert_eq!(code, Some(0), "{v}\n{err}\n{}", d.log());
    let s = source(&v);
    assert!(s["error"].is_null(), "{s}\n{}", d.log());
    assert_eq!(s["messages"], 1, "{s}");
    assert_eq!(s["reports"], 1, "{s}");
    assert_eq!(s["processed"], 1, "{s}");
    assert_eq!(d.messages("reports", "Reports/Done").len(), 1, "the stored report is moved");
    assert_eq!(introspection.seen(), vec![TOKEN.to_string()], "Dovecot asked about the token once");

    d.deliver("reports", "INBOX", "2.report", &report);
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, config(&d, WRONG_TOKEN)).unwrap();
    let (code, v, out, err) = intake(&wrong, &db);
    assert_eq!(code, Some(3), "{v}\n{err}");
    let s = source(&v);
    let error = s["error"].as_str().unwrap_or_else(|| panic!("an error for the refused token: {s}"));
    assert!(error.contains("XOAUTH2") || error.contains("AUTHENTICATIONFAILED"), "{error}");
    assert_eq!(s["events"][0]["kind"], "intake-failed", "{s}");
    for output in [&out, &err] {
        assert!(!output.contains(WRONG_TOKEN) && !output.contains(TOKEN), "no token in the output: {output}");
    }
    assert_eq!(
        introspection.seen(),
        vec![TOKEN.to_string(), WRONG_TOKEN.to_string()],
        "the wrong token reached the introspection server and was refused there"
    );
    assert_eq!(d.messages("reports", "INBOX").len(), 1, "nothing read with a refused token");
}
