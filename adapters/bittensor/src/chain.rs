//! Reading the subnet's metagraph from a Subtensor node, over subxt's RPC layer.
//!
//! Two JSON-RPC methods are used, neither needs chain metadata: `chain_getHeader` (the best
//! block's number, recorded with the snapshot) and `state_call` of the runtime API
//! `NeuronInfoRuntimeApi_get_neurons_lite` with the netuid as SCALE `u16`, whose result is decoded
//! by [`super::metagraph`]. The WebSocket connection reconnects by itself with back-off; a call
//! cut by a reconnect is retried once on the new connection.

use std::time::Duration;

use subxt_rpcs::client::reconnecting_rpc_client::{self, ExponentialBackoff};
use subxt_rpcs::client::{RpcClient, rpc_params};

use super::directory::LiveDirectory;
use super::neurons::{Neuron, decode_neurons_lite_hex};
use crate::domain::{Miner, MinerSnapshot};

/// Why the metagraph could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// `BT_NETWORK` names no known network and is not a WebSocket URL.
    #[error("BT_NETWORK={0:?} is not a network: use finney, test, local or a ws:// or wss:// URL")]
    UnknownNetwork(String),
    /// The node could not be reached.
    #[error("cannot connect to the Subtensor node at {url}: {reason}")]
    Connect {
        /// The endpoint.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The node answered with an error, or not in time.
    #[error("the Subtensor node at {url} failed {method}: {reason}")]
    Call {
        /// The endpoint.
        url: String,
        /// The RPC method.
        method: &'static str,
        /// What failed.
        reason: String,
    },
    /// The answer did not decode.
    #[error(transparent)]
    Decode(#[from] super::DecodeError),
}

/// The WebSocket endpoint of a network name: `finney`, `test`, `local`, or a `ws://`/`wss://` URL.
pub fn network_url(network: &str) -> Result<String, ChainError> {
    let network = network.trim();
    Ok(match network {
        "finney" => "wss://entrypoint-finney.opentensor.ai:443".into(),
        "test" => "wss://test.finney.opentensor.ai:443".into(),
        "local" => "ws://127.0.0.1:9944".into(),
        url if (url.starts_with("ws://") || url.starts_with("wss://"))
            && url::Url::parse(url).is_ok_and(|u| u.host().is_some()) =>
        {
            url.into()
        }
        other => return Err(ChainError::UnknownNetwork(other.into())),
    })
}

/// A connection to a Subtensor node.
#[derive(Clone)]
pub struct ChainReader {
    client: RpcClient,
    url: String,
    network: String,
    call_timeout: Duration,
}

impl std::fmt::Debug for ChainReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainReader")
            .field("url", &self.url)
            .finish()
    }
}

/// How long one call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

impl ChainReader {
    /// Connects to the node of `network` (see [`network_url`]).
    pub async fn connect(network: &str) -> Result<Self, ChainError> {
        let url = network_url(network)?;
        let connect_error = |reason: String| ChainError::Connect {
            url: url.clone(),
            reason,
        };
        let builder = reconnecting_rpc_client::RpcClient::builder()
            .retry_policy(
                ExponentialBackoff::from_millis(50)
                    .max_delay(Duration::from_secs(10))
                    .take(8),
            )
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(CALL_TIMEOUT)
            .max_response_size(256 * 1024 * 1024);
        let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, builder.build(url.clone()))
            .await
            .map_err(|_| connect_error("timed out".into()))?
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(Self {
            client: RpcClient::new(client),
            url,
            network: network.trim().to_owned(),
            call_timeout: CALL_TIMEOUT,
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call<R: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        params: impl Fn() -> subxt_rpcs::client::RpcParams,
    ) -> Result<R, ChainError> {
        let error = |reason: String| ChainError::Call {
            url: self.url.clone(),
            method,
            reason,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let result = tokio::time::timeout(
                self.call_timeout,
                self.client.request::<R>(method, params()),
            )
            .await
            .map_err(|_| error("no answer in time".into()))?;
            match result {
                Ok(value) => return Ok(value),
                // The connection dropped under this call; the client is reconnecting.
                Err(subxt_rpcs::Error::DisconnectedWillReconnect(_)) if tries < 3 => {
                    tracing::info!(url = %self.url, method, "node connection lost; retrying on a new one");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(error(e.to_string())),
            }
        }
    }

    /// The best block's number.
    pub async fn best_block(&self) -> Result<u64, ChainError> {
        #[derive(serde::Deserialize)]
        struct Header {
            number: String,
        }
        let header: Header = self.call("chain_getHeader", || rpc_params![]).await?;
        u64::from_str_radix(header.number.trim_start_matches("0x"), 16).map_err(|e| {
            ChainError::Call {
                url: self.url.clone(),
                method: "chain_getHeader",
                reason: format!("block number {:?} is not hex: {e}", header.number),
            }
        })
    }

    /// Every neuron of subnet `netuid`.
    pub async fn neurons(&self, netuid: u16) -> Result<Vec<Neuron>, ChainError> {
        let params = format!("0x{}", hex::encode(netuid.to_le_bytes()));
        let result: String = self
            .call("state_call", || {
                rpc_params!["NeuronInfoRuntimeApi_get_neurons_lite", params.clone()]
            })
            .await?;
        Ok(decode_neurons_lite_hex(&result)?)
    }

    /// A snapshot of subnet `netuid`, stamped with the best block.
    pub async fn snapshot(&self, netuid: u16) -> Result<MinerSnapshot, ChainError> {
        let block = self.best_block().await?;
        let neurons = self.neurons(netuid).await?;
        Ok(MinerSnapshot {
            netuid,
            network: self.network.clone(),
            miners: neurons.iter().map(Miner::from).collect(),
            taken_at: crate::domain::now_millis(),
            block: Some(block),
        })
    }
}

/// Keeps `directory` fresh from the chain: reads subnet `netuid` every `every`, and at once when a
/// miner is marked stale (at most once per `MIN_REREAD`). A failed read keeps the last snapshot
/// and is logged. Stops when `stop` turns true.
pub fn spawn_refresh(
    reader: ChainReader,
    netuid: u16,
    directory: LiveDirectory,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = directory.inner.wake.notified() => {
                    tracing::info!("a miner was marked stale; re-reading the metagraph");
                }
                _ = stop.wait_for(|s| *s) => return,
            }
            match reader.snapshot(netuid).await {
                Ok(snapshot) => {
                    tracing::info!(
                        netuid,
                        block = snapshot.block,
                        neurons = snapshot.miners.len(),
                        serving = snapshot.serving().count(),
                        "metagraph refreshed"
                    );
                    directory.replace(snapshot);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metagraph refresh failed; keeping the last snapshot")
                }
            }
            tokio::time::sleep(MIN_REREAD).await;
        }
    })
}

/// The shortest time between two reads of the chain.
const MIN_REREAD: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_and_urls_resolve() {
        assert_eq!(
            network_url("finney").unwrap(),
            "wss://entrypoint-finney.opentensor.ai:443"
        );
        assert_eq!(
            network_url("test").unwrap(),
            "wss://test.finney.opentensor.ai:443"
        );
        assert_eq!(network_url("local").unwrap(), "ws://127.0.0.1:9944");
        assert_eq!(
            network_url("ws://127.0.0.1:31000").unwrap(),
            "ws://127.0.0.1:31000"
        );
        for bad in ["mainnet", "http://127.0.0.1:9944", "ws://", ""] {
            let e = network_url(bad).unwrap_err().to_string();
            assert!(e.contains("finney, test, local"), "{bad}: {e}");
        }
    }
}
