//! What the server sends: [`ServerMessage`].

use crate::error::ErrorCode;
use crate::ids::{AgentId, ConversationId, CustomerId, MessageId};
use crate::model::{AgentView, Author, AuthorKind, ConversationView, Message, Presence};
use serde::{Deserialize, Serialize};

crate::codec::wire_enum! {
    /// A message from the server to a visitor or an agent.
    ServerMessage {
        /// Answer to a visitor hello.
        1 => "visitor_welcome" VisitorWelcome(VisitorWelcome),
        /// Answer to an agent hello.
        2 => "agent_welcome" AgentWelcome(AgentWelcome),
        /// The message with this `client_id` is durable.
        3 => "ack" Ack(Ack),
        /// A chat message, live or replayed on resume.
        4 => "message" Message(Message),
        /// Someone started or stopped typing.
        5 => "typing" Typing(TypingEvent),
        /// Someone read up to `seq`.
        6 => "read" Read(ReadEvent),
        /// An agent's presence changed (sent to agents).
        7 => "presence" Presence(Presence),
        /// A conversation changed state.
        8 => "conversation" Conversation(ConversationEvent),
        /// A waiting conversation's place in the queue changed.
        9 => "queue_position" QueuePosition(QueuePosition),
        /// A page of history, answering a history request.
        10 => "history" History(HistoryPage),
        /// A request failed.
        11 => "error" Error(ErrorMessage),
        /// An agent account was disabled or deleted: it leaves the roster
        /// (sent to agents; an enabled account comes back as a `presence`).
        12 => "agent_removed" AgentRemoved(AgentRemoved),
        /// A private note was added to a conversation (sent to agents only).
        13 => "note" Note(Note),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitorWelcome {
    /// The visitor's token, new or refreshed: keep it (e.g. in localStorage)
    /// and send it in the next hello.
    pub token: String,
    pub customer_id: CustomerId,
    /// When `token` expires (ms since epoch).
    pub token_expires_at: u64,
    /// The visitor's conversations, newest first.
    pub conversations: Vec<ConversationView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentWelcome {
    pub agent: AgentView,
    /// Open conversations assigned to this agent.
    pub conversations: Vec<ConversationView>,
    /// Conversations waiting in the queue, in queue order.
    pub queue: Vec<ConversationView>,
    /// Every enabled agent's presence.
    pub agents: Vec<Presence>,
}

/// Sent only once the message is durable in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub client_id: String,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingEvent {
    pub conversation_id: ConversationId,
    pub author: Author,
    pub typing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadEvent {
    pub conversation_id: ConversationId,
    /// Which side read: `visitor` or `agent`.
    pub reader: AuthorKind,
    pub seq: u64,
}

/// What happened to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationEventKind {
    Created,
    /// Put in the waiting queue (see `queue_position`).
    Queued,
    Assigned,
    Transferred,
    Closed,
    Reopened,
    /// The visitor rated it.
    Rated,
    /// Customer profile or priority changed.
    Updated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationEvent {
    pub event: ConversationEventKind,
    /// The conversation after the change.
    pub conversation: ConversationView,
    /// Who caused it (`None` for routing decisions).
    #[serde(default)]
    pub by: Option<Author>,
    /// For `transferred`: the previous agent.
    #[serde(default)]
    pub from_agent: Option<AgentId>,
}

/// A private note on a conversation: agents see it, the visitor never does.
/// Notes are not messages: they have no `seq` and are not in the visitor's
/// history or resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: u64,
    pub conversation_id: ConversationId,
    pub author: Author,
    pub text: String,
    /// The writer's id for it, from the request.
    pub client_id: String,
    /// ms since the epoch.
    pub sent_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRemoved {
    pub agent_id: AgentId,
    /// Whether the account still exists (and may be enabled again).
    pub reason: AgentRemovedReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRemovedReason {
    Disabled,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePosition {
    pub conversation_id: ConversationId,
    /// 1-based.
    pub position: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub conversation_id: ConversationId,
    /// In ascending `seq` order.
    pub messages: Vec<Message>,
    /// Whether there are more messages beyond this page in the direction asked.
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub code: ErrorCode,
    pub message: String,
    /// Set when the error answers a `send`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
}
