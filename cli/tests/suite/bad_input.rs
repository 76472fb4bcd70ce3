//! Bad input: every request gets the right 4xx as problem+json, none a 5xx, and none changes
//! anything. Inputs at each limit are accepted.

use serde_json::{Value, json};

use super::support::{Api, Part, in_process, multipart, wav_with_transcript};

/// A raw request and the status it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
    status: u16,
    /// A field the problem's `errors` must name.
    field: Option<&'static str>,
}

fn json_case(
    name: &'static str,
    path: &str,
    body: Value,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method: "POST",
        path: path.into(),
        content_type: Some("application/json".into()),
        body: body.to_string().into_bytes(),
        status,
        field,
    }
}

fn raw_case(
    name: &'static str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    status: u16,
) -> Case {
    Case {
        name,
        method: "POST",
        path: path.into(),
        content_type: content_type.map(str::to_owned),
        body: body.to_vec(),
        status,
        field: None,
    }
}

fn form_case(
    name: &'static str,
    parts: &[Part<'_>],
    status: u16,
    field: Option<&'static str>,
) -> Case {
    let (ct, body) = multipart(parts);
    Case {
        name,
        method: "POST",
        path: "/api/v1/transcription".into(),
        content_type: Some(ct),
        body,
        status,
        field,
    }
}

fn get_case(
    name: &'static str,
    method: &'static str,
    path: &str,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        content_type: None,
        body: Vec::new(),
        status,
        field,
    }
}

fn tts(text: Value) -> Value {
    json!({"text": text, "source_language": "en"})
}

