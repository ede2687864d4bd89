//! Stage 6: entities. Owns finding emails, phone numbers, order numbers,
//! URLs, money amounts and dates in the *original* message text (offsets are
//! bytes of that text, as [`Entity`] documents).
//!
//! Kinds are looked for in a fixed order (email, URL, order number, money,
//! date, phone) and a later match that overlaps an earlier one is dropped, so
//! an order number is never also read as a phone number. Each detector is
//! guarded by a cheap check so a message without `@`, digits or `http`
//! costs almost nothing: each date pattern runs only when the text holds
//! what it cannot match without (a digit and `-`, `/` or `月`, a month's
//! first letters, a relative day such as "tomorrow"; see `Needs`). Phone
//! candidates are confirmed with `phonenumber` (libphonenumber's metadata,
//! which allocates and runs regexes per region tried), and only when they do
//! not overlap an entity already found, whose place they could not take.

use crate::error::Result;
use phonenumber::country;
use regex::Regex;
use serde::{Deserialize, Serialize};
use switchboard_protocol::model::Entity;

/// What the extractor looks for; admins can change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntityConfig {
    /// Regular expressions for order numbers; capture group 1, when present,
    /// is the value, else the whole match.
    pub order_patterns: Vec<String>,
    /// Regions (ISO 3166 alpha-2) tried, in order, for numbers written without `+`.
    pub phone_regions: Vec<String>,
}

impl Default for EntityConfig {
    fn default() -> Self {
        EntityConfig {
            order_patterns: vec![
                r"(?i)\b(?:order|ord)\s*(?:number|no\.?|num|id)?\s*[:#]?\s*#?\s*([A-Z]{0,4}-?\d{5,14})\b".into(),
                r"订单(?:号|编号)?\s*[:：是为]?\s*#?\s*([A-Za-z]{0,4}-?\d{5,20})".into(),
                r"#(\d{5,14})\b".into(),
                r"\b(SB-?\d{6,10})\b".into(),
            ],
            phone_regions: vec!["US".into(), "CN".into(), "GB".into()],
        }
    }
}

/// Finds entities. Built once; `Send + Sync`.
pub struct EntityExtractor {
    email: Regex,
    url: Regex,
    orders: Vec<Regex>,
    money: Regex,
    dates: Vec<DatePattern>,
    phone: Regex,
    regions: Vec<country::Id>,
}

/// A date pattern, how its match becomes a value, and what a text must hold
/// for the pattern to have a chance (checked first, because most messages
/// hold no date and the patterns are case-insensitive Unicode regexes).
struct DatePattern {
    re: Regex,
    form: DateForm,
    needs: Needs,
}

#[derive(Clone, Copy)]
enum DateForm {
    Iso,
    Chinese,
    AsWritten,
}

/// What a date pattern cannot match without.
#[derive(Clone, Copy)]
enum Needs {
    /// An ASCII digit and this character (`2024-03-05`, `3月5日`).
    AsciiDigitAnd(char),
    /// A digit of any script and a `/` (`12/03`).
    DigitAndSlash,
    /// A digit of any script and a month's first three letters (`March 3rd`).
    DigitAndMonth,
    /// The start of one of the relative days (`tomorrow`, `下周`).
    DayWord,
}

impl Needs {
    /// False only when `text` cannot match. `has_digit`: an ASCII digit;
    /// `has_any_digit`: a digit of any script, which `\d` matches.
    fn may_match(self, text: &str, has_digit: bool, has_any_digit: bool) -> bool {
        match self {
            Needs::AsciiDigitAnd(c) => has_digit && text.contains(c),
            Needs::DigitAndSlash => has_any_digit && text.contains('/'),
            Needs::DigitAndMonth => has_any_digit && may_hold_any(text, &MONTHS),
            Needs::DayWord => may_hold_any(text, &DAY_WORDS),
        }
    }
}

