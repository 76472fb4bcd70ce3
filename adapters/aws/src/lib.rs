//! The AWS adapters: DynamoDB for tasks, SQS for the priority queues, S3 for blobs and the miner
//! snapshot.
//!
//! Endpoints come from the SDK's standard configuration (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, …), so LocalStack or moto need no code path of their own. S3 uses
//! path-style addressing when `AWS_S3_FORCE_PATH_STYLE=true` (emulators need it).

use taogate_app::{drain, faults, ports};
use taogate_core::{config, domain};

mod dynamo;
mod dynamo_batch;
mod dynamo_tenants;
pub mod functions;
mod lambda;
mod provision;
mod s3;
mod sqs;
pub mod usage;
pub mod vars;

pub use dynamo::DynamoTasks;
pub use lambda::{handle_sqs_batch, init_tracing, invocation_deadline, metered};
pub use provision::{INDEXES, provision};
pub use s3::{S3Blobs, S3Directory, publish_snapshot};
pub use sqs::SqsQueues;
pub use usage::Usage;

use crate::config::{ConfigError, Reader, Secret};
use crate::ports::SecretSource;

/// Where the AWS resources are, read from the environment the template sets.
#[derive(Debug, Clone)]
pub struct AwsResources {
    /// `TABLE_NAME`: the task table.
    pub table: String,
    /// `BUCKET_NAME`: blobs and the snapshot.
    pub bucket: String,
    /// `QUEUE_URL_HIGH` (also serves `urgent`), `QUEUE_URL_NORMAL`, `QUEUE_URL_LOW`.
    pub queues: [String; 3],
    /// `DLQ_URL_HIGH`, `DLQ_URL_NORMAL`, `DLQ_URL_LOW`: optional, for depth reporting.
    pub dead_letter_queues: [Option<String>; 3],
    /// `SNAPSHOT_KEY`: the miner snapshot object.
    pub snapshot_key: String,
    /// `TASK_TTL_DAYS`: days finished tasks are kept.
    pub task_ttl_days: u32,
    /// `PRESIGN_TTL_SECONDS`: lifetime of presigned URLs.
    pub presign_ttl_s: u64,
    /// `AWS_S3_FORCE_PATH_STYLE`.
    pub s3_path_style: bool,
}

impl AwsResources {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads through `lookup`, reporting every missing or invalid variable at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut read = Reader::new(&lookup);
        let resources = Self {
            table: read.required(&vars::TABLE_NAME),
            bucket: read.required(&vars::BUCKET_NAME),
            queues: [
                read.required(&vars::QUEUE_URL_HIGH),
                read.required(&vars::QUEUE_URL_NORMAL),
                read.required(&vars::QUEUE_URL_LOW),
            ],
            dead_letter_queues: [
                read.optional(&vars::DLQ_URL_HIGH),
                read.optional(&vars::DLQ_URL_NORMAL),
                read.optional(&vars::DLQ_URL_LOW),
            ],
            snapshot_key: read.text(&vars::SNAPSHOT_KEY),
            task_ttl_days: read.number(&vars::TASK_TTL_DAYS),
            presign_ttl_s: read.number(&vars::PRESIGN_TTL_SECONDS),
            s3_path_style: read.flag(&vars::AWS_S3_FORCE_PATH_STYLE),
        };
        if read.problems.is_empty() {
            Ok(resources)
        } else {
            Err(ConfigError(read.problems))
        }
    }
}

/// The SDK clients, built once per process (once per Lambda container).
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// What these clients have asked of AWS (see [`usage`](self::usage)).
    pub usage: std::sync::Arc<Usage>,
}

impl AwsClients {
    /// Loads the standard AWS configuration (region, credentials, endpoints) and builds clients
    /// that count what they use into [`AwsClients::usage`]; `s3_path_style` is
    /// [`AwsResources::s3_path_style`]. Makes no network call.
    pub async fn load(s3_path_style: bool) -> Self {
        Self::build(&Self::loader().load().await, s3_path_style, None)
    }

    /// [`AwsClients::load`] for the Lambda function `function`: a DynamoDB, SQS or Secrets
    /// Manager call its ports do not grant is refused before it is sent
    /// ([`functions`](self::functions)).
    pub async fn for_function(function: &'static functions::Function, s3_path_style: bool) -> Self {
        Self::build(&Self::loader().load().await, s3_path_style, Some(function))
    }

