//! Gathering: ask the resolver for every answer the rules need, all independent queries
//! at once, and the dependent ones as soon as the answers they depend on are in.

use crate::rules::{Judgement, judge, needed_queries};
use crate::snapshot::{Expectations, Snapshot, key};
use futures::future::join_all;
use serde::Serialize;
use ses_dmarc_dns::Resolver;

/// Rounds of dependent lookups at most (an include chain deeper than this is cut by the
/// SPF tree's own depth limit long before).
const MAX_ROUNDS: usize = 32;

/// Asks `resolver` for every answer the rules need, all independent queries at once and
/// dependent ones in later rounds, until none is missing.
pub async fn gather<R: Resolver>(resolver: &R, domain: &str, expectations: Expectations) -> Snapshot {
    let mut snap = Snapshot::new(domain, expectations);
    for _ in 0..MAX_ROUNDS {
        // Each question's snapshot key is made once: it is both the "asked already?" test
        // and where the answer goes.
        let missing: Vec<_> = needed_queries(&snap)
            .into_iter()
            .map(|(n, t)| (key(&n, t), n, t))
            .filter(|(k, _, _)| !snap.answers.contains_key(k))
            .collect();
        if missing.is_empty() {
            break;
        }
        let answers = join_all(missing.iter().map(|(_, n, t)| resolver.lookup(n, *t))).await;
        for ((k, _, _), answer) in missing.into_iter().zip(answers) {
            snap.answers.insert(k, answer);
        }
    }
    snap
}

/// What `check` reports for one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainReport {
    /// The domain checked.
    pub domain: String,
    /// Findings, passed checks and the verdict.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Every DNS answer the judgement rests on.
    pub snapshot: Snapshot,
}

impl DomainReport {
    /// True when a finding is an error (`check` exits 1).
    pub fn has_errors(&self) -> bool {
        self.judgement.findings.iter().any(|f| f.severity == crate::FindingSeverity::Error)
    }

    /// True when an answer could not be had (`check` exits 3 when there is no error).
    pub fn has_unknown(&self) -> bool {
        self.judgement.findings.iter().any(|f| f.severity == crate::FindingSeverity::Unknown)
    }
}

/// Gathers and judges one domain.
pub async fn check_domain<R: Resolver>(resolver: &R, domain: &str, expectations: Expectations) -> DomainReport {
    let snapshot = gather(resolver, domain, expectations).await;
    DomainReport { domain: domain.to_string(), judgement: judge(&snapshot), snapshot }
}
