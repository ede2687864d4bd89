//! Stage 5: sentiment. Owns the score in -1..=1 and its label.
//!
//! English uses VADER (the `vader-parity` crate: the original Hutto & Gilbert
//! lexicon and rules, MIT). Chinese uses Switchboard's own lexicon
//! (`data/sentiment_zh.txt`, written for this project and MIT like the rest
//! of it) over jieba words, with VADER's ideas applied: negators flip and
//! damp a word, intensifiers boost it, `!` adds emphasis, and the sum is
//! squashed with VADER's `x / sqrt(x² + 15)`.

use crate::tokens::{Token, TokenKind};
use std::collections::HashMap;
use switchboard_protocol::model::SentimentLabel;
use vader_parity::SentimentIntensityAnalyzer;

const ZH_LEXICON: &str = include_str!("../data/sentiment_zh.txt");

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
            zh: parse_lexicon(ZH_LEXICON),
        }
    }

    /// (score, label) of a message: `text` is the original (VADER reads case
    /// and punctuation), `tokens` the pipeline's tokens.
    pub fn score(&self, language: &str, text: &str, tokens: &[Token]) -> (f32, SentimentLabel) {
        let score = if language == "zh" {
            self.score_zh(text, tokens)
        } else {
            // f64 → f32 loses only precision VADER does not have (4 decimals).
            self.vader.polarity_scores(text).compound as f32
        };
        (score, label(score))
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
