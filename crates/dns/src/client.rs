//! A stub DNS client: one question to the configured nameservers, UDP first, TCP when the
//! answer is truncated; timeouts and retries under the caller's control; no cache.

use crate::window::{MAX_WINDOW, MIN_WINDOW, Window};
use crate::{Answer, Failure, Outcome, Rdata, RecordType, canonical_name};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType as HRecordType};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

/// Why a [`StubClient`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No nameserver given and none in `/etc/resolv.conf`.
    #[error("no nameserver configured (none given, and none found in /etc/resolv.conf)")]
    NoNameservers,
    /// A nameserver that is not `IP` or `IP:PORT`; holds the text.
    #[error("`{0}` is not a nameserver address: write an IP address, optionally with :PORT (e.g. 127.0.0.1:5353)")]
    BadNameserver(String),
}

/// A stub resolver: asks the given nameservers directly, UDP first and TCP when the answer
/// is truncated, with no cache.
#[derive(Debug, Clone)]
pub struct StubClient {
    nameservers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: usize,
    sockets: Arc<SocketPool>,
    window: Arc<Window>,
}

/// CNAMEs followed for one question at most (8 hops, as resolvers commonly allow).
const MAX_CNAME_CHAIN: usize = 8;

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

fn next_id() -> u16 {
    // Spread IDs so two processes rarely start on the same one.
    let seed = (std::process::id() as u16).wrapping_mul(31);
    NEXT_ID.fetch_add(1, Ordering::Relaxed).wrapping_add(seed)
}

/// UDP sockets shared by all queries, each with a receive task that hands every answer
/// to the query waiting for its (server, id). A socket per query would cost a bind and a
/// close each time, which dominates bulk checks.
#[derive(Debug, Default)]
struct SocketPool {
    v4: std::sync::Mutex<Option<Arc<SharedSockets>>>,
    v6: std::sync::Mutex<Option<Arc<SharedSockets>>>,
}

const SOCKETS_PER_FAMILY: usize = 4;

/// The receive (and send) buffer asked for on each pooled socket: room for thousands of
/// answers arriving while the runtime is busy elsewhere, so that a burst is queued rather
/// than dropped (a drop costs a whole timeout). The kernel caps it at
/// `net.core.rmem_max` / `wmem_max`.
pub(crate) const UDP_BUFFER_BYTES: usize = 4 << 20;

/// Query ids are unique among a pool's waiters, so the id alone keys them: no need for
/// SipHash over (address, id) on every query and every answer.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the 16 bits over the high bits hashbrown uses for its control bytes.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n);
    }
}

/// The query waiting for each id: the server it asked, and where its answer goes.
type Waiters = std::sync::Mutex<HashMap<u16, (SocketAddr, oneshot::Sender<Vec<u8>>), BuildHasherDefault<IdHasher>>>;

#[derive(Debug)]
struct SharedSockets {
    sockets: Vec<Arc<UdpSocket>>,
    waiters: Arc<Waiters>,
    /// Cleared when a receive task ends (its runtime shut down): the pool is then rebuilt.
    alive: Arc<AtomicBool>,
    next: AtomicU16,
}

struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl SharedSockets {
    async fn bind(v6: bool) -> std::io::Result<Arc<Self>> {
        let waiters: Arc<Waiters> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let mut sockets = Vec::new();
        for _ in 0..SOCKETS_PER_FAMILY {
            let socket = Arc::new(bind_udp(v6).await?);
            let (sock, w, guard) = (socket.clone(), waiters.clone(), AliveGuard(alive.clone()));
            tokio::spawn(async move {
                let _guard = guard;
                let mut buf = vec![0u8; 65535];
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
                    if n < 12 {
                        continue;
                    }
                    let id = u16::from_be_bytes([buf[0], buf[1]]);
                    let waiter = {
                        let mut waiters = w.lock().unwrap_or_else(|e| e.into_inner());
                        // Only the server that was asked may answer.
                        match waiters.get(&id) {
                            Some((server, _)) if *server == from => waiters.remove(&id),
                            _ => None,
                        }
                    };
                    if let Some((_, tx)) = waiter {
                        let _ = tx.send(buf[..n].to_vec());
                    }
                }
            });
            sockets.push(socket);
        }
        Ok(Arc::new(SharedSockets { sockets, waiters, alive, next: AtomicU16::new(next_id()) }))
    }
}

/// A UDP socket on the wildcard address with [`UDP_BUFFER_BYTES`] of buffers asked for
/// (what the kernel grants is what it grants: a smaller buffer is no error).
pub(crate) async fn bind_udp(v6: bool) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr = if v6 { ([0u16; 8], 0).into() } else { ([0, 0, 0, 0], 0).into() };
    let socket = UdpSocket::bind(bind).await?;
    let sock = socket2::SockRef::from(&socket);
    let _ = sock.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(UDP_BUFFER_BYTES);
    Ok(socket)
}

