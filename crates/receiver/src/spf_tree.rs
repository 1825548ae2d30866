//! The whole SPF include tree of a domain, built from DNS answers without a client IP:
//! every include and redirect followed (even past the ten-lookup limit), the DNS-querying
//! terms counted per branch, and every void lookup with the term that caused it.
//!
//! Building is pure: [`SpfTree::build`] reads answers through a closure and lists the
//! queries it still needs; a gatherer fetches those and builds again, one level of
//! dependency per round.

use serde::Serialize;
use ses_dmarc_dns::{Answer, Failure, Outcome, Rdata, RecordType};
use ses_dmarc_records::spf::{MacroPart, MacroString, Mechanism, Modifier, SpfRecord, Term};
use ses_dmarc_records::{Diagnostic, Severity};

/// How deep includes are followed; deeper branches are cut (a loop, in practice).
pub const MAX_DEPTH: usize = 12;
/// Distinct records expanded in one tree at most: anyone can publish a record whose
/// includes fan out without end; past this the tree is cut (receivers stop after ten
/// lookups anyway).
pub const MAX_RECORDS: usize = 200;

/// A domain's SPF include tree, with lookup counts and every problem found on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfTree {
    /// The checked domain's record.
    pub root: SpfNode,
    /// DNS-querying terms over the whole tree (RFC 7208 limit: 10).
    pub lookups: usize,
    /// Void lookups over the whole tree (RFC 7208 limit: 2).
    pub void_lookups: usize,
    /// The terms that caused void lookups, with the domain whose record holds them.
    pub void_causes: Vec<VoidLookup>,
    /// Queries whose answers could not be had.
    pub failed: Vec<FailedQuery>,
    /// Terms whose target depends on the sender or client IP and was not followed.
    pub unexpanded: Vec<String>,
}

/// A term whose DNS query returned nothing (a void lookup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoidLookup {
    /// The domain whose record holds the term.
    pub domain: String,
    /// The term as written.
    pub term: String,
    /// The name queried.
    pub name: String,
    /// The record type queried.
    pub rtype: RecordType,
}

/// A DNS query of the tree whose answer could not be had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedQuery {
    /// The name queried.
    pub name: String,
    /// The record type queried.
    pub rtype: RecordType,
    /// How it failed.
    pub failure: Failure,
    /// The term (or include) that caused the query.
    pub cause: String,
}

/// What a domain in the tree publishes as SPF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecordState {
    /// Exactly one SPF record.
    Found {
        /// The record's text.
        record: String,
        /// Its parser diagnostics.
        diagnostics: Vec<Diagnostic>,
    },
    /// No TXT record starts with `v=spf1`.
    Missing {
        /// True when the name does not exist (NXDOMAIN).
        nxdomain: bool,
    },
    /// More than one `v=spf1` record (permerror).
    Multiple {
        /// The records' texts.
        records: Vec<String>,
    },
    /// Records stored with literal quotes around them (`"v=spf1 ..."`).
    Quoted {
        /// The quoted values, as stored.
        records: Vec<String>,
    },
    /// The TXT query failed.
    Failed {
        /// How it failed.
        failure: Failure,
    },
    /// Not yet known (the answer is still to be fetched).
    Pending,
    /// Not followed: deeper than [`MAX_DEPTH`], already on the path (a loop), or past
    /// [`MAX_RECORDS`].
    Cut {
        /// Why.
        reason: String,
    },
    /// Shown once, above: this domain's record was expanded elsewhere in the tree; its
    /// lookups count again here (a receiver evaluates it again).
    Repeated,
}

/// One domain in the tree: its record and its terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfNode {
    /// The domain.
    pub domain: String,
    /// What it publishes as SPF.
    pub state: RecordState,
    /// Its record's terms, in order (empty without a record).
    pub terms: Vec<TermNode>,
    /// DNS-querying terms in this node's branch (itself and below).
    pub branch_lookups: usize,
}

