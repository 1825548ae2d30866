//! Reports built to mislead: malformed markup, numbers that do not parse or overflow,
//! duplicate and foreign elements, two reports in one, impossible dates, other encodings,
//! undefined entities. Each is refused with the reason and the place, or the one bad
//! record is refused with a counted reason; never a silently wrong number. Both readers
//! (streamed and in memory) must agree on every case.

#![allow(dead_code)]

mod common;

use common::parse;
use ses_dmarc_reports::aggregate::ReportError;
use ses_dmarc_reports::parse_bytes;

fn report(records: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<feedback>\n<report_metadata><org_name>r.test</org_name><report_id>1</report_id>\
         <date_range><begin>1700000000</begin><end>1700086400</end></date_range></report_metadata>\n\
         <policy_published><domain>example.com</domain><p>none</p></policy_published>\n{records}</feedback>\n"
    )
}

fn record(count: &str) -> String {
    format!(
        "<record><row><source_ip>192.0.2.1</source_ip><count>{count}</count></row>\
         <identifiers><header_from>example.com</header_from></identifiers></record>\n"
    )
}

#[test]
fn a_lt_inside_a_text_says_what_and_where() {
    let xml = report(
        "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row>\n<identifiers><header_from>bad<xml.net</header_from></identifiers></record>\n",
    );
    let e = parse_bytes(xml.as_bytes()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ReportError::Malformed { .. }), "{text}");
    assert!(text.contains("line 6, column 30"), "{text}");
    assert!(text.contains("&lt;"), "{text}");
    assert!(!text.contains("truncated"), "{text}");
    parse(xml.as_bytes()).unwrap_err();
}

#[test]
fn a_report_cut_short_names_the_open_element() {
    let xml = report(&record("1"));
    let cut = &xml[..xml.find("<identifiers>").unwrap()];
    let e = parse_bytes(cut.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("<record>, opened at line 5, column 1, is never closed"), "{e}");
}

#[test]
fn bad_counts_refuse_their_record_with_a_reason() {
    let max = u32::MAX.to_string();
    let records = [record("12"), record("many"), record("4611686018427387904"), record(&max)].concat()
        + "<record><row><source_ip>192.0.2.9</source_ip></row><identifiers><header_from>example.com</header_from></identifiers></record>\n";
    let r = parse(report(&records).as_bytes()).unwrap();
    assert_eq!(r.records.iter().map(|r| r.count).collect::<Vec<_>>(), [12, u32::MAX as u64]);
    assert_eq!(r.header.skipped.len(), 3, "{:?}", r.header.skipped);
    assert!(r.header.skipped[0].contains("record 2: count `many` is not a number"));
    assert!(r.header.skipped[1].contains("record 3: count 4611686018427387904 is more than"));
    assert!(r.header.skipped[2].contains("record 5: no <count>"));
}

#[test]
fn duplicate_elements_are_never_silently_replaced() {
    // In a record: the record is refused.
    let two_counts = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count><count>900</count></row><identifiers><header_from>example.com</header_from></identifiers></record>";
    let two_rows = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row><row><source_ip>192.0.2.2</source_ip><count>5</count></row><identifiers><header_from>example.com</header_from></identifiers></record>";
    let r = parse(report(&format!("{two_counts}{two_rows}{}", record("3"))).as_bytes()).unwrap();
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].count, 3);
    assert_eq!(r.header.skipped.len(), 2, "{:?}", r.header.skipped);
    // In the header: the report is refused.
    for (what, xml) in [
        (
            "report_id",
            report("").replace("<report_id>1</report_id>", "<report_id>1</report_id><report_id>2</report_id>"),
        ),
        (
            "domain",
            report("")
                .replace("<domain>example.com</domain>", "<domain>example.com</domain><domain>evil.test</domain>"),
        ),
        (
            "policy_published",
            report("").replace(
                "</policy_published>",
                "</policy_published><policy_published><domain>x.test</domain><p>reject</p></policy_published>",
            ),
        ),
    ] {
        let e = parse(xml.as_bytes()).unwrap_err();
        assert!(matches!(&e, ReportError::Duplicate { element, .. } if element == what), "{what}: {e}");
    }
}

