//! Feature hashing for the intent classifier. Owns turning tokens into
//! hashed feature keys, in three blocks:
//! - "word": unigrams and bigrams of the token terms (stems), the bigrams
//!   also with start and end marks ("<s> why", "arriv </s>");
//! - "pair": order-free pairs of terms further apart ("card … arrive"), the
//!   cheap second-order features that lift a linear model closest to what a
//!   kernel would do;
//! - "char": character n-grams over the words (across word boundaries, with
//!   boundary marks) and character 1- and 2-grams of Chinese text.
//!
//! Each term is hashed once and n-grams and pairs combine those hashes;
//! character n-grams are hashed incrementally, so extraction allocates
//! nothing once its [`FeatureScratch`] has grown. TF-IDF weighting and
//! normalisation happen in [`crate::intent`], which knows the idf table.

use crate::normalize::is_han;
use crate::tokens::{Token, TokenKind};
use serde::{Deserialize, Serialize};

/// Which block a feature belongs to; each block is L2-normalised on its own
/// and then weighted (see [`FeatureConfig::block_weights`]).
pub const WORD_BLOCK: u8 = 0;
pub const CHAR_BLOCK: u8 = 1;
pub const PAIR_BLOCK: u8 = 2;
/// Number of blocks.
pub const BLOCKS: usize = 3;

/// How features are made. Stored in the model file so a model is always
/// applied with the settings it was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeatureConfig {
    /// Keys are `bits`-bit hashes (at most 32; fewer buckets means more collisions).
    pub bits: u32,
    /// Longest word n-gram (1 = unigrams only).
    pub word_ngrams: usize,
    /// Word n-grams also see start and end marks.
    pub edge_marks: bool,
    /// Pair each term with those 2..=`skip_window` places after it,
    /// order-free; 0 or 1 turns pairs off.
    pub skip_window: usize,
    /// Only the first `max_pair_tokens` terms are paired, which bounds the
    /// quadratic cost of a very long message.
    pub max_pair_tokens: usize,
    /// A message of more than `long_message_terms` terms (0 = no limit)
    /// pairs each term only with those up to `long_skip_window` places
    /// after it: the longest messages cost the most pairs (741 for 40
    /// terms, 351 with a window of 10) and need them least.
    pub long_message_terms: usize,
    pub long_skip_window: usize,
    /// Character n-gram lengths for Latin words, inclusive (0 turns them off).
    pub char_min: usize,
    pub char_max: usize,
    /// Character n-grams run across word boundaries (over the words joined by
    /// one space) instead of within each word.
    pub cross_word_chars: bool,
    /// Character n-grams start only in the first `max_chars` characters of
    /// the text they are taken from, which bounds the cost of a long message.
    pub max_chars: usize,
    /// Longest character n-gram over runs of Han characters.
    pub han_ngrams: usize,
    /// Weight of the word block relative to the char block (weight 1).
    pub word_weight: f32,
    /// Weight of the pair block relative to the char block.
    pub pair_weight: f32,
    /// Term frequency `1 + ln(n)` for a feature occurring `n` times (costs
    /// a small hash set per message); otherwise every occurrence counts once.
    pub sublinear_tf: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            bits: 32,
            word_ngrams: 2,
            edge_marks: true,
            skip_window: 40,
            max_pair_tokens: 40,
            long_message_terms: 30,
            long_skip_window: 10,
            char_min: 2,
            char_max: 4,
            cross_word_chars: true,
            max_chars: 250,
            han_ngrams: 2,
            word_weight: 1.0,
            pair_weight: 1.2,
            sublinear_tf: true,
        }
    }
}

/// One hashed feature occurrence: (key, block). Key 0 is never produced.
pub type Hashed = (u32, u8);

/// Reusable buffers for [`FeatureConfig::extract_with`].
#[derive(Debug, Default)]
pub struct FeatureScratch {
    terms: Vec<u64>,
    text: String,
}

impl FeatureConfig {
    /// Appends the hashed features of a message to `out`.
    pub fn extract(&self, normalized: &str, tokens: &[Token], out: &mut Vec<Hashed>) {
        self.extract_with(normalized, tokens, &mut FeatureScratch::default(), out);
    }

    /// [`FeatureConfig::extract`] with caller-owned buffers (the hot path).
    pub fn extract_with(
        &self,
        normalized: &str,
        tokens: &[Token],
        scratch: &mut FeatureScratch,
        out: &mut Vec<Hashed>,
    ) {
        scratch.terms.clear();
        scratch.terms.extend(
            tokens
                .iter()
                .map(|t| hash_bytes(SEED_TERM, t.term.as_bytes())),
        );
        self.word_features(&scratch.terms, out);
        self.pair_features(&scratch.terms, out);
        if self.cross_word_chars {
            self.joined_char_features(tokens, &mut scratch.text, out);
        } else {
            self.word_char_features(tokens, &mut scratch.text, out);
        }
        self.han_features(normalized, out);
    }

