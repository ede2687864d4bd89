//! Where the harness connects: a `ws://` URL on a loopback address.
//!
//! Load is only ever sent to this machine: any host that is not a loopback
//! address (127.0.0.0/8, ::1, `localhost`) is refused before a single packet
//! goes out.

use anyhow::{bail, Context};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A checked target: the WebSocket URL and the socket address it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL sent in the WebSocket handshake.
    pub url: String,
    /// The loopback address and port to connect to (also serves the REST API).
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `ws://HOST[:PORT][/PATH]`; refuses `wss://` and non-loopback hosts.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("ws") => {}
            Some(other) => bail!("{url:?}: only ws:// targets are supported, not {other}://"),
            None => bail!("{url:?}: the target must start with ws://"),
        }
        let host = uri.host().context("the target has no host")?;
        let ip = loopback_ip(host)?;
        let port = uri.port_u16().unwrap_or(80);
        Ok(Target {
            url: url.to_string(),
            addr: SocketAddr::new(ip, port),
        })
    }

    /// The target of a server listening on `addr` (used by `--spawn`).
    pub fn from_addr(addr: SocketAddr) -> anyhow::Result<Target> {
        let host = match addr.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Target::parse(&format!("ws://{host}:{}/ws", addr.port()))
    }
}

/// The loopback address `host` names, or an error if it names anything else.
pub fn loopback_ip(host: &str) -> anyhow::Result<IpAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if bare.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bare.parse::<IpAddr>()
            .with_context(|| format!("{host:?}: give a loopback IP address or localhost"))?
    };
    if !ip.is_loopback() {
        bail!("{host}: refusing a non-loopback target; load goes to this machine only");
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        let t = Target::parse("ws://127.0.0.1:9000/ws").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        let t = Target::parse("ws://localhost/ws").unwrap();
        assert_eq!(t.addr, "127.0.0.1:80".parse().unwrap());
        let t = Target::parse("ws://[::1]:81/ws").unwrap();
        assert_eq!(t.addr, "[::1]:81".parse().unwrap());
        let t = Target::parse("ws://127.3.4.5:1/ws").unwrap();
        assert_eq!(t.addr.port(), 1);
        let t = Target::from_addr("127.0.0.1:4242".parse().unwrap()).unwrap();
        assert_eq!(t.url, "ws://127.0.0.1:4242/ws");
    }

    #[test]
    fn anything_else_is_refused() {
        for url in [
            "ws://10.0.0.1:80/ws",
            "ws://192.168.1.2/ws",
            "ws://8.8.8.8/ws",
            "ws://example.com/ws",
            "wss://127.0.0.1/ws",
            "http://127.0.0.1/ws",
            "127.0.0.1:80",
        ] {
            assert!(Target::parse(url).is_err(), "{url} was accepted");
        }
    }
}
