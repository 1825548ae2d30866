//! With 50 ms added to every answer, one check takes about (longest chain of dependent
//! lookups + 1) × 50 ms: the lookups of a round go out together, through the same
//! in-flight limit and stub client a bulk `check` uses.

mod common;

use ses_dmarc_audit::{Expectations, check_domain};
use ses_dmarc_dns::{Answer, Limited, RecordType, Resolver, StubClient};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Records when each lookup started, relative to the first.
struct Timed<R> {
    inner: R,
    started: Mutex<Vec<Instant>>,
}

impl<R: Resolver> Resolver for Timed<R> {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        self.started.lock().unwrap().push(Instant::now());
        self.inner.lookup(name, rtype).await
    }
}

#[test]
fn one_check_takes_its_longest_chain_not_its_query_count() {
    let server = common::start_server();
    let delay = Duration::from_millis(50);
    server.set_delay(Some(delay));
    let client = StubClient::new(vec![server.addr()], Duration::from_secs(2), 1).unwrap();
    let resolver = Timed { inner: Limited::new(client, 256), started: Mutex::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let expectations = Expectations {
        regions: vec!["us-east-1".into()],
        mail_from: Some("mail".into()),
        dkim_tokens: vec!["tokenone".into(), "tokentwo".into(), "tokenthree".into()],
        selectors: vec![],
    };
    let before = server.query_count();
    let start = Instant::now();
    let report = rt.block_on(check_domain(&resolver, "correct.com", expectations));
    let elapsed = start.elapsed();
    let queries = server.query_count() - before;
    assert_eq!(report.judgement.verdict.ses_mail_passes_dmarc, Some(true));
    // The longest chain: the rounds (lookups that started together), plus the CNAMEs a
    // lookup follows itself (here: each DKIM CNAME to its key, one more answer).
    let started = resolver.started.lock().unwrap().clone();
    let mut rounds = 0;
    let mut last: Option<Instant> = None;
    for t in started {
        if last.is_none_or(|l| t.duration_since(l) > delay / 2) {
            rounds += 1;
            last = Some(t);
        }
    }
    let chain = rounds + 1;
    eprintln!("50 ms per answer: {queries} queries in {} rounds, chain {chain}, {} ms", rounds, elapsed.as_millis());
    assert!(queries >= 14, "{queries}");
    assert!(elapsed >= delay * chain, "{elapsed:?}");
    assert!(elapsed < delay * (chain + 1) + Duration::from_millis(60), "{elapsed:?} for a chain of {chain}");
}
