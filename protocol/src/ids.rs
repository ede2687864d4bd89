//! Identifiers. Each is a `u64` on the wire and in storage keys (big-endian).
//!
//! Ids are allocated by the server from a persistent counter and stay below
//! 2^53, so JavaScript numbers represent them exactly. They are not secrets:
//! every access is authorized, so knowing an id grants nothing.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The id as big-endian bytes, the form used in storage keys.
            pub fn to_be_bytes(self) -> [u8; 8] {
                self.0.to_be_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A conversation between one visitor and (at most one at a time) agent.
    ConversationId
);
id_type!(
    /// A customer profile. Every visitor is a customer.
    CustomerId
);
id_type!(
    /// An agent account.
    AgentId
);
id_type!(
    /// A stored message, unique across conversations.
    MessageId
);
