//! Routing by team, over real sockets: the bot's hand-off takes the team of
//! the visitor's topic from the knowledge base, a team member gets it before
//! an agent with more room, a full team waits for its member, an empty team
//! overflows to anyone; agents move conversations to a team; a transfer to a
//! person needs them online with room; and teams survive a restart.

mod common;

use common::{Client, TestServer};
use serde_json::json;
use switchboard_protocol::client::{ConversationRef, Transfer, TransferToTeam};
use switchboard_protocol::model::{AuthorKind, ConversationStatus};
use switchboard_protocol::server::{ConversationEvent, ConversationEventKind as Ev};
use switchboard_protocol::{
    AgentId, ClientMessage, ConversationId, Encoding, ErrorCode, ServerMessage,
};

fn bot_config(dir: &std::path::Path) -> switchboard_server::config::Config {
    let mut cfg = common::config(dir);
    cfg.bot = true;
    cfg
}

/// The next `conversation` event about `conv` of kind `kind`.
async fn event_about(c: &mut Client, conv: ConversationId, kind: Ev) -> ConversationEvent {
    c.recv_until(|m| match m {
        ServerMessage::Conversation(e) if e.conversation.id == conv && e.event == kind => Some(e),
        _ => None,
    })
    .await
}

/// A new visitor asks where their order is (the bot answers: topic `orders`),
/// then for a person (the hand-off). Returns the visitor and the conversation.
async fn order_question(s: &TestServer) -> (Client, ConversationId) {
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "Where is my order SB-10442?").await;
    let answer = v
        .recv_until(|m| match m {
            ServerMessage::Message(m) if m.seq == 2 => Some(m),
            _ => None,
        })
        .await;
    assert!(answer.text.contains("My orders"), "{}", answer.text);
    v.say("2", Some(conv), "I want to talk to a real person please")
        .await;
    (v, conv)
}

fn transfer_to_team(conv: ConversationId, team: &str) -> ClientMessage {
    ClientMessage::TransferToTeam(TransferToTeam {
        conversation_id: conv,
        team: team.into(),
    })
}

