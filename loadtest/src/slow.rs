//! `--slow-readers N`: visitors that stop reading their socket, to show that
//! one client that cannot keep up does not slow down everyone else.
//!
//! A [`SlowReader`] connects like a visitor (with a tiny kernel receive
//! buffer, so the server's writes back up sooner), writes [`WARMUP_MESSAGES`]
//! messages one after another and reads until each is acked, then stops
//! polling its socket: the TCP connection stays open, nothing is read or
//! written. Agents go on answering its conversation, and send it
//! `--slow-flood` extra messages once it has stopped (see [`crate::agent`]),
//! so the server's outbound queue for it fills and the server should cut it
//! off with close code 4000.
//!
//! A reader that does not read cannot see that close, so at the end of the
//! run it wakes up and reads whatever the server had buffered for it, up to
//! the close frame (or a reset, or silence), and the [`SlowBoard`] tallies
//! how each one ended.
//!
//! The exactly-once ledger: a slow reader's own messages are acked to it
//! before it stops and delivered to an agent, so they are checked like any
//! other. What agents write *to* it cannot be counted as delivered, so agents
//! keep those acks out of the ledger (they tally them here instead). Its
//! messages carry client ids starting with [`PREFIX`], which is how agents
//! tell its conversation apart; none of its traffic enters the latency
//! histograms, which therefore describe the normal visitors only.

use crate::session::{self, Client, Ctx, End, Turn};
use crate::stats::{self, get, Recorder};
use crate::visitor::Pace;
use crate::wire::{self, Frame, Ws};
use futures::StreamExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_protocol::client::{ConversationRef, VisitorHello};
use switchboard_protocol::model::ConversationStatus;
use switchboard_protocol::{ClientMessage, ConversationId, ServerMessage};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

/// First character of a slow reader's name, hence of its messages' client ids.
pub const PREFIX: char = 's';
/// Messages a slow reader writes (each waiting for its ack) before it stops reading.
pub const WARMUP_MESSAGES: u64 = 3;
/// Longest the warm-up may take before the reader gives up on its acks and stops anyway.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Kernel receive buffer of a slow reader's socket (SO_RCVBUF; Linux doubles it).
pub const RECV_BUFFER_BYTES: u32 = 4096;
/// On waking: silence this long means the server is not closing the connection.
const WAKE_QUIET: Duration = Duration::from_secs(2);
/// On waking: read for at most this long.
const WAKE_LIMIT: Duration = Duration::from_secs(8);

/// Whether a message's client id was stamped by a slow reader.
pub fn is_slow(client_id: &str) -> bool {
    client_id.starts_with(PREFIX)
}

/// What the slow readers did, shared with the agents that write to them.
#[derive(Debug, Default)]
pub struct SlowBoard {
    /// Completed hello → welcome.
    pub connected: AtomicU64,
    /// Warm-up messages written.
    pub sent: AtomicU64,
    /// Acks of those received before they stopped reading (these are in the ledger).
    pub acked: AtomicU64,
    /// Readers that went silent.
    pub stopped: AtomicU64,
    /// Extra messages agents wrote to their conversations (`--slow-flood`).
    pub flood_sent: AtomicU64,
    /// Agent messages acked in their conversations (replies and flood): owed
    /// to a reader that does not read, so not in the ledger.
    pub owed_acked: AtomicU64,
    /// Frames read on waking at the end: what the server had buffered for them.
    pub frames_on_wake: AtomicU64,
    pub bytes_on_wake: AtomicU64,
    /// Conversations whose reader has stopped reading (agents flood only these).
    silent: Mutex<HashSet<ConversationId>>,
    /// How each reader ended, by description.
    outcomes: Mutex<BTreeMap<String, u64>>,
}

impl SlowBoard {
    /// The reader of `conversation` stopped reading.
    pub fn went_silent(&self, conversation: ConversationId) {
        self.silent
            .lock()
            .expect("slow board lock")
            .insert(conversation);
        stats::bump(&self.stopped);
    }

