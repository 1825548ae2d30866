//! Every SES region with its feedback (MAIL FROM MX) host, Easy DKIM signing zone, and
//! whether SES receives mail there (`inbound-smtp.<region>.amazonaws.com`).
//!
//! Sources: the AWS SES developer guide (`mail-from.md`, `regions.md`): its 2023 region table
//! (feedback endpoints; region-specific DKIM zones for af-south-1, ap-northeast-3,
//! eu-south-1) and, for regions added later, the SES v2 region enum plus public Terraform
//! modules citing the AWS General Reference. The SES v2 API's
//! `DkimAttributes.SigningHostedZone` is the final word when it is available.
//!
//! Receiving: the General Reference's "Email Receiving endpoints" table
//! (<https://docs.aws.amazon.com/general/latest/gr/ses.html#ses_inbound_endpoints>), as of
//! 2026: 22 regions. GovCloud is named as unsupported; eu-central-2, ap-south-2,
//! ap-southeast-5, ca-west-1 and me-central-1 are absent from it, so they are marked as not
//! receiving, as is any region not confirmed. In such a region the receipt-rule calls fail
//! with `InvalidAction: Unavailable Operation`.

use serde::Serialize;

/// An SES region and the SES hosts it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Region code (`eu-west-1`).
    pub code: &'static str,
    /// AWS's name for it (`Europe (Ireland)`).
    pub name: &'static str,
    /// Zone under which Easy DKIM CNAMEs point: `<token>.<zone>`.
    pub dkim_signing_zone: &'static str,
    /// Whether AWS's own text lists the region's feedback endpoint; `false` means the
    /// `feedback-smtp.<region>.amazonses.com` pattern is assumed.
    pub feedback_host_documented: bool,
    /// Whether SES receives mail in the region (receipt rules, `inbound-smtp.<region>.amazonaws.com`).
    pub receives_mail: bool,
}

impl Region {
    /// The MAIL FROM MX target: `feedback-smtp.<region>.amazonses.com`.
    pub fn feedback_host(&self) -> String {
        format!("feedback-smtp.{}.amazonses.com", self.code)
    }

    /// The receiving MX target: `inbound-smtp.<region>.amazonaws.com` (meaningful only when
    /// [`Region::receives_mail`]).
    pub fn inbound_host(&self) -> String {
        format!("inbound-smtp.{}.amazonaws.com", self.code)
    }
}

/// Whether SES receives mail in a region: a column of [`REGIONS`].
const RECEIVES: bool = true;
const SENDS_ONLY: bool = false;

const fn region(
    code: &'static str,
    name: &'static str,
    dkim_signing_zone: &'static str,
    documented: bool,
    receives_mail: bool,
) -> Region {
    Region { code, name, dkim_signing_zone, feedback_host_documented: documented, receives_mail }
}

const GLOBAL_DKIM: &str = "dkim.amazonses.com";

