//! What the simulated miners answer. Deterministic: the same input and behaviour give the same
//! answer, so good miners agree with each other and tests can predict the winner.
//!
//! - Transcription: the transcript is the comment tag of the submitted audio (RIFF `ICMT`,
//!   Vorbis or ID3 comment). Audio without one is transcribed as a description of its length.
//! - Summarization: an extractive summary, the highest-scoring third of the sentences by content
//!   word frequency, in their original order.
//! - TTS: a real 16 kHz mono WAV, 60 ms of tone per character.

use base64::Engine as _;
use bytes::Bytes;
use taogate_shared::audio;
use taogate_shared::bittensor::SynapseBody;

use super::Behaviour;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Fills in the outputs of `body` as a miner with `behaviour` would.
pub fn fill(body: &mut SynapseBody, behaviour: Behaviour) {
    body.pipeline_model = Some(format!("sim-{behaviour:?}").to_lowercase());
    let input = body
        .input_data
        .as_deref()
        .and_then(|d| B64.decode(d).ok())
        .unwrap_or_default();
    let task_type = body
        .task_type
        .clone()
        .unwrap_or_else(|| "transcription".into());
    match behaviour {
        Behaviour::Erroring => {
            body.error_message = Some("pipeline failed: out of GPU memory".into());
            body.output_data = None;
            return;
        }
        Behaviour::Garbage => {
            body.output_data = Some(match task_type.as_str() {
                "tts" => B64.encode(b"this is not a wav file"),
                "transcription" => B64.encode([0xff, 0xfe, 0x00, 0x81]),
                _ => "@@ not base64 @@".into(),
            });
            return;
        }
        Behaviour::Degenerate => {
            let output = match task_type.as_str() {
                "tts" => {
                    let chars = String::from_utf8_lossy(&input).chars().count();
                    audio::wav_pcm16(&vec![0i16; chars * 16_000 * 8 / 100], 16_000, None)
                }
                "summarization" => input,
                // A loop that stays inside the budget of a one-second clip, so that scoring is what
                // catches it.
                _ => "thank you ".repeat(20).into_bytes(),
            };
            body.output_data = Some(B64.encode(output));
            return;
        }
        Behaviour::Oversized => {
            body.output_data = Some(B64.encode(vec![b'a'; 8 * 1024 * 1024]));
            return;
        }
        Behaviour::Bomb => {
            body.output_data = Some(B64.encode(if task_type == "tts" {
                absurd_wav()
            } else {
                "a ".repeat(1_000_000).into_bytes()
            }));
            return;
        }
        Behaviour::Echo => {
            body.output_data = body.input_data.clone();
            return;
        }
        Behaviour::Replay => {
            let other = "the weather will be sunny tomorrow with light winds from the west";
            body.output_data = Some(B64.encode(match task_type.as_str() {
                "tts" => speak(other, false),
                _ => other.as_bytes().to_vec(),
            }));
            return;
        }
        Behaviour::Silence => {
            body.output_data = Some(B64.encode(if task_type == "tts" {
                // As long as good speech of the text: 60 ms per character.
                let chars = String::from_utf8_lossy(&input).chars().count().max(5);
                audio::wav_pcm16(&vec![0i16; chars * 16_000 * 6 / 100], 16_000, None)
            } else {
                b"   ".to_vec()
            }));
            return;
        }
        Behaviour::WrongLanguage => {
            let text = String::from_utf8_lossy(&input).into_owned();
            let good = match task_type.as_str() {
                "tts" => {
                    body.output_data = Some(B64.encode(speak("一个完全不同的句子", false)));
                    return;
                }
                "summarization" => summarize(&text, false),
                _ => transcribe(input, false),
            };
            let words = good.split_whitespace().count().max(1);
            body.output_data = Some(B64.encode("这是错误的语言".repeat(words).into_bytes()));
            return;
        }
        _ => {}
    }
    let noisy = behaviour == Behaviour::Noisy;
    if task_type == "tts" {
        body.output_data = Some(spoken(&String::from_utf8_lossy(&input), noisy).1.clone());
        return;
    }
    let output = match task_type.as_str() {
        "summarization" => summarize(&String::from_utf8_lossy(&input), noisy).into_bytes(),
        _ => transcribe(input, noisy).into_bytes(),
    };
    body.output_data = Some(B64.encode(output));
}

