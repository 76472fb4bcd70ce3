//! The submit Lambda: the submission and upload routes, the OpenAI-compatible audio routes and
//! the validator lease routes, over DynamoDB, SQS and S3.
//! Wiring only; the routes live in `taogate_shared::api`, the use case in
//! `taogate_shared::submission`.

use taogate_shared::api;
use taogate_shared::aws::{self, AwsClients, AwsResources, DynamoTasks, S3Blobs, SqsQueues};
use taogate_shared::config::Settings;
use taogate_shared::submission::Intake;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::init_tracing();
    let _faults = taogate_shared::faults::arm();
    let settings = Settings::from_env()?;
    let resources = AwsResources::from_env()?;
    let clients = AwsClients::for_function(&aws::functions::SUBMIT, resources.s3_path_style).await;
    let usage = clients.usage.clone();
    let blobs = S3Blobs::new(clients.s3, &resources);
    let intake = Intake {
        tasks: DynamoTasks::new(clients.dynamodb, blobs.clone(), &resources),
        queue: SqsQueues::new(clients.sqs, &resources),
        blobs,
    };
    let router = api::submit_function(
        intake,
        settings.submission.behind_lambda(),
        settings.tenancy,
    );
    lambda_http::run(aws::metered(router, usage)).await
}
