//! Delivery between sessions. The hub publishes to *participants* (a
//! visitor or an agent), never to sockets; the broker knows which sessions
//! each participant has open and puts the message on their outbound queues.
//!
//! [`Broker`] is the seam for a later cluster mode (NATS behind the same
//! trait); [`LocalBroker`] is the in-process default.

use dashmap::DashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use switchboard_protocol::{close, AgentId, CustomerId, Encoded, Encoding, ServerMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Someone who can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Participant {
    Visitor(CustomerId),
    Agent(AgentId),
}

/// What a broker delivers: one message shared by every session it goes to.
pub type Outbound = Arc<Outgoing>;

/// A message on its way to sessions, with its WebSocket frame per encoding,
/// made by the first session that needs it and shared by the others: a
/// message that goes to a visitor's tabs and to agents is serialized once
/// per encoding, not once per session (the frame's bytes are reference-counted).
pub struct Outgoing {
    msg: ServerMessage,
    /// Indexed by [`frame_slot`].
    frames: [OnceLock<WsMessage>; 2],
}

fn frame_slot(encoding: Encoding) -> usize {
    match encoding {
        Encoding::Json => 0,
        Encoding::Bincode => 1,
    }
}

impl Outgoing {
    pub fn new(msg: ServerMessage) -> Outbound {
        Arc::new(Outgoing {
            msg,
            frames: Default::default(),
        })
    }

    pub fn message(&self) -> &ServerMessage {
        &self.msg
    }

    /// The message as one frame in `encoding` (encoded on first use).
    pub fn frame(&self, encoding: Encoding) -> WsMessage {
        self.frames[frame_slot(encoding)]
            .get_or_init(|| match encoding.encode(&self.msg) {
                Encoded::Text(t) => WsMessage::text(t),
                Encoded::Binary(b) => WsMessage::binary(b),
            })
            .clone()
    }
}

/// The sending half of one session, as the broker and the hub hold it.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: u64,
    tx: mpsc::Sender<Outbound>,
    kill: Arc<KillSwitch>,
}

/// Tells a session to close itself with a code (slow consumer, revoked, …).
/// A code and a `Notify`: no allocation of its own, since every connection has one.
#[derive(Default)]
pub struct KillSwitch {
    code: AtomicU16,
    tripped: tokio::sync::Notify,
}

impl KillSwitch {
    /// The code the session was asked to close with, once it was.
    pub fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Resolves once the switch is tripped (at once if it already was). For the session only.
    pub async fn tripped(&self) {
        if self.code().is_some() {
            return;
        }
        // notify_one keeps a permit when nobody waits, so a trip between the
        // check above and this wait is not lost.
        self.tripped.notified().await;
    }

    /// Trips the switch with `code` (the first code wins); true for the call that tripped it.
    fn trip(&self, code: u16) -> bool {
        let first = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.tripped.notify_one();
        }
        first
    }
}

/// Outcome of putting a message on a session's queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: the session has been told to close (slow consumer).
    Full,
    /// The session is already gone.
    Closed,
}

impl SessionHandle {
    /// A handle and the receiving end its session reads from.
    pub fn new(
        id: u64,
        queue: usize,
    ) -> (SessionHandle, mpsc::Receiver<Outbound>, Arc<KillSwitch>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let kill = Arc::new(KillSwitch::default());
        (
            SessionHandle {
                id,
                tx,
                kill: kill.clone(),
            },
            rx,
            kill,
        )
    }

    /// Queues `msg` without waiting. A full queue means the reader is too
    /// slow: it is cut off (it resumes by sequence number) rather than
    /// slowing anyone else down or growing memory.
    pub fn offer(&self, msg: &Outbound) -> Offer {
        match self.tx.try_send(msg.clone()) {
            Ok(()) => Offer::Queued,
            // Counted once per session, by the offer that trips the switch.
            Err(mpsc::error::TrySendError::Full(_)) if self.kill(close::SLOW_CONSUMER) => {
                Offer::Full
            }
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Closed,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Whether the session has ended (its outbound queue is gone).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Asks the session to close with `code` (the first code asked for wins);
    /// true for the call that asked first.
    pub fn kill(&self, code: u16) -> bool {
        self.kill.trip(code)
    }
}

/// Counts of what a publish did, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub queued: u64,
    pub cut_off: u64,
}

impl std::ops::AddAssign for Published {
    fn add_assign(&mut self, o: Published) {
        self.queued += o.queued;
        self.cut_off += o.cut_off;
    }
}

/// Where sessions subscribe and the hub publishes.
pub trait Broker: Send + Sync + 'static {
    fn subscribe(&self, who: Participant, session: SessionHandle);
    /// Removes a session; returns how many the participant still has.
    fn unsubscribe(&self, who: Participant, session_id: u64) -> usize;
    /// Delivers to every session of `who` (on this node).
    fn publish(&self, who: Participant, msg: &Outbound) -> Published;
    /// Delivers to every connected agent.
    fn publish_agents(&self, msg: &Outbound) -> Published;
    /// Closes every session of `who` with `code`.
    fn kill(&self, who: Participant, code: u16);
    /// Connected sessions: (visitors, agents).
    fn session_counts(&self) -> (usize, usize);
}

