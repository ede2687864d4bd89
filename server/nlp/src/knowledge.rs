//! The knowledge base: per intent, the bot's answer in each language and the
//! team that takes the conversation when it goes to a human. Admins edit it
//! (JSON or TOML, same shape); the product ships `data/knowledge_base.toml`.
//!
//! ```toml
//! [offer_human]
//! en = "Type \"agent\" to talk to a person."
//! zh = "输入"人工"即可转人工客服。"
//!
//! [intents.order_status]
//! team = "orders"
//! en = "You can follow your order under My orders…"
//! zh = "您可以在"我的订单"中查看…"
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Text in each language the bot speaks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Localized {
    #[serde(default)]
    pub en: Option<String>,
    #[serde(default)]
    pub zh: Option<String>,
}

impl Localized {
    /// The text for `language`, if there is one.
    pub fn get(&self, language: &str) -> Option<&str> {
        match language {
            "en" => self.en.as_deref(),
            "zh" => self.zh.as_deref(),
            _ => None,
        }
    }
}

/// What the knowledge base knows about one intent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentEntry {
    /// The answer, per language (flattened: `en = …`, `zh = …`).
    #[serde(flatten)]
    pub answer: Localized,
    /// Team or agent skill that handles this intent when a human takes over.
    #[serde(default)]
    pub team: Option<String>,
}

/// Intent → answers and routing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeBase {
    /// Appended to every bot answer: how to reach a person.
    #[serde(default)]
    pub offer_human: Localized,
    #[serde(default)]
    pub intents: BTreeMap<String, IntentEntry>,
}

const DEFAULT_KB: &str = include_str!("../data/knowledge_base.toml");

impl KnowledgeBase {
    /// The product's shipped answers for its default intents.
    pub fn default_shop() -> Result<Self> {
        Self::from_toml(DEFAULT_KB)
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::KnowledgeBase(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::KnowledgeBase(e.to_string()))
    }

    /// Reads a `.json` or `.toml` file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The bot's answer to `intent` in `language`, with the offer of a person appended.
    pub fn answer(&self, intent: &str, language: &str) -> Option<String> {
        let text = self.intents.get(intent)?.answer.get(language)?;
        Some(match self.offer_human.get(language) {
            Some(offer) if !offer.is_empty() => format!("{text}\n\n{offer}"),
            _ => text.to_owned(),
        })
    }

    /// The team that handles `intent`.
    pub fn team(&self, intent: &str) -> Option<&str> {
        self.intents.get(intent)?.team.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_knowledge_base_loads() {
        let kb = KnowledgeBase::default_shop().unwrap();
        assert!(kb.intents.len() >= 20);
        for (intent, entry) in &kb.intents {
            if intent == "talk_to_human" {
                continue;
            }
            assert!(
                entry.answer.en.is_some() && entry.answer.zh.is_some(),
                "{intent}"
            );
        }
        assert!(kb
            .answer("order_status", "en")
            .unwrap()
            .contains(kb.offer_human.en.as_deref().unwrap()));
        assert!(kb.answer("order_status", "fr").is_none());
    }

    #[test]
    fn json_and_toml_agree() {
        let kb = KnowledgeBase::default_shop().unwrap();
        assert_eq!(KnowledgeBase::from_json(&kb.to_json()).unwrap(), kb);
    }

    #[test]
    fn malformed_is_a_typed_error() {
        assert!(matches!(
            KnowledgeBase::from_json("{"),
            Err(Error::KnowledgeBase(_))
        ));
        assert!(matches!(
            KnowledgeBase::from_toml("[intents"),
            Err(Error::KnowledgeBase(_))
        ));
    }
}
