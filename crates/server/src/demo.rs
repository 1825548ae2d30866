//! `serve --demo`: a throw-away database with four sample domains, answered by zone files
//! written beside it, 30 days of generated aggregate reports stored through the one ingest
//! path, and two watch passes (two weeks ago and now) so the dashboard has findings, a
//! DNS history, sources, charts and rollout advice from the first minute.

use ses_dmarc_monitor::Config;
use ses_dmarc_monitor::alerts::Alerter;
use ses_dmarc_monitor::watch::{PassOptions, run_pass, watch_request};
use ses_dmarc_monitor::workers::Worker;
use ses_dmarc_ops::dns::DnsOptions;
use ses_dmarc_store::{Database, Location, OpenMode, User};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What the demo made.
#[derive(Debug)]
pub struct Demo {
    /// Its database.
    pub db: Database,
    /// The configuration to serve it with.
    pub config: Config,
    /// The demo admin's name.
    pub user: String,
    /// Their password (random, shown once).
    pub password: String,
}

/// Why the demo could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file could not be written.
    #[error("cannot write the demo's files in {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Anything else (the database, the zone files, the pass).
    #[error("cannot prepare the demo: {0}")]
    Other(String),
}

fn other(e: impl std::fmt::Display) -> DemoError {
    DemoError::Other(e.to_string())
}

const AMAZONSES_ZONE: &str = include_str!("demo/amazonses.com.zone");

/// The stand-in amazonses.com zone, with each demo token's key spelled out (zone files
/// in memory have no wildcards).
fn amazonses_zone() -> String {
    let key = AMAZONSES_ZONE.lines().find_map(|l| l.strip_prefix("*.dkim TXT ")).unwrap_or("\"p=\"").to_string();
    let mut z = AMAZONSES_ZONE.to_string();
    for (_, _, _, stem) in DOMAINS {
        for i in 1..=3 {
            let _ = writeln!(z, "{stem}token{i}.dkim TXT {key}");
        }
    }
    z
}

/// The sample domains: name, tags, MAIL FROM label (none: SES's default), DKIM token stem.
const DOMAINS: [(&str, &str, Option<&str>, &str); 4] = [
    ("shop.example", "client-a", Some("mail"), "shop"),
    ("news.example", "client-a", None, "news"),
    ("billing.example", "client-b", Some("bounce"), "bill"),
    ("legacy.example", "client-b", Some("mail"), "legacy"),
];

/// A domain's zone; `before` is how it stood two weeks ago.
fn zone(domain: &str, mail_from: Option<&str>, stem: &str, before: bool) -> String {
    let mut z = format!(
        "$ORIGIN {domain}.\n$TTL 300\n@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n\
         @ MX 10 inbound\ninbound A 192.0.2.25\n@ TXT \"v=spf1 mx include:amazonses.com -all\"\n"
    );
    if let Some(label) = mail_from {
        let _ = writeln!(z, "{label} MX 10 feedback-smtp.us-east-1.amazonses.com.");
        let _ = writeln!(z, "{label} TXT \"v=spf1 include:amazonses.com ~all\"");
    }
    for i in 1..=3 {
        // billing.example lost a DKIM record since the last check; legacy never had them right.
        if (domain == "billing.example" && i == 3 && !before) || (domain == "legacy.example" && i > 1) {
            continue;
        }
        let _ = writeln!(z, "{stem}token{i}._domainkey CNAME {stem}token{i}.dkim.amazonses.com.");
    }
    let dmarc = match (domain, before) {
        ("shop.example", true) => Some("v=DMARC1; p=none"),
        ("shop.example", false) => Some("v=DMARC1; p=none; rua=mailto:dmarc@shop.example"),
        ("news.example", _) => Some("v=DMARC1; p=none; rua=mailto:dmarc@news.example"),
        ("billing.example", _) => Some("v=DMARC1; p=quarantine; rua=mailto:dmarc@billing.example"),
        _ => None,
    };
    if let Some(d) = dmarc {
        let _ = writeln!(z, "_dmarc TXT \"{d}\"");
    }
    z
}

/// A deterministic sequence of small numbers (the same demo every time).
struct Numbers(u64);

impl Numbers {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

struct Row<'a> {
    ip: String,
    count: u64,
    envelope: &'a str,
    dkim: &'a [(&'a str, &'a str)],
    spf: &'a str,
    pass: bool,
}

