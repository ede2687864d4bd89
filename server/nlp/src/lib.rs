//! Switchboard's NLP pipeline: what a visitor message is about and what to do
//! with it. Pure code: no I/O on the hot path, no global state; the server
//! builds one [`Pipeline`] at start-up, shares it through an `Arc`, and calls
//! [`Pipeline::analyze`] then [`Pipeline::decide`] for every visitor message.
//!
//! Module map, in pipeline order:
//! - [`normalize`]: NFKC, case folding, full-width → half-width.
//! - [`language`]: `en`, `zh`, other languages labelled for a human.
//! - [`tokens`]: English words with stemming, Chinese words with jieba (loaded once).
//! - [`features`]: hashed word n-grams, word pairs and character n-grams.
//! - [`intent`]: sparse TF-IDF logistic regression (int8 weight rows), calibrated, with an
//!   off-topic class and threshold; the model file format.
//! - [`sentiment`]: VADER for English, our own lexicon for Chinese.
//! - [`entities`]: emails, phones, order numbers, URLs, money, dates.
//! - [`decision`]: bot answer or hand-off, with reasons, priority and team.
//! - [`knowledge`]: the admin-editable answers per intent and language.
//!
//! Around it: [`dataset`] reads training data (CSV, CLINC150 JSON, our own
//! format), [`eval`] measures a training recipe, and [`cli`] is the
//! `switchboard nlp train|eval` command the server mounts.

pub mod cli;
pub mod dataset;
pub mod decision;
pub mod entities;
mod error;
pub mod eval;
pub mod features;
pub mod intent;
pub mod knowledge;
pub mod language;
pub mod normalize;
pub mod sentiment;
pub mod tokens;

pub use decision::{Decision, DecisionContext, HandoffReason};
pub use entities::EntityConfig;
pub use error::{Error, Result};
pub use intent::{IntentModel, TrainConfig};
pub use knowledge::KnowledgeBase;

use entities::EntityExtractor;
use language::LanguageDetector;
use sentiment::SentimentAnalyzer;
use std::path::Path;
use switchboard_protocol::model::Analysis;
use tokens::Tokenizer;

/// The product's own training data, embedded (see `data/README.md`).
pub const DEFAULT_INTENTS_EN: &str = include_str!("../data/intents_en.txt");
pub const DEFAULT_INTENTS_ZH: &str = include_str!("../data/intents_zh.txt");

