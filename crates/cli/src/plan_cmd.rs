//! `ses-dmarc plan`.

use crate::Exit;
use crate::style::{self, Style};
use anyhow::Context;
use clap::{Args, ValueEnum};
use ses_dmarc_records::Policy;
use ses_dmarc_ses::plan::{AdviceLevel, MxFailureBehavior, Plan, PlanInput};
use ses_dmarc_ses::receiving::ReceiveReportsInput;
use ses_dmarc_ses::{plan, render};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    /// What to publish where, for reading in a terminal.
    Table,
    /// BIND zone-file lines.
    Zone,
    /// The plan as JSON (docs/json.md).
    Json,
    /// A Route 53 ChangeBatch for `aws route53 change-resource-record-sets`.
    Route53,
    /// Terraform (AWS provider) resources.
    Terraform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PolicyArg {
    None,
    Quarantine,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MxFailureArg {
    /// Fall back to amazonses.com (SPF stops aligning) when the MX is missing.
    UseDefault,
    /// Refuse to send (MailFromDomainNotVerified) when the MX is missing.
    Reject,
}

/// What a plan is made from (shared by `plan` and `apply`).
#[derive(Debug, Args)]
pub(crate) struct PlanInputArgs {
    /// The domain you send from (the From: header's domain), e.g. example.com.
    pub(crate) domain: String,
    /// SES region you send from; repeat for several (the first one gets the MAIL FROM MX).
    #[arg(long = "region", short = 'r', value_name = "REGION", required = true)]
    pub(crate) regions: Vec<String>,
    /// Custom MAIL FROM: a label (`mail` gives mail.DOMAIN) or a full name under DOMAIN.
    #[arg(long, value_name = "LABEL|FQDN")]
    pub(crate) mail_from: Option<String>,
    /// An Easy DKIM token from SES (give all three); `REGION:TOKEN` for another region.
    #[arg(long = "dkim-token", value_name = "TOKEN")]
    pub(crate) dkim_tokens: Vec<String>,
    /// Aggregate report destination, e.g. mailto:dmarc@example.com (repeatable).
    #[arg(long, value_name = "URI")]
    pub(crate) rua: Vec<String>,
    /// Failure report destination (repeatable).
    #[arg(long, value_name = "URI")]
    pub(crate) ruf: Vec<String>,
    /// DMARC policy to publish.
    #[arg(long, value_enum, default_value_t = PolicyArg::None)]
    pub(crate) policy: PolicyArg,
    /// Your current apex SPF record, to get advice on it.
    #[arg(long, value_name = "RECORD")]
    pub(crate) apex_spf: Option<String>,
    /// TTL of every record, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = ses_dmarc_ses::plan::DEFAULT_TTL)]
    pub(crate) ttl: u32,
    /// What SES does when the MAIL FROM MX is missing (BehaviorOnMxFailure).
    #[arg(long, value_enum, default_value_t = MxFailureArg::UseDefault)]
    pub(crate) on_mx_failure: MxFailureArg,
    /// Take the DKIM tokens, MAIL FROM name and DKIM signing zone from the SES identity
    /// in each --region (AWS credentials from the standard chain).
    #[arg(long)]
    pub(crate) from_ses: bool,
    /// Another SES / Route 53 endpoint (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    #[command(flatten)]
    pub(crate) receive: ReceiveArgs,
}

/// `--receive-reports` and its settings (shared by `plan` and `apply`).
#[derive(Debug, Args)]
pub(crate) struct ReceiveArgs {
    /// Receive the DMARC reports with SES: an MX for the reports address to SES's inbound
    /// endpoint, a receipt rule writing to S3, the bucket policy, and the rua pointing there.
    #[arg(long)]
    pub(crate) receive_reports: bool,
    /// The reports address (default dmarc@dmarc-reports.DOMAIN); not at DOMAIN itself nor at
    /// the MAIL FROM name.
    #[arg(long, value_name = "ADDR", requires = "receive_reports")]
    pub(crate) reports_address: Option<String>,
    /// The S3 bucket SES writes the reports to (required with --receive-reports).
    #[arg(long, value_name = "NAME", requires = "receive_reports")]
    pub(crate) reports_bucket: Option<String>,
    /// The object key prefix in the bucket.
    #[arg(long, value_name = "PREFIX", requires = "receive_reports")]
    pub(crate) reports_prefix: Option<String>,
    /// The SES region that receives (default: the first --region where SES receives mail).
    #[arg(long, value_name = "REGION", requires = "receive_reports")]
    pub(crate) receive_region: Option<String>,
    /// Your 12-digit AWS account id, for the bucket policy and the rule ARN (`apply` asks STS
    /// when it is left out).
    #[arg(long, value_name = "ID", requires = "receive_reports")]
    pub(crate) account_id: Option<String>,
    /// Add the rule to this existing receipt rule set, neither creating nor activating a set
    /// (default: the active set, else a set `ses-dmarc`, created and activated).
    #[arg(long, value_name = "NAME", requires = "receive_reports")]
    pub(crate) receipt_rule_set: Option<String>,
    /// The receipt rule's name.
    #[arg(long, value_name = "NAME", requires = "receive_reports")]
    pub(crate) receipt_rule: Option<String>,
}

impl ReceiveArgs {
    /// The receiving input, when `--receive-reports` is given.
    pub(crate) fn to_input(&self) -> Option<ReceiveReportsInput> {
        self.receive_reports.then(|| ReceiveReportsInput {
            address: self.reports_address.clone(),
            bucket: self.reports_bucket.clone(),
            prefix: self.reports_prefix.clone(),
            region: self.receive_region.clone(),
            account_id: self.account_id.clone(),
            existing_rule_set: self.receipt_rule_set.clone(),
            rule: self.receipt_rule.clone(),
        })
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the plan is printed; 2 usage or input error (the message says what to type); 3 --from-ses could not ask AWS.\n\nExample: ses-dmarc plan example.com --region us-east-1 --mail-from mail --rua mailto:dmarc@example.com"
)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) input: PlanInputArgs,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = PlanFormat::Table)]
    pub(crate) format: PlanFormat,
}

