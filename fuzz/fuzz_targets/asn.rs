#![no_main]
//! The offline IP → ASN table (`--asn-db`): reading any bytes never panics, and a table
//! that reads answers lookups (the extremes, and the addresses its lines start with).
use libfuzzer_sys::fuzz_target;
use ses_dmarc_reports::asn::AsnTable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let mut table = AsnTable::new();
    if table.read_csv(data, "fuzz.csv").is_ok() {
        for ip in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::from(u128::MAX)),
        ] {
            let _ = table.lookup(ip);
        }
        for line in String::from_utf8_lossy(data).lines() {
            if let Some(Ok(ip)) = line.split(',').next().map(|f| f.trim().parse::<IpAddr>()) {
                let _ = table.lookup(ip);
            }
        }
    }
});
