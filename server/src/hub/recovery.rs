//! Store recovery. Once a write or flush has failed, sled 0.34 refuses every
//! later one (its error is sticky), so the store stays unwritable until it is
//! reopened. A background thread looks at the store's health every
//! [`TICK`]; while it is unwritable it tries, at most every [`RETRY`]:
//! probe the disk (write, sync and remove a scratch file), reopen the store,
//! reconcile the hub's memory with what the disk holds, flush, and only then
//! take writes again.
//!
//! Reconciling: the open conversations in memory may be ahead of the disk
//! (the writes refused around the failure are gone, unless they had already
//! reached the disk). Each conversation's `last_seq` is set back to the last
//! message on disk, so the next message takes the next sequence number (no
//! gap, no reuse of a stored one), and its record (status, agent, read marks)
//! is written again from memory, which the routing table agrees with; its
//! message bookkeeping (sentiment, first response…) is taken from the stored
//! record and caught up with the messages on disk. A
//! refused message that did reach the disk keeps its sequence number: it
//! becomes durable, is delivered now, and a retry with its client id is
//! acknowledged with the ids it has (see ARCHITECTURE.md, "When the store
//! cannot write").

use super::commit::To;
use super::{audience, catch_up, Hub, Shared};
use crate::hub::broker::Published;
use crate::store::{Result, StoredConversation};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use switchboard_protocol::{ConversationId, ServerMessage};

/// How often the thread looks at the store's health (and updates the gauge).
const TICK: Duration = Duration::from_millis(200);
/// Least time between two attempts to recover.
const RETRY: Duration = Duration::from_secs(1);

/// The recovery thread; [`Handle::stop`] ends it.
pub(super) struct Handle {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Handle {
    /// Wakes the thread, tells it to end, and waits for it.
    pub(super) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Starts the thread. It holds the hub weakly, so it never keeps it alive.
pub(super) fn spawn(hub: &Hub) -> Handle {
    let (stop, stopped) = mpsc::channel();
    let shared = Arc::downgrade(&hub.shared);
    let thread = std::thread::Builder::new()
        .name("sb-store-recovery".into())
        .spawn(move || run(&shared, &stopped))
        .expect("spawning the store recovery thread");
    Handle { stop, thread }
}

fn run(shared: &Weak<Shared>, stopped: &mpsc::Receiver<()>) {
    let mut last_try: Option<Instant> = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let hub = Hub { shared };
        let writable = hub.store().is_writable();
        hub.metrics().store_unavailable.set(i64::from(!writable));
        if writable || last_try.is_some_and(|t| t.elapsed() < RETRY) {
            continue;
        }
        last_try = Some(Instant::now());
        match hub.recover_store() {
            Ok(()) => {
                hub.metrics().store_unavailable.set(0);
            }
            Err(e) => tracing::debug!(error = %e, "the store is still unwritable"),
        }
    }
}

impl Hub {
    /// Probe, reopen, reconcile, flush, announce; then writes are taken again.
    fn recover_store(&self) -> Result<()> {
        let store = self.store();
        store.probe()?;
        store.reopen()?;
        let recovered = self.reconcile()?;
        store.flush()?;
        self.announce_recovered(recovered);
        store.mark_writable();
        Ok(())
    }

    /// Brings each conversation in memory in line with the reopened store;
    /// returns the messages that became durable only now (refused, yet on disk).
    fn reconcile(&self) -> Result<Vec<(Vec<To>, switchboard_protocol::model::Message)>> {
        let ids: Vec<ConversationId> = self.shared.conversations.iter().map(|e| *e.key()).collect();
        let mut recovered = Vec::new();
        // One entry locked at a time: the hub never holds two.
        for id in ids {
            let Some(mut st) = self.shared.conversations.get_mut(&id) else {
                continue;
            };
            let on_disk = self.store().last_seq(id)?;
            st.last_seq = on_disk;
            st.forget_recent();
            // The message bookkeeping again from what the disk kept.
            let disk = self.store().conversation(id)?;
            let r = &mut st.record;
            let empty = StoredConversation::new(r.id, r.customer_id, r.created_at);
            r.take_notes_from(disk.as_ref().unwrap_or(&empty));
            catch_up(self.store(), r, on_disk)?;
            r.visitor_read_seq = r.visitor_read_seq.min(on_disk);
            r.agent_read_seq = r.agent_read_seq.min(on_disk);
            self.store().put_conversation(&st.record)?;
            self.store()
                .put_conversation_team(id, st.record.team.as_deref())?;
            self.store().link_conversation(st.record.customer_id, id)?;
            let durable = st.durable_seq.load(Ordering::Acquire);
            if on_disk > durable {
                let to = audience(&st.record);
                for m in self
                    .store()
                    .messages_between(id, durable + 1, on_disk, usize::MAX)?
                {
                    recovered.push((to.clone(), m));
                }
                st.durable_seq.fetch_max(on_disk, Ordering::AcqRel);
            }
        }
        Ok(recovered)
    }

    /// Delivers the messages that became durable during recovery, in order,
    /// before any new message can be written.
    fn announce_recovered(&self, recovered: Vec<(Vec<To>, switchboard_protocol::model::Message)>) {
        if !recovered.is_empty() {
            tracing::warn!(
                messages = recovered.len(),
                "messages refused during the store failure had reached the disk; delivering them"
            );
        }
        let mut published = Published::default();
        for (to, m) in recovered {
            let msg = crate::hub::broker::Outgoing::new(ServerMessage::Message(m));
            for t in to {
                published += match t {
                    To::One(p) => self.broker().publish(p, &msg),
                    To::Agents => self.broker().publish_agents(&msg),
                };
            }
        }
        self.metrics().record_published(published);
    }
}
