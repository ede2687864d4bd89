//! What `Pipeline::analyze` costs where the server runs it: every message
//! different and the caches cooled by other work between two messages. The
//! criterion bench cycles through eight messages, so its stems, regex states,
//! VADER lookups and model rows stay in cache; here thousands of distinct
//! messages (`benches/common/messages.rs`: the shipped examples with varied
//! openings, tails and numbers) are analysed one by one, first back to back
//! ("warm"), then with a buffer streamed between calls ("cold"), and each
//! stage is also timed on its own so the profile says where the time goes.
//!
//! `cargo run --release -p switchboard-nlp --example cold_pipeline -- [--messages 4000] [--cool-mib 4] [--rounds 3] [--text TEXT]`
//!
//! `--text` times one message instead (4 000 times), e.g. the load test's
//! `"and what about the colour, is the blue one any good? and what ab"`.

#[path = "../benches/common/messages.rs"]
mod messages;

use std::hint::black_box;
use std::time::Instant;
use switchboard_nlp::entities::EntityExtractor;
use switchboard_nlp::language::LanguageDetector;
use switchboard_nlp::sentiment::SentimentAnalyzer;
use switchboard_nlp::{default_examples, normalize, EntityConfig, Pipeline};

/// Reads `--name value` as a number, or `default`.
fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Streams `buf` (reads and writes every cache line) to push other data out of cache.
fn cool(buf: &mut [u8]) {
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(&buf);
}

/// p50, p99 and mean of `us`, in µs.
fn summary(us: &mut [f64]) -> String {
    if us.is_empty() {
        return "no calls".into();
    }
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    format!(
        "p50 {:>6.2} µs  p99 {:>6.2} µs  mean {:>6.2} µs",
        us[us.len() / 2],
        us[us.len() * 99 / 100],
        mean
    )
}

/// Stage names, in pipeline order.
const STAGES: [&str; 6] = [
    "normalize",
    "language",
    "tokenize",
    "classify",
    "sentiment",
    "entities",
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = arg(&args, "--messages", 4000);
    let mut buf = vec![0u8; arg(&args, "--cool-mib", 4) << 20];
    let rounds = arg(&args, "--rounds", 3);

    let pipeline = Pipeline::with_default_model()?;
    let examples: Vec<(String, bool)> = default_examples()?
        .into_iter()
        .map(|e| {
            let chinese = e.text.chars().any(normalize::is_han);
            (e.text, chinese)
        })
        .collect();
    let texts = match args.iter().position(|a| a == "--text") {
        Some(i) => vec![args.get(i + 1).cloned().unwrap_or_default(); count],
        None => messages::distinct_messages(&examples, count),
    };
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{} messages, {:.0} bytes on average; cooling {} MiB between cold calls",
        texts.len(),
        bytes as f64 / texts.len().max(1) as f64,
        buf.len() >> 20
    );

    for round in 0..rounds {
        let mut warm = Vec::with_capacity(texts.len());
        for t in &texts {
            let start = Instant::now();
            black_box(pipeline.analyze(black_box(t)));
            warm.push(start.elapsed().as_secs_f64() * 1e6);
        }
        let mut cold = Vec::with_capacity(texts.len());
        for t in &texts {
            cool(&mut buf);
            let start = Instant::now();
            black_box(pipeline.analyze(black_box(t)));
            cold.push(start.elapsed().as_secs_f64() * 1e6);
        }
        println!("round {round}: analyze warm  {}", summary(&mut warm));
        println!("round {round}: analyze cold  {}", summary(&mut cold));
    }
    stages(&pipeline, &texts, &mut buf)
}

/// Each stage timed on its own, caches cooled before every message.
fn stages(pipeline: &Pipeline, texts: &[String], buf: &mut [u8]) -> anyhow::Result<()> {
    let language = LanguageDetector::new();
    let sentiment = SentimentAnalyzer::new();
    let entities = EntityExtractor::new(&EntityConfig::default())?;
    let tokenizer = pipeline.tokenizer();
    let model = pipeline.model();
    let mut us: Vec<Vec<f64>> = vec![Vec::with_capacity(texts.len()); STAGES.len()];
    for t in texts {
        cool(buf);
        let mut lap = Instant::now();
        let mut time = |stage: usize, us: &mut Vec<Vec<f64>>| {
            us[stage].push(lap.elapsed().as_secs_f64() * 1e6);
            lap = Instant::now();
        };
        let normalized = normalize::normalize(t);
        time(0, &mut us);
        let lang = language.detect(&normalized);
        time(1, &mut us);
        let tokens = tokenizer.tokenize(&normalized);
        time(2, &mut us);
        black_box(model.classify_tokens(&normalized, &tokens));
        time(3, &mut us);
        black_box(sentiment.score(lang, t, &tokens));
        time(4, &mut us);
        black_box(entities.extract(t));
        time(5, &mut us);
    }
    for (name, us) in STAGES.iter().zip(&mut us) {
        println!("stage {name:<10} cold  {}", summary(us));
    }
    Ok(())
}
