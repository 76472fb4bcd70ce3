//! Reference-free checks of synthesized speech.

use crate::audio::Signal;
use crate::domain::Language;

/// Below this level the answer is treated as silence.
pub const SILENCE_DBFS: f64 = -50.0;
/// Above this share of clipped samples the answer is rejected.
pub const CLIPPED_REJECT: f64 = 0.01;
/// Above this share of clipped samples the answer is penalized.
pub const CLIPPED_WARN: f64 = 0.001;
/// Above this mean sample value the answer is rejected.
pub const DC_REJECT: f64 = 0.1;
/// Above this mean sample value the answer is penalized.
pub const DC_WARN: f64 = 0.02;

/// The duration `text` should take when read aloud in `language`.
pub fn expected_seconds(text: &str, language: Language) -> f64 {
    crate::domain::expected_reading_seconds(text, language)
}

/// What the checks found, and the factor they multiply accuracy by.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// Duration over expected duration.
    pub duration_ratio: f64,
    /// Product of the factors, in [0, 1]; 0 when rejected.
    pub factor: f64,
    /// Rejections and penalties.
    pub notes: Vec<String>,
}

/// How plausible a duration ratio is: 1 between 0.5 and 2 (voices differ in pace), falling
/// linearly to 0 at 0.2 (truncated) and at 4 (stretched, or speech of another text).
pub fn plausibility(ratio: f64) -> f64 {
    if ratio < 0.5 {
        ((ratio - 0.2) / 0.3).clamp(0.0, 1.0)
    } else if ratio > 2.0 {
        ((4.0 - ratio) / 2.0).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Runs every check on one answer for `text`.
pub fn check(signal: &Signal, text: &str, language: Language) -> Checks {
    let mut notes = Vec::new();
    let mut factor = 1.0;
    let info = &signal.info;
    if signal.rms_dbfs < SILENCE_DBFS {
        notes.push(format!(
            "rejected: near-silence ({:.0} dBFS)",
            signal.rms_dbfs
        ));
        factor = 0.0;
    }
    if signal.clipped > CLIPPED_REJECT {
        notes.push(format!(
            "rejected: {:.1} % of samples clipped",
            signal.clipped * 100.0
        ));
        factor = 0.0;
    } else if signal.clipped > CLIPPED_WARN {
        notes.push(format!(
            "{:.2} % of samples clipped",
            signal.clipped * 100.0
        ));
        factor *= 0.75;
    }
    if signal.dc_offset.abs() > DC_REJECT {
        notes.push(format!("rejected: DC offset {:.2}", signal.dc_offset));
        factor = 0.0;
    } else if signal.dc_offset.abs() > DC_WARN {
        notes.push(format!("DC offset {:.3}", signal.dc_offset));
        factor *= 0.75;
    }
    if !(8_000..=96_000).contains(&info.sample_rate) {
        notes.push(format!("rejected: sample rate {} Hz", info.sample_rate));
        factor = 0.0;
    } else if info.sample_rate < 16_000 {
        notes.push(format!("narrow-band sample rate {} Hz", info.sample_rate));
        factor *= 0.8;
    }
    if info.channels > 2 {
        notes.push(format!("rejected: {} channels", info.channels));
        factor = 0.0;
    }
    let expected = expected_seconds(text, language).max(0.3);
    let duration_ratio = info.duration_s / expected;
    let plausible = plausibility(duration_ratio);
    if plausible == 0.0 {
        notes.push(format!(
            "rejected: {:.1} s of audio for text expected to take {expected:.1} s",
            info.duration_s
        ));
    } else if plausible < 1.0 {
        notes.push(format!(
            "{:.1} s of audio for text expected to take {expected:.1} s",
            info.duration_s
        ));
    }
    Checks {
        duration_ratio,
        factor: factor * plausible,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AudioInfo;

    fn signal(duration_s: f64, rms_dbfs: f64, clipped: f64, dc_offset: f64) -> Signal {
        Signal {
            info: AudioInfo {
                format: "wav".into(),
                duration_s,
                sample_rate: 22_050,
                channels: 1,
            },
            rms_dbfs,
            clipped,
            dc_offset,
        }
    }

    #[test]
    fn plausibility_is_flat_in_the_middle_and_zero_at_the_ends() {
        assert_eq!(plausibility(1.0), 1.0);
        assert_eq!(plausibility(0.2), 0.0);
        assert_eq!(plausibility(4.5), 0.0);
        assert!(plausibility(0.3) < plausibility(0.4));
        assert!(plausibility(3.5) < plausibility(2.5));
    }

    #[test]
    fn each_fault_is_named() {
        let en = Language::parse("en").unwrap();
        let text = "twelve chars"; // 11 non-space characters: about 0.9 s
        assert_eq!(check(&signal(1.0, -20.0, 0.0, 0.0), text, en).factor, 1.0);
        for (s, word) in [
            (signal(1.0, -70.0, 0.0, 0.0), "silence"),
            (signal(1.0, -3.0, 0.2, 0.0), "clipped"),
            (signal(1.0, -20.0, 0.0, 0.3), "DC offset"),
            (signal(0.1, -20.0, 0.0, 0.0), "expected"),
        ] {
            let c = check(&s, text, en);
            assert_eq!(c.factor, 0.0, "{c:?}");
            assert!(c.notes.iter().any(|n| n.contains(word)), "{c:?}");
        }
    }
}
