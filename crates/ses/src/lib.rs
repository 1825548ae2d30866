//! Amazon SES knowledge as data (regions, feedback hosts, DKIM signing zones, MAIL FROM
//! rules), the DNS record plan with its renderings, what an SES identity's state means,
//! what an account's state in a region means (sandbox, sending, enforcement, reputation
//! rates), and a plan's diff against a Route 53 zone. Pure, except the AWS clients in [`aws`]
//! (feature `aws`).

pub mod account;
#[cfg(feature = "aws")]
pub mod aws;
pub mod aws_error;
pub mod identity;
pub mod mail_from;
pub mod plan;
pub mod receiving;
pub mod regions;
pub mod render;
pub mod route53;

pub use aws_error::{AwsError, AwsErrorKind};
pub use plan::{Plan, PlanError, PlanInput, plan};
pub use regions::{REGIONS, Region};
