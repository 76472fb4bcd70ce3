//! A simulated Bittensor audio subnet: a stand-in for real miners, the way LocalStack stands in
//! for AWS.
//!
//! Each simulated miner is a real HTTP server on loopback that speaks the axon protocol for the
//! `AudioTask` synapse as a Python `bittensor` axon does: it routes by synapse name (404 for
//! others), requires the `input_obj` header (500 without), checks the dendrite's nonce window and
//! replay (401), verifies the sr25519 signature against its own hotkey (401 on mismatch), checks
//! the body hash (500), and answers 200 with the full synapse body.
//!
//! Answers are deterministic and depend on the miner's [`Behaviour`]: good, noisy, slow,
//! erroring (HTTP 200 with `error_message`), garbage, degenerate (well-formed but worthless),
//! blacklisting (403), crashing (500) or unreachable (nothing listens on its port); or hostile:
//! oversized, a decode bomb, an endless drip, an echo of the input, a replayed answer, silence
//! of the right length, the wrong language. TTS answers are real WAV files; summaries are real extractive summaries;
//! transcripts are read from the comment tag the submitted audio carries (see [`answers`]).

pub mod answers;
mod axon;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sp_core::crypto::{Pair as _, Ss58Codec};
use taogate_shared::domain::{Miner, MinerSnapshot};
use tokio::sync::watch;

pub use axon::AxonState;

/// How a simulated miner answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Correct answers, fast.
    Good,
    /// Plausible but perturbed answers, fast.
    Noisy,
    /// Correct answers after a delay.
    Slow,
    /// HTTP 200 with `error_message` set and no output.
    Erroring,
    /// HTTP 200 with an output that does not decode to a valid answer.
    Garbage,
    /// HTTP 200 with a well-formed but worthless answer: a "thank you" loop for a transcript,
    /// the input itself as its summary, silence for speech.
    Degenerate,
    /// 403 for every caller, as a miner that only serves registered validators does.
    Blacklisting,
    /// The forward function raises: HTTP 500, as a Python axon answers then.
    Crashing,
    /// Registered in the directory, but nothing listens on its port.
    Unreachable,
    /// An answer of 8 MiB, whatever the task.
    Oversized,
    /// Speech whose WAV header declares 3 MHz; a million one-letter words for text.
    Bomb,
    /// HTTP 200, then a byte every 100 ms, never finishing.
    Drip,
    /// The input sent back as the answer.
    Echo,
    /// A well-formed answer to another task (a replayed one).
    Replay,
    /// Silence of exactly the expected length for speech; blank text for the others.
    Silence,
    /// Text of the right length in the wrong language (Chinese); speech of another text.
    WrongLanguage,
    /// HTTP 200 and 256 MiB of `output_data`, as fast as the connection takes it: a miner
    /// sending the most any budget allows, streamed (it costs the simulator no memory).
    Flood,
}

impl Behaviour {
    /// The mix `sim:N` uses, cycled: agreeing good answers first, then every failure kind.
    pub const MIX: [Behaviour; 6] = [
        Self::Good,
        Self::Slow,
        Self::Noisy,
        Self::Erroring,
        Self::Garbage,
        Self::Unreachable,
    ];

    /// Every miner paid to win by cheating, for the hostile tests.
    pub const HOSTILE: [Behaviour; 7] = [
        Self::Oversized,
        Self::Bomb,
        Self::Drip,
        Self::Echo,
        Self::Replay,
        Self::Silence,
        Self::WrongLanguage,
    ];

    /// Parses a behaviour name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "good" => Self::Good,
            "noisy" => Self::Noisy,
            "slow" => Self::Slow,
            "erroring" => Self::Erroring,
            "garbage" => Self::Garbage,
            "degenerate" => Self::Degenerate,
            "blacklisting" => Self::Blacklisting,
            "crashing" => Self::Crashing,
            "unreachable" => Self::Unreachable,
            "oversized" => Self::Oversized,
            "bomb" => Self::Bomb,
            "drip" => Self::Drip,
            "echo" => Self::Echo,
            "replay" => Self::Replay,
            "silence" => Self::Silence,
            "wrong_language" => Self::WrongLanguage,
            "flood" => Self::Flood,
            _ => return None,
        })
    }
}

/// Options of a simulated subnet.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Behaviour of each miner, by uid.
    pub behaviours: Vec<Behaviour>,
    /// The delay of `Slow` miners.
    pub slow_delay: Duration,
    /// The synapse name served.
    pub synapse_name: String,
    /// Netuid reported in the snapshot.
    pub netuid: u16,
}

impl SimOptions {
    /// `n` miners with the default mix.
    pub fn mixed(n: usize) -> Self {
        Self {
            behaviours: (0..n)
                .map(|i| Behaviour::MIX[i % Behaviour::MIX.len()])
                .collect(),
            slow_delay: Duration::from_millis(600),
            synapse_name: "AudioTask".into(),
            netuid: 0,
        }
    }
}

/// A running simulated subnet. Dropping it stops the miners.
pub struct SimulatedSubnet {
    snapshot: MinerSnapshot,
    served: Vec<Arc<AtomicU64>>,
    stop: watch::Sender<bool>,
}

impl SimulatedSubnet {
    /// Starts the miners on loopback, each on a port the OS picks.
    pub async fn start(options: SimOptions) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let mut miners = Vec::new();
        let mut served = Vec::new();
        for (uid, behaviour) in options.behaviours.iter().enumerate() {
            let uid = u16::try_from(uid)?;
            let pair = sp_core::sr25519::Pair::from_string(&format!("//SimMiner{uid}"), None)
                .map_err(|e| anyhow::anyhow!("dev key: {e:?}"))?;
            let hotkey = pair.public().to_ss58check();
            let counter = Arc::new(AtomicU64::new(0));
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
                    .await?;
            let port = listener.local_addr()?.port();
            if *behaviour == Behaviour::Unreachable {
                // The port was free a moment ago and nothing will answer on it.
                drop(listener);
            } else {
                let state = AxonState::new(
                    hotkey.clone(),
                    *behaviour,
                    options.slow_delay,
                    options.synapse_name.clone(),
                    counter.clone(),
                );
                let app = axon::router(state);
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.changed().await;
                        })
                        .await;
                });
            }
            served.push(counter);
            miners.push(Miner {
                uid,
                hotkey,
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
                stake: 1_000.0 - f64::from(uid) * 10.0,
                incentive: 0.0,
                chain: None,
            });
        }
        Ok(Self {
            snapshot: MinerSnapshot {
                netuid: options.netuid,
                network: "simulated".into(),
                miners,
                taken_at: taogate_shared::domain::now_millis(),
                block: None,
            },
            served,
            stop,
        })
    }

    /// The directory snapshot describing the simulated miners.
    pub fn snapshot(&self) -> MinerSnapshot {
        self.snapshot.clone()
    }

    /// How many forward calls miner `uid` has run.
    pub fn served(&self, uid: u16) -> u64 {
        self.served
            .get(usize::from(uid))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

impl Drop for SimulatedSubnet {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
