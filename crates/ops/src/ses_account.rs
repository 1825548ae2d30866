//! `ses account` and the account part of `ses status`: each region's SES account as SES and
//! CloudWatch tell it (production access or the sandbox, sending, enforcement, quota,
//! reputation rates), and the regions the stored DMARC reports show SES sending a domain's
//! mail from, compared with the regions where the domain is a verified identity.

use crate::OpsError;
use serde::Serialize;
use ses_dmarc_dns::Resolver;
use ses_dmarc_reports::aggregate::ReportRecord;
use ses_dmarc_reports::classify::{SourceKind, classify};
use ses_dmarc_ses::account::{AccountFinding, AccountStatus, code};
use ses_dmarc_ses::identity::{IdentityStatus, State};
use ses_dmarc_store::Database;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// The account in each region, asked concurrently; every failed call is in its region's
/// `errors`, naming the permission it needs.
#[cfg(feature = "aws")]
pub async fn accounts(regions: &[String], endpoint_url: Option<&str>, now: i64) -> Vec<AccountStatus> {
    futures::future::join_all(regions.iter().map(|r| ses_dmarc_ses::aws::account_status(r, endpoint_url, now))).await
}

/// Without the AWS SDK: each region says so.
#[cfg(not(feature = "aws"))]
pub async fn accounts(regions: &[String], _endpoint_url: Option<&str>, now: i64) -> Vec<AccountStatus> {
    regions
        .iter()
        .map(|r| {
            let e = ses_dmarc_ses::AwsError::not_built();
            let mut status = AccountStatus {
                region: r.clone(),
                errors: vec![ses_dmarc_ses::account::CallError {
                    operation: "GetAccount",
                    permission: "ses:GetAccount".into(),
                    kind: e.kind,
                    message: e.message,
                }],
                ..Default::default()
            };
            ses_dmarc_ses::account::judge(&mut status, now);
            status
        })
        .collect()
}

/// SES mail from one region, as the reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionSeen {
    /// The region its names carry.
    pub region: String,
    /// Messages.
    pub messages: u64,
    /// The end of the latest report period that counted some (seconds since 1970).
    pub last_seen: i64,
}

/// Where the stored reports show SES sending a domain's mail from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SesRegionsSeen {
    /// Days of reports read.
    pub days: i64,
    /// SES messages in those days.
    pub ses_messages: u64,
    /// Per region, by the region label in the SES names of the record (the sending IP's
    /// reverse name, the default MAIL FROM domain).
    pub regions: Vec<RegionSeen>,
    /// SES messages whose names carry no region (`amazonses.com`, a custom MAIL FROM and no
    /// reverse name).
    pub unattributed: u64,
}

/// The region an SES record's names carry: the reverse name first, then the envelope and
/// SPF domains (SES's default MAIL FROM is `<region>.amazonses.com`).
fn region_of_record(record: &ReportRecord, ptr: Option<&str>) -> Option<&'static str> {
    let mut candidates: Vec<&str> = Vec::new();
    candidates.extend(ptr);
    candidates.extend(record.envelope_from.as_deref());
    candidates.extend(record.spf.iter().map(|s| s.domain.as_str()));
    candidates.into_iter().find_map(ses_dmarc_ses::regions::region_in_ses_name).map(|r| r.code)
}

fn ip_text(record: &ReportRecord) -> String {
    record.source_ip.map(|i| i.to_string()).unwrap_or_else(|| record.source_ip_text.clone())
}

/// The regions the reports for `domain` of the last `days` days show SES mail from. With
/// `ptr`, the forward-confirmed reverse names of the SES sources whose envelope names no
/// region are looked up too (only those: SES signs every message `d=amazonses.com`, so its
/// mail is known without them); without it, only SES's default MAIL FROM domain names a
/// region.
pub async fn ses_regions_seen<R: Resolver>(
    db: &Database,
    domain: &str,
    days: i64,
    ptr: Option<&R>,
    now: i64,
) -> Result<SesRegionsSeen, OpsError> {
    if days <= 0 {
        return Err(OpsError::Input("--days must be at least 1".into()));
    }
    let since = now.saturating_sub(days.saturating_mul(86_400));
    let mut names: HashMap<String, String> = HashMap::new();
    if let Some(resolver) = ptr {
        let owned = domain.to_string();
        let wanted: BTreeSet<String> = db
            .run(move |store| {
                let mut wanted = BTreeSet::new();
                store.records_for(&owned, since, i64::MAX, &mut |r| {
                    let ses = classify(&r.record, &r.header.policy, None).kind == SourceKind::AmazonSes;
                    if ses && region_of_record(&r.record, None).is_none() {
                        wanted.insert(ip_text(&r.record));
                    }
                })?;
                Ok(wanted)
            })
            .await?;
        let ips: Vec<(String, IpAddr)> = wanted.into_iter().filter_map(|t| t.parse().ok().map(|ip| (t, ip))).collect();
        let found =
            futures::future::join_all(ips.iter().map(|(_, ip)| ses_dmarc_dns::confirmed_reverse_name(resolver, *ip)))
                .await;
        names = ips.into_iter().zip(found).filter_map(|((t, _), n)| n.map(|n| (t, n))).collect();
    }
    let domain = domain.to_string();
    Ok(db
        .run(move |store| {
            let mut by_region: BTreeMap<&'static str, (u64, i64)> = BTreeMap::new();
            let mut seen = SesRegionsSeen { days, ..Default::default() };
            store.records_for(&domain, since, i64::MAX, &mut |r| {
                let ptr = names.get(&ip_text(&r.record)).map(String::as_str);
                if classify(&r.record, &r.header.policy, ptr).kind != SourceKind::AmazonSes {
                    return;
                }
                seen.ses_messages += r.record.count;
                match region_of_record(&r.record, ptr) {
                    Some(region) => {
                        let entry = by_region.entry(region).or_insert((0, i64::MIN));
                        entry.0 += r.record.count;
                        entry.1 = entry.1.max(r.header.metadata.end);
                    }
                    None => seen.unattributed += r.record.count,
                }
            })?;
            seen.regions = by_region
                .into_iter()
                .map(|(region, (messages, last_seen))| RegionSeen { region: region.to_string(), messages, last_seen })
                .collect();
            Ok(seen)
        })
        .await?)
}

