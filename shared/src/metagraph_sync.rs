//! The metagraph sync: reads the subnet's metagraph from the chain and stores it as the snapshot
//! object the workers' [`taogate_aws::S3Directory`] reads. Its Lambda only wires this; `taogate serve
//! --backend aws` publishes its first snapshot through the same [`taogate_aws::publish_snapshot`].

use tokio::sync::Mutex;

use taogate_app::ports::BlobPut;
use taogate_bittensor::{ChainReader, network_url};
use taogate_core::config::ChainSettings;

/// What one sync stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// The subnet.
    pub netuid: u16,
    /// The chain's best block when it was read.
    pub block: Option<u64>,
    /// Neurons in the snapshot.
    pub neurons: usize,
    /// Neurons serving an axon.
    pub serving: usize,
}

/// Syncs one subnet's metagraph into one snapshot object. The chain connection is opened at the
/// first run and kept (it reconnects by itself), so a warm Lambda container reuses it.
#[derive(Debug)]
pub struct MetagraphSync {
    network: String,
    netuid: u16,
    key: String,
    reader: Mutex<Option<ChainReader>>,
}

impl MetagraphSync {
    /// A sync of `chain.netuid` on `chain.network` into the object `key`. Fails at once on a
    /// network name that is not one.
    pub fn new(chain: &ChainSettings, key: &str) -> anyhow::Result<Self> {
        network_url(&chain.network)?;
        Ok(Self {
            network: chain.network.clone(),
            netuid: chain.netuid,
            key: key.to_owned(),
            reader: Mutex::new(None),
        })
    }

    /// Reads the metagraph and stores it. A failed read leaves the previous snapshot in place.
    pub async fn run(&self, blobs: &impl BlobPut) -> anyhow::Result<SyncReport> {
        let chain = {
            let mut guard = self.reader.lock().await;
            match guard.as_ref() {
                Some(chain) => chain.clone(),
                None => {
                    let chain = ChainReader::connect(&self.network).await?;
                    *guard = Some(chain.clone());
                    chain
                }
            }
        };
        let snapshot = chain.snapshot(self.netuid).await?;
        taogate_aws::publish_snapshot(blobs, &self.key, &snapshot)
            .await
            .map_err(anyhow::Error::from)?;
        let report = SyncReport {
            netuid: snapshot.netuid,
            block: snapshot.block,
            neurons: snapshot.miners.len(),
            serving: snapshot.serving().count(),
        };
        tracing::info!(
            netuid = report.netuid,
            block = report.block,
            neurons = report.neurons,
            "metagraph snapshot stored"
        );
        Ok(report)
    }
}
