//! Stage 4: intent classification. Owns the classifier: TF-IDF weighting of
//! hashed features, a sparse multinomial logistic regression trained with
//! AdaGrad, temperature scaling for calibrated probabilities, and the
//! out-of-scope threshold.
//!
//! Training holds out a stratified slice of the in-scope examples, trains on
//! the rest, fits the temperature on the held-out slice and the threshold on
//! the `oos` examples (the lowest that rejects
//! [`TrainConfig::oos_recall_target`] of them), then retrains on everything
//! with those two numbers. The `oos` examples never become a class; they only
//! tune the threshold. Without any, the threshold is
//! [`TrainConfig::default_threshold`].
//!
//! Only features seen in training get a weight row, so the model stays small:
//! `row_of` maps a hash bucket to its row.

use crate::dataset::Example;
use crate::error::{Error, Result};
use crate::features::{FeatureConfig, Hashed, WORD_BLOCK};
use crate::normalize::normalize;
use crate::tokens::{Token, Tokenizer};
use serde::{Deserialize, Serialize};

mod fit;
mod model_file;

pub(crate) use fit::SplitMix;
pub use fit::TrainReport;

/// Marks a bucket with no weight row.
const NO_ROW: u32 = u32::MAX;

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
            default_threshold: 0.0,
            oos_recall_target: 0.5,
            min_gradient: 1e-3,
            margin: 2.0,
            average_from: 1.0,
            min_df: 2,
        }
    }
}

/// The classifier's answer for one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentPrediction {
    /// Index into [`IntentModel::labels`] of the most probable intent.
    pub index: usize,
    /// Its calibrated probability.
    pub confidence: f32,
    /// Whether `confidence` reaches the model's threshold.
    pub in_scope: bool,
}

/// A trained intent classifier. Immutable and `Send + Sync`.
#[derive(Debug, Clone)]
pub struct IntentModel {
    labels: Vec<String>,
    features: FeatureConfig,
    /// Bucket of each weight row, ascending.
    buckets: Vec<u32>,
    /// Bucket → row, `NO_ROW` when unseen (rebuilt from `buckets` on load).
    row_of: Vec<u32>,
    idf: Vec<f32>,
    /// Row-major `rows × labels`.
    weights: Vec<f32>,
    bias: Vec<f32>,
    temperature: f32,
    threshold: f32,
}

/// A message as the classifier sees it: (row, value) pairs, L2-normalised.
pub type SparseVector = Vec<(u32, f32)>;

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

    /// Classifies raw text (normalises and tokenises it first).
    pub fn classify(&self, tokenizer: &Tokenizer, text: &str) -> IntentPrediction {
        let normalized = normalize(text);
        let tokens = tokenizer.tokenize(&normalized);
        self.classify_tokens(&normalized, &tokens)
    }

    /// Classifies a message already normalised and tokenised by the pipeline.
    pub fn classify_tokens(&self, normalized: &str, tokens: &[Token]) -> IntentPrediction {
        let x = self.vectorize(normalized, tokens);
        let mut scores = self.scores(&x);
        softmax(&mut scores, self.temperature);
        let (index, confidence) = argmax(&scores);
        IntentPrediction {
            index,
            confidence,
            in_scope: confidence >= self.threshold,
        }
    }

    /// The intent name when in scope.
    pub fn intent_of(&self, p: &IntentPrediction) -> Option<&str> {
        p.in_scope.then(|| self.labels[p.index].as_str())
    }

    fn vectorize(&self, normalized: &str, tokens: &[Token]) -> SparseVector {
        let mut hashed = Vec::with_capacity(64 + 16 * tokens.len());
        self.features.extract(normalized, tokens, &mut hashed);
        tfidf(&hashed, &self.row_of, &self.idf, self.features.word_weight)
    }

    /// Raw scores (logits) of a vectorised message.
    fn scores(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let classes = self.labels.len();
        let mut scores = self.bias.clone();
        for &(row, v) in x {
            let start = row as usize * classes;
            let w = &self.weights[start..start + classes];
            for (s, w) in scores.iter_mut().zip(w) {
                *s += v * w;
            }
        }
        scores
    }

    fn rebuild_index(&mut self) -> Result<()> {
        let size = 1usize
            .checked_shl(self.features.bits)
            .filter(|_| self.features.bits <= 26)
            .ok_or_else(|| Error::ModelFile(format!("bad hash size {}", self.features.bits)))?;
        self.row_of = vec![NO_ROW; size];
        for (row, &b) in self.buckets.iter().enumerate() {
            let slot = self
                .row_of
                .get_mut(b as usize)
                .ok_or_else(|| Error::ModelFile(format!("bucket {b} out of range")))?;
            *slot = u32::try_from(row).map_err(|_| Error::ModelFile("too many rows".into()))?;
        }
        Ok(())
    }
}

