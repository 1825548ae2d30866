//! The rules: pure functions from a [`Snapshot`] to findings, passed checks and the
//! verdict. No I/O. [`needed_queries`] says which answers the rules read, so the
//! gatherer can fetch exactly those. One module per area: [`mail_from`], [`dkim`],
//! [`dmarc`], [`spf`] (the apex's and the MAIL FROM's); this one holds the shared types,
//! the judge's bookkeeping and the verdict.

mod dkim;
mod dmarc;
mod mail_from;
mod spf;

use crate::catalog::{self, FindingSeverity, RecordGroup, code};
use crate::discovery::{
    Discovered, DiscoveryBlocked, DmarcAt, discover_7489, discover_9989, dmarc_at, tree_walk_names,
};
use crate::snapshot::Snapshot;
use serde::Serialize;
use ses_dmarc_dns::{Answer, Failure, Outcome, Rdata, RecordType};
use ses_dmarc_receiver::spf_tree::{RecordState, SpfTree, select_spf};
use ses_dmarc_records::diag::code as diag;
use ses_dmarc_records::dkim::{DkimKeyRecord, KeyInfo};
use ses_dmarc_records::dmarc::{Policy, Rfc};
use ses_dmarc_records::{DmarcRecord, DomainName, Severity, SpfRecord};
use ses_dmarc_ses::mail_from::{self as ses_mail_from, MailFromError};
use ses_dmarc_ses::regions;
use std::collections::BTreeSet;

/// One problem or remark `check` reports about a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, one of [`crate::FINDINGS`].
    pub code: &'static str,
    /// How serious it is.
    pub severity: FindingSeverity,
    /// The records it concerns.
    pub group: RecordGroup,
    /// The DNS name the finding is about.
    pub name: String,
    /// What is wrong or worth knowing, for this domain.
    pub message: String,
    /// The exact record to publish, or the change to make, when there is one.
    pub fix: Option<String>,
}

/// A check that passed, for the human report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passed {
    /// The records checked.
    pub group: RecordGroup,
    /// The DNS name checked.
    pub name: String,
    /// What was found right.
    pub message: String,
}

/// Whether SES mail from the domain passes DMARC, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `null` when an answer it needs could not be had, or an expectation is missing.
    pub ses_mail_passes_dmarc: Option<bool>,
    /// Whether SPF aligns: the custom MAIL FROM is in place and `aspf` allows it (`null`:
    /// unknown).
    pub spf_aligned: Option<bool>,
    /// Whether DKIM aligns: the Easy DKIM records are in place (`null`: unknown).
    pub dkim_aligned: Option<bool>,
    /// The DMARC policy that applies (`none`, `quarantine`, `reject`), if any.
    pub policy: Option<Policy>,
    /// The verdict in one sentence.
    pub reason: String,
}

/// Everything the rules conclude about one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// Whether SES mail passes DMARC.
    pub verdict: Verdict,
    /// Problems and remarks, by severity (errors first).
    pub findings: Vec<Finding>,
    /// The checks that passed.
    pub passed: Vec<Passed>,
    /// The MAIL FROM name checked, when known.
    pub mail_from: Option<String>,
}

fn mail_from_name(snap: &Snapshot) -> Option<Result<DomainName, MailFromError>> {
    let domain = DomainName::parse(&snap.domain).ok()?;
    snap.expectations.mail_from.as_deref().map(|m| ses_mail_from::resolve(&domain, m))
}

fn spf_tree(snap: &Snapshot, name: &str) -> (SpfTree, Vec<(String, RecordType)>) {
    let f = |n: &str, t: RecordType| snap.get(n, t);
    SpfTree::build(name, &f)
}

fn dkim_name(token: &str, domain: &str) -> String {
    format!("{token}._domainkey.{domain}")
}

