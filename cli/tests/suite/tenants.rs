//! Tenants on both backends: who may call what (an authorization matrix over every route), rates
//! and quotas under concurrent bursts, `Idempotency-Key` under 100 concurrent repeats, signed
//! callbacks checked by the official `standardwebhooks` package, and hostile auth headers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{Api, ServeProcess, multipart, run_python, wav_with_transcript};

/// A key as `taogate keys create` printed it.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
    pub webhook_secret: String,
}

/// Runs `taogate keys ARGS` against `data_dir` (embedded) or the table in `env` (aws).
pub fn keys(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taogate"));
    cmd.arg("keys").arg("--data-dir").arg(data_dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("taogate keys runs");
    assert!(
        out.status.success(),
        "taogate keys {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `taogate keys create --name NAME ARGS`.
pub fn create_key(data_dir: &Path, env: &[(&str, &str)], name: &str, args: &[&str]) -> Key {
    let mut all = vec!["create", "--name", name];
    all.extend_from_slice(args);
    let out = keys(data_dir, env, &all);
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in:\n{out}"))
            .trim()
            .to_owned()
    };
    Key {
        id: field("id:"),
        secret: field("api key:"),
        webhook_secret: field("webhook secret:"),
    }
}

/// How a request presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    Malformed,
    Unknown,
    Revoked,
    OtherTenant,
    Admin,
    Owner,
}

const CREDS: [Cred; 7] = [
    Cred::None,
    Cred::Malformed,
    Cred::Unknown,
    Cred::Revoked,
    Cred::OtherTenant,
    Cred::Admin,
    Cred::Owner,
];

/// The keys of the matrix: `alice` owns the resources, `bob` is another tenant.
struct Tenants {
    alice: Key,
    bob: Key,
    admin: Key,
    revoked: Key,
}

impl Tenants {
    fn create(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let revoked = create_key(data_dir, env, "gone", &[]);
        keys(data_dir, env, &["revoke", &revoked.id]);
        Self {
            alice: create_key(data_dir, env, "alice", &[]),
            bob: create_key(data_dir, env, "bob", &[]),
            admin: create_key(
                data_dir,
                env,
                "ops",
                &["--admin", "--max-priority", "urgent"],
            ),
            revoked,
        }
    }

    fn header(&self, cred: Cred) -> Option<(&'static str, String)> {
        let bearer = |k: &Key| Some(("authorization", format!("Bearer {}", k.secret)));
        match cred {
            Cred::None => None,
            Cred::Malformed => Some(("authorization", "Bearer not-a-key".into())),
            // The shape of a key, with an id no key has.
            Cred::Unknown => Some((
                "x-api-key",
                format!("tg_0000000000000000_{}", "A".repeat(43)),
            )),
            Cred::Revoked => bearer(&self.revoked),
            Cred::OtherTenant => Some(("x-api-key", self.bob.secret.clone())),
            Cred::Admin => bearer(&self.admin),
            Cred::Owner => bearer(&self.alice),
        }
    }
}

/// One request of the matrix.
#[derive(Clone)]
enum Body {
    Empty,
    Json(Value),
    Multipart(String, Vec<u8>),
    Bytes(Vec<u8>),
}

async fn send(
    http: &reqwest::Client,
    addr: SocketAddr,
    method: Method,
    path: &str,
    auth: Option<(&str, String)>,
    body: Body,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http.request(method, format!("http://{addr}{path}"));
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    request = match body {
        Body::Empty => request,
        Body::Json(v) => request.json(&v),
        Body::Multipart(ct, bytes) => request.header("content-type", ct).body(bytes),
        Body::Bytes(b) => request.body(b),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

fn tts_body(text: &str) -> Value {
    json!({"text": text, "source_language": "en"})
}

/// Runs the matrix against a server whose keys are `t`; `local` adds the routes only the
/// local runtime serves (audio results, upload PUTs).
async fn authorization_matrix(addr: SocketAddr, t: &Tenants, local: bool) {
    let http = super::support::http_client();
    let alice = t.header(Cred::Owner);
    // Alice's resources: a finished speech task, a finished summary, an upload.
    let (status, _, tts) = send(
        &http,
        addr,
        Method::POST,
        "/api/v1/tts",
        alice.clone(),
        Body::Json(tts_body("Private speech of one tenant.")),
    )
    .await;
    assert_eq!(status, 200, "{tts}");
    let article = "Tenants keep their tasks to themselves. Another key sees nothing of them, \
                   and an admin key sees everything. This text is long enough to summarize.";
    let (status, _, summary) = send(
        &http,
        addr,
        Method::POST,
        "/api/v1/summarization",
        alice.clone(),
        Body::Json(json!({"text": article, "source_language": "en"})),
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let (tts_id, summary_id) = (
        tts["task_id"].as_str().unwrap().to_owned(),
        summary["task_id"].as_str().unwrap().to_owned(),
    );
    for id in [&tts_id, &summary_id] {
        wait_done(&http, addr, id, alice.clone()).await;
    }
    let uploaded = wav_with_transcript("uploaded");
    let announced = json!({"size_bytes": uploaded.len()});
    let (status, _, upload) = send(
        &http,
        addr,
        Method::POST,
        "/api/v1/uploads",
        alice.clone(),
        Body::Json(announced.clone()),
    )
    .await;
    assert_eq!(status, 201, "{upload}");
    let upload_id = upload["upload_id"].as_str().unwrap().to_owned();

    let denied = [401, 401, 401, 401];
    let row = |rest: [u16; 3]| -> [u16; 7] {
        [
            denied[0], denied[1], denied[2], denied[3], rest[0], rest[1], rest[2],
        ]
    };
    let (ct, form) = multipart(&[
        ("audio_file", Some("a.wav"), &wav_with_transcript("a clip")),
        ("source_language", None, b"en"),
    ]);
    let (openai_ct, openai_form) = multipart(&[
        ("file", Some("a.wav"), &wav_with_transcript("a clip")),
        ("model", None, b"taogate-transcription"),
    ]);
    let mut routes: Vec<(Method, String, Body, [u16; 7])> = vec![
        (
            Method::GET,
            format!("/api/v1/tasks/{tts_id}"),
            Body::Empty,
            row([404, 200, 200]),
        ),
        (
            Method::GET,
            format!("/api/v1/tasks/{summary_id}/output"),
            Body::Empty,
            row([404, 200, 200]),
        ),
        (
            Method::GET,
            "/api/v1/tasks".into(),
            Body::Empty,
            row([200, 200, 200]),
        ),
        (
            Method::POST,
            "/api/v1/tts".into(),
            Body::Json(tts_body("hello")),
            row([200, 200, 200]),
        ),
        (
            Method::POST,
            "/api/v1/summarization".into(),
            Body::Json(json!({"text": article, "source_language": "en", "priority": "low"})),
            row([200, 200, 200]),
        ),
        (
            Method::POST,
            "/api/v1/transcription".into(),
            Body::Multipart(ct, form),
            row([200, 200, 200]),
        ),
        (
            Method::POST,
            "/api/v1/uploads".into(),
            Body::Json(announced),
            row([201, 201, 201]),
        ),
        (
            Method::GET,
            "/api/v1/usage".into(),
            Body::Empty,
            row([200, 200, 200]),
        ),
        (
            Method::GET,
            "/api/v1/validator/integration".into(),
            Body::Empty,
            row([403, 200, 403]),
        ),
        (Method::GET, "/api/v1/health".into(), Body::Empty, [200; 7]),
        (
            Method::POST,
            "/api/v1/validator/distribute?limit=1&lease=1".into(),
            Body::Empty,
            row([403, 200, 403]),
        ),
        // Alice's summary is finished: no lease is live, so an admin's result is a conflict.
        (
            Method::POST,
            format!("/api/v1/validator/tasks/{summary_id}/result"),
            Body::Json(json!({"attempt": 1, "lease_token": "tgl_x", "output_data": "eA=="})),
            row([403, 409, 403]),
        ),
        (
            Method::GET,
            "/v1/models".into(),
            Body::Empty,
            row([200, 200, 200]),
        ),
        (
            Method::POST,
            "/v1/audio/speech".into(),
            Body::Json(
                json!({"model": "taogate-tts", "input": "Spoken for the matrix.", "voice": "alloy"}),
            ),
            row([200, 200, 200]),
        ),
        (
            Method::POST,
            "/v1/audio/transcriptions".into(),
            Body::Multipart(openai_ct, openai_form),
            row([200, 200, 200]),
        ),
        (Method::GET, "/openapi.json".into(), Body::Empty, [200; 7]),
        (Method::GET, "/docs".into(), Body::Empty, [200; 7]),
    ];
    if local {
        routes.push((
            Method::GET,
            format!("/api/v1/tasks/{tts_id}/audio"),
            Body::Empty,
            row([404, 200, 200]),
        ));
        // An upload is its uploader's only: to anyone else, admins included, it does not exist.
        routes.push((
            Method::PUT,
            format!("/api/v1/uploads/{upload_id}"),
            Body::Bytes(uploaded.clone()),
            row([404, 404, 200]),
        ));
    }
    let mut failures = Vec::new();
    for (method, path, body, expected) in &routes {
        for (cred, want) in CREDS.iter().zip(expected) {
            let (got, headers, answer) = send(
                &http,
                addr,
                method.clone(),
                path,
                t.header(*cred),
                body.clone(),
            )
            .await;
            if got != *want {
                failures.push(format!(
                    "{method} {path} as {cred:?}: {got}, want {want}: {answer}"
                ));
            }
            if got == 401 {
                let challenge = headers.get("www-authenticate").map(|v| v.to_str().unwrap());
                assert_eq!(challenge, Some("Bearer realm=\"taogate\""), "{path}");
                // OpenAI's routes answer in OpenAI's error shape.
                let shape = if path.starts_with("/v1/") {
                    "application/json"
                } else {
                    "application/problem+json"
                };
                assert_eq!(headers.get("content-type").unwrap(), shape, "{path}");
                // The secret never comes back.
                let text = answer.to_string();
                for k in [&t.alice, &t.bob, &t.admin, &t.revoked] {
                    assert!(!text.contains(&k.secret), "{text}");
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Lists hold the caller's own tasks only; an admin's hold everyone's.
    let listed = |cred: Cred| {
        let http = http.clone();
        let auth = t.header(cred);
        async move {
            let (_, _, page) = send(
                &http,
                addr,
                Method::GET,
                "/api/v1/tasks?limit=100",
                auth,
                Body::Empty,
            )
            .await;
            page.as_array()
                .unwrap()
                .iter()
                .map(|t| t["task_id"].as_str().unwrap().to_owned())
                .collect::<BTreeSet<_>>()
        }
    };
    let (mine, theirs, all) = (
        listed(Cred::Owner).await,
        listed(Cred::OtherTenant).await,
        listed(Cred::Admin).await,
    );
    assert!(mine.contains(&tts_id) && mine.contains(&summary_id));
    assert!(!theirs.contains(&tts_id) && !theirs.contains(&summary_id));
    assert!(all.is_superset(&mine) && all.is_superset(&theirs));
    assert!(mine.is_disjoint(&theirs));
    // Another tenant's upload id names nothing when submitted either.
    let (status, _, answer) = send(
        &http,
        addr,
        Method::POST,
        "/api/v1/transcription",
        t.header(Cred::OtherTenant),
        Body::Json(json!({"upload_id": upload_id, "source_language": "en"})),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was uploaded")
    );
}

async fn wait_done(
    http: &reqwest::Client,
    addr: SocketAddr,
    id: &str,
    auth: Option<(&'static str, String)>,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, _, task) = send(
            http,
            addr,
            Method::GET,
            &format!("/api/v1/tasks/{id}"),
            auth.clone(),
            Body::Empty,
        )
        .await;
        if task["status"] == "completed" || task["status"] == "failed" {
            assert_eq!(task["status"], "completed", "{task}");
            return task;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{task}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const REQUIRED: [(&str, &str); 3] = [
    ("API_AUTH", "required"),
    ("API_KEY_CACHE", "0"),
    ("TASK_TIMEOUT", "5"),
];

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_documented_on_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(&data, "sim:good,good,good", &REQUIRED);
    // Keys are made beside the running server, as an operator would.
    let tenants = Tenants::create(&data, &[]);
    authorization_matrix(server.addr, &tenants, true).await;
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_documented_on_aws() {
    let env = super::aws::resources(3, 60).await;
    let env = super::aws::with(&env, &REQUIRED);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(&data, "sim:good,good,good", &env);
    let tenants = Tenants::create(&data, &env);
    authorization_matrix(server.addr, &tenants, false).await;
}

/// Fires `n` concurrent `GET /api/v1/usage` with `key`, spread over `servers`; returns the
/// statuses and one 429's headers.
async fn burst(
    servers: &[SocketAddr],
    key: &Key,
    n: usize,
) -> (BTreeMap<u16, usize>, Option<reqwest::header::HeaderMap>) {
    let http = super::support::http_client();
    let requests = (0..n).map(|i| {
        let (http, addr) = (http.clone(), servers[i % servers.len()]);
        let auth = Some(("x-api-key", key.secret.clone()));
        async move { send(&http, addr, Method::GET, "/api/v1/usage", auth, Body::Empty).await }
    });
    let mut counts = BTreeMap::new();
    let mut limited = None;
    for (status, headers, _) in futures::future::join_all(requests).await {
        *counts.entry(status).or_insert(0) += 1;
        if status == 429 {
            limited = Some(headers);
        }
    }
    (counts, limited)
}

fn check_burst(counts: &BTreeMap<u16, usize>, limited: Option<reqwest::header::HeaderMap>) {
    // One request a minute after a burst of 20: a burst of 100 taking well under a minute
    // admits exactly 20 (one more only if it spanned a full minute, which it never does).
    assert_eq!(counts.get(&200), Some(&20), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&80), "{counts:?}");
    let headers = limited.unwrap();
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(headers["ratelimit-policy"], "\"rate\";q=20;w=1200");
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"rate\";r=0;t="),
        "{headers:?}"
    );
}

#[tokio::test]
async fn a_burst_at_a_keys_rate_admits_exactly_its_burst_on_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(&data, "sim:1", &REQUIRED);
    let key = create_key(&data, &[], "bursty", &["--rate", "1/min", "--burst", "20"]);
    let (counts, limited) = burst(&[server.addr], &key, 100).await;
    check_burst(&counts, limited);
}

/// Uploads cost requests like any other route: past the key's burst, 429.
#[tokio::test]
async fn uploads_count_toward_the_keys_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(&data, "sim:1", &REQUIRED);
    let key = create_key(&data, &[], "uploader", &["--rate", "1/min", "--burst", "3"]);
    let http = super::support::http_client();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _, _) = send(
            &http,
            server.addr,
            Method::POST,
            "/api/v1/uploads",
            Some(("x-api-key", key.secret.clone())),
            Body::Json(json!({"size_bytes": 1000})),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
}

#[tokio::test]
async fn a_burst_spread_over_two_processes_admits_exactly_its_burst_on_aws() {
    // Two servers on one table stand in for concurrent Lambdas: the rate is one set of
    // conditional counters in DynamoDB, not a count per process.
    let env = super::aws::resources(3, 60).await;
    let env = super::aws::with(&env, &REQUIRED);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = ServeProcess::spawn(&a, "sim:1", &env);
    let second = ServeProcess::spawn(&b, "sim:1", &env);
    let key = create_key(&a, &env, "bursty", &["--rate", "1/min", "--burst", "20"]);
    let (counts, limited) = burst(&[first.addr, second.addr], &key, 100).await;
    check_burst(&counts, limited);
}

/// 100 concurrent submissions under one `Idempotency-Key`, spread over `servers`: every
/// answer is the one task (200) or "still being accepted" (409).
async fn one_key_hundred_tries(servers: &[SocketAddr], key: &Key) -> String {
    let http = super::support::http_client();
    let tries = (0..100).map(|i| {
        let (http, addr) = (http.clone(), servers[i % servers.len()]);
        let secret = key.secret.clone();
        async move {
            let r = http
                .post(format!("http://{addr}/api/v1/tts"))
                .bearer_auth(secret)
                .header("idempotency-key", "order-7781")
                .json(&tts_body("Charge the card once."))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    });
    let mut ids = BTreeSet::new();
    for (status, answer) in futures::future::join_all(tries).await {
        match status {
            200 => {
                ids.insert(answer["task_id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(answer["status"], 409),
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().unwrap();
    // Once accepted, a repeat is answered like the first: same id, same status.
    let again = http
        .post(format!("http://{}/api/v1/tts", servers[0]))
        .header("x-api-key", &key.secret)
        .header("idempotency-key", "\"order-7781\"")
        .json(&tts_body("Charge the card once."))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["task_id"], id.as_str());
    // The same key on another request is refused, and so is a key used twice.
    let (status, _, answer) = send(
        &http,
        servers[0],
        Method::POST,
        "/api/v1/tts",
        Some(("x-api-key", key.secret.clone())),
        Body::Json(tts_body("Charge the card twice.")),
    )
    .await;
    assert_eq!(status, 200, "without the header, a new task: {answer}");
    let different = http
        .post(format!("http://{}/api/v1/tts", servers[0]))
        .header("x-api-key", &key.secret)
        .header("idempotency-key", "order-7781")
        .json(&tts_body("Charge the card twice."))
        .send()
        .await
        .unwrap();
    assert_eq!(different.status(), 422);
    // Counted once against the quota: the usage shows two TTS tasks (the idempotent one and
    // the one without a key).
    let (_, _, usage) = send(
        &http,
        servers[0],
        Method::GET,
        "/api/v1/usage",
        Some(("x-api-key", key.secret.clone())),
        Body::Empty,
    )
    .await;
    assert_eq!(usage["tasks"]["tts"], 2, "{usage}");
    // Uploads too: a repeat names the same upload, another key a new one.
    let mut uploads = Vec::new();
    for idempotency in ["upload-1", "upload-1", "upload-2"] {
        let r = http
            .post(format!(
                "http://{}/api/v1/uploads",
                servers[servers.len() - 1]
            ))
            .header("x-api-key", &key.secret)
            .header("idempotency-key", idempotency)
            .json(&json!({"size_bytes": 1000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        uploads.push(r.json::<Value>().await.unwrap()["upload_id"].clone());
    }
    assert_eq!(uploads[0], uploads[1]);
    assert_ne!(uploads[0], uploads[2]);
    id
}

#[tokio::test]
async fn one_idempotency_key_makes_one_task_across_concurrent_tries_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = create_key(&data, &[], "payer", &[]);
    let server = ServeProcess::spawn(&data, "sim:1", &REQUIRED);
    let id = one_key_hundred_tries(&[server.addr], &key).await;
    server.kill();
    // After a restart the key still names the same task.
    let server = ServeProcess::spawn(&data, "sim:1", &REQUIRED);
    let api = Api::new(server.addr);
    let again = api
        .http
        .post(format!("{}/api/v1/tts", api.base))
        .bearer_auth(&key.secret)
        .header("idempotency-key", "order-7781")
        .json(&tts_body("Charge the card once."))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["task_id"], id.as_str());
}

#[tokio::test]
async fn one_idempotency_key_makes_one_task_across_two_processes_on_aws() {
    let env = super::aws::resources(3, 60).await;
    let env = super::aws::with(&env, &REQUIRED);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = ServeProcess::spawn(&a, "sim:1", &env);
    let second = ServeProcess::spawn(&b, "sim:1", &env);
    let key = create_key(&a, &env, "payer", &[]);
    one_key_hundred_tries(&[first.addr, second.addr], &key).await;
}

#[tokio::test]
async fn quotas_priorities_and_usage_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(&data, "sim:1", &REQUIRED);
    let key = create_key(
        &data,
        &[],
        "small",
        &["--quota", "2/month", "--max-priority", "normal"],
    );
    let http = super::support::http_client();
    let auth = || Some(("x-api-key", key.secret.clone()));
    let submit = |priority: &'static str| {
        let (http, auth) = (http.clone(), auth());
        async move {
            send(
                &http,
                server.addr,
                Method::POST,
                "/api/v1/tts",
                auth,
                Body::Json(json!({"text": "quota", "source_language": "en", "priority": priority})),
            )
            .await
        }
    };
    let (status, _, answer) = submit("high").await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("normal"));
    for _ in 0..2 {
        assert_eq!(submit("normal").await.0, 200);
    }
    let (status, headers, answer) = submit("low").await;
    assert_eq!(status, 429, "{answer}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 31 * 86_400, "{retry}");
    assert!(
        headers["ratelimit-policy"]
            .to_str()
            .unwrap()
            .starts_with("\"month\";q=2;")
    );
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"month\";r=0;")
    );
    let (_, _, usage) = send(
        &http,
        server.addr,
        Method::GET,
        "/api/v1/usage",
        auth(),
        Body::Empty,
    )
    .await;
    assert_eq!(usage["key_id"], key.id.as_str());
    assert_eq!(usage["tasks"]["tts"], 2, "{usage}");
    assert_eq!(usage["quota"], 2);
    assert_eq!(usage["quota_remaining"], 0);
    assert_eq!(usage["max_priority"], "normal");
    // Every request counts, refused submissions included; this one too.
    assert_eq!(usage["requests"], 5, "{usage}");
    assert!(
        usage["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00Z")
    );
    // `keys list` shows the same counts.
    let listed = keys(&data, &[], &["list", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == key.id.as_str())
        .unwrap();
    assert_eq!(row["tasks"]["tts"], 2);
    assert_eq!(row["requests"], 5);
}

#[tokio::test]
async fn hostile_auth_headers_are_refused_with_401_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(&data, "sim:1", &REQUIRED);
    let key = create_key(&data, &[], "real", &[]);
    let addr = server.addr;
    let huge = format!("Bearer tg_{}", "a".repeat(16 * 1024));
    let cases: Vec<Vec<(&str, Vec<u8>)>> = vec![
        vec![("authorization", huge.into_bytes())],
        vec![("x-api-key", "tg_clé_secrète".as_bytes().to_vec())],
        vec![("x-api-key", vec![0xff, 0xfe, b't', b'g'])],
        vec![
            (
                "authorization",
                format!("Bearer {}", key.secret).into_bytes(),
            ),
            (
                "authorization",
                format!("Bearer {}", key.secret).into_bytes(),
            ),
        ],
        vec![
            (
                "authorization",
                format!("Bearer {}", key.secret).into_bytes(),
            ),
            ("x-api-key", key.secret.clone().into_bytes()),
        ],
        vec![(
            "authorization",
            format!("Basic {}", key.secret).into_bytes(),
        )],
        vec![("authorization", b"Bearer ".to_vec())],
    ];
    for headers in cases {
        // Raw HTTP: clients refuse to send some of these.
        let mut request = format!("GET /api/v1/usage HTTP/1.1\r\nhost: {addr}\r\n").into_bytes();
        for (name, value) in &headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"connection: close\r\n\r\n");
        let answer = raw(addr, &request).await;
        let head = answer.lines().next().unwrap_or_default().to_owned();
        assert!(
            head.contains(" 401 "),
            "{head} for {:?}",
            headers.iter().map(|h| h.0).collect::<Vec<_>>()
        );
        assert!(
            !answer.contains(&key.secret),
            "the secret came back: {answer}"
        );
    }
    // Still serving, and the real key still works.
    let (status, _, _) = send(
        &super::support::http_client(),
        addr,
        Method::GET,
        "/api/v1/usage",
        Some(("x-api-key", key.secret.clone())),
        Body::Empty,
    )
    .await;
    assert_eq!(status, 200);
    let log = server.log();
    assert!(!log.contains(&key.secret), "the secret was logged");
}

async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Each received request's headers and raw body.
type Received = Arc<Mutex<Vec<(BTreeMap<String, String>, Vec<u8>)>>>;

/// Receives callbacks on loopback and keeps each request's headers and raw body.
async fn receiver() -> (SocketAddr, Received) {
    let seen: Received = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    store.lock().unwrap().push((headers, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test]
async fn callbacks_are_signed_per_key_and_verified_by_the_standardwebhooks_package() {
    let (hook, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut env = REQUIRED.to_vec();
    env.push(("CALLBACK_ALLOWLIST", "127.0.0.0/8"));
    let server = ServeProcess::spawn(&data, "sim:good,good,good", &env);
    let key = create_key(&data, &[], "hooked", &[]);
    let http = super::support::http_client();
    let callback = format!("http://{hook}/hook");
    let submit = |text: &'static str| {
        let (http, secret, callback) = (http.clone(), key.secret.clone(), callback.clone());
        async move {
            let (status, _, answer) = send(
                &http,
                server.addr,
                Method::POST,
                "/api/v1/tts",
                Some(("x-api-key", secret)),
                Body::Json(
                    json!({"text": text, "source_language": "en", "callback_url": callback}),
                ),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
            answer["task_id"].as_str().unwrap().to_owned()
        }
    };
    let first = submit("Signed before the rotation.").await;
    let auth = Some(("x-api-key", key.secret.clone()));
    wait_done(&http, server.addr, &first, auth).await;
    // Rotated: the new secret and the old one both sign for a day.
    let rotated = keys(&data, &[], &["rotate", &key.id]);
    let new_secret = rotated
        .lines()
        .find_map(|l| l.strip_prefix("api key:"))
        .unwrap()
        .trim()
        .to_owned();
    let new_hook_secret = rotated
        .lines()
        .find_map(|l| l.strip_prefix("webhook secret:"))
        .unwrap()
        .trim()
        .to_owned();
    let (http2, secret2, callback2) = (http.clone(), new_secret.clone(), callback.clone());
    let (status, _, answer) = send(
        &http2,
        server.addr,
        Method::POST,
        "/api/v1/tts",
        Some(("x-api-key", secret2.clone())),
        Body::Json(json!({"text": "Signed after the rotation.", "source_language": "en", "callback_url": callback2})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let second = answer["task_id"].as_str().unwrap().to_owned();
    wait_done(&http, server.addr, &second, Some(("x-api-key", secret2))).await;
    let started = std::time::Instant::now();
    while seen.lock().unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "callbacks missing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliveries = seen.lock().unwrap().clone();
    let line = |secret: &str, headers: &BTreeMap<String, String>, body: &[u8]| {
        json!({
            "secret": secret,
            "headers": headers,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(body),
        })
        .to_string()
    };
    let mut input = String::new();
    let (h1, b1) = &deliveries[0];
    let (h2, b2) = &deliveries[1];
    // First delivery: the original secret verifies it.
    input += &line(&key.webhook_secret, h1, b1);
    input += "\n";
    // Second: both the new and the overlapping old secret verify it.
    input += &line(&new_hook_secret, h2, b2);
    input += "\n";
    input += &line(&key.webhook_secret, h2, b2);
    input += "\n";
    // A tampered body, and a secret the key never had, do not verify.
    let mut tampered = b1.clone();
    let at = tampered.iter().position(|b| *b == b'"').unwrap();
    tampered.insert(at + 1, b'x');
    input += &line(&key.webhook_secret, h1, &tampered);
    input += "\n";
    input += &line(
        &format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        ),
        h1,
        b1,
    );
    input += "\n";
    let verdicts = run_python("webhooks", "verify_webhooks.py", &input);
    assert_eq!(verdicts.len(), 5, "{verdicts:?}");
    assert!(verdicts[0].starts_with("ok msg_"), "{verdicts:?}");
    assert!(verdicts[0].ends_with(&first), "{verdicts:?}");
    assert!(
        verdicts[1].starts_with("ok msg_") && verdicts[1].ends_with(&second),
        "{verdicts:?}"
    );
    assert!(verdicts[2].starts_with("ok msg_"), "{verdicts:?}");
    assert!(verdicts[3].starts_with("refused"), "{verdicts:?}");
    assert!(verdicts[4].starts_with("refused"), "{verdicts:?}");
    // The headers name the signature scheme the package expects.
    assert_eq!(h2["webhook-signature"].split(' ').count(), 2);
    assert!(h1["webhook-id"].starts_with("msg_"));
    // No secret in the stored task data.
    let (_, _, task) = send(
        &http,
        server.addr,
        Method::GET,
        &format!("/api/v1/tasks/{first}"),
        Some(("x-api-key", new_secret)),
        Body::Empty,
    )
    .await;
    let stored = std::fs::read(data.join("taogate.db")).unwrap();
    let stored = String::from_utf8_lossy(&stored);
    assert!(!task.to_string().contains("whsec_"));
    assert!(!stored.contains(&key.secret), "the API secret is stored");
    let log = server.log();
    assert!(
        !log.contains("whsec_") && !log.contains(&key.secret),
        "a secret was logged"
    );
}
