//! One IMAP mailbox: sign in (LOGIN, or XOAUTH2 with a token from an environment variable
//! or a command), read the messages past the checkpoint in bounded batches with
//! `BODY.PEEK[]` (seen flags stay as they are), ingest each, then move what was stored to
//! the processed folder (MOVE, or COPY + STORE \Deleted + UID EXPUNGE where the server has
//! no MOVE) and what could not be read to the failed folder, then advance the checkpoint.

use super::{IntakeOptions, Progress, SourceOutcome, Verdict, header_value, ingest_message};
use crate::config::{ImapAuth, ImapSource, Tls};
use futures::TryStreamExt;
use ses_dmarc_reports::unpack::UnpackLimits;
use ses_dmarc_store::{Database, MailboxCheckpoint};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection to the server, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

type Session = async_imap::Session<Box<dyn Io>>;

/// How long one network step may take before the source is given up for this pass.
const STEP: Duration = Duration::from_secs(120);

/// Most bytes fetched in one batch (messages are fetched `batch` at a time, fewer when
/// they are big), so memory stays flat whatever the backlog.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;

async fn step<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", not_imap(&e.to_string()))),
        Err(_) => Err(format!("{what}: no answer in {} s", STEP.as_secs())),
    }
}

/// Reads one mailbox; never fails as a whole: what went wrong is in the outcome.
pub async fn poll(
    src: &ImapSource,
    db: &Database,
    limits: &UnpackLimits,
    options: &IntakeOptions<'_>,
) -> SourceOutcome {
    let mut out = SourceOutcome {
        source: src.name.clone(),
        kind: "imap",
        location: format!(
            "{}://{}@{}:{}/{}",
            if src.tls == Tls::None { "imap" } else { "imaps" },
            src.user,
            src.host,
            src.port,
            src.folder
        ),
        ..Default::default()
    };
    let mut session = match connect(src).await {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    if let Err(e) = read_mailbox(src, db, limits, options, &mut session, &mut out).await {
        out.error = Some(e);
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), session.logout()).await;
    out
}

/// async-imap reports an answer it cannot parse as the parser's debug dump followed by
/// ` during parsing of "<the bytes, escaped>"`: said instead as what the server sent.
fn not_imap(error: &str) -> String {
    match error.split_once(" during parsing of ") {
        Some((_, sent)) => {
            let mut shown: String = sent.chars().take(80).collect();
            if shown.len() < sent.len() {
                shown.push('…');
            }
            format!("the server's answer is not IMAP: {shown}")
        }
        None => error.to_string(),
    }
}

async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug>(
    client: &mut async_imap::Client<T>,
    address: &str,
) -> Result<(), String> {
    match step("no greeting from the server", async { client.read_response().await }).await? {
        Some(_) => Ok(()),
        None => Err(format!("{address} closed the connection before its greeting")),
    }
}

/// Connects, sets up TLS as configured and signs in.
async fn connect(src: &ImapSource) -> Result<Session, String> {
    let address = format!("{}:{}", src.host, src.port);
    let tcp = step(&format!("cannot connect to {address}"), TcpStream::connect((src.host.as_str(), src.port))).await?;
    let _ = tcp.set_nodelay(true);
    let mut client = match src.tls {
        Tls::Implicit => async_imap::Client::new(Box::new(tls(src, tcp).await?) as Box<dyn Io>),
        Tls::None => async_imap::Client::new(Box::new(tcp) as Box<dyn Io>),
        Tls::StartTls => {
            let mut plain = async_imap::Client::new(tcp);
            greeting(&mut plain, &address).await?;
            step("STARTTLS refused", plain.run_command_and_check_ok("STARTTLS", None)).await?;
            // No greeting follows STARTTLS.
            async_imap::Client::new(Box::new(tls(src, plain.into_inner()).await?) as Box<dyn Io>)
        }
    };
    if src.tls != Tls::StartTls {
        greeting(&mut client, &address).await?;
    }
    let session = match &src.auth {
        ImapAuth::Password(password) => {
            step("login refused", async { client.login(&src.user, password).await.map_err(|(e, _)| e) }).await?
        }
        ImapAuth::OAuth2Env(_) | ImapAuth::OAuth2Command(_) => {
            let token = oauth2_token(&src.auth).await?;
            let auth = XOAuth2 { user: src.user.clone(), token };
            step("XOAUTH2 refused", async { client.authenticate("XOAUTH2", auth).await.map_err(|(e, _)| e) }).await?
        }
    };
    Ok(session)
}

