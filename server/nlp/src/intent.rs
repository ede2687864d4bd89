//! Stage 4: intent classification. Owns the classifier: TF-IDF weighting of
//! hashed features, a sparse multinomial logistic regression trained with
//! AdaGrad, temperature scaling for calibrated probabilities, and the
//! out-of-scope threshold.
//!
//! Out-of-scope (`oos`) examples are, by default, a class of their own: a
//! message whose top class is `oos` gets no intent ([`TrainConfig::oos_class`];
//! without it they only tune the threshold). Training holds out a stratified
//! slice of every class (a larger one of `oos`), trains on the rest, fits the
//! temperature on the held-out slice and the threshold: the lowest that
//! rejects [`TrainConfig::oos_recall_target`] of the held-out `oos` examples,
//! raised if need be until the held-out in-scope answers are right
//! [`TrainConfig::answer_precision`] of the time. Then it retrains on
//! everything with those two numbers. Without `oos` examples or a precision
//! target, the threshold is [`TrainConfig::default_threshold`].
//!
//! Only features seen in training get a weight row, so the model stays small:
//! a `Vocabulary` (open addressing over the hashed keys) maps a key to its row.
//!
//! Classification is the hot path and allocates nothing once warm: features,
//! rows and scores live in a per-thread `Scratch`; each weight row is packed
//! with its idf and scale as int8 weights (see `IntentModel::rows`), so a
//! feature costs one table probe and one contiguous row; and only the winning
//! intent's probability is computed (one pass of `exp` for the softmax
//! normaliser).

use crate::dataset::{Example, OOS};
use crate::error::{Error, Result};
use crate::features::{FeatureConfig, FeatureScratch, Hashed, BLOCKS};
use crate::normalize::normalize;
use crate::tokens::{Token, Tokenizer};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

mod fit;
mod model_file;
mod vocabulary;

pub(crate) use fit::SplitMix;
pub use fit::TrainReport;
use vocabulary::Vocabulary;

/// Everything that shapes training. Deterministic for a given seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub features: FeatureConfig,
    pub seed: u64,
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    /// Share of each in-scope class held out to fit temperature and threshold.
    pub holdout: f32,
    /// Share of the `oos` class held out when it is one
    /// ([`TrainConfig::oos_class`]): larger than `holdout`, because the
    /// threshold is tuned on these alone.
    pub oos_holdout: f32,
    /// Threshold used when the training data has no `oos` example.
    pub default_threshold: f32,
    /// Share of the held-out `oos` examples the threshold must reject.
    pub oos_recall_target: f32,
    /// Features seen in fewer training messages than this get no weight row
    /// (smaller, more cache-friendly models; rare n-grams carry little).
    pub min_df: u32,
    /// Average the weights of the epochs from this share of training on (1 = off).
    pub average_from: f32,
    /// Margin by which training asks the true class to win (0 = plain softmax).
    pub margin: f32,
    /// Class gradients smaller than this are skipped in an update.
    pub min_gradient: f32,
    /// `oos` examples form a class of their own (a message whose top class
    /// it is gets no intent) instead of only tuning the threshold: the model
    /// then learns what off-topic looks like, so it needs a lower threshold
    /// to reject the same share of it (CLINC150: 93.1 % in-scope accuracy at
    /// 61 % out-of-scope recall, against 92.6 % at 64 % without).
    pub oos_class: bool,
    /// When above 0, the threshold is raised (never lowered) to the lowest at
    /// which the held-out in-scope messages the model answers are right at
    /// least this often: "answer only when likely right".
    pub answer_precision: f32,
    /// Supervised term weighting: a feature's idf is multiplied by
    /// `1 + class_weighting × (1 − H/Hmax)` of its spread over the classes
    /// (0 = off). Free at run time: it is folded into the stored idf.
    pub class_weighting: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            features: FeatureConfig::default(),
            seed: 42,
            epochs: 16,
            learning_rate: 0.4,
            l2: 0.0,
            holdout: 0.1,
            oos_holdout: 0.5,
            default_threshold: 0.0,
            oos_recall_target: 0.5,
            min_gradient: 1e-3,
            margin: 2.0,
            average_from: 1.0,
            min_df: 2,
            oos_class: true,
            answer_precision: 0.0,
            class_weighting: 0.0,
        }
    }
}

/// The classifier's answer for one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentPrediction {
    /// Index into [`IntentModel::labels`] of the most probable intent
    /// (never the `oos` class).
    pub index: usize,
    /// Its calibrated probability.
    pub confidence: f32,
    /// Whether `confidence` reaches the model's threshold and the `oos`
    /// class, when there is one, is not more probable.
    pub in_scope: bool,
}

