//! The Lambda service's side of an SQS-triggered function, for the fault tests.
//!
//! A [`Sandbox`] runs a function binary against a [`RuntimeApi`] and starts a new process when
//! the last one died, as Lambda starts a new execution environment after a crash or a timeout.
//! An [`EventSource`] polls real SQS queues (LocalStack), invokes the function with each batch
//! and deletes the records it did not report as failures: what an event source mapping with
//! `ReportBatchItemFailures` does. The records of an invocation that crashed, timed out or
//! failed are not deleted; they come back when their visibility timeout ends, counted, and go to
//! the queue's dead-letter queue past its `maxReceiveCount`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use crate::{Function, InvocationResult, RuntimeApi};

/// How one invocation ended.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// The function answered (a response or a reported error).
    Answered(InvocationResult),
    /// The process died before answering.
    Crashed,
    /// No answer within the function's timeout: the process was stopped, as Lambda stops it.
    TimedOut,
}

/// A function's execution environment, restarted after each death.
pub struct Sandbox {
    api: RuntimeApi,
    binary: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    timeout: Duration,
    function: Option<Function>,
    starts: u32,
}

impl Sandbox {
    /// A sandbox for `binary` with `env`, whose invocations last at most `timeout` (the
    /// function's configured timeout). Logs go to `logs/`. Fault points armed in `env`
    /// (`FAILPOINTS`) are armed in the first process only: the fault strikes once, and the
    /// environment Lambda starts afterwards is a healthy one.
    pub async fn start(
        binary: impl Into<PathBuf>,
        env: Vec<(String, String)>,
        logs: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut sandbox = Self {
            api: RuntimeApi::start().await?,
            binary: binary.into(),
            env,
            logs: logs.to_owned(),
            timeout,
            function: None,
            starts: 0,
        };
        sandbox.ensure_running()?;
        Ok(sandbox)
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(f) = self.function.as_mut()
            && !f.has_exited()
        {
            return Ok(());
        }
        if self.starts > 0 {
            self.env.retain(|(k, _)| k != "FAILPOINTS");
        }
        self.starts += 1;
        let log = self.logs.join(format!("start-{}.log", self.starts));
        let binary = self.binary.to_string_lossy().into_owned();
        self.function = Some(self.api.spawn(&binary, &self.env, &log)?);
        Ok(())
    }

    /// How many processes have been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Invokes the function with `event`, starting a new process first if the last one died.
    pub async fn invoke(&mut self, event: serde_json::Value) -> anyhow::Result<Invocation> {
        self.ensure_running()?;
        let api = self.api.clone();
        let timeout = self.timeout;
        let answer =
            tokio::spawn(async move { api.invoke_within(event, timeout, timeout * 2).await });
        let started = tokio::time::Instant::now();
        loop {
            if answer.is_finished() {
                return Ok(Invocation::Answered(answer.await??));
            }
            let died = self.function.as_mut().is_none_or(Function::has_exited);
            let late = started.elapsed() > timeout + Duration::from_secs(1);
            if died || late {
                answer.abort();
                self.api.forget_pending();
                self.function = None;
                return Ok(if died {
                    Invocation::Crashed
                } else {
                    Invocation::TimedOut
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Everything every process wrote, in order: for assertion messages.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let out = self.logs.join(format!("start-{n}.log"));
                format!(
                    "--- process {n}\n{}{}",
                    std::fs::read_to_string(&out).unwrap_or_default(),
                    std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
                )
            })
            .collect()
    }
}

/// What one poll of the queues did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Records handed to the function.
    pub records: usize,
    /// Records deleted after a successful invocation.
    pub deleted: usize,
    /// Invocations whose process died or timed out.
    pub crashed: usize,
}

/// An event source mapping over real SQS queues.
pub struct EventSource {
    sqs: aws_sdk_sqs::Client,
    queues: Vec<String>,
    visibility: Duration,
}

impl EventSource {
    /// Polls `queues` (URLs, polled in order), receiving with `visibility` (the queue's
    /// visibility timeout, which Lambda requires to be at least the function's timeout).
    pub fn new(sqs: aws_sdk_sqs::Client, queues: Vec<String>, visibility: Duration) -> Self {
        Self {
            sqs,
            queues,
            visibility,
        }
    }

    /// Receives one batch (up to 10 records) from each queue and invokes `function` with each.
    pub async fn poll(&self, function: &mut Sandbox) -> anyhow::Result<Round> {
        let mut round = Round::default();
        for url in &self.queues {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(self.visibility.as_secs() as i32)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await?;
            if out.messages().is_empty() {
                continue;
            }
            let name = url.rsplit('/').next().unwrap_or_default();
            let records: Vec<serde_json::Value> =
                out.messages().iter().map(|m| record(m, name)).collect();
            round.records += records.len();
            let answer = function
                .invoke(serde_json::json!({ "Records": records }))
                .await?;
            let failed: Vec<String> = match answer {
                Invocation::Answered(InvocationResult::Response(r)) => r["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect(),
                // A failed invocation: the whole batch comes back.
                Invocation::Answered(InvocationResult::Error(_)) => continue,
                Invocation::Crashed | Invocation::TimedOut => {
                    round.crashed += 1;
                    continue;
                }
            };
            for m in out.messages() {
                let id = m.message_id().unwrap_or_default();
                if failed.iter().any(|f| f == id) {
                    continue;
                }
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await?;
                round.deleted += 1;
            }
        }
        Ok(round)
    }

    /// Messages on all the queues: visible, in flight and delayed.
    pub async fn messages(&self) -> anyhow::Result<u64> {
        let counts = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let mut total = 0;
        for url in &self.queues {
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .set_attribute_names(Some(counts.to_vec()))
                .send()
                .await?;
            for name in &counts {
                total += out
                    .attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_default();
            }
        }
        Ok(total)
    }
}

/// The Lambda event record of message `m` received from queue `name`.
/// The Lambda SQS event record of `m`, received from the queue named `name`.
pub fn record(m: &aws_sdk_sqs::types::Message, name: &str) -> serde_json::Value {
    let attribute = |a: MessageSystemAttributeName| {
        m.attributes()
            .and_then(|attrs| attrs.get(&a))
            .cloned()
            .unwrap_or_default()
    };
    serde_json::json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": {
            "ApproximateReceiveCount": attribute(MessageSystemAttributeName::ApproximateReceiveCount),
            "SentTimestamp": attribute(MessageSystemAttributeName::SentTimestamp),
        },
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
        "awsRegion": "us-east-1"
    })
}
