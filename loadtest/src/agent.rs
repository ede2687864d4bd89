//! One simulated agent: logs in (token from the REST API), says hello, raises
//! its capacity, and answers every visitor message in the conversations
//! routed to it, after an optional think time.
//!
//! It marks visitor messages delivered in the ledger (recording visitor →
//! agent latency), acks of its own replies as "owed to the visitor", and
//! fetches with `history` any message of a newly assigned conversation that
//! the server did not push to it.
//!
//! A conversation of a `--slow-readers` visitor (its messages' client ids say
//! so, see [`crate::slow`]) is answered as usual, and once that visitor has
//! stopped reading the agent also writes it `--slow-flood` extra messages,
//! [`FLOOD_CHUNK`] every [`FLOOD_EVERY`]. Nothing in such a conversation is
//! timed, and acks of what the agent writes there stay out of the ledger: a
//! reader that does not read cannot confirm the delivery.

use crate::ledger::Delivery;
use crate::session::{self, Ctx, End};
use crate::stats::{self, Metric, Recorder};
use crate::wire::{self, Frame, Ws};
use futures::StreamExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use switchboard_protocol::client::{AgentHello, History, SetCapacity, SetStatus};
use switchboard_protocol::model::{AgentStatus, AuthorKind, ConversationStatus, Message};
use switchboard_protocol::server::{
    Ack, ConversationEvent, ConversationEventKind, ErrorMessage, HistoryPage,
};
use switchboard_protocol::{AgentId, ClientMessage, ConversationId, ServerMessage};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// How often an agent writes a chunk of extra messages to each silent slow reader.
pub const FLOOD_EVERY: Duration = Duration::from_millis(100);
/// Extra messages per slow reader per [`FLOOD_EVERY`] (50 msg/s each).
pub const FLOOD_CHUNK: usize = 5;

/// How an agent behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Conversations it takes at once.
    pub capacity: u32,
    /// Wait this long before each reply.
    pub think: Duration,
    /// Extra messages to write to each slow reader's conversation (`--slow-flood`).
    pub flood: usize,
}

/// What the agent knows about one of its conversations.
#[derive(Debug, Default)]
struct Conversation {
    /// The server told us it is ours.
    assigned: bool,
    /// Visitor messages received (live or from history), by seq.
    seen: HashSet<u64>,
    /// Highest seq received.
    max_seq: u64,
    /// A history request is on its way.
    fetching: bool,
    /// The visitor is a slow reader: nothing here is timed or ledgered.
    slow: bool,
    /// Extra messages still to write to it.
    flood_left: usize,
}

/// A connected agent.
#[derive(Debug)]
pub struct Agent {
    name: String,
    id: AgentId,
    ws: Ws,
    ctx: Ctx,
    rec: Recorder,
    behaviour: Behaviour,
    conversations: HashMap<ConversationId, Conversation>,
    /// Replies waiting out the think time, in due order (the think time is constant).
    due: VecDeque<(Instant, ConversationId)>,
    /// Sent, not yet acked: client id → send time (µs).
    unacked: HashMap<String, u64>,
    sent: u64,
    /// Slow readers' conversations with extra messages still to write.
    floods: Vec<ConversationId>,
    flood_timer: Interval,
}

impl Agent {
    /// Connects with `token`, says hello and sets capacity and status.
    pub async fn connect(
        index: usize,
        token: String,
        ctx: Ctx,
        behaviour: Behaviour,
    ) -> Option<Agent> {
        let rec = Recorder::new(ctx.stats.clone());
        let hello = ClientMessage::AgentHello(AgentHello {
            token,
            resume: Vec::new(),
        });
        let (ws, welcome) = ctx.open(&hello, &rec).await?;
        let ServerMessage::AgentWelcome(welcome) = welcome else {
            ctx.stats.error("agent: answered with a visitor welcome");
            return None;
        };
        let mut agent = Agent {
            name: format!("a{index}"),
            id: welcome.agent.id,
            ws,
            ctx,
            rec,
            behaviour,
            conversations: HashMap::new(),
            due: VecDeque::new(),
            unacked: HashMap::new(),
            sent: 0,
            floods: Vec::new(),
            flood_timer: flood_timer(),
        };
        let capacity = ClientMessage::SetCapacity(SetCapacity {
            capacity: behaviour.capacity,
        });
        let online = ClientMessage::SetStatus(SetStatus {
            status: AgentStatus::Online,
        });
        if agent.send(&capacity).await.is_err() || agent.send(&online).await.is_err() {
            agent
                .ctx
                .stats
                .error("agent: connection lost after welcome");
            return None;
        }
        Some(agent)
    }

