//! Rollout advice on generated report histories: aggregate reports written as XML, day by
//! day, by an RFC 7489 reporter and an RFC 9990 one, parsed, classified and summed up as
//! the command does; then each proposed record is evaluated for a failing message with the
//! project's own receiver, once as an RFC 7489 receiver and once as an RFC 9989 one.

use ses_dmarc_dns::{Answer, Outcome, Rdata};
use ses_dmarc_receiver::dmarc::{DkimIdentity, DmarcResult, SpfIdentity, evaluate_under};
use ses_dmarc_receiver::dmarc_discovery::{discover_7489, discover_9989, tree_walk_names};
use ses_dmarc_receiver::spf::SpfResult;
use ses_dmarc_records::DmarcRecord;
use ses_dmarc_records::dmarc::{Policy, Rfc};
use ses_dmarc_reports::classify::classify;
use ses_dmarc_reports::parse_bytes;
use ses_dmarc_reports::rollout::{Criteria, Origin, Rollout, Stage, Status, advise, utc_day};
use ses_dmarc_reports::summary::{Summary, SummaryBuilder};
use std::collections::HashMap;

const DAY: i64 = 86_400;
/// 2026-12-01 00:00 UTC.
const NOW: i64 = 1_796_083_200;
const DOMAIN: &str = "example.com";
const NONE: &str = "v=DMARC1; p=none; rua=mailto:dmarc@example.com";

/// One `<record>` of a report.
struct Row {
    ip: &'static str,
    count: u64,
    envelope: &'static str,
    dkim: Vec<(&'static str, &'static str)>,
    spf: (&'static str, &'static str),
}

/// SES with Easy DKIM and the custom MAIL FROM: aligned twice.
fn ses(count: u64) -> Row {
    Row {
        ip: "54.240.8.1",
        count,
        envelope: "mail.example.com",
        dkim: vec![("example.com", "pass"), ("amazonses.com", "pass")],
        spf: ("mail.example.com", "pass"),
    }
}

/// SendGrid sending as the domain, never set up for it: its own DKIM and envelope.
fn sendgrid(count: u64) -> Row {
    Row {
        ip: "167.89.0.10",
        count,
        envelope: "em123.sendgrid.net",
        dkim: vec![("sendgrid.net", "pass")],
        spf: ("em123.sendgrid.net", "pass"),
    }
}

/// SES mail through a mailing list that adds a footer: both signatures broken, the
/// list's own (SRS) envelope.
fn list_altered(count: u64) -> Row {
    Row {
        ip: "198.51.100.7",
        count,
        envelope: "lists.example.org",
        dkim: vec![("example.com", "fail"), ("amazonses.com", "fail")],
        spf: ("lists.example.org", "pass"),
    }
}

/// SES mail through an alumni forwarder that leaves it intact, without SRS.
fn forwarder_intact(count: u64) -> Row {
    Row {
        ip: "192.0.2.44",
        count,
        envelope: "mail.example.com",
        dkim: vec![("example.com", "pass"), ("amazonses.com", "pass")],
        spf: ("mail.example.com", "softfail"),
    }
}

/// Someone else's server putting the domain in From.
fn spoofer(count: u64) -> Row {
    Row { ip: "203.0.113.66", count, envelope: "bulk.spoofer.test", dkim: vec![], spf: ("bulk.spoofer.test", "pass") }
}

fn record_xml(r: &Row) -> String {
    let dkim: String = r
        .dkim
        .iter()
        .map(|(d, res)| format!("<dkim><domain>{d}</domain><selector>s1</selector><result>{res}</result></dkim>"))
        .collect();
    format!(
        "<record><row><source_ip>{}</source_ip><count>{}</count><policy_evaluated><disposition>none</disposition>\
         <dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><envelope_from>{}</envelope_from>\
         <header_from>example.com</header_from></identifiers><auth_results>{dkim}<spf><domain>{}</domain>\
         <scope>mfrom</scope><result>{}</result></spf></auth_results></record>",
        r.ip, r.count, r.envelope, r.spf.0, r.spf.1
    )
}

