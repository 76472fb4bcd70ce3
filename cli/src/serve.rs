//! `taogate serve`: the API and a worker pool in one process, on the embedded backend.
//!
//! This module only wires: it builds the adapters once and hands them to the same route and
//! worker functions the Lambdas use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use taogate_shared::api;
use taogate_shared::aws::{AwsClients, AwsResources, DynamoTasks, S3Blobs, S3Directory, SqsQueues};
use taogate_shared::bittensor::{
    ChainReader, Hotkey, LiveDirectory, read_miner_file, spawn_refresh,
};
use taogate_shared::config::Settings;
use taogate_shared::domain::MinerSnapshot;
use taogate_shared::drain::{DrainOptions, drain};
use taogate_shared::embedded::{BlobDir, Database, QueuePolicy};
use taogate_shared::outbound::HttpCallbacks;
use taogate_shared::ports::NoSecretStore;
use taogate_shared::secrets::{self, Fallback};
use taogate_shared::submission::Intake;
use taogate_shared::sweep::Sweeper;
use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};
use tokio::sync::watch;
use tracing::info;

/// Longest an idle embedded worker sleeps before looking at the queue again: messages released
/// with a delay become visible without a notification.
const EMBEDDED_IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// How often the local runtime sweeps for stranded tasks.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long one local sweep may take, owed callbacks included: 50 s, less than
/// `SWEEP_INTERVAL`, so that receivers that never answer cannot stretch one sweep into the
/// next one's turn (those not reached wait for it).
const SWEEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(50);

/// Messages one SQS receive takes, as the template's `BatchSize`.
const SQS_BATCH: usize = 5;

/// Pause between empty SQS receives.
const SQS_IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Where the miners come from.
#[derive(Debug, Clone)]
pub enum MinerSource {
    /// A simulated subnet of `n` miners started in this process.
    Simulated(SimOptions),
    /// A static JSON file of miners.
    File(PathBuf),
    /// The subnet's metagraph, read from the chain (`BT_NETWORK`, `BT_NETUID`) and refreshed.
    Chain,
}

impl MinerSource {
    /// Parses `chain` (the metagraph of `BT_NETUID` on `BT_NETWORK`), `sim:N` (N miners of the
    /// default mix), `sim:good,slow,…` (one miner per named behaviour) or a file path.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if raw == "chain" {
            return Ok(Self::Chain);
        }
        let Some(spec) = raw.strip_prefix("sim:") else {
            return Ok(Self::File(PathBuf::from(raw)));
        };
        if let Ok(n) = spec.parse::<usize>() {
            anyhow::ensure!((1..=256).contains(&n), "sim:N takes 1 to 256 miners");
            return Ok(Self::Simulated(SimOptions::mixed(n)));
        }
        let behaviours = spec
            .split(',')
            .map(|name| {
                Behaviour::parse(name.trim()).with_context(|| {
                    format!("unknown simulated behaviour {name:?}; use good, noisy, slow, erroring, garbage, blacklisting, crashing or unreachable")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            behaviours.len() <= 256,
            "a simulated subnet has at most 256 miners"
        );
        Ok(Self::Simulated(SimOptions {
            behaviours,
            ..SimOptions::mixed(0)
        }))
    }
}

/// Which adapters the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// SQLite and a directory under `--data-dir`: no servers.
    Embedded,
    /// DynamoDB, SQS and S3 at the endpoints of the standard AWS variables (LocalStack locally);
    /// a poller stands in for the SQS event source mappings.
    Aws,
}

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address.
    pub bind: SocketAddr,
    /// Adapters.
    pub backend: Backend,
    /// The data directory (SQLite file and blobs) of the embedded backend.
    pub data_dir: PathBuf,
    /// Miners.
    pub miners: MinerSource,
    /// Base of URLs handed to clients; defaults to `http://{bind}`.
    pub public_url: Option<String>,
    /// Worker slots (queue pollers on AWS); 0 runs the API alone (used by the submit benchmark).
    pub workers: usize,
    /// How long simulated `slow` miners take.
    pub sim_slow: std::time::Duration,
    /// Configuration.
    pub settings: Settings,
}

/// A running local server.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The embedded database, for tests and operators (embedded backend only).
    pub db: Option<Database>,
    /// The simulated subnet, if one was started.
    pub subnet: Option<SimulatedSubnet>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting requests, lets workers finish their task in hand, and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server.await??;
        self.workers.await?;
        Ok(())
    }
}

/// The worker the local runtime runs: the embedded stores, the given directory, the axon client.
pub fn build_worker(
    settings: &Settings,
    db: Database,
    blobs: BlobDir,
    directory: LiveDirectory,
    hotkey: Arc<Hotkey>,
) -> anyhow::Result<taogate_shared::wiring::DeployedWorker<Database, BlobDir, LiveDirectory>> {
    taogate_shared::wiring::worker(settings, db, blobs, directory, hotkey)
}

/// Where the miners are, once found.
struct Miners {
    /// The simulated subnet, if one was started.
    subnet: Option<SimulatedSubnet>,
    /// The first snapshot.
    snapshot: MinerSnapshot,
    /// The chain connection that keeps it fresh, for `chain`.
    chain: Option<ChainReader>,
}

