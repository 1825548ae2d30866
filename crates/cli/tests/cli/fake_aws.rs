//! AWS test doubles: moto's server (started per test from the venv scripts/test makes),
//! and a small SES server of our own that answers SES v1 (query/XML), SES v2 (REST/JSON)
//! GetEmailIdentity and GetAccount, and CloudWatch's GetMetricData and ListMetrics (Smithy
//! RPC v2 CBOR, what aws-sdk-cloudwatch speaks) with the response shapes of AWS's API
//! references, for what moto lacks (SigningHostedZone, DEED origins, key lengths, every DKIM
//! state; GetAccount; CloudWatch in CBOR). It tells regions apart by the SigV4 credential
//! scope of each request.

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

/// Runs ses-dmarc with test credentials and no AWS configuration of the machine's (nor its
/// default database: `ses status` reads that one when it exists).
pub(crate) fn ses_dmarc_aws(args: &[&str]) -> Output {
    ses_dmarc_aws_data(args, "/nonexistent/ses-dmarc-test-data")
}

/// [`ses_dmarc_aws`] with `XDG_DATA_HOME` at `data` (where the default database is).
pub(crate) fn ses_dmarc_aws_data(args: &[&str], data: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("XDG_DATA_HOME", data)
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

    /// Runs Python with boto3 against this moto; `script` sees `ses`, `route53`, `s3` and
    /// `json` (region eu-west-1 for SES and S3) and prints what the test reads back.
    pub(crate) fn boto(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json\nk = dict(endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             ses = boto3.client('ses', region_name='eu-west-1', **k)\nroute53 = boto3.client('route53', region_name='us-east-1', **k)\n\
             s3 = boto3.client('s3', region_name='eu-west-1', **k)\n",
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
    /// The regions where it exists (empty: every region).
    pub(crate) regions: Vec<&'static str>,
}

impl FakeIdentity {
    fn in_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.contains(&region)
    }
}

/// The SES account in one region, as GetAccount (and SES v1) tell it.
#[derive(Debug, Clone)]
pub(crate) struct FakeAccount {
    pub(crate) production_access: bool,
    pub(crate) sending_enabled: bool,
    pub(crate) enforcement_status: &'static str,
    pub(crate) max_24h_send: f64,
    pub(crate) max_send_rate: f64,
    pub(crate) sent_last_24h: f64,
    /// The production access request's (status, case id).
    pub(crate) review: Option<(&'static str, &'static str)>,
}

impl Default for FakeAccount {
    /// A healthy account with production access.
    fn default() -> Self {
        FakeAccount {
            production_access: true,
            sending_enabled: true,
            enforcement_status: "HEALTHY",
            max_24h_send: 50_000.0,
            max_send_rate: 14.0,
            sent_last_24h: 1_200.0,
            review: None,
        }
    }
}

impl FakeAccount {
    /// A new account in the sandbox.
    pub(crate) fn sandbox() -> Self {
        FakeAccount {
            production_access: false,
            max_24h_send: 200.0,
            max_send_rate: 1.0,
            sent_last_24h: 3.0,
            ..Default::default()
        }
    }
}

/// One CloudWatch series: (region, metric, configuration set or none for the account).
pub(crate) type SeriesKey = (String, String, Option<String>);

/// What the fake SES answers: identities by domain, accounts and reputation metrics by
/// region, or AWS errors (for every request, or per operation).
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    pub(crate) identities: HashMap<String, FakeIdentity>,
    /// Accounts by region; a region not listed has [`FakeAccount::default`].
    pub(crate) accounts: HashMap<String, FakeAccount>,
    /// Reputation datapoints (seconds since 1970, value) per series.
    pub(crate) metrics: HashMap<SeriesKey, Vec<(i64, f64)>>,
    /// (HTTP status, error code) returned to every request.
    pub(crate) fail_with: Option<(u16, &'static str)>,
    /// (HTTP status, error code) returned to one operation (`GetAccount`, `GetMetricData`).
    pub(crate) fail_ops: HashMap<&'static str, (u16, &'static str)>,
    pub(crate) requests: Vec<String>,
}

impl FakeState {
    /// Sets a series' datapoints.
    pub(crate) fn metric(&mut self, region: &str, metric: &str, set: Option<&str>, points: &[(i64, f64)]) {
        self.metrics.insert((region.into(), metric.into(), set.map(str::to_string)), points.to_vec());
    }
}

/// A CBOR value (RFC 8949), as much as the SDK's Smithy RPC v2 CBOR needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cbor {
    Map(Vec<(String, Cbor)>),
    Array(Vec<Cbor>),
    Text(String),
    Bytes(Vec<u8>),
    Int(i128),
    Float(f64),
    Bool(bool),
    Null,
    /// Tag 1: epoch seconds.
    Time(f64),
}

