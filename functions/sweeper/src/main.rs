//! The sweeper Lambda, run by an EventBridge schedule: sends every task that has been quiet for
//! `SWEEP_AFTER` (its message never sent, or lost) a new message, and tries every callback still
//! owed, all within the invocation. Wiring only; the sweep lives in `taogate_shared::sweep`.

// The sweep's future (the SDK's, nested in the sweep's loops) is deeper than the default limit
// lets the compiler lay out.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use taogate_shared::aws::{self, AwsClients, AwsResources, DynamoTasks, S3Blobs, SqsQueues};
use taogate_shared::config::Settings;
use taogate_shared::domain::now_millis;
use taogate_shared::outbound::HttpCallbacks;
use taogate_shared::sweep::{INVOCATION_MARGIN, Sweeper};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    aws::init_tracing();
    let _faults = taogate_shared::faults::arm();
    let settings = Settings::from_env()?;
    let resources = AwsResources::from_env()?;
    let clients = AwsClients::for_function(&aws::functions::SWEEPER, resources.s3_path_style).await;
    let usage = clients.usage.clone();
    let blobs = S3Blobs::new(clients.s3, &resources);
    let sweeper = Sweeper {
        tasks: DynamoTasks::new(clients.dynamodb, blobs.clone(), &resources),
        queue: SqsQueues::new(clients.sqs, &resources),
        blobs,
        callbacks: HttpCallbacks::new(&settings.callbacks),
        bound: settings.sweep.after,
    };
    let (sweeper, usage) = (&sweeper, &usage);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // The sweep ends inside the invocation, leaving room to answer the runtime.
            let deadline = aws::invocation_deadline(event.context.deadline) - INVOCATION_MARGIN;
            let report = sweeper.run(now_millis(), deadline).await;
            usage.log_invocation();
            let report = report?;
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
