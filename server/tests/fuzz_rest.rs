//! Fuzzing the real server's inputs from outside: random and malformed
//! requests to every REST endpoint, and random frames on a WebSocket next to
//! a well-behaved pair of clients.
//!
//! REST: every answer is a complete HTTP response (never a dropped
//! connection, never a hang), never a 5xx, and every 4xx is the documented
//! JSON error (`{"error": {"code", "message"}}`, status matching the code,
//! docs/api.md). `/healthz` still answers afterwards.
//! WebSocket: every frame the server cannot use is answered with a typed
//! `error` or a close code, and the pair's messages keep flowing.
//!
//! Inputs come from proptest strategies driven by a fixed seed, so a failure
//! reproduces; the failing request is printed in full.

mod common;

use common::{Client, TestServer};
use futures::{SinkExt, StreamExt};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchboard_protocol::codec::Wire;
use switchboard_protocol::{close, ClientMessage, Encoding, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Random REST requests per run (plus the fixed hostile ones).
const REST_CASES: usize = 1200;
/// Random WebSocket frames per encoding.
const WS_FRAMES: usize = 300;
/// A request or a WebSocket answer that takes longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);

// ---- a raw HTTP client that reports what the common one would panic on ----

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    target: String,
    auth: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(300).collect();
        write!(
            f,
            "{} {} auth={:?} type={:?} body[{}]={shown:?}",
            self.method,
            self.target,
            self.auth,
            self.content_type,
            self.body.len()
        )
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn send_raw(addr: SocketAddr, r: &Request) -> Result<Reply, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.method,
        r.target,
        r.body.len()
    );
    if let Some(a) = &r.auth {
        head += &format!("Authorization: {a}\r\n");
    }
    if let Some(t) = r.content_type {
        head += &format!("Content-Type: {t}\r\n");
    }
    head += "\r\n";
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&r.body);
    // The server may answer (e.g. 400, body too big) before reading all of it.
    let _ = s.write_all(&raw).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(HANG, s.read_to_end(&mut got)).await;
    match read {
        Err(_) => return Err("no answer in time (hang)".into()),
        Ok(Err(e)) if got.is_empty() => return Err(format!("connection dropped: {e}")),
        Ok(_) => {}
    }
    parse_reply(&got)
}

fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete response: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        if body.len() != len {
            return Err(format!("body cut short: {} of {len} bytes", body.len()));
        }
    }
    Ok(Reply {
        status,
        content_type: header("content-type").unwrap_or_default(),
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked body cut short")?;
        let size = std::str::from_utf8(&raw[..line_end])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
            .ok_or("bad chunk size")?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Whether `status` is a documented status of error `code` (docs/api.md).
fn status_fits(code: &str, status: u16) -> bool {
    match (code, status) {
        ("bad_request", 405) | ("too_large", 413) => true,
        _ => status_of(code) == Some(status),
    }
}

fn status_of(code: &str) -> Option<u16> {
    Some(match code {
        "bad_request" | "unknown_type" | "too_large" => 400,
        "unauthorized" => 401,
        "forbidden" => 403,
        "not_found" => 404,
        "invalid_state" | "conflict" => 409,
        "rate_limited" => 429,
        "store_unavailable" | "overloaded" => 503,
        "internal" => 500,
        _ => return None,
    })
}

/// The REST contract for one answer.
fn check_reply(req: &Request, reply: &Reply) -> Result<(), String> {
    if reply.status >= 500 {
        return Err(format!(
            "{} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    if reply.status < 400 {
        // Successes are JSON too (or empty, for 204); /metrics is Prometheus text.
        let json_or_empty = reply.body.is_empty()
            || serde_json::from_slice::<Value>(&reply.body).is_ok()
            || req.target.starts_with("/metrics");
        return if json_or_empty {
            Ok(())
        } else {
            Err(format!("{} with a non-JSON body", reply.status))
        };
    }
    let body: Value = serde_json::from_slice(&reply.body).map_err(|_| {
        format!(
            "{} is not JSON ({}): {:?}",
            reply.status,
            reply.content_type,
            String::from_utf8_lossy(&reply.body)
        )
    })?;
    if !reply.content_type.starts_with("application/json") {
        return Err(format!(
            "{} with content-type {}",
            reply.status, reply.content_type
        ));
    }
    let error = body.get("error").and_then(Value::as_object);
    let shape_ok = body.as_object().is_some_and(|o| o.len() == 1)
        && error.is_some_and(|e| {
            e.len() == 2
                && e.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| !m.is_empty())
        });
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !shape_ok || !status_fits(code, reply.status) {
        return Err(format!("{} with body {body}", reply.status));
    }
    Ok(())
}

// ---- what to send ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Auth {
    Public,
    Agent,
    Admin,
}

/// Every route in http/mod.rs with the documented method, and who may call it.
/// `/api/logout` is fuzzed apart (it revokes the token it is given).
const ROUTES: &[(&str, &str, Auth)] = &[
    ("POST", "/api/login", Auth::Public),
    ("GET", "/api/me", Auth::Agent),
    ("GET", "/api/customers", Auth::Agent),
    ("POST", "/api/customers", Auth::Agent),
    ("GET", "/api/customers/{id}", Auth::Agent),
    ("PATCH", "/api/customers/{id}", Auth::Agent),
    ("DELETE", "/api/customers/{id}", Auth::Agent),
    ("GET", "/api/conversations", Auth::Agent),
    ("GET", "/api/conversations/{id}", Auth::Agent),
    ("GET", "/api/agents", Auth::Admin),
    ("POST", "/api/agents", Auth::Admin),
    ("PATCH", "/api/agents/{id}", Auth::Admin),
    ("DELETE", "/api/agents/{id}", Auth::Admin),
    ("GET", "/api/stats", Auth::Agent),
    ("GET", "/api/nlp/knowledge", Auth::Agent),
    ("PUT", "/api/nlp/knowledge", Auth::Admin),
    ("POST", "/api/nlp/model", Auth::Admin),
    ("POST", "/api/nlp/analyze", Auth::Agent),
    ("GET", "/healthz", Auth::Public),
    ("GET", "/metrics", Auth::Public),
    ("GET", "/ws", Auth::Public),
];

/// Routes with a method they do not have (405, with `Allow`).
const WRONG_METHODS: &[(&str, &str)] = &[
    ("PUT", "/api/customers"),
    ("DELETE", "/api/agents"),
    ("POST", "/healthz"),
    ("PATCH", "/api/stats"),
    ("OPTIONS", "/api/me"),
    ("POST", "/api/customers/{id}"),
    ("GET", "/api/nlp/model"),
];

/// The fields each body-taking route knows, plus a few it does not.
const FIELDS: &[&str] = &[
    "email",
    "password",
    "name",
    "phone",
    "company",
    "country",
    "attributes",
    "tags",
    "id",
    "external_id",
    "role",
    "capacity",
    "disabled",
    "text",
    "path",
    "offer_human",
    "intents",
    "en",
    "zh",
    "team",
    "shoe_size",
    "",
    "__proto__",
];

const QUERY_KEYS: &[&str] = &[
    "q",
    "country",
    "tag",
    "limit",
    "cursor",
    "status",
    "agent_id",
    "customer_id",
    "before",
    "after",
    "x",
];

/// Numbers JSON allows but no field can hold, and ones that just fit.
const ODD_NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "9007199254740993",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "0.5",
    "-1",
    "0",
    "1e2",
    "123456789012345678901234567890",
];

/// Things that are not a u64 id (and a few that are), already URL-safe.
const ODD_IDS: &[&str] = &[
    "0",
    "-1",
    "abc",
    "18446744073709551615",
    "18446744073709551616",
    "1.5",
    "1e3",
    "%ff",
    "%00",
    "%20",
    "1%2F2",
    "0x10",
    "+1",
    "99999999999999999999999999999999999999999",
    "%F0%9F%98%80",
];

const ODD_QUERY_VALUES: &[&str] = &[
    "",
    "-1",
    "0",
    "18446744073709551616",
    "abc",
    "%ff",
    "%00",
    "%zz",
    "%",
    "bot",
    "queued",
    "assigned",
    "closed",
    "nope",
    "1.5",
    "%E2%82%AC",
];

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A JSON value as text (so it can hold numbers serde_json would not write).
fn json_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|n| n.to_string()),
        prop::sample::select(ODD_NUMBERS).prop_map(str::to_string),
        any::<String>().prop_map(|s| quoted(&s)),
        "[a-z0-9@.+ -]{0,24}".prop_map(|s| quoted(&s)),
        Just(quoted("admin@localhost")),
        Just(quoted("admin")),
        Just(quoted("agent")),
        (513usize..70_000).prop_map(|n| quoted(&"é".repeat(n / 2))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|kv| {
                let fields: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", quoted(k)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
    .boxed()
}

/// An object of known (and unknown) fields with random values.
fn object_body() -> impl Strategy<Value = String> {
    vec((prop::sample::select(FIELDS), json_value()), 0..7).prop_map(|kv| {
        let fields: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{}:{v}", quoted(k)))
            .collect();
        format!("{{{}}}", fields.join(","))
    })
}

/// Bodies a careless or hostile client sends.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => object_body().prop_map(String::into_bytes),
        2 => json_value().prop_map(String::into_bytes),
        // A valid-looking object cut anywhere.
        2 => (object_body(), any::<prop::sample::Index>()).prop_map(|(b, i)| {
            let cut = i.index(b.len() + 1);
            b.as_bytes()[..cut].to_vec()
        }),
        // Invalid UTF-8 inside a string, at the top level, or alone.
        1 => (prop::sample::select(FIELDS), vec(128u8..=255, 1..8)).prop_map(|(k, bad)| {
            let mut b = format!("{{{}:\"", quoted(k)).into_bytes();
            b.extend_from_slice(&bad);
            b.extend_from_slice(b"\"}");
            b
        }),
        1 => vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        1 => prop::sample::select(vec![
            "[".repeat(100_000),
            "{\"name\":".repeat(20_000),
            format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
            format!("{{\"attributes\":{}}}", "{\"a\":".repeat(10_000)),
            "{\"text\":\"\\ud800\"}".to_string(),
            "{\"name\":\"a\",\"name\":\"b\"}".to_string(),
            "\u{feff}{}".to_string(),
            "{} {}".to_string(),
        ])
        .prop_map(String::into_bytes),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        6 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(None),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/x-www-form-urlencoded")),
        1 => Just(Some("application/json; charset=latin1")),
        1 => Just(Some("")),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        prop::sample::select(ODD_QUERY_VALUES).prop_map(str::to_string),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<String>().prop_map(|s| percent_encode(s.as_bytes())),
        (1000usize..20_000).prop_map(|n| "a".repeat(n)),
    ];
    vec((prop::sample::select(QUERY_KEYS), value), 0..4).prop_map(|kv| {
        if kv.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("?{}", pairs.join("&"))
    })
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (*b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The valid credentials and ids the random requests pick from.
struct World {
    agent_token: String,
    admin_token: String,
    /// Ids that exist (customers, a conversation, a sacrificial agent) and some that do not.
    ids: Vec<String>,
    /// Agent ids the fuzzer may PATCH: never the admin or the agent whose token it uses.
    agent_ids: Vec<String>,
}

fn request(world: &World) -> impl Strategy<Value = Request> + '_ {
    let token = prop_oneof![
        1 => Just(None),
        1 => Just(Some("Bearer forged-token".to_string())),
        1 => Just(Some("Bearer ".to_string())),
        1 => Just(Some("Basic YWRtaW46YWRtaW4=".to_string())),
        1 => "[ -~]{0,40}".prop_map(|t| Some(format!("Bearer {t}"))),
        4 => Just(Some(format!("Bearer {}", world.agent_token))),
        6 => Just(Some(format!("Bearer {}", world.admin_token))),
    ];
    let id = prop_oneof![
        2 => prop::sample::select(world.ids.clone()),
        1 => prop::sample::select(ODD_IDS).prop_map(str::to_string),
        1 => any::<u64>().prop_map(|n| n.to_string()),
    ];
    let agent_id = prop_oneof![
        2 => prop::sample::select(world.agent_ids.clone()),
        1 => prop::sample::select(ODD_IDS).prop_map(str::to_string),
    ];
    (
        prop::sample::select(ROUTES),
        token,
        id,
        agent_id,
        query(),
        body(),
        content_type(),
    )
        .prop_map(
            |((method, path, _), auth, id, agent_id, query, body, content_type)| {
                let id = if path.starts_with("/api/agents") {
                    agent_id
                } else {
                    id
                };
                let body = if method == "GET" || method == "DELETE" {
                    Vec::new()
                } else {
                    body
                };
                Request {
                    method,
                    target: format!("{}{query}", path.replace("{id}", &id)),
                    auth,
                    content_type,
                    body,
                }
            },
        )
}

