//! What a receiving mail server concludes. SPF `check_host()` with a full trace, the SPF include tree, DMARC policy discovery.
//! Pure logic over a [`ses_dmarc_dns::Resolver`]: the resolver decides where answers come
//! from (live DNS, zone files, a test double).

pub mod dkim;
pub mod dmarc;
pub mod dmarc_discovery;
pub mod spf;
pub mod spf_tree;
pub mod verify;

pub use spf::{SpfCheck, SpfInput, SpfResult, check_mail_from};
