//! The end of a run: the numbers an operator reads, as a human table
//! ([`Report::table`]) and as JSON (`--json FILE`, the [`Report`] itself).
//!
//! The math is here and pure (percentiles of a histogram, rates over the
//! steady window, memory per connection, CPU per delivered message), so it
//! is tested without a server.

use crate::cli::{EncodingArg, Scenario};
use crate::ledger::Verdict;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Percentiles of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Summarises a histogram of microseconds in milliseconds.
pub fn summarize(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Summary {
        count: h.len(),
        mean: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// `count / seconds`, 0 for an empty window.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Bytes of server RSS each connection added (`None` without connections or samples).
pub fn per_connection(
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    connections: u64,
) -> Option<f64> {
    let (before, after) = (rss_before?, rss_after?);
    (connections > 0).then(|| after.saturating_sub(before) as f64 / connections as f64)
}

/// Microseconds of server CPU per delivered message.
pub fn cpu_per_delivery_us(cpu_seconds: f64, delivered: u64) -> Option<f64> {
    (delivered > 0).then(|| cpu_seconds * 1e6 / delivered as f64)
}

/// Least-squares slope of RSS over time, in bytes per minute, of the points
/// within `[from, to]` seconds (the leak check: flat means ~0). `None` with
/// fewer than three points.
pub fn rss_slope_per_minute(series: &[(f64, u64)], from: f64, to: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = series
        .iter()
        .filter(|(t, _)| (from..=to).contains(t))
        .map(|&(t, rss)| (t, rss as f64))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_r = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points
        .iter()
        .map(|(t, r)| (t - mean_t) * (r - mean_r))
        .sum();
    let var: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    (var > 0.0).then(|| cov / var * 60.0)
}

/// What was asked of the run.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub scenario: Scenario,
    pub encoding: EncodingArg,
    pub target: String,
    pub visitors: usize,
    pub agents: usize,
    /// Messages per second per visitor (0: closed loop).
    pub rate_per_visitor: f64,
    /// visitors × rate (open loop only).
    pub offered_msgs_per_s: Option<f64>,
    pub duration_s: f64,
    pub ramp_s: f64,
    pub message_bytes: usize,
    /// What visitors write (repeated to `message_bytes`).
    pub text: String,
    pub think_ms: u64,
    pub source_ips: usize,
    pub spawned_server: Option<String>,
    /// `--slow-readers` and `--slow-flood`.
    pub slow_readers: usize,
    pub slow_flood: usize,
    /// What a spawned server was given beyond the inherited environment (`NAME=VALUE`).
    pub server_env: Vec<String>,
}

/// Connection set-up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Connections {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    /// From the first dial to the last welcome (or failure).
    pub ramp_seconds: f64,
    /// Established connections per second of ramp.
    pub connect_rate_per_s: f64,
}

/// The four latency distributions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub handshake: Summary,
    pub visitor_to_agent: Summary,
    pub agent_to_visitor: Summary,
    pub send_to_ack: Summary,
}

/// Message counts over the whole run and rates over the steady window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub steady_seconds: f64,
    pub visitor_sent: u64,
    pub agent_sent: u64,
    pub acked: u64,
    pub delivered: u64,
    /// Deliveries to the other side per second, steady window.
    pub delivered_per_s: f64,
    /// Acks per second, steady window.
    pub acked_per_s: f64,
    pub echoes: u64,
    pub bot_messages: u64,
    pub rejected: u64,
    pub conversations_assigned: u64,
    pub conversations_queued: u64,
}

