//! What the tests of every crate share: paths into the repository's `testdata/`, a
//! temporary folder per test, and test databases (a SQLite file always; a fresh
//! PostgreSQL database when a server answers, required when `CI` is set).

mod dovecot;

pub use dovecot::{Dovecot, DovecotOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A path under the repository's `testdata/` folder (third-party test data, with licences).
pub fn testdata(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(relative)
}

/// A program in the Python virtual environment `scripts/test` makes (botocore, moto):
/// `$SES_DMARC_VENV/bin/NAME`, else under the target folder.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("SES_DMARC_VENV").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("ci-venv")
    });
    venv.join("bin").join(name)
}

/// Whether the tests run in CI (`CI` set), where a missing test server is a failure.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Says that a test cannot run because `what` is unavailable: a failure in CI, a note on
/// standard error elsewhere (the caller then returns).
pub fn unavailable(what: &str, why: &dyn std::fmt::Display) {
    assert!(!in_ci(), "CI needs {what}: {why}");
    eprintln!("skipped: {what} is not available: {why}");
}

/// A temporary folder, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder named after the test (and the process, so parallel runs differ).
    pub fn new(name: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ses-dmarc-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server tests use: `SES_DMARC_TEST_POSTGRES`, else this machine's.
pub fn postgres_admin_url() -> String {
    std::env::var("SES_DMARC_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `f` with an administrative PostgreSQL connection on a thread of its own (the
/// synchronous client must not run inside an async runtime, which a test may have).
fn with_admin<T: Send + 'static>(f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static) -> Result<T, String> {
    std::thread::spawn(move || {
        let admin = postgres_admin_url();
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).map_err(|e| format!("{admin}: {e}"))?;
        Ok(f(&mut client))
    })
    .join()
    .unwrap_or_else(|_| Err("the PostgreSQL helper thread panicked".into()))
}

/// A database for one test: a SQLite file, or a fresh PostgreSQL database dropped after.
#[derive(Debug)]
pub struct TestDb {
    /// What `--database` takes.
    pub url: String,
    /// `sqlite` or `postgres`, for messages.
    pub kind: &'static str,
    drop_pg: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.drop_pg.take() {
            let _ = with_admin(move |c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        }
    }
}

impl TestDb {
    /// A SQLite database file in `dir`.
    pub fn sqlite(dir: &Path, name: &str) -> TestDb {
        TestDb {
            url: format!("sqlite://{}", dir.join(format!("{name}.sqlite")).display()),
            kind: "sqlite",
            drop_pg: None,
        }
    }

    /// A fresh, empty PostgreSQL database, or why there is none.
    pub fn postgres(name: &str) -> Result<TestDb, String> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let clean: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let db = format!("sesdmarc_{}_{n}_{clean}", std::process::id());
        let create = db.clone();
        with_admin(move |c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {create} WITH (FORCE)"))?;
            c.batch_execute(&format!("CREATE DATABASE {create}"))
        })?
        .map_err(|e| e.to_string())?;
        let admin = postgres_admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
        Ok(TestDb { url: format!("{base}/{db}"), kind: "postgres", drop_pg: Some(db) })
    }
}

/// SQLite always; PostgreSQL too when the server answers. In CI PostgreSQL is required;
/// elsewhere its absence is said on standard error.
pub fn databases(dir: &Path, name: &str) -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite(dir, name)];
    match TestDb::postgres(name) {
        Ok(db) => dbs.push(db),
        Err(e) => unavailable("PostgreSQL", &e),
    }
    dbs
}

/// Gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap_or_else(|e| panic!("gzip: {e}"));
    e.finish().unwrap_or_else(|e| panic!("gzip: {e}"))
}

/// A zip archive holding `members` (deflated).
pub fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file(*name, options).unwrap_or_else(|e| panic!("zip: {e}"));
        w.write_all(data).unwrap_or_else(|e| panic!("zip: {e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("zip: {e}")).into_inner()
}

/// A zip archive whose central directory lists one deflated member `copies` times, each
/// entry pointing at the same data (a classic bomb: a small file, many large members).
pub fn zip_with_repeated_entry(name: &str, data: &[u8], copies: u16) -> Vec<u8> {
    let one = zip(&[(name, data)]);
    let eocd = one.len() - 22;
    assert_eq!(&one[eocd..eocd + 4], b"PK\x05\x06", "a plain end of central directory");
    let le32 = |at: usize| u32::from_le_bytes([one[at], one[at + 1], one[at + 2], one[at + 3]]) as usize;
    let (cd_size, cd_start) = (le32(eocd + 12), le32(eocd + 16));
    let entry = &one[cd_start..cd_start + cd_size];
    let mut out = one[..cd_start].to_vec();
    for _ in 0..copies {
        out.extend_from_slice(entry);
    }
    let mut end = one[eocd..].to_vec();
    end[8..10].copy_from_slice(&copies.to_le_bytes());
    end[10..12].copy_from_slice(&copies.to_le_bytes());
    end[12..16].copy_from_slice(&((cd_size * copies as usize) as u32).to_le_bytes());
    out.extend_from_slice(&end);
    out
}