    /// Whether the reader of `conversation` has stopped reading.
    pub fn is_silent(&self, conversation: ConversationId) -> bool {
        self.silent
            .lock()
            .expect("slow board lock")
            .contains(&conversation)
    }

    fn outcome(&self, what: String) {
        *self
            .outcomes
            .lock()
            .expect("slow board lock")
            .entry(what)
            .or_default() += 1;
    }

    /// How the readers ended so far.
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        self.outcomes.lock().expect("slow board lock").clone()
    }

    /// How many readers ended with close code `code`.
    pub fn closed_with(&self, code: u16) -> u64 {
        self.outcomes()
            .get(&closed(Some(code)))
            .copied()
            .unwrap_or(0)
    }

    /// Counters as plain numbers: (connected, sent, acked, stopped).
    pub fn progress(&self) -> (u64, u64, u64, u64) {
        (
            get(&self.connected),
            get(&self.sent),
            get(&self.acked),
            get(&self.stopped),
        )
    }
}

/// The outcome name of a close with `code` (`None`: the stream ended without a close frame).
pub fn closed(code: Option<u16>) -> String {
    match code {
        Some(c) => format!("closed {c}"),
        None => "closed without a close frame".into(),
    }
}

/// What reading on waking found.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Closed(Option<u16>),
    Failed(String),
    StillOpen,
}

/// One visitor that stops reading.
#[derive(Debug)]
pub struct SlowReader {
    name: String,
    ws: Ws,
    ctx: Ctx,
    conversation: Option<ConversationId>,
    /// Client id of the message waiting for its ack.
    waiting: Option<String>,
    sent: u64,
    asked_handoff: bool,
}

impl SlowReader {
    /// Connects (small receive buffer) and says hello. `None` when that failed (tallied).
    pub async fn connect(index: usize, ctx: Ctx) -> Option<SlowReader> {
        let rec = Recorder::new(ctx.stats.clone());
        let hello = ClientMessage::VisitorHello(VisitorHello {
            token: None,
            resume: Vec::new(),
            page_url: None,
            ..Default::default()
        });
        let (ws, _welcome) = ctx.open_with(&hello, &rec, Some(RECV_BUFFER_BYTES)).await?;
        stats::bump(&ctx.slow.connected);
        Some(SlowReader {
            name: format!("{PREFIX}{index}"),
            ws,
            ctx,
            conversation: None,
            waiting: None,
            sent: 0,
            asked_handoff: false,
        })
    }

    /// Warm up, go silent until the run shuts down, then find out how the server ended it.
    pub async fn run(mut self) {
        let board = self.ctx.slow.clone();
        match tokio::time::timeout(WARMUP_TIMEOUT, self.warm_up()).await {
            Ok(Err(end)) => {
                board.outcome(format!("{} before it stopped reading", describe(&end)));
                return self.end();
            }
            Err(_) if self.conversation.is_none() => {
                board.outcome("no ack in time: never stopped reading".into());
                return self.end();
            }
            _ => {}
        }
        let Some(conversation) = self.conversation else {
            // Shut down before the first ack.
            return self.end();
        };
        board.went_silent(conversation);
        // Hold the socket without polling it: the server's writes pile up.
        self.ctx.shutdown.cancelled().await;
        let woke = self.wake().await;
        board.outcome(describe(&woke));
        if woke == Wake::StillOpen {
            wire::close(&mut self.ws).await;
        }
        self.end();
    }

