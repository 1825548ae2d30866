//! `ses-dmarc plan`: every format, checked by something that reads it for real.

use crate::util::{ok, ses_dmarc, stderr};
use serde::Deserialize;
use serde_json::Value;
use ses_dmarc_dns::testing::{TestServer, with_soa};
use ses_dmarc_dns::{Outcome, Rdata, RecordType, StubClient};
use std::collections::HashSet;
use std::time::Duration;

const TOKENS: [&str; 6] = [
    "--dkim-token",
    "abcdefghijklmnopqrstuvwxyz123456",
    "--dkim-token",
    "bcdefghijklmnopqrstuvwxyz1234567",
    "--dkim-token",
    "cdefghijklmnopqrstuvwxyz12345678",
];

fn plans() -> Vec<Vec<String>> {
    let many_rua: Vec<String> =
        (0..12).flat_map(|i| ["--rua".to_string(), format!("mailto:dmarc-reports-{i}@example.com")]).collect();
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = ["plan", "example.com", "--region", "us-east-1", "--mail-from", "mail"]
            .iter()
            .chain(TOKENS.iter())
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let mut long = base(&["--policy", "quarantine"]);
    long.extend(many_rua);
    vec![
        base(&["--rua", "mailto:dmarc@example.com"]),
        // SES receives the reports: the MX of dmarc-reports.example.com and the rua.
        base(&["--receive-reports", "--reports-bucket", "example-dmarc", "--account-id", "123456789012"]),
        base(&["--region", "eu-south-1", "--ruf", "mailto:ruf@example.com"]),
        long,
        // No tokens: placeholders must not reach the zone.
        ["plan", "example.com", "--region", "af-south-1", "--mail-from", "bounce.example.com"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ]
}

fn run(args: &[String], format: &str) -> String {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--format", format]);
    ok(&a)
}

fn expected_rdata(record: &Value) -> Rdata {
    match record["type"].as_str().unwrap() {
        "MX" => Rdata::Mx {
            preference: record["preference"].as_u64().unwrap() as u16,
            exchange: record["exchange"].as_str().unwrap().to_string(),
        },
        "CNAME" => Rdata::Name(record["target"].as_str().unwrap().to_string()),
        "TXT" => Rdata::Txt(vec![]),
        t => panic!("unexpected type {t}"),
    }
}

#[test]
fn zone_output_loads_into_a_dns_server_and_reads_back() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for args in plans() {
        let zone = run(&args, "zone");
        let plan: Value = serde_json::from_str(&run(&args, "json")).unwrap();
        let server = TestServer::start(&[("example.com.", &with_soa(&zone))])
            .unwrap_or_else(|e| panic!("the zone output does not load: {e}\n{zone}"));
        let client = StubClient::new(vec![server.addr()], Duration::from_secs(2), 2).unwrap();
        let records = plan["records"].as_array().unwrap();
        assert!(records.len() >= 6);
        rt.block_on(async {
            for r in records {
                let name = r["name"].as_str().unwrap();
                let rtype = match r["type"].as_str().unwrap() {
                    "MX" => RecordType::Mx,
                    "TXT" => RecordType::Txt,
                    "CNAME" => RecordType::Cname,
                    t => panic!("{t}"),
                };
                if r["placeholder"].as_bool().unwrap() {
                    assert!(zone.lines().any(|l| l.starts_with("; ") && l.contains(name)), "{name} not commented");
                    assert!(zone.lines().filter(|l| !l.starts_with(';')).all(|l| !l.contains('<')));
                    let zone_name = name.split_once("._domainkey").map(|(_, rest)| format!("zzz._domainkey{rest}"));
                    let none = client.lookup(&zone_name.unwrap(), rtype).await;
                    assert_eq!(none.outcome, Outcome::NxDomain);
                    continue;
                }
                let answer = client.lookup(name, rtype).await;
                let got = answer.records();
                assert_eq!(got.len(), 1, "{name} {rtype:?}: {answer:?}");
                match rtype {
                    RecordType::Txt => {
                        let text = got[0].txt_text().unwrap();
                        assert_eq!(text, r["text"].as_str().unwrap(), "{name}");
                        if let Rdata::Txt(strings) = &got[0] {
                            assert!(strings.iter().all(|s| s.len() <= 255));
                            assert_eq!(strings.len(), text.len().div_ceil(255).max(1));
                        }
                    }
                    _ => assert_eq!(got[0], expected_rdata(r), "{name}"),
                }
            }
        });
    }
}

