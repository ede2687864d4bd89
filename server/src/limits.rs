//! Abuse limits: how many connections the server holds (in all and per
//! client address), and token buckets on what clients may do (messages per
//! connection and per address, new conversations per address).
//!
//! A bucket holds up to `burst` tokens and gains `rate` per second; each
//! action takes one. An empty bucket refuses the action with a typed
//! `rate_limited` error and still charges it, down to a debt of `burst`: a
//! client that keeps sending into a refusal digs deeper and is then closed
//! with [`close::RATE_LIMITED`](switchboard_protocol::close::RATE_LIMITED).
//! A well-behaved client that waits for its retry never gets there.

use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token-bucket rate: `per_sec` tokens a second, up to `burst`. A zero rate means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        per_sec: 0.0,
        burst: 0.0,
    };

    pub fn per_sec(per_sec: f64, burst: f64) -> Rate {
        Rate {
            per_sec,
            burst: burst.max(1.0),
        }
    }

    pub fn per_min(per_min: f64, burst: f64) -> Rate {
        Rate::per_sec(per_min / 60.0, burst)
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_sec <= 0.0
    }
}

/// What a bucket says to one action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refused; a token will be there after this long.
    Limited(Duration),
    /// Refused, and the client kept going after being told: close it.
    Abusive,
}

#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: Rate) -> Bucket {
        Bucket::full_at(rate, Instant::now())
    }

    fn full_at(rate: Rate, at: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at,
        }
    }

    pub fn take(&mut self, rate: Rate) -> Verdict {
        self.take_at(rate, Instant::now())
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_sec;
        self.tokens = (self.tokens + gained).min(rate.burst);
        self.at = now;
    }

    fn take_at(&mut self, rate: Rate, now: Instant) -> Verdict {
        if rate.is_unlimited() {
            return Verdict::Allow;
        }
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        if self.tokens <= -rate.burst {
            return Verdict::Abusive;
        }
        self.tokens -= 1.0;
        // Time until the balance is back to one token.
        let wait = (1.0 - self.tokens) / rate.per_sec;
        Verdict::Limited(Duration::from_secs_f64(wait.min(3600.0)))
    }

    fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        rate.is_unlimited() || self.tokens >= rate.burst
    }
}

/// The limits, as configured.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Most connections in all (0: no limit).
    pub max_connections: usize,
    /// Most connections from one address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Frames one connection may send.
    pub connection_messages: Rate,
    /// Frames all visitor connections from one address may send together.
    pub ip_messages: Rate,
    /// New conversations (new visitors) one address may start.
    pub ip_new_conversations: Rate,
}

impl LimitSettings {
    pub fn unlimited() -> LimitSettings {
        LimitSettings {
            max_connections: 0,
            max_connections_per_ip: 0,
            connection_messages: Rate::UNLIMITED,
            ip_messages: Rate::UNLIMITED,
            ip_new_conversations: Rate::UNLIMITED,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server has too many connections")]
    ServerFull,
    #[error("too many connections from your address")]
    TooManyFromAddress,
}

#[derive(Debug)]
struct Peer {
    connections: AtomicUsize,
    buckets: Mutex<PeerBuckets>,
}

#[derive(Debug)]
struct PeerBuckets {
    messages: Bucket,
    conversations: Bucket,
}

/// Connection counts and per-address buckets, shared by every connection.
#[derive(Debug)]
pub struct Limits {
    settings: LimitSettings,
    total: AtomicUsize,
    peers: DashMap<IpAddr, Arc<Peer>>,
}

/// One admitted connection: counted until dropped. Held by the HTTP
/// connection and, after an upgrade, by the WebSocket session.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<Limits>,
    ip: IpAddr,
    peer: Arc<Peer>,
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Arc<Limits> {
        Arc::new(Limits {
            settings,
            total: AtomicUsize::new(0),
            peers: DashMap::new(),
        })
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `ip`, or refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let s = &self.settings;
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        if s.max_connections > 0 && total > s.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::ServerFull);
        }
        // Count under the map's shard lock, so a sweep never drops a peer in use.
        let peer = {
            let entry = self.peers.entry(ip).or_insert_with(|| {
                Arc::new(Peer {
                    connections: AtomicUsize::new(0),
                    buckets: Mutex::new(PeerBuckets {
                        messages: Bucket::full(s.ip_messages),
                        conversations: Bucket::full(s.ip_new_conversations),
                    }),
                })
            });
            let n = entry.connections.fetch_add(1, Ordering::AcqRel) + 1;
            if s.max_connections_per_ip > 0 && n > s.max_connections_per_ip {
                entry.connections.fetch_sub(1, Ordering::AcqRel);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::TooManyFromAddress);
            }
            entry.clone()
        };
        Ok(Admission {
            limits: self.clone(),
            ip,
            peer,
        })
    }

    /// Forgets addresses with no connection whose buckets have refilled (run now and then).
    pub fn sweep(&self) {
        let now = Instant::now();
        let s = self.settings;
        self.peers.retain(|_, p| {
            if p.connections.load(Ordering::Acquire) > 0 {
                return true;
            }
            let mut b = p.buckets.lock().unwrap_or_else(|e| e.into_inner());
            !(b.messages.is_full(s.ip_messages, now)
                && b.conversations.is_full(s.ip_new_conversations, now))
        });
    }

    /// Addresses remembered now.
    pub fn tracked_addresses(&self) -> usize {
        self.peers.len()
    }
}