    fn end(self) {
        self.ctx
            .stats
            .counters
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes the warm-up messages, each after the previous one's ack (the
    /// shared loop in closed loop, done after [`WARMUP_MESSAGES`]).
    async fn warm_up(&mut self) -> Result<(), Wake> {
        match session::drive(self, Pace::ClosedLoop, Duration::ZERO).await {
            Ok(()) => Ok(()),
            Err(End::Closed(code)) => Err(Wake::Closed(code)),
            Err(End::Failed(e)) => Err(Wake::Failed(e)),
            // The run is over before the reader went silent.
            Err(End::Shutdown) => Ok(()),
        }
    }

    async fn send(&mut self, msg: &ClientMessage) -> Result<(), End> {
        wire::send(&mut self.ws, self.ctx.encoding(), msg)
            .await
            .map_err(End::Failed)
    }

    /// Reads everything the server buffered, until its close, a reset or silence.
    async fn wake(&mut self) -> Wake {
        let board = &self.ctx.slow;
        let give_up = Instant::now() + WAKE_LIMIT;
        loop {
            let quiet = Instant::now() + WAKE_QUIET;
            let Ok(next) = tokio::time::timeout_at(quiet.min(give_up), self.ws.next()).await else {
                return Wake::StillOpen;
            };
            if let Some(Ok(m)) = &next {
                stats::bump(&board.frames_on_wake);
                board.bytes_on_wake.fetch_add(
                    u64::try_from(m.len()).unwrap_or(u64::MAX),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            match wire::to_frame(self.ctx.encoding(), next) {
                Frame::Closed(code) => return Wake::Closed(code),
                Frame::Failed(e) => return Wake::Failed(e),
                _ => {}
            }
        }
    }
}

/// The warm-up, on the loop every simulated client shares. Undecodable
/// frames are ignored: nothing a slow reader reads is timed or counted.
impl Client for SlowReader {
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
        self.sent += 1;
        let (client_id, msg) =
            session::chat_send(&self.name, self.sent, self.conversation, &self.ctx.text);
        self.waiting = Some(client_id);
        stats::bump(&self.ctx.slow.sent);
        self.send(&msg).await
    }

    async fn on_message(&mut self, msg: ServerMessage) -> Result<Turn, End> {
        match msg {
            ServerMessage::Ack(ack) if self.waiting.as_deref() == Some(&ack.client_id) => {
                self.waiting = None;
                stats::bump(&self.ctx.slow.acked);
                self.ctx.ledger.ack(ack.conversation_id.0, ack.seq);
                self.conversation = Some(ack.conversation_id);
                Ok(Turn::Next)
            }
            ServerMessage::Error(e) if e.client_id.is_some() && e.client_id == self.waiting => {
                self.waiting = None;
                self.ctx
                    .stats
                    .error(format!("slow reader: server error {}", e.code.as_str()));
                Ok(Turn::Next)
            }
            ServerMessage::Conversation(ev)
                if ev.conversation.status == ConversationStatus::Bot && !self.asked_handoff =>
            {
                // The bot has it: ask for a person, so an agent gets to write to us.
                self.asked_handoff = true;
                let handoff = ClientMessage::Handoff(ConversationRef {
                    conversation_id: ev.conversation.id,
                });
                self.send(&handoff).await?;
                Ok(Turn::Wait)
            }
            _ => Ok(Turn::Wait),
        }
    }

    /// Warmed up (or told to stop sending) with nothing waiting for its ack.
    fn done(&self) -> bool {
        self.waiting.is_none()
            && (self.sent >= WARMUP_MESSAGES || self.ctx.stop_sending.is_cancelled())
    }
}

fn describe(w: &Wake) -> String {
    match w {
        Wake::Closed(code) => closed(*code),
        Wake::Failed(e) => format!("transport error ({e})"),
        Wake::StillOpen => "still open: not cut off".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_stamps_are_recognised() {
        assert!(is_slow(&session::stamp("s3", 1)));
        assert!(!is_slow(&session::stamp("v3", 1)));
        assert!(!is_slow(&session::stamp("a0", 1)));
    }

    #[test]
    fn board_tallies_silence_and_outcomes() {
        let b = SlowBoard::default();
        assert!(!b.is_silent(ConversationId(7)));
        b.went_silent(ConversationId(7));
        assert!(b.is_silent(ConversationId(7)));
        b.outcome(closed(Some(4000)));
        b.outcome(closed(Some(4000)));
        b.outcome(describe(&Wake::StillOpen));
        assert_eq!(b.closed_with(4000), 2);
        assert_eq!(b.outcomes()["still open: not cut off"], 1);
        assert_eq!(b.progress().3, 1);
    }
}