async fn tls(src: &ImapSource, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let config = tls_config(src.ca_file.as_deref())?;
    let name = rustls_pki_types::ServerName::try_from(src.host.clone())
        .map_err(|e| format!("`{}` is not a name TLS can check: {e}", src.host))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    step(&format!("TLS with {}:{} failed", src.host, src.port), connector.connect(name, tcp)).await
}

/// The machine's trust anchors, plus `ca_file` when given.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("ca_file {}: no PEM certificate in it", path.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An OAuth 2.0 access token for XOAUTH2, read at each pass (tokens expire).
async fn oauth2_token(auth: &ImapAuth) -> Result<String, String> {
    let token = match auth {
        ImapAuth::OAuth2Env(var) => {
            std::env::var(var).map_err(|_| format!("oauth2_token_env: the environment variable {var} is not set"))?
        }
        ImapAuth::OAuth2Command(command) => {
            let run = tokio::process::Command::new("sh").arg("-c").arg(command).kill_on_drop(true).output();
            let output = step("oauth2_token_command", run).await?;
            if !output.status.success() {
                return Err(format!(
                    "oauth2_token_command `{command}` failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            String::from_utf8(output.stdout)
                .map_err(|_| "oauth2_token_command printed something not UTF-8".to_string())?
        }
        ImapAuth::Password(_) => return Err("internal error: no token for a password".into()),
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the OAuth 2.0 token is empty".into());
    }
    Ok(token)
}

/// The XOAUTH2 initial response (Google's and Microsoft's SASL mechanism).
pub struct XOAuth2 {
    /// The mailbox's user name.
    pub user: String,
    /// The access token.
    pub token: String,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, challenge: &[u8]) -> String {
        if challenge.is_empty() {
            format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token)
        } else {
            // The server sent an error as a challenge; an empty answer ends the exchange.
            String::new()
        }
    }
}

/// A folder name as the configuration writes it (`/` between levels) in the server's own
/// hierarchy delimiter (Dovecot's Maildir++ uses `.`).
fn server_name(folder: &str, delimiter: Option<&str>) -> String {
    match delimiter {
        Some(d) if d != "/" && !d.is_empty() => folder.replace('/', d),
        _ => folder.to_string(),
    }
}

async fn ensure_folder(session: &mut Session, name: &str) -> Result<(), String> {
    let found: Vec<_> = step(&format!("LIST {name}"), async {
        session.list(Some(""), Some(name)).await?.try_collect::<Vec<_>>().await
    })
    .await?;
    if found.is_empty() {
        step(&format!("cannot create the folder {name}"), session.create(name)).await?;
    }
    Ok(())
}

/// The server's hierarchy delimiter (`.` for Dovecot's Maildir, `/` for many others):
/// from `LIST "" ""`, else from INBOX's own entry; none for a flat server.
async fn hierarchy_delimiter(session: &mut Session) -> Result<Option<String>, String> {
    for pattern in ["", "INBOX"] {
        let names =
            step("LIST", async { session.list(Some(""), Some(pattern)).await?.try_collect::<Vec<_>>().await }).await?;
        if let Some(d) = names.iter().find_map(|n| n.delimiter()) {
            return Ok(Some(d.to_string()));
        }
    }
    Ok(None)
}

struct Mover {
    processed: Option<String>,
    failed: Option<String>,
    delete_processed: bool,
    has_move: bool,
    has_uidplus: bool,
}

impl Mover {
    /// Moves `uids` to `folder`; without MOVE: COPY, flag \Deleted, and UID EXPUNGE (only
    /// those UIDs; without UIDPLUS they are left flagged, never a plain EXPUNGE that would
    /// remove other messages someone deleted).
    async fn move_to(&self, session: &mut Session, uids: &[u32], folder: &str) -> Result<(), String> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        if self.has_move {
            step(&format!("MOVE to {folder}"), session.uid_mv(&set, folder)).await?;
            return Ok(());
        }
        step(&format!("COPY to {folder}"), session.uid_copy(&set, folder)).await?;
        self.delete(session, uids).await
    }

    async fn delete(&self, session: &mut Session, uids: &[u32]) -> Result<(), String> {
        let set = uid_set(uids);
        step("STORE \\Deleted", async {
            session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await
        })
        .await?;
        if self.has_uidplus {
            step("UID EXPUNGE", async { session.uid_expunge(&set).await?.try_collect::<Vec<_>>().await }).await?;
        }
        Ok(())
    }
}

