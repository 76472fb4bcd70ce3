//! What a task costs on AWS, measured end to end on the local emulators.
//!
//! [`run`] starts the real `submit`, `worker` and `status` binaries against Runtime API
//! emulators, with simulated miners published as the worker's snapshot, and takes each task the
//! way a deployment does: `POST` through the submit function; one SQS receive, the worker's
//! invocation and the delete, as the event source mapping does (one record per batch, the
//! figure with the least sharing); one `GET /api/v1/tasks/{id}` through the status function.
//! Each function logs its AWS usage after every invocation ([`Usage::log_invocation`]); the run
//! reads those lines back, so what is counted is what the deployed binaries would log.
//!
//! The first task of the run (a warm-up, not counted) pays for connections and caches.
//!
//! [`Usage::log_invocation`]: taogate_shared::aws::Usage::log_invocation

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use taogate_shared::aws::usage::{UsageReport, merge};
use taogate_shared::domain::ServiceKind;
use taogate_simulator::Behaviour;

use crate::{Function, InvocationResult, RuntimeApi, fresh_resources};

/// The function binaries to measure.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The submit function.
    pub submit: PathBuf,
    /// The status function.
    pub status: PathBuf,
    /// The worker function.
    pub worker: PathBuf,
}

impl Binaries {
    /// The binaries in `dir` (a cargo target directory such as `target/release`).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            submit: dir.join("submit"),
            status: dir.join("status"),
            worker: dir.join("worker"),
        }
    }
}

/// One function's share of a service's tasks.
#[derive(Debug, Clone)]
pub struct FunctionCost {
    /// `submit`, `worker` or `status`.
    pub function: &'static str,
    /// Each invocation's time, sorted.
    pub durations: Vec<Duration>,
    /// What all its counted invocations used.
    pub usage: UsageReport,
}

impl FunctionCost {
    /// The median invocation time.
    pub fn median(&self) -> Duration {
        self.durations
            .get(self.durations.len() / 2)
            .copied()
            .unwrap_or_default()
    }

    /// Billed milliseconds over all invocations (each rounded up to 1 ms, as Lambda bills).
    pub fn billed_ms(&self) -> u64 {
        self.durations
            .iter()
            .map(|d| d.as_micros().div_ceil(1000) as u64)
            .sum()
    }
}

/// One service's measured tasks.
#[derive(Debug, Clone)]
pub struct ServiceCost {
    /// The service.
    pub service: ServiceKind,
    /// Tasks counted.
    pub tasks: usize,
    /// Submit, worker, status, in that order.
    pub functions: Vec<FunctionCost>,
}

/// What the run's miners do.
#[derive(Debug, Clone, Copy)]
pub struct Miners {
    /// How many answer each task.
    pub count: usize,
    /// How long each takes to answer.
    pub delay: Duration,
}

