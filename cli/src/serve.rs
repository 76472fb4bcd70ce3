//! `taogate serve`: the API and a worker pool in one process, on the embedded backend.
//!
//! This module only wires: it builds the adapters once and hands them to the same route and
//! worker functions the Lambdas use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use taogate_shared::api::{self, StatusState, SubmitSettings, SubmitState};
use taogate_shared::bittensor::{AxonClient, Hotkey, StaticDirectory};
use taogate_shared::config::Settings;
use taogate_shared::embedded::{BlobDir, Database, QueuePolicy};
use taogate_shared::runtime::run_pool;
use taogate_shared::worker::Worker;
use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};
use tokio::sync::watch;
use tracing::info;

/// Where the miners come from.
#[derive(Debug, Clone)]
pub enum MinerSource {
    /// A simulated subnet of `n` miners started in this process.
    Simulated(SimOptions),
    /// A static JSON file of miners.
    File(PathBuf),
}

impl MinerSource {
    /// Parses `sim:N` (N miners of the default mix), `sim:good,slow,…` (one miner per named
    /// behaviour) or a file path.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
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
                    format!("unknown simulated behaviour {name:?}; use good, noisy, slow, erroring, garbage, blacklisting or unreachable")
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

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address.
    pub bind: SocketAddr,
    /// The data directory (SQLite file and blobs).
    pub data_dir: PathBuf,
    /// Miners.
    pub miners: MinerSource,
    /// Base of URLs handed to clients; defaults to `http://{bind}`.
    pub public_url: Option<String>,
    /// Worker slots; 0 runs the API alone (used by the submit benchmark).
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
    /// The database, for tests and operators.
    pub db: Database,
    /// The simulated subnet, if one was started.
    pub subnet: Option<SimulatedSubnet>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    pool: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting requests, lets workers finish their task in hand, and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server.await??;
        self.pool.await?;
        Ok(())
    }

    /// Waits until the server ends (after [`Running::stop_handle`] fires).
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// The worker the local runtime runs: the embedded stores, the given directory, the axon client.
pub fn build_worker(
    settings: &Settings,
    db: Database,
    blobs: BlobDir,
    directory: StaticDirectory,
    hotkey: Arc<Hotkey>,
) -> anyhow::Result<Worker<Database, BlobDir, StaticDirectory, AxonClient>> {
    Worker::with_axon_client(settings, db, blobs, directory, hotkey)
}

/// Starts the server and the worker pool.
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    let settings = options.settings;
    let hotkey = Arc::new(Hotkey::from_secret(&settings.local_hotkey())?);
    let db = Database::open(
        &options.data_dir,
        QueuePolicy {
            max_receives: settings.max_attempts,
            starvation_age_ms: 60_000,
        },
    )?;
    let recovery = db.recover().await.map_err(|e| anyhow::anyhow!(e))?;
    if recovery != Default::default() {
        info!(?recovery, "recovered work left by a previous run");
    }

    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .with_context(|| format!("cannot listen on {}", options.bind))?;
    let addr = listener.local_addr()?;
    let public_url = options
        .public_url
        .unwrap_or_else(|| format!("http://{addr}"));
    let blobs = BlobDir::new(&options.data_dir.join("blobs"), &public_url)?;

    let (subnet, directory) = match options.miners {
        MinerSource::Simulated(mut sim) => {
            sim.synapse_name = settings.synapse_name.clone();
            sim.slow_delay = options.sim_slow;
            sim.netuid = settings.netuid;
            let subnet = SimulatedSubnet::start(sim).await?;
            let directory = StaticDirectory::new(subnet.snapshot());
            (Some(subnet), directory)
        }
        MinerSource::File(path) => (
            None,
            StaticDirectory::from_file(&path, settings.netuid, &settings.network)?,
        ),
    };

    let worker = Arc::new(build_worker(
        &settings,
        db.clone(),
        blobs.clone(),
        directory.clone(),
        hotkey.clone(),
    )?);

    let router = api::submit_routes(SubmitState {
        tasks: db.clone(),
        queue: db.clone(),
        blobs: blobs.clone(),
        settings: SubmitSettings {
            callback_allowlist: settings.callback_allowlist.clone(),
            estimated_seconds: settings.task_timeout.as_secs().max(1),
        },
    })
    .merge(api::status_routes(
        StatusState {
            tasks: db.clone(),
            queue: db.clone(),
            blobs,
            directory,
            gateway_hotkey: hotkey.ss58().to_owned(),
        },
        true,
    ));
    let router = api::with_fallbacks(router);

    let (stop, stopped) = watch::channel(false);
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let pool = tokio::spawn(run_pool(
        db.clone(),
        worker,
        options.workers,
        settings.lease(),
        stopped,
    ));
    info!(%addr, workers = options.workers, "taogate is serving");
    Ok(Running {
        addr,
        db,
        subnet,
        stop,
        server,
        pool,
    })
}
