//! The metagraph-sync Lambda, run by an EventBridge schedule: reads subnet `BT_NETUID` from
//! `BT_NETWORK` and stores the snapshot object the workers read (`SNAPSHOT_KEY`). A failed read
//! leaves the previous snapshot in place and fails the invocation, so it shows in the metrics.
//! Wiring only; the reading lives in `taogate_shared::bittensor::ChainReader`.

use lambda_runtime::{LambdaEvent, service_fn};
use taogate_shared::aws::{self, AwsClients, AwsResources, S3Blobs};
use taogate_shared::bittensor::ChainReader;
use taogate_shared::config::Settings;
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    aws::init_tracing();
    let settings = Settings::from_env()?;
    let resources = AwsResources::from_env()?;
    taogate_shared::bittensor::network_url(&settings.network)?;
    let clients = AwsClients::load(resources.s3_path_style).await;
    let blobs = S3Blobs::new(clients.s3, &resources);
    // One connection per container, opened at the first invocation and reused (it reconnects
    // by itself).
    let reader: Mutex<Option<ChainReader>> = Mutex::new(None);
    let (settings, resources, blobs, reader) = (&settings, &resources, &blobs, &reader);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let mut guard = reader.lock().await;
            let chain = match guard.as_ref() {
                Some(chain) => chain.clone(),
                None => {
                    let chain = ChainReader::connect(&settings.network).await?;
                    *guard = Some(chain.clone());
                    chain
                }
            };
            drop(guard);
            let snapshot = chain.snapshot(settings.netuid).await?;
            aws::publish_snapshot(blobs, &resources.snapshot_key, &snapshot).await?;
            tracing::info!(
                netuid = snapshot.netuid,
                block = snapshot.block,
                neurons = snapshot.miners.len(),
                "metagraph snapshot stored"
            );
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "netuid": snapshot.netuid,
                "block": snapshot.block,
                "neurons": snapshot.miners.len(),
                "serving": snapshot.serving().count(),
            }))
        },
    ))
    .await
}