/// Runs `tasks` tasks of each service through the three functions and returns what each used.
/// Needs the local emulators.
pub async fn run(
    binaries: &Binaries,
    tasks: usize,
    miners: Miners,
    logs: &Path,
) -> anyhow::Result<Vec<ServiceCost>> {
    let (clients, resources, mut env) = fresh_resources(3).await?;
    let behaviour = if miners.delay.is_zero() {
        Behaviour::Good
    } else {
        Behaviour::Slow
    };
    let (_subnet, _) = crate::subnet_in_snapshot(
        &clients,
        &resources,
        vec![behaviour; miners.count],
        miners.delay,
    )
    .await?;
    env.extend(
        [
            ("BT_HOTKEY_URI", "//Alice".to_owned()),
            ("MAX_MINERS_PER_REQUEST", miners.count.to_string()),
            ("TASK_TIMEOUT", "30".to_owned()),
            ("API_AUTH", "optional".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    std::fs::create_dir_all(logs)?;
    let mut functions = [
        Started::spawn(&binaries.submit, &env, logs, "submit").await?,
        Started::spawn(&binaries.worker, &env, logs, "worker").await?,
        Started::spawn(&binaries.status, &env, logs, "status").await?,
    ];
    let queue = &resources.queues[1];

    one_task(&functions, &clients.sqs, queue, ServiceKind::Tts).await?;
    let mut counted = Vec::new();
    for service in [
        ServiceKind::Transcription,
        ServiceKind::Summarization,
        ServiceKind::Tts,
    ] {
        for started in &mut functions {
            started.usage_since_last()?;
        }
        let mut durations: [Vec<Duration>; 3] = Default::default();
        for _ in 0..tasks {
            let times = one_task(&functions, &clients.sqs, queue, service).await?;
            for (all, t) in durations.iter_mut().zip(times) {
                all.push(t);
            }
        }
        let mut used = Vec::new();
        for (started, mut times) in functions.iter_mut().zip(durations) {
            times.sort();
            used.push(FunctionCost {
                function: started.name,
                durations: times,
                usage: started.usage_since_last()?,
            });
        }
        counted.push(ServiceCost {
            service,
            tasks,
            functions: used,
        });
    }
    Ok(counted)
}

/// One task of `service` through `functions` (submit, worker, status), taken from `queue` as
/// the event source mapping takes it; returns each function's time.
async fn one_task(
    functions: &[Started; 3],
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    service: ServiceKind,
) -> anyhow::Result<[Duration; 3]> {
    let [submit, worker, status] = functions;
    let (accepted, submitted) = submit.invoke(submission(service)).await?;
    let id = accepted["task_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no task id in {accepted}"))?
        .to_owned();
    let (message, name) = receive(sqs, queue).await?;
    let (_, worked) = worker
        .invoke(json!({ "Records": [crate::event_source::record(&message, &name)] }))
        .await?;
    sqs.delete_message()
        .queue_url(queue)
        .receipt_handle(message.receipt_handle().unwrap_or_default())
        .send()
        .await?;
    let path = format!("/api/v1/tasks/{id}");
    let (task, read) = status
        .invoke(crate::http_event("GET", &path, "", None))
        .await?;
    anyhow::ensure!(
        task["status"] == "completed",
        "the {service:?} task did not complete: {task}"
    );
    Ok([submitted, worked, read])
}

/// A function process with its emulator, and how much of its log has been read.
struct Started {
    name: &'static str,
    api: RuntimeApi,
    _function: Function,
    log: PathBuf,
    lines_read: usize,
}

impl Started {
    async fn spawn(
        binary: &Path,
        env: &[(String, String)],
        logs: &Path,
        name: &'static str,
    ) -> anyhow::Result<Self> {
        let api = RuntimeApi::start().await?;
        let log = logs.join(format!("{name}.log"));
        let function = api.spawn(&binary.to_string_lossy(), env, &log)?;
        let limit = Instant::now() + Duration::from_secs(20);
        while api.first_poll().is_none() {
            anyhow::ensure!(
                Instant::now() < limit,
                "{} never polled; see {}",
                binary.display(),
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Self {
            name,
            api,
            _function: function,
            log,
            lines_read: 0,
        })
    }

    /// Invokes, and returns the answer's body (parsed for HTTP answers) and the time taken.
    async fn invoke(&self, event: Value) -> anyhow::Result<(Value, Duration)> {
        let started = Instant::now();
        let answer = self.api.invoke(event, Duration::from_secs(120)).await?;
        let took = started.elapsed();
        match answer {
            InvocationResult::Response(r) => {
                if let Some(code) = r["statusCode"].as_u64() {
                    anyhow::ensure!(code == 200, "answered {code}: {r}");
                    let body = r["body"].as_str().unwrap_or("null");
                    return Ok((serde_json::from_str(body)?, took));
                }
                Ok((r, took))
            }
            InvocationResult::Error(e) => anyhow::bail!("the invocation failed: {e}"),
        }
    }

    /// The usage logged since the last call (the functions log JSON lines on stdout).
    fn usage_since_last(&mut self) -> anyhow::Result<UsageReport> {
        let text = std::fs::read_to_string(&self.log)?;
        let lines: Vec<&str> = text.lines().collect();
        let used = usage_in(&lines[self.lines_read.min(lines.len())..]);
        self.lines_read = lines.len();
        Ok(used)
    }
}

/// The sum of the `aws_usage` fields of JSON log lines.
pub fn usage_in(lines: &[&str]) -> UsageReport {
    let mut total = UsageReport::new();
    for line in lines {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(used) = entry["fields"]["aws_usage"]
            .as_str()
            .and_then(|u| serde_json::from_str::<UsageReport>(u).ok())
        {
            merge(&mut total, &used);
        }
    }
    total
}

/// A submission of `service` as a client sends it: a one-second WAV as multipart, or JSON.
fn submission(service: ServiceKind) -> Value {
    use base64::Engine;
    let text = "Queues decouple submission from work, and workers scale with the depth of \
        the queue. Dead letters keep failed messages for inspection.";
    match service {
        ServiceKind::Transcription => {
            let boundary = "cost-boundary-41c7";
            let samples = taogate_shared::audio::tone(1.0, 330.0, 16_000);
            let wav = taogate_shared::audio::wav_pcm16(&samples, 16_000, Some(text));
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"audio_file\"; \
                 filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(&wav);
            body.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Disposition: form-data; \
                     name=\"source_language\"\r\n\r\nen\r\n--{boundary}--\r\n"
                )
                .as_bytes(),
            );
            let mut event = crate::http_event("POST", "/api/v1/transcription", "", None);
            event["headers"]["content-type"] =
                format!("multipart/form-data; boundary={boundary}").into();
            event["body"] = base64::engine::general_purpose::STANDARD
                .encode(body)
                .into();
            event["isBase64Encoded"] = true.into();
            event
        }
        ServiceKind::Summarization => crate::http_event(
            "POST",
            "/api/v1/summarization",
            "",
            Some(&json!({"text": text, "source_language": "en"}).to_string()),
        ),
        ServiceKind::Tts => crate::http_event(
            "POST",
            "/api/v1/tts",
            "",
            Some(&json!({"text": text, "source_language": "en"}).to_string()),
        ),
    }
}

/// The next message of `queue`, as the event source mapping receives it, and the queue's name.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> anyhow::Result<(aws_sdk_sqs::types::Message, String)> {
    let name = queue.rsplit('/').next().unwrap_or_default().to_owned();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        if let Some(m) = out.messages.unwrap_or_default().into_iter().next() {
            return Ok((m, name));
        }
    }
    anyhow::bail!("no message arrived on {queue}")
}

