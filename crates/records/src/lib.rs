//! Pure syntax for mail authentication records: parse, validate and format SPF, DMARC
//! (RFC 7489 and RFC 9989), DKIM key records and domain names. No I/O.
//!
//! Every parser returns the value and every [`Diagnostic`] it found, each with a stable
//! code from [`DIAGNOSTIC_CODES`], a severity and the byte span it concerns.

pub mod auth_results;
pub mod diag;
pub mod dkim;
pub mod dmarc;
pub mod domain;
pub mod spf;
pub mod txt;

pub use diag::{DIAGNOSTIC_CODES, Diagnostic, DiagnosticCode, Parsed, Severity};
pub use dkim::{DkimKeyRecord, KeyInfo};
pub use dmarc::{AlignmentMode, DmarcRecord, Policy, PolicyMeaning, ReportUri, Rfc};
pub use domain::{DomainName, DomainNameError};
pub use spf::SpfRecord;
