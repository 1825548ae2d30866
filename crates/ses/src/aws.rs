//! The AWS calls: SES identities (SES v1 for verification, DKIM and MAIL FROM, the calls
//! every SES endpoint and emulator implement; SES v2's GetEmailIdentity for what only it
//! tells: signing zone, key lengths, DEED origin, when the keys were made), the MAIL FROM
//! setting, the account in a region (SES v2 GetAccount, SES v1's quota and sending flag
//! where GetAccount cannot be had; CloudWatch's reputation metrics), and Route 53 zones and
//! changes. Credentials and region settings come from the
//! standard AWS chain (environment, profile, SSO, instance role); `endpoint_url` (or
//! `AWS_ENDPOINT_URL`) points elsewhere. Errors are said in plain words with the fix.

use crate::account::{AccountStatus, CallError, ConfigurationSetRates, ProductionAccessRequest};
use crate::aws_error::{AwsError, AwsErrorKind};
use crate::identity::{DkimState, IdentityStatus, MailFromState, State};
use crate::plan::MxFailureBehavior;
use crate::route53::{Change, ChangeKind, HostedZone, RecordSet};
use aws_config::BehaviorVersion;
use aws_sdk_ses::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::Duration;

fn service_of(operation: &str) -> &'static str {
    if operation.contains("HostedZone") || operation.contains("ResourceRecordSets") || operation == "GetChange" {
        "route53"
    } else if operation == "GetMetricData" || operation == "ListMetrics" {
        "cloudwatch"
    } else if operation.contains("Bucket") {
        "s3"
    } else if operation == "GetCallerIdentity" {
        "sts"
    } else {
        "ses"
    }
}

/// The IAM permission an operation needs (`ses:GetAccount`, `cloudwatch:GetMetricData`).
pub fn permission_of(operation: &str) -> String {
    format!("{}:{operation}", service_of(operation))
}

/// The innermost cause of an error, in its own words (`Connection refused (os error
/// 111)`), without the SDK's debug dump of every layer.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    let text = current.to_string();
    if text.is_empty() { err.to_string() } else { text }
}

/// No credentials: what to do, naming a profile that does not exist when that is the cause.
fn no_credentials(context: &str) -> String {
    match std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) {
        Some(profile) if context.to_ascii_lowercase().contains("profile") => format!(
            "AWS_PROFILE is `{profile}`, but no such profile is in ~/.aws/config or ~/.aws/credentials: `aws configure list-profiles` lists those there; set AWS_PROFILE to one of them (or unset it)."
        ),
        Some(profile) => format!(
            "No AWS credentials found for the profile `{profile}` (AWS_PROFILE): give it credentials (`aws configure --profile {profile}`, or `aws sso login --profile {profile}`)."
        ),
        None => "No AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), run `aws sso login`, or run where an instance role is attached.".to_string(),
    }
}

