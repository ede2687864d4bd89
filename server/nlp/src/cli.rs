//! `switchboard nlp …`: the commands the server's CLI mounts.
//!
//! ```text
//! switchboard nlp train --data FILE... --out MODEL [--seed N]
//! switchboard nlp eval  --train FILE... --test FILE... [--json] [--seed N]
//! switchboard nlp eval  --train FILE --cv 5 [--json]
//! ```
//!
//! A FILE is CSV with a `text,category` header, a JSON object of
//! `split → [[text, intent], …]` (CLINC150), or our own `[intent]`-sectioned
//! `.txt`; the word `default` names the shipped intents. A JSON path may pick
//! splits: `train_val.json:train,oos_train`. The intent `oos` marks
//! out-of-scope examples (a class of their own that also tunes the threshold
//! in training; they count towards out-of-scope recall in testing). Without
//! `--settings`, training on `default` alone uses the shipped model's settings.

use crate::dataset::{self, Example};
use crate::eval::{self, EvalReport};
use crate::intent::{IntentModel, TrainConfig};
use crate::tokens::Tokenizer;
use anyhow::Context;
use std::path::PathBuf;

/// `switchboard nlp <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NlpCommand {
    /// Train an intent model and write it to a model file.
    Train {
        /// Training data (repeatable; see the module docs for formats).
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<String>,
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
        /// Seed for shuffling and the held-out split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Training settings as JSON (inline or a file), overriding the
        /// defaults. Not `--config`: the server's CLI has a global `--config`
        /// (its TOML settings file).
        #[arg(long, value_name = "JSON")]
        settings: Option<String>,
    },
    /// Train on some files and measure on others (or cross-validate).
    Eval {
        /// Training data files.
        #[arg(long, required = true, num_args = 1..)]
        train: Vec<String>,
        /// Test data files (not needed with --cv).
        #[arg(long, num_args = 1..)]
        test: Vec<String>,
        /// Run stratified k-fold cross-validation on the training data instead.
        #[arg(long)]
        cv: Option<usize>,
        /// End with one JSON object on the last line.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Training settings as JSON (inline or a file), overriding the
        /// defaults. Not `--config`: the server's CLI has a global `--config`
        /// (its TOML settings file).
        #[arg(long, value_name = "JSON")]
        settings: Option<String>,
    },
}

/// Runs a command, printing to standard output.
pub fn run(cmd: NlpCommand) -> anyhow::Result<()> {
    match cmd {
        NlpCommand::Train {
            data,
            out,
            seed,
            settings,
        } => train(
            &data,
            &out,
            &train_config(seed, settings.as_deref(), &data)?,
        ),
        NlpCommand::Eval {
            train,
            test,
            cv,
            json,
            seed,
            settings,
        } => evaluate(
            &train,
            &test,
            cv,
            json,
            &train_config(seed, settings.as_deref(), &train)?,
        ),
    }
}

fn load_all(specs: &[String]) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    for spec in specs {
        if spec == "default" {
            out.extend(crate::default_examples()?);
        } else {
            out.extend(dataset::load(spec).with_context(|| format!("loading {spec}"))?);
        }
    }
    Ok(out)
}

/// The settings to train on `data` with: `config` (inline JSON or a JSON
/// file, over the defaults) when given, else the shipped model's settings
/// when the data is the shipped intents alone (so `eval --train default`
/// measures the model the product runs), else the defaults; with `seed`.
fn train_config(seed: u64, config: Option<&str>, data: &[String]) -> anyhow::Result<TrainConfig> {
    let mut cfg: TrainConfig = match config {
        None if data.iter().all(|d| d == "default") => crate::default_model_config(),
        None => TrainConfig::default(),
        Some(arg) => settings(arg)?,
    };
    cfg.seed = seed;
    Ok(cfg)
}

/// `--settings`: inline JSON or a JSON file, over the defaults. Errors name
/// the file, and a key that is not a setting is refused: ignored, a typo
/// (`{"epoch": 3}`) trained with the very default it meant to change.
fn settings(arg: &str) -> anyhow::Result<TrainConfig> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("--settings: cannot read {arg}"))?
    };
    let given: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--settings: malformed JSON in {arg}"))?;
    let known = serde_json::to_value(TrainConfig::default())?;
    if let Some(key) = unknown_key(&given, &known) {
        anyhow::bail!("--settings: unknown setting `{key}` (see TrainConfig and FeatureConfig)");
    }
    serde_json::from_value(given).context("--settings")
}

/// The first key of `given` (dotted, e.g. `features.bitz`) that `known`, a
/// serialized default, does not have.
fn unknown_key(given: &serde_json::Value, known: &serde_json::Value) -> Option<String> {
    let (serde_json::Value::Object(given), serde_json::Value::Object(known)) = (given, known)
    else {
        return None;
    };
    given.iter().find_map(|(key, value)| match known.get(key) {
        None => Some(key.clone()),
        Some(inner) => unknown_key(value, inner).map(|rest| format!("{key}.{rest}")),
    })
}

