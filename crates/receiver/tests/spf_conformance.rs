//! The openspf RFC 7208 conformance suite (testdata/spf/rfc7208-tests.yml): every
//! case, against its own zone data served from memory. Prints
//! `spf conformance: N/203 passed`.

use serde::Deserialize;
use ses_dmarc_dns::{Answer, Failure, MemoryResolver, Outcome, Rdata, RecordType, Resolver};
use ses_dmarc_receiver::spf::{SpfInput, SpfResult, check_mail_from};
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Scenario {
    description: String,
    tests: BTreeMap<String, Case>,
    #[serde(default)]
    zonedata: BTreeMap<String, Vec<serde_yaml::Value>>,
}

#[derive(Deserialize)]
struct Case {
    host: String,
    mailfrom: String,
    helo: String,
    result: serde_yaml::Value,
    explanation: Option<String>,
}

/// Names outside the zone data do not exist.
struct NothingElse;

impl Resolver for NothingElse {
    async fn lookup(&self, _name: &str, _rtype: RecordType) -> Answer {
        Answer { outcome: Outcome::NxDomain, cname_chain: vec![] }
    }
}

fn text_strings(v: &serde_yaml::Value) -> Option<Vec<Vec<u8>>> {
    match v {
        serde_yaml::Value::String(s) if s == "NONE" => None,
        serde_yaml::Value::String(s) => Some(vec![s.as_bytes().to_vec()]),
        serde_yaml::Value::Sequence(items) => {
            Some(items.iter().map(|i| i.as_str().unwrap_or_default().as_bytes().to_vec()).collect())
        }
        other => panic!("unexpected TXT value {other:?}"),
    }
}

fn resolver(zonedata: &BTreeMap<String, Vec<serde_yaml::Value>>) -> MemoryResolver<NothingElse> {
    let mut r = MemoryResolver::new();
    for (name, entries) in zonedata {
        let mut timeout = false;
        let mut has_txt_entry = false;
        let mut spf = Vec::new();
        let mut present: Vec<RecordType> = Vec::new();
        r.add_empty(name);
        for entry in entries {
            if entry.as_str() == Some("TIMEOUT") {
                timeout = true;
                continue;
            }
            let map = entry.as_mapping().expect("record entry");
            for (k, v) in map {
                match k.as_str().unwrap() {
                    "TXT" => {
                        has_txt_entry = true;
                        if let Some(s) = text_strings(v) {
                            r.add(name, Rdata::Txt(s));
                            present.push(RecordType::Txt);
                        }
                    }
                    "SPF" => spf.extend(text_strings(v)),
                    "A" => {
                        r.add(name, Rdata::A(v.as_str().unwrap().parse().unwrap()));
                        present.push(RecordType::A);
                    }
                    "AAAA" => {
                        r.add(name, Rdata::Aaaa(v.as_str().unwrap().parse().unwrap()));
                        present.push(RecordType::Aaaa);
                    }
                    "MX" => {
                        let s = v.as_sequence().unwrap();
                        r.add(
                            name,
                            Rdata::Mx {
                                preference: s[0].as_u64().unwrap() as u16,
                                exchange: s[1].as_str().unwrap().to_string(),
                            },
                        );
                        present.push(RecordType::Mx);
                    }
                    "PTR" => {
                        r.add_name_record(name, RecordType::Ptr, v.as_str().unwrap());
                        present.push(RecordType::Ptr);
                    }
                    "CNAME" => r.add_cname(name, v.as_str().unwrap()),
                    other => panic!("unexpected record type {other}"),
                }
            }
        }
        if !has_txt_entry {
            for s in spf {
                r.add(name, Rdata::Txt(s));
                present.push(RecordType::Txt);
            }
        }
        if timeout {
            for t in [RecordType::A, RecordType::Aaaa, RecordType::Mx, RecordType::Txt, RecordType::Ptr] {
                if !present.contains(&t) {
                    r.fail_type(name, t, Failure::Timeout);
                }
            }
        }
    }
    r.with_fallback(NothingElse)
}

#[test]
fn rfc7208_conformance_suite() {
    let path = ses_dmarc_testkit::testdata("spf/rfc7208-tests.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (mut total, mut passed) = (0, 0);
    let mut failures = Vec::new();
    let mut explanation_mismatches = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let scenario = Scenario::deserialize(doc).unwrap();
        let r = resolver(&scenario.zonedata);
        for (name, case) in &scenario.tests {
            total += 1;
            let accepted: Vec<SpfResult> = match &case.result {
                serde_yaml::Value::String(s) => vec![SpfResult::parse(s).unwrap()],
                serde_yaml::Value::Sequence(v) => {
                    v.iter().map(|s| SpfResult::parse(s.as_str().unwrap()).unwrap()).collect()
                }
                other => panic!("{other:?}"),
            };
            let input = SpfInput {
                ip: case.host.parse().unwrap(),
                mail_from: case.mailfrom.clone(),
                helo: case.helo.clone(),
                receiver: None,
            };
            let check = rt.block_on(check_mail_from(&r, &input));
            if accepted.contains(&check.result) {
                passed += 1;
                if let Some(exp) = &case.explanation
                    && exp != "DEFAULT"
                    && check.result == SpfResult::Fail
                    && check.explanation.as_deref() != Some(exp.as_str())
                {
                    explanation_mismatches.push(format!("{name}: expected {exp:?}, got {:?}", check.explanation));
                }
            } else {
                failures.push(format!(
                    "[{}] {name}: expected {accepted:?}, got {} ({})",
                    scenario.description, check.result, check.reason
                ));
            }
        }
    }
    println!("spf conformance: {passed}/{total} passed");
    for f in &failures {
        println!("  FAIL {f}");
    }
    for m in &explanation_mismatches {
        println!("  explanation differs: {m}");
    }
    assert_eq!(total, 203, "the suite has 203 cases");
    assert!(failures.is_empty(), "{} case(s) failed", failures.len());
    assert!(explanation_mismatches.is_empty());
}
