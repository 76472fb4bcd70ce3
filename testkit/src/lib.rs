//! Test support: a Lambda Runtime API emulator for the Lambda functions, the SQS event source
//! mapping that drives them from real queues ([`event_source`]), what a task costs on AWS
//! ([`cost`]), and a fake Subtensor node ([`fake_node`]).
//!
//! It serves the handful of routes a runtime client calls (`GET …/invocation/next`,
//! `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error`, `POST …/init/error`) on
//! loopback, so a test can start a real `bootstrap` binary with `AWS_LAMBDA_RUNTIME_API` pointing
//! here, hand it events, and read what it answered. It also records when the first poll arrived,
//! which is how cold start is measured.

pub mod cost;
pub mod event_source;
pub mod fake_node;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, oneshot};

/// What a function answered to one invocation.
#[derive(Debug, Clone)]
pub enum InvocationResult {
    /// `POST …/response`: the handler's output.
    Response(serde_json::Value),
    /// `POST …/error`: the handler failed.
    Error(serde_json::Value),
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<(String, serde_json::Value, Duration)>,
    waiting: Vec<(String, oneshot::Sender<InvocationResult>)>,
    first_poll: Option<Instant>,
    init_error: Option<serde_json::Value>,
    next_id: u64,
}

/// A running emulator.
#[derive(Clone)]
pub struct RuntimeApi {
    /// Where it listens (`AWS_LAMBDA_RUNTIME_API` is `host:port`).
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    ready: Arc<Notify>,
}

impl RuntimeApi {
    /// Starts an emulator on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = Self {
            addr: listener.local_addr()?,
            inner: Arc::default(),
            ready: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(api)
    }

    /// Invokes the function with `event` and waits (at most `limit`) for its answer. The
    /// invocation's deadline is 15 minutes away, Lambda's longest timeout.
    pub async fn invoke(
        &self,
        event: serde_json::Value,
        limit: Duration,
    ) -> anyhow::Result<InvocationResult> {
        self.invoke_within(event, Duration::from_secs(900), limit)
            .await
    }

    /// Invokes the function with `event` as a function whose timeout is `timeout` (the deadline
    /// the runtime is told), and waits (at most `limit`) for its answer.
    pub async fn invoke_within(
        &self,
        event: serde_json::Value,
        timeout: Duration,
        limit: Duration,
    ) -> anyhow::Result<InvocationResult> {
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            inner.next_id += 1;
            let id = format!("request-{}", inner.next_id);
            inner.queue.push_back((id.clone(), event, timeout));
            inner.waiting.push((id, tx));
        }
        self.ready.notify_waiters();
        Ok(tokio::time::timeout(limit, rx).await??)
    }

    /// Drops invocations not yet answered: their process died, and Lambda would not hand the
    /// same invocation to the next one.
    pub fn forget_pending(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.queue.clear();
            inner.waiting.clear();
        }
    }

    /// When the function first asked for an invocation.
    pub fn first_poll(&self) -> Option<Instant> {
        self.inner.lock().ok().and_then(|i| i.first_poll)
    }

    /// The error reported at initialization, if any.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.inner.lock().ok().and_then(|i| i.init_error.clone())
    }

    /// Starts `binary` as a Lambda function against this emulator, with `env` on top of the
    /// variables Lambda always sets. Its output goes to `log`.
    pub fn spawn(
        &self,
        binary: &str,
        env: &[(String, String)],
        log: &std::path::Path,
    ) -> anyhow::Result<Function> {
        let mut cmd = Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test-function")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test-function")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log)?)
            .stderr(std::fs::File::create(log.with_extension("err"))?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(Function {
            child: cmd.spawn()?,
            started: Instant::now(),
        })
    }
}

/// A function process; killed when dropped.
pub struct Function {
    child: Child,
    /// When it was started.
    pub started: Instant,
}

