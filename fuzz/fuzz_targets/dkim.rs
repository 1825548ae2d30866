#![no_main]
//! DKIM key records: never panics (including the DER reader behind `p=`), and round-trips.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_records::DkimKeyRecord;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = DkimKeyRecord::parse(&text);
    if let Some(record) = parsed.valid() {
        let again = DkimKeyRecord::parse(&record.to_string());
        assert_eq!(again.value.as_ref(), Some(record));
    }
    // Raw bytes as a base64 key, to reach the DER reader with arbitrary content.
    use base64_shim::encode;
    let _ = DkimKeyRecord::parse(&format!("v=DKIM1; p={}", encode(data))).value.map(|r| r.key());
});

mod base64_shim {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(data: &[u8]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
