//! What a file declares before symphonia believes it.
//!
//! Symphonia sizes some buffers from lengths the file declares, before it reads the bytes they
//! announce: a WAV packet (1152 blocks of the declared block align, up to 75 MB), a RIFF
//! `LIST/INFO` entry, a FLAC Vorbis-comment or picture field, an ID3v2 frame, an
//! Ogg Vorbis/Opus comment (each up to 4 GiB), and the code tables of a Vorbis setup header (up to
//! 2^24 entries a codebook, 255 codebooks, from a few bytes each). A hundred-byte upload could make
//! it ask for gigabytes, and a failed allocation aborts the process. [`check`] reads the same
//! structures first, where symphonia's probe will, and refuses a file whose lengths pass the
//! bytes it holds, or whose Vorbis code tables pass [`MAX_CODEBOOK_BYTES`].

use symphonia::core::probe::QueryDescriptor;

use super::NotAudio;

/// The most bytes the code tables of one Vorbis stream may take, as symphonia builds them
/// (estimated at 16 bytes an entry, and 4 more an entry and dimension with a lookup table).
/// libvorbis's take about 100 KiB (the speech fixture: 102 624 bytes).
pub const MAX_CODEBOOK_BYTES: u64 = 4 * 1024 * 1024;

/// How far symphonia's probe searches for a container's marker.
const PROBE_SEARCH_LIMIT: usize = 1024 * 1024;

fn past_end(what: &str) -> NotAudio {
    NotAudio(format!(
        "the file is not valid audio: {what} declares more bytes than the file holds"
    ))
}

/// Refuses `bytes` if a structure symphonia reads while opening it declares more than the file
/// holds (see the module's documentation).
pub fn check(bytes: &[u8]) -> Result<(), NotAudio> {
    let mut at = 0;
    let mut end = bytes.len().min(PROBE_SEARCH_LIMIT);
    while at < end {
        let rest = &bytes[at..];
        if rest.starts_with(b"ID3") {
            // The probe reads the tag, then searches on after it.
            at += id3v2(rest)?;
            end = bytes.len().min(at.saturating_add(PROBE_SEARCH_LIMIT));
            continue;
        }
        if rest.starts_with(b"RIFF") {
            return riff(rest);
        }
        if rest.starts_with(b"fLaC") {
            return flac(&rest[4..]);
        }
        if rest.starts_with(b"OggS") {
            return ogg(rest);
        }
        if mpeg_marker(rest) {
            return Ok(());
        }
        at += 1;
    }
    Ok(())
}

/// Whether `rest` starts with the marker of an MPEG audio frame, which symphonia opens without
/// reading any declared length.
fn mpeg_marker(rest: &[u8]) -> bool {
    symphonia::default::formats::MpaReader::query()
        .iter()
        .flat_map(|d| d.markers.iter())
        .any(|m| rest.starts_with(m))
}

/// A big-endian number of `n` bytes at `at`.
fn be(bytes: &[u8], at: usize, n: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(n)?)?;
    Some(field.iter().fold(0, |v, &b| v << 8 | u64::from(b)))
}

/// A little-endian `u32` at `at`.
fn le32(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u64::from(u32::from_le_bytes([
        field[0], field[1], field[2], field[3],
    ])))
}

/// A 28-bit "synchsafe" number (7 bits a byte) at `at`.
fn synchsafe(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(field.iter().fold(0, |v, &b| v << 7 | u64::from(b & 0x7f)))
}

/// Checks an ID3v2 tag at the start of `tag`; returns its length (symphonia's probe goes on
/// after it).
fn id3v2(tag: &[u8]) -> Result<usize, NotAudio> {
    let (Some(&version), Some(&flags), Some(size)) = (tag.get(3), tag.get(5), synchsafe(tag, 6))
    else {
        return Ok(tag.len());
    };
    let size = size as usize;
    let Some(body) = tag.get(10..10 + size) else {
        return Err(past_end("an ID3v2 tag"));
    };
    // Before version 4, a tag may be unsynchronised as a whole: 0xff 0x00 stands for 0xff.
    let body: Vec<u8> = if flags & 0x80 != 0 && version < 4 {
        let mut out = Vec::with_capacity(body.len());
        for (i, &b) in body.iter().enumerate() {
            if !(b == 0 && i > 0 && body[i - 1] == 0xff) {
                out.push(b);
            }
        }
        out
    } else {
        body.to_vec()
    };
    let mut at = 0;
    if flags & 0x40 != 0 && version >= 3 {
        let extended = if version == 3 {
            be(&body, 0, 4).map(|n| n + 4)
        } else {
            synchsafe(&body, 0)
        };
        at = extended.map_or(body.len(), |n| n as usize);
    }
    let (header, size_bytes) = if version == 2 { (6, 3) } else { (10, 4) };
    while at + header <= body.len() && body[at] != 0 {
        let id_len = header - size_bytes - if version == 2 { 0 } else { 2 };
        let declared = if version == 4 {
            synchsafe(&body, at + id_len)
        } else {
            be(&body, at + id_len, size_bytes)
        }
        .unwrap_or(u64::MAX);
        let left = (body.len() - at - header) as u64;
        if declared > left {
            return Err(past_end("an ID3v2 frame"));
        }
        at += header + declared as usize;
    }
    Ok(10 + size)
}

