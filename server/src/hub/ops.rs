//! The hub's operations on conversations, one method per client action.
//! Each validates, authorizes, changes the store, and queues one commit.

use super::broker::{Participant, SessionHandle};
use super::commit::{Commit, To};
use super::routing::{Lean, Routing};
use super::{audience, now_ms, Actor, ConvState, Hub, HubError, Result, Unavailable};
use crate::store::{Customer, StoredConversation, NOTE_CHECKPOINT};
use switchboard_protocol::client::{History, Identify, Rate, SendMessage, VisitorHello};
use switchboard_protocol::limits::{
    DEFAULT_HISTORY_PAGE, MAX_ATTRIBUTES, MAX_CLIENT_ID_BYTES, MAX_COMMENT_CHARS, MAX_FIELD_BYTES,
    MAX_HISTORY_PAGE,
};
use switchboard_protocol::model::{
    AgentStatus, Analysis, Author, AuthorKind, ConversationStatus, Message, Rating,
};
use switchboard_protocol::server::{
    Ack, AgentWelcome, ConversationEvent, ConversationEventKind, HistoryPage, QueuePosition,
    ReadEvent, TypingEvent, VisitorWelcome,
};
use switchboard_protocol::{AgentId, ConversationId, CustomerId, MessageId, ServerMessage};

/// Conversations a visitor's welcome lists.
const WELCOME_CONVERSATIONS: usize = 20;
/// Highest capacity an agent may set.
pub(super) const MAX_CAPACITY: u32 = 10_000;

/// A chat text (message, note, saved reply): not blank, at most `max_chars` characters.
pub(super) fn check_text(text: &str, max_chars: usize) -> Result<()> {
    if text.trim().is_empty() {
        return Err(HubError::BadRequest("text is empty".into()));
    }
    if text.chars().count() > max_chars {
        return Err(HubError::TooLarge(format!(
            "text is longer than {max_chars} characters"
        )));
    }
    Ok(())
}