/// The report destinations of the applicable DMARC record that need authorization,
/// as (policy domain, destination host, the TXT name to query).
fn external_destinations(snap: &Snapshot) -> Vec<(String, String, String)> {
    let Ok(disc) = discover_9989(snap, &snap.domain) else { return vec![] };
    let (Some(policy_domain), Some(text)) = (disc.policy_domain, disc.record) else { return vec![] };
    let Some(rec) = DmarcRecord::parse(&text).value else { return vec![] };
    let Ok(pd) = DomainName::parse(&policy_domain) else { return vec![] };
    let mut out = Vec::new();
    for uri in rec.rua.iter().chain(&rec.ruf) {
        if let Some(dest) = uri.destination_domain()
            && dest.organizational_domain() != pd.organizational_domain()
        {
            let q = format!("{policy_domain}._report._dmarc.{dest}");
            if !out.iter().any(|(_, _, x)| *x == q) {
                out.push((policy_domain.clone(), dest.to_string(), q));
            }
        }
    }
    out
}

/// Every answer the rules will read, given what the snapshot already holds. Names whose
/// need depends on another answer appear once that answer is in.
pub fn needed_queries(snap: &Snapshot) -> Vec<(String, RecordType)> {
    let d = snap.domain.clone();
    let mut q: Vec<(String, RecordType)> = vec![(d.clone(), RecordType::Txt)];
    for n in tree_walk_names(&d) {
        q.push((format!("_dmarc.{n}"), RecordType::Txt));
    }
    let mf = mail_from_name(snap).and_then(|r| r.ok());
    if let Some(mf) = &mf {
        for t in [RecordType::Mx, RecordType::Txt, RecordType::Cname] {
            q.push((mf.to_string(), t));
        }
    }
    for (_, token) in snap.expectations.tokens() {
        q.push((dkim_name(&token, &d), RecordType::Cname));
        q.push((dkim_name(&token, &d), RecordType::Txt));
    }
    for s in &snap.expectations.selectors {
        q.push((dkim_name(s, &d), RecordType::Txt));
    }
    let mut spf_names = vec![d.clone()];
    spf_names.extend(mf.map(|m| m.to_string()));
    for name in spf_names {
        if snap.has(&name, RecordType::Txt) {
            q.extend(spf_tree(snap, &name).1);
        }
    }
    for (_, _, name) in external_destinations(snap) {
        q.push((name, RecordType::Txt));
    }
    let mut seen = BTreeSet::new();
    q.retain(|x| seen.insert(x.clone()));
    q
}

/// `Some(false)` if any is false, else `None` if any is unknown, else `Some(true)`.
fn all_of(states: &[Option<bool>]) -> Option<bool> {
    if states.contains(&Some(false)) {
        Some(false)
    } else if states.contains(&None) {
        None
    } else {
        Some(true)
    }
}

/// `Some(true)` if any is true, else `None` if any is unknown, else `Some(false)`.
fn any_of(states: &[Option<bool>]) -> Option<bool> {
    if states.contains(&Some(true)) {
        Some(true)
    } else if states.contains(&None) || states.is_empty() {
        None
    } else {
        Some(false)
    }
}

struct Judge<'a> {
    snap: &'a Snapshot,
    /// The region to judge against: the first `--region`, or the one the MAIL FROM MX
    /// names when none was given.
    region: Option<String>,
    findings: Vec<Finding>,
    passed: Vec<Passed>,
    reported_failures: BTreeSet<String>,
}

impl<'a> Judge<'a> {
    /// The region the MAIL FROM MX names (one MX, a real SES feedback host), said as an
    /// assumption.
    fn region_from_mx(&mut self) -> Option<String> {
        let mf = mail_from_name(self.snap)?.ok()?.to_string();
        let answer = self.snap.get(&mf, RecordType::Mx)?;
        let [Rdata::Mx { exchange, .. }] = answer.records() else { return None };
        let region = regions::region_of_feedback_host(exchange)?.ok()?;
        self.find(
            code::REGION_ASSUMED,
            &mf,
            format!("no --region: {} assumed, as the MAIL FROM MX names {exchange}.", region.code),
            Some(format!("pass `--region {}` (or the regions you send from) to check against them", region.code)),
        );
        Some(region.code.to_string())
    }

    fn find(&mut self, code: &'static str, name: &str, message: String, fix: Option<String>) {
        let kind = catalog::find(code);
        self.findings.push(Finding {
            code,
            severity: kind.map(|k| k.severity).unwrap_or(FindingSeverity::Info),
            group: kind.map(|k| k.group).unwrap_or(RecordGroup::AnyRecord),
            name: name.to_string(),
            message,
            fix,
        });
    }