/// The ChangeBatch shape of the Route 53 API reference, strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ChangeBatch {
    comment: Option<String>,
    changes: Vec<Change>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Change {
    action: String,
    resource_record_set: ResourceRecordSet,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ResourceRecordSet {
    name: String,
    #[serde(rename = "Type")]
    rtype: String,
    #[serde(rename = "TTL")]
    ttl: i64,
    resource_records: Vec<ResourceRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ResourceRecord {
    value: String,
}

#[test]
fn route53_output_is_a_change_batch() {
    for args in plans() {
        let text = run(&args, "route53");
        let batch: ChangeBatch = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(batch.comment.unwrap().len() <= 256);
        assert!(!batch.changes.is_empty());
        let mut seen = HashSet::new();
        for c in &batch.changes {
            assert_eq!(c.action, "UPSERT");
            let set = &c.resource_record_set;
            assert!(seen.insert((set.name.clone(), set.rtype.clone())), "two changes for {} {}", set.name, set.rtype);
            assert!(set.name.ends_with('.') && !set.name.contains('<'), "{}", set.name);
            assert!(["MX", "TXT", "CNAME"].contains(&set.rtype.as_str()));
            assert!((0..=2_147_483_647).contains(&set.ttl));
            assert_eq!(set.resource_records.len(), 1);
            let value = &set.resource_records[0].value;
            assert!(value.len() <= 4000);
            if set.rtype == "TXT" {
                let strings = value.split("\" \"").collect::<Vec<_>>();
                assert!(value.starts_with('"') && value.ends_with('"'));
                assert!(strings.iter().all(|s| s.trim_matches('"').len() <= 255), "{value}");
                let joined = ses_dmarc_records::txt::parse_presentation(value).unwrap();
                assert!(joined.starts_with("v=spf1") || joined.starts_with("v=DMARC1"));
            }
        }
    }
}

/// The same batch validated by botocore against AWS's own Route 53 API model, when a
/// Python with botocore is available (.ci/run provides one; in CI it is required).
#[test]
fn route53_output_passes_botocore_validation() {
    let python = std::env::var("SES_DMARC_TEST_PYTHON").ok().or_else(|| {
        let venv = ses_dmarc_testkit::venv_bin("python");
        venv.exists().then(|| venv.display().to_string())
    });
    let Some(python) = python else {
        assert!(std::env::var_os("CI").is_none(), "CI must provide the venv with botocore (scripts/test makes it)");
        eprintln!("skipped: no Python with botocore (run .ci/run or set SES_DMARC_TEST_PYTHON)");
        return;
    };
    let script = r#"
import json, sys, botocore.session, botocore.validate
model = botocore.session.get_session().get_service_model('route53')
shape = model.operation_model('ChangeResourceRecordSets').input_shape
batch = json.load(sys.stdin)
botocore.validate.validate_parameters({'HostedZoneId': 'Z0000000000000', 'ChangeBatch': batch}, shape)
print('valid')
"#;
    for args in plans() {
        let text = run(&args, "route53");
        let mut child = std::process::Command::new(&python)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "botocore rejects the batch: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn terraform_output_parses_as_hcl() {
    for args in plans() {
        let text = run(&args, "terraform");
        let body: hcl::Body = hcl::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let blocks: Vec<(String, Vec<String>)> = body
            .blocks()
            .map(|b| (b.identifier().to_string(), b.labels().iter().map(|l| l.as_str().to_string()).collect()))
            .collect();
        let resources = |kind: &str| blocks.iter().filter(|(id, l)| id == "resource" && l[0] == kind).count();
        let regions = args.iter().filter(|a| *a == "--region").count();
        assert_eq!(resources("aws_sesv2_email_identity"), regions, "{text}");
        assert_eq!(resources("aws_sesv2_email_identity_mail_from_attributes"), regions);
        // MAIL FROM MX and SPF, DMARC, one counted DKIM resource per region (and the reports MX).
        let receiving = usize::from(args.iter().any(|a| a == "--receive-reports"));
        assert_eq!(resources("aws_route53_record"), 3 + regions + receiving);
        for kind in [
            "aws_s3_bucket_policy",
            "aws_ses_receipt_rule_set",
            "aws_ses_receipt_rule",
            "aws_ses_active_receipt_rule_set",
        ] {
            assert_eq!(resources(kind), receiving, "{kind}: {text}");
        }
        if receiving == 1 {
            let rule = body
                .blocks()
                .find(|b| b.identifier() == "resource" && b.labels()[0].as_str() == "aws_ses_receipt_rule")
                .unwrap();
            let s3 = rule.body().blocks().find(|b| b.identifier() == "s3_action").expect("an s3_action block");
            let attrs: Vec<&str> = s3.body().attributes().map(|a| a.key()).collect();
            assert_eq!(attrs, ["bucket_name", "object_key_prefix", "position"]);
            assert!(rule.body().attributes().any(|a| a.key() == "depends_on"), "{text}");
        }
        assert_eq!(blocks.iter().filter(|(id, _)| id == "provider").count(), regions);
    }
}

#[test]
fn table_names_every_record_and_the_ses_call() {
    let out = ok(&["plan", "example.com", "--region", "us-east-1", "--mail-from", "mail"]);
    assert!(out.contains("mail.example.com"));
    assert!(out.contains("10 feedback-smtp.us-east-1.amazonses.com"));
    assert!(out.contains("<dkim-token-1>._domainkey.example.com"));
    assert!(out.contains("(placeholder)"));
    assert!(out.contains("_dmarc.example.com"));
    assert!(out.contains("put-email-identity-mail-from-attributes"));
    assert!(!out.contains('\x1b'), "no colour when not a terminal");
}

#[test]
fn names_outside_the_public_suffix_list_are_planned_with_a_warning() {
    let out = ok(&["plan", "lab.example.notatld", "--region", "us-east-1"]);
    assert!(out.contains("_dmarc.lab.example.notatld"), "{out}");
    assert!(out.contains("not a top-level domain on the public suffix list"), "{out}");
    assert!(out.contains("[domain-suffix-unknown]"), "{out}");
}

#[test]
fn bad_input_exits_2_and_says_what_to_type() {
    let cases: &[(&[&str], &str)] = &[
        (&["plan", "example", "--region", "us-east-1"], "example.com"),
        (&["plan", "exa mple.com", "--region", "us-east-1"], "not a domain name"),
        (&["plan", "co.uk", "--region", "us-east-1"], "public suffix"),
        (&["plan", "example.com", "--region", "us-east1"], "did you mean us-east-1"),
        (&["plan", "example.com", "--region", "us-east-1", "--mail-from", "example.com"], "--mail-from mail"),
        (&["plan", "example.com", "--region", "us-east-1", "--mail-from", "mail.example.org"], "not under example.com"),
        (&["plan", "example.com", "--region", "us-east-1", "--rua", "dmarc@example.com"], "mailto:dmarc@example.com"),
        (&["plan", "example.com", "--region", "us-east-1", "--rua", "mailto:nobody"], "mailto:reports@example.com"),
        (&["plan", "example.com", "--region", "us-east-1", "--dkim-token", "abc"], "three"),
        (&["plan", "example.com", "--region", "us-east-1", "--apex-spf", "include:x"], "v=spf1"),
        (&["plan", "example.com"], "--region"),
        (&["plan", "example.com", "--region", "us-east-1", "--format", "yaml"], "possible values"),
    ];
    for (args, hint) in cases {
        let o = ses_dmarc(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(hint), "{args:?}: expected `{hint}` in: {err}");
        assert!(!err.contains("panicked"));
        assert!(o.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

fn receiving(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["plan", "example.com", "--region", "us-east-1", "--mail-from", "mail", "--receive-reports"]
            .iter()
            .chain(TOKENS.iter())
            .map(|s| s.to_string())
            .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn receive_reports_in_json_and_table() {
    let args = receiving(&["--reports-bucket", "example-dmarc", "--account-id", "123456789012"]);
    let plan: Value = serde_json::from_str(&run(&args, "json")).unwrap();
    let rx = &plan["receive_reports"];
    assert_eq!(rx["address"], "dmarc@dmarc-reports.example.com");
    assert_eq!(
        (&rx["bucket"], &rx["prefix"], &rx["region"]),
        (&"example-dmarc".into(), &"dmarc/".into(), &"us-east-1".into())
    );
    assert_eq!((&rx["rule_set"], &rx["rule"]), (&"ses-dmarc".into(), &"ses-dmarc-reports".into()));
    assert_eq!(rx["inbound_host"], "inbound-smtp.us-east-1.amazonaws.com");
    let statement = &rx["bucket_policy"]["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "ses.amazonaws.com");
    assert_eq!(
        statement["Condition"]["StringEquals"]["AWS:SourceArn"],
        "arn:aws:ses:us-east-1:123456789012:receipt-rule-set/ses-dmarc:receipt-rule/ses-dmarc-reports"
    );
    assert_eq!(plan["dmarc"], "v=DMARC1; p=none; rua=mailto:dmarc@dmarc-reports.example.com");
    let mx = plan["records"].as_array().unwrap().iter().find(|r| r["purpose"] == "reports_mx").unwrap();
    assert_eq!(mx["value"], "10 inbound-smtp.us-east-1.amazonaws.com");
    // The calls, in order, with the JSON the AWS CLI takes.
    let calls: Vec<&str> =
        plan["ses_calls"].as_array().unwrap().iter().map(|c| c["command"].as_str().unwrap()).collect();
    let at =
        |needle: &str| calls.iter().position(|c| c.contains(needle)).unwrap_or_else(|| panic!("{needle}: {calls:?}"));
    assert!(at("put-bucket-policy") < at("create-receipt-rule-set"));
    assert!(at("create-receipt-rule-set") < at("create-receipt-rule --"));
    assert!(at("create-receipt-rule --") < at("set-active-receipt-rule-set"));
    let rule = calls[at("create-receipt-rule --")];
    let json_arg = rule.split_once("--rule '").unwrap().1.split_once('\'').unwrap().0;
    let rule: Value = serde_json::from_str(json_arg).unwrap();
    assert_eq!(rule["Recipients"][0], "dmarc@dmarc-reports.example.com");
    assert_eq!(rule["Actions"][0]["S3Action"]["BucketName"], "example-dmarc");

    let table = run(&args, "table");
    for needle in [
        "dmarc-reports.example.com",
        "10 inbound-smtp.us-east-1.amazonaws.com",
        "aws ses create-receipt-rule --rule-set-name ses-dmarc",
        "[[intake.s3]]",
        "processed_prefix = \"processed/\"",
        "[receive-one-active-rule-set]",
        "[receive-identity-required]",
    ] {
        assert!(table.contains(needle), "{needle} not in:\n{table}");
    }
    // An existing rule set: neither created nor activated.
    let existing = run(&receiving(&["--reports-bucket", "b-1", "--receipt-rule-set", "inbound"]), "table");
    assert!(existing.contains("create-receipt-rule --rule-set-name inbound"), "{existing}");
    assert!(!existing.contains("create-receipt-rule-set") && !existing.contains("set-active"), "{existing}");
    assert!(existing.contains("<account-id>") && existing.contains("[receive-account-placeholder]"), "{existing}");
}

#[test]
fn receive_reports_at_another_organization() {
    let args = receiving(&["--reports-bucket", "example-dmarc", "--reports-address", "dmarc@reports.example.net"]);
    let zone = run(&args, "zone");
    assert!(zone.contains("; reports.example.net.\t1800\tIN\tMX\t10 inbound-smtp.us-east-1.amazonaws.com."), "{zone}");
    assert!(zone.contains("; example.com._report._dmarc.reports.example.net.\t1800\tIN\tTXT\t\"v=DMARC1\""), "{zone}");
    // The commented lines keep the file loadable in example.com's zone.
    TestServer::start(&[("example.com.", &with_soa(&zone))]).unwrap_or_else(|e| panic!("{e}\n{zone}"));
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--format", "route53"]);
    let o = ses_dmarc(&a);
    assert_eq!(o.status.code(), Some(0));
    let batch: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> =
        batch["Changes"].as_array().unwrap().iter().map(|c| c["ResourceRecordSet"]["Name"].as_str().unwrap()).collect();
    assert!(names.iter().all(|n| n.ends_with("example.com.")), "{names:?}");
    let err = stderr(&o);
    assert!(err.contains("reports.example.net MX left out") && err.contains("_report._dmarc"), "{err}");
    let plan: Value = serde_json::from_str(&run(&args, "json")).unwrap();
    assert_eq!(plan["receive_reports"]["authorization"], "example.com._report._dmarc.reports.example.net");
    let tf = run(&args, "terraform");
    hcl::from_str::<hcl::Body>(&tf).unwrap_or_else(|e| panic!("{e}\n{tf}"));
    assert!(tf.contains("data.aws_caller_identity.current.account_id"), "{tf}");
}

#[test]
fn receive_reports_bad_input_exits_2_and_says_what_to_type() {
    fn plan<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["plan", "example.com", "--region", "us-east-1", "--mail-from", "mail"];
        v.extend_from_slice(extra);
        v
    }
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (plan(&["--reports-bucket", "b-1"]), "--receive-reports"),
        (plan(&["--receive-reports"]), "--reports-bucket NAME"),
        (plan(&["--receive-reports", "--reports-bucket", "Bad_Bucket"]), "not an S3 bucket name"),
        (plan(&["--receive-reports", "--reports-bucket", "ab"]), "3 to 63"),
        (
            vec!["plan", "example.com", "--region", "eu-central-2", "--receive-reports", "--reports-bucket", "b-1"],
            "SES receives mail in none of eu-central-2",
        ),
        (
            plan(&["--receive-reports", "--reports-bucket", "b-1", "--receive-region", "us-gov-west-1"]),
            "does not receive mail in us-gov-west-1",
        ),
        (plan(&["--receive-reports", "--reports-bucket", "b-1", "--receive-region", "ca-west-1"]), "eu-west-1"),
        (plan(&["--receive-reports", "--reports-bucket", "b-1", "--reports-address", "nobody"]), "no `@`"),
        (
            plan(&["--receive-reports", "--reports-bucket", "b-1", "--reports-address", "dmarc@example.com"]),
            "dmarc@dmarc-reports.example.com",
        ),
        (
            plan(&["--receive-reports", "--reports-bucket", "b-1", "--reports-address", "dmarc@mail.example.com"]),
            "MAIL FROM domain mail.example.com",
        ),
        (plan(&["--receive-reports", "--reports-bucket", "b-1", "--account-id", "1234"]), "12 digits"),
        (plan(&["--receive-reports", "--reports-bucket", "b-1", "--receipt-rule-set", "a b"]), "rule set name"),
    ];
    for (args, hint) in &cases {
        let o = ses_dmarc(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(hint), "{args:?}: expected `{hint}` in: {err}");
        assert!(!err.contains("panicked"));
        assert!(o.stdout.is_empty(), "{args:?} printed to stdout");
    }
}
