#![no_main]
//! Domain names: never panics; a parsed name is canonical (parsing it again changes nothing).
use libfuzzer_sys::fuzz_target;
use ses_dmarc_records::DomainName;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = DomainName::parse(&text) {
        assert!(name.as_str().len() <= 253);
        assert_eq!(DomainName::parse(name.as_str()).as_ref(), Ok(&name));
        let _ = name.organizational_domain();
        let _ = name.public_suffix();
    }
    let _ = DomainName::parse_hostname(&text);
});
