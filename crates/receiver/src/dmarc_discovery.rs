//! DMARC policy discovery: the RFC 9989 DNS tree walk and the RFC 7489 public-suffix
//! method, side by side. Pure: answers come through a closure that returns the TXT answer
//! for a name (`_dmarc.example.com`), or `None` when it has not been fetched yet.

use serde::Serialize;
use ses_dmarc_dns::{Answer, Failure, Outcome};
use ses_dmarc_records::dmarc::Psd;
use ses_dmarc_records::{DmarcRecord, DomainName};

/// The names whose `_dmarc` records the RFC 9989 tree walk reads for `name`, nearest
/// first: the name, then (from at most its last seven labels) one label less per step.
pub fn tree_walk_names(name: &str) -> Vec<String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let mut out = vec![labels.join(".")];
    let start = if labels.len() >= 8 { labels.len() - 7 } else { 1 };
    for i in start..labels.len() {
        out.push(labels[i..].join("."));
    }
    out.dedup();
    out
}

/// What `_dmarc.<name>` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DmarcAt {
    /// Exactly one `v=DMARC1` record.
    One {
        /// The record's text.
        text: String,
    },
    /// No `v=DMARC1` record (NODATA, NXDOMAIN, or only other TXT records).
    None,
    /// More than one `v=DMARC1` record: receivers then apply no policy.
    Multiple {
        /// The records' texts.
        texts: Vec<String>,
    },
    /// Values stored with literal quotes, so not selected.
    Quoted {
        /// The quoted values, as stored.
        texts: Vec<String>,
    },
    /// The TXT query failed.
    Failed {
        /// How it failed.
        failure: Failure,
    },
    /// The TXT answer has not been fetched yet.
    Pending,
}

/// The TXT answer for a name, if fetched.
pub type TxtAnswers<'a> = dyn Fn(&str) -> Option<&'a Answer> + 'a;

/// What `_dmarc.<name>` holds, by the TXT answers fetched so far.
pub fn dmarc_at(txt: &TxtAnswers<'_>, name: &str) -> DmarcAt {
    let Some(answer) = txt(&format!("_dmarc.{name}")) else { return DmarcAt::Pending };
    match &answer.outcome {
        Outcome::Failed(f) => DmarcAt::Failed { failure: f.clone() },
        Outcome::NoData | Outcome::NxDomain => DmarcAt::None,
        Outcome::Records(r) => {
            let texts: Vec<String> = r.iter().filter_map(|d| d.txt_text()).collect();
            let selected: Vec<String> = texts.iter().filter(|t| is_dmarc1(t)).cloned().collect();
            let quoted: Vec<String> = texts
                .iter()
                .filter(|t| t.trim_start().starts_with('"') && is_dmarc1(t.trim().trim_matches('"')))
                .cloned()
                .collect();
            match selected.len() {
                0 if !quoted.is_empty() => DmarcAt::Quoted { texts: quoted },
                0 => DmarcAt::None,
                1 => DmarcAt::One { text: selected[0].clone() },
                _ => DmarcAt::Multiple { texts: selected },
            }
        }
    }
}

/// How receivers select a DMARC record among TXT records: it starts with `v=DMARC1`.
fn is_dmarc1(t: &str) -> bool {
    let t = t.trim_start();
    t.strip_prefix('v').map(|r| r.trim_start()).and_then(|r| r.strip_prefix('=')).is_some_and(|r| {
        let r = r.trim_start();
        r.starts_with("DMARC1") && r[6..].trim_start().is_empty_or_semicolon()
    })
}

trait EmptyOrSemicolon {
    fn is_empty_or_semicolon(&self) -> bool;
}

impl EmptyOrSemicolon for str {
    fn is_empty_or_semicolon(&self) -> bool {
        self.is_empty() || self.starts_with(';')
    }
}

/// The policy record that applies to a domain, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovered {
    /// The domain whose `_dmarc` record applies (None: no record found).
    pub policy_domain: Option<String>,
    /// The DMARC record's text (None: no record found).
    pub record: Option<String>,
    /// The organizational domain this method determined.
    pub organizational_domain: String,
    /// True when the record is the domain's own (not inherited).
    pub own: bool,
}

/// Discovery could not finish because an answer is missing or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryBlocked {
    /// An answer the method needs has not been fetched yet.
    Pending,
    /// A TXT query the method needs failed.
    Failed {
        /// The name queried (`_dmarc.example.com`).
        name: String,
        /// How it failed.
        failure: Failure,
    },
}

fn record_psd(text: &str) -> Option<Psd> {
    DmarcRecord::parse(text).value.and_then(|r| r.psd)
}

