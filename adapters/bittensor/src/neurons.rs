//! The subnet's neurons as the chain reports them: SCALE decoding of the runtime API call
//! `NeuronInfoRuntimeApi_get_neurons_lite(netuid)`.
//!
//! The layout is the subtensor runtime's `NeuronInfoLite` (field order matters in SCALE). Current
//! runtimes return `Vec<NeuronInfoLite>`; older ones wrapped it in a `Vec<u8>`. Both are accepted:
//! the plain vector is tried first and must consume every byte, then the wrapper. Ratios are u16
//! fixed-point (`/ 65535`); balances are rao (`/ 1e9` for TAO).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use parity_scale_codec::{Compact, Decode};
use sp_core::crypto::Ss58Codec;

use crate::domain::Miner;

#[derive(Decode)]
struct AxonInfo {
    _block: u64,
    _version: u32,
    ip: u128,
    port: u16,
    _ip_type: u8,
    _protocol: u8,
    _placeholder1: u8,
    _placeholder2: u8,
}

#[derive(Decode)]
struct PrometheusInfo {
    _block: u64,
    _version: u32,
    _ip: u128,
    _port: u16,
    _ip_type: u8,
}

#[derive(Decode)]
struct NeuronInfoLite {
    hotkey: [u8; 32],
    coldkey: [u8; 32],
    uid: Compact<u16>,
    _netuid: Compact<u16>,
    active: bool,
    axon_info: AxonInfo,
    _prometheus_info: PrometheusInfo,
    stake: Vec<([u8; 32], Compact<u64>)>,
    _rank: Compact<u16>,
    _emission: Compact<u64>,
    incentive: Compact<u16>,
    consensus: Compact<u16>,
    _trust: Compact<u16>,
    _validator_trust: Compact<u16>,
    dividends: Compact<u16>,
    last_update: Compact<u64>,
    validator_permit: bool,
    _pruning_score: Compact<u16>,
}

/// One neuron of a subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct Neuron {
    /// Uid in the subnet.
    pub uid: u16,
    /// Hotkey, SS58 (prefix 42).
    pub hotkey: String,
    /// Coldkey, SS58.
    pub coldkey: String,
    /// Axon address: IPv4 when the on-chain value fits 32 bits, else IPv6; unspecified when 0.
    pub ip: IpAddr,
    /// Axon port.
    pub port: u16,
    /// Stake in rao, summed over its stakers.
    pub stake_rao: u64,
    /// Incentive in [0, 1].
    pub incentive: f64,
    /// Consensus in [0, 1].
    pub consensus: f64,
    /// Dividends in [0, 1].
    pub dividends: f64,
    /// Whether it holds a validator permit.
    pub validator_permit: bool,
    /// Whether it is active.
    pub active: bool,
    /// Block of its last weights update.
    pub last_update: u64,
}

/// Why a response did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the neurons response does not decode as Vec<NeuronInfoLite>: {0}")]
pub struct DecodeError(String);

fn ss58(raw: [u8; 32]) -> String {
    sp_core::crypto::AccountId32::from(raw).to_ss58check()
}

fn ratio(v: Compact<u16>) -> f64 {
    f64::from(v.0) / 65535.0
}

impl From<NeuronInfoLite> for Neuron {
    fn from(n: NeuronInfoLite) -> Self {
        let ip = match n.axon_info.ip {
            0 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            v if v < (1u128 << 32) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            v => IpAddr::V6(Ipv6Addr::from(v)),
        };
        Self {
            uid: n.uid.0,
            hotkey: ss58(n.hotkey),
            coldkey: ss58(n.coldkey),
            ip,
            port: n.axon_info.port,
            stake_rao: n
                .stake
                .iter()
                .map(|(_, s)| s.0)
                .fold(0u64, u64::saturating_add),
            incentive: ratio(n.incentive),
            consensus: ratio(n.consensus),
            dividends: ratio(n.dividends),
            validator_permit: n.validator_permit,
            active: n.active,
            last_update: n.last_update.0,
        }
    }
}

fn decode_exact<T: Decode>(mut bytes: &[u8]) -> Result<T, String> {
    let value = T::decode(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} bytes left over", bytes.len()))
    }
}

/// Decodes a `get_neurons_lite` result (raw bytes, or the RPC's `0x…` hex string).
pub fn decode_neurons_lite(bytes: &[u8]) -> Result<Vec<Neuron>, DecodeError> {
    let plain = decode_exact::<Vec<NeuronInfoLite>>(bytes);
    let neurons = match plain {
        Ok(n) => n,
        Err(first) => {
            let inner = decode_exact::<Vec<u8>>(bytes).map_err(|_| DecodeError(first.clone()))?;
            decode_exact::<Vec<NeuronInfoLite>>(&inner).map_err(DecodeError)?
        }
    };
    Ok(neurons.into_iter().map(Neuron::from).collect())
}

