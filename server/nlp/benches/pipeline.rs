//! Latency of intent classification and of the whole pipeline, per message.
//!
//! `cargo bench -p switchboard-nlp`. Criterion gives the median (and mean)
//! per call; before it runs, each case is also timed call by call over a
//! rotating set of messages and its p50/p99 printed, since criterion does not
//! report tail percentiles. The Banking77 case trains on
//! `../../../shared/data/banking77/train.csv` and is skipped if that is absent.

use criterion::{criterion_group, Criterion};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;
use switchboard_nlp::{dataset, IntentModel, Pipeline, TrainConfig};

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
    println!("{name:<28} p50 {p50:>7.2} µs   p99 {p99:>7.2} µs");
}

fn banking77() -> Option<IntentModel> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/banking77/train.csv");
    if !path.exists() {
        println!("skipping the Banking77 case: {} not found", path.display());
        return None;
    }
    let examples = dataset::load(&path.display().to_string()).ok()?;
    let tokenizer = switchboard_nlp::tokens::Tokenizer::new();
    IntentModel::train(&examples, &tokenizer, &TrainConfig::default())
        .ok()
        .map(|(m, _)| m)
}

fn benches(c: &mut Criterion) {
    let started = Instant::now();
    let pipeline = Pipeline::with_default_model().expect("default model");
    println!(
        "default pipeline start-up: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let model = pipeline.model();
    let tok = pipeline.tokenizer();

    report(
        "classify/en (default)",
        percentiles(EN, 20_000, |t| {
            black_box(model.classify(tok, t));
        }),
    );
    report(
        "analyze/en",
        percentiles(EN, 20_000, |t| {
            black_box(pipeline.analyze(t));
        }),
    );
    report(
        "analyze/zh",
        percentiles(ZH, 20_000, |t| {
            black_box(pipeline.analyze(t));
        }),
    );
    let b77 = banking77();
    if let Some(m) = &b77 {
        report(
            "classify/en (banking77)",
            percentiles(EN, 20_000, |t| {
                black_box(m.classify(tok, t));
            }),
        );
    }

    let mut i = 0;
    let mut next = |texts: &[&'static str]| {
        i += 1;
        texts[i % texts.len()]
    };
    c.bench_function("classify/en (default)", |b| {
        b.iter(|| model.classify(tok, black_box(next(EN))))
    });
    c.bench_function("analyze/en", |b| {
        b.iter(|| pipeline.analyze(black_box(next(EN))))
    });
    c.bench_function("analyze/zh", |b| {
        b.iter(|| pipeline.analyze(black_box(next(ZH))))
    });
    if let Some(m) = &b77 {
        c.bench_function("classify/en (banking77)", |b| {
            b.iter(|| m.classify(tok, black_box(next(EN))))
        });
    }
}

criterion_group!(pipeline, benches);

fn main() {
    pipeline();
    Criterion::default().configure_from_args().final_summary();
}