impl PlanInputArgs {
    /// The plan's input; with `--from-ses`, completed from SES (this asks AWS).
    pub(crate) async fn to_input(&self) -> anyhow::Result<PlanInput> {
        let mut input = PlanInput {
            domain: self.domain.clone(),
            regions: self.regions.iter().flat_map(|r| r.split(',')).map(|r| r.trim().to_string()).collect(),
            mail_from: self.mail_from.clone(),
            dkim_tokens: self.dkim_tokens.clone(),
            rua: self.rua.iter().flat_map(|r| r.split(',')).map(|r| r.to_string()).collect(),
            ruf: self.ruf.iter().flat_map(|r| r.split(',')).map(|r| r.to_string()).collect(),
            policy: Some(match self.policy {
                PolicyArg::None => Policy::None,
                PolicyArg::Quarantine => Policy::Quarantine,
                PolicyArg::Reject => Policy::Reject,
            }),
            current_apex_spf: self.apex_spf.clone(),
            ttl: Some(self.ttl),
            behavior_on_mx_failure: match self.on_mx_failure {
                MxFailureArg::UseDefault => MxFailureBehavior::UseDefaultValue,
                MxFailureArg::Reject => MxFailureBehavior::RejectMessage,
            },
            dkim_signing_zones: Default::default(),
            receive_reports: self.receive.to_input(),
        };
        if self.from_ses {
            for note in ses_dmarc_ops::plan::complete_from_ses(&mut input, self.endpoint_url.as_deref()).await? {
                style::warning(&mut std::io::stderr(), &note);
            }
            if let Some(rx) = input.receive_reports.as_mut().filter(|rx| rx.account_id.is_none()) {
                match ses_dmarc_ops::apply::account_id(self.endpoint_url.as_deref()).await {
                    Ok(id) => rx.account_id = Some(id),
                    Err(e) => style::warning(
                        &mut std::io::stderr(),
                        &format!("the account id stays a placeholder (pass --account-id): {e}"),
                    ),
                }
            }
        }
        Ok(input)
    }
}

