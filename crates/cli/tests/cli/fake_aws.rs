//! AWS test doubles: moto's server (started per test from the venv scripts/test makes),
//! and a small SES server of our own that answers SES v1 (query/XML) and SES v2
//! (REST/JSON) GetEmailIdentity with the response shapes of AWS's API reference, for what
//! moto lacks (SigningHostedZone, DEED origins, key lengths, every DKIM state).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn venv_bin(name: &str) -> PathBuf {
    ses_dmarc_testkit::venv_bin(name)
}

/// Runs ses-dmarc with test credentials and no AWS configuration of the machine's.
pub(crate) fn ses_dmarc_aws(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/ses-dmarc-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/ses-dmarc-test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run ses-dmarc")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// moto's server on 127.0.0.1, killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto, or `None` (test skipped) outside CI when it is not installed; in CI a
    /// missing moto fails the test.
    pub(crate) fn start() -> Option<Moto> {
        let bin = venv_bin("moto_server");
        if !bin.exists() {
            assert!(std::env::var_os("CI").is_none(), "{} missing: scripts/test installs moto", bin.display());
            eprintln!("skipped: {} not found (scripts/test installs it)", bin.display());
            return None;
        }
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Runs Python with boto3 against this moto; `script` sees `ses`, `route53` and
    /// `json` (region eu-west-1 for SES) and prints what the test reads back.
    pub(crate) fn boto(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json\nk = dict(endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             ses = boto3.client('ses', region_name='eu-west-1', **k)\nroute53 = boto3.client('route53', region_name='us-east-1', **k)\n",
            self.url
        );
        let out = Command::new(venv_bin("python"))
            .args(["-c", &format!("{prelude}{script}")])
            .output()
            .expect("run the venv's python");
        assert!(out.status.success(), "boto3 script failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One identity as the fake SES knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeIdentity {
    pub(crate) verification: &'static str,
    pub dkim_status_v1: &'static str,
    pub dkim_status_v2: &'static str,
    pub(crate) dkim_enabled: bool,
    pub(crate) tokens: Vec<String>,
    pub(crate) signing_hosted_zone: Option<String>,
    pub(crate) origin: &'static str,
    pub(crate) current_key: &'static str,
    pub(crate) last_key_generation: Option<i64>,
    pub(crate) mail_from: Option<(String, &'static str, &'static str)>,
}

/// What the fake SES answers: identities by domain, or one AWS error for everything.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    pub(crate) identities: HashMap<String, FakeIdentity>,
    /// (HTTP status, error code) returned to every request.
    pub(crate) fail_with: Option<(u16, &'static str)>,
    pub(crate) requests: Vec<String>,
}

pub(crate) struct FakeSes {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<FakeState>>,
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn v1_entry(domain: &str, value: &str) -> String {
    format!("<entry><key>{domain}</key><value>{value}</value></entry>")
}

fn v1_answer(action: &str, domain: &str, state: &FakeState) -> String {
    let id = state.identities.get(domain);
    let body = match (action, id) {
        ("GetIdentityVerificationAttributes", Some(i)) => format!(
            "<VerificationAttributes>{}</VerificationAttributes>",
            v1_entry(domain, &format!("<VerificationStatus>{}</VerificationStatus>", i.verification))
        ),
        ("GetIdentityVerificationAttributes", None) => "<VerificationAttributes/>".into(),
        ("GetIdentityDkimAttributes", Some(i)) => {
            let tokens: String = i.tokens.iter().map(|t| format!("<member>{t}</member>")).collect();
            format!(
                "<DkimAttributes>{}</DkimAttributes>",
                v1_entry(
                    domain,
                    &format!(
                        "<DkimEnabled>{}</DkimEnabled><DkimVerificationStatus>{}</DkimVerificationStatus><DkimTokens>{tokens}</DkimTokens>",
                        i.dkim_enabled, i.dkim_status_v1
                    )
                )
            )
        }
        ("GetIdentityDkimAttributes", None) => "<DkimAttributes/>".into(),
        (
            "GetIdentityMailFromDomainAttributes",
            Some(FakeIdentity { mail_from: Some((name, status, behavior)), .. }),
        ) => {
            format!(
                "<MailFromDomainAttributes>{}</MailFromDomainAttributes>",
                v1_entry(
                    domain,
                    &format!(
                        "<MailFromDomain>{name}</MailFromDomain><MailFromDomainStatus>{status}</MailFromDomainStatus><BehaviorOnMXFailure>{behavior}</BehaviorOnMXFailure>"
                    )
                )
            )
        }
        ("GetIdentityMailFromDomainAttributes", _) => "<MailFromDomainAttributes/>".into(),
        _ => String::new(),
    };
    format!(
        "<{action}Response xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><{action}Result>{body}</{action}Result>\
         <ResponseMetadata><RequestId>fake-1</RequestId></ResponseMetadata></{action}Response>"
    )
}

fn v2_answer(i: &FakeIdentity) -> String {
    let mut dkim = serde_json::json!({
        "SigningEnabled": i.dkim_enabled,
        "Status": i.dkim_status_v2,
        "Tokens": i.tokens,
        "SigningAttributesOrigin": i.origin,
        "CurrentSigningKeyLength": i.current_key,
        "NextSigningKeyLength": i.current_key,
    });
    if let Some(z) = &i.signing_hosted_zone {
        dkim["SigningHostedZone"] = z.clone().into();
    }
    if let Some(t) = i.last_key_generation {
        dkim["LastKeyGenerationTimestamp"] = t.into();
    }
    let mut body = serde_json::json!({
        "IdentityType": "DOMAIN",
        "FeedbackForwardingStatus": true,
        "VerifiedForSendingStatus": i.verification == "Success",
        "VerificationStatus": i.dkim_status_v2,
        "DkimAttributes": dkim,
        "Policies": {},
        "Tags": [],
    });
    if let Some((name, status, behavior)) = &i.mail_from {
        let v2 = |s: &str| -> String {
            let mut out = String::new();
            for (k, c) in s.chars().enumerate() {
                if c.is_ascii_uppercase() && k > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        };
        body["MailFromAttributes"] = serde_json::json!({
            "MailFromDomain": name, "MailFromDomainStatus": v2(status), "BehaviorOnMxFailure": v2(behavior)
        });
    }
    body.to_string()
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, extra: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(mut stream: TcpStream, state: &Mutex<FakeState>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut st = state.lock().unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    st.requests.push(format!("{} {}", request_line.trim(), body));
    if let Some((code, error)) = st.fail_with {
        if path.starts_with("/v2/") {
            let extra = format!("x-amzn-ErrorType: {error}\r\n");
            respond(&mut stream, code, "application/json", &extra, &format!("{{\"message\":\"fake {error}\"}}"));
        } else {
            let xml = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{error}</Code><Message>fake {error}</Message></Error><RequestId>fake-1</RequestId></ErrorResponse>"
            );
            respond(&mut stream, code, "text/xml", "", &xml);
        }
        return;
    }
    if let Some(domain) = path.strip_prefix("/v2/email/identities/") {
        let domain = url_decode(domain);
        match st.identities.get(&domain) {
            Some(i) => respond(&mut stream, 200, "application/json", "", &v2_answer(i)),
            None => respond(
                &mut stream,
                404,
                "application/json",
                "x-amzn-ErrorType: NotFoundException\r\n",
                &format!("{{\"message\":\"Email identity {domain} does not exist.\"}}"),
            ),
        }
        return;
    }
    let form: HashMap<String, String> =
        body.split('&').filter_map(|kv| kv.split_once('=').map(|(k, v)| (url_decode(k), url_decode(v)))).collect();
    let action = form.get("Action").cloned().unwrap_or_default();
    let domain = form.get("Identities.member.1").cloned().unwrap_or_default();
    respond(&mut stream, 200, "text/xml", "", &v1_answer(&action, &domain, &st));
}

impl FakeSes {
    pub(crate) fn start(state: FakeState) -> FakeSes {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        });
        FakeSes { url, state }
    }
}
