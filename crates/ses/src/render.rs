//! A plan in the forms people paste: BIND zone-file lines, a Route 53 ChangeBatch, and
//! Terraform. (The table and JSON forms belong to the command line.)

use crate::plan::{Plan, PlannedRecord, Purpose, RecordData};
use serde_json::{Value, json};
use ses_dmarc_records::txt;

fn absolute(name: &str) -> String {
    format!("{name}.")
}

fn zone_rdata(data: &RecordData) -> String {
    match data {
        RecordData::Mx { preference, exchange } => format!("{preference} {}", absolute(exchange)),
        RecordData::Txt { text } => txt::presentation(text),
        RecordData::Cname { target } => absolute(target),
    }
}

fn section_title(record: &PlannedRecord) -> String {
    match record.purpose {
        Purpose::MailFromMx | Purpose::MailFromSpf => {
            format!("custom MAIL FROM {}: bounces go to SES, SPF authorizes SES", record.name)
        }
        Purpose::DkimCname => format!("Easy DKIM, {}", record.region.unwrap_or("")),
        Purpose::Dmarc => "DMARC policy".to_string(),
        Purpose::ReportsMx => {
            format!("DMARC reports to {}: received by SES in {}", record.name, record.region.unwrap_or(""))
        }
        Purpose::ReportAuthorization => "the reports domain accepts this domain's reports (RFC 7489 §7.1)".to_string(),
    }
}

/// BIND zone-file lines with absolute names; TXT values split into 255-byte strings and
/// quoted. Placeholder records, and records not under the domain (a reports domain
/// elsewhere, whose zone it is not), are written as comments so the file still loads.
pub fn zone(plan: &Plan) -> String {
    let regions: Vec<&str> = plan.regions.iter().map(|r| r.code).collect();
    let mut out = format!("; ses-dmarc plan for {} (Amazon SES {})\n", plan.domain, regions.join(", "));
    let mut last_title = String::new();
    for r in &plan.records {
        let title = section_title(r);
        if title != last_title {
            out.push_str(&format!("; {title}\n"));
            last_title = title;
        }
        let line = format!("{}\t{}\tIN\t{}\t{}", absolute(&r.name), r.ttl, r.data.type_name(), zone_rdata(&r.data));
        if r.placeholder {
            out.push_str(&format!("; {line}\n"));
        } else if !plan.is_under_domain(r) {
            out.push_str(&format!(
                "; {line}\n; (not under {}: publish it in the zone that holds {})\n",
                plan.domain, r.name
            ));
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if plan.has_placeholders() {
        out.push_str(
            "; The commented DKIM lines hold placeholders: run plan again with --dkim-token (three per region).\n",
        );
    }
    out
}

/// The records not under the plan's domain: they belong in another zone than the
/// domain's (a reports domain of another organization), so the Route 53 change batch
/// leaves them out.
pub fn outside_domain(plan: &Plan) -> Vec<&PlannedRecord> {
    plan.records.iter().filter(|r| !plan.is_under_domain(r)).collect()
}

/// A Route 53 ChangeBatch of UPSERTs for the domain's zone, for
/// `aws route53 change-resource-record-sets --hosted-zone-id Z --change-batch file://...`.
/// Placeholder records are left out, the second value counts them; so are the records of
/// [`outside_domain`].
pub fn route53_change_batch(plan: &Plan) -> (Value, usize) {
    let mut changes = Vec::new();
    let mut left_out = 0;
    for r in &plan.records {
        if r.placeholder {
            left_out += 1;
            continue;
        }
        if !plan.is_under_domain(r) {
            continue;
        }
        let value = match &r.data {
            RecordData::Mx { preference, exchange } => format!("{preference} {}", absolute(exchange)),
            RecordData::Txt { text } => txt::presentation(text),
            RecordData::Cname { target } => absolute(target),
        };
        changes.push(json!({
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": absolute(&r.name),
                "Type": r.data.type_name(),
                "TTL": r.ttl,
                "ResourceRecords": [{ "Value": value }],
            }
        }));
    }
    let batch = json!({
        "Comment": format!("ses-dmarc plan for {}", plan.domain),
        "Changes": changes,
    });
    (batch, left_out)
}

/// A Terraform identifier from free text.
fn ident(text: &str) -> String {
    let mut s: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert(0, '_');
    }
    s
}