#[tokio::test]
async fn an_order_question_goes_to_the_orders_team_which_overflows_only_when_empty() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(bot_config(temp.path())).await;
    let (olga, olga_token) = s.agent_in_teams("olga@shop.test", 1, &["orders"]).await;
    let (bill, bill_token) = s.agent_in_teams("bill@shop.test", 5, &["billing"]).await;
    let (mut olga_ws, w) = Client::agent(&s.ws_url(), Encoding::Json, &olga_token, vec![]).await;
    assert_eq!(w.agent.teams, ["orders"]);
    let (mut bill_ws, w) = Client::agent(&s.ws_url(), Encoding::Json, &bill_token, vec![]).await;
    let olga_presence = w.agents.iter().find(|p| p.agent_id == AgentId(olga));
    assert_eq!(olga_presence.unwrap().teams, ["orders"]);

    // Bill has five free slots to Olga's one, but the conversation is about an order.
    let (_v1, c1) = order_question(&s).await;
    let got = event_about(&mut olga_ws, c1, Ev::Assigned).await;
    assert_eq!(got.conversation.agent_id, Some(AgentId(olga)));
    assert_eq!(got.conversation.team.as_deref(), Some("orders"));

    // Olga is full: the next order conversation waits for her, Bill's room notwithstanding.
    let (_v2, c2) = order_question(&s).await;
    let queued = event_about(&mut bill_ws, c2, Ev::Queued).await;
    assert_eq!(queued.conversation.team.as_deref(), Some("orders"));
    assert_eq!(queued.conversation.queue_position, Some(1));
    let admin = s.admin_token().await;
    let (_, listed) = s
        .http("GET", "/api/conversations?team=orders", Some(&admin), None)
        .await;
    assert_eq!(
        listed["conversations"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    assert_eq!(listed["conversations"][0]["team"], "orders");

    // Olga goes offline: nobody of the orders team is left, so Bill takes it.
    olga_ws.ws.close(None).await.unwrap();
    let overflow = event_about(&mut bill_ws, c2, Ev::Assigned).await;
    assert_eq!(overflow.conversation.agent_id, Some(AgentId(bill)));
    assert_eq!(overflow.conversation.team.as_deref(), Some("orders"));
    s.stop().await;
}

#[tokio::test]
async fn agents_move_conversations_to_a_team_and_a_full_team_waits_for_its_member() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.agent_account("ann@shop.test", 5).await;
    let (olga, olga_token) = s.agent_in_teams("olga@shop.test", 1, &["orders"]).await;
    let (mut ann_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann_token, vec![]).await;
    let (mut olga_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &olga_token, vec![]).await;
    let (mut v1, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (c1, _) = v1.say("1", None, "hello").await;
    let (mut v2, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (c2, _) = v2.say("1", None, "hello too").await;
    for c in [c1, c2] {
        let e = event_about(&mut ann_ws, c, Ev::Assigned).await;
        assert_eq!(
            e.conversation.agent_id,
            Some(AgentId(ann)),
            "no team: most room"
        );
    }

    // A team nobody is in, or no team name at all, is refused.
    ann_ws.send(transfer_to_team(c1, "returns")).await;
    assert_eq!(ann_ws.error().await.code, ErrorCode::NotFound);
    ann_ws.send(transfer_to_team(c1, "Orders!")).await;
    assert_eq!(ann_ws.error().await.code, ErrorCode::BadRequest);

    // To the orders team: Olga gets it, and the visitor is told.
    ann_ws.send(transfer_to_team(c1, "orders")).await;
    let moved = event_about(&mut olga_ws, c1, Ev::Transferred).await;
    assert_eq!(moved.conversation.agent_id, Some(AgentId(olga)));
    assert_eq!(moved.conversation.team.as_deref(), Some("orders"));
    assert_eq!(moved.from_agent, Some(AgentId(ann)));
    assert_eq!(
        event_about(&mut v1, c1, Ev::Transferred)
            .await
            .conversation
            .team
            .as_deref(),
        Some("orders")
    );

    // Olga is full: the second waits for her (Ann, who has room, is not in the team).
    ann_ws.send(transfer_to_team(c2, "orders")).await;
    let waiting = event_about(&mut ann_ws, c2, Ev::Transferred).await;
    assert_eq!(waiting.conversation.status, ConversationStatus::Queued);
    assert_eq!(waiting.conversation.agent_id, None);
    assert_eq!(waiting.conversation.queue_position, Some(1));
    // Olga closes the first: her freed slot takes the waiting one.
    olga_ws.close(c1).await;
    let taken = event_about(&mut olga_ws, c2, Ev::Assigned).await;
    assert_eq!(taken.conversation.agent_id, Some(AgentId(olga)));
    v2.say("2", Some(c2), "anyone?").await;
    olga_ws.message("anyone?").await;
    s.stop().await;
}

#[tokio::test]
async fn a_conversation_with_the_bot_moves_to_a_team_and_an_admin_moves_anyones() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(bot_config(temp.path())).await;
    let (olga, olga_token) = s.agent_in_teams("olga@shop.test", 5, &["orders"]).await;
    let (bill, bill_token) = s.agent_in_teams("bill@shop.test", 5, &["billing"]).await;
    let (ann, ann_token) = s.agent_account("ann@shop.test", 5).await;
    let admin_token = s.admin_token().await;
    let (mut olga_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &olga_token, vec![]).await;
    let (mut bill_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &bill_token, vec![]).await;
    let (mut ann_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann_token, vec![]).await;
    let (mut admin_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &admin_token, vec![]).await;

    // The bot has it; Ann (no team, not an admin) moves it to orders, as she could claim it.
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "Where is my order SB-10442?").await;
    let created = event_about(&mut ann_ws, conv, Ev::Created).await;
    assert_eq!(created.conversation.status, ConversationStatus::Bot);
    let answer = v
        .recv_until(|m| match m {
            ServerMessage::Message(m) if m.seq == 2 => Some(m),
            _ => None,
        })
        .await;
    assert_eq!(answer.author.kind, AuthorKind::Bot);
    ann_ws.send(transfer_to_team(conv, "orders")).await;
    let moved = event_about(&mut olga_ws, conv, Ev::Transferred).await;
    assert_eq!(
        (
            moved.conversation.status,
            moved.conversation.agent_id,
            moved.conversation.team.as_deref(),
            moved.from_agent
        ),
        (
            ConversationStatus::Assigned,
            Some(AgentId(olga)),
            Some("orders"),
            None
        )
    );
    assert_eq!(moved.by.map(|b| b.id), Some(ann));
    // The bot has let go: the visitor's next question reaches Olga, and the bot stays quiet.
    v.say("2", Some(conv), "Where is my order SB-10442?").await;
    olga_ws.message("Where is my order SB-10442?").await;
    olga_ws.say("o1", Some(conv), "Olga here, looking.").await;
    let next = v
        .recv_until(|m| match m {
            ServerMessage::Message(m) if m.seq > 3 && m.author.kind != AuthorKind::Visitor => {
                Some(m)
            }
            _ => None,
        })
        .await;
    assert_eq!(
        (next.author.kind, next.text.as_str()),
        (AuthorKind::Agent, "Olga here, looking.")
    );

    // Ann may not move Olga's conversation; an admin may, to billing: Bill gets it.
    ann_ws.send(transfer_to_team(conv, "billing")).await;
    assert_eq!(ann_ws.error().await.code, ErrorCode::Forbidden);
    admin_ws.send(transfer_to_team(conv, "billing")).await;
    let moved = bill_ws
        .recv_until(|m| match m {
            ServerMessage::Conversation(e)
                if e.event == Ev::Transferred
                    && e.conversation.team.as_deref() == Some("billing") =>
            {
                Some(e)
            }
            _ => None,
        })
        .await;
    assert_eq!(
        (moved.conversation.agent_id, moved.from_agent),
        (Some(AgentId(bill)), Some(AgentId(olga)))
    );
    // A closed conversation moves nowhere.
    bill_ws.close(conv).await;
    admin_ws.send(transfer_to_team(conv, "orders")).await;
    assert_eq!(admin_ws.error().await.code, ErrorCode::InvalidState);
    s.stop().await;
}

