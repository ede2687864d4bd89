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
//! words looked up in a copy of its lexicon's words (`data/vader_words.txt`):
//! without one, VADER does not run; with some, it reads only the stretch
//! from three words before the first to three after the last, when what it
//! leaves out cannot change the score (see `vader_span`).

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
        } else {
            match vader_span(text, &self.vader_words) {
                VaderSpan::NoLexiconWord => 0.0,
                // f64 → f32 loses only precision VADER does not have (4 decimals).
                VaderSpan::Read(span) => self.vader.polarity_scores(span).compound as f32,
            }
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

/// What of a message VADER has to read for its compound score.
#[derive(Debug, PartialEq)]
enum VaderSpan<'a> {
    /// No word of its lexicon: the score is 0.
    NoLexiconWord,
    /// This part of the message (all of it, or a stretch of its words).
    Read(&'a str),
}

/// Words VADER sees, at most: a longer message is read whole.
const VADER_SPAN_WORDS: usize = 128;

/// One of VADER's words: byte range, in its lexicon, all capitals.
#[derive(Clone, Copy, Default)]
struct VaderWord {
    start: usize,
    end: usize,
    in_lexicon: bool,
    upper: bool,
}

/// What VADER must read of `text` (see [`VaderSpan`]). Only ASCII text is
/// looked at (other text may hold emojis, which VADER turns into words, and
/// needs Python's casing tables); it is split as VADER splits it: Python's
/// `str.split()`, then leading and trailing ASCII punctuation stripped from
/// words that keep more than two characters.
///
/// Each lexicon word's valence depends on the three words before it and the
/// two after it, and nothing else does but three things: the `!` and `?`
/// count, whether some but not all words are in capitals, and a "but"
/// anywhere. So when the words outside the stretch from three before the
/// first lexicon word to three after the last hold no `!`, `?` or "but" and
/// leave the capitals test as it was, VADER reads the stretch alone and
/// sums the same valences in the same order: its leading and trailing words
/// add only exact zeros.
fn vader_span<'a>(text: &'a str, lexicon: &HashSet<Box<str>>) -> VaderSpan<'a> {
    if !text.is_ascii() {
        return VaderSpan::Read(text);
    }
    let mut words = [VaderWord::default(); VADER_SPAN_WORDS];
    let mut n = 0;
    for (start, end) in vader_words(text) {
        let Some(slot) = words.get_mut(n) else {
            return VaderSpan::Read(text);
        };
        let word = &text[start..end];
        let stripped = word.trim_matches(|c: char| c.is_ascii_punctuation());
        let word = if stripped.len() <= 2 { word } else { stripped };
        if word.eq_ignore_ascii_case("but") {
            return VaderSpan::Read(text);
        }
        *slot = VaderWord {
            start,
            end,
            in_lexicon: in_lexicon(word, lexicon),
            upper: word.bytes().any(|b| b.is_ascii_uppercase())
                && !word.bytes().any(|b| b.is_ascii_lowercase()),
        };
        n += 1;
    }
    let words = &words[..n];
    let (Some(first), Some(last)) = (
        words.iter().position(|w| w.in_lexicon),
        words.iter().rposition(|w| w.in_lexicon),
    ) else {
        return VaderSpan::NoLexiconWord;
    };
    let kept = &words[first.saturating_sub(3)..=(last + 3).min(n - 1)];
    let (start, end) = (kept[0].start, kept[kept.len() - 1].end);
    let cap_differential =
        |w: &[VaderWord]| w.iter().any(|w| w.upper) && w.iter().any(|w| !w.upper);
    let punctuation = |s: &str| s.contains(['!', '?']);
    if punctuation(&text[..start])
        || punctuation(&text[end..])
        || cap_differential(words) != cap_differential(kept)
    {
        return VaderSpan::Read(text);
    }
    VaderSpan::Read(&text[start..end])
}

/// Byte ranges of the words of ASCII `text` split on Python's white space.
fn vader_words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let is_space = |b: u8| b.is_ascii_whitespace() || matches!(b, 0x0b | 0x1c..=0x1f);
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !is_space(bytes[i]) {
            i += 1;
        }
        (i > start).then_some((start, i))
    })
}

/// True when ASCII `word`, lower-cased, is in VADER's lexicon.
fn in_lexicon(word: &str, lexicon: &HashSet<Box<str>>) -> bool {
    let mut lower = [0u8; VADER_WORD_MAX];
    let Some(buf) = lower.get_mut(..word.len()) else {
        return false;
    };
    buf.copy_from_slice(word.as_bytes());
    buf.make_ascii_lowercase();
    std::str::from_utf8(buf).is_ok_and(|w| lexicon.contains(w))
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
    fn reading_less_of_a_message_never_changes_its_score() {
        let a = SentimentAnalyzer::new();
        let examples: Vec<String> = crate::default_examples()
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        let extras = [
            "",
            " thanks",
            " but it's fine",
            " NOT GOOD",
            " and what about the colour, is the blue one any good?",
            "!!",
            " ok :)",
            " kind of nice",
            " no problem at all",
            " at least it works",
            " THANK YOU",
            " the shit",
            " yeah right",
            " it's not bad",
            " this is ridiculous!!",
            " I really want help asap",
            " not really.",
            " \u{b}good\u{1c}day",
            " :-( :-(",
        ];
        let mut texts: Vec<String> = Vec::new();
        for (i, e) in examples.iter().enumerate() {
            let head = extras[i % extras.len()];
            let tail = extras[(i / extras.len()) % extras.len()];
            texts.push(e.clone());
            texts.push(format!("{head} {e}{tail}"));
            texts.push(format!("Hello, {e}{tail} {tail} please"));
        }
        texts.extend(extras.iter().map(|t| t.to_string()));
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
                "not bad, BUT slow",
                "'love'",
                "-- --",
                "   ",
                "??",
                "one two three four five six seven good eight nine ten eleven twelve",
                "ONE TWO THREE four five six seven GOOD eight nine ten",
                "one two three? four five six seven good eight nine ten",
            ]
            .map(String::from),
        );
        let (mut skipped, mut shortened) = (0, 0);
        for t in &texts {
            let (score, _) = a.score("en", t, &[]);
            let vader = a.vader.polarity_scores(t).compound as f32;
            assert_eq!(score.to_bits(), vader.to_bits(), "{t:?}");
            match vader_span(t, &a.vader_words) {
                VaderSpan::NoLexiconWord => skipped += 1,
                VaderSpan::Read(span) if span.len() < t.len() => shortened += 1,
                VaderSpan::Read(_) => {}
            }
        }
        // Many of the texts skip VADER, and many give it less to read.
        assert!(skipped > 1500 && shortened > 3000, "{skipped} {shortened}");
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
