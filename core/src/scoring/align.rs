//! Sequence alignment on interned tokens: edit distance and longest common subsequence.
//!
//! Both use bit-parallel algorithms that process 64 rows of the dynamic-programming matrix per
//! machine word, so a pair of 10,000-token texts costs about 10,000 × 157 word steps instead of
//! 10⁸ cells, and memory stays linear in the shorter text:
//! - edit distance: Myers' bit-vector algorithm in Hyyrö's multi-word form (vertical deltas
//!   `pv`/`mv` per block, horizontal delta carried between blocks);
//! - LCS: the Allison–Dix / Hyyrö bit-vector recurrence `V ← (V + (V & M)) | (V & !M)` with
//!   the carry propagated between words.
//!
//! Common prefixes and suffixes are stripped first, which makes near-identical texts cheap.

/// The match masks of a pattern: for each distinct token, one bit per pattern position.
/// Tokens are dense ids (see [`super::text::Vocabulary`]), so the token-to-row map is a plain
/// vector; tokens absent from the pattern share an all-zero row (`absent`).
struct Masks {
    blocks: usize,
    absent: usize,
    row_of: Vec<usize>,
    bits: Vec<u64>,
}

impl Masks {
    fn new(pattern: &[u32], text: &[u32]) -> Self {
        let blocks = pattern.len().div_ceil(64);
        let top = pattern.iter().chain(text).copied().max().unwrap_or(0) as usize;
        let mut row_of = vec![usize::MAX; top + 1];
        let mut distinct = 0usize;
        for &t in pattern {
            let slot = &mut row_of[t as usize];
            if *slot == usize::MAX {
                *slot = distinct;
                distinct += 1;
            }
        }
        let mut bits = vec![0u64; (distinct + 1) * blocks];
        for (i, &t) in pattern.iter().enumerate() {
            bits[row_of[t as usize] * blocks + i / 64] |= 1u64 << (i % 64);
        }
        for slot in &mut row_of {
            if *slot == usize::MAX {
                *slot = distinct;
            }
        }
        Self {
            blocks,
            absent: distinct,
            row_of,
            bits,
        }
    }

    /// The row index of each text token.
    fn lookup(&self, text: &[u32]) -> Vec<usize> {
        text.iter().map(|&t| self.row_of[t as usize]).collect()
    }

    fn row(&self, index: usize) -> &[u64] {
        &self.bits[index * self.blocks..(index + 1) * self.blocks]
    }
}

fn strip_common<'a>(mut a: &'a [u32], mut b: &'a [u32]) -> (&'a [u32], &'a [u32]) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    a = &a[prefix..];
    b = &b[prefix..];
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (&a[..a.len() - suffix], &b[..b.len() - suffix])
}

/// Levenshtein distance (unit costs for substitution, insertion and deletion).
///
/// Computed inside a diagonal band (Ukkonen's cut-off). An alignment of cost `d` between
/// sequences whose lengths differ by `δ` makes at most `(d + δ) / 2` insertions or deletions
/// on either side, so it never strays further than that from the main diagonal. A banded pass
/// never understates the distance, so a pass that returns `c` with `(c + δ) / 2` inside its
/// band is exact; otherwise a second pass with exactly that band is. The first band is
/// estimated from the tokens each side has and the other lacks.
pub fn edit_distance(a: &[u32], b: &[u32]) -> usize {
    let (a, b) = strip_common(a, b);
    // The shorter sequence is the pattern: fewer blocks per column.
    let (pattern, text) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if pattern.is_empty() {
        return text.len();
    }
    let masks = Masks::new(pattern, text);
    let rows = masks.lookup(text);
    let skew = text.len() - pattern.len();
    // Substitutions, insertions and deletions each leave a token surplus on one side or both,
    // so for ordinary errors `d <= surplus + deficit`; only reordering escapes that estimate,
    // and then the second pass corrects it.
    let (surplus, deficit) = token_imbalance(&masks, &rows);
    let mut band = (surplus + deficit + skew).div_ceil(2) + 32;
    loop {
        let distance = banded(&masks, &rows, pattern.len(), band);
        let needed = (distance + skew).div_ceil(2);
        if needed <= band || band >= pattern.len() + text.len() {
            return distance;
        }
        band = needed;
    }
}