fn cases() -> Vec<Case> {
    let wav = wav_with_transcript("hello");
    let tts_path = "/api/v1/tts";
    let sum_path = "/api/v1/summarization";
    let mut truncated = multipart(&[
        ("audio_file", Some("a.wav"), &wav),
        ("source_language", None, b"en"),
    ])
    .1;
    truncated.truncate(truncated.len() / 2);
    let over_limit = vec![0u8; 50 * 1024 * 1024 + 1];
    let unknown = uuid_like();
    vec![
        // Content types.
        raw_case(
            "tts without content type",
            tts_path,
            None,
            br#"{"text":"hi","source_language":"en"}"#,
            415,
        ),
        raw_case(
            "tts as text/plain",
            tts_path,
            Some("text/plain"),
            br#"{"text":"hi","source_language":"en"}"#,
            415,
        ),
        raw_case(
            "tts as a form",
            tts_path,
            Some("application/x-www-form-urlencoded"),
            b"text=hi&source_language=en",
            415,
        ),
        raw_case(
            "summarization as multipart",
            sum_path,
            Some("multipart/form-data; boundary=x"),
            b"--x--",
            415,
        ),
        json_case(
            "transcription as JSON without an upload",
            "/api/v1/transcription",
            json!({"source_language": "en"}),
            422,
            Some("upload_id"),
        ),
        raw_case(
            "transcription as XML",
            "/api/v1/transcription",
            Some("application/xml"),
            b"<audio/>",
            415,
        ),
        raw_case(
            "transcription as text/plain",
            "/api/v1/transcription",
            Some("text/plain"),
            b"audio",
            415,
        ),
        // Malformed bodies.
        raw_case(
            "tts truncated JSON",
            tts_path,
            Some("application/json"),
            br#"{"text": "hel"#,
            400,
        ),
        raw_case(
            "tts empty body",
            tts_path,
            Some("application/json"),
            b"",
            400,
        ),
        raw_case(
            "tts invalid UTF-8",
            tts_path,
            Some("application/json"),
            b"{\"text\":\"\xff\xfe\",\"source_language\":\"en\"}",
            400,
        ),
        raw_case(
            "summarization invalid UTF-8",
            sum_path,
            Some("application/json; charset=utf-8"),
            b"{\"text\":\"\xc3\x28 bad\"}",
            400,
        ),
        raw_case(
            "multipart without boundary",
            "/api/v1/transcription",
            Some("multipart/form-data"),
            b"--x--",
            400,
        ),
        raw_case(
            "truncated multipart",
            "/api/v1/transcription",
            Some("multipart/form-data; boundary=taogate-test-boundary-7d1f"),
            &truncated,
            400,
        ),
        raw_case(
            "multipart that is not multipart",
            "/api/v1/transcription",
            Some("multipart/form-data; boundary=zzz"),
            b"just some bytes",
            400,
        ),
        // Wrong shapes and types.
        json_case(
            "tts body is an array",
            tts_path,
            json!([1, 2]),
            422,
            Some("body"),
        ),
        json_case(
            "tts body is a string",
            tts_path,
            json!("hello"),
            422,
            Some("body"),
        ),
        json_case(
            "tts without text",
            tts_path,
            json!({"source_language": "en"}),
            422,
            Some("text"),
        ),
        json_case(
            "tts text null",
            tts_path,
            json!({"text": null, "source_language": "en"}),
            422,
            Some("text"),
        ),
        json_case(
            "tts text is a number",
            tts_path,
            tts(json!(123)),
            422,
            Some("text"),
        ),
        json_case(
            "tts text is an array",
            tts_path,
            tts(json!(["a"])),
            422,
            Some("text"),
        ),
        json_case(
            "tts text is an object",
            tts_path,
            tts(json!({"t": 1})),
            422,
            Some("text"),
        ),
        json_case(
            "tts language is a number",
            tts_path,
            json!({"text": "hi", "source_language": 7}),
            422,
            Some("source_language"),
        ),
        json_case(
            "tts priority is a number",
            tts_path,
            json!({"text": "hi", "source_language": "en", "priority": 1}),
            422,
            Some("priority"),
        ),
        json_case(
            "tts callback is a number",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": 42}),
            422,
            Some("callback_url"),
        ),
        // Field rules.
        json_case(
            "tts empty text",
            tts_path,
            tts(json!("")),
            422,
            Some("text"),
        ),
        json_case(
            "tts whitespace text",
            tts_path,
            tts(json!(" \n\t ")),
            422,
            Some("text"),
        ),
        json_case(
            "tts text past 10,000",
            tts_path,
            tts(json!("a".repeat(10_001))),
            422,
            Some("text"),
        ),
        json_case(
            "tts multibyte text past 10,000",
            tts_path,
            tts(json!("语".repeat(10_001))),
            422,
            Some("text"),
        ),
        json_case(
            "tts without language",
            tts_path,
            json!({"text": "hi"}),
            422,
            Some("source_language"),
        ),
        json_case(
            "tts unknown language",
            tts_path,
            json!({"text": "hi", "source_language": "xx"}),
            422,
            Some("source_language"),
        ),
        json_case(
            "tts unknown priority",
            tts_path,
            json!({"text": "hi", "source_language": "en", "priority": "asap"}),
            422,
            Some("priority"),
        ),
        json_case(
            "tts ftp callback",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": "ftp://example.com/x"}),
            422,
            Some("callback_url"),
        ),
        json_case(
            "tts loopback callback",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": "http://127.0.0.1:9/x"}),
            422,
            Some("callback_url"),
        ),
        json_case(
            "tts metadata callback",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": "http://169.254.169.254/latest"}),
            422,
            Some("callback_url"),
        ),
        json_case(
            "tts private callback",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": "http://10.0.0.8/hook"}),
            422,
            Some("callback_url"),
        ),
        json_case(
            "tts localhost callback",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": "http://localhost/hook"}),
            422,
            Some("callback_url"),
        ),
        json_case(
            "tts callback not a URL",
            tts_path,
            json!({"text": "hi", "source_language": "en", "callback_url": "not a url"}),
            422,
            Some("callback_url"),
        ),
        json_case(
            "tts several bad fields",
            tts_path,
            json!({"text": 5, "source_language": "xx", "priority": "now"}),
            422,
            Some("priority"),
        ),
        json_case(
            "summarization 49 characters",
            sum_path,
            json!({"text": "a".repeat(49), "source_language": "en"}),
            422,
            Some("text"),
        ),
        json_case(
            "summarization 49 characters padded",
            sum_path,
            json!({"text": format!("   {}   ", "a".repeat(49)), "source_language": "en"}),
            422,
            Some("text"),
        ),
        json_case(
            "summarization past 50,000",
            sum_path,
            json!({"text": "a".repeat(50_001), "source_language": "en"}),
            422,
            Some("text"),
        ),
        json_case(
            "summarization unknown language",
            sum_path,
            json!({"text": "a".repeat(60), "source_language": "klingon"}),
            422,
            Some("source_language"),
        ),
        raw_case(
            "tts body past 1 MiB",
            tts_path,
            Some("application/json"),
            &vec![b' '; 1024 * 1024 + 1],
            413,
        ),
        // Audio uploads.
        form_case(
            "transcription without audio",
            &[("source_language", None, b"en")],
            422,
            Some("audio_file"),
        ),
        form_case(
            "transcription of zero bytes",
            &[
                ("audio_file", Some("a.wav"), b""),
                ("source_language", None, b"en"),
            ],
            422,
            Some("audio_file"),
        ),
        form_case(
            "text renamed .wav",
            &[
                (
                    "audio_file",
                    Some("a.wav"),
                    b"this is plain text, not audio",
                ),
                ("source_language", None, b"en"),
            ],
            422,
            Some("audio_file"),
        ),
        form_case(
            "truncated WAV header",
            &[
                ("audio_file", Some("a.wav"), &wav[..20]),
                ("source_language", None, b"en"),
            ],
            422,
            Some("audio_file"),
        ),
        form_case(
            "PNG renamed .mp3",
            &[
                (
                    "audio_file",
                    Some("a.mp3"),
                    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                ),
                ("source_language", None, b"en"),
            ],
            422,
            Some("audio_file"),
        ),
        form_case(
            "audio of 50 MiB + 1",
            &[
                ("audio_file", Some("big.wav"), &over_limit),
                ("source_language", None, b"en"),
            ],
            413,
            None,
        ),
        form_case(
            "transcription without language",
            &[("audio_file", Some("a.wav"), &wav)],
            422,
            Some("source_language"),
        ),
        form_case(
            "transcription unknown language",
            &[
                ("audio_file", Some("a.wav"), &wav),
                ("source_language", None, b"tlh"),
            ],
            422,
            Some("source_language"),
        ),
        form_case(
            "transcription language not UTF-8",
            &[
                ("audio_file", Some("a.wav"), &wav),
                ("source_language", None, b"\xff\xfe"),
            ],
            422,
            Some("source_language"),
        ),
        form_case(
            "transcription unknown priority",
            &[
                ("audio_file", Some("a.wav"), &wav),
                ("source_language", None, b"en"),
                ("priority", None, b"top"),
            ],
            422,
            Some("priority"),
        ),
        form_case(
            "transcription private callback",
            &[
                ("audio_file", Some("a.wav"), &wav),
                ("source_language", None, b"en"),
                ("callback_url", None, b"http://192.168.1.1/x"),
            ],
            422,
            Some("callback_url"),
        ),
        form_case(
            "two audio files",
            &[
                ("audio_file", Some("a.wav"), &wav),
                ("audio_file", Some("b.wav"), &wav),
                ("source_language", None, b"en"),
            ],
            422,
            Some("audio_file"),
        ),
        // Routes, methods and queries.
        get_case(
            "task id that is not a uuid",
            "GET",
            "/api/v1/tasks/not-a-task",
            404,
            None,
        ),
        get_case(
            "unknown task",
            "GET",
            &format!("/api/v1/tasks/{unknown}"),
            404,
            None,
        ),
        get_case(
            "audio of an unknown task",
            "GET",
            &format!("/api/v1/tasks/{unknown}/audio"),
            404,
            None,
        ),
        get_case("unknown route", "GET", "/api/v2/everything", 404, None),
        get_case("GET on a submit route", "GET", "/api/v1/tts", 405, None),
        get_case(
            "DELETE on a submit route",
            "DELETE",
            "/api/v1/transcription",
            405,
            None,
        ),
        get_case(
            "PUT on a task",
            "PUT",
            &format!("/api/v1/tasks/{unknown}"),
            405,
            None,
        ),
        get_case(
            "list limit 0",
            "GET",
            "/api/v1/tasks?limit=0",
            422,
            Some("limit"),
        ),
        get_case(
            "list limit 101",
            "GET",
            "/api/v1/tasks?limit=101",
            422,
            Some("limit"),
        ),
        get_case(
            "list limit not a number",
            "GET",
            "/api/v1/tasks?limit=ten",
            422,
            Some("limit"),
        ),
        get_case(
            "list unknown status",
            "GET",
            "/api/v1/tasks?status=done",
            422,
            Some("status"),
        ),
        get_case(
            "list unknown task type",
            "GET",
            "/api/v1/tasks?task_type=video",
            422,
            Some("task_type"),
        ),
        get_case(
            "list forged cursor",
            "GET",
            "/api/v1/tasks?cursor=@@@",
            422,
            Some("cursor"),
        ),
    ]
}

