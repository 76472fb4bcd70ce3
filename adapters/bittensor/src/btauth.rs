//! `btauth/1`: the signed plain-HTTP scheme of bittensor ≥ 11, for subnets whose miners left the
//! axon protocol.
//!
//! The signer sends `X-Bittensor-Version: 1`, `X-Bittensor-Hotkey` (its SS58),
//! `X-Bittensor-Receiver` (the miner's SS58), `X-Bittensor-Nonce` (nanoseconds) and
//! `X-Bittensor-Signature` (`0x` + hex sr25519). The signed bytes are these lines joined by `\n`:
//! `btauth/1`, `sr25519`, the upper-case method, the request target (path and `?query`), the
//! lowercase hex SHA-256 of the raw body, the nonce, the sender and the receiver (or `-`).
//! A verifier accepts nonces at most 10 s old and 2 s ahead, and each (sender, nonce) once.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::hotkey::{Hotkey, verify_signature};

/// Oldest nonce accepted, in nanoseconds.
const MAX_AGE_NS: u128 = 10_000_000_000;
/// Furthest-ahead nonce accepted, in nanoseconds.
const MAX_AHEAD_NS: u128 = 2_000_000_000;

/// The bytes that are signed.
pub fn payload(
    method: &str,
    target: &str,
    body: &[u8],
    nonce: u64,
    sender: &str,
    receiver: Option<&str>,
) -> String {
    let body_sha256 = hex::encode(Sha256::digest(body));
    payload_hashed(method, target, &body_sha256, nonce, sender, receiver)
}

/// The bytes that are signed, given the lowercase hex SHA-256 of the body.
pub fn payload_hashed(
    method: &str,
    target: &str,
    body_sha256: &str,
    nonce: u64,
    sender: &str,
    receiver: Option<&str>,
) -> String {
    [
        "btauth/1",
        "sr25519",
        &method.to_ascii_uppercase(),
        target,
        body_sha256,
        &nonce.to_string(),
        sender,
        receiver.unwrap_or("-"),
    ]
    .join("\n")
}

/// The headers of a request signed by `hotkey` for `receiver`.
pub fn sign(
    hotkey: &Hotkey,
    method: &str,
    target: &str,
    body: &[u8],
    receiver: &str,
    nonce: u64,
) -> Vec<(&'static str, String)> {
    sign_hashed(
        hotkey,
        method,
        target,
        &hex::encode(Sha256::digest(body)),
        receiver,
        nonce,
    )
}

