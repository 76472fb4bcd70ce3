//! Text inputs and their length rules.

use super::{InvalidValue, ServiceKind};

/// Length rules for a text input, counted in Unicode characters after trimming, as the old
/// proxy counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    /// Fewest characters accepted.
    pub min_chars: usize,
    /// Most characters accepted.
    pub max_chars: usize,
}

impl TextLimits {
    /// TTS input: 1 to 10,000 characters.
    pub const TTS: TextLimits = TextLimits {
        min_chars: 1,
        max_chars: 10_000,
    };
    /// Summarization input: 50 to 50,000 characters.
    pub const SUMMARIZATION: TextLimits = TextLimits {
        min_chars: 50,
        max_chars: 50_000,
    };

    /// The limits for a text service; transcription takes audio, not text.
    pub fn for_service(kind: ServiceKind) -> Option<TextLimits> {
        match kind {
            ServiceKind::Tts => Some(Self::TTS),
            ServiceKind::Summarization => Some(Self::SUMMARIZATION),
            ServiceKind::Transcription => None,
        }
    }
}

/// A trimmed text whose length is within its service's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedText(String);

impl SubmittedText {
    /// Trims `raw` and checks its length against `limits`.
    pub fn parse(raw: &str, limits: TextLimits) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(InvalidValue("text must not be empty".into()));
        }
        if chars < limits.min_chars {
            return Err(InvalidValue(format!(
                "text has {chars} characters after trimming; at least {} are required",
                limits.min_chars
            )));
        }
        if chars > limits.max_chars {
            return Err(InvalidValue(format!(
                "text has {chars} characters after trimming; at most {} are allowed",
                limits.max_chars
            )));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The trimmed text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the trimmed text.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_count_characters_not_bytes() {
        let at_max = "é".repeat(10_000);
        assert!(SubmittedText::parse(&at_max, TextLimits::TTS).is_ok());
        let past_max = "é".repeat(10_001);
        assert!(SubmittedText::parse(&past_max, TextLimits::TTS).is_err());
        assert!(SubmittedText::parse(&"a".repeat(49), TextLimits::SUMMARIZATION).is_err());
        assert!(SubmittedText::parse(&"a".repeat(50), TextLimits::SUMMARIZATION).is_ok());
    }

    #[test]
    fn whitespace_is_trimmed_before_counting() {
        let text = SubmittedText::parse("  hi \n", TextLimits::TTS).unwrap();
        assert_eq!(text.as_str(), "hi");
        assert!(SubmittedText::parse(" \t\n ", TextLimits::TTS).is_err());
    }
}
