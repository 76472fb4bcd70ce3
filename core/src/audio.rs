//! Audio probing and WAV writing.
//!
//! Uploads are checked by really opening them with symphonia: the container is probed, the first
//! packets are decoded, and the duration, sample rate and channel count are recorded. A file that
//! merely has an audio-like name or header is refused. The same probe validates TTS answers.

use std::io::Cursor;

use bytes::Bytes;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, StandardTagKey};
use symphonia::core::probe::Hint;

use crate::domain::AudioInfo;

mod declared;
pub use declared::MAX_CODEBOOK_BYTES;

/// Packets decoded to prove a file is real audio; a few are enough to catch a renamed file or a
/// corrupt stream without paying for a full decode of a 50 MB upload.
const PACKETS_TO_DECODE: usize = 8;

/// Why a file is not acceptable audio. The message is meant for the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAudio(pub String);

/// What a probe found: the measurements, plus any text tags the container carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Format, duration, sample rate, channels.
    pub info: AudioInfo,
    /// The comment tag (RIFF `ICMT`, Vorbis `COMMENT`, ID3 `COMM`), if any.
    pub comment: Option<String>,
}

/// An opened container: its reader, the first audio track's decoder, and what it declares.
struct Opened {
    format: Box<dyn symphonia::core::formats::FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    track_id: u32,
    params: symphonia::core::codecs::CodecParameters,
    sample_rate: u32,
    comment: Option<String>,
    extension: String,
}

fn open(bytes: Bytes, filename: Option<&str>) -> Result<Opened, NotAudio> {
    if bytes.is_empty() {
        return Err(NotAudio("the audio file is empty".into()));
    }
    declared::check(&bytes)?;
    let mut hint = Hint::new();
    if let Some(ext) = filename.and_then(|f| f.rsplit_once('.')).map(|(_, e)| e) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions {
                enable_gapless: false,
                ..Default::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|_| {
            NotAudio("the file is not a supported audio format (WAV, FLAC, MP3, OGG/Vorbis)".into())
        })?;

    let mut comment = probed
        .metadata
        .get()
        .and_then(|m| m.current().and_then(|rev| find_comment(rev.tags())));
    let mut format = probed.format;
    if comment.is_none() {
        comment = format
            .metadata()
            .current()
            .and_then(|rev| find_comment(rev.tags()));
    }

    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| NotAudio("the file contains no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let sample_rate = params
        .sample_rate
        .filter(|r| *r > 0)
        .ok_or_else(|| NotAudio("the audio track has no sample rate".into()))?;
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|_| NotAudio("the audio codec is not supported".into()))?;
    Ok(Opened {
        format,
        decoder,
        track_id,
        params,
        sample_rate,
        comment,
        extension: hint_ext(filename),
    })
}

/// The next packet of the audio track, `None` at the end of the stream.
fn next_packet(
    opened: &mut Opened,
    decoded: usize,
) -> Result<Option<symphonia::core::formats::Packet>, NotAudio> {
    loop {
        let packet = match opened.format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(SymphoniaError::ResetRequired) => return Ok(None),
            Err(_) if decoded > 0 => return Ok(None),
            Err(_) => return Err(NotAudio("the audio stream is corrupt".into())),
        };
        if packet.track_id() == opened.track_id {
            return Ok(Some(packet));
        }
    }
}

