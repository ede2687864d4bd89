//! A conversation's record is not rewritten for every message: what messages
//! bring to it (newest activity, sentiment, first response) is kept in memory,
//! written every few hundred messages and with other changes, and caught up
//! from the stored messages when the server starts. So a SIGKILL between two
//! writes of the record must change nothing a user can see, and a resend
//! after the restart must still be recognised.

mod common;

use common::Client;
use serde_json::Value;
use std::net::SocketAddr;
use switchboard_protocol::server::ConversationEventKind;
use switchboard_protocol::{ConversationId, Encoding};

/// More than one checkpoint's worth (256), so the restart replays a tail.
const MESSAGES: u64 = 300;

fn spawn(dir: &std::path::Path) -> (common::Spawned, SocketAddr) {
    // NLP on (every visitor message gets a sentiment), the bot off (the
    // conversation goes straight to the agent).
    common::spawn_binary(
        dir,
        &[("SWITCHBOARD_NLP", "true"), ("SWITCHBOARD_BOT", "false")],
    )
}

/// What REST shows of the conversation and the dashboard.
async fn seen(addr: SocketAddr, token: &str, conv: ConversationId) -> (Value, Value) {
    let (status, body) = common::http(
        addr,
        "GET",
        &format!("/api/conversations/{conv}?limit=1"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut view = body["conversation"].clone();
    // Positions and presence are not bookkeeping.
    view["queue_position"] = Value::Null;
    let (status, stats) = common::http(addr, "GET", "/api/stats", Some(token), None).await;
    assert_eq!(status, 200, "{stats}");
    let keep = ["avg_first_response_ms", "avg_sentiment", "sentiment_by_day"];
    let stats = keep
        .iter()
        .map(|k| (k.to_string(), stats[k].clone()))
        .collect();
    (view, Value::Object(stats))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_record_writes_changes_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path());
    let url = format!("ws://{addr}/ws");
    let admin = common::login(addr, common::ADMIN, common::ADMIN_PASSWORD).await;
    let (mut agent, _) = Client::agent(&url, Encoding::Json, &admin, vec![]).await;
    let (mut v, welcome) = Client::visitor(&url, Encoding::Bincode, None, vec![]).await;
    let texts = [
        "thank you, this is wonderful!",
        "this is terrible, I am really angry",
        "where is my order?",
    ];
    let (conv, _) = v.say("v1", None, texts[0]).await;
    agent.event(ConversationEventKind::Assigned).await;
    agent.say("a1", Some(conv), "Hello! How can I help?").await;
    for i in 2..=MESSAGES {
        let text = texts[(i % 3) as usize];
        v.say(&format!("v{i}"), Some(conv), text).await;
    }
    let before = seen(addr, &admin, conv).await;
    assert_eq!(before.0["last_seq"], MESSAGES + 1, "{}", before.0);
    assert!(before.0["sentiment"].is_number(), "{}", before.0);
    assert!(
        before.1["avg_first_response_ms"].is_number(),
        "{}",
        before.1
    );

    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let (mut child, addr) = spawn(dir.path());
    let url = format!("ws://{addr}/ws");
    let admin = common::login(addr, common::ADMIN, common::ADMIN_PASSWORD).await;
    let after = seen(addr, &admin, conv).await;
    assert_eq!(after, before, "what REST shows changed across the kill");

    // A resend of an acknowledged message is recognised after the restart.
    let (mut v, _) = Client::visitor(&url, Encoding::Json, Some(welcome.token), vec![]).await;
    let resent = v.say(&format!("v{MESSAGES}"), Some(conv), texts[0]).await;
    assert_eq!(resent, (conv, MESSAGES + 1));
    let (_, next) = v.say("new", Some(conv), texts[2]).await;
    assert_eq!(next, MESSAGES + 2, "the resend was stored");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_graceful_stop_writes_the_records_that_are_behind() {
    let s = common::TestServer::start().await;
    let p = s.pair("hello").await;
    let (mut visitor, conv) = (p.visitor, p.conv);
    for i in 0..9 {
        visitor
            .say(&format!("m{i}"), Some(conv), "thanks a lot!")
            .await;
    }
    let dir = s.stop().await.unwrap();
    let store = switchboard_server::store::Store::open(dir.path()).unwrap();
    let record = store.conversation(conv).unwrap().unwrap();
    assert_eq!(store.last_seq(conv).unwrap(), 10);
    assert_eq!(
        record.noted_seq, 10,
        "the record was not written at shutdown"
    );
}

/// The server's `switchboard_conversations_in_memory` gauge.
async fn in_memory(s: &common::TestServer) -> u64 {
    let text = common::http_text(s.addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("switchboard_conversations_in_memory "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the gauge is exported")
}

#[tokio::test]
async fn closed_conversations_leave_memory_and_come_back_when_needed() {
    let temp = tempfile::tempdir().unwrap();
    let mut config = common::config(temp.path());
    config.ping_interval_secs = 1;
    let s = common::TestServer::start_with(config).await;
    let mut p = s.pair("hi").await;
    p.visitor.say("2", Some(p.conv), "thanks, bye").await;
    assert_eq!(in_memory(&s).await, 1);
    p.agent.close(p.conv).await;
    p.visitor.event(ConversationEventKind::Closed).await;
    // Dropped on a heartbeat tick (every second here).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while in_memory(&s).await != 0 {
        assert!(std::time::Instant::now() < deadline, "still in memory");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Still there for REST, and a visitor's next message reopens it with the same agent.
    let admin = s.admin_token().await;
    let (status, body) = s
        .http(
            "GET",
            &format!("/api/conversations/{}", p.conv),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation"]["status"], "closed");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2, "{body}");
    let (again, seq) = p.visitor.say("3", None, "one more thing").await;
    assert_eq!((again, seq), (p.conv, 3));
    let reopened = p.agent.event(ConversationEventKind::Assigned).await;
    assert_eq!(
        reopened.conversation.agent_id.map(|a| a.0),
        Some(p.agent_id)
    );
    // A resend of the message before the close is still recognised.
    assert_eq!(
        p.visitor.say("2", Some(p.conv), "thanks, bye").await,
        (p.conv, 2)
    );
    assert_eq!(in_memory(&s).await, 1);
    s.stop().await;
}
