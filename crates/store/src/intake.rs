//! What intake keeps between passes: how far each mailbox was read (its UIDVALIDITY and
//! the last UID taken), which objects of each bucket were taken (key and ETag), and why a
//! message or an object was not stored.

use crate::sql::Row;
use crate::{Store, StoreError};

/// How far a mailbox was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxCheckpoint {
    /// The folder's UIDVALIDITY when it was read: another value means UIDs start over.
    pub uid_validity: i64,
    /// The highest UID taken (stored, or deliberately left).
    pub last_uid: i64,
}

/// A message or an object that was not stored, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeFailure {
    /// The source's name.
    pub source: String,
    /// The message (`folder UID n`, with its Message-ID when known) or the object key.
    pub item: String,
    /// Why.
    pub reason: String,
    /// When (seconds since 1970).
    pub at: i64,
}

impl Store {
    /// Where a mailbox was read to, if it was ever read.
    pub fn mailbox_checkpoint(&mut self, source: &str) -> Result<Option<MailboxCheckpoint>, StoreError> {
        self.conn.query_opt(
            "SELECT uid_validity, last_uid FROM intake_checkpoints WHERE source = $1",
            &[source.into()],
            |r| Ok(MailboxCheckpoint { uid_validity: r.i64(0)?, last_uid: r.i64(1)? }),
        )
    }

    /// Records how far a mailbox was read.
    pub fn set_mailbox_checkpoint(
        &mut self,
        source: &str,
        checkpoint: MailboxCheckpoint,
        at: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO intake_checkpoints (source, uid_validity, last_uid, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source) DO UPDATE SET uid_validity = excluded.uid_validity,
                    last_uid = excluded.last_uid, updated_at = excluded.updated_at",
                &[source.into(), checkpoint.uid_validity.into(), checkpoint.last_uid.into(), at.into()],
            )
        })?;
        Ok(())
    }

    /// What became of an object already taken (`None`: never taken in this version).
    pub fn object_outcome(&mut self, source: &str, key: &str, etag: &str) -> Result<Option<String>, StoreError> {
        self.conn.query_opt(
            "SELECT outcome FROM intake_objects WHERE source = $1 AND object_key = $2 AND etag = $3",
            &[source.into(), key.into(), etag.into()],
            |r| r.text(0),
        )
    }

    /// Records that an object (this version of it) was taken, and what became of it.
    pub fn record_object(
        &mut self,
        source: &str,
        key: &str,
        etag: &str,
        outcome: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO intake_objects (source, object_key, etag, outcome, at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (source, object_key, etag) DO UPDATE SET outcome = excluded.outcome, at = excluded.at",
                &[source.into(), key.into(), etag.into(), outcome.into(), at.into()],
            )
        })?;
        Ok(())
    }

    /// Records why a message or an object was not stored.
    pub fn record_intake_failure(&mut self, f: &IntakeFailure) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO intake_failures (source, item, reason, at) VALUES ($1, $2, $3, $4)",
                &[(&f.source).into(), (&f.item).into(), (&f.reason).into(), f.at.into()],
            )
        })?;
        Ok(())
    }

    /// The latest failures of a source (every source when `None`), newest first.
    pub fn intake_failures(&mut self, source: Option<&str>, limit: i64) -> Result<Vec<IntakeFailure>, StoreError> {
        let read =
            |r: &dyn Row| Ok(IntakeFailure { source: r.text(0)?, item: r.text(1)?, reason: r.text(2)?, at: r.i64(3)? });
        match source {
            Some(s) => self.conn.query_all(
                "SELECT source, item, reason, at FROM intake_failures WHERE source = $1 ORDER BY at DESC, id DESC LIMIT $2",
                &[s.into(), limit.into()],
                read,
            ),
            None => self.conn.query_all(
                "SELECT source, item, reason, at FROM intake_failures ORDER BY at DESC, id DESC LIMIT $1",
                &[limit.into()],
                read,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    #[test]
    fn checkpoints_objects_and_failures_round_trip() {
        let dir = std::env::temp_dir().join(format!("ses-dmarc-intake-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = Store::open(&Location::Sqlite(dir.join("db.sqlite"))).unwrap();
        assert_eq!(store.mailbox_checkpoint("box").unwrap(), None);
        store.set_mailbox_checkpoint("box", MailboxCheckpoint { uid_validity: 7, last_uid: 10 }, 1).unwrap();
        store.set_mailbox_checkpoint("box", MailboxCheckpoint { uid_validity: 7, last_uid: 12 }, 2).unwrap();
        assert_eq!(store.mailbox_checkpoint("box").unwrap(), Some(MailboxCheckpoint { uid_validity: 7, last_uid: 12 }));
        assert_eq!(store.object_outcome("b", "k", "e1").unwrap(), None);
        store.record_object("b", "k", "e1", "stored", 3).unwrap();
        assert_eq!(store.object_outcome("b", "k", "e1").unwrap().as_deref(), Some("stored"));
        assert_eq!(store.object_outcome("b", "k", "e2").unwrap(), None, "another version is another object");
        let f = IntakeFailure { source: "box".into(), item: "INBOX UID 3".into(), reason: "broken".into(), at: 4 };
        store.record_intake_failure(&f).unwrap();
        assert_eq!(store.intake_failures(Some("box"), 10).unwrap(), vec![f.clone()]);
        assert_eq!(store.intake_failures(None, 10).unwrap(), vec![f]);
        assert!(store.intake_failures(Some("other"), 10).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
