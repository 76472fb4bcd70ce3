//! S3: input audio, TTS output, and the miner snapshot. Clients get short-lived presigned URLs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;

use super::AwsResources;
use crate::domain::MinerSnapshot;
use crate::domain::TaskId;
use crate::ports::{BlobGet, BlobPresign, BlobPut, MinerDirectory, StoreError, UploadTarget};

/// Blobs in one private bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    presign_ttl: Duration,
}

impl S3Blobs {
    /// The bucket named in `resources`.
    pub fn new(client: aws_sdk_s3::Client, resources: &AwsResources) -> Self {
        Self {
            client,
            bucket: resources.bucket.clone(),
            presign_ttl: Duration::from_secs(resources.presign_ttl_s),
        }
    }
}

impl BlobPut for S3Blobs {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }
}

impl BlobGet for S3Blobs {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let data = out.body.collect().await.map_err(StoreError::backend)?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        // HeadObject is authorized by s3:GetObject.
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length.unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(StoreError::backend(e)),
        }
    }
}

impl BlobPresign for S3Blobs {
    async fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires: Duration,
    ) -> Result<UploadTarget, StoreError> {
        let config = PresigningConfig::expires_in(expires).map_err(StoreError::backend)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // Signed: another size fails the signature, a second body the condition.
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .if_none_match("*")
            .presigned(config)
            .await
            .map_err(StoreError::backend)?;
        let headers = request
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        Ok(UploadTarget {
            url: request.uri().to_owned(),
            method: "PUT",
            headers,
            expires_in_s: expires.as_secs(),
        })
    }

    async fn public_url(&self, _id: TaskId, key: &str) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(self.presign_ttl).map_err(StoreError::backend)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(StoreError::backend)?;
        Ok(request.uri().to_owned())
    }
}

/// How long a container keeps a snapshot before reading it again.
const SNAPSHOT_TTL: Duration = Duration::from_secs(60);

/// A snapshot and when it was read.
type CachedSnapshot = (Instant, Arc<MinerSnapshot>);

/// The miner snapshot as an S3 object (written by the metagraph sync), cached per container.
#[derive(Debug, Clone)]
pub struct S3Directory {
    blobs: S3Blobs,
    key: String,
    cache: Arc<Mutex<Option<CachedSnapshot>>>,
    /// Hotkeys reported stale, with when: left out of snapshots taken before that.
    stale: Arc<Mutex<Vec<(String, crate::domain::Millis)>>>,
}

impl S3Directory {
    /// Reads `resources.snapshot_key` from the bucket.
    pub fn new(blobs: S3Blobs, resources: &AwsResources) -> Self {
        Self {
            blobs,
            key: resources.snapshot_key.clone(),
            cache: Arc::default(),
            stale: Arc::default(),
        }
    }
}

impl MinerDirectory for S3Directory {
    async fn snapshot(&self) -> Result<Arc<MinerSnapshot>, StoreError> {
        let snapshot = self.cached_or_read().await?;
        let stale = self.stale.lock().map(|s| s.clone()).unwrap_or_default();
        let stale: Vec<&str> = stale
            .iter()
            .filter(|(_, at)| snapshot.taken_at <= *at)
            .map(|(h, _)| h.as_str())
            .collect();
        if stale.is_empty() {
            return Ok(snapshot);
        }
        Ok(Arc::new(snapshot.without(|hotkey| stale.contains(&hotkey))))
    }

    /// Drops the cached snapshot so the next attempt reads the object again, and leaves the
    /// miner out until a snapshot newer than now arrives (the sync re-reads the chain on its
    /// schedule).
    fn mark_stale(&self, hotkey: &str) {
        if let Ok(mut stale) = self.stale.lock() {
            stale.retain(|(h, _)| h != hotkey);
            stale.push((hotkey.to_owned(), crate::domain::now_millis()));
        }
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }
}

impl S3Directory {
    async fn cached_or_read(&self) -> Result<Arc<MinerSnapshot>, StoreError> {
        if let Ok(guard) = self.cache.lock()
            && let Some((at, snap)) = guard.as_ref()
            && at.elapsed() < SNAPSHOT_TTL
        {
            return Ok(snap.clone());
        }
        let bytes = self.blobs.get(&self.key).await?.ok_or_else(|| {
            StoreError::backend(anyhow::anyhow!(
                "no miner snapshot at s3://{}/{}",
                self.blobs.bucket,
                self.key
            ))
        })?;
        let snapshot: Arc<MinerSnapshot> =
            Arc::new(serde_json::from_slice(&bytes).map_err(StoreError::backend)?);
        if let Ok(mut guard) = self.cache.lock() {
            *guard = Some((Instant::now(), snapshot.clone()));
        }
        Ok(snapshot)
    }
}

/// Stores `snapshot` as the object the workers' [`S3Directory`] reads.
pub async fn publish_snapshot(
    blobs: &impl BlobPut,
    key: &str,
    snapshot: &MinerSnapshot,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec(snapshot).map_err(StoreError::backend)?;
    blobs.put(key, body.into(), "application/json").await
}