/// List prices in US dollars, US East (N. Virginia), on-demand, without free tiers.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// HTTP API, per request (first 300 million a month).
    pub http_api_request: f64,
    /// Lambda, per request.
    pub lambda_request: f64,
    /// Lambda on arm64, per GB-second (first 7.5 billion GB-s a month).
    pub lambda_arm64_gb_s: f64,
    /// DynamoDB on-demand, per write request unit.
    pub dynamodb_write_unit: f64,
    /// DynamoDB on-demand, per read request unit.
    pub dynamodb_read_unit: f64,
    /// SQS standard queue, per request (64 KiB chunk).
    pub sqs_request: f64,
    /// S3 Standard PUT, COPY, POST, LIST, per request.
    pub s3_put_class: f64,
    /// S3 Standard GET and the other requests, per request.
    pub s3_get_class: f64,
}

/// The prices [`report`] uses; BENCHMARKS.md states their date.
pub const PRICES: Prices = Prices {
    http_api_request: 1.00e-6,
    lambda_request: 0.20e-6,
    lambda_arm64_gb_s: 0.000_013_333_4,
    dynamodb_write_unit: 0.625e-6,
    dynamodb_read_unit: 0.125e-6,
    sqs_request: 0.40e-6,
    s3_put_class: 0.005e-3,
    s3_get_class: 0.0004e-3,
};

/// DynamoDB operations that read; the others write.
const DYNAMODB_READS: [&str; 5] = [
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];

/// S3 operations priced as PUT-class; deletes are free; the rest are GET-class.
fn s3_class(operation: &str) -> Option<bool> {
    const PUT_CLASS: [&str; 6] = ["Put", "Copy", "Post", "List", "Create", "Upload"];
    if operation.starts_with("Delete") {
        None
    } else {
        Some(PUT_CLASS.iter().any(|p| operation.starts_with(p)))
    }
}