/// Every SES region this tool knows.
pub const REGIONS: &[Region] = &[
    region("us-east-1", "US East (N. Virginia)", GLOBAL_DKIM, true, RECEIVES),
    region("us-east-2", "US East (Ohio)", GLOBAL_DKIM, true, RECEIVES),
    region("us-west-1", "US West (N. California)", GLOBAL_DKIM, true, RECEIVES),
    region("us-west-2", "US West (Oregon)", GLOBAL_DKIM, true, RECEIVES),
    region("af-south-1", "Africa (Cape Town)", "dkim.af-south-1.amazonses.com", true, RECEIVES),
    region("ap-south-1", "Asia Pacific (Mumbai)", GLOBAL_DKIM, true, RECEIVES),
    region("ap-south-2", "Asia Pacific (Hyderabad)", "dkim.ap-south-2.amazonses.com", false, SENDS_ONLY),
    region("ap-northeast-1", "Asia Pacific (Tokyo)", GLOBAL_DKIM, true, RECEIVES),
    region("ap-northeast-2", "Asia Pacific (Seoul)", GLOBAL_DKIM, true, RECEIVES),
    region("ap-northeast-3", "Asia Pacific (Osaka)", "dkim.ap-northeast-3.amazonses.com", true, RECEIVES),
    region("ap-southeast-1", "Asia Pacific (Singapore)", GLOBAL_DKIM, true, RECEIVES),
    region("ap-southeast-2", "Asia Pacific (Sydney)", GLOBAL_DKIM, true, RECEIVES),
    region("ap-southeast-3", "Asia Pacific (Jakarta)", "dkim.ap-southeast-3.amazonses.com", false, RECEIVES),
    region("ap-southeast-5", "Asia Pacific (Malaysia)", "dkim.ap-southeast-5.amazonses.com", false, SENDS_ONLY),
    region("ca-central-1", "Canada (Central)", GLOBAL_DKIM, true, RECEIVES),
    region("ca-west-1", "Canada West (Calgary)", "dkim.ca-west-1.amazonses.com", false, SENDS_ONLY),
    region("eu-central-1", "Europe (Frankfurt)", GLOBAL_DKIM, true, RECEIVES),
    region("eu-central-2", "Europe (Zurich)", "dkim.eu-central-2.amazonses.com", false, SENDS_ONLY),
    region("eu-west-1", "Europe (Ireland)", GLOBAL_DKIM, true, RECEIVES),
    region("eu-west-2", "Europe (London)", GLOBAL_DKIM, true, RECEIVES),
    region("eu-west-3", "Europe (Paris)", GLOBAL_DKIM, true, RECEIVES),
    region("eu-south-1", "Europe (Milan)", "dkim.eu-south-1.amazonses.com", true, RECEIVES),
    region("eu-north-1", "Europe (Stockholm)", GLOBAL_DKIM, true, RECEIVES),
    region("il-central-1", "Israel (Tel Aviv)", "dkim.il-central-1.amazonses.com", false, RECEIVES),
    region("me-south-1", "Middle East (Bahrain)", GLOBAL_DKIM, true, RECEIVES),
    region("me-central-1", "Middle East (UAE)", "dkim.me-central-1.amazonses.com", false, SENDS_ONLY),
    region("sa-east-1", "South America (São Paulo)", GLOBAL_DKIM, true, RECEIVES),
    region("us-gov-west-1", "AWS GovCloud (US-West)", GLOBAL_DKIM, true, SENDS_ONLY),
    region("us-gov-east-1", "AWS GovCloud (US-East)", "dkim.us-gov-east-1.amazonses.com", false, SENDS_ONLY),
];

/// The regions where SES receives mail, in table order.
pub fn receiving() -> impl Iterator<Item = &'static Region> {
    REGIONS.iter().filter(|r| r.receives_mail)
}

/// Looks a region up by code, case-insensitively.
pub fn find(code: &str) -> Option<&'static Region> {
    let code = code.trim();
    REGIONS.iter().find(|r| r.code.eq_ignore_ascii_case(code))
}

/// The region a feedback host names, if it is `feedback-smtp.<region>.amazonses.com` and
/// the region exists. `Err(label)` when the host has the SES shape but the region is not
/// one SES has (a typo).
pub fn region_of_feedback_host(host: &str) -> Option<Result<&'static Region, String>> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let middle = host.strip_prefix("feedback-smtp.")?.strip_suffix(".amazonses.com")?;
    if middle.contains('.') || middle.is_empty() {
        return Some(Err(middle.to_string()));
    }
    Some(find(middle).ok_or_else(|| middle.to_string()))
}

