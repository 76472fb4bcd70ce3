//! Fuzz targets: every parser of bytes that come from outside (uploads, miners, the chain, peers'
//! headers, presented API keys) is fed arbitrary bytes and structured mutations of valid inputs
//! (truncations, flipped bytes, inserted and removed runs, duplicated runs, huge declared
//! lengths), and must hold three promises on every case:
//!
//! - **no panic**: a panic fails the case, and proptest shrinks it to a small input;
//! - **no hang**: each case is timed with [`Instant`] and must end within [`CASE_TIME`] (5 s, a
//!   bound a hundred times what any case takes in the debug profile, so it cannot flake); a case
//!   that never ends is killed after [`HANG_MS`] and reported with its input;
//! - **bounded memory**: while a case runs, the global allocator refuses to hold more than the
//!   target's stated bound above what was held when the case began (the bound is in each
//!   target's doc comment, derived from the input's size). The check is exact and covers the
//!   peak, not only what is left at the end: `cap` counts every byte held, and an allocation
//!   that would pass the limit fails, which aborts the process. Code that asks for memory
//!   fallibly (`try_reserve`) sees the failure instead of aborting; none of the parsers here do.
//!
//! Every target runs in a child process (proptest's fork mode): the child runs that target alone,
//! so the allocation count is its own, and an abort (the memory limit) or a hang is reported by the
//! parent as a failing case with its input, then shrunk, instead of taking the test binary down.
//!
//! Failing cases are not persisted (`failure_persistence: None`): a crash found here becomes a
//! unit test with the exact input next to the parser it broke.
//!
//! Cost: the case counts are set per target (see each one; 1,888 cases in all); the whole binary
//! runs in about 9 s in the debug profile on two cores, on top of its build, most of it the
//! real sr25519 checks of the `btauth/1` target. `TAOGATE_FUZZ_SCALE=N` runs N times the cases.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

mod answers;
mod audio;
mod keys;
mod metagraph;
mod multipart;
mod peers;

use std::alloc::System;
use std::cell::{Cell, OnceCell};
use std::sync::Once;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Counts every byte held, and holds a limit while a case runs.
#[global_allocator]
static ALLOC: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

/// The longest one case may take.
pub const CASE_TIME: Duration = Duration::from_secs(5);

/// After this many milliseconds a case is taken to hang: its process is killed and the case
/// fails.
pub const HANG_MS: u32 = 30_000;

/// One mebibyte.
pub const MIB: usize = 1024 * 1024;

/// Bytes as a test reports them: a byte-string literal, ready to paste into a regression test.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(pub Vec<u8>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes: b\"{}\"", self.0.len(), self.0.escape_ascii())
    }
}

/// Byte patterns written over an input by [`Edit::Huge`]: huge little-endian lengths (`u32`,
/// `u16`, `u64`) and huge SCALE compact lengths.
const HUGE: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0x00, 0x00, 0x00, 0x80],
    &[0xf0, 0xff, 0xff, 0xff],
    &[0x00, 0x00, 0x00, 0x01],
    &[0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x03, 0xff, 0xff, 0xff, 0xff],
    &[0xfe, 0xff, 0xff, 0xff],
    &[0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

/// One structured change to a valid input.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Cut the input at a point.
    Truncate(Index),
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Insert bytes at a point.
    Insert(Index, Vec<u8>),
    /// Remove up to this many bytes from a point.
    Remove(Index, usize),
    /// Repeat a run of up to this many bytes in place.
    Duplicate(Index, usize),
    /// Overwrite the bytes at a point (rounded down to a multiple of 4 when `aligned`, where
    /// chunk lengths sit) with one of the [`HUGE`] patterns.
    Huge(Index, bool, Index),
}

