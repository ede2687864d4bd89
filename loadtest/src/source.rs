//! Source addresses (`--source-ips`): one process can hold more connections
//! to one server port than one address has ephemeral ports (~28k), so
//! connections are bound round-robin to several loopback addresses.

use anyhow::{bail, ensure, Context};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most addresses one `--source-ips` may list (a /16 of loopback).
const MAX_SOURCES: u32 = 65_536;

/// The addresses to bind outgoing connections to; empty means "let the kernel choose".
#[derive(Debug, Default)]
pub struct SourceIps {
    ips: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceIps {
    /// Parses `A-B` (an IPv4 range, both ends included), `A,B,C` or `A`; every
    /// address must be loopback.
    pub fn parse(spec: &str) -> anyhow::Result<SourceIps> {
        let mut ips = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((from, to)) => ips.extend(ipv4_range(from.trim(), to.trim())?),
                None => ips.push(
                    part.parse::<IpAddr>()
                        .with_context(|| format!("{part:?} is not an IP address"))?,
                ),
            }
        }
        ensure!(!ips.is_empty(), "--source-ips {spec:?} names no address");
        if let Some(ip) = ips.iter().find(|ip| !ip.is_loopback()) {
            bail!("--source-ips: {ip} is not a loopback address");
        }
        Ok(SourceIps {
            ips,
            next: AtomicUsize::new(0),
        })
    }

    /// The addresses, in order.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// The address for the next connection, round-robin (`None`: no binding).
    pub fn next(&self) -> Option<IpAddr> {
        if self.ips.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.ips[i % self.ips.len()])
    }
}

fn ipv4_range(from: &str, to: &str) -> anyhow::Result<Vec<IpAddr>> {
    let from: Ipv4Addr = from
        .parse()
        .with_context(|| format!("{from:?} is not an IPv4 address"))?;
    let to: Ipv4Addr = to
        .parse()
        .with_context(|| format!("{to:?} is not an IPv4 address"))?;
    let (a, b) = (u32::from(from), u32::from(to));
    ensure!(a <= b, "the range {from}-{to} runs backwards");
    ensure!(
        b - a < MAX_SOURCES,
        "the range {from}-{to} is larger than {MAX_SOURCES} addresses"
    );
    Ok((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_lists_and_singles() {
        let r = SourceIps::parse("127.0.0.2-127.0.0.9").unwrap();
        assert_eq!(r.ips().len(), 8);
        assert_eq!(r.ips()[0], v4("127.0.0.2"));
        assert_eq!(r.ips()[7], v4("127.0.0.9"));
        let r = SourceIps::parse("127.0.0.250-127.0.1.1").unwrap();
        assert_eq!(
            r.ips(),
            &[
                v4("127.0.0.250"),
                v4("127.0.0.251"),
                v4("127.0.0.252"),
                v4("127.0.0.253"),
                v4("127.0.0.254"),
                v4("127.0.0.255"),
                v4("127.0.1.0"),
                v4("127.0.1.1")
            ]
        );
        let r = SourceIps::parse("127.0.0.2, 127.0.0.5").unwrap();
        assert_eq!(r.ips(), &[v4("127.0.0.2"), v4("127.0.0.5")]);
        let r = SourceIps::parse("::1").unwrap();
        assert_eq!(r.ips(), &[v4("::1")]);
    }

    #[test]
    fn round_robin() {
        let r = SourceIps::parse("127.0.0.2-127.0.0.3").unwrap();
        let picks: Vec<_> = (0..5).map(|_| r.next().unwrap()).collect();
        assert_eq!(
            picks,
            [
                v4("127.0.0.2"),
                v4("127.0.0.3"),
                v4("127.0.0.2"),
                v4("127.0.0.3"),
                v4("127.0.0.2")
            ]
        );
        assert_eq!(SourceIps::default().next(), None);
    }

    #[test]
    fn bad_specs() {
        for spec in [
            "",
            "127.0.0.9-127.0.0.2",
            "10.0.0.1",
            "127.0.0.1-10.0.0.1",
            "127.0.0.1-127.1.0.1",
            "nope",
            "127.0.0.1-::1",
        ] {
            assert!(SourceIps::parse(spec).is_err(), "{spec:?} was accepted");
        }
    }
}