    /// Answers until the run shuts down or the connection ends.
    pub async fn run(mut self) {
        let end = End::of(self.serve().await);
        let ctx = self.ctx.clone();
        ctx.finish("agent", self.ws, end).await;
    }

    async fn serve(&mut self) -> Result<(), End> {
        loop {
            let next_due = self.due.front().map(|(at, _)| *at);
            let flooding = !self.floods.is_empty() && !self.ctx.stop_sending.is_cancelled();
            tokio::select! {
                // The run is over.
                _ = self.ctx.shutdown.cancelled() => return Ok(()),
                // A reply's think time is up.
                _ = sleep_until(next_due) => {
                    if let Some((_, conversation)) = self.due.pop_front() {
                        self.reply(conversation).await?;
                    }
                }
                // Next chunk of extra messages to the slow readers that went silent.
                _ = self.flood_timer.tick(), if flooding => self.flood().await?,
                // Something from the server.
                next = self.ws.next() => match wire::to_frame(self.ctx.encoding(), next) {
                    Frame::Server(m) => self.on_server(m).await?,
                    Frame::Control => {}
                    Frame::Closed(code) => return Err(End::Closed(code)),
                    Frame::Undecodable(e) => self.ctx.stats.error(format!("agent: undecodable frame: {e}")),
                    Frame::Failed(e) => return Err(End::Failed(e)),
                },
            }
        }
    }

    async fn send(&mut self, msg: &ClientMessage) -> Result<(), End> {
        wire::send(&mut self.ws, self.ctx.encoding(), msg)
            .await
            .map_err(End::Failed)
    }

