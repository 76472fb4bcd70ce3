//! The blob store contract.

use bytes::Bytes;
use taogate_shared::domain::TaskId;
use taogate_shared::ports::{BlobGet, BlobPresign, BlobPut};

use crate::aws_fixture::Backend;

async fn round_trip<T, Q, B: BlobPut + BlobGet + BlobPresign>(b: Backend<T, Q, B>) {
    let blobs = b.blobs;
    // A speech result's size, and one past what the embedded backend keeps in its database.
    for len in [200_000, taogate_shared::embedded::SMALL_BLOB_BYTES + 1] {
        let data = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        blobs
            .put("output/x.wav", data.clone(), "audio/wav")
            .await
            .unwrap();
        assert_eq!(blobs.get("output/x.wav").await.unwrap().unwrap(), data);
        // Measured without reading: what a client-filled upload is checked with first.
        assert_eq!(blobs.size("output/x.wav").await.unwrap(), Some(len as u64));
    }
    assert!(blobs.get("output/missing.wav").await.unwrap().is_none());
    assert_eq!(blobs.size("output/missing.wav").await.unwrap(), None);
    let id = TaskId::new();
    let url = blobs.public_url(id, "output/x.wav").await.unwrap();
    assert!(url.starts_with("http"), "{url}");
}

crate::both_backends!(round_trip);

/// On AWS the URL is a presigned S3 GET that serves the object to anyone holding it, briefly.
/// (The embedded runtime serves its URL through its own route; the end-to-end suite fetches it.)
#[tokio::test]
async fn presigned_urls_serve_the_object_on_aws() {
    let blobs = crate::aws_fixture::aws().await.blobs;
    let data = Bytes::from_static(b"RIFF....WAVE");
    blobs
        .put("output/p.wav", data.clone(), "audio/wav")
        .await
        .unwrap();
    let url = blobs
        .public_url(TaskId::new(), "output/p.wav")
        .await
        .unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200, "{url}");
    assert_eq!(fetched.bytes().await.unwrap(), data);
    let tampered = url.replace("output/p.wav", "output/q.wav");
    assert_eq!(
        reqwest::get(&tampered).await.unwrap().status(),
        403,
        "the signature covers the key"
    );
}
