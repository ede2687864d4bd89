//! Labelled examples and the file formats they come in. Owns reading
//! training and test data: CSV with a `text,category` header (Banking77's
//! format; quoted fields may hold line breaks, so a real CSV parser reads it),
//! JSON objects whose values are arrays of `[text, intent]` pairs (CLINC150's
//! format), and the crate's own `[intent]`-sectioned text files under `data/`.
//!
//! A path may end in `:split,split` to pick arrays of a JSON file, e.g.
//! `train_val.json:train,oos_train`; without a selector every array is read.
//! The label `oos` marks an out-of-scope example.

use crate::error::{Error, Result};
use std::path::Path;

/// The label of out-of-scope examples.
pub const OOS: &str = "oos";

/// One labelled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub label: String,
}

impl Example {
    pub fn new(text: impl Into<String>, label: impl Into<String>) -> Self {
        Example {
            text: text.into(),
            label: label.into(),
        }
    }

    pub fn is_oos(&self) -> bool {
        self.label == OOS
    }
}

/// Reads a data file named by `spec` (`PATH` or `PATH:split,split`).
pub fn load(spec: &str) -> Result<Vec<Example>> {
    let (path, splits) = split_spec(spec);
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let origin = path.display().to_string();
    match detect_format(path, &text) {
        Format::Json => parse_json(&text, &origin, splits.as_deref()),
        Format::Csv => parse_csv(&text, &origin),
        Format::Sections => parse_sections(&text, &origin),
    }
}

enum Format {
    Json,
    Csv,
    Sections,
}

fn detect_format(path: &Path, text: &str) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("txt") => Format::Sections,
        _ if text.trim_start().starts_with('{') => Format::Json,
        _ => Format::Csv,
    }
}

/// Splits `PATH:a,b` into the path and the selected splits. A colon that is
/// part of an existing file name is left alone.
fn split_spec(spec: &str) -> (&Path, Option<Vec<String>>) {
    if Path::new(spec).exists() {
        return (Path::new(spec), None);
    }
    match spec.rsplit_once(':') {
        Some((path, sel)) if !sel.contains('/') && !path.is_empty() => {
            let splits = sel.split(',').map(|s| s.trim().to_owned()).collect();
            (Path::new(path), Some(splits))
        }
        _ => (Path::new(spec), None),
    }
}

/// CSV with a header naming a `text` and a `category` (or `label`/`intent`) column.
pub fn parse_csv(text: &str, origin: &str) -> Result<Vec<Example>> {
    let err = |message: String| Error::Csv {
        origin: origin.to_owned(),
        message,
    };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| err(e.to_string()))?.clone();
    let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
    let text_col = find(&["text"]).ok_or_else(|| err("no `text` column".into()))?;
    let label_col =
        find(&["category", "label", "intent"]).ok_or_else(|| err("no `category` column".into()))?;
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| err(e.to_string()))?;
        match (record.get(text_col), record.get(label_col)) {
            (Some(t), Some(l)) if !l.trim().is_empty() => out.push(Example::new(t, l.trim())),
            _ => return Err(err(format!("row {} has no text or label", out.len() + 2))),
        }
    }
    Ok(out)
}

