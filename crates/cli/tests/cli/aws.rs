//! `ses status`, `ses set-mail-from`, `apply --route53` and `--from-ses`: against moto's
//! server for the calls moto implements, and against our own fake SES (AWS's response
//! shapes) for what moto lacks. The DNS side is the in-process test DNS server.

use crate::fake_aws::{FakeIdentity, FakeSes, FakeState, Moto, ses_dmarc_aws};
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
    let o = ses_dmarc_aws(&["ses", "status", "x.test", "-r", "eu-west-1", "--endpoint-url", &fake.url, "--no-dns"]);
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
