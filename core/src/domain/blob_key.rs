//! The layout of the blob store. Every key taogate writes or reads is made here, and each kind
//! of key has its own prefix, because the IAM policies in `template.yaml` grant each function
//! exactly the prefixes it uses (a test holds the template to [`BlobKey::PREFIXES`]).

use std::fmt;

use super::TaskId;

/// A key in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Input audio sent with a submission: `input/{task}`.
    pub const INPUT: &'static str = "input/";
    /// Audio uploaded through `POST /api/v1/uploads`: `uploads/{upload id}`.
    pub const UPLOADS: &'static str = "uploads/";
    /// Synthesized speech of a TTS task: `output/{task}/{write}.wav`, a fresh key per write.
    pub const OUTPUT: &'static str = "output/";
    /// Task bodies too large for one DynamoDB item: `tasks/{task}/{version}.json`.
    pub const TASK_BODIES: &'static str = "tasks/";
    /// The miner directory snapshot: `metagraph/snapshot.json`.
    pub const METAGRAPH: &'static str = "metagraph/";

    /// Every prefix, each granted separately by IAM.
    pub const PREFIXES: [&'static str; 5] = [
        Self::INPUT,
        Self::UPLOADS,
        Self::OUTPUT,
        Self::TASK_BODIES,
        Self::METAGRAPH,
    ];

    /// The input audio of task `id`.
    pub fn input(id: TaskId) -> Self {
        Self(format!("{}{id}", Self::INPUT))
    }

    /// A fresh upload of `owner` (a key id, or empty for the anonymous tenant): its public id
    /// and its key. Uploads live under their owner, so an upload id names nothing for
    /// another tenant.
    pub fn new_upload(owner: &str) -> (String, Self) {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let key = Self::upload_key(owner, &id);
        (id, key)
    }

    fn upload_key(owner: &str, simple_id: &str) -> Self {
        if owner.is_empty() {
            Self(format!("{}{simple_id}", Self::UPLOADS))
        } else {
            Self(format!("{}{owner}/{simple_id}", Self::UPLOADS))
        }
    }

    /// The key of `owner`'s upload `upload_id`, if the id is well formed (`owner` is a key id
    /// or empty).
    pub fn upload(owner: &str, upload_id: &str) -> Option<Self> {
        if !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        uuid::Uuid::parse_str(upload_id)
            .ok()
            .map(|u| Self::upload_key(owner, &u.simple().to_string()))
    }

    /// The marker saying that `owner` was handed upload `upload_id` (the local runtime's
    /// upload route accepts only uploads its caller was handed).
    pub fn upload_slot(owner: &str, upload_id: &str) -> Option<Self> {
        Self::upload(owner, upload_id).map(|k| Self(format!("{}.slot", k.0)))
    }

    /// When upload `upload_id` was handed out, in Unix milliseconds (ids are UUIDv7); `None`
    /// for an id that carries no time.
    pub fn upload_time(upload_id: &str) -> Option<super::Millis> {
        let (secs, nanos) = uuid::Uuid::parse_str(upload_id)
            .ok()?
            .get_timestamp()?
            .to_unix();
        Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
    }

    /// The upload id of an upload key.
    pub fn upload_id(key: &str) -> Option<&str> {
        let rest = key.strip_prefix(Self::UPLOADS)?;
        Some(rest.rsplit('/').next().unwrap_or(rest))
    }

    /// A fresh key for synthesized speech of task `id`: a new key per write, so an attempt
    /// that loses the race to end the task (a stale worker, a validator whose lease ran out)
    /// leaves an orphan object and never replaces the audio of the result that was stored.
    /// Only the stored result names the key it serves.
    pub fn output(id: TaskId) -> Self {
        Self(format!(
            "{}{id}/{}.wav",
            Self::OUTPUT,
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// A fresh version of the spilled body of task `id`: a new key per write, so a write that
    /// loses its condition leaves an orphan object, never a changed body.
    pub fn task_body(id: TaskId) -> Self {
        Self(format!(
            "{}{id}/{}.json",
            Self::TASK_BODIES,
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The default key of the miner directory snapshot.
    pub fn snapshot() -> Self {
        Self(format!("{}snapshot.json", Self::METAGRAPH))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_lives_under_its_own_prefix() {
        let id = TaskId::new();
        assert!(BlobKey::input(id).as_str().starts_with(BlobKey::INPUT));
        assert!(BlobKey::output(id).as_str().starts_with(BlobKey::OUTPUT));
        assert_ne!(
            BlobKey::output(id),
            BlobKey::output(id),
            "a fresh key per write"
        );
        assert!(
            BlobKey::task_body(id)
                .as_str()
                .starts_with(BlobKey::TASK_BODIES)
        );
        assert!(BlobKey::snapshot().as_str().starts_with(BlobKey::METAGRAPH));
        let (upload_id, key) = BlobKey::new_upload("");
        let made = BlobKey::upload_time(&upload_id).expect("upload ids carry their time");
        assert!((crate::domain::now_millis() - made).abs() < 60_000);
        assert_eq!(BlobKey::upload("", &upload_id), Some(key.clone()));
        assert_eq!(BlobKey::upload_id(key.as_str()), Some(upload_id.as_str()));
        assert_eq!(BlobKey::upload("", "../../etc/passwd"), None);
        let (theirs, key) = BlobKey::new_upload("0123456789abcdef");
        assert!(key.as_str().starts_with(BlobKey::UPLOADS));
        assert_eq!(BlobKey::upload_id(key.as_str()), Some(theirs.as_str()));
        assert_ne!(BlobKey::upload("", &theirs), Some(key.clone()));
        assert_eq!(BlobKey::upload("../x", &theirs), None);
    }
}
