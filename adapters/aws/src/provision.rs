//! Creates the resources `template.yaml` defines, for local emulators and tests: the task table
//! with its indexes, the blob bucket, and one queue per class with its dead-letter queue and
//! redrive policy. (On AWS the template creates them; `localstack/resources.py` does the same for
//! the Docker init hook.)

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::{AwsClients, AwsResources};

/// The indexes of the task table: name and hash key (the range key is always `id`). Each hash
/// key carries a listing shard (see `dynamo`), and the indexes project keys only. `by_notice`
/// is sparse: only finished tasks that still owe a callback have its key.
pub const INDEXES: [(&str, &str); 5] = [
    ("by_created", "list_all"),
    ("by_owner", "list_owner"),
    ("by_kind", "list_kind"),
    ("by_status_kind", "list_status_kind"),
    ("by_notice", "notice_owed"),
];

fn key(name: &str, kind: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()?)
}

/// Creates fresh resources named `{prefix}-…`; messages are dead-lettered after `max_receives`.
pub async fn provision(
    clients: &AwsClients,
    prefix: &str,
    max_receives: u32,
    visibility_s: u32,
) -> anyhow::Result<AwsResources> {
    let table = format!("{prefix}-tasks");
    let mut create = clients
        .dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("id", KeyType::Hash)?);
    for attr in std::iter::once("id").chain(INDEXES.iter().map(|(_, hash)| *hash)) {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        );
    }
    for (index, hash) in INDEXES {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key("id", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()?,
        );
    }
    create.send().await?;

    let bucket = format!("{prefix}-blobs");
    clients.s3.create_bucket().bucket(&bucket).send().await?;

    let mut queues = Vec::new();
    let mut dead = Vec::new();
    for class in ["high", "normal", "low"] {
        let dlq = clients
            .sqs
            .create_queue()
            .queue_name(format!("{prefix}-{class}-dlq"))
            .send()
            .await?;
        let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
        let attributes = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?;
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()});
        let queue = clients
            .sqs
            .create_queue()
            .queue_name(format!("{prefix}-{class}"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_s.to_string(),
            )
            .send()
            .await?;
        queues.push(queue.queue_url().unwrap_or_default().to_owned());
        dead.push(dlq_url);
    }
    let lookup = |k: &str| -> Option<String> {
        Some(match k {
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
        })
    };
    Ok(AwsResources::from_lookup(lookup)?)
}
