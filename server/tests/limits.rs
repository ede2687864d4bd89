//! Abuse limits over real sockets: connections in all and per address,
//! message rates per connection and per address, new conversations per
//! address, the header and hello deadlines, the text length, and failed
//! logins per email and per address. Each test
//! checks that the offender gets a typed error or close code and that a
//! well-behaved client next to it notices nothing.

mod common;

use common::{config, http, Client, TestServer};
use std::time::{Duration, Instant};
use switchboard_protocol::client::SendMessage;
use switchboard_protocol::{close, ClientMessage, Encoding, ErrorCode, ServerMessage};
use switchboard_server::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(tune: impl FnOnce(&mut Config)) -> (TestServer, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let mut c = config(temp.path());
    tune(&mut c);
    (TestServer::start_with(c).await, temp)
}

fn send(client_id: &str, conv: Option<switchboard_protocol::ConversationId>) -> ClientMessage {
    ClientMessage::Send(SendMessage {
        client_id: client_id.into(),
        conversation_id: conv,
        text: format!("message {client_id}"),
    })
}

/// Sends without waiting, then collects the answer to each: Ok(seq) or Err(code).
async fn burst(c: &mut Client, prefix: &str, n: usize) -> Vec<Result<u64, ErrorCode>> {
    for i in 0..n {
        c.send(send(&format!("{prefix}{i}"), None)).await;
    }
    let mut out = vec![None; n];
    while out.iter().any(Option::is_none) {
        match c.recv().await {
            ServerMessage::Ack(a) => {
                let i: usize = a.client_id[prefix.len()..].parse().unwrap();
                out[i] = Some(Ok(a.seq));
            }
            ServerMessage::Error(e) => {
                let id = e.client_id.expect("a refused send names its client_id");
                let i: usize = id[prefix.len()..].parse().unwrap();
                out[i] = Some(Err(e.code));
            }
            _ => {}
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn connections_per_address_are_capped_with_4002_and_a_503() {
    let (s, _t) = start(|c| c.max_connections_per_ip = 3).await;
    let mut p = s.pair("hello").await; // two connections
    let (mut third, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    // A fourth socket from the same address is over: a WebSocket is closed with 4002 …
    let mut fourth = Client::connect(&s.ws_url(), Encoding::Json).await;
    assert_eq!(fourth.closed().await, close::TOO_MANY_CONNECTIONS);
    // … and plain HTTP gets a typed 503.
    let (status, body) = http(s.addr, "GET", "/healthz", None, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "overloaded");
    // Those already in notice nothing.
    p.visitor.say("v2", Some(p.conv), "still here").await;
    p.agent.message("still here").await;
    third.say("t1", None, "me too").await;
    // A freed slot is usable again.
    drop(third);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = http(s.addr, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn total_connections_are_capped() {
    let (s, _t) = start(|c| c.max_connections = 2).await;
    let (mut a, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (_b, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    assert_eq!(c.closed().await, close::TOO_MANY_CONNECTIONS);
    a.say("a1", None, "fine").await;
    s.stop().await;
}

#[tokio::test]
async fn a_fast_sender_is_refused_then_cut_off_while_its_neighbour_is_not() {
    let (s, _t) = start(|c| {
        c.messages_per_sec = 5.0;
        c.messages_burst = 5.0;
    })
    .await;
    let (mut fast, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (mut calm, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;

    // The burst goes through; what follows at once is refused with rate_limited and its client_id.
    let answers = burst(&mut fast, "f", 8).await;
    assert!(answers[..5].iter().all(Result::is_ok), "{answers:?}");
    assert!(
        answers[5..]
            .iter()
            .all(|a| *a == Err(ErrorCode::RateLimited)),
        "{answers:?}"
    );
    // Waiting as told makes a retry of the same client_id succeed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    fast.say("f5", None, "message f5").await;

    // The neighbour on the same address is not affected (per-connection bucket).
    let calm_answers = burst(&mut calm, "c", 5).await;
    assert!(calm_answers.iter().all(Result::is_ok), "{calm_answers:?}");

    // Keeping on after being told: closed with 4001.
    for i in 0..30 {
        fast.send(send(&format!("x{i}"), None)).await;
    }
    assert_eq!(fast.closed().await, close::RATE_LIMITED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    calm.say("c9", None, "still fine").await;
    s.stop().await;
}

#[tokio::test]
async fn visitors_of_one_address_share_a_bucket() {
    let (s, _t) = start(|c| {
        c.ip_messages_per_sec = 1.0;
        c.ip_messages_burst = 4.0;
    })
    .await;
    // The pair's visitor spends one token of the address's four.
    let mut p = s.pair("hello").await;
    let (mut a, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (mut b, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let answers = burst(&mut a, "a", 3).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let answers = burst(&mut b, "b", 2).await;
    assert_eq!(answers, [Err(ErrorCode::RateLimited); 2]);
    // Agents are not charged to the address: they work from shared offices.
    let conv = p.conv;
    for i in 0..10 {
        p.agent.say(&format!("g{i}"), Some(conv), "answer").await;
    }
    s.stop().await;
}

#[tokio::test]
async fn new_conversations_per_address_are_limited_returning_visitors_are_not() {
    let (s, _t) = start(|c| {
        c.ip_new_conversations_per_min = 1.0;
        c.ip_new_conversations_burst = 2.0;
    })
    .await;
    let (_a, wa) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (_b, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::VisitorHello(Default::default()))
        .await;
    assert_eq!(c.closed().await, close::RATE_LIMITED);
    // A returning visitor (with a token) starts nothing new: welcome.
    let (mut again, w) = Client::visitor(&s.ws_url(), Encoding::Json, Some(wa.token), vec![]).await;
    assert_eq!(w.customer_id, wa.customer_id);
    again.say("r1", None, "I'm back").await;
    s.stop().await;
}

#[tokio::test]
async fn slow_headers_and_silent_sockets_are_dropped() {
    let (s, _t) = start(|c| {
        c.header_timeout_ms = 300;
        c.hello_timeout_ms = 300;
    })
    .await;
    let t0 = Instant::now();
    // Half a request, never finished.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Nothing at all.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    for sock in [&mut slow, &mut silent] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server kept a slow socket open");
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Upgraded but no hello: 4500.
    let mut mute = Client::connect(&s.ws_url(), Encoding::Json).await;
    assert_eq!(mute.closed().await, close::BAD_HELLO);
    s.stop().await;
}

#[tokio::test]
async fn text_longer_than_the_limit_is_refused_as_too_large() {
    let (s, _t) = start(|c| c.max_text_chars = 10).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.send(ClientMessage::Send(SendMessage {
        client_id: "long".into(),
        conversation_id: None,
        text: "ééééééééééé".into(),
    }))
    .await;
    let e = v.error().await;
    assert_eq!(
        (e.code, e.client_id.as_deref()),
        (ErrorCode::TooLarge, Some("long"))
    );
    v.say("short", None, "éééééééééé").await;
    s.stop().await;
}

/// A login attempt; returns the status, the Retry-After header and the error code.
async fn login(s: &TestServer, email: &str, password: &str) -> (u16, Option<u64>, String) {
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let r = common::http_raw(
        s.addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        &body,
    )
    .await;
    let code = r.json()["error"]["code"].as_str().unwrap_or("").to_string();
    let retry = r.header("retry-after").map(|v| v.parse().unwrap());
    (r.status, retry, code)
}

#[tokio::test]
async fn failed_logins_are_limited_per_email_and_per_address() {
    let (s, _t) = start(|c| {
        c.login_failures_per_email = 3;
        c.login_failures_per_ip = 5;
        c.login_window_secs = 300;
    })
    .await;
    s.agent_account("ann@shop.test", 5).await;
    // Successes are free.
    for _ in 0..10 {
        assert_eq!(
            login(&s, "admin@localhost", common::ADMIN_PASSWORD).await.0,
            200
        );
    }
    // Three wrong passwords for Ann, then she is refused before any check,
    // even with the right one, and told when to come back (a failure refills
    // every 100 s).
    for _ in 0..3 {
        assert_eq!(login(&s, "ann@shop.test", "guess").await.0, 401);
    }
    for password in ["guess", "password-1"] {
        let (status, retry, code) = login(&s, "ANN@shop.test", password).await;
        assert_eq!((status, code.as_str()), (429, "rate_limited"));
        assert!(retry.is_some_and(|r| (1..=100).contains(&r)), "{retry:?}");
    }
    // Other accounts are not locked by Ann's failures …
    assert_eq!(
        login(&s, "admin@localhost", common::ADMIN_PASSWORD).await.0,
        200
    );
    // … but the address has now spent three of its five: two more guesses at
    // anything, and it is refused too (refusals above cost it nothing).
    assert_eq!(login(&s, "bob@shop.test", "x").await.0, 401);
    assert_eq!(login(&s, "carol@shop.test", "x").await.0, 401);
    let (status, retry, _) = login(&s, "dave@shop.test", "x").await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "{retry:?}");
    let (status, _, _) = login(&s, "admin@localhost", common::ADMIN_PASSWORD).await;
    assert_eq!(
        status, 429,
        "a limited address is refused before the password is checked"
    );
    s.stop().await;
}
