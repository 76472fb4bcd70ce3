//! Miners and the directory snapshot they are picked from.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use serde::{Deserialize, Serialize};

use crate::domain::Millis;
use crate::ports::{MinerDirectory, StoreError};

/// One neuron of the subnet, as far as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miner {
    /// Neuron uid.
    pub uid: u16,
    /// SS58 hotkey.
    pub hotkey: String,
    /// Axon IP; `0.0.0.0` when the neuron serves no axon.
    pub ip: IpAddr,
    /// Axon port; 0 when it serves none.
    pub port: u16,
    /// Stake in TAO.
    #[serde(default)]
    pub stake: f64,
    /// Incentive in [0, 1], as the chain reports it.
    #[serde(default)]
    pub incentive: f64,
    /// What else the chain says about the neuron (absent for static and simulated miners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainInfo>,
}

/// The rest of a neuron's on-chain record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// Coldkey, SS58.
    pub coldkey: String,
    /// Consensus in [0, 1].
    pub consensus: f64,
    /// Dividends in [0, 1].
    pub dividends: f64,
    /// Whether it holds a validator permit.
    pub validator_permit: bool,
    /// Whether it is active.
    pub active: bool,
    /// Block of its last update.
    pub last_update: u64,
}

impl Miner {
    /// Whether the neuron has an axon one can call.
    pub fn is_serving(&self) -> bool {
        !self.ip.is_unspecified() && self.port != 0
    }
}

/// The miner directory at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerSnapshot {
    /// Subnet.
    pub netuid: u16,
    /// Network name or URL.
    pub network: String,
    /// Every neuron.
    pub miners: Vec<Miner>,
    /// When the snapshot was taken.
    pub taken_at: Millis,
    /// The chain's best block when it was read, for snapshots read from the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
}

impl MinerSnapshot {
    /// The neurons with a callable axon.
    pub fn serving(&self) -> impl Iterator<Item = &Miner> {
        self.miners.iter().filter(|m| m.is_serving())
    }

    /// Total stake in TAO.
    pub fn total_stake(&self) -> f64 {
        self.miners.iter().map(|m| m.stake).sum()
    }
}

/// The static miner file's shape.
#[derive(Debug, Deserialize)]
struct MinerFile {
    #[serde(default)]
    netuid: Option<u16>,
    #[serde(default)]
    network: Option<String>,
    miners: Vec<Miner>,
}

impl MinerSnapshot {
    /// Reads a JSON file `{"netuid"?, "network"?, "miners": [{uid, hotkey, ip, port, stake}]}`.
    pub fn from_file(path: &Path, netuid: u16, network: &str) -> anyhow::Result<Self> {
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

    /// A copy without the miners whose hotkey `left_out` names.
    pub fn without(&self, left_out: impl Fn(&str) -> bool) -> Self {
        let mut copy = self.clone();
        copy.miners.retain(|m| !left_out(&m.hotkey));
        copy
    }
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
            r#"{"miners":[{"uid":1,"hotkey":"5F","ip":"203.0.113.5","port":8091,"stake":10.5},
                          {"uid":2,"hotkey":"5G","ip":"0.0.0.0","port":0}]}"#,
        )
        .unwrap();
        let s = MinerSnapshot::from_file(&path, 7, "finney").unwrap();
        assert_eq!(s.netuid, 7);
        assert_eq!(s.serving().count(), 1);
        assert_eq!(s.total_stake(), 10.5);
    }
}
