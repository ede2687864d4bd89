//! Stage 7: bot answer or hand-off. Owns the rules that turn an
//! [`Analysis`] and the conversation's state into a [`Decision`]:
//!
//! 1. an agent already has the conversation → nothing to do;
//! 2. the visitor asks for a person → hand-off;
//! 3. a language the bot does not speak → hand-off;
//! 4. strongly negative sentiment → hand-off;
//! 5. no intent or confidence under the threshold → hand-off;
//! 6. `max_bot_answers` bot answers in a row already → hand-off;
//! 7. no answer in the knowledge base → hand-off;
//! 8. otherwise the bot answers.
//!
//! A hand-off carries the intent's team and a priority raised by negative
//! sentiment.

use crate::knowledge::KnowledgeBase;
use crate::language::is_supported;
use serde::{Deserialize, Serialize};
use switchboard_protocol::model::{Analysis, SentimentLabel};

/// The intent meaning "I want a person".
pub const TALK_TO_HUMAN: &str = "talk_to_human";

/// What the decision needs to know about the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionContext {
    /// Bot answers since the visitor last reached a person (or since the start).
    pub bot_answers_in_a_row: u32,
    /// Hand off once this many bot answers came in a row.
    pub max_bot_answers: u32,
    /// Priority of a normal hand-off.
    pub base_priority: i32,
    /// An agent already has the conversation: the bot stays out.
    pub human_assigned: bool,
    /// Sentiment at or below this hands off at once.
    pub strong_negative: f32,
}

impl Default for DecisionContext {
    fn default() -> Self {
        DecisionContext {
            bot_answers_in_a_row: 0,
            max_bot_answers: 3,
            base_priority: 0,
            human_assigned: false,
            strong_negative: -0.6,
        }
    }
}

/// Why a conversation goes to the human queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    AskedForPerson,
    UnsupportedLanguage,
    NegativeSentiment,
    LowConfidence,
    TooManyBotAnswers,
    NoAnswer,
}

/// What to do with a visitor message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Decision {
    /// The bot answers with `text` (which ends with the offer of a person).
    Answer { text: String, intent: String },
    /// Queue for a human, with this priority, preferably to `team`.
    Handoff {
        reason: HandoffReason,
        priority: i32,
        team: Option<String>,
    },
    /// Leave it to the agent who has it.
    Nothing,
}

/// Applies the rules in the module docs.
pub fn decide(kb: &KnowledgeBase, analysis: &Analysis, ctx: &DecisionContext) -> Decision {
    if ctx.human_assigned {
        return Decision::Nothing;
    }
    let intent = analysis.intent.as_deref();
    let handoff = |reason| Decision::Handoff {
        reason,
        priority: priority(analysis, ctx),
        team: intent.and_then(|i| kb.team(i)).map(str::to_owned),
    };
    if intent == Some(TALK_TO_HUMAN) {
        return handoff(HandoffReason::AskedForPerson);
    }
    if !is_supported(&analysis.language) {
        return handoff(HandoffReason::UnsupportedLanguage);
    }
    if analysis.sentiment <= ctx.strong_negative {
        return handoff(HandoffReason::NegativeSentiment);
    }
    let Some(intent) = intent else {
        return handoff(HandoffReason::LowConfidence);
    };
    if ctx.bot_answers_in_a_row >= ctx.max_bot_answers {
        return handoff(HandoffReason::TooManyBotAnswers);
    }
    match kb.answer(intent, &analysis.language) {
        Some(text) => Decision::Answer {
            text,
            intent: intent.to_owned(),
        },
        None => handoff(HandoffReason::NoAnswer),
    }
}

