//! Measuring a training recipe: train on some examples, classify others, and
//! report in-scope accuracy, macro-F1, out-of-scope recall and latency; or
//! k-fold cross-validation on one set. Used by `switchboard nlp eval`.
//!
//! Definitions: a prediction is the top intent when its calibrated
//! probability reaches the threshold and the `oos` class (when the model has
//! one) does not win, else "out of scope". In-scope accuracy
//! counts an in-scope test message right only when the prediction is its
//! intent (a rejection is wrong). Macro-F1 averages per-intent F1 over the
//! intents present in the test set. Latency is per `IntentModel::classify`
//! call on raw text (normalise + tokenise + features + scores).

use crate::dataset::Example;
use crate::error::{Error, Result};
use crate::intent::{IntentModel, TrainConfig, TrainReport};
use crate::tokens::Tokenizer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// The figures `switchboard nlp eval --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub accuracy: f64,
    /// In-scope accuracy of the top intent, ignoring the threshold.
    pub accuracy_top1: f64,
    pub macro_f1: f64,
    pub oos_recall: Option<f64>,
    pub n_train: usize,
    pub n_test: usize,
    pub n_test_oos: usize,
    pub train_seconds: f64,
    pub classify_p50_us: f64,
    pub classify_p99_us: f64,
    pub threshold: f32,
    pub temperature: f32,
    /// Number of folds when this is a cross-validation average.
    pub folds: Option<usize>,
    /// Share of the in-scope test messages that got an intent (the bot
    /// would answer them). Printed in the summary, not in the JSON, whose
    /// keys other tools rely on.
    #[serde(skip_serializing)]
    pub answered: f64,
    /// Share of those answers that were right.
    #[serde(skip_serializing)]
    pub answer_precision: f64,
}

/// Counts from which the rates are computed.
#[derive(Default)]
struct Tally {
    n_in: usize,
    answered: usize,
    correct: usize,
    correct_top1: usize,
    n_oos: usize,
    oos_rejected: usize,
    /// Per intent: (true positives, false positives, false negatives).
    per_intent: BTreeMap<String, (usize, usize, usize)>,
}

/// Trains on `train`, tests on `test`.
pub fn evaluate(
    train: &[Example],
    test: &[Example],
    tokenizer: &Tokenizer,
    cfg: &TrainConfig,
) -> Result<EvalReport> {
    let trained = IntentModel::train(train, tokenizer, cfg)?;
    Ok(test_model(&trained, train.len(), test, tokenizer))
}

/// Classifies `test` with a trained model, timing each call.
fn test_model(
    (model, report): &(IntentModel, TrainReport),
    n_train: usize,
    test: &[Example],
    tokenizer: &Tokenizer,
) -> EvalReport {
    let mut tally = Tally::default();
    let mut micros = Vec::with_capacity(test.len());
    for e in test {
        let started = Instant::now();
        let p = model.classify(tokenizer, &e.text);
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        let top = model.labels()[p.index].as_str();
        tally.record(e, top, model.intent_of(&p));
    }
    tally.report(&micros, n_train, report.seconds, model)
}

impl Tally {
    fn record(&mut self, e: &Example, top: &str, predicted: Option<&str>) {
        if let Some(p) = predicted {
            self.per_intent.entry(p.to_owned()).or_default();
        }
        if e.is_oos() {
            self.n_oos += 1;
            match predicted {
                None => self.oos_rejected += 1,
                Some(p) => self.per_intent.entry(p.to_owned()).or_default().1 += 1,
            }
            return;
        }
        self.n_in += 1;
        self.answered += usize::from(predicted.is_some());
        self.correct_top1 += usize::from(top == e.label);
        let truth = self.per_intent.entry(e.label.clone()).or_default();
        if predicted == Some(e.label.as_str()) {
            self.correct += 1;
            truth.0 += 1;
            return;
        }
        truth.2 += 1;
        if let Some(p) = predicted {
            self.per_intent.entry(p.to_owned()).or_default().1 += 1;
        }
    }

    fn report(
        &self,
        micros: &[f64],
        n_train: usize,
        train_seconds: f64,
        model: &IntentModel,
    ) -> EvalReport {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let f1s: Vec<f64> = self
            .per_intent
            .values()
            .filter(|(tp, _, fn_)| tp + fn_ > 0)
            .map(|(tp, fp, fn_)| ratio(2 * tp, 2 * tp + fp + fn_))
            .collect();
        EvalReport {
            accuracy: ratio(self.correct, self.n_in),
            accuracy_top1: ratio(self.correct_top1, self.n_in),
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
            oos_recall: (self.n_oos > 0).then(|| ratio(self.oos_rejected, self.n_oos)),
            n_train,
            n_test: self.n_in + self.n_oos,
            n_test_oos: self.n_oos,
            train_seconds,
            classify_p50_us: percentile(micros, 0.50),
            classify_p99_us: percentile(micros, 0.99),
            threshold: model.threshold(),
            temperature: model.temperature(),
            folds: None,
            answered: ratio(self.answered, self.n_in),
            answer_precision: ratio(self.correct, self.answered),
        }
    }
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = ((v.len() - 1) as f64 * q).round() as usize;
    v[at.min(v.len() - 1)]
}

