//! The secret store port.

use std::future::Future;

use crate::config::Secret;

/// Where secrets named by environment variables live (Secrets Manager on AWS).
pub trait SecretSource: Send + Sync {
    /// The secret named by the environment variable `name` (an ARN), if that is set.
    fn secret(&self, name: &str) -> impl Future<Output = anyhow::Result<Option<Secret>>> + Send;
}

/// No secret store: the local runtime reads secrets from its variables and wallet only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecretStore;

impl SecretSource for NoSecretStore {
    async fn secret(&self, _name: &str) -> anyhow::Result<Option<Secret>> {
        Ok(None)
    }
}
