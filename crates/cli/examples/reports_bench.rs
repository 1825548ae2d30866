//! The reports benchmark's helper (bench/reports-ingest).
//!
//! `reports_bench gen N DIR`: writes N aggregate reports of realistic shape into DIR,
//! a quarter each as plain XML, gzip, zip and e-mail with a base64 gzip attachment; prints
//! the uncompressed XML bytes and records.
//! `reports_bench big MB FILE`: writes one report of about MB megabytes (streamed).
//! `reports_bench parse DIR`: unpacks and parses everything under DIR, no storage; prints
//! MB/s and records/s.
//! `reports_bench mailbox N DIR`: starts Dovecot (the tests' harness) with N report mails
//! in one INBOX, writes DIR/intake.toml for `intake run` and then DIR/ready, and keeps
//! Dovecot running until its standard input closes (bench/intake).

use flate2::Compression;
use flate2::write::GzEncoder;
use ses_dmarc_reports::aggregate::{ReportHeader, ReportRecord, ReportSink, parse_bytes_into};
use ses_dmarc_reports::unpack::{Content, UnpackLimits, unpack};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn record(i: u64) -> String {
    let ses = i.is_multiple_of(3);
    let ip = format!("{}.{}.{}.{}", 54 + (i % 3), (i / 256) % 256, i % 256, (i * 7) % 250 + 1);
    let (dkim, spf) = if ses {
        (
            "<dkim><domain>example.com</domain><selector>tok1</selector><result>pass</result></dkim><dkim><domain>amazonses.com</domain><selector>ses</selector><result>pass</result></dkim>",
            "mail.example.com",
        )
    } else if i % 3 == 1 {
        ("<dkim><domain>example.com</domain><selector>google</selector><result>pass</result></dkim>", "example.com")
    } else {
        ("", "spoof.example.net")
    };
    format!(
        "<record><row><source_ip>{ip}</source_ip><count>{}</count><policy_evaluated><disposition>none</disposition><dkim>{}</dkim><spf>pass</spf></policy_evaluated></row>\
         <identifiers><header_from>example.com</header_from><envelope_from>{spf}</envelope_from></identifiers>\
         <auth_results>{dkim}<spf><domain>{spf}</domain><scope>mfrom</scope><result>pass</result></spf></auth_results></record>\n",
        i % 50 + 1,
        if dkim.is_empty() { "fail" } else { "pass" }
    )
}

fn head(n: u64, org: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback><version>1.0</version><report_metadata><org_name>{org}</org_name><email>noreply@{org}</email>\
         <report_id>{n}</report_id><date_range><begin>{}</begin><end>{}</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>\n",
        1_700_000_000 + n as i64 * 3600,
        1_700_000_000 + n as i64 * 3600 + 86_400
    )
}

