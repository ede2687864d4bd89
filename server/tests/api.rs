//! REST API and the WebSocket's edges: CRUD, bad input, CORS and the
//! browser-facing headers. Who may call what is tests/authz.rs.

mod common;

use common::{Client, TestServer};
use futures::SinkExt;
use serde_json::json;
use switchboard_protocol::client::{Rate, SendMessage, Typing};
use switchboard_protocol::server::AgentRemovedReason;
use switchboard_protocol::{close, ClientMessage, ConversationId, Encoding, ErrorCode};
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
async fn disabling_an_agent_closes_their_sessions_and_requeues_their_work() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (ann_id, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut a, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.say("1", None, "hi").await;
    v.event(switchboard_protocol::server::ConversationEventKind::Assigned)
        .await;
    // The admin's console, to see her leave the roster.
    let (mut console, _) = Client::agent(&s.ws_url(), Encoding::Json, &admin, vec![]).await;
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
    let removed = console.agent_removed().await;
    assert_eq!(
        (removed.agent_id.0, removed.reason),
        (ann_id, AgentRemovedReason::Disabled)
    );
    let q = v
        .event(switchboard_protocol::server::ConversationEventKind::Queued)
        .await;
    assert_eq!(q.conversation.queue_position, Some(1));
    let (st, _) = s.try_login("ann@shop.test", "password-1").await;
    assert_eq!(st, 403);
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
async fn deleting_an_agent_revokes_them_closes_their_sessions_and_requeues_their_work() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (ann_id, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut a, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.say("1", None, "hi").await;
    v.event(switchboard_protocol::server::ConversationEventKind::Assigned)
        .await;
    // The admin's console, to see her leave the roster.
    let (mut console, _) = Client::agent(&s.ws_url(), Encoding::Json, &admin, vec![]).await;
    let ann_path = format!("/api/agents/{ann_id}");
    let (st, body) = s.http("DELETE", &ann_path, Some(&admin), None).await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(
        a.closed_with_reason().await,
        (close::FORBIDDEN, "account deleted".to_string())
    );
    let removed = console.agent_removed().await;
    assert_eq!(
        (removed.agent_id.0, removed.reason),
        (ann_id, AgentRemovedReason::Deleted)
    );
    // Her conversation goes back to the queue, as when an agent is disabled.
    let q = v
        .event(switchboard_protocol::server::ConversationEventKind::Queued)
        .await;
    assert_eq!(
        (q.conversation.queue_position, q.conversation.agent_id),
        (Some(1), None)
    );
    // Her token and password are gone, and so is she.
    let (st, _) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!(st, 401);
    let (st, _) = s.try_login("ann@shop.test", "password-1").await;
    assert_eq!(st, 401);
    let (_, list) = s.http("GET", "/api/agents", Some(&admin), None).await;
    assert!(
        !list["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == ann_id),
        "{list}"
    );
    let (st, body) = s.http("DELETE", &ann_path, Some(&admin), None).await;
    assert_eq!((st, &body["error"]["code"]), (404, &json!("not_found")));
    // Her email may be used again.
    s.agent_account("ann@shop.test", 5).await;
    // An admin cannot delete themselves.
    let (_, me) = s.http("GET", "/api/me", Some(&admin), None).await;
    let (st, body) = s
        .http(
            "DELETE",
            &format!("/api/agents/{}", me["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((st, &body["error"]["code"]), (409, &json!("invalid_state")));
    assert_eq!(body["error"]["message"], "you cannot delete yourself");
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
    // This one says hello and then never writes again, so it never answers a ping.
    let silent = common::silent_visitor(s.addr).await;
    let keep_reading = tokio::spawn(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(4), alive.closed())
            .await
            .is_err();
        alive
    });
    assert_eq!(
        common::close_code_on(silent).await,
        Some(close::IDLE_TIMEOUT)
    );
    let mut alive = keep_reading.await.unwrap();
    alive.say("1", None, "still connected").await;
    s.stop().await;
}

// ---- browser-facing security ----

const SHOP: &str = "https://shop.example";

/// A preflight as a browser sends it before a cross-origin POST with a bearer token.
async fn preflight(s: &TestServer, path: &str, origin: &str) -> common::Reply {
    common::http_raw(
        s.addr,
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        "",
    )
    .await
}

#[tokio::test]
async fn only_configured_origins_may_call_the_api_from_a_browser() {
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(temp.path());
    cfg.allowed_origins = vec![format!("{SHOP}/")];
    let s = TestServer::start_with(cfg).await;
    let token = s.admin_token().await;
    let bearer = format!("Bearer {token}");

    // The preflight is answered for a configured origin (case and slash aside) …
    let ok = preflight(&s, "/api/customers", "https://SHOP.example").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://SHOP.example")
    );
    let methods = ok.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    let headers = ok.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    // Bearer tokens, not cookies: credentials are never allowed.
    assert_eq!(ok.header("access-control-allow-credentials"), None);
    // … and refused to any other (no allow-origin: the browser stops there).
    for other in [
        "https://evil.example",
        "https://shop.example.evil.example",
        "null",
    ] {
        let no = preflight(&s, "/api/customers", other).await;
        assert_eq!(no.header("access-control-allow-origin"), None, "{other}");
    }

    // Actual requests: the answer is readable by the configured origin only,
    // errors included (so the page can show them), with Retry-After exposed.
    let got = common::http_raw(
        s.addr,
        "GET",
        "/api/me",
        &[("Origin", SHOP), ("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("access-control-allow-origin"), Some(SHOP));
    assert!(got.header("vary").unwrap().contains("origin"));
    assert!(got
        .header("access-control-expose-headers")
        .unwrap()
        .contains("retry-after"));
    let refused = common::http_raw(s.addr, "GET", "/api/me", &[("Origin", SHOP)], "").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("access-control-allow-origin"), Some(SHOP));
    let evil = common::http_raw(
        s.addr,
        "GET",
        "/api/me",
        &[
            ("Origin", "https://evil.example"),
            ("Authorization", &bearer),
        ],
        "",
    )
    .await;
    assert_eq!(evil.header("access-control-allow-origin"), None);
    // CORS is for the API only.
    let health = common::http_raw(s.addr, "GET", "/healthz", &[("Origin", SHOP)], "").await;
    assert_eq!(health.header("access-control-allow-origin"), None);
    s.stop().await;

    // `*` lets any page call (no credentials ride along anyway).
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(temp.path());
    cfg.allowed_origins = vec!["*".into()];
    let s = TestServer::start_with(cfg).await;
    let any = preflight(&s, "/api/login", "https://anyone.example").await;
    assert_eq!(any.header("access-control-allow-origin"), Some("*"));
    s.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers_its_kind_needs() {
    use base64::Engine;
    use sha2::Digest;
    let s = TestServer::start().await;
    let get = |path: &'static str| common::http_raw(s.addr, "GET", path, &[], "");

    // Everyone: no sniffing, no referrer leaks across origins.
    for path in [
        "/",
        "/console",
        "/console/console.js",
        "/widget.js",
        "/api/me",
        "/healthz",
        "/metrics",
        "/nope",
    ] {
        let r = get(path).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin"),
            "{path}"
        );
    }

    // The console: only its own scripts, styles and socket; never framed.
    let console = get("/console").await;
    let csp = console.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} not in {csp}");
    }
    assert!(!csp.contains("unsafe-eval"));
    assert_eq!(console.header("x-frame-options"), Some("DENY"));

    // The demo page: its one inline script is allowed by its hash, nothing else inline.
    let demo = get("/").await;
    let csp = demo.header("content-security-policy").unwrap();
    let script = demo
        .body
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the demo page's inline script");
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert_eq!(
        script_src.trim(),
        format!("script-src 'self' 'sha256-{hash}'")
    );
    assert!(csp.contains("frame-ancestors 'self'"));

    // The widget: a script any site may load (CORP), never sniffed as anything else.
    let widget = get("/widget.js").await;
    assert_eq!(
        widget.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        widget.header("cross-origin-resource-policy"),
        Some("cross-origin")
    );
    assert_eq!(widget.header("access-control-allow-origin"), Some("*"));

    // Everything else is not a page and is for this origin only; the API is never cached.
    for path in ["/api/me", "/healthz", "/console/console.js", "/nope"] {
        let r = get(path).await;
        assert_eq!(
            r.header("cross-origin-resource-policy"),
            Some("same-origin"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    let api = get("/api/me").await;
    assert_eq!(api.header("cache-control"), Some("no-store"));
    s.stop().await;
}

/// The REST API checked a customer's name or email against the profile
/// field limit (512 bytes) but not a tag or an attribute: a 1.9 MB tag was
/// stored, and shown in every customer list after.
#[tokio::test]
async fn customer_tags_and_attributes_have_the_field_limit() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let long = "x".repeat(513);
    let (st, c) = s
        .http(
            "POST",
            "/api/customers",
            Some(&t),
            Some(json!({"name": "Ada"})),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    for body in [
        json!({"tags": [long.clone()]}),
        json!({"attributes": {"plan": long.clone()}}),
        json!({"attributes": {long.clone(): "pro"}}),
    ] {
        let (st, e) = s
            .http("POST", "/api/customers", Some(&t), Some(body.clone()))
            .await;
        assert_eq!((st, &e["error"]["code"]), (400, &json!("too_large")), "{e}");
        let path = format!("/api/customers/{id}");
        let (st, e) = s.http("PATCH", &path, Some(&t), Some(body)).await;
        assert_eq!((st, &e["error"]["code"]), (400, &json!("too_large")), "{e}");
    }
    let at_the_limit = "y".repeat(512);
    let (st, c) = s
        .http(
            "PATCH",
            &format!("/api/customers/{id}"),
            Some(&t),
            Some(json!({"tags": [at_the_limit.clone()], "attributes": {"plan": at_the_limit}})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    // A JSON body over the 2 MiB limit is too large, not malformed.
    let huge = json!({"name": "z".repeat(3 << 20)});
    let (st, e) = s.http("POST", "/api/customers", Some(&t), Some(huge)).await;
    assert_eq!((st, &e["error"]["code"]), (400, &json!("too_large")), "{e}");
    s.stop().await;
}
