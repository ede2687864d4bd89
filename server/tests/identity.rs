//! Identity verification over real sockets: the site signs a user id with
//! its secret; a verified user is one visitor on every device, an unsigned
//! or wrongly signed id is refused when the site asks for signatures, an
//! unsigned claim never finds anyone's history, and anonymous chat can be
//! switched off.

mod common;

use common::{config, Client, TestServer};
use switchboard_protocol::client::{Identify, ResumePoint, VisitorHello};
use switchboard_protocol::server::VisitorWelcome;
use switchboard_protocol::{close, ClientMessage, Encoding, ErrorCode, ServerMessage};
use switchboard_server::auth::IdentitySecret;
use switchboard_server::config::Config;

const SECRET: &str = "site-identity-secret";

async fn start(tune: impl FnOnce(&mut Config)) -> (TestServer, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let mut c = config(temp.path());
    c.identity_secret = Some(SECRET.into());
    tune(&mut c);
    (TestServer::start_with(c).await, temp)
}

fn sign(user: &str) -> String {
    IdentitySecret::new(Some(SECRET)).sign(user).unwrap()
}

fn hello(token: Option<String>, user: Option<&str>, hash: Option<String>) -> ClientMessage {
    ClientMessage::VisitorHello(VisitorHello {
        token,
        user_id: user.map(str::to_string),
        user_hash: hash,
        ..Default::default()
    })
}

/// The close code a refused hello got.
async fn refused(s: &TestServer, msg: ClientMessage) -> u16 {
    match try_hello(s, msg).await {
        Ok((_, w)) => panic!("welcomed as {:?}", w.customer_id),
        Err(code) => code,
    }
}

/// Says hello; Ok(welcome) or Err(close code).
async fn try_hello(s: &TestServer, msg: ClientMessage) -> Result<(Client, VisitorWelcome), u16> {
    let mut c = Client::connect(&s.ws_url(), Encoding::Json).await;
    c.send(msg).await;
    match c.next_or_close().await {
        Ok(ServerMessage::VisitorWelcome(w)) => Ok((c, w)),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(code) => Err(code),
    }
}

#[tokio::test]
async fn a_verified_user_has_one_history_on_every_device() {
    let (s, _t) = start(|_| {}).await;
    let (mut phone, w1) = try_hello(&s, hello(None, Some("u-1"), Some(sign("u-1"))))
        .await
        .unwrap();
    let (conv, seq) = phone.say("p1", None, "sent from my phone").await;

    // A laptop with no token, same signed user: same visitor, same conversation, same messages.
    let (mut laptop, w2) = try_hello(&s, hello(None, Some("u-1"), Some(sign("u-1"))))
        .await
        .unwrap();
    assert_eq!(w2.customer_id, w1.customer_id);
    assert_eq!(w2.conversations[0].id, conv);
    laptop.send(hello_resume_probe(conv)).await;
    let page = laptop
        .recv_until(|m| match m {
            ServerMessage::History(h) => Some(h),
            _ => None,
        })
        .await;
    assert_eq!(
        page.messages.last().map(|m| (m.seq, m.text.as_str())),
        Some((seq, "sent from my phone"))
    );
    // Either device writes into the one conversation.
    let (conv2, _) = laptop.say("l1", None, "and from my laptop").await;
    assert_eq!(conv2, conv);

    // An anonymous visitor on a third device is someone else entirely.
    let (_, anon) = try_hello(&s, hello(None, None, None)).await.unwrap();
    assert_ne!(anon.customer_id, w1.customer_id);
    assert!(anon.conversations.is_empty());
    s.stop().await;
}

fn hello_resume_probe(conv: switchboard_protocol::ConversationId) -> ClientMessage {
    ClientMessage::History(switchboard_protocol::client::History {
        conversation_id: conv,
        before: None,
        after: None,
        limit: None,
    })
}

