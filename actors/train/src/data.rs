//! Datasets: the built-in corpus, tokens split into training and validation, batches.
//! How a corpus becomes tokens (bytes or BPE) is in [`crate::prepare`].
//!
//! The built-in corpus is the King James Bible (public domain) from the `bible-lib` crate,
//! vendored in `corpus/` (why: `corpus/README.md`), one verse text per line. Its SHA-256 is pinned in
//! [`KJV_SHA256`] and becomes the default task's `dataset_cid`.

use std::ops::Range;

use crate::rng::SplitMix64;
use spore_spec::crypto::sha256_hex;

/// SHA-256 of the built-in corpus bytes. A test rebuilds the corpus and checks it.
pub const KJV_SHA256: &str = "41f2c2c2f33dfab34912305781ef73d1bbf6a47ada94068b0743996b54c4d6fe";

/// Split rule: the corpus is cut into 64 KiB chunks; every tenth chunk (index ≡ 9 mod 10) is
/// validation, the rest is training. Recorded as the task's `prepare_cid` (SHA-256 of this text).
pub const PREPARE_SPEC: &str =
    "spored-prepare/1 tokenizer=bytes chunk=65536 val_every=10 val_offset=9 eval_tokens=65536";

/// Validation tokens scored by every run of the default task.
pub const EVAL_TOKENS: usize = 65_536;

/// The corpus is cut into chunks of this many bytes before the split.
pub const CHUNK: usize = 65_536;

/// The split of a corpus of `len` bytes into training and validation ranges, each cut moved to
/// `boundary(cut)` (identity for bytes, a character boundary for text).
pub fn split(
    len: usize,
    boundary: impl Fn(usize) -> usize,
) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let cuts: Vec<usize> = (0..len.div_ceil(CHUNK))
        .map(|i| boundary(i * CHUNK))
        .chain([len])
        .collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, w) in cuts.windows(2).enumerate() {
        let dst = if i % 10 == 9 { &mut val } else { &mut train };
        dst.push(w[0]..w[1]);
    }
    // A corpus under ten chunks still needs a validation part: its last tenth.
    if val.is_empty() {
        let cut = boundary(len - len / 10);
        return (
            std::iter::once(0..cut).collect(),
            std::iter::once(cut..len).collect(),
        );
    }
    (train, val)
}

/// Tokens of one corpus, split, with the byte length of each token id (for bits per byte).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    /// UTF-8 bytes per token id; byte-level tokens are one byte each.
    pub token_bytes: Vec<u32>,
    /// SHA-256 of the corpus bytes.
    pub cid: String,
}

impl Dataset {
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Byte-level tokens of `bytes`, split by the fixed rule ([`split`]).
    pub fn from_bytes(bytes: &[u8]) -> Dataset {
        let (train, val) = split(bytes.len(), |i| i);
        let tokens = |ranges: Vec<Range<usize>>| -> Vec<u32> {
            ranges
                .into_iter()
                .flat_map(|r| bytes[r].iter().map(|&b| b as u32))
                .collect()
        };
        Dataset {
            train: tokens(train),
            val: tokens(val),
            token_bytes: vec![1; 256],
            cid: sha256_hex(bytes),
        }
    }

    /// The built-in corpus.
    pub fn builtin() -> Dataset {
        Dataset::from_bytes(&builtin_corpus())
    }

    /// One batch of `batch` windows of `context + 1` tokens from the training split.
    pub fn train_batch(&self, rng: &mut SplitMix64, batch: usize, context: usize) -> Vec<u32> {
        let span = context + 1;
        let max_start = self.train.len().saturating_sub(span);
        let mut out = Vec::with_capacity(batch * span);
        for _ in 0..batch {
            let s = (rng.next_u64() % (max_start as u64 + 1)) as usize;
            out.extend_from_slice(&self.train[s..s + span]);
        }
        out
    }

    /// Fixed evaluation windows: non-overlapping `context + 1` spans from the start of the
    /// validation split, covering `eval_tokens` target tokens (or the whole split if shorter).
    pub fn eval_windows(&self, context: usize, eval_tokens: usize) -> Vec<Vec<u32>> {
        let span = context + 1;
        let want = eval_tokens.div_ceil(context);
        self.val
            .windows(span)
            .step_by(context)
            .take(want)
            .map(|w| w.to_vec())
            .collect()
    }
}

/// The vendored KJV file (see `corpus/README.md`).
const KJV_FILE: &[u8] = include_bytes!("../corpus/kjv.txt");
/// SHA-256 of [`KJV_FILE`] as copied from bible-lib 1.2.2.
pub const KJV_FILE_SHA256: &str =
    "4cff6dc9bcb71b6fa707730ba6e555fa1498cd9457ae54cb6fdf7d9524fc433e";

/// The built-in corpus bytes: every KJV verse's text, one per line, in canonical order.
pub fn builtin_corpus() -> Vec<u8> {
    let mut out = Vec::with_capacity(KJV_FILE.len());
    for line in KJV_FILE.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // "Book Chapter:Verse Text": the text starts after the first space past the colon.
        let text = line
            .iter()
            .position(|&b| b == b':')
            .and_then(|c| line[c..].iter().position(|&b| b == b' ').map(|s| c + s + 1))
            .map_or(line, |start| &line[start..]);
        out.extend_from_slice(text);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_corpus_is_the_pinned_bytes() {
        assert_eq!(sha256_hex(KJV_FILE), KJV_FILE_SHA256);
        let bytes = builtin_corpus();
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 31_103);
        assert_eq!(sha256_hex(&bytes), KJV_SHA256);
        assert!(bytes.starts_with(b"In the beginning God created the heaven and the earth.\n"));
    }

    #[test]
    fn split_is_fixed_and_disjoint() {
        let bytes: Vec<u8> = (0..30 * CHUNK).map(|i| (i % 251) as u8).collect();
        let d = Dataset::from_bytes(&bytes);
        assert_eq!(d.train.len() + d.val.len(), bytes.len());
        assert_eq!(d.val.len(), 3 * CHUNK);
        assert_eq!(d.val[0], bytes[9 * CHUNK] as u32);
        let small = Dataset::from_bytes(b"hello world, a tiny corpus of text");
        assert!(!small.val.is_empty() && !small.train.is_empty());
    }

    #[test]
    fn eval_windows_cover_the_requested_tokens() {
        let bytes: Vec<u8> = (0..20 * CHUNK).map(|i| (i % 200) as u8).collect();
        let d = Dataset::from_bytes(&bytes);
        let w = d.eval_windows(64, 1000);
        assert_eq!(w.len(), 16);
        assert!(w.iter().all(|w| w.len() == 65));
        assert_eq!(w[1][0], d.val[64]);
    }
}
