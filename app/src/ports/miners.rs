//! Miners: where they are, and how one is asked.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::StoreError;
use crate::domain::{Miner, MinerReply, MinerSnapshot, SynapseRequest};

/// Where the miners are: the metagraph snapshot.
pub trait MinerDirectory: Send + Sync + 'static {
    /// The current snapshot.
    fn snapshot(&self) -> impl Future<Output = Result<Arc<MinerSnapshot>, StoreError>> + Send;

    /// Reports that the miner with `hotkey` refused our signature (401): the directory's entry
    /// is probably stale. Directories that can re-read their source leave the miner out and
    /// re-read; the default does nothing.
    fn mark_stale(&self, hotkey: &str) {
        let _ = hotkey;
    }
}

/// Sends one synapse request to one miner.
pub trait MinerClient: Send + Sync + 'static {
    /// Queries `miner`, giving up at `deadline` after the call.
    fn query(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> impl Future<Output = MinerReply> + Send;
}
