//! Async access to the store: connections live on threads of their own and run the
//! closures sent to them, so async code (the service, the commands) never blocks its
//! runtime on the database, and the synchronous PostgreSQL client never runs inside one.

use crate::{Location, OpenMode, Store, StoreError};

/// Work for a connection; it answers whether it finished without panicking.
type Job = Box<dyn FnOnce(&mut Store) -> bool + Send>;

/// The database as async code sees it: [`Database::run`] sends work to one of its
/// connections.
#[derive(Clone)]
pub struct Database {
    jobs: crossbeam_channel::Sender<Job>,
    name: String,
    shared: bool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("name", &self.name).finish()
    }
}

impl Database {
    /// Opens `connections` connections (the first one migrates the schema). SQLite
    /// serialises writers itself; several connections let readers run beside a writer.
    pub async fn open(location: &Location, mode: OpenMode, connections: usize) -> Result<Database, StoreError> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let mut name = location.name();
        for i in 0..connections.max(1) {
            let (ready, opened) = tokio::sync::oneshot::channel();
            let (location, queue) = (location.clone(), queue.clone());
            // The first connection creates the database; the others find it.
            let mode = if i == 0 { mode } else { OpenMode::Existing };
            std::thread::Builder::new()
                .name(format!("ses-dmarc-store-{i}"))
                .spawn(move || serve(location, mode, queue, ready))
                .map_err(|e| StoreError::Open { name: name.clone(), reason: format!("cannot start a thread: {e}") })?;
            name = opened.await.map_err(|_| StoreError::Closed)??;
        }
        Ok(Database { jobs, name, shared: matches!(location, Location::Postgres(_)) })
    }

    /// The database's name for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether several processes may work on it at once (PostgreSQL; a SQLite file serves
    /// one `serve`).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Runs `f` on one of the connections and gives back its result. A panic in `f` is
    /// [`StoreError::Panicked`] here (the connection rolls back whatever it had open and
    /// goes on).
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(store)));
            let clean = outcome.is_ok();
            let _ = tx.send(outcome.unwrap_or(Err(StoreError::Panicked)));
            clean
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn serve(
    location: Location,
    mode: OpenMode,
    queue: crossbeam_channel::Receiver<Job>,
    ready: tokio::sync::oneshot::Sender<Result<String, StoreError>>,
) {
    let mut store = match Store::open_with(&location, mode) {
        Ok(store) => {
            let _ = ready.send(Ok(store.name().to_string()));
            store
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    for job in queue {
        if !job(&mut store) {
            store.abandon_report();
            store.rollback();
        }
        // A job that deferred durability and did not end it (it failed, it panicked) leaves
        // the next one on this connection waiting for the disk again.
        if store.deferred {
            let _ = store.defer_durability(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_its_own_threads_and_survives_a_panic() {
        let dir = std::env::temp_dir().join(format!("ses-dmarc-database-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let location = Location::Sqlite(dir.join("db.sqlite"));
            let missing = Database::open(&location, OpenMode::Existing, 1).await.unwrap_err();
            assert!(matches!(missing, StoreError::Missing { .. }), "{missing}");
            let db = Database::open(&location, OpenMode::Create, 3).await.unwrap();
            let caller = std::thread::current().id();
            let on = db.run(|_| Ok(std::thread::current().id())).await.unwrap();
            assert_ne!(on, caller);
            let panicked = db.run(|_| -> Result<(), StoreError> { panic!("boom") }).await.unwrap_err();
            assert_eq!(panicked, StoreError::Panicked);
            assert_eq!(db.run(|s| s.totals()).await.unwrap().reports, 0);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
