//! `plan --receive-reports`: a reports address on the user's own domain, received by SES and
//! written to S3, where `intake run` reads it. Pure: the input's validation, the receipt
//! rule and the bucket policy statement SES needs (AWS SES guide,
//! `receiving-email-permissions.md`), and how our statement merges into a bucket policy
//! already there.

use crate::regions::{self, Region};
use serde::Serialize;
use serde_json::{Value, json};
use ses_dmarc_records::DomainName;

/// The local part of the default reports address.
pub const DEFAULT_LOCAL_PART: &str = "dmarc";
/// The label of the default reports domain (`dmarc-reports.<domain>`).
pub const DEFAULT_LABEL: &str = "dmarc-reports";
/// The default object key prefix.
pub const DEFAULT_PREFIX: &str = "dmarc/";
/// The default receipt rule set, created and activated when no set is active.
pub const DEFAULT_RULE_SET: &str = "ses-dmarc";
/// The default receipt rule.
pub const DEFAULT_RULE: &str = "ses-dmarc-reports";
/// What stands for the account id when it is not known.
pub const ACCOUNT_PLACEHOLDER: &str = "<account-id>";
/// Where `intake run` moves the objects it stored (the `[[intake.s3]]` snippet).
pub const PROCESSED_PREFIX: &str = "processed/";

/// What the user asked for, as typed (`plan --receive-reports`).
#[derive(Debug, Clone, Default)]
pub struct ReceiveReportsInput {
    /// The reports address (default `dmarc@dmarc-reports.<domain>`).
    pub address: Option<String>,
    /// The S3 bucket SES writes the messages to (required).
    pub bucket: Option<String>,
    /// The object key prefix ([`DEFAULT_PREFIX`] when absent).
    pub prefix: Option<String>,
    /// The SES region that receives (default: the first of the plan's regions that does).
    pub region: Option<String>,
    /// The AWS account id (12 digits); a placeholder when absent.
    pub account_id: Option<String>,
    /// An existing receipt rule set to add the rule to (it is neither created nor
    /// activated); without it, [`DEFAULT_RULE_SET`] is created and activated.
    pub existing_rule_set: Option<String>,
    /// The receipt rule's name ([`DEFAULT_RULE`] when absent).
    pub rule: Option<String>,
}

/// Why `--receive-reports` cannot be planned, with what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// No bucket given.
    #[error(
        "--receive-reports needs the S3 bucket SES writes the reports to: add `--reports-bucket NAME` (a bucket in a region where SES receives mail)"
    )]
    NoBucket,
    /// A bucket name S3 does not allow.
    #[error("`{input}` is not an S3 bucket name: {reason}")]
    Bucket {
        /// The name as typed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A region where SES does not receive mail.
    #[error(
        "SES does not receive mail in {region}: pass `--receive-region` with one of the regions where it does: {receiving}"
    )]
    NotReceiving {
        /// The region code.
        region: String,
        /// The receiving regions, comma-separated.
        receiving: String,
    },
    /// None of the plan's regions receives, and no `--receive-region` given.
    #[error(
        "SES receives mail in none of {regions}: add `--receive-region R` with one of the regions where it does: {receiving}"
    )]
    NoReceivingRegion {
        /// The plan's regions, comma-separated.
        regions: String,
        /// The receiving regions, comma-separated.
        receiving: String,
    },
    /// A reports address that is not one.
    #[error("`{input}` is not a reports address: {reason}")]
    Address {
        /// The address as typed.
        input: String,
        /// What is wrong with it, and what to write.
        reason: String,
    },
    /// The reports address is at the sender domain itself.
    #[error(
        "the reports address must not be at {domain} itself: its MX would point at SES's inbound endpoint and take all of {domain}'s mail; use a subdomain such as `--reports-address dmarc@dmarc-reports.{domain}` (the default)"
    )]
    AtSenderDomain {
        /// The sender domain.
        domain: String,
    },
    /// The reports address is at the MAIL FROM domain.
    #[error(
        "the reports address must not be at the MAIL FROM domain {mail_from}: its only MX must be SES's feedback host, or bounces stop reaching SES; use another subdomain such as `--reports-address dmarc@dmarc-reports.{domain}` (the default)"
    )]
    AtMailFrom {
        /// The MAIL FROM domain.
        mail_from: String,
        /// The sender domain.
        domain: String,
    },
    /// Not a 12-digit account id.
    #[error("`{input}` is not an AWS account id: it has 12 digits (`aws sts get-caller-identity --query Account`)")]
    AccountId {
        /// The id as typed.
        input: String,
    },
    /// A receipt rule or rule set name SES does not allow.
    #[error("`{input}` is not a receipt rule{what} name: {reason}")]
    Name {
        /// The name as typed.
        input: String,
        /// ` set` for a rule set.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An object key prefix that cannot be one.
    #[error("`{input}` is not an object key prefix: {reason}")]
    Prefix {
        /// The prefix as typed.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The external report authorization name would be longer than DNS allows.
    #[error(
        "the report authorization name {name} is longer than DNS allows (RFC 9990 §4): receivers cannot check it; use a reports address under your own domain"
    )]
    AuthorizationTooLong {
        /// The name, as far as it goes.
        name: String,
    },
}

