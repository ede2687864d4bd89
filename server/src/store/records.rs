//! The records the store keeps that are not wire types.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use switchboard_protocol::model::{
    AgentStatus, AgentView, AuthorKind, ConversationStatus, Message, Rating, Role,
};
use switchboard_protocol::{AgentId, ConversationId, CustomerId};

/// A conversation as stored. The newest sequence number is not kept here: it
/// is the last key of the conversation's messages.
///
/// The bookkeeping that messages bring ([`StoredConversation::note`]:
/// `updated_at`, `first_response_at`, the sentiment sums, bot answers in a
/// row) is folded in up to message `noted_seq`. A new message is not a
/// reason to rewrite the record (that would be a second store write per
/// message): the hub keeps the record current in memory, writes it with its
/// other changes and every [`NOTE_CHECKPOINT`] messages, and folds in the
/// messages after `noted_seq` when it loads the record
/// (`Hub::caught_up`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredConversation {
    pub id: ConversationId,
    pub customer_id: CustomerId,
    pub status: ConversationStatus,
    pub agent_id: Option<AgentId>,
    pub created_at: u64,
    pub updated_at: u64,
    /// When it last entered the queue (orders the queue after a restart).
    pub queued_at: Option<u64>,
    pub closed_at: Option<u64>,
    /// When an agent first answered (for first-response time).
    pub first_response_at: Option<u64>,
    pub priority: i32,
    pub visitor_read_seq: u64,
    pub agent_read_seq: u64,
    pub rating: Option<Rating>,
    /// Sum and count of visitor message sentiment, for the satisfaction estimate.
    pub sentiment_sum: f32,
    pub sentiment_count: u32,
    /// Bot answers since the visitor last reached a human.
    pub bot_answers_in_a_row: u32,
    /// The newest message folded into the fields above ([`NOTED_ALL`]: all
    /// of them, as in records written before this field existed).
    pub noted_seq: u64,
    /// The team it is routed to. Not part of this record's bytes (bincode
    /// cannot add a field to a stored record): the store keeps it in the
    /// `conversationid_team` tree ([`super::Store::put_conversation_team`])
    /// and fills it in on every read.
    #[serde(skip)]
    pub team: Option<String>,
}

impl StoredConversation {
    pub fn new(id: ConversationId, customer_id: CustomerId, now: u64) -> StoredConversation {
        StoredConversation {
            id,
            customer_id,
            status: ConversationStatus::Queued,
            agent_id: None,
            created_at: now,
            updated_at: now,
            queued_at: None,
            closed_at: None,
            first_response_at: None,
            priority: 0,
            visitor_read_seq: 0,
            agent_read_seq: 0,
            rating: None,
            sentiment_sum: 0.0,
            sentiment_count: 0,
            bot_answers_in_a_row: 0,
            noted_seq: 0,
            team: None,
        }
    }

    /// Folds a new message's bookkeeping into the record.
    pub fn note(&mut self, msg: &Message) {
        self.updated_at = self.updated_at.max(msg.sent_at);
        match msg.author.kind {
            AuthorKind::Agent => {
                self.first_response_at.get_or_insert(msg.sent_at);
                self.bot_answers_in_a_row = 0;
            }
            AuthorKind::Bot => self.bot_answers_in_a_row += 1,
            AuthorKind::Visitor => {
                if let Some(a) = &msg.analysis {
                    self.sentiment_sum += a.sentiment;
                    self.sentiment_count += 1;
                }
            }
            AuthorKind::System => {}
        }
        self.noted_seq = self.noted_seq.max(msg.seq);
    }

    /// Takes the message bookkeeping of `disk` (the record as stored), so
    /// that messages the store lost can be folded in again from what it kept.
    pub fn take_notes_from(&mut self, disk: &StoredConversation) {
        self.updated_at = disk.updated_at;
        self.first_response_at = disk.first_response_at;
        self.sentiment_sum = disk.sentiment_sum;
        self.sentiment_count = disk.sentiment_count;
        self.bot_answers_in_a_row = disk.bot_answers_in_a_row;
        self.noted_seq = disk.noted_seq;
    }

