//! A stub DNS client: one question to the configured nameservers, UDP first, TCP when the
//! answer is truncated; timeouts and retries under the caller's control; no cache.

use crate::{Answer, Failure, Outcome, Rdata, RecordType, canonical_name};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType as HRecordType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no nameserver configured (none given, and none found in /etc/resolv.conf)")]
    NoNameservers,
    #[error("`{0}` is not a nameserver address: write an IP address, optionally with :PORT (e.g. 127.0.0.1:5353)")]
    BadNameserver(String),
}

#[derive(Debug, Clone)]
pub struct StubClient {
    nameservers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: usize,
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

fn next_id() -> u16 {
    // Spread IDs so two processes rarely start on the same one.
    let seed = (std::process::id() as u16).wrapping_mul(31);
    NEXT_ID.fetch_add(1, Ordering::Relaxed).wrapping_add(seed)
}

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT`; the port defaults to 53.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, ClientError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| ClientError::BadNameserver(text.to_string()))
}

/// The nameservers in /etc/resolv.conf.
pub fn system_nameservers() -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") else { return Vec::new() };
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn to_hickory(t: RecordType) -> HRecordType {
    match t {
        RecordType::A => HRecordType::A,
        RecordType::Aaaa => HRecordType::AAAA,
        RecordType::Cname => HRecordType::CNAME,
        RecordType::Mx => HRecordType::MX,
        RecordType::Txt => HRecordType::TXT,
        RecordType::Ptr => HRecordType::PTR,
        RecordType::Ns => HRecordType::NS,
    }
}

impl StubClient {
    /// A client for these nameservers (tried in order), each question sent at most
    /// `attempts` times per nameserver, waiting `timeout` for each.
    pub fn new(nameservers: Vec<SocketAddr>, timeout: Duration, attempts: usize) -> Result<Self, ClientError> {
        if nameservers.is_empty() {
            return Err(ClientError::NoNameservers);
        }
        Ok(StubClient { nameservers, timeout, attempts: attempts.max(1) })
    }

    /// From `--nameserver` texts, or the system's resolvers when none is given.
    pub fn from_args(nameservers: &[String], timeout: Duration, attempts: usize) -> Result<Self, ClientError> {
        let servers = if nameservers.is_empty() {
            system_nameservers()
        } else {
            nameservers.iter().map(|s| parse_nameserver(s)).collect::<Result<Vec<_>, _>>()?
        };
        Self::new(servers, timeout, attempts)
    }

    /// Asks for `rtype` records at `name`, following CNAMEs the server did not chase
    /// itself (an authoritative server answers only for its own zones), at most 8 hops.
    pub async fn lookup(&self, name: &str, rtype: RecordType) -> Answer {
        let mut answer = self.lookup_once(name, rtype).await;
        let mut chain = std::mem::take(&mut answer.cname_chain);
        for _ in 0..8 {
            let pending = matches!(answer.outcome, Outcome::NoData) && !chain.is_empty() && rtype != RecordType::Cname;
            let last_target = chain.last().map(|(_, t)| t.clone());
            let Some(target) = last_target.filter(|_| pending) else { break };
            if chain.iter().filter(|(owner, _)| *owner == target).count() > 0 {
                answer.outcome = Outcome::Failed(Failure::Malformed(format!("CNAME loop at {target}")));
                break;
            }
            answer = self.lookup_once(&target, rtype).await;
            chain.append(&mut answer.cname_chain);
        }
        answer.cname_chain = chain;
        answer
    }

    async fn lookup_once(&self, name: &str, rtype: RecordType) -> Answer {
        let qname = match Name::from_ascii(name) {
            Ok(mut n) => {
                n.set_fqdn(true);
                n
            }
            Err(e) => {
                return Answer {
                    outcome: Outcome::Failed(Failure::Malformed(format!("bad name `{name}`: {e}"))),
                    cname_chain: vec![],
                };
            }
        };
        let mut last = Failure::Timeout;
        for server in &self.nameservers {
            for _ in 0..self.attempts {
                match self.exchange(*server, &qname, to_hickory(rtype)).await {
                    Ok(msg) => match interpret(&msg, rtype) {
                        Ok(answer) => return answer,
                        Err(f @ (Failure::ServFail | Failure::Refused | Failure::Rcode(_))) => {
                            // A definite answer from this server; another server may know better.
                            last = f;
                            break;
                        }
                        Err(f) => last = f,
                    },
                    Err(f) => last = f,
                }
            }
        }
        Answer { outcome: Outcome::Failed(last), cname_chain: vec![] }
    }

    async fn exchange(&self, server: SocketAddr, qname: &Name, qtype: HRecordType) -> Result<Message, Failure> {
        let mut query = Message::new(next_id(), MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(qname.clone(), qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        query.set_edns(edns);
        let bytes = query.to_vec().map_err(|e| Failure::Malformed(e.to_string()))?;
        let id = query.metadata.id;
        let response = tokio::time::timeout(self.timeout, udp_exchange(server, &bytes, id, qname, qtype))
            .await
            .map_err(|_| Failure::Timeout)??;
        if !response.metadata.truncation {
            return Ok(response);
        }
        tokio::time::timeout(self.timeout, tcp_exchange(server, &bytes, id)).await.map_err(|_| Failure::Timeout)?
    }
}

async fn udp_exchange(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    qname: &Name,
    qtype: HRecordType,
) -> Result<Message, Failure> {
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).await.map_err(|e| Failure::Network(e.to_string()))?;
    socket.connect(server).await.map_err(|e| Failure::Network(e.to_string()))?;
    socket.send(bytes).await.map_err(|e| Failure::Network(e.to_string()))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| Failure::Network(e.to_string()))?;
        let Ok(msg) = Message::from_vec(&buf[..n]) else { continue };
        // Ignore stray datagrams that do not answer this question.
        let matches_question = msg.queries.first().is_some_and(|q| q.query_type() == qtype && q.name() == qname);
        if msg.metadata.id == id && msg.metadata.message_type == MessageType::Response && matches_question {
            return Ok(msg);
        }
    }
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, Failure> {
    let net = |e: std::io::Error| Failure::Network(e.to_string());
    let mut stream = TcpStream::connect(server).await.map_err(net)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(net)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(net)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.map_err(net)?;
    let msg = Message::from_vec(&buf).map_err(|e| Failure::Malformed(e.to_string()))?;
    if msg.metadata.id != id {
        return Err(Failure::Malformed("the TCP answer has another query id".into()));
    }
    Ok(msg)
}

/// Turns a response into an outcome. `Err` for responses that are failures.
fn interpret(msg: &Message, rtype: RecordType) -> Result<Answer, Failure> {
    match msg.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        ResponseCode::ServFail => return Err(Failure::ServFail),
        ResponseCode::Refused => return Err(Failure::Refused),
        other => return Err(Failure::Rcode(other.to_string())),
    }
    let wanted = to_hickory(rtype);
    let mut cname_chain = Vec::new();
    let mut records = Vec::new();
    for r in &msg.answers {
        match &r.data {
            RData::CNAME(target) if wanted != HRecordType::CNAME => {
                cname_chain.push((canonical_name(&r.name), canonical_name(&target.0)))
            }
            data if data.record_type() == wanted => records.push(match data {
                RData::A(a) => Rdata::A(a.0),
                RData::AAAA(a) => Rdata::Aaaa(a.0),
                RData::CNAME(n) => Rdata::Name(canonical_name(&n.0)),
                RData::PTR(n) => Rdata::Name(canonical_name(&n.0)),
                RData::NS(n) => Rdata::Name(canonical_name(&n.0)),
                RData::MX(mx) => Rdata::Mx { preference: mx.preference, exchange: canonical_name(&mx.exchange) },
                RData::TXT(txt) => Rdata::Txt(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
                _ => continue,
            }),
            _ => {}
        }
    }
    let outcome = if !records.is_empty() {
        Outcome::Records(records)
    } else if msg.metadata.response_code == ResponseCode::NXDomain {
        Outcome::NxDomain
    } else {
        Outcome::NoData
    };
    Ok(Answer { outcome, cname_chain })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_addresses() {
        assert_eq!(parse_nameserver("127.0.0.1").unwrap(), "127.0.0.1:53".parse().unwrap());
        assert_eq!(parse_nameserver("127.0.0.1:5353").unwrap(), "127.0.0.1:5353".parse().unwrap());
        assert_eq!(parse_nameserver("[::1]:5353").unwrap(), "[::1]:5353".parse().unwrap());
        assert_eq!(parse_nameserver("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_nameserver("dns.example").is_err());
        assert!(StubClient::new(vec![], Duration::from_secs(1), 1).is_err());
    }
}