/// [`sign`], given the lowercase hex SHA-256 of the body.
pub fn sign_hashed(
    hotkey: &Hotkey,
    method: &str,
    target: &str,
    body_sha256: &str,
    receiver: &str,
    nonce: u64,
) -> Vec<(&'static str, String)> {
    let signature = hotkey.sign_hex(
        payload_hashed(
            method,
            target,
            body_sha256,
            nonce,
            hotkey.ss58(),
            Some(receiver),
        )
        .as_bytes(),
    );
    vec![
        ("X-Bittensor-Version", "1".into()),
        ("X-Bittensor-Hotkey", hotkey.ss58().into()),
        ("X-Bittensor-Receiver", receiver.into()),
        ("X-Bittensor-Nonce", nonce.to_string()),
        ("X-Bittensor-Signature", signature),
    ]
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header is missing or malformed.
    #[error("missing or malformed header {0}")]
    Header(&'static str),
    /// The request names another receiver.
    #[error("the request is addressed to another receiver")]
    WrongReceiver,
    /// The nonce is outside the window.
    #[error("the nonce is too old or too far ahead")]
    Stale,
    /// The nonce was seen before.
    #[error("the nonce was already used")]
    Replay,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
}

/// A receiver's verifier: checks signatures and remembers nonces.
#[derive(Debug, Default)]
pub struct Verifier {
    seen: HashSet<(String, u64)>,
}

impl Verifier {
    /// Checks a request received by `receiver` at `now_ns`. `header` looks a header up by name.
    pub fn verify<'a>(
        &mut self,
        header: impl Fn(&str) -> Option<&'a str>,
        method: &str,
        target: &str,
        body: &[u8],
        receiver: &str,
        now_ns: u128,
    ) -> Result<String, Refusal> {
        if header("X-Bittensor-Version") != Some("1") {
            return Err(Refusal::Header("X-Bittensor-Version"));
        }
        let sender = header("X-Bittensor-Hotkey").ok_or(Refusal::Header("X-Bittensor-Hotkey"))?;
        let to = header("X-Bittensor-Receiver").ok_or(Refusal::Header("X-Bittensor-Receiver"))?;
        let nonce: u64 = header("X-Bittensor-Nonce")
            .and_then(|n| n.parse().ok())
            .ok_or(Refusal::Header("X-Bittensor-Nonce"))?;
        let signature =
            header("X-Bittensor-Signature").ok_or(Refusal::Header("X-Bittensor-Signature"))?;
        if to != receiver {
            return Err(Refusal::WrongReceiver);
        }
        let n = u128::from(nonce);
        if n + MAX_AGE_NS < now_ns || n > now_ns + MAX_AHEAD_NS {
            return Err(Refusal::Stale);
        }
        if self.seen.contains(&(sender.to_owned(), nonce)) {
            return Err(Refusal::Replay);
        }
        let signed = payload(method, target, body, nonce, sender, Some(to));
        if !verify_signature(sender, signed.as_bytes(), signature) {
            return Err(Refusal::Signature);
        }
        self.seen.insert((sender.to_owned(), nonce));
        Ok(sender.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    const MINER: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    const NOW: u64 = 1_795_000_000_000_000_000;

    fn signed(body: &[u8]) -> Vec<(&'static str, String)> {
        let alice = Hotkey::from_secret(&Secret::new("//Alice")).unwrap();
        sign(&alice, "post", "/AudioTask?v=1", body, MINER, NOW)
    }

    fn check(
        headers: &[(&'static str, String)],
        target: &str,
        body: &[u8],
        verifier: &mut Verifier,
    ) -> Result<String, Refusal> {
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        verifier.verify(
            lookup,
            "POST",
            target,
            body,
            MINER,
            u128::from(NOW) + 1_000_000,
        )
    }

    #[test]
    fn the_payload_has_the_eight_lines_in_order() {
        let p = payload("get", "/x?y=1", b"", 7, "A", None);
        assert_eq!(
            p,
            "btauth/1\nsr25519\nGET\n/x?y=1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n7\nA\n-"
        );
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let headers = signed(b"{}");
        let mut v = Verifier::default();
        assert_eq!(
            check(&headers, "/AudioTask?v=1", b"{}", &mut v).unwrap(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert_eq!(
            check(&headers, "/AudioTask?v=1", b"{}", &mut v),
            Err(Refusal::Replay)
        );
    }

    #[test]
    fn tampered_body_path_nonce_or_receiver_is_refused() {
        let headers = signed(b"{}");
        let mut v = Verifier::default();
        assert_eq!(
            check(&headers, "/AudioTask?v=1", b"{ }", &mut v),
            Err(Refusal::Signature)
        );
        assert_eq!(
            check(&headers, "/AudioTask?v=2", b"{}", &mut v),
            Err(Refusal::Signature)
        );
        let mut nonce = headers.clone();
        nonce[3].1 = (NOW + 1).to_string();
        assert_eq!(
            check(&nonce, "/AudioTask?v=1", b"{}", &mut v),
            Err(Refusal::Signature)
        );
        let mut receiver = headers.clone();
        receiver[2].1 = "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy".into();
        assert_eq!(
            check(&receiver, "/AudioTask?v=1", b"{}", &mut v),
            Err(Refusal::WrongReceiver)
        );
    }

    #[test]
    fn nonces_outside_the_window_are_stale() {
        let alice = Hotkey::from_secret(&Secret::new("//Alice")).unwrap();
        let mut v = Verifier::default();
        let old = sign(&alice, "POST", "/t", b"", MINER, NOW - 11_000_000_000);
        assert_eq!(check(&old, "/t", b"", &mut v), Err(Refusal::Stale));
        let ahead = sign(&alice, "POST", "/t", b"", MINER, NOW + 3_100_000_000);
        assert_eq!(check(&ahead, "/t", b"", &mut v), Err(Refusal::Stale));
    }
}
