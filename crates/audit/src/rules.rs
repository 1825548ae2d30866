//! The rules: pure functions from a [`Snapshot`] to findings, passed checks and the
//! verdict. No I/O. [`needed_queries`] says which answers the rules read, so the
//! gatherer can fetch exactly those.

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
use ses_dmarc_ses::mail_from::{self, MailFromError};
use ses_dmarc_ses::regions;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: FindingSeverity,
    pub group: RecordGroup,
    /// The DNS name the finding is about.
    pub name: String,
    pub message: String,
    /// The exact record to publish, or the change to make, when there is one.
    pub fix: Option<String>,
}

/// A check that passed, for the human report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passed {
    pub group: RecordGroup,
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `null` when an answer it needs could not be had, or an expectation is missing.
    pub ses_mail_passes_dmarc: Option<bool>,
    pub spf_aligned: Option<bool>,
    pub dkim_aligned: Option<bool>,
    /// The DMARC policy that applies (`none`, `quarantine`, `reject`), if any.
    pub policy: Option<Policy>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    pub passed: Vec<Passed>,
    /// The MAIL FROM name checked, when known.
    pub mail_from: Option<String>,
}

fn mail_from_name(snap: &Snapshot) -> Option<Result<DomainName, MailFromError>> {
    let domain = DomainName::parse(&snap.domain).ok()?;
    snap.expectations.mail_from.as_deref().map(|m| mail_from::resolve(&domain, m))
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
    findings: Vec<Finding>,
    passed: Vec<Passed>,
    reported_failures: BTreeSet<String>,
}

impl<'a> Judge<'a> {
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

    fn spf_diagnostics(&mut self, name: &str, record: &str) -> bool {
        let parsed = SpfRecord::parse(record);
        let mut ok = true;
        for d in &parsed.diagnostics {
            let (c, msg) = match (d.code, d.severity) {
                (_, Severity::Error) => {
                    ok = false;
                    (code::SPF_SYNTAX, format!("`{record}`: {} ({}). Receivers return permerror.", d.message, d.code))
                }
                (c, _) if c == diag::SPF_PTR => (code::SPF_PTR, d.message.clone()),
                (c, _) if c == diag::SPF_PERMISSIVE_ALL => (code::SPF_PERMISSIVE_ALL, d.message.clone()),
                (_, Severity::Warning) => (code::SPF_LINT, format!("{} ({})", d.message, d.code)),
                (c, Severity::Info) if c == diag::SPF_NO_ALL => (code::RECORD_NOTE, d.message.clone()),
                _ => continue,
            };
            self.find(c, name, msg, None);
        }
        ok
    }

    fn spf_tree_rules(&mut self, name: &str, tree: &SpfTree) -> bool {
        let mut ok = true;
        for f in &tree.failed {
            self.unknown(&f.name, f.rtype, &f.failure, &format!("The SPF lookup count through `{}`", f.cause));
        }
        if tree.lookups > 10 {
            ok = false;
            let branches: Vec<String> = tree
                .root
                .terms
                .iter()
                .filter(|t| t.lookups > 0)
                .map(|t| {
                    format!("{} ({})", t.term, t.lookups + t.child.as_ref().map(|c| c.branch_lookups).unwrap_or(0))
                })
                .collect();
            self.find(
                code::SPF_TOO_MANY_LOOKUPS,
                name,
                format!("{} DNS-querying terms through all includes; RFC 7208 allows 10, so receivers return permerror. By branch: {}.", tree.lookups, branches.join(", ")),
                Some("Remove includes you no longer use, or replace the heaviest branch with ip4/ip6 ranges.".into()),
            );
        }
        if tree.void_lookups > 2 {
            ok = false;
            let causes: Vec<String> = tree
                .void_causes
                .iter()
                .map(|v| format!("`{}` in {} ({} {})", v.term, v.domain, v.rtype.as_str(), v.name))
                .collect();
            self.find(
                code::SPF_VOID_LOOKUPS,
                name,
                format!("{} lookups return no records; RFC 7208 allows 2: {}.", tree.void_lookups, causes.join("; ")),
                Some("Remove the terms that name domains without records.".into()),
            );
        }
        for node in tree.nodes() {
            if node.domain == tree.root.domain {
                continue;
            }
            match &node.state {
                RecordState::Missing { .. } | RecordState::Multiple { .. } | RecordState::Quoted { .. } => {
                    ok = false;
                    self.find(
                        code::SPF_INCLUDE_MISSING,
                        name,
                        format!("an include or redirect names {}, which has no usable SPF record: receivers return permerror.", node.domain),
                        None,
                    );
                }
                RecordState::Found { record, diagnostics }
                    if diagnostics.iter().any(|d| d.severity == Severity::Error) =>
                {
                    ok = false;
                    self.find(
                        code::SPF_SYNTAX,
                        &node.domain,
                        format!("`{record}` (included by {name}) has a syntax error: receivers return permerror."),
                        None,
                    );
                }
                _ => {}
            }
        }
        ok
    }

