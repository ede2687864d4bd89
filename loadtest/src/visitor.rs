//! One simulated visitor: says hello without a token, then writes chat
//! messages at its [`Pace`], and checks what comes back.
//!
//! It records send → ack latency for its own messages, puts every ack in the
//! ledger (the agent must then receive that message exactly once), and marks
//! the agent's replies delivered, recording agent → visitor latency. Its loop
//! is [`session::drive`].

use crate::session::{self, Client, Ctx, End, Turn};
use crate::stats::{self, Metric, Recorder};
use crate::wire::{self, Ws};
use std::collections::HashMap;
use std::time::Duration;
use switchboard_protocol::client::{ConversationRef, VisitorHello};
use switchboard_protocol::model::{AuthorKind, ConversationStatus, Message};
use switchboard_protocol::server::{Ack, ConversationEvent, ErrorMessage};
use switchboard_protocol::{ClientMessage, ConversationId, ServerMessage};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite;

/// How a visitor writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Never: connect and hold (the `idle` scenario).
    Idle,
    /// One message every `Duration`, whatever the acks do (open loop).
    Every(Duration),
    /// The next message as soon as the previous one is acked.
    ClosedLoop,
    /// `size` messages back to back, every `every`.
    Burst { size: usize, every: Duration },
}

impl Pace {
    /// The timer that drives sending, first firing after `offset` (spreads visitors out).
    pub(crate) fn timer(self, offset: Duration) -> Option<Interval> {
        let period = match self {
            Pace::Idle | Pace::ClosedLoop => return None,
            Pace::Every(p) | Pace::Burst { every: p, .. } => p,
        };
        let mut t = tokio::time::interval_at(Instant::now() + offset, period);
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Some(t)
    }

    /// Messages per timer tick.
    pub fn per_tick(self) -> usize {
        match self {
            Pace::Burst { size, .. } => size,
            _ => 1,
        }
    }

    /// The period, used to spread first sends.
    pub fn period(self) -> Option<Duration> {
        match self {
            Pace::Every(p) | Pace::Burst { every: p, .. } => Some(p),
            _ => None,
        }
    }
}

/// A connected visitor.
#[derive(Debug)]
pub struct Visitor {
    name: String,
    ws: Ws,
    ctx: Ctx,
    rec: Recorder,
    pace: Pace,
    /// When the first timed send happens, relative to the welcome.
    offset: Duration,
    conversation: Option<ConversationId>,
    /// Sent, not yet acked: client id → send time (µs).
    unacked: HashMap<String, u64>,
    sent: u64,
    asked_handoff: bool,
}

impl Visitor {
    /// Connects and says hello. `None` when that failed (already tallied).
    pub async fn connect(index: usize, ctx: Ctx, pace: Pace, offset: Duration) -> Option<Visitor> {
        let rec = Recorder::new(ctx.stats.clone());
        let hello = ClientMessage::VisitorHello(VisitorHello {
            token: None,
            resume: Vec::new(),
            page_url: None,
            ..Default::default()
        });
        let (ws, _welcome) = ctx.open(&hello, &rec).await?;
        Some(Visitor {
            name: format!("v{index}"),
            ws,
            ctx,
            rec,
            pace,
            offset,
            conversation: None,
            unacked: HashMap::new(),
            sent: 0,
            asked_handoff: false,
        })
    }

    /// Chats until the run shuts down or the connection ends.
    pub async fn run(mut self) {
        let (pace, offset) = (self.pace, self.offset);
        let end = End::of(session::drive(&mut self, pace, offset).await);
        let ctx = self.ctx.clone();
        ctx.finish("visitor", self.ws, end).await;
    }

    async fn send(&mut self, msg: &ClientMessage) -> Result<(), End> {
        wire::send(&mut self.ws, self.ctx.encoding(), msg)
            .await
            .map_err(End::Failed)
    }

    /// An ack of one of ours: its turn is over (closed loop: the next one goes).
    fn on_ack(&mut self, ack: Ack) -> Turn {
        let Some(sent_at) = self.unacked.remove(&ack.client_id) else {
            self.ctx
                .stats
                .error("visitor: ack for an unknown or already acked client_id");
            return Turn::Wait;
        };
        self.rec
            .record(Metric::SendToAck, stats::now_us().saturating_sub(sent_at));
        stats::bump(&self.ctx.stats.counters.acked);
        self.ctx.ledger.ack(ack.conversation_id.0, ack.seq);
        self.conversation = Some(ack.conversation_id);
        Turn::Next
    }

    fn on_chat(&mut self, m: Message) {
        match m.author.kind {
            AuthorKind::Agent => self.on_reply(&m),
            AuthorKind::Visitor => stats::bump(&self.ctx.stats.counters.echoes),
            AuthorKind::Bot | AuthorKind::System => {
                stats::bump(&self.ctx.stats.counters.bot_messages)
            }
        }
    }

    fn on_reply(&mut self, m: &Message) {
        use crate::ledger::Delivery;
        match self.ctx.ledger.deliver(m.conversation_id.0, m.seq) {
            Delivery::First => {
                stats::bump(&self.ctx.stats.counters.delivered);
                if let Some(sent_at) = m.client_id.as_deref().and_then(session::sent_at) {
                    let latency = stats::now_us().saturating_sub(sent_at);
                    self.rec.record(Metric::AgentToVisitor, latency);
                }
            }
            Delivery::AfterHistory => {}
            Delivery::Duplicate => self.ctx.stats.error("visitor: duplicate delivery"),
        }
    }

    async fn on_conversation(&mut self, ev: ConversationEvent) -> Result<(), End> {
        if ev.conversation.status == ConversationStatus::Bot && !self.asked_handoff {
            // The bot has it: ask for a person, as a visitor who wants one would.
            self.asked_handoff = true;
            let handoff = ClientMessage::Handoff(ConversationRef {
                conversation_id: ev.conversation.id,
            });
            return self.send(&handoff).await;
        }
        Ok(())
    }

    fn on_error(&mut self, e: ErrorMessage) {
        self.ctx
            .stats
            .server_error("visitor", &e, &mut self.unacked);
    }
}

impl Client for Visitor {
    type In = ServerMessage;

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn ws(&mut self) -> &mut Ws {
        &mut self.ws
    }

    fn decode(&self, m: tungstenite::Message) -> Result<ServerMessage, String> {
        wire::decode(self.ctx.encoding(), &m)
    }

    async fn send_next(&mut self) -> Result<(), End> {
        if self.ctx.stop_sending.is_cancelled() {
            return Ok(());
        }
        self.sent += 1;
        let (client_id, msg) =
            session::chat_send(&self.name, self.sent, self.conversation, &self.ctx.text);
        self.unacked.insert(client_id, stats::now_us());
        stats::bump(&self.ctx.stats.counters.visitor_sent);
        self.send(&msg).await
    }

    async fn on_message(&mut self, msg: ServerMessage) -> Result<Turn, End> {
        match msg {
            ServerMessage::Ack(ack) => Ok(self.on_ack(ack)),
            ServerMessage::Message(m) => {
                self.on_chat(m);
                Ok(Turn::Wait)
            }
            ServerMessage::Conversation(ev) => {
                self.on_conversation(ev).await?;
                Ok(Turn::Wait)
            }
            ServerMessage::QueuePosition(_) => Ok(Turn::Wait),
            ServerMessage::Error(e) => {
                self.on_error(e);
                Ok(Turn::Wait)
            }
            _ => Ok(Turn::Wait),
        }
    }

    fn undecodable(&mut self, error: String) {
        self.ctx
            .stats
            .error(format!("visitor: undecodable frame: {error}"));
    }
}