async fn setup(s: &TestServer) -> World {
    let admin_token = s.admin_token().await;
    let (_, agent_token) = s.agent_account("ann@shop.test", 5).await;
    let (sam, _) = s.agent_account("sam@shop.test", 5).await;
    let mut ids = Vec::new();
    for name in ["Ada", "Grace", "Edsger"] {
        let (st, c) = s
            .http(
                "POST",
                "/api/customers",
                Some(&admin_token),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(st, 201, "{c}");
        ids.push(c["id"].to_string());
    }
    // A conversation with a message, so conversation ids exist.
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("c1", None, "hello").await;
    ids.push(conv.0.to_string());
    ids.push("999999".into());
    World {
        agent_token,
        admin_token,
        ids,
        agent_ids: vec![sam.to_string(), "999999".into()],
    }
}

/// Sends `req` and checks the answer; returns a description of the failure.
async fn probe(addr: SocketAddr, req: &Request) -> Result<u16, String> {
    let reply = send_raw(addr, req).await?;
    check_reply(req, &reply)?;
    Ok(reply.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rest_requests_get_documented_json_errors() {
    let s = TestServer::start().await;
    let world = setup(&s).await;
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut note = |req: &Request, r: Result<u16, String>| match r {
        Ok(st) => *statuses.entry(st).or_default() += 1,
        Err(e) => failures.push(format!("{req}\n  -> {e}")),
    };

    // Fixed hostile cases first: every route with each of them.
    for &(method, path, _) in ROUTES {
        for (body, ct) in fixed_bodies() {
            for auth in [None, Some(format!("Bearer {}", world.admin_token))] {
                let req = Request {
                    method,
                    target: fixed_target(path, &world),
                    auth,
                    content_type: ct,
                    body: body.clone(),
                };
                note(&req, probe(s.addr, &req).await);
            }
        }
    }

    // Methods a route does not have.
    for (method, path) in WRONG_METHODS {
        let req = Request {
            method,
            target: fixed_target(path, &world),
            auth: Some(format!("Bearer {}", world.admin_token)),
            content_type: Some("application/json"),
            body: b"{}".to_vec(),
        };
        note(&req, probe(s.addr, &req).await);
    }

    let mut runner = TestRunner::deterministic();
    let strategy = request(&world);
    for _ in 0..REST_CASES {
        let req = strategy.new_tree(&mut runner).unwrap().current();
        note(&req, probe(s.addr, &req).await);
    }
    logout_with_junk(&s, &mut note).await;

    let (st, body) = s.http("GET", "/healthz", None, None).await;
    assert_eq!((st, &body["status"]), (200, &json!("ok")));
    eprintln!(
        "{} REST requests in {:.1?}, statuses {statuses:?}",
        statuses.values().sum::<usize>() + failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} requests broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
    s.stop().await;
}

/// A route's path with an id that exists (a customer), or none for agents.
fn fixed_target(path: &str, world: &World) -> String {
    if path.starts_with("/api/agents/") {
        path.replace("{id}", "999999")
    } else {
        path.replace("{id}", &world.ids[0])
    }
}

/// Requests that are not valid HTTP/1.1 never reach the router: hyper answers
/// them with a bare 4xx (no JSON: there is no route yet). They must still get
/// an answer, not a dropped connection, and the server must carry on.
#[tokio::test]
async fn malformed_http_is_answered_with_a_4xx() {
    let s = TestServer::start().await;
    let addr = s.addr;
    let long_uri = format!(
        "GET /api/me?x={} HTTP/1.1\r\nHost: h\r\n\r\n",
        "a".repeat(70_000)
    );
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let many_headers: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<Vec<u8>> = vec![
        b"GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Type: \x01\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n".to_vec(),
        b"G\x00T /healthz HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
        b"GET /health\xffz HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/9.9\r\nHost: h\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"
            .to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
            .to_vec(),
        b"POST /api/login HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        long_uri.into_bytes(),
        huge_header.into_bytes(),
        format!("GET /healthz HTTP/1.1\r\nHost: h\r\n{many_headers}\r\n").into_bytes(),
    ];
    for raw in &cases {
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(80)]).to_string();
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let _ = sock.write_all(raw).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(HANG, sock.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "{shown:?}: no answer in time");
        let reply = parse_reply(&got).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert!(
            (400..500).contains(&reply.status),
            "{shown:?}: {}",
            reply.status
        );
    }
    let (st, _) = s.http("GET", "/healthz", None, None).await;
    assert_eq!(st, 200);
    s.stop().await;
}

/// The same hostile bodies for every route.
fn fixed_bodies() -> Vec<(Vec<u8>, Option<&'static str>)> {
    let json = Some("application/json");
    vec![
        (b"[".repeat(100_000), json),
        (b"{\"a\":".repeat(50_000), json),
        (vec![0xff, 0xfe, 0xfd], json),
        (b"{\"name\":\"\xc3\x28\"}".to_vec(), json),
        (
            format!("{{\"name\":{}}}", quoted(&"x".repeat(3 << 20))).into_bytes(),
            json,
        ),
        (
            b"{\"capacity\":18446744073709551616,\"limit\":1e400}".to_vec(),
            json,
        ),
        (b"{}".to_vec(), None),
        (b"null".to_vec(), json),
    ]
}

/// `/api/logout` with junk bodies, each with a token of its own (it is revoked).
async fn logout_with_junk(s: &TestServer, note: &mut impl FnMut(&Request, Result<u16, String>)) {
    // An account of its own: the random requests may have changed or deleted the others.
    s.agent_account("lou@shop.test", 5).await;
    for (i, (body, ct)) in fixed_bodies().into_iter().take(4).enumerate() {
        let token = s.login("lou@shop.test", "password-1").await;
        for auth in [
            Some(format!("Bearer {token}")),
            Some("Bearer forged".into()),
            None,
        ] {
            let req = Request {
                method: "POST",
                target: format!("/api/logout?n={i}"),
                auth,
                content_type: ct,
                body: body.clone(),
            };
            note(&req, probe(s.addr, &req).await);
        }
    }
}

// ---- the WebSocket ----

/// A frame the server cannot use, on a connection of `enc`.
fn bad_frame(enc: Encoding) -> impl Strategy<Value = Ws> {
    let text = prop_oneof![
        any::<String>(),
        "[{}\\[\\]\":,a-z0-9 ]{0,40}",
        prop::sample::select(ClientMessage::TYPES).prop_map(|t| format!("{{\"type\":\"{t}\"}}")),
        "[a-z_]{1,12}".prop_map(|t| format!("{{\"type\":\"{t}\",\"conversation_id\":1}}")),
        prop::sample::select(ODD_NUMBERS)
            .prop_map(|n| format!("{{\"type\":\"read\",\"conversation_id\":{n},\"seq\":{n}}}")),
        Just("[".repeat(60_000)),
        Just(format!(
            "{{\"type\":\"send\",\"client_id\":\"x\",\"text\":{}}}",
            "[".repeat(20_000)
        )),
    ];
    let binary = prop_oneof![
        vec(any::<u8>(), 0..64),
        (0u8..20, vec(any::<u8>(), 0..32)).prop_map(|(tag, p)| {
            let mut f = vec![switchboard_protocol::codec::WIRE_FORMAT, tag];
            f.extend(p);
            f
        }),
    ];
    let usable = move |m: &Ws| match m {
        Ws::Text(t) => enc.decode_text::<ClientMessage>(t.as_str()).is_err(),
        Ws::Binary(b) => enc.decode_binary::<ClientMessage>(b).is_err(),
        _ => true,
    };
    prop_oneof![text.prop_map(Ws::text), binary.prop_map(Ws::binary),]
        .prop_filter("the server could decode it", usable)
}

/// What the server did with one bad frame.
enum Answer {
    Error,
    Closed(u16),
}

/// Reads until the `error` for the frame just sent, or a close.
async fn answer(c: &mut Client) -> Result<Answer, String> {
    loop {
        let next = tokio::time::timeout(HANG, c.ws.next())
            .await
            .map_err(|_| "no answer in time (hang)".to_string())?;
        let frame = match next {
            None => return Err("connection dropped without a close".into()),
            Some(Err(e)) => return Err(format!("connection broke: {e}")),
            Some(Ok(f)) => f,
        };
        let msg = match frame {
            Ws::Close(Some(f)) => return Ok(Answer::Closed(u16::from(f.code))),
            Ws::Close(None) => return Err("close without a code".into()),
            Ws::Text(t) => c.enc.decode_text::<ServerMessage>(t.as_str()),
            Ws::Binary(b) => c.enc.decode_binary::<ServerMessage>(&b),
            _ => continue,
        };
        match msg {
            Ok(ServerMessage::Error(e)) if !e.message.is_empty() => return Ok(Answer::Error),
            Ok(ServerMessage::Error(e)) => return Err(format!("error without a message: {e:?}")),
            // Anything else is traffic of its own (e.g. a conversation event): skip it.
            Ok(_) => continue,
            Err(e) => return Err(format!("undecodable frame from the server: {e}")),
        }
    }
}

fn seeded(seed: u8) -> TestRunner {
    TestRunner::new_with_rng(
        Default::default(),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &[seed; 32],
        ),
    )
}

