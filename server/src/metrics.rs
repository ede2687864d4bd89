//! Prometheus metrics, one registry per server (so tests can run several
//! servers in one process), rendered by `GET /metrics`.

use crate::hub::broker::Published;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Family<RoleLabel, Gauge>,
    pub conversations: Family<StatusLabel, Gauge>,
    pub queue_length: Gauge,
    /// Conversations the hub holds in memory (open, and closed ones not yet dropped).
    pub conversations_in_memory: Gauge,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub slow_consumers: Counter,
    /// 1 while the store cannot write (new writes are refused), else 0.
    pub store_unavailable: Gauge,
    flush_seconds: Histogram,
    flush_batch: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Metrics {
            connections: Family::default(),
            conversations: Family::default(),
            queue_length: Gauge::default(),
            conversations_in_memory: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            slow_consumers: Counter::default(),
            store_unavailable: Gauge::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            flush_batch: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket sessions",
            m.connections.clone(),
        );
        registry.register(
            "conversations",
            "Conversations by status",
            m.conversations.clone(),
        );
        registry.register(
            "queue_length",
            "Conversations waiting for an agent",
            m.queue_length.clone(),
        );
        registry.register(
            "conversations_in_memory",
            "Conversations held in memory: the open ones, and closed ones until the next heartbeat",
            m.conversations_in_memory.clone(),
        );
        registry.register("messages_in", "Chat messages stored", m.messages_in.clone());
        registry.register(
            "messages_out",
            "Messages put on session queues",
            m.messages_out.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Sessions cut off because their outbound queue was full",
            m.slow_consumers.clone(),
        );
        registry.register(
            "store_unavailable",
            "1 while the store cannot write and new writes are refused",
            m.store_unavailable.clone(),
        );
        registry.register(
            "store_flush_seconds",
            "Duration of one group-commit flush",
            m.flush_seconds.clone(),
        );
        registry.register(
            "store_flush_batch_size",
            "Commits covered by one flush",
            m.flush_batch.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn observe_flush(&self, took: Duration, batch: usize) {
        self.flush_seconds.observe(took.as_secs_f64());
        self.flush_batch.observe(batch as f64);
    }

    pub fn record_published(&self, p: Published) {
        self.messages_out.inc_by(p.queued);
        self.slow_consumers.inc_by(p.cut_off);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