/// Stratified k-fold cross-validation on one set; the report averages the
/// folds (sizes are per fold, latency percentiles the mean of the folds').
/// Trains two folds at a time, then tests each fold alone so the latency
/// figures are not taken while another fold trains.
pub fn cross_validate(
    data: &[Example],
    k: usize,
    tokenizer: &Tokenizer,
    cfg: &TrainConfig,
) -> Result<EvalReport> {
    if k < 2 {
        return Err(Error::Training(
            "cross-validation needs at least 2 folds".into(),
        ));
    }
    let folds = assign_folds(data, k, cfg.seed);
    let mut filled = vec![false; k];
    for &f in &folds {
        filled[f] = true;
    }
    if filled.contains(&false) {
        return Err(Error::Training(format!(
            "{k} folds for {} examples: some fold would test nothing",
            data.len()
        )));
    }
    let split = |fold: usize| -> (Vec<Example>, Vec<Example>) {
        data.iter()
            .zip(&folds)
            .map(|(e, f)| (e.clone(), *f == fold))
            .fold(
                (Vec::new(), Vec::new()),
                |(mut tr, mut te), (e, is_test)| {
                    if is_test {
                        te.push(e)
                    } else {
                        tr.push(e)
                    }
                    (tr, te)
                },
            )
    };
    let mut reports = Vec::with_capacity(k);
    for pair in (0..k).collect::<Vec<_>>().chunks(2) {
        let trained: Vec<Result<(IntentModel, TrainReport)>> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&f| s.spawn(move || IntentModel::train(&split(f).0, tokenizer, cfg)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Training("fold panicked".into())))
                })
                .collect()
        });
        for (&fold, model) in pair.iter().zip(trained) {
            let (train, test) = split(fold);
            reports.push(test_model(&model?, train.len(), &test, tokenizer));
        }
    }
    Ok(average(&reports))
}

/// Fold of each example: per label, a seeded shuffle dealt round-robin
/// (public so baselines can be cross-validated on the same folds).
pub fn assign_folds(data: &[Example], k: usize, seed: u64) -> Vec<usize> {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in data.iter().enumerate() {
        by_label.entry(e.label.as_str()).or_default().push(i);
    }
    let mut rng = crate::intent::SplitMix(seed ^ 0xF01D);
    let mut folds = vec![0; data.len()];
    let mut next = 0;
    for (_, mut idx) in by_label {
        rng.shuffle(&mut idx);
        for i in idx {
            folds[i] = next % k;
            next += 1;
        }
    }
    folds
}

fn average(reports: &[EvalReport]) -> EvalReport {
    let n = reports.len().max(1) as f64;
    let mean = |f: &dyn Fn(&EvalReport) -> f64| reports.iter().map(f).sum::<f64>() / n;
    let oos: Vec<f64> = reports.iter().filter_map(|r| r.oos_recall).collect();
    EvalReport {
        accuracy: mean(&|r| r.accuracy),
        accuracy_top1: mean(&|r| r.accuracy_top1),
        macro_f1: mean(&|r| r.macro_f1),
        oos_recall: (!oos.is_empty()).then(|| oos.iter().sum::<f64>() / oos.len() as f64),
        n_train: reports.first().map_or(0, |r| r.n_train),
        n_test: reports.first().map_or(0, |r| r.n_test),
        n_test_oos: reports.first().map_or(0, |r| r.n_test_oos),
        train_seconds: mean(&|r| r.train_seconds),
        classify_p50_us: mean(&|r| r.classify_p50_us),
        classify_p99_us: mean(&|r| r.classify_p99_us),
        threshold: reports.first().map_or(0.0, |r| r.threshold),
        temperature: reports.first().map_or(1.0, |r| r.temperature),
        folds: Some(reports.len()),
        answered: mean(&|r| r.answered),
        answer_precision: mean(&|r| r.answer_precision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Vec<Example> {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(Example::new(
                format!("where is my parcel number {i}"),
                "track",
            ));
            out.push(Example::new(
                format!("i want a refund for item {i}"),
                "refund",
            ));
            out.push(Example::new(
                format!("hello good morning friend {i}"),
                "greet",
            ));
        }
        out
    }

    #[test]
    fn evaluate_counts_oos_and_accuracy() {
        let tok = Tokenizer::new();
        let mut test = toy(2);
        test.push(Example::new("qwzx vvbn", "oos"));
        let r = evaluate(&toy(10), &test, &tok, &TrainConfig::default()).unwrap();
        assert_eq!(r.n_test, 7);
        assert_eq!(r.n_test_oos, 1);
        assert!(r.oos_recall.is_some());
        assert!(r.accuracy > 0.9, "{r:?}");
    }

    #[test]
    fn cross_validation_runs_every_fold() {
        let tok = Tokenizer::new();
        let r = cross_validate(&toy(10), 5, &tok, &TrainConfig::default()).unwrap();
        assert_eq!(r.folds, Some(5));
        assert_eq!(r.n_test, 6);
        assert!(r.oos_recall.is_none());
        assert!(cross_validate(&toy(3), 1, &tok, &TrainConfig::default()).is_err());
        // 9 examples cannot fill 20 folds (it ran, and reported 2 % accuracy).
        let e = cross_validate(&toy(3), 20, &tok, &TrainConfig::default()).unwrap_err();
        assert!(e.to_string().contains("20 folds for 9 examples"), "{e}");
        assert!(cross_validate(&toy(3), 9, &tok, &TrainConfig::default()).is_ok());
    }

    #[test]
    fn folds_are_balanced() {
        let folds = assign_folds(&toy(10), 5, 1);
        for f in 0..5 {
            assert_eq!(folds.iter().filter(|&&x| x == f).count(), 6);
        }
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
