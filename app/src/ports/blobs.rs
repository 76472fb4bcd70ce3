//! The blob store's capabilities, each the size of one S3 permission.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use super::StoreError;
use crate::domain::TaskId;

/// Where and how a client uploads a file directly, bypassing the API's body limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    /// The URL to send the file to.
    pub url: String,
    /// The HTTP method (`PUT`).
    pub method: &'static str,
    /// Headers the upload must carry (they are part of the signature on S3).
    pub headers: Vec<(String, String)>,
    /// Seconds the URL stays valid.
    pub expires_in_s: u64,
}

/// Writes blobs (`s3:PutObject`): input audio (submit), TTS output (worker).
pub trait BlobPut: Send + Sync + 'static {
    /// Stores `bytes` under `key`.
    fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Reads blobs (`s3:GetObject`): uploads (submit), input audio (worker), local audio results
/// (status).
pub trait BlobGet: Send + Sync + 'static {
    /// Reads a blob.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;
    /// The size of a blob in bytes, without reading it (a client-filled upload may be
    /// anything up to S3's 5 GB; it is measured before it is read).
    fn size(&self, key: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
}

/// Hands clients URLs to blobs instead of the bytes: presigned S3 URLs, signed with the
/// function's own permission on the key (`s3:PutObject` on `uploads/` for submit, `s3:GetObject`
/// on `output/` for status and the worker's callbacks).
pub trait BlobPresign: Send + Sync + 'static {
    /// A URL a client can upload the blob `key` to, valid for `expires`: one body of exactly
    /// `size` bytes, and only while nothing is stored under `key`.
    fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires: Duration,
    ) -> impl Future<Output = Result<UploadTarget, StoreError>> + Send;
    /// A URL a client can fetch the blob of task `id` from.
    fn public_url(
        &self,
        id: TaskId,
        key: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}