/// Opens `bytes` as audio. `filename` only serves as a hint for the container guess; the content
/// decides.
pub fn probe(bytes: Bytes, filename: Option<&str>) -> Result<Probe, NotAudio> {
    let mut opened = open(bytes, filename)?;
    let mut channels = opened.params.channels.map(|c| c.count() as u16);
    let mut decoded = 0usize;
    let mut counted_frames: u64 = 0;
    while let Some(packet) = next_packet(&mut opened, decoded)? {
        counted_frames += packet.dur;
        if decoded < PACKETS_TO_DECODE {
            match opened.decoder.decode(&packet) {
                Ok(buf) => {
                    channels.get_or_insert(buf.spec().channels.count() as u16);
                    decoded += 1;
                }
                Err(SymphoniaError::DecodeError(_)) if decoded > 0 => {}
                Err(_) => return Err(NotAudio("the audio stream does not decode".into())),
            }
        } else if opened.params.n_frames.is_some() {
            // The container states its length: no need to walk the rest.
            break;
        }
    }
    if decoded == 0 {
        return Err(NotAudio("the audio stream holds no decodable audio".into()));
    }
    let frames = opened.params.n_frames.unwrap_or(counted_frames);
    let channels = channels
        .filter(|c| *c > 0)
        .ok_or_else(|| NotAudio("the audio track has no channels".into()))?;
    Ok(Probe {
        info: AudioInfo {
            format: format_name(&opened.params, &opened.extension),
            duration_s: frames as f64 / f64::from(opened.sample_rate),
            sample_rate: opened.sample_rate,
            channels,
        },
        comment: opened.comment,
    })
}

/// The audio decoded in full, reduced to the measurements the TTS checks need.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Format, duration (from the decoded samples), sample rate, channels.
    pub info: AudioInfo,
    /// Root-mean-square level in dBFS over every sample (−∞ for digital silence is reported
    /// as −120).
    pub rms_dbfs: f64,
    /// Share of samples at or within 0.1 % of full scale.
    pub clipped: f64,
    /// Mean sample value (DC offset), in full-scale units.
    pub dc_offset: f64,
}

/// The longest audio [`analyze`] decodes; the rest is not measured.
pub const ANALYZE_MAX_SECONDS: f64 = 1200.0;

/// What a WAV file's header declares, read without decoding any audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavHeader {
    /// Frames per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Seconds of audio the data chunk declares, or that the file's bytes can hold if fewer (a
    /// streamed WAV declares an unknown, maximal length).
    pub seconds: f64,
}

/// Reads the header of a WAV (RIFF/WAVE) file: what its format chunk and data chunk declare,
/// without decoding a sample. Costs the header's bytes, whatever the file claims to hold.
pub fn wav_header(bytes: &Bytes) -> Result<WavHeader, NotAudio> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(NotAudio("not a WAV file (no RIFF/WAVE header)".into()));
    }
    let opened = open(bytes.clone(), Some("answer.wav"))?;
    let params = &opened.params;
    let channels = params.channels.map_or(0, |c| c.count()) as u16;
    if channels == 0 {
        return Err(NotAudio("the WAV header declares no channels".into()));
    }
    let bits_per_sample = params
        .bits_per_sample
        .or(params.bits_per_coded_sample)
        .unwrap_or(16) as u16;
    let rate = f64::from(opened.sample_rate);
    let frame_bytes = f64::from(channels) * f64::from(bits_per_sample.div_ceil(8).max(1));
    let declared = params.n_frames.map_or(f64::INFINITY, |n| n as f64 / rate);
    let held = bytes.len() as f64 / frame_bytes / rate;
    Ok(WavHeader {
        sample_rate: opened.sample_rate,
        channels,
        bits_per_sample,
        seconds: declared.min(held),
    })
}

/// Decodes `bytes` entirely (up to [`ANALYZE_MAX_SECONDS`]) and measures the signal.
pub fn analyze(bytes: Bytes, filename: Option<&str>) -> Result<Signal, NotAudio> {
    analyze_within(bytes, filename, ANALYZE_MAX_SECONDS)
}

