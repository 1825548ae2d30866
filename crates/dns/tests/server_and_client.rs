//! The stub client against the in-process server, over real UDP and TCP on loopback.

use ses_dmarc_dns::testing::{Fault, TestServer, with_soa};
use ses_dmarc_dns::{Failure, Outcome, Rdata, RecordType, StubClient};
use std::time::{Duration, Instant};

const ZONE: &str = r#"
@ 300 IN MX 10 mx.example.com.
@ 300 IN TXT "v=spf1 include:amazonses.com ~all"
long 300 IN TXT "first string " "second string"
alias 300 IN CNAME target.example.com.
target 300 IN TXT "behind the alias"
a 300 IN A 192.0.2.1
"#;

fn setup() -> (TestServer, StubClient, tokio::runtime::Runtime) {
    let server = TestServer::start(&[("example.com.", &with_soa(ZONE))]).unwrap();
    let client = StubClient::new(vec![server.addr()], Duration::from_millis(500), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    (server, client, rt)
}

#[test]
fn outcomes_are_distinguished() {
    let (server, client, rt) = setup();
    rt.block_on(async {
        let mx = client.lookup("example.com", RecordType::Mx).await;
        assert_eq!(mx.outcome, Outcome::Records(vec![Rdata::Mx { preference: 10, exchange: "mx.example.com".into() }]));
        let txt = client.lookup("long.example.com", RecordType::Txt).await;
        assert_eq!(txt.records()[0].txt_text().unwrap(), "first string second string");
        assert_eq!(client.lookup("a.example.com", RecordType::Txt).await.outcome, Outcome::NoData);
        assert_eq!(client.lookup("nope.example.com", RecordType::Txt).await.outcome, Outcome::NxDomain);
        assert_eq!(client.lookup("elsewhere.test", RecordType::Txt).await.outcome, Outcome::NxDomain);
        let cname = client.lookup("alias.example.com", RecordType::Cname).await;
        assert_eq!(cname.outcome, Outcome::Records(vec![Rdata::Name("target.example.com".into())]));

        server.set_fault("example.com", Fault::ServFail);
        assert_eq!(client.lookup("example.com", RecordType::Mx).await.outcome, Outcome::Failed(Failure::ServFail));
        server.set_fault("example.com", Fault::Refused);
        assert_eq!(client.lookup("example.com", RecordType::Mx).await.outcome, Outcome::Failed(Failure::Refused));
        server.set_fault("example.com", Fault::Drop);
        assert_eq!(client.lookup("example.com", RecordType::Mx).await.outcome, Outcome::Failed(Failure::Timeout));
        server.set_fault("example.com", Fault::Truncate);
        let over_tcp = client.lookup("example.com", RecordType::Txt).await;
        assert_eq!(over_tcp.records()[0].txt_text().unwrap(), "v=spf1 include:amazonses.com ~all");
        server.clear_faults();
        server.set_delay(Some(Duration::from_millis(100)));
        let start = Instant::now();
        assert!(matches!(client.lookup("example.com", RecordType::Mx).await.outcome, Outcome::Records(_)));
        assert!(start.elapsed() >= Duration::from_millis(100));
    });
    assert!(server.query_count() >= 12);
}

#[test]
fn bad_zone_is_a_clear_error() {
    let err = TestServer::start(&[("example.com.", "@ 300 IN MX not-a-number mx.example.com.")]).err().unwrap();
    assert!(err.to_string().contains("example.com"), "{err}");
}

/// A "nameserver" that answers every datagram with junk, or with a truncated header, or
/// with the right id but another question: the client times out or says malformed, and
/// never panics.
#[test]
fn garbage_answers_are_failures() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0u8;
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            n = n.wrapping_add(1);
            let reply: Vec<u8> = match n % 3 {
                0 => vec![0xde, 0xad],
                1 => {
                    let mut r = buf[..len].to_vec();
                    r[2] |= 0x80; // a response with the same id, then random bytes as records
                    r[7] = 5;
                    r.extend_from_slice(&[0xff; 40]);
                    r
                }
                _ => {
                    let mut r = buf[..12].to_vec();
                    r[2] |= 0x80;
                    r
                }
            };
            let _ = socket.send_to(&reply, from);
        }
    });
    let client = StubClient::new(vec![addr], Duration::from_millis(300), 2).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for _ in 0..6 {
            let a = client.lookup("example.com", RecordType::Txt).await;
            assert!(matches!(a.outcome, Outcome::Failed(Failure::Malformed(_) | Failure::Timeout)), "{a:?}");
        }
    });
}

#[test]
fn an_endless_cname_chain_is_a_failure_not_an_absence() {
    let mut zone = String::new();
    for i in 0..20 {
        zone.push_str(&format!("c{i} 300 IN CNAME c{}.example.com.\n", i + 1));
    }
    zone.push_str("c20 300 IN TXT \"the end\"\n");
    let server = TestServer::start(&[("example.com.", &with_soa(&zone))]).unwrap();
    let client = StubClient::new(vec![server.addr()], Duration::from_millis(500), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let a = client.lookup("c0.example.com", RecordType::Txt).await;
        assert!(matches!(&a.outcome, Outcome::Failed(Failure::Malformed(m)) if m.contains("CNAME chain")), "{a:?}");
        // A chain within the limit is followed.
        let b = client.lookup("c14.example.com", RecordType::Txt).await;
        assert_eq!(b.records()[0].txt_text().unwrap(), "the end");
    });
}

/// A nameserver that adds a record for another name to its answer (a `+all` SPF for a
/// name nobody asked about): that record is not the answer.
#[test]
fn records_for_names_not_asked_are_ignored() {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{Name, RData, Record, rdata::TXT};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
            let mut reply = query.clone();
            reply.metadata.message_type = MessageType::Response;
            let other = Name::from_ascii("other.test.").unwrap();
            reply.add_answer(Record::from_rdata(other, 300, RData::TXT(TXT::new(vec!["v=spf1 +all".into()]))));
            let _ = socket.send_to(&reply.to_vec().unwrap(), from);
        }
    });
    let client = StubClient::new(vec![addr], Duration::from_millis(500), 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let a = rt.block_on(client.lookup("victim.test", RecordType::Txt));
    assert_eq!(a.outcome, Outcome::NoData, "{a:?}");
}