impl Edit {
    /// Applies the edit.
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match self {
            Self::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Self::Flip(i, mask) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= (*mask).max(1);
            }
            Self::Flip(..) => {}
            Self::Insert(i, inserted) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, inserted.iter().copied());
            }
            Self::Remove(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Self::Duplicate(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                let run = bytes[i..end].to_vec();
                bytes.splice(end..end, run);
            }
            Self::Huge(i, aligned, pattern) => {
                let pattern = HUGE[pattern.index(HUGE.len())];
                let mut i = at(i, bytes.len());
                if *aligned {
                    i -= i % 4;
                }
                let end = (i + pattern.len()).min(bytes.len());
                bytes[i..end].copy_from_slice(&pattern[..end - i]);
            }
        }
    }
}

/// Any [`Edit`].
pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<Index>(), 1usize..256).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<Index>(), any::<bool>(), any::<Index>()).prop_map(|(i, a, p)| Edit::Huge(i, a, p)),
    ]
}

/// `seed` changed by up to `edits` edits.
pub fn mutated(seed: Vec<u8>, edits: usize) -> impl Strategy<Value = Input> {
    prop::collection::vec(edit(), 0..=edits).prop_map(move |edits| {
        let mut bytes = seed.clone();
        for e in &edits {
            e.apply(&mut bytes);
        }
        Input(bytes)
    })
}

/// Arbitrary bytes (up to `max` of them) one time in four, else one of `seeds` with up to four
/// edits.
pub fn bytes_or_mutated(seeds: Vec<Vec<u8>>, max: usize) -> BoxedStrategy<Input> {
    let arbitrary = prop::collection::vec(any::<u8>(), 0..max).prop_map(Input);
    let seeded = prop::sample::select(seeds).prop_flat_map(|seed| mutated(seed, 4));
    prop_oneof![1 => arbitrary, 3 => seeded].boxed()
}

/// Holds the allocation limit of one case, and lifts it when dropped (also when the case
/// panics).
struct Limit;

impl Limit {
    /// Lets the process hold at most `bound` bytes more than it holds now.
    fn above_current(bound: usize) -> Self {
        let limit = ALLOC.allocated().saturating_add(bound);
        ALLOC
            .set_limit(limit)
            .expect("the limit is above what is held");
        Self
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        let _ = ALLOC.set_limit(usize::MAX);
    }
}

/// Runs fuzz target `name` (its full test path, `module_path!()` and the function's name) for
/// `cases` cases drawn from `strategy` (times `TAOGATE_FUZZ_SCALE`, 1 unless set, for a longer
/// search). `setup` runs once, before the first case, outside the
/// budgets; each case then runs `case` within [`CASE_TIME`] and within `bound(&input)` bytes of
/// memory above what was held when it began.
pub fn fuzz<S, C>(
    name: &'static str,
    cases: u32,
    strategy: S,
    setup: impl FnOnce() -> C,
    bound: impl Fn(&S::Value) -> usize,
    case: impl Fn(&C, S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
{
    let scale = std::env::var("TAOGATE_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let config = Config {
        cases: cases.saturating_mul(scale),
        failure_persistence: None,
        fork: true,
        timeout: HANG_MS,
        test_name: Some(name),
        // Shrinking a crash costs a process per step.
        max_shrink_iters: 512,
        ..Config::default()
    };
    static REPORT_UNLIMITED: Once = Once::new();
    REPORT_UNLIMITED.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Reporting a panic (a backtrace above all) is not the case's own memory.
            let _ = ALLOC.set_limit(usize::MAX);
            report(info);
        }));
    });
    let setup = Cell::new(Some(setup));
    let context = OnceCell::new();
    let result = TestRunner::new(config).run(&strategy, |input| {
        let context = context.get_or_init(|| setup.take().expect("set up once")());
        let bound = bound(&input);
        let limit = Limit::above_current(bound);
        let started = Instant::now();
        let outcome = case(context, input);
        let elapsed = started.elapsed();
        drop(limit);
        outcome?;
        prop_assert!(
            elapsed < CASE_TIME,
            "the case took {elapsed:?}, more than {CASE_TIME:?}"
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// A single-threaded Tokio runtime for the targets that drive async code.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