#[test]
fn elements_in_a_foreign_namespace_are_not_the_reports() {
    let xml = report(
        "<record xmlns:evil=\"urn:example:evil\"><row><source_ip>192.0.2.1</source_ip><count>2</count><evil:count>999999</evil:count></row>\
         <identifiers><header_from>example.com</header_from></identifiers></record>\
         <record><row><source_ip>192.0.2.3</source_ip><count>4</count><x:count xmlns:x=\"urn:other\">7</x:count></row>\
         <identifiers><header_from>example.com</header_from></identifiers></record>",
    );
    let r = parse(xml.as_bytes()).unwrap();
    assert_eq!(r.records.iter().map(|r| r.count).collect::<Vec<_>>(), [2, 4]);
    assert!(r.header.skipped.is_empty(), "{:?}", r.header.skipped);
    // A default namespace changed inside the report, too.
    let xml = report(&record("6").replace("</row>", "<count xmlns=\"urn:example:evil\">999</count></row>"));
    assert_eq!(parse(xml.as_bytes()).unwrap().records[0].count, 6);
    // A report in a namespace of its own (not the RFC's) is still read.
    let odd = report(&record("2")).replace("<feedback>", "<feedback xmlns=\"http://example.net/dmarc\">");
    assert_eq!(parse(odd.as_bytes()).unwrap().records[0].count, 2);
    // The report's own namespace with a prefix is the report's.
    let prefixed = report(&record("5"))
        .replace("<feedback>", "<d:feedback xmlns:d=\"urn:ietf:params:xml:ns:dmarc-2.0\"><d:version>1.0</d:version>")
        .replace("</feedback>", "</d:feedback>");
    let prefixed = prefixed
        .replace("<d:feedback", "\u{0}")
        .replace('<', "<d:")
        .replace("<d:/", "</d:")
        .replace("<d:?", "<?")
        .replace("<d:d:", "<d:")
        .replace('\u{0}', "<d:feedback");
    let r = parse(prefixed.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{prefixed}"));
    assert_eq!((r.records.len(), r.records[0].count, r.header.schema), (1, 5, "rfc9990"));
}

#[test]
fn two_reports_in_one_document_are_refused() {
    let one = report(&record("1"));
    let two = format!("{one}{}", one.trim_start_matches("<?xml version=\"1.0\"?>\n"));
    assert!(matches!(parse(two.as_bytes()), Err(ReportError::SecondReport { .. })));
}

#[test]
fn impossible_periods_are_refused() {
    let base = report(&record("1"));
    for (begin, end) in [
        ("1700000000", "9223372036854775807"),
        ("1700086400", "1700000000"),
        ("1600000000", "1700000000"),
        ("-5", "1700000000"),
    ] {
        let xml = base
            .replace("<begin>1700000000</begin>", &format!("<begin>{begin}</begin>"))
            .replace("<end>1700086400</end>", &format!("<end>{end}</end>"));
        assert!(matches!(parse(xml.as_bytes()), Err(ReportError::BadPeriod(_))), "{begin}..{end}");
    }
    let no_end = base.replace("<end>1700086400</end>", "");
    assert!(matches!(parse(no_end.as_bytes()), Err(ReportError::Missing(_))));
}

#[test]
fn declared_and_marked_encodings_are_honoured() {
    let text = report(&record("3")).replace("<org_name>r.test</org_name>", "<org_name>Réseau ✓</org_name>");
    let utf16le = |t: &str, bom: bool| {
        let mut v: Vec<u8> = if bom { vec![0xff, 0xfe] } else { vec![] };
        v.extend(t.encode_utf16().flat_map(u16::to_le_bytes));
        v
    };
    let utf16be = |t: &str| {
        let mut v = vec![0xfe, 0xff];
        v.extend(t.encode_utf16().flat_map(u16::to_be_bytes));
        v
    };
    let utf32le = |t: &str| t.chars().flat_map(|c| (c as u32).to_le_bytes()).collect::<Vec<u8>>();
    for (name, bytes) in [
        ("utf-16le bom", utf16le(&text, true)),
        ("utf-16le", utf16le(&text, false)),
        ("utf-16be bom", utf16be(&text)),
        ("utf-32le", utf32le(&text)),
    ] {
        let r = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.header.metadata.org_name, "Réseau ✓", "{name}");
        assert_eq!(r.records[0].count, 3, "{name}");
    }
    let latin = report(&record("3"))
        .replace("<?xml version=\"1.0\"?>", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>")
        .replace("<org_name>r.test</org_name>", "<org_name>R\u{e9}seau</org_name>");
    let latin_bytes: Vec<u8> = latin.chars().map(|c| c as u32 as u8).collect();
    assert_eq!(parse(&latin_bytes).unwrap().header.metadata.org_name, "Réseau");
}

#[test]
fn undefined_entities_and_forbidden_characters_are_refused_with_their_place() {
    for bad in ["&foo;", "&#0;", "&#xD800;", "&#x110000;"] {
        let xml = report(&record("1")).replace("<org_name>r.test</org_name>", &format!("<org_name>r{bad}</org_name>"));
        let e = parse_bytes(xml.as_bytes()).unwrap_err();
        assert!(matches!(e, ReportError::Malformed { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("line 3"), "{bad}: {e}");
        parse(xml.as_bytes()).unwrap_err();
    }
    let fine = report(&record("1")).replace("<org_name>r.test</org_name>", "<org_name>a &amp; b &#233;</org_name>");
    assert_eq!(parse(fine.as_bytes()).unwrap().header.metadata.org_name, "a & b é");
}

#[test]
fn a_report_inside_a_stray_schema_element_is_read() {
    // An XML Schema start tag copied in front of the report and never closed.
    let xml = report(&record("8")).replace(
        "<feedback>",
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" elementFormDefault=\"qualified\">\n<feedback>",
    );
    let r = parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.records.len(), r.records[0].count), (1, 8));
    // A wrapper that does close, around the report, too.
    let closed = xml.replace("</feedback>", "</feedback></xs:schema>");
    assert_eq!(parse(closed.as_bytes()).unwrap().records.len(), 1);
    // Without any <feedback>, the root element is named.
    let e = parse(b"<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"><x/></xs:schema>").unwrap_err();
    assert!(e.to_string().contains("the root element is <xs:schema>"), "{e}");
}

#[test]
fn the_declaration_decides_the_encoding_whatever_the_read_buffer() {
    // Found by fuzzing: a 64-byte read buffer hid the end of the declaration from the
    // streamed reader, which then told another story than the in-memory one.
    let padded = format!("<?xml version=\"1.0\" {} encoding=\"UTF-8A\"?>", " ".repeat(80));
    let xml = report(&record("1")).replace("<?xml version=\"1.0\"?>", &padded);
    for capacity in [1, 64, 8192] {
        let streamed = ses_dmarc_reports::parse(std::io::BufReader::with_capacity(capacity, xml.as_bytes()));
        assert!(matches!(streamed, Err(ReportError::Encoding(_))), "{capacity}: {streamed:?}");
    }
    assert!(matches!(parse_bytes(xml.as_bytes()), Err(ReportError::Encoding(_))));
    let latin = report(&record("2"))
        .replace("<?xml version=\"1.0\"?>", &padded.replace("UTF-8A", "ISO-8859-1"))
        .replace("<org_name>r.test</org_name>", "<org_name>R\u{e9}seau</org_name>");
    let bytes: Vec<u8> = latin.chars().map(|c| c as u32 as u8).collect();
    let r = ses_dmarc_reports::parse(std::io::BufReader::with_capacity(16, &bytes[..])).unwrap();
    assert_eq!((r.header.metadata.org_name.as_str(), r.records[0].count), ("Réseau", 2));
}

#[test]
fn long_markup_is_read_whole_up_to_its_limit_and_refused_beyond_it() {
    // A start tag and a comment of 900 KB each: read whole by both readers, whatever the
    // read buffer; a tag of 2 MB is refused by both, with the reason.
    let long = "x".repeat(900 * 1024);
    let ok = report(&record("3"))
        .replace("<feedback>", &format!("<feedback><!--{long}-->"))
        .replace("<org_name>r.test", &format!("<org_name data-x=\"{long}\">r.test<![CDATA[ ]]>"));
    let whole = parse_bytes(ok.as_bytes()).unwrap();
    for capacity in [7, 8192] {
        let streamed = ses_dmarc_reports::parse(std::io::BufReader::with_capacity(capacity, ok.as_bytes())).unwrap();
        assert_eq!(streamed.records, whole.records, "{capacity}");
    }
    assert_eq!(whole.records[0].count, 3);
    let huge = "x".repeat(2 * 1024 * 1024);
    let bad = report(&record("1")).replace("<org_name>", &format!("<org_name data-x=\"{huge}\">"));
    for e in [
        parse_bytes(bad.as_bytes()).unwrap_err(),
        ses_dmarc_reports::parse(std::io::BufReader::with_capacity(8192, bad.as_bytes())).unwrap_err(),
    ] {
        assert!(e.to_string().contains("a tag longer than 1048576 bytes: refused"), "{e}");
    }
}

#[test]
fn a_raw_nul_in_a_text_is_dropped_by_both_readers() {
    // XML allows no NUL; `&#0;` is refused, a raw one (a padding, a broken writer) is dropped,
    // so that no stored text holds one.
    let xml = report(&record("5")).replace("<header_from>example.com", "<header_from>exa\0mple.com\0");
    let whole = parse_bytes(xml.as_bytes()).unwrap();
    assert_eq!(whole.records[0].header_from, "example.com");
    assert_eq!(parse(xml.as_bytes()).unwrap(), whole);
}
