//! Answers from memory: records loaded from zone files (`--zone`, checking records before
//! they are published) or built by tests. Names inside a loaded zone get authoritative
//! answers (records, NODATA, NXDOMAIN, CNAMEs followed); names outside every zone go to
//! the fallback resolver, or fail with a message saying so.

use crate::{Answer, Failure, Outcome, Rdata, RecordType, Resolver, canonical_name};
use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::txt::Parser;
use std::collections::{BTreeSet, HashMap};

/// Why a zone file cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The file is not a valid zone file.
    #[error("{path}: {message}")]
    Parse {
        /// The zone file.
        path: String,
        /// What the zone file parser said.
        message: String,
    },
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The zone file.
        path: String,
        /// The read error.
        source: std::io::Error,
    },
}

/// What a name holds for one type in memory.
#[derive(Debug, Clone, Default)]
struct Entry {
    records: Vec<Rdata>,
    /// The name answers every query for this type with a failure (tests).
    failure: Option<Failure>,
}

/// A resolver that answers from records held in memory (zone files, tests), authoritatively
/// for the zones it holds; other names go to the fallback `F`.
#[derive(Debug, Clone, Default)]
pub struct MemoryResolver<F = NoFallback> {
    zones: BTreeSet<String>,
    entries: HashMap<(String, RecordType), Entry>,
    cnames: HashMap<String, String>,
    /// Names that hold something (and their parents: empty non-terminals exist).
    existing: BTreeSet<String>,
    failing_names: HashMap<String, Failure>,
    fallback: Option<F>,
}

/// The fallback of a resolver that has none.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl Resolver for NoFallback {
    async fn lookup(&self, name: &str, _rtype: RecordType) -> Answer {
        Answer {
            outcome: Outcome::Failed(Failure::Network(format!("{name} is outside the zones given with --zone"))),
            cname_chain: vec![],
        }
    }
}

fn norm(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl MemoryResolver<NoFallback> {
    /// An empty resolver with no fallback.
    pub fn new() -> Self {
        MemoryResolver::default()
    }
}

impl<F> MemoryResolver<F> {
    /// Sends names outside the loaded zones to `fallback`.
    pub fn with_fallback<G>(self, fallback: G) -> MemoryResolver<G> {
        MemoryResolver {
            zones: self.zones,
            entries: self.entries,
            cnames: self.cnames,
            existing: self.existing,
            failing_names: self.failing_names,
            fallback: Some(fallback),
        }
    }

    /// Declares `origin` a zone this resolver is authoritative for.
    pub fn add_zone(&mut self, origin: &str) {
        self.zones.insert(norm(origin));
    }

    fn mark_existing(&mut self, name: &str) {
        let mut n = name.to_string();
        loop {
            self.existing.insert(n.clone());
            match n.split_once('.') {
                Some((_, rest)) if !self.zones.contains(&n) => n = rest.to_string(),
                _ => break,
            }
        }
    }

    /// Declares the name's parent a zone when no loaded zone holds the name.
    fn ensure_zone(&mut self, name: &str) {
        if self.zone_of(name).is_none() {
            let zone = name.split_once('.').map(|(_, p)| p.to_string()).unwrap_or(name.to_string());
            self.add_zone(&zone);
        }
    }

    /// Adds one record. The name's zone must have been added (or is added here as the
    /// name's organizational parent when none matches).
    pub fn add(&mut self, name: &str, data: Rdata) {
        let name = norm(name);
        self.ensure_zone(&name);
        self.mark_existing(&name);
        let rtype = match &data {
            Rdata::A(_) => RecordType::A,
            Rdata::Aaaa(_) => RecordType::Aaaa,
            Rdata::Mx { .. } => RecordType::Mx,
            Rdata::Txt(_) => RecordType::Txt,
            Rdata::Name(_) => RecordType::Ptr,
        };
        self.entries.entry((name, rtype)).or_default().records.push(data);
    }

    /// Adds a TXT record holding `text` as one string.
    pub fn add_txt(&mut self, name: &str, text: &str) {
        self.add(name, Rdata::Txt(vec![text.as_bytes().to_vec()]));
    }

    /// Makes `name` an alias (CNAME) of `target`.
    pub fn add_cname(&mut self, name: &str, target: &str) {
        let name = norm(name);
        self.ensure_zone(&name);
        self.mark_existing(&name);
        self.cnames.insert(name, norm(target));
    }

    /// Adds a record holding a name (PTR, NS) of type `rtype`.
    pub fn add_name_record(&mut self, name: &str, rtype: RecordType, target: &str) {
        let name = norm(name);
        self.mark_existing(&name);
        self.entries.entry((name, rtype)).or_default().records.push(Rdata::Name(norm(target)));
    }

    /// Makes the name exist without records (NODATA for every type).
    pub fn add_empty(&mut self, name: &str) {
        let name = norm(name);
        if self.zone_of(&name).is_none() {
            self.add_zone(&name);
        }
        self.mark_existing(&name);
    }

    /// Every query for `name` of type `rtype` fails so.
    pub fn fail_type(&mut self, name: &str, rtype: RecordType, failure: Failure) {
        let name = norm(name);
        self.mark_existing(&name);
        self.entries.entry((name, rtype)).or_default().failure = Some(failure);
    }

    /// Every query for `name` fails so.
    pub fn fail_name(&mut self, name: &str, failure: Failure) {
        self.failing_names.insert(norm(name), failure);
    }

    fn zone_of(&self, name: &str) -> Option<&String> {
        self.zones.iter().filter(|z| name == z.as_str() || name.ends_with(&format!(".{z}"))).max_by_key(|z| z.len())
    }

    /// Loads a zone file's text; `origin` is used for relative names.
    pub fn load_zone_text(&mut self, origin: &str, text: &str, path: &str) -> Result<(), ZoneError> {
        let perr = |message: String| ZoneError::Parse { path: path.to_string(), message };
        let origin_name = Name::from_ascii(origin).map_err(|e| perr(e.to_string()))?;
        let (zone_name, sets) = Parser::new(text, None, Some(origin_name)).parse().map_err(|e| perr(e.to_string()))?;
        self.add_zone(&canonical_name(&zone_name));
        for set in sets.values() {
            for record in set.records_without_rrsigs() {
                let name = canonical_name(&record.name);
                match &record.data {
                    RData::A(a) => self.add(&name, Rdata::A(a.0)),
                    RData::AAAA(a) => self.add(&name, Rdata::Aaaa(a.0)),
                    RData::MX(mx) => {
                        self.add(&name, Rdata::Mx { preference: mx.preference, exchange: canonical_name(&mx.exchange) })
                    }
                    RData::TXT(t) => self.add(&name, Rdata::Txt(t.txt_data.iter().map(|s| s.to_vec()).collect())),
                    RData::CNAME(c) => self.add_cname(&name, &canonical_name(&c.0)),
                    RData::PTR(p) => self.add_name_record(&name, RecordType::Ptr, &canonical_name(&p.0)),
                    RData::NS(n) => self.add_name_record(&name, RecordType::Ns, &canonical_name(&n.0)),
                    _ => self.add_empty(&name),
                }
            }
        }
        Ok(())
    }

    /// Loads a zone file from disk. Its origin comes from `$ORIGIN` or the SOA; when the
    /// file has neither, `origin` (for example the domain being checked) is used.
    pub fn load_zone_file(&mut self, path: &std::path::Path, origin: &str) -> Result<(), ZoneError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Read { path: display.clone(), source })?;
        self.load_zone_text(origin, &text, &display)
    }

    fn answer_local(&self, name: &str, rtype: RecordType) -> Answer {
        let mut chain = Vec::new();
        let mut current = name.to_string();
        for _ in 0..16 {
            if let Some(f) = self.failing_names.get(&current) {
                return Answer { outcome: Outcome::Failed(f.clone()), cname_chain: chain };
            }
            if let Some(target) = self.cnames.get(&current) {
                if rtype == RecordType::Cname {
                    return Answer { outcome: Outcome::Records(vec![Rdata::Name(target.clone())]), cname_chain: chain };
                }
                chain.push((current.clone(), target.clone()));
                current = target.clone();
                if self.zone_of(&current).is_none() {
                    // Continued by the fallback resolver (see `lookup`).
                    return Answer { outcome: Outcome::NoData, cname_chain: chain };
                }
                continue;
            }
            let lookup_type = if rtype == RecordType::Cname { None } else { Some(rtype) };
            if let Some(entry) = lookup_type.and_then(|t| self.entries.get(&(current.clone(), t))) {
                if let Some(f) = &entry.failure {
                    return Answer { outcome: Outcome::Failed(f.clone()), cname_chain: chain };
                }
                if !entry.records.is_empty() {
                    return Answer { outcome: Outcome::Records(entry.records.clone()), cname_chain: chain };
                }
            }
            let outcome = if self.existing.contains(&current) { Outcome::NoData } else { Outcome::NxDomain };
            return Answer { outcome, cname_chain: chain };
        }
        Answer { outcome: Outcome::Failed(Failure::Malformed("CNAME loop".into())), cname_chain: chain }
    }
}