impl EntityExtractor {
    /// Compiles the patterns; a bad order pattern is an error.
    pub fn new(cfg: &EntityConfig) -> Result<Self> {
        let orders = cfg
            .order_patterns
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EntityExtractor {
            email: Regex::new(
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            )?,
            url: Regex::new(r"(?i)\b(?:https?://|www\.)[^\s<>()，。]+")?,
            orders,
            money: Regex::new(
                r"(?i)(?:([$€£¥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?)|(?:(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?(usd|eur|gbp|cny|rmb|dollars?|bucks|euros?|pounds?|元|块钱|块|美元|欧元|英镑)(?:[^a-z]|$))",
            )?,
            dates: date_patterns()?,
            phone: Regex::new(r"\+?\(?\d[\d\s().-]{5,18}\d")?,
            regions: cfg
                .phone_regions
                .iter()
                .filter_map(|r| r.parse().ok())
                .collect(),
        })
    }

    /// All entities of `text`, in order of position.
    pub fn extract(&self, text: &str) -> Vec<Entity> {
        self.extract_gated(text, true)
    }

    /// [`EntityExtractor::extract`]; without `date_gates` every date pattern
    /// runs (the tests check that the gates change nothing).
    fn extract_gated(&self, text: &str, date_gates: bool) -> Vec<Entity> {
        let mut found: Vec<Entity> = Vec::new();
        // ASCII digits gate the kinds that have always needed them; `\d` in
        // the date patterns also matches other scripts' digits, which
        // `char::is_numeric` covers.
        let has_digit = text.bytes().any(|b| b.is_ascii_digit());
        if text.contains('@') {
            self.find_emails(text, &mut found);
        }
        if text.contains("http") || text.contains("www.") || text.contains("WWW.") {
            self.find_urls(text, &mut found);
        }
        if has_digit {
            self.find_orders(text, &mut found);
            self.find_money(text, &mut found);
        }
        self.find_dates(text, has_digit, date_gates, &mut found);
        if has_digit {
            self.find_phones(text, &mut found);
        }
        found.sort_by_key(|e| e.start);
        found
    }

    fn find_emails(&self, text: &str, found: &mut Vec<Entity>) {
        for m in self.email.find_iter(text) {
            push(
                found,
                "email",
                m.as_str().to_lowercase(),
                m.start(),
                m.end(),
            );
        }
    }

    fn find_urls(&self, text: &str, found: &mut Vec<Entity>) {
        for m in self.url.find_iter(text) {
            let s = m
                .as_str()
                .trim_end_matches(['.', ',', '!', '?', ')', ';', ':', '"', '\'']);
            push(found, "url", s.to_owned(), m.start(), m.start() + s.len());
        }
    }

    fn find_orders(&self, text: &str, found: &mut Vec<Entity>) {
        for re in &self.orders {
            for c in re.captures_iter(text) {
                let m = c.get(1).or_else(|| c.get(0));
                if let Some(m) = m {
                    push(
                        found,
                        "order_number",
                        m.as_str().to_uppercase(),
                        m.start(),
                        m.end(),
                    );
                }
            }
        }
    }

    fn find_money(&self, text: &str, found: &mut Vec<Entity>) {
        for c in self.money.captures_iter(text) {
            let (Some(whole), Some(value)) = (c.get(0), money_value(&c)) else {
                continue;
            };
            let s = whole
                .as_str()
                .trim_end_matches(|ch: char| !ch.is_alphanumeric() && !"元块$€£¥".contains(ch));
            push(
                found,
                "money",
                value,
                whole.start(),
                whole.start() + s.len(),
            );
        }
    }

    fn find_dates(&self, text: &str, has_digit: bool, gates: bool, found: &mut Vec<Entity>) {
        let has_any_digit = has_digit || (!text.is_ascii() && text.chars().any(char::is_numeric));
        for date in &self.dates {
            if gates && !date.needs.may_match(text, has_digit, has_any_digit) {
                continue;
            }
            for m in date.re.find_iter(text) {
                let value = match date.form {
                    DateForm::Iso => m.as_str().to_owned(),
                    DateForm::Chinese => chinese_date(m.as_str()),
                    DateForm::AsWritten => m.as_str().to_lowercase(),
                };
                push(found, "date", value, m.start(), m.end());
            }
        }
    }

    fn find_phones(&self, text: &str, found: &mut Vec<Entity>) {
        for m in self.phone.find_iter(text) {
            let digits = m.as_str().chars().filter(char::is_ascii_digit).count();
            if !(7..=15).contains(&digits) || overlaps(found, m.start(), m.end()) {
                continue;
            }
            if let Some(e164) = self.parse_phone(m.as_str()) {
                push(found, "phone", e164, m.start(), m.end());
            }
        }
    }

    fn parse_phone(&self, candidate: &str) -> Option<String> {
        let valid = |region: Option<country::Id>| {
            phonenumber::parse(region, candidate)
                .ok()
                .filter(phonenumber::is_valid)
                .map(|n| n.format().mode(phonenumber::Mode::E164).to_string())
        };
        if candidate.starts_with('+') {
            return valid(None);
        }
        self.regions.iter().find_map(|r| valid(Some(*r)))
    }
}

/// True when `start..end` overlaps an entity already found.
fn overlaps(found: &[Entity], start: usize, end: usize) -> bool {
    found
        .iter()
        .any(|e| start < to_usize(e.end) && to_usize(e.start) < end)
}

