//! What one miner's answer to a task may cost: bounds derived from the task's own input, so that
//! no miner can make the gateway read, decode or compare more than the task could need.
//!
//! | service | answer | bound |
//! |---|---|---|
//! | transcription | text | 256 + 40 characters per second of audio (twice fast speech) |
//! | summarization | text | the source's characters + 256 (a summary is shorter than its source) |
//! | text-to-speech | WAV | 1 s + 4 × the text's expected reading time (past 4 × an answer scores 0); at most 48 kHz, 2 channels, 32-bit samples |
//!
//! The byte budget of `output_data` follows: text at 4 bytes per character (UTF-8 at worst),
//! audio at the largest rate, width and channel count for the longest duration, both in base64.
//! Clients cap it further with `MAX_RESPONSE_BYTES`.

use super::{Language, ServiceKind, Task, TaskInput};

/// The highest sample rate a speech answer may declare.
pub const MAX_ANSWER_SAMPLE_RATE: u32 = 48_000;
/// The most channels a speech answer may declare.
pub const MAX_ANSWER_CHANNELS: u16 = 2;
/// The widest sample a speech answer may declare, in bytes.
pub const MAX_ANSWER_SAMPLE_BYTES: u16 = 4;
/// Transcript characters allowed per second of audio.
pub const TRANSCRIPT_CHARS_PER_SECOND: f64 = 40.0;
/// Characters every text answer may have whatever its input.
pub const TEXT_SLACK_CHARS: usize = 256;
/// A speech answer may last this many times the text's expected reading time.
pub const SPEECH_STRETCH: f64 = 4.0;

/// The bounds on one answer to one task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerBudget {
    /// The service answered.
    pub kind: ServiceKind,
    /// Most bytes of `output_data` (base64).
    pub output_bytes: usize,
    /// Most characters of a text answer.
    pub text_chars: usize,
    /// Most seconds of a speech answer.
    pub audio_seconds: f64,
}

impl AnswerBudget {
    /// The budget of `task`'s answers.
    pub fn for_task(task: &Task) -> Self {
        match (&task.input, task.kind) {
            (TaskInput::Audio { info, .. }, kind) => Self::text(
                kind,
                TEXT_SLACK_CHARS
                    + (info.duration_s.max(0.0) * TRANSCRIPT_CHARS_PER_SECOND) as usize,
            ),
            (TaskInput::Text { text }, ServiceKind::Tts) => {
                Self::speech(expected_reading_seconds(text, task.language))
            }
            (TaskInput::Text { text }, kind) => {
                Self::text(kind, TEXT_SLACK_CHARS + text.chars().count())
            }
        }
    }

    fn text(kind: ServiceKind, chars: usize) -> Self {
        Self {
            kind,
            output_bytes: base64_len(chars.saturating_mul(4)),
            text_chars: chars,
            audio_seconds: 0.0,
        }
    }

    fn speech(expected_seconds: f64) -> Self {
        let seconds = 1.0 + SPEECH_STRETCH * expected_seconds;
        let per_second = f64::from(MAX_ANSWER_SAMPLE_RATE)
            * f64::from(MAX_ANSWER_CHANNELS)
            * f64::from(MAX_ANSWER_SAMPLE_BYTES);
        Self {
            kind: ServiceKind::Tts,
            // The header and any metadata chunks: 64 KiB.
            output_bytes: base64_len((seconds * per_second) as usize + 64 * 1024),
            text_chars: 0,
            audio_seconds: seconds,
        }
    }
}

/// The duration `text` takes when read aloud in `language` at an ordinary pace.
pub fn expected_reading_seconds(text: &str, language: Language) -> f64 {
    let chars = text.chars().filter(|c| !c.is_whitespace()).count();
    chars as f64 / language.chars_per_second()
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3).saturating_mul(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AudioInfo, Priority};

    fn task(kind: ServiceKind, input: TaskInput, language: &str) -> Task {
        Task::new(
            kind,
            Priority::Normal,
            Language::parse(language).unwrap(),
            input,
            None,
            0,
        )
    }

    #[test]
    fn each_budget_follows_its_input() {
        let minute = TaskInput::Audio {
            blob_key: "k".into(),
            filename: None,
            size_bytes: 1,
            info: AudioInfo {
                format: "wav".into(),
                duration_s: 60.0,
                sample_rate: 16_000,
                channels: 1,
            },
        };
        let b = AnswerBudget::for_task(&task(ServiceKind::Transcription, minute, "en"));
        assert_eq!(b.text_chars, 256 + 2_400);
        // 2,656 characters of 4 bytes, in base64.
        assert_eq!(b.output_bytes, 14_168, "{b:?}");

        let source = "word ".repeat(200);
        let b = AnswerBudget::for_task(&task(
            ServiceKind::Summarization,
            TaskInput::Text {
                text: source.clone(),
            },
            "en",
        ));
        assert_eq!(b.text_chars, 256 + 1_000);

        // 120 letters of English: 10 s read aloud, so at most 41 s of audio.
        let text = "a".repeat(120);
        let b = AnswerBudget::for_task(&task(
            ServiceKind::Tts,
            TaskInput::Text { text: text.clone() },
            "en",
        ));
        assert!((b.audio_seconds - 41.0).abs() < 1e-9, "{b:?}");
        assert!(b.output_bytes > 41 * 384_000 * 4 / 3 && b.output_bytes < 42 * 384_000 * 4 / 3);
        // The same number of characters in Chinese is read more slowly: a longer budget.
        let zh = AnswerBudget::for_task(&task(ServiceKind::Tts, TaskInput::Text { text }, "zh"));
        assert!(zh.audio_seconds > b.audio_seconds * 2.0);
    }
}
