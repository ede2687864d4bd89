//! What the sessions measure: counters (atomics, read live by the progress
//! bar), latency histograms and error tallies.
//!
//! Latency histograms are sharded: each session's [`Recorder`] writes to one
//! of a few shards (round-robin), so two sessions rarely wait on the same lock,
//! and memory stays fixed however many sessions there are (one HDR histogram
//! with this range and precision is ~200 KiB: one per session would cost more
//! than the connection itself).
//! Latencies are microseconds; timestamps are microseconds since the harness
//! started ([`now_us`]), which is what a message's `client_id` carries so the
//! receiving session can compute the end-to-end latency.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Microseconds since the harness started (monotonic).
pub fn now_us() -> u64 {
    u64::try_from(start().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Seconds since the harness started.
pub fn now_seconds() -> f64 {
    start().elapsed().as_secs_f64()
}

/// Highest latency the histograms hold: one minute, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

/// The four latency distributions, in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// TCP connect + WebSocket upgrade + hello → welcome.
    pub handshake: Histogram<u64>,
    /// Visitor's send → the agent receives the message.
    pub visitor_to_agent: Histogram<u64>,
    /// Agent's send → the visitor receives the reply.
    pub agent_to_visitor: Histogram<u64>,
    /// Send → the sender's durable ack (both sides).
    pub send_to_ack: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            handshake: histogram(),
            visitor_to_agent: histogram(),
            agent_to_visitor: histogram(),
            send_to_ack: histogram(),
        }
    }
}

impl Latencies {
    /// Adds every value of `other` to `self`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.handshake.add(&other.handshake);
        let _ = self.visitor_to_agent.add(&other.visitor_to_agent);
        let _ = self.agent_to_visitor.add(&other.agent_to_visitor);
        let _ = self.send_to_ack.add(&other.send_to_ack);
    }
}

/// Records a latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.clamp(1, MAX_LATENCY_US));
}

/// Which latency a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Handshake,
    VisitorToAgent,
    AgentToVisitor,
    SendToAck,
}

impl Latencies {
    fn histogram_mut(&mut self, m: Metric) -> &mut Histogram<u64> {
        match m {
            Metric::Handshake => &mut self.handshake,
            Metric::VisitorToAgent => &mut self.visitor_to_agent,
            Metric::AgentToVisitor => &mut self.agent_to_visitor,
            Metric::SendToAck => &mut self.send_to_ack,
        }
    }
}

/// Latency shards: enough that the two worker threads rarely collide.
const LATENCY_SHARDS: usize = 8;

/// Event counters, read live.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sessions that completed hello → welcome.
    pub connected: AtomicU64,
    /// Sessions that failed before their welcome.
    pub connect_failed: AtomicU64,
    /// Sessions currently open (welcomed and not ended).
    pub open: AtomicU64,
    /// Chat messages sent by visitors.
    pub visitor_sent: AtomicU64,
    /// Chat messages sent by agents.
    pub agent_sent: AtomicU64,
    /// Durable acks received (both sides).
    pub acked: AtomicU64,
    /// Messages delivered to the other side (first delivery only).
    pub delivered: AtomicU64,
    /// A sender's own message echoed back to it.
    pub echoes: AtomicU64,
    /// Messages written by the bot or the system.
    pub bot_messages: AtomicU64,
    /// `send`s the server refused with an error.
    pub rejected: AtomicU64,
    /// Conversations assigned to a simulated agent.
    pub assigned: AtomicU64,
    /// Conversations put in the waiting queue.
    pub queued: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Everything the sessions share.
#[derive(Debug)]
pub struct Stats {
    pub counters: Counters,
    latencies: Vec<Mutex<Latencies>>,
    next_shard: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    close_codes: Mutex<BTreeMap<u16, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Counters::default(),
            latencies: (0..LATENCY_SHARDS).map(|_| Mutex::default()).collect(),
            next_shard: AtomicU64::new(0),
            errors: Mutex::default(),
            close_codes: Mutex::default(),
        }
    }
}

impl Stats {
    /// Counts one error of `kind` (e.g. `connect: connection refused`, `server_error: not_found`).
    pub fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind.into())
            .or_default() += 1;
    }

    /// Counts an `error` the server sent `who` (`visitor`, `agent`); one
    /// that names a message still waiting for its ack (`unacked`: client id
    /// → send time) settles it as rejected.
    pub fn server_error(
        &self,
        who: &str,
        e: &switchboard_protocol::server::ErrorMessage,
        unacked: &mut std::collections::HashMap<String, u64>,
    ) {
        self.error(format!("{who}: server error {}", e.code.as_str()));
        if let Some(id) = &e.client_id {
            if unacked.remove(id).is_some() {
                bump(&self.counters.rejected);
            }
        }
    }

    /// Counts one close frame received from the server.
    pub fn close_code(&self, code: u16) {
        *self
            .close_codes
            .lock()
            .expect("close codes lock")
            .entry(code)
            .or_default() += 1;
    }

    /// The errors so far, by kind.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("errors lock").clone()
    }

    /// Close codes received so far.
    pub fn close_codes(&self) -> BTreeMap<u16, u64> {
        self.close_codes.lock().expect("close codes lock").clone()
    }

    /// All errors so far.
    pub fn error_count(&self) -> u64 {
        self.errors.lock().expect("errors lock").values().sum()
    }

    /// Every latency recorded so far, merged.
    pub fn latencies(&self) -> Latencies {
        let mut all = Latencies::default();
        for shard in &self.latencies {
            all.merge(&shard.lock().expect("latencies lock"));
        }
        all
    }
}

/// A session's handle for recording latencies into its shard.
#[derive(Debug, Clone)]
pub struct Recorder {
    stats: std::sync::Arc<Stats>,
    shard: usize,
}

impl Recorder {
    pub fn new(stats: std::sync::Arc<Stats>) -> Recorder {
        let n = stats.next_shard.fetch_add(1, Ordering::Relaxed);
        let shard = usize::try_from(n % LATENCY_SHARDS as u64).unwrap_or(0);
        Recorder { stats, shard }
    }

    /// Records `micros` of `metric`.
    pub fn record(&self, metric: Metric, micros: u64) {
        let mut l = self.stats.latencies[self.shard]
            .lock()
            .expect("latencies lock");
        record(l.histogram_mut(metric), micros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn recorders_share_the_shards() {
        let stats = Arc::new(Stats::default());
        for v in [100, 200, 300] {
            Recorder::new(stats.clone()).record(Metric::SendToAck, v);
        }
        let l = stats.latencies();
        assert_eq!(l.send_to_ack.len(), 3);
        assert_eq!(l.send_to_ack.max(), 300);
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut h = histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_LATENCY_US);
    }

    #[test]
    fn errors_and_close_codes_are_tallied() {
        let s = Stats::default();
        s.error("connect: refused");
        s.error("connect: refused");
        s.close_code(4000);
        assert_eq!(s.errors()["connect: refused"], 2);
        assert_eq!(s.error_count(), 2);
        assert_eq!(s.close_codes()[&4000], 1);
    }
}
