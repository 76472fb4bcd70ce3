//! Validation of a miner's answer before it is scored. An answer that fails here is an outcome,
//! never a low score. Pure: the worker runs [`validate`] on a blocking thread for audio, and the
//! fuzz tests (`shared/tests/fuzz`) feed it hostile answers.

use base64::Engine as _;
use bytes::Bytes;

use crate::domain::{
    AnswerBudget, MAX_ANSWER_CHANNELS, MAX_ANSWER_SAMPLE_BYTES, MAX_ANSWER_SAMPLE_RATE, MinerReply,
    Outcome,
};

/// A validated answer.
#[derive(Debug, Clone)]
pub enum ValidAnswer {
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

impl ValidAnswer {
    /// What scoring needs of the answer.
    pub fn scoring(&self) -> crate::scoring::Answer {
        match self {
            Self::Text(t) => crate::scoring::Answer::Text(t.clone()),
            Self::Audio { signal, .. } => crate::scoring::Answer::Audio(signal.clone()),
        }
    }
}

/// Checks a reply: status, `error_message`, base64, and a WAV that parses (TTS) or non-empty
/// UTF-8 text (the others), all within the task's `budget`. A WAV is judged by its header first
/// (format, rate, channels, width, duration) and decoded only if that passes, and then no further
/// than the budget's duration.
pub fn validate(
    reply: &MinerReply,
    budget: &AnswerBudget,
) -> Result<ValidAnswer, (Outcome, String)> {
    let kind = budget.kind;
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
        judge_header(&wav, budget)?;
        // The header is trusted no further than the bytes: decoding stops a little past the
        // budget's duration whatever the stream holds.
        let decode_limit = budget.audio_seconds * 1.05 + 0.5;
        let signal = crate::audio::analyze_within(wav.clone(), Some("answer.wav"), decode_limit)
            .map_err(|e| {
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
        Ok(ValidAnswer::Audio { wav, signal })
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
        let chars = text.chars().count();
        if chars > budget.text_chars {
            return Err((
                Outcome::Oversized,
                format!(
                    "the answer has {chars} characters; this task allows at most {}",
                    budget.text_chars
                ),
            ));
        }
        Ok(ValidAnswer::Text(text))
    }
}

/// Refuses a WAV by what its header declares, before any decoding: not RIFF/WAVE (another
/// container could expand without bound), a rate, channel count or sample width past the
/// answer limits, or more seconds than the budget.
fn judge_header(wav: &Bytes, budget: &AnswerBudget) -> Result<(), (Outcome, String)> {
    let invalid = |why: String| (Outcome::InvalidAnswer, why);
    let header = crate::audio::wav_header(wav)
        .map_err(|e| invalid(format!("output_data is not a WAV file: {e}")))?;
    if header.sample_rate > MAX_ANSWER_SAMPLE_RATE {
        return Err(invalid(format!(
            "the WAV declares {} Hz; at most {MAX_ANSWER_SAMPLE_RATE} Hz is accepted",
            header.sample_rate
        )));
    }
    if header.channels > MAX_ANSWER_CHANNELS {
        return Err(invalid(format!(
            "the WAV declares {} channels; at most {MAX_ANSWER_CHANNELS} are accepted",
            header.channels
        )));
    }
    if header.bits_per_sample > 8 * MAX_ANSWER_SAMPLE_BYTES {
        return Err(invalid(format!(
            "the WAV declares {}-bit samples; at most {} bits are accepted",
            header.bits_per_sample,
            8 * MAX_ANSWER_SAMPLE_BYTES
        )));
    }
    if header.seconds > budget.audio_seconds {
        return Err((
            Outcome::Oversized,
            format!(
                "the WAV holds {:.1} s of audio; this text allows at most {:.1} s",
                header.seconds, budget.audio_seconds
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::domain::{Language, Priority, ServiceKind, SynapseAnswer, Task, TaskInput};

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
            memory: None,
        }
    }

    /// The budget of a task of `kind` whose text input is `text`.
    fn budget(kind: ServiceKind, text: &str) -> AnswerBudget {
        AnswerBudget::for_task(&Task::new(
            kind,
            Priority::Normal,
            Language::parse("en").unwrap(),
            TaskInput::Text { text: text.into() },
            None,
            0,
        ))
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A 0.2 s WAV whose `fmt ` chunk is then edited by `edit(bytes, fmt_offset)`.
    fn edited_wav(edit: impl FnOnce(&mut Vec<u8>, usize)) -> Vec<u8> {
        let mut wav = crate::audio::wav_pcm16(&crate::audio::tone(0.2, 300.0, 8000), 8000, None);
        let fmt = wav.windows(4).position(|w| w == b"fmt ").unwrap() + 8;
        edit(&mut wav, fmt);
        wav
    }

    #[test]
    fn an_error_message_makes_a_200_a_miner_error() {
        let r = validate(
            &reply(Some("aGk="), Some("model crashed")),
            &budget(ServiceKind::Summarization, "some source text"),
        );
        assert_eq!(r.unwrap_err().0, Outcome::MinerError);
    }

    #[test]
    fn bad_base64_empty_text_and_non_wav_audio_are_invalid() {
        let summary = budget(ServiceKind::Summarization, "some source text");
        let speech = budget(ServiceKind::Tts, "say this");
        for (answer, budget) in [
            (Some("@@@"), &summary),
            (Some("ICA="), &summary),
            (Some("aGVsbG8="), &speech),
            (None, &speech),
        ] {
            assert_eq!(
                validate(&reply(answer, None), budget).unwrap_err().0,
                Outcome::InvalidAnswer,
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_real_wav_is_accepted_for_tts() {
        let wav = crate::audio::wav_pcm16(&crate::audio::tone(0.2, 300.0, 8000), 8000, None);
        match validate(
            &reply(Some(&b64(&wav)), None),
            &budget(ServiceKind::Tts, "hi"),
        )
        .unwrap()
        {
            ValidAnswer::Audio { signal, .. } => {
                assert!((signal.info.duration_s - 0.2).abs() < 0.01)
            }
            ValidAnswer::Text(_) => panic!("expected audio"),
        }
    }

    #[test]
    fn text_past_its_budget_is_oversized() {
        let source = "The council met on Monday and approved the budget for the bridge.";
        let summary = budget(ServiceKind::Summarization, source);
        let fits = "x".repeat(summary.text_chars);
        assert!(validate(&reply(Some(&b64(fits.as_bytes())), None), &summary).is_ok());
        let over = "x".repeat(summary.text_chars + 1);
        let (outcome, why) =
            validate(&reply(Some(&b64(over.as_bytes())), None), &summary).unwrap_err();
        assert_eq!(outcome, Outcome::Oversized);
        assert!(why.contains("at most"), "{why}");
    }

    #[test]
    fn hostile_wav_headers_are_refused_before_decoding() {
        let speech = budget(ServiceKind::Tts, "hi");
        // Consistent headers (byte rate and block alignment agree), absurd values.
        let absurd_rate = edited_wav(|w, fmt| {
            w[fmt + 4..fmt + 8].copy_from_slice(&3_000_000u32.to_le_bytes());
            w[fmt + 8..fmt + 12].copy_from_slice(&6_000_000u32.to_le_bytes());
        });
        let many_channels = edited_wav(|w, fmt| {
            w[fmt + 2..fmt + 4].copy_from_slice(&8u16.to_le_bytes());
            w[fmt + 8..fmt + 12].copy_from_slice(&128_000u32.to_le_bytes());
            w[fmt + 12..fmt + 14].copy_from_slice(&16u16.to_le_bytes());
        });
        for (wav, expect) in [(absurd_rate, "Hz"), (many_channels, "channels")] {
            let (outcome, why) = validate(&reply(Some(&b64(&wav)), None), &speech).unwrap_err();
            assert_eq!(outcome, Outcome::InvalidAnswer, "{why}");
            assert!(why.contains(expect), "{why}");
        }
        // A container that decodes to more than it weighs is not looked into at all.
        let flac = include_bytes!("../../testdata/audio/speech.flac");
        let (outcome, why) = validate(&reply(Some(&b64(flac)), None), &speech).unwrap_err();
        assert_eq!(outcome, Outcome::InvalidAnswer);
        assert!(why.contains("RIFF"), "{why}");
    }

    #[test]
    fn speech_longer_than_the_text_allows_is_oversized_and_a_streamed_length_is_not() {
        // "hi" allows 1 s + 4 × (2 / 12) s ≈ 1.7 s; this is 3 s.
        let speech = budget(ServiceKind::Tts, "hi");
        let long = crate::audio::wav_pcm16(&crate::audio::tone(3.0, 300.0, 8000), 8000, None);
        let (outcome, why) = validate(&reply(Some(&b64(&long)), None), &speech).unwrap_err();
        assert_eq!(outcome, Outcome::Oversized, "{why}");
        // A WAV written to a pipe declares the longest possible data chunk: its bytes decide.
        let streamed = edited_wav(|w, _| {
            let data = w.windows(4).position(|x| x == b"data").unwrap() + 4;
            w[data..data + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            w[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        });
        let checked = validate(&reply(Some(&b64(&streamed)), None), &speech);
        assert!(
            checked.is_ok(),
            "a short file is short whatever its header says: {:?}",
            checked.err()
        );
    }
}