    /// Block weights, indexed by block.
    pub fn block_weights(&self) -> [f32; BLOCKS] {
        [self.word_weight, 1.0, self.pair_weight]
    }

    fn key(&self, h: u64) -> u32 {
        let bits = self.bits.clamp(8, 32);
        let key = u32::try_from(mix(h) >> (64 - bits)).unwrap_or(u32::MAX);
        key.max(1)
    }

    fn word_features(&self, terms: &[u64], out: &mut Vec<Hashed>) {
        for &t in terms {
            out.push((self.key(combine(SEED_WORD, t)), WORD_BLOCK));
        }
        let edge = |i: usize| -> u64 {
            if i == 0 {
                SEED_START
            } else {
                SEED_END
            }
        };
        for n in 2..=self.word_ngrams {
            let seed = combine(SEED_WORD, n as u64);
            for window in terms.windows(n) {
                let h = window.iter().fold(seed, |h, &t| combine(h, t));
                out.push((self.key(h), WORD_BLOCK));
            }
            if self.edge_marks && terms.len() >= n - 1 {
                // "<s> w1 …" and "… wn </s>".
                let head = terms[..n - 1]
                    .iter()
                    .fold(combine(seed, edge(0)), |h, &t| combine(h, t));
                let tail = terms[terms.len() + 1 - n..]
                    .iter()
                    .fold(seed, |h, &t| combine(h, t));
                out.push((self.key(head), WORD_BLOCK));
                out.push((self.key(combine(tail, edge(1))), WORD_BLOCK));
            }
        }
    }

    fn pair_features(&self, terms: &[u64], out: &mut Vec<Hashed>) {
        let long = self.long_message_terms > 0 && terms.len() > self.long_message_terms;
        let window = if long {
            self.long_skip_window.min(self.skip_window)
        } else {
            self.skip_window
        };
        let terms = &terms[..terms.len().min(self.max_pair_tokens)];
        for (i, &a) in terms.iter().enumerate() {
            for &b in terms.iter().skip(i + 2).take(window.saturating_sub(1)) {
                let h = combine(combine(SEED_PAIR, a.min(b)), a.max(b));
                out.push((self.key(h), PAIR_BLOCK));
            }
        }
    }

    /// Character n-grams of `<w1 w2 … wn>`: the Latin words of the message.
    fn joined_char_features(&self, tokens: &[Token], text: &mut String, out: &mut Vec<Hashed>) {
        text.clear();
        text.push('<');
        for t in tokens.iter().filter(|t| t.kind == TokenKind::Word) {
            if text.len() > 1 {
                text.push(' ');
            }
            text.push_str(&t.surface);
        }
        if text.len() == 1 {
            return;
        }
        text.push('>');
        self.char_ngrams(text, out);
    }

    /// Character n-grams of each Latin word on its own, as `<word>`.
    fn word_char_features(&self, tokens: &[Token], text: &mut String, out: &mut Vec<Hashed>) {
        for t in tokens.iter().filter(|t| t.kind == TokenKind::Word) {
            text.clear();
            text.push('<');
            text.push_str(&t.surface);
            text.push('>');
            self.char_ngrams(text, out);
        }
    }

    /// Every n-gram of `char_min..=char_max` characters of `text`, each
    /// hashed by extending the hash of the n-gram one character shorter.
    fn char_ngrams(&self, text: &str, out: &mut Vec<Hashed>) {
        if self.char_min == 0 || self.char_max < self.char_min {
            return;
        }
        for (start, _) in text.char_indices().take(self.max_chars) {
            let mut h = SEED_CHAR;
            for (n, c) in text[start..].chars().take(self.char_max).enumerate() {
                h = hash_bytes(h, c.encode_utf8(&mut [0; 4]).as_bytes());
                if n + 1 >= self.char_min {
                    out.push((self.key(h), CHAR_BLOCK));
                }
            }
        }
    }

    fn han_features(&self, normalized: &str, out: &mut Vec<Hashed>) {
        if normalized.is_ascii() {
            return;
        }
        let mut rest = normalized;
        while let Some(start) = rest.find(is_han) {
            let tail = &rest[start..];
            let end = tail.find(|c: char| !is_han(c)).unwrap_or(tail.len());
            let run = &tail[..end];
            for (i, _) in run.char_indices() {
                let mut h = SEED_HAN;
                for c in run[i..].chars().take(self.han_ngrams) {
                    h = hash_bytes(h, c.encode_utf8(&mut [0; 4]).as_bytes());
                    out.push((self.key(h), CHAR_BLOCK));
                }
            }
            rest = &tail[end..];
        }
    }
}