#[tokio::test]
async fn a_transfer_to_an_offline_away_or_full_agent_is_refused_and_changes_nothing() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.agent_account("ann@shop.test", 5).await;
    let (bob, bob_token) = s.agent_account("bob@shop.test", 1).await;
    let (cy, _) = s.agent_account("cy@shop.test", 5).await;
    let (mut ann_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann_token, vec![]).await;
    let (mut bob_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &bob_token, vec![]).await;
    let (mut v1, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (c1, _) = v1.say("1", None, "first").await;
    let (mut v2, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (c2, _) = v2.say("1", None, "second").await;
    for c in [c1, c2] {
        event_about(&mut ann_ws, c, Ev::Assigned).await;
    }
    let transfer = |conv: ConversationId, to: u64| {
        ClientMessage::Transfer(Transfer {
            conversation_id: conv,
            to_agent: AgentId(to),
        })
    };
    // Bob's one slot takes c2; then he is full.
    ann_ws.send(transfer(c2, bob)).await;
    event_about(&mut bob_ws, c2, Ev::Transferred).await;
    let refused = [
        (bob, "that agent has no free slot"),
        (cy, "that agent is offline"),
    ];
    for (to, why) in refused {
        ann_ws.send(transfer(c1, to)).await;
        let e = ann_ws.error().await;
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::InvalidState, why));
        assert_eq!(e.conversation_id, Some(c1));
    }
    // Away is refused too, room or not.
    bob_ws.close(c2).await;
    event_about(&mut bob_ws, c2, Ev::Closed).await;
    bob_ws
        .send(ClientMessage::SetStatus(
            switchboard_protocol::client::SetStatus {
                status: switchboard_protocol::model::AgentStatus::Away,
            },
        ))
        .await;
    bob_ws
        .recv_until(|m| match m {
            ServerMessage::Presence(p) if p.agent_id == AgentId(bob) && p.active == 0 => Some(()),
            _ => None,
        })
        .await;
    ann_ws.send(transfer(c1, bob)).await;
    let e = ann_ws.error().await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::InvalidState, "that agent is away")
    );

    // Nothing moved: c1 is Ann's, in the store and live.
    let admin = s.admin_token().await;
    let (_, got) = s
        .http(
            "GET",
            &format!("/api/conversations/{}", c1.0),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(got["conversation"]["agent_id"], json!(ann));
    v1.say("2", Some(c1), "still with Ann?").await;
    ann_ws.message("still with Ann?").await;
    s.stop().await;
}

