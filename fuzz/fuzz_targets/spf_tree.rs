#![no_main]
//! The SPF include tree over answers a fake resolver makes from the input (`name text`
//! lines; every other name is NXDOMAIN): building it round after round, as the gatherer
//! does, ends, never panics, and stays within its record cap, whatever the records say.
use libfuzzer_sys::fuzz_target;
use ses_dmarc_dns::{Answer, Outcome, Rdata, RecordType};
use ses_dmarc_receiver::spf_tree::{MAX_DEPTH, MAX_RECORDS, RecordState, SpfTree};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut zone: HashMap<String, Vec<Rdata>> = HashMap::new();
    for line in text.lines().take(64) {
        let Some((name, value)) = line.split_once(' ') else { continue };
        zone.entry(name.to_ascii_lowercase()).or_default().push(Rdata::Txt(vec![value.as_bytes().to_vec()]));
    }
    let mut answers: HashMap<(String, RecordType), Answer> = HashMap::new();
    let root = text.lines().next().and_then(|l| l.split(' ').next()).unwrap_or("a.test").to_ascii_lowercase();
    let mut rounds = 0;
    loop {
        let wanted = {
            let f = |n: &str, t: RecordType| answers.get(&(n.to_string(), t));
            SpfTree::build(&root, &f).1
        };
        if wanted.is_empty() || rounds > MAX_DEPTH + 2 {
            break;
        }
        rounds += 1;
        for (name, rtype) in wanted {
            let outcome = match (zone.get(&name), rtype) {
                (Some(records), RecordType::Txt) => Outcome::Records(records.clone()),
                (Some(_), _) => Outcome::NoData,
                (None, _) => Outcome::NxDomain,
            };
            answers.insert((name, rtype), Answer { outcome, cname_chain: vec![] });
        }
    }
    let f = |n: &str, t: RecordType| answers.get(&(n.to_string(), t));
    let tree = SpfTree::build(&root, &f).0;
    let found = tree.nodes().iter().filter(|n| matches!(n.state, RecordState::Found { .. })).count();
    assert!(found <= MAX_RECORDS, "{found} records expanded");
    let _ = tree.permerror();
});
