//! Latency of intent classification and of the whole pipeline, per message,
//! in English and Chinese, with the default model (the shipped shop intents)
//! and with a 77-intent model trained on Banking77.
//!
//! `cargo bench -p switchboard-nlp`. Criterion gives the median (and mean)
//! per call; before it runs, each case is also timed call by call over a
//! rotating set of messages and its p50/p99 printed, since criterion does not
//! report tail percentiles. The Banking77 cases train on
//! `../shared/data/banking77/train.csv` (beside the repository) and are
//! skipped when that file is absent.
//!
//! `analyze/en+zh distinct (default)` cycles through 4 000 distinct messages
//! (`benches/common/messages.rs`: the shipped examples with varied openings,
//! tails and numbers), so its stems, regex states and model rows are not all
//! in cache from the call before, closer to what the server sees.
//! `examples/cold_pipeline.rs` times the same messages with caches cooled
//! between calls, stage by stage.

#[path = "common/messages.rs"]
mod messages;

use criterion::{criterion_group, Criterion};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;
use switchboard_nlp::{
    dataset, default_examples, normalize, EntityConfig, IntentModel, KnowledgeBase, Pipeline,
    TrainConfig,
};

const EN: &[&str] = &[
    "hi, where is my order? it's been a week",
    "I want to return the shoes I bought, they don't fit",
    "my card was charged twice for order #583920",
    "can I talk to a real person please",
    "how much is shipping to canada",
    "This is the worst service ever, I'm furious!",
    "please change the delivery address to 12 Baker Street",
    "thanks, that's all",
];

/// Banking-style English, for the Banking77 model (written for this bench).
const BANK: &[&str] = &[
    "my new card still hasn't arrived, when will it come?",
    "why was I charged a fee for my transfer",
    "I think someone used my card without me knowing",
    "how do I top up with apple pay",
    "the exchange rate on my payment looks wrong",
    "can I change my PIN at an ATM",
    "my transfer is still pending after two days, what's going on",
    "cancel",
];

const ZH: &[&str] = &[
    "你好,我的订单到哪了?",
    "我要退货,尺码不合适",
    "订单号202403150001被扣了两次钱",
    "转人工",
    "太差了,我要投诉!",
];

/// p50 and p99 in microseconds of `f` over `rounds` calls on `texts` in turn.
fn percentiles(texts: &[&str], rounds: usize, mut f: impl FnMut(&str)) -> (f64, f64) {
    let mut us = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = texts[i % texts.len()];
        let start = Instant::now();
        f(t);
        us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(f64::total_cmp);
    (us[rounds / 2], us[rounds * 99 / 100])
}

fn report(name: &str, (p50, p99): (f64, f64)) {
    println!("{name:<32} p50 {p50:>7.2} µs   p99 {p99:>7.2} µs");
}

/// A pipeline around a model trained on Banking77's training set, if present.
fn banking77() -> Option<Pipeline> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/banking77/train.csv");
    if !path.exists() {
        println!("skipping the Banking77 cases: {} not found", path.display());
        return None;
    }
    let examples = dataset::load(&path.display().to_string()).ok()?;
    let tokenizer = switchboard_nlp::tokens::Tokenizer::new();
    let started = Instant::now();
    let (model, report) =
        IntentModel::train(&examples, &tokenizer, &TrainConfig::default()).ok()?;
    println!(
        "Banking77 model: {} intents, {} features, trained in {:.1} s",
        report.n_intents,
        report.n_features,
        started.elapsed().as_secs_f64()
    );
    let kb = KnowledgeBase::default_shop().ok()?;
    Pipeline::from_parts(model, kb, &EntityConfig::default()).ok()
}

/// One benchmark: its name, the messages it cycles through, and the call.
type Case<'a> = (String, &'static [&'static str], Box<dyn Fn(&str) + 'a>);

/// The cases of one pipeline: classify and analyze, English and Chinese.
fn cases<'a>(name: &str, pipeline: &'a Pipeline, en: &'static [&'static str]) -> Vec<Case<'a>> {
    let model = pipeline.model();
    let tok = pipeline.tokenizer();
    let classify = move |t: &str| {
        black_box(model.classify(tok, t));
    };
    let analyze = move |t: &str| {
        black_box(pipeline.analyze(t));
    };
    vec![
        (format!("classify/en ({name})"), en, Box::new(classify)),
        (format!("classify/zh ({name})"), ZH, Box::new(classify)),
        (format!("analyze/en ({name})"), en, Box::new(analyze)),
        (format!("analyze/zh ({name})"), ZH, Box::new(analyze)),
    ]
}

fn benches(c: &mut Criterion) {
    let started = Instant::now();
    let pipeline = Pipeline::with_default_model().expect("default model");
    println!(
        "default pipeline start-up: {:.2} s ({} features)",
        started.elapsed().as_secs_f64(),
        pipeline.model().n_features()
    );
    let b77 = banking77();
    let mut all = cases("default", &pipeline, EN);
    if let Some(p) = &b77 {
        all.extend(cases("banking77", p, BANK));
    }
    for (name, texts, f) in &all {
        report(name, percentiles(texts, 20_000, f));
    }
    for (name, texts, f) in &all {
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                f(black_box(texts[i % texts.len()]))
            })
        });
    }
    distinct(c, &pipeline);
}

/// The whole pipeline over 4 000 distinct messages, each used once per pass.
fn distinct(c: &mut Criterion, pipeline: &Pipeline) {
    let examples: Vec<(String, bool)> = default_examples()
        .expect("shipped examples")
        .into_iter()
        .map(|e| {
            let chinese = e.text.chars().any(normalize::is_han);
            (e.text, chinese)
        })
        .collect();
    let owned = messages::distinct_messages(&examples, 4000);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let name = "analyze/en+zh distinct (default)";
    let analyze = |t: &str| {
        black_box(pipeline.analyze(t));
    };
    report(name, percentiles(&texts, texts.len() * 5, analyze));
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            i += 1;
            analyze(black_box(texts[i % texts.len()]))
        })
    });
}

criterion_group!(pipeline, benches);

fn main() {
    pipeline();
    Criterion::default().configure_from_args().final_summary();
}