async fn fuzz_socket(s: &TestServer, enc: Encoding, seed: u8) -> Result<(usize, usize), String> {
    let mut runner = seeded(seed);
    let strategy = bad_frame(enc);
    let (mut c, _) = Client::visitor(&s.ws_url(), enc, None, vec![]).await;
    let (mut errors, mut closes) = (0, 0);
    for _ in 0..WS_FRAMES {
        let frame = strategy.new_tree(&mut runner).unwrap().current();
        let shown = format!("{frame:?}").chars().take(200).collect::<String>();
        c.ws.send(frame)
            .await
            .map_err(|e| format!("send {shown}: {e}"))?;
        match answer(&mut c)
            .await
            .map_err(|e| format!("after {shown}: {e}"))?
        {
            Answer::Error => errors += 1,
            Answer::Closed(code) => {
                closes += 1;
                if code == close::INTERNAL_ERROR {
                    return Err(format!("{shown} closed the session with 1011"));
                }
                c = Client::visitor(&s.ws_url(), enc, None, vec![]).await.0;
            }
        }
    }
    Ok((errors, closes))
}

/// A first message that is not a hello ends the connection with 4500.
async fn bad_hellos(s: &TestServer) {
    let mut runner = seeded(3);
    for enc in [Encoding::Json, Encoding::Bincode] {
        let strategy = bad_frame(enc);
        for _ in 0..20 {
            let frame = strategy.new_tree(&mut runner).unwrap().current();
            let shown = format!("{frame:?}").chars().take(200).collect::<String>();
            let mut c = Client::connect(&s.ws_url(), enc).await;
            c.ws.send(frame).await.unwrap();
            assert_eq!(c.closed().await, close::BAD_HELLO, "{shown}");
        }
    }
}