/// Decodes `bytes` and measures the signal, decoding at most `max_seconds` of audio: a stream
/// that goes on past them is refused as too long, its rest never decoded.
pub fn analyze_within(
    bytes: Bytes,
    filename: Option<&str>,
    max_seconds: f64,
) -> Result<Signal, NotAudio> {
    let mut opened = open(bytes, filename)?;
    let limit = (max_seconds * f64::from(opened.sample_rate)) as u64;
    let mut frames = 0u64;
    let mut stats = SignalSums::default();
    let mut channels = 0u16;
    let mut decoded = 0usize;
    while let Some(packet) = next_packet(&mut opened, decoded)? {
        if frames >= limit {
            if max_seconds < ANALYZE_MAX_SECONDS {
                return Err(NotAudio(format!(
                    "the audio goes on past {max_seconds:.1} s; the rest was not decoded"
                )));
            }
            break;
        }
        let audio = match opened.decoder.decode(&packet) {
            Ok(a) => a,
            Err(SymphoniaError::DecodeError(_)) if decoded > 0 => continue,
            Err(_) => return Err(NotAudio("the audio stream does not decode".into())),
        };
        decoded += 1;
        channels = audio.spec().channels.count() as u16;
        frames += audio.frames() as u64;
        stats.add(audio);
    }
    if decoded == 0 || stats.samples == 0 || channels == 0 {
        return Err(NotAudio("the audio stream holds no decodable audio".into()));
    }
    let n = stats.samples as f64;
    let rms = (stats.squares / n).sqrt();
    Ok(Signal {
        info: AudioInfo {
            format: format_name(&opened.params, &opened.extension),
            duration_s: frames as f64 / f64::from(opened.sample_rate),
            sample_rate: opened.sample_rate,
            channels,
        },
        rms_dbfs: if rms > 1e-6 {
            20.0 * rms.log10()
        } else {
            -120.0
        },
        clipped: stats.clipped as f64 / n,
        dc_offset: stats.sum / n,
    })
}

/// Running sums over decoded samples, in full-scale units (-1 to 1).
#[derive(Default)]
struct SignalSums {
    samples: u64,
    clipped: u64,
    sum: f64,
    squares: f64,
    /// Reused to convert formats other than 16-bit PCM.
    converted: Option<symphonia::core::audio::SampleBuffer<f32>>,
}

impl SignalSums {
    /// A sample at or past this share of full scale counts as clipped.
    const CLIP: f64 = 0.999;

    fn add(&mut self, audio: symphonia::core::audio::AudioBufferRef<'_>) {
        use symphonia::core::audio::{AudioBufferRef, SampleBuffer, Signal as _};

        // 16-bit PCM, what speech answers almost always are, is summed in integers straight
        // from the decoder's planes: no conversion pass and no copy.
        if let AudioBufferRef::S16(buf) = &audio {
            // The smallest magnitude `CLIP` counts: 32736 / 32768 is the first step past 0.999.
            let clip = (Self::CLIP * 32_768.0).ceil() as i32;
            let (mut sum, mut squares) = (0i64, 0u64);
            for c in 0..buf.spec().channels.count() {
                for &x in buf.chan(c) {
                    let x = i32::from(x);
                    sum += i64::from(x);
                    squares += (x * x) as u64;
                    self.clipped += u64::from(x.abs() >= clip);
                }
                self.samples += buf.frames() as u64;
            }
            self.sum += sum as f64 / 32_768.0;
            self.squares += squares as f64 / (32_768.0 * 32_768.0);
            return;
        }
        let spec = *audio.spec();
        // `SampleBuffer::capacity` counts samples, the decoder's buffer counts frames.
        let needed = audio.capacity() as u64;
        let channels = spec.channels.count() as u64;
        let buf = match &mut self.converted {
            Some(b) if b.capacity() as u64 >= needed * channels => b,
            other => other.insert(SampleBuffer::new(needed, spec)),
        };
        buf.copy_interleaved_ref(audio);
        for &x in buf.samples() {
            let x = f64::from(x);
            self.sum += x;
            self.squares += x * x;
            self.clipped += u64::from(x.abs() >= Self::CLIP);
        }
        self.samples += buf.samples().len() as u64;
    }
}

