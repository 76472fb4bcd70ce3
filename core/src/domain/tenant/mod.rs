//! Tenants: API keys, their limits, and the rules their requests obey.
//!
//! A key has a public id and a secret shown once. The secret is `tg_<id>_<43 base64url chars>`
//! (32 random bytes): the id inside lets a server find the key record with one read, and only
//! the SHA-256 of the whole secret is stored, compared in constant time. A secret of this
//! entropy needs no slow hash: guessing it is as hard as guessing its hash's preimage.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{InvalidValue, Millis, Priority};

mod idempotency;
mod rate;
mod webhook;

pub use idempotency::{
    IDEMPOTENCY_RETENTION, IDEMPOTENCY_STALE, IdempotentRequest, MAX_IDEMPOTENCY_KEY, Repeat,
    StoredAnswer, check_idempotency_key, digest_hex,
};
pub use rate::{Period, Rate, RateDecision, parse_quota};
pub use webhook::webhook_signature;

/// The prefix of every API secret, so that leaked secrets are recognisable by scanners.
pub const SECRET_PREFIX: &str = "tg_";
/// The prefix of a webhook signing secret, as Standard Webhooks names it.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
/// Random bytes of an API secret and of a webhook secret.
pub const SECRET_BYTES: usize = 32;
/// Hex digits of a key id (8 random bytes).
const ID_HEX: usize = 16;
/// The longest credential worth parsing; anything longer is malformed unread.
pub const MAX_CREDENTIAL_BYTES: usize = 128;
/// How long a rotated-out webhook secret keeps signing beside the new one.
pub const WEBHOOK_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// A key's public id: 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// Parses an id as printed by `taogate keys`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.len() == ID_HEX
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "'{}' is not a key id (16 lowercase hex digits)",
                raw.escape_default()
            )))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, InvalidValue> {
        Self::parse(&raw)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a presented credential was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The key id inside a presented secret, if it has the shape of one.
pub fn credential_key_id(presented: &str) -> Result<KeyId, Malformed> {
    if presented.len() > MAX_CREDENTIAL_BYTES {
        return Err(Malformed);
    }
    let rest = presented.strip_prefix(SECRET_PREFIX).ok_or(Malformed)?;
    let (id, random) = rest.split_once('_').ok_or(Malformed)?;
    let id = KeyId::parse(id).map_err(|_| Malformed)?;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(random)
        .map_err(|_| Malformed)?;
    if decoded.len() != SECRET_BYTES {
        return Err(Malformed);
    }
    Ok(id)
}

fn sha256_hex(s: &str) -> String {
    hex_lower(&Sha256::digest(s.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per period; none is unlimited.
    pub rate: Option<Rate>,
    /// Tasks per calendar month (UTC); none is unlimited.
    pub quota: Option<u64>,
    /// The highest priority its tasks may ask for.
    pub max_priority: Priority,
    /// Sees every tenant's tasks and the validator routes.
    pub admin: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate: None,
            quota: None,
            max_priority: Priority::High,
            admin: false,
        }
    }
}

/// A webhook signing secret; a rotated-out one keeps signing until `retires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecret {
    /// `whsec_` and the base64 of the key bytes.
    pub secret: String,
    /// When it stops signing; `None` for the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<Millis>,
}

