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

/// Runs the binary with its address space capped at `bytes` (prlimit), so that a
/// regression that would eat the machine fails instead; and kills it after `seconds`.
pub(crate) fn capped(args: &[&str], bytes: u64, seconds: u64) -> (Output, std::time::Duration) {
    let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].into_iter().find(|p| std::path::Path::new(p).exists());
    let mut command = match prlimit {
        Some(p) => {
            let mut c = Command::new(p);
            c.arg(format!("--as={bytes}")).arg(env!("CARGO_BIN_EXE_ses-dmarc"));
            c
        }
        None => {
            ses_dmarc_testkit::unavailable("prlimit (util-linux)", &"not installed");
            Command::new(env!("CARGO_BIN_EXE_ses-dmarc"))
        }
    };
    command.args(args).env("NO_COLOR", "1").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let child = command.spawn().expect("run ses-dmarc");
    let pid = child.id();
    // The output is read while waiting (a full pipe would stall the child).
    let waiting = std::thread::spawn(move || child.wait_with_output().expect("wait"));
    let deadline = started + std::time::Duration::from_secs(seconds);
    while !waiting.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if !waiting.is_finished() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let output = waiting.join().expect("the waiting thread");
    (output, started.elapsed())
}
