//! An in-process authoritative DNS server on loopback (UDP and TCP on one port) for tests
//! and benchmarks: serves zone files, and injects faults per name.

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What the server does with a query for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer SERVFAIL.
    ServFail,
    /// Answer REFUSED.
    Refused,
    /// Never answer (the client times out).
    Drop,
    /// Over UDP, answer with the TC bit and no records; TCP answers normally.
    Truncate,
    /// Answer normally after a delay.
    Delay(Duration),
}

/// Why the test server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// A zone file that does not parse.
    #[error("zone {origin}: {message}")]
    Zone {
        /// The zone's origin.
        origin: String,
        /// What the zone file parser said.
        message: String,
    },
    /// The loopback port cannot be bound.
    #[error("cannot bind the test server: {0}")]
    Bind(#[from] std::io::Error),
}

#[derive(Default)]
struct Faults {
    by_name: HashMap<LowerName, Fault>,
    every_answer_delay: Option<Duration>,
}

struct FaultyCatalog {
    catalog: Catalog,
    faults: Arc<RwLock<Faults>>,
    queries: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl RequestHandler for FaultyCatalog {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let (fault, delay) = {
            let faults = self.faults.read().unwrap_or_else(|e| e.into_inner());
            let fault = request.request_info().ok().and_then(|info| faults.by_name.get(info.query.name()).copied());
            (fault, faults.every_answer_delay)
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let code = match fault {
            None => return self.catalog.handle_request::<R, T>(request, response_handle).await,
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                return self.catalog.handle_request::<R, T>(request, response_handle).await;
            }
            Some(Fault::Truncate) if request.protocol() != hickory_server::net::xfer::Protocol::Udp => {
                return self.catalog.handle_request::<R, T>(request, response_handle).await;
            }
            Some(Fault::Drop) => {
                let metadata = Metadata::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
                return ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() });
            }
            Some(Fault::ServFail) => ResponseCode::ServFail,
            Some(Fault::Refused) => ResponseCode::Refused,
            Some(Fault::Truncate) => ResponseCode::NoError,
        };
        let mut response = MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, code);
        if fault == Some(Fault::Truncate) {
            response.metadata_mut().truncation = true;
        }
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}

/// A running server. Dropping it stops it.
pub struct TestServer {
    addr: SocketAddr,
    faults: Arc<RwLock<Faults>>,
    queries: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

const SOA_NS: &str = "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n";

/// A zone file's text with an SOA and NS record prepended, for zones given as bare records.
pub fn with_soa(records: &str) -> String {
    format!("{SOA_NS}{records}")
}

impl TestServer {
    /// Starts a server for these zones (origin, zone-file text) on 127.0.0.1 with its own
    /// runtime thread. Each zone needs an SOA (see [`with_soa`]). An empty root zone is
    /// added, so names outside the zones get NXDOMAIN rather than REFUSED.
    pub fn start(zones: &[(&str, &str)]) -> Result<TestServer, TestServerError> {
        Self::start_on_port(zones, 0)
    }

    /// Serves every `NAME.zone` file in `dir` as the zone NAME (any free port, or `port`).
    pub fn start_zone_dir(dir: &std::path::Path, port: u16) -> Result<TestServer, TestServerError> {
        let mut zones = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".zone")) else {
                continue;
            };
            zones.push((format!("{name}."), std::fs::read_to_string(&path)?));
        }
        let refs: Vec<(&str, &str)> = zones.iter().map(|(o, t)| (o.as_str(), t.as_str())).collect();
        Self::start_on_port(&refs, port)
    }

    /// As [`TestServer::start`], on a given port (0: any free port).
    pub fn start_on_port(zones: &[(&str, &str)], port: u16) -> Result<TestServer, TestServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let mut catalog = Catalog::new();
        let mut have_root = false;
        for (origin, text) in zones {
            let zone_err = |message: String| TestServerError::Zone { origin: origin.to_string(), message };
            let origin_name = Name::from_ascii(origin).map_err(|e| zone_err(e.to_string()))?;
            have_root |= origin_name.is_root();
            let (name, records) =
                Parser::new(*text, None, Some(origin_name.clone())).parse().map_err(|e| zone_err(e.to_string()))?;
            let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
                name.clone(),
                records,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .map_err(zone_err)?;
            catalog.upsert(name.into(), vec![Arc::new(handler)]);
        }
        if !have_root {
            let (name, records) = Parser::new(SOA_NS, None, Some(Name::root()))
                .parse()
                .map_err(|e| TestServerError::Zone { origin: ".".into(), message: e.to_string() })?;
            let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
                name.clone(),
                records,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .map_err(|message| TestServerError::Zone { origin: ".".into(), message })?;
            catalog.upsert(name.into(), vec![Arc::new(handler)]);
        }
        let faults = Arc::new(RwLock::new(Faults::default()));
        let queries = Arc::new(AtomicUsize::new(0));
        let handler = FaultyCatalog { catalog, faults: faults.clone(), queries: queries.clone() };
        let addr = runtime.block_on(async {
            let (udp, tcp, addr) = bind_pair(port).await?;
            let mut server = Server::new(handler);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(10), 65535);
            tokio::spawn(async move {
                let _ = server.block_until_done().await;
            });
            Ok::<_, std::io::Error>(addr)
        })?;
        Ok(TestServer { addr, faults, queries, runtime: Some(runtime) })
    }

    /// The server's address (UDP and TCP on the same port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects a fault for every query for `name` (any type).
    pub fn set_fault(&self, name: &str, fault: Fault) {
        if let Ok(mut n) = Name::from_ascii(name) {
            n.set_fqdn(true);
            let mut f = self.faults.write().unwrap_or_else(|e| e.into_inner());
            f.by_name.insert(LowerName::from(n.to_lowercase()), fault);
        }
    }

    /// Removes every injected fault and delay.
    pub fn clear_faults(&self) {
        let mut f = self.faults.write().unwrap_or_else(|e| e.into_inner());
        f.by_name.clear();
        f.every_answer_delay = None;
    }

    /// Delays every answer.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.faults.write().unwrap_or_else(|e| e.into_inner()).every_answer_delay = delay;
    }

    /// Queries received so far.
    pub fn query_count(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A UDP socket and a TCP listener on the same loopback port. With port 0 the UDP port is
/// chosen by the system, and its TCP twin may be taken by another program: then another
/// port is tried.
async fn bind_pair(port: u16) -> std::io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener, SocketAddr)> {
    let mut tries = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await?;
        let addr = udp.local_addr()?;
        match tokio::net::TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(e) if port == 0 && e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}
