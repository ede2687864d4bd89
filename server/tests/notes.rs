//! Private notes on a real server: agents write and receive them, the
//! visitor never does (live, in history, or on resume), they are kept across
//! a restart and listed by REST, and a resend adds nothing.

mod common;

use common::{config, Client, TestServer};
use serde_json::json;
use switchboard_protocol::client::{History, NoteRequest};
use switchboard_protocol::model::AuthorKind;
use switchboard_protocol::server::Note;
use switchboard_protocol::{ClientMessage, ConversationId, Encoding, ErrorCode, ServerMessage};

fn note(conv: ConversationId, client_id: &str, text: &str) -> ClientMessage {
    ClientMessage::Note(NoteRequest {
        conversation_id: conv,
        client_id: client_id.into(),
        text: text.into(),
    })
}

async fn next_note(c: &mut Client) -> Note {
    c.recv_until(|m| match m {
        ServerMessage::Note(n) => Some(n),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn agents_share_private_notes_that_the_visitor_never_receives() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(config(temp.path())).await;
    let mut p = s.pair("hello, my parcel is late").await;
    let (_, bob_token) = s.agent_account("bob@shop.test", 5).await;
    let (mut bob, _) = Client::agent(&s.ws_url(), Encoding::Json, &bob_token, vec![]).await;

    let text = "VIP customer: <b>refund</b> without asking for photos.";
    p.agent.send(note(p.conv, "n-1", text)).await;
    let mine = next_note(&mut p.agent).await;
    assert_eq!((mine.text.as_str(), mine.client_id.as_str()), (text, "n-1"));
    assert_eq!((mine.conversation_id, mine.author.id), (p.conv, p.agent_id));
    assert_eq!(next_note(&mut bob).await, mine);

    // Even an agent who does not have the conversation may leave one.
    bob.send(note(p.conv, "b-1", "I handled this customer last week."))
        .await;
    let bobs = next_note(&mut bob).await;
    assert_eq!(next_note(&mut p.agent).await, bobs);

    // A resend of n-1 stores nothing new and answers with the stored note.
    p.agent.send(note(p.conv, "n-1", text)).await;
    assert_eq!(next_note(&mut p.agent).await, mine);

    // The visitor: nothing of it live (the next thing they get is the
    // agent's reply), nor in their history.
    p.agent.say("r-1", Some(p.conv), "Let me look.").await;
    let next = p.visitor.recv_until(|m| match m {
        ServerMessage::Note(n) => Some(Err(n)),
        ServerMessage::Message(m) if m.author.kind == AuthorKind::Agent => Some(Ok(m)),
        _ => None,
    });
    assert_eq!(next.await.unwrap().text, "Let me look.");
    p.visitor
        .send(ClientMessage::History(History {
            conversation_id: p.conv,
            before: None,
            after: None,
            limit: None,
        }))
        .await;
    let page = p
        .visitor
        .recv_until(|m| match m {
            ServerMessage::History(h) => Some(h),
            _ => None,
        })
        .await;
    assert!(page.messages.iter().all(|m| m.text != text), "{page:?}");

    // Refusals: a visitor, an unknown conversation, blank or oversized text.
    p.visitor
        .send(note(p.conv, "v-1", "can I write one?"))
        .await;
    assert_eq!(p.visitor.error().await.code, ErrorCode::Forbidden);
    for (msg, code) in [
        (
            note(ConversationId(999_999), "x-1", "hi"),
            ErrorCode::NotFound,
        ),
        (note(p.conv, "x-2", "   "), ErrorCode::BadRequest),
        (note(p.conv, "", "no id"), ErrorCode::BadRequest),
        (note(p.conv, "x-3", &"y".repeat(4001)), ErrorCode::TooLarge),
    ] {
        bob.send(msg).await;
        assert_eq!(bob.error().await.code, code);
    }

    // Kept across a restart; REST lists them, oldest first, to agents only.
    s.stop().await;
    let s = TestServer::start_with(config(temp.path())).await;
    let admin = s.admin_token().await;
    let path = format!("/api/conversations/{}", p.conv.0);
    let (status, body) = s.http("GET", &path, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    let notes: Vec<Note> = serde_json::from_value(body["notes"].clone()).unwrap();
    assert_eq!(notes, [mine, bobs]);
    let (status, _) = s.http("GET", &path, Some(&p.visitor_token), None).await;
    assert_eq!(status, 401);
    let (status, body) = s.http("GET", &path, Some(&bob_token), None).await;
    assert_eq!(
        (status, body["notes"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    assert_eq!(body["notes"][0]["text"], json!(text));
    s.stop().await;
}
