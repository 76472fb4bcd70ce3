//! The Lambda functions and the ports each one uses: the one table `template.yaml`'s grants are
//! held to (`cli/tests/suite/template.rs`) and the one each function's clients are built from.
//!
//! A function's clients refuse, before signing, a DynamoDB, SQS or Secrets Manager call that its
//! ports do not grant ([`ports::AWS_ACTIONS`](crate::ports::AWS_ACTIONS)), as IAM would refuse it
//! in the account. The emulators grant everything, so without this a call added to an adapter
//! would pass every local test and fail only once deployed. S3 grants are per key prefix and
//! are checked against `domain::BlobKey` by the template test instead.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

use crate::ports::AWS_ACTIONS;

/// One Lambda function of the template: its logical id and the ports its wiring hands it.
#[derive(Debug)]
pub struct Function {
    /// The logical id in `template.yaml`.
    pub name: &'static str,
    /// The ports its use case is built on, by trait name.
    pub ports: &'static [&'static str],
}

/// The submission, upload, OpenAI-compatible and validator lease routes.
pub const SUBMIT: Function = Function {
    name: "SubmitFunction",
    ports: &[
        "TaskCreate",
        "TaskReader",
        "TaskLease",
        "KeyLookup",
        "Metering",
        "Idempotency",
        "QueueSend",
        "BlobPut",
        "BlobGet",
        "BlobPresign",
    ],
};

/// The task, list, health, validator-integration and documentation routes.
pub const STATUS: Function = Function {
    name: "StatusFunction",
    ports: &[
        "TaskReader",
        "KeyLookup",
        "Metering",
        "QueueDepths",
        "BlobGet",
        "BlobPresign",
        "MinerDirectory",
    ],
};

/// The attempts, fed by the SQS event source.
pub const WORKER: Function = Function {
    name: "WorkerFunction",
    ports: &[
        "TaskLease",
        "NoticeLedger",
        "HealthStore",
        "KeyLookup",
        "BlobGet",
        "BlobPut",
        "BlobPresign",
        "MinerDirectory",
        "QueueConsume",
        "SecretSource",
    ],
};

/// The scheduled metagraph read.
pub const METAGRAPH_SYNC: Function = Function {
    name: "MetagraphSyncFunction",
    ports: &["BlobPut"],
};

/// The scheduled sweep of quiet tasks and owed callbacks.
pub const SWEEPER: Function = Function {
    name: "SweeperFunction",
    ports: &[
        "TaskSweep",
        "NoticeLedger",
        "KeyLookup",
        "QueueSend",
        "BlobPresign",
    ],
};

/// Every function of the template.
pub const ALL: [&Function; 5] = [&SUBMIT, &STATUS, &WORKER, &METAGRAPH_SYNC, &SWEEPER];

impl Function {
    /// The IAM actions its ports need (`dynamodb:GetItem`, …), S3's included.
    ///
    /// # Panics
    /// If a port has no row in [`AWS_ACTIONS`] (a test holds every port of every function to one).
    pub fn actions(&self) -> BTreeSet<&'static str> {
        self.ports
            .iter()
            .flat_map(|port| {
                AWS_ACTIONS
                    .iter()
                    .find(|(name, _)| name == port)
                    .unwrap_or_else(|| panic!("no AWS actions listed for the port {port}"))
                    .1
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// The interceptor that holds a client of this function to its grants.
    pub(crate) fn grants(&'static self) -> Grants {
        Grants {
            function: self.name,
            actions: self.actions(),
        }
    }
}

/// The IAM action prefix of an SDK service name, for the services granted per action.
fn action_prefix(service: &str) -> Option<&'static str> {
    match service {
        "DynamoDB" => Some("dynamodb"),
        "SQS" => Some("sqs"),
        "Secrets Manager" => Some("secretsmanager"),
        _ => None,
    }
}

/// Refuses a call its function's ports do not grant.
#[derive(Debug)]
pub(crate) struct Grants {
    function: &'static str,
    actions: BTreeSet<&'static str>,
}

impl Grants {
    /// `Err` naming the function and the action when `service`'s `operation` is not granted.
    fn check(&self, service: &str, operation: &str) -> Result<(), String> {
        let Some(prefix) = action_prefix(service) else {
            return Ok(());
        };
        let action = format!("{prefix}:{operation}");
        if self.actions.contains(action.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "{} is not granted {action}: none of its ports lists it (taogate_aws::functions)",
                self.function
            ))
        }
    }
}

impl Intercept for Grants {
    fn name(&self) -> &'static str {
        "Grants"
    }

    // Not `read_before_execution`: a client's interceptors run that before the operation's
    // configuration, so its name is not known yet.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<Metadata>() {
            Some(metadata) => Ok(self.check(metadata.service(), metadata.name())?),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_of_every_function_lists_its_actions() {
        for function in ALL {
            assert!(!function.actions().is_empty(), "{}", function.name);
        }
    }

    #[test]
    fn a_call_outside_the_ports_is_refused_and_named() {
        let grants = METAGRAPH_SYNC.grants();
        let refused = grants.check("DynamoDB", "GetItem").unwrap_err();
        assert!(refused.contains("MetagraphSyncFunction"), "{refused}");
        assert!(refused.contains("dynamodb:GetItem"), "{refused}");
        // S3 is granted per prefix, not here.
        assert!(grants.check("S3", "DeleteObject").is_ok());
        let worker = WORKER.grants();
        assert!(worker.check("SQS", "ChangeMessageVisibility").is_ok());
        assert!(worker.check("Secrets Manager", "GetSecretValue").is_ok());
        assert!(worker.check("SQS", "PurgeQueue").is_err());
        assert!(STATUS.grants().check("DynamoDB", "PutItem").is_err());
    }

    #[tokio::test]
    async fn a_function_s_clients_refuse_an_ungranted_call_before_sending_it() {
        let clients = crate::AwsClients::for_function(&METAGRAPH_SYNC, true).await;
        let refused = clients
            .dynamodb
            .get_item()
            .table_name("any")
            .key("id", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
            .send()
            .await
            .unwrap_err();
        let text = aws_sdk_dynamodb::error::DisplayErrorContext(&refused).to_string();
        assert!(
            text.contains("MetagraphSyncFunction is not granted dynamodb:GetItem"),
            "{text}"
        );
    }
}
