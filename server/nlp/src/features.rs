//! Feature hashing for the intent classifier. Owns turning tokens into
//! hashed feature ids: word unigrams and bigrams of the token terms (the
//! "word" block) and character n-grams of each Latin word, padded with
//! boundary marks, plus character 1- and 2-grams of Chinese text (the "char"
//! block). TF-IDF weighting and normalisation happen in [`crate::intent`],
//! which knows the idf table.

use crate::normalize::is_han;
use crate::tokens::{Token, TokenKind};
use serde::{Deserialize, Serialize};

/// Which block a feature belongs to; each block is L2-normalised on its own.
pub const WORD_BLOCK: u8 = 0;
pub const CHAR_BLOCK: u8 = 1;

/// How features are made. Stored in the model file so a model is always
/// applied with the settings it was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeatureConfig {
    /// Hash space is `2^bits` buckets.
    pub bits: u32,
    /// Longest word n-gram (1 = unigrams only).
    pub word_ngrams: usize,
    /// Also pair each word with those 2..=`skip_window` places after it,
    /// order-free ("card … arrive"); 0 or 1 turns this off.
    pub skip_window: usize,
    /// Character n-gram lengths for Latin words, inclusive.
    pub char_min: usize,
    pub char_max: usize,
    /// Longest character n-gram over runs of Han characters.
    pub han_ngrams: usize,
    /// Weight of the word block relative to the char block.
    pub word_weight: f32,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            bits: 20,
            word_ngrams: 2,
            skip_window: 4,
            char_min: 2,
            char_max: 5,
            han_ngrams: 2,
            word_weight: 1.3,
        }
    }
}

/// One hashed feature occurrence: (bucket, block).
pub type Hashed = (u32, u8);

impl FeatureConfig {
    /// Appends the hashed features of a message to `out`.
    pub fn extract(&self, normalized: &str, tokens: &[Token], out: &mut Vec<Hashed>) {
        self.word_features(tokens, out);
        self.char_features(tokens, out);
        self.han_features(normalized, out);
    }

    fn bucket(&self, h: u64) -> u32 {
        let mask = (1u64 << self.bits) - 1;
        u32::try_from(mix(h) & mask).unwrap_or(u32::MAX)
    }

    fn word_features(&self, tokens: &[Token], out: &mut Vec<Hashed>) {
        for n in 1..=self.word_ngrams {
            for window in tokens.windows(n) {
                let mut h = hash_bytes(SEED_WORD ^ u64::try_from(n).unwrap_or(0), b"");
                for t in window {
                    h = hash_bytes(h, t.term.as_bytes());
                    h = hash_bytes(h, b"\x1f");
                }
                out.push((self.bucket(h), WORD_BLOCK));
            }
        }
        for (i, a) in tokens.iter().enumerate() {
            for b in tokens
                .iter()
                .skip(i + 2)
                .take(self.skip_window.saturating_sub(1))
            {
                let (x, y) = if a.term <= b.term { (a, b) } else { (b, a) };
                let h = hash_bytes(hash_bytes(SEED_SKIP, x.term.as_bytes()), b"\x1e");
                out.push((self.bucket(hash_bytes(h, y.term.as_bytes())), WORD_BLOCK));
            }
        }
    }

    fn char_features(&self, tokens: &[Token], out: &mut Vec<Hashed>) {
        let mut padded = String::new();
        let mut bounds: Vec<usize> = Vec::new();
        for t in tokens.iter().filter(|t| t.kind == TokenKind::Word) {
            padded.clear();
            padded.push('<');
            padded.push_str(&t.surface);
            padded.push('>');
            bounds.clear();
            bounds.extend(padded.char_indices().map(|(i, _)| i));
            bounds.push(padded.len());
            let chars = bounds.len() - 1;
            for n in self.char_min..=self.char_max.min(chars) {
                for start in 0..=(chars - n) {
                    let gram = &padded[bounds[start]..bounds[start + n]];
                    out.push((
                        self.bucket(hash_bytes(SEED_CHAR, gram.as_bytes())),
                        CHAR_BLOCK,
                    ));
                }
            }
        }
    }

    fn han_features(&self, normalized: &str, out: &mut Vec<Hashed>) {
        let mut run: Vec<char> = Vec::new();
        for c in normalized.chars().chain(std::iter::once(' ')) {
            if is_han(c) {
                run.push(c);
                continue;
            }
            for n in 1..=self.han_ngrams.min(run.len()) {
                for w in run.windows(n) {
                    let mut h = SEED_HAN;
                    for c in w {
                        h = hash_bytes(h, c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    out.push((self.bucket(h), CHAR_BLOCK));
                }
            }
            run.clear();
        }
    }
}

const SEED_WORD: u64 = 0x9E37_79B9_7F4A_7C15;
const SEED_CHAR: u64 = 0xC2B2_AE3D_27D4_EB4F;
const SEED_HAN: u64 = 0x1656_67B1_9E37_79F9;
const SEED_SKIP: u64 = 0x27D4_EB2F_1656_67C5;

/// FNV-1a over `bytes`, continuing from `h` (stable across platforms and
/// releases, unlike `std`'s hasher, because model files depend on it).
fn hash_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    if h == 0 {
        h = 0xcbf2_9ce4_8422_2325;
    }
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Final avalanche so the low bits used for buckets are well mixed.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Tokenizer;

    fn features(text: &str) -> Vec<Hashed> {
        let tok = Tokenizer::new();
        let mut out = Vec::new();
        FeatureConfig::default().extract(text, &tok.tokenize(text), &mut out);
        out
    }

    #[test]
    fn english_has_both_blocks() {
        let f = features("where is my order");
        // 4 unigrams + 3 bigrams + 3 skip pairs (where–my, where–order, is–order).
        assert_eq!(f.iter().filter(|(_, b)| *b == WORD_BLOCK).count(), 10);
        assert!(f.iter().any(|(_, b)| *b == CHAR_BLOCK));
    }

    #[test]
    fn skip_pairs_are_order_free() {
        let tok = Tokenizer::new();
        let cfg = FeatureConfig {
            skip_window: 3,
            word_ngrams: 1,
            char_max: 0,
            ..FeatureConfig::default()
        };
        let run = |text: &str| {
            let mut out = Vec::new();
            cfg.extract(text, &tok.tokenize(text), &mut out);
            out.sort_unstable();
            out
        };
        // 3 unigrams + 1 pair (first, third).
        assert_eq!(run("card never arrived").len(), 4);
        assert_eq!(run("card x arrived"), {
            let mut v = run("arrived x card");
            v.sort_unstable();
            v
        });
    }

    #[test]
    fn hashing_is_stable() {
        assert_eq!(features("refund"), features("refund"));
        assert_ne!(features("refund"), features("return"));
    }

    #[test]
    fn chinese_gets_char_ngrams() {
        let f = features("退货");
        // 2 unigrams + 1 bigram of characters.
        assert_eq!(f.iter().filter(|(_, b)| *b == CHAR_BLOCK).count(), 3);
    }

    #[test]
    fn buckets_fit_the_space() {
        let cfg = FeatureConfig {
            bits: 8,
            ..FeatureConfig::default()
        };
        let tok = Tokenizer::new();
        let mut out = Vec::new();
        cfg.extract("hello world", &tok.tokenize("hello world"), &mut out);
        assert!(out.iter().all(|(b, _)| *b < 256));
    }
}