/// One term of a record in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TermNode {
    /// The term as written.
    pub term: String,
    /// 1 for include, a, mx, ptr, exists, redirect; 0 otherwise.
    pub lookups: usize,
    /// Whether this term's own query came back empty.
    pub void: bool,
    /// Why the term was not followed or evaluated, when it was not.
    pub note: Option<String>,
    /// The record an include or redirect leads to.
    pub child: Option<Box<SpfNode>>,
}

/// The SPF records among a name's TXT answer: (selected, literally quoted ones).
pub fn select_spf(records: &[Rdata]) -> (Vec<String>, Vec<String>) {
    let mut spf = Vec::new();
    let mut quoted = Vec::new();
    for r in records {
        let Some(text) = r.txt_text() else { continue };
        if ses_dmarc_records::spf::is_spf1(&text) {
            spf.push(text);
        } else {
            let unquoted = text.trim().trim_matches('"');
            if text.trim_start().starts_with('"') && ses_dmarc_records::spf::is_spf1(unquoted) {
                quoted.push(text);
            }
        }
    }
    (spf, quoted)
}

fn literal_target(ms: &MacroString, domain: &str) -> Option<String> {
    // `%{d}` alone expands to the current domain without any sender or IP.
    let mut out = String::new();
    for part in &ms.0 {
        match part {
            MacroPart::Literal(s) => out.push_str(s),
            MacroPart::Macro(m)
                if m.letter == ses_dmarc_records::spf::MacroLetter::Domain
                    && m.digits.is_none()
                    && !m.reverse
                    && m.delimiters.is_empty()
                    && !m.url_escape =>
            {
                out.push_str(domain)
            }
            _ => return None,
        }
    }
    Some(out.trim_end_matches('.').to_ascii_lowercase())
}

struct Builder<'a> {
    answer: &'a dyn Fn(&str, RecordType) -> Option<&'a Answer>,
    wanted: Vec<(String, RecordType)>,
    lookups: usize,
    /// Void lookups counted over every evaluation (repeats included).
    void_count: usize,
    /// The void lookups' causes, each once.
    voids: Vec<VoidLookup>,
    /// Domains whose records are expanded: their branch's (lookups, void lookups).
    expanded: std::collections::HashMap<String, (usize, usize)>,
    /// Records expanded so far.
    records: usize,
    failed: Vec<FailedQuery>,
    unexpanded: Vec<String>,
}

