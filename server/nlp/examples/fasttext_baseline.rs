//! The `fasttext` crate (pure Rust fastText, supervised) on the same data and
//! folds as `nlp eval`, as a baseline for our classifier:
//!
//! ```text
//! cargo run --release -p switchboard-nlp --example fasttext_baseline -- \
//!     --cv 5 ../shared/data/banking77/train.csv
//! cargo run --release -p switchboard-nlp --example fasttext_baseline -- \
//!     --train ../shared/data/clinc150/train_val.json:train,oos_train \
//!     --test ../shared/data/clinc150/train_val.json:val,oos_val
//! ```
//!
//! Settings: fastText's supervised recipe with word bigrams and character
//! 2–5-grams, 25 epochs, learning rate 0.5, one thread (deterministic), seed
//! 42; `FT_EPOCH`, `FT_LR_TENTHS`, `FT_MINN`, `FT_MAXN` override them. Out of scope is
//! a probability threshold rejecting half of the training `oos` examples,
//! as our own classifier does. Texts get our normalisation; fastText
//! tokenises on white space.

use anyhow::Context;
use fasttext::args::{Args, LossName, ModelName};
use fasttext::FastText;
use std::io::Write;
use std::time::Instant;
use switchboard_nlp::dataset::{self, Example};
use switchboard_nlp::normalize::normalize;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, k, file] if flag == "--cv" => cross_validate(&dataset::load(file)?, k.parse()?),
        [t, train, s, test] if t == "--train" && s == "--test" => {
            let report = run(&dataset::load(train)?, &dataset::load(test)?)?;
            println!("{report}");
            Ok(())
        }
        _ => anyhow::bail!("usage: --cv K FILE | --train FILE --test FILE"),
    }
}

fn cross_validate(data: &[Example], k: usize) -> anyhow::Result<()> {
    let folds = switchboard_nlp::eval::assign_folds(data, k, 42);
    let mut sum = Report::default();
    for fold in 0..k {
        let pick = |test: bool| -> Vec<Example> {
            data.iter()
                .zip(&folds)
                .filter(|(_, f)| (**f == fold) == test)
                .map(|(e, _)| e.clone())
                .collect()
        };
        let r = run(&pick(false), &pick(true))?;
        println!("fold {fold}: {r}");
        sum.add(&r);
    }
    sum.scale(k);
    println!("mean of {k} folds: {sum}");
    Ok(())
}

#[derive(Default)]
struct Report {
    accuracy: f64,
    macro_f1: f64,
    oos_recall: f64,
    train_seconds: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Report {
    fn add(&mut self, r: &Report) {
        self.accuracy += r.accuracy;
        self.macro_f1 += r.macro_f1;
        self.oos_recall += r.oos_recall;
        self.train_seconds += r.train_seconds;
        self.p50_us += r.p50_us;
        self.p99_us += r.p99_us;
    }

    fn scale(&mut self, k: usize) {
        let k = k as f64;
        for v in [
            &mut self.accuracy,
            &mut self.macro_f1,
            &mut self.oos_recall,
            &mut self.train_seconds,
            &mut self.p50_us,
            &mut self.p99_us,
        ] {
            *v /= k;
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accuracy {:.4}, macro-F1 {:.4}, oos recall {:.2}, train {:.1} s, predict p50 {:.1} µs p99 {:.1} µs",
            self.accuracy, self.macro_f1, self.oos_recall, self.train_seconds, self.p50_us, self.p99_us
        )
    }
}

fn run(train: &[Example], test: &[Example]) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("sb-fasttext-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("train.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for e in train.iter().filter(|e| !e.is_oos()) {
        writeln!(file, "__label__{} {}", e.label, clean(&e.text))?;
    }
    file.flush()?;
    drop(file);
    let mut args = Args::new();
    args.apply_supervised_defaults();
    args.input = input;
    args.model = ModelName::Supervised;
    args.loss = LossName::Softmax;
    args.epoch = env_or("FT_EPOCH", 25);
    args.lr = f64::from(env_or("FT_LR_TENTHS", 5)) / 10.0;
    args.word_ngrams = 2;
    args.minn = env_or("FT_MINN", 2);
    args.maxn = env_or("FT_MAXN", 5);
    args.bucket = 2_000_000;
    args.dim = 100;
    args.thread = 1;
    args.seed = 42;
    args.verbose = 0;
    let started = Instant::now();
    let model = FastText::train(args).context("fastText training")?;
    let train_seconds = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir)?;
    let top = |text: &str| -> (String, f32) {
        model
            .predict(&clean(text), 1, 0.0)
            .into_iter()
            .next()
            .map(|p| (p.label.trim_start_matches("__label__").to_owned(), p.prob))
            .unwrap_or_default()
    };
    let mut oos_conf: Vec<f32> = train
        .iter()
        .filter(|e| e.is_oos())
        .map(|e| top(&e.text).1)
        .collect();
    oos_conf.sort_by(f32::total_cmp);
    // The lowest threshold that rejects half of them (as `tune_threshold` does).
    let k = oos_conf.len().div_ceil(2);
    let threshold = k.checked_sub(1).map_or(0.0, |i| oos_conf[i] + 1e-6);
    Ok(score(test, threshold, train_seconds, top))
}

fn score(
    test: &[Example],
    threshold: f32,
    train_seconds: f64,
    top: impl Fn(&str) -> (String, f32),
) -> Report {
    let mut micros = Vec::new();
    let (mut n_in, mut right, mut n_oos, mut rejected) = (0, 0, 0, 0);
    let mut per: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
    for e in test {
        let started = Instant::now();
        let (label, prob) = top(&e.text);
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        let predicted = (prob >= threshold).then_some(label);
        if e.is_oos() {
            n_oos += 1;
            match &predicted {
                None => rejected += 1,
                Some(p) => per.entry(p.clone()).or_default()[1] += 1,
            }
            continue;
        }
        n_in += 1;
        if predicted.as_deref() == Some(e.label.as_str()) {
            right += 1;
            per.entry(e.label.clone()).or_default()[0] += 1;
        } else {
            per.entry(e.label.clone()).or_default()[2] += 1;
            if let Some(p) = predicted {
                per.entry(p).or_default()[1] += 1;
            }
        }
    }
    let f1s: Vec<f64> = per
        .values()
        .filter(|[tp, _, fn_]| tp + fn_ > 0)
        .map(|[tp, fp, fn_]| 2.0 * *tp as f64 / (2 * tp + fp + fn_) as f64)
        .collect();
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    Report {
        accuracy: right as f64 / n_in.max(1) as f64,
        macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
        oos_recall: rejected as f64 / n_oos.max(1) as f64,
        train_seconds,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

/// An `i32` setting from the environment (to try other settings), else `default`.
fn env_or(name: &str, default: i32) -> i32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Our normalisation, with punctuation split off so fastText's white-space
/// tokens are words.
fn clean(text: &str) -> String {
    normalize(text)
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