/// What the regions seen in reports mean beside the regions asked: SES mail from a region
/// where the domain is no verified identity, or from a region not asked.
pub fn region_findings(
    domain: &str,
    identities: &[(String, Option<&IdentityStatus>)],
    seen: &SesRegionsSeen,
) -> Vec<AccountFinding> {
    let mut out = Vec::new();
    let asked: Vec<&str> = identities.iter().map(|(r, _)| r.as_str()).collect();
    let verified_in: Vec<&str> = identities
        .iter()
        .filter(|(_, id)| id.is_some_and(|i| i.exists && i.verification == Some(State::Success)))
        .map(|(r, _)| r.as_str())
        .collect();
    for r in &seen.regions {
        let messages =
            format!("{} message{} in the last {} days", r.messages, if r.messages == 1 { "" } else { "s" }, seen.days);
        match identities.iter().find(|(region, _)| *region == r.region) {
            Some((_, Some(id))) if !(id.exists && id.verification == Some(State::Success)) => {
                let state = if id.exists {
                    format!("its identity there is {}", id.verification.map(|v| v.as_str()).unwrap_or("unverified"))
                } else {
                    "it is no identity there".to_string()
                };
                let elsewhere = if verified_in.is_empty() {
                    String::new()
                } else {
                    format!(" (verified in {})", verified_in.join(", "))
                };
                out.push(AccountFinding::new(
                    code::REGION_UNVERIFIED,
                    format!(
                        "DMARC reports show SES mail for {domain} sent from {} ({messages}), but {state}{elsewhere}: SES there signs and sends with that region's setup (or a parent domain's), not the one checked.",
                        r.region
                    ),
                    Some(format!(
                        "verify {domain} in {} with its own DKIM records (`ses-dmarc plan {domain} --region {}`), or stop sending from {}",
                        r.region, r.region, r.region
                    )),
                ));
            }
            Some(_) => {}
            None => out.push(AccountFinding::new(
                code::REGION_NOT_CHECKED,
                format!(
                    "DMARC reports show SES mail for {domain} sent from {} ({messages}), a region not checked here ({}): its identity, DKIM and account are unknown.",
                    r.region,
                    asked.join(", ")
                ),
                Some(format!("add `--region {}` (for a watched domain: `ses-dmarc watch add {domain} --region {}`)", r.region, r.region)),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(region: &str, exists: bool, verification: Option<State>) -> IdentityStatus {
        IdentityStatus {
            domain: "example.com".into(),
            region: region.into(),
            exists,
            verification,
            ..Default::default()
        }
    }

    #[test]
    fn regions_seen_beside_the_identities() {
        let seen = SesRegionsSeen {
            days: 30,
            ses_messages: 130,
            regions: vec![
                RegionSeen { region: "eu-west-1".into(), messages: 100, last_seen: 0 },
                RegionSeen { region: "us-west-2".into(), messages: 20, last_seen: 0 },
                RegionSeen { region: "ap-south-1".into(), messages: 1, last_seen: 0 },
            ],
            unattributed: 9,
        };
        let eu = identity("eu-west-1", true, Some(State::Success));
        let us = identity("us-west-2", false, None);
        let ids = [("eu-west-1".to_string(), Some(&eu)), ("us-west-2".to_string(), Some(&us))];
        let f = region_findings("example.com", &ids, &seen);
        let codes: Vec<&str> = f.iter().map(|f| f.code).collect();
        assert_eq!(codes, [code::REGION_UNVERIFIED, code::REGION_NOT_CHECKED]);
        assert!(f[0].message.contains("us-west-2 (20 messages in the last 30 days)"), "{}", f[0].message);
        assert!(f[0].message.contains("verified in eu-west-1"), "{}", f[0].message);
        assert!(f[1].message.contains("ap-south-1 (1 message in"), "{}", f[1].message);
        assert!(f[1].fix.as_deref().unwrap().contains("--region ap-south-1"));

        // A region whose identity could not be asked is no finding.
        let ids = [("eu-west-1".to_string(), Some(&eu)), ("us-west-2".to_string(), None)];
        let seen = SesRegionsSeen { regions: seen.regions[..2].to_vec(), ..seen };
        assert!(region_findings("example.com", &ids, &seen).is_empty());
    }
}
