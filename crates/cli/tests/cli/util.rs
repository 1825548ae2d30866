//! Helpers shared by the command-line tests: run the real binary.

use std::process::{Command, Output};

pub(crate) fn ses_dmarc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ses-dmarc")).args(args).env("NO_COLOR", "1").output().expect("run ses-dmarc")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// Runs and insists on success, returning standard output.
pub(crate) fn ok(args: &[&str]) -> String {
    let o = ses_dmarc(args);
    assert!(o.status.success(), "ses-dmarc {args:?} failed: {}", stderr(&o));
    stdout(&o)
}
