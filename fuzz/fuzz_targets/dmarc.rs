#![no_main]
//! DMARC: never panics; a valid record round-trips; its meaning under both RFCs is defined.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_records::dmarc::Rfc;
use ses_dmarc_records::{DmarcRecord, ReportUri};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = DmarcRecord::parse(&text);
    for d in &parsed.diagnostics {
        assert!(d.span.end <= text.len() && d.span.start <= d.span.end);
    }
    if let Some(record) = &parsed.value {
        let _ = record.meaning(Rfc::Rfc7489);
        let _ = record.meaning(Rfc::Rfc9989);
    }
    if let Some(record) = parsed.valid() {
        let again = DmarcRecord::parse(&record.to_string());
        assert_eq!(again.value.as_ref(), Some(record));
    }
    let _ = ReportUri::parse(&text).map(|u| u.destination_domain());
});
