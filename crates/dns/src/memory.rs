//! Answers from memory: records loaded from zone files (`--zone`, checking records before
//! they are published) or built by tests. Names inside a loaded zone get authoritative
//! answers (records, NODATA, NXDOMAIN, CNAMEs followed); names outside every zone go to
//! the fallback resolver, or fail with a message saying so.

use crate::{Answer, Failure, Outcome, Rdata, RecordType, Resolver, canonical_name};
use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::txt::Parser;
use std::collections::{BTreeSet, HashMap};

/// A zone file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The text is not a zone file; `message` names the line.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, and on which line.
        message: String,
    },
    /// The file cannot be read.
    #[error("cannot read the zone file {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// Why (not `source`: the message already says it, once).
        cause: std::io::Error,
    },
    /// The file holds no record.
    #[error(
        "{path}: the zone file holds no record (give the records to check, e.g. `ses-dmarc plan ... --format zone`)"
    )]
    Empty {
        /// The file.
        path: String,
    },
    /// The file is larger than a zone file for checking one domain needs to be.
    #[error("{path}: more than {limit} {what}; a zone file given to check a domain holds that domain's records")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit.
        limit: usize,
        /// `bytes` or `records`.
        what: &'static str,
    },
}

/// What loading a zone file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneLoaded {
    /// Records loaded.
    pub records: usize,
    /// The file had no `$TTL`, so [`DEFAULT_ZONE_TTL`] was assumed for records without one.
    pub assumed_ttl: bool,
}

/// The TTL assumed for a zone file without `$TTL`.
pub const DEFAULT_ZONE_TTL: u32 = 300;
/// The largest zone file loaded, in bytes.
pub const MAX_ZONE_BYTES: usize = 16 * 1024 * 1024;
/// The most records loaded from zone files.
pub const MAX_ZONE_RECORDS: usize = 100_000;

