//! Stage 1: text normalisation. Owns turning what a visitor typed into the
//! canonical form every later stage reads: Unicode NFKC (which also folds
//! full-width ASCII and ideographic spaces to half-width), lower case, and
//! collapsed white space. Entity offsets are taken on the *original* text, so
//! this stage is only for the classifier, the tokenizer and the detectors.

use unicode_normalization::UnicodeNormalization;

/// Returns `text` in NFKC, case-folded, with runs of white space collapsed to
/// one ASCII space and no leading or trailing space.
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        // ASCII is already in NFKC: skip the decomposition machinery.
        return fold(text.chars(), text.len());
    }
    fold(text.nfkc(), text.len())
}

fn fold(chars: impl Iterator<Item = char>, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut pending_space = false;
    for c in chars {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        push_folded(&mut out, c);
    }
    out
}

/// Appends `c` in lower case; ASCII takes the fast path.
fn push_folded(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
    } else {
        out.extend(c.to_lowercase());
    }
}

/// True for a character of the Han script (CJK ideographs and their extensions).
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2EBEF
        | 0x30000..=0x3134F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_space() {
        assert_eq!(normalize("  Where IS\tmy   Order?  "), "where is my order?");
    }

    #[test]
    fn full_width_becomes_half_width() {
        assert_eq!(normalize("ＯＲＤＥＲ　１２３"), "order 123");
        assert_eq!(normalize("我的订单！"), "我的订单!");
    }

    #[test]
    fn nfkc_composes_and_folds_ligatures() {
        assert_eq!(normalize("ﬁle cafe\u{301}"), "file café");
    }

    #[test]
    fn han_detection() {
        assert!(is_han('订'));
        assert!(!is_han('a'));
        assert!(!is_han('。'));
    }
}
