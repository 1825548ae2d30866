#![no_main]
//! Authentication-Results, ARC-Authentication-Results and Received-SPF: never panic.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_records::auth_results::{AuthenticationResults, ReceivedSpf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ar) = AuthenticationResults::parse(&text) {
        for r in &ar.results {
            let _ = r.property("header.from");
        }
    }
    let _ = AuthenticationResults::parse_arc(&text);
    if let Ok(r) = ReceivedSpf::parse(&text) {
        let _ = r.get("client-ip");
    }
});
