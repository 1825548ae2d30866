//! Report summaries and rollout advice from the stored reports: the same code for
//! `reports summary`, `rollout`, and the service's pages and API.

use crate::OpsError;
use serde::Serialize;
use ses_dmarc_dns::{Answer, RecordType, Resolver};
use ses_dmarc_receiver::dmarc_discovery::{discover_9989, tree_walk_names};
use ses_dmarc_reports::aggregate::{DkimAuth, PolicyPublished, SpfAuth};
use ses_dmarc_reports::asn::{AsnError, AsnTable};
use ses_dmarc_reports::classify::{SourceKind, classify};
use ses_dmarc_reports::rollout::{Criteria, Rollout, advise};
use ses_dmarc_reports::summary::{AddressFacts, Summary, SummaryBuilder};
use ses_dmarc_store::{Database, StoredReport};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Reads the offline IP → ASN tables (`--asn-db`: the CSV files of `@ip-location-db/asn`,
/// plain or gzip, IPv4 and IPv6 alike) into one table. A file that cannot be read, a
/// line that is not a range, or a file with no range is an input error naming the file
/// (and the line).
pub fn load_asn_tables(paths: &[impl AsRef<Path>]) -> Result<AsnTable, OpsError> {
    let mut table = AsnTable::new();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file =
            std::fs::File::open(path).map_err(|e| AsnError::Read { file: name.clone(), reason: e.to_string() })?;
        if table.read_csv(file, &name)? == 0 {
            return Err(AsnError::Read { file: name, reason: "no IP range in it".into() }.into());
        }
    }
    Ok(table)
}

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
    summary_with(db, domain, days, ptr, None, now).await
}

/// [`summary`] with source addresses grouped by the offline ASN table too (`--asn-db`).
pub async fn summary_with<R: Resolver>(
    db: &Database,
    domain: &str,
    days: i64,
    ptr: Option<&R>,
    asn: Option<Arc<AsnTable>>,
    now: i64,
) -> Result<Summary, OpsError> {
    if days <= 0 {
        return Err(OpsError::Input("--days must be at least 1".into()));
    }
    let since = now.saturating_sub(days.saturating_mul(86_400));
    summary_between_with(db, domain, since, i64::MAX, ptr, asn).await
}

/// The summary of the reports whose periods end after `since` and at the latest at `until`.
pub async fn summary_between<R: Resolver>(
    db: &Database,
    domain: &str,
    since: i64,
    until: i64,
    ptr: Option<&R>,
) -> Result<Summary, OpsError> {
    summary_between_with(db, domain, since, until, ptr, None).await
}

/// [`summary_between`] with the offline ASN table.
pub async fn summary_between_with<R: Resolver>(
    db: &Database,
    domain: &str,
    since: i64,
    until: i64,
    ptr: Option<&R>,
    asn: Option<Arc<AsnTable>>,
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
                let ptr = names.get(&ip).map(String::as_str);
                let c = classify(&r.record, &r.header.policy, ptr);
                let asn = match (&asn, r.record.source_ip) {
                    (Some(table), Some(ip)) => table.lookup(ip),
                    _ => None,
                };
                b.add_record_about(&r.header, &r.record, &c, AddressFacts { ptr, asn });
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

/// One stored report in `reports list`.
#[derive(Debug, Clone, Serialize)]
pub struct ReportListing {
    /// The database's id (`reports show ID`).
    pub id: i64,
    /// The reporting organization.
    pub reporter: String,
    /// Its contact address.
    pub email: Option<String>,
    /// The reporter's id for the report.
    pub report_id: String,
    /// The policy domain.
    pub domain: String,
    /// Start of the period, seconds since 1970.
    pub begin: i64,
    /// End of the period.
    pub end: i64,
    /// Records.
    pub records: u64,
    /// Messages.
    pub messages: u64,
    /// Of those, passing DMARC (recomputed, as in the summary).
    pub dmarc_pass: u64,
    /// `dmarc_pass / messages` (0 without messages).
    pub pass_rate: f64,
}

/// The stored reports `reports list` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportList {
    /// The domain asked for, or `None` for every domain.
    pub domain: Option<String>,
    /// Reports whose period ends in the window, in all.
    pub total: u64,
    /// The newest of them, at most the limit asked for.
    pub reports: Vec<ReportListing>,
}

