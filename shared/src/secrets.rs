//! Secrets resolved in one place, before the settings are shared: the hotkey the gateway signs
//! with, and the reference endpoints' bearer token. The Lambdas and `taogate serve` both call
//! [`resolve`]; they differ only in their [`SecretSource`] and their [`Fallback`].

use std::sync::Arc;

use tracing::{info, warn};

use taogate_app::ports::SecretSource;
use taogate_aws::vars;
use taogate_bittensor::{Hotkey, WalletError, hotkey_path, load_hotkey};
use taogate_core::config::{Secret, Settings};

/// The development key, which real miners refuse.
pub const DEV_HOTKEY_URI: &str = "//Alice";

/// What to do when no hotkey is configured anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Sign with [`DEV_HOTKEY_URI`], with a warning (the local runtime).
    DevKey,
    /// Refuse to start (a Lambda).
    Refuse,
}

/// Resolves the secrets of `settings` and returns the hotkey to sign with.
///
/// The hotkey comes from, in order: the secret `BT_HOTKEY_SECRET_ARN` names; `BT_HOTKEY_URI`;
/// the wallet's hotkey file (`BT_WALLET_PATH`, `BT_WALLET_NAME`, `BT_WALLET_HOTKEY`); then
/// `fallback`. The secret `REFERENCE_API_KEY_SECRET_ARN` names, when set, replaces
/// `REFERENCE_API_KEY`. Errors never contain a secret.
pub async fn resolve(
    settings: &mut Settings,
    source: &impl SecretSource,
    fallback: Fallback,
) -> anyhow::Result<Arc<Hotkey>> {
    if let Some(key) = source
        .secret(vars::REFERENCE_API_KEY_SECRET_ARN.name)
        .await?
    {
        settings.reference.api_key = Some(key);
    }
    let chain = &settings.chain;
    let configured = match source.secret(vars::BT_HOTKEY_SECRET_ARN.name).await? {
        Some(secret) => Some(secret),
        None => chain.hotkey_uri.clone(),
    };
    if let Some(secret) = configured {
        return Ok(Arc::new(Hotkey::from_secret(&secret)?));
    }
    let path = hotkey_path(
        chain.wallet_path.as_deref(),
        &chain.wallet_name,
        &chain.wallet_hotkey,
    );
    match load_hotkey(&path) {
        Ok(hotkey) => {
            info!(hotkey = hotkey.ss58(), wallet = %path.display(), "signing with the wallet's hotkey");
            Ok(Arc::new(hotkey))
        }
        Err(WalletError::Missing(_)) if fallback == Fallback::DevKey => {
            let hotkey = Hotkey::from_secret(&Secret::new(DEV_HOTKEY_URI))?;
            warn!(
                hotkey = hotkey.ss58(),
                "no BT_HOTKEY_URI and no wallet hotkey: signing with the development key //Alice, which real miners refuse"
            );
            Ok(Arc::new(hotkey))
        }
        Err(WalletError::Missing(_)) => Err(anyhow::anyhow!(
            "no hotkey: set BT_HOTKEY_SECRET_ARN (or BT_HOTKEY_URI outside production)"
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taogate_app::ports::NoSecretStore;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        })
        .unwrap()
    }

    /// A secret store holding one secret under each name given.
    struct Stored(Vec<(&'static str, &'static str)>);

    impl SecretSource for Stored {
        async fn secret(&self, name: &str) -> anyhow::Result<Option<Secret>> {
            Ok(self
                .0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| Secret::new(*v)))
        }
    }

    #[tokio::test]
    async fn the_secret_store_wins_over_the_variables_and_the_fallback_applies_last() {
        let empty_wallets = tempfile::tempdir().unwrap();
        let wallets = empty_wallets.path().to_str().unwrap();
        let mut s = settings(&[("BT_HOTKEY_URI", "//Bob"), ("BT_WALLET_PATH", wallets)]);
        let stored = Stored(vec![
            ("BT_HOTKEY_SECRET_ARN", "//Charlie"),
            ("REFERENCE_API_KEY_SECRET_ARN", "sk-from-the-store"),
        ]);
        let charlie = Hotkey::from_secret(&Secret::new("//Charlie")).unwrap();
        let bob = Hotkey::from_secret(&Secret::new("//Bob")).unwrap();
        let alice = Hotkey::from_secret(&Secret::new(DEV_HOTKEY_URI)).unwrap();
        let key = resolve(&mut s, &stored, Fallback::Refuse).await.unwrap();
        assert_eq!(key.ss58(), charlie.ss58());
        assert_eq!(
            s.reference.api_key.as_ref().map(Secret::expose),
            Some("sk-from-the-store")
        );
        let key = resolve(&mut s, &NoSecretStore, Fallback::Refuse)
            .await
            .unwrap();
        assert_eq!(key.ss58(), bob.ss58());

        let mut bare = settings(&[("BT_WALLET_PATH", wallets)]);
        let refused = resolve(&mut bare, &NoSecretStore, Fallback::Refuse)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("no hotkey"), "{refused}");
        let dev = resolve(&mut bare, &NoSecretStore, Fallback::DevKey)
            .await
            .unwrap();
        assert_eq!(dev.ss58(), alice.ss58());
    }
}
