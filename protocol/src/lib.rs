//! Switchboard's wire protocol: every message a client or the server can send.
//!
//! This crate owns the *shape* of the conversation between a browser (or the
//! load tester) and the `switchboard` server, and nothing else: no sockets, no
//! storage, no clocks. The server and the load tester both depend on it, and
//! the browser code reads the golden JSON fixtures in `fixtures/` that the
//! tests at the bottom of [`codec`] check in both directions.
//!
//! Module map:
//! - [`ids`]: newtype identifiers (conversation, customer, agent, message).
//! - [`client`]: [`ClientMessage`], what a visitor or an agent sends.
//! - [`server`]: [`ServerMessage`], what the server sends back.
//! - [`model`]: the views both directions share (messages, conversations, authors, NLP analysis).
//! - [`codec`]: the two encodings (JSON text frames, bincode binary frames), chosen by subprotocol,
//!   and the one place that touches bincode.
//! - [`close`]: WebSocket close codes and which of them mean "reconnect".
//! - [`error`]: the typed error codes carried by [`server::ErrorMessage`].
//! - [`limits`]: the protocol's size limits.

pub mod client;
pub mod close;
pub mod codec;
pub mod error;
pub mod ids;
pub mod limits;
pub mod model;
pub mod server;

pub use client::ClientMessage;
pub use codec::{DecodeError, Encoded, Encoding};
pub use error::ErrorCode;
pub use ids::{AgentId, ConversationId, CustomerId, MessageId};
pub use server::ServerMessage;