/// Decodes the RPC's `0x…` hex result.
pub fn decode_neurons_lite_hex(hex_result: &str) -> Result<Vec<Neuron>, DecodeError> {
    let bytes = hex::decode(hex_result.trim().trim_start_matches("0x"))
        .map_err(|e| DecodeError(format!("not hex: {e}")))?;
    decode_neurons_lite(&bytes)
}

impl From<&Neuron> for Miner {
    fn from(n: &Neuron) -> Self {
        Miner {
            uid: n.uid,
            hotkey: n.hotkey.clone(),
            ip: n.ip,
            port: n.port,
            stake: n.stake_rao as f64 / 1e9,
            incentive: n.incentive,
            chain: Some(crate::domain::ChainInfo {
                coldkey: n.coldkey.clone(),
                consensus: n.consensus,
                dividends: n.dividends,
                validator_permit: n.validator_permit,
                active: n.active,
                last_update: n.last_update,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../testdata/metagraph/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_recorded_netuid_1_response_decodes_to_the_known_facts() {
        let hex_result = fixture("netuid1-plain-vec.hex");
        assert_eq!(hex_result.trim().len(), 2 + 2 * 186_526);
        let neurons = decode_neurons_lite_hex(&hex_result).unwrap();
        assert_eq!(neurons.len(), 1024);
        assert_eq!(
            neurons.iter().filter(|n| !n.ip.is_unspecified()).count(),
            827
        );
        assert!(neurons.iter().all(|n| n.ip.is_ipv4()));
        assert_eq!(neurons.iter().filter(|n| n.validator_permit).count(), 12);
        assert_eq!(
            neurons.iter().map(|n| n.stake_rao).sum::<u64>(),
            414_026_131_830_337
        );
        let uid0 = &neurons[0];
        assert_eq!(uid0.uid, 0);
        assert_eq!(
            uid0.hotkey,
            "5DkMmXtWf16RNdusZGCrJ7ca7ADPgRnZLVWCWbgA7s7sy1AQ"
        );
        assert_eq!(
            (uid0.ip.to_string().as_str(), uid0.port),
            ("192.222.59.109", 6028)
        );
        assert_eq!(
            (uid0.stake_rao, uid0.last_update),
            (2_557_172_316, 2_543_521)
        );
        assert_eq!(
            neurons[1].hotkey,
            "5Ea2RVY5RHhYDv9HekbEWbucwDFFWY8C4mu824QpfJtHUrTo"
        );
        assert_eq!(
            (neurons[1].port, neurons[1].stake_rao),
            (5252, 2_739_937_039)
        );
        let last = &neurons[1023];
        assert_eq!((last.uid, last.port, last.stake_rao), (1023, 0, 0));
        assert!(!Miner::from(last).is_serving());
        assert!(Miner::from(uid0).is_serving());
    }

    #[test]
    fn an_older_runtimes_wrapped_response_decodes_too() {
        let neurons = decode_neurons_lite_hex(&fixture("netuid23-legacy-vec-u8.hex")).unwrap();
        assert_eq!(neurons.len(), 19);
        assert_eq!(
            neurons
                .iter()
                .filter(|n| !n.ip.is_unspecified() && n.port != 0)
                .count(),
            5
        );
        assert_eq!(neurons.iter().filter(|n| n.validator_permit).count(), 19);
        let at = |uid: u16| neurons.iter().find(|n| n.uid == uid).unwrap();
        assert_eq!(
            (at(2).ip.to_string(), at(2).port),
            ("67.212.41.19".to_owned(), 2121)
        );
        assert_eq!(
            at(2).hotkey,
            "5HHS5P9QoeQKbr1Nx3vHEFvYs9pFTRUCvoUVYX1QH5KPkrmb"
        );
        assert_eq!(
            (at(3).ip.to_string(), at(3).port),
            ("213.181.111.2".to_owned(), 44186)
        );
        assert_eq!(
            (at(18).ip.to_string(), at(18).port),
            ("148.76.188.140".to_owned(), 19014)
        );
    }

    #[test]
    fn truncated_or_garbage_responses_are_refused() {
        let hex_result = fixture("netuid23-legacy-vec-u8.hex");
        let cut = &hex_result.trim()[..hex_result.trim().len() - 40];
        assert!(decode_neurons_lite_hex(cut).is_err());
        assert!(decode_neurons_lite_hex("0xdeadbeef").is_err());
        assert!(decode_neurons_lite_hex("not hex").is_err());
    }
}
