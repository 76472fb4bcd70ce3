//! The multipart reader of `POST /api/v1/transcription`, driven through the real router over the
//! embedded stores.

use std::time::Duration;

use axum::body::Body;
use proptest::prelude::*;
use taogate_shared::api::{self, SubmitState};
use taogate_shared::config::{AuthMode, SubmissionSettings, TenancySettings};
use taogate_shared::embedded::{BlobDir, Database, QueuePolicy};
use taogate_shared::submission::Intake;
use tower::ServiceExt as _;

use crate::{Input, MIB, fuzz, mutated};

/// The submit routes over embedded stores in a fresh directory, with keys `auth`.
pub struct Gateway {
    /// Runs the router and the stores' tasks.
    pub runtime: tokio::runtime::Runtime,
    /// The submit routes behind the tenancy gate.
    pub router: axum::Router,
    /// The stores (the key table included).
    pub db: Database,
    _dir: tempfile::TempDir,
}

/// A gateway whose gate runs in `auth` mode.
pub fn gateway(auth: AuthMode) -> Gateway {
    let runtime = crate::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (router, db) = runtime.block_on(async {
        let db = Database::open(dir.path(), QueuePolicy::default()).unwrap();
        let blobs = BlobDir::new(&dir.path().join("blobs"), "http://x", &db).unwrap();
        let router = api::with_fallbacks(api::submit_routes(
            SubmitState {
                intake: Intake {
                    tasks: db.clone(),
                    queue: db.clone(),
                    blobs,
                },
                settings: SubmissionSettings::default(),
            },
            TenancySettings {
                auth,
                key_cache: Duration::from_secs(30),
            },
            false,
        ));
        (router, db)
    });
    Gateway {
        runtime,
        router,
        db,
        _dir: dir,
    }
}

/// Sends `request` through the router: its status and the start of its body.
pub fn send(gateway: &Gateway, request: http::Request<Body>) -> (u16, String) {
    gateway.runtime.block_on(async {
        let response = gateway.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), MIB)
            .await
            .unwrap_or_default();
        (
            status,
            String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned(),
        )
    })
}

/// One part of a form: its name, file name and content.
type Part = (String, Option<String>, Vec<u8>);

/// A multipart body of `parts` between `boundary` lines.
fn form(boundary: &str, parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, data) in parts {
        out.extend(
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"").bytes(),
        );
        if let Some(f) = filename {
            out.extend(format!("; filename=\"{f}\"\r\ncontent-type: audio/wav").bytes());
        }
        out.extend(b"\r\n\r\n");
        out.extend_from_slice(data);
        out.extend(b"\r\n");
    }
    out.extend(format!("--{boundary}--\r\n").bytes());
    out
}

/// The parts of a valid submission, some of them changed, left out or repeated.
fn parts() -> impl Strategy<Value = Vec<Part>> {
    let mut audio = crate::audio::wav_seeds();
    audio.push(crate::audio::fixture("speech.mp3", 4 * 1024));
    let audio_file = (
        prop::sample::select(audio).prop_flat_map(|a| mutated(a, 2)),
        prop::sample::select(vec!["speech.wav", "speech.mp3", "x", "a\"b.wav", ""]),
    )
        .prop_map(|(data, name)| ("audio_file".to_owned(), Some(name.to_owned()), data.0));
    let field = |name: &'static str, value: &'static str| {
        mutated(value.as_bytes().to_vec(), 1).prop_map(move |v| (name.to_owned(), None, v.0))
    };
    let part = prop_oneof![
        4 => audio_file,
        2 => field("source_language", "en"),
        1 => field("priority", "high"),
        1 => field("callback_url", "https://example.com/done"),
        1 => ("[a-z_]{0,12}", prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(name, data)| (name, None, data)),
    ];
    let valid = vec![
        ("source_language".to_owned(), None, b"en".to_vec()),
        (
            "audio_file".to_owned(),
            Some("speech.wav".to_owned()),
            crate::audio::wav_seeds().remove(0),
        ),
    ];
    prop_oneof![
        1 => Just(valid),
        3 => prop::collection::vec(part, 0..5),
    ]
}

/// The boundary a request declares.
fn boundary() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just("taogate-fuzz-7MA4YWxkTrZu0gW".to_owned()),
        1 => "[ -~]{0,72}",
        1 => ".{0,16}",
    ]
}

/// The `content-type` of a request declaring `boundary`.
fn content_type(boundary: String) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(format!("multipart/form-data; boundary={boundary}")),
        1 => Just(format!("multipart/form-data; boundary=\"{boundary}\"; charset=utf-8")),
        1 => Just("multipart/form-data".to_owned()),
        1 => Just("multipart/form-data; boundary=".to_owned()),
        1 => Just("application/json".to_owned()),
        1 => "[ -~]{0,40}",
    ]
}

/// A request: its `content-type`, a declared `content-length` if any, and its body (a form
/// whose boundary is usually the declared one, two times in three changed by up to three
/// edits).
fn request() -> impl Strategy<Value = (String, Option<u64>, Input)> {
    (boundary(), parts(), prop::bool::weighted(0.9))
        .prop_flat_map(|(declared, parts, same)| {
            let used = if same { declared.clone() } else { "other".to_owned() };
            (
                content_type(declared),
                prop_oneof![
                    6 => Just(None),
                    1 => prop::sample::select(vec![0, 1, 100, 60 * MIB as u64, u64::MAX]).prop_map(Some),
                ],
                prop_oneof![
                    1 => Just(Input(form(&used, &parts))),
                    2 => mutated(form(&used, &parts), 3),
                ],
            )
        })
}

/// `POST /api/v1/transcription` with any multipart body, boundary, `content-type` and declared
/// length: a 2xx or a 4xx, never a 5xx and never a panic. 96 cases (under 1 s in the debug profile).
///
/// Memory: at most 16 × the body + 32 MiB (the body, the parts multer copies out, the audio
/// probe's decoder state, and SQLite's page cache as tasks are stored).
#[test]
fn transcription_forms_are_accepted_or_refused() {
    fuzz(
        concat!(
            module_path!(),
            "::transcription_forms_are_accepted_or_refused"
        ),
        96,
        request(),
        || gateway(AuthMode::Optional),
        |(_, _, body)| 16 * body.0.len() + 32 * MIB,
        |gateway, (content_type, length, Input(body))| {
            let mut request = http::Request::post("/api/v1/transcription");
            if let Ok(value) = http::HeaderValue::from_str(&content_type) {
                request = request.header("content-type", value);
            }
            if let Some(n) = length {
                request = request.header("content-length", n);
            }
            let (status, answer) = send(gateway, request.body(Body::from(body)).unwrap());
            prop_assert!(
                (200..300).contains(&status) || (400..500).contains(&status),
                "{status}: {answer}"
            );
            Ok(())
        },
    );
}
