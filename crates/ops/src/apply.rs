//! `apply --route53`: the plan, the hosted zone that holds the domain, a diff against what
//! the zone holds (never deleting, never replacing what belongs to something else), then
//! one change batch and a wait for INSYNC. `rollout --apply` goes the same way with one
//! record, the next DMARC policy, which alone may replace the one published.

use crate::OpsError;
use serde::Serialize;
use ses_dmarc_ses::Plan;
use ses_dmarc_ses::plan::{DEFAULT_TTL, PlannedRecord, Purpose, RecordData};
use ses_dmarc_ses::route53::{Change, ChangeKind, PublishedDmarc};
use std::time::Duration;

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// The hosted zone (default: the deepest public zone holding the domain).
    pub hosted_zone_id: Option<String>,
    /// Show the diff, change nothing.
    pub dry_run: bool,
    /// How long to wait for INSYNC.
    pub wait: Duration,
    /// Another Route 53 endpoint.
    pub endpoint_url: Option<String>,
}

/// What apply found and did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The domain planned.
    pub domain: String,
    /// The zone used: (name, id).
    pub hosted_zone: Option<(String, String)>,
    /// Every planned record against the zone.
    pub changes: Vec<Change>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Changes submitted (or that would be, in a dry run).
    pub submitted: usize,
    /// Route 53's change id.
    pub change_id: Option<String>,
    /// Whether the change was INSYNC before the wait ran out.
    pub insync: Option<bool>,
}

impl ApplyReport {
    /// Whether some planned record was left alone (conflicts, placeholders).
    pub fn left_alone(&self) -> bool {
        self.changes.iter().any(|c| matches!(c.kind, ChangeKind::Conflict | ChangeKind::Skipped))
    }
}

/// Applies the plan; the report holds whatever was found before an error.
pub async fn apply_route53(plan: &Plan, options: &ApplyOptions) -> (ApplyReport, Result<(), OpsError>) {
    let domain = plan.domain.to_string();
    apply_records(&domain, &plan.records, PublishedDmarc::Keep, options, &format!("ses-dmarc apply for {domain}")).await
}

/// Publishes `record` as the DMARC record of `domain` (`_dmarc.<domain>` TXT), replacing
/// the policy published there (the other TXT values at the name are kept) when the zone
/// holds `current`, the record the rollout read from DNS; nothing else in the zone is
/// touched. The same diff, dry run and INSYNC wait as [`apply_route53`].
pub async fn apply_dmarc_route53(
    domain: &str,
    record: &str,
    current: Option<&str>,
    options: &ApplyOptions,
) -> (ApplyReport, Result<(), OpsError>) {
    let planned = PlannedRecord {
        name: format!("_dmarc.{}", domain.trim_end_matches('.').to_ascii_lowercase()),
        ttl: DEFAULT_TTL,
        data: RecordData::Txt { text: record.to_string() },
        purpose: Purpose::Dmarc,
        region: None,
        placeholder: false,
    };
    let mode = PublishedDmarc::Replace { expected: current };
    apply_records(domain, std::slice::from_ref(&planned), mode, options, &format!("ses-dmarc rollout for {domain}"))
        .await
}

async fn apply_records(
    domain: &str,
    records: &[PlannedRecord],
    dmarc: PublishedDmarc<'_>,
    options: &ApplyOptions,
    comment: &str,
) -> (ApplyReport, Result<(), OpsError>) {
    let mut report = ApplyReport {
        domain: domain.to_string(),
        hosted_zone: None,
        changes: vec![],
        dry_run: options.dry_run,
        submitted: 0,
        change_id: None,
        insync: None,
    };
    let result = run(records, dmarc, options, comment, &mut report).await;
    (report, result)
}

#[cfg(feature = "aws")]
async fn run(
    records: &[PlannedRecord],
    dmarc: PublishedDmarc<'_>,
    options: &ApplyOptions,
    comment: &str,
    report: &mut ApplyReport,
) -> Result<(), OpsError> {
    use ses_dmarc_ses::route53::{diff_records, normalize_name, pick_zone};
    let domain = report.domain.clone();
    let r53 = ses_dmarc_ses::aws::Route53::connect(options.endpoint_url.as_deref()).await;
    let zone = match &options.hosted_zone_id {
        Some(id) => {
            let zone = r53.zone(id).await?;
            if !zone.holds(&domain) {
                return Err(OpsError::Input(format!(
                    "hosted zone {id} is {}, which does not hold {domain}",
                    normalize_name(&zone.name)
                )));
            }
            zone
        }
        None => {
            let zones = r53.zones().await?;
            pick_zone(&domain, &zones).cloned().ok_or_else(|| {
                OpsError::Input(format!(
                    "no public Route 53 hosted zone holds {domain} in this account: create one, or pass --hosted-zone-id"
                ))
            })?
        }
    };
    report.hosted_zone = Some((zone.name.clone(), zone.id.clone()));
    let existing = r53.record_sets(&zone.id).await?;
    report.changes = diff_records(records, &existing, dmarc);
    let submit: Vec<Change> = report.changes.iter().filter(|c| c.is_submitted()).cloned().collect();
    report.submitted = submit.len();
    if options.dry_run || submit.is_empty() {
        return Ok(());
    }
    let id = r53.submit(&zone.id, &submit, comment).await?;
    report.change_id = Some(id.clone());
    let poll = Duration::from_millis(if options.wait < Duration::from_secs(30) { 500 } else { 5_000 });
    report.insync = Some(r53.wait_insync(&id, options.wait, poll).await?);
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn run(
    _records: &[PlannedRecord],
    _dmarc: PublishedDmarc<'_>,
    _options: &ApplyOptions,
    _comment: &str,
    _report: &mut ApplyReport,
) -> Result<(), OpsError> {
    Err(ses_dmarc_ses::AwsError::not_built().into())
}
