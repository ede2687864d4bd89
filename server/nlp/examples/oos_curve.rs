//! How well a model's confidence separates out-of-scope messages: trains on
//! one set, then for the test set's in-scope and `oos` messages prints the
//! in-scope accuracy each confidence score allows at several out-of-scope
//! recalls (the threshold placed on the test set itself, so this compares
//! scores, it does not measure a shipped threshold).
//!
//! `cargo run --release -p switchboard-nlp --example oos_curve -- TRAIN TEST [--settings JSON]`

use switchboard_nlp::dataset::{self, OOS};
use switchboard_nlp::tokens::Tokenizer;
use switchboard_nlp::{IntentModel, TrainConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let train = dataset::load(&args[0])?;
    let test = dataset::load(&args[1])?;
    let cfg: TrainConfig = match args.iter().position(|a| a == "--settings") {
        Some(i) => serde_json::from_str(&args[i + 1])?,
        None => TrainConfig::default(),
    };
    let tokenizer = Tokenizer::new();
    let (model, _) = IntentModel::train(&train, &tokenizer, &cfg)?;
    let t = model.temperature();
    // Per test message: (is oos, top-1 right, scores by name).
    let mut rows: Vec<(bool, bool, [f32; 3])> = Vec::new();
    for e in &test {
        let z = model.logits(&tokenizer, &e.text);
        let mut order: Vec<usize> = (0..z.len()).collect();
        order.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
        let (top, second) = (order[0], order[1]);
        let label = &model.labels()[top];
        let max = z[top];
        let sum: f32 = z.iter().map(|s| ((s - max) / t).exp()).sum();
        let p1 = 1.0 / sum;
        let p2 = ((z[second] - max) / t).exp() / sum;
        let oos_class = label == OOS;
        let scores = if oos_class {
            [0.0, f32::NEG_INFINITY, 0.0]
        } else {
            [p1, max, p1 - p2]
        };
        rows.push((e.is_oos(), !e.is_oos() && *label == e.label, scores));
    }
    let n_in = rows.iter().filter(|r| !r.0).count() as f64;
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>8}",
        "score", "oos 50%", "60%", "70%", "80%"
    );
    for (s, name) in ["probability", "max logit", "top-2 margin"]
        .iter()
        .enumerate()
    {
        let mut oos: Vec<f32> = rows.iter().filter(|r| r.0).map(|r| r.2[s]).collect();
        oos.sort_by(f32::total_cmp);
        let mut line = format!("{name:<14}");
        for recall in [0.5, 0.6, 0.7, 0.8] {
            let k = ((oos.len() as f64 * recall).ceil() as usize).clamp(1, oos.len());
            let threshold = oos[k - 1];
            let right = rows
                .iter()
                .filter(|r| !r.0 && r.1 && r.2[s] > threshold)
                .count() as f64;
            line += &format!(" {:>7.2}%", 100.0 * right / n_in);
        }
        println!("{line}");
    }
    Ok(())
}