impl Function {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (crashed, or returned from `main`).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn next(State(api): State<RuntimeApi>) -> Response {
    loop {
        let notified = api.ready.notified();
        {
            let Ok(mut inner) = api.inner.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            inner.first_poll.get_or_insert_with(Instant::now);
            if let Some((id, event, timeout)) = inner.queue.pop_front() {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| (d + timeout).as_millis())
                    .unwrap_or_default();
                let mut headers = HeaderMap::new();
                for (name, value) in [
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:000000000000:function:test-function".into(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000".into(),
                    ),
                    ("content-type", "application/json".into()),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        headers.insert(name, v);
                    }
                }
                return (headers, event.to_string()).into_response();
            }
        }
        notified.await;
    }
}

fn settle(api: &RuntimeApi, id: &str, answer: InvocationResult) -> StatusCode {
    let Ok(mut inner) = api.inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match inner.waiting.iter().position(|(w, _)| w == id) {
        Some(i) => {
            let (_, tx) = inner.waiting.remove(i);
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&api, &id, InvocationResult::Response(json(&body)))
}

async fn error(State(api): State<RuntimeApi>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, InvocationResult::Error(json(&body)))
}

async fn init_error(State(api): State<RuntimeApi>, body: Bytes) -> StatusCode {
    if let Ok(mut inner) = api.inner.lock() {
        inner.init_error = Some(json(&body));
    }
    StatusCode::ACCEPTED
}

/// Fresh AWS resources on the local emulators, and the environment that names them.
pub async fn fresh_resources(
    max_attempts: u32,
) -> anyhow::Result<(
    taogate_shared::aws::AwsClients,
    taogate_shared::aws::AwsResources,
    Vec<(String, String)>,
)> {
    anyhow::ensure!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "these tests need the local emulators: run `make test`, or `eval \"$(localstack/local-aws.sh start)\"` first"
    );
    let clients = taogate_shared::aws::AwsClients::load(true).await;
    let prefix = format!(
        "fn-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
            % (1 << 48)
    );
    let r = taogate_shared::aws::provision(&clients, &prefix, max_attempts, 60).await?;
    let mut env = vec![
        ("TABLE_NAME".to_owned(), r.table.clone()),
        ("BUCKET_NAME".to_owned(), r.bucket.clone()),
        ("AWS_S3_FORCE_PATH_STYLE".to_owned(), "true".to_owned()),
        ("MAX_ATTEMPTS".to_owned(), max_attempts.to_string()),
        // The simulated miners the tests start listen on loopback.
        ("MINER_ALLOWLIST".to_owned(), "127.0.0.0/8".to_owned()),
    ];
    for (i, class) in ["HIGH", "NORMAL", "LOW"].iter().enumerate() {
        env.push((format!("QUEUE_URL_{class}"), r.queues[i].clone()));
        if let Some(dlq) = &r.dead_letter_queues[i] {
            env.push((format!("DLQ_URL_{class}"), dlq.clone()));
        }
    }
    Ok((clients, r, env))
}

/// An API Gateway HTTP API (payload 2.0) event.
pub fn http_event(method: &str, path: &str, query: &str, body: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "api.example.test"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "api",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test"},
            "requestId": "request",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "25/Nov/2026:02:40:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Simulated miners behaving as `behaviours` (`Slow` ones answering after `slow_delay`),
/// published as the worker's miner snapshot. Keep the subnet alive while the worker runs.
pub async fn subnet_in_snapshot(
    clients: &taogate_shared::aws::AwsClients,
    resources: &taogate_shared::aws::AwsResources,
    behaviours: Vec<taogate_simulator::Behaviour>,
    slow_delay: Duration,
) -> anyhow::Result<(
    taogate_simulator::SimulatedSubnet,
    taogate_shared::aws::S3Blobs,
)> {
    use taogate_shared::ports::BlobPut;
    let subnet = taogate_simulator::SimulatedSubnet::start(taogate_simulator::SimOptions {
        behaviours,
        slow_delay,
        ..taogate_simulator::SimOptions::mixed(0)
    })
    .await?;
    let blobs = taogate_shared::aws::S3Blobs::new(clients.s3.clone(), resources);
    blobs
        .put(
            &resources.snapshot_key,
            serde_json::to_vec(&subnet.snapshot())?.into(),
            "application/json",
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok((subnet, blobs))
}