impl<'a> Builder<'a> {
    fn get(&mut self, name: &str, rtype: RecordType) -> Option<&'a Answer> {
        let a = (self.answer)(name, rtype);
        if a.is_none() && !self.wanted.iter().any(|(n, t)| n == name && *t == rtype) {
            self.wanted.push((name.to_string(), rtype));
        }
        a
    }

    /// Checks a target's query for voidness and failure; `None` while pending.
    fn probe(&mut self, domain: &str, term: &str, name: &str, rtype: RecordType) -> Option<bool> {
        let answer = self.get(name, rtype)?;
        match &answer.outcome {
            Outcome::NoData | Outcome::NxDomain => {
                self.void(domain, term, name, rtype);
                Some(true)
            }
            Outcome::Failed(f) => {
                self.failed.push(FailedQuery { name: name.into(), rtype, failure: f.clone(), cause: term.into() });
                Some(false)
            }
            Outcome::Records(_) => Some(false),
        }
    }

    /// Counts a void lookup; its cause is listed once.
    fn void(&mut self, domain: &str, term: &str, name: &str, rtype: RecordType) {
        self.void_count = self.void_count.saturating_add(1);
        if !self.voids.iter().any(|v| v.domain == domain && v.term == term && v.name == name) {
            self.voids.push(VoidLookup { domain: domain.into(), term: term.into(), name: name.into(), rtype });
        }
    }

    fn node(&mut self, domain: &str, path: &[String], cause: &str) -> SpfNode {
        if path.iter().all(|p| p != domain)
            && let Some(&(lookups, voids)) = self.expanded.get(domain)
        {
            self.lookups = self.lookups.saturating_add(lookups);
            self.void_count = self.void_count.saturating_add(voids);
            return SpfNode {
                domain: domain.to_string(),
                state: RecordState::Repeated,
                terms: vec![],
                branch_lookups: lookups,
            };
        }
        let (lookups_before, voids_before) = (self.lookups, self.void_count);
        let mut node = self.expand(domain, path, cause);
        node.branch_lookups = self.lookups.saturating_sub(lookups_before);
        // Remembered even while answers below are pending: a later occurrence in this
        // build is a reference (its missing answers are already wanted), so a fan-out costs
        // one expansion per name in every round, not one per path.
        if !matches!(node.state, RecordState::Cut { .. }) {
            self.expanded.insert(domain.to_string(), (node.branch_lookups, self.void_count - voids_before));
        }
        node
    }

    fn expand(&mut self, domain: &str, path: &[String], cause: &str) -> SpfNode {
        let mut node =
            SpfNode { domain: domain.to_string(), state: RecordState::Pending, terms: vec![], branch_lookups: 0 };
        if self.records >= MAX_RECORDS {
            node.state = RecordState::Cut {
                reason: format!(
                    "the tree holds more than {MAX_RECORDS} records: not followed further (receivers stop after {} lookups)",
                    crate::spf::MAX_LOOKUPS
                ),
            };
            return node;
        }
        if path.len() > MAX_DEPTH {
            node.state = RecordState::Cut { reason: format!("deeper than {MAX_DEPTH} levels") };
            return node;
        }
        if path.iter().any(|p| p == domain) {
            node.state = RecordState::Cut { reason: "a loop: this domain is already on the path".into() };
            return node;
        }
        let Some(answer) = self.get(domain, RecordType::Txt) else { return node };
        let records = match &answer.outcome {
            Outcome::Failed(f) => {
                self.failed.push(FailedQuery {
                    name: domain.into(),
                    rtype: RecordType::Txt,
                    failure: f.clone(),
                    cause: cause.into(),
                });
                node.state = RecordState::Failed { failure: f.clone() };
                return node;
            }
            Outcome::NxDomain => {
                node.state = RecordState::Missing { nxdomain: true };
                return node;
            }
            Outcome::NoData => {
                node.state = RecordState::Missing { nxdomain: false };
                return node;
            }
            Outcome::Records(r) => r,
        };
        let (spf, quoted) = select_spf(records);
        let text = match (spf.as_slice(), quoted.is_empty()) {
            ([], true) => {
                node.state = RecordState::Missing { nxdomain: false };
                return node;
            }
            ([], false) => {
                node.state = RecordState::Quoted { records: quoted };
                return node;
            }
            ([one], _) => one.clone(),
            (many, _) => {
                node.state = RecordState::Multiple { records: many.to_vec() };
                return node;
            }
        };
        let parsed = SpfRecord::parse(&text);
        self.records += 1;
        node.state = RecordState::Found { record: text, diagnostics: parsed.diagnostics.clone() };
        let Some(record) = parsed.value else { return node };
        if parsed.diagnostics.iter().any(|d| d.severity == Severity::Error) {
            return node;
        }
        let mut inner_path = path.to_vec();
        inner_path.push(domain.to_string());
        let has_all = record.all_qualifier().is_some();
        for term in &record.terms {
            let text = term.to_string();
            let mut t = TermNode { term: text.clone(), lookups: 0, void: false, note: None, child: None };
            match term {
                Term::Directive(d) => {
                    let counts = d.mechanism.counts_as_lookup();
                    if counts {
                        t.lookups = 1;
                        self.lookups = self.lookups.saturating_add(1);
                    }
                    let (target_ms, rtype): (Option<&MacroString>, RecordType) = match &d.mechanism {
                        Mechanism::Include(ms) => (Some(ms), RecordType::Txt),
                        Mechanism::A { domain: ms, .. } => (ms.as_ref(), RecordType::A),
                        Mechanism::Mx { domain: ms, .. } => (ms.as_ref(), RecordType::Mx),
                        Mechanism::Exists(ms) => (Some(ms), RecordType::A),
                        Mechanism::Ptr(_) => {
                            t.note = Some("needs the client IP: not evaluated here".into());
                            node.terms.push(t);
                            continue;
                        }
                        _ => {
                            node.terms.push(t);
                            continue;
                        }
                    };
                    let target = match target_ms {
                        None => Some(domain.to_string()),
                        Some(ms) => literal_target(ms, domain),
                    };
                    let Some(target) = target else {
                        t.note = Some("the target depends on the sender or client IP: not followed".into());
                        self.unexpanded.push(format!("{domain}: {text}"));
                        node.terms.push(t);
                        continue;
                    };
                    if let Mechanism::Include(_) = d.mechanism {
                        let child = self.node(&target, &inner_path, &text);
                        if let RecordState::Missing { .. } = child.state {
                            t.void = true;
                            self.void(domain, &text, &target, rtype);
                        }
                        t.child = Some(Box::new(child));
                    } else if self.probe(domain, &text, &target, rtype) == Some(true) {
                        t.void = true;
                    }
                }
                Term::Modifier(Modifier::Redirect(ms)) => {
                    t.lookups = 1;
                    self.lookups = self.lookups.saturating_add(1);
                    if has_all {
                        t.note = Some("ignored: the record has `all`".into());
                    } else if let Some(target) = literal_target(ms, domain) {
                        t.child = Some(Box::new(self.node(&target, &inner_path, &text)));
                    } else {
                        t.note = Some("the target depends on the sender or client IP: not followed".into());
                        self.unexpanded.push(format!("{domain}: {text}"));
                    }
                }
                Term::Modifier(_) => {}
            }
            node.terms.push(t);
        }
        node
    }
}