/// An HCL string literal: escapes quotes, backslashes and template sequences.
fn hcl_string(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TXT value for `aws_route53_record.records`: strings over 255 bytes joined with `""`,
/// the provider's way of writing several character-strings.
fn hcl_txt(text: &str) -> String {
    hcl_string(&txt::split_strings(text).join("\"\""))
}

/// Terraform for the AWS provider: the SES v2 identity and MAIL FROM attributes per region,
/// and the Route 53 records (DKIM CNAMEs from the identity's own tokens); with
/// `--receive-reports`, the reports MX (and authorization TXT), the bucket policy, the
/// receipt rule set, its rule and its activation.
pub fn terraform(plan: &Plan) -> String {
    let d = ident(plan.domain.as_str());
    let mut out = format!(
        "# ses-dmarc plan for {domain}\n# If the SES identity already exists: terraform import aws_sesv2_email_identity.<name> {domain}\n\n",
        domain = plan.domain
    );
    let mut providers: Vec<&str> = plan.regions.iter().map(|r| r.code).collect();
    if let Some(rx) = plan.receive_reports.as_ref().filter(|rx| !providers.contains(&rx.region)) {
        providers.push(rx.region);
    }
    for code in providers {
        out.push_str(&format!(
            "provider \"aws\" {{\n  alias  = \"{alias}\"\n  region = \"{code}\"\n}}\n\n",
            alias = ident(code),
        ));
    }
    let primary = ident(plan.regions[0].code);
    out.push_str(&format!(
        "data \"aws_route53_zone\" \"{d}\" {{\n  provider = aws.{primary}\n  name     = {}\n}}\n\n",
        hcl_string(plan.domain.as_str())
    ));
    let zone_id = format!("data.aws_route53_zone.{d}.zone_id");
    let record = |name: &str, rname: &str, rtype: &str, ttl: u32, records: &str, extra: &str| {
        format!(
            "resource \"aws_route53_record\" \"{name}\" {{\n  provider = aws.{primary}\n{extra}  zone_id  = {zone_id}\n  name     = {rname}\n  type     = \"{rtype}\"\n  ttl      = {ttl}\n  records  = [{records}]\n}}\n\n"
        )
    };
    let mut mail_from_deps = Vec::new();
    for r in &plan.records {
        match (&r.purpose, &r.data) {
            (Purpose::MailFromMx, RecordData::Mx { preference, exchange }) => {
                let n = format!("{d}_mail_from_mx");
                out.push_str(&record(
                    &n,
                    &hcl_string(&r.name),
                    "MX",
                    r.ttl,
                    &hcl_string(&format!("{preference} {exchange}")),
                    "",
                ));
                mail_from_deps.push(format!("aws_route53_record.{n}"));
            }
            (Purpose::MailFromSpf, RecordData::Txt { text }) => {
                let n = format!("{d}_mail_from_spf");
                out.push_str(&record(&n, &hcl_string(&r.name), "TXT", r.ttl, &hcl_txt(text), ""));
                mail_from_deps.push(format!("aws_route53_record.{n}"));
            }
            (Purpose::Dmarc, RecordData::Txt { text }) => {
                out.push_str(&record(&format!("{d}_dmarc"), &hcl_string(&r.name), "TXT", r.ttl, &hcl_txt(text), ""));
            }
            (Purpose::ReportsMx, RecordData::Mx { preference, exchange }) => {
                let value = hcl_string(&format!("{preference} {exchange}"));
                let rec = record(&format!("{d}_reports_mx"), &hcl_string(&r.name), "MX", r.ttl, &value, "");
                out.push_str(&in_reports_zone(plan, r, rec));
            }
            (Purpose::ReportAuthorization, RecordData::Txt { text }) => {
                let rec = record(
                    &format!("{d}_report_authorization"),
                    &hcl_string(&r.name),
                    "TXT",
                    r.ttl,
                    &hcl_txt(text),
                    "",
                );
                out.push_str(&in_reports_zone(plan, r, rec));
            }
            _ => {}
        }
    }
    let dkim_ttl = plan.records.iter().find(|r| r.purpose == Purpose::DkimCname).map(|r| r.ttl).unwrap_or(1800);
    for r in &plan.regions {
        let rid = ident(r.code);
        let identity = format!("{d}_{rid}");
        out.push_str(&format!(
            "resource \"aws_sesv2_email_identity\" \"{identity}\" {{\n  provider       = aws.{rid}\n  email_identity = {}\n}}\n\n",
            hcl_string(plan.domain.as_str())
        ));
        let token = format!("aws_sesv2_email_identity.{identity}.dkim_signing_attributes[0].tokens[count.index]");
        out.push_str(&record(
            &format!("{d}_dkim_{rid}"),
            &format!("\"${{{token}}}._domainkey.{}\"", plan.domain),
            "CNAME",
            dkim_ttl,
            &format!("\"${{{token}}}.{}\"", r.dkim_signing_zone),
            "  count    = 3\n",
        ));
        if let Some(mf) = &plan.mail_from {
            out.push_str(&format!(
                "resource \"aws_sesv2_email_identity_mail_from_attributes\" \"{identity}\" {{\n  provider               = aws.{rid}\n  email_identity         = aws_sesv2_email_identity.{identity}.email_identity\n  mail_from_domain       = {}\n  behavior_on_mx_failure = \"{}\"\n  depends_on             = [{}]\n}}\n\n",
                hcl_string(mf.as_str()),
                plan.behavior_on_mx_failure.api_value(),
                mail_from_deps.join(", ")
            ));
        }
    }
    if let Some(rx) = &plan.receive_reports {
        out.push_str(&terraform_receiving(rx, &d));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// A reports record for Terraform: in the domain's zone when under it, else in the zone of
/// the reports domain's organizational domain (a data source of its own).
fn in_reports_zone(plan: &Plan, r: &PlannedRecord, rec: String) -> String {
    if plan.is_under_domain(r) {
        return rec;
    }
    let Some(rx) = &plan.receive_reports else { return rec };
    let org = rx.reports_domain.organizational_domain();
    let zone = format!("{}_reports", ident(plan.domain.as_str()));
    let data = format!(
        "# {} is not under {}: this record goes in the zone that holds it (assumed: {org}).\ndata \"aws_route53_zone\" \"{zone}\" {{\n  provider = aws.{}\n  name     = {}\n}}\n\n",
        r.name,
        plan.domain,
        ident(plan.regions[0].code),
        hcl_string(org.as_str())
    );
    let rec = rec.replace(
        &format!("data.aws_route53_zone.{}.zone_id", ident(plan.domain.as_str())),
        &format!("data.aws_route53_zone.{zone}.zone_id"),
    );
    // The data source once, before the first record that needs it.
    if r.purpose == Purpose::ReportsMx { format!("{data}{rec}") } else { rec }
}

/// An HCL expression for a JSON value (for `jsonencode(...)`); `<account-id>` in strings
/// becomes the caller identity's account id.
fn hcl_value(v: &Value, indent: usize) -> String {
    let pad = "  ".repeat(indent + 1);
    let close = "  ".repeat(indent);
    match v {
        Value::Object(map) => {
            let items: Vec<String> =
                map.iter().map(|(k, v)| format!("{pad}{} = {}", hcl_string(k), hcl_value(v, indent + 1))).collect();
            format!("{{\n{}\n{close}}}", items.join("\n"))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|v| format!("{pad}{},", hcl_value(v, indent + 1))).collect();
            format!("[\n{}\n{close}]", items.join("\n"))
        }
        Value::String(s) => hcl_string(s)
            .replace(crate::receiving::ACCOUNT_PLACEHOLDER, "${data.aws_caller_identity.current.account_id}"),
        other => other.to_string(),
    }
}

fn terraform_receiving(rx: &crate::receiving::ReceivePlan, d: &str) -> String {
    let p = ident(rx.region);
    let mut out = String::new();
    if rx.account_id_placeholder {
        out.push_str(&format!("data \"aws_caller_identity\" \"current\" {{\n  provider = aws.{p}\n}}\n\n"));
    }
    let rule_set = if rx.rule_set_existing {
        hcl_string(&rx.rule_set)
    } else {
        out.push_str(&format!(
            "resource \"aws_ses_receipt_rule_set\" \"{d}_reports\" {{\n  provider      = aws.{p}\n  rule_set_name = {}\n}}\n\n",
            hcl_string(&rx.rule_set)
        ));
        format!("aws_ses_receipt_rule_set.{d}_reports.rule_set_name")
    };
    out.push_str(&format!(
        "# aws_s3_bucket_policy owns the bucket's whole policy: if {bucket} has one already, add this statement to it instead.\nresource \"aws_s3_bucket_policy\" \"{d}_reports\" {{\n  provider = aws.{p}\n  bucket   = {}\n  policy   = jsonencode({})\n}}\n\n",
        hcl_string(&rx.bucket),
        hcl_value(&rx.bucket_policy, 1),
        bucket = rx.bucket,
    ));
    out.push_str(&format!(
        "resource \"aws_ses_receipt_rule\" \"{d}_reports\" {{\n  provider      = aws.{p}\n  name          = {}\n  rule_set_name = {rule_set}\n  recipients    = [{}]\n  enabled       = true\n  scan_enabled  = true\n  tls_policy    = \"Optional\"\n\n  s3_action {{\n    bucket_name       = {}\n    object_key_prefix = {}\n    position          = 1\n  }}\n\n  # SES writes a test object when the rule is made: the policy must be there first.\n  depends_on = [aws_s3_bucket_policy.{d}_reports]\n}}\n\n",
        hcl_string(&rx.rule),
        hcl_string(&rx.address),
        hcl_string(&rx.bucket),
        hcl_string(&rx.prefix),
    ));
    if !rx.rule_set_existing {
        out.push_str(&format!(
            "# Only one rule set is active per region: this replaces the active one, if any (then add the rule to that set instead, --receipt-rule-set).\nresource \"aws_ses_active_receipt_rule_set\" \"{d}_reports\" {{\n  provider      = aws.{p}\n  rule_set_name = {rule_set}\n}}\n\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanInput, plan};

    fn sample(tokens: bool) -> Plan {
        plan(&PlanInput {
            domain: "example.com".into(),
            regions: vec!["us-east-1".into()],
            mail_from: Some("mail".into()),
            dkim_tokens: if tokens { vec!["t1".into(), "t2".into(), "t3".into()] } else { vec![] },
            rua: vec!["mailto:dmarc@example.com".into()],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn zone_lines() {
        let z = zone(&sample(true));
        assert!(z.contains("mail.example.com.\t1800\tIN\tMX\t10 feedback-smtp.us-east-1.amazonses.com.\n"));
        assert!(z.contains("mail.example.com.\t1800\tIN\tTXT\t\"v=spf1 include:amazonses.com ~all\"\n"));
        assert!(z.contains("t1._domainkey.example.com.\t1800\tIN\tCNAME\tt1.dkim.amazonses.com.\n"));
        assert!(z.contains("_dmarc.example.com.\t1800\tIN\tTXT\t\"v=DMARC1; p=none; rua=mailto:dmarc@example.com\"\n"));
        let z = zone(&sample(false));
        assert!(z.contains("; <dkim-token-1>._domainkey.example.com."));
    }

    #[test]
    fn route53_leaves_out_placeholders() {
        let (batch, left_out) = route53_change_batch(&sample(false));
        assert_eq!(left_out, 3);
        assert_eq!(batch["Changes"].as_array().unwrap().len(), 3);
        let (batch, left_out) = route53_change_batch(&sample(true));
        assert_eq!(left_out, 0);
        assert_eq!(
            batch["Changes"][1]["ResourceRecordSet"]["ResourceRecords"][0]["Value"],
            "\"v=spf1 include:amazonses.com ~all\""
        );
    }

    fn receiving(address: Option<&str>, account: Option<&str>, existing: Option<&str>) -> Plan {
        plan(&PlanInput {
            domain: "example.com".into(),
            regions: vec!["eu-central-2".into()],
            mail_from: Some("mail".into()),
            dkim_tokens: vec!["t1".into(), "t2".into(), "t3".into()],
            receive_reports: Some(crate::receiving::ReceiveReportsInput {
                address: address.map(str::to_string),
                bucket: Some("example-dmarc".into()),
                region: Some("eu-west-1".into()),
                account_id: account.map(str::to_string),
                existing_rule_set: existing.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn receiving_in_every_form() {
        let p = receiving(None, Some("123456789012"), None);
        let z = zone(&p);
        assert!(
            z.contains("dmarc-reports.example.com.\t1800\tIN\tMX\t10 inbound-smtp.eu-west-1.amazonaws.com.\n"),
            "{z}"
        );
        assert!(z.contains("\"v=DMARC1; p=none; rua=mailto:dmarc@dmarc-reports.example.com\""), "{z}");
        let (batch, _) = route53_change_batch(&p);
        assert_eq!(batch["Changes"].as_array().unwrap().len(), 7);
        assert!(outside_domain(&p).is_empty());
        let tf = terraform(&p);
        for needle in [
            "provider \"aws\" {\n  alias  = \"eu_west_1\"",
            "resource \"aws_route53_record\" \"example_com_reports_mx\"",
            "resource \"aws_s3_bucket_policy\" \"example_com_reports\"",
            "\"AWS:SourceAccount\" = \"123456789012\"",
            "resource \"aws_ses_receipt_rule_set\" \"example_com_reports\"",
            "rule_set_name = aws_ses_receipt_rule_set.example_com_reports.rule_set_name",
            "object_key_prefix = \"dmarc/\"",
            "depends_on = [aws_s3_bucket_policy.example_com_reports]",
            "resource \"aws_ses_active_receipt_rule_set\" \"example_com_reports\"",
        ] {
            assert!(tf.contains(needle), "{needle} not in\n{tf}");
        }
        assert!(!tf.contains("aws_caller_identity"));

        // Another organization's domain, the account unknown, an existing rule set.
        let p = receiving(Some("dmarc@reports.example.net"), None, Some("inbound"));
        let z = zone(&p);
        assert!(z.contains("; reports.example.net.\t1800\tIN\tMX\t10 inbound-smtp.eu-west-1.amazonaws.com."), "{z}");
        assert!(z.contains("; example.com._report._dmarc.reports.example.net.\t1800\tIN\tTXT\t\"v=DMARC1\""), "{z}");
        let (batch, _) = route53_change_batch(&p);
        assert_eq!(batch["Changes"].as_array().unwrap().len(), 6);
        assert_eq!(outside_domain(&p).len(), 2);
        let tf = terraform(&p);
        assert!(tf.contains("data \"aws_route53_zone\" \"example_com_reports\""), "{tf}");
        assert!(tf.contains("zone_id  = data.aws_route53_zone.example_com_reports.zone_id"), "{tf}");
        assert!(tf.contains("${data.aws_caller_identity.current.account_id}"), "{tf}");
        assert!(tf.contains("rule_set_name = \"inbound\"") && !tf.contains("aws_ses_active_receipt_rule_set"), "{tf}");
        assert!(!tf.contains("resource \"aws_ses_receipt_rule_set\""), "{tf}");
    }

    #[test]
    fn hcl_escapes() {
        assert_eq!(hcl_string("a\"b\\c ${x} %{y} 50%"), "\"a\\\"b\\\\c $${x} %%{y} 50%\"");
        let long = "x".repeat(300);
        assert_eq!(hcl_txt(&long), format!("\"{}\\\"\\\"{}\"", "x".repeat(255), "x".repeat(45)));
        assert_eq!(ident("my-domain.co.uk"), "my_domain_co_uk");
        assert_eq!(ident("1x.com"), "_1x_com");
    }
}
