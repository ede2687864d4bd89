//! Stage 2: language identification for short chat messages. Owns the
//! decision "is this English, Chinese, or something a human must read?".
//!
//! Trigram detectors are unreliable on three-word messages, so the order is:
//! scripts first (Han → `zh`, kana → `ja`, Hangul → `ko`), then a cheap count
//! of very common English words, and only when that is inconclusive
//! `whatlang` restricted to the Latin-script languages we can name. A message
//! with no letters at all is `und`.

use crate::normalize::is_han;
use whatlang::{Detector, Lang};

/// The languages the bot answers in.
pub const SUPPORTED: [&str; 2] = ["en", "zh"];

/// Identifies the language of normalised text. Holds the `whatlang` detector
/// so its allowlist is built once.
pub struct LanguageDetector {
    latin: Detector,
}

impl Default for LanguageDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// Letter counts per script, the first signal looked at.
#[derive(Default)]
struct ScriptCounts {
    han: usize,
    kana: usize,
    hangul: usize,
    latin: usize,
    other: usize,
}

impl LanguageDetector {
    pub fn new() -> Self {
        let allow = vec![
            Lang::Eng,
            Lang::Spa,
            Lang::Fra,
            Lang::Deu,
            Lang::Ita,
            Lang::Por,
            Lang::Nld,
            Lang::Swe,
            Lang::Dan,
            Lang::Pol,
            Lang::Tur,
            Lang::Vie,
            Lang::Ind,
        ];
        LanguageDetector {
            latin: Detector::with_allowlist(allow),
        }
    }

    /// ISO 639-1 code of `normalized` (output of [`crate::normalize::normalize`]), or `und`.
    pub fn detect(&self, normalized: &str) -> &'static str {
        let counts = count_scripts(normalized);
        if counts.kana > 0 {
            return "ja";
        }
        if counts.hangul > 0 && counts.hangul >= counts.han {
            return "ko";
        }
        // Chinese messages often carry Latin order numbers or product names.
        if counts.han > 0 && counts.han * 3 >= counts.latin {
            return "zh";
        }
        if counts.other > counts.latin {
            return whatlang::detect(normalized).map_or("und", |i| iso639_1(i.lang()));
        }
        if counts.latin == 0 {
            return "und";
        }
        self.detect_latin(normalized)
    }

    /// English unless the text has no common English word and `whatlang` is
    /// confident it is another Latin-script language.
    fn detect_latin(&self, normalized: &str) -> &'static str {
        let (words, english) = english_word_hits(normalized);
        if english >= 2 || (english > 0 && english * 3 >= words) {
            return "en";
        }
        match self.latin.detect(detection_prefix(normalized)) {
            Some(info) if info.lang() != Lang::Eng && info.confidence() > 0.5 && words >= 2 => {
                iso639_1(info.lang())
            }
            _ => "en",
        }
    }
}

/// Trigram detection reads at most this many bytes: a few sentences settle
/// the language, and a 4,000-character message would otherwise cost
/// hundreds of microseconds.
const DETECTION_BYTES: usize = 256;

