//! The metagraph-sync Lambda, run by an EventBridge schedule: reads subnet `BT_NETUID` from
//! `BT_NETWORK` and stores the snapshot object the workers read (`SNAPSHOT_KEY`). A failed read
//! leaves the previous snapshot in place and fails the invocation, so it shows in the metrics.
//! Wiring only; the sync lives in `taogate_shared::metagraph_sync::MetagraphSync`.

use lambda_runtime::{LambdaEvent, service_fn};
use taogate_shared::aws::{self, AwsClients, AwsResources, S3Blobs};
use taogate_shared::config::Settings;
use taogate_shared::metagraph_sync::MetagraphSync;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    aws::init_tracing();
    let settings = Settings::from_env()?;
    let resources = AwsResources::from_env()?;
    let sync = MetagraphSync::new(&settings.chain, &resources.snapshot_key)?;
    let clients =
        AwsClients::for_function(&aws::functions::METAGRAPH_SYNC, resources.s3_path_style).await;
    let usage = clients.usage.clone();
    let blobs = S3Blobs::new(clients.s3, &resources);
    let (sync, blobs, usage) = (&sync, &blobs, &usage);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = sync.run(blobs).await;
            usage.log_invocation();
            let report = report?;
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