    /// Region, credentials and endpoints from the standard sources, over one rustls client.
    fn loader() -> aws_config::ConfigLoader {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
    }

    fn build(
        config: &aws_config::SdkConfig,
        s3_path_style: bool,
        function: Option<&'static functions::Function>,
    ) -> Self {
        let keys: Vec<&str> = INDEXES.iter().map(|(_, key)| *key).collect();
        let counts = std::sync::Arc::new(Usage::with_indexes("id", &keys));
        let counted = || usage::UsageInterceptor::new(counts.clone());
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(s3_path_style)
            .interceptor(counted())
            .build();
        let mut dynamodb_config =
            aws_sdk_dynamodb::config::Builder::from(config).interceptor(counted());
        if let Some(function) = function {
            dynamodb_config = dynamodb_config.interceptor(function.grants());
        }
        let dynamodb_config = dynamodb_config.build();
        let mut sqs_config = aws_sdk_sqs::config::Builder::from(config).interceptor(counted());
        if let Some(function) = function {
            sqs_config = sqs_config.interceptor(function.grants());
        }
        let sqs_config = sqs_config.build();
        let mut secrets_config =
            aws_sdk_secretsmanager::config::Builder::from(config).interceptor(counted());
        if let Some(function) = function {
            secrets_config = secrets_config.interceptor(function.grants());
        }
        let secrets_config = secrets_config.build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb_config),
            sqs: aws_sdk_sqs::Client::from_conf(sqs_config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets_config),
            usage: counts,
        }
    }
}

impl SecretSource for AwsClients {
    /// The string of the Secrets Manager secret named by the environment variable `name`, if
    /// that is set. Errors name the secret, never its value.
    async fn secret(&self, name: &str) -> anyhow::Result<Option<Secret>> {
        let Some(arn) = std::env::var(name).ok().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the secret {arn} ({name}): {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                )
            })?;
        let raw = out
            .secret_string()
            .ok_or_else(|| anyhow::anyhow!("the secret {arn} ({name}) holds no string"))?;
        Ok(Some(Secret::new(raw.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_resources_are_reported_together() {
        let err =
            AwsResources::from_lookup(|k| (k == "TABLE_NAME").then(|| "t".to_owned())).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        assert!(err.to_string().contains("BUCKET_NAME"));
    }

    fn with(extra: &[(&str, &str)]) -> Result<AwsResources, ConfigError> {
        let mut set: std::collections::HashMap<String, String> = vars::ALL
            .iter()
            .filter(|v| v.default == config::vars::Fallback::Required)
            .map(|v| (v.name.to_owned(), format!("{}-value", v.name)))
            .collect();
        set.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        AwsResources::from_lookup(|k| set.get(k).cloned())
    }

    #[test]
    fn every_declared_variable_is_read_and_defaults_are_the_declared_ones() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        let _ = AwsResources::from_lookup(|k| {
            asked.lock().unwrap().insert(k.to_owned());
            None
        });
        let declared: std::collections::BTreeSet<String> =
            vars::ALL.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(asked.into_inner().unwrap(), declared);

        let resources = with(&[]).unwrap();
        assert_eq!(resources.snapshot_key, domain::BlobKey::snapshot().as_str());
        assert_eq!(resources.task_ttl_days, 30);
        assert_eq!(resources.presign_ttl_s, 900);
        assert!(!resources.s3_path_style);
        assert_eq!(resources.table, "TABLE_NAME-value");
    }

    #[test]
    fn out_of_range_and_malformed_values_are_refused_each_by_name() {
        let err = with(&[
            ("PRESIGN_TTL_SECONDS", "10"),
            ("TASK_TTL_DAYS", "5000000000"),
            ("AWS_S3_FORCE_PATH_STYLE", "yes"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        for name in [
            "PRESIGN_TTL_SECONDS",
            "TASK_TTL_DAYS",
            "AWS_S3_FORCE_PATH_STYLE",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
        assert!(
            with(&[("AWS_S3_FORCE_PATH_STYLE", "1")])
                .unwrap()
                .s3_path_style
        );
    }
}