    fn pass(&mut self, group: RecordGroup, name: &str, message: String) {
        self.passed.push(Passed { group, name: name.to_string(), message });
    }

    /// Reports a failed query once; `what` says which checks it leaves unknown.
    fn unknown(&mut self, name: &str, rtype: RecordType, failure: &Failure, what: &str) {
        let key = format!("{name} {}", rtype.as_str());
        if self.reported_failures.insert(key) {
            self.find(
                code::DNS_LOOKUP_FAILED,
                name,
                format!("{} {name}: {failure}. {what} unknown, not failed.", rtype.as_str()),
                None,
            );
        }
    }

    /// The answer, or `None` after reporting why it is unusable (failed or never asked).
    fn answer(&mut self, name: &str, rtype: RecordType, what: &str) -> Option<&'a Answer> {
        match self.snap.get(name, rtype) {
            Some(a) => match &a.outcome {
                Outcome::Failed(f) => {
                    self.unknown(name, rtype, f, what);
                    None
                }
                _ => Some(a),
            },
            None => {
                self.unknown(name, rtype, &Failure::Network("not queried".into()), what);
                None
            }
        }
    }
}

/// Runs every rule over the snapshot.
pub fn judge(snap: &Snapshot) -> Judgement {
    let mut j = Judge { snap, region: None, findings: vec![], passed: vec![], reported_failures: BTreeSet::new() };
    if snap.get(&snap.domain, RecordType::Txt).is_some_and(|a| a.outcome == Outcome::NxDomain) {
        j.find(
            code::DOMAIN_NOT_FOUND,
            &snap.domain,
            format!("{} does not exist (NXDOMAIN): is it spelled right? Nothing can be published under it until it is registered and delegated.", snap.domain),
            Some(format!("check the spelling of {}, or delegate it (NS records at the registrar)", snap.domain)),
        );
        return Judgement {
            verdict: Verdict {
                ses_mail_passes_dmarc: Some(false),
                spf_aligned: None,
                dkim_aligned: None,
                policy: None,
                reason: format!("{} does not exist", snap.domain),
            },
            findings: j.findings,
            passed: vec![],
            mail_from: None,
        };
    }
    j.region = snap.expectations.regions.first().cloned().or_else(|| j.region_from_mx());
    let (spf_state, mail_from) = j.mail_from();
    let dkim_state = j.dkim();
    let (dmarc_state, policy, strict_spf) = j.dmarc(mail_from.is_some());
    j.apex_spf(spf_state == Some(true));
    let spf_aligned = if strict_spf && spf_state.is_some() { Some(false) } else { spf_state };
    let passes = match dmarc_state {
        None => None,
        Some(false) => Some(false),
        Some(true) => {
            if spf_aligned == Some(true) || dkim_state == Some(true) {
                Some(true)
            } else if spf_aligned == Some(false) && dkim_state == Some(false) {
                Some(false)
            } else {
                None
            }
        }
    };
    let reason = match (passes, spf_aligned, dkim_state) {
        (Some(true), Some(true), Some(true)) => {
            "SES mail aligns by SPF (custom MAIL FROM) and DKIM (Easy DKIM)".to_string()
        }
        (Some(true), Some(true), _) => "SES mail aligns by SPF through the custom MAIL FROM".to_string(),
        (Some(true), _, _) => "SES mail aligns by DKIM".to_string(),
        (Some(false), _, _) if dmarc_state == Some(false) => "no usable DMARC record".to_string(),
        (Some(false), _, _) => "neither SPF nor DKIM aligns for SES mail".to_string(),
        (None, _, _) if dmarc_state.is_none() => "the DMARC record could not be read".to_string(),
        (None, None, None) => "MAIL FROM and DKIM not checked: pass --mail-from and --dkim-token".to_string(),
        (None, _, _) => {
            "some answers or expectations are missing (see the unknown and not-checked findings)".to_string()
        }
    };
    let mut findings = j.findings;
    findings.sort_by_key(|f| f.severity);
    Judgement {
        verdict: Verdict { ses_mail_passes_dmarc: passes, spf_aligned, dkim_aligned: dkim_state, policy, reason },
        findings,
        passed: j.passed,
        mail_from,
    }
}