/// Checks the chunks of a RIFF file up to its `data` chunk: a `LIST` chunk must fit in the file
/// (its entries are read into buffers of their declared sizes, each bounded by the list's), and
/// a PCM format chunk's frames (its block align) may not be larger than their samples (a packet
/// is read into a buffer of 1152 blocks).
fn riff(riff: &[u8]) -> Result<(), NotAudio> {
    let mut at = 12;
    while let (Some(id), Some(len)) = (riff.get(at..at + 4), le32(riff, at + 4)) {
        if id == b"data" {
            break;
        }
        let left = (riff.len() - at - 8) as u64;
        if id == b"LIST" && len > left {
            return Err(past_end("a RIFF LIST chunk"));
        }
        if id == b"fmt " {
            let field = |offset: usize| {
                let field = riff.get(at + 8 + offset..at + 10 + offset)?;
                Some(u64::from(u16::from_le_bytes([field[0], field[1]])))
            };
            if let (Some(tag), Some(channels), Some(align), Some(bits)) =
                (field(0), field(2), field(12), field(14))
                && matches!(tag, 1 | 3 | 6 | 7 | 0xfffe)
                && align > channels * bits.div_ceil(8)
            {
                return Err(NotAudio(format!(
                    "the file is not valid audio: its WAV frames are {align} bytes, larger than \
                     {channels} samples of {bits} bits"
                )));
            }
        }
        at = at
            .saturating_add(8)
            .saturating_add((len + (len & 1)) as usize);
    }
    Ok(())
}

/// Checks FLAC metadata blocks (after the `fLaC` marker): every block must fit in the file, and
/// the fields of a comment or picture block in their block.
fn flac(blocks: &[u8]) -> Result<(), NotAudio> {
    let mut at = 0;
    while let (Some(&kind), Some(len)) = (blocks.get(at), be(blocks, at + 1, 3)) {
        let Some(body) = blocks.get(at + 4..at + 4 + len as usize) else {
            return Err(past_end("a FLAC metadata block"));
        };
        flac_block(kind & 0x7f, body)?;
        if kind & 0x80 != 0 {
            break;
        }
        at += 4 + len as usize;
    }
    Ok(())
}

