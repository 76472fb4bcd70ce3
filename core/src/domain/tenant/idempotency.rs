//! Remembered requests under an `Idempotency-Key`.

use super::*;

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a first request may stay "being accepted" before a repeat may take it over (its
/// server died mid-way; nothing was answered).
pub const IDEMPOTENCY_STALE: Duration = Duration::from_secs(60);
/// The longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A remembered request under an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentRequest {
    /// SHA-256 of what the request asked for.
    pub fingerprint: String,
    /// When its current owner claimed it (the claim's token: only that owner may finish or
    /// forget it).
    pub started_at: Millis,
    /// The id of what the request creates (a task, an upload), chosen before anything is
    /// created, so a request taking over an abandoned one creates the same thing, or finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The answer, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
}

/// An answer to repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Location`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The JSON body.
    pub body: String,
}

/// What a repeated `Idempotency-Key` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// The same request, answered: answer it again.
    Replay(StoredAnswer),
    /// Another request under the same key: 422.
    Mismatch,
    /// The first is still being accepted: 409.
    InFlight,
    /// The same request, claimed but never answered (its server died mid-way): take it over,
    /// creating what it meant to create under the id it chose.
    Abandoned,
    /// Nothing remembered (or forgotten after 24 hours): handle it as new.
    Fresh,
}

impl IdempotentRequest {
    /// What a request with `fingerprint` arriving at `now` finds.
    pub fn repeat(&self, fingerprint: &str, now: Millis) -> Repeat {
        if now - self.started_at >= IDEMPOTENCY_RETENTION.as_millis() as Millis {
            return Repeat::Fresh;
        }
        if self.fingerprint != fingerprint {
            return Repeat::Mismatch;
        }
        match &self.answer {
            Some(a) => Repeat::Replay(a.clone()),
            None if now - self.started_at >= IDEMPOTENCY_STALE.as_millis() as Millis => {
                Repeat::Abandoned
            }
            None => Repeat::InFlight,
        }
    }
}

/// Checks an `Idempotency-Key` value: 1–255 visible ASCII characters.
pub fn check_idempotency_key(raw: &str) -> Result<(), InvalidValue> {
    if raw.is_empty()
        || raw.len() > MAX_IDEMPOTENCY_KEY
        || !raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(InvalidValue(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(())
}

/// SHA-256 hex of some text (fingerprints, stored idempotency keys).
pub fn digest_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex_lower(&h.finalize())
}
