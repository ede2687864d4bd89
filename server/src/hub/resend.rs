//! Recognising a resend without a store lookup. A client that lost its
//! connection before an ack sends the message again with the same client id;
//! the server must acknowledge it with the ids it was stored under rather
//! than store it twice.
//!
//! Every conversation in memory keeps the client ids of its newest
//! [`WINDOW`] messages as 64-bit hashes in a ring (slot `seq % WINDOW`), read
//! from the store the first time it is needed. A hash that matches is checked
//! against the stored message, so a collision never merges two messages. A
//! new message thus costs no index write and no lookup (a store miss was the
//! dearer of the two), and memory per conversation is bounded (8 bytes a slot).
//!
//! The limit: a resend is recognised while fewer than [`WINDOW`] messages
//! have been posted to the conversation after it. A client resends only what
//! it has not had acked, right after it reconnects; the widget keeps its
//! unacknowledged messages, a handful at human typing speed.

use crate::store::{Result, Store};
use std::hash::{Hash, Hasher};
use switchboard_protocol::model::Message;
use switchboard_protocol::ConversationId;

/// Messages (of any author) whose client ids a conversation remembers.
pub(crate) const WINDOW: u64 = 256;

/// The client-id hashes of a conversation's newest messages.
pub(crate) struct RecentClientIds {
    /// Slot `seq % WINDOW` holds the hash of message `seq`'s client id (0: none).
    /// Grows to `WINDOW` slots as messages arrive.
    slots: Vec<u64>,
}

fn hash(client_id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    client_id.hash(&mut h);
    h.finish().max(1)
}

impl RecentClientIds {
    /// For a conversation with no message yet.
    pub(crate) fn empty() -> Self {
        RecentClientIds { slots: Vec::new() }
    }

    /// Reads the newest messages of `conv`, up to `last_seq`, from the store.
    pub(crate) fn load(store: &Store, conv: ConversationId, last_seq: u64) -> Result<Self> {
        let from = last_seq.saturating_sub(WINDOW - 1).max(1);
        let mut recent = RecentClientIds::empty();
        for m in store.messages_between(conv, from, last_seq, WINDOW as usize)? {
            recent.note(m.seq, m.client_id.as_deref());
        }
        Ok(recent)
    }

    /// Remembers message `seq`'s client id (overwriting message `seq - WINDOW`).
    pub(crate) fn note(&mut self, seq: u64, client_id: Option<&str>) {
        let slot = (seq % WINDOW) as usize;
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, 0);
        }
        self.slots[slot] = client_id.map_or(0, hash);
    }

    /// The stored message among the newest (up to `last_seq`) that has `client_id`.
    pub(crate) fn find(
        &self,
        store: &Store,
        conv: ConversationId,
        last_seq: u64,
        client_id: &str,
    ) -> Result<Option<Message>> {
        let wanted = hash(client_id);
        let oldest = last_seq.saturating_sub(WINDOW - 1).max(1);
        for (slot, _) in self.slots.iter().enumerate().filter(|(_, h)| **h == wanted) {
            // The one sequence number in [oldest, last_seq] that maps to `slot`.
            let seq = last_seq - (last_seq + WINDOW - slot as u64) % WINDOW;
            if seq < oldest {
                continue;
            }
            if let Some(m) = store.message(conv, seq)? {
                if m.client_id.as_deref() == Some(client_id) {
                    return Ok(Some(m));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::model::{Author, AuthorKind};
    use switchboard_protocol::MessageId;

    fn put(store: &Store, seq: u64, client_id: Option<&str>) {
        store
            .put_message(&Message {
                id: MessageId(seq),
                conversation_id: ConversationId(1),
                seq,
                author: Author {
                    kind: AuthorKind::Visitor,
                    id: 1,
                    name: String::new(),
                },
                text: String::new(),
                client_id: client_id.map(str::to_string),
                sent_at: 0,
                analysis: None,
            })
            .unwrap();
    }

    #[test]
    fn finds_the_newest_window_of_client_ids_and_no_older() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let conv = ConversationId(1);
        let last = 2 * WINDOW + 11;
        for seq in 1..=last {
            // Every third message has no client id (an agent's, the bot's).
            let cid = (seq % 3 != 0).then(|| format!("c{seq}"));
            put(&store, seq, cid.as_deref());
        }
        // Loaded from the store, and kept up to date message by message.
        let loaded = RecentClientIds::load(&store, conv, last).unwrap();
        let mut kept = RecentClientIds::load(&store, conv, 0).unwrap();
        for seq in 1..=last {
            let cid = (seq % 3 != 0).then(|| format!("c{seq}"));
            kept.note(seq, cid.as_deref());
        }
        for recent in [&loaded, &kept] {
            // Each of these has a client id (seq % 3 != 0); the last is the oldest in the window.
            for seq in [last, last - 2, last - WINDOW + 1] {
                let found = recent.find(&store, conv, last, &format!("c{seq}")).unwrap();
                assert_eq!(found.map(|m| m.seq), Some(seq), "c{seq}");
            }
            // Out of the window, unknown, or another conversation's.
            for cid in [
                format!("c{}", last - WINDOW - 1),
                "c0".into(),
                "nope".into(),
            ] {
                assert!(
                    recent.find(&store, conv, last, &cid).unwrap().is_none(),
                    "{cid}"
                );
            }
            assert!(recent
                .find(&store, ConversationId(2), last, &format!("c{last}"))
                .unwrap()
                .is_none());
        }
    }
}