/// Base priority, +1 for negative sentiment, +2 for strongly negative.
fn priority(analysis: &Analysis, ctx: &DecisionContext) -> i32 {
    let bump = if analysis.sentiment <= ctx.strong_negative {
        2
    } else if analysis.sentiment_label == SentimentLabel::Negative {
        1
    } else {
        0
    };
    ctx.base_priority.saturating_add(bump)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(lang: &str, intent: Option<&str>, sentiment: f32) -> Analysis {
        Analysis {
            language: lang.into(),
            intent: intent.map(Into::into),
            confidence: 0.9,
            sentiment,
            sentiment_label: crate::sentiment::label(sentiment),
            entities: vec![],
            bot_answered: false,
        }
    }

    fn kb() -> KnowledgeBase {
        KnowledgeBase::default_shop().unwrap()
    }

    fn reason(d: Decision) -> Option<HandoffReason> {
        match d {
            Decision::Handoff { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn confident_in_scope_is_answered() {
        let d = decide(
            &kb(),
            &analysis("en", Some("order_status"), 0.0),
            &DecisionContext::default(),
        );
        assert!(
            matches!(d, Decision::Answer { ref intent, .. } if intent == "order_status"),
            "{d:?}"
        );
        let d = decide(
            &kb(),
            &analysis("zh", Some("order_status"), 0.0),
            &DecisionContext::default(),
        );
        assert!(matches!(d, Decision::Answer { .. }));
    }

    #[test]
    fn asking_for_a_person_hands_off() {
        let d = decide(
            &kb(),
            &analysis("en", Some(TALK_TO_HUMAN), 0.0),
            &DecisionContext::default(),
        );
        assert_eq!(reason(d), Some(HandoffReason::AskedForPerson));
    }

    #[test]
    fn low_confidence_hands_off() {
        let d = decide(
            &kb(),
            &analysis("en", None, 0.0),
            &DecisionContext::default(),
        );
        assert_eq!(reason(d), Some(HandoffReason::LowConfidence));
    }

    #[test]
    fn strongly_negative_hands_off_with_higher_priority() {
        let ctx = DecisionContext {
            base_priority: 5,
            ..DecisionContext::default()
        };
        let d = decide(&kb(), &analysis("en", Some("order_status"), -0.8), &ctx);
        assert_eq!(
            d,
            Decision::Handoff {
                reason: HandoffReason::NegativeSentiment,
                priority: 7,
                team: Some("orders".into())
            }
        );
    }

    #[test]
    fn mildly_negative_raises_priority_only() {
        let d = decide(
            &kb(),
            &analysis("en", None, -0.3),
            &DecisionContext::default(),
        );
        assert!(matches!(d, Decision::Handoff { priority: 1, .. }), "{d:?}");
    }

    #[test]
    fn too_many_bot_answers_hands_off() {
        let ctx = DecisionContext {
            bot_answers_in_a_row: 3,
            max_bot_answers: 3,
            ..DecisionContext::default()
        };
        let d = decide(&kb(), &analysis("en", Some("shipping"), 0.0), &ctx);
        assert_eq!(reason(d), Some(HandoffReason::TooManyBotAnswers));
    }

    #[test]
    fn other_languages_hand_off() {
        let d = decide(
            &kb(),
            &analysis("fr", Some("shipping"), 0.0),
            &DecisionContext::default(),
        );
        assert_eq!(reason(d), Some(HandoffReason::UnsupportedLanguage));
    }

    #[test]
    fn missing_answer_hands_off_to_the_team() {
        let mut kb = kb();
        kb.intents.get_mut("invoice").unwrap().answer.zh = None;
        let d = decide(
            &kb,
            &analysis("zh", Some("invoice"), 0.0),
            &DecisionContext::default(),
        );
        assert_eq!(reason(d), Some(HandoffReason::NoAnswer));
    }

    #[test]
    fn assigned_conversations_are_left_alone() {
        let ctx = DecisionContext {
            human_assigned: true,
            ..DecisionContext::default()
        };
        let d = decide(&kb(), &analysis("en", Some(TALK_TO_HUMAN), -0.9), &ctx);
        assert_eq!(d, Decision::Nothing);
    }
}
