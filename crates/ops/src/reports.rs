//! Report summaries and rollout advice from the stored reports: the same code for
//! `reports summary`, `rollout`, and the service's pages and API.

use crate::OpsError;
use ses_dmarc_dns::{Answer, RecordType, Resolver};
use ses_dmarc_receiver::dmarc_discovery::{discover_9989, tree_walk_names};
use ses_dmarc_reports::classify::classify;
use ses_dmarc_reports::rollout::{Criteria, Rollout, advise};
use ses_dmarc_reports::summary::{Summary, SummaryBuilder};
use ses_dmarc_store::Database;
use std::collections::HashMap;
use std::net::IpAddr;

/// Forward-confirmed reverse names of the domain's source IPs since `since`.
async fn reverse_names<R: Resolver>(
    db: &Database,
    resolver: &R,
    domain: &str,
    since: i64,
    until: i64,
) -> Result<HashMap<String, String>, OpsError> {
    let owned = domain.to_string();
    let texts = db.run(move |s| s.source_ips(&owned, since, until)).await?;
    let ips: Vec<(String, IpAddr)> = texts.into_iter().filter_map(|t| t.parse().ok().map(|ip| (t, ip))).collect();
    let names =
        futures::future::join_all(ips.iter().map(|(_, ip)| ses_dmarc_dns::confirmed_reverse_name(resolver, *ip))).await;
    Ok(ips.into_iter().zip(names).filter_map(|((text, _), name)| name.map(|n| (text, n))).collect())
}

/// Totals and pass rates for `domain` over the last `days` days: overall, per source,
/// the SES lines, failure reports. With `ptr`, source IPs are classified by their
/// forward-confirmed reverse names too.
pub async fn summary<R: Resolver>(
    db: &Database,
    domain: &str,
    days: i64,
    ptr: Option<&R>,
    now: i64,
) -> Result<Summary, OpsError> {
    if days <= 0 {
        return Err(OpsError::Input("--days must be at least 1".into()));
    }
    let since = now.saturating_sub(days.saturating_mul(86_400));
    summary_between(db, domain, since, i64::MAX, ptr).await
}

/// The summary of the reports whose periods end after `since` and at the latest at `until`.
pub async fn summary_between<R: Resolver>(
    db: &Database,
    domain: &str,
    since: i64,
    until: i64,
    ptr: Option<&R>,
) -> Result<Summary, OpsError> {
    let names = match ptr {
        Some(resolver) => reverse_names(db, resolver, domain, since, until).await?,
        None => HashMap::new(),
    };
    let domain = domain.to_string();
    Ok(db
        .run(move |store| {
            let mut b = SummaryBuilder::new(&domain);
            for h in store.reports_for(&domain, since, until)? {
                b.add_report(&h);
            }
            store.records_for(&domain, since, until, &mut |r| {
                let ip = r.record.source_ip.map(|i| i.to_string()).unwrap_or_else(|| r.record.source_ip_text.clone());
                let c = classify(&r.record, &r.header.policy, names.get(&ip).map(String::as_str));
                b.add_record(&r.header, &r.record, &c);
            })?;
            for f in store.failures_for(&domain, since, until)? {
                b.add_failure(&f);
            }
            Ok(b.finish())
        })
        .await?)
}

/// The DMARC record `domain` publishes itself (RFC 9989 discovery), `None` when it has
/// none of its own.
pub async fn own_dmarc_record<R: Resolver>(resolver: &R, domain: &str) -> Result<Option<String>, OpsError> {
    let names: Vec<String> = tree_walk_names(domain).into_iter().map(|n| format!("_dmarc.{n}")).collect();
    let answers = futures::future::join_all(names.iter().map(|n| resolver.lookup(n, RecordType::Txt))).await;
    let map: HashMap<String, Answer> = names.into_iter().zip(answers).collect();
    match discover_9989(&|n: &str| map.get(n), domain) {
        Ok(d) => Ok(d.record.filter(|_| d.own)),
        Err(_) => {
            Err(OpsError::DnsUnavailable(format!("the DMARC record of {domain} could not be read (DNS failure)")))
        }
    }
}

/// Whether the domain's policy can be tightened, from the stored evidence and the
/// record it publishes.
pub async fn rollout<R: Resolver>(
    db: &Database,
    resolver: &R,
    domain: &str,
    days: i64,
    criteria: Criteria,
    ptr: bool,
    now: i64,
) -> Result<Rollout, OpsError> {
    let summary = summary(db, domain, days, ptr.then_some(resolver), now).await?;
    let current = own_dmarc_record(resolver, domain).await?;
    Ok(advise(domain, current.as_deref(), &summary, now, criteria))
}