/// A process observed from /proc.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessReport {
    pub pid: Option<u32>,
    /// Before any connection.
    pub rss_before_bytes: Option<u64>,
    /// Once every connection was up (start of the steady window).
    pub rss_loaded_bytes: Option<u64>,
    /// At the end of the steady window.
    pub rss_end_bytes: Option<u64>,
    pub rss_peak_bytes: u64,
    /// (rss_loaded − rss_before) / established connections.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU seconds used during the steady window.
    pub cpu_seconds_steady: Option<f64>,
    /// Cores busy on average during the steady window.
    pub cpu_cores_steady: Option<f64>,
    pub cpu_us_per_delivered: Option<f64>,
    pub deliveries_per_cpu_second: Option<f64>,
    /// RSS growth over the steady window, bytes per minute (leak check; needs ≥ 3 s):
    /// the least-squares slope of `rss_series` within the window.
    pub rss_slope_bytes_per_minute: Option<f64>,
    /// The same over the second half of the steady window only, after warm-up
    /// growth (caches, allocator pools) has had time to level off.
    pub rss_slope_late_bytes_per_minute: Option<f64>,
    /// One (seconds since the harness started, RSS bytes) point per second,
    /// over the whole run; the steady window is `Report::steady_window_s`.
    pub rss_series: Vec<(f64, u64)>,
}

/// `--slow-readers`: what they did, and how the server ended them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SlowReaders {
    pub requested: usize,
    pub connected: u64,
    /// Messages they wrote before going silent.
    pub sent: u64,
    /// Acks of those they read before going silent (in the exactly-once check).
    pub acked: u64,
    /// Readers that went silent (stopped reading, connection held).
    pub stopped_reading: u64,
    /// `--slow-flood`: extra agent messages per reader once it is silent.
    pub flood_per_reader: usize,
    pub flood_sent: u64,
    /// Agent messages acked in their conversations (replies and flood):
    /// owed to readers that do not read, so not in the exactly-once check.
    pub owed_acked: u64,
    /// Frames and payload bytes read on waking at the end: what the server
    /// (kernel buffers and its own) still had on the way to them.
    pub frames_on_wake: u64,
    pub bytes_on_wake: u64,
    /// How each one ended: `closed 4000`, `still open: not cut off`, …
    pub outcomes: BTreeMap<String, u64>,
    /// The server's own count (`slow_consumer_disconnects` on `/metrics`), when it has one.
    pub server_slow_consumer_disconnects: Option<u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: RunConfig,
    pub connections: Connections,
    pub latency_ms: Latency,
    pub throughput: Throughput,
    pub server: ProcessReport,
    pub harness: ProcessReport,
    /// Start and end of the steady window, in seconds since the harness started.
    pub steady_window_s: (f64, f64),
    /// `None` without `--slow-readers`.
    pub slow_readers: Option<SlowReaders>,
    /// Errors and close codes of the normal sessions (slow readers: `slow_readers.outcomes`).
    pub errors: BTreeMap<String, u64>,
    pub close_codes: BTreeMap<u16, u64>,
    pub delivery: Verdict,
    /// The hard deadline cut the run short.
    pub deadline_hit: bool,
    pub passed: bool,
}

impl Report {
    /// Every acked message was delivered exactly once, and the run finished in time.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// Sets `passed` from the delivery verdict and the deadline.
    pub fn judge(&mut self) {
        self.passed = self.delivery.passed() && !self.deadline_hit;
    }

