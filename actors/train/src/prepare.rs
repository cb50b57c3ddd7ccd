//! How a corpus becomes tokens. A task's `prepare_cid` is the SHA-256 of a *preparation
//! document*; two kinds exist:
//!
//! * byte-level tokens (the default task): the document is [`PREPARE_SPEC`], nothing else;
//! * byte-level BPE (`spored prepare --bpe N`): a header line [`bpe_header`] naming the vocabulary
//!   size, a newline, then the tokenizer as the `tokenizers` crate serialises it (JSON).
//!   Nodes keep the document as `<data dir>/datasets/<prepare_cid>.prepare`.
//!
//! Both split the corpus the same way: 64 KiB chunks, every tenth (index ≡ 9 mod 10) for
//! validation, the last tenth when there are fewer than ten chunks. BPE moves each cut back to
//! the nearest UTF-8 character boundary, encodes every chunk on its own, and learns its merges
//! from the training chunks only. BPE tokens are bytes merged by the byte-level alphabet, so each
//! token stands for a fixed number of corpus bytes and val_bpb divides by exactly the bytes the
//! scored tokens cover.

use std::ops::Range;
use std::path::Path;

use spore_spec::crypto::sha256_hex;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
    TokenizerBuilder,
};

use crate::data::{split, Dataset, PREPARE_SPEC};

/// Smallest and largest BPE vocabulary `spored prepare --bpe` accepts.
pub const BPE_VOCAB: (usize, usize) = (257, 65_536);