/// An API key as stored: no secret, only its hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id.
    pub id: KeyId,
    /// A name for people.
    pub name: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// When it was made.
    pub created_at: Millis,
    /// When it was last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Millis>,
    /// When it was revoked; a revoked key authenticates nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Millis>,
    /// What it may do.
    pub limits: Limits,
    /// Webhook signing secrets, current first.
    pub webhook_secrets: Vec<WebhookSecret>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the webhook secrets, which sign deliveries.
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("revoked_at", &self.revoked_at)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A new or rotated key with the secrets shown once.
pub struct Issued {
    /// The stored record.
    pub key: ApiKey,
    /// The API secret.
    pub secret: String,
    /// The webhook signing secret.
    pub webhook_secret: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn fresh_secret(id: &KeyId, fill: &mut impl FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    fill(&mut bytes);
    format!(
        "{SECRET_PREFIX}{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn fresh_webhook_secret(fill: &mut impl FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    fill(&mut bytes);
    format!(
        "{WEBHOOK_SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

impl ApiKey {
    /// A new key named `name`; `fill` supplies random bytes.
    pub fn issue(
        name: &str,
        limits: Limits,
        now: Millis,
        mut fill: impl FnMut(&mut [u8]),
    ) -> Issued {
        let mut id_bytes = [0u8; ID_HEX / 2];
        fill(&mut id_bytes);
        let id = KeyId(hex_lower(&id_bytes));
        let secret = fresh_secret(&id, &mut fill);
        let webhook_secret = fresh_webhook_secret(&mut fill);
        let key = ApiKey {
            secret_sha256: sha256_hex(&secret),
            id,
            name: name.to_owned(),
            created_at: now,
            rotated_at: None,
            revoked_at: None,
            limits,
            webhook_secrets: vec![WebhookSecret {
                secret: webhook_secret.clone(),
                retires_at: None,
            }],
        };
        Issued {
            key,
            secret,
            webhook_secret,
        }
    }

    /// Replaces the API secret (the old one stops working at once) and the webhook secret
    /// (the old one keeps signing beside the new for [`WEBHOOK_OVERLAP`]).
    pub fn rotate(mut self, now: Millis, mut fill: impl FnMut(&mut [u8])) -> Issued {
        let secret = fresh_secret(&self.id, &mut fill);
        let webhook_secret = fresh_webhook_secret(&mut fill);
        let retire = now + WEBHOOK_OVERLAP.as_millis() as Millis;
        self.webhook_secrets
            .retain(|s| s.retires_at.is_none_or(|r| r > now));
        for old in &mut self.webhook_secrets {
            old.retires_at = Some(old.retires_at.map_or(retire, |r| r.min(retire)));
        }
        self.webhook_secrets.insert(
            0,
            WebhookSecret {
                secret: webhook_secret.clone(),
                retires_at: None,
            },
        );
        self.secret_sha256 = sha256_hex(&secret);
        self.rotated_at = Some(now);
        Issued {
            key: self,
            secret,
            webhook_secret,
        }
    }

    /// Whether `presented` is this key's secret (constant time in the secret's content).
    pub fn matches(&self, presented: &str) -> bool {
        let hash = sha256_hex(presented);
        hash.as_bytes().ct_eq(self.secret_sha256.as_bytes()).into()
    }

    /// Whether it still authenticates.
    pub fn active(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// The secrets that sign a delivery at `now`: the current one and those still overlapping.
    pub fn signing_secrets(&self, now: Millis) -> Vec<String> {
        self.webhook_secrets
            .iter()
            .filter(|s| s.retires_at.is_none_or(|r| r > now))
            .map(|s| s.secret.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_add(37);
                *x = n;
            }
        }
    }

    #[test]
    fn a_secret_names_its_key_and_only_it_matches() {
        let issued = ApiKey::issue("a", Limits::default(), 0, counter());
        assert!(issued.secret.starts_with("tg_"));
        assert_eq!(credential_key_id(&issued.secret), Ok(issued.key.id.clone()));
        assert!(issued.key.matches(&issued.secret));
        let mut other = issued.secret.clone();
        other.pop();
        other.push('A');
        assert!(!issued.key.matches(&other));
        assert!(!issued.key.secret_sha256.contains(&issued.secret));
        assert!(!format!("{:?}", issued.key).contains("whsec_"));
    }

    #[test]
    fn malformed_credentials_are_refused_before_any_lookup() {
        for bad in [
            "",
            "tg_",
            "tg_0123456789abcdef",
            "tg_0123456789ABCDEF_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "sk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "tg_0123456789abcdef_AAAA",
            &format!("tg_0123456789abcdef_{}", "A".repeat(200)),
        ] {
            assert_eq!(credential_key_id(bad), Err(Malformed), "{bad}");
        }
        let good = "tg_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(credential_key_id(good).is_ok());
    }

    #[test]
    fn a_rested_key_admits_its_burst_then_one_per_interval() {
        let rate = Rate::parse("10/s", Some(20)).unwrap();
        let mut tat = None;
        let now = 1_000_000_000;
        let mut admitted = 0;
        for _ in 0..50 {
            if let RateDecision::Admit { tat: t, .. } = rate.decide(tat, now) {
                tat = Some(t);
                admitted += 1;
            }
        }
        assert_eq!(admitted, 20);
        assert!(matches!(
            rate.decide(tat, now),
            RateDecision::Refuse { retry_after_s: 1 }
        ));
        // 100 ms later one more request fits.
        assert!(matches!(
            rate.decide(tat, now + 100_000),
            RateDecision::Admit { remaining: 0, .. }
        ));
        assert_eq!(rate.window_s(), 2);
    }

    #[test]
    fn rates_and_quotas_parse_or_say_why_not() {
        assert_eq!(Rate::parse("600/min", None).unwrap().interval_us(), 100_000);
        assert!(Rate::parse("0/s", None).is_err());
        assert!(Rate::parse("10/week", None).is_err());
        assert_eq!(parse_quota("100000/month").unwrap(), 100_000);
        assert!(parse_quota("0/month").is_err());
    }

    #[test]
    fn a_month_resets_on_the_first_at_midnight_utc() {
        // 2026-12-31T23:59:59Z
        let p = Period::of(1_798_761_599_000);
        assert_eq!(p.label, "2026-12");
        assert_eq!(p.resets_at, 1_798_761_600_000);
        assert_eq!(p.seconds_left(1_798_761_599_000), 1);
    }

    #[test]
    fn rotation_keeps_the_old_webhook_secret_for_the_overlap_only() {
        let issued = ApiKey::issue("a", Limits::default(), 0, counter());
        let old_secret = issued.secret.clone();
        let rotated = issued.key.rotate(1_000, counter());
        assert!(!rotated.key.matches(&old_secret));
        assert!(rotated.key.matches(&rotated.secret));
        assert_eq!(rotated.key.signing_secrets(2_000).len(), 2);
        let after = 1_000 + WEBHOOK_OVERLAP.as_millis() as Millis;
        assert_eq!(
            rotated.key.signing_secrets(after),
            vec![rotated.webhook_secret.clone()]
        );
        let sig = webhook_signature(&rotated.key.signing_secrets(2_000), "msg_1", 5, b"{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    }

    #[test]
    fn a_repeated_idempotency_key_replays_refuses_or_waits() {
        let answer = StoredAnswer {
            status: 202,
            location: None,
            body: "{}".into(),
        };
        let mut first = IdempotentRequest {
            fingerprint: "f".into(),
            started_at: 0,
            resource: Some("task".into()),
            answer: None,
        };
        assert_eq!(first.repeat("f", 10), Repeat::InFlight);
        assert_eq!(first.repeat("g", 10), Repeat::Mismatch);
        assert_eq!(first.repeat("f", 60_000), Repeat::Abandoned);
        first.answer = Some(answer.clone());
        assert_eq!(first.repeat("f", 60_000), Repeat::Replay(answer));
        assert_eq!(first.repeat("f", 24 * 3_600_000), Repeat::Fresh);
        assert!(check_idempotency_key("abc-123").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("é").is_err());
    }
}