    /// Judges the SPF record at a name. `Some(true)` when there is one valid record.
    fn spf_at(&mut self, name: &str, what: &str) -> (Option<bool>, Option<SpfTree>) {
        let Some(answer) = self.answer(name, RecordType::Txt, what) else { return (None, None) };
        let (spf, quoted) = select_spf(answer.records());
        if spf.is_empty() && !quoted.is_empty() {
            self.find(
                code::TXT_QUOTED_VALUE,
                name,
                format!(
                    "the TXT value is stored with literal quotes ({}), so receivers do not see an SPF record.",
                    quoted[0]
                ),
                Some(format!("{name}. TXT {}", quoted[0].trim())),
            );
            return (Some(false), None);
        }
        match spf.len() {
            0 => (Some(false), None),
            1 => {
                let syntax_ok = self.spf_diagnostics(name, &spf[0]);
                let (tree, _) = spf_tree(self.snap, name);
                let tree_ok = self.spf_tree_rules(name, &tree);
                if syntax_ok && tree_ok {
                    self.pass(
                        RecordGroup::Spf,
                        name,
                        format!(
                            "SPF `{}` (DNS-querying terms: {}, void lookups: {})",
                            spf[0], tree.lookups, tree.void_lookups
                        ),
                    );
                }
                (Some(syntax_ok && tree_ok), Some(tree))
            }
            n => {
                self.find(
                    if what.contains("MAIL FROM") { code::MAIL_FROM_SPF_MULTIPLE } else { code::SPF_MULTIPLE },
                    name,
                    format!(
                        "{n} SPF records: {}. Receivers return permerror.",
                        spf.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                    ),
                    None,
                );
                (Some(false), None)
            }
        }
    }