    /// The human-readable table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_latency(&mut out);
        self.write_throughput(&mut out);
        self.write_process(&mut out, "server", &self.server);
        self.write_process(&mut out, "harness", &self.harness);
        self.write_slow_readers(&mut out);
        self.write_problems(&mut out);
        out
    }

    fn write_header(&self, out: &mut String) {
        let c = &self.config;
        let load = match (c.scenario, c.offered_msgs_per_s) {
            (Scenario::Idle, _) => "holding connections".into(),
            (Scenario::Burst, _) => "bursts".into(),
            (_, Some(r)) => format!(
                "{:.1} msg/s/visitor ({r:.0} msg/s offered)",
                c.rate_per_visitor
            ),
            (_, None) => "closed loop".into(),
        };
        let _ = writeln!(
            out,
            "\n== loadtest {:?} ({:?}) against {}",
            c.scenario, c.encoding, c.target
        );
        let slow = match c.slow_readers {
            0 => String::new(),
            n => format!(" (+{n} slow readers)"),
        };
        let _ = writeln!(
            out,
            "   {} visitors{slow}, {} agents, {load}, {} B messages, {:.1}s steady",
            c.visitors, c.agents, c.message_bytes, self.throughput.steady_seconds
        );
        if !c.server_env.is_empty() {
            let _ = writeln!(out, "   server env: {}", c.server_env.join(" "));
        }
        let n = &self.connections;
        let _ = writeln!(
            out,
            "   connections: {} established, {} failed, {:.0}/s over {:.2}s",
            n.established, n.failed, n.connect_rate_per_s, n.ramp_seconds
        );
    }

    fn write_latency(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n{:<18} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let l = &self.latency_ms;
        for (name, s) in [
            ("handshake", &l.handshake),
            ("visitor → agent", &l.visitor_to_agent),
            ("agent → visitor", &l.agent_to_visitor),
            ("send → ack", &l.send_to_ack),
        ] {
            let _ = writeln!(
                out,
                "{name:<18} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                s.count, s.p50, s.p90, s.p99, s.p999, s.max
            );
        }
    }

    fn write_throughput(&self, out: &mut String) {
        let t = &self.throughput;
        let _ = writeln!(
            out,
            "\nmessages: {} sent by visitors, {} by agents, {} acked, {} delivered",
            t.visitor_sent, t.agent_sent, t.acked, t.delivered
        );
        let _ = writeln!(
            out,
            "steady:   {:.1} delivered/s, {:.1} acks/s",
            t.delivered_per_s, t.acked_per_s
        );
        let _ = writeln!(
            out,
            "other:    {} echoes, {} bot/system, {} rejected, {} assigned, {} queued",
            t.echoes, t.bot_messages, t.rejected, t.conversations_assigned, t.conversations_queued
        );
    }

    fn write_process(&self, out: &mut String, name: &str, p: &ProcessReport) {
        let mib =
            |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.2}{unit}"));
        let pid = p.pid.map_or("self".into(), |p| p.to_string());
        if name == "server" && p.pid.is_none() {
            let _ = writeln!(
                out,
                "\nserver:   not sampled (give --server-pid or --spawn)"
            );
            return;
        }
        let _ = writeln!(
            out,
            "\n{name:<8}  pid {pid}: RSS {} before, {} loaded, {} at end, {} peak",
            mib(p.rss_before_bytes),
            mib(p.rss_loaded_bytes),
            mib(p.rss_end_bytes),
            mib(Some(p.rss_peak_bytes))
        );
        if let Some(slope) = p.rss_slope_bytes_per_minute {
            let late = p
                .rss_slope_late_bytes_per_minute
                .map_or("-".into(), |l| format!("{:+.1} KiB/min", l / 1024.0));
            let _ = writeln!(
                out,
                "          RSS over the steady window: {} at start, {} at end; slope {:+.1} KiB/min (second half {late})",
                mib(p.rss_loaded_bytes),
                mib(p.rss_end_bytes),
                slope / 1024.0
            );
        }
        let _ = writeln!(out, "          {} per connection; CPU {} in steady ({} cores), {} per delivered msg, {} deliveries per CPU-second",
            opt(p.rss_per_connection_bytes.map(|b| b / 1024.0), " KiB"), opt(p.cpu_seconds_steady, " s"), opt(p.cpu_cores_steady, ""), opt(p.cpu_us_per_delivered, " µs"), opt(p.deliveries_per_cpu_second, ""));
    }

    fn write_slow_readers(&self, out: &mut String) {
        let Some(s) = &self.slow_readers else {
            return;
        };
        let _ = writeln!(
            out,
            "\nslow readers: {} of {} connected; {} stopped reading after {} of their {} messages were acked",
            s.connected, s.requested, s.stopped_reading, s.acked, s.sent
        );
        let _ = writeln!(
            out,
            "          agents wrote them {} extra messages ({} each once silent); {} agent messages to them acked (not ledgered)",
            s.flood_sent, s.flood_per_reader, s.owed_acked
        );
        let ends: Vec<String> = s
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        let _ = writeln!(
            out,
            "          on waking at the end: {} frames ({:.1} KiB) were still on the way; ended: {}",
            s.frames_on_wake,
            s.bytes_on_wake as f64 / 1024.0,
            if ends.is_empty() { "-".into() } else { ends.join(", ") }
        );
        if let Some(n) = s.server_slow_consumer_disconnects {
            let _ = writeln!(
                out,
                "          the server counted {n} slow-consumer disconnects"
            );
        }
    }

    fn write_problems(&self, out: &mut String) {
        let d = &self.delivery;
        let verdict = if d.passed() { "OK" } else { "FAILED" };
        let _ = writeln!(out, "\nexactly-once: {verdict}: {} acked, {} delivered ({} via history), {} lost ({} in unassigned conversations), {} duplicated, {} delivered unacked",
            d.acked, d.delivered, d.via_history, d.lost, d.lost_unassigned, d.duplicated, d.delivered_unacked);
        if !d.lost_examples.is_empty() {
            let _ = writeln!(out, "   lost (conversation, seq): {:?}", d.lost_examples);
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(out, "errors:");
            for (kind, n) in &self.errors {
                let _ = writeln!(out, "   {n:>8}  {kind}");
            }
        }
        if !self.close_codes.is_empty() {
            let codes: Vec<String> = self
                .close_codes
                .iter()
                .map(|(c, n)| format!("{c}×{n}"))
                .collect();
            let _ = writeln!(out, "close codes: {}", codes.join(", "));
        }
        if self.deadline_hit {
            let _ = writeln!(out, "the hard deadline cut the run short");
        }
        let _ = writeln!(out, "result: {}", if self.passed { "PASS" } else { "FAIL" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=1000 {
            h.record(us * 1000).unwrap();
        }
        let s = summarize(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{}", s.p50);
        assert!((s.p90 - 900.0).abs() < 1.0, "{}", s.p90);
        assert!((s.p99 - 990.0).abs() < 1.0, "{}", s.p99);
        assert!((s.max - 1000.0).abs() < 1.0, "{}", s.max);
        assert!((s.mean - 500.5).abs() < 1.0, "{}", s.mean);
        assert_eq!(
            summarize(&Histogram::<u64>::new(3).unwrap()),
            Summary::default()
        );
    }

    #[test]
    fn rates_and_ratios() {
        assert_eq!(rate(500, 2.0), 250.0);
        assert_eq!(rate(500, 0.0), 0.0);
        assert_eq!(
            per_connection(Some(10_000_000), Some(16_000_000), 1000),
            Some(6000.0)
        );
        assert_eq!(
            per_connection(Some(10), Some(5), 5),
            Some(0.0),
            "RSS may shrink"
        );
        assert_eq!(per_connection(Some(1), Some(2), 0), None);
        assert_eq!(per_connection(None, Some(2), 2), None);
        assert_eq!(cpu_per_delivery_us(2.0, 1_000_000), Some(2.0));
        assert_eq!(cpu_per_delivery_us(2.0, 0), None);
    }

    #[test]
    fn rss_slope() {
        let growing: Vec<(f64, u64)> = (0u32..10)
            .map(|s| (f64::from(s), 1000 + 10 * u64::from(s)))
            .collect();
        let slope = rss_slope_per_minute(&growing, 0.0, 100.0).unwrap();
        assert!((slope - 600.0).abs() < 1e-6, "{slope}");
        let flat: Vec<(f64, u64)> = (0u32..10).map(|s| (f64::from(s), 5000)).collect();
        assert_eq!(rss_slope_per_minute(&flat, 0.0, 100.0), Some(0.0));
        assert_eq!(
            rss_slope_per_minute(&growing, 0.0, 1.0),
            None,
            "two points are not a trend"
        );
        // Warm-up growth, then flat: the whole window slopes up, its second half does not.
        let levelling: Vec<(f64, u64)> = (0u32..20)
            .map(|s| (f64::from(s), 1000 + 100 * u64::from(s.min(5))))
            .collect();
        assert!(rss_slope_per_minute(&levelling, 0.0, 19.0).unwrap() > 0.0);
        assert_eq!(rss_slope_per_minute(&levelling, 9.5, 19.0), Some(0.0));
    }
}