/// The ends of a connection that RFC 6455 fixes: the close handshake,
/// invalid UTF-8 (1007), a frame over the limit (1009), a broken frame (1002).
async fn protocol_edges(s: &TestServer) {
    // The client closes: the server answers with a Close (and then ends).
    let (mut c, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    c.ws.send(Ws::Close(None)).await.unwrap();
    let reply = tokio::time::timeout(HANG, c.ws.next())
        .await
        .expect("close reply in time");
    assert!(
        matches!(reply, Some(Ok(Ws::Close(_)))),
        "expected a Close reply, got {reply:?}"
    );

    let raw = |data: Data, payload: &[u8]| {
        Ws::Frame(Frame::message(payload.to_vec(), OpCode::Data(data), true))
    };
    for (frame, want) in [
        (raw(Data::Text, &[0xff, 0xfe]), close::INVALID_PAYLOAD),
        (raw(Data::Text, &[b'{', 0xc0, 0xaf]), close::INVALID_PAYLOAD),
        (
            Ws::binary(vec![0u8; (64 << 10) + 1]),
            close::MESSAGE_TOO_BIG,
        ),
        (raw(Data::Reserved(3), b"?"), close::PROTOCOL_ERROR),
        (raw(Data::Continue, b"no start"), close::PROTOCOL_ERROR),
    ] {
        let (mut c, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
        let shown = format!("{frame:?}").chars().take(80).collect::<String>();
        let _ = c.ws.send(frame).await;
        assert_eq!(c.closed().await, want, "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_get_typed_answers_and_the_pair_is_unaffected() {
    let s = TestServer::start().await;
    let mut pair = s.pair("first").await;
    let started = Instant::now();

    let fuzz = async {
        let json = fuzz_socket(&s, Encoding::Json, 1).await;
        let bincode = fuzz_socket(&s, Encoding::Bincode, 2).await;
        protocol_edges(&s).await;
        bad_hellos(&s).await;
        (json, bincode)
    };
    // Meanwhile the well-behaved pair keeps talking, both ways.
    let talk = async {
        for i in 0..20 {
            let text = format!("visitor line {i}");
            pair.visitor
                .say(&format!("v{i}"), Some(pair.conv), &text)
                .await;
            pair.agent.message(&text).await;
            let text = format!("agent line {i}");
            pair.agent
                .say(&format!("a{i}"), Some(pair.conv), &text)
                .await;
            pair.visitor.message(&text).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let ((json, bincode), ()) = tokio::join!(fuzz, talk);
    let (json, bincode) = (json.unwrap(), bincode.unwrap());
    eprintln!(
        "WebSocket fuzz in {:.1?}: JSON {} errors / {} closes, bincode {} errors / {} closes",
        started.elapsed(),
        json.0,
        json.1,
        bincode.0,
        bincode.1
    );
    // And after it all, still.
    pair.visitor
        .say("last", Some(pair.conv), "still here")
        .await;
    pair.agent.message("still here").await;
    let (st, _) = s.http("GET", "/healthz", None, None).await;
    assert_eq!(st, 200);
    s.stop().await;
}