pub(crate) async fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    let input = args.input.to_input().await?;
    let plan = plan(&input)?;
    let mut out = std::io::stdout().lock();
    let text = match args.format {
        PlanFormat::Table => table(&plan, Style::for_stdout()),
        PlanFormat::Zone => render::zone(&plan),
        PlanFormat::Json => json(&plan)?,
        PlanFormat::Route53 => {
            let (batch, left_out) = render::route53_change_batch(&plan);
            for r in render::outside_domain(&plan) {
                style::warning(
                    &mut std::io::stderr(),
                    &format!(
                        "{} {} left out: it is not under {}; publish it in the zone that holds it",
                        r.name,
                        r.data.type_name(),
                        plan.domain
                    ),
                );
            }
            if left_out > 0 {
                style::warning(
                    &mut std::io::stderr(),
                    &format!(
                        "{left_out} DKIM record(s) left out: no --dkim-token given for their region (the tokens come from SES)"
                    ),
                );
            }
            format!("{}\n", serde_json::to_string_pretty(&batch)?)
        }
        PlanFormat::Terraform => render::terraform(&plan),
    };
    out.write_all(text.as_bytes()).context("writing to standard output")?;
    Ok(Exit::Success)
}

fn json(plan: &Plan) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(plan)?;
    if let Some(records) = value.get_mut("records").and_then(|r| r.as_array_mut()) {
        for (json_record, record) in records.iter_mut().zip(&plan.records) {
            json_record["value"] = record.data.display_value().into();
        }
    }
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

fn table(plan: &Plan, s: Style) -> String {
    let regions: Vec<&str> = plan.regions.iter().map(|r| r.code).collect();
    let mut out =
        format!("{}\n\n", s.bold(&format!("DNS records for {} (Amazon SES {})", plan.domain, regions.join(", "))));
    let name_w = plan.records.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!("  {:<name_w$}  {:<5}  {}\n", s.dim("NAME"), s.dim("TYPE"), s.dim("VALUE")));
    let pad = |text: &str, w: usize| format!("{text:<w$}");
    for r in &plan.records {
        let mut line =
            format!("  {}  {}  {}", pad(&r.name, name_w), pad(r.data.type_name(), 5), r.data.display_value());
        if r.placeholder {
            line = s.yellow(&format!("{line}   (placeholder)"));
        } else if !plan.is_under_domain(r) {
            line = format!("{line}   {}", s.dim(&format!("(not under {}: in the zone that holds it)", plan.domain)));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("\n{}\n", s.bold("Then tell SES (after the records are published):")));
    for c in &plan.ses_calls {
        out.push_str(&format!("  {}\n  {}\n", s.dim(&format!("# {}: {}", c.region, c.purpose)), c.command));
    }
    if let Some(rx) = &plan.receive_reports {
        out.push_str(&format!(
            "\n{}\n",
            s.bold("Then read the reports: `ses-dmarc intake run --config FILE` with, in FILE:")
        ));
        for line in rx.intake_config.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str(&format!("\n{}\n", s.bold("Notes:")));
    let mut advice: Vec<_> = plan.advice.iter().collect();
    advice.sort_by_key(|a| a.level != AdviceLevel::Warning);
    for a in advice {
        let mark = match a.level {
            AdviceLevel::Warning => s.yellow("!"),
            AdviceLevel::Info => s.dim("-"),
        };
        out.push_str(&format!("  {mark} {} {}\n", a.message, s.dim(&format!("[{}]", a.code))));
    }
    out
}