fn explain<E>(
    operation: &'static str,
    endpoint: &str,
    err: SdkError<E, aws_sdk_ses::config::http::HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let detail = err.message().unwrap_or_default().to_string();
    let context = DisplayErrorContext(&err).to_string();
    let service = service_of(operation);
    let (kind, message) = match code.as_str() {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => (
            AwsErrorKind::AccessDenied,
            format!(
                "AWS denied {operation}: the credentials in use lack the `{service}:{operation}` permission. Add it to their IAM policy (or use a profile that has it). AWS said: {detail}"
            ),
        ),
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidAccessKeyId" => (
            AwsErrorKind::BadCredentials,
            format!(
                "AWS rejected the credentials ({code}): check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or sign in again (`aws sso login`)."
            ),
        ),
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "PriorRequestNotComplete" => (
            AwsErrorKind::Throttled,
            format!("AWS is throttling {operation} ({code}) even after retries: wait a minute and run again."),
        ),
        "NotFoundException" | "NoSuchHostedZone" | "NoSuchChange" => {
            (AwsErrorKind::NotFound, format!("{operation}: {detail}"))
        }
        "InvalidChangeBatch" | "InvalidInput" | "InvalidParameterValue" | "BadRequestException" => {
            (AwsErrorKind::Refused, format!("AWS refused {operation}: {detail}"))
        }
        "NoSuchBucket" | "RuleSetDoesNotExist" | "RuleDoesNotExist" => {
            (AwsErrorKind::NotFound, format!("{operation}: {code}: {detail}"))
        }
        "InvalidS3Configuration" | "InvalidSnsTopic" | "InvalidLambdaFunction" | "LimitExceeded" => {
            (AwsErrorKind::Refused, format!("AWS refused {operation} ({code}): {detail}"))
        }
        "InvalidAction" => (
            AwsErrorKind::Refused,
            format!(
                "AWS refused {operation} ({code}: {detail}): SES does not receive mail in this region; use one where it does (`--receive-region`)"
            ),
        ),
        "" => match &err {
            SdkError::TimeoutError(_) => (
                AwsErrorKind::Timeout,
                format!("{operation}: no answer from {endpoint} in time; check the network and --endpoint-url."),
            ),
            _ if context.to_ascii_lowercase().contains("credential") => {
                (AwsErrorKind::NoCredentials, no_credentials(&context))
            }
            // An answer that is no AWS error: an endpoint (an emulator, a proxy) that does
            // not implement the call.
            _ if err.raw_response().is_some_and(|r| !r.status().is_success()) => {
                let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
                (
                    AwsErrorKind::Other,
                    format!(
                        "{operation}: {endpoint} answered HTTP {status} with no AWS error in it: does it implement this call (an emulator, a proxy)?"
                    ),
                )
            }
            SdkError::DispatchFailure(_) => (
                AwsErrorKind::Unreachable,
                format!(
                    "{operation}: cannot reach {endpoint} ({}); check --endpoint-url, the region and the network.",
                    root_cause(&err)
                ),
            ),
            _ => (AwsErrorKind::Other, format!("{operation} failed: {}", root_cause(&err))),
        },
        _ => (AwsErrorKind::Other, format!("{operation} failed: {code}: {detail}")),
    };
    AwsError { kind, message }
}

/// The AWS SDK configuration every client here uses: the standard credential chain, `region`,
/// another endpoint when given (moto, MinIO), short connect and operation timeouts.
pub async fn sdk_config(region: &str, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(60))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(timeouts);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

fn endpoint_name(config: &aws_config::SdkConfig, service: &str, region: &str) -> String {
    config.endpoint_url().map(str::to_string).unwrap_or_else(|| format!("the AWS {service} endpoint in {region}"))
}

/// SES in one region.
pub struct Ses {
    region: String,
    endpoint: String,
    v1: aws_sdk_ses::Client,
    v2: aws_sdk_sesv2::Client,
}

