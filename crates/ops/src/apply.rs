//! `apply --route53`: the plan, the hosted zone that holds the domain, a diff against what
//! the zone holds (never deleting, never replacing what belongs to something else), then
//! one change batch and a wait for INSYNC. `rollout --apply` goes the same way with one
//! record, the next DMARC policy, which alone may replace the one published. With
//! `--receive-reports`, SES receiving follows the records: the bucket policy (our statement
//! merged into the bucket's), the receipt rule set (the active one when there is one), the
//! rule, the activation.

use crate::OpsError;
use serde::Serialize;
use ses_dmarc_ses::Plan;
use ses_dmarc_ses::plan::{DEFAULT_TTL, PlannedRecord, Purpose, RecordData};
use ses_dmarc_ses::receiving::ReceivePlan;
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
    /// SES receiving (`--receive-reports`), after the records.
    pub receiving: Option<ReceiveReport>,
}

/// What apply found and did for SES receiving.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiveReport {
    /// The receiving region.
    pub region: String,
    /// The reports address.
    pub address: String,
    /// The bucket and prefix SES writes to.
    pub bucket: String,
    /// The object key prefix.
    pub prefix: String,
    /// The rule set the rule is in (the active one, when one was).
    pub rule_set: String,
    /// The rule.
    pub rule: String,
    /// The rule set active before apply, if one was.
    pub active_rule_set: Option<String>,
    /// Each step, in order.
    pub steps: Vec<ReceiveStep>,
}

/// One step of SES receiving.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiveStep {
    /// The AWS call (`PutBucketPolicy`, `CreateReceiptRuleSet`, `CreateReceiptRule`,
    /// `SetActiveReceiptRuleSet`).
    pub action: &'static str,
    /// What it does (or would, in a dry run): create, update, unchanged, conflict, skipped.
    pub kind: ChangeKind,
    /// What it means.
    pub note: Option<String>,
}

impl ReceiveReport {
    /// The steps that change something (or would, in a dry run).
    pub fn changed(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s.kind, ChangeKind::Create | ChangeKind::Update)).count()
    }
}

impl ApplyReport {
    /// Whether something planned was left alone (conflicts, placeholders, records of
    /// another zone, receiving steps that could not be done).
    pub fn left_alone(&self) -> bool {
        self.changes.iter().any(|c| matches!(c.kind, ChangeKind::Conflict | ChangeKind::Skipped))
            || self
                .receiving
                .iter()
                .flat_map(|r| &r.steps)
                .any(|s| matches!(s.kind, ChangeKind::Conflict | ChangeKind::Skipped))
    }
}

/// The account id of the credentials in use (STS), for `--receive-reports` without
/// `--account-id`.
pub async fn account_id(endpoint_url: Option<&str>) -> Result<String, OpsError> {
    #[cfg(feature = "aws")]
    {
        Ok(ses_dmarc_ses::aws::account_id(endpoint_url).await?)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = endpoint_url;
        Err(ses_dmarc_ses::AwsError::not_built().into())
    }
}

/// Applies the plan (the records, then SES receiving when the plan has it); the report holds
/// whatever was found before an error.
pub async fn apply_route53(plan: &Plan, options: &ApplyOptions) -> (ApplyReport, Result<(), OpsError>) {
    let domain = plan.domain.to_string();
    if plan.receive_reports.as_ref().is_some_and(|rx| rx.account_id_placeholder) {
        return (
            empty_report(&domain, options),
            Err(OpsError::Input(
                "apply --receive-reports needs the AWS account id for the bucket policy: pass --account-id".into(),
            )),
        );
    }
    let (mut report, result) =
        apply_records(&domain, &plan.records, PublishedDmarc::Keep, options, &format!("ses-dmarc apply for {domain}"))
            .await;
    if result.is_err() {
        return (report, result);
    }
    let Some(rx) = &plan.receive_reports else { return (report, result) };
    let mut receiving = ReceiveReport {
        region: rx.region.to_string(),
        address: rx.address.clone(),
        bucket: rx.bucket.clone(),
        prefix: rx.prefix.clone(),
        rule_set: rx.rule_set.clone(),
        rule: rx.rule.clone(),
        active_rule_set: None,
        steps: vec![],
    };
    let result = receive(rx, options, &mut receiving).await;
    report.receiving = Some(receiving);
    (report, result)
}

