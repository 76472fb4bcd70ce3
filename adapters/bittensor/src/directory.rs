//! Where miner snapshots come from locally: a static file, or a live directory that the chain
//! refresher replaces.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use serde::Deserialize;

use crate::domain::{Miner, MinerSnapshot};
use crate::ports::{MinerDirectory, StoreError};

/// The static miner file's shape.
#[derive(Debug, Deserialize)]
struct MinerFile {
    #[serde(default)]
    netuid: Option<u16>,
    #[serde(default)]
    network: Option<String>,
    miners: Vec<Miner>,
}

/// Reads a static miner file, JSON `{"netuid"?, "network"?, "miners": [{uid, hotkey, ip, port,
/// stake}]}`; `netuid` and `network` fill what the file leaves out.
pub fn read_miner_file(path: &Path, netuid: u16, network: &str) -> anyhow::Result<MinerSnapshot> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read miner file {}: {e}", path.display()))?;
    let file: MinerFile = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("miner file {} is invalid: {e}", path.display()))?;
    Ok(MinerSnapshot {
        netuid: file.netuid.unwrap_or(netuid),
        network: file.network.unwrap_or_else(|| network.to_owned()),
        miners: file.miners,
        taken_at: crate::domain::now_millis(),
        block: None,
    })
}

/// A directory whose snapshot is replaced as fresher ones are read: from the chain by
/// [`super::spawn_refresh`], or never (a static file, the simulator).
///
/// A miner reported stale by [`MinerDirectory::mark_stale`] (its axon refused our signature,
/// so the hotkey on record is probably no longer the one serving there) is left out of every
/// snapshot until the next one replaces it, and the refresher is woken to read it now.
#[derive(Debug, Clone)]
pub struct LiveDirectory {
    pub(super) inner: Arc<LiveInner>,
}

#[derive(Debug)]
pub(super) struct LiveInner {
    current: RwLock<Arc<MinerSnapshot>>,
    stale: Mutex<HashSet<String>>,
    /// Woken when a miner is marked stale (the chain refresher waits on it).
    pub(super) wake: Notify,
}

impl LiveDirectory {
    /// A directory starting at `snapshot`.
    pub fn new(snapshot: MinerSnapshot) -> Self {
        Self {
            inner: Arc::new(LiveInner {
                current: RwLock::new(Arc::new(snapshot)),
                stale: Mutex::default(),
                wake: Notify::new(),
            }),
        }
    }

    /// Installs a fresher snapshot; stale marks end with it.
    pub fn replace(&self, snapshot: MinerSnapshot) {
        if let Ok(mut current) = self.inner.current.write() {
            *current = Arc::new(snapshot);
        }
        if let Ok(mut stale) = self.inner.stale.lock() {
            stale.clear();
        }
    }

    /// The snapshot as last installed, stale miners included.
    pub fn current(&self) -> Arc<MinerSnapshot> {
        self.inner
            .current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl MinerDirectory for LiveDirectory {
    async fn snapshot(&self) -> Result<Arc<MinerSnapshot>, StoreError> {
        let current = self.current();
        let stale = self
            .inner
            .stale
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if stale.is_empty() {
            return Ok(current);
        }
        Ok(Arc::new(current.without(|hotkey| stale.contains(hotkey))))
    }

    fn mark_stale(&self, hotkey: &str) {
        if let Ok(mut stale) = self.inner.stale.lock() {
            stale.insert(hotkey.to_owned());
        }
        self.inner.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miner_file_loads_and_unserving_axons_are_not_eligible() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("miners.json");
        std::fs::write(
            &path,
            r#"{"miners":[{"uid":1,"hotkey":"5F","ip":"1.2.3.5","port":8091,"stake":10.5},
                          {"uid":2,"hotkey":"5G","ip":"0.0.0.0","port":0}]}"#,
        )
        .unwrap();
        let s = read_miner_file(&path, 7, "finney").unwrap();
        assert_eq!(s.netuid, 7);
        assert_eq!(s.serving().count(), 1);
        assert_eq!(s.total_stake(), 10.5);
    }
}
