//! Authorization over real sockets. Every REST route (the list is checked
//! against `src/http/mod.rs`) × every kind of caller, with every other method
//! probed; every WebSocket action by a visitor on someone else's conversation,
//! by an agent on another agent's, and with guessed ids; and the life of a
//! bearer token: expiry, logout, password and role changes.

mod common;

use common::{config, Client, TestServer, ADMIN, ADMIN_PASSWORD};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_protocol::client::{
    AgentHello, ConversationRef, History, Identify, Rate, Read, SendMessage, SetCapacity,
    SetStatus, Transfer, TransferToTeam, Typing, VisitorHello,
};
use switchboard_protocol::model::AgentStatus;
use switchboard_protocol::server::{AgentRemovedReason, ConversationEventKind, ErrorMessage};
use switchboard_protocol::{
    close, AgentId, ClientMessage, ConversationId, Encoding, ErrorCode, ServerMessage,
};

// ---- REST: every route × every caller ----

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Nobody,
    /// A visitor's (valid) token, used as a bearer token.
    Visitor,
    /// An admin's token past its expiry.
    Expired,
    Agent,
    Admin,
}

const CALLERS: [Caller; 5] = [
    Caller::Nobody,
    Caller::Visitor,
    Caller::Expired,
    Caller::Agent,
    Caller::Admin,
];

/// What a caller gets.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Any 2xx.
    Ok,
    Status(u16),
}

const OK: Want = Want::Ok;
const UNAUTH: Want = Want::Status(401);
const FORBIDDEN: Want = Want::Status(403);
/// Refused to anyone without an agent's token.
const AGENTS: [Want; 5] = [UNAUTH, UNAUTH, UNAUTH, OK, OK];
/// Refused to anyone without an admin's token.
const ADMINS: [Want; 5] = [UNAUTH, UNAUTH, UNAUTH, FORBIDDEN, OK];
const ANYONE: [Want; 5] = [OK; 5];

/// One route and method: a path with placeholders (`{customer}`, `{doomed}`:
/// a customer made for this request, `{conversation}`, `{agent}`,
/// `{doomed_agent}`: an agent made for this request), a body
/// (given a number unique to the request), and what each caller gets, in
/// the order of [`CALLERS`].
struct Case {
    method: &'static str,
    path: &'static str,
    body: fn(&World, usize) -> Option<Value>,
    want: [Want; 5],
}

fn none(_: &World, _: usize) -> Option<Value> {
    None
}