    async fn on_server(&mut self, msg: ServerMessage) -> Result<(), End> {
        match msg {
            ServerMessage::Message(m) => self.on_message(m, false).await,
            ServerMessage::Ack(ack) => {
                self.on_ack(ack);
                Ok(())
            }
            ServerMessage::Conversation(ev) => self.on_conversation(ev).await,
            ServerMessage::History(page) => self.on_history(page).await,
            ServerMessage::Error(e) => {
                self.on_error(e);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A message in one of our conversations, pushed live or fetched with history.
    async fn on_message(&mut self, m: Message, from_history: bool) -> Result<(), End> {
        match m.author.kind {
            AuthorKind::Visitor => {}
            AuthorKind::Agent => {
                if !from_history {
                    stats::bump(&self.ctx.stats.counters.echoes);
                }
                return Ok(());
            }
            AuthorKind::Bot | AuthorKind::System => {
                if !from_history {
                    stats::bump(&self.ctx.stats.counters.bot_messages);
                }
                return Ok(());
            }
        }
        let slow = m.client_id.as_deref().is_some_and(crate::slow::is_slow);
        let first = self.record_delivery(&m, from_history, slow);
        let conv = self.conversations.entry(m.conversation_id).or_default();
        conv.max_seq = conv.max_seq.max(m.seq);
        if slow && !conv.slow {
            conv.slow = true;
            conv.flood_left = self.behaviour.flood;
            if conv.flood_left > 0 {
                self.floods.push(m.conversation_id);
            }
        }
        if first && conv.seen.insert(m.seq) {
            self.schedule_reply(m.conversation_id).await?;
        }
        Ok(())
    }

    /// Marks the message delivered; true if it is the first time this agent
    /// gets it. A slow reader's message is not timed.
    fn record_delivery(&mut self, m: &Message, from_history: bool, slow: bool) -> bool {
        let ledger = &self.ctx.ledger;
        let first = if from_history {
            ledger.deliver_from_history(m.conversation_id.0, m.seq)
        } else {
            match ledger.deliver(m.conversation_id.0, m.seq) {
                Delivery::First => true,
                Delivery::AfterHistory => false,
                Delivery::Duplicate => {
                    self.ctx.stats.error("agent: duplicate delivery");
                    false
                }
            }
        };
        if first {
            stats::bump(&self.ctx.stats.counters.delivered);
        }
        if first && !slow {
            if let Some(sent_at) = m.client_id.as_deref().and_then(session::sent_at) {
                let latency = stats::now_us().saturating_sub(sent_at);
                self.rec.record(Metric::VisitorToAgent, latency);
            }
        }
        first
    }

    async fn schedule_reply(&mut self, conversation: ConversationId) -> Result<(), End> {
        if self.behaviour.think.is_zero() {
            return self.reply(conversation).await;
        }
        self.due
            .push_back((Instant::now() + self.behaviour.think, conversation));
        Ok(())
    }

    async fn reply(&mut self, conversation: ConversationId) -> Result<(), End> {
        self.sent += 1;
        let (client_id, msg) =
            session::chat_send(&self.name, self.sent, Some(conversation), &self.ctx.text);
        self.unacked.insert(client_id, stats::now_us());
        stats::bump(&self.ctx.stats.counters.agent_sent);
        self.send(&msg).await
    }

    fn on_ack(&mut self, ack: Ack) {
        let Some(sent_at) = self.unacked.remove(&ack.client_id) else {
            self.ctx
                .stats
                .error("agent: ack for an unknown or already acked client_id");
            return;
        };
        stats::bump(&self.ctx.stats.counters.acked);
        let to_slow_reader = self
            .conversations
            .get(&ack.conversation_id)
            .is_some_and(|c| c.slow);
        if to_slow_reader {
            // Owed to a reader that does not read: not checkable, not timed.
            stats::bump(&self.ctx.slow.owed_acked);
            return;
        }
        self.rec
            .record(Metric::SendToAck, stats::now_us().saturating_sub(sent_at));
        self.ctx.ledger.ack(ack.conversation_id.0, ack.seq);
    }

    /// Writes the next chunk of extra messages to each slow reader that went silent.
    async fn flood(&mut self) -> Result<(), End> {
        let mut i = 0;
        while i < self.floods.len() {
            let id = self.floods[i];
            if !self.ctx.slow.is_silent(id) {
                i += 1;
                continue;
            }
            let conv = self.conversations.entry(id).or_default();
            let chunk = conv.flood_left.min(FLOOD_CHUNK);
            conv.flood_left -= chunk;
            if conv.flood_left == 0 {
                self.floods.swap_remove(i);
            } else {
                i += 1;
            }
            for _ in 0..chunk {
                stats::bump(&self.ctx.slow.flood_sent);
                self.reply(id).await?;
            }
        }
        Ok(())
    }

    async fn on_conversation(&mut self, ev: ConversationEvent) -> Result<(), End> {
        let view = &ev.conversation;
        match ev.event {
            ConversationEventKind::Queued => stats::bump(&self.ctx.stats.counters.queued),
            ConversationEventKind::Assigned | ConversationEventKind::Transferred
                if view.agent_id == Some(self.id)
                    && view.status == ConversationStatus::Assigned =>
            {
                let conv = self.conversations.entry(view.id).or_default();
                if conv.assigned {
                    return Ok(());
                }
                conv.assigned = true;
                self.ctx.ledger.mark_assigned(view.id.0);
                stats::bump(&self.ctx.stats.counters.assigned);
                if view.last_seq > conv.max_seq && !conv.fetching {
                    // Messages written before we had the conversation: fetch them.
                    conv.fetching = true;
                    let after = conv.max_seq;
                    return self.fetch_history(view.id, after).await;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn fetch_history(&mut self, conversation: ConversationId, after: u64) -> Result<(), End> {
        let ask = ClientMessage::History(History {
            conversation_id: conversation,
            before: None,
            after: Some(after),
            limit: Some(switchboard_protocol::limits::MAX_HISTORY_PAGE),
        });
        self.send(&ask).await
    }

    async fn on_history(&mut self, page: HistoryPage) -> Result<(), End> {
        let conversation = page.conversation_id;
        let last = page.messages.last().map(|m| m.seq);
        for m in page.messages {
            self.on_message(m, true).await?;
        }
        let conv = self.conversations.entry(conversation).or_default();
        conv.fetching = false;
        if page.has_more {
            if let Some(after) = last {
                conv.fetching = true;
                return self.fetch_history(conversation, after).await;
            }
        }
        Ok(())
    }

    fn on_error(&mut self, e: ErrorMessage) {
        self.ctx.stats.server_error("agent", &e, &mut self.unacked);
    }
}

fn flood_timer() -> Interval {
    let mut t = tokio::time::interval(FLOOD_EVERY);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Sleeps until `at`, or forever when nothing is due.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