/// SES receiving for the plan: where the reports go and what makes them land there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivePlan {
    /// The reports address (the `rua` mailbox and the rule's only recipient).
    pub address: String,
    /// The domain that receives them (the MX's name).
    pub reports_domain: DomainName,
    /// The bucket SES writes to.
    pub bucket: String,
    /// The object key prefix.
    pub prefix: String,
    /// The SES region that receives.
    pub region: &'static str,
    /// The MX target, `inbound-smtp.<region>.amazonaws.com`.
    pub inbound_host: String,
    /// The AWS account id, or [`ACCOUNT_PLACEHOLDER`].
    pub account_id: String,
    /// True when `account_id` is the placeholder.
    pub account_id_placeholder: bool,
    /// The receipt rule set the rule goes into.
    pub rule_set: String,
    /// True when the set is an existing one (`--receipt-rule-set`): not created, not activated.
    pub rule_set_existing: bool,
    /// The receipt rule's name.
    pub rule: String,
    /// The rule's ARN, as the bucket policy's condition names it.
    pub rule_arn: String,
    /// The bucket policy that lets SES write (a whole document with our one statement).
    pub bucket_policy: Value,
    /// The receipt rule as SES's API (and `aws ses create-receipt-rule --rule`) takes it.
    pub receipt_rule: Value,
    /// The external report authorization name (`<domain>._report._dmarc.<reports domain>`),
    /// when the reports domain is another organizational domain.
    pub authorization: Option<String>,
    /// The `[[intake.s3]]` section that makes `ses-dmarc intake run` read the bucket.
    pub intake_config: String,
}

impl ReceivePlan {
    /// Our bucket policy statement (the one in [`ReceivePlan::bucket_policy`]).
    pub fn statement(&self) -> &Value {
        &self.bucket_policy["Statement"][0]
    }

    /// The same plan with the rule in another, existing rule set (the one active in the
    /// region, found by `apply`): the rule ARN and the bucket policy name that set.
    pub fn in_rule_set(&self, rule_set: &str) -> ReceivePlan {
        let mut p = self.clone();
        p.rule_set = rule_set.to_string();
        p.rule_set_existing = true;
        p.rule_arn = rule_arn(p.region, &p.account_id, &p.rule_set, &p.rule);
        p.bucket_policy = bucket_policy(&p.bucket, &p.account_id, &p.rule_set, &p.rule, &p.rule_arn);
        p
    }
}

/// A bucket name as S3 allows it (general purpose buckets): 3 to 63 characters, lower-case
/// letters, digits, dots and hyphens, starting and ending with a letter or digit, no two
/// adjacent dots, not an IP address.
pub fn validate_bucket(input: &str) -> Result<String, ReceiveError> {
    let name = input.trim();
    let bad = |reason: &str| ReceiveError::Bucket { input: input.to_string(), reason: reason.to_string() };
    if !(3..=63).contains(&name.len()) {
        return Err(bad("S3 bucket names have 3 to 63 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Err(bad("only lower-case letters, digits, dots and hyphens are allowed"));
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return Err(bad("it must start and end with a letter or digit"));
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err(bad("no dot may sit next to another dot or a hyphen"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(bad("it must not look like an IP address"));
    }
    Ok(name.to_string())
}

/// A 12-digit AWS account id.
pub fn validate_account_id(input: &str) -> Result<String, ReceiveError> {
    let id = input.trim();
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id.to_string())
    } else {
        Err(ReceiveError::AccountId { input: input.to_string() })
    }
}

/// A receipt rule or rule set name as SES allows it: ASCII letters, digits, `_`, `-` and
/// `.`, starting and ending with a letter or digit, at most 64 characters.
fn validate_name(input: &str, what: &'static str) -> Result<String, ReceiveError> {
    let name = input.trim();
    let bad = |reason: &'static str| ReceiveError::Name { input: input.to_string(), what, reason };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("it has 1 to 64 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        return Err(bad("only ASCII letters, digits, `_`, `-` and `.` are allowed"));
    }
    if !name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        || !name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad("it must start and end with a letter or digit"));
    }
    Ok(name.to_string())
}