/// How many token occurrences the pattern has beyond the text (surplus) and the text beyond
/// the pattern (deficit). Each needs its own edit, so their maximum bounds the distance below.
fn token_imbalance(masks: &Masks, rows: &[usize]) -> (usize, usize) {
    let mut counts = vec![0i64; masks.absent + 1];
    for (k, word) in masks.bits.chunks_exact(masks.blocks).enumerate() {
        counts[k] = word.iter().map(|w| i64::from(w.count_ones())).sum();
    }
    for &r in rows {
        counts[r] -= 1;
    }
    let surplus: i64 = counts.iter().filter(|c| **c > 0).sum();
    let deficit: i64 = -counts.iter().filter(|c| **c < 0).sum::<i64>();
    (surplus as usize, deficit as usize)
}

/// An upper bound of the edit distance, exact when an optimal alignment stays within `band`
/// of the main diagonal.
///
/// Column `j` computes only the blocks holding rows `j - band ..= j + band`. A block that
/// leaves the band at the top is never computed again, and the first computed block assumes
/// a +1 horizontal step above it; a block that enters at the bottom starts with +1 vertical
/// steps. Both assumptions can only overstate cells, never understate them, and cells on an
/// alignment that stays inside the band are computed exactly.
fn banded(masks: &Masks, rows: &[usize], m: usize, band: usize) -> usize {
    let blocks = masks.blocks;
    let last_block = blocks - 1;
    let last_shift = ((m - 1) % 64) as u32;
    let rows_in = |b: usize| if b == last_block { m - 64 * b } else { 64 };
    let mut pv = vec![!0u64; blocks];
    let mut mv = vec![0u64; blocks];
    let mut first = 0usize;
    let mut last = (band.min(m - 1)) / 64;
    // The value of the matrix at the bottom row of block `last`, in the current column.
    let mut bottom: i64 = (0..=last).map(|b| rows_in(b) as i64).sum();
    for (j, &row) in rows.iter().enumerate() {
        let column = j + 1;
        let want_last = (column + band).min(m).saturating_sub(1) / 64;
        while last < want_last {
            last += 1;
            bottom += rows_in(last) as i64;
        }
        first = first
            .max(column.saturating_sub(band).max(1).saturating_sub(1) / 64)
            .min(last);
        let eq_row = masks.row(row);
        // Row 0 is 0, 1, 2, …, and above a cut-off block a +1 step is assumed: either way
        // the column starts with a +1 horizontal delta.
        let mut carry = (1u64, 0u64);
        let full = if last == last_block { last } else { last + 1 };
        for ((p, m), &eq) in pv[first..full]
            .iter_mut()
            .zip(&mut mv[first..full])
            .zip(&eq_row[first..full])
        {
            carry = myers_step(p, m, eq, carry, 63);
        }
        if full == last {
            carry = myers_step(
                &mut pv[last],
                &mut mv[last],
                eq_row[last],
                carry,
                last_shift,
            );
        }
        bottom += carry.0 as i64 - carry.1 as i64;
    }
    // The pattern is the shorter side, so by the last column row m is inside the band; blocks
    // below it would each add their rows.
    let missing: i64 = (last + 1..blocks).map(|b| rows_in(b) as i64).sum();
    (bottom + missing).max(0) as usize
}

/// One 64-row block of one column: updates the vertical deltas and returns the horizontal delta
/// at row `shift` as (plus, minus) bits. Branch-free: the deltas are data and mispredict.
#[inline(always)]
fn myers_step(pv: &mut u64, mv: &mut u64, eq: u64, (hp, hn): (u64, u64), shift: u32) -> (u64, u64) {
    let (p, m) = (*pv, *mv);
    let xv = eq | m;
    let eq = eq | hn;
    let xh = ((eq & p).wrapping_add(p) ^ p) | eq;
    let ph = m | !(xh | p);
    let mh = p & xh;
    let out = ((ph >> shift) & 1, (mh >> shift) & 1);
    let ph = (ph << 1) | hp;
    let mh = (mh << 1) | hn;
    *pv = mh | !(xv | ph);
    *mv = ph & xv;
    out
}

