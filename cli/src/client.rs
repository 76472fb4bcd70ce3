//! The client commands: `taogate submit`, `taogate tasks`, `taogate task`, against any taogate
//! URL. Progress goes to stderr, results to stdout (or `--output`), and an error answer is
//! printed as its problem's title and detail with a non-zero exit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where the server is and who is asking.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    /// An API key, sent as `X-API-Key`.
    pub key: Option<String>,
}

/// What to submit.
#[derive(Debug, Clone)]
pub enum Job {
    /// An audio file to transcribe.
    Transcription(PathBuf),
    /// Text to speak.
    Tts(String),
    /// Text (or a file of text) to summarize.
    Summarization(String),
}

/// How to submit and what to do after.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Source language.
    pub language: String,
    /// Priority class.
    pub priority: Option<String>,
    /// Wait for the end, showing progress.
    pub wait: bool,
    /// Longest wait.
    pub timeout: Duration,
    /// Where to write the result (audio for TTS, text otherwise); stdout by default.
    pub output: Option<PathBuf>,
}

/// A failed command, with what to print.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

fn fail(message: impl Into<String>) -> ClientError {
    ClientError(message.into())
}

/// Whether two URLs share scheme, host and port (so a key meant for one never goes to another
/// host whose name merely starts the same).
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// A client whose pooled connections close before the server's idle limit
/// (`HTTP_HEADER_TIMEOUT`, 10 s by default), so no request goes out on a connection being closed.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// Audio files sent directly up to this size; larger ones go through an upload.
const DIRECT_UPLOAD_BYTES: u64 = 4 * 1024 * 1024;

impl Target {
    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let request = client.request(method, url);
        match &self.key {
            Some(key) => request.header("x-api-key", key),
            None => request,
        }
    }
}

/// Reads an answer: its JSON on success, the problem's title and detail otherwise.
async fn answer(
    response: reqwest::Response,
) -> Result<(Value, reqwest::header::HeaderMap), ClientError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(format!("the answer could not be read: {e}")))?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok((value, headers));
    }
    let title = value["title"]
        .as_str()
        .unwrap_or(status.canonical_reason().unwrap_or("error"));
    let mut message = format!(
        "{} ({}): {}",
        title,
        status.as_u16(),
        value["detail"].as_str().unwrap_or("")
    );
    if let Some(retry) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        message.push_str(&format!(" (retry after {retry} s)"));
    }
    Err(fail(message))
}

fn unreachable_server(target: &Target, e: reqwest::Error) -> ClientError {
    fail(format!("cannot reach {}: {}", target.url, e.without_url()))
}

/// Submits `job`; with `wait`, follows it to its end and writes the result.
pub async fn submit(
    target: &Target,
    job: Job,
    options: SubmitOptions,
) -> Result<String, ClientError> {
    let client = http();
    let mut fields = json!({"source_language": options.language});
    if let Some(p) = &options.priority {
        fields["priority"] = json!(p);
    }
    let request = match &job {
        Job::Transcription(path) => transcription_request(target, &client, path, &fields).await?,
        Job::Tts(text) => {
            fields["text"] = json!(text);
            target
                .request(&client, reqwest::Method::POST, "/api/v1/tts")
                .json(&fields)
        }
        Job::Summarization(text_or_file) => {
            let path = Path::new(text_or_file);
            let text = if path.is_file() {
                std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
            } else {
                text_or_file.clone()
            };
            fields["text"] = json!(text);
            target
                .request(&client, reqwest::Method::POST, "/api/v1/summarization")
                .json(&fields)
        }
    };
    let (accepted, _) = answer(
        request
            .send()
            .await
            .map_err(|e| unreachable_server(target, e))?,
    )
    .await?;
    let id = accepted["task_id"]
        .as_str()
        .ok_or_else(|| fail("the server accepted the task but named no task_id"))?
        .to_owned();
    if !options.wait {
        return Ok(format!("{id}\n"));
    }
    eprintln!("task {id} accepted");
    let task = follow(target, &client, &id, options.timeout).await?;
    result(target, &client, &task, options.output.as_deref()).await
}

