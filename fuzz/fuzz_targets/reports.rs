#![no_main]
//! Aggregate-report parsing, container unpacking and failure-report parsing: never panic,
//! whatever the bytes; the streamed and the in-memory aggregate readers agree.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_reports::failure::parse_failure;
use ses_dmarc_reports::unpack::{Content, UnpackLimits, unpack_each};

fn both_readers(data: &[u8]) {
    let streamed = ses_dmarc_reports::parse(std::io::BufReader::with_capacity(64, data));
    let in_memory = ses_dmarc_reports::parse_bytes(data);
    match (&streamed, &in_memory) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a} / {b}"),
        (a, b) => panic!("the readers disagree: {a:?} / {b:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    both_readers(data);
    let limits = UnpackLimits { max_size: 1 << 20, max_ratio: 100, max_depth: 4 };
    // Members come one at a time, within one budget for the whole input.
    let mut total = 0usize;
    unpack_each("fuzz", data, &limits, &mut |item| {
        let Ok(item) = item else { return };
        match item.content {
            Content::Aggregate(xml) => {
                total += xml.len();
                both_readers(&xml);
            }
            Content::Failure(raw) => {
                let _ = parse_failure(&raw);
            }
        }
    });
    assert!(total as u64 <= limits.max_size + data.len() as u64, "the budget holds: {total}");
    let _ = parse_failure(data);
});