fn validate_prefix(input: &str) -> Result<String, ReceiveError> {
    let bad = |reason: &'static str| ReceiveError::Prefix { input: input.to_string(), reason };
    let p = input.trim();
    if p.starts_with('/') {
        return Err(bad("S3 keys do not start with `/`; write `dmarc/`"));
    }
    if p.len() > 512 {
        return Err(bad("longer than 512 bytes"));
    }
    if !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"!-_.*()/".contains(&b)) {
        return Err(bad("use letters, digits and `!-_.*()/` only (S3's safe characters)"));
    }
    Ok(p.to_string())
}

/// The reports address: `local@domain`, a local part of letters, digits, `.`, `_`, `-`, `+`.
fn validate_address(input: &str) -> Result<(String, DomainName), ReceiveError> {
    let text = input.trim();
    let text = text.strip_prefix("mailto:").unwrap_or(text);
    let bad = |reason: String| ReceiveError::Address { input: input.to_string(), reason };
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Err(bad("it has no `@`: write an address such as `dmarc@dmarc-reports.example.com`".into()));
    };
    if local.is_empty()
        || local.len() > 64
        || !local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        || local.starts_with('.')
        || local.ends_with('.')
    {
        return Err(bad(
            "the part before `@` must be 1 to 64 letters, digits, `.`, `_`, `-` or `+` (a mailbox name such as `dmarc`)"
                .into(),
        ));
    }
    let domain = DomainName::parse_hostname(domain).map_err(|e| bad(format!("its domain: {e}")))?;
    if domain.label_count() < 2 || domain.is_public_suffix() {
        return Err(bad("its domain must be a domain of yours, such as dmarc-reports.example.com".into()));
    }
    Ok((format!("{}@{domain}", local.to_ascii_lowercase()), domain))
}

fn receiving_list() -> String {
    regions::receiving().map(|r| r.code).collect::<Vec<_>>().join(", ")
}

/// The region that receives: `input.region` when given (it must receive), else the first of
/// `regions` that receives.
fn receiving_region(input: Option<&str>, regions: &[&'static Region]) -> Result<&'static Region, crate::PlanError> {
    match input {
        Some(code) => {
            let region = crate::plan::parse_region(code)?;
            if region.receives_mail {
                Ok(region)
            } else {
                Err(ReceiveError::NotReceiving { region: region.code.to_string(), receiving: receiving_list() }.into())
            }
        }
        None => regions.iter().copied().find(|r| r.receives_mail).ok_or_else(|| {
            ReceiveError::NoReceivingRegion {
                regions: regions.iter().map(|r| r.code).collect::<Vec<_>>().join(", "),
                receiving: receiving_list(),
            }
            .into()
        }),
    }
}

/// A statement id from free text: S3 (like IAM) takes ASCII letters and digits.
fn sid(rule_set: &str, rule: &str) -> String {
    let squash = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).collect::<String>();
    format!("SesDmarcPut{}{}", squash(rule_set), squash(rule))
}

fn rule_arn(region: &str, account_id: &str, rule_set: &str, rule: &str) -> String {
    format!("arn:aws:ses:{region}:{account_id}:receipt-rule-set/{rule_set}:receipt-rule/{rule}")
}

/// AWS's documented form (SES guide, "Give SES permission to write to an S3 bucket"): the
/// exact rule ARN, so only this rule may write, put in place before the rule is created.
fn bucket_policy(bucket: &str, account_id: &str, rule_set: &str, rule: &str, rule_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": sid(rule_set, rule),
            "Effect": "Allow",
            "Principal": {"Service": "ses.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
            "Condition": {
                "StringEquals": {
                    "AWS:SourceAccount": account_id,
                    "AWS:SourceArn": rule_arn,
                }
            }
        }]
    })
}

