//! Thousands of distinct, realistic visitor messages for the latency
//! measurements that must not run on a handful of cached messages: the
//! shipped examples (both languages, off-topic ones included), each given a
//! deterministic opening and tail drawn from chat-like pieces (greetings,
//! order numbers, amounts, dates, e-mails, phone numbers, complaints, thanks)
//! with numbers that differ from message to message. Shared by
//! `benches/pipeline.rs` and `examples/cold_pipeline.rs` (a `#[path]` module).

/// Openings put before an English example (empty most of the time).
const OPENINGS: &[&str] = &[
    "",
    "",
    "",
    "",
    "hi, ",
    "Hello! ",
    "hey ",
    "Good morning, ",
    "HI ",
    "ok so ",
    "sorry, ",
];

/// Tails put after an English example; `{n}` becomes a number.
const TAILS: &[&str] = &[
    "",
    "",
    "",
    "",
    " thanks",
    " Thank you so much!",
    " order #{n}",
    " my order number is SB-{n}",
    " it's been {d} days",
    " I paid ${d}.99 for it",
    " charged {d} euros twice",
    " since {d}/11",
    " ordered on March {d}th",
    " can it arrive tomorrow?",
    " my email is jane.doe{d}@example.com",
    " call me on +1 415 555 {p}",
    " this is ridiculous!!",
    " I'm really annoyed, the worst service ever",
    " see https://shop.example.com/p/{d}",
    " please help asap",
    " ??",
    " and what about the colour, is the blue one any good?",
];

const ZH_TAILS: &[&str] = &[
    "",
    "",
    "，谢谢",
    "，订单号{n}",
    "！太差了",
    "，我的手机 138{n}",
    "，多收了我{d}元",
    "，我{d}月5日下的单",
];

/// At least `count` distinct messages (English and Chinese roughly in the
/// shipped examples' proportions), in a fixed shuffled order.
pub(crate) fn distinct_messages(examples: &[(String, bool)], count: usize) -> Vec<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*: deterministic, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0usize;
    while out.len() < count && attempts < count * 20 && !examples.is_empty() {
        attempts += 1;
        let r = next();
        let (text, chinese) = pick(examples, r);
        let n = 100_000 + (next() % 900_000_000);
        let d = 1 + next() % 28;
        let p = 1000 + next() % 9000;
        let fill = |t: &str| {
            t.replace("{n}", &n.to_string())
                .replace("{d}", &d.to_string())
                .replace("{p}", &p.to_string())
        };
        let message = if *chinese {
            let tail = pick(ZH_TAILS, next());
            format!("{text}{}", fill(tail))
        } else {
            let open = pick(OPENINGS, next());
            let tail = pick(TAILS, next());
            format!("{open}{text}{}", fill(tail))
        };
        if seen.insert(message.clone()) {
            out.push(message);
        }
    }
    out
}

/// The element of `xs` that the random number `r` points at.
fn pick<T>(xs: &[T], r: u64) -> &T {
    let len = u64::try_from(xs.len()).unwrap_or(u64::MAX);
    &xs[usize::try_from(r % len).unwrap_or(0)]
}