/// The SES region a name under amazonses.com names, as DMARC reports show SES mail: the
/// reverse name of a sending IP (`a3-11.smtp-out.eu-west-1.amazonses.com`) or the default
/// MAIL FROM domain (`eu-west-1.amazonses.com`). `None` for names outside amazonses.com and
/// for names without a region label (`amazonses.com`, `a8-30.smtp-out.amazonses.com`):
/// those say SES, not where.
pub fn region_in_ses_name(name: &str) -> Option<&'static Region> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let rest = name.strip_suffix(".amazonses.com")?;
    let label = rest.rsplit('.').next()?;
    find(label).filter(|r| r.code == label)
}

/// The region codes closest to a mistyped one, for "did you mean" messages.
pub fn suggest(code: &str) -> Vec<&'static str> {
    let code = code.trim().to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> =
        REGIONS.iter().map(|r| (edit_distance(&code, r.code), r.code)).collect();
    scored.sort();
    scored.into_iter().take_while(|(d, _)| *d <= 3).take(3).map(|(_, c)| c).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert_eq!(REGIONS.len(), 29);
        for r in REGIONS {
            assert!(r.dkim_signing_zone.ends_with("amazonses.com"));
            assert_eq!(find(r.code), Some(r));
            assert_eq!(region_of_feedback_host(&r.feedback_host()), Some(Ok(r)));
        }
        let codes: std::collections::HashSet<_> = REGIONS.iter().map(|r| r.code).collect();
        assert_eq!(codes.len(), REGIONS.len());
    }

    #[test]
    fn receiving_regions() {
        let codes: Vec<&str> = receiving().map(|r| r.code).collect();
        assert_eq!(codes.len(), 22, "{codes:?}");
        let not: Vec<&str> = REGIONS.iter().filter(|r| !r.receives_mail).map(|r| r.code).collect();
        assert_eq!(
            not,
            [
                "ap-south-2",
                "ap-southeast-5",
                "ca-west-1",
                "eu-central-2",
                "me-central-1",
                "us-gov-west-1",
                "us-gov-east-1"
            ]
        );
        for code in ["us-east-1", "us-west-2", "eu-west-1", "us-east-2", "eu-central-1", "ap-northeast-1", "sa-east-1"]
        {
            assert!(find(code).unwrap().receives_mail, "{code}");
        }
        assert_eq!(find("eu-west-1").unwrap().inbound_host(), "inbound-smtp.eu-west-1.amazonaws.com");
    }

    #[test]
    fn dkim_zones() {
        assert_eq!(find("us-east-1").unwrap().dkim_signing_zone, "dkim.amazonses.com");
        assert_eq!(find("eu-south-1").unwrap().dkim_signing_zone, "dkim.eu-south-1.amazonses.com");
        assert_eq!(find("EU-WEST-1").unwrap().feedback_host(), "feedback-smtp.eu-west-1.amazonses.com");
    }

    #[test]
    fn feedback_hosts() {
        assert_eq!(region_of_feedback_host("feedback-smtp.us-east-7.amazonses.com."), Some(Err("us-east-7".into())));
        assert_eq!(region_of_feedback_host("mx.example.com"), None);
        assert_eq!(suggest("us-east1")[0], "us-east-1");
        assert_eq!(suggest("eu-wset-1")[0], "eu-west-1");
        assert!(suggest("completely-wrong-name").is_empty());
    }

    #[test]
    fn regions_in_ses_names() {
        let code = |n: &str| region_in_ses_name(n).map(|r| r.code);
        assert_eq!(code("a3-11.smtp-out.eu-west-1.amazonses.com"), Some("eu-west-1"));
        assert_eq!(code("AP-SOUTHEAST-2.amazonses.com."), Some("ap-southeast-2"));
        assert_eq!(code("a8-30.smtp-out.amazonses.com"), None);
        assert_eq!(code("amazonses.com"), None);
        assert_eq!(code("mail.eu-west-9.amazonses.com"), None);
        assert_eq!(code("eu-west-1.amazonses.com.example.com"), None);
        assert_eq!(code("eu-west-1.example.com"), None);
    }
}
