//! A stand-in Subtensor node: a JSON-RPC WebSocket server on loopback answering the methods the
//! metagraph reader calls (`chain_getHeader`, `state_call` of
//! `NeuronInfoRuntimeApi_get_neurons_lite`) from neurons the test sets. It can fail on request
//! (a node error) and drop every connection (a restart), to test recovery.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jsonrpsee::RpcModule;
use jsonrpsee::server::{Server, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use parity_scale_codec::{Compact, Encode};
use sp_core::crypto::{Pair as _, Ss58Codec};

/// One neuron to report.
#[derive(Debug, Clone)]
pub struct FakeNeuron {
    /// Uid.
    pub uid: u16,
    /// Hotkey SS58.
    pub hotkey: String,
    /// Axon address (`0.0.0.0` for none).
    pub ip: IpAddr,
    /// Axon port.
    pub port: u16,
    /// Stake in rao.
    pub stake_rao: u64,
    /// Incentive as the chain's u16 ratio.
    pub incentive: u16,
    /// Validator permit.
    pub validator_permit: bool,
}

impl FakeNeuron {
    /// A serving neuron whose hotkey is the dev key `uri` (e.g. `//Bob`).
    pub fn dev(uid: u16, uri: &str, addr: SocketAddr, stake_tao: u64) -> Self {
        let pair = sp_core::sr25519::Pair::from_string(uri, None).expect("a dev key URI");
        Self {
            uid,
            hotkey: pair.public().to_ss58check(),
            ip: addr.ip(),
            port: addr.port(),
            stake_rao: stake_tao * 1_000_000_000,
            incentive: 0,
            validator_permit: false,
        }
    }
}

fn account(ss58: &str) -> [u8; 32] {
    sp_core::crypto::AccountId32::from_ss58check(ss58)
        .map(<[u8; 32]>::from)
        .expect("an SS58 address")
}

/// SCALE bytes of `Vec<NeuronInfoLite>` in the field order of the subtensor runtime.
pub fn encode_neurons(netuid: u16, neurons: &[FakeNeuron]) -> Vec<u8> {
    let mut out = Compact(neurons.len() as u32).encode();
    for n in neurons {
        let hotkey = account(&n.hotkey);
        let (ip, ip_type): (u128, u8) = match n.ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 4),
            IpAddr::V6(v6) => (u128::from(v6), 6),
        };
        hotkey.encode_to(&mut out); // hotkey
        hotkey.encode_to(&mut out); // coldkey
        Compact(n.uid).encode_to(&mut out);
        Compact(netuid).encode_to(&mut out);
        true.encode_to(&mut out); // active
        // AxonInfo { block, version, ip, port, ip_type, protocol, placeholder1, placeholder2 }
        (1u64, 10_005_000u32, ip, n.port, ip_type, 0u8, 0u8, 0u8).encode_to(&mut out);
        // PrometheusInfo { block, version, ip, port, ip_type }
        (0u64, 0u32, 0u128, 0u16, 0u8).encode_to(&mut out);
        vec![(hotkey, Compact(n.stake_rao))].encode_to(&mut out);
        Compact(0u16).encode_to(&mut out); // rank
        Compact(0u64).encode_to(&mut out); // emission
        Compact(n.incentive).encode_to(&mut out);
        Compact(0u16).encode_to(&mut out); // consensus
        Compact(0u16).encode_to(&mut out); // trust
        Compact(0u16).encode_to(&mut out); // validator_trust
        Compact(0u16).encode_to(&mut out); // dividends
        Compact(100u64).encode_to(&mut out); // last_update
        n.validator_permit.encode_to(&mut out);
        Compact(0u16).encode_to(&mut out); // pruning_score
    }
    out
}

#[derive(Default)]
struct NodeState {
    /// `get_neurons_lite` result bytes by netuid.
    neurons: Mutex<HashMap<u16, Vec<u8>>>,
    failing: AtomicBool,
    state_calls: AtomicU64,
    block: AtomicU64,
}

