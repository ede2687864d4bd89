//! Login throttling: failed logins are counted per email and per client
//! address, each in a token bucket that holds `failures` tokens and refills
//! them over `window`. An attempt takes a token from both buckets *before*
//! the password is checked, so guesses over the limit (concurrent ones too)
//! are refused without any argon2 work; a successful login gives its tokens
//! back, so only failures count.
//!
//! Emails are kept as their SHA-256 (bounded size, no addresses in memory);
//! IPv6 clients are counted per /64, the block one subscriber usually holds.
//! Buckets that have refilled are forgotten by a sweep every minute.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often buckets that have refilled are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Failed logins allowed per email and per address, each refilling over `window`.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoginLimits {
    /// Failures per email (0: no limit).
    pub(super) per_email: u32,
    /// Failures per client address (0: no limit).
    pub(super) per_address: u32,
    pub(super) window: Duration,
}

impl LoginLimits {
    pub(super) fn from_config(c: &crate::config::Config) -> LoginLimits {
        LoginLimits {
            per_email: c.login_failures_per_email,
            per_address: c.login_failures_per_ip,
            window: Duration::from_secs(c.login_window_secs.max(1)),
        }
    }
}

/// Both sets of buckets.
pub(super) struct LoginThrottle {
    emails: Buckets<[u8; 32]>,
    addresses: Buckets<IpAddr>,
}

/// A login under way. Dropped without [`Attempt::succeeded`], it stays a failure.
pub(super) struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    email: [u8; 32],
    address: Option<IpAddr>,
}

impl Attempt<'_> {
    /// The password was right: the attempt gives its tokens back.
    pub(super) fn succeeded(self) {
        self.throttle.emails.give_back(&self.email);
        if let Some(a) = &self.address {
            self.throttle.addresses.give_back(a);
        }
    }
}

impl LoginThrottle {
    pub(super) fn new(limits: LoginLimits) -> LoginThrottle {
        LoginThrottle {
            emails: Buckets::new(limits.per_email, limits.window),
            addresses: Buckets::new(limits.per_address, limits.window),
        }
    }

    /// Charges an attempt for `email` from `address`, or says how long to
    /// wait. A refused attempt is not charged: waiting as told always works.
    pub(super) fn begin(
        &self,
        email: &str,
        address: Option<IpAddr>,
    ) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let email = email_key(email);
        let address = address.map(address_key);
        if let Some(a) = &address {
            self.addresses.take(a, now)?;
        }
        if let Err(wait) = self.emails.take(&email, now) {
            if let Some(a) = &address {
                self.addresses.give_back(a);
            }
            return Err(wait);
        }
        Ok(Attempt {
            throttle: self,
            email,
            address,
        })
    }
}

fn email_key(email: &str) -> [u8; 32] {
    Sha256::digest(email.trim().to_lowercase().as_bytes()).into()
}

/// An IPv4 address as it is; an IPv6 address by its /64 (an IPv4-mapped one as IPv4).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Token buckets by key: up to `capacity` tokens, `capacity` more per `window`.
struct Buckets<K> {
    capacity: f64,
    per_sec: f64,
    state: Mutex<State<K>>,
}

struct State<K> {
    buckets: HashMap<K, Bucket>,
    swept: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(capacity: u32, window: Duration) -> Buckets<K> {
        let capacity = f64::from(capacity);
        Buckets {
            capacity,
            per_sec: capacity / window.as_secs_f64(),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    fn unlimited(&self) -> bool {
        self.capacity <= 0.0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // Every change is one field write: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let gained = now.saturating_duration_since(b.at).as_secs_f64() * self.per_sec;
        b.tokens = (b.tokens + gained).min(self.capacity);
        b.at = now;
    }

    /// Takes a token, or returns the time until there is one (charging nothing).
    fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.unlimited() {
            return Ok(());
        }
        let mut state = self.state();
        if now.saturating_duration_since(state.swept) >= SWEEP_EVERY {
            self.sweep(&mut state, now);
        }
        let capacity = self.capacity;
        let b = state.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let mut bucket = *b;
        self.refill(&mut bucket, now);
        let verdict = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        };
        *b = bucket;
        verdict
    }

    fn give_back(&self, key: &K) {
        if self.unlimited() {
            return;
        }
        if let Some(b) = self.state().buckets.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(self.capacity);
        }
    }

    /// Forgets full buckets: a full bucket is the same as none.
    fn sweep(&self, state: &mut State<K>, now: Instant) {
        state.buckets.retain(|_, b| {
            self.refill(b, now);
            b.tokens < self.capacity
        });
        state.swept = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_email: u32, per_address: u32) -> LoginThrottle {
        LoginThrottle::new(LoginLimits {
            per_email,
            per_address,
            window: Duration::from_secs(300),
        })
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn failures_are_limited_per_email_successes_are_free() {
        let t = throttle(3, 100);
        for _ in 0..10 {
            t.begin("Ann@Shop.test", Some(HOME)).unwrap().succeeded();
        }
        for _ in 0..3 {
            assert!(t.begin("ann@shop.test ", Some(HOME)).is_ok());
        }
        let wait = t.begin("ann@shop.test", Some(HOME)).err().unwrap();
        // One failure refills every 100 s.
        assert!(wait > Duration::from_secs(95) && wait <= Duration::from_secs(100));
        // Another email, same address: fine.
        assert!(t.begin("bob@shop.test", Some(HOME)).is_ok());
    }

    #[test]
    fn failures_are_limited_per_address_and_refusals_cost_nothing() {
        let t = throttle(100, 2);
        assert!(t.begin("a@x", Some(HOME)).is_ok());
        assert!(t.begin("b@x", Some(HOME)).is_ok());
        assert!(t.begin("c@x", Some(HOME)).is_err());
        // The email of a refused attempt was not charged.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.begin("c@x", Some(other)).is_ok());
    }

    #[test]
    fn an_email_refusal_does_not_charge_the_address() {
        let t = throttle(1, 2);
        assert!(t.begin("a@x", Some(HOME)).is_ok());
        for _ in 0..5 {
            assert!(t.begin("a@x", Some(HOME)).is_err());
        }
        assert!(t.begin("b@x", Some(HOME)).is_ok());
        assert!(t.begin("c@x", Some(HOME)).is_err());
    }

    #[test]
    fn ipv6_is_counted_per_64_and_zero_means_unlimited() {
        let t = throttle(100, 1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.begin("a@x", Some(a)).is_ok());
        assert!(t.begin("b@x", Some(b)).is_err());
        assert!(t.begin("b@x", Some(c)).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), HOME);

        let open = throttle(0, 0);
        for _ in 0..100 {
            assert!(open.begin("a@x", Some(HOME)).is_ok());
        }
    }

    #[test]
    fn full_buckets_are_swept() {
        let b: Buckets<u8> = Buckets::new(2, Duration::from_secs(2));
        let t0 = Instant::now();
        b.take(&1, t0).unwrap();
        b.take(&2, t0).unwrap();
        b.take(&2, t0).unwrap();
        let mut state = b.state();
        // One token a second: after 1.5 s key 1 (one short) is full, key 2 (two short) is not.
        b.sweep(&mut state, t0 + Duration::from_millis(1500));
        assert_eq!(state.buckets.len(), 1);
        b.sweep(&mut state, t0 + Duration::from_secs(3));
        assert!(state.buckets.is_empty());
    }
}
