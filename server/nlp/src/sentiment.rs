//! Stage 5: sentiment. Owns the score in -1..=1 and its label.
//!
//! English uses VADER (the `vader-parity` crate: the original Hutto & Gilbert
//! lexicon and rules, MIT). Chinese uses Switchboard's own lexicon
//! (`data/sentiment_zh.txt`, written for this project and MIT like the rest
//! of it) over jieba words, with VADER's ideas applied: negators flip and
//! damp a word, intensifiers boost it, `!` adds emphasis, and the sum is
//! squashed with VADER's `x / sqrt(x² + 15)`.
//!
//! VADER allocates and hashes every word (and looks every character up in
//! its emoji and casing tables), yet most chat messages hold no word of its
//! lexicon, and then its compound score is exactly 0: only lexicon words get
//! a valence, and every other rule scales valences already there. So an
//! ASCII message is first split into words the way VADER splits it and the
//! words looked up in a copy of its lexicon's words (`data/vader_words.txt`);
//! VADER runs only when one of them is there.

use crate::tokens::{Token, TokenKind};
use std::collections::{HashMap, HashSet};
use switchboard_protocol::model::SentimentLabel;
use vader_parity::SentimentIntensityAnalyzer;

const ZH_LEXICON: &str = include_str!("../data/sentiment_zh.txt");

/// The words of VADER's lexicon (`vader_lexicon.txt` of vaderSentiment 3.3.2,
/// as `vader-parity` 0.1 embeds it; MIT), one a line, valences left out.
const VADER_WORDS: &str = include_str!("../data/vader_words.txt");

/// Longer than every entry of [`VADER_WORDS`] (19 bytes): longer words need no lookup.
const VADER_WORD_MAX: usize = 32;

/// Scores at or past ±this are labelled positive / negative (VADER's convention).
pub const LABEL_THRESHOLD: f32 = 0.05;

const ZH_NEGATORS: &[&str] = &[
    "不", "没", "没有", "别", "无", "非", "不是", "并不", "从不", "未",
];
const ZH_BOOSTERS: &[(&str, f32)] = &[
    ("很", 0.3),
    ("非常", 0.5),
    ("太", 0.5),
    ("特别", 0.5),
    ("超级", 0.6),
    ("极其", 0.6),
    ("真", 0.3),
    ("真的", 0.3),
    ("十分", 0.5),
    ("有点", -0.3),
    ("有些", -0.3),
];

/// Scores text. Built once (the lexicons are parsed here).
pub struct SentimentAnalyzer {
    vader: SentimentIntensityAnalyzer,
    /// The words of VADER's lexicon, to skip VADER when a message has none.
    vader_words: HashSet<Box<str>>,
    zh: HashMap<String, f32>,
}

impl Default for SentimentAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl SentimentAnalyzer {
    pub fn new() -> Self {
        SentimentAnalyzer {
            vader: SentimentIntensityAnalyzer::new(),
            vader_words: VADER_WORDS.lines().map(Box::from).collect(),
            zh: parse_lexicon(ZH_LEXICON),
        }
    }

    /// (score, label) of a message: `text` is the original (VADER reads case
    /// and punctuation), `tokens` the pipeline's tokens.
    pub fn score(&self, language: &str, text: &str, tokens: &[Token]) -> (f32, SentimentLabel) {
        let score = if language == "zh" {
            self.score_zh(text, tokens)
        } else if !self.may_have_vader_words(text) {
            0.0
        } else {
            // f64 → f32 loses only precision VADER does not have (4 decimals).
            self.vader.polarity_scores(text).compound as f32
        };
        (score, label(score))
    }

    /// False only when VADER would find no word of its lexicon in `text`, so
    /// its compound score would be 0. Splits as VADER does (Python's
    /// `str.split()`, then leading and trailing ASCII punctuation stripped
    /// from words that keep more than two characters), for ASCII text only:
    /// other text may hold emojis, which VADER turns into words, and needs
    /// Python's casing tables to lower-case.
    fn may_have_vader_words(&self, text: &str) -> bool {
        if !text.is_ascii() {
            return true;
        }
        let mut lower = [0u8; VADER_WORD_MAX];
        text.split(|c: char| c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}'))
            .filter(|w| !w.is_empty())
            .any(|w| {
                let stripped = w.trim_matches(|c: char| c.is_ascii_punctuation());
                let word = if stripped.len() <= 2 { w } else { stripped };
                let Some(buf) = lower.get_mut(..word.len()) else {
                    return false;
                };
                buf.copy_from_slice(word.as_bytes());
                buf.make_ascii_lowercase();
                std::str::from_utf8(buf).is_ok_and(|w| self.vader_words.contains(w))
            })
    }