/// Decodes `bytes` (at most `max_seconds`) to raw 16-bit little-endian mono samples at
/// `rate` Hz: channels averaged, resampled linearly. OpenAI's `pcm` speech format is this at
/// 24 kHz.
pub fn pcm16_mono(bytes: Bytes, rate: u32, max_seconds: f64) -> Result<Vec<u8>, NotAudio> {
    use symphonia::core::audio::SampleBuffer;

    let mut opened = open(bytes, Some("audio.wav"))?;
    let source_rate = opened.sample_rate;
    let limit = (max_seconds * f64::from(source_rate)) as usize;
    let mut mono: Vec<f32> = Vec::new();
    let mut decoded = 0usize;
    while let Some(packet) = next_packet(&mut opened, decoded)? {
        if mono.len() >= limit {
            return Err(NotAudio(format!(
                "the audio goes on past {max_seconds:.1} s"
            )));
        }
        let audio = match opened.decoder.decode(&packet) {
            Ok(a) => a,
            Err(SymphoniaError::DecodeError(_)) if decoded > 0 => continue,
            Err(_) => return Err(NotAudio("the audio stream does not decode".into())),
        };
        decoded += 1;
        let spec = *audio.spec();
        let channels = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(audio.capacity() as u64, spec);
        buf.copy_interleaved_ref(audio);
        mono.extend(
            buf.samples()
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
    }
    if mono.is_empty() || rate == 0 || source_rate == 0 {
        return Err(NotAudio("the audio stream holds no decodable audio".into()));
    }
    let step = f64::from(source_rate) / f64::from(rate);
    let frames = ((mono.len() as f64) / step).floor() as usize;
    let mut out = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let at = i as f64 * step;
        let (left, frac) = (at.floor() as usize, (at - at.floor()) as f32);
        let a = mono[left.min(mono.len() - 1)];
        let b = mono[(left + 1).min(mono.len() - 1)];
        let x = (a + (b - a) * frac).clamp(-1.0, 1.0);
        out.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes());
    }
    Ok(out)
}

fn find_comment(tags: &[symphonia::core::meta::Tag]) -> Option<String> {
    tags.iter()
        .find(|t| {
            t.std_key == Some(StandardTagKey::Comment) || t.key.eq_ignore_ascii_case("comment")
        })
        .map(|t| t.value.to_string().trim_end_matches('\0').to_owned())
}

