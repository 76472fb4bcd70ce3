//! The three services the subnet offers.

use std::fmt;

use super::InvalidValue;

/// Which service a task asks for. Its wire name is also the synapse's `task_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// Speech to text.
    Transcription,
    /// Text to speech.
    Tts,
    /// Text to shorter text.
    Summarization,
}

impl ServiceKind {
    /// All services: what per-service counters, columns and tables are laid out by.
    pub const ALL: [ServiceKind; 3] = [Self::Transcription, Self::Tts, Self::Summarization];

    /// How many services there are.
    pub const COUNT: usize = Self::ALL.len();

    /// The service's place in [`ServiceKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The wire name (`transcription`, `tts`, `summarization`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Transcription => "transcription",
            Self::Tts => "tts",
            Self::Summarization => "summarization",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown task type '{}'; use transcription, tts or summarization",
                    raw.escape_default()
                ))
            })
    }

    /// Whether the service's answer is audio (otherwise it is text).
    pub fn produces_audio(self) -> bool {
        matches!(self, Self::Tts)
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_s_index_is_its_place_in_all_and_its_name_parses_back() {
        for (i, kind) in ServiceKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(ServiceKind::parse(kind.as_str()).unwrap(), kind);
        }
    }
}