/// The transcript the audio carries, or a description of it.
pub fn transcribe(audio_bytes: Vec<u8>, noisy: bool) -> String {
    let text = match audio::probe(Bytes::from(audio_bytes), None) {
        Ok(p) => p
            .comment
            .unwrap_or_else(|| format!("audio of {:.1} seconds", p.info.duration_s)),
        Err(_) => "unintelligible audio".into(),
    };
    if !noisy {
        return text;
    }
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| if i % 3 == 1 { "uh" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn sentences(text: &str) -> Vec<&str> {
    text.split_inclusive(['.', '!', '?', '。'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// An extractive summary: the best third of the sentences (at least one), in order. A noisy
/// miner returns the worst third instead.
pub fn summarize(text: &str, noisy: bool) -> String {
    let all = sentences(text);
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() > 3)
            .map(str::to_lowercase)
            .collect()
    };
    let mut freq = std::collections::HashMap::<String, usize>::new();
    for w in all.iter().flat_map(|s| words(s)) {
        *freq.entry(w).or_default() += 1;
    }
    let mut scored: Vec<(usize, f64)> = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ws = words(s);
            let total: usize = ws.iter().map(|w| freq.get(w).copied().unwrap_or(0)).sum();
            (i, total as f64 / (ws.len().max(1) as f64))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if noisy {
        scored.reverse();
    }
    let keep = all.len().div_ceil(3).max(1);
    let mut chosen: Vec<usize> = scored.iter().take(keep).map(|(i, _)| *i).collect();
    chosen.sort_unstable();
    let extract = chosen.iter().map(|i| all[*i]).collect::<Vec<_>>().join(" ");
    // A summary is shorter than its source: an extract of a text of one or two sentences is
    // cut to its first three words in five.
    let (source_words, extract_words) = (
        text.split_whitespace().count(),
        extract.split_whitespace().count(),
    );
    if extract_words * 10 > source_words * 7 {
        let keep = (extract_words * 3).div_ceil(5).max(1);
        let cut: Vec<&str> = extract.split_whitespace().take(keep).collect();
        return format!("{}.", cut.join(" ").trim_end_matches(['.', ',', ';', ':']));
    }
    extract
}

/// A tiny WAV whose header declares 3 MHz and a data chunk of 4 GiB: a decoder that trusted
/// it would allocate for hours of audio.
fn absurd_wav() -> Vec<u8> {
    let mut wav = audio::wav_pcm16(&audio::tone(0.1, 300.0, 8000), 8000, None);
    let fmt = wav.windows(4).position(|w| w == b"fmt ").unwrap_or(12) + 8;
    wav[fmt + 4..fmt + 8].copy_from_slice(&3_000_000u32.to_le_bytes());
    wav[fmt + 8..fmt + 12].copy_from_slice(&6_000_000u32.to_le_bytes());
    if let Some(data) = wav.windows(4).position(|w| w == b"data") {
        wav[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    wav
}

/// A WAV "reading" of `text`: one tone per word, 60 ms per character. A noisy miner drops 30 %.
///
/// Readings are remembered (see [`spoken`]): several miners reading one text cost the
/// simulator one synthesis, since a benchmark of the gateway should not measure the stand-in.
pub fn speak(text: &str, noisy: bool) -> Vec<u8> {
    spoken(text, noisy).0.clone()
}

/// The speech of `text` and its base64 form, synthesized and encoded once per text (the last
/// 64 texts are kept).
fn spoken(text: &str, noisy: bool) -> std::sync::Arc<(Vec<u8>, String)> {
    type Readings = std::collections::HashMap<(String, bool), std::sync::Arc<(Vec<u8>, String)>>;
    static READINGS: std::sync::LazyLock<std::sync::Mutex<Readings>> =
        std::sync::LazyLock::new(Default::default);
    let key = (text.to_owned(), noisy);
    if let Some(found) = READINGS.lock().ok().and_then(|r| r.get(&key).cloned()) {
        return found;
    }
    let wav = synthesize(text, noisy);
    let encoded = B64.encode(&wav);
    let reading = std::sync::Arc::new((wav, encoded));
    if let Ok(mut readings) = READINGS.lock() {
        if readings.len() >= 64 {
            readings.clear();
        }
        readings.insert(key, reading.clone());
    }
    reading
}

fn synthesize(text: &str, noisy: bool) -> Vec<u8> {
    const RATE: u32 = 16_000;
    let mut samples = Vec::new();
    for (i, word) in text.split_whitespace().enumerate() {
        let seconds = 0.06 * word.chars().count() as f64;
        samples.extend(audio::tone(seconds, 180.0 + 40.0 * (i % 5) as f64, RATE));
        samples.extend(std::iter::repeat_n(0i16, (RATE / 20) as usize));
    }
    if samples.is_empty() {
        samples = audio::tone(0.3, 200.0, RATE);
    }
    if noisy {
        samples.truncate(samples.len() * 7 / 10);
    }
    audio::wav_pcm16(&samples, RATE, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_shorter_extracts_in_order() {
        let text = "Cats sleep a lot. Cats like warm places and cats purr. Dogs bark. The weather was fine.";
        let s = summarize(text, false);
        assert!(s.len() < text.len());
        assert!(text.contains(s.split(". ").next().unwrap_or_default()));
        assert_ne!(summarize(text, true), s);
        // One sentence is shortened, not echoed.
        let one = "The council approved the new library budget on Monday after a long debate.";
        let short = summarize(one, false);
        assert!(
            short.split_whitespace().count() * 10 <= one.split_whitespace().count() * 7,
            "{short}"
        );
        assert!(one.starts_with(short.trim_end_matches('.')), "{short}");
    }

    #[test]
    fn transcripts_come_from_the_audio_comment() {
        let wav = audio::wav_pcm16(
            &audio::tone(0.5, 300.0, 8000),
            8000,
            Some("the cat sat on the mat"),
        );
        assert_eq!(transcribe(wav.clone(), false), "the cat sat on the mat");
        assert_eq!(transcribe(wav, true), "the uh sat on uh mat");
    }

    #[test]
    fn speech_is_a_playable_wav_that_grows_with_the_text() {
        let short = audio::probe(Bytes::from(speak("hi", false)), None).unwrap();
        let long = audio::probe(Bytes::from(speak("hello there general", false)), None).unwrap();
        assert!(long.info.duration_s > short.info.duration_s);
        assert_eq!(long.info.sample_rate, 16_000);
    }
}
