//! What both wire protocols share once a request is sent: reading a miner's answer within bounds,
//! and classifying it the way the Python dendrite does, with messages an operator understands.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::domain::Outcome;
use crate::domain::{MinerReply, SynapseAnswer};

/// A request nonce: nanoseconds since the epoch, always above the last one this process issued,
/// so two requests in the same nanosecond still differ (both protocols refuse a reused nonce).
pub(super) fn next_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// The bytes of miner answers one process may hold at once (`MAX_ANSWER_MEMORY`), shared by
/// every query of a client, counted in KiB. An answer's first [`FREE_ANSWER_BYTES`] need no
/// share (every text answer of an ordinary task fits); past them the answer reserves its whole
/// limit at once, waiting for room if need be (the sender is held back by TCP meanwhile), so
/// that no two answers can each hold part of the budget while waiting for the rest. Once
/// parsed it keeps only its output's share, and gives that back when the reply is dropped.
pub type AnswerMemory = crate::memory::ByteBudget;

/// What one answer may hold without a share of [`AnswerMemory`].
pub const FREE_ANSWER_BYTES: usize = 256 * 1024;

/// The HTTP client miners are called with: pooled connections, no redirects.
pub(super) fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A request body sent from `parts` without joining them (the middle one is the shared,
/// possibly 67 MB, base64 input), and its length.
pub(super) fn streamed(parts: [Bytes; 3]) -> (reqwest::Body, usize) {
    let total = parts.iter().map(Bytes::len).sum();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(
        parts.into_iter().map(Ok::<_, std::io::Error>),
    ));
    (body, total)
}

/// Reads an answer: a 200 is parsed into the fields kept (echoed input is skipped, never
/// stored; whole from memory within [`FREE_ANSWER_BYTES`], streamed past them) and at most
/// `allowed` bytes are read, of which at most `kept` (the answer's own
/// limit) are kept, against `memory`; any other status keeps the start of its body.
pub(super) async fn read_answer(
    response: reqwest::Response,
    allowed: usize,
    kept: usize,
    memory: &AnswerMemory,
) -> Result<Answered, MinerReplyError> {
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        // Refusals are small ({"message": …}); keep only the start.
        let mut head = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(MinerReplyError::Transport)?;
            head.extend_from_slice(
                &chunk[..chunk
                    .len()
                    .min(ERROR_BODY_BYTES - head.len().min(ERROR_BODY_BYTES))],
            );
            if head.len() >= ERROR_BODY_BYTES {
                break;
            }
        }
        return Ok(Answered::Refused(status.as_u16(), head.freeze()));
    }
    if response
        .content_length()
        .is_some_and(|len| len as usize > allowed)
    {
        return Err(MinerReplyError::TooLarge);
    }
    // Every ordinary answer fits in its free allowance: read it whole and parse it from memory,
    // several times faster than parsing a stream, and on this thread (about 50 µs at 256 KiB,
    // less than a hand-over to a blocking thread costs). Only a larger one goes on to be
    // streamed. The buffer is sized once from the declared length (checked against `allowed`).
    let declared = response.content_length().unwrap_or(0) as usize;
    let mut stream = response.bytes_stream();
    let mut head = BytesMut::with_capacity(declared.min(FREE_ANSWER_BYTES + 1));
    while head.len() <= FREE_ANSWER_BYTES {
        match stream.next().await {
            None => {
                let parsed = serde_json::from_slice::<SynapseAnswer>(&head);
                return Ok(Answered::Parsed(parsed.map_err(|e| e.to_string()), None));
            }
            Some(Err(e)) => return Err(MinerReplyError::Transport(e)),
            Some(Ok(chunk)) => {
                if head.len() + chunk.len() > allowed {
                    return Err(MinerReplyError::TooLarge);
                }
                head.extend_from_slice(&chunk);
            }
        }
    }
    let read = futures::stream::iter([Ok(head.freeze())]);
    let mut stream = read.chain(stream);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(8);
    let parser = tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::with_capacity(
            64 * 1024,
            ChunkReader {
                rx,
                current: Bytes::new(),
            },
        );
        serde_json::from_reader::<_, SynapseAnswer>(reader)
    });
    let mut received = 0usize;
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut outcome = Ok(());
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                outcome = Err(MinerReplyError::Transport(e));
                break;
            }
        };
        received += chunk.len();
        if received > allowed {
            outcome = Err(MinerReplyError::TooLarge);
            break;
        }
        // Bytes beyond what an echo of the request accounts for are the answer's own.
        if received.saturating_sub(allowed - kept) > FREE_ANSWER_BYTES && held.is_none() {
            match memory.reserve(kept).await {
                Some(share) => held = Some(share),
                None => {
                    outcome = Err(MinerReplyError::Internal);
                    break;
                }
            }
        }
        // The parser stopped early (the body is not JSON): stop reading.
        if tx.send(chunk).is_err() {
            break;
        }
    }
    drop(tx);
    let parsed = parser.await.map_err(|_| MinerReplyError::TooLarge)?;
    outcome?;
    // What the answer keeps is its output (the echoed input was skipped): give back the rest.
    if let (Some(h), Ok(answer)) = (held.as_mut(), parsed.as_ref()) {
        let keep = answer
            .output_data
            .as_ref()
            .map_or(0, String::len)
            .div_ceil(1024)
            + 1;
        if h.num_permits() > keep {
            drop(h.split(h.num_permits() - keep));
        }
    }
    Ok(Answered::Parsed(parsed.map_err(|e| e.to_string()), held))
}

