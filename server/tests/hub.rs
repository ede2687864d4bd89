//! The hub over real sockets: routing, delivery, resume, durability, slow readers.

mod common;

use common::{Client, TestServer};
use switchboard_protocol::client::{
    ConversationRef, ResumePoint, SendMessage, SetCapacity, Transfer, Typing,
};
use switchboard_protocol::model::{AuthorKind, ConversationStatus};
use switchboard_protocol::server::ConversationEventKind as Ev;
use switchboard_protocol::{close, AgentId, ClientMessage, Encoding, ServerMessage};

async fn round_trip(enc: Encoding) {
    let s = TestServer::start().await;
    let (_, token) = s.agent_account("ann@shop.test", 5).await;
    let (mut agent, welcome) = Client::agent(&s.ws_url(), enc, &token, vec![]).await;
    assert!(welcome.conversations.is_empty());
    let (mut visitor, vw) = Client::visitor(&s.ws_url(), enc, None, vec![]).await;
    assert!(vw.token.starts_with("v1."));

    let (conv, seq) = visitor.say("v-1", None, "Where is my parcel?").await;
    assert_eq!(seq, 1);
    let assigned = agent.event(Ev::Assigned).await;
    assert_eq!(assigned.conversation.id, conv);
    let got = agent.message("Where is my parcel?").await;
    assert_eq!((got.seq, got.author.kind), (1, AuthorKind::Visitor));

    agent
        .send(ClientMessage::Typing(Typing {
            conversation_id: conv,
            typing: true,
        }))
        .await;
    let typing = visitor
        .recv_until(|m| match m {
            ServerMessage::Typing(t) => Some(t),
            _ => None,
        })
        .await;
    assert!(typing.typing && typing.author.kind == AuthorKind::Agent);

    let (_, seq) = agent.say("a-1", Some(conv), "It ships today.").await;
    assert_eq!(seq, 2);
    let reply = visitor.message("It ships today.").await;
    assert_eq!((reply.seq, reply.author.kind), (2, AuthorKind::Agent));
    s.stop().await;
}

#[tokio::test]
async fn visitor_and_agent_talk_in_json() {
    round_trip(Encoding::Json).await;
}

#[tokio::test]
async fn visitor_and_agent_talk_in_bincode() {
    round_trip(Encoding::Bincode).await;
}

