//! `ses status`, `ses set-mail-from`, `apply --route53` and `--from-ses`: against moto's
//! server for the calls moto implements, and against our own fake SES (AWS's response
//! shapes) for what moto lacks. The DNS side is the in-process test DNS server.

use crate::fake_aws::{FakeAccount, FakeIdentity, FakeSes, FakeState, Moto, ses_dmarc_aws, ses_dmarc_aws_data};
use crate::util::{stderr, stdout};
use serde_json::Value;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn dns() -> ses_dmarc_dns::testing::TestServer {
    ses_dmarc_dns::testing::TestServer::start_zone_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/tests/fixtures/zones"),
        0,
    )
    .unwrap()
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn tokens(names: &[&str]) -> Vec<String> {
    names.iter().map(|t| t.to_string()).collect()
}

fn identity(dkim_v1: &'static str, dkim_v2: &'static str) -> FakeIdentity {
    FakeIdentity {
        verification: "Success",
        dkim_status_v1: dkim_v1,
        dkim_status_v2: dkim_v2,
        dkim_enabled: true,
        tokens: tokens(&["tokenone", "tokentwo", "tokenthree"]),
        signing_hosted_zone: Some("dkim.amazonses.com".into()),
        origin: "AWS_SES",
        current_key: "RSA_2048_BIT",
        last_key_generation: Some(now() - 3600),
        mail_from: Some(("mail.correct.com".into(), "Success", "UseDefaultValue")),
        regions: vec![],
    }
}

fn codes(region: &Value) -> Vec<String> {
    region["advice"].as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap().to_string()).collect()
}

#[test]
fn ses_status_explains_every_state() {
    let mut state = FakeState::default();
    let mut not_started = identity("NotStarted", "NOT_STARTED");
    not_started.tokens.clear();
    not_started.verification = "Pending";
    not_started.mail_from = None;
    state.identities.insert("notstarted.test".into(), not_started);
    let mut pending = identity("Pending", "PENDING");
    pending.last_key_generation = Some(now() - 80 * 3600 - 60);
    pending.mail_from = Some(("mail.pending.test".into(), "Pending", "RejectMessage"));
    state.identities.insert("pending.test".into(), pending);
    state.identities.insert("failed.test".into(), identity("Failed", "FAILED"));
    state.identities.insert("tempfail.test".into(), identity("TemporaryFailure", "TEMPORARY_FAILURE"));
    let mut success = identity("Success", "SUCCESS");
    success.signing_hosted_zone = Some("dkim.eu-south-1.amazonses.com".into());
    success.current_key = "RSA_1024_BIT";
    state.identities.insert("success.test".into(), success);
    let mut replica = identity("Success", "SUCCESS");
    replica.origin = "AWS_SES_AF_SOUTH_1";
    replica.signing_hosted_zone = None;
    state.identities.insert("replica.test".into(), replica);
    let fake = FakeSes::start(state);
    let status = |domain: &str, region: &str| {
        let o = ses_dmarc_aws(&[
            "ses",
            "status",
            domain,
            "--region",
            region,
            "--endpoint-url",
            &fake.url,
            "--no-dns",
            "--format",
            "json",
        ]);
        (o.status.code(), json_of(&o))
    };

    let (code, v) = status("notstarted.test", "eu-west-1");
    assert_eq!(code, Some(1));
    let r = &v["regions"][0];
    assert_eq!(codes(r), ["identity-verification", "dkim-not-started", "mail-from-not-set"]);

    let (code, v) = status("pending.test", "eu-west-1");
    assert_eq!(code, Some(1));
    let r = &v["regions"][0];
    assert_eq!(codes(r)[0], "dkim-pending-given-up");
    assert!(r["advice"][0]["message"].as_str().unwrap().starts_with("DKIM PENDING for 80 hours: SES gives up at 72."));
    assert!(codes(r).contains(&"mail-from-pending".to_string()));
    assert!(r["advice"].to_string().contains("MailFromDomainNotVerified"), "REJECT_MESSAGE explained");
    assert_eq!(r["identity"]["mail_from"]["behavior_on_mx_failure"], "REJECT_MESSAGE");

    let (_, v) = status("failed.test", "eu-west-1");
    assert_eq!(codes(&v["regions"][0])[0], "dkim-failed");
    let (_, v) = status("tempfail.test", "eu-west-1");
    assert_eq!(codes(&v["regions"][0])[0], "dkim-temporary-failure");

    // SigningHostedZone from SES v2 decides the CNAME targets; a 1024-bit key is noted.
    let (code, v) = status("success.test", "eu-west-1");
    assert_eq!(code, Some(0), "{v}");
    let r = &v["regions"][0];
    assert_eq!(codes(r), ["dkim-verified", "dkim-key-1024", "mail-from-verified"]);
    assert_eq!(r["identity"]["dkim"]["signing_hosted_zone"], "dkim.eu-south-1.amazonses.com");
    assert_eq!(r["records"][0]["value"], "tokenone.dkim.eu-south-1.amazonses.com");
    assert_eq!(
        r["records"][3],
        serde_json::json!({"name": "mail.correct.com", "rtype": "MX", "value": "feedback-smtp.eu-west-1.amazonses.com", "dns": "unchecked", "found": []})
    );

    // A Deterministic Easy DKIM replica in us-west-2 of af-south-1: the parent's zone.
    let (_, v) = status("replica.test", "us-west-2");
    let r = &v["regions"][0];
    assert_eq!(codes(r)[0], "dkim-deed-replica");
    assert_eq!(r["records"][0]["value"], "tokenone.dkim.af-south-1.amazonses.com");

    let (code, v) = status("missing.test", "eu-west-1");
    assert_eq!((code, codes(&v["regions"][0])), (Some(1), vec!["identity-missing".to_string()]));

    // Human output: the state, the records, the advice.
    let o =
        ses_dmarc_aws(&["ses", "status", "pending.test", "-r", "eu-west-1", "--endpoint-url", &fake.url, "--no-dns"]);
    let text = stdout(&o);
    assert!(text.contains("DKIM       PENDING, signing on, origin AWS_SES, key RSA_2048_BIT"), "{text}");
    assert!(text.contains("MAIL FROM  mail.pending.test PENDING, BehaviorOnMxFailure REJECT_MESSAGE"), "{text}");
}

