//! SIGTERM on the real binary: every session is told "going away" (1001) at
//! once, a client that stopped reading cannot hold the shutdown up, the
//! process exits after its final flush, and everything acknowledged is there
//! after a restart.

mod common;

use common::{Client, ADMIN, ADMIN_PASSWORD};
use std::time::{Duration, Instant};
use switchboard_protocol::client::{ResumePoint, VisitorHello};
use switchboard_protocol::{close, ClientMessage, Encoding, ServerMessage};

const FLOOD: usize = 200;

#[tokio::test]
async fn sigterm_says_going_away_drains_and_keeps_every_acked_message() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SWITCHBOARD_NLP", "false"),
        // Small kernel buffers and a long queue: the stalled reader blocks the
        // server's writes instead of being cut off with 4000.
        ("SWITCHBOARD_SOCKET_SEND_BUFFER_BYTES", "4096"),
        ("SWITCHBOARD_OUTBOUND_QUEUE", "100000"),
    ];
    let (mut child, addr) = common::spawn_binary(dir.path(), &env);
    let url = format!("ws://{addr}/ws");
    let token = common::login(addr, ADMIN, ADMIN_PASSWORD).await;
    let (mut agent, _) = Client::agent(&url, Encoding::Json, &token, vec![]).await;
    let (mut visitor, welcome) = Client::visitor(&url, Encoding::Json, None, vec![]).await;
    let (conv, _) = visitor.say("v1", None, "hello").await;

    // A visitor who stops reading while the agent writes a lot to them.
    let mut stalled = Client::connect_slow(addr, Encoding::Json).await;
    stalled
        .send(ClientMessage::VisitorHello(VisitorHello::default()))
        .await;
    stalled.recv().await;
    let (stalled_conv, _) = stalled.say("s1", None, "I will stop reading").await;
    let long = "x".repeat(3000);
    for i in 0..FLOOD {
        agent
            .say(&format!("flood{i}"), Some(stalled_conv), &long)
            .await;
    }
    // Everyone else is unaffected.
    agent.say("a1", Some(conv), "answer").await;
    visitor.message("answer").await;

    let t0 = Instant::now();
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(visitor.closed().await, close::GOING_AWAY);
    assert_eq!(agent.closed().await, close::GOING_AWAY);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "the server did not exit within 8 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "exit status {exited}");
    drop(stalled);

    // Restarted on the same folder: the visitor's conversation and every flood message.
    let (mut child, addr) = common::spawn_binary(dir.path(), &env);
    let url = format!("ws://{addr}/ws");
    let (mut visitor, _) = Client::visitor(
        &url,
        Encoding::Json,
        Some(welcome.token),
        vec![ResumePoint {
            conversation_id: conv,
            last_seq: 0,
        }],
    )
    .await;
    visitor.message("answer").await;
    let (mut agent, _) = Client::agent(
        &url,
        Encoding::Json,
        &token,
        vec![ResumePoint {
            conversation_id: stalled_conv,
            last_seq: 0,
        }],
    )
    .await;
    let mut seen = 0;
    while seen < FLOOD + 1 {
        if let ServerMessage::Message(m) = agent.recv().await {
            assert_eq!(m.conversation_id, stalled_conv);
            seen += 1;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