#[tokio::test]
async fn a_full_house_queues_visitors_with_positions_and_serves_them_in_order() {
    let s = TestServer::start().await;
    let (_, token) = s.agent_account("ann@shop.test", 1).await;
    let (mut agent, _) = Client::agent(&s.ws_url(), Encoding::Json, &token, vec![]).await;
    let mut visitors = Vec::new();
    for i in 0..3 {
        let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
        let (conv, _) = v.say(&format!("c{i}"), None, &format!("hello {i}")).await;
        visitors.push((v, conv));
    }
    // The first is assigned; the others wait at positions 1 and 2.
    let first = agent.event(Ev::Assigned).await;
    assert_eq!(first.conversation.id, visitors[0].1);
    for (i, (v, conv)) in visitors.iter_mut().enumerate().skip(1) {
        let queued = v.event(Ev::Queued).await;
        assert_eq!(
            (queued.conversation.id, queued.conversation.queue_position),
            (*conv, Some(u32::try_from(i).unwrap()))
        );
    }
    // Closing the first frees the slot: the head of the queue is assigned, the last moves up.
    agent
        .send(ClientMessage::Close(ConversationRef {
            conversation_id: visitors[0].1,
        }))
        .await;
    let next = agent.event(Ev::Assigned).await;
    assert_eq!(next.conversation.id, visitors[1].1);
    let moved = visitors[2]
        .0
        .recv_until(|m| match m {
            ServerMessage::QueuePosition(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!((moved.conversation_id, moved.position), (visitors[2].1, 1));
    // Raising capacity takes the last one too.
    agent
        .send(ClientMessage::SetCapacity(SetCapacity { capacity: 2 }))
        .await;
    let last = agent.event(Ev::Assigned).await;
    assert_eq!(last.conversation.id, visitors[2].1);
    s.stop().await;
}

#[tokio::test]
async fn an_agent_coming_online_takes_the_queue_and_an_agent_can_claim() {
    let s = TestServer::start().await;
    let (_, ann) = s.agent_account("ann@shop.test", 1).await;
    let (_, bob) = s.agent_account("bob@shop.test", 0).await;
    let (mut v1, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (c1, _) = v1.say("x", None, "anyone there?").await;
    let (mut v2, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (c2, _) = v2.say("y", None, "me too").await;
    v1.event(Ev::Queued).await;
    let (mut bob_ws, welcome) = Client::agent(&s.ws_url(), Encoding::Json, &bob, vec![]).await;
    assert_eq!(
        welcome.queue.iter().map(|c| c.id).collect::<Vec<_>>(),
        [c1, c2]
    );
    let (mut ann_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    assert_eq!(ann_ws.event(Ev::Assigned).await.conversation.id, c1);
    // Bob has no capacity but may claim explicitly.
    bob_ws
        .send(ClientMessage::Claim(ConversationRef {
            conversation_id: c2,
        }))
        .await;
    let claimed = v2.event(Ev::Assigned).await;
    assert_eq!(
        claimed.conversation.agent_id.map(|a| a.0),
        Some(welcome.agent.id.0)
    );
    // Claiming it again is refused with a typed error.
    bob_ws
        .send(ClientMessage::Claim(ConversationRef {
            conversation_id: c2,
        }))
        .await;
    assert_eq!(
        bob_ws.error().await.code,
        switchboard_protocol::ErrorCode::InvalidState
    );
    s.stop().await;
}

#[tokio::test]
async fn transfer_moves_the_conversation_and_its_messages() {
    let s = TestServer::start().await;
    let (_, ann) = s.agent_account("ann@shop.test", 5).await;
    // Bob has one free slot (Ann's five win the new conversation), enough to take a transfer.
    let (bob_id, bob) = s.agent_account("bob@shop.test", 1).await;
    let (mut ann_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut bob_ws, _) = Client::agent(&s.ws_url(), Encoding::Json, &bob, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "I need billing help").await;
    ann_ws.event(Ev::Assigned).await;
    ann_ws
        .send(ClientMessage::Transfer(Transfer {
            conversation_id: conv,
            to_agent: AgentId(bob_id),
        }))
        .await;
    let t = bob_ws.event(Ev::Transferred).await;
    assert_eq!(t.conversation.agent_id, Some(AgentId(bob_id)));
    assert!(t.from_agent.is_some());
    v.event(Ev::Transferred).await;
    v.say("2", Some(conv), "still there?").await;
    bob_ws.message("still there?").await;
    // Ann no longer has it: her send is refused, typed.
    ann_ws
        .send(ClientMessage::Send(SendMessage {
            client_id: "a".into(),
            conversation_id: Some(conv),
            text: "hi".into(),
        }))
        .await;
    assert_eq!(
        ann_ws.error().await.code,
        switchboard_protocol::ErrorCode::Forbidden
    );
    s.stop().await;
}

#[tokio::test]
async fn a_visitor_writing_to_a_closed_conversation_reopens_it_with_the_same_agent() {
    let s = TestServer::start().await;
    let mut p = s.pair("hi").await;
    p.agent.close(p.conv).await;
    let closed = p.visitor.event(Ev::Closed).await;
    assert_eq!(closed.conversation.status, ConversationStatus::Closed);
    let (again, seq) = p.visitor.say("2", None, "one more thing").await;
    assert_eq!((again, seq), (p.conv, 2));
    let reopened = p.agent.event(Ev::Assigned).await;
    assert_eq!(reopened.conversation.agent_id, Some(AgentId(p.agent_id)));
    p.agent.message("one more thing").await;
    s.stop().await;
}

#[tokio::test]
async fn every_tab_of_a_visitor_and_of_an_agent_sees_every_event() {
    let s = TestServer::start().await;
    let (_, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut a1, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut a2, _) = Client::agent(&s.ws_url(), Encoding::Bincode, &ann, vec![]).await;
    let (mut v1, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v1.say("1", None, "from tab one").await;
    let (mut v2, w2) = Client::visitor(&s.ws_url(), Encoding::Json, Some(w.token), vec![]).await;
    assert_eq!(w2.customer_id, w.customer_id);
    assert_eq!(w2.conversations[0].id, conv);
    for a in [&mut a1, &mut a2] {
        a.message("from tab one").await;
    }
    v2.say("2", None, "from tab two").await;
    v1.message("from tab two").await;
    a2.say("3", Some(conv), "agent tab two").await;
    for c in [&mut v1, &mut v2, &mut a1] {
        c.message("agent tab two").await;
    }
    // A reload of the console gets the conversation back.
    drop(a1);
    drop(a2);
    let (_, again) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    assert_eq!(
        again.conversations.iter().map(|c| c.id).collect::<Vec<_>>(),
        [conv]
    );
    s.stop().await;
}

#[tokio::test]
async fn reconnecting_resumes_with_no_gap_and_no_duplicate() {
    let s = TestServer::start().await;
    let (_, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut agent, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "m1").await;
    agent.event(Ev::Assigned).await;
    v.message("m1").await;
    drop(v); // the visitor saw seq 1, then went away
    for i in 2..=6 {
        agent
            .say(&format!("a{i}"), Some(conv), &format!("m{i}"))
            .await;
    }
    let (mut v, _) = Client::visitor(
        &s.ws_url(),
        Encoding::Json,
        Some(w.token),
        vec![ResumePoint {
            conversation_id: conv,
            last_seq: 1,
        }],
    )
    .await;
    agent.say("a7", Some(conv), "m7").await;
    let mut seqs = Vec::new();
    while seqs.last() != Some(&7) {
        if let ServerMessage::Message(m) = v.recv().await {
            seqs.push(m.seq);
        }
    }
    assert_eq!(seqs, [2, 3, 4, 5, 6, 7]);
    s.stop().await;
}

#[tokio::test]
async fn a_resent_client_id_is_stored_once_and_acked_with_the_same_ids() {
    let s = TestServer::start().await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, seq) = v.say("same", None, "once").await;
    let (conv2, seq2) = v.say("same", None, "once").await;
    assert_eq!((conv, seq), (conv2, seq2));
    let (_, next) = v.say("other", None, "twice").await;
    assert_eq!(next, seq + 1);
    let admin = s.admin_token().await;
    let (_, body) = s
        .http(
            "GET",
            &format!("/api/conversations/{conv}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 2, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_every_acknowledged_message_and_the_routing_state() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(common::config(temp.path())).await;
    let (ann_id, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut agent, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, w) = Client::visitor(&s.ws_url(), Encoding::Bincode, None, vec![]).await;
    let mut conv = None;
    for i in 0..50 {
        conv = Some(v.say(&format!("c{i}"), conv, &format!("msg {i}")).await.0);
    }
    let conv = conv.unwrap();
    agent.event(Ev::Assigned).await;
    // Graceful stop: sessions are told to come back (1001).
    let stopping = tokio::spawn(async move { (v.closed().await, agent.closed().await) });
    s.stop().await;
    assert_eq!(
        stopping.await.unwrap(),
        (close::GOING_AWAY, close::GOING_AWAY)
    );

    let s = TestServer::start_with(common::config(temp.path())).await;
    let ann = s.login("ann@shop.test", "password-1").await;
    let (_, welcome) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    assert_eq!(welcome.conversations[0].id, conv);
    assert_eq!(welcome.conversations[0].agent_id, Some(AgentId(ann_id)));
    assert_eq!(welcome.conversations[0].last_seq, 50);
    let (mut v, _) = Client::visitor(
        &s.ws_url(),
        Encoding::Json,
        Some(w.token),
        vec![ResumePoint {
            conversation_id: conv,
            last_seq: 0,
        }],
    )
    .await;
    for i in 0..50 {
        let m = v.message(&format!("msg {i}")).await;
        assert_eq!(m.seq, i + 1);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_slow_reader_is_cut_off_and_others_keep_going() {
    let temp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(temp.path());
    cfg.outbound_queue = 8;
    cfg.socket_send_buffer_bytes = Some(8192);
    let s = TestServer::start_with(cfg).await;
    let (_, ann) = s.agent_account("ann@shop.test", 5).await;
    let (mut agent, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    // Two tabs of one visitor: one reads, one never does.
    let (mut reader, w) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = reader.say("0", None, "start").await;
    let mut stalled = Client::connect_slow(s.addr, Encoding::Json).await;
    stalled
        .send(ClientMessage::VisitorHello(
            switchboard_protocol::client::VisitorHello {
                token: Some(w.token.clone()),
                resume: vec![],
                page_url: None,
                ..Default::default()
            },
        ))
        .await;
    agent.event(Ev::Assigned).await;
    // Big messages fill the stalled tab's socket buffers, then its queue.
    // Stop as soon as the server has cut it off: the stalled tab then reads
    // its close frame (the server waits a second for that, however loaded
    // the machine is, before it drops the connection).
    let text = "x".repeat(3900);
    let cut_off = "switchboard_slow_consumer_disconnects_total 1";
    let mut sent = 0;
    for i in 0..400 {
        agent
            .say(&format!("a{i}"), Some(conv), &format!("{i} {text}"))
            .await;
        reader
            .recv_until(|m| matches!(m, ServerMessage::Message(m) if m.seq == i + 2).then_some(()))
            .await;
        sent = i + 1;
        if sent % 8 == 0
            && common::http_text(s.addr, "/metrics")
                .await
                .contains(cut_off)
        {
            break;
        }
    }
    assert_eq!(stalled.closed().await, close::SLOW_CONSUMER);
    let metrics = common::http_text(s.addr, "/metrics").await;
    assert!(metrics.contains(cut_off), "{metrics}");
    // It resumes by sequence number and gets everything.
    let (mut back, _) = Client::visitor(
        &s.ws_url(),
        Encoding::Json,
        Some(w.token),
        vec![ResumePoint {
            conversation_id: conv,
            last_seq: 0,
        }],
    )
    .await;
    let mut n = 0;
    while n < sent + 1 {
        if let ServerMessage::Message(m) = back.recv().await {
            n += 1;
            assert_eq!(m.seq, n);
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn a_retry_into_a_closed_conversation_does_not_reopen_it() {
    let s = TestServer::start().await;
    let mut p = s.pair("bye").await;
    p.agent.close(p.conv).await;
    p.visitor.event(Ev::Closed).await;
    assert_eq!(p.visitor.say("first", None, "bye").await, (p.conv, 1));
    let admin = s.admin_token().await;
    let (_, body) = s
        .http(
            "GET",
            &format!("/api/conversations/{}", p.conv),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(body["conversation"]["status"], "closed", "{body}");
    s.stop().await;
}