    fn score_zh(&self, text: &str, tokens: &[Token]) -> f32 {
        let mut sum = 0.0f32;
        for (i, t) in tokens.iter().enumerate() {
            if t.kind != TokenKind::Han {
                continue;
            }
            let Some(&valence) = self.zh.get(t.surface.as_str()) else {
                continue;
            };
            sum += valence * modifier(&tokens[i.saturating_sub(3)..i]);
        }
        let bangs = text
            .chars()
            .filter(|c| *c == '!' || *c == '！')
            .count()
            .min(4);
        if sum != 0.0 {
            sum += sum.signum() * 0.3 * bangs as f32;
        }
        sum / (sum * sum + 15.0).sqrt()
    }
}

/// How the up-to-three words before a lexicon word change it: a negator
/// flips it (and damps it, as VADER does), a booster scales it.
fn modifier(before: &[Token]) -> f32 {
    let mut m = 1.0;
    for t in before {
        let w = t.surface.as_str();
        if ZH_NEGATORS.contains(&w) {
            m *= -0.74;
        } else if let Some((_, b)) = ZH_BOOSTERS.iter().find(|(b, _)| *b == w) {
            m *= 1.0 + b;
        }
    }
    m
}

/// The label of a score.
pub fn label(score: f32) -> SentimentLabel {
    if score >= LABEL_THRESHOLD {
        SentimentLabel::Positive
    } else if score <= -LABEL_THRESHOLD {
        SentimentLabel::Negative
    } else {
        SentimentLabel::Neutral
    }
}

fn parse_lexicon(text: &str) -> HashMap<String, f32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (word, value) = l.split_once('\t')?;
            Some((word.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;
    use crate::tokens::Tokenizer;

    fn score(lang: &str, text: &str) -> (f32, SentimentLabel) {
        let tok = Tokenizer::new();
        SentimentAnalyzer::new().score(lang, text, &tok.tokenize(&normalize(text)))
    }

    #[test]
    fn vader_words_are_its_lexicon() {
        // vader-parity pins its lexicon at 7 506 distinct entries.
        let a = SentimentAnalyzer::new();
        assert_eq!(a.vader_words.len(), 7506);
        assert!(a.vader_words.iter().all(|w| w.len() < VADER_WORD_MAX));
        for w in ["good", "no", ":)", "thanks", "fed up"] {
            assert!(a.vader_words.contains(w), "{w}");
        }
    }

    #[test]
    fn skipping_vader_never_changes_a_score() {
        let a = SentimentAnalyzer::new();
        let mut texts: Vec<String> = crate::default_examples()
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        texts.extend(
            [
                "NO",
                "No.",
                "GOOD!!",
                "ok :)",
                ":-(",
                "it's (good)",
                "a\u{b}good",
                "x\u{1c}bad",
                "fed up",
                "can't stand it",
                "kind of",
                "not bad, BUT slow",
                "'love'",
                "-- --",
                "",
                "   ",
                "??",
                "is it any good? and what ab",
            ]
            .map(String::from),
        );
        let mut skipped = 0;
        for t in &texts {
            let (score, _) = a.score("en", t, &[]);
            let vader = a.vader.polarity_scores(t).compound as f32;
            assert_eq!(score.to_bits(), vader.to_bits(), "{t:?}");
            if !a.may_have_vader_words(t) {
                skipped += 1;
            }
        }
        // Most of the shipped English examples skip VADER.
        assert!(skipped > 1500, "{skipped}");
    }

    #[test]
    fn zh_lexicon_parses_fully() {
        let lex = parse_lexicon(ZH_LEXICON);
        let entries = ZH_LEXICON
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert_eq!(lex.len(), entries);
    }

    #[test]
    fn english_polarity() {
        assert_eq!(
            score("en", "Thank you so much, great service!").1,
            SentimentLabel::Positive
        );
        assert_eq!(score("en", "where is my order").1, SentimentLabel::Neutral);
        let (s, l) = score("en", "This is terrible, the worst shop ever. I am furious!");
        assert_eq!(l, SentimentLabel::Negative);
        assert!(s < -0.6, "{s}");
    }

    #[test]
    fn chinese_polarity() {
        assert_eq!(score("zh", "非常满意,谢谢!").1, SentimentLabel::Positive);
        assert_eq!(score("zh", "我的订单在哪里").1, SentimentLabel::Neutral);
        let (s, l) = score("zh", "太差了,垃圾服务,我要投诉!");
        assert_eq!(l, SentimentLabel::Negative);
        assert!(s < -0.6, "{s}");
    }

    #[test]
    fn chinese_negation_flips() {
        let (s, _) = score("zh", "我不满意");
        assert!(s < 0.0);
        let (s, _) = score("zh", "质量不好");
        assert!(s < 0.0, "{s}");
    }

    #[test]
    fn scores_stay_in_range() {
        for t in [
            "!!!!!!",
            "垃圾垃圾垃圾垃圾垃圾垃圾垃圾!!!!",
            "love love love love love!!!",
        ] {
            for lang in ["en", "zh"] {
                let (s, _) = score(lang, t);
                assert!((-1.0..=1.0).contains(&s));
            }
        }
    }
}
