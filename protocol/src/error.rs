//! Typed error codes sent in [`crate::server::ErrorMessage`] and in REST error bodies.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable reason. Clients switch on this, never on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded, or a field is malformed or empty (e.g. a client id).
    BadRequest,
    /// The frame's `type` is not one this server knows.
    UnknownType,
    /// A field is longer than the protocol allows (text, comment, profile field).
    TooLarge,
    /// No valid credentials.
    Unauthorized,
    /// Valid credentials, but this participant may not do this.
    Forbidden,
    /// No such conversation, customer or agent (also answered for ones that exist
    /// but are not the caller's, so ids reveal nothing).
    NotFound,
    /// The action does not fit the conversation's state (e.g. rating an open conversation).
    InvalidState,
    /// A unique field (e.g. an agent's email) is already taken.
    Conflict,
    /// The sender went over a rate limit; retry later.
    RateLimited,
    /// The store cannot write right now; nothing was stored. Retry later.
    StoreUnavailable,
    /// The server is overloaded; retry later.
    Overloaded,
    /// A bug on the server's side; details are in its log.
    Internal,
}

impl ErrorCode {
    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
        }
    }
}
