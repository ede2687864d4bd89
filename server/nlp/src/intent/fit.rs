//! Training of [`IntentModel`]: vocabulary and idf from the training set,
//! AdaGrad on the softmax loss, then temperature and threshold from a
//! held-out slice. Pure and deterministic for a given [`TrainConfig::seed`].

use super::{softmax, top_probability, IntentModel, SparseVector, TrainConfig};
use crate::dataset::{Example, OOS};
use crate::error::{Error, Result};
use crate::features::Hashed;
use crate::normalize::normalize;
use crate::tokens::{Token, Tokenizer};
use std::collections::BTreeMap;
use std::time::Instant;

/// What training did, for logs and the eval command.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub n_train: usize,
    pub n_oos: usize,
    pub n_intents: usize,
    pub n_features: usize,
    pub temperature: f32,
    pub threshold: f32,
    pub seconds: f64,
}

/// A training set after featurisation: hashed features and class ids.
struct Prepared {
    labels: Vec<String>,
    hashed: Vec<Vec<Hashed>>,
    classes: Vec<u32>,
    oos: Vec<Vec<Hashed>>,
}

pub(super) fn train(
    examples: &[Example],
    tokenizer: &Tokenizer,
    cfg: &TrainConfig,
) -> Result<(IntentModel, TrainReport)> {
    let started = Instant::now();
    let data = prepare(examples, tokenizer, cfg)?;
    let oos_class = data.labels.iter().position(|l| l == OOS);
    let share = |class: u32| match Some(class as usize) == oos_class {
        true => cfg.oos_holdout,
        false => cfg.holdout,
    };
    let (fit_idx, held_idx) = stratified_split(&data.classes, share, cfg.seed);
    let (mut model, (temperature, threshold)) = fit_and_calibrate(&data, &fit_idx, &held_idx, cfg)?;
    model.temperature = temperature;
    model.threshold = threshold;
    let n_oos_class = oos_class.map_or(0, |c| {
        data.classes.iter().filter(|&&y| y as usize == c).count()
    });
    let report = TrainReport {
        n_train: data.classes.len() - n_oos_class,
        n_oos: data.oos.len() + n_oos_class,
        n_intents: data.labels.len() - usize::from(oos_class.is_some()),
        n_features: model.keys.len(),
        temperature,
        threshold,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

/// The model trained on every example, and (temperature, threshold) from a
/// model trained on `fit` and calibrated on `held`. The final model does not
/// depend on the calibration, so the two fits run at once: start-up trains
/// the shipped model and waits for it.
fn fit_and_calibrate(
    data: &Prepared,
    fit: &[usize],
    held: &[usize],
    cfg: &TrainConfig,
) -> Result<(IntentModel, (f32, f32))> {
    let all: Vec<usize> = (0..data.classes.len()).collect();
    std::thread::scope(|s| {
        let calibration = s.spawn(|| {
            if held.is_empty() {
                return Ok((1.0, cfg.default_threshold));
            }
            let partial = fit_subset(data, fit, cfg)?;
            Ok(calibrate(&partial, data, held, cfg))
        });
        let model = fit_subset(data, &all, cfg);
        let calibration = calibration
            .join()
            .unwrap_or_else(|_| Err(Error::Training("calibration panicked".into())));
        Ok((model?, calibration?))
    })
}

fn prepare(examples: &[Example], tokenizer: &Tokenizer, cfg: &TrainConfig) -> Result<Prepared> {
    let as_class = |e: &&Example| !e.is_oos() || cfg.oos_class;
    let mut ids: BTreeMap<&str, u32> = BTreeMap::new();
    for e in examples.iter().filter(as_class) {
        let next =
            u32::try_from(ids.len()).map_err(|_| Error::Training("too many intents".into()))?;
        ids.entry(e.label.as_str()).or_insert(next);
    }
    if ids.keys().filter(|l| **l != OOS).count() < 2 {
        return Err(Error::Training(
            "need examples of at least two intents".into(),
        ));
    }
    // Class ids in label order, so a model does not depend on example order.
    let labels: Vec<String> = ids.keys().map(|s| (*s).to_owned()).collect();
    for (i, id) in ids.values_mut().enumerate() {
        *id = u32::try_from(i).unwrap_or(u32::MAX);
    }
    let featurize = |normalized: &str, tokens: &[Token]| {
        let mut out = Vec::new();
        cfg.features.extract(normalized, tokens, &mut out);
        out
    };
    let mut data = Prepared {
        labels,
        hashed: Vec::new(),
        classes: Vec::new(),
        oos: Vec::new(),
    };
    for e in examples {
        let normalized = normalize(&e.text);
        let tokens = tokenizer.tokenize(&normalized);
        if !as_class(&e) {
            data.oos.push(featurize(&normalized, &tokens));
            continue;
        }
        data.hashed.push(featurize(&normalized, &tokens));
        data.classes.push(ids[e.label.as_str()]);
    }
    Ok(data)
}

/// Trains on the examples at `subset`: builds the vocabulary and idf from
/// them, vectorises, runs AdaGrad on `f32` weights and quantises the result
/// into the model.
fn fit_subset(data: &Prepared, subset: &[usize], cfg: &TrainConfig) -> Result<IntentModel> {
    let mut model = vocabulary(data, subset, cfg)?;
    let xs: Vec<SparseVector> = subset
        .iter()
        .map(|&i| model.vectorize(&data.hashed[i]))
        .collect();
    let ys: Vec<u32> = subset.iter().map(|&i| data.classes[i]).collect();
    let mut linear = Linear::zeros(model.keys.len(), model.labels.len());
    adagrad(&mut linear, &xs, &ys, cfg);
    model.set_weights(&linear.weights, linear.bias);
    Ok(model)
}

/// An untrained model whose rows are the feature keys seen in `subset`, with smoothed idf.
fn vocabulary(data: &Prepared, subset: &[usize], cfg: &TrainConfig) -> Result<IntentModel> {
    // Document frequency by sorting every message's distinct keys: much
    // faster than a map when pairs make the key set large.
    let mut all: Vec<u32> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    for &i in subset {
        seen.clear();
        seen.extend(data.hashed[i].iter().map(|(k, _)| *k));
        seen.sort_unstable();
        seen.dedup();
        all.extend_from_slice(&seen);
    }
    all.sort_unstable();
    let df: Vec<(u32, u32)> = all
        .chunk_by(|a, b| a == b)
        .map(|run| (run[0], u32::try_from(run.len()).unwrap_or(u32::MAX)))
        .filter(|&(_, d)| d >= cfg.min_df)
        .collect();
    let n = subset.len() as f32;
    let classes = data.labels.len();
    let mut idf: Vec<f32> = df
        .iter()
        .map(|&(_, d)| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
        .collect();
    if cfg.class_weighting > 0.0 {
        let focus = class_focus(data, subset, &df);
        for (v, f) in idf.iter_mut().zip(focus) {
            *v *= 1.0 + cfg.class_weighting * f;
        }
    }
    let mut model = IntentModel {
        labels: data.labels.clone(),
        features: cfg.features.clone(),
        keys: df.iter().map(|&(k, _)| k).collect(),
        vocabulary: Default::default(),
        rows: Vec::new(),
        bias: vec![0.0; classes],
        temperature: 1.0,
        threshold: 0.0,
        oos: None,
    };
    model.set_idf(&idf);
    model.rebuild_index()?;
    Ok(model)
}

/// Per key of `df`: 1 − H/Hmax of the distribution over classes of the
/// messages holding it (each class's count divided by its size, with one
/// pseudo-message spread over the classes): 1 for a feature of one class,
/// 0 for one spread evenly.
fn class_focus(data: &Prepared, subset: &[usize], df: &[(u32, u32)]) -> Vec<f32> {
    let classes = data.labels.len();
    let mut size = vec![0f32; classes];
    let mut pairs: Vec<u64> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    for &i in subset {
        let c = data.classes[i];
        size[c as usize] += 1.0;
        seen.clear();
        seen.extend(data.hashed[i].iter().map(|(k, _)| *k));
        seen.sort_unstable();
        seen.dedup();
        pairs.extend(seen.iter().map(|&k| (u64::from(k) << 32) | u64::from(c)));
    }
    pairs.sort_unstable();
    let h_max = (classes as f32).ln();
    let mut counts = vec![0f32; classes];
    let mut out = Vec::with_capacity(df.len());
    let mut at = 0;
    for &(key, _) in df {
        counts.iter_mut().for_each(|c| *c = 0.0);
        while at < pairs.len() && (pairs[at] >> 32) < u64::from(key) {
            at += 1;
        }
        while at < pairs.len() && (pairs[at] >> 32) == u64::from(key) {
            counts[(pairs[at] & 0xFFFF_FFFF) as usize] += 1.0;
            at += 1;
        }
        let p: Vec<f32> = counts
            .iter()
            .zip(&size)
            .map(|(c, n)| (c + 1.0 / classes as f32) / n.max(1.0))
            .collect();
        let total: f32 = p.iter().sum();
        let h: f32 = p
            .iter()
            .map(|x| x / total)
            .filter(|x| *x > 0.0)
            .map(|x| -x * x.ln())
            .sum();
        out.push(1.0 - h / h_max);
    }
    out
}

/// The weights being trained: row-major `rows × classes`, in `f32`.
#[derive(Clone)]
struct Linear {
    classes: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    fn zeros(rows: usize, classes: usize) -> Linear {
        Linear {
            classes,
            weights: vec![0.0; rows * classes],
            bias: vec![0.0; classes],
        }
    }

    fn scores(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let mut scores = self.bias.clone();
        for &(row, v) in x {
            let start = row as usize * self.classes;
            let w = &self.weights[start..start + self.classes];
            for (s, w) in scores.iter_mut().zip(w) {
                *s += v * w;
            }
        }
        scores
    }
}

/// Softmax regression by AdaGrad, one example at a time in a seeded order.
/// With [`TrainConfig::average_from`] < 1, the final weights are the mean of
/// the snapshots taken after each epoch from that share of training on
/// (epoch averaging smooths the last noisy SGD steps).
fn adagrad(model: &mut Linear, xs: &[SparseVector], ys: &[u32], cfg: &TrainConfig) {
    let mut state = AdaGrad::new(model, cfg);
    let mut order: Vec<usize> = (0..xs.len()).collect();
    let mut rng = SplitMix(cfg.seed);
    let first_avg = (cfg.epochs as f32 * cfg.average_from).floor() as usize;
    let mut sum: Option<(Linear, f32)> = None;
    for epoch in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            state.step(model, &xs[i], ys[i] as usize);
        }
        if epoch >= first_avg && cfg.average_from < 1.0 {
            let (acc, n) = sum.get_or_insert_with(|| (Linear::zeros(0, model.classes), 0.0));
            acc.weights.resize(model.weights.len(), 0.0);
            acc.weights
                .iter_mut()
                .zip(&model.weights)
                .for_each(|(s, x)| *s += x);
            acc.bias
                .iter_mut()
                .zip(&model.bias)
                .for_each(|(s, x)| *s += x);
            *n += 1.0;
        }
    }
    if let Some((acc, n)) = sum {
        model.weights = acc.weights.into_iter().map(|x| x / n).collect();
        model.bias = acc.bias.into_iter().map(|x| x / n).collect();
    }
}

/// AdaGrad's running state. The adaptive step is kept per feature row
/// (shared by the classes) so an update is one multiply-add per weight;
/// classes whose gradient is negligible are skipped, which makes late epochs
/// cheap once the model is confident.
struct AdaGrad {
    g2_row: Vec<f32>,
    g2_bias: Vec<f32>,
    active: Vec<(usize, f32)>,
    lr: f32,
    l2: f32,
    margin: f32,
    min_gradient: f32,
}

impl AdaGrad {
    fn new(model: &Linear, cfg: &TrainConfig) -> Self {
        AdaGrad {
            g2_row: vec![1e-6; model.weights.len() / model.classes.max(1)],
            g2_bias: vec![1e-6; model.classes],
            active: Vec::with_capacity(model.classes),
            lr: cfg.learning_rate,
            l2: cfg.l2,
            margin: cfg.margin,
            min_gradient: cfg.min_gradient,
        }
    }

    /// One update on example `x` of class `y`.
    fn step(&mut self, model: &mut Linear, x: &[(u32, f32)], y: usize) {
        let classes = model.classes;
        let mut p = model.scores(x);
        // Large-margin softmax: the true class must win by `margin`.
        p[y] -= self.margin;
        softmax(&mut p, 1.0);
        self.active.clear();
        let mut g_sq = 0.0;
        for (k, pk) in p.iter().enumerate() {
            let g = pk - if k == y { 1.0 } else { 0.0 };
            if g.abs() >= self.min_gradient {
                self.active.push((k, g));
                g_sq += g * g;
                self.g2_bias[k] += g * g;
                model.bias[k] -= self.lr * g / self.g2_bias[k].sqrt();
            }
        }
        for &(row, v) in x {
            let r = row as usize;
            self.g2_row[r] += g_sq * v * v;
            let step = self.lr * v / self.g2_row[r].sqrt();
            let w = &mut model.weights[r * classes..(r + 1) * classes];
            for &(k, g) in &self.active {
                w[k] -= step * (g + self.l2 * w[k]);
            }
        }
    }
}

/// Temperature (by grid search on held-out log-loss) and threshold: the
/// lowest that rejects [`TrainConfig::oos_recall_target`] of the off-topic
/// examples the partial model has not seen (all of them, or the held-out
/// slice of the `oos` class), raised to meet
/// [`TrainConfig::answer_precision`] on the held-out in-scope examples.
fn calibrate(
    partial: &IntentModel,
    data: &Prepared,
    held: &[usize],
    cfg: &TrainConfig,
) -> (f32, f32) {
    let logits = |h: &[Hashed]| partial.scores(&partial.vectorize(h));
    let held_logits: Vec<(Vec<f32>, u32)> = held
        .iter()
        .map(|&i| (logits(&data.hashed[i]), data.classes[i]))
        .collect();
    let temperature = fit_temperature(&held_logits);
    // (class, confidence) of an answer; confidence 0 for the `oos` class.
    let answer = |z: &[f32]| {
        let (index, confidence) = top_probability(z, temperature);
        match Some(index) == partial.oos {
            true => (index, 0.0),
            false => (index, confidence),
        }
    };
    let is_oos = |y: u32| Some(y as usize) == partial.oos;
    let oos: Vec<f32> = data
        .oos
        .iter()
        .map(|h| answer(&logits(h)).1)
        .chain(
            held_logits
                .iter()
                .filter(|(_, y)| is_oos(*y))
                .map(|(z, _)| answer(z).1),
        )
        .collect();
    let mut threshold = if oos.is_empty() {
        cfg.default_threshold
    } else {
        tune_threshold(&oos, cfg.oos_recall_target)
    };
    if cfg.answer_precision > 0.0 {
        let in_scope: Vec<(f32, bool)> = held_logits
            .iter()
            .filter(|(_, y)| !is_oos(*y))
            .map(|(z, y)| {
                let (index, confidence) = answer(z);
                (confidence, index == *y as usize)
            })
            .collect();
        threshold = threshold.max(precision_threshold(&in_scope, cfg.answer_precision));
    }
    (temperature, threshold)
}

/// The lowest threshold at which the answers given, `(confidence, right)`,
/// are right at least `target` of the time: the largest most-confident
/// share that is precise enough (1 when none is).
fn precision_threshold(answers: &[(f32, bool)], target: f32) -> f32 {
    let mut sorted = answers.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut right = 0usize;
    let mut best = None;
    for (n, (confidence, ok)) in sorted.iter().enumerate() {
        right += usize::from(*ok);
        // Ties: only a point where the confidence changes can be a threshold.
        let last_of_tie = sorted.get(n + 1).is_none_or(|next| next.0 < *confidence);
        if last_of_tie && right as f32 >= target * (n + 1) as f32 {
            best = Some(*confidence);
        }
    }
    best.unwrap_or(1.0)
}

/// The temperature in 0.05..20 that minimises held-out negative log-likelihood.
fn fit_temperature(held: &[(Vec<f32>, u32)]) -> f32 {
    let nll = |t: f32| -> f32 {
        held.iter()
            .map(|(z, y)| {
                let mut p = z.clone();
                softmax(&mut p, t);
                -p[*y as usize].max(1e-12).ln()
            })
            .sum()
    };
    let mut best = (1.0, nll(1.0));
    let mut t = 0.05f32;
    while t < 20.0 {
        let loss = nll(t);
        if loss < best.1 {
            best = (t, loss);
        }
        t *= 1.08;
    }
    best.0
}

/// The lowest threshold that rejects at least `target` of the held-out
/// out-of-scope examples: the product promises "at least this share of
/// off-topic messages reach a person" and keeps every in-scope answer it can
/// beyond that.
fn tune_threshold(oos: &[f32], target: f32) -> f32 {
    let mut conf: Vec<f32> = oos.to_vec();
    conf.sort_by(f32::total_cmp);
    let target = target.clamp(0.0, 1.0);
    // Rejecting the k least confident needs a threshold just above the k-th.
    let k = (conf.len() as f32 * target).ceil() as usize;
    match k {
        0 => 0.0,
        k => conf[k.min(conf.len()) - 1].next_up_approx(),
    }
}

/// The next `f32` above a confidence, so `confidence < threshold` holds.
trait NextUp {
    fn next_up_approx(self) -> f32;
}

impl NextUp for f32 {
    fn next_up_approx(self) -> f32 {
        (self + 1e-6).min(1.0)
    }
}

/// Indices of each class split into (train, held out): `share(class)` of every class
/// with at least three examples, at least one, chosen by a seeded shuffle.
fn stratified_split(
    classes: &[u32],
    share: impl Fn(u32) -> f32,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, c) in classes.iter().enumerate() {
        by_class.entry(*c).or_default().push(i);
    }
    let mut rng = SplitMix(seed ^ 0x5EED);
    let (mut fit, mut held) = (Vec::new(), Vec::new());
    for (class, mut idx) in by_class {
        rng.shuffle(&mut idx);
        let share = share(class);
        let want = (idx.len() as f32 * share).round() as usize;
        let take = if share > 0.0 && idx.len() >= 3 {
            want.max(1)
        } else {
            0
        };
        held.extend_from_slice(&idx[..take]);
        fit.extend_from_slice(&idx[take..]);
    }
    fit.sort_unstable();
    held.sort_unstable();
    (fit, held)
}

