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
    /// Requests accepted (200).
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

/// Runs the load against `addr` for `duration` over `connections` connections, sending
/// `key` (an API key) with every request if given.
pub async fn submit(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    key: Option<String>,
) -> anyhow::Result<Report> {
    let body = Bytes::from_static(br#"{"text":"The quick brown fox jumps over the lazy dog.","source_language":"en","priority":"normal"}"#);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    for index in 0..connections {
        let (body, key) = (body.clone(), key.clone());
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
                let mut request = Request::post("/api/v1/tts")
                    .header("host", addr.to_string())
                    .header("content-type", "application/json");
                if let Some(key) = &key {
                    request = request.header("x-api-key", key);
                }
                let request = request.body(Full::new(body.clone()))?;
                let sent = next
                    .zip(interval)
                    .map_or_else(Instant::now, |(at, step)| at - step);
                let response = sender.send_request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                if status == hyper::StatusCode::OK {
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
    let pick = |q| taogate_shared::timings::quantile(&all, q);
    Ok(Report {
        accepted: all.len() as u64,
        errors,
        elapsed,
        percentiles: [pick(0.5), pick(0.9), pick(0.99), pick(1.0)],
    })
}

/// Queues `n` TTS tasks in `db` (64 at a time, as concurrent submissions would), for measuring
/// submissions over a backlog.
pub async fn queue_backlog(
    db: &taogate_shared::embedded::Database,
    n: usize,
) -> anyhow::Result<()> {
    use taogate_shared::domain::{Language, Priority, ServiceKind, Task, TaskInput, now_millis};
    use taogate_shared::ports::{QueueSend, TaskCreate};
    let lanes: Vec<_> = (0..64)
        .map(|lane| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in (lane..n).step_by(64) {
                    let task = Task::new(
                        ServiceKind::Tts,
                        Priority::Normal,
                        Language::parse("en")?,
                        TaskInput::Text {
                            text: "A task of the backlog.".into(),
                        },
                        None,
                        now_millis(),
                    );
                    db.insert(&task).await?;
                    db.send(task.id, task.priority).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for lane in lanes {
        lane.await??;
    }
    Ok(())
}

/// Axon request signatures per second on one thread (one core): the signing message is built
/// and signed with sr25519 as for every miner request.
pub fn signatures(duration: Duration) -> anyhow::Result<f64> {
    use taogate_shared::bittensor::{EMPTY_BODY_HASH, Hotkey, signing_message};
    let key = Hotkey::from_secret(&taogate_shared::config::Secret::new("//Alice"))?;
    let miner = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        for _ in 0..100 {
            let message = signing_message(
                1_795_543_477_865_966_794 + count,
                key.ss58(),
                miner,
                "834635d0-e831-11f1-a5fe-02fc00000001",
                EMPTY_BODY_HASH,
            );
            std::hint::black_box(key.sign_hex(message.as_bytes()));
            count += 1;
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Decoding time of a recorded `get_neurons_lite` response: median over `runs`, and the neuron
/// count.
pub fn metagraph(hex_result: &str, runs: usize) -> anyhow::Result<(Duration, usize)> {
    let bytes = hex::decode(hex_result.trim().trim_start_matches("0x"))?;
    let mut samples = Vec::with_capacity(runs);
    let mut neurons = 0;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let decoded = taogate_shared::bittensor::decode_neurons_lite(&bytes)?;
        samples.push(started.elapsed());
        neurons = decoded.len();
    }
    samples.sort_unstable();
    Ok((samples[samples.len() / 2], neurons))
}

/// What `taogate bench score` measured: medians over the runs.
#[derive(Debug, Clone)]
pub struct ScoringReport {
    /// Consensus scoring of the transcripts, all pairs, end to end (normalization included).
    pub consensus: Duration,
    /// Transcripts and their length in words.
    pub transcripts: (usize, usize),
    /// ROUGE-L F1 of one pair from raw text (normalization and tokenization included).
    pub rouge_from_text: Duration,
    /// ROUGE-L F1 of one pair of token sequences (the LCS alone).
    pub rouge_tokens: Duration,
    /// Characters of each ROUGE input.
    pub rouge_chars: usize,
}

/// A deterministic stream of pseudo-words: a 3,000-word vocabulary drawn with a skew toward
/// frequent words, as in speech.
struct Words(u64);

impl Words {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn word(&mut self) -> String {
        const SYLLABLES: [&str; 16] = [
            "ka", "to", "ri", "mu", "sen", "da", "lo", "vi", "ne", "sha", "po", "tal", "ber",
            "qui", "zo", "fen",
        ];
        // The product of two uniforms favours small ranks.
        let rank = (self.next_u64() % 3_000) * (self.next_u64() % 3_000) / 3_000;
        let mut n = rank + 1;
        let mut w = String::new();
        while n > 0 {
            w.push_str(SYLLABLES[(n % 16) as usize]);
            n /= 16;
        }
        w
    }

    fn text(&mut self, words: usize) -> Vec<String> {
        (0..words).map(|_| self.word()).collect()
    }

    /// `base` with about `rate` of its words substituted, deleted or followed by an insertion.
    fn corrupt(&mut self, base: &[String], rate: f64) -> String {
        let threshold = (rate * 1_000_000.0) as u64;
        let mut out: Vec<String> = Vec::with_capacity(base.len() + base.len() / 10);
        for w in base {
            if self.next_u64() % 1_000_000 >= threshold {
                out.push(w.clone());
                continue;
            }
            match self.next_u64() % 3 {
                0 => out.push(self.word()),
                1 => {}
                _ => {
                    out.push(w.clone());
                    out.push(self.word());
                }
            }
        }
        out.join(" ")
    }
}

/// Times consensus scoring of `transcripts` transcripts of `words` words (each about 5 %
/// away from a common truth), and ROUGE-L on two summaries of about `chars` characters.
pub fn scoring(transcripts: usize, words: usize, chars: usize, runs: usize) -> ScoringReport {
    use taogate_shared::domain::{Language, ServiceKind};
    use taogate_shared::scoring::text::Vocabulary;
    use taogate_shared::scoring::{Answer, Entry, Job, Reference, Scorer, metrics};

    let mut words_gen = Words(0x5eed_cafe_f00d_beef);
    let truth = words_gen.text(words);
    let answers: Vec<Answer> = (0..transcripts)
        .map(|_| Answer::Text(words_gen.corrupt(&truth, 0.05)))
        .collect();
    let en = Language::parse("en").unwrap_or_else(|_| unreachable!("en is supported"));
    let defaults = taogate_shared::config::Settings::from_lookup(|_| None)
        .unwrap_or_else(|e| unreachable!("the defaults are valid: {e}"));
    let scorer = Scorer::new(&defaults.scoring);
    let job = Job {
        kind: ServiceKind::Transcription,
        language: en,
        text: None,
        audio_seconds: Some(words as f64 / 2.5),
    };
    let entries: Vec<Entry<'_>> = answers
        .iter()
        .map(|answer| Entry {
            answer,
            latency: Duration::from_secs(3),
            transcript: None,
        })
        .collect();
    let median = |mut samples: Vec<Duration>| {
        samples.sort_unstable();
        samples[samples.len() / 2]
    };
    let runs = runs.max(1);
    let consensus = median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(scorer.score(&job, &entries, &Reference::None));
                started.elapsed()
            })
            .collect(),
    );

    let mut summary = Vec::new();
    while summary.iter().map(|w: &String| w.len() + 1).sum::<usize>() < chars {
        summary.push(words_gen.word());
    }
    let (a, b) = (summary.join(" "), words_gen.corrupt(&summary, 0.1));
    let rouge_from_text = median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                let mut vocab = Vocabulary::default();
                let (x, y) = (vocab.text(&a, en), vocab.text(&b, en));
                std::hint::black_box(metrics::rouge_l(&x, &y));
                started.elapsed()
            })
            .collect(),
    );
    let mut vocab = Vocabulary::default();
    let (x, y) = (vocab.text(&a, en), vocab.text(&b, en));
    let rouge_tokens = median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(metrics::rouge_l(&x, &y));
                started.elapsed()
            })
            .collect(),
    );
    ScoringReport {
        consensus,
        transcripts: (transcripts, words),
        rouge_from_text,
        rouge_tokens,
        rouge_chars: a.len(),
    }
}