const SEED_TERM: u64 = 0x8445_D61A_4E77_4912;
const SEED_WORD: u64 = 0x9E37_79B9_7F4A_7C15;
const SEED_CHAR: u64 = 0xC2B2_AE3D_27D4_EB4F;
const SEED_HAN: u64 = 0x1656_67B1_9E37_79F9;
const SEED_PAIR: u64 = 0x27D4_EB2F_1656_67C5;
const SEED_START: u64 = 0x5851_F42D_4C95_7F2D;
const SEED_END: u64 = 0x1405_7B7E_F767_814F;

/// FNV-1a over `bytes`, continuing from `h` (stable across platforms and
/// releases, unlike `std`'s hasher, because model files depend on it).
fn hash_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Order-dependent combination of two hashes.
fn combine(h: u64, x: u64) -> u64 {
    mix(h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(x)
}

/// Final avalanche (MurmurHash3's) so every bit of a key is well mixed.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Tokenizer;

    fn features_with(cfg: &FeatureConfig, text: &str) -> Vec<Hashed> {
        let tok = Tokenizer::new();
        let mut out = Vec::new();
        cfg.extract(text, &tok.tokenize(text), &mut out);
        out
    }

    fn features(text: &str) -> Vec<Hashed> {
        features_with(&FeatureConfig::default(), text)
    }

    fn count(f: &[Hashed], block: u8) -> usize {
        f.iter().filter(|(_, b)| *b == block).count()
    }

    #[test]
    fn english_has_every_block() {
        let f = features("where is my order");
        // 4 unigrams + 3 bigrams + "<s> where" + "order </s>".
        assert_eq!(count(&f, WORD_BLOCK), 9);
        // where–my, where–order, is–order.
        assert_eq!(count(&f, PAIR_BLOCK), 3);
        // "<where is my order>" has 19 characters: 18 + 17 + 16 grams of 2..=4.
        assert_eq!(count(&f, CHAR_BLOCK), 51);
    }

    #[test]
    fn pairs_are_order_free_and_bounded() {
        let cfg = FeatureConfig {
            skip_window: 3,
            word_ngrams: 1,
            char_min: 0,
            ..FeatureConfig::default()
        };
        let run = |text: &str| {
            let mut out = features_with(&cfg, text);
            out.sort_unstable();
            out
        };
        // 3 unigrams + 1 pair (first, third).
        assert_eq!(run("card never arrived").len(), 4);
        assert_eq!(run("card x arrived"), run("arrived x card"));
        let long = "a b c d e f g h i j k l m n o p q r s t u v w x y z ".repeat(4);
        let capped = FeatureConfig {
            max_pair_tokens: 10,
            ..FeatureConfig::default()
        };
        // Pairs 2..=9 places apart among the first 10 terms: 8 + 7 + … + 1.
        assert_eq!(count(&features_with(&capped, &long), PAIR_BLOCK), 36);
    }

    #[test]
    fn long_messages_pair_nearby_terms_only() {
        let cfg = FeatureConfig {
            long_message_terms: 5,
            long_skip_window: 3,
            word_ngrams: 1,
            char_min: 0,
            ..FeatureConfig::default()
        };
        // 5 terms: every pair 2 or more places apart, 3 + 2 + 1.
        assert_eq!(count(&features_with(&cfg, "a b c d e"), PAIR_BLOCK), 6);
        // 6 terms is long: pairs 2 or 3 places apart only, 2 + 2 + 2 + 1.
        assert_eq!(count(&features_with(&cfg, "a b c d e f"), PAIR_BLOCK), 7);
    }

    #[test]
    fn per_word_char_ngrams_stay_inside_words() {
        let cfg = FeatureConfig {
            cross_word_chars: false,
            ..FeatureConfig::default()
        };
        // "<ab>" has 3 + 2 + 1 grams of 2..=4 characters, twice.
        assert_eq!(count(&features_with(&cfg, "ab ab"), CHAR_BLOCK), 12);
    }

    #[test]
    fn hashing_is_stable() {
        assert_eq!(features("refund"), features("refund"));
        assert_ne!(features("refund"), features("return"));
        assert!(features("refund").iter().all(|(k, _)| *k != 0));
    }

    #[test]
    fn chinese_gets_char_ngrams() {
        let f = features("退货");
        // 2 unigrams + 1 bigram of characters.
        assert_eq!(count(&f, CHAR_BLOCK), 3);
    }

    #[test]
    fn keys_fit_the_space() {
        let cfg = FeatureConfig {
            bits: 8,
            ..FeatureConfig::default()
        };
        assert!(features_with(&cfg, "hello world")
            .iter()
            .all(|(k, _)| *k < 256));
    }
}
