//! The exactly-once check.
//!
//! Every message in a conversation has a gap-free `seq`, so `(conversation, seq)`
//! names it. A sender's durable ack puts that key in the ledger; the other
//! side's live `message` event marks it delivered. At the end, an acked
//! message with no delivery is *lost*, and one delivered live more than once
//! is *duplicated*. A message the agent fetched with `history` (because the
//! server did not push it, e.g. one written before the conversation was
//! assigned) counts as delivered, but is tallied apart: it shows where the
//! server does not push what a live client needs.
//!
//! Keys are spread over shards so that thousands of sessions rarely wait on
//! one lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 64;

/// What the ledger knows about one message.
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    acked: bool,
    /// Live deliveries to the other side.
    live: u32,
    /// Fetched by the receiver through `history` instead.
    via_history: bool,
}

impl Entry {
    fn delivered(&self) -> bool {
        self.live > 0 || self.via_history
    }

    fn outstanding(&self) -> bool {
        self.acked && !self.delivered()
    }
}

/// Whether a delivery was the first for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    First,
    Duplicate,
    /// Already fetched through `history`; not a duplicate of the server's.
    AfterHistory,
}

/// Every message acked or delivered during the run.
#[derive(Debug)]
pub struct Ledger {
    shards: Vec<Mutex<HashMap<(u64, u64), Entry>>>,
    assigned: Mutex<HashSet<u64>>,
    /// Acked and not yet delivered, kept live for the drain phase.
    outstanding: AtomicU64,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            assigned: Mutex::default(),
            outstanding: AtomicU64::new(0),
        }
    }
}

/// The verdict of the exactly-once check.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Messages acked to their sender.
    pub acked: u64,
    /// Acked messages the other side received.
    pub delivered: u64,
    /// Of those, how many the receiver had to fetch through `history`.
    pub via_history: u64,
    /// Acked, never delivered.
    pub lost: u64,
    /// Of the lost, how many were in conversations never assigned to a simulated agent.
    pub lost_unassigned: u64,
    /// Delivered live more than once (counted once per message).
    pub duplicated: u64,
    /// Delivered without an ack to the sender (e.g. the sender left first).
    pub delivered_unacked: u64,
    /// A few lost `(conversation, seq)` keys, for debugging.
    pub lost_examples: Vec<(u64, u64)>,
}

impl Verdict {
    /// No loss, no duplication.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

impl Ledger {
    fn shard(&self, key: (u64, u64)) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), Entry>> {
        let i =
            usize::try_from(key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58).unwrap_or(0) % SHARDS;
        self.shards[i].lock().expect("ledger shard lock")
    }

    /// The sender got a durable ack for `(conversation, seq)`.
    pub fn ack(&self, conversation: u64, seq: u64) {
        let mut shard = self.shard((conversation, seq));
        let e = shard.entry((conversation, seq)).or_default();
        if !e.acked {
            e.acked = true;
            if !e.delivered() {
                self.outstanding.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The other side received `(conversation, seq)` live.
    pub fn deliver(&self, conversation: u64, seq: u64) -> Delivery {
        let mut shard = self.shard((conversation, seq));
        let e = shard.entry((conversation, seq)).or_default();
        let was_outstanding = e.outstanding();
        e.live = e.live.saturating_add(1);
        if was_outstanding {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        match (e.live, e.via_history) {
            (1, false) => Delivery::First,
            (1, true) => Delivery::AfterHistory,
            _ => Delivery::Duplicate,
        }
    }

    /// The other side fetched `(conversation, seq)` through `history`.
    /// Returns whether it had not seen the message before.
    pub fn deliver_from_history(&self, conversation: u64, seq: u64) -> bool {
        let mut shard = self.shard((conversation, seq));
        let e = shard.entry((conversation, seq)).or_default();
        if e.delivered() {
            return false;
        }
        if e.acked {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        e.via_history = true;
        true
    }

    /// A simulated agent was given `conversation`.
    pub fn mark_assigned(&self, conversation: u64) {
        self.assigned
            .lock()
            .expect("assigned lock")
            .insert(conversation);
    }

    /// Acked messages not delivered yet.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Walks every entry and counts.
    pub fn verdict(&self) -> Verdict {
        let assigned = self.assigned.lock().expect("assigned lock").clone();
        let mut v = Verdict::default();
        for shard in &self.shards {
            for (&(conv, seq), e) in shard.lock().expect("ledger shard lock").iter() {
                v.add(conv, seq, e, &assigned);
            }
        }
        v.lost_examples.sort_unstable();
        v
    }
}

impl Verdict {
    fn add(&mut self, conv: u64, seq: u64, e: &Entry, assigned: &HashSet<u64>) {
        if e.live > 1 {
            self.duplicated += 1;
        }
        if !e.acked {
            if e.delivered() {
                self.delivered_unacked += 1;
            }
            return;
        }
        self.acked += 1;
        if e.delivered() {
            self.delivered += 1;
            if e.live == 0 {
                self.via_history += 1;
            }
            return;
        }
        self.lost += 1;
        if !assigned.contains(&conv) {
            self.lost_unassigned += 1;
        }
        if self.lost_examples.len() < 10 {
            self.lost_examples.push((conv, seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_then_delivery_in_either_order() {
        let l = Ledger::default();
        l.ack(1, 1);
        assert_eq!(l.outstanding(), 1);
        assert_eq!(l.deliver(1, 1), Delivery::First);
        assert_eq!(l.outstanding(), 0);
        assert_eq!(l.deliver(1, 2), Delivery::First);
        l.ack(1, 2);
        assert_eq!(l.outstanding(), 0);
        let v = l.verdict();
        assert_eq!((v.acked, v.delivered, v.lost, v.duplicated), (2, 2, 0, 0));
        assert!(v.passed());
    }

    #[test]
    fn loss_and_duplication_fail() {
        let l = Ledger::default();
        l.mark_assigned(7);
        l.ack(7, 1);
        l.ack(8, 1);
        l.ack(7, 2);
        assert_eq!(l.deliver(7, 2), Delivery::First);
        assert_eq!(l.deliver(7, 2), Delivery::Duplicate);
        let v = l.verdict();
        assert_eq!(v.lost, 2);
        assert_eq!(v.lost_unassigned, 1);
        assert_eq!(v.duplicated, 1);
        assert_eq!(v.lost_examples, vec![(7, 1), (8, 1)]);
        assert!(!v.passed());
        assert_eq!(l.outstanding(), 2);
    }

    #[test]
    fn history_fills_a_gap_without_counting_as_duplicate() {
        let l = Ledger::default();
        l.ack(3, 1);
        assert!(l.deliver_from_history(3, 1));
        assert_eq!(l.outstanding(), 0);
        assert!(!l.deliver_from_history(3, 1));
        assert_eq!(l.deliver(3, 1), Delivery::AfterHistory);
        let v = l.verdict();
        assert_eq!((v.delivered, v.via_history, v.duplicated), (1, 0, 0));
        assert!(v.passed());
        assert!(l.deliver_from_history(3, 9));
        l.ack(3, 9);
        assert_eq!(l.outstanding(), 0);
        assert_eq!(l.verdict().via_history, 1);
    }

    #[test]
    fn unacked_deliveries_are_not_losses() {
        let l = Ledger::default();
        l.deliver(4, 1);
        let v = l.verdict();
        assert_eq!((v.acked, v.delivered_unacked, v.lost), (0, 1, 0));
    }
}
