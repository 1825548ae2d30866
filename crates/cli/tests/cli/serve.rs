//! `serve` end to end: the real binary on a random loopback port, its first watch pass
//! against the in-process DNS server, then the auth matrix, the API (agreeing with the
//! commands' JSON), bad input answered 4xx in JSON, the login form, metrics and SIGTERM.
//! On SQLite and PostgreSQL.

use crate::util::{ok, ses_dmarc, stderr, stdout};
use serde_json::Value;
use ses_dmarc_dns::testing::TestServer;
use ses_dmarc_testkit::{TempDir, databases, testdata};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const ADMIN_PASSWORD: &str = "admin-password-1";
const VIEWER_PASSWORD: &str = "viewer-password-1";

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, Vec<String>>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.first()).map(String::as_str).unwrap_or_default()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
pub(crate) fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (k, v) in headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length && (method != "GET" || !body.is_empty()) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    // Read to the end, or to Content-Length: a server may keep the connection open.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= end + 4 + n) {
                break;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no answer to {method} {path}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            map.entry(k.trim().to_ascii_lowercase()).or_default().push(v.trim().to_string());
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if map.get("transfer-encoding").is_some_and(|v| v.iter().any(|x| x.contains("chunked"))) {
        body = dechunk(&body);
    }
    Answer { status, headers: map, body }
}

pub(crate) fn get(addr: &str, path: &str, token: Option<&str>) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    request(addr, "GET", path, &headers, b"")
}

fn amazonses() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones/amazonses.com.zone"),
    )
    .unwrap()
}

pub(crate) fn zones(dir: &TempDir) -> TestServer {
    std::fs::write(dir.join("amazonses.com.zone"), amazonses()).unwrap();
    std::fs::write(
        dir.join("good.test.zone"),
        "$ORIGIN good.test.\n$TTL 300\n@ 3600 IN SOA ns.test. h.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n\
         @ TXT \"v=spf1 -all\"\nmail MX 10 feedback-smtp.us-east-1.amazonses.com.\nmail TXT \"v=spf1 include:amazonses.com ~all\"\n\
         tokenone._domainkey CNAME tokenone.dkim.amazonses.com.\ntokentwo._domainkey CNAME tokentwo.dkim.amazonses.com.\n\
         tokenthree._domainkey CNAME tokenthree.dkim.amazonses.com.\n_dmarc TXT \"v=DMARC1; p=none; rua=mailto:dmarc@good.test\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bare.test.zone"),
        "$ORIGIN bare.test.\n$TTL 300\n@ 3600 IN SOA ns.test. h.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n@ TXT \"v=spf1 -all\"\n",
    )
    .unwrap();
    TestServer::start_zone_dir(dir.path(), 0).unwrap()
}

