//! Task priorities.

use std::fmt;

use super::InvalidValue;

/// The old proxy's four priority classes. Work of a higher class is taken first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal work.
    High,
    /// Ahead of everything.
    Urgent,
}

impl Priority {
    /// All classes, most urgent first.
    pub const ALL: [Priority; 4] = [Self::Urgent, Self::High, Self::Normal, Self::Low];

    /// Parses `low | normal | high | urgent`, case-insensitively.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "normal" => Ok(Self::Normal),
            "high" => Ok(Self::High),
            "urgent" => Ok(Self::Urgent),
            _ => Err(InvalidValue(format!(
                "unsupported priority '{}'; use one of: low, normal, high, urgent",
                raw.escape_default()
            ))),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// Queue rank: 0 is taken first.
    pub fn rank(self) -> i64 {
        match self {
            Self::Urgent => 0,
            Self::High => 1,
            Self::Normal => 2,
            Self::Low => 3,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_through_its_name() {
        for p in Priority::ALL {
            assert_eq!(Priority::parse(&p.as_str().to_uppercase()), Ok(p));
        }
    }

    #[test]
    fn urgent_ranks_before_low() {
        assert!(Priority::Urgent.rank() < Priority::Low.rank());
        assert!(Priority::parse("asap").is_err());
    }
}