/// First line of a BPE preparation document.
pub fn bpe_header(vocab_size: usize) -> String {
    format!(
        "spored-prepare/2 tokenizer=bpe vocab={vocab_size} chunk=65536 val_every=10 val_offset=9 eval_tokens=65536"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("BPE needs UTF-8 text; the corpus is not valid UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("the BPE vocabulary must be {min}–{max} tokens, not {0}", min = BPE_VOCAB.0, max = BPE_VOCAB.1)]
    VocabRange(usize),
    #[error("not a preparation document this node knows: {0}")]
    Document(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

fn tokenizer_error(e: impl std::fmt::Display) -> PrepareError {
    PrepareError::Tokenizer(e.to_string())
}

enum Tokens {
    Bytes,
    Bpe {
        tokenizer: Box<Tokenizer>,
        /// Corpus bytes per token id.
        token_bytes: Vec<u32>,
    },
}

/// One way to turn a corpus into a [`Dataset`]; `cid()` is a task's `prepare_cid`.
pub struct Preparation {
    tokens: Tokens,
    document: Vec<u8>,
    cid: String,
}

impl Preparation {
    /// Byte-level tokens: the default task's preparation.
    pub fn bytes() -> Preparation {
        Preparation {
            tokens: Tokens::Bytes,
            document: PREPARE_SPEC.as_bytes().to_vec(),
            cid: sha256_hex(PREPARE_SPEC.as_bytes()),
        }
    }

    /// Learns a byte-level BPE of (at most) `vocab_size` tokens from the training chunks of
    /// `corpus`. The result can be smaller when the corpus has too few repeated pairs.
    pub fn train_bpe(corpus: &[u8], vocab_size: usize) -> Result<Preparation, PrepareError> {
        if !(BPE_VOCAB.0..=BPE_VOCAB.1).contains(&vocab_size) {
            return Err(PrepareError::VocabRange(vocab_size));
        }
        let text =
            std::str::from_utf8(corpus).map_err(|e| PrepareError::NotUtf8(e.valid_up_to()))?;
        let (train, _) = split(text.len(), |i| floor_char_boundary(text, i));
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut tokenizer = TokenizerBuilder::<
            BPE,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true).into()))
        .with_decoder(Some(ByteLevel::default().into()))
        .build()
        .map_err(tokenizer_error)?;
        tokenizer
            .train(&mut trainer, train.into_iter().map(|r| &text[r]))
            .map_err(tokenizer_error)?;
        let tokenizer: Tokenizer = tokenizer.into();
        let json = tokenizer.to_string(false).map_err(tokenizer_error)?;
        let vocab = tokenizer.get_vocab_size(false);
        let mut document = bpe_header(vocab).into_bytes();
        document.push(b'\n');
        document.extend_from_slice(json.as_bytes());
        Preparation::from_document(document)
    }

    /// Reads a preparation document (the bytes whose SHA-256 is the `prepare_cid`).
    pub fn from_document(document: Vec<u8>) -> Result<Preparation, PrepareError> {
        if document == PREPARE_SPEC.as_bytes() {
            return Ok(Preparation::bytes());
        }
        let bad = |why: &str| PrepareError::Document(why.to_string());
        let newline = document
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("no header line"))?;
        let header = std::str::from_utf8(&document[..newline]).map_err(|_| bad("header"))?;
        let vocab: usize = header
            .split(' ')
            .find_map(|f| f.strip_prefix("vocab="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("the header names no vocabulary size"))?;
        if header != bpe_header(vocab) {
            return Err(PrepareError::Document(format!("unknown header {header:?}")));
        }
        let json = std::str::from_utf8(&document[newline + 1..]).map_err(|_| bad("not UTF-8"))?;
        let tokenizer: Tokenizer = json.parse().map_err(tokenizer_error)?;
        if tokenizer.get_vocab_size(true) != vocab {
            return Err(PrepareError::Document(format!(
                "the header says {vocab} tokens, the tokenizer has {}",
                tokenizer.get_vocab_size(true)
            )));
        }
        let alphabet = ByteLevel::alphabet();
        let mut token_bytes = Vec::with_capacity(vocab);
        for id in 0..vocab as u32 {
            let token = tokenizer
                .id_to_token(id)
                .ok_or_else(|| PrepareError::Document(format!("token id {id} is missing")))?;
            // Every character of a byte-level token stands for one corpus byte.
            if token.is_empty() || !token.chars().all(|c| alphabet.contains(&c)) {
                return Err(PrepareError::Document(format!(
                    "token {id} ({token:?}) is not made of byte-level characters"
                )));
            }
            token_bytes.push(token.chars().count() as u32);
        }
        let cid = sha256_hex(&document);
        Ok(Preparation {
            tokens: Tokens::Bpe {
                tokenizer: Box::new(tokenizer),
                token_bytes,
            },
            document,
            cid,
        })
    }

    /// The task's `prepare_cid`: SHA-256 of [`Self::document`].
    pub fn cid(&self) -> &str {
        &self.cid
    }

    pub fn document(&self) -> &[u8] {
        &self.document
    }

    pub fn vocab_size(&self) -> usize {
        match &self.tokens {
            Tokens::Bytes => 256,
            Tokens::Bpe { token_bytes, .. } => token_bytes.len(),
        }
    }

    /// `corpus` as tokens, through a token cache in `cache_dir` for BPE: tokenizing a large
    /// corpus takes a while and would otherwise be repeated by every run. The cache file is
    /// named by the corpus's and this preparation's SHA-256 and carries a checksum; a missing or
    /// damaged one is rebuilt (a failure to write it only costs the next run the same time).
    pub fn dataset_cached(&self, corpus: &[u8], cache_dir: &Path) -> Result<Dataset, PrepareError> {
        let Tokens::Bpe { token_bytes, .. } = &self.tokens else {
            return self.dataset(corpus);
        };
        let cid = sha256_hex(corpus);
        let path = cache_dir.join(format!("{cid}.{}.tokens", self.cid));
        if let Some((train, val)) = std::fs::read(&path).ok().and_then(|b| read_tokens(&b)) {
            return Ok(Dataset {
                train,
                val,
                token_bytes: token_bytes.clone(),
                cid,
            });
        }
        let data = self.dataset(corpus)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, write_tokens(&data.train, &data.val)).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
        let _ = std::fs::remove_file(&tmp);
        Ok(data)
    }

    /// `corpus` as tokens, split into training and validation.
    pub fn dataset(&self, corpus: &[u8]) -> Result<Dataset, PrepareError> {
        let (tokenizer, token_bytes) = match &self.tokens {
            Tokens::Bytes => return Ok(Dataset::from_bytes(corpus)),
            Tokens::Bpe {
                tokenizer,
                token_bytes,
            } => (tokenizer, token_bytes),
        };
        let text =
            std::str::from_utf8(corpus).map_err(|e| PrepareError::NotUtf8(e.valid_up_to()))?;
        let (train, val) = split(text.len(), |i| floor_char_boundary(text, i));
        let encode = |ranges: Vec<Range<usize>>| -> Result<Vec<u32>, PrepareError> {
            let chunks: Vec<&str> = ranges.into_iter().map(|r| &text[r]).collect();
            let encodings = tokenizer
                .encode_batch(chunks, false)
                .map_err(tokenizer_error)?;
            Ok(encodings
                .iter()
                .flat_map(|e| e.get_ids().iter().copied())
                .collect())
        };
        Ok(Dataset {
            train: encode(train)?,
            val: encode(val)?,
            token_bytes: token_bytes.clone(),
            cid: sha256_hex(corpus),
        })
    }
}

impl std::fmt::Debug for Preparation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preparation")
            .field("cid", &self.cid)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

const TOKENS_MAGIC: &[u8] = b"spored-tokens/1\n";