/// A trained intent classifier. Immutable and `Send + Sync`.
#[derive(Debug, Clone)]
pub struct IntentModel {
    labels: Vec<String>,
    features: FeatureConfig,
    /// Feature key of each weight row, ascending.
    keys: Vec<u32>,
    /// Key → row (rebuilt from `keys` on load).
    vocabulary: Vocabulary,
    /// Everything about a feature row in one place, because classification
    /// is bound by fetching rows from memory: per row, [`ROW_HEADER`] bytes
    /// (idf and weight scale, `f32` little-endian) then one `i8` per label;
    /// a weight is `scale * i8`. A quarter of the bytes of `f32` weights, and
    /// one or two cache lines per feature for up to ~120 intents.
    rows: Vec<u8>,
    bias: Vec<f32>,
    temperature: f32,
    threshold: f32,
    /// Index of the `oos` label when off-topic messages are a class
    /// ([`TrainConfig::oos_class`]); derived from the labels.
    oos: Option<usize>,
}

/// Bytes before a row's weights: idf and scale.
const ROW_HEADER: usize = 8;

/// A message as the classifier sees it: (row, value) pairs, the value
/// TF-IDF scaled by its block's normaliser and weight (see
/// [`FeatureConfig::sublinear_tf`] for repeated features).
pub type SparseVector = Vec<(u32, f32)>;

/// Per-thread buffers of the hot path.
#[derive(Default)]
struct Scratch {
    features: FeatureScratch,
    hashed: Vec<Hashed>,
    rows: RowCounts,
    x: SparseVector,
    scores: Vec<f32>,
}

/// Buffers of [`IntentModel::count_rows`]: (row, block, occurrences), and
/// the hash set's slots (indices into `rows`).
#[derive(Default)]
struct RowCounts {
    rows: Vec<(u32, u8, u32)>,
    slots: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl IntentModel {
    /// Trains on `examples` (those labelled `oos` only tune the threshold).
    pub fn train(
        examples: &[Example],
        tokenizer: &Tokenizer,
        cfg: &TrainConfig,
    ) -> Result<(IntentModel, TrainReport)> {
        fit::train(examples, tokenizer, cfg)
    }

    /// The intents, indexed by [`IntentPrediction::index`].
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The out-of-scope threshold on calibrated probability.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Replaces the threshold (e.g. from configuration).
    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold;
    }

    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Number of weight rows (features seen in training).
    pub fn n_features(&self) -> usize {
        self.keys.len()
    }

    /// Classifies raw text (normalises and tokenises it first).
    pub fn classify(&self, tokenizer: &Tokenizer, text: &str) -> IntentPrediction {
        let normalized = normalize(text);
        let tokens = tokenizer.tokenize(&normalized);
        self.classify_tokens(&normalized, &tokens)
    }