/// The months' first three letters: every month name of the date patterns starts so.
const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// The starts of the relative days' English words.
const DAY_WORDS: [&[u8]; 5] = [b"today", b"tomorrow", b"yesterday", b"next ", b"last "];

/// False only when `text` is ASCII and holds none of `words` in any case.
/// Text with other characters may always match: Chinese words, and letters
/// that match ASCII ones case-insensitively (the Kelvin sign, the long s).
fn may_hold_any(text: &str, words: &[&[u8]]) -> bool {
    !text.is_ascii()
        || words.iter().any(|w| {
            text.as_bytes()
                .windows(w.len())
                .any(|window| window.eq_ignore_ascii_case(w))
        })
}

/// Adds an entity unless it overlaps one already found.
fn push(found: &mut Vec<Entity>, kind: &str, value: String, start: usize, end: usize) {
    if overlaps(found, start, end) {
        return;
    }
    let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else {
        return;
    };
    found.push(Entity {
        kind: kind.to_owned(),
        value,
        start,
        end,
    });
}

fn to_usize(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// `CUR amount` with the currency as an ISO code, e.g. `USD 12.50`.
fn money_value(c: &regex::Captures<'_>) -> Option<String> {
    let (cur, int, frac) = match (c.get(1), c.get(4)) {
        (Some(sym), _) => (currency(sym.as_str()), c.get(2)?, c.get(3)),
        (None, Some(int)) => (currency(c.get(6)?.as_str()), int, c.get(5)),
        _ => return None,
    };
    let int = int.as_str().replace(',', "");
    Some(match frac {
        Some(f) => format!("{cur} {int}.{:0<2}", f.as_str()),
        None => format!("{cur} {int}"),
    })
}

fn currency(s: &str) -> &'static str {
    match s.to_lowercase().as_str() {
        "$" | "usd" | "dollar" | "dollars" | "bucks" | "美元" => "USD",
        "€" | "eur" | "euro" | "euros" | "欧元" => "EUR",
        "£" | "gbp" | "pound" | "pounds" | "英镑" => "GBP",
        _ => "CNY",
    }
}

fn date_patterns() -> Result<Vec<DatePattern>> {
    let month = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";
    let pattern = |re: &str, form, needs| -> Result<DatePattern> {
        Ok(DatePattern {
            re: Regex::new(re)?,
            form,
            needs,
        })
    };
    Ok(vec![
        pattern(
            r"\b\d{4}-\d{2}-\d{2}\b",
            DateForm::Iso,
            Needs::AsciiDigitAnd('-'),
        )?,
        pattern(
            r"(?:\d{4}\s*年\s*)?\d{1,2}\s*月\s*\d{1,2}\s*[日号]",
            DateForm::Chinese,
            Needs::AsciiDigitAnd('月'),
        )?,
        pattern(
            r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b",
            DateForm::AsWritten,
            Needs::DigitAndSlash,
        )?,
        pattern(
            &format!(r"(?i)\b{month}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"),
            DateForm::AsWritten,
            Needs::DigitAndMonth,
        )?,
        pattern(
            &format!(r"(?i)\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{month}(?:\s+\d{{4}})?\b"),
            DateForm::AsWritten,
            Needs::DigitAndMonth,
        )?,
        pattern(
            r"(?i)\b(?:today|tomorrow|yesterday|(?:next|last) (?:week|monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b|今天|明天|昨天|前天|后天|下周|上周",
            DateForm::AsWritten,
            Needs::DayWord,
        )?,
    ])
}