/// `days` days of reports, ending now, at `stage` as each reporter writes it: on even days
/// an RFC 7489 reporter (`pct`), on odd days an RFC 9990 one (`testing`).
fn history(days: i64, stage: Stage, rows: &[Row]) -> Summary {
    let (p, testing) = match stage {
        Stage::None => ("none", false),
        Stage::QuarantineTesting => ("quarantine", true),
        Stage::Quarantine => ("quarantine", false),
        Stage::RejectTesting => ("reject", true),
        Stage::Reject => ("reject", false),
        other => panic!("no history at {other}"),
    };
    let records: String = rows.iter().map(record_xml).collect();
    let mut b = SummaryBuilder::new(DOMAIN);
    for d in 0..days {
        let begin = NOW - (days - d) * DAY;
        let xml = if d % 2 == 0 {
            format!(
                "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>google.com</org_name>\
                 <report_id>g{d}</report_id><date_range><begin>{begin}</begin><end>{}</end></date_range>\
                 </report_metadata><policy_published><domain>example.com</domain><p>{p}</p><pct>{}</pct>\
                 </policy_published>{records}</feedback>",
                begin + DAY,
                if testing { 0 } else { 100 }
            )
        } else {
            format!(
                "<?xml version=\"1.0\"?><feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\"><version>1.0</version>\
                 <report_metadata><org_name>receiver.example</org_name><report_id>r{d}</report_id>\
                 <date_range><begin>{begin}</begin><end>{}</end></date_range></report_metadata>\
                 <policy_published><domain>example.com</domain><p>{p}</p><testing>{}</testing>\
                 <discovery_method>treewalk</discovery_method></policy_published>{records}</feedback>",
                begin + DAY,
                if testing { "y" } else { "n" }
            )
        };
        let report = parse_bytes(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}: {xml}"));
        b.add_report(&report.header);
        for r in &report.records {
            b.add_record(&report.header, r, &classify(r, &report.header.policy, None));
        }
    }
    b.finish()
}

/// The record published at `stage`, as the rollout writes it.
fn published(stage: Stage) -> String {
    stage.record_from(&DmarcRecord::parse(NONE).value.unwrap()).unwrap().to_string()
}

/// What a message from a spoofer (SPF passes for its own domain, no DKIM) gets under
/// `record`: (as an RFC 7489 receiver, as an RFC 9989 receiver), evaluated by the
/// receiver crate after each RFC's policy discovery.
fn failing_message(record: &str) -> (Policy, Policy) {
    let answers: HashMap<String, Answer> = tree_walk_names(DOMAIN)
        .into_iter()
        .map(|n| {
            let outcome = if n == DOMAIN {
                Outcome::Records(vec![Rdata::Txt(vec![record.as_bytes().to_vec()])])
            } else {
                Outcome::NxDomain
            };
            (format!("_dmarc.{n}"), Answer { outcome, cname_chain: vec![] })
        })
        .collect();
    let txt = |name: &str| answers.get(name);
    let spf = SpfIdentity { result: SpfResult::Pass, domain: "bulk.spoofer.test".into() };
    let old = evaluate_under(Rfc::Rfc7489, discover_7489(&txt, DOMAIN), DOMAIN, true, Some(&spf), &[]);
    let new = evaluate_under(Rfc::Rfc9989, discover_9989(&txt, DOMAIN), DOMAIN, true, Some(&spf), &[]);
    assert_eq!((old.result, new.result), (DmarcResult::Fail, DmarcResult::Fail), "{record}");
    // The records crate's reading of the record says the same.
    let parsed = DmarcRecord::parse(record).value.unwrap();
    assert_eq!(parsed.meaning(Rfc::Rfc7489).applied, old.disposition, "{record}");
    assert_eq!(parsed.meaning(Rfc::Rfc9989).applied, new.disposition, "{record}");
    // And aligned SES mail passes under both, whatever the policy.
    let ses_spf = SpfIdentity { result: SpfResult::Pass, domain: "mail.example.com".into() };
    let ses_dkim = [DkimIdentity { domain: "example.com".into(), selector: "tok".into(), pass: true }];
    for (rfc, d) in [(Rfc::Rfc7489, discover_7489(&txt, DOMAIN)), (Rfc::Rfc9989, discover_9989(&txt, DOMAIN))] {
        let e = evaluate_under(rfc, d, DOMAIN, true, Some(&ses_spf), &ses_dkim);
        assert_eq!((e.result, e.disposition), (DmarcResult::Pass, Policy::None), "{record} {rfc:?}");
    }
    (old.disposition, new.disposition)
}