/// TF-IDF with sublinear term frequency; each block L2-normalised, the word
/// block scaled by `word_weight`, then the whole vector L2-normalised.
/// Buckets without a row are dropped (as unseen vocabulary is).
fn tfidf(hashed: &[Hashed], row_of: &[u32], idf: &[f32], word_weight: f32) -> SparseVector {
    // (row, block) packed into one integer: sorting plain u64s is the fastest way to group them.
    let mut rows: Vec<u64> = hashed
        .iter()
        .filter_map(|&(b, block)| {
            let row = row_of[b as usize];
            (row != NO_ROW).then_some((u64::from(row) << 8) | u64::from(block))
        })
        .collect();
    rows.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(rows.len());
    let mut blocks: Vec<u8> = Vec::with_capacity(rows.len());
    let mut norms = [0f32; 2];
    for run in rows.chunk_by(|a, b| a == b) {
        let row = u32::try_from(run[0] >> 8).unwrap_or(NO_ROW);
        let block = u8::try_from(run[0] & 0xFF).unwrap_or(0);
        // Sublinear tf; most features occur once, so skip the logarithm then.
        let tf = match run.len() {
            1 => 1.0,
            n => 1.0 + (n as f32).ln(),
        };
        let v = tf * idf[row as usize];
        norms[usize::from(block)] += v * v;
        out.push((row, v));
        blocks.push(block);
    }
    let scale = block_scales(norms, word_weight);
    for ((_, v), block) in out.iter_mut().zip(&blocks) {
        *v *= scale[usize::from(*block)];
    }
    out
}

/// Per-block multipliers so each block has norm 1 (the word block
/// `word_weight`) and the whole vector has norm 1.
fn block_scales(norms: [f32; 2], word_weight: f32) -> [f32; 2] {
    let word = if norms[0] > 0.0 {
        word_weight / norms[0].sqrt()
    } else {
        0.0
    };
    let chr = if norms[1] > 0.0 {
        1.0 / norms[1].sqrt()
    } else {
        0.0
    };
    let total = (if norms[0] > 0.0 {
        word_weight * word_weight
    } else {
        0.0
    }) + if norms[1] > 0.0 { 1.0 } else { 0.0 };
    let total = if total > 0.0 { total.sqrt() } else { 1.0 };
    debug_assert_eq!(WORD_BLOCK, 0);
    [word / total, chr / total]
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

/// (index, value) of the largest element; (0, 0) for an empty slice.
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
    fn training_is_deterministic_with_a_seed() {
        let tok = Tokenizer::new();
        let cfg = TrainConfig::default();
        let (a, _) = IntentModel::train(&toy(), &tok, &cfg).unwrap();
        let (b, _) = IntentModel::train(&toy(), &tok, &cfg).unwrap();
        assert_eq!(a.weights, b.weights);
        assert_eq!(a.threshold, b.threshold);
        let other = TrainConfig { seed: 7, ..cfg };
        let (c, _) = IntentModel::train(&toy(), &tok, &other).unwrap();
        assert_ne!(a.weights, c.weights);
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
    fn tfidf_vectors_have_unit_norm() {
        let row_of = vec![0, 1, 2, NO_ROW];
        let idf = vec![1.0, 2.0, 1.5];
        let x = tfidf(
            &[(0, 0), (0, 0), (1, 1), (2, 1), (3, 1)],
            &row_of,
            &idf,
            1.0,
        );
        let norm: f32 = x.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(x.len(), 3);
    }
}