/// A UID set for a command: runs of consecutive UIDs written `a:b`.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}:{end}") });
        i += 1;
    }
    parts.join(",")
}

/// Reads the folder past the checkpoint, batch by batch.
async fn read_mailbox(
    src: &ImapSource,
    db: &Database,
    limits: &UnpackLimits,
    options: &IntakeOptions<'_>,
    session: &mut Session,
    out: &mut SourceOutcome,
) -> Result<(), String> {
    let caps = step("CAPABILITY", session.capabilities()).await?;
    let delimiter = hierarchy_delimiter(session).await?;
    let folder = server_name(&src.folder, delimiter.as_deref());
    let mover = Mover {
        processed: src.processed_folder.as_deref().map(|f| server_name(f, delimiter.as_deref())),
        failed: src.failed_folder.as_deref().map(|f| server_name(f, delimiter.as_deref())),
        delete_processed: src.delete_processed,
        has_move: caps.has_str("MOVE"),
        has_uidplus: caps.has_str("UIDPLUS"),
    };
    for f in [&mover.processed, &mover.failed].into_iter().flatten() {
        if f == &folder {
            return Err(format!("the processed or failed folder is the folder read ({}): give another", src.folder));
        }
        ensure_folder(session, f).await?;
    }
    let mailbox = step(&format!("cannot open the folder {}", src.folder), session.select(&folder)).await?;
    let uid_validity = i64::from(mailbox.uid_validity.unwrap_or(0));
    let name = src.name.clone();
    let checkpoint = db.run(move |s| s.mailbox_checkpoint(&name)).await.map_err(|e| e.to_string())?;
    // Another UIDVALIDITY: the UIDs were renumbered; read it all again (duplicates are
    // recognised as such, so nothing is stored twice).
    let first = match checkpoint {
        Some(c) if c.uid_validity == uid_validity => c.last_uid + 1,
        _ => 1,
    };
    let first = u32::try_from(first).unwrap_or(u32::MAX);
    let found = step("UID SEARCH", session.uid_search(format!("UID {first}:*"))).await?;
    // `n:*` always matches the last message, even when its UID is below n.
    let mut uids: Vec<u32> = found.into_iter().filter(|&u| u >= first).collect();
    uids.sort_unstable();
    (options.progress)(Progress::Found { source: src.name.clone(), count: uids.len() as u64 });
    let batch = src.batch.max(1) as usize;
    let mut rest = &uids[..];
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(batch.min(rest.len()));
        rest = after;
        let sizes = fetch_sizes(session, chunk).await?;
        // Within a batch, messages are fetched in groups of at most BATCH_BYTES.
        let mut group: Vec<u32> = Vec::new();
        let mut group_bytes = 0;
        let mut too_large = Vec::new();
        let mut groups = Vec::new();
        for &uid in chunk {
            let size = sizes.get(&uid).copied().unwrap_or(0);
            if size > limits.max_size {
                too_large.push((uid, size));
                continue;
            }
            if !group.is_empty() && group_bytes + size > BATCH_BYTES {
                groups.push(std::mem::take(&mut group));
                group_bytes = 0;
            }
            group.push(uid);
            group_bytes += size;
        }
        if !group.is_empty() {
            groups.push(group);
        }
        let mut stored = Vec::new();
        let mut failed = Vec::new();
        for (uid, size) in too_large {
            let item = format!("{} UID {uid}", src.folder);
            out.too_large(db, &item, size, limits, options.now).await;
            failed.push(uid);
            (options.progress)(Progress::Taken { source: src.name.clone() });
        }
        for group in groups {
            let messages = fetch_bodies(session, &group).await?;
            for (uid, body) in messages {
                let message_id = header_value(&body, "message-id");
                let item = match &message_id {
                    Some(id) => format!("{} UID {uid} {id}", src.folder),
                    None => format!("{} UID {uid}", src.folder),
                };
                let origin =
                    format!("imap://{}@{}/{};UIDVALIDITY={uid_validity}/;UID={uid}", src.user, src.host, src.folder);
                let (verdict, outcome) = ingest_message(db, origin, body, limits).await;
                // On a database failure nothing of this batch is moved and the checkpoint
                // stays: it is all read again.
                out.tally(db, &item, &verdict, &outcome, options.now).await?;
                match verdict {
                    Verdict::Stored { .. } => stored.push(uid),
                    Verdict::Failed(_) => failed.push(uid),
                    Verdict::NotAReport | Verdict::DatabaseFailed(_) => {}
                }
                (options.progress)(Progress::Taken { source: src.name.clone() });
            }
        }
        // Every report of the batch is committed: now, and only now, the messages move.
        if mover.delete_processed {
            mover.delete(session, &stored).await?;
            out.processed += stored.len() as u64;
        } else if let Some(folder) = &mover.processed {
            mover.move_to(session, &stored, folder).await?;
            out.processed += stored.len() as u64;
        }
        if let Some(folder) = &mover.failed {
            mover.move_to(session, &failed, folder).await?;
            out.moved_to_failed += failed.len() as u64;
        }
        let last_uid = i64::from(chunk.last().copied().unwrap_or(0));
        let (name, now) = (src.name.clone(), options.now);
        db.run(move |s| s.set_mailbox_checkpoint(&name, MailboxCheckpoint { uid_validity, last_uid }, now))
            .await
            .map_err(|e| format!("cannot record the checkpoint: {e}"))?;
    }
    Ok(())
}