fn codes(r: &Rollout) -> Vec<&'static str> {
    r.blockers.iter().map(|b| b.code).collect()
}

fn criterion(r: &Rollout, code: &str) -> (bool, f64, f64) {
    let c = r.criteria.iter().find(|c| c.code == code).unwrap_or_else(|| panic!("no criterion {code}: {r:?}"));
    (c.met, c.observed, c.required)
}

#[test]
fn all_aligned_at_none_is_ready_for_testing_that_delivers_failing_mail_under_both_rfcs() {
    // The case: 21 days, 21,000 messages, all from SES, all aligned.
    let s = history(21, Stage::None, &[ses(1_000)]);
    let r = advise(DOMAIN, Some(NONE), &s, NOW, Criteria::default());
    assert_eq!((r.stage, r.status, r.ready), (Stage::None, Status::Ready, true), "{:?}", r.blockers);
    assert!(r.blockers.is_empty());
    let e = &r.evidence;
    assert_eq!(
        (e.days, e.days_at_stage, e.messages, e.legitimate_messages, e.dmarc_pass),
        (21, 21, 21_000, 21_000, 21_000)
    );
    assert_eq!(e.sources.len(), 1);
    assert_eq!(
        (e.sources[0].source.as_str(), e.sources[0].origin, e.sources[0].pass_rate),
        ("Amazon SES", Origin::Ses, 1.0)
    );
    assert_eq!(criterion(&r, "days"), (true, 21.0, 14.0));
    assert_eq!(criterion(&r, "messages"), (true, 21_000.0, 150.0));
    assert_eq!(criterion(&r, "aligned"), (true, 1.0, 0.98));
    assert_eq!(criterion(&r, "quiet"), (true, 21.0, 7.0));
    assert_eq!(criterion(&r, "rua"), (true, 1.0, 1.0));

    let next = r.next.as_ref().unwrap();
    assert_eq!(r.next_record.as_deref(), Some("v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@example.com; t=y"));
    assert_eq!(next.stage, Stage::QuarantineTesting);
    // None under both: via pct=0 for RFC 7489 and t=y for RFC 9989.
    assert_eq!(failing_message(&next.record), (Policy::None, Policy::None));
    assert_eq!((next.rfc7489.disposition, next.rfc9989.disposition), (Policy::None, Policy::None));
    assert!(next.rfc7489.explanation.contains("pct=0"), "{}", next.rfc7489.explanation);
    assert!(next.rfc9989.explanation.contains("t=y"), "{}", next.rfc9989.explanation);
    assert!(next.why.contains("Not pct=25"), "{}", next.why);
    // And the old advice, `t=y` alone, would have been full quarantine for RFC 7489.
    assert_eq!(
        failing_message("v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com; t=y"),
        (Policy::Quarantine, Policy::None)
    );

    let after = r.step_after.as_ref().unwrap();
    assert_eq!(
        (after.stage, after.record.as_str()),
        (Stage::Quarantine, "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com")
    );
    assert_eq!(after.not_before, utc_day(NOW + 14 * DAY));
    assert_eq!(failing_message(&after.record), (Policy::Quarantine, Policy::Quarantine));
    // Every aligned SES message is signed d=example.com: adkim=s is offered, aspf=s never.
    assert_eq!(r.options.len(), 1);
    assert!(r.options[0].record.contains("adkim=s") && !r.options[0].record.contains("aspf"));
    assert_eq!(failing_message(&r.options[0].record), (Policy::None, Policy::None));
}

