//! Scores in the closed unit interval.

use super::InvalidValue;

/// A score in `[0, 1]`. Construction clamps or refuses, so no NaN or out-of-range value is ever
/// stored or compared.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct Score(f64);

impl Score {
    /// Zero.
    pub const ZERO: Score = Score(0.0);
    /// One.
    pub const ONE: Score = Score(1.0);

    /// Accepts a value already in range.
    pub fn new(value: f64) -> Result<Self, InvalidValue> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidValue(format!("{value} is not in [0, 1]")))
        }
    }

    /// Clamps any value into range; NaN becomes zero.
    pub fn clamped(value: f64) -> Self {
        if value.is_nan() {
            Self(0.0)
        } else {
            Self(value.clamp(0.0, 1.0))
        }
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Score {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Score::new(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_keeps_scores_in_the_unit_interval() {
        assert_eq!(Score::clamped(1.5).get(), 1.0);
        assert_eq!(Score::clamped(-0.1).get(), 0.0);
        assert_eq!(Score::clamped(f64::NAN).get(), 0.0);
        assert!(Score::new(1.01).is_err());
    }
}