#[test]
fn ses_status_checks_each_cname_in_dns() {
    let mut state = FakeState::default();
    let mut id = identity("Pending", "PENDING");
    id.tokens = tokens(&["tokenone", "tokentwo", "tokenfour"]);
    state.identities.insert("correct.com".into(), id);
    let fake = FakeSes::start(state);
    let server = dns();
    let o = ses_dmarc_aws(&[
        "ses",
        "status",
        "correct.com",
        "--region",
        "us-east-1",
        "--endpoint-url",
        &fake.url,
        "--nameserver",
        &server.addr().to_string(),
        "--format",
        "json",
    ]);
    let v = json_of(&o);
    let dns: Vec<&str> =
        v["regions"][0]["records"].as_array().unwrap().iter().map(|r| r["dns"].as_str().unwrap()).collect();
    assert_eq!(dns, ["ok", "ok", "missing", "ok"], "{v}");
    let o = ses_dmarc_aws(&[
        "ses",
        "status",
        "correct.com",
        "--region",
        "eu-west-1",
        "--endpoint-url",
        &fake.url,
        "--nameserver",
        &server.addr().to_string(),
    ]);
    let text = stdout(&o);
    assert!(text.contains("missing tokenfour._domainkey.correct.com"), "{text}");
    assert!(
        text.contains("ok*     mail.correct.com") && text.contains("another SES region's feedback host also serves"),
        "MX names us-east-1, SES is in eu-west-1: {text}"
    );
}