fn train(data: &[String], out: &std::path::Path, cfg: &TrainConfig) -> anyhow::Result<()> {
    let examples = load_all(data)?;
    let tokenizer = Tokenizer::new();
    let (model, report) = IntentModel::train(&examples, &tokenizer, cfg)?;
    std::fs::write(out, model.to_bytes()).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "trained {} intents on {} examples ({} oos) in {:.2}s: {} features, temperature {:.2}, threshold {:.3} → {}",
        report.n_intents,
        report.n_train,
        report.n_oos,
        report.seconds,
        report.n_features,
        report.temperature,
        report.threshold,
        out.display()
    );
    Ok(())
}

fn evaluate(
    train: &[String],
    test: &[String],
    cv: Option<usize>,
    json: bool,
    cfg: &TrainConfig,
) -> anyhow::Result<()> {
    let train_ex = load_all(train)?;
    let tokenizer = Tokenizer::new();
    let report = match cv {
        Some(k) => eval::cross_validate(&train_ex, k, &tokenizer, cfg)?,
        None => {
            anyhow::ensure!(!test.is_empty(), "--test FILE... is required without --cv");
            eval::evaluate(&train_ex, &load_all(test)?, &tokenizer, cfg)?
        }
    };
    print_summary(&report);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn print_summary(r: &EvalReport) {
    if let Some(k) = r.folds {
        println!("{k}-fold cross-validation (means over folds)");
    }
    println!("train: {} examples in {:.2}s", r.n_train, r.train_seconds);
    println!(
        "test: {} examples ({} out of scope)",
        r.n_test, r.n_test_oos
    );
    println!(
        "in-scope accuracy {:.2}% (top-1 ignoring threshold {:.2}%), macro-F1 {:.2}%",
        r.accuracy * 100.0,
        r.accuracy_top1 * 100.0,
        r.macro_f1 * 100.0
    );
    println!(
        "answered {:.2}% of the in-scope messages, {:.2}% of them right",
        r.answered * 100.0,
        r.answer_precision * 100.0
    );
    match r.oos_recall {
        Some(v) => println!(
            "out-of-scope recall {:.2}% at threshold {:.3}",
            v * 100.0,
            r.threshold
        ),
        None => println!(
            "no out-of-scope test examples (threshold {:.3})",
            r.threshold
        ),
    }
    println!(
        "classify p50 {:.1} µs, p99 {:.1} µs",
        r.classify_p50_us, r.classify_p99_us
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: NlpCommand,
    }

    #[test]
    fn parses_the_documented_command_lines() {
        let c = Cli::try_parse_from(["nlp", "train", "--data", "a.csv", "--out", "m.bin"]).unwrap();
        assert!(matches!(c.cmd, NlpCommand::Train { seed: 42, .. }));
        let c = Cli::try_parse_from([
            "nlp",
            "eval",
            "--train",
            "t.json:train,oos_train",
            "--test",
            "t.json:val",
            "x.csv",
            "--json",
        ])
        .unwrap();
        let NlpCommand::Eval { test, json, .. } = c.cmd else {
            panic!("not eval")
        };
        assert_eq!(test.len(), 2);
        assert!(json);
        assert!(Cli::try_parse_from(["nlp", "eval", "--train", "a.csv", "--cv", "5"]).is_ok());
    }

    #[test]
    fn eval_without_test_or_cv_is_an_error() {
        let r = evaluate(
            &["default".into()],
            &[],
            None,
            false,
            &TrainConfig::default(),
        );
        assert!(r.is_err());
    }

    /// `--settings` ignored keys it did not know, so a typo trained with the
    /// default, and a missing settings file was "No such file or directory"
    /// without its name.
    #[test]
    fn settings_refuse_unknown_keys_and_name_a_missing_file() {
        let data = ["d.csv".to_string()];
        let cfg =
            train_config(7, Some(r#"{"epochs": 3, "features": {"bits": 18}}"#), &data).unwrap();
        assert_eq!((cfg.epochs, cfg.features.bits, cfg.seed), (3, 18, 7));
        for (arg, says) in [
            (r#"{"epoch": 3}"#, "unknown setting `epoch`"),
            (
                r#"{"features": {"bitz": 18}}"#,
                "unknown setting `features.bitz`",
            ),
            ("/nonexistent/settings.json", "/nonexistent/settings.json"),
        ] {
            let err = format!("{:#}", train_config(42, Some(arg), &data).unwrap_err());
            assert!(err.contains(says), "{arg}: {err}");
        }
    }

    #[test]
    fn train_writes_a_loadable_model() {
        let dir = std::env::temp_dir().join(format!("sb-nlp-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("d.csv");
        std::fs::write(
            &csv,
            "text,category\nhi,greet\nhello,greet\nhey,greet\nbye,bye\nsee you,bye\nlater,bye\n",
        )
        .unwrap();
        let out = dir.join("m.bin");
        train(&[csv.display().to_string()], &out, &TrainConfig::default()).unwrap();
        let model = IntentModel::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(model.labels(), ["bye", "greet"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
