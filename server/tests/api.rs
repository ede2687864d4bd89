//! REST API and the WebSocket's edges: CRUD, authorization, bad input.

mod common;

use common::{Client, TestServer};
use futures::SinkExt;
use serde_json::json;
use switchboard_protocol::client::{ConversationRef, History, Rate, SendMessage, Typing};
use switchboard_protocol::{
    close, ClientMessage, ConversationId, Encoding, ErrorCode, ServerMessage,
};
use tokio_tungstenite::tungstenite::Message as Ws;

#[tokio::test]
async fn customers_crud_and_delete_erases_their_conversations() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (st, c) = s.http("POST", "/api/customers", Some(&t), Some(json!({"name": "Ada Lovelace", "email": "ada@example.com", "country": "GB", "tags": ["vip"]}))).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    s.http(
        "POST",
        "/api/customers",
        Some(&t),
        Some(json!({"name": "Grace", "country": "US"})),
    )
    .await;
    let (_, list) = s
        .http("GET", "/api/customers?q=lovelace", Some(&t), None)
        .await;
    assert_eq!(list["customers"].as_array().unwrap().len(), 1);
    let (_, list) = s
        .http("GET", "/api/customers?tag=vip&country=gb", Some(&t), None)
        .await;
    assert_eq!(list["customers"][0]["id"], id);
    let (st, c) = s
        .http(
            "PATCH",
            &format!("/api/customers/{id}"),
            Some(&t),
            Some(json!({"company": "Engines", "country": null})),
        )
        .await;
    assert_eq!(
        (st, &c["company"], &c["country"]),
        (200, &json!("Engines"), &json!(null))
    );
    let (st, e) = s
        .http(
            "PATCH",
            &format!("/api/customers/{id}"),
            Some(&t),
            Some(json!({"shoe_size": "9"})),
        )
        .await;
    assert_eq!((st, &e["error"]["code"]), (400, &json!("bad_request")));

    // A visitor with a conversation, then erased.
    let (mut v, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "please forget me").await;
    let vid = w.customer_id.0;
    let (_, got) = s
        .http(
            "GET",
            &format!("/api/conversations?customer_id={vid}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(got["conversations"][0]["id"], conv.0);
    let (st, _) = s
        .http("DELETE", &format!("/api/customers/{vid}"), Some(&t), None)
        .await;
    assert_eq!(st, 204);
    assert_eq!(v.closed().await, close::UNAUTHORIZED);
    let (st, _) = s
        .http("GET", &format!("/api/customers/{vid}"), Some(&t), None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .http("GET", &format!("/api/conversations/{conv}"), Some(&t), None)
        .await;
    assert_eq!(st, 404);
    // The old token no longer works.
    let mut again = Client::connect(&s.ws_url(), Encoding::Json).await;
    again
        .send(ClientMessage::VisitorHello(
            switchboard_protocol::client::VisitorHello {
                token: Some(w.token),
                resume: vec![],
                page_url: None,
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(again.closed().await, close::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_agent_token_are_refused() {
    let s = TestServer::start().await;
    for (method, path) in [
        ("GET", "/api/customers"),
        ("GET", "/api/conversations"),
        ("GET", "/api/agents"),
        ("GET", "/api/stats"),
        ("DELETE", "/api/customers/1"),
        ("GET", "/api/me"),
    ] {
        let (st, body) = s.http(method, path, None, None).await;
        assert_eq!(
            (st, &body["error"]["code"]),
            (401, &json!("unauthorized")),
            "{method} {path}"
        );
        let (st, _) = s.http(method, path, Some("forged-token"), None).await;
        assert_eq!(st, 401, "{method} {path}");
    }
    let (st, _) = s
        .http(
            "POST",
            "/api/login",
            None,
            Some(json!({"email": "admin@localhost", "password": "wrong"})),
        )
        .await;
    assert_eq!(st, 401);
    // An agent is not an admin; a logged-out token is dead.
    let (_, agent) = s.agent_account("ann@shop.test", 5).await;
    let (st, _) = s.http("GET", "/api/agents", Some(&agent), None).await;
    assert_eq!(st, 403);
    let (st, _) = s
        .http(
            "POST",
            "/api/agents",
            Some(&agent),
            Some(json!({"email": "x@y.z", "name": "x", "password": "password-1"})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s.http("POST", "/api/logout", Some(&agent), None).await;
    assert_eq!(st, 204);
    let (st, _) = s.http("GET", "/api/me", Some(&agent), None).await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn disabling_an_agent_closes_their_sessions_and_requeues_their_work() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (ann_id, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut a, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.say("1", None, "hi").await;
    v.event(switchboard_protocol::server::ConversationEventKind::Assigned)
        .await;
    let (st, body) = s
        .http(
            "PATCH",
            &format!("/api/agents/{ann_id}"),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!((st, &body["disabled"]), (200, &json!(true)));
    assert_eq!(a.closed().await, close::FORBIDDEN);
    let q = v
        .event(switchboard_protocol::server::ConversationEventKind::Queued)
        .await;
    assert_eq!(q.conversation.queue_position, Some(1));
    let (st, _) = s
        .http(
            "POST",
            "/api/login",
            None,
            Some(json!({"email": "ann@shop.test", "password": "password-1"})),
        )
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .http(
            "POST",
            "/api/agents",
            Some(&admin),
            Some(json!({"email": "ANN@shop.test", "name": "dup", "password": "password-1"})),
        )
        .await;
    assert_eq!(st, 409);
    s.stop().await;
}

#[tokio::test]
async fn a_visitor_cannot_touch_another_visitors_conversation() {
    let s = TestServer::start().await;
    let (mut alice, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = alice.say("1", None, "my secret order").await;
    let (mut mallory, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let attempts = [
        ClientMessage::Send(SendMessage {
            client_id: "m".into(),
            conversation_id: Some(conv),
            text: "hi".into(),
        }),
        ClientMessage::History(History {
            conversation_id: conv,
            before: None,
            after: None,
            limit: None,
        }),
        ClientMessage::Typing(Typing {
            conversation_id: conv,
            typing: true,
        }),
        ClientMessage::Read(switchboard_protocol::client::Read {
            conversation_id: conv,
            seq: 1,
        }),
        ClientMessage::Close(ConversationRef {
            conversation_id: conv,
        }),
        ClientMessage::Rate(Rate {
            conversation_id: conv,
            score: 1,
            comment: None,
        }),
        ClientMessage::Handoff(ConversationRef {
            conversation_id: conv,
        }),
        ClientMessage::Claim(ConversationRef {
            conversation_id: conv,
        }),
        // A guessed id answers exactly like a real one that is not yours.
        ClientMessage::History(History {
            conversation_id: ConversationId(conv.0 + 1000),
            before: None,
            after: None,
            limit: None,
        }),
    ];
    for a in attempts {
        mallory.send(a.clone()).await;
        let e = mallory.error().await;
        assert!(
            matches!(e.code, ErrorCode::NotFound | ErrorCode::Forbidden),
            "{a:?} gave {e:?}"
        );
    }
    // Resuming someone else's conversation replays nothing.
    let (mut m2, _) = Client::visitor(
        &s.ws_url(),
        Encoding::Json,
        None,
        vec![switchboard_protocol::client::ResumePoint {
            conversation_id: conv,
            last_seq: 0,
        }],
    )
    .await;
    assert_eq!(m2.error().await.code, ErrorCode::NotFound);
    // Alice's conversation is untouched.
    alice
        .send(ClientMessage::History(History {
            conversation_id: conv,
            before: None,
            after: None,
            limit: None,
        }))
        .await;
    let page = alice
        .recv_until(|m| match m {
            ServerMessage::History(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].text, "my secret order");
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_typed_errors_or_close_codes_and_loses_nothing() {
    let s = TestServer::start().await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.ws.send(Ws::text("{not json")).await.unwrap();
    assert_eq!(v.error().await.code, ErrorCode::BadRequest);
    v.ws.send(Ws::text(r#"{"type":"teleport"}"#)).await.unwrap();
    assert_eq!(v.error().await.code, ErrorCode::UnknownType);
    v.ws.send(Ws::binary(vec![1, 3, 0])).await.unwrap();
    assert_eq!(v.error().await.code, ErrorCode::BadRequest);
    v.send(ClientMessage::Send(SendMessage {
        client_id: "big".into(),
        conversation_id: None,
        text: "y".repeat(4001),
    }))
    .await;
    let e = v.error().await;
    assert_eq!(
        (e.code, e.client_id.as_deref()),
        (ErrorCode::TooLarge, Some("big"))
    );
    v.send(ClientMessage::Send(SendMessage {
        client_id: "".into(),
        conversation_id: None,
        text: "x".into(),
    }))
    .await;
    assert_eq!(v.error().await.code, ErrorCode::BadRequest);
    // Still usable after all that.
    let (_, seq) = v.say("ok", None, "still here").await;
    assert_eq!(seq, 1);
    // A frame over the limit closes with 1009.
    v.ws.send(Ws::text("z".repeat(70 * 1024))).await.unwrap();
    assert_eq!(v.closed().await, close::MESSAGE_TOO_BIG);

    // Hello rules: the first frame must be a hello; tokens must be ours.
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::Typing(Typing {
        conversation_id: ConversationId(1),
        typing: true,
    }))
    .await;
    assert_eq!(c.closed().await, close::BAD_HELLO);
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::AgentHello(
        switchboard_protocol::client::AgentHello {
            token: "nope".into(),
            resume: vec![],
        },
    ))
    .await;
    assert_eq!(c.closed().await, close::UNAUTHORIZED);
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::VisitorHello(
        switchboard_protocol::client::VisitorHello {
            token: Some("v1.1.99999999999.AAAA".into()),
            resume: vec![],
            page_url: None,
            ..Default::default()
        },
    ))
    .await;
    assert_eq!(c.closed().await, close::UNAUTHORIZED);
    // Cross-site pages may not open sockets; our own origin may.
    let refused =
        Client::connect_with(&s.ws_url(), Encoding::Json, Some("https://evil.example")).await;
    assert!(refused.is_err());
    let own = format!("http://{}", s.addr);
    assert!(
        Client::connect_with(&s.ws_url(), Encoding::Json, Some(&own))
            .await
            .is_ok()
    );
    s.stop().await;
}

#[tokio::test]
async fn close_then_rate_shows_on_the_conversation() {
    let s = TestServer::start().await;
    let mut p = s.pair("thanks!").await;
    let rate = |score, comment: Option<&str>| {
        ClientMessage::Rate(Rate {
            conversation_id: p.conv,
            score,
            comment: comment.map(str::to_string),
        })
    };
    p.visitor.send(rate(5, None)).await;
    assert_eq!(p.visitor.error().await.code, ErrorCode::InvalidState);
    p.agent.close(p.conv).await;
    p.visitor
        .event(switchboard_protocol::server::ConversationEventKind::Closed)
        .await;
    p.visitor.send(rate(9, None)).await;
    assert_eq!(p.visitor.error().await.code, ErrorCode::BadRequest);
    p.visitor.send(rate(4, Some("quick"))).await;
    let rated = p
        .agent
        .event(switchboard_protocol::server::ConversationEventKind::Rated)
        .await;
    assert_eq!(rated.conversation.rating.map(|r| r.score), Some(4));
    let t = s.admin_token().await;
    let (_, stats) = s.http("GET", "/api/stats", Some(&t), None).await;
    assert_eq!(
        (stats["avg_rating"].as_f64(), stats["ratings"].as_u64()),
        (Some(4.0), Some(1))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_silent_peer_is_dropped_by_the_heartbeat() {
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(temp.path());
    cfg.ping_interval_secs = 1;
    cfg.idle_timeout_secs = 2;
    let s = TestServer::start_with(cfg).await;
    // This client reads (and so answers pings) and stays.
    let (mut alive, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    // This one stops reading after its welcome, so it never answers a ping.
    let (mut silent, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let keep_reading = tokio::spawn(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(4), alive.closed())
            .await
            .is_err();
        alive
    });
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(silent.closed().await, close::IDLE_TIMEOUT);
    let mut alive = keep_reading.await.unwrap();
    alive.say("1", None, "still connected").await;
    s.stop().await;
}