/// The token cache: magic, train and validation lengths (u64 LE), the tokens (u32 LE), then the
/// SHA-256 of everything before it.
fn write_tokens(train: &[u32], val: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TOKENS_MAGIC.len() + 16 + 4 * (train.len() + val.len()) + 32);
    out.extend_from_slice(TOKENS_MAGIC);
    out.extend_from_slice(&(train.len() as u64).to_le_bytes());
    out.extend_from_slice(&(val.len() as u64).to_le_bytes());
    for t in train.iter().chain(val) {
        out.extend_from_slice(&t.to_le_bytes());
    }
    let sum = spore_spec::crypto::sha256(&out);
    out.extend_from_slice(&sum);
    out
}

fn read_tokens(bytes: &[u8]) -> Option<(Vec<u32>, Vec<u32>)> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if spore_spec::crypto::sha256(body) != sum {
        return None;
    }
    let rest = body.strip_prefix(TOKENS_MAGIC)?;
    let n_train = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
    let n_val = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?) as usize;
    let tokens = rest.get(16..)?;
    if tokens.len() != 4 * n_train.checked_add(n_val)? {
        return None;
    }
    let mut all = tokens
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let train = all.by_ref().take(n_train).collect();
    Some((train, all.collect()))
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::CHUNK;

    /// 300 KB of the built-in corpus with some multi-byte characters in every line.
    fn corpus() -> Vec<u8> {
        let kjv = crate::data::builtin_corpus();
        let text = std::str::from_utf8(&kjv[..300_000]).unwrap();
        text.replace('\n', " — créé 日本\n").into_bytes()
    }

    #[test]
    fn bytes_split_keeps_the_default_tasks_tokens() {
        let bytes: Vec<u8> = (0..23 * CHUNK + 77).map(|i| (i % 251) as u8).collect();
        let d = Preparation::bytes().dataset(&bytes).unwrap();
        let (train, val) = split(bytes.len(), |i| i);
        let flat = |r: &[Range<usize>]| -> Vec<u32> {
            r.iter()
                .flat_map(|r| bytes[r.clone()].iter().map(|&b| b as u32))
                .collect()
        };
        assert_eq!(d.train, flat(&train));
        assert_eq!(d.val, flat(&val));
        assert_eq!(
            Preparation::bytes().cid(),
            sha256_hex(PREPARE_SPEC.as_bytes())
        );
    }

    #[test]
    fn bpe_round_trips_through_its_document_and_covers_every_byte() {
        let text = corpus();
        let prep = Preparation::train_bpe(&text, 400).unwrap();
        assert_eq!(prep.vocab_size(), 400);
        let again = Preparation::from_document(prep.document().to_vec()).unwrap();
        assert_eq!(again.cid(), prep.cid());
        let d = again.dataset(&text).unwrap();
        // Merges shorten the text, and the scored tokens cover exactly the corpus bytes.
        assert!(d.train.len() + d.val.len() < text.len() / 2);
        let covered: u64 = d
            .train
            .iter()
            .chain(&d.val)
            .map(|&t| d.token_bytes[t as usize] as u64)
            .sum();
        assert_eq!(covered, text.len() as u64);
        assert!(d.train.iter().all(|&t| (t as usize) < prep.vocab_size()));
    }

    #[test]
    fn the_token_cache_is_used_and_a_damaged_one_rebuilt() {
        let text = corpus();
        let prep = Preparation::train_bpe(&text, 300).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fresh = prep.dataset_cached(&text, dir.path()).unwrap();
        let path = dir
            .path()
            .join(format!("{}.{}.tokens", sha256_hex(&text), prep.cid()));
        let cached = prep.dataset_cached(&text, dir.path()).unwrap();
        assert_eq!((&cached.train, &cached.val), (&fresh.train, &fresh.val));
        // A flipped token is caught by the checksum and the cache rebuilt.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[TOKENS_MAGIC.len() + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_tokens(&bytes).is_none());
        let rebuilt = prep.dataset_cached(&text, dir.path()).unwrap();
        assert_eq!(rebuilt.train, fresh.train);
        assert!(read_tokens(&std::fs::read(&path).unwrap()).is_some());
    }

    #[test]
    fn bad_input_gets_a_reason() {
        let err = Preparation::train_bpe(&[b'a', 0xff, b'b'], 300).unwrap_err();
        assert!(
            err.to_string().contains("not valid UTF-8 at byte 1"),
            "{err}"
        );
        let err = Preparation::train_bpe(b"abc", 100).unwrap_err();
        assert!(err.to_string().contains("257"), "{err}");
        let prep = Preparation::train_bpe(&corpus(), 300).unwrap();
        let mut doc = prep.document().to_vec();
        let header = bpe_header(300);
        doc.splice(..header.len(), bpe_header(301).into_bytes());
        let err = Preparation::from_document(doc).unwrap_err();
        assert!(err.to_string().contains("says 301"), "{err}");
        let err = Preparation::from_document(b"hello".to_vec()).unwrap_err();
        assert!(err.to_string().contains("no header"), "{err}");
    }
}