/// Every route in `src/http/mod.rs` with each method it has.
const CASES: &[Case] = &[
    Case {
        method: "POST",
        path: "/api/login",
        body: |_, _| Some(json!({"email": ADMIN, "password": ADMIN_PASSWORD})),
        want: ANYONE,
    },
    // Run with a token minted for the request: it revokes it.
    Case {
        method: "POST",
        path: "/api/logout",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/me",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/customers",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "POST",
        path: "/api/customers",
        body: |_, n| Some(json!({"name": format!("Customer {n}")})),
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/customers/{customer}",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "PATCH",
        path: "/api/customers/{customer}",
        body: |_, n| Some(json!({"company": format!("Company {n}")})),
        want: AGENTS,
    },
    Case {
        method: "DELETE",
        path: "/api/customers/{doomed}",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/conversations",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/conversations/{conversation}",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/agents",
        body: none,
        want: ADMINS,
    },
    Case {
        method: "POST",
        path: "/api/agents",
        body: |_, n| {
            Some(
                json!({"email": format!("new{n}@shop.test"), "name": "New", "password": "password-1"}),
            )
        },
        want: ADMINS,
    },
    Case {
        method: "PATCH",
        path: "/api/agents/{agent}",
        body: |_, n| Some(json!({"name": format!("Renamed {n}")})),
        want: ADMINS,
    },
    Case {
        method: "DELETE",
        path: "/api/agents/{doomed_agent}",
        body: none,
        want: ADMINS,
    },
    Case {
        method: "GET",
        path: "/api/stats",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/nlp/knowledge",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "PUT",
        path: "/api/nlp/knowledge",
        body: |w, _| Some(w.knowledge.clone()),
        want: ADMINS,
    },
    // An admin gets past authorization to the file check (loading a real
    // model is tests/bot.rs's business).
    Case {
        method: "POST",
        path: "/api/nlp/model",
        body: |_, _| Some(json!({"path": "/nonexistent/model"})),
        want: [UNAUTH, UNAUTH, UNAUTH, FORBIDDEN, Want::Status(400)],
    },
    Case {
        method: "POST",
        path: "/api/nlp/analyze",
        body: |_, _| Some(json!({"text": "where is my order?"})),
        want: AGENTS,
    },
    Case {
        method: "GET",
        path: "/api/saved-replies",
        body: none,
        want: AGENTS,
    },
    Case {
        method: "POST",
        path: "/api/saved-replies",
        body: |_, n| Some(json!({"shortcut": format!("reply-{n}"), "text": "Hello!"})),
        want: ADMINS,
    },
    Case {
        method: "PATCH",
        path: "/api/saved-replies/{reply}",
        body: |_, n| Some(json!({"text": format!("Hello again {n}")})),
        want: ADMINS,
    },
    Case {
        method: "DELETE",
        path: "/api/saved-replies/{doomed_reply}",
        body: none,
        want: ADMINS,
    },
    Case {
        method: "GET",
        path: "/healthz",
        body: none,
        want: ANYONE,
    },
    Case {
        method: "GET",
        path: "/metrics",
        body: none,
        want: ANYONE,
    },
    // Plain HTTP on the WebSocket endpoint; its hello is tested below.
    Case {
        method: "GET",
        path: "/ws",
        body: none,
        want: [Want::Status(400); 5],
    },
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The paths `src/http/mod.rs` routes, read from its source.
fn routed_paths() -> Vec<String> {
    let src = include_str!("../src/http/mod.rs");
    let mut paths: Vec<String> = src
        .split(".route(")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// A case's path as the router writes it.
fn route_of(path: &str) -> String {
    [
        "{customer}",
        "{doomed}",
        "{conversation}",
        "{agent}",
        "{doomed_agent}",
        "{reply}",
        "{doomed_reply}",
    ]
    .iter()
    .fold(path.to_string(), |p, x| p.replace(x, "{id}"))
}

/// What the matrix runs against.
struct World {
    visitor_token: String,
    expired_token: String,
    agent_token: String,
    admin_token: String,
    customer: u64,
    conversation: u64,
    agent: u64,
    knowledge: Value,
    reply: u64,
}

/// A server whose admin holds a token that has expired: issued by a run with
/// a one-second lifetime, then the server restarted on the same data.
async fn server_with_an_expired_token(dir: &std::path::Path) -> (TestServer, String) {
    let mut short = config(dir);
    short.agent_token_ttl_secs = 1;
    let s = TestServer::start_with(short).await;
    let (expired, expires_at) = admin_login(&s).await;
    s.stop().await;
    sleep_past(expires_at).await;
    (TestServer::start_with(config(dir)).await, expired)
}

/// The admin's login: a token and its expiry (ms since the epoch).
async fn admin_login(s: &TestServer) -> (String, u64) {
    let (status, body) = s.try_login(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    (
        body["token"].as_str().unwrap().to_string(),
        body["expires_at"].as_u64().unwrap(),
    )
}

/// Sleeps until a little after `expires_at` (ms since the epoch).
async fn sleep_past(expires_at: u64) {
    let now = switchboard_server::hub::now_ms();
    tokio::time::sleep(Duration::from_millis(expires_at.saturating_sub(now) + 100)).await;
}

async fn world(s: &TestServer, expired_token: String) -> World {
    let admin_token = s.admin_token().await;
    let (agent, agent_token) = s.agent_account("ann@shop.test", 5).await;
    let (mut v, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conversation, _) = v.say("1", None, "hello").await;
    let (_, knowledge) = s
        .http("GET", "/api/nlp/knowledge", Some(&admin_token), None)
        .await;
    let reply = saved_reply(s, &admin_token, "greeting").await;
    World {
        visitor_token: w.token,
        expired_token,
        agent_token,
        admin_token,
        customer: w.customer_id.0,
        conversation: conversation.0,
        agent,
        knowledge,
        reply,
    }
}

/// Adds a saved reply; returns its id.
async fn saved_reply(s: &TestServer, admin_token: &str, shortcut: &str) -> u64 {
    let body = json!({"shortcut": shortcut, "text": "Hello! How can I help?"});
    let (status, r) = s
        .http("POST", "/api/saved-replies", Some(admin_token), Some(body))
        .await;
    assert_eq!(status, 201, "{r}");
    r["id"].as_u64().unwrap()
}

impl World {
    fn token(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Nobody => None,
            Caller::Visitor => Some(&self.visitor_token),
            Caller::Expired => Some(&self.expired_token),
            Caller::Agent => Some(&self.agent_token),
            Caller::Admin => Some(&self.admin_token),
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_documented() {
    let temp = tempfile::tempdir().unwrap();
    let (s, expired) = server_with_an_expired_token(temp.path()).await;
    let w = world(&s, expired).await;

    // The table covers exactly the routes the router has.
    let mut listed: Vec<String> = CASES.iter().map(|c| c.path.to_string()).collect();
    listed.sort();
    listed.dedup();
    let mut listed: Vec<String> = listed.iter().map(|p| route_of(p)).collect();
    listed.sort();
    listed.dedup();
    assert_eq!(
        listed,
        routed_paths(),
        "a route was added or removed: give it a row in CASES"
    );

    let mut n = 0;
    let mut wrong = Vec::new();
    for case in CASES {
        for (caller, want) in CALLERS.into_iter().zip(case.want) {
            n += 1;
            let fresh;
            let token = match (case.path, caller) {
                ("/api/logout", Caller::Agent) => {
                    fresh = s.login("ann@shop.test", "password-1").await;
                    Some(fresh.as_str())
                }
                ("/api/logout", Caller::Admin) => {
                    fresh = s.admin_token().await;
                    Some(fresh.as_str())
                }
                _ => w.token(caller),
            };
            let path = fill(&s, &w, case.path).await;
            let (status, body) = s.http(case.method, &path, token, (case.body)(&w, n)).await;
            let fits = match want {
                Want::Ok => (200..300).contains(&status),
                Want::Status(st) => st == status,
            };
            if !fits {
                wrong.push(format!(
                    "{} {path} as {caller:?}: {status} {body}, wanted {want:?}",
                    case.method
                ));
            }
            if status == 401 {
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            }
        }
        // Any other method: 405 whoever asks (before any authentication).
        for method in METHODS {
            if CASES
                .iter()
                .any(|c| route_of(c.path) == route_of(case.path) && c.method == method)
            {
                continue;
            }
            for caller in CALLERS {
                let path = fill(&s, &w, case.path).await;
                let (status, _) = s.http(method, &path, w.token(caller), None).await;
                if status != 405 {
                    wrong.push(format!(
                        "{method} {path} as {caller:?}: {status}, wanted 405 (not in CASES)"
                    ));
                }
            }
        }
    }
    // Paths the router does not have: the same 404 for everyone.
    for path in ["/api/admin", "/api/agents/1/token", "/api/customers/1/x"] {
        for caller in CALLERS {
            let (status, body) = s.http("GET", path, w.token(caller), None).await;
            if (status, &body["error"]["code"]) != (404, &json!("not_found")) {
                wrong.push(format!("GET {path} as {caller:?}: {status} {body}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    s.stop().await;
}

/// Replaces a path's placeholders; `{doomed}` creates a customer to delete,
/// `{doomed_agent}` an agent.
async fn fill(s: &TestServer, w: &World, path: &str) -> String {
    static AGENTS_MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let doomed_agent = if path.contains("{doomed_agent}") {
        let n = AGENTS_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({"email": format!("doomed{n}@shop.test"), "name": "Doomed", "password": "password-1"});
        let (_, a) = s
            .http("POST", "/api/agents", Some(&w.admin_token), Some(body))
            .await;
        a["id"].as_u64().unwrap()
    } else {
        0
    };
    let doomed = if path.contains("{doomed}") {
        let (_, c) = s
            .http(
                "POST",
                "/api/customers",
                Some(&w.admin_token),
                Some(json!({})),
            )
            .await;
        c["id"].as_u64().unwrap()
    } else {
        0
    };
    static REPLIES_MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let doomed_reply = if path.contains("{doomed_reply}") {
        let n = REPLIES_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        saved_reply(s, &w.admin_token, &format!("doomed-{n}")).await
    } else {
        0
    };
    path.replace("{customer}", &w.customer.to_string())
        .replace("{doomed_reply}", &doomed_reply.to_string())
        .replace("{reply}", &w.reply.to_string())
        .replace("{doomed}", &doomed.to_string())
        .replace("{conversation}", &w.conversation.to_string())
        .replace("{agent}", &w.agent.to_string())
        .replace("{doomed_agent}", &doomed_agent.to_string())
}

#[tokio::test]
async fn guessed_ids_in_rest_paths_look_like_missing_ones() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let (_, c) = s
        .http("POST", "/api/customers", Some(&t), Some(json!({})))
        .await;
    let id = c["id"].as_u64().unwrap();
    for path in ["customers", "conversations"] {
        for guess in [id + 1, id - 1, 0, u64::MAX] {
            let (status, body) = s
                .http("GET", &format!("/api/{path}/{guess}"), Some(&t), None)
                .await;
            assert_eq!(
                (status, &body["error"]["code"]),
                (404, &json!("not_found")),
                "{path}/{guess}: {body}"
            );
        }
        // Not a number at all: a malformed request (documented), whatever exists.
        for junk in ["-1", "1e3", "18446744073709551616"] {
            let (status, body) = s
                .http("GET", &format!("/api/{path}/{junk}"), Some(&t), None)
                .await;
            assert_eq!(status, 400, "{path}/{junk}: {body}");
        }
    }
    s.stop().await;
}

// ---- WebSocket actions ----

fn history(conv: ConversationId) -> ClientMessage {
    ClientMessage::History(History {
        conversation_id: conv,
        before: None,
        after: None,
        limit: None,
    })
}

/// Every action that names a conversation, aimed at `conv`.
fn conversation_actions(conv: ConversationId, to_agent: AgentId) -> Vec<ClientMessage> {
    let r = ConversationRef {
        conversation_id: conv,
    };
    vec![
        ClientMessage::Send(SendMessage {
            client_id: "x".into(),
            conversation_id: Some(conv),
            text: "hi".into(),
        }),
        history(conv),
        ClientMessage::Typing(Typing {
            conversation_id: conv,
            typing: true,
        }),
        ClientMessage::Read(Read {
            conversation_id: conv,
            seq: 1,
        }),
        ClientMessage::Claim(r.clone()),
        ClientMessage::Transfer(Transfer {
            conversation_id: conv,
            to_agent,
        }),
        ClientMessage::TransferToTeam(TransferToTeam {
            conversation_id: conv,
            team: "orders".into(),
        }),
        ClientMessage::Close(r.clone()),
        ClientMessage::Rate(Rate {
            conversation_id: conv,
            score: 1,
            comment: None,
        }),
        ClientMessage::Handoff(r),
    ]
}

/// Actions that name no conversation.
fn own_actions() -> Vec<ClientMessage> {
    vec![
        ClientMessage::SetStatus(SetStatus {
            status: AgentStatus::Away,
        }),
        ClientMessage::SetCapacity(SetCapacity { capacity: 0 }),
        ClientMessage::Identify(Identify {
            name: Some("Mallory".into()),
            ..Default::default()
        }),
    ]
}

/// Sends `msg` and returns the error it gets (panics if it gets none first).
async fn refusal(c: &mut Client, msg: ClientMessage) -> ErrorMessage {
    c.send(msg.clone()).await;
    c.recv_until(|m| match m {
        ServerMessage::Error(e) => Some(e),
        ServerMessage::Ack(a) => panic!("{msg:?} was accepted: {a:?}"),
        ServerMessage::History(h) => panic!("{msg:?} was answered: {h:?}"),
        _ => None,
    })
    .await
}

/// The error minus the request's own echo: what it tells about the target.
fn told(e: &ErrorMessage) -> (ErrorCode, String) {
    (e.code, e.message.clone())
}

#[tokio::test]
async fn a_visitor_reaches_only_their_own_conversations_and_guessed_ids_tell_nothing() {
    let s = TestServer::start().await;
    let mut p = s.pair("my secret order").await;
    let conv = p.conv;
    let ann = AgentId(p.agent_id);
    let (mut mallory, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    // Mallory has a conversation of her own, so "her newest" exists.
    let (own, _) = mallory.say("m0", None, "just browsing").await;

    // Someone else's conversation and ids that exist nowhere answer alike:
    // agent-only actions `forbidden` (whatever the id), the rest `not_found`.
    let guesses = [
        conv,
        ConversationId(conv.0 + 1),
        ConversationId(conv.0 - 1),
        ConversationId(0),
        ConversationId(u64::MAX),
        ConversationId(own.0 + 1000),
    ];
    for (i, target) in guesses.into_iter().enumerate() {
        if target == own {
            continue;
        }
        for action in conversation_actions(target, ann) {
            let agent_only = matches!(
                action,
                ClientMessage::Claim(_)
                    | ClientMessage::Transfer(_)
                    | ClientMessage::TransferToTeam(_)
            );
            let e = refusal(&mut mallory, action.clone()).await;
            let want = if agent_only {
                (ErrorCode::Forbidden, e.message.clone())
            } else {
                (ErrorCode::NotFound, "not found".to_string())
            };
            assert_eq!(told(&e), want, "guess {i}: {action:?}");
            assert_eq!(e.conversation_id, Some(target), "{action:?}");
        }
    }
    // Agent-only actions on her own conversation, and her own status: forbidden.
    for action in [
        ClientMessage::Claim(ConversationRef {
            conversation_id: own,
        }),
        ClientMessage::Transfer(Transfer {
            conversation_id: own,
            to_agent: ann,
        }),
        ClientMessage::TransferToTeam(TransferToTeam {
            conversation_id: own,
            team: "orders".into(),
        }),
        ClientMessage::SetStatus(SetStatus {
            status: AgentStatus::Online,
        }),
        ClientMessage::SetCapacity(SetCapacity { capacity: 3 }),
    ] {
        let e = refusal(&mut mallory, action.clone()).await;
        assert_eq!(e.code, ErrorCode::Forbidden, "{action:?}");
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

    // None of it reached the conversation: Alice's history is hers alone,
    // and nobody typed or read in it.
    p.visitor.send(history(conv)).await;
    let page = p
        .visitor
        .recv_until(|m| match m {
            ServerMessage::History(h) => Some(h),
            ServerMessage::Typing(t) => panic!("a stranger's typing arrived: {t:?}"),
            ServerMessage::Read(r) => panic!("a stranger's read arrived: {r:?}"),
            _ => None,
        })
        .await;
    let texts: Vec<_> = page.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["my secret order"]);
    p.visitor.say("2", Some(conv), "still mine").await;
    p.agent.message("still mine").await;
    s.stop().await;
}

#[tokio::test]
async fn an_agent_cannot_act_as_another_agent() {
    let s = TestServer::start().await;
    let mut p = s.pair("help please").await;
    let conv = p.conv;
    let ann = AgentId(p.agent_id);
    let (bob_id, bob_token) = s.agent_account("bob@shop.test", 5).await;
    let bob_id = AgentId(bob_id);
    let (mut bob, _) = Client::agent(&s.ws_url(), Encoding::Json, &bob_token, vec![]).await;

    // Writing into Ann's conversation, or handing it around, is hers (or an admin's).
    for action in [
        ClientMessage::Send(SendMessage {
            client_id: "b1".into(),
            conversation_id: Some(conv),
            text: "I am Ann now".into(),
        }),
        ClientMessage::Typing(Typing {
            conversation_id: conv,
            typing: true,
        }),
        ClientMessage::Transfer(Transfer {
            conversation_id: conv,
            to_agent: bob_id,
        }),
        ClientMessage::Close(ConversationRef {
            conversation_id: conv,
        }),
        ClientMessage::Handoff(ConversationRef {
            conversation_id: conv,
        }),
        ClientMessage::TransferToTeam(TransferToTeam {
            conversation_id: conv,
            team: "orders".into(),
        }),
    ] {
        let e = refusal(&mut bob, action.clone()).await;
        assert_eq!(e.code, ErrorCode::Forbidden, "{action:?}: {e:?}");
    }
    // Claiming it from under her: it is not waiting.
    let e = refusal(
        &mut bob,
        ClientMessage::Claim(ConversationRef {
            conversation_id: conv,
        }),
    )
    .await;
    assert_eq!(e.code, ErrorCode::InvalidState);
    // Visitor-only actions.
    let e = refusal(
        &mut bob,
        ClientMessage::Rate(Rate {
            conversation_id: conv,
            score: 1,
            comment: None,
        }),
    )
    .await;
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = refusal(&mut bob, own_actions().pop().unwrap()).await;
    assert_eq!(e.code, ErrorCode::Forbidden);
    // Guessed ids: missing, whatever the action.
    for guess in [
        ConversationId(0),
        ConversationId(u64::MAX),
        ConversationId(conv.0 + 1000),
    ] {
        for action in conversation_actions(guess, ann) {
            let e = refusal(&mut bob, action.clone()).await;
            assert_eq!(
                told(&e),
                (ErrorCode::NotFound, "not found".into()),
                "{action:?}"
            );
        }
    }
    // Ann cannot hand her conversation to an agent that does not exist.
    for to in [AgentId(0), AgentId(u64::MAX), AgentId(bob_id.0 + 1000)] {
        let e = refusal(
            &mut p.agent,
            ClientMessage::Transfer(Transfer {
                conversation_id: conv,
                to_agent: to,
            }),
        )
        .await;
        assert_eq!(e.code, ErrorCode::NotFound, "{to:?}");
    }
    // Status and capacity are always one's own: Bob going away is Bob's presence.
    bob.send(ClientMessage::SetStatus(SetStatus {
        status: AgentStatus::Away,
    }))
    .await;
    let presence = p
        .agent
        .recv_until(|m| match m {
            ServerMessage::Presence(pr) if pr.status == AgentStatus::Away => Some(pr),
            _ => None,
        })
        .await;
    assert_eq!(presence.agent_id, bob_id);

    // Reading is open to every agent (docs: any agent may read any conversation).
    bob.send(history(conv)).await;
    bob.recv_until(|m| matches!(m, ServerMessage::History(_)).then_some(()))
        .await;
    // Nothing Bob tried reached the visitor; Ann still has the conversation.
    p.agent.say("a1", Some(conv), "Ann here").await;
    let m = p.visitor.message("Ann here").await;
    assert_eq!(m.author.id, ann.0);
    // An admin may step in (documented): transfer it to Bob, once he is back
    // online (a transfer needs its target online with a free slot).
    bob.send(ClientMessage::SetStatus(SetStatus {
        status: AgentStatus::Online,
    }))
    .await;
    p.agent
        .recv_until(|m| match m {
            ServerMessage::Presence(pr) if pr.status == AgentStatus::Online => Some(()),
            _ => None,
        })
        .await;
    let admin = s.admin_token().await;
    let (mut boss, _) = Client::agent(&s.ws_url(), Encoding::Json, &admin, vec![]).await;
    boss.send(ClientMessage::Transfer(Transfer {
        conversation_id: conv,
        to_agent: bob_id,
    }))
    .await;
    let ev = bob.event(ConversationEventKind::Transferred).await;
    assert_eq!(
        (ev.conversation.agent_id, ev.from_agent),
        (Some(bob_id), Some(ann))
    );
    s.stop().await;
}

#[tokio::test]
async fn tokens_only_open_the_door_they_were_made_for() {
    let s = TestServer::start().await;
    let (_, agent_token) = s.agent_account("ann@shop.test", 5).await;
    let (_, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    // A visitor's token in an agent hello, an agent's in a visitor hello: 4501.
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::AgentHello(AgentHello {
        token: w.token.clone(),
        resume: vec![],
    }))
    .await;
    assert_eq!(c.closed().await, close::UNAUTHORIZED);
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::VisitorHello(VisitorHello {
        token: Some(agent_token),
        ..Default::default()
    }))
    .await;
    assert_eq!(c.closed().await, close::UNAUTHORIZED);
    s.stop().await;
}

// ---- the life of a bearer token ----

/// Says an agent hello; Ok(client) or Err(close code).
async fn agent_hello(s: &TestServer, token: &str) -> Result<Client, u16> {
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(ClientMessage::AgentHello(AgentHello {
        token: token.into(),
        resume: vec![],
    }))
    .await;
    match c.next_or_close().await {
        Ok(ServerMessage::AgentWelcome(_)) => Ok(c),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(code) => Err(code),
    }
}

/// A live session still answers.
async fn answers(c: &mut Client) {
    c.send(history(ConversationId(u64::MAX))).await;
    assert_eq!(c.error().await.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn an_expired_token_is_refused_by_rest_and_by_the_hello_and_ends_its_sessions() {
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = config(temp.path());
    cfg.agent_token_ttl_secs = 1;
    // The heartbeat that also ends expired sessions.
    cfg.ping_interval_secs = 1;
    let s = TestServer::start_with(cfg).await;
    let (token, expires_at) = admin_login(&s).await;
    // Good while it lasts …
    let (status, _) = s.http("GET", "/api/me", Some(&token), None).await;
    assert_eq!(status, 200);
    let mut live = agent_hello(&s, &token).await.unwrap();
    answers(&mut live).await;
    // … and refused after; a session it opened is closed at the next heartbeat.
    sleep_past(expires_at).await;
    assert_eq!(live.closed().await, close::UNAUTHORIZED);
    let (status, body) = s.http("GET", "/api/me", Some(&token), None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    assert_eq!(
        agent_hello(&s, &token).await.err(),
        Some(close::UNAUTHORIZED)
    );
    s.stop().await;
}

#[tokio::test]
async fn logout_revokes_its_token_and_closes_its_sessions_only() {
    let s = TestServer::start().await;
    s.agent_account("ann@shop.test", 5).await;
    let laptop = s.login("ann@shop.test", "password-1").await;
    let phone = s.login("ann@shop.test", "password-1").await;
    let mut on_laptop = agent_hello(&s, &laptop).await.unwrap();
    let mut also_laptop = agent_hello(&s, &laptop).await.unwrap();
    let mut on_phone = agent_hello(&s, &phone).await.unwrap();

    let (status, _) = s.http("POST", "/api/logout", Some(&laptop), None).await;
    assert_eq!(status, 204);
    // That token's sessions are closed as revoked; it opens nothing any more.
    assert_eq!(on_laptop.closed().await, close::UNAUTHORIZED);
    assert_eq!(also_laptop.closed().await, close::UNAUTHORIZED);
    let (status, _) = s.http("GET", "/api/me", Some(&laptop), None).await;
    assert_eq!(status, 401);
    let (status, _) = s.http("POST", "/api/logout", Some(&laptop), None).await;
    assert_eq!(status, 401);
    assert_eq!(
        agent_hello(&s, &laptop).await.err(),
        Some(close::UNAUTHORIZED)
    );
    // The phone's token and session are untouched.
    answers(&mut on_phone).await;
    let (status, _) = s.http("GET", "/api/me", Some(&phone), None).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_new_password_signs_out_the_accounts_other_tokens() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (ann_id, ann) = s.agent_account("ann@shop.test", 5).await;
    let mut ann_session = agent_hello(&s, &ann).await.unwrap();

    // An admin sets Ann's password: every token of hers goes, with its sessions.
    let (status, body) = s
        .http(
            "PATCH",
            &format!("/api/agents/{ann_id}"),
            Some(&admin),
            Some(json!({"password": "new-password-2"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ann_session.closed().await, close::UNAUTHORIZED);
    let (status, _) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!(status, 401);
    let (status, _) = s.try_login("ann@shop.test", "password-1").await;
    assert_eq!(status, 401);
    let ann = s.login("ann@shop.test", "new-password-2").await;
    let mut ann_session = agent_hello(&s, &ann).await.unwrap();

    // The admin changes their own: the token they used stays, their others go.
    let other_device = s.admin_token().await;
    let mut on_other = agent_hello(&s, &other_device).await.unwrap();
    let mut on_this = agent_hello(&s, &admin).await.unwrap();
    let me = s.http("GET", "/api/me", Some(&admin), None).await.1["id"].clone();
    let (status, body) = s
        .http(
            "PATCH",
            &format!("/api/agents/{me}"),
            Some(&admin),
            Some(json!({"password": "admin-password-2"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(on_other.closed().await, close::UNAUTHORIZED);
    let (status, _) = s.http("GET", "/api/me", Some(&other_device), None).await;
    assert_eq!(status, 401);
    let (status, _) = s.http("GET", "/api/me", Some(&admin), None).await;
    assert_eq!(status, 200);
    answers(&mut on_this).await;
    // Nobody else was signed out.
    answers(&mut ann_session).await;
    s.stop().await;
}

#[tokio::test]
async fn a_disabled_account_is_told_so_by_rest_by_the_hello_and_at_login() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (ann_id, ann) = s.agent_account("ann@shop.test", 5).await;
    let mut live = agent_hello(&s, &ann).await.unwrap();
    // The admin's console sees her leave the roster and come back.
    let mut console = agent_hello(&s, &admin).await.unwrap();
    let set_disabled = |disabled: bool| {
        let (s, admin) = (&s, &admin);
        async move {
            let path = format!("/api/agents/{ann_id}");
            let body = json!({ "disabled": disabled });
            let (status, body) = s.http("PATCH", &path, Some(admin), Some(body)).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    set_disabled(true).await;
    let disabled = (close::FORBIDDEN, "account disabled".to_string());
    assert_eq!(live.closed_with_reason().await, disabled);
    let removed = console.agent_removed().await;
    assert_eq!(
        (removed.agent_id.0, removed.reason),
        (ann_id, AgentRemovedReason::Disabled)
    );

    // Her token is genuine but the account may not use it: 4503 and 403
    // (forbidden), not 4501 and 401, which tell a client to sign in again.
    let mut hello = Client::connect(&s.ws_url(), Encoding::Json).await;
    hello
        .send(ClientMessage::AgentHello(AgentHello {
            token: ann.clone(),
            resume: vec![],
        }))
        .await;
    assert_eq!(hello.closed_with_reason().await, disabled);
    let (status, body) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    assert_eq!(body["error"]["message"], "account disabled");
    // The right password gets the same answer; a wrong one tells nothing.
    let (status, body) = s.try_login("ann@shop.test", "password-1").await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    assert_eq!(body["error"]["message"], "account disabled");
    let (status, body) = s.try_login("ann@shop.test", "wrong-password").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized"))
    );

    // Enabled again: back on the roster (offline); tokens from before stay
    // revoked, so she signs in anew.
    set_disabled(false).await;
    let back = console
        .recv_until(|m| match m {
            ServerMessage::Presence(p) if p.agent_id.0 == ann_id => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(back.status, AgentStatus::Offline);
    let (status, _) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!(status, 401);
    assert_eq!(agent_hello(&s, &ann).await.err(), Some(close::UNAUTHORIZED));
    let ann = s.login("ann@shop.test", "password-1").await;
    answers(&mut agent_hello(&s, &ann).await.unwrap()).await;
    s.stop().await;
}

#[tokio::test]
async fn a_new_role_takes_effect_on_live_sessions() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut p = s.pair("hello").await;
    let (bob_id, bob_token) = s.agent_account("bob@shop.test", 5).await;
    let mut bob = agent_hello(&s, &bob_token).await.unwrap();
    // As an agent, Bob may not write into Ann's conversation.
    let e = refusal(
        &mut bob,
        ClientMessage::Send(SendMessage {
            client_id: "b1".into(),
            conversation_id: Some(p.conv),
            text: "hi".into(),
        }),
    )
    .await;
    assert_eq!(e.code, ErrorCode::Forbidden);
    // Promoted, his session is asked to reconnect (1012) and comes back an admin.
    let (status, _) = s
        .http(
            "PATCH",
            &format!("/api/agents/{bob_id}"),
            Some(&admin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
    let code = bob.closed().await;
    assert_eq!(code, 1012);
    assert!(close::should_reconnect(code));
    let mut bob = agent_hello(&s, &bob_token).await.unwrap();
    bob.say("b2", Some(p.conv), "an admin here").await;
    p.visitor.message("an admin here").await;
    // Demoted again: the same, and the admin's powers are gone.
    let (status, _) = s
        .http(
            "PATCH",
            &format!("/api/agents/{bob_id}"),
            Some(&admin),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(bob.closed().await, 1012);
    let mut bob = agent_hello(&s, &bob_token).await.unwrap();
    let e = refusal(
        &mut bob,
        ClientMessage::Send(SendMessage {
            client_id: "b3".into(),
            conversation_id: Some(p.conv),
            text: "still?".into(),
        }),
    )
    .await;
    assert_eq!(e.code, ErrorCode::Forbidden);
    // Ann (whose role did not change) was not disturbed.
    answers(&mut p.agent).await;
    s.stop().await;
}