async fn transcription_request(
    target: &Target,
    client: &reqwest::Client,
    path: &Path,
    fields: &Value,
) -> Result<reqwest::RequestBuilder, ClientError> {
    let bytes =
        std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 <= DIRECT_UPLOAD_BYTES {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "audio".into());
        let mut form = reqwest::multipart::Form::new().part(
            "audio_file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        for (k, v) in fields.as_object().into_iter().flatten() {
            form = form.text(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
        return Ok(target
            .request(client, reqwest::Method::POST, "/api/v1/transcription")
            .multipart(form));
    }
    // Larger files go to the upload URL the server hands out (S3 on AWS).
    let response = target
        .request(client, reqwest::Method::POST, "/api/v1/uploads")
        .json(&serde_json::json!({"size_bytes": bytes.len()}))
        .send()
        .await
        .map_err(|e| unreachable_server(target, e))?;
    let (upload, _) = answer(response).await?;
    let url = upload["url"]
        .as_str()
        .ok_or_else(|| fail("no upload url in the answer"))?;
    let mut put = client.put(url).body(bytes);
    for (k, v) in upload["headers"].as_object().into_iter().flatten() {
        put = put.header(k.as_str(), v.as_str().unwrap_or_default());
    }
    // The local server's upload route is its own and takes the key; S3's presigned URL does not.
    if same_origin(url, &target.url)
        && let Some(key) = &target.key
    {
        put = put.header("x-api-key", key);
    }
    answer(
        put.send()
            .await
            .map_err(|e| unreachable_server(target, e))?,
    )
    .await?;
    let mut body = fields.clone();
    body["upload_id"] = upload["upload_id"].clone();
    Ok(target
        .request(client, reqwest::Method::POST, "/api/v1/transcription")
        .json(&body))
}

/// What a progress line says about a task.
fn progress(task: &Value) -> String {
    let status = task["status"].as_str().unwrap_or("unknown");
    let mut line = status.to_owned();
    if let Some(n) = task["attempts"].as_u64().filter(|n| *n > 0) {
        line.push_str(&format!(", attempt {n}"));
    }
    if let Some(candidates) = task["candidates"].as_array().filter(|c| !c.is_empty()) {
        let answered = candidates
            .iter()
            .filter(|c| c["outcome"] == "success")
            .count();
        line.push_str(&format!(
            ", miners answered {answered}/{}",
            candidates.len()
        ));
    }
    if status != "completed"
        && let Some(e) = task["error_message"].as_str()
    {
        line.push_str(&format!(" ({e})"));
    }
    line
}

/// Polls task `id` until it ends, printing each change of its progress to stderr.
async fn follow(
    target: &Target,
    client: &reqwest::Client,
    id: &str,
    limit: Duration,
) -> Result<Value, ClientError> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let task = get_task(target, client, id).await?;
        let line = progress(&task);
        if line != last {
            eprintln!("  {:>6.1} s  {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        match task["status"].as_str() {
            Some("completed") => return Ok(task),
            Some("failed") => {
                return Err(fail(format!(
                    "task {id} failed: {}",
                    task["error_message"].as_str().unwrap_or("no reason given")
                )));
            }
            _ => {}
        }
        if started.elapsed() > limit {
            return Err(fail(format!(
                "task {id} did not finish within {} s; follow it with `taogate task {id}`",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn get_task(
    target: &Target,
    client: &reqwest::Client,
    id: &str,
) -> Result<Value, ClientError> {
    let response = target
        .request(client, reqwest::Method::GET, &format!("/api/v1/tasks/{id}"))
        .send()
        .await
        .map_err(|e| unreachable_server(target, e))?;
    Ok(answer(response).await?.0)
}

/// Writes a completed task's result to `output` (or returns text for stdout).
async fn result(
    target: &Target,
    client: &reqwest::Client,
    task: &Value,
    output: Option<&Path>,
) -> Result<String, ClientError> {
    let r = &task["result"];
    let summary = format!(
        "miner {} ({}), accuracy {:.2}, speed {:.2}",
        r["miner_uid"],
        r["model_used"].as_str().unwrap_or("unknown model"),
        r["accuracy_score"].as_f64().unwrap_or(0.0),
        r["speed_score"].as_f64().unwrap_or(0.0)
    );
    eprintln!("  {summary}");
    let bytes: Vec<u8> = if let Some(url) = r["audio_url"].as_str() {
        let absolute = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", target.url.trim_end_matches('/'))
        };
        let mut request = client.get(&absolute);
        // The key goes only to the server itself, never to a presigned storage URL.
        if same_origin(&absolute, &target.url)
            && let Some(key) = &target.key
        {
            request = request.header("x-api-key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unreachable_server(target, e))?;
        if !response.status().is_success() {
            return Err(fail(format!(
                "the audio could not be fetched: HTTP {}",
                response.status().as_u16()
            )));
        }
        response
            .bytes()
            .await
            .map_err(|e| fail(format!("the audio could not be read: {e}")))?
            .to_vec()
    } else if let Some(text) = r["output_text"].as_str() {
        format!("{text}\n").into_bytes()
    } else if let Some(url) = r["output_url"].as_str() {
        let response = target
            .request(client, reqwest::Method::GET, url)
            .send()
            .await
            .map_err(|e| unreachable_server(target, e))?;
        let mut text = response
            .text()
            .await
            .map_err(|e| fail(format!("the text could not be read: {e}")))?;
        text.push('\n');
        text.into_bytes()
    } else {
        return Err(fail("the task completed without an output"));
    };
    match output {
        Some(path) => {
            std::fs::write(path, &bytes)
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("  wrote {} bytes to {}", bytes.len(), path.display());
            Ok(String::new())
        }
        None if r["audio_url"].is_string() => Err(fail(
            "the result is audio: pass --output FILE.wav to save it",
        )),
        None => Ok(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// `taogate task ID`: one task as JSON.
pub async fn task(target: &Target, id: &str) -> Result<String, ClientError> {
    let client = http();
    let task = get_task(target, &client, id).await?;
    Ok(format!("{task:#}\n"))
}

/// `taogate tasks`: the caller's tasks, newest first, one line each.
pub async fn tasks(
    target: &Target,
    status: Option<&str>,
    limit: usize,
) -> Result<String, ClientError> {
    let client = http();
    let mut path = format!("/api/v1/tasks?limit={limit}");
    if let Some(s) = status {
        path.push_str(&format!("&status={s}"));
    }
    let response = target
        .request(&client, reqwest::Method::GET, &path)
        .send()
        .await
        .map_err(|e| unreachable_server(target, e))?;
    let (list, headers) = answer(response).await?;
    let mut out = format!(
        "{:<36}  {:<13}  {:<10}  {:<8}  {}\n",
        "TASK", "TYPE", "STATUS", "LANG", "CREATED"
    );
    for t in list.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<36}  {:<13}  {:<10}  {:<8}  {}\n",
            t["task_id"].as_str().unwrap_or_default(),
            t["task_type"].as_str().unwrap_or_default(),
            t["status"].as_str().unwrap_or_default(),
            t["source_language"].as_str().unwrap_or_default(),
            t["created_at"].as_str().unwrap_or_default()
        ));
    }
    if headers.contains_key("link") {
        out.push_str("(more: raise --limit, or follow the Link header of GET /api/v1/tasks)\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_follows_only_its_own_origin() {
        assert!(same_origin(
            "http://gw:8000/api/v1/uploads/x",
            "http://gw:8000"
        ));
        assert!(!same_origin("http://gw.evil.test/x", "http://gw"));
        assert!(!same_origin("https://gw:8000/x", "http://gw:8000"));
        assert!(!same_origin("not a url", "http://gw"));
    }

    #[test]
    fn progress_names_the_attempt_and_the_miners_that_answered() {
        let task = json!({"status": "processing", "attempts": 2, "candidates": [
            {"outcome": "success"}, {"outcome": "timeout"}, {"outcome": "success"}
        ], "error_message": "no answer was good enough"});
        assert_eq!(
            progress(&task),
            "processing, attempt 2, miners answered 2/3 (no answer was good enough)"
        );
        assert_eq!(
            progress(&json!({"status": "pending", "attempts": 0})),
            "pending"
        );
    }
}
