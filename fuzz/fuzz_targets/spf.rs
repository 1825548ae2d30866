#![no_main]
//! SPF: never panics, and a record that parses without errors formats to text that parses
//! back to the same record.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_records::SpfRecord;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = SpfRecord::parse(&text);
    for d in &parsed.diagnostics {
        assert!(d.span.end <= text.len() && d.span.start <= d.span.end);
    }
    if let Some(record) = parsed.valid() {
        let again = SpfRecord::parse(&record.to_string());
        assert_eq!(again.value.as_ref(), Some(record));
    }
    let _ = SpfRecord::parse_strings(&data.split(|b| *b == 0).collect::<Vec<_>>());
});
