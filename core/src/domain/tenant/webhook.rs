//! Signing callbacks as Standard Webhooks do.

use super::*;

/// The `webhook-signature` value for one delivery (Standard Webhooks): a space-separated
/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per secret.
pub fn webhook_signature(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let raw = secret.strip_prefix(WEBHOOK_SECRET_PREFIX).unwrap_or(secret);
            let key = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}