/// A running fake node. Dropping it stops the server.
pub struct FakeNode {
    addr: SocketAddr,
    state: Arc<NodeState>,
    handle: Mutex<Option<ServerHandle>>,
}

impl FakeNode {
    /// Starts a node on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(NodeState::default());
        state.block.store(4_000_000, Ordering::SeqCst);
        let (addr, handle) = serve(state.clone(), "127.0.0.1:0".parse()?).await?;
        Ok(Self {
            addr,
            state,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Sets the neurons of `netuid` (encoded as the runtime does).
    pub fn set_neurons(&self, netuid: u16, neurons: &[FakeNeuron]) {
        self.set_raw(netuid, encode_neurons(netuid, neurons));
    }

    /// Sets the raw `get_neurons_lite` result of `netuid` (e.g. a recorded response).
    pub fn set_raw(&self, netuid: u16, bytes: Vec<u8>) {
        if let Ok(mut n) = self.state.neurons.lock() {
            n.insert(netuid, bytes);
        }
    }

    /// While true, `state_call` answers with the error a node gives when the runtime call fails.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// How many `state_call`s were answered or refused.
    pub fn state_calls(&self) -> u64 {
        self.state.state_calls.load(Ordering::SeqCst)
    }

    /// Advances the best block.
    pub fn advance(&self, blocks: u64) {
        self.state.block.fetch_add(blocks, Ordering::SeqCst);
    }

    /// Stops the server, closing every connection, and starts it again on the same port.
    pub async fn restart(&self) -> anyhow::Result<()> {
        let old = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = old {
            let _ = handle.stop();
            handle.stopped().await;
        }
        let (_, handle) = serve(self.state.clone(), self.addr).await?;
        if let Ok(mut h) = self.handle.lock() {
            *h = Some(handle);
        }
        Ok(())
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.lock().ok().and_then(|mut h| h.take()) {
            let _ = handle.stop();
        }
    }
}

async fn serve(
    state: Arc<NodeState>,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let server = Server::builder().build(addr).await?;
    let addr = server.local_addr()?;
    let mut module = RpcModule::new(state);
    module.register_method("chain_getHeader", |_params, state, _| {
        let number = state.block.load(Ordering::SeqCst);
        serde_json::json!({
            "parentHash": format!("0x{}", "11".repeat(32)),
            "number": format!("0x{number:x}"),
            "stateRoot": format!("0x{}", "22".repeat(32)),
            "extrinsicsRoot": format!("0x{}", "33".repeat(32)),
            "digest": {"logs": []},
        })
    })?;
    module.register_method("state_call", |params, state, _| {
        state.state_calls.fetch_add(1, Ordering::SeqCst);
        let mut seq = params.sequence();
        let method: String = seq.next()?;
        let data: String = seq.next()?;
        if state.failing.load(Ordering::SeqCst) {
            return Err(ErrorObjectOwned::owned(
                1002,
                "Verification Error: Runtime error: Execution failed",
                None::<()>,
            ));
        }
        if method != "NeuronInfoRuntimeApi_get_neurons_lite" {
            return Err(ErrorObjectOwned::owned(
                1002,
                format!("Runtime error: Exported method {method} is not found"),
                None::<()>,
            ));
        }
        let raw = hex::decode(data.trim_start_matches("0x")).unwrap_or_default();
        let netuid = match raw.as_slice() {
            [lo, hi] => u16::from_le_bytes([*lo, *hi]),
            _ => {
                return Err(ErrorObjectOwned::owned(
                    1002,
                    "Runtime error: failed to decode netuid",
                    None::<()>,
                ));
            }
        };
        let bytes = state
            .neurons
            .lock()
            .ok()
            .and_then(|n| n.get(&netuid).cloned())
            .unwrap_or_else(|| vec![0]); // an unknown subnet has no neurons
        Ok(format!("0x{}", hex::encode(bytes)))
    })?;
    let handle = server.start(module);
    Ok((addr, handle))
}
