//! sr25519 hotkeys.

use sp_core::crypto::{Pair as _, Ss58Codec};
use sp_core::sr25519;

use crate::config::Secret;

/// Why a key could not be loaded. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The secret URI, mnemonic or seed did not parse.
    #[error("the hotkey secret is not a valid secret URI, mnemonic or hex seed")]
    InvalidSecret,
}

/// The gateway's signing key. `Debug` shows only the public address.
#[derive(Clone)]
pub struct Hotkey {
    pair: sr25519::Pair,
    ss58: String,
}

impl Hotkey {
    /// Loads a key from a secret URI (`//Alice`), a BIP-39 mnemonic, or a `0x` hex seed.
    pub fn from_secret(secret: &Secret) -> Result<Self, KeyError> {
        let pair = sr25519::Pair::from_string(secret.expose(), None)
            .map_err(|_| KeyError::InvalidSecret)?;
        let ss58 = pair.public().to_ss58check();
        Ok(Self { pair, ss58 })
    }

    /// The SS58 address (prefix 42).
    pub fn ss58(&self) -> &str {
        &self.ss58
    }

    /// Signs `message`, returning `0x` + lowercase hex of the 64-byte signature.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        let sig = self.pair.sign(message);
        format!("0x{}", hex::encode(sig.0))
    }
}

impl std::fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hotkey").field(&self.ss58).finish()
    }
}

/// Checks a `0x`-hex sr25519 signature over `message` by the SS58 address `signer`.
pub fn verify_signature(signer: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(public) = sr25519::Public::from_ss58check(signer) else {
        return false;
    };
    let Ok(raw) = hex::decode(signature_hex.trim_start_matches("0x")) else {
        return false;
    };
    let Ok(bytes) = <[u8; 64]>::try_from(raw.as_slice()) else {
        return false;
    };
    sr25519::Pair::verify(&sr25519::Signature::from_raw(bytes), message, &public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_uris_give_the_well_known_addresses() {
        let alice = Hotkey::from_secret(&Secret::new("//Alice")).unwrap();
        assert_eq!(
            alice.ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
    }

    #[test]
    fn a_signature_verifies_and_a_tampered_message_does_not() {
        let key = Hotkey::from_secret(&Secret::new("//Bob")).unwrap();
        let sig = key.sign_hex(b"hello");
        assert!(verify_signature(key.ss58(), b"hello", &sig));
        assert!(!verify_signature(key.ss58(), b"hellO", &sig));
    }

    #[test]
    fn the_python_dendrite_test_vector_verifies() {
        // Recorded from a real Python dendrite (bittensor 10.2.0), dendrite //Alice, axon //Bob.
        let message = "1795543477865966794.5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY.5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty.834635d0-e831-11f1-a5fe-02fc00000001.a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";
        let signature = "0xded9b08fca3d296f038542567b4c0c78aac8aa219fa72c025e03cff71b90c61607f0975b00be7edd4dd0dbcc2c9c02ec9d8f45cef2a6fb40f29a597274a6d48f";
        assert!(verify_signature(
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            message.as_bytes(),
            signature
        ));
        assert!(!verify_signature(
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
            message.as_bytes(),
            signature
        ));
    }

    #[test]
    fn a_bad_secret_error_does_not_echo_the_secret() {
        let err = Hotkey::from_secret(&Secret::new("not a valid hunter2 phrase")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(!format!("{err:?}").contains("hunter2"));
    }
}