/// The largest model file [`Pipeline::from_model_file`] reads (a Banking77
/// model is 5.4 MB). The path comes from an admin (`POST /api/nlp/model`,
/// `nlp_model`): a wrong one, a device such as `/dev/zero` or a huge log,
/// must get an error, not fill the server's memory.
pub const MAX_MODEL_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a model file: a regular file of at most [`MAX_MODEL_FILE_BYTES`].
/// The type is checked before opening, as opening a FIFO would block.
fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let too_large = || {
        Error::ModelFile(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_MODEL_FILE_BYTES >> 20
        ))
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(Error::ModelFile(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_MODEL_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    // The file may have grown since its size was read.
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_MODEL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_MODEL_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Every stage, built once. `Send + Sync`: share it with `Arc`.
pub struct Pipeline {
    tokenizer: Tokenizer,
    language: LanguageDetector,
    model: IntentModel,
    sentiment: SentimentAnalyzer,
    entities: EntityExtractor,
    kb: KnowledgeBase,
}

impl Pipeline {
    /// Trains the shipped intents (English and Chinese) and loads the shipped
    /// knowledge base. Takes about 0.4 s in a release build (jieba + training).
    pub fn with_default_model() -> Result<Pipeline> {
        let tokenizer = Tokenizer::new();
        let examples = default_examples()?;
        let (model, report) = IntentModel::train(&examples, &tokenizer, &default_model_config())?;
        tracing::info!(
            intents = report.n_intents,
            examples = report.n_train,
            threshold = report.threshold,
            seconds = report.seconds,
            "trained the default intent model"
        );
        Self::assemble(
            tokenizer,
            model,
            KnowledgeBase::default_shop()?,
            &EntityConfig::default(),
        )
    }

    /// Loads a model written by `switchboard nlp train`.
    pub fn from_model_file(path: &Path, kb: KnowledgeBase) -> Result<Pipeline> {
        let bytes = read_model_file(path)?;
        Self::from_parts(
            IntentModel::from_bytes(&bytes)?,
            kb,
            &EntityConfig::default(),
        )
    }

    /// Builds a pipeline from a trained model, a knowledge base and entity settings.
    pub fn from_parts(
        model: IntentModel,
        kb: KnowledgeBase,
        entities: &EntityConfig,
    ) -> Result<Pipeline> {
        Self::assemble(Tokenizer::new(), model, kb, entities)
    }

    fn assemble(
        tokenizer: Tokenizer,
        model: IntentModel,
        kb: KnowledgeBase,
        entities: &EntityConfig,
    ) -> Result<Pipeline> {
        Ok(Pipeline {
            tokenizer,
            language: LanguageDetector::new(),
            model,
            sentiment: SentimentAnalyzer::new(),
            entities: EntityExtractor::new(entities)?,
            kb,
        })
    }

    /// Runs every stage on a visitor message. `bot_answered` is always false
    /// here; the caller sets it after acting on [`Pipeline::decide`].
    pub fn analyze(&self, text: &str) -> Analysis {
        let normalized = normalize::normalize(text);
        let language = self.language.detect(&normalized);
        let tokens = self.tokenizer.tokenize(&normalized);
        let (intent, confidence) = if language::is_supported(language) {
            let p = self.model.classify_tokens(&normalized, &tokens);
            (self.model.intent_of(&p).map(str::to_owned), p.confidence)
        } else {
            (None, 0.0)
        };
        let (sentiment, sentiment_label) = self.sentiment.score(language, text, &tokens);
        Analysis {
            language: language.to_owned(),
            intent,
            confidence,
            sentiment,
            sentiment_label,
            entities: self.entities.extract(text),
            bot_answered: false,
        }
    }

    /// Bot answer, hand-off or nothing (see [`decision`]).
    pub fn decide(&self, analysis: &Analysis, ctx: &DecisionContext) -> Decision {
        decision::decide(&self.kb, analysis, ctx)
    }

    pub fn knowledge_base(&self) -> &KnowledgeBase {
        &self.kb
    }

    /// This pipeline with another knowledge base (after an admin edit). The
    /// server builds the new pipeline and swaps its `Arc`, so messages being
    /// analysed keep the old one until they finish.
    pub fn with_knowledge_base(self, kb: KnowledgeBase) -> Pipeline {
        Pipeline { kb, ..self }
    }

    pub fn model(&self) -> &IntentModel {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// Training settings of the shipped model: the defaults (which make our
/// off-topic examples a class of their own, so the model learns what a
/// question outside the shop looks like), except that
/// - features seen once are kept, because the shipped set is small;
/// - the threshold rejects at least 75 % of held-out off-topic messages and
///   is raised until 95 % of the held-out in-scope answers are right: a
///   wrong bot answer costs a visitor more than an early hand-off does;
/// - idf is scaled by how much a feature points at one intent, which helped
///   a little on this small set (+0.2 points of cross-validated accuracy);
/// - 10 epochs instead of 16: the same accuracy (−0.1 point, within noise)
///   in five eighths of the start-up time.
pub fn default_model_config() -> TrainConfig {
    TrainConfig {
        min_df: 1,
        epochs: 10,
        oos_recall_target: 0.75,
        answer_precision: 0.95,
        class_weighting: 2.0,
        ..TrainConfig::default()
    }
}

/// The shipped examples of both languages (including our own `oos` examples,
/// which only tune the threshold).
pub fn default_examples() -> Result<Vec<dataset::Example>> {
    let mut examples = dataset::parse_sections(DEFAULT_INTENTS_EN, "data/intents_en.txt")?;
    examples.extend(dataset::parse_sections(
        DEFAULT_INTENTS_ZH,
        "data/intents_zh.txt",
    )?);
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use switchboard_protocol::model::SentimentLabel;

    /// One default pipeline for all tests (training it takes a moment in debug builds).
    fn pipeline() -> &'static Pipeline {
        static P: OnceLock<Pipeline> = OnceLock::new();
        P.get_or_init(|| Pipeline::with_default_model().unwrap())
    }

    #[test]
    fn pipeline_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pipeline>();
    }

    #[test]
    fn default_data_has_enough_examples() {
        let ex = default_examples().unwrap();
        let mut per: std::collections::BTreeMap<(&str, bool), usize> = Default::default();
        for e in &ex {
            *per.entry((e.label.as_str(), e.text.chars().any(normalize::is_han)))
                .or_default() += 1;
        }
        let intents: std::collections::BTreeSet<_> = per.keys().map(|(l, _)| *l).collect();
        assert!(intents.len() > 20, "{intents:?}");
        for ((label, zh), n) in &per {
            assert!(*n >= 40, "{label} zh={zh}: {n}");
        }
        let kb = KnowledgeBase::default_shop().unwrap();
        for intent in intents.iter().filter(|i| **i != dataset::OOS) {
            assert!(
                kb.intents.contains_key(*intent),
                "{intent} has no knowledge-base entry"
            );
        }
    }

    /// Phrasings that are not in the training data.
    #[test]
    fn default_model_understands_held_out_phrasings() {
        let cases = [
            (
                "hey, any news about when my parcel gets delivered?",
                "order_status",
            ),
            (
                "I'd like to send these trousers back and get refunded",
                "returns_refunds",
            ),
            (
                "my credit card keeps getting refused at checkout",
                "payment_problem",
            ),
            ("could I get a human on the line please", "talk_to_human"),
            ("how much do you charge to deliver to spain", "shipping"),
            (
                "I typed my password wrong too many times and now I'm locked out",
                "account_login",
            ),
            ("thank you, that was really helpful", "thanks"),
            ("good morning!", "greeting"),
            ("我的包裹到现在都没收到,帮我看看到哪了", "order_status"),
            ("这条裤子我不想要了,怎么申请退款", "returns_refunds"),
            ("麻烦帮我转接人工客服", "talk_to_human"),
            ("寄到上海运费要多少", "shipping"),
            ("密码忘了登不进去", "account_login"),
            ("太谢谢你了", "thanks"),
        ];
        let p = pipeline();
        let mut wrong = Vec::new();
        for (text, want) in cases {
            let a = p.analyze(text);
            if a.intent.as_deref() != Some(want) {
                wrong.push((text, a.intent, a.confidence));
            }
        }
        assert!(wrong.len() <= 1, "misclassified: {wrong:?}");
    }

    #[test]
    fn analyze_fills_every_field() {
        let a = pipeline().analyze(
            "This is the worst shop ever, order #583920 never arrived. Email me at a@b.com",
        );
        assert_eq!(a.language, "en");
        assert_eq!(a.sentiment_label, SentimentLabel::Negative);
        assert!(a
            .entities
            .iter()
            .any(|e| e.kind == "order_number" && e.value == "583920"));
        assert!(a.entities.iter().any(|e| e.kind == "email"));
        assert!(!a.bot_answered);
    }

    #[test]
    fn answers_and_hands_off_end_to_end() {
        let p = pipeline();
        let ctx = DecisionContext::default();
        let a = p.analyze("how long does shipping take?");
        assert!(
            matches!(p.decide(&a, &ctx), Decision::Answer { .. }),
            "{a:?}"
        );
        let a = p.analyze("我要找人工客服");
        assert!(matches!(
            p.decide(&a, &ctx),
            Decision::Handoff {
                reason: HandoffReason::AskedForPerson,
                ..
            }
        ));
        let a = p.analyze("Bonjour, je voudrais annuler ma commande s'il vous plaît");
        assert!(matches!(
            p.decide(&a, &ctx),
            Decision::Handoff {
                reason: HandoffReason::UnsupportedLanguage,
                ..
            }
        ));
    }

    #[test]
    fn out_of_scope_is_mostly_rejected() {
        let p = pipeline();
        let texts = [
            "what is the boiling point of mercury in kelvin",
            "who painted the mona lisa",
            "can you recommend a good pizza place nearby",
            "how many kilometres is it from berlin to rome",
            "明天会下雨吗",
            "给我讲一个故事",
        ];
        let rejected = texts
            .iter()
            .filter(|t| p.analyze(t).intent.is_none())
            .count();
        let seen: Vec<_> = texts
            .iter()
            .map(|t| (t, p.analyze(t).intent, p.analyze(t).confidence))
            .collect();
        assert!(
            rejected * 2 >= texts.len(),
            "only {rejected} of {} rejected: {seen:?}",
            texts.len()
        );
    }

    #[test]
    fn model_file_round_trip_through_the_pipeline() {
        let p = pipeline();
        let path = std::env::temp_dir().join(format!("sb-nlp-model-{}.bin", std::process::id()));
        std::fs::write(&path, p.model().to_bytes()).unwrap();
        let q = Pipeline::from_model_file(&path, KnowledgeBase::default_shop().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let text = "where is my order?";
        assert_eq!(p.analyze(text), q.analyze(text));
        assert!(matches!(
            Pipeline::from_model_file(
                Path::new("/nonexistent/model.bin"),
                KnowledgeBase::default()
            ),
            Err(Error::Io { .. })
        ));
    }
}
