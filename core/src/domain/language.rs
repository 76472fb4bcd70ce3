//! The languages the subnet serves.

use std::fmt;

use super::InvalidValue;

/// A source language accepted by the API: the old proxy's twelve ISO 639-1 codes.
/// Parsing is case-insensitive; the stored form is lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Language(&'static str);

impl Language {
    /// Characters (spaces excluded) per second of ordinary read speech.
    pub fn chars_per_second(self) -> f64 {
        match self.code() {
            "zh" => 4.5,
            "ja" => 7.0,
            "ko" => 6.0,
            "ru" | "ar" | "hi" => 11.0,
            _ => 12.0,
        }
    }

    /// Every accepted code, in the order the documentation lists them.
    pub const ALL: [&'static str; 12] = [
        "en", "es", "fr", "de", "it", "pt", "ru", "ja", "ko", "zh", "ar", "hi",
    ];

    /// Parses a code such as `EN` or `en`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let lower = raw.trim().to_ascii_lowercase();
        Self::ALL
            .iter()
            .find(|code| **code == lower)
            .map(|code| Self(code))
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unsupported language '{}'; use one of: {}",
                    raw.escape_default(),
                    Self::ALL.join(", ")
                ))
            })
    }

    /// The lower-case code.
    pub fn code(&self) -> &'static str {
        self.0
    }

    /// Whether the language is written without spaces between words, which matters for
    /// comparing texts word by word.
    pub fn is_unspaced(self) -> bool {
        matches!(self.0, "ja" | "zh")
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_case_insensitively_and_store_lower_case() {
        assert_eq!(Language::parse("EN").map(|l| l.code()), Ok("en"));
        assert_eq!(Language::parse("Zh").map(|l| l.code()), Ok("zh"));
    }

    #[test]
    fn unknown_codes_are_refused_with_the_list() {
        let err = Language::parse("xx").unwrap_err();
        assert!(err.0.contains("en, es"), "{err}");
    }
}