/// Messages and DMARC passes of the stored report `id`, recomputed.
fn report_pass(store: &mut ses_dmarc_store::Store, id: i64) -> Result<(u64, u64), ses_dmarc_store::StoreError> {
    let (mut messages, mut pass) = (0u64, 0u64);
    store.report_records(id, &mut |r| {
        let c = classify(&r.record, &r.header.policy, None);
        messages += r.record.count;
        pass += if c.dmarc_pass { r.record.count } else { 0 };
    })?;
    Ok((messages, pass))
}

/// The stored reports of `domain` (or of every domain) whose period ended in the last
/// `days` days, newest first, at most `limit`, each with its DMARC pass rate.
pub async fn list_reports(
    db: &Database,
    domain: Option<&str>,
    days: i64,
    limit: u64,
    now: i64,
) -> Result<ReportList, OpsError> {
    if days <= 0 {
        return Err(OpsError::Input("--days must be at least 1".into()));
    }
    let since = now.saturating_sub(days.saturating_mul(86_400));
    let owned = domain.map(str::to_string);
    Ok(db
        .run(move |store| {
            let (stored, total) = store.list_reports(owned.as_deref(), since, limit)?;
            let mut reports = Vec::with_capacity(stored.len());
            for r in stored {
                let (_, dmarc_pass) = report_pass(store, r.id)?;
                reports.push(ReportListing {
                    id: r.id,
                    reporter: r.header.metadata.org_name,
                    email: r.header.metadata.email,
                    report_id: r.header.metadata.report_id,
                    domain: r.header.policy.domain,
                    begin: r.header.metadata.begin,
                    end: r.header.metadata.end,
                    records: r.records,
                    messages: r.messages,
                    dmarc_pass,
                    pass_rate: Summary::rate(dmarc_pass, r.messages),
                });
            }
            Ok(ReportList { domain: owned, total, reports })
        })
        .await?)
}

/// One record of a stored report, with how the summary reads it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    /// The source IP, as stored.
    pub source_ip: String,
    /// Messages.
    pub count: u64,
    /// What the reporter did with them.
    pub disposition: Option<String>,
    /// The reporter's own DKIM verdict for DMARC.
    pub evaluated_dkim: Option<String>,
    /// The reporter's own SPF verdict for DMARC.
    pub evaluated_spf: Option<String>,
    /// The From domain.
    pub header_from: String,
    /// The MAIL FROM domain, when reported.
    pub envelope_from: Option<String>,
    /// The DKIM signatures checked.
    pub dkim: Vec<DkimAuth>,
    /// The SPF checks made.
    pub spf: Vec<SpfAuth>,
    /// Its line in the summary (`Amazon SES`, a service, `forwarded`, or the IP).
    pub source: String,
    /// How it was classified.
    pub kind: SourceKind,
    /// DMARC passes (recomputed).
    pub dmarc_pass: bool,
    /// SPF aligned (recomputed).
    pub spf_aligned: bool,
    /// DKIM aligned (recomputed).
    pub dkim_aligned: bool,
}