/// The 1-based line of `text` where parsing first fails: the shortest prefix ending on a
/// line boundary outside parentheses that does not parse.
fn first_bad_line(text: &str, parses: impl Fn(&str) -> bool) -> Option<usize> {
    let mut cuts = Vec::new();
    let (mut depth, mut offset) = (0i32, 0usize);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut quoted = false;
        let mut escaped = false;
        for c in line.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => break,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth -= 1,
                _ => {}
            }
        }
        offset += line.len();
        if depth <= 0 {
            depth = 0;
            cuts.push((i + 1, offset));
        }
    }
    let (mut lo, mut hi) = (0usize, cuts.len());
    if hi == 0 || parses(&text[..cuts[hi - 1].1]) {
        return None;
    }
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if parses(&text[..cuts[mid - 1].1]) { lo = mid } else { hi = mid }
    }
    Some(cuts[hi - 1].0)
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
    /// Only the names and types loaded are answered here; everything else (even inside a
    /// loaded zone) goes to the fallback. See [`MemoryResolver::in_front_of`].
    overlay: bool,
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
    /// Sends names outside the loaded zones to `fallback`; inside them, answers with
    /// authority (NODATA, NXDOMAIN for names not loaded).
    pub fn with_fallback<G>(self, fallback: G) -> MemoryResolver<G> {
        MemoryResolver {
            zones: self.zones,
            entries: self.entries,
            cnames: self.cnames,
            existing: self.existing,
            failing_names: self.failing_names,
            fallback: Some(fallback),
            overlay: false,
        }
    }

    /// Answers only the names and types loaded (a CNAME answers for every type of its
    /// name) and sends every other question to `fallback`, even for names inside a loaded
    /// zone: a zone file holding only `_dmarc` must not hide the MX published in DNS
    /// (`check --zone`).
    pub fn in_front_of<G>(self, fallback: G) -> MemoryResolver<G> {
        MemoryResolver { overlay: true, ..self.with_fallback(fallback) }
    }

    /// Whether the question is answered from what was loaded (rather than the fallback).
    pub fn answers_locally(&self, name: &str, rtype: RecordType) -> bool {
        let name = norm(name);
        if !self.overlay {
            return self.zone_of(&name).is_some() || self.failing_names.contains_key(&name);
        }
        self.holds(&name, rtype)
    }

    fn holds(&self, name: &str, rtype: RecordType) -> bool {
        if self.cnames.contains_key(name) || self.failing_names.contains_key(name) {
            return true;
        }
        if rtype == RecordType::Cname {
            return self.entries.keys().any(|(n, _)| n == name);
        }
        self.entries.get(&(name.to_string(), rtype)).is_some_and(|e| !e.records.is_empty() || e.failure.is_some())
    }

    /// How many records were loaded.
    pub fn len(&self) -> usize {
        self.entries.values().map(|e| e.records.len()).sum::<usize>() + self.cnames.len()
    }

    /// Whether nothing was loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Loads a zone file's text; `origin` is used for relative names. A file without
    /// `$TTL` gets [`DEFAULT_ZONE_TTL`] (said in the result); an error names the line.
    pub fn load_zone_text(&mut self, origin: &str, text: &str, path: &str) -> Result<ZoneLoaded, ZoneError> {
        let perr = |message: String| ZoneError::Parse { path: path.to_string(), message };
        if text.len() > MAX_ZONE_BYTES {
            return Err(ZoneError::TooLarge { path: path.to_string(), limit: MAX_ZONE_BYTES, what: "bytes" });
        }
        let origin_name = Name::from_ascii(origin).map_err(|e| perr(e.to_string()))?;
        let assumed_ttl =
            !text.lines().any(|l| l.trim_start().get(..4).is_some_and(|d| d.eq_ignore_ascii_case("$ttl")));
        let owned;
        let (text, shift) = if assumed_ttl {
            owned = format!("$TTL {DEFAULT_ZONE_TTL}\n{text}");
            (owned.as_str(), 1)
        } else {
            (text, 0)
        };
        let parse = |t: &str| Parser::new(t, None, Some(origin_name.clone())).parse();
        let (zone_name, sets) = parse(text).map_err(|e| {
            match first_bad_line(text, |t| parse(t).is_ok()).and_then(|l| l.checked_sub(shift)).filter(|l| *l > 0) {
                Some(line) => perr(format!("line {line}: {e}")),
                None => perr(e.to_string()),
            }
        })?;
        let records: usize = sets.values().map(|s| s.records_without_rrsigs().count()).sum();
        if self.len() + records > MAX_ZONE_RECORDS {
            return Err(ZoneError::TooLarge { path: path.to_string(), limit: MAX_ZONE_RECORDS, what: "records" });
        }
        let before = self.len();
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
        if self.len() == before {
            return Err(ZoneError::Empty { path: path.to_string() });
        }
        Ok(ZoneLoaded { records: self.len() - before, assumed_ttl })
    }

    /// Loads a zone file from disk. Its origin comes from `$ORIGIN` or the SOA; when the
    /// file has neither, `origin` (for example the domain being checked) is used.
    pub fn load_zone_file(&mut self, path: &std::path::Path, origin: &str) -> Result<ZoneLoaded, ZoneError> {
        use std::io::Read;
        let display = path.display().to_string();
        let read = |cause| ZoneError::Read { path: display.clone(), cause };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut bytes = Vec::new();
        file.take(MAX_ZONE_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(read)?;
        if bytes.len() > MAX_ZONE_BYTES {
            return Err(ZoneError::TooLarge { path: display, limit: MAX_ZONE_BYTES, what: "bytes" });
        }
        let text = String::from_utf8(bytes).map_err(|e| ZoneError::Parse {
            path: display.clone(),
            message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        })?;
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
                if !self.answers_locally(&current, rtype) {
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
        if self.answers_locally(&name, rtype) {
            let local = self.answer_local(&name, rtype);
            let leaves = local.cname_chain.last().map(|(_, t)| t.clone()).filter(|t| !self.answers_locally(t, rtype));
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
        let mut answer = match &self.fallback {
            Some(f) => f.lookup(&name, rtype).await,
            None => NoFallback.lookup(&name, rtype).await,
        };
        if self.overlay && answer.outcome == Outcome::NxDomain && self.existing.contains(&name) {
            // The zone file holds names at or below this one: it exists, whatever DNS says
            // before the records are published.
            answer.outcome = Outcome::NoData;
        }
        answer
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

    #[test]
    fn zone_file_errors_name_the_line_and_ttl_defaults() {
        let mut r = MemoryResolver::new();
        let text = "$ORIGIN example.com.\n@ TXT \"v=spf1 -all\"\nmail MX 10 ok.example.\n\nbad MX nope\nx TXT \"y\"\n";
        let e = r.load_zone_text("example.com.", text, "t.zone").unwrap_err().to_string();
        assert!(e.starts_with("t.zone: line 5: "), "{e}");
        let with_parens = "$TTL 60\n@ IN SOA ns h (\n 1 2 3 4 5 )\nwww A 192.0.2.1\nwww MX x y\n";
        let e = r.load_zone_text("example.com.", with_parens, "p.zone").unwrap_err().to_string();
        assert!(e.starts_with("p.zone: line 5: "), "{e}");
        let loaded = r.load_zone_text("example.com.", "@ TXT \"v=spf1 -all\"\n", "nottl.zone").unwrap();
        assert_eq!(loaded, ZoneLoaded { records: 1, assumed_ttl: true });
        assert!(matches!(r.load_zone_text("example.org.", "; nothing\n", "e.zone"), Err(ZoneError::Empty { .. })));
    }

    #[test]
    fn in_front_of_dns_only_loaded_names_answer() {
        let mut r = MemoryResolver::new();
        r.load_zone_text("example.com.", "_dmarc TXT \"v=DMARC1; p=none\"\nalias CNAME elsewhere.example.net.\n", "z")
            .unwrap();
        let mut dns = MemoryResolver::new();
        dns.load_zone_text(
            "example.com.",
            "$TTL 60\n@ TXT \"v=spf1 -all\"\nmail MX 10 feedback-smtp.us-east-1.amazonses.com.\n",
            "dns",
        )
        .unwrap();
        dns.load_zone_text("example.net.", "$TTL 60\nelsewhere TXT \"there\"\n", "dns2").unwrap();
        let r = r.in_front_of(dns);
        assert!(r.answers_locally("_dmarc.example.com", RecordType::Txt));
        assert!(!r.answers_locally("example.com", RecordType::Txt));
        block(async {
            assert_eq!(r.lookup("example.com", RecordType::Txt).await.records()[0].txt_text().unwrap(), "v=spf1 -all");
            assert_eq!(r.lookup("mail.example.com", RecordType::Mx).await.records().len(), 1);
            assert_eq!(r.lookup("_dmarc.example.com", RecordType::Txt).await.records().len(), 1);
            let via = r.lookup("alias.example.com", RecordType::Txt).await;
            assert_eq!(via.records()[0].txt_text().unwrap(), "there");
            assert_eq!(via.cname_chain.len(), 1);
        });
    }
}
