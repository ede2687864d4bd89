//! Kill the real binary with SIGKILL while visitors are sending, several
//! times, restarting on the same data folder: every acknowledged message must
//! be there afterwards, exactly once and in order, and the store must reopen.

mod common;

use common::Client;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_protocol::client::SendMessage;
use switchboard_protocol::{ClientMessage, ConversationId, Encoding, ServerMessage};

const KILLS: usize = 5;
const VISITORS: usize = 16;

fn spawn(dir: &std::path::Path) -> (common::Spawned, SocketAddr) {
    common::spawn_binary(dir, &[("SWITCHBOARD_NLP", "false")])
}

/// What one visitor had acknowledged: (conversation, seq, text).
type Acked = Arc<Mutex<Vec<(ConversationId, u64, String)>>>;

/// Sends numbered messages until the connection dies; records each ack.
async fn chatter(
    addr: SocketAddr,
    token: Option<String>,
    acked: Acked,
    next: usize,
) -> (Option<String>, usize) {
    let Ok(mut c) = Client::connect_with(&format!("ws://{addr}/ws"), Encoding::Bincode, None).await
    else {
        return (token, next);
    };
    c.send(ClientMessage::VisitorHello(
        switchboard_protocol::client::VisitorHello {
            token: token.clone(),
            resume: vec![],
            page_url: None,
            ..Default::default()
        },
    ))
    .await;
    let token =
        match tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut c.ws))
            .await
        {
            Ok(Some(Ok(frame))) => match c.enc.decode_binary::<ServerMessage>(&frame.into_data()) {
                Ok(ServerMessage::VisitorWelcome(w)) => Some(w.token),
                _ => return (token, next),
            },
            _ => return (token, next),
        };
    let mut n = next;
    loop {
        let text = format!("message {n}");
        let send = SendMessage {
            client_id: format!("c{n}"),
            conversation_id: None,
            text: text.clone(),
        };
        if futures::SinkExt::send(
            &mut c.ws,
            tokio_tungstenite::tungstenite::Message::binary(
                c.enc.encode(&ClientMessage::Send(send)).into_binary(),
            ),
        )
        .await
        .is_err()
        {
            return (token, n);
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut c.ws))
                .await
            {
                Ok(Some(Ok(frame))) => {
                    if let Ok(ServerMessage::Ack(a)) =
                        c.enc.decode_binary::<ServerMessage>(&frame.into_data())
                    {
                        acked
                            .lock()
                            .unwrap()
                            .push((a.conversation_id, a.seq, text.clone()));
                        break;
                    }
                }
                // Killed before the ack: this message may or may not be stored; it was never promised.
                _ => return (token, n + 1),
            }
        }
        n += 1;
    }
}

trait IntoBinary {
    fn into_binary(self) -> Vec<u8>;
}
impl IntoBinary for switchboard_protocol::Encoded {
    fn into_binary(self) -> Vec<u8> {
        match self {
            switchboard_protocol::Encoded::Binary(b) => b,
            switchboard_protocol::Encoded::Text(t) => t.into_bytes(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Vec<Acked> = (0..VISITORS).map(|_| Acked::default()).collect();
    let mut state: Vec<(Option<String>, usize)> = vec![(None, 0); VISITORS];
    for round in 0..KILLS {
        let (mut child, addr) = spawn(dir.path());
        let tasks: Vec<_> = state
            .iter()
            .zip(&acked)
            .map(|((token, next), acked)| {
                tokio::spawn(chatter(addr, token.clone(), acked.clone(), *next))
            })
            .collect();
        // Kill at a moment that varies per round (no fixed seed needed: any moment must be safe).
        let wait = 300 + (rand_ms() % 700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        for (i, t) in tasks.into_iter().enumerate() {
            state[i] = t.await.unwrap();
        }
        let total: usize = acked.iter().map(|a| a.lock().unwrap().len()).sum();
        eprintln!("round {round}: killed after {wait} ms, {total} messages acknowledged so far");
    }

    // Restart cleanly and read every conversation back.
    let (mut child, addr) = spawn(dir.path());
    let token = common::login(addr, common::ADMIN, common::ADMIN_PASSWORD).await;
    let mut found_total = 0;
    let mut acked_total = 0;
    for a in &acked {
        let a = a.lock().unwrap().clone();
        acked_total += a.len();
        let mut by_conv: HashMap<ConversationId, Vec<(u64, String)>> = HashMap::new();
        for (conv, seq, text) in a {
            by_conv.entry(conv).or_default().push((seq, text));
        }
        for (conv, expected) in by_conv {
            let mut stored = Vec::new();
            let mut after = 0;
            loop {
                let (status, page) = common::http(
                    addr,
                    "GET",
                    &format!("/api/conversations/{conv}?after={after}&limit=200"),
                    Some(&token),
                    None,
                )
                .await;
                assert_eq!(status, 200, "{page}");
                let msgs = page["messages"].as_array().unwrap().clone();
                for m in &msgs {
                    stored.push((
                        m["seq"].as_u64().unwrap(),
                        m["text"].as_str().unwrap().to_string(),
                    ));
                }
                after = stored.last().map_or(0, |s| s.0);
                if !page["has_more"].as_bool().unwrap() {
                    break;
                }
            }
            // Gap-free sequence, every text at most once.
            let seqs: Vec<u64> = stored.iter().map(|s| s.0).collect();
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "gap in {conv}"
            );
            let mut texts: Vec<&String> = stored.iter().map(|s| &s.1).collect();
            texts.sort();
            texts.dedup();
            assert_eq!(
                texts.len(),
                stored.len(),
                "a message stored twice in {conv}"
            );
            for (seq, text) in &expected {
                assert_eq!(
                    stored.get(usize::try_from(*seq).unwrap() - 1).map(|s| &s.1),
                    Some(text),
                    "acknowledged message {seq} of {conv} missing or moved"
                );
            }
            found_total += expected.len();
        }
    }
    eprintln!("{KILLS} kills, {acked_total} acknowledged, {found_total} found");
    assert_eq!(found_total, acked_total);
    assert!(
        acked_total > VISITORS,
        "the test should have acknowledged a fair number of messages"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

fn rand_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
}
