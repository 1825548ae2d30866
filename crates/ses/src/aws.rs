//! The AWS calls: SES identities (SES v1 for verification, DKIM and MAIL FROM, the calls
//! every SES endpoint and emulator implement; SES v2's GetEmailIdentity for what only it
//! tells: signing zone, key lengths, DEED origin, when the keys were made), the MAIL FROM
//! setting, and Route 53 zones and changes. Credentials and region settings come from the
//! standard AWS chain (environment, profile, SSO, instance role); `endpoint_url` (or
//! `AWS_ENDPOINT_URL`) points elsewhere. Errors are said in plain words with the fix.

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
    } else {
        "ses"
    }
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

fn explain<E, R>(operation: &'static str, endpoint: &str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
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
        "" => match &err {
            SdkError::TimeoutError(_) => (
                AwsErrorKind::Timeout,
                format!("{operation}: no answer from {endpoint} in time; check the network and --endpoint-url."),
            ),
            _ if context.to_ascii_lowercase().contains("credential") => {
                (AwsErrorKind::NoCredentials, no_credentials(&context))
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

async fn sdk_config(region: &str, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
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

#[cfg(test)]
mod tests {
    #[test]
    fn api_constants() {
        assert_eq!(super::api_constant("UseDefaultValue"), "USE_DEFAULT_VALUE");
        assert_eq!(super::api_constant("REJECT_MESSAGE"), "REJECT_MESSAGE");
        assert_eq!(super::api_constant("RejectMessage"), "REJECT_MESSAGE");
    }
}