    fn mail_from(&mut self) -> (Option<bool>, Option<String>) {
        let d = self.snap.domain.clone();
        let mf = match mail_from_name(self.snap) {
            None => {
                self.find(
                    code::MAIL_FROM_NOT_CHECKED,
                    &d,
                    "No --mail-from: the MAIL FROM records were not checked and SPF alignment of SES mail is unknown."
                        .into(),
                    Some("ses-dmarc check DOMAIN --mail-from mail (the MAIL FROM label you set in SES)".into()),
                );
                return (None, None);
            }
            Some(Err(MailFromError::IsIdentity { .. })) => {
                self.find(
                    code::MAIL_FROM_IS_FROM_DOMAIN,
                    &d,
                    format!("the MAIL FROM domain is {d} itself; SES requires a subdomain."),
                    Some(format!("use mail.{d}")),
                );
                return (Some(false), None);
            }
            Some(Err(e)) => {
                self.find(
                    code::MAIL_FROM_NOT_SUBDOMAIN,
                    &d,
                    e.to_string(),
                    Some(format!("use a name under {d}, such as mail.{d}")),
                );
                return (Some(false), None);
            }
            Some(Ok(mf)) => mf.to_string(),
        };
        let region = self.snap.expectations.regions.first().cloned();
        let feedback = format!("feedback-smtp.{}.amazonses.com", region.as_deref().unwrap_or("<region>"));
        let mx_fix = format!("{mf}. MX 10 {feedback}.");
        let mut cname_ok = Some(true);
        if let Some(a) = self.answer(&mf, RecordType::Cname, "The MAIL FROM CNAME check is")
            && let [Rdata::Name(target), ..] = a.records()
        {
            cname_ok = Some(false);
            self.find(
                code::MAIL_FROM_CNAME_CONFLICT,
                &mf,
                format!("{mf} is a CNAME to {target}: no MX or TXT record can sit beside it (RFC 1034)."),
                Some(format!(
                    "delete the CNAME, then publish {mx_fix} and {mf}. TXT \"v=spf1 include:amazonses.com ~all\""
                )),
            );
        } else if self.snap.get(&mf, RecordType::Cname).is_some_and(|a| a.is_failure()) {
            cname_ok = None;
        }
        if cname_ok == Some(false) {
            // The MX and TXT answers are the CNAME target's: reporting them missing would be noise.
            return (Some(false), Some(mf));
        }
        let mx_ok = match self.answer(&mf, RecordType::Mx, "The MAIL FROM MX checks are") {
            None => None,
            Some(a) => {
                let mxs: Vec<(u16, String)> = a
                    .records()
                    .iter()
                    .filter_map(|r| {
                        if let Rdata::Mx { preference, exchange } = r {
                            Some((*preference, exchange.clone()))
                        } else {
                            None
                        }
                    })
                    .collect();
                match mxs.as_slice() {
                    [] => {
                        self.find(
                            code::MAIL_FROM_MX_MISSING,
                            &mf,
                            format!("{mf} has no MX record: SES cannot verify the MAIL FROM domain, and with USE_DEFAULT_VALUE it falls back to amazonses.com."),
                            Some(mx_fix.clone()),
                        );
                        Some(false)
                    }
                    [(pref, host)] => self.mail_from_mx(&mf, *pref, host, &mx_fix),
                    many => {
                        let list: Vec<String> = many.iter().map(|(p, h)| format!("{p} {h}")).collect();
                        self.find(
                            code::MAIL_FROM_MX_MULTIPLE,
                            &mf,
                            format!(
                                "{mf} has {} MX records ({}); SES requires exactly one.",
                                many.len(),
                                list.join(", ")
                            ),
                            Some(format!("keep only {mx_fix}")),
                        );
                        Some(false)
                    }
                }
            }
        };
        let (spf_ok, tree) = self.spf_at(&mf, "The MAIL FROM SPF checks are");
        let spf_fix = format!("{mf}. TXT \"v=spf1 include:amazonses.com ~all\"");
        let spf_ok = match (spf_ok, &tree) {
            (Some(false), None)
                if !self.findings.iter().any(|f| {
                    f.name == mf && (f.code == code::TXT_QUOTED_VALUE || f.code == code::MAIL_FROM_SPF_MULTIPLE)
                }) =>
            {
                self.find(
                    code::MAIL_FROM_SPF_MISSING,
                    &mf,
                    format!("{mf} has no SPF record: SPF for SES mail returns none and cannot align."),
                    Some(spf_fix),
                );
                Some(false)
            }
            (state, Some(tree)) if !tree.includes("amazonses.com") => {
                let _ = state;
                self.find(
                    code::MAIL_FROM_SPF_NO_SES,
                    &mf,
                    format!(
                        "the SPF record of {mf} does not include amazonses.com, so SES's servers are not authorized."
                    ),
                    Some(spf_fix),
                );
                Some(false)
            }
            (state, _) => state,
        };
        (all_of(&[cname_ok, mx_ok, spf_ok]), Some(mf))
    }