fn report(n: u64, records: u64) -> String {
    let mut s = head(n, ["google.com", "yahoo.com", "outlook.com", "mail.ru"][(n % 4) as usize]);
    for i in 0..records {
        s.push_str(&record(n * 1000 + i));
    }
    s.push_str("</feedback>\n");
    s
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn generate(n: u64, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let (mut bytes, mut records) = (0u64, 0u64);
    for i in 0..n {
        let recs = 50 + (i * 37) % 300;
        let xml = report(i, recs);
        bytes += xml.len() as u64;
        records += recs;
        let name = format!("google.com!example.com!{i}");
        match i % 4 {
            0 => std::fs::write(dir.join(format!("{name}.xml")), &xml),
            1 => std::fs::write(dir.join(format!("{name}.xml.gz")), gzip(xml.as_bytes())),
            2 => {
                let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                w.start_file(format!("{name}.xml"), zip::write::SimpleFileOptions::default()).expect("zip");
                w.write_all(xml.as_bytes()).expect("zip");
                std::fs::write(dir.join(format!("{name}.zip")), w.finish().expect("zip").into_inner())
            }
            _ => {
                use base64_lines as b64;
                let mail = format!(
                    "From: noreply-dmarc-support@google.com\r\nTo: dmarc@example.com\r\nSubject: Report domain: example.com Report-ID: {i}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n--b\r\nContent-Type: application/gzip; name=\"{name}.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}.xml.gz\"\r\n\r\n{}\r\n--b--\r\n",
                    b64(&gzip(xml.as_bytes()))
                );
                std::fs::write(dir.join(format!("{name}.eml")), mail)
            }
        }
        .expect("write");
    }
    println!("{bytes} {records}");
}

fn report_mail(i: u64) -> (String, u64, u64) {
    let recs = 50 + (i * 37) % 300;
    let xml = report(i, recs);
    let name = format!("google.com!example.com!{i}");
    let mail = format!(
        "From: noreply-dmarc-support@google.com\r\nTo: dmarc@example.com\r\nSubject: Report domain: example.com Report-ID: {i}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n--b\r\nContent-Type: application/gzip; name=\"{name}.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}.xml.gz\"\r\n\r\n{}\r\n--b--\r\n",
        base64_lines(&gzip(xml.as_bytes()))
    );
    (mail, xml.len() as u64, recs)
}

fn mailbox(n: u64, dir: &Path) {
    use ses_dmarc_testkit::{Dovecot, DovecotOptions};
    let password = "bench-password";
    let dovecot = Dovecot::start(&[("reports", password)], &DovecotOptions::default()).unwrap_or_else(|e| {
        eprintln!("reports_bench: cannot start Dovecot: {e}");
        std::process::exit(1)
    });
    let (mut bytes, mut mail_bytes) = (0u64, 0u64);
    for i in 0..n {
        let (mail, xml, _) = report_mail(i);
        bytes += xml;
        mail_bytes += mail.len() as u64;
        dovecot.deliver("reports", "INBOX", &format!("{i:06}.bench"), mail.as_bytes());
    }
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("intake.toml"),
        format!(
            "[[intake.imap]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\n\
             user = \"reports\"\npassword_env = \"BENCH_IMAP_PASSWORD\"\nprocessed_folder = \"Reports/Done\"\n",
            dovecot.tls_port,
            dovecot.ca_file.display()
        ),
    )
    .expect("write the configuration");
    std::fs::write(dir.join("ready"), format!("{n} {mail_bytes} {bytes} {password}\n")).expect("write ready");
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    let left = dovecot.messages("reports", "INBOX").len();
    let done = dovecot.messages("reports", "Reports/Done").len();
    println!("{left} {done}");
}

fn base64_lines(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len() * 4 / 3 + 8);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            s.push(if k <= chunk.len() { A[((v >> (18 - 6 * k)) & 63) as usize] as char } else { '=' });
        }
    }
    s.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
}

fn big(mb: u64, path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    // A report number whose period (1,700,000,000 + n hours) is in the past: future periods are refused.
    f.write_all(head(4242, "big.example").as_bytes()).expect("write");
    let (mut written, mut i) = (0u64, 0u64);
    while written < mb * 1024 * 1024 {
        let r = record(i);
        written += r.len() as u64;
        f.write_all(r.as_bytes()).expect("write");
        i += 1;
    }
    f.write_all(b"</feedback>\n").expect("write");
    println!("{written} {i}");
}

/// Counts the records parsed (parsing alone: the reader ingest uses for documents in memory).
struct Counter<'c>(&'c mut u64);

impl ReportSink for Counter<'_> {
    fn header(&mut self, _header: &ReportHeader) {}
    fn record(&mut self, _record: ReportRecord) {
        *self.0 += 1;
    }
}

fn parse(dir: &Path) {
    let start = Instant::now();
    let (mut bytes, mut records, mut failed) = (0u64, 0u64, 0u64);
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let data = std::fs::read(&path).expect("read");
        for item in unpack(&path.display().to_string(), &data, &UnpackLimits::default()) {
            match item {
                Ok(i) => {
                    if let Content::Aggregate(xml) = i.content {
                        bytes += xml.len() as u64;
                        match parse_bytes_into(&xml, Default::default(), &mut Counter(&mut records)) {
                            Ok(_) => {}
                            Err(_) => failed += 1,
                        }
                    }
                }
                Err(_) => failed += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "parse only: {:.0} MB of XML, {records} records in {secs:.2} s = {:.0} MB/s, {:.0} records/s, {failed} failed",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        records as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["gen", n, dir] => generate(n.parse().expect("N"), Path::new(dir)),
        ["big", mb, file] => big(mb.parse().expect("MB"), Path::new(file)),
        ["parse", dir] => parse(Path::new(dir)),
        ["mailbox", n, dir] => mailbox(n.parse().expect("N"), Path::new(dir)),
        _ => {
            eprintln!("usage: reports_bench gen N DIR | big MB FILE | parse DIR | mailbox N DIR");
            std::process::exit(2);
        }
    }
}
