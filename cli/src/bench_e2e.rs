//! `taogate bench e2e`: the gateway's own overhead, submit to result, against simulated miners
//! that answer at once.
//!
//! Starts `taogate serve` in this process (embedded backend, workers on, a simulated subnet of
//! `good` miners) and a callback receiver beside it. Two phases, each bounded:
//!
//! 1. **Latency.** Submissions at a fixed rate (open loop), each with a callback to the
//!    receiver. Measured per task: from sending the submission to receiving its callback (what
//!    a client sees), and three of its parts: the submission's answer, the attempt's queries
//!    until the last needed answer (`timings::GATHER`) and from that answer to the stored
//!    result (`timings::SETTLE`), the last two recorded by the worker.
//! 2. **Throughput.** A backlog submitted as fast as accepted; measured: tasks completed per
//!    second, and per CPU-second of the whole process (server, simulated miners and this load
//!    generator together, read from `/proc/self/stat`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use taogate_shared::timings::{self, quantile};

/// Callback arrivals by task id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A submission answered: its task id, when it was sent and how long its answer took.
type Sent = (String, Instant, Duration);

/// What one phase measured.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Tasks submitted (accepted).
    pub submitted: usize,
    /// Tasks whose callback said `completed`.
    pub completed: usize,
    /// From the first submission to the last callback.
    pub elapsed: Duration,
    /// Submission sent → callback received, sorted.
    pub round_trip: Vec<Duration>,
    /// Submission sent → its answer received, sorted.
    pub accepted: Vec<Duration>,
    /// First query → last needed answer, sorted.
    pub gather: Vec<Duration>,
    /// Last needed answer → result stored, sorted.
    pub settle: Vec<Duration>,
    /// CPU time the process used over the phase.
    pub cpu: Duration,
}

impl Phase {
    fn line(name: &str, samples: &[Duration]) -> String {
        let ms = |q| quantile(samples, q).as_secs_f64() * 1000.0;
        format!(
            "{name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(1.0),
            samples.len()
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "{} of {} tasks completed in {secs:.2} s: {:.0} tasks/s, {:.0} tasks per CPU-second",
            self.completed,
            self.submitted,
            self.completed as f64 / secs.max(f64::EPSILON),
            self.completed as f64 / self.cpu.as_secs_f64().max(f64::EPSILON)
        )?;
        writeln!(
            f,
            "  {}",
            Self::line("submit -> callback", &self.round_trip)
        )?;
        writeln!(f, "  {}", Self::line("submit -> accepted", &self.accepted))?;
        writeln!(
            f,
            "  {}",
            Self::line("first query -> last answer", &self.gather)
        )?;
        write!(
            f,
            "  {}",
            Self::line("last answer -> stored result", &self.settle)
        )
    }
}

/// Runs both phases against the server at `api`: `rate` tasks/s for `seconds`, then `backlog`
/// tasks. Submissions ask for `service` (`tts` or `summarization`).
pub async fn run(
    api: SocketAddr,
    service: &str,
    rate: f64,
    seconds: f64,
    backlog: usize,
) -> anyhow::Result<(Phase, Phase)> {
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/done", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/done", post(arrived))
        .with_state(arrivals.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    let body = body(service, &callback)?;
    let url = format!("http://{api}/api/v1/{service}");
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;

    // Phase 1: open loop at `rate`.
    start_timings();
    let cpu = cpu_time()?;
    let started = Instant::now();
    let step = Duration::from_secs_f64(1.0 / rate);
    let count = (rate * seconds).round() as usize;
    let mut sends = Vec::with_capacity(count);
    for n in 0..count {
        tokio::time::sleep_until((started + step.mul_f64(n as f64)).into()).await;
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        sends.push(tokio::spawn(async move { submit(&http, &url, body).await }));
    }
    let sent = gather(sends).await;
    let latency = wait(&arrivals, sent, started, cpu).await?;

    // Phase 2: a backlog, sent over 32 connections as fast as accepted.
    start_timings();
    let cpu = cpu_time()?;
    let started = Instant::now();
    let mut senders = Vec::new();
    for lane in 0..32 {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        let share = backlog / 32 + usize::from(lane < backlog % 32);
        senders.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                if let Ok(sent) = submit(&http, &url, body.clone()).await {
                    out.push(sent);
                }
            }
            out
        }));
    }
    let mut sent = Vec::with_capacity(backlog);
    for s in senders {
        sent.extend(s.await?);
    }
    let throughput = wait(&arrivals, sent, started, cpu).await?;
    receiver.abort();
    Ok((latency, throughput))
}

