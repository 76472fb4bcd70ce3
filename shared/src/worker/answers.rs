//! Validation of a miner's answer before it is scored. An answer that fails here is an outcome,
//! never a low score.

use base64::Engine as _;
use bytes::Bytes;

use crate::domain::MinerReply;
use crate::domain::{Outcome, ServiceKind};

/// A validated answer.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    /// Non-empty UTF-8 text.
    Text(String),
    /// A WAV file that decodes in full.
    Audio {
        /// The file.
        wav: Bytes,
        /// What decoding measured.
        signal: crate::audio::Signal,
    },
}

impl Answer {
    /// What scoring needs of the answer.
    pub(super) fn scoring(&self) -> crate::scoring::Answer {
        match self {
            Self::Text(t) => crate::scoring::Answer::Text(t.clone()),
            Self::Audio { signal, .. } => crate::scoring::Answer::Audio(signal.clone()),
        }
    }
}

/// Checks a reply: status, `error_message`, base64, and a WAV that parses (TTS) or non-empty
/// UTF-8 text (the others).
pub(super) fn validate(reply: &MinerReply, kind: ServiceKind) -> Result<Answer, (Outcome, String)> {
    if reply.outcome != Outcome::Success {
        return Err((
            reply.outcome,
            reply
                .error
                .clone()
                .unwrap_or_else(|| reply.outcome.as_str().to_owned()),
        ));
    }
    let Some(body) = reply.body.as_ref() else {
        return Err((Outcome::InvalidAnswer, "empty answer".into()));
    };
    if let Some(message) = body
        .error_message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        let shown: String = message.chars().take(300).collect();
        return Err((
            Outcome::MinerError,
            format!("miner reported an error: {shown}"),
        ));
    }
    let encoded = body
        .output_data
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or((
            Outcome::InvalidAnswer,
            "the answer has no output_data".to_owned(),
        ))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| {
            (
                Outcome::InvalidAnswer,
                "output_data is not valid base64".to_owned(),
            )
        })?;
    if kind.produces_audio() {
        let wav = Bytes::from(raw);
        let signal = crate::audio::analyze(wav.clone(), Some("answer.wav")).map_err(|e| {
            (
                Outcome::InvalidAnswer,
                format!("output_data is not playable audio: {e}"),
            )
        })?;
        if signal.info.format != "wav" {
            return Err((
                Outcome::InvalidAnswer,
                format!("output_data is {}, not WAV", signal.info.format),
            ));
        }
        if signal.info.duration_s <= 0.0 {
            return Err((
                Outcome::InvalidAnswer,
                "output_data is an empty WAV file".into(),
            ));
        }
        Ok(Answer::Audio { wav, signal })
    } else {
        let text = String::from_utf8(raw).map_err(|_| {
            (
                Outcome::InvalidAnswer,
                "output_data is not UTF-8 text".to_owned(),
            )
        })?;
        if text.trim().is_empty() {
            return Err((Outcome::InvalidAnswer, "output_data is empty text".into()));
        }
        Ok(Answer::Text(text))
    }
}

/// [`validate`], on a blocking thread when the answer is audio: decoding a long WAV in full is
/// CPU work that must not stall the other miners' replies.
pub(super) async fn validate_off_thread(
    reply: &MinerReply,
    kind: ServiceKind,
) -> Result<Answer, (Outcome, String)> {
    if !kind.produces_audio() || reply.outcome != Outcome::Success {
        return validate(reply, kind);
    }
    let owned = reply.clone();
    tokio::task::spawn_blocking(move || validate(&owned, kind))
        .await
        .unwrap_or_else(|_| {
            Err((
                Outcome::InvalidAnswer,
                "output_data could not be decoded".to_owned(),
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::domain::SynapseAnswer;

    fn reply(output: Option<&str>, error: Option<&str>) -> MinerReply {
        MinerReply {
            outcome: Outcome::Success,
            latency: Duration::from_millis(3),
            body: Some(Arc::new(SynapseAnswer {
                output_data: output.map(str::to_owned),
                error_message: error.map(str::to_owned),
                ..SynapseAnswer::default()
            })),
            error: None,
        }
    }

    #[test]
    fn an_error_message_makes_a_200_a_miner_error() {
        let r = validate(
            &reply(Some("aGk="), Some("model crashed")),
            ServiceKind::Summarization,
        );
        assert_eq!(r.unwrap_err().0, Outcome::MinerError);
    }

    #[test]
    fn bad_base64_empty_text_and_non_wav_audio_are_invalid() {
        assert_eq!(
            validate(&reply(Some("@@@"), None), ServiceKind::Summarization)
                .unwrap_err()
                .0,
            Outcome::InvalidAnswer
        );
        assert_eq!(
            validate(&reply(Some("ICA="), None), ServiceKind::Summarization)
                .unwrap_err()
                .0,
            Outcome::InvalidAnswer
        );
        assert_eq!(
            validate(&reply(Some("aGVsbG8="), None), ServiceKind::Tts)
                .unwrap_err()
                .0,
            Outcome::InvalidAnswer
        );
        assert_eq!(
            validate(&reply(None, None), ServiceKind::Tts)
                .unwrap_err()
                .0,
            Outcome::InvalidAnswer
        );
    }

    #[test]
    fn a_real_wav_is_accepted_for_tts() {
        let wav = crate::audio::wav_pcm16(&crate::audio::tone(0.2, 300.0, 8000), 8000, None);
        let b64 = base64::engine::general_purpose::STANDARD.encode(wav);
        match validate(&reply(Some(&b64), None), ServiceKind::Tts).unwrap() {
            Answer::Audio { signal, .. } => assert!((signal.info.duration_s - 0.2).abs() < 0.01),
            Answer::Text(_) => panic!("expected audio"),
        }
    }
}