/// SplitMix64: a tiny, stable PRNG so training is reproducible across
/// platforms and dependency upgrades.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next_u64() % (i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_and_seeded() {
        let classes: Vec<u32> = (0..100).map(|i| i % 4).collect();
        let (fit, held) = stratified_split(&classes, |_| 0.2, 1);
        assert_eq!(held.len(), 20);
        assert_eq!(fit.len() + held.len(), 100);
        for c in 0..4 {
            assert_eq!(held.iter().filter(|&&i| classes[i] == c).count(), 5);
        }
        assert_eq!(stratified_split(&classes, |_| 0.2, 1), (fit, held));
        let (_, held) = stratified_split(&classes, |c| if c == 3 { 0.6 } else { 0.2 }, 1);
        assert_eq!(held.iter().filter(|&&i| classes[i] == 3).count(), 15);
    }

    #[test]
    fn threshold_rejects_the_target_share_of_oos() {
        let oos = [0.4, 0.2, 0.9, 0.25];
        let t = tune_threshold(&oos, 0.5);
        assert!(t > 0.25 && t <= 0.4, "{t}");
        assert!(tune_threshold(&oos, 1.0) > 0.9);
        assert_eq!(tune_threshold(&oos, 0.0), 0.0);
        assert_eq!(tune_threshold(&[], 0.5), 0.0);
    }

    #[test]
    fn precision_threshold_keeps_the_largest_precise_share() {
        let answers = [
            (0.9, true),
            (0.8, true),
            (0.7, false),
            (0.6, true),
            (0.5, false),
        ];
        // Top 4: 3 of 4 right; top 5: 3 of 5.
        assert_eq!(precision_threshold(&answers, 0.75), 0.6);
        assert_eq!(precision_threshold(&answers, 0.9), 0.8);
        assert_eq!(precision_threshold(&answers, 0.5), 0.5);
        assert_eq!(precision_threshold(&[(0.9, false)], 0.5), 1.0);
        // Tied confidences are kept or dropped together.
        assert_eq!(
            precision_threshold(&[(0.9, true), (0.8, true), (0.8, false)], 0.7),
            0.9
        );
    }

    #[test]
    fn temperature_softens_overconfident_logits() {
        // Right only half the time but very confident: the best temperature is > 1.
        let held = vec![(vec![10.0, 0.0], 0), (vec![10.0, 0.0], 1)];
        assert!(fit_temperature(&held) > 1.0);
    }
}