/// One function's use per task, in billable units.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PerTask {
    /// Invocations.
    pub invocations: f64,
    /// Billed GB-seconds at the function's memory size.
    pub gb_s: f64,
    /// DynamoDB read units: estimated from sizes, and as reported.
    pub read_units: (f64, f64),
    /// DynamoDB base-table write units: estimated from sizes, and as reported.
    pub write_units: (f64, f64),
    /// DynamoDB index write units, estimated.
    pub index_units: f64,
    /// SQS requests as priced.
    pub sqs_requests: f64,
    /// S3 PUT-class requests.
    pub s3_put: f64,
    /// S3 GET-class requests.
    pub s3_get: f64,
    /// Bytes sent to and received from AWS.
    pub bytes: (f64, f64),
}

impl PerTask {
    /// `cost`'s use per task, for a function of `memory_mb`.
    pub fn of(cost: &FunctionCost, tasks: usize, memory_mb: u32) -> Self {
        let n = tasks.max(1) as f64;
        let mut per = Self {
            invocations: cost.durations.len() as f64 / n,
            gb_s: cost.billed_ms() as f64 / 1000.0 * f64::from(memory_mb) / 1024.0 / n,
            ..Self::default()
        };
        for (name, used) in &cost.usage {
            let (service, operation) = name.split_once('.').unwrap_or((name, ""));
            per.bytes.0 += used.bytes_sent as f64 / n;
            per.bytes.1 += used.bytes_received as f64 / n;
            let units = (used.capacity_estimated / n, used.capacity_reported / n);
            match service {
                "DynamoDB" if DYNAMODB_READS.contains(&operation) => {
                    per.read_units.0 += units.0;
                    per.read_units.1 += units.1;
                }
                "DynamoDB" => {
                    per.write_units.0 += units.0;
                    per.write_units.1 += units.1;
                    per.index_units += used.index_units_estimated / n;
                }
                "SQS" => per.sqs_requests += used.billed_requests as f64 / n,
                "S3" => match s3_class(operation) {
                    Some(true) => per.s3_put += used.billed_requests as f64 / n,
                    Some(false) => per.s3_get += used.billed_requests as f64 / n,
                    None => {}
                },
                _ => {}
            }
        }
        per
    }
}

/// The memory size `template` (a SAM template) gives the function built from `binary`, or the
/// `Globals` one.
pub fn memory_mb(template: &str, binary: &str) -> Option<u32> {
    let size = |line: &str| {
        line.trim()
            .strip_prefix("MemorySize:")
            .and_then(|v| v.trim().parse().ok())
    };
    let lines: Vec<&str> = template.lines().collect();
    let own = lines
        .iter()
        .position(|l| l.trim() == format!("Binary: {binary}"))
        .and_then(|at| {
            lines[at..]
                .iter()
                .skip(1)
                .take_while(|l| !l.contains("Type: AWS::Serverless::Function"))
                .find_map(|l| size(l))
        });
    own.or_else(|| {
        let globals = lines.iter().position(|l| l.trim_end() == "Globals:")?;
        lines[globals..]
            .iter()
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .find_map(|l| size(l))
    })
}