fn report_xml(reporter: (&str, &str), id: &str, domain: &str, policy: &str, begin: i64, rows: &[Row<'_>]) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback><report_metadata><org_name>{}</org_name><email>{}</email>\
         <report_id>{id}</report_id><date_range><begin>{begin}</begin><end>{}</end></date_range></report_metadata>\
         <policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>{policy}</p><sp>{policy}</sp><pct>100</pct></policy_published>",
        reporter.0,
        reporter.1,
        begin + 86_399
    );
    for r in rows {
        let evaluated = if r.pass { "pass" } else { "fail" };
        let disposition = if r.pass || policy == "none" { "none" } else { policy };
        let _ = write!(
            x,
            "<record><row><source_ip>{}</source_ip><count>{}</count><policy_evaluated><disposition>{disposition}</disposition>\
             <dkim>{evaluated}</dkim><spf>{}</spf></policy_evaluated></row><identifiers><header_from>{domain}</header_from>\
             <envelope_from>{}</envelope_from></identifiers><auth_results>",
            r.ip,
            r.count,
            if r.spf == "pass" && r.envelope.ends_with(domain) { "pass" } else { "fail" },
            r.envelope
        );
        for (d, result) in r.dkim {
            let _ = write!(x, "<dkim><domain>{d}</domain><result>{result}</result><selector>s1</selector></dkim>");
        }
        let _ =
            write!(x, "<spf><domain>{}</domain><result>{}</result></spf></auth_results></record>", r.envelope, r.spf);
    }
    x.push_str("</feedback>\n");
    x
}

/// 30 days of reports for one domain, from two reporters.
fn reports_for(domain: &str, mail_from: Option<&str>, policy: &str, today: i64, n: &mut Numbers) -> Vec<String> {
    let ses_envelope = match mail_from {
        Some(label) => format!("{label}.{domain}"),
        None => "amazonses.com".to_string(),
    };
    let broken_dkim = domain == "billing.example" || domain == "legacy.example";
    let mut out = Vec::new();
    for back in 1..=30 {
        let begin = today - back * 86_400;
        for (r, reporter) in [("google.com", "noreply-dmarc-support@google.com"), ("Yahoo", "dmarchelp@yahooinc.com")]
            .into_iter()
            .enumerate()
        {
            let ses_dkim_ok = !broken_dkim || back > 14 || n.next(10) < 3;
            let own = [(domain, if ses_dkim_ok { "pass" } else { "fail" }), ("amazonses.com", "pass")];
            let workspace = [(domain, "pass")];
            let forwarded = [(domain, "pass")];
            let none: [(&str, &str); 0] = [];
            let mut rows = vec![
                Row {
                    ip: format!("54.240.8.{}", 10 + n.next(40)),
                    count: 200 + n.next(400) * (r as u64 + 1),
                    envelope: &ses_envelope,
                    dkim: &own,
                    spf: "pass",
                    pass: ses_dkim_ok || mail_from.is_some(),
                },
                Row {
                    ip: format!("209.85.220.{}", 40 + n.next(20)),
                    count: 20 + n.next(40),
                    envelope: domain,
                    dkim: &workspace,
                    spf: "pass",
                    pass: true,
                },
            ];
            if n.next(3) == 0 {
                rows.push(Row {
                    ip: format!("40.107.22.{}", n.next(250)),
                    count: 1 + n.next(8),
                    envelope: "forwarder.example.net",
                    dkim: &forwarded,
                    spf: "fail",
                    pass: true,
                });
            }
            if back < 10 && n.next(2) == 0 {
                rows.push(Row {
                    ip: format!("185.220.101.{}", n.next(250)),
                    count: 3 + n.next(30),
                    envelope: "spoof.example.org",
                    dkim: &none,
                    spf: "softfail",
                    pass: false,
                });
            }
            let id = format!("{}-{}-{back}", domain.replace('.', "-"), r);
            out.push(report_xml(reporter, &id, domain, policy, begin, &rows));
        }
    }
    out
}

