//! The composition root: the adapters each deployed process is built from.

use std::sync::Arc;

use taogate_app::memory::ByteBudget;
use taogate_app::worker::{AttemptPolicy, Worker, WorkerPorts};
use taogate_bittensor::{Hotkey, ProtocolClient};
use taogate_core::config::Settings;
use taogate_core::scoring::Scorer;
use taogate_outbound::{HttpCallbacks, HttpReference};

/// The worker as deployed: the given stores and miner directory, the miner client
/// `MINER_PROTOCOL` names, and the HTTP reference endpoints and callbacks.
pub type DeployedWorker<T, B, D> = Worker<T, B, D, ProtocolClient, HttpReference, HttpCallbacks>;

/// The deployed worker over `tasks`, `blobs` and `directory`, each outbound client built from
/// its own section of `settings`. The Lambda and `taogate serve` both build their worker here.
pub fn worker<T, B, D>(
    settings: &Settings,
    tasks: T,
    blobs: B,
    directory: D,
    hotkey: Arc<Hotkey>,
) -> anyhow::Result<DeployedWorker<T, B, D>> {
    let ports = WorkerPorts {
        tasks,
        blobs,
        directory,
        client: ProtocolClient::new(&settings.miner_client, hotkey.clone())?,
        reference: HttpReference::new(&settings.reference),
        callbacks: HttpCallbacks::new(&settings.callbacks),
    };
    let policy = AttemptPolicy::new(
        &settings.selection,
        Scorer::new(&settings.scoring),
        hotkey.ss58(),
        ByteBudget::new(settings.miner_client.input_memory),
    );
    Ok(Worker::new(ports, &settings.worker, policy))
}