/// Fetches the whole tree: each round asks for every answer the tree still needs, all at
/// once, so the rounds equal the include depth. Returns the tree and every answer.
pub async fn gather_tree<R: ses_dmarc_dns::Resolver>(
    resolver: &R,
    domain: &str,
) -> (SpfTree, std::collections::HashMap<(String, RecordType), Answer>) {
    let mut answers: std::collections::HashMap<(String, RecordType), Answer> = std::collections::HashMap::new();
    for _ in 0..=MAX_DEPTH + 2 {
        let wanted = {
            let f = |n: &str, t: RecordType| answers.get(&(n.to_string(), t));
            SpfTree::build(domain, &f).1
        };
        if wanted.is_empty() {
            break;
        }
        let got = futures_join(wanted.iter().map(|(n, t)| resolver.lookup(n, *t))).await;
        answers.extend(wanted.into_iter().zip(got));
    }
    let f = |n: &str, t: RecordType| answers.get(&(n.to_string(), t));
    let tree = SpfTree::build(domain, &f).0;
    (tree, answers)
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures::future::join_all(futures).await
}

impl SpfTree {
    /// Builds the tree from the answers `answer` knows; returns it with the queries still
    /// needed (empty when the tree is complete).
    pub fn build<'a>(
        domain: &str,
        answer: &'a dyn Fn(&str, RecordType) -> Option<&'a Answer>,
    ) -> (SpfTree, Vec<(String, RecordType)>) {
        let mut b = Builder {
            answer,
            wanted: vec![],
            lookups: 0,
            void_count: 0,
            voids: vec![],
            expanded: Default::default(),
            records: 0,
            failed: vec![],
            unexpanded: vec![],
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let root = b.node(&domain, &[], "record lookup");
        let tree = SpfTree {
            root,
            lookups: b.lookups,
            void_lookups: b.void_count,
            void_causes: b.voids,
            failed: b.failed,
            unexpanded: b.unexpanded,
        };
        (tree, b.wanted)
    }

    /// Whether a receiver evaluating this record returns permerror whatever the client:
    /// more DNS-querying terms or void lookups than RFC 7208 allows, two SPF records or
    /// quoted ones anywhere, a missing include target, or a syntax error.
    pub fn permerror(&self) -> bool {
        self.lookups > crate::spf::MAX_LOOKUPS
            || self.void_lookups > crate::spf::MAX_VOID_LOOKUPS
            || self.nodes().iter().any(|n| match &n.state {
                RecordState::Multiple { .. } | RecordState::Quoted { .. } => true,
                RecordState::Missing { .. } => n.domain != self.root.domain,
                RecordState::Found { diagnostics, .. } => diagnostics.iter().any(|d| d.severity == Severity::Error),
                _ => false,
            })
    }

    /// Whether an `include:` anywhere in the tree names `domain`.
    pub fn includes(&self, domain: &str) -> bool {
        fn walk(n: &SpfNode, d: &str) -> bool {
            n.terms.iter().any(|t| {
                t.term.trim_start_matches(['+', '-', '~', '?']).eq_ignore_ascii_case(&format!("include:{d}"))
                    || t.child.as_ref().is_some_and(|c| walk(c, d))
            })
        }
        walk(&self.root, domain)
    }

    /// Every node with the given state predicate, depth first.
    pub fn nodes(&self) -> Vec<&SpfNode> {
        fn walk<'n>(n: &'n SpfNode, out: &mut Vec<&'n SpfNode>) {
            out.push(n);
            for t in &n.terms {
                if let Some(c) = &t.child {
                    walk(c, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn txt(t: &str) -> Answer {
        Answer { outcome: Outcome::Records(vec![Rdata::Txt(vec![t.as_bytes().to_vec()])]), cname_chain: vec![] }
    }

    fn build_all(answers: &HashMap<(String, RecordType), Answer>, domain: &str) -> SpfTree {
        let nx = Answer { outcome: Outcome::NxDomain, cname_chain: vec![] };
        let f = |n: &str, t: RecordType| Some(answers.get(&(n.to_string(), t)).unwrap_or(&nx));
        SpfTree::build(domain, &f).0
    }

    #[test]
    fn counts_through_includes_and_past_ten() {
        let mut a = HashMap::new();
        let includes: String = (0..6).map(|i| format!(" include:s{i}.example.net")).collect();
        a.insert(("example.com".to_string(), RecordType::Txt), txt(&format!("v=spf1 mx{includes} -all")));
        a.insert(("example.com".to_string(), RecordType::Mx), Answer { outcome: Outcome::NoData, cname_chain: vec![] });
        for i in 0..6 {
            a.insert(
                (format!("s{i}.example.net"), RecordType::Txt),
                txt("v=spf1 a:x.example.net ip4:192.0.2.0/24 ~all"),
            );
        }
        let t = build_all(&a, "example.com");
        assert_eq!(t.lookups, 13);
        assert_eq!(t.root.branch_lookups, 13);
        // mx at the apex is void, and six `a:x.example.net` (NXDOMAIN) are void.
        assert_eq!(t.void_lookups, 7);
        assert_eq!(t.void_causes[0].term, "mx");
    }

    /// Level k's record includes level k+1 `fanout` times: the fan-out any domain owner
    /// can publish.
    fn fan_out(levels: usize, fanout: usize) -> HashMap<(String, RecordType), Answer> {
        let mut a = HashMap::new();
        for level in 0..levels {
            let includes: String = if level + 1 < levels {
                (0..fanout).map(|_| format!(" include:l{}.example.net", level + 1)).collect()
            } else {
                " ip4:192.0.2.0/24".into()
            };
            a.insert((format!("l{level}.example.net"), RecordType::Txt), txt(&format!("v=spf1{includes} -all")));
        }
        a
    }

    #[test]
    fn a_fanned_out_include_tree_is_built_once_per_name() {
        let a = fan_out(12, 10);
        let started = std::time::Instant::now();
        let t = build_all(&a, "l0.example.net");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // 10 + 100 + ... + 10^11 includes, counted, never copied.
        let expected: usize = (1..12).map(|k| 10usize.pow(k)).sum();
        assert_eq!(t.lookups, expected);
        assert_eq!(t.nodes().len(), 1 + 11 * 10, "every repeat is a reference");
        assert!(t.permerror());
        let repeated = t.nodes().iter().filter(|n| matches!(n.state, RecordState::Repeated)).count();
        assert_eq!(repeated, 11 * 9);
        // Deeper than MAX_DEPTH is cut, whatever the fan-out.
        let deep = build_all(&fan_out(20, 10), "l0.example.net");
        assert!(
            deep.nodes().iter().any(|n| matches!(&n.state, RecordState::Cut { reason } if reason.contains("deeper")))
        );
    }

    #[test]
    fn distinct_records_past_the_cap_are_cut() {
        let mut a = HashMap::new();
        // A binary tree of distinct names: 2^12 records, far past MAX_RECORDS.
        for depth in 0..12u32 {
            for i in 0..(1u32 << depth) {
                let kids = if depth < 11 {
                    format!(" include:n{}-{}.test include:n{}-{}.test", depth + 1, 2 * i, depth + 1, 2 * i + 1)
                } else {
                    String::new()
                };
                a.insert((format!("n{depth}-{i}.test"), RecordType::Txt), txt(&format!("v=spf1{kids} -all")));
            }
        }
        let t = build_all(&a, "n0-0.test");
        let found = t.nodes().iter().filter(|n| matches!(n.state, RecordState::Found { .. })).count();
        assert_eq!(found, MAX_RECORDS);
        assert!(
            t.nodes().iter().any(|n| matches!(&n.state, RecordState::Cut { reason } if reason.contains("more than")))
        );
    }

    #[test]
    fn gathering_a_fanned_out_tree_asks_each_name_once() {
        struct Counting(HashMap<(String, RecordType), Answer>, std::sync::Mutex<Vec<String>>);
        impl ses_dmarc_dns::Resolver for Counting {
            async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
                self.1.lock().unwrap().push(format!("{name} {}", rtype.as_str()));
                self.0
                    .get(&(name.to_string(), rtype))
                    .cloned()
                    .unwrap_or(Answer { outcome: Outcome::NxDomain, cname_chain: vec![] })
            }
        }
        let r = Counting(fan_out(12, 3), Default::default());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (tree, _) = rt.block_on(gather_tree(&r, "l0.example.net"));
        let asked = r.1.lock().unwrap().clone();
        let distinct: std::collections::BTreeSet<&String> = asked.iter().collect();
        assert_eq!(asked.len(), distinct.len(), "no name asked twice: {asked:?}");
        assert_eq!(asked.len(), 12);
        assert_eq!(tree.lookups, (1..12).map(|k| 3usize.pow(k)).sum::<usize>());
    }

    #[test]
    fn pending_then_complete() {
        let answers: HashMap<(String, RecordType), Answer> =
            [(("example.com".to_string(), RecordType::Txt), txt("v=spf1 include:amazonses.com ~all"))].into();
        let f = |n: &str, t: RecordType| answers.get(&(n.to_string(), t));
        let (tree, wanted) = SpfTree::build("example.com", &f);
        assert_eq!(wanted, vec![("amazonses.com".to_string(), RecordType::Txt)]);
        assert!(tree.includes("amazonses.com"));
        assert!(matches!(tree.root.terms[0].child.as_ref().unwrap().state, RecordState::Pending));
    }

    #[test]
    fn loops_multiple_quoted_and_macros() {
        let mut a = HashMap::new();
        a.insert(("a.test".to_string(), RecordType::Txt), txt("v=spf1 include:b.test exists:%{i}.bl.test -all"));
        a.insert(("b.test".to_string(), RecordType::Txt), txt("v=spf1 include:a.test -all"));
        a.insert(
            ("q.test".to_string(), RecordType::Txt),
            Answer {
                outcome: Outcome::Records(vec![Rdata::Txt(vec![b"\"v=spf1 -all\"".to_vec()])]),
                cname_chain: vec![],
            },
        );
        let t = build_all(&a, "a.test");
        let b = t.root.terms[0].child.as_ref().unwrap();
        assert!(matches!(b.terms[0].child.as_ref().unwrap().state, RecordState::Cut { .. }));
        assert_eq!(t.unexpanded.len(), 1);
        assert!(matches!(build_all(&a, "q.test").root.state, RecordState::Quoted { .. }));
    }
}
