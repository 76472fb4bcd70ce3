//! Blobs as files under a directory.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::domain::{BlobKey, TaskId};
use crate::ports::{BlobGet, BlobPresign, BlobPut, StoreError, UploadTarget};

/// A blob directory. Keys are relative paths made by [`BlobKey`], checked so that no key
/// escapes the directory.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
    public_base: String,
}

impl BlobDir {
    /// Blobs under `root`; URLs handed to clients start with `public_base`
    /// (for example `http://127.0.0.1:8000`).
    pub fn new(root: &Path, public_base: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.to_owned(),
            public_base: public_base.trim_end_matches('/').to_owned(),
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
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Write then rename, so a crash never leaves a half-written blob under its key.
            let tmp = path.with_extension("partial");
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::backend)
    }
}

impl BlobGet for BlobDir {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path(key)?;
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
        expires: std::time::Duration,
    ) -> Result<UploadTarget, StoreError> {
        let id = BlobKey::upload_id(key).ok_or_else(|| {
            StoreError::backend(anyhow::anyhow!("uploads live under {}", BlobKey::UPLOADS))
        })?;
        Ok(UploadTarget {
            url: format!("{}/api/v1/uploads/{id}", self.public_base),
            method: "PUT",
            headers: vec![("content-type".into(), content_type.into())],
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

    #[tokio::test]
    async fn blobs_round_trip_and_keys_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path(), "http://x").unwrap();
        blobs
            .put("output/a.wav", Bytes::from_static(b"RIFF"), "audio/wav")
            .await
            .unwrap();
        assert_eq!(
            blobs.get("output/a.wav").await.unwrap().unwrap(),
            &b"RIFF"[..]
        );
        assert!(blobs.get("missing").await.unwrap().is_none());
        assert!(blobs.put("../evil", Bytes::new(), "x").await.is_err());
    }
}
