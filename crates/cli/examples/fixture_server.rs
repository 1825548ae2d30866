//! Serves the audit fixture zones on 127.0.0.1 until killed, printing the address:
//! `cargo run -p ses-dmarc --example fixture_server` then
//! `ses-dmarc check correct.com --nameserver ADDR ...`.

use ses_dmarc_dns::testing::TestServer;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones");
    let mut zones = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixture zones") {
        let path = entry.expect("dir entry").path();
        let origin =
            format!("{}.", path.file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_end_matches(".zone"));
        zones.push((origin, std::fs::read_to_string(&path).expect("zone text")));
    }
    let refs: Vec<(&str, &str)> = zones.iter().map(|(o, t)| (o.as_str(), t.as_str())).collect();
    let server = TestServer::start(&refs).expect("start server");
    println!("{}", server.addr());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
