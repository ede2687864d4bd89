//! Where a training recipe goes wrong, for whoever edits the training data:
//! runs the same stratified k-fold cross-validation as `nlp eval --cv`, then
//! prints the most confused intent pairs, every misclassified message, and
//! how precision and coverage trade off as the threshold moves.
//!
//! `cargo run --release -p switchboard-nlp --example cv_errors -- default [K] [--settings JSON]`
//! (`default` or any data file `nlp eval` reads; `--quiet` omits the messages).

use std::collections::BTreeMap;
use switchboard_nlp::dataset::{self, Example};
use switchboard_nlp::eval::assign_folds;
use switchboard_nlp::tokens::Tokenizer;
use switchboard_nlp::{IntentModel, TrainConfig};

/// One test message's fate: truth, top intent, confidence, in scope.
struct Outcome {
    text: String,
    truth: String,
    top: String,
    confidence: f32,
    in_scope: bool,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args.first().map_or("default", String::as_str);
    let k: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let quiet = args.iter().any(|a| a == "--quiet");
    let data = if spec == "default" {
        switchboard_nlp::default_examples()?
    } else {
        dataset::load(spec)?
    };
    let cfg = config(&args, spec)?;
    let tokenizer = Tokenizer::new();
    let outcomes = cross_validate(&data, k, &tokenizer, &cfg)?;
    print_confusions(&outcomes, quiet);
    print_threshold_curve(&outcomes);
    Ok(())
}

/// The shipped settings for `default`, the eval defaults otherwise, then `--settings`.
fn config(args: &[String], spec: &str) -> anyhow::Result<TrainConfig> {
    let given = args
        .iter()
        .position(|a| a == "--settings")
        .and_then(|i| args.get(i + 1));
    Ok(match given {
        Some(json) => serde_json::from_str(json)?,
        None if spec == "default" => switchboard_nlp::default_model_config(),
        None => TrainConfig::default(),
    })
}

fn cross_validate(
    data: &[Example],
    k: usize,
    tokenizer: &Tokenizer,
    cfg: &TrainConfig,
) -> anyhow::Result<Vec<Outcome>> {
    let folds = assign_folds(data, k, cfg.seed);
    let mut out = Vec::new();
    for fold in 0..k {
        let train: Vec<Example> = data
            .iter()
            .zip(&folds)
            .filter(|(_, f)| **f != fold)
            .map(|(e, _)| e.clone())
            .collect();
        let (model, _) = IntentModel::train(&train, tokenizer, cfg)?;
        for (e, _) in data.iter().zip(&folds).filter(|(_, f)| **f == fold) {
            let p = model.classify(tokenizer, &e.text);
            out.push(Outcome {
                text: e.text.clone(),
                truth: e.label.clone(),
                top: model.labels()[p.index].clone(),
                // Rejected above the threshold: the `oos` class won, so it
                // is never answered.
                confidence: match p.in_scope || p.confidence < model.threshold() {
                    true => p.confidence,
                    false => 0.0,
                },
                in_scope: p.in_scope,
            });
        }
    }
    Ok(out)
}

fn print_confusions(outcomes: &[Outcome], quiet: bool) {
    let mut pairs: BTreeMap<(&str, &str), Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.truth != o.top) {
        pairs.entry((&o.truth, &o.top)).or_default().push(o);
    }
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for ((truth, top), wrong) in &pairs {
        println!("{:>3}  {truth} → {top}", wrong.len());
        if !quiet {
            for o in wrong {
                let mark = if o.in_scope { "answered" } else { "rejected" };
                println!("       {:.2} {mark}  {}", o.confidence, o.text);
            }
        }
    }
}

/// For thresholds 0.0..0.9: share of in-scope messages answered, precision
/// of those answers, in-scope accuracy, and share of `oos` rejected.
fn print_threshold_curve(outcomes: &[Outcome]) {
    let (ins, oos): (Vec<&Outcome>, Vec<&Outcome>) =
        outcomes.iter().partition(|o| o.truth != dataset::OOS);
    let top1 = ins.iter().filter(|o| o.truth == o.top).count();
    let answered_now = ins.iter().filter(|o| o.in_scope).count();
    let right_now = ins
        .iter()
        .filter(|o| o.in_scope && o.truth == o.top)
        .count();
    println!(
        "\n{} in-scope, {} oos; top-1 {:.2}%; at the trained thresholds: answered {:.2}%, precision {:.2}%, in-scope accuracy {:.2}%",
        ins.len(),
        oos.len(),
        pct(top1, ins.len()),
        pct(answered_now, ins.len()),
        pct(right_now, answered_now),
        pct(right_now, ins.len()),
    );
    println!("threshold  answered  precision  in-scope-acc  oos-rejected");
    for step in 0..=18 {
        let t = f32::from(u8::try_from(step).unwrap_or(0)) * 0.05;
        let answered: Vec<_> = ins.iter().filter(|o| o.confidence >= t).collect();
        let right = answered.iter().filter(|o| o.truth == o.top).count();
        let rejected = oos.iter().filter(|o| o.confidence < t).count();
        println!(
            "{t:>9.2}  {:>7.2}%  {:>8.2}%  {:>11.2}%  {:>11.2}%",
            pct(answered.len(), ins.len()),
            pct(right, answered.len()),
            pct(right, ins.len()),
            pct(rejected, oos.len()),
        );
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}