fn uuid_like() -> String {
    "01a21066-fe44-744e-a66f-bb74f2c8078a".into()
}

#[tokio::test]
async fn every_bad_request_gets_its_4xx_problem_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(running.addr);
    let cases = cases();
    assert!(cases.len() >= 40, "the suite has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = api
            .http
            .request(method, format!("{}{}", api.base, case.path))
            .body(case.body.clone());
        if let Some(ct) = &case.content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let field_named = case.field.is_none_or(|f| {
            body["errors"]
                .as_array()
                .is_some_and(|errs| errs.iter().any(|e| e["field"] == f))
        });
        if status != case.status
            || content_type.as_deref() != Some("application/problem+json")
            || body["status"] != case.status
            || body["detail"].as_str().is_none_or(str::is_empty)
            || !field_named
        {
            failures.push(format!(
                "{}: got {status} {content_type:?} {body}",
                case.name
            ));
        }
        assert!(status < 500, "{} got a 5xx: {body}", case.name);
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(
        health["tasks"]["total"], 0,
        "bad input stored nothing: {health}"
    );
    let (_, several) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": 5, "source_language": "xx", "priority": "now"}),
        )
        .await;
    assert_eq!(
        several["errors"].as_array().unwrap().len(),
        3,
        "every bad field is reported at once: {several}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn inputs_at_each_limit_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(running.addr);
    let accepted = [
        ("/api/v1/tts", json!({"text": "a", "source_language": "EN"})),
        (
            "/api/v1/tts",
            json!({"text": "语".repeat(10_000), "source_language": "zh", "priority": "URGENT"}),
        ),
        (
            "/api/v1/tts",
            json!({"text": format!("  {}  ", "b".repeat(10_000)), "source_language": "de", "callback_url": null}),
        ),
        (
            "/api/v1/summarization",
            json!({"text": "c".repeat(50), "source_language": "fr", "priority": "low"}),
        ),
        (
            "/api/v1/summarization",
            json!({"text": "d".repeat(50_000), "source_language": "ja", "callback_url": "https://example.com/hook"}),
        ),
    ];
    for (path, body) in &accepted {
        let (status, view) = api.post_json(path, body).await;
        assert_eq!(status, 200, "{path} {view}");
    }
    let wav = wav_with_transcript("limit");
    let (status, view) = api
        .post_multipart(
            "/api/v1/transcription",
            multipart(&[
                ("audio_file", Some("x.wav"), &wav),
                ("source_language", None, b"hi"),
                ("unknown_field", None, b"ignored"),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(health["tasks"]["total"], 6);
    assert_eq!(health["tasks"]["pending"], 6);
    running.shutdown().await.unwrap();
}
