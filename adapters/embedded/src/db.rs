//! The SQLite file: schema, connections and the data-directory lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::ports::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    lease_until INTEGER,
    body        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, id);
CREATE INDEX IF NOT EXISTS tasks_by_kind ON tasks (kind, id);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, id);
CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       TEXT NOT NULL,
    rank          INTEGER NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS queue_fifo ON queue (rank, visible_at, id);
CREATE INDEX IF NOT EXISTS queue_by_age ON queue (enqueued_at, id);
CREATE INDEX IF NOT EXISTS queue_by_task ON queue (task_id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id            INTEGER PRIMARY KEY,
    task_id       TEXT NOT NULL,
    rank          INTEGER NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_by_task ON dead_letters (task_id);
CREATE TABLE IF NOT EXISTS api_keys (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_usage (
    key_id        TEXT NOT NULL,
    period        TEXT NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, period)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    scope      TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    body       TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS miner_health (
    hotkey TEXT PRIMARY KEY,
    body   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    key   TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
";

/// Queue tuning of the embedded backend.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    /// Receives after which a message goes to the dead letters (SQS `maxReceiveCount`).
    pub max_receives: u32,
    /// Age after which a waiting message is taken before higher classes, so low work is never
    /// starved by a steady stream of urgent work.
    pub starvation_age_ms: i64,
}

impl Default for QueuePolicy {
    /// SQS's usual redrive after 3 receives (the default `MAX_ATTEMPTS`), and a minute before a
    /// waiting message is taken ahead of higher classes.
    fn default() -> Self {
        Self {
            max_receives: 3,
            starvation_age_ms: 60_000,
        }
    }
}

pub(super) struct Inner {
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    pub(super) policy: QueuePolicy,
    pub(super) notify: std::sync::Arc<tokio::sync::Notify>,
    pub(super) meter: Mutex<super::sqlite_tenants::Meter>,
    _lock: Option<File>,
}

/// The embedded database: implements the task and queue ports.
#[derive(Clone)]
pub struct Database {
    pub(super) inner: Arc<Inner>,
}

impl Database {
    /// Opens (creating if needed) `dir/taogate.db`, locking `dir` for this process.
    pub fn open(dir: &Path, policy: QueuePolicy) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
        let lock = File::create(dir.join("taogate.lock"))?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "data directory {} is in use by another taogate process",
                dir.display()
            );
        }
        Self::connect(dir, policy, Some(lock))
    }

    /// Opens `dir/taogate.db` beside the process that owns `dir` (which may be running), for
    /// administration that touches no task: `taogate keys`. SQLite's own locking keeps the
    /// two writers apart.
    pub fn open_beside(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
        Self::connect(dir, QueuePolicy::default(), None)
    }

    fn connect(dir: &Path, policy: QueuePolicy, lock: Option<File>) -> anyhow::Result<Self> {
        let path = dir.join("taogate.db");
        let writer = open_connection(&path)?;
        writer.execute_batch(SCHEMA)?;
        migrate(&writer)?;
        let owner = lock.is_some();
        if owner {
            // The owner's checkpoints run on their own thread (below), not inside a commit.
            writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        let inner = Arc::new(Inner {
            writer: Writer::start(writer)?,
            readers: Mutex::new(Vec::new()),
            path: path.clone(),
            policy,
            notify: std::sync::Arc::new(tokio::sync::Notify::new()),
            meter: Mutex::default(),
            _lock: lock,
        });
        if owner {
            checkpoints(open_connection(&path)?, Arc::downgrade(&inner))?;
        }
        Ok(Self { inner })
    }

    /// Runs `f` as one transaction of the writer (see [`Writer`]), and answers once it is
    /// committed. An error from `f` undoes what `f` wrote and nothing else.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(StoreError::backend(anyhow::anyhow!(
                    "cannot begin a write: {e}"
                ))),
            };
            let ok = result.is_ok();
            let deliver: Deliver = Box::new(move |commit| {
                let _ = answer.send(match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::backend(anyhow::anyhow!("commit failed: {e}"))),
                });
            });
            (ok, deliver)
        });
        self.inner
            .writer
            .jobs
            .send(job)
            .await
            .map_err(|_| StoreError::backend(anyhow::anyhow!("database writer stopped")))?;
        // A dropped answer means the write panicked (its savepoint was rolled back).
        answered
            .await
            .map_err(|_| StoreError::backend(anyhow::anyhow!("a database write failed")))?
    }

    /// Runs `f` on a read connection from the pool (WAL lets readers run beside the writer).
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path).map_err(StoreError::backend)?,
            };
            let out = f(&conn);
            if let Ok(mut r) = inner.readers.lock()
                && r.len() < 8
            {
                r.push(conn);
            }
            out
        })
        .await
        .map_err(StoreError::backend)?
    }
}

