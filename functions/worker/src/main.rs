//! The worker Lambda, triggered by SQS: each batch goes to the shared worker, and records it
//! hands back are reported as batch item failures.
//! Wiring only; the behaviour lives in `taogate_shared::worker`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use taogate_shared::aws::{
    self, AwsClients, AwsResources, DynamoTasks, S3Blobs, S3Directory, SqsQueues,
};
use taogate_shared::config::Settings;
use taogate_shared::faults;
use taogate_shared::secrets::{self, Fallback};

/// Room the worker needs beyond its answer and input budgets: the runtime, clients and buffers.
const RUNTIME_MIB: usize = 96;

/// Warns when the answer and input budgets, with the runtime, are more than the function's
/// memory: a burst of large inputs or answers could then end the process.
fn warn_if_budgets_pass_the_memory(settings: &Settings) {
    let Some(mib) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
    else {
        return;
    };
    let client = &settings.miner_client;
    let needed = (client.answer_memory + client.input_memory) / (1024 * 1024) + RUNTIME_MIB;
    if needed > mib {
        tracing::warn!(
            memory_mb = mib,
            needed_mib = needed,
            "MAX_ANSWER_MEMORY + MAX_INPUT_MEMORY + {RUNTIME_MIB} MiB is more than the function's memory"
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    aws::init_tracing();
    let _faults = faults::arm();
    let mut settings = Settings::from_env()?;
    warn_if_budgets_pass_the_memory(&settings);
    let resources = AwsResources::from_env()?;
    let clients = AwsClients::for_function(&aws::functions::WORKER, resources.s3_path_style).await;
    let hotkey = secrets::resolve(&mut settings, &clients, Fallback::Refuse).await?;
    let usage = clients.usage.clone();
    let blobs = S3Blobs::new(clients.s3, &resources);
    let worker = taogate_shared::wiring::worker(
        &settings,
        faults::wrap(DynamoTasks::new(
            clients.dynamodb,
            blobs.clone(),
            &resources,
        )),
        blobs.clone(),
        S3Directory::new(blobs, &resources),
        hotkey,
    )?;
    let queues = SqsQueues::new(clients.sqs, &resources);
    let (worker, queues, usage) = (&worker, &queues, &usage);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = aws::invocation_deadline(event.context.deadline);
        let failures = aws::handle_sqs_batch(worker, queues, event.payload, deadline).await;
        usage.log_invocation();
        Ok::<_, lambda_runtime::Error>(failures)
    }))
    .await
}
