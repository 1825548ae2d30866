//! The errors of the operations, by kind: what the user gave was wrong, or something
//! outside (AWS, DNS) could not answer.

use ses_dmarc_ses::{AwsError, AwsErrorKind, PlanError};
use ses_dmarc_store::StoreError;

/// Why an operation could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// Input that cannot be used, with what to give instead.
    #[error("{0}")]
    Input(String),
    /// A plan's input is wrong.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The database could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A zone file given with `--zone` cannot be used.
    #[error(transparent)]
    Zone(#[from] ses_dmarc_dns::ZoneError),
    /// The nameserver settings cannot be used.
    #[error(transparent)]
    Nameserver(#[from] ses_dmarc_dns::ClientError),
    /// A DNS answer the operation cannot do without could not be had.
    #[error("{0}")]
    DnsUnavailable(String),
    /// What was asked for is not there (a report id nothing was stored under).
    #[error("{0}")]
    NotFound(String),
    /// An offline IP → ASN table (`--asn-db`) cannot be used.
    #[error(transparent)]
    Asn(#[from] ses_dmarc_reports::asn::AsnError),
}

impl From<ses_dmarc_ses::mail_from::MailFromError> for OpsError {
    fn from(e: ses_dmarc_ses::mail_from::MailFromError) -> Self {
        OpsError::Plan(PlanError::MailFrom(e))
    }
}

impl OpsError {
    /// Whether the failure is outside the user's input: AWS or DNS could not be asked,
    /// or refused (exit 3), as opposed to input to correct (exit 2).
    pub fn is_unavailable(&self) -> bool {
        match self {
            OpsError::Aws(e) => e.kind != AwsErrorKind::NotBuilt,
            OpsError::DnsUnavailable(_) => true,
            _ => false,
        }
    }

    /// Whether the failure is that what was asked for is not there (exit 1).
    pub fn is_not_found(&self) -> bool {
        matches!(self, OpsError::NotFound(_))
    }
}
