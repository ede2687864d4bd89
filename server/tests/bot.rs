//! The NLP pipeline live: every visitor message carries its analysis; the bot
//! answers what it knows, and hands off to a person when asked or unsure.

mod common;

use common::{Client, TestServer};
use switchboard_protocol::model::{AuthorKind, ConversationStatus};
use switchboard_protocol::server::ConversationEventKind as Ev;
use switchboard_protocol::{Encoding, ServerMessage};

async fn bot_server() -> (TestServer, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(temp.path());
    cfg.bot = true;
    (TestServer::start_with(cfg).await, temp)
}

fn bot_reply(m: ServerMessage) -> Option<switchboard_protocol::model::Message> {
    match m {
        ServerMessage::Message(m) if m.author.kind == AuthorKind::Bot => Some(m),
        _ => None,
    }
}

#[tokio::test]
async fn the_bot_answers_what_it_knows_and_agents_see_the_analysis() {
    let (s, _dir) = bot_server().await;
    let (_, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut agent, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v
        .say(
            "1",
            None,
            "Where is my order SB-10442? Mail me at ada@example.com",
        )
        .await;
    let echo = v
        .message("Where is my order SB-10442? Mail me at ada@example.com")
        .await;
    let a = echo
        .analysis
        .expect("visitor messages carry their analysis");
    assert_eq!(a.language, "en");
    assert_eq!(a.intent.as_deref(), Some("order_status"), "{a:?}");
    assert!(a.bot_answered);
    let kinds: Vec<_> = a.entities.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"email") && kinds.contains(&"order_number"),
        "{kinds:?}"
    );
    let answer = v.recv_until(bot_reply).await;
    assert_eq!((answer.conversation_id, answer.seq), (conv, 2));
    // Agents see the conversation with the bot, and the bot typing.
    let created = agent.event(Ev::Created).await;
    assert_eq!(created.conversation.status, ConversationStatus::Bot);
    let typing = agent
        .recv_until(|m| match m {
            ServerMessage::Typing(t) => Some(t),
            _ => None,
        })
        .await;
    assert_eq!(typing.author.kind, AuthorKind::Bot);
    // The email the visitor wrote filled the empty profile.
    let admin = s.admin_token().await;
    let (_, profile) = s
        .http(
            "GET",
            &format!("/api/customers/{}", w.customer_id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(profile["email"], "ada@example.com");
    s.stop().await;
}

#[tokio::test]
async fn asking_for_a_person_hands_off_to_an_agent() {
    let (s, _dir) = bot_server().await;
    let (_, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut agent, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v
        .say("1", None, "I want to talk to a real person please")
        .await;
    let line = v.recv_until(bot_reply).await;
    assert!(line.text.contains("connecting you"), "{}", line.text);
    let assigned = agent.event(Ev::Assigned).await;
    assert_eq!(assigned.conversation.id, conv);
    // From now on the bot stays out: the agent answers.
    v.say("2", Some(conv), "hello?").await;
    agent.message("hello?").await;
    agent.say("a", Some(conv), "Hi, I'm Ann.").await;
    let reply = v
        .recv_until(|m| match m {
            ServerMessage::Message(m) if m.author.kind != AuthorKind::Visitor => Some(m),
            _ => None,
        })
        .await;
    assert_eq!(reply.author.kind, AuthorKind::Agent);
    s.stop().await;
}

#[tokio::test]
async fn chinese_questions_get_chinese_answers() {
    let (s, _dir) = bot_server().await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.say("1", None, "我的订单到哪里了？").await;
    let echo = v.message("我的订单到哪里了？").await;
    assert_eq!(
        echo.analysis.as_ref().map(|a| a.language.as_str()),
        Some("zh")
    );
    let answer = v.recv_until(bot_reply).await;
    assert!(
        answer
            .text
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{}",
        answer.text
    );
    s.stop().await;
}

#[tokio::test]
async fn an_angry_visitor_goes_to_a_person_with_raised_priority() {
    let (s, _dir) = bot_server().await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.say(
        "1",
        None,
        "This is absolutely terrible, the worst service ever, I am furious!",
    )
    .await;
    let queued = v.event(Ev::Queued).await;
    assert!(
        queued.conversation.priority > 0,
        "{:?}",
        queued.conversation
    );
    assert!(queued.conversation.sentiment.is_some_and(|s| s < 0.0));
    s.stop().await;
}

#[tokio::test]
async fn admins_edit_the_knowledge_base_and_it_survives_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(temp.path());
    cfg.bot = true;
    let s = TestServer::start_with(cfg.clone()).await;
    let admin = s.admin_token().await;
    let (_, agent) = s.agent_account("ann@shop.test", 5).await;
    let (st, body) = s
        .http(
            "POST",
            "/api/nlp/analyze",
            Some(&agent),
            Some(serde_json::json!({"text": "what are your opening hours?"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["analysis"]["intent"], "opening_hours");
    assert_eq!(body["decision"]["type"], "answer");
    let (_, mut kb) = s
        .http("GET", "/api/nlp/knowledge", Some(&agent), None)
        .await;
    kb["intents"]["opening_hours"]["en"] = serde_json::json!("We are open around the clock.");
    let (st, _) = s
        .http("PUT", "/api/nlp/knowledge", Some(&agent), Some(kb.clone()))
        .await;
    assert_eq!(st, 403, "agents may read but not change the knowledge base");
    let (st, body) = s
        .http("PUT", "/api/nlp/knowledge", Some(&admin), Some(kb))
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = s
        .http(
            "PUT",
            "/api/nlp/knowledge",
            Some(&admin),
            Some(serde_json::json!({"intents": 5})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .http(
            "POST",
            "/api/nlp/model",
            Some(&admin),
            Some(serde_json::json!({"path": "/nonexistent/model"})),
        )
        .await;
    assert_eq!(st, 400);
    s.stop().await;

    let s = TestServer::start_with(cfg).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    v.say("1", None, "what are your opening hours?").await;
    let answer = v.recv_until(bot_reply).await;
    assert!(
        answer.text.starts_with("We are open around the clock."),
        "{}",
        answer.text
    );
    s.stop().await;
}

/// `POST /api/nlp/model` read the whole file it was given: `/dev/zero` (or
/// any huge file) filled the server's memory until the kernel killed it.
/// Now only a regular file of at most `MAX_MODEL_FILE_BYTES` is read.
#[tokio::test]
async fn a_model_path_to_a_device_or_a_huge_file_is_refused() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    // Sparse: takes no disk space, but is one byte over the limit.
    let huge = dir.path().join("huge.model");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(switchboard_nlp::MAX_MODEL_FILE_BYTES + 1)
        .unwrap();
    // The oversized file comes first: before the fix it is read (256 MiB)
    // and this fails; /dev/zero is only tried once files are bounded.
    for (path, why) in [
        (huge.to_str().unwrap(), "larger than"),
        ("/dev/zero", "not a regular file"),
    ] {
        let (st, body) = s
            .http(
                "POST",
                "/api/nlp/model",
                Some(&admin),
                Some(serde_json::json!({ "path": path })),
            )
            .await;
        assert_eq!(st, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{path}: {body}");
    }
    // The server is still up, with its model.
    let (st, body) = s
        .http(
            "POST",
            "/api/nlp/analyze",
            Some(&admin),
            Some(serde_json::json!({"text": "where is my order?"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    s.stop().await;
}