/// The most of a refusal's body kept for its message.
const ERROR_BODY_BYTES: usize = 16 * 1024;

/// Feeds the chunks of a streamed body to a blocking reader.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(chunk) => self.current = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// An answer as read off the wire.
pub(super) enum Answered {
    /// HTTP 200, parsed (or why it did not parse), with the memory its output holds.
    Parsed(
        Result<SynapseAnswer, String>,
        Option<tokio::sync::OwnedSemaphorePermit>,
    ),
    /// Another status, with the start of its body.
    Refused(u16, Bytes),
}

/// Why an answer could not be read.
pub(super) enum MinerReplyError {
    /// The connection failed.
    Transport(reqwest::Error),
    /// The answer passed its size bound.
    TooLarge,
    /// The request could not be prepared (a worker thread failed).
    Internal,
}

/// Turns the outcome of a bounded call into a reply: `result` is `Err` when the deadline passed.
pub(super) fn to_reply(
    result: Result<Result<Answered, MinerReplyError>, tokio::time::error::Elapsed>,
    latency: Duration,
    limit: usize,
) -> MinerReply {
    match result {
        Err(_) => MinerReply::failed(Outcome::Timeout, latency, "no answer before the deadline"),
        Ok(Err(MinerReplyError::TooLarge)) => MinerReply::failed(
            Outcome::Oversized,
            latency,
            format!("answer larger than its budget of {limit} bytes; cut off"),
        ),
        Ok(Err(MinerReplyError::Internal)) => MinerReply::failed(
            Outcome::HttpError,
            latency,
            "internal error while preparing the request; nothing was sent",
        ),
        Ok(Err(MinerReplyError::Transport(e))) if e.is_timeout() => {
            MinerReply::failed(Outcome::Timeout, latency, "no answer before the deadline")
        }
        Ok(Err(MinerReplyError::Transport(e))) => MinerReply::failed(
            Outcome::Unavailable,
            latency,
            format!("miner unreachable: {}", error_chain(&e)),
        ),
        Ok(Ok(Answered::Parsed(Ok(answer), memory))) => {
            MinerReply::answered(latency, answer, memory)
        }
        Ok(Ok(Answered::Parsed(Err(e), _))) => MinerReply::failed(
            Outcome::InvalidAnswer,
            latency,
            format!("answer is not a synapse body: {e}"),
        ),
        Ok(Ok(Answered::Refused(status, body))) => classify(status, &body, latency),
    }
}

/// Classifies an HTTP answer the way the Python dendrite does, with messages for operators.
fn classify(status: u16, body: &[u8], latency: Duration) -> MinerReply {
    let message = || {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
    };
    match status {
        200 => match serde_json::from_slice::<SynapseAnswer>(body) {
            Ok(parsed) => MinerReply::answered(latency, parsed, None),
            Err(e) => MinerReply::failed(
                Outcome::InvalidAnswer,
                latency,
                format!("answer is not a synapse body: {e}"),
            ),
        },
        401 => MinerReply::failed(
            Outcome::Unauthorized,
            latency,
            format!(
                "401 signature or nonce refused (stale metagraph or clock skew?): {}",
                message()
            ),
        ),
        403 => MinerReply::failed(
            Outcome::Blacklisted,
            latency,
            format!(
                "403 blacklisted: the miner refuses this hotkey (not registered on the subnet, or no validator permit): {}",
                message()
            ),
        ),
        404 => MinerReply::failed(
            Outcome::UnknownSynapse,
            latency,
            format!(
                "404 the miner does not serve this synapse (name or version mismatch): {}",
                message()
            ),
        ),
        503 => MinerReply::failed(Outcome::Busy, latency, format!("503 busy: {}", message())),
        other => MinerReply::failed(
            Outcome::HttpError,
            latency,
            format!("HTTP {other}: {}", message()),
        ),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes_an_operator_can_read() {
        let d = Duration::from_millis(5);
        assert_eq!(
            classify(403, br#"{"message":"Forbidden"}"#, d).outcome,
            Outcome::Blacklisted
        );
        assert_eq!(classify(404, b"", d).outcome, Outcome::UnknownSynapse);
        assert_eq!(classify(401, b"", d).outcome, Outcome::Unauthorized);
        assert_eq!(classify(500, b"", d).outcome, Outcome::HttpError);
        assert_eq!(
            classify(200, b"{not json", d).outcome,
            Outcome::InvalidAnswer
        );
        assert_eq!(
            classify(200, br#"{"output_data":"aGk="}"#, d).outcome,
            Outcome::Success
        );
    }
}
