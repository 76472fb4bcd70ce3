//! Bittensor wallets on disk: `{BT_WALLET_PATH or ~/.bittensor/wallets}/<name>/hotkeys/<hotkey>`,
//! the Python SDK's JSON keyfile.
//!
//! A keyfile holds `secretSeed` (hex), `secretPhrase` (mnemonic) and/or `privateKey` (64-byte
//! hex), plus public fields. Hotkeys are normally stored unencrypted; an encrypted keyfile (NaCl
//! or the SDK's older formats) cannot be used unattended and is refused with instructions.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::hotkey::Hotkey;
use crate::config::Secret;

/// Why a wallet hotkey could not be loaded. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// No file at the path.
    #[error("no hotkey file at {0}")]
    Missing(PathBuf),
    /// The file could not be read.
    #[error("cannot read the hotkey file {0}")]
    Unreadable(PathBuf),
    /// The file is encrypted.
    #[error(
        "the hotkey file {0} is encrypted; taogate signs unattended and needs an unencrypted hotkey: regenerate it unencrypted (btcli wallet regen_hotkey) or pass the key as BT_HOTKEY_URI / a Secrets Manager secret"
    )]
    Encrypted(PathBuf),
    /// The file is not a keyfile, or its key does not parse.
    #[error("the hotkey file {0} is not a valid Bittensor keyfile")]
    Invalid(PathBuf),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Keyfile {
    secret_seed: Option<String>,
    secret_phrase: Option<String>,
    private_key: Option<String>,
    ss58_address: Option<String>,
}

/// Where a wallet's hotkey file is.
pub fn hotkey_path(wallet_path: Option<&Path>, wallet: &str, hotkey: &str) -> PathBuf {
    let base = match wallet_path {
        Some(p) => p.to_owned(),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".bittensor")
            .join("wallets"),
    };
    base.join(wallet).join("hotkeys").join(hotkey)
}

/// Loads the hotkey stored at `path`.
pub fn load_hotkey(path: &Path) -> Result<Hotkey, WalletError> {
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WalletError::Missing(path.to_owned()));
        }
        Err(_) => return Err(WalletError::Unreadable(path.to_owned())),
    };
    let encrypted = [b"$NACL".as_slice(), b"$BT", b"$ANSIBLE_VAULT", b"gAAAAA"]
        .iter()
        .any(|prefix| raw.starts_with(prefix));
    if encrypted {
        return Err(WalletError::Encrypted(path.to_owned()));
    }
    let invalid = || WalletError::Invalid(path.to_owned());
    let keyfile: Keyfile = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let secret = keyfile
        .secret_seed
        .or(keyfile.secret_phrase)
        .or_else(|| {
            keyfile
                .private_key
                .filter(|k| k.trim_start_matches("0x").len() == 128)
        })
        .ok_or_else(invalid)?;
    let hotkey = Hotkey::from_secret(&Secret::new(secret)).map_err(|_| invalid())?;
    match keyfile.ss58_address {
        Some(address) if address != hotkey.ss58() => Err(invalid()),
        _ => Ok(hotkey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `//Alice`'s secret seed, as `subkey inspect //Alice` prints it.
    const ALICE_SEED: &str = "0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a";
    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    fn write(dir: &Path, body: &[u8]) -> PathBuf {
        let path = hotkey_path(Some(dir), "gateway", "default");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn an_sdk_keyfile_with_a_seed_loads_the_right_key() {
        let dir = tempfile::tempdir().unwrap();
        let body = serde_json::json!({"secretSeed": ALICE_SEED, "ss58Address": ALICE, "accountId": "0x00"});
        let key = load_hotkey(&write(dir.path(), body.to_string().as_bytes())).unwrap();
        assert_eq!(key.ss58(), ALICE);
    }

    #[test]
    fn a_keyfile_whose_address_does_not_match_its_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body = serde_json::json!({"secretSeed": ALICE_SEED, "ss58Address": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"});
        assert!(matches!(
            load_hotkey(&write(dir.path(), body.to_string().as_bytes())),
            Err(WalletError::Invalid(_))
        ));
    }

    #[test]
    fn an_encrypted_keyfile_gets_instructions_and_no_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"$NACLsecretbytes-do-not-print");
        let err = load_hotkey(&path).unwrap_err();
        assert!(matches!(err, WalletError::Encrypted(_)));
        let text = err.to_string();
        assert!(
            text.contains("unencrypted") && text.contains("BT_HOTKEY_URI"),
            "{text}"
        );
        assert!(!text.contains("do-not-print"));
    }

    #[test]
    fn a_missing_wallet_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_hotkey(&hotkey_path(Some(dir.path()), "nope", "default")).unwrap_err();
        assert!(err.to_string().contains("nope/hotkeys/default"), "{err}");
    }
}
