//! Stage 3: tokens. Owns splitting normalised text into words: Unicode word
//! boundaries and Snowball stemming for Latin-script text, `jieba-rs` for
//! Chinese. The jieba dictionary takes a noticeable time to load, so a
//! [`Tokenizer`] is built once (inside the [`crate::Pipeline`]) and shared;
//! nothing on the hot path loads anything.

use crate::normalize::is_han;
use jieba_rs::Jieba;
use rust_stemmers::{Algorithm, Stemmer};
use std::cell::RefCell;
use std::collections::HashMap;
use unicode_segmentation::UnicodeSegmentation;

/// Words whose stems each thread remembers (a few hundred KiB at most).
const STEM_CACHE_SIZE: usize = 8192;

thread_local! {
    static STEMS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// What a token is made of; the featurizer treats each kind differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Letters of an alphabetic script (English and friends).
    Word,
    /// Han characters (a jieba word).
    Han,
    /// Digits (possibly mixed with letters, like `sb123`).
    Number,
}

/// One token: its normalised surface form and the form used as a word feature
/// (the stem for words, a shape like `#6` for numbers, the word itself for Han).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub surface: String,
    pub term: String,
    pub kind: TokenKind,
}

/// Splits normalised text into [`Token`]s. `Send + Sync`; build once.
pub struct Tokenizer {
    jieba: Jieba,
    stemmer: Stemmer,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer {
    /// Loads jieba's embedded dictionary (the slow part) and the English stemmer.
    pub fn new() -> Self {
        Tokenizer {
            jieba: Jieba::new(),
            stemmer: Stemmer::create(Algorithm::English),
        }
    }

    /// Tokens of `normalized` (output of [`crate::normalize::normalize`]).
    pub fn tokenize(&self, normalized: &str) -> Vec<Token> {
        if normalized.is_ascii() {
            // Same words as UAX #29 gives for ASCII, without its state machine.
            normalized
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
                .filter(|w| w.bytes().any(|b| b.is_ascii_alphanumeric()))
                .map(|w| self.latin_token(w))
                .collect()
        } else if normalized.chars().any(is_han) {
            self.tokenize_mixed(normalized)
        } else {
            normalized
                .unicode_words()
                .map(|w| self.latin_token(w))
                .collect()
        }
    }

    /// Chinese (possibly with Latin words inside): jieba does the cutting.
    fn tokenize_mixed(&self, normalized: &str) -> Vec<Token> {
        let mut out = Vec::new();
        for piece in self.jieba.cut(normalized, true) {
            let piece = piece.word;
            if piece.chars().all(is_han) {
                out.push(Token {
                    surface: piece.to_owned(),
                    term: piece.to_owned(),
                    kind: TokenKind::Han,
                });
            } else {
                out.extend(piece.unicode_words().map(|w| self.latin_token(w)));
            }
        }
        out
    }

    fn latin_token(&self, word: &str) -> Token {
        let word = word.trim_matches('\'');
        if word.chars().any(|c| c.is_ascii_digit()) {
            return Token {
                surface: word.to_owned(),
                term: number_shape(word),
                kind: TokenKind::Number,
            };
        }
        Token {
            surface: word.to_owned(),
            term: self.stem(word),
            kind: TokenKind::Word,
        }
    }

    /// The Snowball stem of `word`, from a per-thread cache: chat repeats a
    /// small vocabulary, and the stemmer costs several times a lookup.
    fn stem(&self, word: &str) -> String {
        STEMS.with(|cell| {
            let Ok(mut cache) = cell.try_borrow_mut() else {
                return self.stemmer.stem(word).into_owned();
            };
            if let Some(stem) = cache.get(word) {
                return stem.clone();
            }
            let stem = self.stemmer.stem(word).into_owned();
            if cache.len() >= STEM_CACHE_SIZE {
                // Bounded memory: start over rather than track recency.
                cache.clear();
            }
            cache.insert(word.to_owned(), stem.clone());
            stem
        })
    }
}

/// `#<digits>` for a plain number, `#a<len>` for letters mixed with digits:
/// order numbers generalise by shape, not by value.
fn number_shape(word: &str) -> String {
    let len = word.chars().count().min(12);
    if word.chars().all(|c| c.is_ascii_digit()) {
        format!("#{len}")
    } else {
        format!("#a{len}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &Tokenizer, text: &str) -> Vec<String> {
        t.tokenize(text).into_iter().map(|t| t.term).collect()
    }

    #[test]
    fn english_words_are_stemmed() {
        let t = Tokenizer::new();
        assert_eq!(
            terms(&t, "cancelling my orders, please"),
            ["cancel", "my", "order", "pleas"]
        );
    }

    #[test]
    fn ascii_fast_path_agrees_with_unicode_words() {
        let t = Tokenizer::new();
        let text = "hi, it's me again: order #583920 isn't here... (why?) 'quoted'";
        let slow: Vec<Token> = text.unicode_words().map(|w| t.latin_token(w)).collect();
        assert_eq!(t.tokenize(text), slow);
    }

    #[test]
    fn numbers_become_shapes() {
        let t = Tokenizer::new();
        assert_eq!(
            terms(&t, "order 123456 and sb12345"),
            ["order", "#6", "and", "#a7"]
        );
    }

    #[test]
    fn chinese_is_cut_into_words() {
        let t = Tokenizer::new();
        let tokens = t.tokenize("我想退货,订单号123456");
        let han: Vec<_> = tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Han)
            .map(|t| t.surface.as_str())
            .collect();
        assert!(han.contains(&"退货"), "{han:?}");
        assert!(tokens.iter().any(|t| t.term == "#6"));
    }

    #[test]
    fn tokenizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tokenizer>();
    }
}