    fn mail_from_mx(&mut self, mf: &str, pref: u16, host: &str, mx_fix: &str) -> Option<bool> {
        match regions::region_of_feedback_host(host) {
            None => {
                self.find(
                    code::MAIL_FROM_MX_NOT_SES,
                    mf,
                    format!("the MX of {mf} is {host}, not SES's feedback endpoint."),
                    Some(mx_fix.to_string()),
                );
                Some(false)
            }
            Some(Err(bad)) => {
                let hint = regions::suggest(&bad).first().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default();
                self.find(
                    code::MAIL_FROM_MX_UNKNOWN_REGION,
                    mf,
                    format!("the MX of {mf} names feedback-smtp.{bad}.amazonses.com, but `{bad}` is not an SES region{hint}."),
                    Some(mx_fix.to_string()),
                );
                Some(false)
            }
            Some(Ok(region)) => {
                let expected = &self.snap.expectations.regions;
                if !expected.is_empty() && !expected.iter().any(|r| r == region.code) {
                    self.find(
                        code::MAIL_FROM_MX_OTHER_REGION,
                        mf,
                        format!("the MX names {} while you send from {}: fine, one MX serves every region and SES forwards bounces.", region.code, expected.join(", ")),
                        None,
                    );
                }
                self.pass(RecordGroup::MailFrom, mf, format!("MX {pref} {host}"));
                Some(true)
            }
        }
    }