/// Builds the receiving part of a plan for `domain` (whose MAIL FROM is `mail_from`).
pub fn plan_receive(
    input: &ReceiveReportsInput,
    domain: &DomainName,
    mail_from: Option<&DomainName>,
    regions: &[&'static Region],
) -> Result<ReceivePlan, crate::PlanError> {
    let bucket = validate_bucket(input.bucket.as_deref().ok_or(ReceiveError::NoBucket)?)?;
    let (address, reports_domain) = match &input.address {
        Some(a) => validate_address(a)?,
        None => {
            let d = domain.prepend(DEFAULT_LABEL).map_err(|e| ReceiveError::Address {
                input: format!("{DEFAULT_LOCAL_PART}@{DEFAULT_LABEL}.{domain}"),
                reason: e.to_string(),
            })?;
            (format!("{DEFAULT_LOCAL_PART}@{d}"), d)
        }
    };
    if &reports_domain == domain {
        return Err(ReceiveError::AtSenderDomain { domain: domain.to_string() }.into());
    }
    if let Some(mf) = mail_from.filter(|mf| **mf == reports_domain) {
        return Err(ReceiveError::AtMailFrom { mail_from: mf.to_string(), domain: domain.to_string() }.into());
    }
    let prefix = validate_prefix(input.prefix.as_deref().unwrap_or(DEFAULT_PREFIX))?;
    let region = receiving_region(input.region.as_deref(), regions)?;
    let (account_id, account_id_placeholder) = match &input.account_id {
        Some(id) => (validate_account_id(id)?, false),
        None => (ACCOUNT_PLACEHOLDER.to_string(), true),
    };
    let (rule_set, rule_set_existing) = match &input.existing_rule_set {
        Some(s) => (validate_name(s, " set")?, true),
        None => (DEFAULT_RULE_SET.to_string(), false),
    };
    let rule = validate_name(input.rule.as_deref().unwrap_or(DEFAULT_RULE), "")?;
    let authorization = if reports_domain.organizational_domain() != domain.organizational_domain() {
        let name = format!("{domain}._report._dmarc.{reports_domain}");
        DomainName::parse(&name).map_err(|_| ReceiveError::AuthorizationTooLong { name: name.clone() })?;
        Some(name)
    } else {
        None
    };
    let code = region.code;
    let rule_arn = rule_arn(code, &account_id, &rule_set, &rule);
    let bucket_policy = bucket_policy(&bucket, &account_id, &rule_set, &rule, &rule_arn);
    let receipt_rule = json!({
        "Name": rule,
        "Enabled": true,
        "TlsPolicy": "Optional",
        "Recipients": [address],
        "ScanEnabled": true,
        "Actions": [{"S3Action": {"BucketName": bucket, "ObjectKeyPrefix": prefix}}],
    });
    let intake_config = format!(
        "[[intake.s3]]\nname = \"ses-{}\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nregion = \"{code}\"\nprocessed_prefix = \"{PROCESSED_PREFIX}\"\n",
        domain.as_str().replace('.', "-")
    );
    Ok(ReceivePlan {
        address,
        inbound_host: region.inbound_host(),
        reports_domain,
        bucket,
        prefix,
        region: code,
        account_id,
        account_id_placeholder,
        rule_set,
        rule_set_existing,
        rule,
        rule_arn,
        bucket_policy,
        receipt_rule,
        authorization,
        intake_config,
    })
}

/// What adding our statement does to a bucket's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyMerge {
    /// The policy already holds our statement as it is.
    Unchanged,
    /// The bucket has no policy: this is the new one.
    Create(String),
    /// Our statement added to (or, under our Sid, replaced in) the policy there; the
    /// others' statements kept.
    Update(String),
}

