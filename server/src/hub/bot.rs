//! A visitor message's trip through the NLP pipeline: analysis (on the
//! worker pool), the bot's decision while it has the conversation, then the
//! answer or the hand-off to a person, the profile filled from entities, and
//! the queue priority raised by negative sentiment.
//!
//! Teams: while the bot answers, the conversation's team follows the topic
//! (the team of the intent it answered), so that asking for a person later
//! reaches that team; a hand-off sets the team the decision names.

use super::broker::{Participant, SessionHandle};
use super::commit::{Commit, To};
use super::ops::{watchers, Draft};
use super::{Actor, Hub, HubError, Result};
use crate::nlp::{bot_author, handoff_line, Nlp};
use switchboard_nlp::Decision;
use switchboard_protocol::client::SendMessage;
use switchboard_protocol::model::{Analysis, ConversationStatus};
use switchboard_protocol::server::TypingEvent;
use switchboard_protocol::{ConversationId, CustomerId, ServerMessage};

impl Hub {
    /// Handles a visitor's `send`: analyse, store (with the analysis), then
    /// let the bot answer or hand off.
    pub async fn visitor_message(
        &self,
        actor: &Actor,
        origin: &SessionHandle,
        m: SendMessage,
    ) -> Result<()> {
        let Participant::Visitor(customer) = actor.who else {
            return Err(HubError::Forbidden("only visitors"));
        };
        let Some(nlp) = self.nlp().cloned() else {
            return self
                .send_message(actor, Some(origin), m, None)
                .await
                .map(|_| ());
        };
        let mut analysis = nlp.analyze(&m.text).await;
        let decision = match &analysis {
            Some(a) => self.bot_decision(&nlp, customer, m.conversation_id, a)?,
            None => Decision::Nothing,
        };
        if let Some(a) = analysis.as_mut() {
            a.bot_answered = matches!(decision, Decision::Answer { .. });
        }
        let (msg, fresh) = self.send_message(actor, Some(origin), m, analysis).await?;
        let (Some(a), true) = (msg.analysis, fresh) else {
            return Ok(());
        };
        let conv = msg.conversation_id;
        self.fill_profile(customer, &a)?;
        match decision {
            Decision::Answer { text, team, .. } => {
                if let Some(team) = team {
                    self.follow_topic(conv, team)?;
                }
                self.bot_says(conv, text).await
            }
            Decision::Handoff { priority, team, .. } => {
                self.bot_says(conv, handoff_line(&a.language).to_string())
                    .await?;
                self.handoff(actor, conv, priority.max(0), team).await
            }
            Decision::Nothing => self.raise_priority(conv, Nlp::priority_for(&a)).await,
        }
    }

    /// What the bot would do, if it has (or will have) the conversation.
    fn bot_decision(
        &self,
        nlp: &Nlp,
        customer: CustomerId,
        named: Option<ConversationId>,
        a: &Analysis,
    ) -> Result<Decision> {
        let (with_bot, answers, topic) = match self.visitor_target(customer, named)? {
            None => (self.bot_enabled(), 0, None),
            Some(id) => {
                let st = self.conversation(id)?;
                (
                    st.record.status == ConversationStatus::Bot,
                    st.record.bot_answers_in_a_row,
                    st.record.team.clone(),
                )
            }
        };
        Ok(if with_bot {
            nlp.decide(a, answers, topic)
        } else {
            Decision::Nothing
        })
    }

    /// The bot answered an intent of `team`: the conversation's topic is now
    /// that team (written before the answer's commit, whose flush covers it).
    fn follow_topic(&self, conv: ConversationId, team: String) -> Result<()> {
        let mut st = self.conversation(conv)?;
        if st.record.status != ConversationStatus::Bot || st.record.team.as_ref() == Some(&team) {
            return Ok(());
        }
        self.store().put_conversation_team(conv, Some(&team))?;
        st.record.team = Some(team);
        Ok(())
    }

    /// The bot posts `text`, its typing indicator around it (visitor and
    /// agents see it). All three go through the commit stream so they arrive
    /// in order after the events that came before.
    async fn bot_says(&self, conv: ConversationId, text: String) -> Result<()> {
        let typing = |on| {
            ServerMessage::Typing(TypingEvent {
                conversation_id: conv,
                author: bot_author(),
                typing: on,
            })
        };
        let permit = self.reserve().await?;
        let done = self.reserve().await?;
        {
            let mut st = self.conversation(conv)?;
            let to = [
                To::One(Participant::Visitor(st.record.customer_id)),
                To::Agents,
            ];
            let mut commit = Commit::default();
            commit.deliver_all(to, typing(true));
            let draft = Draft {
                author: bot_author(),
                text,
                client_id: None,
                analysis: None,
            };
            self.append_locked(&mut st, draft, None, commit, permit)?;
            let mut after = Commit::default();
            after.deliver_all(to, typing(false));
            Hub::send(done, after);
        }
        Ok(())
    }

    /// Fills an empty email or phone on the profile from what the visitor wrote.
    fn fill_profile(&self, customer: CustomerId, a: &Analysis) -> Result<()> {
        // Most messages carry neither: skip the profile read for them.
        if !a
            .entities
            .iter()
            .any(|e| e.kind == "email" || e.kind == "phone")
        {
            return Ok(());
        }
        let Some(mut c) = self.store().customer(customer)? else {
            return Ok(());
        };
        let mut changed = false;
        for e in &a.entities {
            let slot = match e.kind.as_str() {
                "email" => &mut c.email,
                "phone" => &mut c.phone,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(e.value.clone());
                changed = true;
            }
        }
        if changed {
            self.store().put_customer(&c)?;
        }
        Ok(())
    }

    /// Moves a waiting conversation up the queue when the visitor's mood sours.
    async fn raise_priority(&self, conv: ConversationId, wanted: i32) -> Result<()> {
        // Most messages change nothing: look before taking a commit slot.
        if wanted <= 0 || self.conversation(conv)?.record.priority >= wanted {
            return Ok(());
        }
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        {
            let mut st = self.conversation(conv)?;
            if st.record.priority >= wanted {
                return Ok(());
            }
            st.record.priority = wanted;
            self.store().put_conversation(&st.record)?;
            if st.record.status == ConversationStatus::Queued {
                routing.enqueue(conv, wanted, st.record.team.as_deref());
            }
            let position = routing.position(conv);
            let ev = self.event(
                &st,
                switchboard_protocol::server::ConversationEventKind::Updated,
                None,
                position,
            );
            commit.deliver_all(watchers(&st.record), ev);
        }
        self.announce_queue(&routing, &mut commit);
        drop(routing);
        Hub::send(permit, commit);
        Ok(())
    }
}