/// A stored report as `reports show` gives it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    /// The database's id.
    pub id: i64,
    /// The reporting organization.
    pub reporter: String,
    /// Its contact address.
    pub email: Option<String>,
    /// The reporter's id for the report.
    pub report_id: String,
    /// The policy domain.
    pub domain: String,
    /// Start of the period, seconds since 1970.
    pub begin: i64,
    /// End of the period.
    pub end: i64,
    /// `rfc7489` or `rfc9990`.
    pub schema: &'static str,
    /// Where it was read from.
    pub origin: String,
    /// When it was stored, seconds since 1970.
    pub ingested_at: i64,
    /// The DMARC policy the reporter found published.
    pub policy: PolicyPublished,
    /// Messages.
    pub messages: u64,
    /// Of those, passing DMARC (recomputed).
    pub dmarc_pass: u64,
    /// Every record, most messages first.
    pub records: Vec<RecordView>,
    /// Whether the original XML is kept (not yet: the report is shown as stored).
    pub original_kept: bool,
    /// The original XML when kept (always `None` for now).
    pub original: Option<String>,
}

/// The stored report `id`: the number `reports list` shows, or else the reporter's own
/// report id when exactly one stored report has it. Not there: [`OpsError::NotFound`];
/// a reporter's id several reports share: [`OpsError::Input`] naming their numbers.
pub async fn show_report(db: &Database, id: &str) -> Result<ReportView, OpsError> {
    let id = id.trim().to_string();
    if id.is_empty() {
        return Err(OpsError::Input("the report id is empty: give the number `reports list` shows".into()));
    }
    let found: Result<(StoredReport, Vec<RecordView>), OpsError> = db
        .run(move |store| {
            let report = match id.parse::<i64>().ok() {
                Some(n) => store.report_by_id(n)?,
                None => None,
            };
            let report = match report {
                Some(r) => Some(r),
                None => {
                    let mut by_reporter = store.reports_by_reporter_id(&id)?;
                    if by_reporter.len() > 1 {
                        let ids: Vec<String> = by_reporter.iter().map(|r| r.id.to_string()).collect();
                        return Ok(Err(OpsError::Input(format!(
                            "{} stored reports have the report id `{id}` (from {}): give one of their numbers: {}",
                            by_reporter.len(),
                            by_reporter
                                .iter()
                                .map(|r| r.header.metadata.org_name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            ids.join(", ")
                        ))));
                    }
                    by_reporter.pop()
                }
            };
            let Some(report) = report else {
                return Ok(Err(OpsError::NotFound(format!(
                    "no stored report has the id `{id}` (`ses-dmarc reports list` shows them, with their numbers)"
                ))));
            };
            let mut records = Vec::new();
            store.report_records(report.id, &mut |r| {
                let c = classify(&r.record, &r.header.policy, None);
                let rec = r.record;
                records.push(RecordView {
                    source_ip: rec.source_ip.map(|i| i.to_string()).unwrap_or(rec.source_ip_text),
                    count: rec.count,
                    disposition: rec.disposition,
                    evaluated_dkim: rec.evaluated_dkim,
                    evaluated_spf: rec.evaluated_spf,
                    header_from: rec.header_from,
                    envelope_from: rec.envelope_from,
                    dkim: rec.dkim,
                    spf: rec.spf,
                    source: c.source,
                    kind: c.kind,
                    dmarc_pass: c.dmarc_pass,
                    spf_aligned: c.spf_aligned,
                    dkim_aligned: c.dkim_aligned,
                });
            })?;
            Ok(Ok((report, records)))
        })
        .await?;
    let (r, mut records) = found?;
    records.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.source_ip.cmp(&b.source_ip)));
    let messages = records.iter().map(|x| x.count).sum();
    let dmarc_pass = records.iter().filter(|x| x.dmarc_pass).map(|x| x.count).sum();
    Ok(ReportView {
        id: r.id,
        reporter: r.header.metadata.org_name,
        email: r.header.metadata.email,
        report_id: r.header.metadata.report_id,
        domain: r.header.policy.domain.clone(),
        begin: r.header.metadata.begin,
        end: r.header.metadata.end,
        schema: r.header.schema,
        origin: r.origin,
        ingested_at: r.ingested_at,
        policy: r.header.policy,
        messages,
        dmarc_pass,
        records,
        original_kept: false,
        original: None,
    })
}
