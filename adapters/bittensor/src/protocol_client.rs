//! The miner client of a deployment: one wire protocol, chosen by `MINER_PROTOCOL`.

use std::sync::Arc;
use std::time::Duration;

use super::axon_client::{AxonClient, AxonClientConfig};
use super::btauth_client::BtauthClient;
use super::hotkey::Hotkey;
use super::transport::AnswerMemory;
use crate::config::{MinerClientSettings, MinerProtocol};
use crate::domain::{Miner, MinerReply, SynapseRequest};
use crate::ports::MinerClient;

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
    pub fn new(settings: &MinerClientSettings, hotkey: Arc<Hotkey>) -> anyhow::Result<Self> {
        let memory = AnswerMemory::new(settings.answer_memory);
        Ok(match settings.protocol {
            MinerProtocol::Axon => Self::Axon(
                AxonClient::new(
                    hotkey,
                    AxonClientConfig {
                        synapse_name: settings.synapse_name.clone(),
                        dendrite_version: settings.dendrite_version,
                        dendrite_ip: "0.0.0.0".into(),
                        max_response_bytes: settings.max_response_bytes,
                    },
                )?
                .with_memory(memory),
            ),
            MinerProtocol::Btauth => Self::Btauth(
                BtauthClient::new(hotkey, &settings.btauth_path(), settings.max_response_bytes)?
                    .with_memory(memory),
            ),
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