/// The start of `text`, at most [`DETECTION_BYTES`], cut on a character boundary.
fn detection_prefix(text: &str) -> &str {
    if text.len() <= DETECTION_BYTES {
        return text;
    }
    let mut end = DETECTION_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// True when the bot can answer in `language`.
pub fn is_supported(language: &str) -> bool {
    SUPPORTED.contains(&language)
}

fn count_scripts(text: &str) -> ScriptCounts {
    let mut c = ScriptCounts::default();
    for ch in text.chars() {
        let u = u32::from(ch);
        if ch.is_ascii_alphabetic() || (0xC0..=0x24F).contains(&u) {
            c.latin += 1;
        } else if is_han(ch) {
            c.han += 1;
        } else if (0x3040..=0x30FF).contains(&u) {
            c.kana += 1;
        } else if (0xAC00..=0xD7AF).contains(&u) || (0x1100..=0x11FF).contains(&u) {
            c.hangul += 1;
        } else if ch.is_alphabetic() {
            c.other += 1;
        }
    }
    c
}

/// Very common English words (function words and shop vocabulary); a hit is
/// strong evidence on a short message where trigrams are not.
const ENGLISH: &[&str] = &[
    "a", "about", "account", "am", "an", "and", "any", "are", "at", "be", "bye", "can", "cancel",
    "card", "could", "delivery", "did", "do", "does", "for", "from", "get", "got", "have", "hello",
    "help", "hey", "hi", "how", "i", "i'm", "if", "in", "is", "it", "it's", "item", "me", "my",
    "need", "no", "not", "of", "on", "or", "order", "please", "refund", "return", "shipping",
    "should", "so", "still", "thank", "thanks", "that", "the", "there", "this", "to", "want",
    "was", "what", "when", "where", "which", "why", "will", "with", "would", "yes", "you", "your",
];

/// (number of words, number of them in [`ENGLISH`]), counted until the
/// second hit: two settle it (see [`LanguageDetector::detect_latin`]), and
/// a long message need not be read to its end.
fn english_word_hits(text: &str) -> (usize, usize) {
    let mut words = 0;
    let mut hits = 0;
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        if w.is_empty() || w.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        words += 1;
        if ENGLISH.binary_search(&w).is_ok() {
            hits += 1;
            if hits == 2 {
                break;
            }
        }
    }
    (words, hits)
}

/// ISO 639-1 for the languages we name; whatlang's ISO 639-3 code for the rest.
fn iso639_1(lang: Lang) -> &'static str {
    match lang {
        Lang::Eng => "en",
        Lang::Cmn => "zh",
        Lang::Spa => "es",
        Lang::Fra => "fr",
        Lang::Deu => "de",
        Lang::Ita => "it",
        Lang::Por => "pt",
        Lang::Nld => "nl",
        Lang::Swe => "sv",
        Lang::Dan => "da",
        Lang::Pol => "pl",
        Lang::Tur => "tr",
        Lang::Vie => "vi",
        Lang::Ind => "id",
        Lang::Rus => "ru",
        Lang::Ukr => "uk",
        Lang::Ara => "ar",
        Lang::Heb => "he",
        Lang::Hin => "hi",
        Lang::Tha => "th",
        Lang::Jpn => "ja",
        Lang::Kor => "ko",
        Lang::Ell => "el",
        other => other.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn lang(text: &str) -> &'static str {
        LanguageDetector::new().detect(&normalize(text))
    }

    #[test]
    fn english_word_list_is_sorted_for_binary_search() {
        assert!(ENGLISH.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn short_english_messages() {
        for t in [
            "hi",
            "where is my order?",
            "refund pls",
            "thx",
            "ok",
            "Cancel it",
        ] {
            assert_eq!(lang(t), "en", "{t}");
        }
    }

    #[test]
    fn short_chinese_messages() {
        for t in [
            "你好",
            "我的订单在哪里?",
            "退款",
            "订单 SB-123456 还没到",
            "谢谢！",
        ] {
            assert_eq!(lang(t), "zh", "{t}");
        }
    }

    #[test]
    fn other_languages_are_labelled() {
        assert_eq!(
            lang("¿Dónde está mi pedido? Lo compré hace una semana"),
            "es"
        );
        assert_eq!(
            lang("Bonjour, je voudrais annuler ma commande s'il vous plaît"),
            "fr"
        );
        assert_eq!(
            lang("Здравствуйте, где мой заказ? Я жду его уже две недели."),
            "ru"
        );
        assert_eq!(lang("注文はどこですか"), "ja");
        assert_eq!(lang("12345 !!!"), "und");
    }

    #[test]
    fn long_messages_are_judged_by_their_start() {
        let french = "Bonjour, je voudrais annuler ma commande s'il vous plaît. ".repeat(60);
        assert_eq!(lang(&french), "fr");
        // A cut in the middle of a two-byte letter moves back to its start.
        let accented = "é".repeat(200);
        let prefix = detection_prefix(&accented);
        assert_eq!(prefix.len(), DETECTION_BYTES);
        let odd = format!("a{accented}");
        assert_eq!(detection_prefix(&odd).len(), DETECTION_BYTES - 1);
    }

    #[test]
    fn supported_languages() {
        assert!(is_supported("en") && is_supported("zh"));
        assert!(!is_supported("fr") && !is_supported("und"));
    }
}
