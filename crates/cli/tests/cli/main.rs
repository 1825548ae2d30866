//! The command line's integration tests, one binary (one link step): each module runs the
//! real `ses-dmarc` binary against servers on loopback.

mod aws;
mod browser;
mod check;
mod fake_aws;
mod hostile;
mod intake;
mod intake_oauth;
mod new_user;
mod openapi;
mod plan;
mod reports;
mod serve;
mod summary;
mod util;
mod verify;
mod watch;
mod workers;
