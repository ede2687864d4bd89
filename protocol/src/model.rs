//! Views shared by both directions: messages, conversations, authors, agents
//! and what the NLP pipeline found in a message.
//!
//! Times are milliseconds since the Unix epoch (UTC). Optional fields are
//! always present in JSON (as `null` when empty), because the same structs are
//! also encoded by bincode, which has no notion of a missing field.

use crate::ids::{AgentId, ConversationId, CustomerId, MessageId};
use serde::{Deserialize, Serialize};

/// Who wrote a message or did an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Visitor,
    Agent,
    /// The automatic answerer.
    Bot,
    /// The server itself (e.g. "conversation transferred").
    System,
}

/// An author: its kind, its id (customer id for visitors, agent id for
/// agents, 0 for the bot and the system) and a display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub kind: AuthorKind,
    pub id: u64,
    pub name: String,
}

/// One stored chat message. `seq` numbers the messages of a conversation
/// 1, 2, 3… with no gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: u64,
    pub author: Author,
    pub text: String,
    /// The id the sending client chose, echoed so its other tabs can match it.
    #[serde(default)]
    pub client_id: Option<String>,
    pub sent_at: u64,
    /// What the NLP pipeline found (visitor messages only).
    #[serde(default)]
    pub analysis: Option<Analysis>,
}

/// What the NLP pipeline found in a visitor message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// ISO 639-1 code (`en`, `zh`, …) or `und` when unknown.
    pub language: String,
    /// The intent, or `None` when out of scope.
    #[serde(default)]
    pub intent: Option<String>,
    /// Probability of the intent, 0..=1.
    pub confidence: f32,
    /// Sentiment score, -1 (negative) ..= 1 (positive).
    pub sentiment: f32,
    pub sentiment_label: SentimentLabel,
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Whether the bot answered this message.
    pub bot_answered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentimentLabel {
    Negative,
    Neutral,
    Positive,
}

/// A span of the message text recognised as an entity. Offsets are in bytes
/// of the UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// `email`, `phone`, `order_number`, `url`, `money`, `date`, …
    pub kind: String,
    /// The entity normalised (e.g. a phone number in E.164).
    pub value: String,
    pub start: u32,
    pub end: u32,
}

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// The bot is handling it; no human has been asked yet.
    Bot,
    /// Waiting for an agent, in the FIFO queue.
    Queued,
    /// An agent has it.
    Assigned,
    /// Done. A visitor who writes again reopens it.
    Closed,
}

/// A conversation as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: ConversationId,
    pub customer_id: CustomerId,
    /// The customer's display name, if known.
    #[serde(default)]
    pub customer_name: Option<String>,
    pub status: ConversationStatus,
    #[serde(default)]
    pub agent_id: Option<AgentId>,
    pub created_at: u64,
    pub updated_at: u64,
    /// Sequence number of the newest message (0 when there is none).
    pub last_seq: u64,
    /// 1-based position in the waiting queue while `status` is `queued`.
    #[serde(default)]
    pub queue_position: Option<u32>,
    /// Highest sequence number the visitor has read.
    pub visitor_read_seq: u64,
    /// Highest sequence number an agent has read.
    pub agent_read_seq: u64,
    /// The visitor's own rating, once given.
    #[serde(default)]
    pub rating: Option<Rating>,
    /// Routing priority: higher is served first (negative sentiment raises it).
    pub priority: i32,
    /// Satisfaction estimated from the visitor's sentiment, -1 ..= 1, once there is any.
    #[serde(default)]
    pub sentiment: Option<f32>,
    /// The team it is routed to (from the bot's hand-off or a transfer), if any.
    #[serde(default)]
    pub team: Option<String>,
}

/// A satisfaction rating a visitor gives after close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// 1 ..= 5.
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
    pub rated_at: u64,
}

/// An agent's chosen availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Takes new conversations.
    Online,
    /// Connected, keeps their conversations, takes no new ones.
    Away,
    /// Not connected (the server sets this when an agent's last session ends).
    Offline,
}

/// An agent account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Agent,
}

/// An agent as other clients see it (never carries credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: AgentId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub capacity: u32,
    pub disabled: bool,
    /// The teams the agent takes conversations for (sorted, lower-case).
    #[serde(default)]
    pub teams: Vec<String>,
}

/// An agent's presence: status, capacity and how many conversations they have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub agent_id: AgentId,
    pub name: String,
    pub status: AgentStatus,
    pub capacity: u32,
    /// Open conversations assigned to this agent.
    pub active: u32,
    /// The agent's teams (sorted).
    #[serde(default)]
    pub teams: Vec<String>,
}
