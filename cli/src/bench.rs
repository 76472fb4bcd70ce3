//! `taogate bench submit`: a bounded load test of the submission path.
//!
//! Opens `connections` keep-alive HTTP/1.1 connections and sends TTS submissions on each for a
//! fixed duration; then reports throughput and latency percentiles. It stops by itself and only
//! talks to the address it is given (loopback by default).
//!
//! Without a rate, each connection sends its next request as soon as the previous one is answered
//! (closed loop: the maximum throughput). With `rate`, requests are scheduled at that total rate,
//! spread evenly over the connections, and each latency is measured from the request's scheduled
//! time, so a stalled server is charged for the requests it delayed (no coordinated omission).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// A benchmark's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Requests answered 202.
    pub accepted: u64,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// Latency percentiles: p50, p90, p99, max.
    pub percentiles: [Duration; 4],
}

impl Report {
    /// Accepted submissions per second.
    pub fn throughput(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p50, p90, p99, max] = self.percentiles.map(|d| d.as_secs_f64() * 1000.0);
        write!(
            f,
            "accepted {} ({} errors) in {:.2} s: {:.0} submissions/s; latency p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
            self.accepted,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.throughput()
        )
    }
}

/// Runs the load against `addr` for `duration` over `connections` connections.
pub async fn submit(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<Report> {
    let body = Bytes::from_static(br#"{"text":"The quick brown fox jumps over the lazy dog.","source_language":"en","priority":"normal"}"#);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    for index in 0..connections {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(4096);
            let mut errors = 0u64;
            // Stagger the connections' schedules across one interval.
            let mut next = interval.map(|i| started + i.mul_f64(index as f64 / connections as f64));
            while Instant::now() < deadline {
                if let (Some(at), Some(step)) = (next.as_mut(), interval) {
                    tokio::time::sleep_until((*at).into()).await;
                    *at += step;
                }
                let request = Request::post("/api/v1/tts")
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let sent = next
                    .zip(interval)
                    .map_or_else(Instant::now, |(at, step)| at - step);
                let response = sender.send_request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                if status == hyper::StatusCode::ACCEPTED {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, err) = t.await??;
        all.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pick = |q: f64| -> Duration {
        if all.is_empty() {
            return Duration::ZERO;
        }
        all[((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1]
    };
    Ok(Report {
        accepted: all.len() as u64,
        errors,
        elapsed,
        percentiles: [pick(0.5), pick(0.9), pick(0.99), pick(1.0)],
    })
}
