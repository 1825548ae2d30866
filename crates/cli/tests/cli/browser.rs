//! `serve` in Debian's Chromium, driven by chromedriver over WebDriver (plain HTTP on
//! loopback): sign in, the overview and a domain page with their SVG charts drawn, and a
//! report whose fields are made to run script, shown as text with nothing run.
//! Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots`.

use crate::serve::{ADMIN_PASSWORD, Answer, Served, add_user, request, token, wait_checked, write_config, zones};
use base64::Engine;
use serde_json::{Value, json};
use ses_dmarc_testkit::TempDir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What the report's fields hold: each would run script if it were not escaped.
const SCRIPT_ORG: &str = "<script>window.__xss='org'</script>Evil Org";
const IMG_ID: &str = "\"><img src=x onerror=\"window.__xss='id'\">";
const JS_URL: &str = "javascript:window.__xss='url'";
const SVG_REASON: &str = "<svg onload=\"window.__xss='reason'\"></svg>";

struct Driver {
    child: Child,
    addr: String,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = request(&self.addr, "DELETE", &format!("/session/{}", self.session), &[], b"");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Chromedriver on a free port, and a headless Chromium session; `None` (outside CI)
    /// when they are not installed.
    fn start() -> Option<Driver> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{CHROMEDRIVER} or {CHROMIUM} is missing: scripts/test installs chromium and chromium-driver (Debian)"
            );
            eprintln!("skipped: Debian's chromium and chromium-driver are not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1800"]
        }}}});
        let mut driver = Driver { child, addr, session: String::new() };
        let created = driver.call("POST", "/session", Some(caps));
        driver.session = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        Some(driver)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let answer: Answer =
            request(&self.addr, method, path, &[("Content-Type", "application/json")], body.as_bytes());
        let v = answer.json();
        assert_eq!(answer.status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.session("POST", "/url", Some(json!({ "url": url })));
    }

    fn run(&self, script: &str) -> Value {
        self.session("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    fn element(&self, css: &str) -> String {
        let e = self.session("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        e.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element id").to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.session("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn screenshot(&self, name: &str) {
        let png = self.session("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Nothing the page got from a report ran, and no element carries a handler or a
    /// `javascript:` link.
    fn assert_nothing_ran(&self, page: &str) {
        assert_eq!(self.run("return window.__xss === undefined;"), true, "{page}: a report field ran script");
        let handlers = self.run(
            "return document.querySelectorAll('[onerror],[onload],[onclick],a[href^=\"javascript:\"],script').length;",
        );
        assert_eq!(handlers, 0, "{page}: an element from a report carries script");
    }
}

fn hostile_report(now: i64) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{}</org_name><email>x@evil.test</email>\
         <extra_contact_info>{}</extra_contact_info><report_id>{}</report_id>\
         <date_range><begin>{}</begin><end>{}</end></date_range></report_metadata>\
         <policy_published><domain>good.test</domain><p>none</p></policy_published>\
         <record><row><source_ip>203.0.113.9</source_ip><count>7</count><policy_evaluated><disposition>none</disposition>\
         <dkim>fail</dkim><spf>fail</spf><reason><type>other</type><comment>{}</comment></reason></policy_evaluated></row>\
         <identifiers><header_from>good.test</header_from></identifiers>\
         <auth_results><spf><domain>good.test</domain><result>fail</result></spf></auth_results></record></feedback>",
        esc(SCRIPT_ORG),
        esc(JS_URL),
        esc(IMG_ID),
        now - 86_400,
        now - 3_600,
        esc(SVG_REASON),
    )
}

#[test]
fn chromium_signs_in_draws_the_charts_and_runs_no_script_from_a_report() {
    let dir = TempDir::new("browser");
    let dns = zones(&dir);
    let db = format!("sqlite://{}", dir.join("browser.sqlite").display());
    let config = write_config(&dir, &db, &dns);
    let cfg = config.to_str().unwrap();
    add_user(cfg, "admin", ADMIN_PASSWORD, "admin", &[]);
    let admin = token(cfg, "admin");
    let Some(browser) = Driver::start() else { return };
    let served = Served::start(&config);
    let addr = served.addr.clone();
    wait_checked(&addr, &admin, 2);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let bearer = format!("Bearer {admin}");
    let up = request(
        &addr,
        "POST",
        "/api/v1/reports",
        &[("Authorization", &bearer), ("Content-Type", "application/xml")],
        hostile_report(now).as_bytes(),
    );
    assert_eq!(up.status, 200, "{}", up.text());
    let listed = crate::serve::get(&addr, "/api/v1/domains/good.test/reports", Some(&admin)).json();
    let id = listed["reports"]
        .as_array()
        .and_then(|a| a.first())
        .map(|r| r["id"].clone())
        .unwrap_or_else(|| panic!("{listed}"));

    browser.go(&format!("http://{addr}/"));
    let url = browser.session("GET", "/url", None);
    assert!(url.as_str().unwrap().contains("/login"), "not sent to sign in: {url}");
    browser.type_into("input[name=user]", "admin");
    browser.type_into("input[name=password]", ADMIN_PASSWORD);
    browser.click("button[type=submit]");
    let url = browser.session("GET", "/url", None);
    assert_eq!(url.as_str().unwrap().trim_end_matches('/'), format!("http://{addr}"), "after sign-in");
    let text = browser.run("return document.body.innerText;");
    assert!(text.as_str().unwrap().contains("good.test") && text.as_str().unwrap().contains("bare.test"), "{text}");
    browser.assert_nothing_ran("/");
    browser.screenshot("overview");

    browser.go(&format!("http://{addr}/domains/good.test"));
    // Charts: SVGs laid out with a size and with drawn shapes in them.
    let charts = browser.run(
        "return [...document.querySelectorAll('svg')].map(s => { const r = s.getBoundingClientRect(); \
         return [r.width, r.height, s.querySelectorAll('rect,path,polyline,line,circle').length]; });",
    );
    let charts = charts.as_array().unwrap();
    assert!(!charts.is_empty(), "no chart on the domain page");
    assert!(
        charts
            .iter()
            .any(|c| c[0].as_f64().unwrap() > 50.0 && c[1].as_f64().unwrap() > 20.0 && c[2].as_u64().unwrap() > 0),
        "no chart is drawn: {charts:?}"
    );
    let text = browser.run("return document.body.innerText;").as_str().unwrap().to_string();
    assert!(text.contains("Evil Org") || text.contains("203.0.113.9"), "the hostile report is not on the page: {text}");
    browser.assert_nothing_ran("/domains/good.test");
    browser.screenshot("domain");

    browser.go(&format!("http://{addr}/domains/good.test/reports/{id}"));
    let text = browser.run("return document.body.innerText;").as_str().unwrap().to_string();
    for shown in [SCRIPT_ORG, IMG_ID] {
        assert!(text.contains(shown), "`{shown}` is not shown as text on the report page: {text}");
    }
    browser.assert_nothing_ran("report page");
    browser.screenshot("report");

    browser.go(&format!("http://{addr}/events"));
    browser.assert_nothing_ran("/events");
    browser.screenshot("events");
    drop(browser);
    assert_eq!(served.stop(), Some(0));
}