fn api_constant(text: &str) -> String {
    // SES v1 writes `UseDefaultValue`, SES v2 `USE_DEFAULT_VALUE`.
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !text.contains('_') {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn mail_from_state(domain: &str, status: &str, behavior: &str) -> MailFromState {
    MailFromState {
        domain: domain.trim_end_matches('.').to_ascii_lowercase(),
        status: State::parse(status),
        behavior_on_mx_failure: Some(api_constant(behavior)),
    }
}

impl Ses {
    /// Clients for SES v1 and v2 in `region`; `endpoint_url` replaces AWS's endpoint (a local
    /// test double).
    pub async fn connect(region: &str, endpoint_url: Option<&str>) -> Self {
        let config = sdk_config(region, endpoint_url).await;
        Ses {
            region: region.to_string(),
            endpoint: endpoint_name(&config, "SES", region),
            v1: aws_sdk_ses::Client::new(&config),
            v2: aws_sdk_sesv2::Client::new(&config),
        }
    }

    /// The identity's state, SES v1 first, completed by SES v2 where its answer agrees.
    pub async fn identity_status(&self, domain: &str) -> Result<IdentityStatus, AwsError> {
        let ep = &self.endpoint;
        let mut status =
            IdentityStatus { domain: domain.to_string(), region: self.region.clone(), ..Default::default() };
        let verification = self
            .v1
            .get_identity_verification_attributes()
            .identities(domain)
            .send()
            .await
            .map_err(|e| explain("GetIdentityVerificationAttributes", ep, e))?;
        let Some(v) = verification.verification_attributes().get(domain) else {
            return Ok(status);
        };
        status.exists = true;
        status.verification = State::parse(v.verification_status().as_str());
        let dkim = self
            .v1
            .get_identity_dkim_attributes()
            .identities(domain)
            .send()
            .await
            .map_err(|e| explain("GetIdentityDkimAttributes", ep, e))?;
        if let Some(d) = dkim.dkim_attributes().get(domain) {
            status.dkim = DkimState {
                signing_enabled: d.dkim_enabled(),
                status: State::parse(d.dkim_verification_status().as_str()),
                tokens: d.dkim_tokens().to_vec(),
                ..Default::default()
            };
        }
        let mail_from = self
            .v1
            .get_identity_mail_from_domain_attributes()
            .identities(domain)
            .send()
            .await
            .map_err(|e| explain("GetIdentityMailFromDomainAttributes", ep, e))?;
        if let Some(m) =
            mail_from.mail_from_domain_attributes().get(domain).filter(|m| !m.mail_from_domain().is_empty())
        {
            status.mail_from = Some(mail_from_state(
                m.mail_from_domain(),
                m.mail_from_domain_status().as_str(),
                m.behavior_on_mx_failure().as_str(),
            ));
        }
        self.add_v2_details(&mut status).await;
        Ok(status)
    }

    async fn add_v2_details(&self, status: &mut IdentityStatus) {
        let answer = self.v2.get_email_identity().email_identity(&status.domain).send().await;
        let identity = match answer {
            Ok(identity) => identity,
            Err(e) => {
                let e = explain("GetEmailIdentity", &self.endpoint, e);
                status.notes.push(format!(
                    "SES v2 details (signing zone, key length, DEED origin, key age) unavailable: {}",
                    e.message
                ));
                return;
            }
        };
        status.verification_error =
            identity.verification_info().and_then(|i| i.error_type()).map(|e| e.as_str().to_string());
        let Some(d) = identity.dkim_attributes() else { return };
        let same_tokens = {
            let (mut a, mut b) = (d.tokens().to_vec(), status.dkim.tokens.clone());
            a.sort();
            b.sort();
            a == b
        };
        if !same_tokens && !d.tokens().is_empty() && !status.dkim.tokens.is_empty() {
            status.notes.push("SES v1 and v2 give different DKIM tokens; v1's are shown".into());
            return;
        }
        if d.tokens().is_empty() && !status.dkim.tokens.is_empty() {
            status
                .notes
                .push("SES v2 gave no DKIM tokens where v1 did (an emulator?): its DKIM details are ignored".into());
            return;
        }
        let dkim = &mut status.dkim;
        if dkim.tokens.is_empty() {
            dkim.tokens = d.tokens().to_vec();
            dkim.signing_enabled = d.signing_enabled();
        }
        if let Some(s) = d.status().and_then(|s| State::parse(s.as_str())) {
            dkim.status = Some(s);
        }
        dkim.signing_attributes_origin = d.signing_attributes_origin().map(|o| o.as_str().to_string());
        dkim.signing_hosted_zone = d.signing_hosted_zone().map(str::to_string);
        dkim.current_key_length = d.current_signing_key_length().map(|k| k.as_str().to_string());
        dkim.next_key_length = d.next_signing_key_length().map(|k| k.as_str().to_string());
        dkim.last_key_generation = d.last_key_generation_timestamp().map(|t| t.secs());
        if status.mail_from.is_none()
            && let Some(m) = identity.mail_from_attributes().filter(|m| !m.mail_from_domain().is_empty())
        {
            status.mail_from = Some(mail_from_state(
                m.mail_from_domain(),
                m.mail_from_domain_status().as_str(),
                m.behavior_on_mx_failure().as_str(),
            ));
        }
    }

    /// SetIdentityMailFromDomain (SES v1: the same setting as SES v2's
    /// PutEmailIdentityMailFromAttributes, and implemented by every SES endpoint).
    pub async fn set_mail_from(
        &self,
        domain: &str,
        mail_from: &str,
        behavior: MxFailureBehavior,
    ) -> Result<(), AwsError> {
        let behavior = match behavior {
            MxFailureBehavior::UseDefaultValue => aws_sdk_ses::types::BehaviorOnMxFailure::UseDefaultValue,
            MxFailureBehavior::RejectMessage => aws_sdk_ses::types::BehaviorOnMxFailure::RejectMessage,
        };
        self.v1
            .set_identity_mail_from_domain()
            .identity(domain)
            .mail_from_domain(mail_from)
            .behavior_on_mx_failure(behavior)
            .send()
            .await
            .map_err(|e| explain("SetIdentityMailFromDomain", &self.endpoint, e))?;
        Ok(())
    }
}

fn call_error(operation: &'static str, e: AwsError) -> CallError {
    CallError { operation, permission: permission_of(operation), kind: e.kind, message: e.message }
}

/// Failures after which the other calls to the same endpoint would fail alike.
fn stops_everything(kind: AwsErrorKind) -> bool {
    matches!(
        kind,
        AwsErrorKind::Unreachable | AwsErrorKind::Timeout | AwsErrorKind::NoCredentials | AwsErrorKind::BadCredentials
    )
}

impl Ses {
    /// The account in this region into `status`: SES v2 GetAccount; where it cannot be had,
    /// SES v1's GetSendQuota and GetAccountSendingEnabled (production access and the
    /// enforcement status stay unknown). Each failed call is kept with the permission it
    /// needs. Returns false when the endpoint cannot be used at all (nothing more to ask).
    pub async fn account(&self, status: &mut AccountStatus) -> bool {
        let ep = &self.endpoint;
        match self.v2.get_account().send().await {
            Ok(a) => {
                status.production_access = Some(a.production_access_enabled());
                status.sending_enabled = Some(a.sending_enabled());
                status.enforcement_status = a.enforcement_status().map(str::to_string);
                if let Some(q) = a.send_quota() {
                    status.max_24h_send = Some(q.max24_hour_send());
                    status.max_send_rate = Some(q.max_send_rate());
                    status.sent_last_24h = Some(q.sent_last24_hours());
                }
                status.production_access_request =
                    a.details().and_then(|d| d.review_details()).map(|r| ProductionAccessRequest {
                        status: r.status().map(|s| s.as_str().to_string()),
                        case_id: r.case_id().map(str::to_string),
                    });
                return true;
            }
            Err(e) => {
                let e = explain("GetAccount", ep, e);
                let stop = stops_everything(e.kind);
                status.errors.push(call_error("GetAccount", e));
                if stop {
                    return false;
                }
            }
        }
        status.notes.push(
            "production access and the enforcement status are unknown (SES v2 GetAccount failed); the quota and the sending flag come from SES v1"
                .into(),
        );
        match self.v1.get_send_quota().send().await {
            Ok(q) => {
                status.max_24h_send = Some(q.max24_hour_send());
                status.max_send_rate = Some(q.max_send_rate());
                status.sent_last_24h = Some(q.sent_last24_hours());
                if q.max24_hour_send() == 200.0 && q.max_send_rate() == 1.0 {
                    status.notes.push("a quota of 200 messages a day and 1 a second is the sandbox's".into());
                }
            }
            Err(e) => status.errors.push(call_error("GetSendQuota", explain("GetSendQuota", ep, e))),
        }
        match self.v1.get_account_sending_enabled().send().await {
            Ok(x) => status.sending_enabled = Some(x.enabled()),
            Err(e) => {
                status.errors.push(call_error("GetAccountSendingEnabled", explain("GetAccountSendingEnabled", ep, e)))
            }
        }
        true
    }
}

/// One reputation series: a metric, for the account or for one configuration set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// `Reputation.BounceRate` or `Reputation.ComplaintRate`.
    pub metric: &'static str,
    /// The dimension (name, value): none for the account, `ses:configuration-set` for a set.
    pub dimension: Option<(String, String)>,
}

/// CloudWatch in one region: SES's reputation metrics (namespace `AWS/SES`).
pub struct CloudWatch {
    endpoint: String,
    client: aws_sdk_cloudwatch::Client,
}

/// How far back the latest reputation value is looked for.
pub const REPUTATION_LOOKBACK_DAYS: i64 = 14;

impl CloudWatch {
    /// A CloudWatch client in `region`; `endpoint_url` replaces AWS's endpoint.
    pub async fn connect(region: &str, endpoint_url: Option<&str>) -> Self {
        let config = sdk_config(region, endpoint_url).await;
        CloudWatch {
            endpoint: endpoint_name(&config, "CloudWatch", region),
            client: aws_sdk_cloudwatch::Client::new(&config),
        }
    }

    /// The series of `metric` CloudWatch has for configuration sets (ListMetrics): SES
    /// publishes them for sets whose reputation metrics are on.
    pub async fn configuration_set_series(&self, metric: &'static str) -> Result<Vec<Series>, AwsError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_metrics()
                .namespace("AWS/SES")
                .metric_name(metric)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| explain("ListMetrics", &self.endpoint, e))?;
            for m in page.metrics() {
                if let [d] = m.dimensions()
                    && let (Some(name), Some(value)) = (d.name(), d.value())
                {
                    let series = Series { metric, dimension: Some((name.to_string(), value.to_string())) };
                    if !out.contains(&series) {
                        out.push(series);
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() && Some(t) != token.as_deref() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// The latest hourly average of each series in the last
    /// [`REPUTATION_LOOKBACK_DAYS`] days (value, seconds since 1970), in order; `None` where
    /// CloudWatch has no value.
    pub async fn latest(&self, series: &[Series], now: i64) -> Result<Vec<Option<(f64, i64)>>, AwsError> {
        use aws_sdk_cloudwatch::primitives::DateTime;
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
        let mut out: Vec<Option<(f64, i64)>> = vec![None; series.len()];
        // GetMetricData takes at most 500 queries a call.
        for (chunk_no, chunk) in series.chunks(500).enumerate() {
            let mut request = self
                .client
                .get_metric_data()
                .start_time(DateTime::from_secs(now - REPUTATION_LOOKBACK_DAYS * 86_400))
                .end_time(DateTime::from_secs(now))
                .scan_by(ScanBy::TimestampDescending);
            for (i, s) in chunk.iter().enumerate() {
                let mut metric = Metric::builder().namespace("AWS/SES").metric_name(s.metric);
                if let Some((name, value)) = &s.dimension {
                    metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
                }
                let stat = MetricStat::builder().metric(metric.build()).period(3600).stat("Average").build();
                request = request.metric_data_queries(
                    MetricDataQuery::builder().id(format!("q{i}")).metric_stat(stat).return_data(true).build(),
                );
            }
            let mut token: Option<String> = None;
            loop {
                let page = request
                    .clone()
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| explain("GetMetricData", &self.endpoint, e))?;
                for r in page.metric_data_results() {
                    let Some(i) = r.id().and_then(|id| id.strip_prefix('q')).and_then(|n| n.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let Some(slot) = out.get_mut(chunk_no * 500 + i) else { continue };
                    for (t, v) in r.timestamps().iter().zip(r.values()) {
                        if v.is_finite() && slot.is_none_or(|(_, at)| t.secs() > at) {
                            *slot = Some((*v, t.secs()));
                        }
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() && Some(t) != token.as_deref() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

/// How many configuration sets' rates are read at most (the rest are named in a note).
pub const MAX_CONFIGURATION_SETS: usize = 100;

/// The account in `region`: SES (GetAccount, or SES v1's quota and sending flag) and
/// CloudWatch's reputation rates for the account and for each configuration set that has
/// them, judged (see [`crate::account::judge`]). A call that fails is an entry in `errors`
/// naming its permission; the rest is still asked.
pub async fn account_status(region: &str, endpoint_url: Option<&str>, now: i64) -> AccountStatus {
    use crate::account::{BOUNCE, COMPLAINT};
    let mut status = AccountStatus { region: region.to_string(), ..Default::default() };
    let ses = Ses::connect(region, endpoint_url).await;
    if ses.account(&mut status).await {
        let cw = CloudWatch::connect(region, endpoint_url).await;
        let mut series = vec![
            Series { metric: BOUNCE.metric, dimension: None },
            Series { metric: COMPLAINT.metric, dimension: None },
        ];
        let mut sets: Vec<(String, String)> = Vec::new();
        for metric in [BOUNCE.metric, COMPLAINT.metric] {
            match cw.configuration_set_series(metric).await {
                Ok(found) => {
                    for s in found {
                        if let Some(d) = &s.dimension
                            && !sets.contains(d)
                        {
                            sets.push(d.clone());
                        }
                    }
                }
                Err(e) => {
                    let stop = stops_everything(e.kind);
                    if !status.errors.iter().any(|x| x.operation == "ListMetrics") {
                        status.errors.push(call_error("ListMetrics", e));
                    }
                    if stop {
                        break;
                    }
                }
            }
        }
        sets.sort();
        if sets.len() > MAX_CONFIGURATION_SETS {
            status.notes.push(format!(
                "{} configuration sets have reputation metrics; the first {MAX_CONFIGURATION_SETS} are shown",
                sets.len()
            ));
            sets.truncate(MAX_CONFIGURATION_SETS);
        }
        for d in &sets {
            series.push(Series { metric: BOUNCE.metric, dimension: Some(d.clone()) });
            series.push(Series { metric: COMPLAINT.metric, dimension: Some(d.clone()) });
        }
        match cw.latest(&series, now).await {
            Ok(values) => {
                status.set_rates(values[0], values[1]);
                for (k, d) in sets.iter().enumerate() {
                    let name = if d.0 == "ses:configuration-set" { d.1.clone() } else { format!("{}={}", d.0, d.1) };
                    let (b, c) = (values[2 + 2 * k], values[3 + 2 * k]);
                    if b.is_some() || c.is_some() {
                        status.configuration_sets.push(ConfigurationSetRates::new(&name, b, c));
                    }
                }
            }
            Err(e) => status.errors.push(call_error("GetMetricData", e)),
        }
    }
    crate::account::judge(&mut status, now);
    status
}

/// Route 53 (a global service: its calls go to us-east-1 unless the endpoint says
/// otherwise).
pub struct Route53 {
    endpoint: String,
    client: aws_sdk_route53::Client,
}

fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

impl Route53 {
    /// A Route 53 client; `endpoint_url` replaces AWS's endpoint (a local test double).
    pub async fn connect(endpoint_url: Option<&str>) -> Self {
        let config = sdk_config("us-east-1", endpoint_url).await;
        Route53 {
            endpoint: endpoint_name(&config, "Route 53", "us-east-1"),
            client: aws_sdk_route53::Client::new(&config),
        }
    }

    /// Every hosted zone of the account.
    pub async fn zones(&self) -> Result<Vec<HostedZone>, AwsError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_hosted_zones()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| explain("ListHostedZones", &self.endpoint, e))?;
            for z in page.hosted_zones() {
                out.push(HostedZone {
                    name: z.name().to_string(),
                    id: z.id().to_string(),
                    private: z.config().is_some_and(|c| c.private_zone()),
                });
            }
            match page.next_marker().filter(|_| page.is_truncated()) {
                Some(m) if Some(m) != marker.as_deref() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// One hosted zone, by its id (with or without the `/hostedzone/` prefix).
    pub async fn zone(&self, id: &str) -> Result<HostedZone, AwsError> {
        let answer = self
            .client
            .get_hosted_zone()
            .id(bare_zone_id(id))
            .send()
            .await
            .map_err(|e| explain("GetHostedZone", &self.endpoint, e))?;
        let z = answer.hosted_zone().ok_or_else(|| AwsError {
            kind: AwsErrorKind::NotFound,
            message: format!("GetHostedZone: no hosted zone {id}"),
        })?;
        Ok(HostedZone {
            name: z.name().to_string(),
            id: z.id().to_string(),
            private: z.config().is_some_and(|c| c.private_zone()),
        })
    }

    /// Every record set of the zone.
    pub async fn record_sets(&self, zone_id: &str) -> Result<Vec<RecordSet>, AwsError> {
        let mut out = Vec::new();
        let mut start: Option<(String, aws_sdk_route53::types::RrType, Option<String>)> = None;
        loop {
            let mut request = self.client.list_resource_record_sets().hosted_zone_id(bare_zone_id(zone_id));
            if let Some((name, rtype, identifier)) = start.take() {
                request =
                    request.start_record_name(name).start_record_type(rtype).set_start_record_identifier(identifier);
            }
            let page = request.send().await.map_err(|e| explain("ListResourceRecordSets", &self.endpoint, e))?;
            for set in page.resource_record_sets() {
                out.push(RecordSet {
                    name: set.name().to_string(),
                    rtype: set.r#type().as_str().to_string(),
                    ttl: set.ttl(),
                    values: set.resource_records().iter().map(|r| r.value().to_string()).collect(),
                });
            }
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(name), Some(rtype)) => {
                    start = Some((name.to_string(), rtype.clone(), page.next_record_identifier().map(str::to_string)))
                }
                _ => return Ok(out),
            }
        }
    }

    /// Submits the changes to make as one ChangeBatch; returns the change id.
    pub async fn submit(&self, zone_id: &str, changes: &[Change], comment: &str) -> Result<String, AwsError> {
        use aws_sdk_route53::types::{ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
        let built =
            |e: aws_sdk_route53::error::BuildError| AwsError { kind: AwsErrorKind::Other, message: e.to_string() };
        let mut batch = ChangeBatch::builder().comment(comment);
        for c in changes.iter().filter(|c| c.is_submitted()) {
            let mut set =
                ResourceRecordSet::builder().name(&c.name).r#type(RrType::from(c.rtype)).ttl(i64::from(c.ttl));
            for v in &c.after {
                set = set.resource_records(ResourceRecord::builder().value(v).build().map_err(built)?);
            }
            let action = if c.kind == ChangeKind::Create { ChangeAction::Create } else { ChangeAction::Upsert };
            batch = batch.changes(
                aws_sdk_route53::types::Change::builder()
                    .action(action)
                    .resource_record_set(set.build().map_err(built)?)
                    .build()
                    .map_err(built)?,
            );
        }
        let answer = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(bare_zone_id(zone_id))
            .change_batch(batch.build().map_err(built)?)
            .send()
            .await
            .map_err(|e| explain("ChangeResourceRecordSets", &self.endpoint, e))?;
        Ok(answer.change_info().map(|i| i.id().to_string()).unwrap_or_default())
    }

    /// Polls GetChange until the change is INSYNC (true) or `timeout` passes (false).
    pub async fn wait_insync(&self, change_id: &str, timeout: Duration, poll: Duration) -> Result<bool, AwsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answer = self
                .client
                .get_change()
                .id(change_id.trim_start_matches("/change/"))
                .send()
                .await
                .map_err(|e| explain("GetChange", &self.endpoint, e))?;
            if answer.change_info().is_some_and(|i| i.status() == &aws_sdk_route53::types::ChangeStatus::Insync) {
                return Ok(true);
            }
            if tokio::time::Instant::now() + poll > deadline {
                return Ok(false);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// What [`Receiving::describe_active`] finds: the active rule set of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRuleSet {
    /// Its name.
    pub name: String,
    /// Its rules' names, in order.
    pub rules: Vec<String>,
}

/// A receipt rule as SES describes it, as much as `apply` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its recipients.
    pub recipients: Vec<String>,
    /// Its S3 actions: (bucket, object key prefix).
    pub s3_actions: Vec<(String, String)>,
}

/// SES receiving (SES v1 receipt rules) and S3 bucket policies in one region, for
/// `apply --receive-reports`.
pub struct Receiving {
    ses_endpoint: String,
    s3_endpoint: String,
    ses: aws_sdk_ses::Client,
    s3: aws_sdk_s3::Client,
}

impl Receiving {
    /// Clients for SES v1 and S3 in `region`; `endpoint_url` replaces AWS's endpoints (moto;
    /// S3 then uses path-style addressing).
    pub async fn connect(region: &str, endpoint_url: Option<&str>) -> Self {
        let config = sdk_config(region, endpoint_url).await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&config);
        if endpoint_url.is_some() {
            s3 = s3.force_path_style(true);
        }
        Receiving {
            ses_endpoint: endpoint_name(&config, "SES", region),
            s3_endpoint: endpoint_name(&config, "S3", region),
            ses: aws_sdk_ses::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
        }
    }

    /// The bucket's policy; `None` when it has none.
    pub async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, AwsError> {
        match self.s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(answer) => Ok(answer.policy().map(str::to_string)),
            Err(e) if e.code() == Some("NoSuchBucketPolicy") => Ok(None),
            Err(e) => Err(explain("GetBucketPolicy", &self.s3_endpoint, e)),
        }
    }

    /// Sets the bucket's (whole) policy.
    pub async fn put_bucket_policy(&self, bucket: &str, policy: &str) -> Result<(), AwsError> {
        self.s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await
            .map_err(|e| explain("PutBucketPolicy", &self.s3_endpoint, e))?;
        Ok(())
    }

    /// The region's active receipt rule set, if one is.
    pub async fn describe_active(&self) -> Result<Option<ActiveRuleSet>, AwsError> {
        let answer = self
            .ses
            .describe_active_receipt_rule_set()
            .send()
            .await
            .map_err(|e| explain("DescribeActiveReceiptRuleSet", &self.ses_endpoint, e))?;
        Ok(answer.metadata().and_then(|m| m.name()).filter(|n| !n.is_empty()).map(|name| ActiveRuleSet {
            name: name.to_string(),
            rules: answer.rules().iter().map(|r| r.name().to_string()).collect(),
        }))
    }

    /// Creates the rule set; `false` when it exists already.
    pub async fn create_rule_set(&self, name: &str) -> Result<bool, AwsError> {
        match self.ses.create_receipt_rule_set().rule_set_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("AlreadyExists") => Ok(false),
            Err(e) => Err(explain("CreateReceiptRuleSet", &self.ses_endpoint, e)),
        }
    }

    /// The rule `rule` of the set `rule_set`; `None` when the rule, or the set, does not exist.
    pub async fn describe_rule(&self, rule_set: &str, rule: &str) -> Result<Option<RuleSummary>, AwsError> {
        match self.ses.describe_receipt_rule().rule_set_name(rule_set).rule_name(rule).send().await {
            Ok(answer) => Ok(answer.rule().map(|r| RuleSummary {
                enabled: r.enabled(),
                recipients: r.recipients().to_vec(),
                s3_actions: r
                    .actions()
                    .iter()
                    .filter_map(|a| a.s3_action())
                    .map(|s| (s.bucket_name().to_string(), s.object_key_prefix().unwrap_or_default().to_string()))
                    .collect(),
            })),
            Err(e) if matches!(e.code(), Some("RuleDoesNotExist" | "RuleSetDoesNotExist")) => Ok(None),
            Err(e) => Err(explain("DescribeReceiptRule", &self.ses_endpoint, e)),
        }
    }

    /// Creates the rule (enabled, TLS optional, scanned, one S3 action) at the start of the set.
    pub async fn create_rule(
        &self,
        rule_set: &str,
        rule: &str,
        recipient: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<(), AwsError> {
        use aws_sdk_ses::types::{ReceiptAction, ReceiptRule, S3Action, TlsPolicy};
        let built = |e: aws_sdk_ses::error::BuildError| AwsError { kind: AwsErrorKind::Other, message: e.to_string() };
        let mut action = S3Action::builder().bucket_name(bucket);
        if !prefix.is_empty() {
            action = action.object_key_prefix(prefix);
        }
        let receipt_rule = ReceiptRule::builder()
            .name(rule)
            .enabled(true)
            .tls_policy(TlsPolicy::Optional)
            .recipients(recipient)
            .scan_enabled(true)
            .actions(ReceiptAction::builder().s3_action(action.build().map_err(built)?).build())
            .build()
            .map_err(built)?;
        self.ses
            .create_receipt_rule()
            .rule_set_name(rule_set)
            .rule(receipt_rule)
            .send()
            .await
            .map_err(|e| explain("CreateReceiptRule", &self.ses_endpoint, e))?;
        Ok(())
    }

    /// Makes `rule_set` the region's active rule set (whatever was active stops).
    pub async fn activate(&self, rule_set: &str) -> Result<(), AwsError> {
        self.ses
            .set_active_receipt_rule_set()
            .rule_set_name(rule_set)
            .send()
            .await
            .map_err(|e| explain("SetActiveReceiptRuleSet", &self.ses_endpoint, e))?;
        Ok(())
    }
}

/// The account id of the credentials in use (STS GetCallerIdentity).
pub async fn account_id(endpoint_url: Option<&str>) -> Result<String, AwsError> {
    let config = sdk_config("us-east-1", endpoint_url).await;
    let endpoint = endpoint_name(&config, "STS", "us-east-1");
    let answer = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| explain("GetCallerIdentity", &endpoint, e))?;
    answer.account().map(str::to_string).ok_or_else(|| AwsError {
        kind: AwsErrorKind::Other,
        message: "GetCallerIdentity gave no account id: pass --account-id".into(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_constants() {
        assert_eq!(super::api_constant("UseDefaultValue"), "USE_DEFAULT_VALUE");
        assert_eq!(super::api_constant("REJECT_MESSAGE"), "REJECT_MESSAGE");
        assert_eq!(super::api_constant("RejectMessage"), "REJECT_MESSAGE");
    }
}
