//! Who is asking: passwords (argon2), login sessions (a random cookie, only its SHA-256
//! kept), API bearer tokens (likewise), CSRF tokens, and the login rate limit.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use ses_dmarc_store::{Database, StoreError, User};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "ses_dmarc_session";
/// The cookie that carries the login form's CSRF token before there is a session.
pub(crate) const LOGIN_COOKIE: &str = "ses_dmarc_login";
/// What API tokens start with, so a leaked one is recognisable.
const TOKEN_PREFIX: &str = "sdm_";

/// The roles a user can have.
pub const ROLES: [&str; 2] = ["admin", "viewer"];

/// `bytes` random bytes, URL-safe base64.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The SHA-256 of a secret, hex: what the store keeps of sessions and tokens.
pub(crate) fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a user cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The input is not acceptable (the message says what to type).
    #[error("{0}")]
    Input(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An argon2id hash of `password` in the PHC string format.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Input(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the stored hash (a hash that cannot be read matches nothing).
pub(crate) fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when the user does not exist, so a wrong name takes as long as
/// a wrong password.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token(16)).unwrap_or_default())
}

/// Checks a new user's name, role, tags and password as `user add` takes them.
pub fn new_user(
    name: &str,
    role: &str,
    tags: &[String],
    password: &str,
    now: i64,
) -> Result<(User, String), UserError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)) {
        return Err(UserError::Input(format!(
            "`{}` is not a user name: use up to 64 letters, digits and . _ - @",
            name.escape_debug()
        )));
    }
    if !ROLES.contains(&role) {
        return Err(UserError::Input(format!("--role must be admin or viewer, not `{}`", role.escape_debug())));
    }
    if password.chars().count() < 10 {
        return Err(UserError::Input("the password must have at least 10 characters".into()));
    }
    if password.len() > 1024 {
        return Err(UserError::Input("the password must have at most 1024 bytes".into()));
    }
    let tags: Vec<String> = tags.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if role == "admin" && !tags.is_empty() {
        return Err(UserError::Input("an admin sees every domain: --tag is for viewers".into()));
    }
    let user = User { name: name.to_string(), role: role.to_string(), tags, created_at: now };
    Ok((user, hash_password(password)?))
}

/// Makes an API token for `user`, keeps its digest, and returns the secret (shown once).
pub async fn create_token(db: &Database, user: &str, label: &str, now: i64) -> Result<String, UserError> {
    let label = label.trim().to_string();
    if label.is_empty() || label.len() > 100 {
        return Err(UserError::Input("--label must have 1 to 100 characters".into()));
    }
    let name = user.to_string();
    if db.run(move |s| s.user_with_hash(&name)).await?.is_none() {
        return Err(UserError::Input(format!("no user `{user}`: `ses-dmarc user add {user} --role viewer` first")));
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_token(32));
    let (d, u) = (digest(&secret), user.to_string());
    db.run(move |s| s.create_token(&d, &label, &u, now)).await?;
    Ok(secret)
}

/// Someone signed in: by session cookie (with its CSRF token) or by bearer token.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) user: User,
    /// The session's CSRF token; none for a bearer token (which no browser sends by itself).
    pub(crate) csrf: Option<String>,
}

impl Principal {
    pub(crate) fn is_admin(&self) -> bool {
        self.user.role == "admin"
    }

    /// The tags the user is limited to (none: every domain).
    pub(crate) fn tags(&self) -> &[String] {
        if self.is_admin() { &[] } else { &self.user.tags }
    }
}

/// A cookie's value from a `Cookie` header.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|p| p.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The `Set-Cookie` value of a cookie for the whole site.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Failed logins remembered per address and per (address, user): a burst is refused for a
/// while, so passwords cannot be guessed at speed.
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    window: Duration,
    per_user: usize,
    per_address: usize,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            window: Duration::from_secs(15 * 60),
            per_user: 5,
            per_address: 20,
        }
    }
}

impl LoginLimiter {
    fn keys(address: &str, user: &str) -> [String; 2] {
        [format!("a {address}"), format!("u {address} {}", user.to_ascii_lowercase())]
    }

    /// `Err(seconds to wait)` when this address (or this user from it) failed too often.
    pub(crate) fn check(&self, address: &str, user: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let limits = [self.per_address, self.per_user];
        for (key, limit) in Self::keys(address, user).iter().zip(limits) {
            if let Some(q) = map.get_mut(key) {
                while q.front().is_some_and(|t| now.duration_since(*t) > self.window) {
                    q.pop_front();
                }
                if q.len() >= limit {
                    let oldest = q.front().copied().unwrap_or(now);
                    return Err(self.window.saturating_sub(now.duration_since(oldest)).as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    /// Remembers a failed login.
    pub(crate) fn failed(&self, address: &str, user: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= self.window));
        }
        for key in Self::keys(address, user) {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// Forgets the failures of a user who signed in.
    pub(crate) fn succeeded(&self, address: &str, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&Self::keys(address, user)[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_secrets_are_kept_as_digests() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong horse battery", &h));
        assert!(!password_matches("x", "not a hash"));
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(random_token(32), random_token(32));
    }

    #[test]
    fn users_are_checked_before_they_are_added() {
        assert!(new_user("ops", "admin", &[], "long enough pw", 0).is_ok());
        let e = |r: Result<(User, String), UserError>| r.unwrap_err().to_string();
        assert!(e(new_user("o ps", "admin", &[], "long enough pw", 0)).contains("not a user name"));
        assert!(e(new_user("ops", "root", &[], "long enough pw", 0)).contains("admin or viewer"));
        assert!(e(new_user("ops", "viewer", &[], "short", 0)).contains("10 characters"));
        assert!(e(new_user("ops", "admin", &["a".into()], "long enough pw", 0)).contains("for viewers"));
    }

    #[test]
    fn a_burst_of_failed_logins_is_refused_for_a_while() {
        let l = LoginLimiter::default();
        for _ in 0..5 {
            assert!(l.check("127.0.0.1", "ops").is_ok());
            l.failed("127.0.0.1", "ops");
        }
        let wait = l.check("127.0.0.1", "ops").unwrap_err();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(l.check("127.0.0.1", "other").is_ok(), "another user from the address is not locked out yet");
        assert!(l.check("10.0.0.1", "ops").is_ok());
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        assert_eq!(cookie("a=1; ses_dmarc_session=xyz; b=2", SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie("a=1", SESSION_COOKIE), None);
        let c = set_cookie(SESSION_COOKIE, "v", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"), "{c}");
    }
}
