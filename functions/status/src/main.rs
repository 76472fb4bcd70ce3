//! The status Lambda: task, list, health, validator-integration, OpenAPI and docs routes over
//! DynamoDB, SQS (depths), S3 (presigned audio URLs, the miner snapshot).
//! Wiring only; the routes live in `taogate_shared::api`.

use taogate_shared::api::{self, StatusState};
use taogate_shared::aws::{
    self, AwsClients, AwsResources, DynamoTasks, S3Blobs, S3Directory, SqsQueues,
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::init_tracing();
    let tenancy = taogate_shared::config::Settings::from_env()?.tenancy;
    let resources = AwsResources::from_env()?;
    let clients = AwsClients::for_function(&aws::functions::STATUS, resources.s3_path_style).await;
    let usage = clients.usage.clone();
    let blobs = S3Blobs::new(clients.s3, &resources);
    let router = api::status_function(
        StatusState {
            tasks: DynamoTasks::new(clients.dynamodb, blobs.clone(), &resources),
            queue: SqsQueues::new(clients.sqs, &resources),
            directory: S3Directory::new(blobs.clone(), &resources),
            blobs,
            gateway_hotkey: std::env::var(aws::vars::GATEWAY_HOTKEY.name).unwrap_or_default(),
        },
        tenancy,
    );
    lambda_http::run(aws::metered(router, usage)).await
}
