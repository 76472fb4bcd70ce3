//! `taogate serve` facing hostile connections: half-sent requests, idle connections, too many
//! connections, a body that never ends; and a SIGTERM in the middle of work. Every connection
//! is to loopback and every test is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::{Api, ServeProcess};

/// Reads from `stream` until it is closed; returns what arrived, or `None` if it was still open
/// at `limit`.
fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < limit {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(seen),
        }
    }
    None
}

#[tokio::test]
async fn half_sent_requests_are_closed_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good",
        &[("HTTP_HEADER_TIMEOUT", "1")],
    );
    let mut held: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: taogate\r\n")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    for s in &mut held {
        let closed = until_closed(s, Duration::from_secs(5));
        assert!(closed.is_some(), "a half-sent request was still open");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );
    // The server itself is fine.
    let (status, _) = Api::new(server.addr).get("/api/v1/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn idle_connections_neither_block_others_nor_pass_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good",
        &[
            ("HTTP_HEADER_TIMEOUT", "30"),
            ("HTTP_MAX_CONNECTIONS", "100"),
        ],
    );
    // 99 idle connections: the server still answers promptly on the hundredth.
    let idle: Vec<TcpStream> = (0..99)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let url = format!("http://{}/api/v1/health", server.addr);
    let started = Instant::now();
    let health = client.get(&url).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(client);
    // The hundredth is held open by another idle connection; the next one is refused.
    let held = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(server.addr).unwrap();
    let answer = until_closed(&mut extra, Duration::from_secs(5)).expect("refused and closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after"), "{text}");
    // Once they go, there is room again.
    drop(idle);
    drop(held);
    let client = super::support::http_client();
    let started = Instant::now();
    loop {
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => break,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no room came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_a_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good",
        &[("HTTP_BODY_TIMEOUT", "1")],
    );
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(
        b"POST /api/v1/tts HTTP/1.1\r\nHost: taogate\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"text\":",
    )
    .unwrap();
    let answer = until_closed(&mut s, Duration::from_secs(5)).expect("answered and closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    // Nothing was accepted.
    let (_, health) = Api::new(server.addr).get("/api/v1/health").await;
    assert_eq!(health["tasks"]["total"], 0, "{health}");
}

#[tokio::test]
async fn a_sigterm_under_load_loses_no_accepted_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("TAOGATE_SIM_SLOW_MS", "1500"), ("TASK_TIMEOUT", "5")];
    let mut server = ServeProcess::spawn(&data, "sim:slow,slow", &env);
    let api = Api::new(server.addr);
    // Submissions keep coming while the server is told to stop.
    let submitting = {
        let addr = server.addr;
        tokio::spawn(async move {
            let api = Api::new(addr);
            let mut accepted = Vec::new();
            for i in 0..40 {
                let body = json!({"text": format!("sentence number {i}"), "source_language": "en"});
                match api
                    .http
                    .post(format!("{}/api/v1/tts", api.base))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        accepted.push(v["task_id"].as_str().unwrap().to_owned());
                    }
                    // Refused or cut off while stopping: the client knows it was not accepted.
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            accepted
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, health) = api.get("/api/v1/health").await;
    assert!(health["tasks"]["total"].as_u64().unwrap() > 0, "{health}");
    let exited = tokio::task::spawn_blocking(move || {
        let exited = server.terminate(Duration::from_secs(30));
        (server, exited)
    })
    .await
    .unwrap();
    let (server, exited) = exited;
    assert_eq!(
        exited,
        Some(true),
        "stopped cleanly and in time:\n{}",
        server.log()
    );
    let accepted = submitting.await.unwrap();
    assert!(!accepted.is_empty());

    // A new server on the same data finishes every accepted task.
    let server = ServeProcess::spawn(&data, "sim:good,good", &[("TASK_TIMEOUT", "5")]);
    let api = Api::new(server.addr);
    for id in &accepted {
        let task = api.wait_terminal(id, Duration::from_secs(120)).await;
        assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
    }
}
