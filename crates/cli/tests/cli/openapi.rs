//! The OpenAPI document against the live API: schemathesis (from the venv scripts/test
//! makes) generates requests from `/api/v1/openapi.json` and fails on any server error or an
//! answer the document does not describe.

use crate::serve::{ADMIN_PASSWORD, Served, add_user, token, wait_checked, write_config, zones};
use ses_dmarc_testkit::{TempDir, unavailable, venv_bin};
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let schemathesis = venv_bin("schemathesis");
    if !schemathesis.exists() {
        unavailable("schemathesis", &format!("{} is missing (scripts/test installs it)", schemathesis.display()));
        return;
    }
    let dir = TempDir::new("openapi");
    let dns = zones(&dir);
    let db = format!("sqlite://{}", dir.join("openapi.sqlite").display());
    let config = write_config(&dir, &db, &dns);
    let cfg = config.to_str().unwrap();
    add_user(cfg, "admin", ADMIN_PASSWORD, "admin", &[]);
    let admin = token(cfg, "admin");
    let served = Served::start(&config);
    let addr = served.addr.clone();
    wait_checked(&addr, &admin, 2);

    let out = Command::new(&schemathesis)
        .args(["run", &format!("http://{addr}/api/v1/openapi.json"), "--url", &format!("http://{addr}")])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "30", "--seed", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{text}\nserve's log:\n{}", served.log.lock().unwrap());
    assert!(!text.contains("Server error"), "{text}");
    let log = served.log.clone();
    assert_eq!(served.stop(), Some(0), "{}", log.lock().unwrap());
}
