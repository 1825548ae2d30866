//! Every aggregate report in testdata/reports parses; the values match the other parser's
//! oracles (*.expected.json: counts, IPs, results); RFC 9990 samples keep their new fields;
//! hostile and quirky inputs give results or clear errors, never panics.

mod common;

use common::{corpus, parse};
use serde_json::Value;
use ses_dmarc_reports::aggregate::{Limits, ReportError, parse_streaming};

#[test]
fn every_corpus_xml_report_parses_and_matches_its_oracle() {
    let dir = corpus("aggregate");
    let mut checked = 0;
    let mut with_oracle = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let report = parse(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!report.records.is_empty(), "{}", path.display());
        assert!(!report.header.policy.domain.is_empty());
        assert!(!report.header.metadata.report_id.is_empty());
        checked += 1;
        let oracle = path.with_extension("expected.json");
        let Ok(text) = std::fs::read_to_string(&oracle) else { continue };
        with_oracle += 1;
        let o: Value = serde_json::from_str(&text).unwrap();
        common::assert_matches_oracle(&report, &o, &path.display().to_string());
    }
    assert!(checked >= 15 && with_oracle >= 5, "checked {checked}, with oracle {with_oracle}");
}

#[test]
fn rfc9990_samples_keep_their_new_fields() {
    for file in ["dmarc-xml-0.2.xml", "dmarc-xmlalt-0.2.xml"] {
        let path = corpus("rfc9990").join(file);
        let r = parse(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(r.header.schema, "rfc9990", "{file}");
        let p = &r.header.policy;
        assert!(
            r.header.metadata.generator.is_some()
                || p.discovery_method.is_some()
                || p.np.is_some()
                || p.testing.is_some(),
            "{file}: {:?}",
            r.header
        );
        assert!(r.messages() > 0);
    }
    let path = corpus("rfc9990").join("dmarc-xml-0.2.xml");
    let r = parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(r.header.metadata.generator.as_deref(), Some("Example DMARC Aggregate Reporter v1.2"));
    assert_eq!((r.header.policy.np.as_deref(), r.header.policy.testing.as_deref()), (Some("none"), Some("n")));
    assert_eq!(r.header.policy.discovery_method.as_deref(), Some("treewalk"));
}

const BASE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<feedback><report_metadata><org_name>ORG</org_name><report_id>id1</report_id>
<date_range><begin>1700000000.5</begin><end>1700086400</end></date_range></report_metadata>
<policy_published><domain>Example.COM</domain><p>Reject</p></policy_published>
RECORDS</feedback>"#;

fn doc(org: &str, records: &str) -> String {
    BASE.replace("ORG", org).replace("RECORDS", records)
}

#[test]
fn quirks_real_reporters_send() {
    let rec = r#"<xs:schema xmlns:xs="x"><xs:element/></xs:schema>
    <record><row><source_ip>192.0.2.1</source_ip><count>7</count><policy_evaluated><disposition>None</disposition>
    <dkim>Pass</dkim><spf>FAIL</spf><reason><type/></reason></policy_evaluated></row>
    <identities><header_from>example.com</header_from><envelope_from>bounce.example.com</envelope_from></identities>
    <auth_results><dkim><domain>example.com</domain><result>Pass</result></dkim></auth_results></record>"#;
    let r = parse(doc("A &amp; B &#x263A;", rec).as_bytes()).unwrap();
    assert_eq!(r.header.metadata.org_name, "A & B \u{263a}");
    assert_eq!(r.header.metadata.begin, 1700000000, "fractional timestamp");
    assert_eq!(r.header.policy.domain, "example.com");
    let rec0 = &r.records[0];
    assert_eq!((rec0.count, rec0.dkim[0].result.as_str(), rec0.evaluated_spf.as_deref()), (7, "pass", Some("fail")));
    assert_eq!(rec0.envelope_from.as_deref(), Some("bounce.example.com"));
    assert!(rec0.spf.is_empty(), "missing <spf> is fine");
    // Namespaced and prefixed.
    let ns = doc("N", rec)
        .replace("<feedback>", "<dmarc:feedback xmlns:dmarc=\"http://dmarc.org/dmarc-xml/0.1\">")
        .replace("</feedback>", "</dmarc:feedback>");
    assert_eq!(parse(ns.as_bytes()).unwrap().records.len(), 1);
    // Invalid UTF-8 in a name.
    let mut bytes = doc("Bad\u{0}X", rec).into_bytes();
    let at = bytes.iter().position(|b| *b == 0).unwrap();
    bytes[at] = 0xff;
    assert!(parse(&bytes[..]).unwrap().header.metadata.org_name.contains('\u{fffd}'));
    // A record with a count that is not a number is reported as skipped, not lost silently.
    let bad = rec.replace("<count>7</count>", "<count>many</count>");
    let r = parse(doc("S", &format!("{bad}{rec}")).as_bytes()).unwrap();
    assert_eq!((r.records.len(), r.header.skipped.len()), (1, 1));
}

#[test]
fn hostile_inputs_are_refused_clearly() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><feedback>&lol2;</feedback>"#;
    assert!(matches!(parse(laughs.as_bytes()), Err(ReportError::Doctype)));
    let deep = format!("<feedback>{}{}</feedback>", "<a>".repeat(10_000), "</a>".repeat(10_000));
    assert!(matches!(parse(deep.as_bytes()), Err(ReportError::TooDeep(_))));
    assert!(matches!(parse(b""), Err(ReportError::Empty)));
    assert!(matches!(parse(b"<html><body/></html>"), Err(ReportError::NotAggregate(_))));
    // Cut short (a truncated download or stream): refused, never stored in part.
    let whole = doc("T", "<record><row><source_ip>192.0.2.1</source_ip><count>3</count></row></record>");
    assert!(parse(whole.as_bytes()).is_ok());
    for cut in ["</feedback>", "</record></feedback>", "3</count></row></record></feedback>"] {
        let short = whole.strip_suffix(cut).unwrap();
        assert!(matches!(parse(short.as_bytes()), Err(ReportError::Truncated { .. })), "cut before {cut}");
    }
    let long = doc(&"x".repeat(100_000), "");
    assert!(matches!(parse(long.as_bytes()), Err(ReportError::TextTooLong(_))));
    let junk: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    assert!(parse(&junk[..]).is_err());
}