/// Starts the miners (if simulated), or reads the metagraph, and returns the first snapshot.
async fn miners(
    source: MinerSource,
    settings: &Settings,
    slow: std::time::Duration,
) -> anyhow::Result<Miners> {
    Ok(match source {
        MinerSource::Simulated(mut sim) => {
            sim.synapse_name = settings.miner_client.synapse_name.clone();
            sim.netuid = settings.chain.netuid;
            sim.slow_delay = slow;
            let subnet = SimulatedSubnet::start(sim).await?;
            Miners {
                snapshot: subnet.snapshot(),
                subnet: Some(subnet),
                chain: None,
            }
        }
        MinerSource::File(path) => Miners {
            subnet: None,
            snapshot: read_miner_file(&path, settings.chain.netuid, &settings.chain.network)?,
            chain: None,
        },
        MinerSource::Chain => {
            let reader = ChainReader::connect(&settings.chain.network).await?;
            let snapshot = reader.snapshot(settings.chain.netuid).await?;
            info!(
                network = %settings.chain.network,
                netuid = settings.chain.netuid,
                block = snapshot.block,
                neurons = snapshot.miners.len(),
                serving = snapshot.serving().count(),
                "metagraph read"
            );
            Miners {
                subnet: None,
                snapshot,
                chain: Some(reader),
            }
        }
    })
}

/// Starts the server and the workers.
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    let mut settings = options.settings;
    if matches!(options.miners, MinerSource::Simulated(_)) {
        // Simulated miners listen on loopback, which is otherwise never called.
        settings
            .selection
            .allowlist
            .push(ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(127, 0, 0, 0), 8)?.into());
    }
    let hotkey = secrets::resolve(&mut settings, &NoSecretStore, Fallback::DevKey).await?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .with_context(|| format!("cannot listen on {}", options.bind))?;
    let addr = listener.local_addr()?;
    let Miners {
        subnet,
        snapshot,
        chain,
    } = miners(options.miners, &settings, options.sim_slow).await?;
    let (stop, stopped) = watch::channel(false);
    let live = LiveDirectory::new(snapshot.clone());
    if let Some(reader) = chain {
        spawn_refresh(
            reader,
            settings.chain.netuid,
            live.clone(),
            settings.chain.metagraph_refresh,
            stopped.clone(),
        );
    }

    let (router, db, workers) = match options.backend {
        Backend::Embedded => {
            let db = Database::open(
                &options.data_dir,
                QueuePolicy {
                    max_receives: settings.worker.max_attempts,
                    ..QueuePolicy::default()
                },
            )?;
            let recovery = db.recover().await.map_err(|e| anyhow::anyhow!(e))?;
            if recovery != Default::default() {
                info!(?recovery, "recovered work left by a previous run");
            }
            let public_url = options
                .public_url
                .unwrap_or_else(|| format!("http://{addr}"));
            let blobs = BlobDir::new(&options.data_dir.join("blobs"), &public_url, &db)?;
            let directory = live;
            let worker = Arc::new(build_worker(
                &settings,
                db.clone(),
                blobs.clone(),
                directory.clone(),
                hotkey.clone(),
            )?);
            let sweeper = Sweeper {
                tasks: db.clone(),
                queue: db.clone(),
                blobs: blobs.clone(),
                callbacks: HttpCallbacks::new(&settings.callbacks),
                bound: settings.sweep.after,
            };
            tokio::spawn(sweeper.every(SWEEP_INTERVAL, SWEEP_BUDGET, stopped.clone()));
            let router = api::gateway(
                Intake {
                    tasks: db.clone(),
                    queue: db.clone(),
                    blobs,
                },
                directory,
                hotkey.ss58().to_owned(),
                settings.submission.clone(),
                settings.tenancy,
                true,
            );
            let pool = tokio::spawn(drain(
                Arc::new(db.clone()),
                worker,
                DrainOptions {
                    slots: options.workers,
                    batch: 1,
                    visibility: settings.worker.lease(),
                    idle: EMBEDDED_IDLE_POLL,
                },
                stopped.clone(),
            ));
            (router, Some(db), pool)
        }
        Backend::Aws => {
            let resources = AwsResources::from_env()?;
            let clients = AwsClients::load(resources.s3_path_style).await;
            let blobs = S3Blobs::new(clients.s3.clone(), &resources);
            let tasks = DynamoTasks::new(clients.dynamodb.clone(), blobs.clone(), &resources);
            let queues = SqsQueues::new(clients.sqs.clone(), &resources);
            // Publish the directory where the worker reads it, as the metagraph sync does.
            taogate_shared::aws::publish_snapshot(&blobs, &resources.snapshot_key, &snapshot)
                .await
                .map_err(|e| anyhow::anyhow!(e))
                .context("cannot publish the miner snapshot to S3")?;
            let directory = S3Directory::new(blobs.clone(), &resources);
            let worker = Arc::new(taogate_shared::wiring::worker(
                &settings,
                tasks.clone(),
                blobs.clone(),
                directory.clone(),
                hotkey.clone(),
            )?);
            let sweeper = Sweeper {
                tasks: tasks.clone(),
                queue: queues.clone(),
                blobs: blobs.clone(),
                callbacks: HttpCallbacks::new(&settings.callbacks),
                bound: settings.sweep.after,
            };
            tokio::spawn(sweeper.every(SWEEP_INTERVAL, SWEEP_BUDGET, stopped.clone()));
            let router = api::gateway(
                Intake {
                    tasks,
                    queue: queues.clone(),
                    blobs,
                },
                directory,
                hotkey.ss58().to_owned(),
                settings.submission.clone(),
                settings.tenancy,
                false,
            );
            let poller = tokio::spawn(drain(
                Arc::new(queues),
                worker,
                DrainOptions {
                    slots: options.workers,
                    batch: SQS_BATCH,
                    visibility: settings.worker.lease(),
                    idle: SQS_IDLE_POLL,
                },
                stopped.clone(),
            ));
            (router, None, poller)
        }
    };

    let server = tokio::spawn(crate::http::serve(listener, router, settings.http, stopped));
    info!(%addr, workers = options.workers, backend = ?options.backend, "taogate is serving");
    Ok(Running {
        addr,
        db,
        subnet,
        stop,
        server,
        workers,
    })
}
