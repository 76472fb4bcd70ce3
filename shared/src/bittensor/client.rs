//! The miner client of a deployment: one wire protocol, chosen by `MINER_PROTOCOL`.

use std::sync::Arc;
use std::time::Duration;

use super::axon::{AxonClient, AxonClientConfig};
use super::btauth_client::BtauthClient;
use super::keys::Hotkey;
use super::miners::Miner;
use super::synapse::{MinerReply, SynapseRequest};
use crate::config::Settings;
use crate::ports::MinerClient;

/// How the gateway talks to miners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinerProtocol {
    /// The dendrite/axon protocol of bittensor ≤ 10 (`POST /{SYNAPSE_NAME}` with `bt_header_*`).
    #[default]
    Axon,
    /// `btauth/1` signed plain HTTP of bittensor ≥ 11 (`POST {MINER_PATH}`).
    Btauth,
}

impl MinerProtocol {
    /// Parses `axon` or `btauth`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "axon" => Ok(Self::Axon),
            "btauth" => Ok(Self::Btauth),
            other => Err(format!("{other:?} is not a protocol (axon, btauth)")),
        }
    }
}

/// A client for the configured protocol.
#[derive(Debug, Clone)]
pub enum ProtocolClient {
    /// Axon protocol.
    Axon(AxonClient),
    /// `btauth/1`.
    Btauth(BtauthClient),
}

impl ProtocolClient {
    /// The client `settings` ask for, signing as `hotkey`.
    pub fn from_settings(settings: &Settings, hotkey: Arc<Hotkey>) -> anyhow::Result<Self> {
        Ok(match settings.miner_protocol {
            MinerProtocol::Axon => Self::Axon(AxonClient::new(
                hotkey,
                AxonClientConfig {
                    synapse_name: settings.synapse_name.clone(),
                    dendrite_version: settings.dendrite_version,
                    dendrite_ip: "0.0.0.0".into(),
                    max_response_bytes: settings.max_response_bytes,
                },
            )?),
            MinerProtocol::Btauth => Self::Btauth(BtauthClient::new(
                hotkey,
                &settings.miner_path(),
                settings.max_response_bytes,
            )?),
        })
    }
}

impl MinerClient for ProtocolClient {
    async fn query(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> MinerReply {
        match self {
            Self::Axon(c) => c.query(miner, request, deadline).await,
            Self::Btauth(c) => c.query(miner, request, deadline).await,
        }
    }
}