#[test]
fn each_stage_with_its_reports_leads_to_the_next_with_the_intended_disposition() {
    let mut stage = Stage::None;
    let mut seen = vec![];
    loop {
        let s = history(15, stage, &[ses(500)]);
        let r = advise(DOMAIN, Some(&published(stage)), &s, NOW, Criteria::default());
        assert_eq!(r.stage, stage);
        assert_eq!(r.evidence.days_at_stage, 15, "both reporters' ways of writing {stage} count");
        let Some(next) = r.next else {
            assert_eq!(r.status, Status::Done);
            break;
        };
        assert_eq!(r.status, Status::Ready, "{stage}: {:?}", r.blockers);
        let intended = next.stage.disposition();
        assert_eq!(failing_message(&next.record), (intended, intended), "{}", next.record);
        seen.push((next.stage, intended));
        stage = next.stage;
    }
    assert_eq!(
        seen,
        [
            (Stage::QuarantineTesting, Policy::None),
            (Stage::Quarantine, Policy::Quarantine),
            (Stage::RejectTesting, Policy::Quarantine),
            (Stage::Reject, Policy::Reject),
        ]
    );
    // A fresh step: the reports still show the stage before, so the next one waits.
    let s = history(15, Stage::None, &[ses(500)]);
    let r = advise(DOMAIN, Some(&published(Stage::QuarantineTesting)), &s, NOW, Criteria::default());
    assert_eq!((r.status, codes(&r)), (Status::Blocked, vec!["too-few-days"]));
    assert_eq!(
        r.blockers[0].message,
        format!(
            "only 0 days of reports at p=quarantine in testing (pct=0, t=y); 14 are needed (not before {})",
            utc_day(NOW + 14 * DAY)
        )
    );
}

#[test]
fn a_forgotten_sender_blocks_in_numbers_and_at_quarantine_says_step_back() {
    let rows = [ses(1_000), sendgrid(100)];
    let r = advise(DOMAIN, Some(NONE), &history(21, Stage::None, &rows), NOW, Criteria::default());
    assert_eq!((r.status, codes(&r)), (Status::Blocked, vec!["source-not-aligned"]));
    assert_eq!(
        r.blockers[0].message,
        "source SendGrid: 100.0% of 2,100 messages not aligned (need at least 98% passing)"
    );
    let line = r.evidence.sources.iter().find(|l| l.source == "SendGrid").unwrap();
    assert_eq!((line.origin, line.legitimate, line.messages, line.dmarc_pass), (Origin::Service, true, 2_100, 0));
    assert!(line.note.contains("a service you forgot to align"), "{}", line.note);
    assert_eq!(r.evidence.sources[0].source, "Amazon SES", "SES first");
    assert_eq!(criterion(&r, "aligned"), (false, 0.0, 0.98));
    // Blocked, yet the record it waits for would lose nothing.
    assert_eq!(failing_message(r.next_record.as_deref().unwrap()), (Policy::None, Policy::None));

    // The same sender turning up at quarantine: legitimate mail goes to spam. Step back.
    let r = advise(
        DOMAIN,
        Some(&published(Stage::Quarantine)),
        &history(21, Stage::Quarantine, &rows),
        NOW,
        Criteria::default(),
    );
    assert_eq!((r.stage, r.status, r.ready), (Stage::Quarantine, Status::StepBack, false));
    let back = r.next.as_ref().unwrap();
    assert_eq!(back.stage, Stage::QuarantineTesting);
    assert_eq!(failing_message(&back.record), (Policy::None, Policy::None));
    // At reject, one level back: quarantined, not refused.
    let r =
        advise(DOMAIN, Some(&published(Stage::Reject)), &history(21, Stage::Reject, &rows), NOW, Criteria::default());
    assert_eq!(r.status, Status::StepBack);
    assert_eq!(failing_message(r.next_record.as_deref().unwrap()), (Policy::Quarantine, Policy::Quarantine));
}

