//! The model file: how an [`IntentModel`] is saved and loaded.
//!
//! Layout: the magic `SBNLPMDL`, then frames of `u32` little-endian length +
//! a value encoded by `switchboard_protocol::codec::to_bincode` with
//! [`MODEL_FORMAT`]. The codec caps one decoded value at 4 MiB, so the header
//! (labels, settings, bias) is one frame and each large array (the keys, the
//! packed rows of idf, scale and int8 weights) follows as frames of at most [`CHUNK`] elements.

use super::IntentModel;
use crate::error::{Error, Result};
use crate::features::FeatureConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use switchboard_protocol::codec::{from_bincode, to_bincode};

/// Version byte of every frame; bump when the header or features change.
/// 1: 20-bit buckets, two feature blocks, `f32` weights. 2: 32-bit keys,
/// word/char/pair blocks, int8 weights with a scale per row. 3: feature
/// settings with a shorter pair window for long messages.
pub(crate) const MODEL_FORMAT: u8 = 3;
const MAGIC: &[u8; 8] = b"SBNLPMDL";
/// Elements per array frame (≤ 2 MiB of `f32`).
const CHUNK: usize = 1 << 19;

#[derive(Serialize, Deserialize)]
struct Header {
    labels: Vec<String>,
    features: FeatureConfig,
    bias: Vec<f32>,
    temperature: f32,
    threshold: f32,
    rows: u64,
}

impl IntentModel {
    /// The model as bytes (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let header = Header {
            labels: self.labels.clone(),
            features: self.features.clone(),
            bias: self.bias.clone(),
            temperature: self.temperature,
            threshold: self.threshold,
            rows: self.keys.len() as u64,
        };
        push_frame(&mut out, &header);
        push_array(&mut out, &self.keys);
        push_array(&mut out, &self.rows);
        out
    }

    /// Reads a model written by [`IntentModel::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<IntentModel> {
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| Error::ModelFile("not a Switchboard model file".into()))?;
        check_format(rest)?;
        let header: Header = read_frame(&mut rest)?;
        let rows = usize::try_from(header.rows).map_err(|_| bad("row count"))?;
        let classes = header.labels.len();
        let bytes_len = classes
            .checked_add(super::ROW_HEADER)
            .and_then(|stride| stride.checked_mul(rows))
            .ok_or_else(|| bad("size"))?;
        let mut model = IntentModel {
            keys: read_array(&mut rest, rows)?,
            rows: read_array(&mut rest, bytes_len)?,
            labels: header.labels,
            features: header.features,
            vocabulary: Default::default(),
            bias: header.bias,
            temperature: header.temperature,
            threshold: header.threshold,
            oos: None,
        };
        if model.bias.len() != classes || classes < 2 || !rest.is_empty() {
            return Err(bad("inconsistent sizes"));
        }
        model.rebuild_index()?;
        Ok(model)
    }
}

/// A clear error for a model written by another version (the first frame's
/// format byte follows its 4-byte length).
fn check_format(rest: &[u8]) -> Result<()> {
    match rest.get(4) {
        Some(&v) if v != MODEL_FORMAT => Err(Error::ModelFile(format!(
            "model file format {v}, but this build reads format {MODEL_FORMAT}: \
             retrain it with `switchboard nlp train`"
        ))),
        _ => Ok(()),
    }
}

fn bad(what: &str) -> Error {
    Error::ModelFile(format!("bad {what}"))
}

fn push_frame<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    let frame = to_bincode(MODEL_FORMAT, value);
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame);
}

fn push_array<T: Serialize>(out: &mut Vec<u8>, items: &[T]) {
    for chunk in items.chunks(CHUNK) {
        push_frame(out, &chunk);
    }
}

fn read_frame<T: DeserializeOwned>(rest: &mut &[u8]) -> Result<T> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("frame length"))?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| bad("frame length"))?;
    if tail.len() < len {
        return Err(bad("truncated frame"));
    }
    let (frame, tail) = tail.split_at(len);
    *rest = tail;
    from_bincode(MODEL_FORMAT, frame).map_err(|e| Error::ModelFile(e.to_string()))
}

fn read_array<T: DeserializeOwned>(rest: &mut &[u8], len: usize) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(len.min(CHUNK * 8));
    while out.len() < len {
        let chunk: Vec<T> = read_frame(rest)?;
        if chunk.is_empty() || out.len() + chunk.len() > len {
            return Err(bad("array length"));
        }
        out.extend(chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Example;
    use crate::intent::TrainConfig;
    use crate::tokens::Tokenizer;

    fn model() -> (IntentModel, Tokenizer) {
        let tok = Tokenizer::new();
        let ex: Vec<Example> = ["hi", "hello", "hey there", "bye", "goodbye", "see you"]
            .iter()
            .enumerate()
            .map(|(i, t)| Example::new(*t, if i < 3 { "greet" } else { "bye" }))
            .collect();
        (
            IntentModel::train(&ex, &tok, &TrainConfig::default())
                .unwrap()
                .0,
            tok,
        )
    }

    #[test]
    fn round_trip() {
        let (m, tok) = model();
        let back = IntentModel::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.rows, m.rows);
        assert_eq!(back.labels, m.labels);
        assert_eq!(back.classify(&tok, "hello"), m.classify(&tok, "hello"));
    }

    #[test]
    fn large_arrays_span_frames() {
        let items: Vec<f32> = (0..(CHUNK * 2 + 5)).map(|i| i as f32).collect();
        let mut out = Vec::new();
        push_array(&mut out, &items);
        let mut rest = out.as_slice();
        let back: Vec<f32> = read_array(&mut rest, items.len()).unwrap();
        assert_eq!(back, items);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let (m, _) = model();
        let bytes = m.to_bytes();
        assert!(matches!(
            IntentModel::from_bytes(b"nope"),
            Err(Error::ModelFile(_))
        ));
        assert!(matches!(
            IntentModel::from_bytes(&bytes[..bytes.len() - 3]),
            Err(Error::ModelFile(_))
        ));
        let mut wrong_version = bytes.clone();
        wrong_version[12] = 1;
        match IntentModel::from_bytes(&wrong_version) {
            Err(Error::ModelFile(m)) => assert!(m.contains("format 1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
