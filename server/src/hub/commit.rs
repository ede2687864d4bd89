//! Group commit. Every change the hub makes is written to sled first, then
//! handed here as one [`Commit`]; a single committer thread takes whatever
//! has queued up, calls `flush()` once for the whole batch, and only then
//! sends the acks and delivers the events, in the order they were queued.
//!
//! One thread, one flush at a time: sled 0.34.7 can deadlock when several
//! `flush_async` calls overlap (sled issue 1308), and one flush per batch is
//! what makes durable acks cheap. Because commits are queued while the
//! conversation they touch is locked, per-conversation order is sequence
//! order, and so is delivery order.
//!
//! A failed flush marks the store unwritable and refuses the batch: senders
//! get `store_unavailable` with their client id, nothing is delivered. While
//! the store is unwritable every batch is refused without flushing, until the
//! hub's recovery (`hub::recovery`) has reopened the store. A commit carries the
//! store epoch its [`Permit`] was taken in; it is acknowledged only by a
//! successful flush of that same epoch, so writes that died with a closed
//! database are never acknowledged by a flush of its successor.

use super::broker::{Broker, Outbound, Outgoing, Participant, Published, SessionHandle};
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_protocol::server::{Ack, ErrorMessage};
use switchboard_protocol::{ErrorCode, ServerMessage};
use tokio::sync::{mpsc, oneshot};

/// Most commits one flush covers.
const MAX_BATCH: usize = 4096;

/// Who a delivery goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum To {
    One(Participant),
    Agents,
}

/// One hub operation's worth of durable changes and what to announce once they are durable.
#[derive(Default)]
pub(crate) struct Commit {
    /// A conversation whose messages up to this sequence become durable (and resumable).
    pub(crate) durable: Option<(Arc<AtomicU64>, u64)>,
    /// The ack for the session that sent a message (sent before the deliveries).
    pub(crate) ack: Option<(SessionHandle, Ack)>,
    pub(crate) deliveries: Vec<(To, Outbound)>,
    /// For callers that wait for durability (REST).
    pub(crate) done: Option<oneshot::Sender<bool>>,
    /// The store epoch the writes were made in (set from the [`Permit`]).
    pub(crate) epoch: u64,
}

/// A reserved slot in the commit queue, taken before an operation writes
/// anything, with the store epoch at that moment.
pub(crate) struct Permit {
    pub(super) slot: mpsc::OwnedPermit<Job>,
    pub(super) epoch: u64,
}

impl Commit {
    pub(crate) fn deliver(&mut self, to: To, msg: ServerMessage) {
        self.deliveries.push((to, Outgoing::new(msg)));
    }

    /// Delivers the same message to several participants (encoded once, shared).
    pub(crate) fn deliver_all(&mut self, to: impl IntoIterator<Item = To>, msg: ServerMessage) {
        let msg = Outgoing::new(msg);
        self.deliveries
            .extend(to.into_iter().map(|t| (t, msg.clone())));
    }
}

pub(crate) enum Job {
    Commit(Commit),
    Stop,
}

/// Runs the committer loop on its own thread until [`Job::Stop`] or until every sender is gone.
pub(crate) fn spawn(
    store: Store,
    broker: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
    queue: usize,
    window: Duration,
) -> (mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(queue);
    let thread = std::thread::Builder::new()
        .name("sb-committer".into())
        .spawn(move || run(rx, window, &store, &*broker, &metrics))
        .expect("spawning the committer thread");
    (tx, thread)
}

fn run(
    mut rx: mpsc::Receiver<Job>,
    window: Duration,
    store: &Store,
    broker: &dyn Broker,
    metrics: &Metrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    // When the previous flush started (long ago, at first).
    let mut last_flush: Option<Instant> = None;
    while !stopping {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        // Others already waiting behind the first: a busy spell, worth batching.
        if !rx.is_empty() {
            linger(last_flush, window);
        }
        for job in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match job {
                Job::Commit(c) => batch.push(c),
                Job::Stop => stopping = true,
            }
            if stopping || batch.len() >= MAX_BATCH {
                break;
            }
        }
        if !store.is_writable() {
            // Until recovery: no flush (it would fail, or race recovery's own).
            batch.drain(..).for_each(refuse);
            continue;
        }
        let started = Instant::now();
        last_flush = Some(started);
        let flushed = store.flush();
        metrics.observe_flush(started.elapsed(), batch.len());
        match flushed {
            Ok(epoch) => batch.drain(..).for_each(|c| {
                if c.epoch == epoch {
                    announce(c, broker, metrics)
                } else {
                    refuse(c)
                }
            }),
            Err(e) => {
                tracing::error!(error = %e, commits = batch.len(), "store flush failed; refusing the batch");
                store.mark_unwritable(&e);
                metrics.store_unavailable.set(1);
                batch.drain(..).for_each(refuse);
            }
        }
    }
    if !store.is_writable() {
        tracing::error!(
            "stopping with the store unwritable; the last refused writes are not saved"
        );
    } else if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final store flush failed");
    }
}

/// Group commit: while commits queue up faster than flushes finish (the
/// committer found others waiting behind the first), waits until `window`
/// has passed since the previous flush started, so the commits arriving
/// meanwhile share the next flush. When the committer finds one commit
/// alone, or the previous flush is older than `window`, it does not wait, so
/// a message at moderate load pays nothing.
fn linger(last_flush: Option<Instant>, window: Duration) {
    let Some(last) = last_flush else {
        return;
    };
    if let Some(rest) = window.checked_sub(last.elapsed()) {
        std::thread::sleep(rest);
    }
}

fn announce(c: Commit, broker: &dyn Broker, metrics: &Metrics) {
    if let Some((durable, seq)) = c.durable {
        durable.fetch_max(seq, Ordering::AcqRel);
    }
    let mut published = Published::default();
    if let Some((session, ack)) = c.ack {
        session.offer(&Outgoing::new(ServerMessage::Ack(ack)));
    }
    for (to, msg) in &c.deliveries {
        published += match to {
            To::One(p) => broker.publish(*p, msg),
            To::Agents => broker.publish_agents(msg),
        };
    }
    metrics.record_published(published);
    if let Some(done) = c.done {
        let _ = done.send(true);
    }
}

fn refuse(c: Commit) {
    if let Some((session, ack)) = c.ack {
        session.offer(&Outgoing::new(ServerMessage::Error(ErrorMessage {
            code: ErrorCode::StoreUnavailable,
            message: "the store could not write: the message is not acknowledged; retry later with the same client_id".into(),
            client_id: Some(ack.client_id),
            conversation_id: Some(ack.conversation_id),
        })));
    }
    if let Some(done) = c.done {
        let _ = done.send(false);
    }
}