#[test]
fn a_forwarder_is_shown_as_such_and_does_not_block() {
    let r = advise(
        DOMAIN,
        Some(NONE),
        &history(21, Stage::None, &[ses(1_000), list_altered(30), forwarder_intact(20)]),
        NOW,
        Criteria::default(),
    );
    assert_eq!((r.status, r.ready), (Status::Ready, true), "{:?}", r.blockers);
    let ses_line = &r.evidence.sources[0];
    assert_eq!((ses_line.source.as_str(), ses_line.messages, ses_line.pass_rate), ("Amazon SES", 21_000, 1.0));
    let fwd = r.evidence.sources.iter().find(|l| l.origin == Origin::Forwarder).unwrap();
    assert_eq!((fwd.source.as_str(), fwd.legitimate, fwd.messages, fwd.dmarc_pass), ("forwarded", false, 1_050, 420));
    assert!(fwd.note.starts_with("not yours to fix"), "{}", fwd.note);
    assert!(
        r.watch_for.iter().any(|w| w.starts_with("630 forwarded messages (60.0%) fail after relaying")),
        "{:?}",
        r.watch_for
    );
    assert_eq!(failing_message(r.next_record.as_deref().unwrap()), (Policy::None, Policy::None));
}

#[test]
fn a_spoofer_is_shown_as_not_yours_and_does_not_block() {
    let r =
        advise(DOMAIN, Some(NONE), &history(21, Stage::None, &[ses(1_000), spoofer(300)]), NOW, Criteria::default());
    assert_eq!((r.status, r.ready), (Status::Ready, true), "{:?}", r.blockers);
    let spoof = r.evidence.sources.iter().find(|l| l.source == "203.0.113.66").unwrap();
    assert_eq!((spoof.origin, spoof.legitimate, spoof.messages, spoof.dmarc_pass), (Origin::Spoofing, false, 6_300, 0));
    assert!(spoof.note.contains("spoofing"), "{}", spoof.note);
    assert_eq!(r.evidence.sources.last().unwrap().origin, Origin::Spoofing, "spoofing listed last");
    assert!((r.evidence.pass_rate - 21_000.0 / 27_300.0).abs() < 1e-9);
    assert_eq!(criterion(&r, "messages"), (true, 21_000.0, 150.0), "only your own mail counts");
}

#[test]
fn too_few_days_blocks_with_the_date_it_will_be_enough() {
    let r = advise(DOMAIN, Some(NONE), &history(9, Stage::None, &[ses(2_000)]), NOW, Criteria::default());
    assert_eq!((r.status, codes(&r)), (Status::Blocked, vec!["too-few-days"]));
    assert_eq!(criterion(&r, "days"), (false, 9.0, 14.0));
    assert_eq!(
        r.blockers[0].message,
        format!("only 9 days of reports at p=none; 14 are needed (not before {})", utc_day(NOW + 5 * DAY))
    );
    let next = r.next.as_ref().unwrap();
    assert_eq!((next.stage, next.not_before.clone()), (Stage::QuarantineTesting, utc_day(NOW + 5 * DAY)));
    assert_eq!(r.step_after.as_ref().unwrap().not_before, utc_day(NOW + 19 * DAY));
    assert_eq!(failing_message(&next.record), (Policy::None, Policy::None));
}

#[test]
fn too_few_messages_blocks_until_a_pass_rate_means_something() {
    let s = history(21, Stage::None, &[ses(5)]);
    let r = advise(DOMAIN, Some(NONE), &s, NOW, Criteria::default());
    assert_eq!((r.status, codes(&r)), (Status::Blocked, vec!["too-few-messages"]));
    assert_eq!(criterion(&r, "messages"), (false, 105.0, 150.0));
    assert_eq!(
        r.blockers[0].message,
        "only 105 messages from your own sources in the reports; 150 are needed to judge a 98% pass rate"
    );
    let lower = Criteria { min_messages: 100, ..Criteria::default() };
    assert_eq!(advise(DOMAIN, Some(NONE), &s, NOW, lower).status, Status::Ready);
}
