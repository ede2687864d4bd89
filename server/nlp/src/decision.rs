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
//! A hand-off carries a team and a priority raised by negative sentiment.
//! The team is the message's intent's team, except that asking for a person
//! (or a message with no team of its own, e.g. low confidence) goes to the
//! *topic* team, the team of the last intent the bot answered in this
//! conversation ([`DecisionContext::topic_team`]): "where is my order?" then
//! "talk to a person" reaches the orders team, not a general one.

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
    /// The team of the conversation's topic so far (the last answered intent's team).
    pub topic_team: Option<String>,
}

impl Default for DecisionContext {
    fn default() -> Self {
        DecisionContext {
            bot_answers_in_a_row: 0,
            max_bot_answers: 3,
            base_priority: 0,
            human_assigned: false,
            strong_negative: -0.6,
            topic_team: None,
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
    /// The bot answers with `text` (which ends with the offer of a person);
    /// `team` is the intent's team, the conversation's topic from now on.
    Answer {
        text: String,
        intent: String,
        team: Option<String>,
    },
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
        team: handoff_team(kb, intent, ctx),
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
            team: kb.team(intent).map(str::to_owned),
        },
        None => handoff(HandoffReason::NoAnswer),
    }
}

/// The message's own team, or the topic's when the visitor asks for a person
/// or the message has none (see the module docs).
fn handoff_team(kb: &KnowledgeBase, intent: Option<&str>, ctx: &DecisionContext) -> Option<String> {
    let own = intent.and_then(|i| kb.team(i)).map(str::to_owned);
    if intent == Some(TALK_TO_HUMAN) {
        ctx.topic_team.clone().or(own)
    } else {
        own.or_else(|| ctx.topic_team.clone())
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
    fn answers_carry_the_topic_team_and_a_person_is_found_in_it() {
        let d = decide(
            &kb(),
            &analysis("en", Some("order_status"), 0.0),
            &DecisionContext::default(),
        );
        assert!(
            matches!(d, Decision::Answer { ref team, .. } if team.as_deref() == Some("orders")),
            "{d:?}"
        );
        let topic = DecisionContext {
            topic_team: Some("orders".into()),
            ..DecisionContext::default()
        };
        let team = |d| match d {
            Decision::Handoff { team, .. } => team,
            other => panic!("{other:?}"),
        };
        // Asking for a person goes to the topic's team, not talk_to_human's own.
        let asked = analysis("en", Some(TALK_TO_HUMAN), 0.0);
        assert_eq!(
            team(decide(&kb(), &asked, &topic)).as_deref(),
            Some("orders")
        );
        assert_eq!(
            team(decide(&kb(), &asked, &DecisionContext::default())).as_deref(),
            Some("general")
        );
        // A message with no team of its own keeps the topic; one with a team moves it.
        let unsure = analysis("en", None, 0.0);
        assert_eq!(
            team(decide(&kb(), &unsure, &topic)).as_deref(),
            Some("orders")
        );
        let angry = analysis("en", Some("invoice"), -0.9);
        assert_eq!(
            team(decide(&kb(), &angry, &topic)).as_deref(),
            Some("billing")
        );
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