#[tokio::test]
async fn wrong_or_missing_signatures_are_refused_with_4501() {
    let (s, _t) = start(|c| c.identity_required = true).await;
    for bad in [
        hello(None, Some("u-1"), Some(sign("u-2"))),
        hello(None, Some("u-1"), Some("00".repeat(32))),
        hello(None, Some("u-1"), Some("not hex".into())),
        // The site signs ids: an unsigned one is refused.
        hello(None, Some("u-1"), None),
    ] {
        assert_eq!(refused(&s, bad).await, close::UNAUTHORIZED);
    }
    // Anonymous visitors may still chat (anonymous_visitors is on).
    let (mut anon, _) = try_hello(&s, hello(None, None, None)).await.unwrap();
    // And may not claim an id without its signature.
    anon.send(ClientMessage::Identify(Identify {
        user_id: Some("u-1".into()),
        ..Default::default()
    }))
    .await;
    assert_eq!(anon.error().await.code, ErrorCode::Unauthorized);
    s.stop().await;

    // A server without a secret verifies nothing.
    let (s, _t) = start(|c| c.identity_secret = None).await;
    let code = refused(&s, hello(None, Some("u-1"), Some(sign("u-1")))).await;
    assert_eq!(code, close::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn an_unsigned_claim_never_reaches_someone_elses_history() {
    let (s, _t) = start(|_| {}).await;
    // Mallory claims Alice's id without a signature, then writes.
    let (mut mallory, wm) = try_hello(&s, hello(None, None, None)).await.unwrap();
    mallory
        .send(ClientMessage::Identify(Identify {
            user_id: Some("alice".into()),
            ..Default::default()
        }))
        .await;
    mallory.say("m1", None, "I am Alice, honest").await;
    // Unsigned ids in a hello are ignored too.
    let (_, again) = try_hello(&s, hello(None, Some("alice"), None))
        .await
        .unwrap();
    assert_ne!(again.customer_id, wm.customer_id);

    // Alice signs in: a visitor of her own, with none of Mallory's conversation.
    let (mut alice, wa) = try_hello(&s, hello(None, Some("alice"), Some(sign("alice"))))
        .await
        .unwrap();
    assert_ne!(wa.customer_id, wm.customer_id);
    assert!(wa.conversations.is_empty());
    alice.say("a1", None, "hello, it's really me").await;
    // Mallory's profile keeps the claim as a note only.
    let admin = s.admin_token().await;
    let (_, m) = s
        .http(
            "GET",
            &format!("/api/customers/{}", wm.customer_id.0),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(m["external_id"], serde_json::Value::Null, "{m}");
    assert_eq!(m["attributes"]["unverified_user_id"], "alice", "{m}");
    let (_, a) = s
        .http(
            "GET",
            &format!("/api/customers/{}", wa.customer_id.0),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a["external_id"], "alice", "{a}");
    s.stop().await;
}

#[tokio::test]
async fn identify_with_a_signature_links_this_visitor_across_devices() {
    let (s, _t) = start(|_| {}).await;
    let (mut v, w) = try_hello(&s, hello(None, None, None)).await.unwrap();
    let (conv, _) = v.say("b1", None, "before signing in").await;
    v.send(ClientMessage::Identify(Identify {
        user_id: Some("bob".into()),
        hash: Some(sign("bob")),
        name: Some("Bob".into()),
        ..Default::default()
    }))
    .await;
    // A wrong signature is refused with a typed error.
    v.send(ClientMessage::Identify(Identify {
        user_id: Some("bob".into()),
        hash: Some(sign("carol")),
        ..Default::default()
    }))
    .await;
    assert_eq!(v.error().await.code, ErrorCode::Unauthorized);
    // Bob's second device finds the conversation he started before signing in.
    let (_, w2) = try_hello(&s, hello(None, Some("bob"), Some(sign("bob"))))
        .await
        .unwrap();
    assert_eq!(w2.customer_id, w.customer_id);
    assert_eq!(w2.conversations[0].id, conv);
    // Another anonymous visitor cannot take Bob's id even with his signature: he has a history.
    let (mut other, _) = try_hello(&s, hello(None, None, None)).await.unwrap();
    other
        .send(ClientMessage::Identify(Identify {
            user_id: Some("bob".into()),
            hash: Some(sign("bob")),
            ..Default::default()
        }))
        .await;
    assert_eq!(other.error().await.code, ErrorCode::Conflict);
    s.stop().await;
}

#[tokio::test]
async fn anonymous_chat_can_be_switched_off() {
    let (s, _t) = start(|c| c.anonymous_visitors = false).await;
    assert_eq!(
        refused(&s, hello(None, None, None)).await,
        close::UNAUTHORIZED
    );
    let (mut v, w) = try_hello(&s, hello(None, Some("dora"), Some(sign("dora"))))
        .await
        .unwrap();
    let (conv, seq) = v.say("d1", None, "signed in").await;
    // Her token alone (same browser, say after a reload) is still her.
    let (_, w2) = try_hello(&s, hello(Some(w.token.clone()), None, None))
        .await
        .unwrap();
    assert_eq!(w2.customer_id, w.customer_id);
    // The resume point works as for anyone.
    let resumed = ClientMessage::VisitorHello(VisitorHello {
        token: Some(w.token),
        resume: vec![ResumePoint {
            conversation_id: conv,
            last_seq: seq - 1,
        }],
        ..Default::default()
    });
    let (mut r, _) = try_hello(&s, resumed).await.unwrap();
    r.message("signed in").await;
    s.stop().await;
}

/// A profile that changes mid-chat (the visitor's `identify`, an agent's
/// edit over REST) reaches the agents at once as an `updated` event whose
/// view names the customer: consoles kept "Visitor #N" until a reload.
#[tokio::test]
async fn a_profile_change_mid_chat_reaches_the_agents() {
    let (s, _t) = start(|_| {}).await;
    let mut p = s.pair("hello").await;
    p.visitor
        .send(ClientMessage::Identify(Identify {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            ..Default::default()
        }))
        .await;
    let view = updated(&mut p.agent).await;
    assert_eq!(
        (view.id, view.customer_name.as_deref()),
        (p.conv, Some("Ada Lovelace"))
    );
    let admin = s.admin_token().await;
    let path = format!("/api/customers/{}", view.customer_id.0);
    let body = serde_json::json!({"name": "Ada King"});
    let (status, c) = s.http("PATCH", &path, Some(&admin), Some(body)).await;
    assert_eq!(status, 200, "{c}");
    let view = updated(&mut p.agent).await;
    assert_eq!(view.customer_name.as_deref(), Some("Ada King"));
    s.stop().await;
}

/// The next `updated` conversation event's view.
async fn updated(c: &mut Client) -> switchboard_protocol::model::ConversationView {
    c.recv_until(|m| match m {
        ServerMessage::Conversation(e)
            if e.event == switchboard_protocol::server::ConversationEventKind::Updated =>
        {
            Some(e.conversation)
        }
        _ => None,
    })
    .await
}