/// Checks the fields of one FLAC metadata block of type `kind`.
fn flac_block(kind: u8, body: &[u8]) -> Result<(), NotAudio> {
    match kind {
        4 => comments(body, "a FLAC comment"),
        6 => {
            // Picture type, then the media type and description, each after its length, four
            // numbers, and the picture after its length.
            let mut at = 4;
            for field in 0..3 {
                let Some(len) = be(body, at, 4) else {
                    return Ok(());
                };
                if len > (body.len() - at - 4) as u64 {
                    return Err(past_end("a FLAC picture"));
                }
                at += 4 + len as usize + if field == 1 { 16 } else { 0 };
                if at > body.len() {
                    return Ok(());
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks a Vorbis comment list without framing: a vendor string and comments, each after its
/// little-endian length.
fn comments(list: &[u8], what: &str) -> Result<(), NotAudio> {
    let Some(vendor) = le32(list, 0) else {
        return Ok(());
    };
    let mut at = 4 + vendor as usize;
    let Some(count) = le32(list, at) else {
        return Ok(());
    };
    at += 4;
    for _ in 0..count {
        let Some(len) = le32(list, at) else {
            return Ok(());
        };
        if len > (list.len() - at - 4) as u64 {
            return Err(past_end(what));
        }
        at += 4 + len as usize;
    }
    Ok(())
}

/// How an Ogg logical stream's packets are read.
#[derive(Clone, Copy, PartialEq)]
enum Mapping {
    /// Vorbis: any packet `\x03vorbis` is a comment, `\x05vorbis` a setup header.
    Vorbis,
    /// FLAC: any packet but audio frames is a metadata block.
    Flac,
    /// Opus: the first `OpusTags` packet is a comment.
    Opus { commented: bool },
    /// Not read further.
    Other,
}

/// One Ogg logical stream being read.
struct Stream {
    serial: u32,
    mapping: Option<Mapping>,
    packet: Vec<u8>,
    codebook_bytes: u64,
}

/// Checks the packets of an Ogg file's logical streams as symphonia's mappers read them.
fn ogg(file: &[u8]) -> Result<(), NotAudio> {
    let mut streams: Vec<Stream> = Vec::new();
    let mut at = 0;
    while at + 27 <= file.len() {
        if &file[at..at + 4] != b"OggS" {
            match file[at + 1..].windows(4).position(|w| w == b"OggS") {
                Some(i) => at += 1 + i,
                None => break,
            }
            continue;
        }
        let serial = le32(file, at + 14).unwrap_or_default() as u32;
        let segments = usize::from(file[at + 26]);
        let Some(table) = file.get(at + 27..at + 27 + segments) else {
            break;
        };
        let mut body = at + 27 + segments;
        let index = match streams.iter().position(|s| s.serial == serial) {
            Some(i) => i,
            None => {
                streams.push(Stream {
                    serial,
                    mapping: None,
                    packet: Vec::new(),
                    codebook_bytes: 0,
                });
                streams.len() - 1
            }
        };
        let stream = &mut streams[index];
        for &lace in table {
            let end = (body + usize::from(lace)).min(file.len());
            stream.packet.extend_from_slice(&file[body..end]);
            body = end;
            if lace < 255 {
                let packet = std::mem::take(&mut stream.packet);
                ogg_packet(stream, &packet)?;
            }
        }
        at = body.max(at + 1);
    }
    Ok(())
}

/// Checks one whole packet of `stream`.
fn ogg_packet(stream: &mut Stream, packet: &[u8]) -> Result<(), NotAudio> {
    let Some(mapping) = stream.mapping else {
        stream.mapping = Some(if packet.starts_with(b"\x7fFLAC") {
            Mapping::Flac
        } else if packet.starts_with(b"\x01vorbis") {
            Mapping::Vorbis
        } else if packet.starts_with(b"OpusHead") {
            Mapping::Opus { commented: false }
        } else {
            Mapping::Other
        });
        return Ok(());
    };
    match mapping {
        Mapping::Vorbis if packet.starts_with(b"\x03vorbis") => {
            comments(&packet[7..], "an Ogg Vorbis comment")
        }
        Mapping::Vorbis if packet.starts_with(b"\x05vorbis") => {
            stream.codebook_bytes = stream
                .codebook_bytes
                .saturating_add(codebook_bytes(&packet[7..])?);
            if stream.codebook_bytes > MAX_CODEBOOK_BYTES {
                return Err(NotAudio(
                    "the file is not valid audio: its Vorbis code tables are too large".into(),
                ));
            }
            Ok(())
        }
        Mapping::Flac => match packet.first() {
            Some(0xff | 0x00 | 0x80) | None => Ok(()),
            Some(&kind) => {
                let len = be(packet, 1, 3).unwrap_or_default() as usize;
                let body = &packet[packet.len().min(4)..];
                flac_block(kind & 0x7f, &body[..body.len().min(len)])
            }
        },
        Mapping::Opus { commented: false } if packet.starts_with(b"OpusTags") => {
            stream.mapping = Some(Mapping::Opus { commented: true });
            comments(&packet[8..], "an Ogg Opus comment")
        }
        _ => Ok(()),
    }
}

/// Reads bits least-significant first, as Vorbis packs them.
struct Bits<'a> {
    bytes: &'a [u8],
    at: u64,
}

impl Bits<'_> {
    fn left(&self) -> u64 {
        (self.bytes.len() as u64 * 8).saturating_sub(self.at)
    }

    fn read(&mut self, n: u32) -> Option<u32> {
        if u64::from(n) > self.left() {
            return None;
        }
        let mut value = 0u32;
        for i in 0..n {
            let byte = self.bytes[(self.at / 8) as usize];
            value |= u32::from(byte >> (self.at % 8) & 1) << i;
            self.at += 1;
        }
        Some(value)
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        (n <= self.left()).then(|| self.at += n)
    }
}

/// The bit count of `v` (Vorbis's `ilog`).
fn ilog(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// The largest `v` with `v^dimensions <= entries`.
fn lookup1_values(entries: u32, dimensions: u32) -> u64 {
    let fits = |v: u64| {
        (0..dimensions)
            .try_fold(1u64, |p, _| {
                p.checked_mul(v).filter(|p| *p <= u64::from(entries))
            })
            .is_some()
    };
    let (mut low, mut high) = (0u64, u64::from(entries) + 1);
    while low + 1 < high {
        let mid = (low + high) / 2;
        if fits(mid) { low = mid } else { high = mid }
    }
    low
}

/// Whether symphonia's floating-point `lookup1_values` gives the exact root for a codebook; it
/// asserts that it does (and overflows past `u32`), so a codebook where it does not (no
/// dimensions, many dimensions, or a float rounding the wrong way) would panic in the decoder.
fn symphonia_finds_the_root(entries: u32, dimensions: u32) -> bool {
    let root = (entries as f32).powf(1.0 / dimensions as f32).floor() as u32;
    let exact = u64::from(root) == lookup1_values(entries, dimensions);
    exact
        && root
            .checked_add(1)
            .and_then(|next| next.checked_pow(dimensions))
            .is_some_and(|p| p > entries)
}

/// The bytes symphonia's tables take for the codebooks of a Vorbis setup header (after
/// `\x05vorbis`), walked as far as they parse: per entry its code length and decoding table, and
/// per entry and dimension a float when the codebook has a lookup table.
fn codebook_bytes(setup: &[u8]) -> Result<u64, NotAudio> {
    let mut bits = Bits {
        bytes: setup,
        at: 0,
    };
    let mut total = 0u64;
    let Some(count) = bits.read(8) else {
        return Ok(0);
    };
    for _ in 0..=count {
        let (Some(0x564342), Some(dimensions), Some(entries), Some(ordered)) =
            (bits.read(24), bits.read(16), bits.read(24), bits.read(1))
        else {
            break;
        };
        total = total.saturating_add(u64::from(entries) * 16);
        if total > MAX_CODEBOOK_BYTES {
            return Ok(total);
        }
        if ordered == 1 {
            let mut entry = 0u32;
            if bits.read(5).is_none() {
                break;
            }
            while entry < entries {
                let Some(n) = bits.read(ilog(entries - entry)) else {
                    return Ok(total);
                };
                entry = entry.saturating_add(n);
            }
        } else {
            let Some(sparse) = bits.read(1) else { break };
            for _ in 0..entries {
                let used = if sparse == 1 { bits.read(1) } else { Some(1) };
                match used {
                    Some(0) => {}
                    Some(_) => {
                        if bits.read(5).is_none() {
                            return Ok(total);
                        }
                    }
                    None => return Ok(total),
                }
            }
        }
        let Some(lookup) = bits.read(4) else { break };
        if lookup == 0 {
            continue;
        }
        if lookup > 2 || bits.skip(64).is_none() {
            break;
        }
        if lookup == 1 && !symphonia_finds_the_root(entries, dimensions) {
            return Err(NotAudio(
                "the file is not valid audio: a Vorbis codebook's lookup table is malformed".into(),
            ));
        }
        let (Some(value_bits), Some(_sequence)) = (bits.read(4), bits.read(1)) else {
            break;
        };
        let values = if lookup == 1 {
            lookup1_values(entries, dimensions)
        } else {
            u64::from(entries) * u64::from(dimensions)
        };
        total = total.saturating_add(u64::from(entries) * u64::from(dimensions) * 4);
        if total > MAX_CODEBOOK_BYTES || bits.skip(values * u64::from(value_bits + 1)).is_none() {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../testdata/audio/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn real_files_pass() {
        for name in ["speech.wav", "speech.flac", "speech.mp3", "speech.ogg"] {
            assert_eq!(check(&fixture(name)), Ok(()), "{name}");
        }
    }

    #[test]
    fn the_fixtures_code_tables_are_small() {
        let ogg = fixture("speech.ogg");
        let setup = ogg.windows(7).position(|w| w == b"\x05vorbis").unwrap();
        let bytes = codebook_bytes(&ogg[setup + 7..]).unwrap();
        assert!((1..MAX_CODEBOOK_BYTES / 8).contains(&bytes), "{bytes}");
    }

    #[test]
    fn lookup1_values_is_the_exact_root() {
        assert_eq!(lookup1_values(16_777_215, 2), 4095);
        assert_eq!(lookup1_values(16_777_216, 2), 4096);
        assert_eq!(lookup1_values(80, 4), 2);
        assert_eq!(lookup1_values(81, 4), 3);
        assert_eq!(lookup1_values(5, 1), 5);
        assert!(symphonia_finds_the_root(6561, 8));
        assert!(!symphonia_finds_the_root(100, 0));
        assert!(!symphonia_finds_the_root(100, 40));
    }
}
