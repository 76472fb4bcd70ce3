//! Talking to a Bittensor subnet: hotkeys, the `AudioTask` synapse, the miner directory and the
//! dendrite side of the axon protocol.
//!
//! Wire details follow the Python SDK (`bittensor` 10.x) so that unmodified Python axons accept
//! our requests; the protocol notes in `axon.rs` say where each rule comes from.

use taogate_app::{memory, ports};
use taogate_core::{config, domain};

mod axon_client;
pub mod btauth;
mod btauth_client;
mod chain;
mod directory;
mod hotkey;
mod neurons;
mod protocol_client;
mod synapse;
mod transport;
mod wallet;

pub use axon_client::{AxonClient, AxonClientConfig, EMPTY_BODY_HASH, Stamp, signing_message};
pub use btauth_client::BtauthClient;
pub use chain::{ChainError, ChainReader, network_url, spawn_refresh};
pub use directory::{LiveDirectory, read_miner_file};
pub use hotkey::{Hotkey, KeyError, verify_signature};
pub use neurons::{DecodeError, Neuron, decode_neurons_lite, decode_neurons_lite_hex};
pub use protocol_client::ProtocolClient;
pub use synapse::{SynapseBody, TerminalInfo};
pub use transport::AnswerMemory;
pub use wallet::{WalletError, hotkey_path, load_hotkey};