/// A JSON object of `split → [[text, intent], …]`, keeping only `splits` when given.
pub fn parse_json(text: &str, origin: &str, splits: Option<&[String]>) -> Result<Vec<Example>> {
    let err = |message: String| Error::Json {
        origin: origin.to_owned(),
        message,
    };
    let all: std::collections::BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    let wanted: Vec<&String> = match splits {
        Some(s) => s.iter().collect(),
        None => all.keys().collect(),
    };
    let mut out = Vec::new();
    for name in wanted {
        let pairs = all.get(name).ok_or_else(|| Error::UnknownSplit {
            origin: origin.to_owned(),
            split: name.clone(),
            available: all.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        out.extend(
            pairs
                .iter()
                .map(|(t, l)| Example::new(t.as_str(), l.as_str())),
        );
    }
    Ok(out)
}

/// The crate's own format: `[intent]` starts a section, each following
/// non-empty line is an example, `#` starts a comment line.
pub fn parse_sections(text: &str, origin: &str) -> Result<Vec<Example>> {
    let mut label: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            label = Some(name.trim());
            continue;
        }
        let Some(l) = label else {
            return Err(Error::IntentData {
                origin: origin.to_owned(),
                line: i + 1,
                message: "example before the first [intent] header".into(),
            });
        };
        out.push(Example::new(line, l));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quoted_newlines() {
        let csv = "text,category\n\"hello,\nthere\",greeting\nbye,goodbye\n";
        let ex = parse_csv(csv, "t").unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].text, "hello,\nthere");
        assert_eq!(ex[1].label, "goodbye");
    }

    #[test]
    fn malformed_csv_is_a_typed_error() {
        assert!(matches!(
            parse_csv("foo,bar\n1,2\n", "t"),
            Err(Error::Csv { .. })
        ));
        let ragged = "text,category\n\"unterminated,greeting\nx\n";
        assert!(matches!(parse_csv(ragged, "t"), Err(Error::Csv { .. })));
    }

    #[test]
    fn json_splits_are_selected() {
        let json = r#"{"train": [["hi", "greeting"]], "val": [["bye", "goodbye"]]}"#;
        let sel = vec!["val".to_owned()];
        let ex = parse_json(json, "t", Some(&sel)).unwrap();
        assert_eq!(ex, vec![Example::new("bye", "goodbye")]);
        assert_eq!(parse_json(json, "t", None).unwrap().len(), 2);
    }

    #[test]
    fn malformed_json_is_a_typed_error() {
        assert!(matches!(
            parse_json("{\"a\": [[1]]}", "t", None),
            Err(Error::Json { .. })
        ));
        assert!(matches!(
            parse_json("[", "t", None),
            Err(Error::Json { .. })
        ));
        let missing = vec!["test".to_owned()];
        assert!(matches!(
            parse_json("{\"a\": []}", "t", Some(&missing)),
            Err(Error::UnknownSplit { .. })
        ));
    }

    #[test]
    fn sections_format() {
        let ex = parse_sections("# c\n[greeting]\nhi\n\nhello\n[thanks]\nthx\n", "t").unwrap();
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[2], Example::new("thx", "thanks"));
        assert!(matches!(
            parse_sections("hi\n", "t"),
            Err(Error::IntentData { line: 1, .. })
        ));
    }

    #[test]
    fn spec_with_split_selector() {
        let (p, s) = split_spec("/nonexistent/x.json:train,oos_train");
        assert_eq!(p, Path::new("/nonexistent/x.json"));
        assert_eq!(s.unwrap(), ["train", "oos_train"]);
        assert!(split_spec("/nonexistent/x.json").1.is_none());
    }

    /// The public benchmark sets, read from `../shared/data` beside the repo.
    #[test]
    fn reads_the_shared_benchmark_sets_when_present() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        let banking = root.join("banking77/train.csv");
        let clinc = root.join("clinc150/train_val.json");
        if !banking.exists() || !clinc.exists() {
            println!(
                "skipping: benchmark data not found under {}",
                root.display()
            );
            return;
        }
        let b = load(&banking.display().to_string()).unwrap();
        assert!(b.len() > 9000);
        let c = load(&format!("{}:val,oos_val", clinc.display())).unwrap();
        assert_eq!(c.len(), 3100);
        assert_eq!(c.iter().filter(|e| e.is_oos()).count(), 100);
        assert!(matches!(
            load(&format!("{}:nope", clinc.display())),
            Err(Error::UnknownSplit { .. })
        ));
    }

    #[test]
    fn missing_file_is_io_error() {
        assert!(matches!(
            load("/nonexistent/file.csv"),
            Err(Error::Io { .. })
        ));
    }
}
