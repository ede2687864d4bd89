//! The few REST calls the harness makes before the load starts: log in,
//! create agents. A deliberately small HTTP/1.1 client (one request per
//! connection, `Connection: close`) over a loopback socket: pulling in a full
//! HTTP client for four calls would cost more build time than it saves.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a REST call may take (agent creation hashes a password).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response the harness reads.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// A REST client for the server at `addr`.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub addr: SocketAddr,
}

impl Api {
    /// `POST /api/login` → the bearer token.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let body = json!({ "email": email, "password": password });
        let v = self.call("POST", "/api/login", None, Some(&body)).await?;
        v["token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("login answer has no token: {v}"))
    }

    /// `POST /api/agents` (admin) → the new agent's view.
    pub async fn create_agent(
        &self,
        admin_token: &str,
        email: &str,
        password: &str,
        capacity: u32,
    ) -> anyhow::Result<Value> {
        let name = email.split('@').next().unwrap_or(email);
        let body = json!({ "email": email, "name": name, "password": password, "role": "agent", "capacity": capacity });
        self.call("POST", "/api/agents", Some(admin_token), Some(&body))
            .await
    }

    /// `GET /healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        self.call("GET", "/healthz", None, None).await.is_ok()
    }

    /// `GET /metrics` → the sum of the samples of metric `name` (see [`parse_metric`]).
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let (status, bytes) =
            tokio::time::timeout(CALL_TIMEOUT, self.exchange("GET", "/metrics", None, None))
                .await
                .context("GET /metrics: no answer in time")??;
        anyhow::ensure!((200..300).contains(&status), "GET /metrics: HTTP {status}");
        Ok(parse_metric(&String::from_utf8_lossy(&bytes), name))
    }

    /// One request; a non-2xx status is an error carrying the body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, bytes) =
            tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, bearer, body))
                .await
                .with_context(|| format!("{method} {path}: no answer within {CALL_TIMEOUT:?}"))??;
        let text = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            bail!("{method} {path}: HTTP {status}: {text}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: answer is not JSON: {text}"))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect to {}", self.addr))?;
        let request = format_request(method, path, &self.addr.to_string(), bearer, body);
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
        parse_response(&raw)
    }
}

fn format_request(
    method: &str,
    path: &str,
    host: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> String {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n");
    if let Some(token) = bearer {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req
}

/// Splits a complete HTTP/1.1 response into status and body (handles chunked bodies).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP response without end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("HTTP headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// The sum of every sample of `name` in a Prometheus text exposition,
/// accepting the `switchboard_` namespace and the `_total` suffix of counters
/// (`switchboard_slow_consumer_disconnects_total{…} 3`). `None` when absent.
pub fn parse_metric(text: &str, name: &str) -> Option<f64> {
    let counter = format!("{name}_total");
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.trim().rsplit_once(' ')?;
            let base = key.split('{').next()?;
            let named = [name, counter.as_str()].iter().any(|n| {
                base.strip_suffix(n)
                    .is_some_and(|prefix| prefix.is_empty() || prefix == "switchboard_")
            });
            named.then(|| value.parse::<f64>().ok()).flatten()
        })
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..eol])?
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(rest.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_responses() {
        let (s, b) =
            parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (201, b"{}".as_slice()));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        let (s, b) = parse_response(raw).unwrap();
        assert_eq!((s, b.as_slice()), (200, b"{\"a\":1}".as_slice()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn metrics_are_found_by_name() {
        let text = "# HELP slow_consumer_disconnects Sessions cut off\n\
            # TYPE slow_consumer_disconnects counter\n\
            switchboard_slow_consumer_disconnects_total 3\n\
            not_slow_consumer_disconnects_total 100\n\
            connections{role=\"visitor\"} 10\n\
            connections{role=\"agent\"} 2\n\
            # EOF\n";
        assert_eq!(parse_metric(text, "slow_consumer_disconnects"), Some(3.0));
        assert_eq!(parse_metric(text, "connections"), Some(12.0));
        assert_eq!(parse_metric(text, "messages_in"), None);
    }

    #[test]
    fn requests_carry_length_and_token() {
        let r = format_request(
            "POST",
            "/api/login",
            "127.0.0.1:1",
            Some("t0k"),
            Some(&json!({"a": 1})),
        );
        assert!(r.starts_with("POST /api/login HTTP/1.1\r\n"));
        assert!(r.contains("Authorization: Bearer t0k\r\n"));
        assert!(r.contains("Content-Length: 7\r\n"));
        assert!(r.ends_with("\r\n\r\n{\"a\":1}"));
        let r = format_request("GET", "/healthz", "h", None, None);
        assert!(!r.contains("Content-Length"));
    }
}
