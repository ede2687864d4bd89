//! What clients send: [`ClientMessage`].
//!
//! The first message on a connection must be a hello ([`VisitorHello`] or
//! [`AgentHello`]); everything else is refused until then.

use crate::ids::{AgentId, ConversationId};
use crate::model::AgentStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

crate::codec::wire_enum! {
    /// A message from a visitor or an agent to the server.
    ClientMessage {
        /// First message of a visitor connection.
        1 => "visitor_hello" VisitorHello(VisitorHello),
        /// First message of an agent connection.
        2 => "agent_hello" AgentHello(AgentHello),
        /// Post a chat message.
        3 => "send" Send(SendMessage),
        /// Start or stop typing.
        4 => "typing" Typing(Typing),
        /// Everything up to `seq` has been read.
        5 => "read" Read(Read),
        /// Ask for a page of older (or newer) messages.
        6 => "history" History(History),
        /// Agent: take a waiting conversation.
        7 => "claim" Claim(ConversationRef),
        /// Agent: hand a conversation to another agent.
        8 => "transfer" Transfer(Transfer),
        /// Agent or visitor: end a conversation.
        9 => "close" Close(ConversationRef),
        /// Agent: change availability.
        10 => "set_status" SetStatus(SetStatus),
        /// Agent: change how many conversations they take at once.
        11 => "set_capacity" SetCapacity(SetCapacity),
        /// Visitor: rate a closed conversation.
        12 => "rate" Rate(Rate),
        /// Visitor: tell who they are (fills the customer profile).
        13 => "identify" Identify(Identify),
        /// Visitor: ask for a person instead of the bot.
        14 => "handoff" Handoff(ConversationRef),
        /// Agent: move a conversation to a team (it leaves its agent and is routed within the team).
        15 => "transfer_to_team" TransferToTeam(TransferToTeam),
        /// Agent: add a private note to a conversation (agents only see it).
        16 => "note" Note(NoteRequest),
    }
}

/// Resume a conversation after `last_seq`: the server sends every message
/// with a higher sequence number, then live events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub conversation_id: ConversationId,
    pub last_seq: u64,
}

/// A visitor says hello. Without a token the server makes a new visitor and
/// returns its token in [`crate::server::VisitorWelcome`].
///
/// A signed-in user of the site says who they are with `user_id` and
/// `user_hash`, the hex HMAC-SHA256 of `user_id` under the site's identity
/// secret, computed by the site's backend. A verified user is the same
/// visitor on every device (their history follows them); anyone else is
/// known only by the token their browser holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorHello {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub resume: Vec<ResumePoint>,
    /// The page the widget is on (kept on the customer profile).
    #[serde(default)]
    pub page_url: Option<String>,
    /// The site's own id for a signed-in user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Hex HMAC-SHA256 of `user_id` under the site's identity secret.
    #[serde(default)]
    pub user_hash: Option<String>,
}

/// An agent says hello with the bearer token from `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    pub token: String,
    #[serde(default)]
    pub resume: Vec<ResumePoint>,
}

/// Post a message. `client_id` is chosen by the client (e.g. a UUID) and makes
/// a retry safe: the same `client_id` in the same conversation is stored once
/// and acknowledged again with the same ids.
///
/// A visitor may leave `conversation_id` empty: the message goes to their most
/// recent conversation (reopening it if closed), or starts one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessage {
    pub client_id: String,
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    pub text: String,
}

/// A private note: text for the agents, never sent to the visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteRequest {
    pub conversation_id: ConversationId,
    /// The writer's id for it (1–64 bytes), echoed in the [`crate::server::Note`]; a resend with the same id adds nothing.
    pub client_id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    pub conversation_id: ConversationId,
    pub typing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    pub conversation_id: ConversationId,
    pub seq: u64,
}

/// A page of history: messages with `seq < before` (newest page first when
/// `before` is empty), or with `seq > after` when `after` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub conversation_id: ConversationId,
    #[serde(default)]
    pub before: Option<u64>,
    #[serde(default)]
    pub after: Option<u64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRef {
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub conversation_id: ConversationId,
    pub to_agent: AgentId,
}

/// Moves a conversation to a team: it leaves its agent (if any) and goes to
/// a member of `team` with room, or waits in the queue for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferToTeam {
    pub conversation_id: ConversationId,
    /// A team name (see [`crate::limits::is_team_name`]).
    pub team: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStatus {
    pub status: AgentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetCapacity {
    pub capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub conversation_id: ConversationId,
    /// 1 ..= 5.
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The host page tells who the visitor is. Empty fields leave the profile as it is.
/// `hash` is the site's HMAC-SHA256 of `user_id` (identity verification).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identify {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub hash: Option<String>,
}
