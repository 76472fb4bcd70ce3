//! The HTTP adapter of the reference endpoints, called alongside the miners
//! (`SCORING_MODE=reference|auto`).
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

use crate::config::{ReferenceSettings, Secret};
use crate::domain::{Language, ServiceKind};
use crate::ports::{ReferenceEndpoints, ReferenceInput as Input};

/// The most read from a reference answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The configured reference endpoints.
#[derive(Debug, Clone)]
pub struct HttpReference {
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

impl HttpReference {
    /// The endpoints `settings` configure (none may be: then it covers nothing).
    pub fn new(settings: &ReferenceSettings) -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            pipeline: settings.url.clone(),
            asr: settings.asr_url.clone(),
            model: settings.asr_model.clone(),
            key: settings.api_key.clone(),
        }
    }
}

impl ReferenceEndpoints for HttpReference {
    fn covers(&self, kind: ServiceKind) -> bool {
        match kind {
            ServiceKind::Transcription => self.pipeline.is_some() || self.asr.is_some(),
            ServiceKind::Summarization => self.pipeline.is_some(),
            ServiceKind::Tts => false,
        }
    }

    fn hears_speech(&self) -> bool {
        self.asr.is_some()
    }

    async fn reference(
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

    async fn transcribe(
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
}

impl HttpReference {
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
