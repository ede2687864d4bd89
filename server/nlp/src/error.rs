//! The crate's one error type: everything that can go wrong while loading
//! data, training, or reading and writing a model file. Classifying a message
//! never fails, so the hot path has no error at all.

use std::path::PathBuf;

/// What went wrong, with enough context to fix the input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed CSV in {origin}: {message}")]
    Csv { origin: String, message: String },
    #[error("malformed JSON in {origin}: {message}")]
    Json { origin: String, message: String },
    #[error("malformed intent data in {origin} at line {line}: {message}")]
    IntentData {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("malformed knowledge base: {0}")]
    KnowledgeBase(String),
    #[error("unknown split {split:?} in {origin} (it has: {available})")]
    UnknownSplit {
        origin: String,
        split: String,
        available: String,
    },
    #[error("cannot train: {0}")]
    Training(String),
    #[error("bad model file: {0}")]
    ModelFile(String),
    #[error("bad regular expression for order numbers: {0}")]
    Pattern(#[from] regex::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