#[test]
fn aws_errors_are_said_in_plain_words() {
    let fake = FakeSes::start(FakeState { fail_with: Some((400, "AccessDenied")), ..Default::default() });
    let o = ses_dmarc_aws(&["ses", "status", "x.test", "-r", "eu-west-1", "--endpoint-url", &fake.url, "--no-dns"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("lack the `ses:GetIdentityVerificationAttributes` permission"), "{}", stdout(&o));
    let fake = FakeSes::start(FakeState { fail_with: Some((403, "InvalidClientTokenId")), ..Default::default() });
    let o = ses_dmarc_aws(&[
        "ses",
        "status",
        "x.test",
        "-r",
        "eu-west-1",
        "--endpoint-url",
        &fake.url,
        "--no-dns",
        "-f",
        "json",
    ]);
    assert!(json_of(&o)["regions"][0]["error"].as_str().unwrap().starts_with("AWS rejected the credentials"));
    let fake = FakeSes::start(FakeState { fail_with: Some((400, "Throttling")), ..Default::default() });
    let o = ses_dmarc_aws(&[
        "ses",
        "status",
        "x.test",
        "-r",
        "eu-west-1",
        "--endpoint-url",
        &fake.url,
        "--no-dns",
        "--no-account",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("AWS is throttling GetIdentityVerificationAttributes"), "{}", stdout(&o));
    assert!(fake.state.lock().unwrap().requests.len() > 1, "the SDK retried before giving up");
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = ses_dmarc_aws(&[
        "ses",
        "status",
        "x.test",
        "-r",
        "eu-west-1",
        "--endpoint-url",
        &format!("http://{closed}"),
        "--no-dns",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("cannot reach http://127.0.0.1"), "{}", stdout(&o));
    // Bad input never reaches AWS.
    let o = ses_dmarc_aws(&["ses", "status", "x.test", "-r", "eu-wset-1", "--no-dns"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean eu-west-1"), "{}", stderr(&o));
}

#[test]
fn moto_ses_status_set_mail_from_and_from_ses() {
    let Some(moto) = Moto::start() else { return };
    let server = dns();
    let ns = server.addr().to_string();
    let moto_tokens: Vec<String> = serde_json::from_str(&moto.boto(
        "ses.verify_domain_identity(Domain='correct.com')\nses.verify_domain_identity(Domain='mx-missing.com')\n\
         print(json.dumps(ses.verify_domain_dkim(Domain='correct.com')['DkimTokens']))",
    ))
    .unwrap();
    assert_eq!(moto_tokens.len(), 3);
    let status = ses_dmarc_aws(&[
        "ses",
        "status",
        "correct.com",
        "-r",
        "eu-west-1",
        "--endpoint-url",
        &moto.url,
        "--no-dns",
        "-f",
        "json",
    ]);
    let v = json_of(&status);
    let id = &v["regions"][0]["identity"];
    assert_eq!(id["exists"], true, "{v}");
    assert_eq!(id["dkim"]["tokens"], serde_json::json!(moto_tokens));
    assert_eq!(id["dkim"]["status"], "SUCCESS");
    assert!(id["mail_from"].is_null());
    assert!(codes(&v["regions"][0]).contains(&"mail-from-not-set".to_string()));

    // set-mail-from refuses while the MX is missing, and changes nothing in SES.
    let refused = ses_dmarc_aws(&[
        "ses",
        "set-mail-from",
        "mx-missing.com",
        "-r",
        "eu-west-1",
        "--mail-from",
        "mail",
        "--endpoint-url",
        &moto.url,
        "--nameserver",
        &ns,
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("mail.mx-missing.com has no MX"), "{}", stderr(&refused));
    let attrs = moto.boto("print(json.dumps(ses.get_identity_mail_from_domain_attributes(Identities=['mx-missing.com'])['MailFromDomainAttributes']))");
    assert!(!attrs.contains("\"MailFromDomain\""), "{attrs}");
    // correct.com has its MX (naming us-east-1: another SES region, accepted) and SPF.
    let done = ses_dmarc_aws(&[
        "ses",
        "set-mail-from",
        "correct.com",
        "-r",
        "eu-west-1",
        "--mail-from",
        "mail",
        "--on-mx-failure",
        "reject",
        "--endpoint-url",
        &moto.url,
        "--nameserver",
        &ns,
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(stdout(&done).contains("REJECT_MESSAGE"));
    let attrs: Value = serde_json::from_str(&moto.boto(
        "print(json.dumps(ses.get_identity_mail_from_domain_attributes(Identities=['correct.com'])['MailFromDomainAttributes']['correct.com']))",
    ))
    .unwrap();
    assert_eq!(attrs["MailFromDomain"], "mail.correct.com");
    assert_eq!(attrs["BehaviorOnMXFailure"], "RejectMessage");
    // --force sends even without the records.
    let forced = ses_dmarc_aws(&[
        "ses",
        "set-mail-from",
        "mx-missing.com",
        "-r",
        "eu-west-1",
        "--mail-from",
        "bounce",
        "--force",
        "--endpoint-url",
        &moto.url,
        "--nameserver",
        &ns,
    ]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));

    // plan --from-ses: tokens and MAIL FROM from SES.
    let plan = ses_dmarc_aws(&[
        "plan",
        "correct.com",
        "-r",
        "eu-west-1",
        "--from-ses",
        "--endpoint-url",
        &moto.url,
        "--format",
        "json",
    ]);
    let p = json_of(&plan);
    assert_eq!(p["mail_from"], "mail.correct.com", "{p}");
    let names: Vec<&str> = p["records"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for t in &moto_tokens {
        assert!(names.contains(&format!("{t}._domainkey.correct.com").as_str()), "{names:?}");
    }
    // check --from-ses: moto's random tokens are not in DNS, so their CNAMEs are missing.
    let check = ses_dmarc_aws(&[
        "check",
        "correct.com",
        "-r",
        "eu-west-1",
        "--from-ses",
        "--endpoint-url",
        &moto.url,
        "--nameserver",
        &ns,
        "--format",
        "json",
    ]);
    let c = json_of(&check);
    let missing = c["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "dkim-cname-missing").count();
    assert_eq!(missing, 3, "{c}");
    // An identity SES does not know.
    let unknown = ses_dmarc_aws(&["plan", "nobody.test", "-r", "eu-west-1", "--from-ses", "--endpoint-url", &moto.url]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("nobody.test is not an SES identity in eu-west-1"), "{}", stderr(&unknown));
}

#[test]
fn moto_route53_apply_diff_upsert_merge_and_idempotence() {
    let Some(moto) = Moto::start() else { return };
    let zone_id = moto.boto(
        "z = route53.create_hosted_zone(Name='example.com', CallerReference='a')['HostedZone']['Id']\n\
         route53.create_hosted_zone(Name='other.org', CallerReference='b')\n\
         route53.change_resource_record_sets(HostedZoneId=z, ChangeBatch={'Changes': [\n\
           {'Action': 'CREATE', 'ResourceRecordSet': {'Name': 'mail.example.com', 'Type': 'TXT', 'TTL': 300,\n\
            'ResourceRecords': [{'Value': '\"v=spf1 include:_spf.google.com -all\"'}, {'Value': '\"site-verification=1\"'}]}},\n\
           {'Action': 'CREATE', 'ResourceRecordSet': {'Name': 'tok1._domainkey.example.com', 'Type': 'CNAME', 'TTL': 300,\n\
            'ResourceRecords': [{'Value': 'tok1.dkim.wrong.example'}]}}]})\n\
         print(z)",
    );
    let zone_id = zone_id.trim().to_string();
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            "example.com",
            "--route53",
            "-r",
            "us-east-1",
            "--mail-from",
            "mail",
            "--dkim-token",
            "tok1",
            "--dkim-token",
            "tok2",
            "--dkim-token",
            "tok3",
            "--rua",
            "mailto:dmarc@example.com",
            "--endpoint-url",
            &moto.url,
            "--wait",
            "10",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = ses_dmarc_aws(&args);
        (o.status.code(), json_of(&o))
    };
    let kinds = |v: &Value| -> Vec<String> {
        v["changes"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap().to_string()).collect()
    };
    let listed = || -> Value {
        serde_json::from_str(&moto.boto(&format!(
            "print(json.dumps({{s['Name'] + ' ' + s['Type']: [r['Value'] for r in s['ResourceRecords']] for s in route53.list_resource_record_sets(HostedZoneId='{zone_id}')['ResourceRecordSets']}}))"
        )))
        .unwrap()
    };
    let before = listed();
    let (code, dry) = apply(&["--dry-run"]);
    assert_eq!(code, Some(0), "{dry}");
    assert_eq!(dry["hosted_zone"][0], "example.com.");
    assert_eq!(kinds(&dry), ["create", "update", "update", "create", "create", "create"]);
    assert_eq!(dry["submitted"], 6);
    assert_eq!(listed(), before, "a dry run changes nothing");

    let (code, done) = apply(&[]);
    assert_eq!(code, Some(0), "{done}");
    assert_eq!(done["insync"], true);
    let after = listed();
    assert_eq!(
        after["mail.example.com. TXT"],
        serde_json::json!(["\"v=spf1 include:_spf.google.com include:amazonses.com -all\"", "\"site-verification=1\""]),
        "SPF merged, the other TXT kept: {after}"
    );
    assert_eq!(after["mail.example.com. MX"], serde_json::json!(["10 feedback-smtp.us-east-1.amazonses.com."]));
    assert_eq!(after["tok1._domainkey.example.com. CNAME"], serde_json::json!(["tok1.dkim.amazonses.com."]));
    assert_eq!(
        after["_dmarc.example.com. TXT"],
        serde_json::json!(["\"v=DMARC1; p=none; rua=mailto:dmarc@example.com\""])
    );

    let (code, again) = apply(&[]);
    assert_eq!(code, Some(0), "{again}");
    assert!(kinds(&again).iter().all(|k| k == "unchanged"), "{again}");
    assert_eq!(again["submitted"], 0);
    assert_eq!(listed(), after);

    // A stricter DMARC policy in the plan does not replace the published one.
    let (code, strict) = apply(&["--policy", "reject"]);
    assert_eq!(code, Some(1));
    assert_eq!(kinds(&strict).last().unwrap(), "conflict");

    // A zone that does not hold the domain, and a domain without a zone.
    let other = moto
        .boto("print([z['Id'] for z in route53.list_hosted_zones()['HostedZones'] if z['Name'] == 'other.org.'][0])");
    let (code, wrong) = apply(&["--hosted-zone-id", other.trim()]);
    assert_eq!(code, Some(3), "{wrong}");
    assert!(wrong["error"].as_str().unwrap().contains("does not hold example.com"), "{wrong}");
    let o = ses_dmarc_aws(&["apply", "nozone.org", "--route53", "-r", "us-east-1", "--endpoint-url", &moto.url]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no public Route 53 hosted zone holds nozone.org"), "{}", stderr(&o));
}

/// `days` daily reports for example.com at p=none, ending yesterday: SES mail, all aligned.
fn aligned_reports(dir: &Path, days: i64) {
    for d in 0..days {
        let begin = (now() / 86_400 - days + d) * 86_400;
        std::fs::write(
            dir.join(format!("r{d}.xml")),
            format!(
                "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>google.com</org_name><report_id>{d}</report_id>\
                 <date_range><begin>{begin}</begin><end>{}</end></date_range></report_metadata>\
                 <policy_published><domain>example.com</domain><p>none</p></policy_published>\
                 <record><row><source_ip>54.240.8.1</source_ip><count>700</count><policy_evaluated><disposition>none</disposition>\
                 <dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>\
                 <auth_results><dkim><domain>example.com</domain><result>pass</result></dkim><dkim><domain>amazonses.com</domain>\
                 <result>pass</result></dkim><spf><domain>mail.example.com</domain><result>pass</result></spf></auth_results></record></feedback>",
                begin + 86_400
            ),
        )
        .unwrap();
    }
}

#[test]
fn moto_rollout_apply_replaces_only_the_dmarc_record() {
    let Some(moto) = Moto::start() else { return };
    let dir = ses_dmarc_testkit::TempDir::new("rollout-apply");
    // What the world sees: p=none (the zone file the test DNS server answers from).
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    std::fs::write(
        zones.join("example.com.zone"),
        "$TTL 300\n@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n\
         _dmarc TXT \"v=DMARC1; p=none; rua=mailto:dmarc@example.com\"\n",
    )
    .unwrap();
    let server = ses_dmarc_dns::testing::TestServer::start_zone_dir(&zones, 0).unwrap();
    let ns = server.addr().to_string();
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    aligned_reports(&reports, 15);
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let o = crate::util::ses_dmarc(&["reports", "ingest", reports.to_str().unwrap(), "--database", &db]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The same in Route 53, beside other records and another TXT value at _dmarc.
    let zone_id = moto
        .boto(
            "z = route53.create_hosted_zone(Name='example.com', CallerReference='r')['HostedZone']['Id']\n\
             route53.change_resource_record_sets(HostedZoneId=z, ChangeBatch={'Changes': [\n\
               {'Action': 'CREATE', 'ResourceRecordSet': {'Name': '_dmarc.example.com', 'Type': 'TXT', 'TTL': 300,\n\
                'ResourceRecords': [{'Value': '\"v=DMARC1; p=none; rua=mailto:dmarc@example.com\"'}, {'Value': '\"note=kept\"'}]}},\n\
               {'Action': 'CREATE', 'ResourceRecordSet': {'Name': 'mail.example.com', 'Type': 'MX', 'TTL': 300,\n\
                'ResourceRecords': [{'Value': '10 feedback-smtp.us-east-1.amazonses.com.'}]}},\n\
               {'Action': 'CREATE', 'ResourceRecordSet': {'Name': 'mail.example.com', 'Type': 'TXT', 'TTL': 300,\n\
                'ResourceRecords': [{'Value': '\"v=spf1 include:amazonses.com ~all\"'}]}}]})\n\
             print(z)",
        )
        .trim()
        .to_string();
    let listed = || -> Value {
        serde_json::from_str(&moto.boto(&format!(
            "print(json.dumps({{s['Name'] + ' ' + s['Type']: [r['Value'] for r in s['ResourceRecords']] for s in route53.list_resource_record_sets(HostedZoneId='{zone_id}')['ResourceRecordSets']}}))"
        )))
        .unwrap()
    };
    let rollout = |extra: &[&str]| {
        let mut args = vec![
            "rollout",
            "example.com",
            "--database",
            &db,
            "--nameserver",
            &ns,
            "--apply",
            "--route53",
            "--endpoint-url",
            &moto.url,
            "--wait",
            "10",
        ];
        args.extend_from_slice(extra);
        ses_dmarc_aws(&args)
    };
    let next = "\"v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@example.com; t=y\"";
    let before = listed();

    let o = rollout(&["--dry-run", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["status"], "ready");
    let changes = v["apply"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "only the DMARC record: {v}");
    assert_eq!(changes[0]["kind"], "update");
    assert_eq!(changes[0]["name"], "_dmarc.example.com.");
    assert_eq!(
        changes[0]["before"],
        serde_json::json!(["\"v=DMARC1; p=none; rua=mailto:dmarc@example.com\"", "\"note=kept\""])
    );
    assert_eq!(changes[0]["after"], serde_json::json!([next, "\"note=kept\""]));
    assert_eq!((&v["apply"]["dry_run"], &v["apply"]["submitted"]), (&Value::from(true), &Value::from(1)));
    assert_eq!(listed(), before, "a dry run changes nothing");
    let o = rollout(&["--dry-run"]);
    let text = stdout(&o);
    assert!(text.contains("update    _dmarc.example.com. TXT"), "{text}");
    assert!(text.contains("- \"v=DMARC1; p=none; rua=mailto:dmarc@example.com\""), "{text}");
    assert!(text.contains(&format!("+ {next}")), "{text}");
    assert!(text.contains("Dry run: 1 change would be submitted; nothing was changed."), "{text}");

    let o = rollout(&["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(json_of(&o)["apply"]["insync"], true);
    let after = listed();
    assert_eq!(after["_dmarc.example.com. TXT"], serde_json::json!([next, "\"note=kept\""]));
    let mut unchanged = after.clone();
    unchanged["_dmarc.example.com. TXT"] = before["_dmarc.example.com. TXT"].clone();
    assert_eq!(unchanged, before, "nothing else in the zone changed");

    // Again (DNS has not caught up yet): the zone holds the record, nothing to change.
    let o = rollout(&["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json_of(&o);
    assert_eq!(
        (&v["apply"]["changes"][0]["kind"], &v["apply"]["submitted"]),
        (&Value::from("unchanged"), &Value::from(0))
    );

    // Someone published another policy in the zone meanwhile: it is not the record the
    // rollout judged (DNS answers p=none), so it is left alone, exit 1.
    moto.boto(&format!(
        "route53.change_resource_record_sets(HostedZoneId='{zone_id}', ChangeBatch={{'Changes': [\n\
           {{'Action': 'UPSERT', 'ResourceRecordSet': {{'Name': '_dmarc.example.com', 'Type': 'TXT', 'TTL': 300,\n\
            'ResourceRecords': [{{'Value': '\"v=DMARC1; p=reject\"'}}]}}}}]}})"
    ));
    let changed = listed();
    let o = rollout(&["--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json_of(&o);
    assert_eq!(v["apply"]["changes"][0]["kind"], "conflict");
    let note = v["apply"]["changes"][0]["note"].as_str().unwrap();
    assert!(note.contains("the zone holds v=DMARC1; p=reject, but DNS answered v=DMARC1; p=none"), "{v}");
    assert_eq!(listed(), changed);
}

const BOUNCE: &str = "Reputation.BounceRate";
const COMPLAINT: &str = "Reputation.ComplaintRate";

fn account_codes(region: &Value) -> Vec<String> {
    region["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

fn permissions(region: &Value) -> Vec<String> {
    region["errors"].as_array().unwrap().iter().map(|e| e["permission"].as_str().unwrap().to_string()).collect()
}

#[test]
fn ses_account_sandbox_production_paused_and_rates_per_region() {
    let now = now();
    let mut state = FakeState::default();
    // eu-west-1: a new account in the sandbox, its request for production access pending;
    // the bounce rate's latest value below 2%, the complaint rate near the review threshold.
    let mut sandbox = FakeAccount::sandbox();
    sandbox.review = Some(("PENDING", "case-123"));
    state.accounts.insert("eu-west-1".into(), sandbox);
    state.metric("eu-west-1", BOUNCE, None, &[(now - 7200, 0.012), (now - 90_000, 0.03)]);
    state.metric("eu-west-1", COMPLAINT, None, &[(now - 7200, 0.0008)]);
    // us-east-1: production; the rates above the thresholds, a configuration set's too.
    state.accounts.insert("us-east-1".into(), FakeAccount::default());
    state.metric("us-east-1", BOUNCE, None, &[(now - 3600, 0.052)]);
    state.metric("us-east-1", COMPLAINT, None, &[(now - 3600, 0.0051)]);
    state.metric("us-east-1", BOUNCE, Some("marketing"), &[(now - 3600, 0.11)]);
    state.metric("us-east-1", COMPLAINT, Some("marketing"), &[(now - 3600, 0.0002)]);
    // us-west-2: AWS paused sending; no rates.
    state.accounts.insert(
        "us-west-2".into(),
        FakeAccount { sending_enabled: false, enforcement_status: "SHUTDOWN", ..Default::default() },
    );
    // ap-southeast-2: under review, the rates just below the review thresholds.
    state
        .accounts
        .insert("ap-southeast-2".into(), FakeAccount { enforcement_status: "PROBATION", ..Default::default() });
    state.metric("ap-southeast-2", BOUNCE, None, &[(now - 3600, 0.0499)]);
    state.metric("ap-southeast-2", COMPLAINT, None, &[(now - 3600, 0.00099)]);
    // ca-central-1: healthy; its only value older than the 14 days looked at.
    state.metric("ca-central-1", BOUNCE, None, &[(now - 20 * 86_400, 0.5)]);
    let fake = FakeSes::start(state);
    let account = |regions: &[&str], format: &str| {
        let mut args = vec!["ses", "account", "--endpoint-url", &fake.url, "--format", format];
        for r in regions {
            args.extend(["--region", r]);
        }
        ses_dmarc_aws(&args)
    };
    let o = account(&["eu-west-1", "us-east-1,us-west-2", "ap-southeast-2", "ca-central-1"], "json");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_of(&o);
    let regions: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["region"].as_str().unwrap()).collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2", "ca-central-1"]);

    let eu = &v[0];
    assert_eq!(eu["production_access"], false);
    assert_eq!((eu["max_24h_send"].as_f64(), eu["max_send_rate"].as_f64()), (Some(200.0), Some(1.0)));
    assert_eq!(eu["production_access_request"]["status"], "PENDING");
    assert_eq!(eu["bounce_rate"].as_f64(), Some(0.012), "the latest value: {eu}");
    assert_eq!((eu["bounce"]["level"].as_str(), eu["complaint"]["level"].as_str()), (Some("ok"), Some("near")));
    assert_eq!(account_codes(eu), ["ses-sandbox", "ses-complaint-rate-near"]);
    let sandbox = eu["findings"][0]["message"].as_str().unwrap();
    for words in
        ["only to verified addresses", "200 messages a day, 1 a second", "per region", "request it early", "pending"]
    {
        assert!(sandbox.contains(words), "{words}: {sandbox}");
    }
    assert!(eu["errors"].as_array().unwrap().is_empty(), "{eu}");

    let us = &v[1];
    assert_eq!((us["production_access"].as_bool(), us["sending_enabled"].as_bool()), (Some(true), Some(true)));
    assert_eq!(us["enforcement_status"], "HEALTHY");
    assert_eq!((us["bounce_rate"].as_f64(), us["complaint_rate"].as_f64()), (Some(0.052), Some(0.0051)));
    assert_eq!(
        account_codes(us),
        ["ses-production-access", "ses-bounce-rate-review", "ses-complaint-rate-pause", "ses-bounce-rate-pause"]
    );
    assert_eq!(us["configuration_sets"][0]["name"], "marketing");
    assert_eq!(us["configuration_sets"][0]["bounce"]["level"], "pause");
    assert!(us["findings"][3]["message"].as_str().unwrap().contains("Configuration set marketing's bounce rate"));
    assert!(us["findings"][1]["message"].as_str().unwrap().contains("5.20%"), "{us}");

    let west = &v[2];
    assert_eq!(
        account_codes(west),
        ["ses-production-access", "ses-sending-paused", "ses-enforcement-shutdown", "ses-rates-unknown"]
    );
    assert!(west["findings"][1]["message"].as_str().unwrap().contains("AWS paused it"), "{west}");
    assert!(west["bounce_rate"].is_null() && west["complaint_rate"].is_null());

    let ap = &v[3];
    assert_eq!(
        account_codes(ap),
        ["ses-production-access", "ses-enforcement-probation", "ses-bounce-rate-near", "ses-complaint-rate-near"]
    );

    let ca = &v[4];
    assert!(ca["bounce_rate"].is_null(), "a value older than 14 days is not the current rate: {ca}");
    assert_eq!(account_codes(ca), ["ses-production-access", "ses-rates-unknown"]);

    // A healthy region alone: nothing to do.
    let o = account(&["ca-central-1"], "human");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Plain words.
    let o = account(&["eu-west-1", "us-west-2"], "human");
    let text = stdout(&o);
    assert!(text.contains("SES account in eu-west-1"), "{text}");
    assert!(text.contains("access       sandbox (200 a day, 1 a second; 3 sent in the last 24 hours)"), "{text}");
    assert!(text.contains("sending      paused"), "{text}");
    assert!(text.contains("complaint    0.080% near (review at 0.100%, pause at 0.500%"), "{text}");
    assert!(text.contains("[ses-enforcement-shutdown]"), "{text}");
    let asked: Vec<String> = fake
        .state
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        asked.contains(&"us-west-2 GetAccount".to_string()) && asked.contains(&"us-west-2 GetMetricData".to_string()),
        "{asked:?}"
    );
}

#[test]
fn ses_account_access_denied_names_the_permission_and_shows_the_rest() {
    let now = now();
    let mut state = FakeState::default();
    state.fail_ops.insert("GetMetricData", (400, "AccessDenied"));
    state.fail_ops.insert("ListMetrics", (400, "AccessDenied"));
    state.metric("us-east-1", BOUNCE, None, &[(now - 3600, 0.01)]);
    let fake = FakeSes::start(state);
    let run = |args: &[&str]| {
        let mut all = vec!["ses", "account", "--region", "us-east-1", "--endpoint-url", &fake.url];
        all.extend(args);
        ses_dmarc_aws(&all)
    };
    // CloudWatch denied: the account's facts still show; the rates are unknown, and why.
    let o = run(&["-f", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let r = &json_of(&o)[0];
    assert_eq!(r["production_access"], true);
    assert!(r["bounce_rate"].is_null());
    assert_eq!(permissions(r), ["cloudwatch:ListMetrics", "cloudwatch:GetMetricData"]);
    assert_eq!(r["errors"][1]["kind"], "access-denied");
    assert_eq!(account_codes(r), ["ses-permission-missing", "ses-permission-missing", "ses-production-access"]);
    let text = stdout(&run(&[]));
    assert!(text.contains("lack the `cloudwatch:GetMetricData` permission"), "{text}");
    assert!(text.contains("access       production (50000 a day, 14 a second"), "{text}");

    // GetAccount denied: SES v1's quota and sending flag instead; production access unknown.
    fake.state.lock().unwrap().fail_ops = [("GetAccount", (403, "AccessDeniedException"))].into();
    let o = run(&["-f", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let r = &json_of(&o)[0];
    assert!(r["production_access"].is_null() && r["enforcement_status"].is_null(), "{r}");
    assert_eq!((r["max_24h_send"].as_f64(), r["sending_enabled"].as_bool()), (Some(50_000.0), Some(true)));
    assert_eq!(r["bounce_rate"].as_f64(), Some(0.01));
    assert_eq!(permissions(r), ["ses:GetAccount"]);
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("lack the `ses:GetAccount` permission"), "{r}");

    // Everything denied: each call names its permission; exit 3.
    fake.state.lock().unwrap().fail_with = Some((400, "AccessDenied"));
    let o = run(&["-f", "json"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        permissions(&json_of(&o)[0]),
        [
            "ses:GetAccount",
            "ses:GetSendQuota",
            "ses:GetAccountSendingEnabled",
            "cloudwatch:ListMetrics",
            "cloudwatch:GetMetricData"
        ]
    );

    // `ses status`: the identity shows whole; the account section names what it lacks.
    let mut state = FakeState::default();
    state.identities.insert("success.test".into(), identity("Success", "SUCCESS"));
    state.fail_ops.insert("GetAccount", (403, "AccessDeniedException"));
    state.fail_ops.insert("GetAccountSendingEnabled", (403, "AccessDenied"));
    let fake = FakeSes::start(state);
    let args = ["ses", "status", "success.test", "-r", "eu-west-1", "--endpoint-url", &fake.url, "--no-dns"];
    let o = ses_dmarc_aws(&args);
    assert_eq!(o.status.code(), Some(0), "the identity is complete: {}", stdout(&o));
    let text = stdout(&o);
    assert!(text.contains("DKIM       SUCCESS"), "{text}");
    assert!(text.contains("the SES account in eu-west-1:") && text.contains("`ses:GetAccount`"), "{text}");
    let mut json_args = args.to_vec();
    json_args.extend(["-f", "json"]);
    let v = json_of(&ses_dmarc_aws(&json_args));
    assert_eq!(permissions(&v["regions"][0]["account"]), ["ses:GetAccount", "ses:GetAccountSendingEnabled"]);
    assert_eq!(v["regions"][0]["account"]["max_24h_send"].as_f64(), Some(50_000.0));
}

#[test]
fn ses_account_bad_input_is_a_clear_error() {
    for (args, hint) in [
        (vec!["ses", "account"], "--region"),
        (vec!["ses", "account", "--region", "us-east1"], "did you mean us-east-1"),
        (vec!["ses", "account", "--region", "us-east-1", "--format", "xml"], "xml"),
        (vec!["ses", "status", "x.test", "--region", "us-east-1", "--days", "0"], "--days"),
        (
            vec![
                "ses",
                "status",
                "x.test",
                "--region",
                "us-east-1",
                "--no-dns",
                "--database",
                "sqlite:///nonexistent/ses-dmarc/db.sqlite",
            ],
            "no database at",
        ),
    ] {
        let o = ses_dmarc_aws(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(hint), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

/// One aggregate report for regional.test: (source IP, messages, envelope domain, SES).
fn regional_report(end: i64, rows: &[(&str, u64, &str, bool)]) -> String {
    let records: String = rows
        .iter()
        .map(|(ip, n, envelope, ses)| {
            let auth = if *ses {
                format!(
                    "<dkim><domain>regional.test</domain><selector>tokenone</selector><result>pass</result></dkim>\
                     <dkim><domain>amazonses.com</domain><result>pass</result></dkim><spf><domain>{envelope}</domain><result>pass</result></spf>"
                )
            } else {
                format!("<spf><domain>{envelope}</domain><result>pass</result></spf>")
            };
            format!(
                "<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>\
                 <identifiers><envelope_from>{envelope}</envelope_from><header_from>regional.test</header_from></identifiers><auth_results>{auth}</auth_results></record>"
            )
        })
        .collect();
    format!(
        "<feedback><report_metadata><org_name>receiver.test</org_name><report_id>regional-1</report_id><date_range><begin>{}</begin><end>{end}</end></date_range></report_metadata>\
         <policy_published><domain>regional.test</domain><p>none</p></policy_published>{records}</feedback>",
        end - 86_400
    )
}

#[test]
fn ses_status_shows_the_account_and_the_regions_the_reports_show_ses_sending_from() {
    let dir = ses_dmarc_testkit::TempDir::new("ses-status-regions");
    let mut state = FakeState::default();
    let mut id = identity("Success", "SUCCESS");
    id.regions = vec!["eu-west-1"];
    state.identities.insert("regional.test".into(), id);
    state.accounts.insert("us-west-2".into(), FakeAccount::sandbox());
    let fake = FakeSes::start(state);
    let report = dir.join("report.xml");
    std::fs::write(
        &report,
        regional_report(
            now() - 86_400,
            &[
                ("192.0.2.1", 100, "eu-west-1.amazonses.com", true),
                ("192.0.2.2", 20, "us-west-2.amazonses.com", true),
                ("192.0.2.3", 1, "ap-south-1.amazonses.com", true),
                ("192.0.2.4", 5, "amazonses.com", true),
                // A custom MAIL FROM: only the sending IP's reverse name tells the region.
                ("54.240.8.1", 8, "mail.regional.test", true),
                ("198.51.100.9", 7, "elsewhere.test", false),
            ],
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("db.sqlite").display());
    let o = ses_dmarc_aws(&["reports", "ingest", report.to_str().unwrap(), "--database", &db]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let args = [
        "ses",
        "status",
        "regional.test",
        "--region",
        "eu-west-1",
        "--region",
        "us-west-2",
        "--endpoint-url",
        &fake.url,
        "--no-dns",
        "--database",
        &db,
    ];
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let o = ses_dmarc_aws(&json_args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_of(&o);
    let seen = &v["reports"];
    assert_eq!(
        (seen["days"].as_i64(), seen["ses_messages"].as_u64(), seen["unattributed"].as_u64()),
        (Some(30), Some(134), Some(13))
    );
    let by_region: Vec<(&str, u64)> = seen["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["region"].as_str().unwrap(), r["messages"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_region, [("ap-south-1", 1), ("eu-west-1", 100), ("us-west-2", 20)]);
    assert_eq!(account_codes(&v), ["ses-region-not-checked", "ses-region-unverified"]);
    let unverified = v["findings"][1]["message"].as_str().unwrap();
    assert!(
        unverified.contains("from us-west-2 (20 messages") && unverified.contains("verified in eu-west-1"),
        "{unverified}"
    );
    // Each region's account beside its identity: the sandbox in us-west-2 only.
    assert_eq!(v["regions"][0]["account"]["production_access"], true);
    assert_eq!(v["regions"][1]["account"]["production_access"], false);
    assert_eq!(v["regions"][1]["identity"]["exists"], false);

    let text = stdout(&ses_dmarc_aws(&args));
    assert!(text.contains("SES mail for regional.test in the reports of the last 30 days"), "{text}");
    assert!(
        text.contains(
            "134 messages from SES; by region: ap-south-1 1, eu-west-1 100, us-west-2 20; 13 without a region"
        ),
        "{text}"
    );
    assert!(text.contains("[ses-region-unverified]") && text.contains("--region ap-south-1"), "{text}");

    // With DNS: the forward-confirmed reverse name of 54.240.8.1 names us-west-2.
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    let soa = "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ 3600 IN NS ns.test.\n";
    std::fs::write(
        zones.join("8.240.54.in-addr.arpa.zone"),
        format!("$TTL 300\n{soa}1 PTR a8-1.smtp-out.us-west-2.amazonses.com.\n"),
    )
    .unwrap();
    std::fs::write(zones.join("amazonses.com.zone"), format!("$TTL 300\n{soa}a8-1.smtp-out.us-west-2 A 54.240.8.1\n"))
        .unwrap();
    let server = ses_dmarc_dns::testing::TestServer::start_zone_dir(&zones, 0).unwrap();
    let ns = server.addr().to_string();
    let mut with_dns: Vec<&str> = json_args.iter().copied().filter(|a| *a != "--no-dns").collect();
    with_dns.extend(["--nameserver", &ns]);
    let v = json_of(&ses_dmarc_aws(&with_dns));
    assert_eq!(v["reports"]["unattributed"].as_u64(), Some(5), "{}", v["reports"]);
    assert_eq!(
        (v["reports"]["regions"][2]["region"].as_str(), v["reports"]["regions"][2]["messages"].as_u64()),
        (Some("us-west-2"), Some(28))
    );

    // Without --database: the default database, when it exists; none is created.
    let data = dir.join("data");
    let without_db: Vec<&str> = json_args.iter().copied().filter(|a| *a != "--database" && *a != db).collect();
    let v = json_of(&ses_dmarc_aws_data(&without_db, data.to_str().unwrap()));
    assert!(v["reports"].is_null() && !data.exists(), "{v}");
    let o = ses_dmarc_aws_data(&["reports", "ingest", report.to_str().unwrap()], data.to_str().unwrap());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_of(&ses_dmarc_aws_data(&without_db, data.to_str().unwrap()));
    assert_eq!(v["reports"]["ses_messages"].as_u64(), Some(134), "{v}");

    // --no-account: no account section, no account calls.
    let before = fake.state.lock().unwrap().requests.len();
    let mut no_account = json_args.clone();
    no_account.push("--no-account");
    let v = json_of(&ses_dmarc_aws(&no_account));
    assert!(v["regions"][0].get("account").is_none(), "{v}");
    let requests = fake.state.lock().unwrap().requests[before..].to_vec();
    assert!(!requests.iter().any(|r| r.contains("GetAccount") || r.contains("GetMetricData")), "{requests:?}");
}

#[test]
fn moto_ses_account_falls_back_to_ses_v1_and_says_what_it_lacks() {
    let Some(moto) = Moto::start() else { return };
    // moto implements SES v1's GetSendQuota (sandbox quota, messages sent), not SES v2's
    // GetAccount; CloudWatch answers with no reputation data, if at all.
    moto.boto(
        "for a in ['a@correct.com', 'b@correct.com']: ses.verify_email_identity(EmailAddress=a)\n\
         for i in range(2): ses.send_email(Source='a@correct.com', Destination={'ToAddresses': ['b@correct.com']}, \
         Message={'Subject': {'Data': 'x'}, 'Body': {'Text': {'Data': 'y'}}})\nprint('ok')",
    );
    let o = ses_dmarc_aws(&["ses", "account", "--region", "eu-west-1", "--endpoint-url", &moto.url, "-f", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let r = &json_of(&o)[0];
    assert_eq!((r["max_24h_send"].as_f64(), r["max_send_rate"].as_f64()), (Some(200.0), Some(1.0)), "{r}");
    assert_eq!(r["sent_last_24h"].as_f64(), Some(2.0), "{r}");
    assert!(r["production_access"].is_null(), "unknown, not guessed: {r}");
    let errors: Vec<(&str, &str)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["operation"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    let get_account = errors.iter().find(|(op, _)| *op == "GetAccount").unwrap_or_else(|| panic!("{r}"));
    assert!(get_account.1.contains("does it implement this call"), "{get_account:?}");
    // Older moto did not speak CloudWatch's CBOR protocol (then GetMetricData is an
    // error); since then it answers with no data (then the rates are said to be unknown).
    let rates_unknown = r["findings"].as_array().unwrap().iter().any(|f| f["code"] == "ses-rates-unknown");
    assert!(errors.iter().any(|(op, _)| *op == "GetMetricData") || rates_unknown, "{r}");
    assert!(r["bounce_rate"].is_null() && r["complaint_rate"].is_null(), "unknown, not guessed: {r}");
    assert!(r["notes"].to_string().contains("the sandbox's"), "{r}");
}

#[test]
fn moto_apply_receive_reports_into_s3() {
    let Some(moto) = Moto::start() else { return };
    moto.boto(
        "route53.create_hosted_zone(Name='example.com', CallerReference='r')\n\
         s3.create_bucket(Bucket='example-dmarc', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n\
         s3.put_bucket_policy(Bucket='example-dmarc', Policy=json.dumps({'Version': '2012-10-17', 'Statement': [\n\
           {'Sid': 'Theirs', 'Effect': 'Deny', 'Principal': '*', 'Action': 's3:DeleteBucket', 'Resource': 'arn:aws:s3:::example-dmarc'}]}))\n\
         print('ok')",
    );
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            "example.com",
            "--route53",
            "-r",
            "eu-west-1",
            "--mail-from",
            "mail",
            "--dkim-token",
            "tok1",
            "--dkim-token",
            "tok2",
            "--dkim-token",
            "tok3",
            "--receive-reports",
            "--reports-bucket",
            "example-dmarc",
            "--receive-region",
            "eu-west-1",
            "--endpoint-url",
            &moto.url,
            "--wait",
            "10",
        ];
        args.extend_from_slice(extra);
        ses_dmarc_aws(&args)
    };
    let json = |extra: &[&str]| {
        let mut a = vec!["--account-id", "123456789012", "--format", "json"];
        a.extend_from_slice(extra);
        let o = apply(&a);
        (o.status.code(), json_of(&o))
    };
    let steps = |v: &Value| -> Vec<(String, String)> {
        v["receiving"]["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|s| (s["action"].as_str().unwrap().to_string(), s["kind"].as_str().unwrap().to_string()))
            .collect()
    };
    let state = || -> Value {
        serde_json::from_str(&moto.boto(
            "z = route53.list_hosted_zones()['HostedZones'][0]['Id']\n\
             sets = {s['Name'] + ' ' + s['Type']: [r['Value'] for r in s['ResourceRecords']] for s in route53.list_resource_record_sets(HostedZoneId=z)['ResourceRecordSets']}\n\
             policy = json.loads(s3.get_bucket_policy(Bucket='example-dmarc')['Policy'])\n\
             active = ses.describe_active_receipt_rule_set()\n\
             print(json.dumps({'records': sets, 'policy': policy, 'active': active.get('Metadata', {}).get('Name'),\n\
               'rules': active.get('Rules', []), 'sets': [s['Name'] for s in ses.list_receipt_rule_sets().get('RuleSets', [])]}, default=str))",
        ))
        .unwrap()
    };
    let before = state();
    assert!(before["active"].is_null() && before["sets"] == serde_json::json!([]), "{before}");

    let (code, dry) = json(&["--dry-run"]);
    assert_eq!(code, Some(0), "{dry}");
    let expected = |kinds: [&str; 4]| -> Vec<(String, String)> {
        ["PutBucketPolicy", "CreateReceiptRuleSet", "CreateReceiptRule", "SetActiveReceiptRuleSet"]
            .iter()
            .zip(kinds)
            .map(|(a, k)| (a.to_string(), k.to_string()))
            .collect()
    };
    assert_eq!(steps(&dry), expected(["update", "create", "create", "create"]), "{dry}");
    assert_eq!(state(), before, "a dry run changes nothing");

    let (code, done) = json(&[]);
    assert_eq!(code, Some(0), "{done}");
    assert_eq!(steps(&done), expected(["update", "create", "create", "create"]), "{done}");
    let after = state();
    assert_eq!(
        after["records"]["dmarc-reports.example.com. MX"],
        serde_json::json!(["10 inbound-smtp.eu-west-1.amazonaws.com."]),
        "{after}"
    );
    assert_eq!(
        after["records"]["_dmarc.example.com. TXT"],
        serde_json::json!(["\"v=DMARC1; p=none; rua=mailto:dmarc@dmarc-reports.example.com\""])
    );
    let statements = after["policy"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "theirs kept, ours added: {after}");
    assert_eq!(statements[0]["Sid"], "Theirs");
    assert_eq!(statements[1]["Principal"]["Service"], "ses.amazonaws.com");
    assert_eq!(statements[1]["Resource"], "arn:aws:s3:::example-dmarc/*");
    assert_eq!(
        statements[1]["Condition"]["StringEquals"]["AWS:SourceArn"],
        "arn:aws:ses:eu-west-1:123456789012:receipt-rule-set/ses-dmarc:receipt-rule/ses-dmarc-reports"
    );
    assert_eq!(after["active"], "ses-dmarc");
    let rule = &after["rules"][0];
    assert_eq!((&rule["Name"], &rule["Enabled"]), (&"ses-dmarc-reports".into(), &true.into()), "{after}");
    assert_eq!(rule["Recipients"], serde_json::json!(["dmarc@dmarc-reports.example.com"]));
    assert_eq!(rule["Actions"][0]["S3Action"]["BucketName"], "example-dmarc");
    assert_eq!(rule["Actions"][0]["S3Action"]["ObjectKeyPrefix"], "dmarc/");

    // Again: nothing changes (the account id from STS this time: moto's is 123456789012).
    let o = apply(&["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let again = json_of(&o);
    assert_eq!(steps(&again), expected(["unchanged", "unchanged", "unchanged", "unchanged"]), "{again}");
    assert_eq!(again["submitted"], 0);
    assert_eq!(state(), after);
    let text = stdout(&apply(&["--account-id", "123456789012"]));
    assert!(text.contains("SES receiving: nothing to change."), "{text}");

    // Another rule set active: the rule goes into it, nothing else is activated.
    moto.boto(
        "ses.create_receipt_rule_set(RuleSetName='inbound')\n\
         ses.create_receipt_rule(RuleSetName='inbound', Rule={'Name': 'support', 'Enabled': True, 'Recipients': ['support@example.com'],\n\
           'Actions': [{'S3Action': {'BucketName': 'example-dmarc', 'ObjectKeyPrefix': 'support/'}}]})\n\
         ses.set_active_receipt_rule_set(RuleSetName='inbound')\nprint('ok')",
    );
    let (code, into_active) = json(&[]);
    assert_eq!(code, Some(0), "{into_active}");
    assert_eq!(into_active["receiving"]["rule_set"], "inbound");
    assert_eq!(into_active["receiving"]["active_rule_set"], "inbound");
    let kinds: Vec<(String, String)> = steps(&into_active);
    assert_eq!(
        kinds,
        [("PutBucketPolicy", "update"), ("CreateReceiptRule", "create"), ("SetActiveReceiptRuleSet", "unchanged")]
            .map(|(a, k)| (a.to_string(), k.to_string()))
    );
    let now = state();
    assert_eq!(now["active"], "inbound");
    let names: Vec<&str> = now["rules"].as_array().unwrap().iter().map(|r| r["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ses-dmarc-reports", "support"]);
    let arns: Vec<&str> = now["policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Condition"]["StringEquals"]["AWS:SourceArn"].as_str())
        .collect();
    assert!(
        arns.contains(&"arn:aws:ses:eu-west-1:123456789012:receipt-rule-set/inbound:receipt-rule/ses-dmarc-reports")
    );
    let (code, again) = json(&[]);
    assert_eq!(code, Some(0), "{again}");
    assert!(steps(&again).iter().all(|(_, k)| k == "unchanged"), "{again}");

    // A set named that is not the active one: the rule is there, but nothing activates it.
    let (code, named) = json(&["--receipt-rule-set", "ses-dmarc"]);
    assert_eq!(code, Some(1), "{named}");
    assert_eq!(steps(&named).last().unwrap().1, "conflict");
    let note = named["receiving"]["steps"][2]["note"].as_str().unwrap();
    assert!(note.contains("inbound is active in eu-west-1"), "{note}");
    assert_eq!(state()["active"], "inbound");

    // The bucket policy is not JSON: left alone, no rule made.
    moto.boto("s3.put_bucket_policy(Bucket='example-dmarc', Policy='not json')\nprint('ok')");
    let (code, broken) = json(&["--receipt-rule", "other-rule"]);
    assert_eq!(code, Some(1), "{broken}");
    assert_eq!(steps(&broken)[0].1, "conflict");
    assert_eq!(steps(&broken)[1], ("CreateReceiptRule".to_string(), "skipped".to_string()));
}