impl Admission {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.limits.settings
    }

    /// One visitor frame against the address's shared bucket.
    pub fn address_message(&self) -> Verdict {
        let rate = self.limits.settings.ip_messages;
        self.with_buckets(|b| b.messages.take(rate))
    }

    /// One new conversation (a new visitor) against the address's bucket.
    pub fn new_conversation(&self) -> Verdict {
        let rate = self.limits.settings.ip_new_conversations;
        self.with_buckets(|b| b.conversations.take(rate))
    }

    fn with_buckets(&self, f: impl FnOnce(&mut PeerBuckets) -> Verdict) -> Verdict {
        let mut b = self.peer.buckets.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut b)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.peer.connections.fetch_sub(1, Ordering::AcqRel);
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The process's open-files limit, raised to its hard maximum first (as
/// servers do at start). None where the platform has no such limit.
pub fn raise_open_files_limit() -> Option<u64> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    rlimit::increase_nofile_limit(hard).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refuses_then_closes() {
        let rate = Rate::per_sec(1.0, 3.0);
        let t0 = Instant::now();
        let mut b = Bucket::full_at(rate, t0);
        for _ in 0..3 {
            assert_eq!(b.take_at(rate, t0), Verdict::Allow);
        }
        let Verdict::Limited(wait) = b.take_at(rate, t0) else {
            panic!("fourth action in the same instant must be refused")
        };
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2));
        // Keeps refusing while in debt, then calls the client abusive.
        assert!(matches!(b.take_at(rate, t0), Verdict::Limited(_)));
        assert!(matches!(b.take_at(rate, t0), Verdict::Limited(_)));
        assert_eq!(b.take_at(rate, t0), Verdict::Abusive);
        // Waiting long enough pays the debt back.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.take_at(rate, later), Verdict::Allow);
    }

    #[test]
    fn unlimited_rate_always_allows() {
        let mut b = Bucket::full(Rate::UNLIMITED);
        for _ in 0..10_000 {
            assert_eq!(b.take(Rate::UNLIMITED), Verdict::Allow);
        }
    }

    #[test]
    fn connection_counts_in_all_and_per_address() {
        let limits = Limits::new(LimitSettings {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..LimitSettings::unlimited()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::TooManyFromAddress);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::ServerFull);
        assert_eq!(limits.connections(), 3);
        drop(a1);
        assert_eq!(limits.connections(), 2);
        let _b2 = limits.admit(b).unwrap();
    }

    #[test]
    fn sweep_forgets_idle_addresses_only() {
        let limits = Limits::new(LimitSettings::unlimited());
        let kept = limits.admit("10.0.0.1".parse().unwrap()).unwrap();
        drop(limits.admit("10.0.0.2".parse().unwrap()).unwrap());
        assert_eq!(limits.tracked_addresses(), 2);
        limits.sweep();
        assert_eq!(limits.tracked_addresses(), 1);
        assert_eq!(kept.ip(), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn address_buckets_are_shared_by_its_connections() {
        let limits = Limits::new(LimitSettings {
            ip_new_conversations: Rate::per_min(1.0, 2.0),
            ..LimitSettings::unlimited()
        });
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let (c1, c2) = (limits.admit(ip).unwrap(), limits.admit(ip).unwrap());
        assert_eq!(c1.new_conversation(), Verdict::Allow);
        assert_eq!(c2.new_conversation(), Verdict::Allow);
        assert!(matches!(c1.new_conversation(), Verdict::Limited(_)));
        let other = limits.admit("10.0.0.10".parse().unwrap()).unwrap();
        assert_eq!(other.new_conversation(), Verdict::Allow);
    }
}