fn empty_report(domain: &str, options: &ApplyOptions) -> ApplyReport {
    ApplyReport {
        domain: domain.to_string(),
        hosted_zone: None,
        changes: vec![],
        dry_run: options.dry_run,
        submitted: 0,
        change_id: None,
        insync: None,
        receiving: None,
    }
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
    let mut report = empty_report(domain, options);
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
    let (inside, outside): (Vec<PlannedRecord>, Vec<PlannedRecord>) =
        records.iter().cloned().partition(|r| zone.holds(&r.name));
    report.changes = diff_records(&inside, &existing, dmarc);
    // A reports domain of another organization: its records are for the zone that holds it.
    report.changes.extend(outside.iter().map(|r| Change {
        kind: ChangeKind::Skipped,
        name: format!("{}.", r.name),
        rtype: r.data.type_name(),
        ttl: r.ttl,
        before: vec![],
        after: vec![],
        note: Some(format!(
            "not in the zone {}: publish it in the zone that holds {}",
            normalize_name(&zone.name),
            r.name
        )),
    }));
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

#[cfg(feature = "aws")]
fn step(report: &mut ReceiveReport, action: &'static str, kind: ChangeKind, note: impl Into<Option<String>>) {
    report.steps.push(ReceiveStep { action, kind, note: note.into() });
}

#[cfg(feature = "aws")]
async fn receive(rx: &ReceivePlan, options: &ApplyOptions, report: &mut ReceiveReport) -> Result<(), OpsError> {
    use ses_dmarc_ses::receiving::{PolicyMerge, merge_policy};
    let aws = ses_dmarc_ses::aws::Receiving::connect(rx.region, options.endpoint_url.as_deref()).await;
    let dry = options.dry_run;
    let region = rx.region;
    // Only one rule set is active per region: the rule goes into the active one, unless
    // --receipt-rule-set named a set.
    let active = aws.describe_active().await?;
    report.active_rule_set = active.as_ref().map(|a| a.name.clone());
    let rx = match &active {
        Some(a) if !rx.rule_set_existing && a.name != rx.rule_set => rx.in_rule_set(&a.name),
        _ => rx.clone(),
    };
    report.rule_set = rx.rule_set.clone();

    let current = aws.bucket_policy(&rx.bucket).await?;
    let sid = rx.statement()["Sid"].as_str().unwrap_or_default().to_string();
    match merge_policy(current.as_deref(), rx.statement()) {
        Ok(PolicyMerge::Unchanged) => step(report, "PutBucketPolicy", ChangeKind::Unchanged, None),
        Ok(PolicyMerge::Create(policy)) => {
            if !dry {
                aws.put_bucket_policy(&rx.bucket, &policy).await?;
            }
            step(
                report,
                "PutBucketPolicy",
                ChangeKind::Create,
                format!("statement {sid}: SES may write to {}", rx.bucket),
            );
        }
        Ok(PolicyMerge::Update(policy)) => {
            if !dry {
                aws.put_bucket_policy(&rx.bucket, &policy).await?;
            }
            step(
                report,
                "PutBucketPolicy",
                ChangeKind::Update,
                format!("statement {sid} set; the policy's other statements kept"),
            );
        }
        Err(why) => {
            step(report, "PutBucketPolicy", ChangeKind::Conflict, why);
            step(
                report,
                "CreateReceiptRule",
                ChangeKind::Skipped,
                "SES refuses a rule it cannot write for: fix the bucket policy first".to_string(),
            );
            return Ok(());
        }
    }

    let ours = !rx.rule_set_existing;
    if ours {
        let is_active = active.as_ref().is_some_and(|a| a.name == rx.rule_set);
        let created = if is_active {
            false
        } else if dry {
            true
        } else {
            aws.create_rule_set(&rx.rule_set).await?
        };
        if created {
            step(report, "CreateReceiptRuleSet", ChangeKind::Create, format!("no rule set is active in {region}"));
        } else {
            step(report, "CreateReceiptRuleSet", ChangeKind::Unchanged, None);
        }
    }

    match aws.describe_rule(&rx.rule_set, &rx.rule).await? {
        Some(found) => {
            let wanted = (vec![rx.address.clone()], vec![(rx.bucket.clone(), rx.prefix.clone())]);
            let same = found.enabled
                && found.recipients.iter().map(|r| r.to_ascii_lowercase()).collect::<Vec<_>>() == wanted.0
                && found.s3_actions == wanted.1;
            if same {
                step(report, "CreateReceiptRule", ChangeKind::Unchanged, None);
            } else {
                step(
                    report,
                    "CreateReceiptRule",
                    ChangeKind::Conflict,
                    format!(
                        "a rule {} is in {} already, with other recipients or actions ({} → {:?}): left alone; pass --receipt-rule NAME for a rule of ours",
                        rx.rule,
                        rx.rule_set,
                        found.recipients.join(", "),
                        found.s3_actions
                    ),
                );
            }
        }
        None => {
            if !dry {
                aws.create_rule(&rx.rule_set, &rx.rule, &rx.address, &rx.bucket, &rx.prefix).await?;
            }
            step(
                report,
                "CreateReceiptRule",
                ChangeKind::Create,
                format!("mail to {} is written to s3://{}/{}", rx.address, rx.bucket, rx.prefix),
            );
        }
    }

    match &active {
        Some(a) if a.name == rx.rule_set => {
            let note = (!ours || rx.rule_set != ses_dmarc_ses::receiving::DEFAULT_RULE_SET)
                .then(|| format!("the rule is in {}, the set active in {region}", a.name));
            step(report, "SetActiveReceiptRuleSet", ChangeKind::Unchanged, note);
        }
        Some(a) => step(
            report,
            "SetActiveReceiptRuleSet",
            ChangeKind::Conflict,
            format!(
                "{} is active in {region}, not {}: SES does not run the new rule; activating {} would stop every rule of {} (`aws ses set-active-receipt-rule-set --rule-set-name {} --region {region}` if that is what you want)",
                a.name, rx.rule_set, rx.rule_set, a.name, rx.rule_set
            ),
        ),
        None => {
            if !dry {
                aws.activate(&rx.rule_set).await?;
            }
            step(
                report,
                "SetActiveReceiptRuleSet",
                ChangeKind::Create,
                format!("{} is now the active rule set of {region}", rx.rule_set),
            );
        }
    }
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn receive(_rx: &ReceivePlan, _options: &ApplyOptions, _report: &mut ReceiveReport) -> Result<(), OpsError> {
    Err(ses_dmarc_ses::AwsError::not_built().into())
}
