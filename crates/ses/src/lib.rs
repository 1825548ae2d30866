//! Amazon SES knowledge as data (regions, feedback hosts, DKIM signing zones, MAIL FROM
//! rules) and the DNS record plan, with its renderings. Pure: no I/O.

pub mod mail_from;
pub mod plan;
pub mod regions;
pub mod render;

pub use plan::{Plan, PlanError, PlanInput, plan};
pub use regions::{REGIONS, Region};
