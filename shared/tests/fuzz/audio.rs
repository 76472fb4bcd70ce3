//! The audio probe (every upload) and the WAV header reader with the bounded decode behind it
//! (every speech answer).

use bytes::Bytes;
use proptest::prelude::*;
use taogate_shared::audio;

use proptest::sample::Index;

use crate::{Edit, Input, MIB, bytes_or_mutated, fuzz, mutated};

/// A fixture of `testdata/audio`, cut to its first `keep` bytes (a cut file still probes: the
/// probe stops at its end).
pub fn fixture(name: &str, keep: usize) -> Vec<u8> {
    let path = format!("{}/../testdata/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(keep);
    bytes
}

/// A WAV of `frames` frames with format `tag` (1 PCM, 3 float), `channels` and `bits`.
pub fn wav(tag: u16, channels: u16, bits: u16, rate: u32, frames: usize) -> Vec<u8> {
    let block = channels * bits.div_ceil(8);
    let data: Vec<u8> = (0..frames * usize::from(block))
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// Small valid WAV files of the shapes answers have: 16-bit mono with a comment, 8-bit, 24-bit
/// stereo, 32-bit float.
pub fn wav_seeds() -> Vec<Vec<u8>> {
    vec![
        audio::wav_pcm16(&audio::tone(0.02, 300.0, 8000), 8000, Some("hello there")),
        wav(1, 1, 8, 8000, 120),
        wav(1, 2, 24, 16_000, 100),
        wav(3, 1, 32, 22_050, 100),
    ]
}

/// A WAV as a pipe writes it (RIFF and data lengths unknown, so maximal) with a comment.
fn streamed_wav() -> Vec<u8> {
    let mut wav = audio::wav_pcm16(&audio::tone(0.01, 300.0, 8000), 8000, Some("hi"));
    let data = wav.windows(4).position(|w| w == b"data").unwrap() + 4;
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav[data..data + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    wav
}

/// The FLAC fixture, small: its padding block dropped (the comment block made the last), a
/// picture block added before it, and only its first frames kept.
fn small_flac() -> Vec<u8> {
    let flac = fixture("speech.flac", usize::MAX);
    // fLaC, STREAMINFO (4 + 34 bytes), VORBIS_COMMENT at 0x2a... found by walking the blocks.
    let mut at = 4;
    let mut blocks = Vec::new();
    loop {
        let header = &flac[at..at + 4];
        let len =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        blocks.push((header[0] & 0x7f, flac[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
        if header[0] & 0x80 != 0 {
            break;
        }
    }
    let mut picture = Vec::new();
    for field in [3u32, 9] {
        picture.extend(field.to_be_bytes());
    }
    picture.extend(b"image/png");
    picture.extend(4u32.to_be_bytes());
    picture.extend(b"logo");
    for field in [1u32, 1, 24, 0, 3] {
        picture.extend(field.to_be_bytes());
    }
    picture.extend(b"PNG");
    let kept: Vec<(u8, Vec<u8>)> = blocks
        .into_iter()
        .filter(|(kind, _)| *kind != 1)
        .flat_map(|(kind, body)| {
            let picture = (kind == 4).then(|| (6, picture.clone()));
            picture.into_iter().chain([(kind, body)])
        })
        .collect();
    let mut out = b"fLaC".to_vec();
    for (i, (kind, body)) in kept.iter().enumerate() {
        let last = if i + 1 == kept.len() { 0x80 } else { 0 };
        out.push(kind | last);
        out.extend(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend(body);
    }
    out.extend(&flac[at..at + 8 * 1024]);
    out
}

/// The CRC-32 of an Ogg page (polynomial 0x04c11db7, not reflected, starting at 0).
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in page {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The Ogg pages in `bytes`: where each starts and ends.
fn ogg_pages(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut pages = Vec::new();
    let mut at = 0;
    while at + 27 <= bytes.len() {
        if &bytes[at..at + 4] != b"OggS" {
            match bytes[at + 1..].windows(4).position(|w| w == b"OggS") {
                Some(i) => at += 1 + i,
                None => break,
            }
            continue;
        }
        let segments = usize::from(bytes[at + 26]);
        let Some(table) = bytes.get(at + 27..at + 27 + segments) else {
            break;
        };
        let body: usize = table.iter().map(|&s| usize::from(s)).sum();
        let end = (at + 27 + segments + body).min(bytes.len());
        pages.push((at, end));
        at = end;
    }
    pages
}

/// Rewrites the checksum of every Ogg page in `bytes`, so that an edit inside a page reaches
/// the parsers behind the page reader (which drops a page whose checksum is wrong).
pub fn fix_ogg_checksums(bytes: &mut [u8]) {
    for (start, end) in ogg_pages(bytes) {
        bytes[start + 22..start + 26].fill(0);
        let crc = ogg_crc(&bytes[start..end]);
        bytes[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The Ogg fixture's first pages with up to four edits, its checksums rewritten; one time in
/// two the edits keep to the comment header's page, and keep every length (flips and
/// overwrites only), so that the page still holds the packet.
fn mutated_ogg() -> impl Strategy<Value = Input> {
    let ogg = fixture("speech.ogg", 8 * 1024);
    let (start, end) = ogg_pages(&ogg)[1];
    let body = start + 27 + usize::from(ogg[start + 26]);
    let in_place = prop::collection::vec(
        prop_oneof![
            (any::<Index>(), any::<u8>()).prop_map(|(i, m)| Edit::Flip(i, m)),
            (any::<Index>(), any::<bool>(), any::<Index>())
                .prop_map(|(i, a, p)| Edit::Huge(i, a, p)),
        ],
        1..=4,
    );
    let whole = mutated(ogg.clone(), 4).boxed();
    let comment = in_place
        .prop_map(move |edits| {
            let mut bytes = ogg.clone();
            let mut page = bytes[body..end].to_vec();
            for e in &edits {
                e.apply(&mut page);
            }
            bytes[body..end].copy_from_slice(&page);
            Input(bytes)
        })
        .boxed();
    prop_oneof![whole, comment].prop_map(|Input(mut bytes)| {
        fix_ogg_checksums(&mut bytes);
        Input(bytes)
    })
}

/// The WAV seeds and a streamed WAV.
fn answer_seeds() -> Vec<Vec<u8>> {
    let mut seeds = wav_seeds();
    seeds.push(streamed_wav());
    seeds
}

/// Every supported container: the WAV seeds, a streamed WAV, a small FLAC with a picture and a
/// comment, and the start of the MP3 fixture (its ID3 tag and first frames).
fn upload_seeds() -> Vec<Vec<u8>> {
    let mut seeds = wav_seeds();
    seeds.extend([
        streamed_wav(),
        small_flac(),
        fixture("speech.mp3", 2 * 1024),
        fixture("speech.wav", 1024),
    ]);
    seeds
}

/// The names an upload may carry: the probe takes the extension as a hint only.
fn filename() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("a.wav"),
        Some("a.mp3"),
        Some("a.flac"),
        Some("a.ogg"),
        Some("noextension"),
        Some("."),
    ])
}

/// What opening and decoding may hold whatever the input's size: the stream's 64 KiB read
/// buffer, one packet and its decoded samples (a FLAC block is at most 65 535 frames of 8
/// channels of 32 bits, 2 MiB; a WAV packet 1152 frames of at most 256 bytes), the Vorbis code
/// tables (at most `audio::MAX_CODEBOOK_BYTES`, 4 MiB, as the probe now requires) and windows.
/// Measured: under 1 MiB on every case so far.
const DECODER_STATE: usize = 24 * MIB;

/// `audio::probe` on any bytes under any name: an error or a probe, never a panic; a success
/// has a rate, channels and a finite, non-negative duration. 256 cases (under 1 s in the debug profile).
///
/// Memory: at most 4 × the input + 24 MiB (the input is shared, not copied; a decoder's state
/// does not grow with the input).
#[test]
fn probe_never_panics() {
    fuzz(
        concat!(module_path!(), "::probe_never_panics"),
        256,
        (
            prop_oneof![3 => bytes_or_mutated(upload_seeds(), 4096), 1 => mutated_ogg()],
            filename(),
        ),
        || (),
        |(input, _)| 4 * input.0.len() + DECODER_STATE,
        |(), (Input(bytes), name)| {
            if let Ok(p) = audio::probe(Bytes::from(bytes), name) {
                prop_assert!(p.info.sample_rate > 0 && p.info.channels > 0, "{p:?}");
                prop_assert!(
                    p.info.duration_s.is_finite() && p.info.duration_s >= 0.0,
                    "{p:?}"
                );
            }
            Ok(())
        },
    );
}

/// `audio::wav_header` on any bytes, then, when the header is within the answer limits (as the
/// worker's validation requires), `audio::analyze_within` for at most `max_seconds`: an error
/// or plausible measurements, never a panic. A header's seconds are never negative or NaN.
/// 128 cases (under 1 s in the debug profile).
///
/// Memory: at most 4 × the input + 24 MiB.
#[test]
fn wav_header_then_bounded_decode_never_panics() {
    fuzz(
        concat!(
            module_path!(),
            "::wav_header_then_bounded_decode_never_panics"
        ),
        128,
        (bytes_or_mutated(answer_seeds(), 1024), 0.0f64..3.0),
        || (),
        |(input, _)| 4 * input.0.len() + DECODER_STATE,
        |(), (Input(bytes), max_seconds)| {
            let bytes = Bytes::from(bytes);
            let Ok(header) = audio::wav_header(&bytes) else {
                return Ok(());
            };
            prop_assert!(header.seconds >= 0.0, "{header:?}");
            prop_assert!(header.sample_rate > 0 && header.channels > 0, "{header:?}");
            if header.sample_rate > 48_000 || header.channels > 2 || header.bits_per_sample > 32 {
                return Ok(());
            }
            if let Ok(signal) = audio::analyze_within(bytes, Some("answer.wav"), max_seconds) {
                prop_assert!(signal.info.duration_s >= 0.0, "{signal:?}");
                prop_assert!(
                    (0.0..=1.0).contains(&signal.clipped),
                    "clipped share {signal:?}"
                );
                prop_assert!(!signal.rms_dbfs.is_nan(), "{signal:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn ogg_checksums_are_rewritten_as_written() {
    let ogg = fixture("speech.ogg", 8 * 1024);
    let pages = ogg_pages(&ogg);
    assert!(pages.len() >= 3);
    // The last page is cut, so its checksum changes; the whole ones keep theirs.
    let whole = pages[pages.len() - 2].1;
    let mut rewritten = ogg.clone();
    fix_ogg_checksums(&mut rewritten);
    assert_eq!(rewritten[..whole], ogg[..whole]);
    let flac = audio::probe(Bytes::from(small_flac()), None);
    assert!(flac.is_ok(), "{flac:?} {:?}", &small_flac()[..200]);
    assert!(audio::probe(Bytes::from(streamed_wav()), None).is_ok());
}
