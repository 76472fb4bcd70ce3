//! Backends under test: a fresh embedded database, or fresh AWS resources on the emulators.

use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use taogate_shared::aws::{AwsClients, AwsResources, DynamoTasks, S3Blobs, SqsQueues};
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
    let db = Database::open(dir, QueuePolicy { max_receives: MAX_RECEIVES, starvation_age_ms: 60_000 }).unwrap();
    let blobs = BlobDir::new(&dir.join("blobs"), "http://127.0.0.1:1").unwrap();
    Backend { tasks: db.clone(), queue: db, blobs }
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap()
}

pub async fn aws() -> Backend<DynamoTasks, SqsQueues, S3Blobs> {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "the AWS contract tests need the local emulators: run `make test`, or `eval \"$(localstack/local-aws.sh start)\"` first"
    );
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let config = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());

    let table = format!("contract-{suffix}");
    let mut create = dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("id", KeyType::Hash));
    for attr in ["id", "all", "status", "kind", "status_kind"] {
        create = create.attribute_definitions(
            AttributeDefinition::builder().attribute_name(attr).attribute_type(ScalarAttributeType::S).build().unwrap(),
        );
    }
    for (index, hash) in [("by_created", "all"), ("by_status", "status"), ("by_kind", "kind"), ("by_status_kind", "status_kind")] {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(hash, KeyType::Hash))
                .key_schema(key("id", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .unwrap(),
        );
    }
    create.send().await.unwrap();

    let bucket = format!("contract-{suffix}");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    let mut queues = Vec::new();
    let mut dead = Vec::new();
    for class in ["high", "normal", "low"] {
        let dlq = sqs.create_queue().queue_name(format!("contract-{suffix}-{class}-dlq")).send().await.unwrap();
        let dlq_url = dlq.queue_url().unwrap().to_owned();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES.to_string()}).to_string();
        let q = sqs
            .create_queue()
            .queue_name(format!("contract-{suffix}-{class}"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .unwrap();
        queues.push(q.queue_url().unwrap().to_owned());
        dead.push(dlq_url);
    }
    let resources = AwsResources::from_lookup(|k| {
        Some(
            match k {
                "TABLE_NAME" => table.clone(),
                "BUCKET_NAME" => bucket.clone(),
                "QUEUE_URL_HIGH" => queues[0].clone(),
                "QUEUE_URL_NORMAL" => queues[1].clone(),
                "QUEUE_URL_LOW" => queues[2].clone(),
                "DLQ_URL_HIGH" => dead[0].clone(),
                "DLQ_URL_NORMAL" => dead[1].clone(),
                "DLQ_URL_LOW" => dead[2].clone(),
                "AWS_S3_FORCE_PATH_STYLE" => "true".into(),
                _ => return None,
            },
        )
    })
    .unwrap();
    let clients = AwsClients::load(&resources).await;
    Backend {
        tasks: DynamoTasks::new(clients.dynamodb, &resources),
        queue: SqsQueues::new(clients.sqs, &resources),
        blobs: S3Blobs::new(clients.s3, &resources),
    }
}
