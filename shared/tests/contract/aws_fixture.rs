//! Backends under test: a fresh embedded database, or fresh AWS resources on the emulators.

use std::path::Path;

use taogate_shared::aws::{AwsClients, DynamoTasks, S3Blobs, SqsQueues, provision};
use taogate_shared::embedded::{BlobDir, Database, QueuePolicy};

/// Receives after which a message is dead-lettered, in every backend under test.
pub const MAX_RECEIVES: u32 = 2;

/// One backend's adapters.
pub struct Backend<T, Q, B> {
    pub tasks: T,
    pub queue: Q,
    pub blobs: B,
}

pub fn embedded(dir: &Path) -> Backend<Database, Database, BlobDir> {
    let db = Database::open(
        dir,
        QueuePolicy {
            max_receives: MAX_RECEIVES,
            ..QueuePolicy::default()
        },
    )
    .unwrap();
    let blobs = BlobDir::new(&dir.join("blobs"), "http://127.0.0.1:1", &db).unwrap();
    Backend {
        tasks: db.clone(),
        queue: db,
        blobs,
    }
}

pub async fn aws() -> Backend<DynamoTasks, SqsQueues, S3Blobs> {
    aws_counted().await.0
}

/// Fresh AWS resources with an S3 client and the bucket's name, to reach around the adapters.
pub async fn aws_with_bucket() -> (
    Backend<DynamoTasks, SqsQueues, S3Blobs>,
    aws_sdk_s3::Client,
    String,
) {
    let (backend, clients, resources) = provisioned().await;
    (backend, clients.s3, resources.bucket)
}

/// Fresh AWS resources whose finished tasks expire `ttl_days` after their end.
pub async fn aws_with_ttl(ttl_days: u32) -> Backend<DynamoTasks, SqsQueues, S3Blobs> {
    let (_, clients, mut resources) = provisioned().await;
    resources.task_ttl_days = ttl_days;
    Backend {
        tasks: DynamoTasks::new(
            clients.dynamodb.clone(),
            S3Blobs::new(clients.s3.clone(), &resources),
            &resources,
        ),
        queue: SqsQueues::new(clients.sqs.clone(), &resources),
        blobs: S3Blobs::new(clients.s3, &resources),
    }
}

/// Fresh AWS resources, and what their clients have used.
pub async fn aws_counted() -> (
    Backend<DynamoTasks, SqsQueues, S3Blobs>,
    std::sync::Arc<taogate_shared::aws::Usage>,
) {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "the AWS contract tests need the local emulators: run `make test`, or `eval \"$(localstack/local-aws.sh start)\"` first"
    );
    let (backend, clients, _) = provisioned().await;
    (backend, clients.usage)
}

/// Fresh resources on the emulators, the adapters over them, and their clients.
async fn provisioned() -> (
    Backend<DynamoTasks, SqsQueues, S3Blobs>,
    AwsClients,
    taogate_shared::aws::AwsResources,
) {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let clients = AwsClients::load(true).await;
    let resources = provision(&clients, &format!("contract-{suffix}"), MAX_RECEIVES, 30)
        .await
        .unwrap();
    let backend = Backend {
        tasks: DynamoTasks::new(
            clients.dynamodb.clone(),
            S3Blobs::new(clients.s3.clone(), &resources),
            &resources,
        ),
        queue: SqsQueues::new(clients.sqs.clone(), &resources),
        blobs: S3Blobs::new(clients.s3.clone(), &resources),
    };
    (backend, clients, resources)
}
