//! DNS lookups with honest outcomes: every answer is records, no data, NXDOMAIN, or a
//! failure that says what failed (SERVFAIL, REFUSED, timeout, ...). A failure is never
//! reported as "missing".
//!
//! [`StubClient`] asks any nameserver (`ip:port`) directly over UDP, retrying over TCP
//! when the answer is truncated, with no cache. With feature `testing`,
//! [`testing::TestServer`] is an in-process authoritative server on loopback that serves
//! zone files and injects faults per name.

mod client;
mod memory;
#[cfg(feature = "testing")]
pub mod testing;
mod window;

pub use client::{ClientError, StubClient, parse_nameserver, system_nameservers};
pub use memory::{
    DEFAULT_ZONE_TTL, MAX_ZONE_BYTES, MAX_ZONE_RECORDS, MemoryResolver, NoFallback, ZoneError, ZoneLoaded,
};

/// Anything that answers DNS questions: the live client, zone files in memory, a recorded
/// snapshot.
pub trait Resolver: Send + Sync {
    /// The answer to one question: `rtype` records at `name`, CNAMEs followed.
    fn lookup(&self, name: &str, rtype: RecordType) -> impl std::future::Future<Output = Answer> + Send;
}

/// The name for a PTR query of `ip`.
pub fn reverse_name(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        std::net::IpAddr::V6(v6) => {
            let mut labels: Vec<String> =
                v6.octets().iter().rev().flat_map(|b| [format!("{:x}", b & 0xf), format!("{:x}", b >> 4)]).collect();
            labels.push("ip6.arpa".into());
            labels.join(".")
        }
    }
}

/// Names the IP's PTR records give, at most this many of which are checked.
const PTR_NAMES_CHECKED: usize = 10;

/// The IP's forward-confirmed reverse name: a PTR name whose own A or AAAA records include
/// the IP (a spoofer controls its PTR records, not the forward zone of the name it claims).
/// `None` when there is none, or when DNS fails.
pub async fn confirmed_reverse_name<R: Resolver>(resolver: &R, ip: std::net::IpAddr) -> Option<String> {
    let answer = resolver.lookup(&reverse_name(ip), RecordType::Ptr).await;
    let rtype = if ip.is_ipv4() { RecordType::A } else { RecordType::Aaaa };
    for rdata in answer.records().iter().take(PTR_NAMES_CHECKED) {
        let Rdata::Name(name) = rdata else { continue };
        let forward = resolver.lookup(name, rtype).await;
        let confirms = forward.records().iter().any(|r| match (r, ip) {
            (Rdata::A(a), std::net::IpAddr::V4(v4)) => *a == v4,
            (Rdata::Aaaa(a), std::net::IpAddr::V6(v6)) => *a == v6,
            _ => false,
        });
        if confirms {
            return Some(name.clone());
        }
    }
    None
}

impl Resolver for StubClient {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        StubClient::lookup(self, name, rtype).await
    }
}

/// A resolver with at most N queries in flight (`check --concurrency`).
#[derive(Debug, Clone)]
pub struct Limited<R> {
    inner: R,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<R> Limited<R> {
    /// Wraps `inner`, letting at most `in_flight` queries (at least 1) wait on it at once.
    pub fn new(inner: R, in_flight: usize) -> Self {
        Limited { inner, permits: std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight.max(1))) }
    }

    /// The resolver behind the limit.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: Resolver> Resolver for Limited<R> {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        let Ok(_permit) = self.permits.acquire().await else {
            return Answer {
                outcome: Outcome::Failed(Failure::Network("resolver closed".into())),
                cname_chain: vec![],
            };
        };
        self.inner.lookup(name, rtype).await
    }
}

impl<R: Resolver> Resolver for &R {
    async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        (**self).lookup(name, rtype).await
    }
}

use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types the tool asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    #[serde(rename = "AAAA")]
    Aaaa,
    /// An alias: the name stands for another name.
    #[serde(rename = "CNAME")]
    Cname,
    /// The mail servers of a domain.
    #[serde(rename = "MX")]
    Mx,
    /// Text: SPF, DMARC and DKIM records.
    #[serde(rename = "TXT")]
    Txt,
    /// The name an address points back to (reverse DNS).
    #[serde(rename = "PTR")]
    Ptr,
    /// The nameservers of a zone.
    #[serde(rename = "NS")]
    Ns,
}

impl RecordType {
    /// Every type, for parsing.
    pub const ALL: [RecordType; 7] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Ptr,
        RecordType::Ns,
    ];

    /// The type named `text` (`MX`, `TXT`, ...), upper case as DNS writes it.
    pub fn parse(text: &str) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The type's name as DNS writes it (`AAAA`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Ptr => "PTR",
            RecordType::Ns => "NS",
        }
    }
}

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Rdata {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A name (CNAME target, PTR, NS): lower case, no trailing dot.
    Name(String),
    /// A mail server.
    Mx {
        /// Lower is tried first.
        preference: u16,
        /// The mail server's name: lower case, no trailing dot.
        exchange: String,
    },
    /// A TXT record's character-strings, as bytes (serialized as text).
    #[serde(serialize_with = "serialize_strings")]
    Txt(Vec<Vec<u8>>),
}

fn serialize_strings<S: serde::Serializer>(strings: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(strings.len()))?;
    for string in strings {
        seq.serialize_element(&String::from_utf8_lossy(string))?;
    }
    seq.end()
}

impl Rdata {
    /// A TXT record's strings joined, as text (invalid UTF-8 replaced).
    pub fn txt_text(&self) -> Option<String> {
        match self {
            Rdata::Txt(strings) => Some(String::from_utf8_lossy(&strings.concat()).into_owned()),
            _ => None,
        }
    }
}

/// Why an answer could not be had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Failure {
    /// The server failed to answer (response code 2).
    #[error("SERVFAIL")]
    ServFail,
    /// The server refused to answer (response code 5).
    #[error("REFUSED")]
    Refused,
    /// No answer within the timeout, after every attempt.
    #[error("timed out")]
    Timeout,
    /// Another error response code; holds its name.
    #[error("response code {0}")]
    Rcode(String),
    /// An answer that cannot be decoded or does not fit the question (another id, a CNAME
    /// loop, a bad name); holds why.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The question could not be asked or its answer not received (a socket error; in memory,
    /// a name outside every zone); holds why.
    #[error("network error: {0}")]
    Network(String),
}

/// The outcome of one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "records")]
pub enum Outcome {
    /// The records of the asked type (never empty).
    Records(Vec<Rdata>),
    /// The name exists but has no record of this type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// No answer could be had.
    Failed(Failure),
}

/// A query's full answer: the outcome for the asked type, and the CNAMEs followed to get
/// there (owner → target, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// What the query for the asked type gave.
    pub outcome: Outcome,
    /// The CNAMEs followed, (owner, target) in order.
    pub cname_chain: Vec<(String, String)>,
}

impl Answer {
    /// The records, empty unless the outcome is [`Outcome::Records`].
    pub fn records(&self) -> &[Rdata] {
        match &self.outcome {
            Outcome::Records(r) => r,
            _ => &[],
        }
    }

    /// True when no answer could be had ([`Outcome::Failed`]).
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// Lower case, no trailing dot.
pub(crate) fn canonical_name(name: &hickory_proto::rr::Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').map(str::to_string).unwrap_or(s)
}