/// RFC 9989 §4.10: policy discovery by the tree walk.
pub fn discover_9989(txt: &TxtAnswers<'_>, name: &str) -> Result<Discovered, DiscoveryBlocked> {
    let names = tree_walk_names(name);
    let mut found: Vec<(String, String)> = Vec::new();
    let own_record = matches!(dmarc_at(txt, name), DmarcAt::One { .. });
    for n in &names {
        match dmarc_at(txt, n) {
            // With a record of its own, the policy is known; a parent that failed only
            // blurs the organizational domain, which then comes from what did answer.
            DmarcAt::Pending | DmarcAt::Failed { .. } if own_record && n != name => {}
            DmarcAt::Pending => return Err(DiscoveryBlocked::Pending),
            DmarcAt::Failed { failure } => {
                return Err(DiscoveryBlocked::Failed { name: format!("_dmarc.{n}"), failure });
            }
            DmarcAt::One { text } => found.push((n.clone(), text)),
            _ => {}
        }
    }
    let org = if let Some((n, _)) = found.iter().find(|(_, t)| record_psd(t) == Some(Psd::No)) {
        n.clone()
    } else if let Some((n, _)) = found.iter().find(|(_, t)| record_psd(t) == Some(Psd::Yes)) {
        // One label below the public suffix domain, on the path to `name`.
        let below = names.iter().rev().find(|x| x.len() > n.len() && x.ends_with(&format!(".{n}")));
        below.cloned().unwrap_or_else(|| name.to_string())
    } else if let Some((n, _)) = found.last() {
        n.clone()
    } else {
        name.to_string()
    };
    let own = found.iter().find(|(n, _)| n == name);
    let (policy_domain, record) = match own {
        Some((n, t)) => (Some(n.clone()), Some(t.clone())),
        None => match found
            .iter()
            .find(|(n, _)| *n == org)
            .or_else(|| found.iter().find(|(n, t)| n != name && record_psd(t) == Some(Psd::Yes)))
        {
            Some((n, t)) => (Some(n.clone()), Some(t.clone())),
            None => (None, None),
        },
    };
    Ok(Discovered { own: own.is_some(), policy_domain, record, organizational_domain: org })
}

/// RFC 7489 §6.6.3: the domain's own record, else the organizational domain's by the
/// public suffix list.
pub fn discover_7489(txt: &TxtAnswers<'_>, name: &str) -> Result<Discovered, DiscoveryBlocked> {
    let org =
        DomainName::parse(name).map(|d| d.organizational_domain().to_string()).unwrap_or_else(|_| name.to_string());
    let mut candidates = vec![name.to_string()];
    if org != name {
        candidates.push(org.clone());
    }
    for (i, n) in candidates.iter().enumerate() {
        match dmarc_at(txt, n) {
            DmarcAt::Pending => return Err(DiscoveryBlocked::Pending),
            DmarcAt::Failed { failure } => {
                return Err(DiscoveryBlocked::Failed { name: format!("_dmarc.{n}"), failure });
            }
            DmarcAt::One { text } => {
                return Ok(Discovered {
                    policy_domain: Some(n.clone()),
                    record: Some(text),
                    organizational_domain: org,
                    own: i == 0,
                });
            }
            _ => {}
        }
    }
    Ok(Discovered { policy_domain: None, record: None, organizational_domain: org, own: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ses_dmarc_dns::Rdata;
    use std::collections::HashMap;

    #[test]
    fn walk_names() {
        assert_eq!(tree_walk_names("mail.example.com"), vec!["mail.example.com", "example.com", "com"]);
        assert_eq!(
            tree_walk_names("a.b.c.d.e.f.g.h.example.com"),
            vec![
                "a.b.c.d.e.f.g.h.example.com",
                "d.e.f.g.h.example.com",
                "e.f.g.h.example.com",
                "f.g.h.example.com",
                "g.h.example.com",
                "h.example.com",
                "example.com",
                "com"
            ]
        );
    }

    fn snap(records: &[(&str, &str)], names: &[&str]) -> HashMap<String, Answer> {
        let mut s = HashMap::new();
        for n in names {
            let text = records.iter().find(|(r, _)| r == n).map(|(_, t)| *t);
            let outcome = match text {
                Some(t) => Outcome::Records(vec![Rdata::Txt(vec![t.as_bytes().to_vec()])]),
                None => Outcome::NxDomain,
            };
            s.insert(format!("_dmarc.{n}"), Answer { outcome, cname_chain: vec![] });
        }
        s
    }

    #[test]
    fn inherits_from_org_and_methods_differ() {
        let names = ["mail.shop.example.co.uk", "shop.example.co.uk", "example.co.uk", "co.uk", "uk"];
        let map = snap(&[("example.co.uk", "v=DMARC1; p=reject")], &names);
        let s = |n: &str| map.get(n);
        let d = discover_9989(&s, names[0]).unwrap();
        assert_eq!(d.policy_domain.as_deref(), Some("example.co.uk"));
        assert!(!d.own);
        assert_eq!(discover_7489(&s, names[0]).unwrap().organizational_domain, "example.co.uk");

        // A psd=n record below the PSL's organizational domain: 9989 and 7489 differ.
        let map2 =
            snap(&[("shop.example.co.uk", "v=DMARC1; p=none; psd=n"), ("example.co.uk", "v=DMARC1; p=reject")], &names);
        let s = |n: &str| map2.get(n);
        assert_eq!(discover_9989(&s, names[0]).unwrap().policy_domain.as_deref(), Some("shop.example.co.uk"));
        assert_eq!(discover_7489(&s, names[0]).unwrap().policy_domain.as_deref(), Some("example.co.uk"));
        assert!(is_dmarc1("v=DMARC1; p=none") && is_dmarc1("v = DMARC1") && !is_dmarc1("v=DMARC10; p=none"));
    }
}
