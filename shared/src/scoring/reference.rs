//! Reference endpoints, called alongside the miners (`SCORING_MODE=reference|auto`).
//!
//! - `REFERENCE_URL`: a trusted pipeline speaking the `AudioTask` contract, such as the
//!   operator's own miner or validator. taogate POSTs the synapse fields as JSON,
//!   `{"task_type", "input_data" (base64), "language"}`, and reads `output_data` (base64) from
//!   the JSON answer; a non-empty `error_message` is a failure. It provides transcription and
//!   summarization references.
//! - `REFERENCE_ASR_URL`: an OpenAI-compatible `/v1/audio/transcriptions` endpoint (whisper
//!   servers expose one). taogate uploads audio as multipart (`file`, `model`, `language`,
//!   `response_format=json`) and reads `text`. It provides the transcription reference when
//!   no pipeline is configured, and the intelligibility of TTS answers.
//!
//! `REFERENCE_API_KEY`, when set, is sent as a bearer token to both and never logged.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use crate::config::{Secret, Settings};
use crate::domain::{Language, ServiceKind};

/// The most read from a reference answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The task's input, as the reference needs it.
#[derive(Debug, Clone)]
pub enum Input {
    /// Text to summarize or speak.
    Text(String),
    /// Audio to transcribe, with a file name for its container.
    Audio {
        /// The file.
        bytes: Bytes,
        /// Its name (the extension tells the recognizer the container).
        filename: String,
    },
}

/// The configured reference endpoints.
#[derive(Debug, Clone)]
pub struct ReferenceClient {
    http: reqwest::Client,
    pipeline: Option<url::Url>,
    asr: Option<url::Url>,
    model: String,
    key: Option<Secret>,
}

#[derive(Deserialize)]
struct PipelineAnswer {
    output_data: Option<String>,
    error_message: Option<String>,
}

#[derive(Deserialize)]
struct AsrAnswer {
    text: String,
}

impl ReferenceClient {
    /// The endpoints `settings` configure, or `None` when there are none.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        if settings.reference_url.is_none() && settings.reference_asr_url.is_none() {
            return None;
        }
        Some(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            pipeline: settings.reference_url.clone(),
            asr: settings.reference_asr_url.clone(),
            model: settings.reference_asr_model.clone(),
            key: settings.reference_api_key.clone(),
        })
    }

    /// Whether a task-level reference exists for `kind` (TTS has only per-answer
    /// intelligibility, see [`Self::hears_speech`]).
    pub fn covers(&self, kind: ServiceKind) -> bool {
        match kind {
            ServiceKind::Transcription => self.pipeline.is_some() || self.asr.is_some(),
            ServiceKind::Summarization => self.pipeline.is_some(),
            ServiceKind::Tts => false,
        }
    }

    /// Whether TTS answers can be transcribed.
    pub fn hears_speech(&self) -> bool {
        self.asr.is_some()
    }

    /// The reference answer for a task, within `deadline`.
    pub async fn reference(
        &self,
        kind: ServiceKind,
        language: Language,
        input: &Input,
        deadline: Duration,
    ) -> Result<String, String> {
        let work = async {
            match (&self.pipeline, input) {
                (Some(url), _) => self.pipeline_answer(url, kind, language, input).await,
                (None, Input::Audio { bytes, filename }) if kind == ServiceKind::Transcription => {
                    self.transcribe_now(bytes.clone(), filename, language).await
                }
                _ => Err(format!("no reference endpoint serves {kind}")),
            }
        };
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:.1} s", deadline.as_secs_f64())))
    }

    /// The recognizer's transcript of `audio`, within `deadline`.
    pub async fn transcribe(
        &self,
        audio: Bytes,
        filename: &str,
        language: Language,
        deadline: Duration,
    ) -> Result<String, String> {
        tokio::time::timeout(deadline, self.transcribe_now(audio, filename, language))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:.1} s", deadline.as_secs_f64())))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    async fn read(response: reqwest::Response) -> Result<Bytes, String> {
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_ANSWER_BYTES)
        {
            return Err("answer too large".into());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer failed: {}", e.without_url()))?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err("answer too large".into());
        }
        if !status.is_success() {
            let shown: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(format!("HTTP {status}: {shown}"));
        }
        Ok(body)
    }

    async fn pipeline_answer(
        &self,
        url: &url::Url,
        kind: ServiceKind,
        language: Language,
        input: &Input,
    ) -> Result<String, String> {
        let engine = base64::engine::general_purpose::STANDARD;
        let input_data = match input {
            Input::Text(t) => engine.encode(t),
            Input::Audio { bytes, .. } => engine.encode(bytes),
        };
        let body = serde_json::json!({
            "task_type": kind.as_str(),
            "input_data": input_data,
            "language": language.code(),
        });
        let response = self
            .authorized(self.http.post(url.clone()).json(&body))
            .send()
            .await
            .map_err(|e| format!("pipeline unreachable: {}", e.without_url()))?;
        let raw = Self::read(response).await?;
        let answer: PipelineAnswer = serde_json::from_slice(&raw)
            .map_err(|e| format!("pipeline answer is not AudioTask JSON: {e}"))?;
        if let Some(message) = answer.error_message.filter(|m| !m.trim().is_empty()) {
            let shown: String = message.chars().take(200).collect();
            return Err(format!("pipeline reported an error: {shown}"));
        }
        let decoded = engine
            .decode(answer.output_data.unwrap_or_default().trim())
            .map_err(|_| "pipeline output_data is not base64".to_owned())?;
        let text = String::from_utf8(decoded)
            .map_err(|_| "pipeline output_data is not UTF-8 text".to_owned())?;
        if text.trim().is_empty() {
            return Err("pipeline returned empty text".into());
        }
        Ok(text)
    }

    async fn transcribe_now(
        &self,
        audio: Bytes,
        filename: &str,
        language: Language,
    ) -> Result<String, String> {
        let Some(url) = &self.asr else {
            return Err("no speech recognizer configured".into());
        };
        let file = reqwest::multipart::Part::stream(reqwest::Body::from(audio))
            .file_name(filename.to_owned())
            .mime_str("application/octet-stream")
            .map_err(|e| e.to_string())?;
        let form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("language", language.code())
            .text("response_format", "json");
        let response = self
            .authorized(self.http.post(url.clone()).multipart(form))
            .send()
            .await
            .map_err(|e| format!("recognizer unreachable: {}", e.without_url()))?;
        let raw = Self::read(response).await?;
        let answer: AsrAnswer = serde_json::from_slice(&raw)
            .map_err(|e| format!("recognizer answer has no text: {e}"))?;
        Ok(answer.text)
    }
}