/// The running server; killed (not waited for) if a test fails before SIGTERM.
pub(crate) struct Served {
    child: Option<Child>,
    pub(crate) addr: String,
    pub(crate) log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Served {
    pub(crate) fn start(config: &std::path::Path) -> Served {
        Served::start_with_env(config, &[])
    }

    pub(crate) fn start_with_env(config: &std::path::Path, env: &[(&str, &str)]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
            .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("ses-dmarc serve: listening on http://") {
                    let _ = tx.send(a.to_string());
                }
                kept.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("serve did not listen: {}", log.lock().unwrap()));
        Served { child: Some(child), addr, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// SIGKILL: nothing is released, nothing renewed.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM: {}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn add_user(config: &str, name: &str, password: &str, role: &str, tags: &[&str]) {
    let mut args = vec!["user", "add", name, "--role", role, "--config", config];
    for t in tags {
        args.extend(["--tag", t]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "user add {name}: {}", stderr(&o));
}

pub(crate) fn token(config: &str, user: &str) -> String {
    let o = ses_dmarc(&["token", "create", "--user", user, "--config", config]);
    assert!(o.status.success(), "token create: {}", stderr(&o));
    let t = stdout(&o).split_whitespace().find(|w| w.starts_with("sdm_")).map(str::to_string);
    t.unwrap_or_else(|| panic!("no token in {}", stdout(&o)))
}

pub(crate) fn wait_checked(addr: &str, token: &str, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = get(addr, "/api/v1/domains", Some(token));
        assert_eq!(a.status, 200, "{}", a.text());
        let rows = a.json();
        let checked = rows.as_array().unwrap().iter().filter(|r| !r["last_checked"].is_null()).count();
        if checked >= count {
            return rows;
        }
        assert!(Instant::now() < deadline, "serve's watch pass did not check {count} domains: {rows}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn write_config(dir: &TempDir, db: &str, dns: &TestServer) -> std::path::PathBuf {
    let text = format!(
        "database = \"{db}\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = 1.0\nattempts = 1\n[schedule]\ncheck = \"daily\"\njitter = \"0s\"\n\
         [[domain]]\nname = \"good.test\"\nregions = [\"us-east-1\"]\nmail_from = \"mail\"\ndkim_tokens = [\"tokenone\", \"tokentwo\", \"tokenthree\"]\ntags = [\"client-a\"]\n\
         [[domain]]\nname = \"bare.test\"\ntags = [\"client-b\"]\n",
        dns.addr()
    );
    let path = dir.join(&format!("serve-{}.toml", db.len()));
    std::fs::write(&path, text).unwrap();
    path
}

fn report_file() -> std::path::PathBuf {
    testdata("reports").join("aggregate").join("drv-google.xml")
}

#[test]
fn serve_checks_on_schedule_and_answers_the_api_as_the_commands_do() {
    let dir = TempDir::new("serve-api");
    let dns = zones(&dir);
    for db in databases(dir.path(), "serve-api") {
        let config = write_config(&dir, &db.url, &dns);
        let cfg = config.to_str().unwrap();
        // Users are added before the server starts (the store is created by the first).
        add_user(cfg, "admin", ADMIN_PASSWORD, "admin", &[]);
        add_user(cfg, "client", VIEWER_PASSWORD, "viewer", &["client-a"]);
        let admin = token(cfg, "admin");
        let viewer = token(cfg, "client");
        let served = Served::start(&config);
        let addr = served.addr.clone();

        // Only /health, /login and the stylesheet answer without auth.
        assert_eq!(get(&addr, "/health", None).status, 200, "{}", db.kind);
        assert_eq!(get(&addr, "/login", None).status, 200);
        assert_eq!(get(&addr, "/static/app.css", None).status, 200);
        for page in ["/", "/events", "/admin", "/domains/good.test"] {
            let a = get(&addr, page, None);
            assert_eq!(a.status, 303, "{page} without a login");
            assert!(a.header("location").starts_with("/login"), "{page}: {}", a.header("location"));
        }
        for api in ["/api/v1/domains", "/api/v1/events", "/api/v1/openapi.json", "/metrics"] {
            let a = get(&addr, api, None);
            assert_eq!(a.status, 401, "{api} without a token");
            if api != "/metrics" {
                assert_eq!(a.json()["error"]["status"], 401);
            }
        }
        assert_eq!(get(&addr, "/api/v1/domains", Some("sdm_not-a-token")).status, 401);
        let page = get(&addr, "/", Some(&admin));
        assert!(page.header("content-security-policy").contains("script-src 'none'"), "{:?}", page.headers);
        assert_eq!(page.header("x-content-type-options"), "nosniff");

        // The schedule's first pass checks both domains against the test DNS server.
        let rows = wait_checked(&addr, &admin, 2);
        let listed: Value =
            serde_json::from_str(&ok(&["watch", "list", "--database", &db.url, "--format", "json"])).unwrap();
        for l in listed.as_array().unwrap() {
            let row = rows.as_array().unwrap().iter().find(|r| r["domain"] == l["domain"]).expect("listed by the API");
            for (k, v) in l.as_object().unwrap() {
                assert_eq!(&row[k], v, "{}: {k} differs between the API and `watch list`", l["domain"]);
            }
        }
        let good = rows.as_array().unwrap().iter().find(|r| r["domain"] == "good.test").unwrap();
        assert_eq!(good["verdict"], true, "{good}");
        let bare = rows.as_array().unwrap().iter().find(|r| r["domain"] == "bare.test").unwrap();
        assert_eq!(bare["verdict"], false, "{bare}");
        assert_eq!(rows[0]["domain"], "bare.test", "what needs attention comes first");
        let check = get(&addr, "/api/v1/domains/bare.test", Some(&admin));
        assert_eq!(check.status, 200);
        assert!(check.json()["findings"].as_array().is_some_and(|f| !f.is_empty()), "{}", check.text());

        // A viewer sees their tag's domains only; another's is not found.
        let mine = get(&addr, "/api/v1/domains", Some(&viewer)).json();
        let names: Vec<&str> = mine.as_array().unwrap().iter().filter_map(|r| r["domain"].as_str()).collect();
        assert_eq!(names, ["good.test"]);
        assert_eq!(get(&addr, "/api/v1/domains/bare.test", Some(&viewer)).status, 404);
        assert_eq!(get(&addr, "/domains/bare.test", Some(&viewer)).status, 404);
        let denied = request(
            &addr,
            "POST",
            "/api/v1/domains",
            &[("Authorization", &format!("Bearer {viewer}")), ("Content-Type", "application/json")],
            br#"{"domain":"new.test"}"#,
        );
        assert_eq!(denied.status, 403, "a viewer cannot add: {}", denied.text());

        // An upload stores what `reports ingest` stores from the same file.
        let file = std::fs::read(report_file()).unwrap();
        let bearer = format!("Bearer {admin}");
        let up = request(
            &addr,
            "POST",
            "/api/v1/reports",
            &[("Authorization", &bearer), ("Content-Type", "application/xml")],
            &file,
        );
        assert_eq!(up.status, 200, "{}", up.text());
        let other = TempDir::new("serve-api-ingest");
        let cli_db = format!("sqlite://{}", other.join("ingest.sqlite").display());
        let ingest = ses_dmarc(&[
            "reports",
            "ingest",
            report_file().to_str().unwrap(),
            "--database",
            &cli_db,
            "--format",
            "json",
        ]);
        let ingest: Value = serde_json::from_str(&stdout(&ingest)).unwrap();
        let up = up.json();
        for key in ["reports", "records", "messages"] {
            assert_eq!(up["totals"][key], ingest["totals"][key], "{key}: upload {up} against ingest {ingest}");
        }
        let again = request(
            &addr,
            "POST",
            "/api/v1/reports",
            &[("Authorization", &bearer), ("Content-Type", "application/xml")],
            &file,
        );
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["totals"]["duplicates"], 1, "{}", again.text());

        // Bad input: 4xx with a JSON error, never a 5xx.
        let json_post = |body: &[u8]| {
            request(
                &addr,
                "POST",
                "/api/v1/domains",
                &[("Authorization", &bearer), ("Content-Type", "application/json")],
                body,
            )
        };
        for (what, answer, status) in [
            ("bad JSON", json_post(b"{\"domain\": "), 422),
            ("not a domain", json_post(br#"{"domain":"<script>"}"#), 422),
            (
                "wrong content type",
                request(
                    &addr,
                    "POST",
                    "/api/v1/reports",
                    &[("Authorization", &bearer), ("Content-Type", "image/png")],
                    b"x",
                ),
                415,
            ),
            (
                "1 GB upload",
                request(
                    &addr,
                    "POST",
                    "/api/v1/reports",
                    &[
                        ("Authorization", &bearer),
                        ("Content-Type", "application/xml"),
                        ("Content-Length", "1073741824"),
                    ],
                    b"<feedback>",
                ),
                413,
            ),
            (
                "not a report",
                request(
                    &addr,
                    "POST",
                    "/api/v1/reports",
                    &[("Authorization", &bearer), ("Content-Type", "application/xml")],
                    b"<html/>",
                ),
                422,
            ),
            ("unknown domain", get(&addr, "/api/v1/domains/unknown.test", Some(&admin)), 404),
            ("bad since", get(&addr, "/api/v1/events?since=yesterday", Some(&admin)), 400),
            ("unknown parameter", get(&addr, "/api/v1/domains?colour=red", Some(&admin)), 400),
            ("unknown route", get(&addr, "/api/v1/nothing", Some(&admin)), 404),
        ] {
            assert_eq!(answer.status, status, "{what}: {}", answer.text());
            assert_eq!(answer.json()["error"]["status"], status, "{what}");
            assert!(answer.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
        }

        // Add and remove through the API, as `watch add` would.
        let added = json_post(br#"{"domain":"added.test","tags":["client-a"]}"#);
        assert!(added.status == 200 || added.status == 201, "{}", added.text());
        assert_eq!(get(&addr, "/api/v1/domains/added.test/history", Some(&admin)).status, 200);
        let removed = request(&addr, "DELETE", "/api/v1/domains/added.test", &[("Authorization", &bearer)], b"");
        assert!(removed.status == 200 || removed.status == 204, "{}", removed.text());

        let events = get(&addr, "/api/v1/events?domain=bare.test", Some(&admin));
        assert_eq!(events.status, 200, "{}", events.text());
        let openapi = get(&addr, "/api/v1/openapi.json", Some(&admin)).json();
        assert_eq!(openapi["openapi"], "3.0.3");

        let metrics = get(&addr, "/metrics", Some(&admin));
        assert_eq!(metrics.status, 200, "{}", metrics.text());
        let text = metrics.text();
        assert!(text.contains("# HELP ") && text.contains("# TYPE "), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a Prometheus sample: {line}");
        }
        assert!(text.contains("checks"), "{text}");

        let log = served.log.clone();
        assert_eq!(served.stop(), Some(0), "SIGTERM: {}", log.lock().unwrap());
    }
}

fn login_form(addr: &str) -> (String, String) {
    let a = get(addr, "/login", None);
    let cookie = a
        .headers
        .get("set-cookie")
        .and_then(|c| c.iter().find(|c| c.starts_with("ses_dmarc_login=")))
        .expect("a login cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = a.text();
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    let csrf = html[at..].split('"').next().unwrap().to_string();
    (cookie, csrf)
}

fn sign_in(addr: &str, user: &str, password: &str, origin: Option<&str>) -> Answer {
    let (cookie, csrf) = login_form(addr);
    let body = format!("user={user}&password={password}&csrf={csrf}&next=%2F");
    let mut headers = vec![("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    request(addr, "POST", "/login", &headers, body.as_bytes())
}

#[test]
fn the_login_form_sets_a_strict_cookie_limits_guessing_and_refuses_other_sites() {
    let dir = TempDir::new("serve-login");
    let dns = zones(&dir);
    let db = ses_dmarc_testkit::TestDb::sqlite(dir.path(), "login");
    let config = write_config(&dir, &db.url, &dns);
    let cfg = config.to_str().unwrap();
    add_user(cfg, "admin", ADMIN_PASSWORD, "admin", &[]);
    add_user(cfg, "victim", VIEWER_PASSWORD, "viewer", &[]);
    let served = Served::start(&config);
    let addr = served.addr.clone();

    assert_eq!(sign_in(&addr, "admin", "wrong-password", None).status, 401);
    let other_site = sign_in(&addr, "admin", ADMIN_PASSWORD, Some("http://evil.test"));
    assert_eq!(other_site.status, 403, "a login posted from another origin");
    let ok = sign_in(&addr, "admin", ADMIN_PASSWORD, Some(&format!("http://{addr}")));
    assert_eq!(ok.status, 303, "{}", ok.text());
    let session = ok
        .headers
        .get("set-cookie")
        .and_then(|c| c.iter().find(|c| c.starts_with("ses_dmarc_session=")).cloned())
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP on loopback: {session}");
    let cookie = session.split(';').next().unwrap().to_string();
    let home = request(&addr, "GET", "/", &[("Cookie", &cookie)], b"");
    assert_eq!(home.status, 200);
    assert!(home.text().contains("good.test"), "{}", home.text());

    // A form without the session's CSRF token is refused, as is a cookie-borne API change.
    let form = request(
        &addr,
        "POST",
        "/admin/domains",
        &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
        b"domain=csrf.test",
    );
    assert_eq!(form.status, 403, "{}", form.text());
    let api = request(
        &addr,
        "POST",
        "/api/v1/domains",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        br#"{"domain":"csrf.test"}"#,
    );
    assert_eq!(api.status, 403, "{}", api.text());

    // Five wrong passwords, then even the right one waits.
    for _ in 0..5 {
        assert_eq!(sign_in(&addr, "victim", "guess-guess", None).status, 401);
    }
    let limited = sign_in(&addr, "victim", VIEWER_PASSWORD, None);
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(!limited.header("retry-after").is_empty());

    let html = home.text();
    let at =
        html.find("name=\"csrf\" value=\"").expect("the logout form's csrf field") + "name=\"csrf\" value=\"".len();
    let csrf = html[at..].split('"').next().unwrap().to_string();
    let form = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let out = request(&addr, "POST", "/logout", &form, format!("csrf={csrf}").as_bytes());
    assert_eq!(out.status, 303, "{}", out.text());
    assert_eq!(request(&addr, "GET", "/", &[("Cookie", &cookie)], b"").status, 303, "the session ended");
    assert_eq!(served.stop(), Some(0));
}
