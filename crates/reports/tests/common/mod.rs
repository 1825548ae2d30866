//! Comparison of a parsed report with the corpus's *.expected.json oracles.

#![allow(dead_code)]

use serde_json::Value;
use ses_dmarc_reports::aggregate::ReportError;
use ses_dmarc_reports::{AggregateReport, parse_bytes};
use std::path::PathBuf;

pub(crate) fn corpus(dir: &str) -> PathBuf {
    ses_dmarc_testkit::testdata("reports").join(dir)
}

fn lc(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_ascii_lowercase()
}

/// Asserts the values of `report` equal the oracle's (counts, IPs, results).
pub(crate) fn assert_matches_oracle(report: &AggregateReport, o: &Value, name: &str) {
    assert_eq!(report.header.metadata.org_name, o["report_metadata"]["org_name"].as_str().unwrap(), "{name}");
    assert_eq!(report.header.metadata.report_id, o["report_metadata"]["report_id"].as_str().unwrap(), "{name}");
    assert_eq!(report.header.metadata.begin, o["report_metadata"]["date_range"]["begin"].as_i64().unwrap(), "{name}");
    assert_eq!(report.header.metadata.end, o["report_metadata"]["date_range"]["end"].as_i64().unwrap(), "{name}");
    assert_eq!(report.header.policy.domain, lc(&o["policy_published"]["domain"]), "{name}");
    assert_eq!(report.header.policy.p.clone().unwrap_or_default(), lc(&o["policy_published"]["p"]), "{name}");
    let records = o["record"].as_array().unwrap();
    assert_eq!(report.records.len(), records.len(), "{name}");
    for (r, e) in report.records.iter().zip(records) {
        assert_eq!(
            r.source_ip.map(|i| i.to_string()).unwrap_or_default(),
            e["row"]["source_ip"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(r.count, e["row"]["count"].as_u64().unwrap(), "{name}");
        assert_eq!(
            r.disposition.clone().unwrap_or_default(),
            lc(&e["row"]["policy_evaluated"]["disposition"]),
            "{name}"
        );
        assert_eq!(r.header_from, lc(&e["identifiers"]["header_from"]), "{name}");
        let dkim = e["auth_results"]["dkim"].as_array().unwrap();
        assert_eq!(r.dkim.len(), dkim.len(), "{name}");
        for (d, ed) in r.dkim.iter().zip(dkim) {
            assert_eq!(d.domain, lc(&ed["domain"]), "{name}");
            assert_eq!(d.result, lc(&ed["result"]), "{name}");
            assert_eq!(d.selector.clone().unwrap_or_default(), ed["selector"].as_str().unwrap_or_default(), "{name}");
        }
        let spf = e["auth_results"]["spf"].as_array().unwrap();
        assert_eq!(r.spf.len(), spf.len(), "{name}");
        for (s, es) in r.spf.iter().zip(spf) {
            assert_eq!(s.domain, lc(&es["domain"]), "{name}");
            assert_eq!(s.result, lc(&es["result"]), "{name}");
        }
    }
}

/// Parses with both readers (streamed through a buffer, and borrowed from memory) and
/// checks that they agree: the same report, or the same kind of error.
pub(crate) fn parse(data: &[u8]) -> Result<AggregateReport, ReportError> {
    let streamed = ses_dmarc_reports::parse(std::io::BufReader::with_capacity(4096, data));
    let in_memory = parse_bytes(data);
    match (&streamed, &in_memory) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a} / {b}"),
        (a, b) => panic!("the readers disagree: {a:?} / {b:?}"),
    }
    streamed
}