impl<F: Resolver> Resolver for MemoryResolver<F> {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        let name = norm(name);
        if self.zone_of(&name).is_some() || self.failing_names.contains_key(&name) {
            let local = self.answer_local(&name, rtype);
            let leaves = local.cname_chain.last().map(|(_, t)| t.clone()).filter(|t| self.zone_of(t).is_none());
            let Some(target) = leaves.filter(|_| local.outcome == Outcome::NoData) else { return local };
            let mut rest = match &self.fallback {
                Some(f) => f.lookup(&target, rtype).await,
                None => NoFallback.lookup(&target, rtype).await,
            };
            let mut chain = local.cname_chain;
            chain.append(&mut rest.cname_chain);
            rest.cname_chain = chain;
            return rest;
        }
        match &self.fallback {
            Some(f) => f.lookup(&name, rtype).await,
            None => NoFallback.lookup(&name, rtype).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn zone_answers() {
        let mut r = MemoryResolver::new();
        r.load_zone_text(
            "example.com.",
            "$TTL 300\n@ IN TXT \"v=spf1 -all\"\nmail IN MX 10 feedback-smtp.us-east-1.amazonses.com.\nalias IN CNAME mail\na.b.c IN A 192.0.2.1\n",
            "test.zone",
        )
        .unwrap();
        block(async {
            assert_eq!(r.lookup("example.com", RecordType::Txt).await.records()[0].txt_text().unwrap(), "v=spf1 -all");
            assert_eq!(r.lookup("mail.example.com", RecordType::Txt).await.outcome, Outcome::NoData);
            assert_eq!(r.lookup("b.c.example.com", RecordType::A).await.outcome, Outcome::NoData);
            assert_eq!(r.lookup("nope.example.com", RecordType::A).await.outcome, Outcome::NxDomain);
            let via = r.lookup("ALIAS.example.com.", RecordType::Mx).await;
            assert_eq!(via.cname_chain, vec![("alias.example.com".to_string(), "mail.example.com".to_string())]);
            assert_eq!(via.records().len(), 1);
            assert!(r.lookup("other.org", RecordType::Txt).await.is_failure());
        });
        assert!(r.load_zone_text("x.", "@ IN MX nope", "bad.zone").unwrap_err().to_string().starts_with("bad.zone"));
    }
}
