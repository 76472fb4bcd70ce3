//! The shared harness: a `taogate serve` process or an in-process runtime, a client, polling,
//! and raw multipart bodies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use taogate_cli::serve::{MinerSource, Running, ServeOptions};
use taogate_shared::config::Settings;

/// Test audio from `testdata/audio`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../testdata/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A WAV of a tone whose comment tag carries `transcript`.
pub fn wav_with_transcript(transcript: &str) -> Vec<u8> {
    let samples = taogate_shared::audio::tone(1.0, 330.0, 16_000);
    taogate_shared::audio::wav_pcm16(&samples, 16_000, Some(transcript))
}

/// Submits one task per service (a clip carrying `spoken`, `article` to summarize, `speak`
/// to synthesize) and waits for each; returns them in that order.
pub async fn every_service(api: &Api, spoken: &str, article: &str, speak: &str) -> Vec<Value> {
    let mut ids = Vec::new();
    let (status, accepted) = api
        .post_multipart(
            "/api/v1/transcription",
            multipart(&[
                ("audio_file", Some("clip.wav"), &wav_with_transcript(spoken)),
                ("source_language", None, b"en"),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    ids.push(accepted["task_id"].as_str().unwrap().to_owned());
    for (path, text) in [("/api/v1/summarization", article), ("/api/v1/tts", speak)] {
        let (status, accepted) = api
            .post_json(
                path,
                &serde_json::json!({"text": text, "source_language": "en"}),
            )
            .await;
        assert_eq!(status, 200, "{accepted}");
        ids.push(accepted["task_id"].as_str().unwrap().to_owned());
    }
    let mut done = Vec::new();
    for id in ids {
        done.push(api.wait_terminal(&id, Duration::from_secs(60)).await);
    }
    done
}

/// Settings from `pairs`, defaults elsewhere.
pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_lookup(|k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("test settings are valid")
}

/// Starts the runtime in this process on a free port.
pub async fn in_process(
    dir: &Path,
    miners: &str,
    workers: usize,
    pairs: &[(&str, &str)],
) -> Running {
    taogate_cli::serve::start(ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        backend: taogate_cli::serve::Backend::Embedded,
        data_dir: dir.to_owned(),
        miners: MinerSource::parse(miners).unwrap(),
        public_url: None,
        workers,
        sim_slow: Duration::from_millis(300),
        settings: settings(pairs),
    })
    .await
    .expect("runtime starts")
}

/// An HTTP client that drops pooled connections before the server does: `taogate serve`
/// closes a keep-alive connection that stays quiet for `HTTP_HEADER_TIMEOUT` (10 s), and a
/// request sent on it just then fails; a pool idle timeout below that avoids the race.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("a client")
}

/// A `taogate serve` child process; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl ServeProcess {
    /// Spawns `taogate serve` on a free port with `env`, and waits until it listens.
    pub fn spawn(data_dir: &Path, miners: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_with(data_dir, &["--miners", miners], env)
    }

    /// Spawns `taogate serve --bind 127.0.0.1:0 ARGS` with `env`, and waits until it listens.
    pub fn spawn_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = data_dir.with_extension(format!("{}.log", std::process::id()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taogate"));
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut process = Self {
            child: cmd.spawn().expect("taogate starts"),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        let started = Instant::now();
        loop {
            let text = process.log();
            if let Some(rest) = text.split("taogate listening on http://").nth(1) {
                process.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return process;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "taogate did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `limit` for it to exit; returns
    /// whether it exited successfully in time.
    pub fn terminate(&mut self, limit: Duration) -> Option<bool> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process at once (SIGKILL): no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for `addr`.
pub struct Api {
    /// The client.
    pub http: reqwest::Client,
    /// `http://addr`.
    pub base: String,
}

impl Api {
    /// A client of the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            http: http_client(),
            base: format!("http://{addr}"),
        }
    }

    /// POSTs JSON and returns the status and body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a multipart body built by [`multipart`].
    pub async fn post_multipart(
        &self,
        path: &str,
        (content_type, body): (String, Vec<u8>),
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Asks for an upload URL (`POST /api/v1/uploads`, which must answer 201) and sends `bytes`
    /// there with the headers it names. Returns the upload view and the upload's HTTP status.
    pub async fn upload(&self, bytes: Vec<u8>) -> (Value, u16) {
        let (status, upload) = self
            .post_json(
                "/api/v1/uploads",
                &serde_json::json!({"size_bytes": bytes.len()}),
            )
            .await;
        assert_eq!(status, 201, "{upload}");
        let mut put = self.http.put(upload["url"].as_str().unwrap()).body(bytes);
        for (name, value) in upload["headers"].as_object().unwrap() {
            put = put.header(name.as_str(), value.as_str().unwrap());
        }
        let put_status = put.send().await.unwrap().status().as_u16();
        (upload, put_status)
    }

    /// Uploads a short recording that says `spoken`, submits it, and then tries to replace
    /// the upload through its URL with 30 MB of random bytes, which must be refused. Returns
    /// the upload view and the accepted task's id; the caller waits for the task.
    pub async fn upload_then_try_to_replace_it(&self, spoken: &str) -> (Value, String) {
        let (upload, put_status) = self.upload(wav_with_transcript(spoken)).await;
        assert_eq!(put_status, 200, "{upload}");
        let (status, accepted) = self
            .post_json(
                "/api/v1/transcription",
                &serde_json::json!({"upload_id": upload["upload_id"], "source_language": "en"}),
            )
            .await;
        assert_eq!(status, 200, "{accepted}");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..30 * 1024 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        // The same URL with the same headers, a different body: one body per upload.
        let mut put = self.http.put(upload["url"].as_str().unwrap()).body(noise);
        for (name, value) in upload["headers"].as_object().unwrap() {
            if name != "content-length" {
                put = put.header(name.as_str(), value.as_str().unwrap());
            }
        }
        let replaced = put.send().await.unwrap().status().as_u16();
        assert!(
            (400..500).contains(&replaced),
            "a second body must be refused: {replaced}"
        );
        // A second body of the very size announced is refused too (one body per upload).
        let same_size = wav_with_transcript(&spoken.replace('o', "0"));
        let mut again = self
            .http
            .put(upload["url"].as_str().unwrap())
            .body(same_size);
        for (name, value) in upload["headers"].as_object().unwrap() {
            again = again.header(name.as_str(), value.as_str().unwrap());
        }
        let status = again.send().await.unwrap().status().as_u16();
        assert_eq!(
            status, 412,
            "a second body of the announced size must be refused"
        );
        (upload, accepted["task_id"].as_str().unwrap().to_owned())
    }

    /// GETs JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Submits `body` to `path` as JSON, which must be accepted (200), and waits until the task
    /// is finished. Returns the acceptance and the finished task.
    pub async fn submit_and_wait(
        &self,
        path: &str,
        body: &Value,
        limit: Duration,
    ) -> (Value, Value) {
        let (status, accepted) = self.post_json(path, body).await;
        self.finished(status, accepted, limit).await
    }

    /// [`Self::submit_and_wait`] for a multipart body built by [`multipart`].
    pub async fn submit_multipart_and_wait(
        &self,
        path: &str,
        form: (String, Vec<u8>),
        limit: Duration,
    ) -> (Value, Value) {
        let (status, accepted) = self.post_multipart(path, form).await;
        self.finished(status, accepted, limit).await
    }

    async fn finished(&self, status: u16, accepted: Value, limit: Duration) -> (Value, Value) {
        assert_eq!(status, 200, "{accepted}");
        let task = self
            .wait_terminal(accepted["task_id"].as_str().unwrap(), limit)
            .await;
        (accepted, task)
    }

    /// Polls a task until it is completed or failed.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let (status, task) = self.get(&format!("/api/v1/tasks/{id}")).await;
            assert_eq!(status, 200, "{task}");
            if matches!(task["status"].as_str(), Some("completed" | "failed")) {
                return task;
            }
            assert!(
                started.elapsed() < limit,
                "task {id} still {} after {limit:?}",
                task["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the task reaches `status`.
    pub async fn wait_status(&self, id: &str, status: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let (_, task) = self.get(&format!("/api/v1/tasks/{id}")).await;
            if task["status"] == status {
                return task;
            }
            assert!(
                started.elapsed() < limit,
                "task {id} never reached {status}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One multipart part: name, optional filename, bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body; returns the content type and the bytes.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "taogate-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A real Python peer from `interop/` (a bittensor Axon, a btauth verifier, ...), run in its
/// pinned virtual environment. Killed when dropped.
pub struct PythonPeer {
    child: Child,
    /// The peer's `READY ...` line, split into words after `READY`.
    pub ready: Vec<String>,
}

/// The interpreter of the pinned environment `name` (`bt10`, `bt11`).
pub fn interop_python(name: &str) -> PathBuf {
    let python = PathBuf::from(format!(
        "{}/../interop/.state/venv-{name}/bin/python",
        env!("CARGO_MANIFEST_DIR")
    ));
    assert!(
        python.exists(),
        "{} is missing: run interop/setup.sh (make test does)",
        python.display()
    );
    python
}

/// A free TCP port on loopback (free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `interop/<script> ARGS` in environment `venv`, with piped standard streams, started.
fn spawn_python(venv: &str, script: &str, args: &[&str]) -> Child {
    let dir = PathBuf::from(format!("{}/../interop", env!("CARGO_MANIFEST_DIR")));
    Command::new(interop_python(venv))
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts")
}

/// A real `bt.Axon` (interop/axon_peer.py) with the dev hotkey `uri`, serving //Alice only.
pub fn python_axon(uri: &str) -> (PythonPeer, SocketAddr) {
    let port = free_port();
    let peer = PythonPeer::start(
        "bt10",
        "axon_peer.py",
        &[
            "--port",
            &port.to_string(),
            "--hotkey",
            uri,
            "--allow",
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        ],
    );
    (peer, SocketAddr::from(([127, 0, 0, 1], port)))
}

impl PythonPeer {
    /// Starts `interop/<script>` with `args` in environment `venv` and waits for its `READY` line.
    pub fn start(venv: &str, script: &str, args: &[&str]) -> Self {
        use std::io::BufRead as _;
        let mut child = spawn_python(venv, script, args);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(line)) if line.starts_with("READY") => Self {
                ready: line.split_whitespace().skip(1).map(str::to_owned).collect(),
                child,
            },
            other => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("{script} did not start ({other:?}):\n{err}");
            }
        }
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `interop/<script>` to completion with `input` on stdin; returns its stdout lines.
pub fn run_python(venv: &str, script: &str, input: &str) -> Vec<String> {
    run_python_with(venv, script, &[], input)
}

/// [`run_python`] with command-line arguments.
pub fn run_python_with(venv: &str, script: &str, args: &[&str], input: &str) -> Vec<String> {
    use std::io::Write as _;
    let mut child = spawn_python(venv, script, args);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