pub(super) fn check_client_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES {
        return Err(HubError::BadRequest(format!(
            "client_id must be 1 to {MAX_CLIENT_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks an optional profile field's length.
pub(crate) fn check_field(name: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) if v.len() > MAX_FIELD_BYTES => Err(HubError::TooLarge(format!(
            "{name} is longer than {MAX_FIELD_BYTES} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Everyone told of a conversation's state changes: its visitor and every agent.
pub(super) fn watchers(r: &StoredConversation) -> [To; 2] {
    [To::One(Participant::Visitor(r.customer_id)), To::Agents]
}

impl Hub {
    pub(super) fn event(
        &self,
        st: &ConvState,
        kind: ConversationEventKind,
        by: Option<Author>,
        position: Option<u32>,
    ) -> ServerMessage {
        ServerMessage::Conversation(ConversationEvent {
            event: kind,
            conversation: self.view(st, position),
            by,
            from_agent: None,
        })
    }

    /// May `actor` see this conversation? Visitors only their own; agents all.
    /// A visitor asking for someone else's conversation is told it does not exist.
    pub(super) fn authorize_read(actor: &Actor, r: &StoredConversation) -> Result<()> {
        match actor.who {
            Participant::Visitor(c) if c != r.customer_id => Err(HubError::NotFound),
            _ => Ok(()),
        }
    }

    /// May `actor` write into it? Its visitor, its assigned agent, or an admin.
    pub(super) fn authorize_write(actor: &Actor, r: &StoredConversation) -> Result<()> {
        Self::authorize_read(actor, r)?;
        match actor.who {
            Participant::Agent(a) if r.agent_id != Some(a) && !actor.is_admin() => Err(
                HubError::Forbidden("this conversation is not assigned to you"),
            ),
            _ => Ok(()),
        }
    }

    /// The conversation a visitor's send goes to: the one named (if theirs) or their newest.
    pub(super) fn visitor_target(
        &self,
        customer: CustomerId,
        named: Option<ConversationId>,
    ) -> Result<Option<ConversationId>> {
        match named {
            Some(id) => {
                let st = self.conversation(id)?;
                if st.record.customer_id != customer {
                    return Err(HubError::NotFound);
                }
                Ok(Some(id))
            }
            None => Ok(self
                .store()
                .customer_conversations(customer)?
                .last()
                .copied()),
        }
    }

    /// Sends a conversation to an agent or to the queue by the routing rule
    /// (its team, nudged by `lean`), and announces where it went.
    fn route(&self, routing: &mut Routing, st: &mut ConvState, lean: Lean, commit: &mut Commit) {
        let (kind, position) = match self.place(routing, st, lean) {
            Some(_) => (ConversationEventKind::Assigned, None),
            None => (
                ConversationEventKind::Queued,
                routing.position(st.record.id),
            ),
        };
        commit.deliver_all(watchers(&st.record), self.event(st, kind, None, position));
    }

    /// Assigns a conversation by the routing rule, or queues it; returns the
    /// agent it went to. The caller announces it and writes the record.
    pub(super) fn place(
        &self,
        routing: &mut Routing,
        st: &mut ConvState,
        lean: Lean,
    ) -> Option<AgentId> {
        let id = st.record.id;
        let chosen = routing.pick_agent(st.record.team.as_deref(), lean);
        let now = now_ms();
        st.record.updated_at = now;
        match chosen {
            Some(agent) => {
                routing.assign(id, agent);
                st.record.status = ConversationStatus::Assigned;
                st.record.queued_at = None;
            }
            None => {
                routing.enqueue(id, st.record.priority, st.record.team.as_deref());
                st.record.status = ConversationStatus::Queued;
                st.record.queued_at = Some(now);
            }
        }
        st.record.agent_id = chosen;
        chosen
    }

    /// Tells every waiting visitor their place in the queue.
    pub(super) fn announce_queue(&self, routing: &Routing, commit: &mut Commit) {
        for (id, position) in routing.positions() {
            let Ok(st) = self.conversation(id) else {
                continue;
            };
            commit.deliver(
                To::One(Participant::Visitor(st.record.customer_id)),
                ServerMessage::QueuePosition(QueuePosition {
                    conversation_id: id,
                    position,
                }),
            );
        }
    }

    /// Assigns waiting conversations while agents have room, and announces it.
    pub(super) fn drain_queue(&self, routing: &mut Routing, commit: &mut Commit) -> Result<()> {
        self.drain_queue_avoiding(routing, None, commit).map(drop)
    }

    /// [`Hub::drain_queue`], keeping one conversation from one agent this time
    /// (see [`Routing::drain`]). Returns whether it assigned (and so announced) anything.
    pub(super) fn drain_queue_avoiding(
        &self,
        routing: &mut Routing,
        avoid: Option<(ConversationId, AgentId)>,
        commit: &mut Commit,
    ) -> Result<bool> {
        let assigned = routing.drain(avoid);
        if assigned.is_empty() {
            return Ok(false);
        }
        for (id, agent) in assigned {
            let mut st = self.conversation(id)?;
            st.record.status = ConversationStatus::Assigned;
            st.record.agent_id = Some(agent);
            st.record.queued_at = None;
            st.record.updated_at = now_ms();
            self.store().put_conversation(&st.record)?;
            commit.deliver_all(
                watchers(&st.record),
                self.event(&st, ConversationEventKind::Assigned, None, None),
            );
        }
        self.announce_queue(routing, commit);
        Ok(true)
    }

    /// Starts a conversation for `customer` and routes it.
    fn start_conversation(
        &self,
        customer: CustomerId,
        commit: &mut Commit,
    ) -> Result<ConversationId> {
        let id = ConversationId(self.store().next_id()?);
        let mut st = ConvState::fresh(StoredConversation::new(id, customer, now_ms()));
        let mut routing = self.routing();
        if self.bot_enabled() {
            st.record.status = ConversationStatus::Bot;
        }
        commit.deliver_all(
            watchers(&st.record),
            self.event(&st, ConversationEventKind::Created, None, None),
        );
        if !self.bot_enabled() {
            self.route(&mut routing, &mut st, Lean::None, commit);
        }
        self.store().put_conversation(&st.record)?;
        self.store().link_conversation(customer, id)?;
        self.shared.conversations.insert(id, st);
        Ok(id)
    }

    /// Reopens a closed conversation, back to its last agent if they have room.
    fn reopen(&self, id: ConversationId, by: &Actor, commit: &mut Commit) -> Result<()> {
        let mut routing = self.routing();
        let mut st = self.conversation(id)?;
        if st.record.is_open() {
            return Ok(());
        }
        let previous = st.record.agent_id;
        st.record.closed_at = None;
        commit.deliver_all(
            watchers(&st.record),
            self.event(
                &st,
                ConversationEventKind::Reopened,
                Some(by.author()),
                None,
            ),
        );
        let lean = previous.map_or(Lean::None, Lean::Toward);
        self.route(&mut routing, &mut st, lean, commit);
        self.store().put_conversation(&st.record)?;
        Ok(())
    }

    /// Posts a message. The ack reaches `origin` once it is durable; a resent
    /// `client_id` is acknowledged again with the ids it was first stored under.
    /// Returns the message and whether it is new (not a resend).
    pub async fn send_message(
        &self,
        actor: &Actor,
        origin: Option<&SessionHandle>,
        m: SendMessage,
        analysis: Option<Analysis>,
    ) -> Result<(Message, bool)> {
        check_text(&m.text, self.config().max_text_chars)?;
        check_client_id(&m.client_id)?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let id = match (actor.who, m.conversation_id) {
            (Participant::Visitor(c), named) => match self.visitor_target(c, named)? {
                Some(id) => {
                    let mut st = self.conversation(id)?;
                    // A retry of something already stored must not reopen anything.
                    if !st.record.is_open() && st.resent(self.store(), &m.client_id)?.is_none() {
                        drop(st);
                        self.reopen(id, actor, &mut commit)?;
                    }
                    id
                }
                None => self.start_conversation(c, &mut commit)?,
            },
            (Participant::Agent(_), Some(id)) => id,
            (Participant::Agent(_), None) => {
                return Err(HubError::BadRequest("conversation_id is required".into()))
            }
        };
        let mut st = self.conversation(id)?;
        Self::authorize_write(actor, &st.record)?;
        if actor.agent_id().is_some() && !st.record.is_open() {
            return Err(HubError::InvalidState("the conversation is closed"));
        }
        if let Some(existing) = st.resent(self.store(), &m.client_id)? {
            commit.ack = origin.map(|o| (o.clone(), ack(&existing)));
            Hub::send(permit, commit);
            return Ok((existing, false));
        }
        let draft = Draft {
            author: actor.author(),
            text: m.text,
            client_id: Some(m.client_id),
            analysis,
        };
        let msg = self.append_locked(&mut st, draft, origin, commit, permit)?;
        Ok((msg, true))
    }

    /// Stores a message in a conversation the caller has locked, and queues its
    /// commit (ack to `origin`, delivery to the conversation's audience).
    pub(super) fn append_locked(
        &self,
        st: &mut ConvState,
        draft: Draft,
        origin: Option<&SessionHandle>,
        mut commit: Commit,
        permit: super::commit::Permit,
    ) -> Result<Message> {
        let msg = Message {
            id: MessageId(self.store().next_id()?),
            conversation_id: st.record.id,
            seq: st.last_seq + 1,
            author: draft.author,
            text: draft.text,
            client_id: draft.client_id,
            sent_at: now_ms(),
            analysis: draft.analysis,
        };
        self.store().put_message(&msg)?;
        st.note(&msg);
        // The record is written with its other changes, not for every message
        // (see `StoredConversation`); a checkpoint bounds what a start replays.
        if msg.seq % NOTE_CHECKPOINT == 0 {
            self.store().put_conversation(&st.record)?;
        }
        commit.durable = Some((st.durable_seq.clone(), msg.seq));
        commit.ack = origin.map(|o| (o.clone(), ack(&msg)));
        commit.deliver_all(audience(&st.record), ServerMessage::Message(msg.clone()));
        Hub::send(permit, commit);
        self.metrics().messages_in.inc();
        Ok(msg)
    }

    /// Forwards a typing indicator to the other side (not stored).
    pub fn typing(&self, actor: &Actor, id: ConversationId, typing: bool) -> Result<()> {
        let st = self.conversation(id)?;
        Self::authorize_write(actor, &st.record)?;
        let other = match actor.who {
            Participant::Visitor(_) => st.record.agent_id.map(Participant::Agent),
            Participant::Agent(_) => Some(Participant::Visitor(st.record.customer_id)),
        };
        drop(st);
        if let Some(to) = other {
            let msg = ServerMessage::Typing(TypingEvent {
                conversation_id: id,
                author: actor.author(),
                typing,
            });
            self.broker()
                .publish(to, &super::broker::Outgoing::new(msg));
        }
        Ok(())
    }

    /// Records that `actor`'s side has read up to `seq`, and tells both sides.
    pub async fn mark_read(&self, actor: &Actor, id: ConversationId, seq: u64) -> Result<()> {
        let permit = self.reserve().await?;
        let mut st = self.conversation(id)?;
        Self::authorize_read(actor, &st.record)?;
        let seq = seq.min(st.last_seq);
        let (slot, reader) = match actor.who {
            Participant::Visitor(_) => (&mut st.record.visitor_read_seq, AuthorKind::Visitor),
            Participant::Agent(_) => (&mut st.record.agent_read_seq, AuthorKind::Agent),
        };
        if seq <= *slot {
            return Ok(());
        }
        *slot = seq;
        self.store().put_conversation(&st.record)?;
        let mut commit = Commit::default();
        commit.deliver_all(
            audience(&st.record),
            ServerMessage::Read(ReadEvent {
                conversation_id: id,
                reader,
                seq,
            }),
        );
        Hub::send(permit, commit);
        Ok(())
    }

    /// A page of durable history.
    pub fn history(&self, actor: &Actor, h: &History) -> Result<HistoryPage> {
        let st = self.conversation(h.conversation_id)?;
        Self::authorize_read(actor, &st.record)?;
        let durable = st.durable_seq.load(std::sync::atomic::Ordering::Acquire);
        drop(st);
        let limit = h
            .limit
            .unwrap_or(DEFAULT_HISTORY_PAGE)
            .clamp(1, MAX_HISTORY_PAGE);
        let want = usize::try_from(limit).unwrap_or(usize::MAX);
        let id = h.conversation_id;
        let (mut messages, has_more) = match h.after {
            Some(after) => {
                let mut m = self.store().messages_between(
                    id,
                    after.saturating_add(1),
                    durable,
                    want + 1,
                )?;
                let more = m.len() > want;
                m.truncate(want);
                (m, more)
            }
            None => {
                let before = h.before.unwrap_or(u64::MAX).min(durable.saturating_add(1));
                let mut m = self.store().messages_before(id, before, want + 1)?;
                let more = m.len() > want;
                if more {
                    m.remove(0);
                }
                (m, more)
            }
        };
        messages.retain(|m| m.seq <= durable);
        Ok(HistoryPage {
            conversation_id: id,
            messages,
            has_more,
        })
    }

    /// Messages after `last_seq` up to what is durable, for a resuming session.
    pub fn resume_from(
        &self,
        actor: &Actor,
        id: ConversationId,
        last_seq: u64,
    ) -> Result<Vec<Message>> {
        let st = self.conversation(id)?;
        Self::authorize_read(actor, &st.record)?;
        let durable = st.durable_seq.load(std::sync::atomic::Ordering::Acquire);
        drop(st);
        Ok(self
            .store()
            .messages_between(id, last_seq.saturating_add(1), durable, usize::MAX)?)
    }

    /// Agent takes a waiting conversation.
    pub async fn claim(&self, actor: &Actor, id: ConversationId) -> Result<()> {
        let me = actor
            .agent_id()
            .ok_or(HubError::Forbidden("only agents claim conversations"))?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        {
            let mut st = self.conversation(id)?;
            if !matches!(
                st.record.status,
                ConversationStatus::Queued | ConversationStatus::Bot
            ) {
                return Err(HubError::InvalidState("the conversation is not waiting"));
            }
            routing.assign(id, me);
            st.record.status = ConversationStatus::Assigned;
            st.record.agent_id = Some(me);
            st.record.queued_at = None;
            st.record.updated_at = now_ms();
            self.store().put_conversation(&st.record)?;
            commit.deliver_all(
                watchers(&st.record),
                self.event(
                    &st,
                    ConversationEventKind::Assigned,
                    Some(actor.author()),
                    None,
                ),
            );
        }
        self.announce_queue(&routing, &mut commit);
        Hub::send(permit, commit);
        Ok(())
    }

    /// Hands a conversation to another agent, who must be online with a free
    /// slot: an assigned one (its agent or an admin), or a waiting one (an admin).
    pub async fn transfer(&self, actor: &Actor, id: ConversationId, to: AgentId) -> Result<()> {
        actor
            .agent_id()
            .ok_or(HubError::Forbidden("only agents transfer conversations"))?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        if routing.agent(to).is_none() {
            return Err(HubError::NotFound);
        }
        let mut was_waiting = false;
        {
            let mut st = self.conversation(id)?;
            Self::authorize_write(actor, &st.record)?;
            match st.record.status {
                ConversationStatus::Assigned => {}
                // Waiting (queued, or with the bot): an admin may hand it to
                // someone, as agents claim it for themselves.
                ConversationStatus::Queued | ConversationStatus::Bot if actor.is_admin() => {
                    was_waiting = true;
                }
                _ => {
                    return Err(HubError::InvalidState(
                        "only an assigned conversation can be transferred (an admin may also assign a waiting one)",
                    ))
                }
            }
            let from = st.record.agent_id.filter(|_| !was_waiting);
            if from == Some(to) {
                return Err(HubError::InvalidState(
                    "the conversation is already with that agent",
                ));
            }
            check_available(&routing, to)?;
            if let Some(f) = from {
                routing.release(id, f);
            }
            routing.remove_from_queue(id);
            routing.assign(id, to);
            let r = &mut st.record;
            r.agent_id = Some(to);
            r.status = ConversationStatus::Assigned;
            r.queued_at = None;
            r.bot_answers_in_a_row = 0;
            r.updated_at = now_ms();
            self.store().put_conversation(&st.record)?;
            let event = if was_waiting {
                self.event(
                    &st,
                    ConversationEventKind::Assigned,
                    Some(actor.author()),
                    None,
                )
            } else {
                self.transferred(&st, actor, from, None)
            };
            commit.deliver_all(watchers(&st.record), event);
        }
        if was_waiting {
            self.announce_queue(&routing, &mut commit);
        }
        self.drain_queue(&mut routing, &mut commit)?;
        Hub::send(permit, commit);
        Ok(())
    }

    /// Ends a conversation (its visitor, its agent, an admin, or any agent for one still waiting).
    pub async fn close(&self, actor: &Actor, id: ConversationId) -> Result<()> {
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        let was_queued;
        {
            let mut st = self.conversation(id)?;
            let waiting = matches!(
                st.record.status,
                ConversationStatus::Queued | ConversationStatus::Bot
            );
            if !(waiting && actor.agent_id().is_some()) {
                Self::authorize_write(actor, &st.record)?;
            }
            if !st.record.is_open() {
                return Err(HubError::InvalidState("the conversation is already closed"));
            }
            if let Some(a) = st
                .record
                .agent_id
                .filter(|_| st.record.status == ConversationStatus::Assigned)
            {
                routing.release(id, a);
            }
            was_queued = routing.remove_from_queue(id);
            let now = now_ms();
            st.record.status = ConversationStatus::Closed;
            st.record.closed_at = Some(now);
            st.record.updated_at = now;
            st.record.queued_at = None;
            st.record.bot_answers_in_a_row = 0;
            self.store().put_conversation(&st.record)?;
            commit.deliver_all(
                watchers(&st.record),
                self.event(
                    &st,
                    ConversationEventKind::Closed,
                    Some(actor.author()),
                    None,
                ),
            );
        }
        if was_queued {
            self.announce_queue(&routing, &mut commit);
        }
        self.drain_queue(&mut routing, &mut commit)?;
        Hub::send(permit, commit);
        Ok(())
    }

    /// The `transferred` event: `from` is the agent it left.
    pub(super) fn transferred(
        &self,
        st: &ConvState,
        by: &Actor,
        from: Option<AgentId>,
        position: Option<u32>,
    ) -> ServerMessage {
        ServerMessage::Conversation(ConversationEvent {
            event: ConversationEventKind::Transferred,
            conversation: self.view(st, position),
            by: Some(by.author()),
            from_agent: from,
        })
    }

    /// Visitor asks for a person: a conversation the bot has is routed, to
    /// `team` when the bot's hand-off names one (else the team it has, if any).
    pub async fn handoff(
        &self,
        actor: &Actor,
        id: ConversationId,
        priority_boost: i32,
        team: Option<String>,
    ) -> Result<()> {
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        {
            let mut st = self.conversation(id)?;
            Self::authorize_write(actor, &st.record)?;
            if st.record.status != ConversationStatus::Bot {
                return Ok(());
            }
            st.record.priority = st.record.priority.saturating_add(priority_boost);
            st.record.bot_answers_in_a_row = 0;
            if team.is_some() && team != st.record.team {
                self.store().put_conversation_team(id, team.as_deref())?;
                st.record.team = team;
            }
            self.route(&mut routing, &mut st, Lean::None, &mut commit);
            self.store().put_conversation(&st.record)?;
        }
        Hub::send(permit, commit);
        Ok(())
    }

    /// Visitor rates a closed conversation.
    pub async fn rate(&self, actor: &Actor, r: Rate) -> Result<()> {
        if !(1..=5).contains(&r.score) {
            return Err(HubError::BadRequest("score must be 1 to 5".into()));
        }
        if r.comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(HubError::TooLarge(format!(
                "comment is longer than {MAX_COMMENT_CHARS} characters"
            )));
        }
        let permit = self.reserve().await?;
        let mut st = self.conversation(r.conversation_id)?;
        if !matches!(actor.who, Participant::Visitor(c) if c == st.record.customer_id) {
            return Err(HubError::NotFound);
        }
        if st.record.is_open() {
            return Err(HubError::InvalidState(
                "only a closed conversation can be rated",
            ));
        }
        let comment = r.comment.filter(|c| !c.trim().is_empty());
        st.record.rating = Some(Rating {
            score: r.score,
            comment,
            rated_at: now_ms(),
        });
        self.store().put_conversation(&st.record)?;
        let mut commit = Commit::default();
        commit.deliver_all(
            watchers(&st.record),
            self.event(
                &st,
                ConversationEventKind::Rated,
                Some(actor.author()),
                None,
            ),
        );
        Hub::send(permit, commit);
        Ok(())
    }

    /// Agent changes their availability.
    pub async fn set_status(&self, actor: &Actor, status: AgentStatus) -> Result<()> {
        if status == AgentStatus::Offline {
            return Err(HubError::BadRequest(
                "choose online or away; offline is when you disconnect".into(),
            ));
        }
        self.update_agent_load(actor, |rec, load| {
            rec.status = status;
            load.chosen = status;
        })
        .await
    }

    /// Agent changes how many conversations they take at once.
    pub async fn set_capacity(&self, actor: &Actor, capacity: u32) -> Result<()> {
        if capacity > MAX_CAPACITY {
            return Err(HubError::BadRequest(format!(
                "capacity must be at most {MAX_CAPACITY}"
            )));
        }
        self.update_agent_load(actor, |rec, load| {
            rec.capacity = capacity;
            load.capacity = capacity;
        })
        .await
    }

    async fn update_agent_load(
        &self,
        actor: &Actor,
        change: impl FnOnce(&mut crate::store::AgentRecord, &mut super::routing::AgentLoad),
    ) -> Result<()> {
        let me = actor
            .agent_id()
            .ok_or(HubError::Forbidden("only agents have a status"))?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        let mut record = self.store().agent(me)?.ok_or(HubError::Unauthorized)?;
        let load = routing.agent_mut(me).ok_or(HubError::Unauthorized)?;
        change(&mut record, load);
        self.store().put_agent(&record)?;
        if let Some(p) = routing.presence(me) {
            commit.deliver(To::Agents, ServerMessage::Presence(p));
        }
        self.drain_queue(&mut routing, &mut commit)?;
        Hub::send(permit, commit);
        Ok(())
    }

    /// Visitor says who they are: fills the empty or changed profile fields.
    pub async fn identify(&self, actor: &Actor, i: Identify) -> Result<()> {
        let Participant::Visitor(id) = actor.who else {
            return Err(HubError::Forbidden("only visitors identify"));
        };
        for (name, v) in [
            ("user_id", &i.user_id),
            ("name", &i.name),
            ("email", &i.email),
            ("phone", &i.phone),
            ("company", &i.company),
        ] {
            check_field(name, v.as_deref())?;
        }
        if i.attributes.len() > MAX_ATTRIBUTES
            || i.attributes
                .iter()
                .any(|(k, v)| k.len() > MAX_FIELD_BYTES || v.len() > MAX_FIELD_BYTES)
        {
            return Err(HubError::TooLarge("too many or too long attributes".into()));
        }
        let verified = self
            .verified_user(i.user_id.as_deref(), i.hash.as_deref())?
            .map(str::to_string);
        let permit = self.reserve().await?;
        let mut c = self
            .store()
            .customer(id)?
            .unwrap_or_else(|| Customer::new(id, now_ms()));
        let set = |slot: &mut Option<String>, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                *slot = Some(v);
            }
        };
        set(&mut c.name, i.name);
        set(&mut c.email, i.email);
        set(&mut c.phone, i.phone);
        set(&mut c.company, i.company);
        c.attributes.extend(i.attributes);
        match verified {
            Some(user) => match self.store().customer_by_external_id(&user)? {
                None => {
                    self.store().link_external_id(&user, id)?;
                    c.external_id = Some(user);
                }
                Some(owner) if owner == id => {}
                Some(_) => {
                    return Err(HubError::Conflict(
                        "this user already has a history: reconnect with user_id and user_hash",
                    ))
                }
            },
            // Only a signed id may find a history; an unsigned one is a note on the profile.
            None => {
                if let Some(claimed) = i.user_id.filter(|u| !u.trim().is_empty()) {
                    c.attributes.insert("unverified_user_id".into(), claimed);
                }
            }
        }
        self.store().put_customer(&c)?;
        let mut commit = Commit::default();
        self.profile_changed(id, &mut commit)?;
        self.sync(permit, commit).await
    }

    /// Stores a customer profile edited over REST and tells the watchers of
    /// their open conversations, as `identify` does.
    pub async fn save_customer(&self, c: &Customer) -> Result<()> {
        let permit = self.reserve().await?;
        self.store().put_customer(c)?;
        let mut commit = Commit::default();
        self.profile_changed(c.id, &mut commit)?;
        self.sync(permit, commit).await
    }

    /// A profile changed: an `updated` event (its view carries the
    /// customer's name) for each of the customer's open conversations, to
    /// their visitor and every agent.
    fn profile_changed(&self, customer: CustomerId, commit: &mut Commit) -> Result<()> {
        for id in self.store().customer_conversations(customer)? {
            let open = match self.shared.conversations.get(&id) {
                Some(st) => st.record.is_open(),
                None => self.store().conversation(id)?.is_some_and(|r| r.is_open()),
            };
            if !open {
                continue;
            }
            let position = self.routing().position(id);
            let st = self.conversation(id)?;
            let ev = self.event(&st, ConversationEventKind::Updated, None, position);
            commit.deliver_all(watchers(&st.record), ev);
        }
        Ok(())
    }

    /// Authenticates a visitor hello; creates the visitor when there is no token.
    pub fn visitor_hello(
        &self,
        hello: &VisitorHello,
        user_agent: Option<&str>,
    ) -> Result<(Actor, VisitorWelcome)> {
        check_field("page_url", hello.page_url.as_deref())?;
        check_field("user_id", hello.user_id.as_deref())?;
        let now = now_ms();
        let verified = self.verified_user(hello.user_id.as_deref(), hello.user_hash.as_deref())?;
        let from_token = match &hello.token {
            Some(token) => {
                let id = self
                    .visitor_tokens()
                    .verify(token, now / 1000)
                    .map_err(|_| HubError::Unauthorized)?;
                // A valid token for a deleted customer is refused: the visitor starts anew.
                Some(self.store().customer(id)?.ok_or(HubError::Unauthorized)?)
            }
            None => None,
        };
        let mut customer = match verified {
            // A signed-in user is one visitor on every device.
            Some(user) => match self.store().customer_by_external_id(user)? {
                Some(id) => match self.store().customer(id)? {
                    Some(c) => c,
                    None => self.new_verified_customer(user, None, now)?,
                },
                None => self.new_verified_customer(user, from_token, now)?,
            },
            None => match from_token {
                // A token is enough for its own browser, and a verified visitor's token stays verified.
                Some(c) if self.config().anonymous_visitors || c.external_id.is_some() => c,
                None if self.config().anonymous_visitors => {
                    Customer::new(CustomerId(self.store().next_id()?), now)
                }
                _ => {
                    return Err(HubError::Identity(
                        "sign in to chat: this site needs a verified user",
                    ))
                }
            },
        };
        customer.last_seen = now;
        if hello.page_url.is_some() {
            customer.last_page_url = hello.page_url.clone();
        }
        if let Some(ua) = user_agent {
            customer.user_agent = Some(ua.chars().take(MAX_FIELD_BYTES / 2).collect());
        }
        // A returning visitor may still connect and read while the store cannot write.
        if let Err(e) = self.store().put_customer(&customer) {
            if !(e.is_unavailable() && self.store().customer(customer.id)?.is_some()) {
                return Err(e.into());
            }
        }
        let (token, expires) = self.visitor_tokens().issue(customer.id, now / 1000);
        let conversations = self.customer_views(customer.id, WELCOME_CONVERSATIONS)?;
        let actor = Actor::visitor(customer.id, customer.name.clone());
        let welcome = VisitorWelcome {
            token,
            customer_id: customer.id,
            token_expires_at: expires.saturating_mul(1000),
            conversations,
        };
        Ok((actor, welcome))
    }

    /// The user id a hello or identify proves with its signature; None for an
    /// unsigned id where that is allowed (it is then never used to find anyone).
    fn verified_user<'a>(
        &self,
        user_id: Option<&'a str>,
        hash: Option<&str>,
    ) -> Result<Option<&'a str>> {
        let c = self.config();
        match (user_id.filter(|u| !u.trim().is_empty()), hash) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(HubError::BadRequest("user_hash needs a user_id".into())),
            (Some(_), None) if c.identity_required => Err(HubError::Identity(
                "this site signs user ids: user_hash is missing",
            )),
            (Some(_), None) => Ok(None),
            (Some(_), Some(_)) if !c.identity.is_set() => Err(HubError::Identity(
                "identity verification is not set up on this server",
            )),
            (Some(u), Some(h)) if c.identity.verify(u, h) => Ok(Some(u)),
            (Some(_), Some(_)) => Err(HubError::Identity("user_hash does not match user_id")),
        }
    }

    /// A verified user seen for the first time: this browser's anonymous
    /// visitor becomes them (keeping its conversation), or a new visitor does.
    fn new_verified_customer(
        &self,
        user: &str,
        from_token: Option<Customer>,
        now: u64,
    ) -> Result<Customer> {
        let mut c = match from_token.filter(|c| c.external_id.is_none()) {
            Some(c) => c,
            None => Customer::new(CustomerId(self.store().next_id()?), now),
        };
        self.store().link_external_id(user, c.id)?;
        c.external_id = Some(user.to_string());
        Ok(c)
    }

    /// A customer's newest conversations, newest first.
    pub fn customer_views(
        &self,
        customer: CustomerId,
        limit: usize,
    ) -> Result<Vec<switchboard_protocol::model::ConversationView>> {
        let ids = self.store().customer_conversations(customer)?;
        ids.iter()
            .rev()
            .take(limit)
            .map(|id| self.view_of(*id))
            .collect()
    }

    /// Registers a visitor session for delivery.
    pub fn join_visitor(&self, actor: &Actor, session: SessionHandle) {
        self.broker().subscribe(actor.who, session);
    }

    /// Registers an agent session: the agent is online (if they chose so) and may take waiting conversations.
    pub async fn join_agent(&self, actor: &Actor, session: SessionHandle) -> Result<AgentWelcome> {
        let me = actor.agent_id().ok_or(HubError::Unauthorized)?;
        let record = self
            .store()
            .agent(me)?
            .filter(|a| !a.disabled)
            .ok_or(HubError::Unauthorized)?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        self.broker().subscribe(actor.who, session);
        routing.upsert_agent(&record);
        let load = routing.agent_mut(me).ok_or(HubError::Unauthorized)?;
        load.sessions += 1;
        if load.sessions == 1 {
            if let Some(p) = routing.presence(me) {
                commit.deliver(To::Agents, ServerMessage::Presence(p));
            }
            self.drain_queue(&mut routing, &mut commit)?;
        }
        let mine: Vec<_> = routing
            .agent(me)
            .map(|l| l.active.iter().copied().collect())
            .unwrap_or_default();
        let queue = routing.positions();
        let agents = routing.all_presence();
        drop(routing);
        Hub::send(permit, commit);
        let conversations = mine
            .iter()
            .filter_map(|id| self.conversation(*id).ok().map(|st| self.view(&st, None)))
            .collect();
        let queue = queue
            .iter()
            .filter_map(|(id, p)| {
                self.conversation(*id)
                    .ok()
                    .map(|st| self.view(&st, Some(*p)))
            })
            .collect();
        Ok(AgentWelcome {
            agent: record.view(),
            conversations,
            queue,
            agents,
        })
    }

    /// Unregisters a session; an agent whose last session ends goes offline
    /// (keeping their conversations). A team member going offline may leave
    /// their team with nobody online, so its waiting conversations overflow
    /// to anyone with room.
    pub async fn leave(&self, actor: &Actor, session_id: u64) {
        let left = self.broker().unsubscribe(actor.who, session_id);
        let Some(me) = actor.agent_id() else { return };
        let Some(overflow) = self.session_ended(me, left) else {
            return;
        };
        if overflow {
            if let Err(e) = self.rebalance().await {
                tracing::debug!(error = %e, "no drain after an agent left");
            }
        }
    }

    /// Counts an agent's session gone (`left`: their sessions still subscribed).
    /// When it was their last, tells the agents and returns whether a queue
    /// drain may now overflow their teams' waiting conversations.
    fn session_ended(&self, me: AgentId, left: usize) -> Option<bool> {
        let mut routing = self.routing();
        let load = routing.agent_mut(me)?;
        load.sessions = load.sessions.saturating_sub(1);
        if load.sessions > 0 || left > 0 {
            return None;
        }
        let overflow = !load.teams.is_empty() && routing.queue_len() > 0;
        if let Some(p) = routing.presence(me) {
            drop(routing);
            self.broker()
                .publish_agents(&super::broker::Outgoing::new(ServerMessage::Presence(p)));
        }
        Some(overflow)
    }

    /// Drains the queue into whatever room there is now.
    async fn rebalance(&self) -> Result<()> {
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        self.drain_queue(&mut self.routing(), &mut commit)?;
        Hub::send(permit, commit);
        Ok(())
    }
}

/// A message about to be stored.
pub(super) struct Draft {
    pub(super) author: Author,
    pub(super) text: String,
    pub(super) client_id: Option<String>,
    pub(super) analysis: Option<Analysis>,
}

/// Refuses a hand-over to an agent who cannot take a new conversation now.
fn check_available(routing: &Routing, to: AgentId) -> Result<()> {
    let load = routing.agent(to).ok_or(HubError::NotFound)?;
    match load.status() {
        AgentStatus::Offline => Err(Unavailable::Offline.into()),
        AgentStatus::Away => Err(Unavailable::Away.into()),
        AgentStatus::Online if load.free() == 0 => Err(Unavailable::Full.into()),
        AgentStatus::Online => Ok(()),
    }
}

fn ack(m: &Message) -> Ack {
    Ack {
        client_id: m.client_id.clone().unwrap_or_default(),
        conversation_id: m.conversation_id,
        message_id: m.id,
        seq: m.seq,
    }
}
