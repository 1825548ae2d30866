#![no_main]
//! Aggregate-report parsing, container unpacking and failure-report parsing: never panic,
//! whatever the bytes.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_reports::failure::parse_failure;
use ses_dmarc_reports::unpack::{Content, UnpackLimits, unpack};

fuzz_target!(|data: &[u8]| {
    let _ = ses_dmarc_reports::parse(data);
    let limits = UnpackLimits { max_size: 1 << 20, max_ratio: 100, max_depth: 4 };
    for item in unpack("fuzz", data, &limits).into_iter().flatten() {
        match item.content {
            Content::Aggregate(xml) => {
                let _ = ses_dmarc_reports::parse(&xml[..]);
            }
            Content::Failure(raw) => {
                let _ = parse_failure(&raw);
            }
        }
    }
    let _ = parse_failure(data);
});