    fn expected_zones(&self, region: &Option<String>) -> Vec<&'static str> {
        match region.as_deref().and_then(regions::find) {
            Some(r) => vec![r.dkim_signing_zone],
            None => {
                let mut z: Vec<&'static str> = regions::REGIONS.iter().map(|r| r.dkim_signing_zone).collect();
                z.sort();
                z.dedup();
                z
            }
        }
    }

    fn dkim_key(&mut self, name: &str, via: &str) -> Option<bool> {
        let a = self.answer(name, RecordType::Txt, "The DKIM key check is")?;
        let texts: Vec<String> = a.records().iter().filter_map(|r| r.txt_text()).collect();
        let Some(text) = texts.iter().find(|t| t.contains("p=")).or(texts.first()) else {
            self.find(
                code::DKIM_KEY_INVALID,
                name,
                format!("{via} has no key record: signatures with this selector fail."),
                None,
            );
            return Some(false);
        };
        let parsed = DkimKeyRecord::parse(text);
        let Some(rec) = parsed.value else { return Some(false) };
        let errors: Vec<String> =
            parsed.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(|d| d.message.clone()).collect();
        match rec.key() {
            KeyInfo::Revoked => {
                self.find(code::DKIM_KEY_REVOKED, name, format!("the key at {via} is revoked (empty p=)."), None);
                Some(false)
            }
            KeyInfo::Rsa { bits } if bits < 1024 => {
                self.find(
                    code::DKIM_KEY_WEAK,
                    name,
                    format!("the key at {via} is RSA {bits} bits; verifiers reject keys under 1024."),
                    None,
                );
                Some(false)
            }
            _ if !errors.is_empty() => {
                self.find(
                    code::DKIM_KEY_INVALID,
                    name,
                    format!("the key record at {via} is unusable: {}.", errors.join("; ")),
                    None,
                );
                Some(false)
            }
            KeyInfo::Rsa { bits } => {
                if bits < 2048 {
                    self.find(
                        code::DKIM_KEY_1024,
                        name,
                        format!("the key at {via} is RSA {bits} bits; 2048 is recommended."),
                        None,
                    );
                }
                self.pass(RecordGroup::Dkim, name, format!("key RSA {bits} bits"));
                Some(true)
            }
            KeyInfo::Ed25519 => {
                self.pass(RecordGroup::Dkim, name, "key Ed25519".into());
                Some(true)
            }
            KeyInfo::Missing | KeyInfo::Invalid { .. } => {
                self.find(code::DKIM_KEY_INVALID, name, format!("the key record at {via} holds no usable key."), None);
                Some(false)
            }
        }
    }

    fn dkim(&mut self) -> Option<bool> {
        let d = self.snap.domain.clone();
        let tokens = self.snap.expectations.tokens();
        let selectors = self.snap.expectations.selectors.clone();
        if tokens.is_empty() && selectors.is_empty() {
            self.find(
                code::DKIM_NOT_CHECKED,
                &d,
                "No --dkim-token or --selector: the DKIM records were not checked and DKIM alignment is unknown."
                    .into(),
                Some(
                    "pass the three Easy DKIM tokens with --dkim-token (aws sesv2 get-email-identity shows them)"
                        .into(),
                ),
            );
            return None;
        }
        let mut token_states = Vec::new();
        for (region, token) in &tokens {
            let name = dkim_name(token, &d);
            let zones = self.expected_zones(region);
            let expected = format!("{token}.{}", zones[0]);
            let fix = format!("{name}. CNAME {expected}.");
            let Some(a) = self.answer(&name, RecordType::Cname, "The DKIM CNAME check is") else {
                token_states.push(None);
                continue;
            };
            let target = match a.records() {
                [Rdata::Name(t), ..] => t.clone(),
                _ => {
                    let has_txt = self.snap.get(&name, RecordType::Txt).is_some_and(|t| !t.records().is_empty());
                    let msg = if has_txt {
                        format!(
                            "{name} holds a TXT key instead of the CNAME: SES rotates its keys behind the CNAME, so a copied key goes stale."
                        )
                    } else {
                        format!("{name} does not exist: SES cannot verify Easy DKIM until all three CNAMEs resolve.")
                    };
                    self.find(code::DKIM_CNAME_MISSING, &name, msg, Some(fix));
                    token_states.push(Some(false));
                    continue;
                }
            };
            let right = zones.iter().any(|z| target == format!("{token}.{z}"));
            if !right {
                let hint = if target.ends_with(&format!(".{d}")) {
                    format!(
                        " The target ends in .{d}: the DNS host appended the zone name to a name given without a trailing dot."
                    )
                } else if target == format!("{token}.dkim.amazonses.com") {
                    " That is the signing zone most regions use; this region has its own.".to_string()
                } else if let Some(r) =
                    regions::REGIONS.iter().find(|r| target == format!("{token}.{}", r.dkim_signing_zone))
                {
                    format!(" That is the signing zone of {}.", r.code)
                } else {
                    String::new()
                };
                self.find(
                    code::DKIM_CNAME_WRONG_TARGET,
                    &name,
                    format!("{name} points to {target}, not {expected}.{hint}"),
                    Some(fix),
                );
                token_states.push(Some(false));
                continue;
            }
            self.pass(RecordGroup::Dkim, &name, format!("CNAME {target}"));
            token_states.push(self.dkim_key(&name, &target));
        }
        let mut groups = Vec::new();
        if !tokens.is_empty() {
            groups.push(all_of(&token_states));
        }
        for s in &selectors {
            let name = dkim_name(s, &d);
            match self.snap.get(&name, RecordType::Txt).map(|a| &a.outcome) {
                Some(Outcome::NoData | Outcome::NxDomain) => {
                    self.find(
                        code::DKIM_SELECTOR_MISSING,
                        &name,
                        format!("no DKIM key at selector `{s}` ({name})."),
                        None,
                    );
                    groups.push(Some(false));
                }
                _ => groups.push(self.dkim_key(&name, &name)),
            }
        }
        any_of(&groups)
    }

    fn dmarc(&mut self, mail_from_given: bool) -> (Option<bool>, Option<Policy>, bool) {
        let d = self.snap.domain.clone();
        let dmarc_name = format!("_dmarc.{d}");
        let fix = format!("{dmarc_name}. TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{d}\"");
        let disc: Discovered = match discover_9989(self.snap, &d) {
            Ok(x) => x,
            Err(DiscoveryBlocked::Failed { name, failure }) => {
                self.unknown(&name, RecordType::Txt, &failure, "The DMARC checks are");
                return (None, None, false);
            }
            Err(DiscoveryBlocked::Pending) => {
                self.unknown(
                    &dmarc_name,
                    RecordType::Txt,
                    &Failure::Network("not queried".into()),
                    "The DMARC checks are",
                );
                return (None, None, false);
            }
        };
        for n in tree_walk_names(&d) {
            if let DmarcAt::Failed { failure } = dmarc_at(self.snap, &n) {
                self.unknown(
                    &format!("_dmarc.{n}"),
                    RecordType::Txt,
                    &failure,
                    "The organizational domain (RFC 9989 tree walk) is",
                );
            }
        }
        match dmarc_at(self.snap, &d) {
            DmarcAt::Multiple { texts } => {
                self.find(
                    code::DMARC_MULTIPLE,
                    &dmarc_name,
                    format!("{} DMARC records ({}): receivers apply none of them.", texts.len(), texts.join(" | ")),
                    Some("keep one record".into()),
                );
                return (Some(false), None, false);
            }
            DmarcAt::Quoted { texts } => {
                self.find(
                    code::TXT_QUOTED_VALUE,
                    &dmarc_name,
                    format!(
                        "the DMARC value is stored with literal quotes ({}): receivers do not see a record.",
                        texts[0]
                    ),
                    Some(format!("{dmarc_name}. TXT {}", texts[0].trim())),
                );
                return (Some(false), None, false);
            }
            _ => {}
        }
        let (Some(policy_domain), Some(text)) = (disc.policy_domain.clone(), disc.record.clone()) else {
            self.find(
                code::DMARC_MISSING,
                &dmarc_name,
                format!("no DMARC record at {dmarc_name} nor at its organizational domain."),
                Some(fix),
            );
            return (Some(false), None, false);
        };
        let record_name = format!("_dmarc.{policy_domain}");
        if !disc.own {
            self.find(
                code::DMARC_INHERITED,
                &dmarc_name,
                format!("no record at {dmarc_name}; receivers apply the record of {policy_domain} (`{text}`)."),
                None,
            );
        }
        if let Ok(old) = discover_7489(self.snap, &d)
            && old.policy_domain != disc.policy_domain
        {
            self.find(
                code::DMARC_DISCOVERY_DIFFERS,
                &dmarc_name,
                format!(
                    "RFC 9989 receivers apply the record of {} but RFC 7489 receivers that of {}.",
                    disc.policy_domain.as_deref().unwrap_or("no domain"),
                    old.policy_domain.as_deref().unwrap_or("no domain")
                ),
                None,
            );
        }
        let parsed = DmarcRecord::parse(&text);
        for diag_ in &parsed.diagnostics {
            let c = match (diag_.code, diag_.severity) {
                (c, _) if c == diag::DMARC_URI_INVALID => code::DMARC_RUA_INVALID,
                (_, Severity::Error) => code::DMARC_SYNTAX,
                (c, _) if c == diag::DMARC_OBSOLETE_TAG => code::DMARC_OBSOLETE_TAG,
                (_, Severity::Warning) => code::DMARC_LINT,
                _ => code::RECORD_NOTE,
            };
            let message =
                if c == diag_.code { diag_.message.clone() } else { format!("{} ({})", diag_.message, diag_.code) };
            self.find(c, &record_name, message, None);
        }
        let rua_invalid = parsed.has_code(diag::DMARC_URI_INVALID);
        let Some(rec) = parsed.value else { return (Some(false), None, false) };
        let meaning = rec.meaning(Rfc::Rfc9989);
        let policy = if disc.own { meaning.policy } else { meaning.subdomain_policy };
        if policy == Policy::None {
            self.find(code::DMARC_POLICY_NONE, &record_name, "p=none: receivers report but deliver failing mail, spoofed mail included.".into(), Some("when the reports show all legitimate mail aligned: p=quarantine, then p=reject (ses-dmarc rollout)".into()));
        }
        if rec.rua.is_empty() && !rua_invalid {
            self.find(
                code::DMARC_NO_RUA,
                &record_name,
                "no rua: nobody sends you aggregate reports.".into(),
                Some(format!("add rua=mailto:dmarc-reports@{d}")),
            );
        }
        let strict_spf = meaning.aspf == ses_dmarc_records::AlignmentMode::Strict;
        if strict_spf && mail_from_given {
            self.find(
                code::DMARC_ASPF_STRICT_SES,
                &record_name,
                "aspf=s: the custom MAIL FROM is a subdomain, so SPF never aligns strictly for SES mail.".into(),
                Some("remove aspf=s".into()),
            );
        }
        let weaker = |p: Option<Policy>| p.is_some_and(|p| p < meaning.policy);
        if disc.own && (weaker(rec.subdomain_policy) || weaker(rec.nonexistent_policy)) {
            self.find(
                code::DMARC_SUBDOMAIN_POLICY_WEAKER,
                &record_name,
                format!(
                    "p={} but {}: subdomains get a weaker policy and can be spoofed.",
                    meaning.policy,
                    [
                        rec.subdomain_policy.map(|p| format!("sp={p}")),
                        rec.nonexistent_policy.map(|p| format!("np={p}"))
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ")
                ),
                Some(format!("remove sp/np or set them to {}", meaning.policy)),
            );
        }
        for (pd, dest, qname) in external_destinations(self.snap) {
            let Some(a) = self.answer(&qname, RecordType::Txt, "The report-destination authorization check is") else {
                continue;
            };
            let authorized =
                a.records().iter().filter_map(|r| r.txt_text()).any(|t| t.trim_start().starts_with("v=DMARC1"));
            if authorized {
                self.pass(RecordGroup::Dmarc, &qname, format!("{dest} accepts reports for {pd}"));
            } else {
                self.find(
                    code::DMARC_RUA_UNAUTHORIZED,
                    &record_name,
                    format!("reports go to {dest}, which has not authorized them: {qname} has no v=DMARC1 record, so receivers send nothing."),
                    Some(format!("the owner of {dest} publishes {qname}. TXT \"v=DMARC1\"")),
                );
            }
        }
        if meaning.usable {
            self.pass(RecordGroup::Dmarc, &record_name, format!("DMARC `{text}`"));
        }
        (Some(meaning.usable), Some(policy), strict_spf)
    }

    fn apex_spf(&mut self, mail_from_ok: bool) {
        let d = self.snap.domain.clone();
        let (state, tree) = self.spf_at(&d, "The apex SPF checks are");
        if state == Some(false)
            && tree.is_none()
            && !self
                .findings
                .iter()
                .any(|f| f.name == d && matches!(f.code, code::SPF_MULTIPLE | code::TXT_QUOTED_VALUE))
        {
            self.find(
                code::SPF_MISSING,
                &d,
                format!("{d} has no SPF record."),
                Some(format!("{d}. TXT \"v=spf1 -all\" (if the apex sends no mail itself)")),
            );
        }
        if let Some(tree) = tree
            && mail_from_ok
            && tree
                .root
                .terms
                .iter()
                .any(|t| t.term.trim_start_matches(['+', '-', '~', '?']).eq_ignore_ascii_case("include:amazonses.com"))
        {
            self.find(
                code::SPF_APEX_SES_INCLUDE_UNALIGNED,
                &d,
                "the apex SPF includes amazonses.com, but SES mail uses the custom MAIL FROM: the include aligns nothing and costs a lookup.".into(),
                Some("remove include:amazonses.com from the apex record".into()),
            );
        }
    }
}

/// Runs every rule over the snapshot.
pub fn judge(snap: &Snapshot) -> Judgement {
    let mut j = Judge { snap, findings: vec![], passed: vec![], reported_failures: BTreeSet::new() };
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
