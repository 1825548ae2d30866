//! The fixture zones (tests/fixtures/zones), served by the in-process DNS server.

use ses_dmarc_dns::testing::TestServer;

pub(crate) fn start_server() -> TestServer {
    TestServer::start_zone_dir(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zones"), 0)
        .unwrap()
}