    pub fn is_open(&self) -> bool {
        self.status != ConversationStatus::Closed
    }

    /// Mean visitor sentiment, once there is any.
    pub fn sentiment(&self) -> Option<f32> {
        (self.sentiment_count > 0).then(|| self.sentiment_sum / self.sentiment_count as f32)
    }
}

/// `noted_seq` of a record that has folded in every message of its conversation.
pub const NOTED_ALL: u64 = u64::MAX;

/// The hub writes a conversation's record at least once every this many messages.
pub const NOTE_CHECKPOINT: u64 = 256;

/// A conversation record as format 1 wrote it: no `noted_seq`, because every
/// message rewrote the record.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredConversationV1 {
    pub(super) id: ConversationId,
    pub(super) customer_id: CustomerId,
    pub(super) status: ConversationStatus,
    pub(super) agent_id: Option<AgentId>,
    pub(super) created_at: u64,
    pub(super) updated_at: u64,
    pub(super) queued_at: Option<u64>,
    pub(super) closed_at: Option<u64>,
    pub(super) first_response_at: Option<u64>,
    pub(super) priority: i32,
    pub(super) visitor_read_seq: u64,
    pub(super) agent_read_seq: u64,
    pub(super) rating: Option<Rating>,
    pub(super) sentiment_sum: f32,
    pub(super) sentiment_count: u32,
    pub(super) bot_answers_in_a_row: u32,
}

impl From<StoredConversationV1> for StoredConversation {
    fn from(v: StoredConversationV1) -> StoredConversation {
        StoredConversation {
            id: v.id,
            customer_id: v.customer_id,
            status: v.status,
            agent_id: v.agent_id,
            created_at: v.created_at,
            updated_at: v.updated_at,
            queued_at: v.queued_at,
            closed_at: v.closed_at,
            first_response_at: v.first_response_at,
            priority: v.priority,
            visitor_read_seq: v.visitor_read_seq,
            agent_read_seq: v.agent_read_seq,
            rating: v.rating,
            sentiment_sum: v.sentiment_sum,
            sentiment_count: v.sentiment_count,
            bot_answers_in_a_row: v.bot_answers_in_a_row,
            noted_seq: NOTED_ALL,
            team: None,
        }
    }
}

/// A customer profile (the CRM record). One per visitor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub country: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// The user id the customer's site knows them by (from identify).
    pub external_id: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub last_page_url: Option<String>,
    pub user_agent: Option<String>,
}

impl Customer {
    pub fn new(id: CustomerId, now: u64) -> Customer {
        Customer {
            id,
            first_seen: now,
            last_seen: now,
            ..Customer::default()
        }
    }
}

/// An agent account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: AgentId,
    pub email: String,
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub capacity: u32,
    pub disabled: bool,
    /// The status the agent chose (online or away); kept across reloads.
    pub status: AgentStatus,
    pub created_at: u64,
    /// The agent's teams, sorted. Not part of this record's bytes: the store
    /// keeps them in the `agentid_teams` tree, written by
    /// [`super::Store::put_agent`] and filled in on every read.
    #[serde(skip)]
    pub teams: Vec<String>,
}

impl AgentRecord {
    pub fn new(
        id: AgentId,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
        capacity: u32,
    ) -> AgentRecord {
        AgentRecord {
            id,
            email: email.to_string(),
            name: name.to_string(),
            password_hash: password_hash.to_string(),
            role,
            capacity,
            disabled: false,
            status: AgentStatus::Online,
            created_at: 0,
            teams: Vec::new(),
        }
    }

    pub fn view(&self) -> AgentView {
        AgentView {
            id: self.id,
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role,
            capacity: self.capacity,
            disabled: self.disabled,
            teams: self.teams.clone(),
        }
    }
}

/// A saved reply ("canned response"): text an agent inserts by its shortcut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedReply {
    pub id: u64,
    /// Lower-case `a-z`, `0-9`, `_` and `-`, unique; typed after `/` in the console.
    pub shortcut: String,
    pub text: String,
    pub updated_at: u64,
    pub updated_by: AgentId,
}

/// A bearer token's record, keyed by the token's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub agent_id: AgentId,
    pub expires_at: u64,
}