impl SocketPool {
    async fn get(&self, v6: bool) -> Result<Arc<SharedSockets>, Failure> {
        let slot = if v6 { &self.v6 } else { &self.v4 };
        if let Some(s) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && s.alive.load(Ordering::Relaxed)
        {
            return Ok(s.clone());
        }
        let fresh = SharedSockets::bind(v6).await.map_err(|e| Failure::Network(e.to_string()))?;
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(s) if s.alive.load(Ordering::Relaxed) => Ok(s.clone()),
            _ => {
                *guard = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }
}

/// Removes a waiter when its query gives up (timeout), so its id can be reused.
struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    id: u16,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
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
        Ok(StubClient {
            nameservers,
            timeout,
            attempts: attempts.max(1),
            sockets: Arc::default(),
            window: Arc::new(Window::new(MIN_WINDOW, MAX_WINDOW)),
        })
    }

    /// How many UDP exchanges this client (and its clones) lets be in flight at once right
    /// now: the maximum until answers go missing at a rate that looks like congestion,
    /// then less (see the `window` module); it grows back while answers come.
    pub fn in_flight_window(&self) -> usize {
        self.window.size()
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
        for _ in 0..MAX_CNAME_CHAIN {
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
        let still_pending =
            matches!(answer.outcome, Outcome::NoData) && !chain.is_empty() && rtype != RecordType::Cname;
        if (still_pending || chain.len() > MAX_CNAME_CHAIN) && !answer.is_failure() {
            // An endless chain is a failure to answer, never "no such record".
            answer.outcome = Outcome::Failed(Failure::Malformed(format!(
                "a CNAME chain of more than {MAX_CNAME_CHAIN} names from {name}: no answer"
            )));
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
        let shared = self.sockets.get(server.is_ipv6()).await?;
        let permit = self.window.acquire().await;
        let (id, rx, guard) = {
            let mut waiters = shared.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if waiters.len() >= usize::from(u16::MAX) {
                return Err(Failure::Network("every query id is in use".into()));
            }
            let mut id = shared.next.fetch_add(1, Ordering::Relaxed);
            while waiters.contains_key(&id) {
                id = shared.next.fetch_add(1, Ordering::Relaxed);
            }
            let (tx, rx) = oneshot::channel();
            waiters.insert(id, (server, tx));
            (id, rx, WaiterGuard { waiters: &shared.waiters, id })
        };
        query.metadata.id = id;
        let bytes = query.to_vec().map_err(|e| Failure::Malformed(e.to_string()))?;
        let socket = &shared.sockets[id as usize % shared.sockets.len()];
        socket.send_to(&bytes, server).await.map_err(|e| Failure::Network(e.to_string()))?;
        let raw = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(raw)) => {
                permit.answered();
                raw
            }
            Ok(Err(_)) => return Err(Failure::Timeout),
            Err(_) => {
                permit.lost();
                return Err(Failure::Timeout);
            }
        };
        drop(guard);
        let response = Message::from_vec(&raw).map_err(|e| Failure::Malformed(e.to_string()))?;
        let answers_question = response.queries.first().is_some_and(|q| q.query_type() == qtype && q.name() == qname);
        if response.metadata.message_type != MessageType::Response || !answers_question {
            return Err(Failure::Malformed("the answer does not match the question".into()));
        }
        if !response.metadata.truncation {
            return Ok(response);
        }
        tokio::time::timeout(self.timeout, tcp_exchange(server, &bytes, id)).await.map_err(|_| Failure::Timeout)?
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
    // Only records owned by the question's name, or by the names its CNAMEs lead to, are
    // the answer; anything else in the section is ignored, as a resolver ignores it.
    let mut owner = msg.queries.first().map(|q| canonical_name(q.name())).unwrap_or_default();
    let mut cname_chain: Vec<(String, String)> = Vec::new();
    if wanted != HRecordType::CNAME {
        while let Some(target) = msg.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(t) if canonical_name(&r.name) == owner => Some(canonical_name(&t.0)),
            _ => None,
        }) {
            if cname_chain.iter().any(|(o, _)| *o == target) || target == owner {
                return Err(Failure::Malformed(format!("CNAME loop at {target}")));
            }
            if cname_chain.len() >= MAX_CNAME_CHAIN {
                return Err(Failure::Malformed(format!(
                    "a CNAME chain of more than {MAX_CNAME_CHAIN} names: no answer"
                )));
            }
            cname_chain.push((owner.clone(), target.clone()));
            owner = target;
        }
    }
    let mut records = Vec::new();
    for r in &msg.answers {
        if canonical_name(&r.name) != owner {
            continue;
        }
        match &r.data {
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

    /// The pooled sockets ask for a receive buffer of UDP_BUFFER_BYTES: the kernel grants
    /// it up to net.core.rmem_max (and reports twice what it grants, for its overhead).
    #[test]
    fn pooled_sockets_get_large_receive_buffers() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let socket = rt.block_on(bind_udp(false)).unwrap();
        let got = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<usize>().ok());
        if let (Some(max), Some(default)) =
            (read("/proc/sys/net/core/rmem_max"), read("/proc/sys/net/core/rmem_default"))
        {
            assert!(got >= UDP_BUFFER_BYTES.min(max), "{got} < min({UDP_BUFFER_BYTES}, {max})");
            assert!(got >= default, "{got} < default {default}");
        }
    }
}