#[test]
fn records_stream_one_at_a_time() {
    let rec = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row><identifiers><header_from>example.com</header_from></identifiers></record>";
    let big = doc("B", &rec.repeat(50_000));
    let mut n = 0u64;
    let h = parse_streaming(big.as_bytes(), Limits::default(), &mut |r| n += r.count).unwrap();
    assert_eq!(n, 50_000);
    assert!(h.skipped.is_empty());
}

proptest::proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let _ = parse(&bytes[..]);
        let mut text = doc("P", "<record><row><count>1</count></row></record>").into_bytes();
        let cut = bytes.len() % text.len().max(1);
        text.truncate(cut);
        text.extend_from_slice(&bytes);
        let _ = parse(&text[..]);
    }
}

#[test]
fn summaries_count_messages_not_rows() {
    use ses_dmarc_reports::classify::classify;
    use ses_dmarc_reports::summary::SummaryBuilder;
    for entry in std::fs::read_dir(corpus("aggregate")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let report = parse(&std::fs::read(&path).unwrap()).unwrap();
        let mut b = SummaryBuilder::new(&report.header.policy.domain);
        b.add_report(&report.header);
        for r in &report.records {
            b.add_record(&report.header, r, &classify(r, &report.header.policy, None));
        }
        let s = b.finish();
        assert_eq!(s.messages, report.messages(), "{}", path.display());
        assert_eq!(s.sources.iter().map(|x| x.messages).sum::<u64>(), s.messages);
        assert!(s.dmarc_pass <= s.messages && s.spf_aligned <= s.messages && s.dkim_aligned <= s.messages);
        assert!(s.days >= 1);
    }
}