/// `2024年3月5日` → `2024-03-05`; without a year, `03-05`.
fn chinese_date(s: &str) -> String {
    let nums: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    match nums.as_slice() {
        [y, m, d] => format!("{y:04}-{m:02}-{d:02}"),
        [m, d] => format!("{m:02}-{d:02}"),
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(text: &str) -> Vec<(String, String)> {
        EntityExtractor::new(&EntityConfig::default())
            .unwrap()
            .extract(text)
            .into_iter()
            .map(|e| (e.kind, e.value))
            .collect()
    }

    fn has(text: &str, kind: &str, value: &str) {
        let e = ents(text);
        assert!(
            e.iter().any(|(k, v)| k == kind && v == value),
            "{text}: {e:?}"
        );
    }

    #[test]
    fn emails() {
        has(
            "mail me at Jane.Doe+shop@Example.co.uk please",
            "email",
            "jane.doe+shop@example.co.uk",
        );
    }

    #[test]
    fn phones_in_several_formats() {
        has("call +44 20 7946 0958", "phone", "+442079460958");
        has("my number is (415) 555-2671", "phone", "+14155552671");
        has("我的手机 13812345678", "phone", "+8613812345678");
    }

    #[test]
    fn order_numbers() {
        has("where is order #123456?", "order_number", "123456");
        has("Order number: SB-20240117", "order_number", "SB-20240117");
        has(
            "订单号:202403150001 还没发货",
            "order_number",
            "202403150001",
        );
        // An order number is not also a phone number.
        let e = ents("order 4155552671 is late");
        assert_eq!(e.iter().filter(|(k, _)| k == "phone").count(), 0, "{e:?}");
    }

    #[test]
    fn custom_order_pattern() {
        let cfg = EntityConfig {
            order_patterns: vec![r"\bZX(\d{4})\b".into()],
            ..EntityConfig::default()
        };
        let e = EntityExtractor::new(&cfg).unwrap().extract("ref ZX1234");
        assert_eq!(e[0].value, "1234");
        let bad = EntityConfig {
            order_patterns: vec!["(".into()],
            ..EntityConfig::default()
        };
        assert!(EntityExtractor::new(&bad).is_err());
    }

    #[test]
    fn urls() {
        has(
            "see https://shop.example.com/p/42?x=1.",
            "url",
            "https://shop.example.com/p/42?x=1",
        );
        has("go to www.example.org", "url", "www.example.org");
    }

    #[test]
    fn money() {
        has("I paid $1,299.9 for it", "money", "USD 1299.90");
        has("charged 45 euros twice", "money", "EUR 45");
        has("多收了我50元", "money", "CNY 50");
        has("€12", "money", "EUR 12");
    }

    #[test]
    fn dates() {
        has("delivered on 2024-03-05", "date", "2024-03-05");
        has("ordered on March 3rd, 2024", "date", "march 3rd, 2024");
        has("我2024年3月5日下的单", "date", "2024-03-05");
        has("can it arrive tomorrow?", "date", "tomorrow");
        has("since 12/03", "date", "12/03");
    }

    #[test]
    fn offsets_point_into_the_original_text() {
        let text = "邮箱 a@b.cn 谢谢";
        let e = EntityExtractor::new(&EntityConfig::default())
            .unwrap()
            .extract(text);
        assert_eq!(&text[to_usize(e[0].start)..to_usize(e[0].end)], "a@b.cn");
    }

    #[test]
    fn gated_patterns_still_match() {
        has("Can it arrive TOMORROW?", "date", "tomorrow");
        has("next week", "date", "next week");
        has("by Last Friday", "date", "last friday");
        // The Kelvin sign matches `k` case-insensitively.
        has("next wee\u{212A}", "date", "next week");
        has("下周到", "date", "下周");
        // Non-ASCII digits match `\d` in the date patterns.
        has("since ٣/٤", "date", "٣/٤");
        // A phone number inside an order number is neither parsed nor kept.
        assert_eq!(
            ents("order #4155552671 and call 415 555 2671"),
            [
                ("order_number".to_owned(), "4155552671".to_owned()),
                ("phone".to_owned(), "+14155552671".to_owned())
            ]
        );
        has("on 3 Mar", "date", "3 mar");
        has("due 2024-03-05", "date", "2024-03-05");
        assert!(!may_hold_any("where is my order", &DAY_WORDS));
        assert!(may_hold_any("where is my order?ToDaY", &DAY_WORDS));
        assert!(may_hold_any("ordered in ſep", &MONTHS));
    }

    #[test]
    fn date_gates_change_nothing() {
        let x = EntityExtractor::new(&EntityConfig::default()).unwrap();
        let mut texts: Vec<String> = crate::default_examples()
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        let tails = [
            " on 2024-03-05",
            " since 12/03",
            " ordered on March 3rd, 2024",
            " the 5th of may",
            " 3 DEC 2023",
            " next Monday",
            " LAST WEEK",
            " today",
            " 明天",
            " 2024年3月5日",
            " ٣/٤",
            " ｍａｒ 3",
            " on ſep 3",
            " next wee\u{212A}",
            " mar3",
            " 12/3/2024!",
        ];
        let base = texts.clone();
        for (i, t) in base.iter().enumerate() {
            texts.push(format!("{t}{}", tails[i % tails.len()]));
        }
        for t in &texts {
            assert_eq!(x.extract_gated(t, true), x.extract_gated(t, false), "{t}");
        }
    }

    #[test]
    fn plain_text_has_no_entities() {
        assert!(ents("where is my parcel").is_empty());
    }
}