fn hint_ext(filename: Option<&str>) -> String {
    filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn format_name(params: &symphonia::core::codecs::CodecParameters, ext: &str) -> String {
    use symphonia::core::codecs::{CODEC_TYPE_FLAC, CODEC_TYPE_MP3, CODEC_TYPE_VORBIS};
    match params.codec {
        CODEC_TYPE_FLAC => "flac",
        CODEC_TYPE_MP3 => "mp3",
        CODEC_TYPE_VORBIS => "ogg",
        _ if ext == "ogg" || ext == "oga" => "ogg",
        _ => "wav",
    }
    .to_owned()
}

/// Writes 16-bit PCM mono samples as a WAV file, optionally with a RIFF `INFO/ICMT` comment
/// (the simulator reads a transcript from it; see the simulator's docs).
pub fn wav_pcm16(samples: &[i16], sample_rate: u32, comment: Option<&str>) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let info = comment.map(|c| {
        let mut text = c.as_bytes().to_vec();
        text.push(0);
        if text.len() % 2 == 1 {
            text.push(0);
        }
        let mut chunk = Vec::with_capacity(text.len() + 20);
        chunk.extend_from_slice(b"LIST");
        chunk.extend_from_slice(&((text.len() + 12) as u32).to_le_bytes());
        chunk.extend_from_slice(b"INFOICMT");
        chunk.extend_from_slice(&(text.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&text);
        chunk
    });
    let info_len = info.as_ref().map_or(0, Vec::len) as u32;
    let mut out = Vec::with_capacity(44 + info_len as usize + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + info_len + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    if let Some(info) = info {
        out.extend_from_slice(&info);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A sine tone of `seconds` at `freq` Hz, as 16-bit samples: test and simulator audio.
pub fn tone(seconds: f64, freq: f64, sample_rate: u32) -> Vec<i16> {
    let n = (seconds * f64::from(sample_rate)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(sample_rate);
            ((t * freq * std::f64::consts::TAU).sin() * 8_000.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_wav_probes_with_its_length_rate_channels_and_comment() {
        let wav = wav_pcm16(&tone(1.5, 440.0, 16_000), 16_000, Some("hello world"));
        let p = probe(Bytes::from(wav), Some("a.wav")).unwrap();
        assert_eq!(p.info.format, "wav");
        assert_eq!(p.info.sample_rate, 16_000);
        assert_eq!(p.info.channels, 1);
        assert!(
            (p.info.duration_s - 1.5).abs() < 0.01,
            "{}",
            p.info.duration_s
        );
        assert_eq!(p.comment.as_deref(), Some("hello world"));
    }

    #[test]
    fn analysis_measures_level_clipping_and_offset() {
        let quiet = analyze(
            Bytes::from(wav_pcm16(&tone(0.5, 440.0, 16_000), 16_000, None)),
            None,
        )
        .unwrap();
        assert!((quiet.info.duration_s - 0.5).abs() < 0.01);
        assert!(quiet.rms_dbfs < -3.0 && quiet.rms_dbfs > -30.0, "{quiet:?}");
        assert_eq!(quiet.clipped, 0.0);
        assert!(quiet.dc_offset.abs() < 0.01);

        let silent = analyze(Bytes::from(wav_pcm16(&[0; 8000], 16_000, None)), None).unwrap();
        assert_eq!(silent.rms_dbfs, -120.0);

        let square: Vec<i16> = (0..8000)
            .map(|i| if i % 40 < 20 { i16::MAX } else { i16::MIN })
            .collect();
        let clipped = analyze(Bytes::from(wav_pcm16(&square, 16_000, None)), None).unwrap();
        assert!(clipped.clipped > 0.9, "{clipped:?}");

        let offset: Vec<i16> = tone(0.5, 440.0, 16_000)
            .iter()
            .map(|s| s / 4 + 8000)
            .collect();
        let dc = analyze(Bytes::from(wav_pcm16(&offset, 16_000, None)), None).unwrap();
        assert!((dc.dc_offset - 8000.0 / 32768.0).abs() < 0.01, "{dc:?}");
    }

    /// A WAV of `channels` interleaved channels at 8 kHz: format tag 1 (integer PCM) or 3
    /// (IEEE float), `bits` per sample, `data` already encoded.
    fn wav_of(tag: u16, channels: u16, bits: u16, data: &[u8]) -> Bytes {
        let block = channels * bits / 8;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&(8000 * u32::from(block)).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        Bytes::from(out)
    }

    #[test]
    fn sixteen_bit_audio_measures_as_the_same_signal_in_float_does() {
        // Stereo, with the samples on both sides of the clipping threshold (32736 / 32768 is
        // the first step past 0.999) and an offset.
        let mut samples: Vec<i16> = tone(0.5, 300.0, 8000).iter().map(|s| s / 3 + 900).collect();
        samples.extend([32_735, -32_735, 32_736, -32_736, i16::MAX, i16::MIN, 0, 1]);
        let pcm16: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let float: Vec<u8> = samples
            .iter()
            .flat_map(|&s| (f32::from(s) / 32_768.0).to_le_bytes())
            .collect();
        let fast = analyze(wav_of(1, 2, 16, &pcm16), Some("a.wav")).unwrap();
        let general = analyze(wav_of(3, 2, 32, &float), Some("a.wav")).unwrap();
        assert_eq!(fast.info.channels, 2);
        assert_eq!(fast.info, general.info);
        // Four of the samples are clipped: 32736 and past, either sign.
        assert_eq!((fast.clipped * samples.len() as f64).round(), 4.0);
        assert_eq!(fast.clipped, general.clipped);
        assert!(
            (fast.rms_dbfs - general.rms_dbfs).abs() < 1e-6,
            "{fast:?} {general:?}"
        );
        assert!(
            (fast.dc_offset - general.dc_offset).abs() < 1e-9,
            "{fast:?} {general:?}"
        );
        assert!(fast.dc_offset > 0.02, "{fast:?}");
    }

    #[test]
    fn a_bounded_decode_refuses_audio_that_goes_on_and_measures_what_fits() {
        let wav = Bytes::from(wav_pcm16(&tone(3.0, 300.0, 8000), 8000, None));
        let why = analyze_within(wav.clone(), None, 1.0).unwrap_err();
        assert!(why.0.contains("goes on past 1.0 s"), "{why}");
        let whole = analyze_within(wav.clone(), None, 3.5).unwrap();
        assert!((whole.info.duration_s - 3.0).abs() < 0.01);
        // The header is read without decoding: it tells the length the bytes can hold.
        let header = wav_header(&wav).unwrap();
        assert_eq!(
            (header.sample_rate, header.channels, header.bits_per_sample),
            (8000, 1, 16)
        );
        assert!((header.seconds - 3.0).abs() < 0.01, "{header:?}");
        assert!(wav_header(&Bytes::from_static(b"fLaC and more")).is_err());
    }

    #[test]
    fn text_renamed_to_wav_is_refused() {
        let err = probe(
            Bytes::from_static(b"this is not audio at all"),
            Some("x.wav"),
        );
        assert!(err.is_err());
    }

    #[test]
    fn a_truncated_header_is_refused() {
        let wav = wav_pcm16(&tone(0.5, 440.0, 8_000), 8_000, None);
        assert!(probe(Bytes::from(wav[..30].to_vec()), Some("x.wav")).is_err());
    }

    #[test]
    fn empty_input_is_refused() {
        assert_eq!(
            probe(Bytes::new(), None).unwrap_err().0,
            "the audio file is empty"
        );
    }
}

#[cfg(test)]
mod fixture_tests {
    //! Real encoded speech from `testdata/audio` (see its README for how it was made).
    use super::*;

    fn fixture(name: &str) -> Bytes {
        let path = format!("{}/../testdata/audio/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(path).unwrap())
    }

    #[test]
    fn every_supported_format_probes_with_plausible_measurements() {
        for (name, format) in [
            ("speech.wav", "wav"),
            ("speech.flac", "flac"),
            ("speech.mp3", "mp3"),
            ("speech.ogg", "ogg"),
        ] {
            let p = probe(fixture(name), Some(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.info.format, format, "{name}");
            assert_eq!(p.info.sample_rate, 16_000, "{name}");
            assert_eq!(p.info.channels, 1, "{name}");
            assert!(
                (2.0..4.0).contains(&p.info.duration_s),
                "{name}: {}",
                p.info.duration_s
            );
        }
    }

    #[test]
    fn tagged_formats_carry_their_transcript() {
        for name in ["speech.flac", "speech.ogg", "speech.mp3"] {
            let p = probe(fixture(name), None).unwrap();
            assert_eq!(
                p.comment.as_deref(),
                Some("the quick brown fox jumps over the lazy dog"),
                "{name}"
            );
        }
    }

    #[test]
    fn the_content_decides_not_the_name() {
        assert_eq!(
            probe(fixture("speech.flac"), Some("speech.wav"))
                .unwrap()
                .info
                .format,
            "flac"
        );
        let mut cut = fixture("speech.mp3").to_vec();
        cut.truncate(3);
        assert!(probe(Bytes::from(cut), Some("x.mp3")).is_err());
    }
}

#[cfg(test)]
mod declared_length_tests {
    //! Files whose declared lengths made symphonia ask for gigabytes before reading a byte of
    //! what they announce. Each is refused before symphonia sees it.
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../testdata/audio/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    }

    fn refused(bytes: Vec<u8>) -> String {
        let bytes = Bytes::from(bytes);
        let why = probe(bytes.clone(), None).unwrap_err().0;
        assert_eq!(analyze(bytes.clone(), None).unwrap_err().0, why);
        if bytes.starts_with(b"RIFF") {
            assert_eq!(wav_header(&bytes).unwrap_err().0, why);
        }
        why
    }

    #[test]
    fn a_vorbis_codebook_of_sixteen_million_entries_is_refused_unbuilt() {
        // Found by the fuzz tests: the Ogg fixture's first 8 KiB with a codebook's entry count
        // raised to 0xffff.. (two bytes) and the page checksums rewritten. Symphonia reserved
        // 32 MiB for its tables; 255 such codebooks fit in a few kilobytes.
        let mut ogg = fixture("speech.ogg");
        ogg.truncate(8192);
        for (at, byte) in [
            (0x50, 0x14),
            (0x51, 0x6e),
            (0x52, 0x73),
            (0x53, 0x51),
            (0x1eb, 0xff),
            (0x1ec, 0xff),
            (0x1e19, 0x11),
            (0x1e1a, 0x67),
            (0x1e1b, 0x5b),
            (0x1e1c, 0xc4),
        ] {
            ogg[at] = byte;
        }
        assert!(refused(ogg).contains("Vorbis code tables"));
    }

    #[test]
    fn a_wav_whose_frames_outweigh_their_samples_is_refused() {
        // Found by the fuzz tests: a streamed 10 ms WAV (RIFF and data lengths 0xffffffff, a
        // comment) whose block align is 65535 for one 16-bit channel: symphonia read each packet
        // into a 75 MB buffer (1152 blocks). A miner's answer could carry this.
        let mut wav = wav_pcm16(&tone(0.01, 300.0, 8000), 8000, Some("hi"));
        wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        wav[32..34].copy_from_slice(&[0xff, 0xff]);
        wav[64..68].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(wav.len(), 228);
        assert_eq!(&wav[60..64], b"data");
        assert!(refused(wav).contains("65535 bytes"));
    }

    #[test]
    fn a_flac_comment_longer_than_the_file_is_refused() {
        // The comment's length (at 0x6c) raised to 0xf0ffffff: symphonia allocated 4 GB.
        let mut flac = fixture("speech.flac");
        flac.truncate(4096);
        flac[0x6c..0x70].copy_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
        assert!(refused(flac).contains("FLAC comment"));
    }

    #[test]
    fn a_riff_info_entry_longer_than_the_file_is_refused() {
        // A streamed RIFF length, and LIST and ICMT lengths of almost 4 GiB: symphonia
        // allocated the ICMT entry's 4 GB. A miner's answer could carry this.
        let mut wav = wav_pcm16(&tone(0.02, 300.0, 8000), 8000, Some("hello there"));
        wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        wav[40..44].copy_from_slice(&0xffff_ff00u32.to_le_bytes());
        wav[52..56].copy_from_slice(&0xffff_fe00u32.to_le_bytes());
        assert!(refused(wav).contains("RIFF LIST"));
    }

    #[test]
    fn an_id3_frame_longer_than_its_tag_is_refused() {
        // The first frame (TSSE, at 10) of the MP3 fixture's ID3v2.3 tag declaring 4 GB.
        let mut mp3 = fixture("speech.mp3");
        assert_eq!(&mp3[10..14], b"TSSE");
        mp3[14..18].copy_from_slice(&[0xff, 0xff, 0xff, 0x00]);
        assert!(refused(mp3).contains("ID3v2 frame"));
    }

    #[test]
    fn an_ogg_comment_longer_than_its_packet_is_refused() {
        // The Vorbis comment's length (at 0xa6) raised to 0xf0ffffff, and its page's checksum
        // (at 0x50) rewritten: symphonia allocated 4 GB.
        let mut ogg = fixture("speech.ogg");
        ogg[0xa6..0xaa].copy_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
        ogg[0x50..0x54].copy_from_slice(&[0x25, 0x6e, 0xdb, 0x90]);
        assert!(refused(ogg).contains("Ogg Vorbis comment"));
    }
}

#[cfg(test)]
mod pcm_tests {
    use super::*;

    #[test]
    fn speech_becomes_raw_24_khz_mono_samples_of_the_same_length() {
        let samples = tone(2.0, 440.0, 16_000);
        let wav = wav_pcm16(&samples, 16_000, None);
        let pcm = pcm16_mono(Bytes::from(wav), 24_000, 60.0).unwrap();
        assert_eq!(pcm.len(), 2 * 48_000);
        let peak = pcm
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs())
            .max()
            .unwrap();
        let source_peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(
            peak <= source_peak + 1 && peak > source_peak / 2,
            "{peak} vs {source_peak}"
        );
        assert!(pcm16_mono(Bytes::from_static(b"not audio"), 24_000, 60.0).is_err());
    }
}
