//! Blobs: small ones in the database, larger ones as files under a directory.
//!
//! A blob of at most [`SMALL_BLOB_BYTES`] (every ordinary speech result) is a row of the SQLite
//! file, written through the group commit like any other write. It is durable exactly as a task
//! is (it survives `kill -9`), and since the WAL is replayed in order, a result committed after
//! its blob can never outlive it. Creating, syncing and renaming a file per result cost more
//! than the whole rest of storing it (`BENCHMARKS.md`, "The gateway's overhead end to end").
//! A larger blob (a recording of many minutes) is a file, written to a temporary name, synced
//! and renamed, so that it never holds up the writer that every submission waits on.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rusqlite::{OptionalExtension as _, params};

use super::Database;
use crate::db::sql_error;
use crate::domain::{BlobKey, TaskId};
use crate::ports::{BlobGet, BlobPresign, BlobPut, StoreError, UploadTarget};

/// Blobs up to this size are kept in the database; larger ones as files. 1 MiB is about 30 s of
/// 16 kHz speech, and writes the writer's transaction in well under a millisecond.
pub const SMALL_BLOB_BYTES: usize = 1024 * 1024;

/// The embedded blob store: small blobs in `db`, larger ones under a directory. Keys are relative
/// paths made by [`BlobKey`], checked so that no key escapes the directory.
#[derive(Clone)]
pub struct BlobDir {
    root: PathBuf,
    public_base: String,
    db: Database,
}

impl std::fmt::Debug for BlobDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobDir")
            .field("root", &self.root)
            .field("public_base", &self.public_base)
            .finish_non_exhaustive()
    }
}

impl BlobDir {
    /// Blobs in `db` and under `root`; URLs handed to clients start with `public_base`
    /// (for example `http://127.0.0.1:8000`).
    pub fn new(root: &Path, public_base: &str, db: &Database) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.to_owned(),
            public_base: public_base.trim_end_matches('/').to_owned(),
            db: db.clone(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let safe = !key.is_empty()
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            && !key.contains('\\');
        if !safe {
            return Err(StoreError::backend(anyhow::anyhow!(
                "invalid blob key {key:?}"
            )));
        }
        Ok(self.root.join(key))
    }
}

impl BlobPut for BlobDir {
    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let owned = key.to_owned();
        if bytes.len() <= SMALL_BLOB_BYTES {
            return self
                .db
                .write(move |conn| {
                    conn.prepare_cached(
                        "INSERT INTO blobs (key, bytes) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET bytes = excluded.bytes",
                    )
                    .map_err(sql_error)?
                    .execute(params![owned, &bytes[..]])
                    .map_err(sql_error)?;
                    Ok(())
                })
                .await;
        }
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Write then rename, so a crash never leaves a half-written blob under its key.
            // A name of its own per write: two writes of one key never share a partial file.
            let tmp = path.with_extension(format!("{}.partial", uuid::Uuid::new_v4().simple()));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::backend)?;
        // A smaller blob stored earlier under the key would otherwise be read first.
        self.db
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM blobs WHERE key = ?1")
                    .map_err(sql_error)?
                    .execute([owned])
                    .map_err(sql_error)?;
                Ok(())
            })
            .await
    }
}

impl BlobDir {
    /// `column` (`bytes` or `length(bytes)`) of the small blob `key`, if there is one.
    async fn small<T: rusqlite::types::FromSql + Send + 'static>(
        &self,
        key: &str,
        column: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let key = key.to_owned();
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {column} FROM blobs WHERE key = ?1"))
                    .map_err(sql_error)?
                    .query_row([key], |r| r.get(0))
                    .optional()
                    .map_err(sql_error)
            })
            .await
    }
}

impl BlobGet for BlobDir {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key)?;
        if let Some(bytes) = self.small::<Vec<u8>>(key, "bytes").await? {
            return Ok(Some(Bytes::from(bytes)));
        }
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(key)?;
        if let Some(len) = self.small::<i64>(key, "length(bytes)").await? {
            return Ok(Some(len.max(0) as u64));
        }
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::backend(e)),
        }
    }
}

impl BlobPresign for BlobDir {
    async fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires: std::time::Duration,
    ) -> Result<UploadTarget, StoreError> {
        let id = BlobKey::upload_id(key).ok_or_else(|| {
            StoreError::backend(anyhow::anyhow!("uploads live under {}", BlobKey::UPLOADS))
        })?;
        Ok(UploadTarget {
            url: format!("{}/api/v1/uploads/{id}", self.public_base),
            method: "PUT",
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("content-length".into(), size.to_string()),
            ],
            expires_in_s: expires.as_secs(),
        })
    }

    async fn public_url(&self, id: TaskId, _key: &str) -> Result<String, StoreError> {
        Ok(format!("{}/api/v1/tasks/{id}/audio", self.public_base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueuePolicy;

    fn store(dir: &Path) -> BlobDir {
        let db = Database::open(dir, QueuePolicy::default()).unwrap();
        BlobDir::new(&dir.join("blobs"), "http://x", &db).unwrap()
    }

    fn bytes(len: usize, seed: u8) -> Bytes {
        Bytes::from((0..len).map(|i| (i % 251) as u8 ^ seed).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn small_blobs_live_in_the_database_and_large_ones_in_files() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path());
        let (small, large) = (bytes(SMALL_BLOB_BYTES, 1), bytes(SMALL_BLOB_BYTES + 1, 2));
        blobs
            .put("output/a.wav", small.clone(), "audio/wav")
            .await
            .unwrap();
        blobs
            .put("inputs/b", large.clone(), "audio/wav")
            .await
            .unwrap();
        assert_eq!(blobs.get("output/a.wav").await.unwrap().unwrap(), small);
        assert_eq!(blobs.get("inputs/b").await.unwrap().unwrap(), large);
        assert_eq!(
            blobs.size("output/a.wav").await.unwrap(),
            Some(small.len() as u64)
        );
        assert_eq!(
            blobs.size("inputs/b").await.unwrap(),
            Some(large.len() as u64)
        );
        assert!(!dir.path().join("blobs/output/a.wav").exists());
        assert!(dir.path().join("blobs/inputs/b").exists());
        // Reopened, both are still there.
        drop(blobs);
        let again = store(dir.path());
        assert_eq!(again.get("output/a.wav").await.unwrap().unwrap(), small);
        assert_eq!(again.get("inputs/b").await.unwrap().unwrap(), large);
    }

    #[tokio::test]
    async fn a_blob_stored_again_is_read_as_last_stored_whatever_the_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path());
        let (small, large) = (bytes(10, 3), bytes(SMALL_BLOB_BYTES + 10, 4));
        for (first, then) in [(&small, &large), (&large, &small), (&small, &bytes(20, 5))] {
            blobs.put("k/x", first.clone(), "x").await.unwrap();
            blobs.put("k/x", then.clone(), "x").await.unwrap();
            assert_eq!(&blobs.get("k/x").await.unwrap().unwrap(), then);
            assert_eq!(blobs.size("k/x").await.unwrap(), Some(then.len() as u64));
        }
    }

    #[tokio::test]
    async fn missing_blobs_are_none_and_keys_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path());
        assert!(blobs.get("missing").await.unwrap().is_none());
        assert!(blobs.size("missing").await.unwrap().is_none());
        assert!(blobs.put("../evil", Bytes::new(), "x").await.is_err());
        assert!(
            blobs
                .put("a/../../evil", bytes(SMALL_BLOB_BYTES + 1, 0), "x")
                .await
                .is_err()
        );
        assert!(blobs.get("../evil").await.is_err());
    }
}