/// The size of each message of a batch.
async fn fetch_sizes(session: &mut Session, uids: &[u32]) -> Result<std::collections::HashMap<u32, u64>, String> {
    let set = uid_set(uids);
    let fetches = step("UID FETCH RFC822.SIZE", async {
        session.uid_fetch(&set, "(UID RFC822.SIZE)").await?.try_collect::<Vec<_>>().await
    })
    .await?;
    Ok(fetches.iter().filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0))))).collect())
}

/// The messages of a group, whole, without setting \Seen; in UID order.
async fn fetch_bodies(session: &mut Session, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let set = uid_set(uids);
    let fetches = step("UID FETCH BODY.PEEK[]", async {
        session.uid_fetch(&set, "(UID BODY.PEEK[])").await?.try_collect::<Vec<_>>().await
    })
    .await?;
    let mut messages: Vec<(u32, Vec<u8>)> =
        fetches.iter().filter_map(|f| Some((f.uid?, f.body().unwrap_or_default().to_vec()))).collect();
    messages.sort_by_key(|(uid, _)| *uid);
    messages.dedup_by_key(|(uid, _)| *uid);
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_answers_are_said_plainly() {
        let dump = r#"Error(Error { input: [52, 48], code: Tag }) during parsing of "HTTP/1.1 400 Bad Request\r\n""#;
        assert_eq!(not_imap(dump), r#"the server's answer is not IMAP: "HTTP/1.1 400 Bad Request\r\n""#);
        assert!(not_imap(&format!("x during parsing of \"{}\"", "a".repeat(500))).ends_with('…'));
        assert_eq!(not_imap("connection reset"), "connection reset");
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10, 7]), "1:3,5,7,9:10");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[4, 4]), "4");
    }

    #[test]
    fn folder_names_follow_the_server_delimiter() {
        assert_eq!(server_name("DMARC/Processed", Some(".")), "DMARC.Processed");
        assert_eq!(server_name("DMARC/Processed", Some("/")), "DMARC/Processed");
        assert_eq!(server_name("INBOX", None), "INBOX");
    }

    #[test]
    fn xoauth2_initial_response() {
        use async_imap::Authenticator;
        let mut a = XOAuth2 { user: "dmarc@example.com".into(), token: "ya29.x".into() };
        assert_eq!(a.process(b""), "user=dmarc@example.com\x01auth=Bearer ya29.x\x01\x01");
        assert_eq!(a.process(b"{\"status\":\"401\"}"), "");
    }

    #[tokio::test]
    async fn oauth2_tokens_from_a_command_or_the_environment() {
        assert_eq!(oauth2_token(&ImapAuth::OAuth2Command("echo ' tok '".into())).await.unwrap(), "tok");
        let e = oauth2_token(&ImapAuth::OAuth2Command("echo no >&2; exit 3".into())).await.unwrap_err();
        assert!(e.contains("failed") && e.contains("no"), "{e}");
        let e = oauth2_token(&ImapAuth::OAuth2Env("SES_DMARC_SURELY_UNSET_VAR".into())).await.unwrap_err();
        assert!(e.contains("SES_DMARC_SURELY_UNSET_VAR is not set"), "{e}");
        assert!(oauth2_token(&ImapAuth::OAuth2Command("true".into())).await.unwrap_err().contains("empty"));
    }
}