/// Hands a job's answer over once its batch's commit is known: the commit's error, if any.
type Deliver = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;
/// One write: runs on the writer's connection inside its own savepoint (or learns why the
/// transaction could not begin), says whether it succeeded (to keep or undo its savepoint) and
/// how to answer.
type Job = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> (bool, Deliver) + Send>;

/// Jobs waiting for the writer at most (backpressure: a full queue makes writers wait).
const WRITE_QUEUE: usize = 4096;
/// Jobs committed together at most.
const GROUP: usize = 512;

/// Group commit: one thread owns the write connection. It takes every job waiting, runs each
/// inside its own savepoint of one transaction, commits once, and only then answers them all.
/// A job's error rolls back its savepoint alone; a failed commit fails the whole group. So an
/// answer still means committed (durable across `kill -9`), while concurrent submissions and
/// worker transitions share one commit instead of queuing for one each.
struct Writer {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl Writer {
    fn start(conn: Connection) -> anyhow::Result<Self> {
        let (jobs, mut waiting) = tokio::sync::mpsc::channel::<Job>(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("taogate-writer".into())
            .spawn(move || {
                let mut group = Vec::with_capacity(GROUP);
                while let Some(first) = waiting.blocking_recv() {
                    group.push(first);
                    while group.len() < GROUP {
                        match waiting.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    commit_group(&conn, &mut group);
                }
            })?;
        Ok(Self { jobs })
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Checkpoints the WAL from a thread of its own every [`CHECKPOINT_EVERY`], until the
/// database is closed. SQLite's automatic checkpoint would run inside whichever commit crossed
/// 1,000 pages, and with small blobs in the file (4 MiB of WAL every few dozen speech results)
/// that commit, and every write grouped with it, would wait for the copy and its syncs. A
/// passive checkpoint never blocks the writer or the readers; the writer starts the WAL over
/// once a checkpoint has caught up.
fn checkpoints(conn: Connection, db: std::sync::Weak<Inner>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("taogate-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if db.strong_count() == 0 {
                    break;
                }
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "a WAL checkpoint failed; the next one retries");
                }
            }
        })?;
    Ok(())
}

fn commit_group(conn: &Connection, group: &mut Vec<Job>) {
    let mut answers: Vec<Deliver> = Vec::with_capacity(group.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        for job in group.drain(..) {
            let (_, deliver) = job(Err(&e));
            deliver(Ok(()));
        }
        return;
    }
    for job in group.drain(..) {
        let saved = conn.execute_batch("SAVEPOINT job");
        let (ok, deliver) =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(conn)))) {
                Ok(done) => done,
                Err(_) => (false, panicked()),
            };
        if saved.is_ok() {
            let end = if ok {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(e) = conn.execute_batch(end) {
                tracing::error!(error = %e, "cannot end a write's savepoint");
            }
        }
        answers.push(deliver);
    }
    let committed = conn.execute_batch("COMMIT");
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for deliver in answers {
        deliver(committed.as_ref().map(|_| ()));
    }
}

