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
CREATE INDEX IF NOT EXISTS queue_ready ON queue (visible_at, rank, id);
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
    transcription INTEGER NOT NULL DEFAULT 0,
    tts           INTEGER NOT NULL DEFAULT 0,
    summarization INTEGER NOT NULL DEFAULT 0,
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

pub(super) struct Inner {
    pub(super) writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    pub(super) policy: QueuePolicy,
    pub(super) notify: std::sync::Arc<tokio::sync::Notify>,
    pub(super) meter: Mutex<super::tenants::Meter>,
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
        let policy = QueuePolicy {
            max_receives: 3,
            starvation_age_ms: 60_000,
        };
        Self::connect(dir, policy, None)
    }

    fn connect(dir: &Path, policy: QueuePolicy, lock: Option<File>) -> anyhow::Result<Self> {
        let path = dir.join("taogate.db");
        let writer = open_connection(&path)?;
        writer.execute_batch(SCHEMA)?;
        migrate(&writer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                path,
                policy,
                notify: std::sync::Arc::new(tokio::sync::Notify::new()),
                meter: Mutex::default(),
                _lock: lock,
            }),
        })
    }

    /// Runs `f` on the write connection, off the async threads.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::backend(anyhow::anyhow!("database writer poisoned")))?;
            f(&mut conn)
        })
        .await
        .map_err(StoreError::backend)?
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
    Ok(())
}

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "busy_timeout", 5_000)?;
    Ok(conn)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::backend(e)
    }
}