    /// Classifies a message already normalised and tokenised by the pipeline.
    pub fn classify_tokens(&self, normalized: &str, tokens: &[Token]) -> IntentPrediction {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.classify_with(normalized, tokens, &mut scratch),
            // Only reachable by re-entering from inside a classification.
            Err(_) => self.classify_with(normalized, tokens, &mut Scratch::default()),
        })
    }

    fn classify_with(
        &self,
        normalized: &str,
        tokens: &[Token],
        scratch: &mut Scratch,
    ) -> IntentPrediction {
        let Scratch {
            features,
            hashed,
            rows,
            x,
            scores,
        } = scratch;
        hashed.clear();
        self.features
            .extract_with(normalized, tokens, features, hashed);
        self.vectorize_into(hashed, rows, x);
        self.scores_into(x, scores);
        let (index, confidence) = top_probability(scores, self.temperature);
        match self.oos {
            Some(oos) if oos == index => {
                // Off-topic won: report the best intent, rejected. Its
                // probability is the winner's scaled by exp(Δscore / T).
                let (best, score) = argmax_except(scores, oos);
                let p = ((score - scores[oos]) / self.temperature).exp() * confidence;
                IntentPrediction {
                    index: best,
                    confidence: p,
                    in_scope: false,
                }
            }
            _ => IntentPrediction {
                index,
                confidence,
                in_scope: confidence >= self.threshold,
            },
        }
    }

    /// Raw scores (logits, before temperature) of every label for raw text:
    /// for analyses of the model, not the hot path (it allocates).
    pub fn logits(&self, tokenizer: &Tokenizer, text: &str) -> Vec<f32> {
        let normalized = normalize(text);
        let tokens = tokenizer.tokenize(&normalized);
        let mut hashed = Vec::new();
        self.features.extract(&normalized, &tokens, &mut hashed);
        self.scores(&self.vectorize(&hashed))
    }

    /// The intent name when in scope.
    pub fn intent_of(&self, p: &IntentPrediction) -> Option<&str> {
        p.in_scope.then(|| self.labels[p.index].as_str())
    }

    /// TF-IDF of hashed features: keys without a row are dropped (as unseen
    /// vocabulary is), each block is L2-normalised and scaled by its weight,
    /// and the weights are such that the whole vector has norm 1. Without
    /// [`FeatureConfig::sublinear_tf`] a repeated feature appears once per
    /// occurrence and the norms treat each occurrence as its own feature.
    fn vectorize_into(&self, hashed: &[Hashed], scratch: &mut RowCounts, x: &mut SparseVector) {
        // Classification waits on memory: a long message probes ~1 500 table
        // slots and reads ~1 000 rows scattered over megabytes. Touching them
        // in branch-free passes first lets the CPU fetch them all at once,
        // where the branchy loops below would wait for one miss at a time.
        std::hint::black_box(self.vocabulary.touch(hashed.iter().map(|(k, _)| *k)));
        self.count_rows(hashed, scratch);
        x.clear();
        let mut norms = [0f32; BLOCKS];
        let last = self.stride() - 1;
        let mut touched = 0u8;
        for &(row, block, n) in &scratch.rows {
            let tf = match n {
                1 => 1.0,
                n => 1.0 + (n as f32).ln(),
            };
            let bytes = self.row(row);
            // The row's last byte is usually on the next cache line.
            touched ^= bytes[last];
            let v = tf * f32_at(bytes, 0);
            norms[usize::from(block)] += v * v;
            x.push((row, v));
        }
        std::hint::black_box(touched);
        let scale = block_scales(norms, self.features.block_weights());
        for ((_, v), (_, block, _)) in x.iter_mut().zip(&scratch.rows) {
            *v *= scale[usize::from(*block)];
        }
    }

    /// The rows of `hashed` with their occurrence counts, in order of first
    /// occurrence (every occurrence on its own without sublinear tf). A
    /// small hash set finds repeats: sorting costs more at these sizes.
    fn count_rows(&self, hashed: &[Hashed], scratch: &mut RowCounts) {
        let RowCounts { rows, slots } = scratch;
        rows.clear();
        let size = (hashed.len() * 2).next_power_of_two().max(16);
        slots.clear();
        slots.resize(size, u32::MAX);
        let mask = size - 1;
        for &(key, block) in hashed {
            let Some(row) = self.vocabulary.row(key) else {
                continue;
            };
            if !self.features.sublinear_tf {
                rows.push((row, block, 1));
                continue;
            }
            let mut slot = (row.wrapping_mul(0x9E37_79B9) >> 7) as usize & mask;
            loop {
                let at = slots[slot];
                if at == u32::MAX {
                    slots[slot] = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                    rows.push((row, block, 1));
                    break;
                }
                let entry = &mut rows[at as usize];
                if entry.0 == row {
                    entry.2 += 1;
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
    }

    /// Raw scores (logits) of a vectorised message into `scores`. Rows are
    /// added four at a time: the score vector is longer than the registers
    /// hold, so each pass over it loads and stores it; one pass per four
    /// rows instead of per row took 11 % off a 77-intent classification.
    fn scores_into(&self, x: &[(u32, f32)], scores: &mut Vec<f32>) {
        scores.clear();
        scores.extend_from_slice(&self.bias);
        let mut groups = x.chunks_exact(4);
        for g in &mut groups {
            let (a, b, c, d) = (
                self.weighted(g[0]),
                self.weighted(g[1]),
                self.weighted(g[2]),
                self.weighted(g[3]),
            );
            let rows = a.1.iter().zip(b.1).zip(c.1.iter().zip(d.1));
            for (s, ((&qa, &qb), (&qc, &qd))) in scores.iter_mut().zip(rows) {
                *s += (a.0 * int8(qa) + b.0 * int8(qb)) + (c.0 * int8(qc) + d.0 * int8(qd));
            }
        }
        for &feature in groups.remainder() {
            let (v, weights) = self.weighted(feature);
            for (s, &q) in scores.iter_mut().zip(weights) {
                *s += v * int8(q);
            }
        }
    }

    /// A feature's value times its row's scale, and the row's int8 weights.
    #[inline]
    fn weighted(&self, (row, v): (u32, f32)) -> (f32, &[u8]) {
        let (header, weights) = self.row(row).split_at(ROW_HEADER);
        (v * f32_at(header, 4), weights)
    }

    fn stride(&self) -> usize {
        ROW_HEADER + self.labels.len()
    }

    fn row(&self, row: u32) -> &[u8] {
        let start = row as usize * self.stride();
        &self.rows[start..start + self.stride()]
    }

    /// Rows with these idfs and zero weights.
    fn set_idf(&mut self, idf: &[f32]) {
        let stride = self.stride();
        self.rows = vec![0; idf.len() * stride];
        for (row, v) in self.rows.chunks_mut(stride).zip(idf) {
            row[..4].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Quantises trained `f32` weights (row-major `rows × labels`) into the
    /// rows: per row, the largest magnitude maps to ±127.
    fn set_weights(&mut self, weights: &[f32], bias: Vec<f32>) {
        let stride = self.stride();
        for (row, w) in self
            .rows
            .chunks_mut(stride)
            .zip(weights.chunks(self.labels.len()))
        {
            let max = w.iter().fold(0f32, |m, w| m.max(w.abs()));
            let (scale, inv) = if max > 0.0 {
                (max / 127.0, 127.0 / max)
            } else {
                (0.0, 0.0)
            };
            row[4..ROW_HEADER].copy_from_slice(&scale.to_le_bytes());
            for (q, w) in row[ROW_HEADER..].iter_mut().zip(w) {
                // In -127..=127 after the clamp, so the cast cannot truncate.
                let v = (w * inv).round().clamp(-127.0, 127.0) as i8;
                *q = v.to_ne_bytes()[0];
            }
        }
        self.bias = bias;
    }

    fn vectorize(&self, hashed: &[Hashed]) -> SparseVector {
        let mut x = Vec::with_capacity(hashed.len());
        self.vectorize_into(hashed, &mut RowCounts::default(), &mut x);
        x
    }

    fn scores(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let mut scores = Vec::with_capacity(self.labels.len());
        self.scores_into(x, &mut scores);
        scores
    }

    fn rebuild_index(&mut self) -> Result<()> {
        if self.features.bits > 32 {
            return Err(Error::ModelFile(format!(
                "bad key size {}",
                self.features.bits
            )));
        }
        self.vocabulary = Vocabulary::new(&self.keys)
            .ok_or_else(|| Error::ModelFile("duplicate or zero feature key".into()))?;
        self.oos = self.labels.iter().position(|l| l == OOS);
        Ok(())
    }
}

/// A stored weight byte as the `i8` it holds.
#[inline]
fn int8(q: u8) -> f32 {
    f32::from(i8::from_ne_bytes([q]))
}

/// The little-endian `f32` at `at` in `bytes`.
#[inline]
fn f32_at(bytes: &[u8], at: usize) -> f32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    f32::from_le_bytes(b)
}

/// Per-block multipliers so each present block has norm `weight` and the
/// whole vector norm 1.
fn block_scales(norms: [f32; BLOCKS], weights: [f32; BLOCKS]) -> [f32; BLOCKS] {
    let total: f32 = norms
        .iter()
        .zip(&weights)
        .filter(|(n, _)| **n > 0.0)
        .map(|(_, w)| w * w)
        .sum();
    let total = if total > 0.0 { total.sqrt() } else { 1.0 };
    let mut out = [0.0; BLOCKS];
    for ((o, n), w) in out.iter_mut().zip(norms).zip(weights) {
        if n > 0.0 {
            *o = w / (n.sqrt() * total);
        }
    }
    out
}

/// (index, probability) of the top class under `softmax(scores / temperature)`,
/// without materialising the other probabilities.
pub(crate) fn top_probability(scores: &[f32], temperature: f32) -> (usize, f32) {
    let (index, max) = argmax(scores);
    let inv = 1.0 / temperature;
    let sum: f32 = scores.iter().map(|s| ((s - max) * inv).exp()).sum();
    (index, if sum > 0.0 { 1.0 / sum } else { 0.0 })
}

/// In-place softmax of `scores / temperature`.
pub(crate) fn softmax(scores: &mut [f32], temperature: f32) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = ((*s - max) / temperature).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// (index, value) of the largest element other than `skip`.
fn argmax_except(values: &[f32], skip: usize) -> (usize, f32) {
    values
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| *i != skip)
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
}

/// (index, value) of the largest element; (0, -inf) for an empty slice.
pub(crate) fn argmax(values: &[f32]) -> (usize, f32) {
    values
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Vec<Example> {
        let mut ex = Vec::new();
        for (label, texts) in [
            (
                "refund",
                [
                    "i want my money back",
                    "refund please",
                    "give me a refund",
                    "how do refunds work",
                    "return and refund",
                ],
            ),
            (
                "track",
                [
                    "where is my parcel",
                    "track my order",
                    "has my order shipped",
                    "tracking number please",
                    "where is my package",
                ],
            ),
            (
                "greet",
                ["hello there", "hi", "good morning", "hey", "hello"],
            ),
        ] {
            for t in texts {
                ex.push(Example::new(t, label));
            }
        }
        ex
    }

    #[test]
    fn learns_a_toy_problem() {
        let tok = Tokenizer::new();
        let (model, report) = IntentModel::train(&toy(), &tok, &TrainConfig::default()).unwrap();
        assert_eq!(report.n_train, 15);
        let p = model.classify(&tok, "I'd like a refund");
        assert_eq!(model.labels()[p.index], "refund");
        let p = model.classify(&tok, "where's my package?");
        assert_eq!(model.labels()[p.index], "track");
        assert!(p.confidence > 0.0 && p.confidence <= 1.0);
    }

    #[test]
    fn the_oos_class_rejects_but_names_the_best_intent() {
        let tok = Tokenizer::new();
        let mut ex = toy();
        for t in [
            "what is the weather",
            "tell me a joke",
            "who won the game",
            "what time is it",
            "sing a song",
        ] {
            ex.push(Example::new(t, OOS));
        }
        let (model, _) = IntentModel::train(&ex, &tok, &TrainConfig::default()).unwrap();
        assert!(model.labels().iter().any(|l| l == OOS));
        let p = model.classify(&tok, "tell me a joke about the weather");
        assert!(!p.in_scope, "{p:?}");
        assert_ne!(model.labels()[p.index], OOS);
        assert!(p.confidence < 0.5, "{p:?}");
        let p = model.classify(&tok, "where is my parcel");
        assert_eq!(model.intent_of(&p), Some("track"));
    }

    #[test]
    fn training_is_deterministic_with_a_seed() {
        let tok = Tokenizer::new();
        let cfg = TrainConfig::default();
        let (a, _) = IntentModel::train(&toy(), &tok, &cfg).unwrap();
        let (b, _) = IntentModel::train(&toy(), &tok, &cfg).unwrap();
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.threshold, b.threshold);
        let other = TrainConfig { seed: 7, ..cfg };
        let (c, _) = IntentModel::train(&toy(), &tok, &other).unwrap();
        assert_ne!(a.rows, c.rows);
    }

    #[test]
    fn needs_two_intents() {
        let tok = Tokenizer::new();
        let one = vec![Example::new("hi", "greet"), Example::new("hello", "greet")];
        assert!(matches!(
            IntentModel::train(&one, &tok, &TrainConfig::default()),
            Err(Error::Training(_))
        ));
    }

    #[test]
    fn probabilities_sum_to_one() {
        let mut s = vec![1.0, 2.0, 3.0];
        softmax(&mut s, 1.5);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(argmax(&s).0, 2);
    }

    #[test]
    fn top_probability_matches_softmax() {
        let scores = [0.5, 2.0, -1.0, 1.9];
        let mut p = scores.to_vec();
        softmax(&mut p, 0.7);
        let (i, conf) = top_probability(&scores, 0.7);
        assert_eq!(i, 1);
        assert!((conf - p[1]).abs() < 1e-6);
    }

    #[test]
    fn vectors_have_unit_norm() {
        let tok = Tokenizer::new();
        let (model, _) = IntentModel::train(&toy(), &tok, &TrainConfig::default()).unwrap();
        let text = "where is my refund, hello";
        let normalized = normalize(text);
        let mut hashed = Vec::new();
        model
            .features
            .extract(&normalized, &tok.tokenize(&normalized), &mut hashed);
        let x = model.vectorize(&hashed);
        let norm: f32 = x.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert!(x.len() < hashed.len(), "unseen features are dropped");
    }

    #[test]
    fn block_scales_weight_the_present_blocks() {
        let s = block_scales([4.0, 1.0, 0.0], [2.0, 1.0, 1.0]);
        // Word block: norm 2 scaled to weight 2, over sqrt(4 + 1).
        assert!((s[0] - 2.0 / (2.0 * 5f32.sqrt())).abs() < 1e-6);
        assert!((s[1] - 1.0 / 5f32.sqrt()).abs() < 1e-6);
        assert_eq!(s[2], 0.0);
    }
}