#[tokio::test]
async fn teams_and_a_waiting_conversations_team_survive_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(bot_config(temp.path())).await;
    let (olga, olga_token) = s.agent_in_teams("olga@shop.test", 1, &["orders"]).await;
    let (bill, _) = s.agent_in_teams("bill@shop.test", 5, &["billing"]).await;
    let admin = s.admin_token().await;
    let (status, _) = s
        .http(
            "PATCH",
            &format!("/api/agents/{bill}"),
            Some(&admin),
            Some(json!({"teams": ["billing", "refunds", "billing"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (mut olga_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &olga_token, vec![]).await;
    let (_v1, c1) = order_question(&s).await;
    event_about(&mut olga_ws, c1, Ev::Assigned).await;
    let (_v2, c2) = order_question(&s).await;
    event_about(&mut olga_ws, c2, Ev::Queued).await;
    drop(olga_ws);
    s.stop().await;

    let s = TestServer::start_with(bot_config(temp.path())).await;
    let admin = s.admin_token().await;
    let (_, agents) = s.http("GET", "/api/agents", Some(&admin), None).await;
    let teams_of = |id: u64| {
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == json!(id))
            .map(|a| a["teams"].clone())
    };
    assert_eq!(teams_of(olga), Some(json!(["orders"])));
    assert_eq!(teams_of(bill), Some(json!(["billing", "refunds"])));
    let (_, got) = s
        .http(
            "GET",
            &format!("/api/conversations/{}", c2.0),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(got["conversation"]["team"], "orders");

    // The rebuilt routing table knows both: Olga is back (still full with c1),
    // and Bill's room does not take the orders conversation waiting.
    let olga_token = s.login("olga@shop.test", "password-1").await;
    let (mut olga_ws, w) = Client::agent(&s.ws_url(), Encoding::Json, &olga_token, vec![]).await;
    assert_eq!(
        w.conversations.iter().map(|c| c.id).collect::<Vec<_>>(),
        [c1]
    );
    let bill_token = s.login("bill@shop.test", "password-1").await;
    let (_bill_ws, w) = Client::agent(&s.ws_url(), Encoding::Json, &bill_token, vec![]).await;
    assert!(w.conversations.is_empty(), "{:?}", w.conversations);
    assert_eq!(w.queue.len(), 1);
    assert_eq!(
        (w.queue[0].id, w.queue[0].team.as_deref()),
        (c2, Some("orders"))
    );
    // Olga frees her slot: the orders conversation is hers.
    olga_ws
        .send(ClientMessage::Close(ConversationRef {
            conversation_id: c1,
        }))
        .await;
    let taken = event_about(&mut olga_ws, c2, Ev::Assigned).await;
    assert_eq!(taken.conversation.agent_id, Some(AgentId(olga)));
    s.stop().await;
}

#[tokio::test]
async fn an_admin_hands_a_waiting_conversation_to_a_named_agent_and_an_agent_cannot() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(bot_config(temp.path())).await;
    let (ann, ann_token) = s.agent_account("ann@shop.test", 5).await;
    let (bob, bob_token) = s.agent_account("bob@shop.test", 5).await;
    let admin_token = s.admin_token().await;
    let (mut ann_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann_token, vec![]).await;
    let (mut bob_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &bob_token, vec![]).await;
    let (mut admin_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &admin_token, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "Where is my order SB-10442?").await;
    let created = event_about(&mut ann_ws, conv, Ev::Created).await;
    assert_eq!(created.conversation.status, ConversationStatus::Bot);
    let transfer = |to| {
        ClientMessage::Transfer(Transfer {
            conversation_id: conv,
            to_agent: AgentId(to),
        })
    };
    // Bob may take it himself (claim), not hand it to Ann.
    bob_ws.send(transfer(ann)).await;
    assert_eq!(bob_ws.error().await.code, ErrorCode::Forbidden);
    // An admin may: Ann gets it, the bot lets go.
    admin_ws.send(transfer(ann)).await;
    let assigned = event_about(&mut ann_ws, conv, Ev::Assigned).await;
    assert_eq!(
        (assigned.conversation.status, assigned.conversation.agent_id),
        (ConversationStatus::Assigned, Some(AgentId(ann)))
    );
    assert_eq!(
        assigned.by.map(|b| b.kind),
        Some(switchboard_protocol::model::AuthorKind::Agent)
    );
    v.say("2", Some(conv), "Where is my order SB-10442?").await;
    ann_ws.message("Where is my order SB-10442?").await;
    // Assigned now: handing it to Bob is an ordinary transfer.
    admin_ws.send(transfer(bob)).await;
    let moved = event_about(&mut bob_ws, conv, Ev::Transferred).await;
    assert_eq!(moved.from_agent, Some(AgentId(ann)));
    s.stop().await;
}