impl Cbor {
    pub(crate) fn get(&self, key: &str) -> Option<&Cbor> {
        match self {
            Cbor::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Cbor::Text(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn items(&self) -> &[Cbor] {
        match self {
            Cbor::Array(items) => items,
            _ => &[],
        }
    }

    pub(crate) fn seconds(&self) -> Option<f64> {
        match self {
            Cbor::Time(t) | Cbor::Float(t) => Some(*t),
            Cbor::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes())
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes())
            }
            _ => {
                out.push(m | 27);
                out.extend(n.to_be_bytes())
            }
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Map(entries) => {
                Cbor::head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    Cbor::Text(k.clone()).encode(out);
                    v.encode(out);
                }
            }
            Cbor::Array(items) => {
                Cbor::head(out, 4, items.len() as u64);
                items.iter().for_each(|i| i.encode(out));
            }
            Cbor::Text(t) => {
                Cbor::head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Bytes(b) => {
                Cbor::head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Int(i) if *i >= 0 => Cbor::head(out, 0, *i as u64),
            Cbor::Int(i) => Cbor::head(out, 1, (-1 - *i) as u64),
            Cbor::Float(f) => {
                out.push(0xfb);
                out.extend(f.to_be_bytes());
            }
            Cbor::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Cbor::Null => out.push(0xf6),
            Cbor::Time(t) => {
                out.push(0xc1);
                Cbor::Float(*t).encode(out);
            }
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one item from the front of `data`: the value and the bytes it took.
    pub(crate) fn decode(data: &[u8]) -> Option<(Cbor, usize)> {
        let first = *data.first()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let mut pos = 1;
        let arg = |pos: &mut usize| -> Option<Option<u64>> {
            let n = match info {
                0..=23 => u64::from(info),
                24..=27 => {
                    let len = 1usize << (info - 24);
                    let bytes = data.get(*pos..*pos + len)?;
                    *pos += len;
                    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
                }
                31 => return Some(None),
                _ => return None,
            };
            Some(Some(n))
        };
        if major == 7 {
            return Some(match info {
                20 => (Cbor::Bool(false), 1),
                21 => (Cbor::Bool(true), 1),
                22 | 23 => (Cbor::Null, 1),
                25 => {
                    let h = u16::from_be_bytes(data.get(1..3)?.try_into().ok()?);
                    let (sign, exp, frac) = ((h >> 15) & 1, (h >> 10) & 0x1f, f64::from(h & 0x3ff));
                    let v = match exp {
                        0 => frac * 2f64.powi(-24),
                        31 => {
                            if frac == 0.0 {
                                f64::INFINITY
                            } else {
                                f64::NAN
                            }
                        }
                        e => (1.0 + frac / 1024.0) * 2f64.powi(i32::from(e) - 15),
                    };
                    (Cbor::Float(if sign == 1 { -v } else { v }), 3)
                }
                26 => (Cbor::Float(f64::from(f32::from_be_bytes(data.get(1..5)?.try_into().ok()?))), 5),
                27 => (Cbor::Float(f64::from_be_bytes(data.get(1..9)?.try_into().ok()?)), 9),
                _ => return None,
            });
        }
        let n = arg(&mut pos)?;
        let value = match (major, n) {
            (0, Some(n)) => Cbor::Int(i128::from(n)),
            (1, Some(n)) => Cbor::Int(-1 - i128::from(n)),
            (2 | 3, Some(n)) => {
                let bytes = data.get(pos..pos + n as usize)?.to_vec();
                pos += n as usize;
                if major == 3 { Cbor::Text(String::from_utf8(bytes).ok()?) } else { Cbor::Bytes(bytes) }
            }
            (2 | 3, None) => {
                let mut bytes = Vec::new();
                while *data.get(pos)? != 0xff {
                    let (chunk, used) = Cbor::decode(&data[pos..])?;
                    pos += used;
                    match chunk {
                        Cbor::Text(t) => bytes.extend(t.into_bytes()),
                        Cbor::Bytes(b) => bytes.extend(b),
                        _ => return None,
                    }
                }
                pos += 1;
                if major == 3 { Cbor::Text(String::from_utf8(bytes).ok()?) } else { Cbor::Bytes(bytes) }
            }
            (4, n) => {
                let mut items = Vec::new();
                while n.is_some_and(|n| items.len() < n as usize) || (n.is_none() && *data.get(pos)? != 0xff) {
                    let (item, used) = Cbor::decode(&data[pos..])?;
                    pos += used;
                    items.push(item);
                }
                if n.is_none() {
                    pos += 1;
                }
                Cbor::Array(items)
            }
            (5, n) => {
                let mut entries = Vec::new();
                while n.is_some_and(|n| entries.len() < n as usize) || (n.is_none() && *data.get(pos)? != 0xff) {
                    let (key, used) = Cbor::decode(&data[pos..])?;
                    pos += used;
                    let (value, used) = Cbor::decode(&data[pos..])?;
                    pos += used;
                    entries.push((key.text()?.to_string(), value));
                }
                if n.is_none() {
                    pos += 1;
                }
                Cbor::Map(entries)
            }
            (6, Some(tag)) => {
                let (inner, used) = Cbor::decode(&data[pos..])?;
                pos += used;
                match (tag, inner.seconds()) {
                    (1, Some(t)) => Cbor::Time(t),
                    _ => inner,
                }
            }
            _ => return None,
        };
        Some((value, pos))
    }
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

fn v1_answer(action: &str, domain: &str, region: &str, state: &FakeState) -> String {
    let id = state.identities.get(domain).filter(|i| i.in_region(region));
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
    respond_bytes(stream, status, content_type, extra, body.as_bytes());
}

fn respond_bytes(stream: &mut TcpStream, status: u16, content_type: &str, extra: &str, body: &[u8]) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

fn v1_account_answer(action: &str, a: &FakeAccount) -> Option<String> {
    let body = match action {
        "GetSendQuota" => format!(
            "<SentLast24Hours>{:.1}</SentLast24Hours><Max24HourSend>{:.1}</Max24HourSend><MaxSendRate>{:.1}</MaxSendRate>",
            a.sent_last_24h, a.max_24h_send, a.max_send_rate
        ),
        "GetAccountSendingEnabled" => format!("<Enabled>{}</Enabled>", a.sending_enabled),
        _ => return None,
    };
    Some(format!(
        "<{action}Response xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><{action}Result>{body}</{action}Result>\
         <ResponseMetadata><RequestId>fake-1</RequestId></ResponseMetadata></{action}Response>"
    ))
}

/// SES v2 GetAccount, in the shape of the SES v2 API reference.
fn v2_account_answer(a: &FakeAccount) -> String {
    let mut body = serde_json::json!({
        "DedicatedIpAutoWarmupEnabled": false,
        "EnforcementStatus": a.enforcement_status,
        "ProductionAccessEnabled": a.production_access,
        "SendQuota": {"Max24HourSend": a.max_24h_send, "MaxSendRate": a.max_send_rate, "SentLast24Hours": a.sent_last_24h},
        "SendingEnabled": a.sending_enabled,
        "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
    });
    if let Some((status, case)) = a.review {
        body["Details"] = serde_json::json!({
            "MailType": "TRANSACTIONAL",
            "WebsiteURL": "https://example.com",
            "ContactLanguage": "EN",
            "UseCaseDescription": "receipts",
            "AdditionalContactEmailAddresses": [],
            "ReviewDetails": {"Status": status, "CaseId": case},
        });
    }
    body.to_string()
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_string())
}

/// CloudWatch GetMetricData and ListMetrics, in the shapes of the CloudWatch API reference.
fn cloudwatch_answer(operation: &str, region: &str, request: &Cbor, st: &FakeState) -> Cbor {
    match operation {
        "ListMetrics" => {
            let wanted = request.get("MetricName").and_then(Cbor::text);
            let mut metrics = Vec::new();
            for (r, metric, set) in st.metrics.keys() {
                if r != region || wanted.is_some_and(|w| w != metric) {
                    continue;
                }
                let dims = match set {
                    Some(name) => vec![Cbor::Map(vec![
                        ("Name".into(), text("ses:configuration-set")),
                        ("Value".into(), text(name)),
                    ])],
                    None => vec![],
                };
                metrics.push(Cbor::Map(vec![
                    ("Namespace".into(), text("AWS/SES")),
                    ("MetricName".into(), text(metric)),
                    ("Dimensions".into(), Cbor::Array(dims)),
                ]));
            }
            Cbor::Map(vec![("Metrics".into(), Cbor::Array(metrics))])
        }
        _ => {
            let start = request.get("StartTime").and_then(Cbor::seconds).unwrap_or(0.0);
            let end = request.get("EndTime").and_then(Cbor::seconds).unwrap_or(f64::MAX);
            let mut results = Vec::new();
            for q in request.get("MetricDataQueries").map(Cbor::items).unwrap_or_default() {
                let id = q.get("Id").and_then(Cbor::text).unwrap_or_default();
                let metric = q.get("MetricStat").and_then(|m| m.get("Metric"));
                let name = metric.and_then(|m| m.get("MetricName")).and_then(Cbor::text).unwrap_or_default();
                let set = metric
                    .and_then(|m| m.get("Dimensions"))
                    .map(Cbor::items)
                    .and_then(|d| d.first())
                    .and_then(|d| d.get("Value"))
                    .and_then(Cbor::text)
                    .map(str::to_string);
                let mut points: Vec<(i64, f64)> = st
                    .metrics
                    .get(&(region.to_string(), name.to_string(), set))
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(t, _)| (*t as f64) >= start && (*t as f64) < end)
                    .collect();
                points.sort_by_key(|p| std::cmp::Reverse(p.0));
                results.push(Cbor::Map(vec![
                    ("Id".into(), text(id)),
                    ("Label".into(), text(name)),
                    ("Timestamps".into(), Cbor::Array(points.iter().map(|(t, _)| Cbor::Time(*t as f64)).collect())),
                    ("Values".into(), Cbor::Array(points.iter().map(|(_, v)| Cbor::Float(*v)).collect())),
                    ("StatusCode".into(), text("Complete")),
                ]));
            }
            Cbor::Map(vec![
                ("MetricDataResults".into(), Cbor::Array(results)),
                ("Messages".into(), Cbor::Array(vec![])),
            ])
        }
    }
}

/// The region of a SigV4-signed request: `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
fn region_of(headers: &HashMap<String, String>) -> String {
    headers
        .get("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_string()
}

fn fail(stream: &mut TcpStream, protocol: &str, code: u16, error: &str) {
    match protocol {
        "json" => {
            let extra = format!("x-amzn-ErrorType: {error}\r\n");
            respond(stream, code, "application/json", &extra, &format!("{{\"message\":\"fake {error}\"}}"));
        }
        "cbor" => {
            let body = Cbor::Map(vec![
                ("__type".into(), text(&format!("com.amazonaws.cloudwatch#{error}"))),
                ("message".into(), text(&format!("fake {error}"))),
            ]);
            let extra = format!("smithy-protocol: rpc-v2-cbor\r\nx-amzn-query-error: {error};Sender\r\n");
            respond_bytes(stream, code, "application/cbor", &extra, &body.to_bytes());
        }
        _ => {
            let xml = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{error}</Code><Message>fake {error}</Message></Error><RequestId>fake-1</RequestId></ErrorResponse>"
            );
            respond(stream, code, "text/xml", "", &xml);
        }
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<FakeState>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0usize);
    let mut raw = vec![0; length];
    let _ = reader.read_exact(&mut raw);
    let body = String::from_utf8_lossy(&raw).into_owned();
    let mut st = state.lock().unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let region = region_of(&headers);
    let form: HashMap<String, String> =
        body.split('&').filter_map(|kv| kv.split_once('=').map(|(k, v)| (url_decode(k), url_decode(v)))).collect();
    let (protocol, operation) = if let Some(op) = path.strip_prefix("/service/GraniteServiceVersion20100801/operation/")
    {
        ("cbor", op.to_string())
    } else if path == "/v2/email/account" {
        ("json", "GetAccount".to_string())
    } else if path.starts_with("/v2/email/identities/") {
        ("json", "GetEmailIdentity".to_string())
    } else {
        ("xml", form.get("Action").cloned().unwrap_or_default())
    };
    st.requests.push(format!("{region} {operation} {} {body}", request_line.trim()));
    let failure = st.fail_with.or_else(|| st.fail_ops.get(operation.as_str()).copied());
    if let Some((code, error)) = failure {
        fail(&mut stream, protocol, code, error);
        return;
    }
    let account = st.accounts.get(&region).cloned().unwrap_or_default();
    if protocol == "cbor" {
        let request = Cbor::decode(&raw).map(|(v, _)| v).unwrap_or(Cbor::Map(vec![]));
        let answer = cloudwatch_answer(&operation, &region, &request, &st);
        respond_bytes(&mut stream, 200, "application/cbor", "smithy-protocol: rpc-v2-cbor\r\n", &answer.to_bytes());
        return;
    }
    if operation == "GetAccount" {
        respond(&mut stream, 200, "application/json", "", &v2_account_answer(&account));
        return;
    }
    if let Some(domain) = path.strip_prefix("/v2/email/identities/") {
        let domain = url_decode(domain);
        match st.identities.get(&domain).filter(|i| i.in_region(&region)) {
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
    if let Some(xml) = v1_account_answer(&operation, &account) {
        respond(&mut stream, 200, "text/xml", "", &xml);
        return;
    }
    let domain = form.get("Identities.member.1").cloned().unwrap_or_default();
    respond(&mut stream, 200, "text/xml", "", &v1_answer(&operation, &domain, &region, &st));
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
