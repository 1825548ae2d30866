//! The stub client's in-flight window against a "resolver" on loopback that can hold only
//! so many queries at once and drops the rest (a full socket buffer): the client backs off
//! instead of losing a whole timeout on most of its queries, and grows the window back once
//! the drops stop.

use futures::future::join_all;
use ses_dmarc_dns::{Limited, Outcome, RecordType, Resolver, StubClient};
use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Answers every query (NOERROR, no records) 2 ms after it arrives, holding at most
/// `capacity` unanswered queries while `lossy` is set; queries beyond that are dropped.
struct LossyServer {
    addr: std::net::SocketAddr,
    lossy: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

/// Queries waiting to be answered: when, what, to whom.
type Pending = Arc<(Mutex<VecDeque<(Instant, Vec<u8>, std::net::SocketAddr)>>, Condvar)>;

fn start_lossy_server(capacity: usize) -> LossyServer {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let answerer = socket.try_clone().unwrap();
    let lossy = Arc::new(AtomicBool::new(true));
    let dropped = Arc::new(AtomicUsize::new(0));
    let queue: Pending = Arc::default();
    let (q, l, d) = (queue.clone(), lossy.clone(), dropped.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let (lock, ready) = &*q;
            let mut pending = lock.lock().unwrap();
            if l.load(Ordering::Relaxed) && pending.len() >= capacity {
                d.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR: a response, same id, same question
            reply[3] |= 0x80; // RA
            pending.push_back((Instant::now() + Duration::from_millis(2), reply, from));
            ready.notify_one();
        }
    });
    std::thread::spawn(move || {
        let (lock, ready) = &*queue;
        loop {
            let next = {
                let mut pending = lock.lock().unwrap();
                while pending.is_empty() {
                    pending = ready.wait(pending).unwrap();
                }
                pending.front().map(|(at, _, _)| *at)
            };
            if let Some(at) = next {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            let item = lock.lock().unwrap().pop_front();
            if let Some((_, reply, to)) = item {
                let _ = answerer.send_to(&reply, to);
            }
        }
    });
    LossyServer { addr, lossy, dropped }
}

async fn lookups(resolver: &Limited<StubClient>, round: usize, n: usize) -> usize {
    let names: Vec<String> = (0..n).map(|i| format!("q{round}-{i}.example.com")).collect();
    let answers = join_all(names.iter().map(|name| resolver.lookup(name, RecordType::Txt))).await;
    answers.iter().filter(|a| a.outcome == Outcome::NoData).count()
}

#[test]
fn backs_off_on_loss_and_grows_back() {
    let server = start_lossy_server(24);
    let client = StubClient::new(vec![server.addr], Duration::from_millis(150), 4).unwrap();
    let resolver = Limited::new(client.clone(), 256);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let start = client.in_flight_window();
    assert!(start >= 256, "{start}");
    rt.block_on(async {
        // 256 at once into room for 24: most are dropped at first, and the window shrinks
        // until what is sent fits; every lookup is answered in the end (4 attempts).
        let answered = lookups(&resolver, 0, 3000).await;
        let backed_off = client.in_flight_window();
        let dropped = server.dropped.load(Ordering::Relaxed);
        eprintln!("lossy: {answered}/3000 answered, {dropped} datagrams dropped, window {start} -> {backed_off}");
        assert!(dropped > 0);
        assert!(backed_off <= 64, "window still {backed_off}");
        assert_eq!(answered, 3000, "{dropped} dropped");
        // Fewer datagrams lost than sent at the full 256 (where 9 in 10 of each burst go).
        assert!(dropped < 3000, "{dropped} dropped");

        // The drops stop: the window grows back while it is full and answered.
        server.lossy.store(false, Ordering::Relaxed);
        let answered = lookups(&resolver, 1, 6000).await;
        let grown = client.in_flight_window();
        eprintln!("clean: {answered}/6000 answered, window {backed_off} -> {grown}");
        assert_eq!(answered, 6000);
        assert!(grown > backed_off, "{backed_off} -> {grown}");
    });
}
