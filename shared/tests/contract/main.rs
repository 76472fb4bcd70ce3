//! Contract tests: the same assertions against the embedded adapters and the AWS adapters
//! (LocalStack for SQS and S3, moto for DynamoDB), so the two backends keep equal semantics:
//! conditional conflicts, leases, pagination, counts, visibility timeout, receive counts, dead
//! letters, blobs and miner health.
//!
//! The AWS half needs the local emulators: `make test` starts them (localstack/local-aws.sh) and
//! exports their endpoints. Every AWS test creates its own table, queues and bucket.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

mod aws_fixture;
mod blobs;
mod health;
mod queue;
mod tasks;
mod tenants;
mod usage;

/// Runs a contract against both backends.
#[macro_export]
macro_rules! both_backends {
    ($contract:ident) => {
        mod $contract {
            #[tokio::test]
            async fn embedded() {
                let dir = tempfile::tempdir().unwrap();
                let backend = $crate::aws_fixture::embedded(dir.path());
                super::$contract(backend).await;
            }

            #[tokio::test]
            async fn aws() {
                let backend = $crate::aws_fixture::aws().await;
                super::$contract(backend).await;
            }
        }
    };
}
