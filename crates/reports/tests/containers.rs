//! Containers recognised by content: the corpus e-mails (compressed attachments, RFC 2231
//! names) unpack to reports whose values match the oracles; failure reports are recognised;
//! bombs, deep nesting and junk give clear errors while the rest of a batch goes on.

mod common;

use common::{assert_matches_oracle, corpus};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use ses_dmarc_reports::parse;
use ses_dmarc_reports::unpack::{Content, Item, UnpackLimits, unpack};
use std::io::Write;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

const REPORT: &[u8] = br#"<?xml version="1.0"?><feedback><report_metadata><org_name>T</org_name><report_id>r1</report_id><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>3</count></row><identifiers><header_from>example.com</header_from></identifiers></record></feedback>"#;

#[test]
fn corpus_emails_unpack_and_match_their_oracles() {
    let dir = corpus("aggregate");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let items = unpack(&path.display().to_string(), &data, &UnpackLimits::default());
        let reports: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Ok(item) => match &item.content {
                    Content::Aggregate(xml) => Some(parse(&xml[..]).unwrap_or_else(|e| panic!("{}: {e}", item.origin))),
                    Content::Failure(_) => None,
                },
                Err(e) => panic!("{e}"),
            })
            .collect();
        assert_eq!(reports.len(), 1, "{}: {items:?}", path.display());
        let oracle: Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("expected.json")).unwrap()).unwrap();
        assert_matches_oracle(&reports[0], &oracle, &path.display().to_string());
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn failure_reports_are_recognised() {
    let dir = corpus("failure");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let items = unpack("f", &std::fs::read(&path).unwrap(), &UnpackLimits::default());
        assert!(
            items.iter().any(|i| matches!(i, Ok(item) if matches!(item.content, Content::Failure(_)))),
            "{}: {items:?}",
            path.display()
        );
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn nested_containers_and_mbox() {
    let inner = zip(&[("a.xml.gz", &gzip(REPORT)), ("b.xml", REPORT), ("readme.txt", b"hello")]);
    let items = unpack("batch.zip", &gzip(&inner), &UnpackLimits::default());
    let ok: Vec<&str> = items.iter().filter_map(|i| i.as_ref().ok().map(|x| x.origin.as_str())).collect();
    assert_eq!(ok, vec!["batch.zip!a.xml.gz", "batch.zip!b.xml"]);
    assert!(items.iter().any(|i| i.as_ref().is_err_and(|e| e.origin == "batch.zip!readme.txt")));
    let mail = |id: &str| {
        format!(
            "From: noreply@reporter.example\r\nSubject: Report {id}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n filename*0=\"amazonses.com!example.com!1!2\"; filename*1=\".xml.gz\"\r\n\r\n{}\r\n--b--\r\n",
            base64_lines(&gzip(REPORT))
        )
    };
    let mbox =
        format!("From a@b Mon Jan  1 00:00:00 2026\n{}\nFrom a@b Mon Jan  1 00:00:00 2026\n{}\n", mail("1"), mail("2"));
    let items = unpack("box", mbox.as_bytes(), &UnpackLimits::default());
    let ok: Vec<String> = items.iter().filter_map(|i| i.as_ref().ok().map(|x| x.origin.clone())).collect();
    assert_eq!(
        ok,
        vec!["box#1/amazonses.com!example.com!1!2.xml.gz", "box#2/amazonses.com!example.com!1!2.xml.gz"],
        "{items:?}"
    );
}

fn base64_lines(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            s.push(if i <= chunk.len() { A[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    s.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
}

#[test]
fn bombs_depth_and_junk_are_refused_and_the_batch_goes_on() {
    let small = UnpackLimits { max_size: 8 * 1024 * 1024, ..UnpackLimits::default() };
    let zeros = vec![0u8; 20 * 1024 * 1024];
    let gz_bomb = gzip(&zeros);
    // Past the size limit without being a bomb: hex-like text of 20 MB.
    let text: Vec<u8> =
        (0..20 * 1024 * 1024u32).map(|i| b"0123456789abcdef"[(i.wrapping_mul(2654435761) >> 28) as usize]).collect();
    let items = unpack("big.gz", &gzip(&text), &small);
    assert!(items[0].as_ref().unwrap_err().message.contains("more than 8 MB"), "{items:?}");
    // A bomb is caught at its first megabyte, whatever the size limit.
    let items = unpack("bomb.gz", &gz_bomb, &small);
    assert!(items[0].as_ref().unwrap_err().message.contains("decompression bomb"), "{items:?}");
    let ratio = unpack("ratio.gz", &gz_bomb, &UnpackLimits::default());
    assert!(ratio[0].as_ref().unwrap_err().message.contains("decompression bomb"), "{ratio:?}");
    let zip_bomb = zip(&[("bomb.xml", &zeros), ("good.xml", REPORT)]);
    let items = unpack("z.zip", &zip_bomb, &small);
    assert!(items.iter().any(|i| i.is_err()));
    assert!(
        items.iter().any(|i| i.as_ref().is_ok_and(|x| x.origin == "z.zip!good.xml")),
        "the rest of the batch goes on"
    );
    let mut nested = REPORT.to_vec();
    for _ in 0..12 {
        nested = gzip(&nested);
    }
    assert!(
        unpack("deep", &nested, &UnpackLimits::default())[0].as_ref().unwrap_err().message.contains("nested deeper")
    );
    let junk: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    assert!(unpack("junk", &junk, &UnpackLimits::default())[0].is_err());
    assert!(unpack("corrupt.gz", &gz_bomb[..200], &UnpackLimits::default())[0].is_err());
    assert!(unpack("x.zip", b"PK\x03\x04garbage", &UnpackLimits::default())[0].is_err());
    assert!(
        unpack("html", b"<html></html>", &UnpackLimits::default())[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("not a DMARC")
    );
}

#[test]
fn failure_reports_match_their_oracles() {
    use ses_dmarc_reports::failure::parse_failure;
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for entry in std::fs::read_dir(corpus("failure")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let name = path.display().to_string();
        let r = parse_failure(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let o: Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("expected.json")).unwrap()).unwrap();
        let s = |k: &str| o[k].as_str().map(str::to_string);
        let flat = |x: &str| x.to_ascii_lowercase().replace(['-', '_'], "");
        assert_eq!(flat(&r.feedback_type), flat(o["feedback_type"].as_str().unwrap()), "{name}");
        assert_eq!(r.arrival_date, o["arrival_date"].as_i64(), "{name}");
        assert_eq!(r.source_ip, s("source_ip"), "{name}");
        assert_eq!(r.original_mail_from, s("original_mail_from"), "{name}");
        assert_eq!(r.original_rcpt_to, s("original_rcpt_to"), "{name}");
        assert_eq!(r.original_envelope_id, s("original_envelope_id"), "{name}");
        assert_eq!(r.user_agent, s("user_agent"), "{name}");
        assert_eq!(r.dkim_domain, s("dkim_domain"), "{name}");
        assert_eq!(r.dkim_selector, s("dkim_selector"), "{name}");
        let domains: Vec<String> =
            o["reported_domain"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(r.reported_domain, domains, "{name}");
        let uris: Vec<String> =
            o["reported_uri"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(r.reported_uri, uris, "{name}");
        let ar: Vec<String> =
            o["authentication_results"].as_array().unwrap().iter().map(|v| norm(v.as_str().unwrap())).collect();
        assert_eq!(r.authentication_results.iter().map(|a| norm(a)).collect::<Vec<_>>(), ar, "{name}");
        if o["auth_failure"] != "Unspecified" {
            assert_eq!(
                flat(r.auth_failure.as_deref().unwrap_or_default()),
                flat(o["auth_failure"].as_str().unwrap()),
                "{name}"
            );
        }
        if o["headers"].is_string() {
            assert!(r.headers.as_deref().is_some_and(|h| h.contains(':')), "{name}");
        }
    }
    assert!(parse_failure(b"From: a@b\r\n\r\nhello").is_err());
    assert!(parse_failure(b"").is_err());
}

#[test]
fn limits_hold_for_the_whole_input_and_members_come_one_at_a_time() {
    use ses_dmarc_reports::unpack::unpack_each;
    // 1,000 directory entries pointing at one member: read once.
    let repeated = ses_dmarc_testkit::zip_with_repeated_entry("r.xml", REPORT, 1000);
    let items = unpack("rep.zip", &repeated, &UnpackLimits::default());
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 1, "one member, read once");
    // Twenty members of 1 MB each against a 4 MB budget for the whole input: the first
    // four are read, the rest refused, and never more than one member is held.
    let member: Vec<u8> = REPORT.iter().copied().chain(std::iter::repeat_n(b' ', 1024 * 1024)).collect();
    let names: Vec<String> = (0..20).map(|i| format!("m{i}.xml")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), member.as_slice())).collect();
    let many = zip(&members);
    let tight = UnpackLimits { max_size: 4 * 1024 * 1024 + 4096, max_ratio: 100_000, ..UnpackLimits::default() };
    let (mut ok, mut refused) = (0, 0);
    unpack_each("many.zip", &many, &tight, &mut |item| match item {
        Ok(_) => ok += 1,
        Err(e) => {
            assert!(e.message.contains("more than 4 MB"), "{e}");
            refused += 1;
        }
    });
    assert_eq!((ok, refused), (4, 16));
    // The ratio is checked while inflating: a bomb is refused whatever the size limit.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = gzip(&zeros);
    let huge = UnpackLimits { max_size: 1 << 40, ..UnpackLimits::default() };
    let e = unpack("bomb.gz", &bomb, &huge).remove(0).unwrap_err();
    assert!(e.message.contains("decompression bomb"), "{e}");
}

#[test]
fn gzip_with_trailing_line_ends_and_several_members_is_read() {
    let mut padded = gzip(REPORT);
    padded.extend_from_slice(b"\r\n");
    let items = unpack("pad.xml.gz", &padded, &UnpackLimits::default());
    assert!(matches!(&items[..], [Ok(Item { content: Content::Aggregate(_), .. })]), "{items:?}");
    let mut junk = gzip(REPORT);
    junk.extend_from_slice(b"garbage!");
    let e = unpack("junk.gz", &junk, &UnpackLimits::default()).remove(0).unwrap_err();
    assert!(e.message.contains("after the end of the gzip data"), "{e}");
    // Two members of one document are one stream (RFC 1952).
    let (a, b) = REPORT.split_at(100);
    let two = [gzip(a), gzip(b)].concat();
    let items = unpack("two.gz", &two, &UnpackLimits::default());
    let Ok(Item { content: Content::Aggregate(xml), .. }) = &items[0] else { panic!("{items:?}") };
    assert_eq!(xml.as_slice(), REPORT);
}

#[test]
fn a_mime_message_without_its_closing_boundary_keeps_its_attachment() {
    let mail = format!(
        "From: r@reporter.test\r\nTo: d@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nA report.\r\n--XYZ\r\nContent-Type: application/gzip; name=r.xml.gz\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=r.xml.gz\r\n\r\n{}\r\n",
        base64_lines(&gzip(REPORT))
    );
    let items = unpack("open.eml", mail.as_bytes(), &UnpackLimits::default());
    assert!(items.iter().any(|i| matches!(i, Ok(Item { content: Content::Aggregate(_), .. }))), "{items:?}");
    // Found by fuzzing: invalid UTF-8 in the head before `boundary=` (its lossy text is
    // longer than the bytes) made the boundary be looked for past the end of the message.
    let mut bad = mail.into_bytes();
    let at = bad.windows(13).position(|w| w == b"Content-Type:").unwrap();
    bad.splice(at..at, [b"X-Junk: ".as_slice(), &[0xff; 300], b"\r\n"].concat());
    let items = unpack("bad-head.eml", &bad, &UnpackLimits::default());
    assert!(items.iter().any(|i| matches!(i, Ok(Item { content: Content::Aggregate(_), .. }))), "{items:?}");
}

#[test]
fn failure_reports_that_are_not_well_formed_arf_are_read() {
    use ses_dmarc_reports::failure::parse_failure;
    let original = "From: ceo@example.com\r\nTo: victim@receiver.test\r\nSubject: Pay this\r\nMessage-ID: <x@evil.test>\r\n\r\nbody\r\n";
    // The feedback fields in an attachment with a generic name and type (ATT00001).
    let att = format!(
        "From: postmaster@receiver.test\r\nTo: ruf@example.com\r\nSubject: DMARC failure\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nA message failed.\r\n--b\r\nContent-Type: application/octet-stream; name=\"ATT00001\"\r\nContent-Disposition: attachment; filename=\"ATT00001\"\r\n\r\nFeedback-Type: auth-failure\r\nUser-Agent: Receiver/1.0\r\nVersion: 1\r\nSource-IP: 198.51.100.7\r\nReported-Domain: example.com\r\nAuth-Failure: dmarc\r\nAuthentication-Results: receiver.test; dmarc=fail header.from=example.com\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=\"ATT00002\"\r\nContent-Disposition: attachment; filename=\"ATT00002\"\r\n\r\n{original}\r\n--b--\r\n"
    );
    // A plain-text notice with no feedback part at all.
    let notice = format!(
        "From: dmarc@mta.test\r\nTo: ruf@example.com\r\nSubject: DMARC failure report\r\nContent-Type: text/plain\r\n\r\nA message claiming to be from you has failed the published DMARC policy for your domain.\r\n\r\n  Sender Domain: example.com\r\n  Sender IP Address: 203.0.113.45\r\n  Received Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n  SPF Alignment: no\r\n  DKIM Alignment: no\r\n  DMARC Results: Reject\r\n\r\n{original}"
    );
    for (name, mail, ip) in [("att.eml", att, "198.51.100.7"), ("notice.eml", notice, "203.0.113.45")] {
        let items = unpack(name, mail.as_bytes(), &UnpackLimits::default());
        let Some(Ok(Item { content: Content::Failure(raw), .. })) = items.first() else { panic!("{name}: {items:?}") };
        let r = parse_failure(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.feedback_type, "auth-failure", "{name}");
        assert_eq!(r.source_ip.as_deref(), Some(ip), "{name}");
        assert_eq!(r.reported_domain, ["example.com"], "{name}");
        assert_eq!(r.auth_failure.as_deref(), Some("dmarc"), "{name}");
        if name == "att.eml" {
            assert!(r.headers.as_deref().is_some_and(|h| h.contains("Subject: Pay this")), "{name}: {:?}", r.headers);
        }
    }
}