/// Merges `statement` (ours, found by its `Sid`) into the bucket's current policy
/// (`None`: no policy). `Err` when the current policy cannot be read as a policy document:
/// it is left alone.
pub fn merge_policy(current: Option<&str>, statement: &Value) -> Result<PolicyMerge, String> {
    let Some(text) = current.filter(|t| !t.trim().is_empty()) else {
        let doc = json!({"Version": "2012-10-17", "Statement": [statement]});
        return Ok(PolicyMerge::Create(doc.to_string()));
    };
    let mut doc: Value =
        serde_json::from_str(text).map_err(|e| format!("the bucket's policy is not JSON ({e}); left alone"))?;
    let Some(obj) = doc.as_object_mut() else {
        return Err("the bucket's policy is not a JSON object; left alone".into());
    };
    let statements = match obj.remove("Statement") {
        None => vec![],
        Some(Value::Array(a)) => a,
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => return Err("the bucket's policy has a Statement that is neither a list nor an object".into()),
    };
    let our_sid = &statement["Sid"];
    let mut out = Vec::with_capacity(statements.len() + 1);
    let mut found = false;
    for s in statements {
        if s.get("Sid") == Some(our_sid) {
            if s == *statement {
                return Ok(PolicyMerge::Unchanged);
            }
            if !found {
                out.push(statement.clone());
                found = true;
            }
        } else {
            out.push(s);
        }
    }
    if !found {
        out.push(statement.clone());
    }
    obj.entry("Version").or_insert_with(|| "2012-10-17".into());
    obj.insert("Statement".into(), Value::Array(out));
    Ok(PolicyMerge::Update(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(d: &str) -> DomainName {
        DomainName::parse_hostname(d).unwrap()
    }

    fn input() -> ReceiveReportsInput {
        ReceiveReportsInput { bucket: Some("example-dmarc".into()), ..Default::default() }
    }

    fn eu() -> Vec<&'static Region> {
        vec![regions::find("eu-west-1").unwrap()]
    }

    #[test]
    fn defaults_and_the_documented_policy() {
        let mut i = input();
        i.account_id = Some("123456789012".into());
        let p = plan_receive(&i, &domain("example.com"), None, &eu()).unwrap();
        assert_eq!(p.address, "dmarc@dmarc-reports.example.com");
        assert_eq!(p.inbound_host, "inbound-smtp.eu-west-1.amazonaws.com");
        assert_eq!(
            (p.prefix.as_str(), p.rule_set.as_str(), p.rule.as_str()),
            ("dmarc/", "ses-dmarc", "ses-dmarc-reports")
        );
        assert_eq!(p.authorization, None);
        assert_eq!(
            p.rule_arn,
            "arn:aws:ses:eu-west-1:123456789012:receipt-rule-set/ses-dmarc:receipt-rule/ses-dmarc-reports"
        );
        let s = p.statement();
        assert_eq!(s["Principal"]["Service"], "ses.amazonaws.com");
        assert_eq!(s["Action"], "s3:PutObject");
        assert_eq!(s["Resource"], "arn:aws:s3:::example-dmarc/*");
        assert_eq!(s["Condition"]["StringEquals"]["AWS:SourceAccount"], "123456789012");
        assert_eq!(s["Condition"]["StringEquals"]["AWS:SourceArn"], p.rule_arn.as_str());
        assert_eq!(p.receipt_rule["Recipients"][0], "dmarc@dmarc-reports.example.com");
        assert_eq!(p.receipt_rule["Enabled"], true);
        assert_eq!(p.receipt_rule["Actions"][0]["S3Action"]["ObjectKeyPrefix"], "dmarc/");
        assert!(p.intake_config.contains("bucket = \"example-dmarc\"\nprefix = \"dmarc/\"\nregion = \"eu-west-1\""));
        assert!(!p.account_id_placeholder);
        let p = plan_receive(&input(), &domain("example.com"), None, &eu()).unwrap();
        assert!(p.account_id_placeholder && p.rule_arn.contains(":<account-id>:"));
    }

    #[test]
    fn the_first_receiving_region_and_refusals() {
        let zurich = regions::find("eu-central-2").unwrap();
        let ohio = regions::find("us-east-2").unwrap();
        let p = plan_receive(&input(), &domain("example.com"), None, &[zurich, ohio]).unwrap();
        assert_eq!(p.region, "us-east-2");
        let e = plan_receive(&input(), &domain("example.com"), None, &[zurich]).unwrap_err();
        assert!(e.to_string().contains("none of eu-central-2") && e.to_string().contains("eu-west-1"), "{e}");
        let mut i = input();
        i.region = Some("us-gov-west-1".into());
        let e = plan_receive(&i, &domain("example.com"), None, &eu()).unwrap_err();
        assert!(e.to_string().contains("does not receive mail in us-gov-west-1"), "{e}");
        assert!(e.to_string().contains("us-east-1, us-east-2"), "{e}");
        i.region = Some("us-east1".into());
        assert!(
            plan_receive(&i, &domain("example.com"), None, &eu()).unwrap_err().to_string().contains("did you mean")
        );

        let refused = |f: &dyn Fn(&mut ReceiveReportsInput), mf: Option<&str>| {
            let mut i = input();
            f(&mut i);
            let mf = mf.map(domain);
            plan_receive(&i, &domain("example.com"), mf.as_ref(), &eu()).unwrap_err().to_string()
        };
        let e = refused(&|i| i.address = Some("dmarc@example.com".into()), None);
        assert!(e.contains("take all of example.com's mail") && e.contains("dmarc-reports.example.com"), "{e}");
        let e = refused(&|i| i.address = Some("dmarc@mail.example.com".into()), Some("mail.example.com"));
        assert!(e.contains("MAIL FROM domain mail.example.com"), "{e}");
        assert!(refused(&|i| i.address = Some("nobody".into()), None).contains("no `@`"));
        assert!(refused(&|i| i.address = Some("a'b@x.example.com".into()), None).contains("before `@`"));
        assert!(refused(&|i| i.bucket = None, None).contains("--reports-bucket"));
        assert!(refused(&|i| i.bucket = Some("ab".into()), None).contains("3 to 63"));
        assert!(refused(&|i| i.bucket = Some("My_Bucket".into()), None).contains("lower-case"));
        assert!(refused(&|i| i.bucket = Some("-abc".into()), None).contains("start and end"));
        assert!(refused(&|i| i.bucket = Some("a..b".into()), None).contains("dot"));
        assert!(refused(&|i| i.bucket = Some("192.168.1.1".into()), None).contains("IP address"));
        assert!(refused(&|i| i.account_id = Some("12345".into()), None).contains("12 digits"));
        assert!(refused(&|i| i.existing_rule_set = Some("bad name".into()), None).contains("rule set name"));
        assert!(refused(&|i| i.prefix = Some("/dmarc".into()), None).contains("do not start"));
    }

    #[test]
    fn another_organization_needs_the_authorization_record() {
        let mut i = input();
        i.address = Some("mailto:Reports@Ingest.Example.NET".into());
        let p = plan_receive(&i, &domain("example.com"), None, &eu()).unwrap();
        assert_eq!(p.address, "reports@ingest.example.net");
        assert_eq!(p.authorization.as_deref(), Some("example.com._report._dmarc.ingest.example.net"));
        // The same organizational domain: none needed.
        i.address = Some("dmarc@reports.example.com".into());
        let p = plan_receive(&i, &domain("shop.example.com"), None, &eu()).unwrap();
        assert_eq!(p.authorization, None);
        let long = format!("{}.example.com", ["a".repeat(60), "b".repeat(60), "c".repeat(60)].join("."));
        i.address = Some(format!("d@{}", "r".repeat(60) + ".example.net"));
        assert!(matches!(
            plan_receive(&i, &domain(&long), None, &eu()).unwrap_err(),
            crate::PlanError::Receive(ReceiveError::AuthorizationTooLong { .. })
        ));
    }

    #[test]
    fn policies_merge_by_sid() {
        let p = plan_receive(&input(), &domain("example.com"), None, &eu()).unwrap();
        let ours = p.statement().clone();
        let PolicyMerge::Create(new) = merge_policy(None, &ours).unwrap() else { panic!() };
        assert_eq!(serde_json::from_str::<Value>(&new).unwrap(), p.bucket_policy);
        assert_eq!(merge_policy(Some(&new), &ours).unwrap(), PolicyMerge::Unchanged);
        let other = json!({"Version": "2012-10-17", "Statement": {"Sid": "Theirs", "Effect": "Deny"}});
        let PolicyMerge::Update(merged) = merge_policy(Some(&other.to_string()), &ours).unwrap() else { panic!() };
        let merged: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(merged["Statement"][0]["Sid"], "Theirs");
        assert_eq!(merged["Statement"][1], ours);
        // Our Sid with an older body: replaced, the others kept.
        let mut old = ours.clone();
        old["Resource"] = "arn:aws:s3:::elsewhere/*".into();
        let doc = json!({"Statement": [old, {"Sid": "Theirs"}]}).to_string();
        let PolicyMerge::Update(merged) = merge_policy(Some(&doc), &ours).unwrap() else { panic!() };
        let merged: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(merged["Statement"], json!([ours, {"Sid": "Theirs"}]));
        assert!(merge_policy(Some("not json"), &ours).is_err());
        assert!(merge_policy(Some("[1]"), &ours).is_err());
    }
}
