//! A domain's DNS as gathered for an audit: plain data, serializable, replayable.

use serde::{Deserialize, Serialize};
use ses_dmarc_dns::{Answer, RecordType};
use std::collections::BTreeMap;

/// What the user told `check` to expect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectations {
    /// SES region codes, validated.
    pub regions: Vec<String>,
    /// `--mail-from` as typed: a label or a full name.
    pub mail_from: Option<String>,
    /// `TOKEN` (first region) or `REGION:TOKEN`.
    pub dkim_tokens: Vec<String>,
    /// DKIM selectors to check (BYODKIM, other signers).
    pub selectors: Vec<String>,
}

impl Expectations {
    /// The tokens with the region each belongs to (the first region when not given).
    pub fn tokens(&self) -> Vec<(Option<String>, String)> {
        self.dkim_tokens
            .iter()
            .map(|t| match t.split_once(':') {
                Some((r, tok)) => (Some(r.trim().to_ascii_lowercase()), tok.trim().to_ascii_lowercase()),
                None => (self.regions.first().cloned(), t.trim().to_ascii_lowercase()),
            })
            .collect()
    }
}

/// Every DNS answer gathered for one domain's audit, with what `check` was told to expect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The domain audited.
    pub domain: String,
    /// What `check` was told to expect.
    pub expectations: Expectations,
    /// Every answer, keyed `"<name> <TYPE>"`.
    pub answers: BTreeMap<String, Answer>,
}

pub(crate) fn key(name: &str, rtype: RecordType) -> String {
    format!("{} {}", name.trim_end_matches('.').to_ascii_lowercase(), rtype.as_str())
}

impl Snapshot {
    pub(crate) fn new(domain: &str, expectations: Expectations) -> Self {
        Snapshot { domain: domain.to_string(), expectations, answers: BTreeMap::new() }
    }

    pub(crate) fn get(&self, name: &str, rtype: RecordType) -> Option<&Answer> {
        self.answers.get(&key(name, rtype))
    }

    pub(crate) fn has(&self, name: &str, rtype: RecordType) -> bool {
        self.answers.contains_key(&key(name, rtype))
    }
}