/// Markdown tables of `costs`: each function's use per task, then dollars per million tasks.
/// `memory` gives each function's memory size.
pub fn report(costs: &[ServiceCost], memory: impl Fn(&str) -> u32) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| service | function | MB | median | GB-s | DynamoDB read units (est. / reported) | write units (est. / reported) | index writes (est.) | SQS | S3 PUT | S3 GET | bytes out / in |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut dollars = Vec::new();
    for cost in costs {
        let mut total = PerTask::default();
        for f in &cost.functions {
            let mb = memory(f.function);
            let p = PerTask::of(f, cost.tasks, mb);
            let _ = writeln!(
                out,
                "| {:?} | {} | {mb} | {:.1} ms | {:.5} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} |",
                cost.service,
                f.function,
                f.median().as_secs_f64() * 1000.0,
                p.gb_s,
                p.read_units.0,
                p.read_units.1,
                p.write_units.0,
                p.write_units.1,
                p.index_units,
                p.sqs_requests,
                p.s3_put,
                p.s3_get,
                p.bytes.0,
                p.bytes.1
            );
            total.invocations += p.invocations;
            total.gb_s += p.gb_s * PRICES.lambda_arm64_gb_s;
            total.read_units.0 += p.read_units.0;
            total.write_units.0 += p.write_units.0;
            total.index_units += p.index_units;
            total.sqs_requests += p.sqs_requests;
            total.s3_put += p.s3_put;
            total.s3_get += p.s3_get;
        }
        dollars.push((cost.service, total));
    }
    let _ = writeln!(
        out,
        "\nDollars per million tasks (one status read per task; the event source mapping's \
         receive and delete, two SQS requests per batch of one; for speech, the client's \
         download of the audio):\n"
    );
    let _ = writeln!(
        out,
        "| service | HTTP API | Lambda requests | Lambda GB-s | DynamoDB reads | DynamoDB writes | of which indexes | SQS | S3 | total |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let million = 1e6;
    for (service, t) in dollars {
        let api = 2.0 * PRICES.http_api_request * million;
        let requests = t.invocations * PRICES.lambda_request * million;
        let compute = t.gb_s * million;
        let reads = t.read_units.0 * PRICES.dynamodb_read_unit * million;
        let indexes = t.index_units * PRICES.dynamodb_write_unit * million;
        let writes = t.write_units.0 * PRICES.dynamodb_write_unit * million + indexes;
        let sqs = (t.sqs_requests + 2.0) * PRICES.sqs_request * million;
        let client_get = if service == ServiceKind::Tts {
            1.0
        } else {
            0.0
        };
        let s3 = (t.s3_put * PRICES.s3_put_class + (t.s3_get + client_get) * PRICES.s3_get_class)
            * million;
        let total = api + requests + compute + reads + writes + sqs + s3;
        let _ = writeln!(
            out,
            "| {service:?} | {api:.2} | {requests:.2} | {compute:.2} | {reads:.2} | {writes:.2} | {indexes:.2} | {sqs:.2} | {s3:.2} | **{total:.2}** |"
        );
    }
    out
}

/// A markdown table of each function's AWS calls per task, by operation.
pub fn operations(costs: &[ServiceCost]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "| service | function | operation | requests | capacity units (est. / reported) | index writes (est.) | bytes out / in |\n|---|---|---|---|---|---|---|\n",
    );
    for cost in costs {
        let n = cost.tasks.max(1) as f64;
        for f in &cost.functions {
            for (op, u) in &f.usage {
                let _ = writeln!(
                    out,
                    "| {:?} | {} | {op} | {:.2} | {:.2} / {:.2} | {:.2} | {:.0} / {:.0} |",
                    cost.service,
                    f.function,
                    u.requests as f64 / n,
                    u.capacity_estimated / n,
                    u.capacity_reported / n,
                    u.index_units_estimated / n,
                    u.bytes_sent as f64 / n,
                    u.bytes_received as f64 / n
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "Globals:\n  Function:\n    MemorySize: 256\n    Timeout: 10\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: worker\n    Properties:\n      MemorySize: 1024\n  B:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: status\n    Properties:\n      Timeout: 5\n  C:\n    Type: AWS::Serverless::Function\n    Properties:\n      MemorySize: 512\n";

    #[test]
    fn memory_comes_from_the_function_or_the_globals() {
        assert_eq!(memory_mb(TEMPLATE, "worker"), Some(1024));
        assert_eq!(memory_mb(TEMPLATE, "status"), Some(256));
    }

    #[test]
    fn usage_lines_are_summed_and_other_lines_skipped() {
        let line = |n: u64| {
            json!({"level": "INFO", "fields": {"message": "AWS usage of this invocation",
                "aws_usage": json!({"SQS.SendMessage": {"requests": n, "billed_requests": n,
                "bytes_sent": 10, "bytes_received": 20, "capacity_reported": 0.0,
                "capacity_estimated": 0.0}}).to_string()}})
            .to_string()
        };
        let (a, b) = (line(1), line(2));
        let used = usage_in(&[a.as_str(), "not json", r#"{"fields":{}}"#, b.as_str()]);
        assert_eq!(used["SQS.SendMessage"].requests, 3);
        assert_eq!(used["SQS.SendMessage"].bytes_sent, 20);
    }
}