/// Makes the demo in `dir` (which must be empty or new): zone files, a SQLite database,
/// the sample domains, their reports, two watch passes and an admin user.
pub async fn prepare(dir: &Path, now: i64) -> Result<Demo, DemoError> {
    let io = |e| DemoError::Io(dir.to_path_buf(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let write_zones = |name: &str, before: bool| -> Result<Vec<PathBuf>, DemoError> {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).map_err(io)?;
        let mut files = vec![folder.join("amazonses.com.zone")];
        std::fs::write(&files[0], amazonses_zone()).map_err(io)?;
        for (domain, _, mail_from, stem) in DOMAINS {
            let path = folder.join(format!("{domain}.zone"));
            std::fs::write(&path, zone(domain, mail_from, stem, before)).map_err(io)?;
            files.push(path);
        }
        Ok(files)
    };
    let before = write_zones("zones-before", true)?;
    let current = write_zones("zones", false)?;
    let db_path = dir.join("demo.sqlite");
    let location = Location::Sqlite(db_path.clone());
    let db = Database::open(&location, OpenMode::Create, 4).await.map_err(other)?;

    let dns = |zones: Vec<PathBuf>| DnsOptions { nameservers: vec![], timeout: 1.0, attempts: 1, zones };
    let mut config =
        Config { database: Some(format!("sqlite://{}", db_path.display())), dns: dns(current), ..Config::default() };
    config.session_hours = 12;
    config.intake_max_size_mb = 64;
    let two_weeks_ago = now - 14 * 86_400;
    for (domain, tag, mail_from, stem) in DOMAINS {
        let expectations = ses_dmarc_audit::Expectations {
            regions: vec!["us-east-1".into()],
            mail_from: mail_from.map(str::to_string),
            dkim_tokens: (1..=3).map(|i| format!("{stem}token{i}")).collect(),
            selectors: vec![],
        };
        let row = watch_request(domain, expectations, &[tag.to_string()], false, "cli", two_weeks_ago - 86_400)
            .map_err(other)?;
        db.run(move |s| s.upsert_watched(&row)).await.map_err(other)?;
    }

    // Reports, through the same ingest as `reports ingest`.
    let today = now.div_euclid(86_400) * 86_400;
    let mut numbers = Numbers(2026);
    let mut files = Vec::new();
    for (domain, _, mail_from, _) in DOMAINS {
        let policy = if domain == "billing.example" { "quarantine" } else { "none" };
        if domain == "legacy.example" {
            continue;
        }
        files.extend(reports_for(domain, mail_from, policy, today, &mut numbers).into_iter().map(|x| (domain, x)));
    }
    let limits = ses_dmarc_monitor::intake::limits(&config);
    db.run(move |s| {
        for (i, (domain, xml)) in files.into_iter().enumerate() {
            let outcome = ses_dmarc_store::ingest::ingest_reader(
                s,
                &format!("demo report {i} for {domain}"),
                std::io::Cursor::new(xml.into_bytes()),
                &limits,
            );
            if let Some(e) = outcome.error {
                return Err(ses_dmarc_store::StoreError::Sqlite(format!("demo report {i}: {e}")));
            }
        }
        Ok(())
    })
    .await
    .map_err(other)?;

    // Two passes: how the domains stood two weeks ago, then now.
    let alerter = Alerter::new(&config).map_err(other)?;
    let worker = Worker::start(&db, "demo", config.schedule.lease).await.map_err(other)?;
    for (zones, at) in [(before, two_weeks_ago), (config.dns.zones.clone(), now)] {
        let resolver = dns(zones).resolver("invalid", 64).map_err(other)?;
        let options = PassOptions { only: DOMAINS.iter().map(|d| d.0.to_string()).collect(), now: at };
        run_pass(&db, &resolver, &config, &alerter, &worker, &options).await.map_err(other)?;
    }
    worker.stop().await.map_err(other)?;

    let password = crate::auth::random_token(12);
    let user = "demo".to_string();
    let (row, hash) = crate::new_user(&user, "admin", &[], &password, now).map_err(other)?;
    let u: User = row;
    db.run(move |s| s.put_user(&u, &hash)).await.map_err(other)?;
    Ok(Demo { db, config, user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_reports_parse_and_count_what_they_say() {
        let mut n = Numbers(1);
        let xml = reports_for("shop.example", Some("mail"), "none", 100 * 86_400, &mut n);
        assert_eq!(xml.len(), 60);
        let mut records = 0;
        for x in &xml {
            let report = ses_dmarc_reports::aggregate::parse_bytes(x.as_bytes()).expect("parses");
            assert_eq!(report.header.policy.domain, "shop.example");
            records += report.records.len();
        }
        assert!(records >= 120, "{records}");
    }
}