fn body(service: &str, callback: &str) -> anyhow::Result<bytes::Bytes> {
    let value = match service {
        "tts" => json!({
            "text": "The quick brown fox jumps over the lazy dog.",
            "source_language": "en",
            "callback_url": callback,
        }),
        "summarization" => json!({
            "text": "The committee met on Tuesday to review the budget. After a long debate it \
                     approved the plan for the new library, which opens next spring, and asked \
                     for a report on its running costs by the end of the year.",
            "source_language": "en",
            "callback_url": callback,
        }),
        other => anyhow::bail!("--service takes tts or summarization, not {other}"),
    };
    Ok(serde_json::to_vec(&value)?.into())
}

fn start_timings() {
    timings::SETTLE.start();
    timings::GATHER.start();
}

/// Sends one submission; its task id, when it was sent and how long its answer took.
async fn submit(http: &reqwest::Client, url: &str, body: bytes::Bytes) -> anyhow::Result<Sent> {
    let sent = Instant::now();
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "submission answered {}",
        response.status()
    );
    let accepted: Value = response.json().await?;
    let took = sent.elapsed();
    let id = accepted["task_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no task_id in {accepted}"))?;
    Ok((id.to_owned(), sent, took))
}

async fn gather(sends: Vec<tokio::task::JoinHandle<anyhow::Result<Sent>>>) -> Vec<Sent> {
    let mut out = Vec::with_capacity(sends.len());
    for s in sends {
        match s.await {
            Ok(Ok(sent)) => out.push(sent),
            Ok(Err(e)) => eprintln!("a submission failed: {e:#}"),
            Err(e) => eprintln!("a submission failed: {e}"),
        }
    }
    out
}

/// Waits (at most 60 s after the last submission) for every sent task's callback.
async fn wait(
    arrivals: &Arrivals,
    sent: Vec<Sent>,
    started: Instant,
    cpu_before: Duration,
) -> anyhow::Result<Phase> {
    let limit = Instant::now() + Duration::from_secs(60);
    let count = |arrivals: &Arrivals| {
        arrivals.lock().map_or(0, |a| {
            sent.iter().filter(|(id, ..)| a.contains_key(id)).count()
        })
    };
    while count(arrivals) < sent.len() && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu = cpu_time()?.saturating_sub(cpu_before);
    let arrived = arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("the callback receiver failed"))?;
    let mut round_trip = Vec::with_capacity(sent.len());
    let mut last = started;
    let mut accepted: Vec<Duration> = sent.iter().map(|s| s.2).collect();
    accepted.sort_unstable();
    for (id, at, _) in &sent {
        if let Some(&done) = arrived.get(id) {
            round_trip.push(done.saturating_duration_since(*at));
            last = last.max(done);
        }
    }
    round_trip.sort_unstable();
    Ok(Phase {
        submitted: sent.len(),
        completed: round_trip.len(),
        elapsed: last.saturating_duration_since(started),
        round_trip,
        accepted,
        gather: timings::GATHER.take(),
        settle: timings::SETTLE.take(),
        cpu,
    })
}

/// The callback receiver: notes when a completed task's callback arrived.
async fn arrived(State(arrivals): State<Arrivals>, Json(event): Json<Value>) -> &'static str {
    let at = Instant::now();
    if event["status"] == "completed"
        && let Some(id) = event["task_id"].as_str()
        && let Ok(mut a) = arrivals.lock()
    {
        a.insert(id.to_owned(), at);
    }
    "ok"
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux; its clock
/// ticks are `USER_HZ`, 100 per second on x86_64 and arm64).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/self/stat"))?
            .parse()?)
    };
    // utime and stime are fields 14 and 15: indexes 11 and 12 after the state.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}
