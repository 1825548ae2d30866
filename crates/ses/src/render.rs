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
    }
}

/// BIND zone-file lines with absolute names; TXT values split into 255-byte strings and
/// quoted. Placeholder records are written as comments so the file still loads.
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

/// A Route 53 ChangeBatch of UPSERTs, for
/// `aws route53 change-resource-record-sets --hosted-zone-id Z --change-batch file://...`.
/// Placeholder records are left out; the second value counts them.
pub fn route53_change_batch(plan: &Plan) -> (Value, usize) {
    let mut changes = Vec::new();
    let mut left_out = 0;
    for r in &plan.records {
        if r.placeholder {
            left_out += 1;
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
/// and the Route 53 records (DKIM CNAMEs from the identity's own tokens).
pub fn terraform(plan: &Plan) -> String {
    let d = ident(plan.domain.as_str());
    let mut out = format!(
        "# ses-dmarc plan for {domain}\n# If the SES identity already exists: terraform import aws_sesv2_email_identity.<name> {domain}\n\n",
        domain = plan.domain
    );
    for r in &plan.regions {
        out.push_str(&format!(
            "provider \"aws\" {{\n  alias  = \"{alias}\"\n  region = \"{code}\"\n}}\n\n",
            alias = ident(r.code),
            code = r.code
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
    out.truncate(out.trim_end().len());
    out.push('\n');
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

    #[test]
    fn hcl_escapes() {
        assert_eq!(hcl_string("a\"b\\c ${x} %{y} 50%"), "\"a\\\"b\\\\c $${x} %%{y} 50%\"");
        let long = "x".repeat(300);
        assert_eq!(hcl_txt(&long), format!("\"{}\\\"\\\"{}\"", "x".repeat(255), "x".repeat(45)));
        assert_eq!(ident("my-domain.co.uk"), "my_domain_co_uk");
        assert_eq!(ident("1x.com"), "_1x_com");
    }
}
