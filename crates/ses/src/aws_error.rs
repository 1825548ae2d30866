//! What a failed AWS call means, as a kind callers can act on (retry, or tell a person)
//! and a message in plain words. Here, not in [`crate::aws`], so that callers built
//! without the AWS SDK speak the same type.

use serde::Serialize;

/// The kind of an AWS failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AwsErrorKind {
    /// The credentials lack a permission.
    AccessDenied,
    /// AWS rejected the credentials (wrong, expired).
    BadCredentials,
    /// No credentials were found in the standard chain.
    NoCredentials,
    /// AWS throttled the calls even after retries.
    Throttled,
    /// The identity, zone or change does not exist.
    NotFound,
    /// The endpoint could not be reached.
    Unreachable,
    /// The endpoint did not answer in time.
    Timeout,
    /// AWS refused the request as invalid.
    Refused,
    /// This program was built without the AWS SDK (cargo feature `aws`).
    NotBuilt,
    /// Anything else.
    Other,
}

impl AwsErrorKind {
    /// Whether trying again later may succeed (throttling, network trouble), as opposed to
    /// a problem a person must fix (permissions, credentials, a missing identity).
    pub fn is_transient(self) -> bool {
        matches!(self, AwsErrorKind::Throttled | AwsErrorKind::Unreachable | AwsErrorKind::Timeout)
    }
}

/// An AWS call that failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    /// What kind of failure.
    pub kind: AwsErrorKind,
    /// What happened and what to do, in plain words.
    pub message: String,
}

impl AwsError {
    /// The error of a build without the AWS SDK.
    pub fn not_built() -> AwsError {
        AwsError {
            kind: AwsErrorKind::NotBuilt,
            message: "this ses-dmarc was built without AWS support (cargo feature `aws`): reinstall with `cargo install --path crates/cli`".into(),
        }
    }
}
