//! The latency tail of intent classification: trains on a data set (with
//! `--settings` settings), then times `classify` call by call, with the
//! caches cooled between calls the way a server handling other work would
//! have them, over every message and over the longest 1 %.
//!
//! `cargo run --release -p switchboard-nlp --example long_tail -- ../shared/data/banking77/train.csv [--settings JSON]`

use std::hint::black_box;
use std::time::Instant;
use switchboard_nlp::dataset;
use switchboard_nlp::tokens::Tokenizer;
use switchboard_nlp::{IntentModel, TrainConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = dataset::load(&args[0])?;
    let cfg: TrainConfig = match args.iter().position(|a| a == "--settings") {
        Some(i) => serde_json::from_str(&args[i + 1])?,
        None => TrainConfig::default(),
    };
    let tokenizer = Tokenizer::new();
    let (model, report) = IntentModel::train(&data, &tokenizer, &cfg)?;
    println!(
        "{} rows, trained in {:.1} s",
        report.n_features, report.seconds
    );
    let mut texts: Vec<&str> = data.iter().map(|e| e.text.as_str()).collect();
    texts.sort_by_key(|t| std::cmp::Reverse(t.split_whitespace().count()));
    let longest = &texts[..texts.len().div_ceil(100)];
    println!(
        "longest 1 %: {} messages of {}–{} words",
        longest.len(),
        longest.last().map_or(0, |t| t.split_whitespace().count()),
        longest.first().map_or(0, |t| t.split_whitespace().count())
    );
    // 16 MiB streamed between calls evicts the model's rows from L1/L2 and
    // most of a shared L3, as eval's one pass over many messages does.
    let mut cold = vec![0u8; 16 << 20];
    for (name, set) in [("all", &texts[..]), ("longest 1 %", longest)] {
        for pass in ["warm", "cold"] {
            let mut us = Vec::new();
            let rounds = if set.len() > 2000 { 3 } else { 20 };
            for round in 0..rounds {
                for (i, t) in set.iter().enumerate() {
                    if pass == "cold" {
                        cold.iter_mut()
                            .step_by(64)
                            .for_each(|b| *b = b.wrapping_add(1));
                    } else if round == 0 && i == 0 {
                        model.classify(&tokenizer, t);
                    }
                    let started = Instant::now();
                    black_box(model.classify(&tokenizer, black_box(t)));
                    us.push(started.elapsed().as_secs_f64() * 1e6);
                }
                if pass == "cold" && set.len() > 2000 {
                    break;
                }
            }
            us.sort_by(f64::total_cmp);
            let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
            println!(
                "{name:<12} {pass}: p50 {:>6.1} µs  p90 {:>6.1} µs  p99 {:>6.1} µs  ({} calls)",
                at(0.5),
                at(0.9),
                at(0.99),
                us.len()
            );
        }
    }
    black_box(&cold);
    stages(&model, &tokenizer, longest);
    Ok(())
}

/// Mean µs per stage over `texts` (warm, 20 rounds).
fn stages(model: &IntentModel, tokenizer: &Tokenizer, texts: &[&str]) {
    let features = switchboard_nlp::features::FeatureConfig::default();
    let (mut norm, mut tok, mut feat, mut total) = (0.0, 0.0, 0.0, 0.0);
    let mut n_feat = 0;
    let mut scratch = switchboard_nlp::features::FeatureScratch::default();
    let mut out = Vec::new();
    for _ in 0..20 {
        for t in texts {
            let s = Instant::now();
            let normalized = switchboard_nlp::normalize::normalize(t);
            norm += s.elapsed().as_secs_f64();
            let s = Instant::now();
            let tokens = tokenizer.tokenize(&normalized);
            tok += s.elapsed().as_secs_f64();
            let s = Instant::now();
            out.clear();
            features.extract_with(&normalized, &tokens, &mut scratch, &mut out);
            feat += s.elapsed().as_secs_f64();
            n_feat += out.len();
            let s = Instant::now();
            black_box(model.classify_tokens(&normalized, &tokens));
            total += s.elapsed().as_secs_f64();
        }
    }
    let n = (20 * texts.len()) as f64 / 1e6;
    println!(
        "stages (µs, warm): normalize {:.1}, tokenize {:.1}, features {:.1} ({} per message), classify_tokens {:.1}",
        norm / n, tok / n, feat / n, n_feat / (20 * texts.len()), total / n
    );
}