/// The in-process broker: a sharded map from participant to sessions.
#[derive(Default)]
pub struct LocalBroker {
    sessions: DashMap<Participant, Vec<SessionHandle>>,
}

fn offer_all(handles: &[SessionHandle], msg: &Outbound) -> Published {
    let mut p = Published::default();
    for h in handles {
        match h.offer(msg) {
            Offer::Queued => p.queued += 1,
            Offer::Full => p.cut_off += 1,
            Offer::Closed => {}
        }
    }
    p
}

impl Broker for LocalBroker {
    fn subscribe(&self, who: Participant, session: SessionHandle) {
        self.sessions.entry(who).or_default().push(session);
    }

    fn unsubscribe(&self, who: Participant, session_id: u64) -> usize {
        let left = match self.sessions.get_mut(&who) {
            Some(mut v) => {
                v.retain(|h| h.id != session_id);
                v.len()
            }
            None => return 0,
        };
        if left == 0 {
            self.sessions.remove_if(&who, |_, v| v.is_empty());
        }
        left
    }

    fn publish(&self, who: Participant, msg: &Outbound) -> Published {
        // Clone the handles out so no shard lock is held while offering.
        let handles = self
            .sessions
            .get(&who)
            .map(|v| v.clone())
            .unwrap_or_default();
        offer_all(&handles, msg)
    }

    fn publish_agents(&self, msg: &Outbound) -> Published {
        let handles: Vec<SessionHandle> = self
            .sessions
            .iter()
            .filter(|e| matches!(e.key(), Participant::Agent(_)))
            .flat_map(|e| e.value().clone())
            .collect();
        offer_all(&handles, msg)
    }

    fn kill(&self, who: Participant, code: u16) {
        if let Some(v) = self.sessions.get(&who) {
            v.iter().for_each(|h| {
                h.kill(code);
            });
        }
    }

    fn session_counts(&self) -> (usize, usize) {
        self.sessions
            .iter()
            .fold((0, 0), |(v, a), e| match e.key() {
                Participant::Visitor(_) => (v + e.value().len(), a),
                Participant::Agent(_) => (v, a + e.value().len()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::server::QueuePosition;
    use switchboard_protocol::ConversationId;

    fn msg() -> Outbound {
        Outgoing::new(ServerMessage::QueuePosition(QueuePosition {
            conversation_id: ConversationId(1),
            position: 1,
        }))
    }

    #[test]
    fn a_message_is_encoded_once_per_encoding_and_shared() {
        let m = msg();
        let (a, b) = (m.frame(Encoding::Json), m.frame(Encoding::Json));
        let (WsMessage::Text(a), WsMessage::Text(b)) = (a, b) else {
            panic!("JSON goes in text frames");
        };
        assert_eq!(
            a.as_str().as_ptr(),
            b.as_str().as_ptr(),
            "one buffer, shared"
        );
        let decoded: ServerMessage = Encoding::Json.decode_text(a.as_str()).unwrap();
        assert_eq!(&decoded, m.message());
        let WsMessage::Binary(bin) = m.frame(Encoding::Bincode) else {
            panic!("bincode goes in binary frames");
        };
        let decoded: ServerMessage = Encoding::Bincode.decode_binary(&bin).unwrap();
        assert_eq!(&decoded, m.message());
    }

    #[test]
    fn every_session_of_a_participant_gets_it_and_nobody_else() {
        let b = LocalBroker::default();
        let (h1, mut r1, _) = SessionHandle::new(1, 4);
        let (h2, mut r2, _) = SessionHandle::new(2, 4);
        let (h3, mut r3, _) = SessionHandle::new(3, 4);
        let v = Participant::Visitor(CustomerId(1));
        b.subscribe(v, h1);
        b.subscribe(v, h2);
        b.subscribe(Participant::Agent(AgentId(1)), h3);
        assert_eq!(b.publish(v, &msg()).queued, 2);
        assert!(r1.try_recv().is_ok() && r2.try_recv().is_ok() && r3.try_recv().is_err());
        assert_eq!(b.publish_agents(&msg()).queued, 1);
        assert!(r3.try_recv().is_ok());
        assert_eq!(b.session_counts(), (2, 1));
        assert_eq!(b.unsubscribe(v, 1), 1);
        assert_eq!(b.unsubscribe(v, 2), 0);
        assert_eq!(b.session_counts(), (0, 1));
    }

    #[test]
    fn a_full_queue_cuts_off_only_that_session() {
        let b = LocalBroker::default();
        let (slow, _rs, kill) = SessionHandle::new(1, 1);
        let (fast, mut rf, fast_kill) = SessionHandle::new(2, 8);
        let v = Participant::Visitor(CustomerId(1));
        b.subscribe(v, slow);
        b.subscribe(v, fast);
        b.publish(v, &msg());
        let p = b.publish(v, &msg());
        assert_eq!(
            p,
            Published {
                queued: 1,
                cut_off: 1
            }
        );
        assert_eq!(kill.code(), Some(close::SLOW_CONSUMER));
        assert_eq!(fast_kill.code(), None);
        assert!(rf.try_recv().is_ok() && rf.try_recv().is_ok());
    }
}