/// Length of the longest common subsequence.
pub fn lcs_length(a: &[u32], b: &[u32]) -> usize {
    let full = a.len().min(b.len());
    let (a, b) = strip_common(a, b);
    let stripped = full - a.len().min(b.len());
    let (pattern, text) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if pattern.is_empty() {
        return stripped;
    }
    let masks = Masks::new(pattern, text);
    let blocks = masks.blocks;
    let mut v = vec![!0u64; blocks];
    for row in masks.lookup(text) {
        let eq_row = masks.row(row);
        let mut carry = false;
        for k in 0..blocks {
            let u = v[k] & eq_row[k];
            let (sum, c1) = v[k].overflowing_add(u);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            carry = c1 || c2;
            v[k] = sum | (v[k] & !eq_row[k]);
        }
    }
    let tail = pattern.len() % 64;
    let zeros: usize = v
        .iter()
        .enumerate()
        .map(|(k, word)| {
            let mask = if k + 1 == blocks && tail != 0 {
                (1u64 << tail) - 1
            } else {
                !0
            };
            (!word & mask).count_ones() as usize
        })
        .sum();
    stripped + zeros
}

/// Reference implementations: the textbook full-matrix recurrences, for tests only.
#[cfg(test)]
pub(crate) mod naive {
    pub fn edit_distance(a: &[u32], b: &[u32]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, x) in a.iter().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, y) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(x != y))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    pub fn lcs_length(a: &[u32], b: &[u32]) -> usize {
        let mut prev = vec![0usize; b.len() + 1];
        for x in a {
            let mut cur = vec![0usize; b.len() + 1];
            for (j, y) in b.iter().enumerate() {
                cur[j + 1] = if x == y {
                    prev[j] + 1
                } else {
                    prev[j + 1].max(cur[j])
                };
            }
            prev = cur;
        }
        prev[b.len()]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn seq(max_len: usize, alphabet: u32) -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(0..alphabet, 0..max_len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn edit_distance_matches_the_full_matrix(a in seq(300, 6), b in seq(300, 6)) {
            prop_assert_eq!(edit_distance(&a, &b), naive::edit_distance(&a, &b));
        }

        #[test]
        fn lcs_matches_the_full_matrix(a in seq(300, 6), b in seq(300, 6)) {
            prop_assert_eq!(lcs_length(&a, &b), naive::lcs_length(&a, &b));
        }

        #[test]
        fn large_alphabets_and_block_edges_agree(a in seq(200, 1000), b in seq(200, 1000)) {
            prop_assert_eq!(edit_distance(&a, &b), naive::edit_distance(&a, &b));
            prop_assert_eq!(lcs_length(&a, &b), naive::lcs_length(&a, &b));
        }
    }

    #[test]
    fn exact_block_multiples_are_counted_to_the_last_row() {
        for len in [63usize, 64, 65, 128, 129] {
            let a: Vec<u32> = (0..len as u32).map(|i| i % 7).collect();
            let b: Vec<u32> = (0..len as u32 + 3).map(|i| (i * 3) % 7).collect();
            assert_eq!(edit_distance(&a, &b), naive::edit_distance(&a, &b), "{len}");
            assert_eq!(lcs_length(&a, &b), naive::lcs_length(&a, &b), "{len}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]

        /// Long, similar sequences: the band is narrower than the pattern, so the cut-offs at
        /// the top and bottom are exercised, and doubling when the first band is too narrow.
        #[test]
        fn banded_distance_is_exact_on_long_similar_sequences(
            base in seq(1500, 50),
            edits in prop::collection::vec((0usize..1500, 0u32..60, 0u8..3), 0..120),
        ) {
            let mut other = base.clone();
            for (at, token, kind) in edits {
                let at = at.min(other.len());
                match kind {
                    0 if at < other.len() => other[at] = token,
                    1 => other.insert(at, token),
                    _ if at < other.len() => { other.remove(at); }
                    _ => other.push(token),
                }
            }
            prop_assert_eq!(edit_distance(&base, &other), naive::edit_distance(&base, &other));
        }
    }

    #[test]
    fn a_shifted_copy_needs_a_wider_band_than_its_lower_bound() {
        // Rotating a sequence keeps every token count, so the lower bound is 0 and the first
        // band is too narrow.
        let a: Vec<u32> = (0..3000).map(|i| i % 97).collect();
        let mut b = a.clone();
        b.rotate_left(700);
        assert_eq!(edit_distance(&a, &b), naive::edit_distance(&a, &b));
    }

    #[test]
    fn empty_sides() {
        assert_eq!(edit_distance(&[], &[1, 2, 3]), 3);
        assert_eq!(edit_distance(&[1, 2], &[]), 2);
        assert_eq!(lcs_length(&[], &[1]), 0);
        assert_eq!(lcs_length(&[4, 5], &[4, 5]), 2);
    }
}
