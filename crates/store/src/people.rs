//! Who may use the service: users with their roles and tags, login sessions and API
//! tokens. Secrets never reach the database: a password is kept as the hash its caller
//! made (argon2), a session or a token as the SHA-256 digest of its secret.

use crate::sql::Row;
use crate::{Store, StoreError};

/// A user of the dashboard and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// The tags a viewer is limited to (none: every domain).
    pub tags: Vec<String>,
    /// When the user was added (seconds since 1970).
    pub created_at: i64,
}

/// A login session, found by the digest of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose it is.
    pub user: User,
    /// The session's CSRF token, which every form it posts must carry.
    pub csrf: String,
    /// When it ends (seconds since 1970).
    pub expires_at: i64,
}

/// An API token as listed (its secret is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// What it is for, as given at creation.
    pub label: String,
    /// Whose rights it carries.
    pub user: String,
    /// When it was made.
    pub created_at: i64,
    /// When it was last used, to the hour.
    pub last_used: Option<i64>,
}

const USER_COLUMNS: &str = "users.name, users.role, users.tags, users.created_at";

fn read_user(r: &dyn Row, from: usize) -> Result<User, StoreError> {
    Ok(User {
        name: r.text(from)?,
        role: r.text(from + 1)?,
        tags: serde_json::from_str(&r.text(from + 2)?).unwrap_or_default(),
        created_at: r.i64(from + 3)?,
    })
}

impl Store {
    /// Adds a user, or replaces the password hash, role and tags of one that exists.
    pub fn put_user(&mut self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        let tags = serde_json::to_string(&user.tags).unwrap_or_else(|_| "[]".into());
        self.write(|conn| {
            conn.execute(
                "INSERT INTO users (name, password_hash, role, tags, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                    role = excluded.role, tags = excluded.tags",
                &[
                    user.name.as_str().into(),
                    password_hash.into(),
                    user.role.as_str().into(),
                    tags.as_str().into(),
                    user.created_at.into(),
                ],
            )
        })?;
        Ok(())
    }

    /// A user and the hash of their password.
    pub fn user_with_hash(&mut self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {USER_COLUMNS}, users.password_hash FROM users WHERE name = $1"),
            &[name.into()],
            |r| Ok((read_user(r, 0)?, r.text(4)?)),
        )
    }

    /// Every user, by name.
    pub fn users(&mut self) -> Result<Vec<User>, StoreError> {
        self.conn.query_all(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"), &[], |r| read_user(r, 0))
    }

    /// Removes a user with their sessions and tokens; false when there was none.
    pub fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self.write(|conn| {
            conn.execute("DELETE FROM sessions WHERE user_name = $1", &[name.into()])?;
            conn.execute("DELETE FROM api_tokens WHERE user_name = $1", &[name.into()])?;
            conn.execute("DELETE FROM users WHERE name = $1", &[name.into()])
        })?;
        Ok(n > 0)
    }

    /// Starts a session (and forgets the sessions that have ended).
    pub fn create_session(
        &mut self,
        digest: &str,
        user: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute("DELETE FROM sessions WHERE expires_at <= $1", &[now.into()])?;
            conn.execute(
                "INSERT INTO sessions (digest, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[digest.into(), user.into(), csrf.into(), now.into(), expires_at.into()],
            )
        })?;
        Ok(())
    }

    /// The session whose cookie has this digest, if it has not ended.
    pub fn session(&mut self, digest: &str, now: i64) -> Result<Option<Session>, StoreError> {
        self.conn.query_opt(
            &format!(
                "SELECT {USER_COLUMNS}, sessions.csrf, sessions.expires_at FROM sessions
                 JOIN users ON users.name = sessions.user_name
                 WHERE sessions.digest = $1 AND sessions.expires_at > $2"
            ),
            &[digest.into(), now.into()],
            |r| Ok(Session { user: read_user(r, 0)?, csrf: r.text(4)?, expires_at: r.i64(5)? }),
        )
    }

    /// Ends a session (logout).
    pub fn end_session(&mut self, digest: &str) -> Result<(), StoreError> {
        self.write(|conn| conn.execute("DELETE FROM sessions WHERE digest = $1", &[digest.into()]))?;
        Ok(())
    }

    /// Keeps a new API token's digest; an existing label of the same user is refused.
    pub fn create_token(&mut self, digest: &str, label: &str, user: &str, now: i64) -> Result<(), StoreError> {
        let taken = self.conn.query_i64(
            "SELECT COUNT(*) FROM api_tokens WHERE user_name = $1 AND label = $2",
            &[user.into(), label.into()],
        )?;
        if taken > 0 {
            return Err(StoreError::Conflict(format!(
                "{user} already has a token labelled `{label}`: `ses-dmarc token revoke {label} --user {user}` first, or choose another --label"
            )));
        }
        self.write(|conn| {
            conn.execute(
                "INSERT INTO api_tokens (digest, label, user_name, created_at) VALUES ($1, $2, $3, $4)",
                &[digest.into(), label.into(), user.into(), now.into()],
            )
        })?;
        Ok(())
    }

    /// The user an API token (by digest) stands for; notes its use, to the hour.
    pub fn token_user(&mut self, digest: &str, now: i64) -> Result<Option<User>, StoreError> {
        let found = self.conn.query_opt(
            &format!(
                "SELECT {USER_COLUMNS}, api_tokens.last_used FROM api_tokens
                 JOIN users ON users.name = api_tokens.user_name WHERE api_tokens.digest = $1"
            ),
            &[digest.into()],
            |r| Ok((read_user(r, 0)?, r.opt_i64(4)?)),
        )?;
        let Some((user, last_used)) = found else { return Ok(None) };
        if last_used.is_none_or(|t| now - t >= 3600) {
            self.write(|conn| {
                conn.execute("UPDATE api_tokens SET last_used = $1 WHERE digest = $2", &[now.into(), digest.into()])
            })?;
        }
        Ok(Some(user))
    }

    /// Every API token (without secrets), by user and label.
    pub fn tokens(&mut self) -> Result<Vec<TokenInfo>, StoreError> {
        self.conn.query_all(
            "SELECT label, user_name, created_at, last_used FROM api_tokens ORDER BY user_name, label",
            &[],
            |r| Ok(TokenInfo { label: r.text(0)?, user: r.text(1)?, created_at: r.i64(2)?, last_used: r.opt_i64(3)? }),
        )
    }

    /// Revokes a user's token by label; false when there was none.
    pub fn revoke_token(&mut self, user: &str, label: &str) -> Result<bool, StoreError> {
        let n = self.write(|conn| {
            conn.execute("DELETE FROM api_tokens WHERE user_name = $1 AND label = $2", &[user.into(), label.into()])
        })?;
        Ok(n > 0)
    }
}
