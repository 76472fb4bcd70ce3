//! The SCALE decoder of the chain's `NeuronInfoRuntimeApi_get_neurons_lite` result, as raw bytes
//! and as the RPC's hex string.

use proptest::prelude::*;
use taogate_shared::bittensor::{decode_neurons_lite, decode_neurons_lite_hex};
use taogate_shared::domain::Miner;

use crate::{Input, MIB, bytes_or_mutated, fuzz, mutated};

/// The recorded netuid 23 response (19 neurons) as an older runtime wraps it (`Vec<u8>`), and
/// the plain `Vec<NeuronInfoLite>` inside.
fn seeds() -> Vec<Vec<u8>> {
    let path = format!(
        "{}/../testdata/metagraph/netuid23-legacy-vec-u8.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let wrapped = hex::decode(text.trim().trim_start_matches("0x")).unwrap();
    // The wrapper's compact length: its mode is in the low two bits of the first byte.
    let prefix = match wrapped[0] & 0b11 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 5 + usize::from(wrapped[0] >> 2),
    };
    let plain = wrapped[prefix..].to_vec();
    assert!(decode_neurons_lite(&plain).is_ok() && decode_neurons_lite(&wrapped).is_ok());
    vec![wrapped, plain]
}

/// `decode_neurons_lite` on any bytes: a decode error or neurons, never a panic; every neuron
/// becomes a miner. 160 cases (under 1 s in the debug profile).
///
/// Memory: at most 8 × the input + 1 MiB (SCALE vectors grow as their items decode, whatever
/// length they declare; a neuron holds about 1.5 × its encoding, two SS58 strings included).
#[test]
fn neurons_decode_or_are_refused() {
    fuzz(
        concat!(module_path!(), "::neurons_decode_or_are_refused"),
        160,
        bytes_or_mutated(seeds(), 2048),
        || (),
        |input| 8 * input.0.len() + MIB,
        |(), Input(bytes)| {
            if let Ok(neurons) = decode_neurons_lite(&bytes) {
                // The smallest neuron takes well over 100 bytes.
                prop_assert!(neurons.len() <= bytes.len() / 100, "{}", neurons.len());
                for n in &neurons {
                    let miner = Miner::from(n);
                    prop_assert!((0.0..=1.0).contains(&miner.incentive));
                }
            }
            Ok(())
        },
    );
}

/// `decode_neurons_lite_hex` on any text: the hex of (mutated) responses, mutated hex, or
/// arbitrary text; never a panic. 96 cases (under 1 s in the debug profile).
///
/// Memory: at most 8 × the text + 1 MiB.
#[test]
fn hex_results_decode_or_are_refused() {
    let hexes: Vec<Vec<u8>> = seeds()
        .iter()
        .map(|s| format!("0x{}", hex::encode(s)).into_bytes())
        .collect();
    let text = prop_oneof![
        bytes_or_mutated(seeds(), 512).prop_map(|b| format!("0x{}", hex::encode(b.0))),
        prop::sample::select(hexes)
            .prop_flat_map(|h| mutated(h, 4))
            .prop_map(|h| String::from_utf8_lossy(&h.0).into_owned()),
        "(0x)?[0-9a-fA-F ]{0,64}",
    ];
    fuzz(
        concat!(module_path!(), "::hex_results_decode_or_are_refused"),
        96,
        text,
        || (),
        |text| 8 * text.len() + MIB,
        |(), text| {
            let _ = decode_neurons_lite_hex(&text);
            Ok(())
        },
    );
}
