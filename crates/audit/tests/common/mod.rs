//! The fixture zones (tests/fixtures/zones), served by the in-process DNS server.

use ses_dmarc_dns::testing::TestServer;
use std::path::PathBuf;

fn zones_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zones")
}

pub fn start_server() -> TestServer {
    let mut zones = Vec::new();
    for entry in std::fs::read_dir(zones_dir()).unwrap() {
        let path = entry.unwrap().path();
        let origin = format!("{}.", path.file_name().unwrap().to_str().unwrap().trim_end_matches(".zone"));
        zones.push((origin, std::fs::read_to_string(&path).unwrap()));
    }
    let refs: Vec<(&str, &str)> = zones.iter().map(|(o, t)| (o.as_str(), t.as_str())).collect();
    TestServer::start(&refs).unwrap()
}