/// The answer of a job that panicked: dropping its channel already told its caller.
fn panicked() -> Deliver {
    Box::new(|_| {})
}

/// Brings a database made by an earlier version up to the current schema.
fn migrate(conn: &Connection) -> anyhow::Result<()> {
    // `notice_owed`: 1 while a finished task owes its submitter a callback (the sweeper's index).
    let has_notice: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('tasks') WHERE name = 'notice_owed'",
        [],
        |r| r.get(0),
    )?;
    if !has_notice {
        conn.execute_batch("ALTER TABLE tasks ADD COLUMN notice_owed INTEGER NOT NULL DEFAULT 0")?;
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS tasks_notice_owed ON tasks (notice_owed, id)")?;
    // The queue's delivery order is read through `queue_fifo` and `queue_by_age` (the schema);
    // the index that sorted every ready message on each receive is gone.
    conn.execute_batch("DROP INDEX IF EXISTS queue_ready")?;
    // One task counter per service, named as the service (`ServiceKind::ALL`); a service added
    // later gets its column here, on databases new and old.
    for kind in crate::domain::ServiceKind::ALL {
        let has: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('key_usage') WHERE name = ?1",
            [kind.as_str()],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!(
                "ALTER TABLE key_usage ADD COLUMN {kind} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    Ok(())
}

/// Page cache of each connection, in KiB: the writer and at most 8 pooled readers hold 144 MiB
/// at most (SQLite's default, 2 MiB, thrashes once a backlog outgrows it).
const CACHE_KIB: i64 = 16 * 1024;

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "busy_timeout", 5_000)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}

/// A SQLite error as the ports report it.
pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &Database) -> i64 {
        let conn = open_connection(&db.inner.path).expect("a reader");
        conn.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))
            .expect("counted")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_write_in_a_group_undoes_only_itself_and_every_answer_follows_its_commit() {
        let dir = tempfile::tempdir().expect("a directory");
        let db = Database::open(dir.path(), QueuePolicy::default()).expect("opens");
        let mut writes = Vec::new();
        for n in 0..400u32 {
            let db = db.clone();
            writes.push(tokio::spawn(async move {
                db.write(move |tx| {
                    tx.execute(
                        "INSERT INTO api_keys (id, body) VALUES (?1, '{}')",
                        [n.to_string()],
                    )
                    .map_err(crate::db::sql_error)?;
                    if n % 2 == 1 {
                        return Err(StoreError::Conflict(format!("write {n} refused")));
                    }
                    Ok(n)
                })
                .await
            }));
        }
        let mut kept = 0;
        for (n, write) in writes.into_iter().enumerate() {
            match write.await.expect("joined") {
                Ok(got) => {
                    assert_eq!(got as usize, n);
                    kept += 1;
                }
                Err(StoreError::Conflict(m)) => assert!(m.contains(&n.to_string()), "{m}"),
                Err(e) => panic!("write {n}: {e}"),
            }
        }
        assert_eq!(kept, 200);
        // Answered means committed: another connection sees exactly the kept writes.
        assert_eq!(count(&db), 200);
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("a directory");
        let db = Database::open_beside(dir.path()).expect("opens");
        let panicking = db.write(|tx| -> Result<(), StoreError> {
            tx.execute("INSERT INTO api_keys (id, body) VALUES ('a', '{}')", [])
                .map_err(crate::db::sql_error)?;
            panic!("a bug in one write")
        });
        match panicking.await {
            Err(StoreError::Backend(e)) => assert!(e.to_string().contains("write failed"), "{e}"),
            other => panic!("a panicking write answered {other:?}"),
        }
        db.write(|tx| {
            tx.execute("INSERT INTO api_keys (id, body) VALUES ('b', '{}')", [])
                .map_err(crate::db::sql_error)?;
            Ok(())
        })
        .await
        .expect("the writer still writes");
        assert_eq!(count(&db), 1);
    }
}
