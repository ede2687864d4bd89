//! Fuzzing the decoders on stable Rust: proptest strategies plus exhaustive
//! sweeps over the golden fixtures, for the JSON decoder (text frames) and the
//! bincode decoder (binary frames) of [`ClientMessage`] and [`ServerMessage`].
//!
//! The property everywhere: decoding hostile input never panics, and every
//! rejection is a [`DecodeError`] with a non-empty message and a client-facing
//! code. Where an input does decode, encoding the value again and decoding
//! that gives the same value. Valid messages built by the strategies below
//! round-trip through both encodings.
//!
//! Run with `cargo test -p switchboard-protocol --test fuzz`; raise the case
//! counts with `PROPTEST_CASES=100000`.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::path::Path;
use switchboard_protocol::client::{
    AgentHello, ConversationRef, History, Identify, Rate, Read, ResumePoint, SendMessage,
    SetCapacity, SetStatus, Transfer, TransferToTeam, Typing, VisitorHello,
};
use switchboard_protocol::codec::{Wire, WIRE_FORMAT};
use switchboard_protocol::model::{AgentStatus, Author, AuthorKind};
use switchboard_protocol::server::{Ack, ErrorMessage, QueuePosition, ReadEvent, TypingEvent};
use switchboard_protocol::{
    AgentId, ClientMessage, ConversationId, DecodeError, Encoding, ErrorCode, MessageId,
    ServerMessage,
};

/// `cases` per property (or `PROPTEST_CASES`), failures saved beside this file.
fn config(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            cases
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fuzz.proptest-regressions",
        ))),
        ..base
    }
}

// ---- the property ----

/// Decoding gave a value that survives a round trip, or a typed error.
fn check<M: Wire + std::fmt::Debug + PartialEq>(decoded: Result<M, DecodeError>) {
    match decoded {
        // Compared as bytes: a flipped f32 may be NaN, which is not equal to itself.
        Ok(m) => {
            let bytes = m.to_binary();
            let again = M::from_binary(&bytes).expect("what we encode decodes");
            assert_eq!(again.to_binary(), bytes);
            // JSON cannot carry every f32 (NaN, infinities): only when it can.
            if let Ok(back) = M::from_json(&m.to_json()) {
                let bytes = back.to_binary();
                assert_eq!(M::from_binary(&bytes).map(|m| m.to_binary()), Ok(bytes));
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "{e:?} has an empty message");
            assert!(
                matches!(e.code(), ErrorCode::BadRequest | ErrorCode::UnknownType),
                "{e:?}"
            );
        }
    }
}

/// Both message types through both decoders (and the frame-kind check).
fn decode_binary_all(bytes: &[u8]) {
    check(ClientMessage::from_binary(bytes));
    check(ServerMessage::from_binary(bytes));
    check(Encoding::Bincode.decode_binary::<ClientMessage>(bytes));
    check(Encoding::Json.decode_binary::<ClientMessage>(bytes));
}

fn decode_text_all(text: &str) {
    check(ClientMessage::from_json(text));
    check(ServerMessage::from_json(text));
    check(Encoding::Json.decode_text::<ClientMessage>(text));
    check(Encoding::Bincode.decode_text::<ClientMessage>(text));
}

fn rejected<M: Wire + std::fmt::Debug>(decoded: Result<M, DecodeError>, what: &str) -> DecodeError {
    let e = decoded.expect_err(what);
    assert!(!e.to_string().is_empty(), "{what}: {e:?}");
    e
}

/// A damaged frame of `name`'s type is refused; as the other type it may decode.
fn refused_binary(name: &str, bytes: &[u8]) {
    if name.starts_with("client/") {
        rejected(ClientMessage::from_binary(bytes), name);
        check(ServerMessage::from_binary(bytes));
    } else {
        rejected(ServerMessage::from_binary(bytes), name);
        check(ClientMessage::from_binary(bytes));
    }
}

fn refused_text(name: &str, text: &str) {
    if name.starts_with("client/") {
        rejected(ClientMessage::from_json(text), name);
        check(ServerMessage::from_json(text));
    } else {
        rejected(ServerMessage::from_json(text), name);
        check(ClientMessage::from_json(text));
    }
}

// ---- the fixtures: valid frames to cut, flip and grow ----

struct Frames {
    json: Vec<(String, String)>,
    binary: Vec<(String, Vec<u8>)>,
}

fn load<M: Wire>(side: &str, frames: &mut Frames) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(side);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let name = format!("{side}/{}", p.file_name().unwrap().to_string_lossy());
        let pretty = std::fs::read_to_string(&p).unwrap();
        let msg = M::from_json(&pretty).unwrap_or_else(|e| panic!("{name}: {e}"));
        frames.binary.push((name.clone(), msg.to_binary()));
        frames.json.push((name.clone(), msg.to_json()));
        frames.json.push((name, pretty));
    }
}

fn fixtures() -> &'static Frames {
    static FRAMES: std::sync::OnceLock<Frames> = std::sync::OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut f = Frames {
            json: Vec::new(),
            binary: Vec::new(),
        };
        load::<ClientMessage>("client", &mut f);
        load::<ServerMessage>("server", &mut f);
        assert!(f.binary.len() >= 30, "fixtures went missing");
        f
    })
}

// ---- exhaustive sweeps over the fixtures ----

/// Every strict prefix of every fixture is refused, never a panic.
#[test]
fn every_truncated_fixture_is_a_typed_error() {
    let mut n = 0;
    for (name, frame) in &fixtures().binary {
        for end in 0..frame.len() {
            refused_binary(name, &frame[..end]);
            n += 1;
        }
    }
    for (name, text) in &fixtures().json {
        let body = text.trim_end();
        for end in (0..body.len()).filter(|&i| body.is_char_boundary(i)) {
            refused_text(name, &body[..end]);
            n += 1;
        }
    }
    eprintln!("{n} truncated frames refused");
}

/// Every single-bit flip of every binary fixture, and of every JSON fixture
/// that stays UTF-8: decoded or refused, never a panic.
#[test]
fn every_single_bit_flip_of_a_fixture_is_handled() {
    let mut n = 0;
    for (_, frame) in &fixtures().binary {
        for bit in 0..frame.len() * 8 {
            let mut f = frame.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            decode_binary_all(&f);
            n += 1;
        }
    }
    // The compact JSON forms only: the pretty ones add whitespace, and time.
    for (_, text) in fixtures().json.iter().filter(|(_, t)| !t.contains('\n')) {
        for bit in 0..text.len() * 8 {
            let mut f = text.clone().into_bytes();
            f[bit / 8] ^= 1 << (bit % 8);
            if let Ok(t) = String::from_utf8(f) {
                decode_text_all(&t);
                n += 1;
            }
        }
    }
    eprintln!("{n} bit-flipped frames handled");
}

/// A fixture with a byte appended (binary) or garbage after the object (JSON) is refused.
#[test]
fn trailing_bytes_are_refused() {
    for (name, frame) in &fixtures().binary {
        for extra in [0u8, 1, 0xff] {
            let mut f = frame.clone();
            f.push(extra);
            refused_binary(name, &f);
        }
    }
    for (name, text) in &fixtures().json {
        for extra in ["}", "{}", "x", "\u{0}"] {
            refused_text(name, &format!("{text}{extra}"));
        }
    }
}

// ---- hand-made hostile inputs ----

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let cases = [
        "[".repeat(depth),
        "{\"a\":".repeat(depth),
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!(
            r#"{{"type":"send","client_id":"a","text":{}"#,
            "[".repeat(depth)
        ),
        format!(
            r#"{{"type":"identify","attributes":{}"#,
            "{\"k\":".repeat(depth)
        ),
        format!(r#"{{"type":{}}}"#, "[".repeat(depth)),
    ];
    for text in &cases {
        let e = rejected(ClientMessage::from_json(text), "deep JSON");
        assert_eq!(e.code(), ErrorCode::BadRequest);
        rejected(ServerMessage::from_json(text), "deep JSON");
    }
    // Nesting inside a value the decoder ignores (unknown fields are skipped) is bounded too.
    let ignored = format!(
        r#"{{"type":"claim","conversation_id":1,"x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    rejected(ClientMessage::from_json(&ignored), "deep ignored field");
}

#[test]
fn huge_and_odd_numbers_are_refused() {
    for n in [
        "18446744073709551616",
        "-1",
        "1.5",
        "1e400",
        "-0.0",
        "1e19",
        "NaN",
        "Infinity",
        "0x10",
        "99999999999999999999999999999999999999999",
    ] {
        for template in [
            r#"{"type":"claim","conversation_id":N}"#,
            r#"{"type":"set_capacity","capacity":N}"#,
            r#"{"type":"rate","conversation_id":1,"score":N}"#,
            r#"{"type":"history","conversation_id":1,"limit":N}"#,
        ] {
            let text = template.replace('N', n);
            rejected(ClientMessage::from_json(&text), &text);
        }
    }
    // The biggest values that fit decode exactly.
    let max = format!(r#"{{"type":"claim","conversation_id":{}}}"#, u64::MAX);
    assert_eq!(
        ClientMessage::from_json(&max),
        Ok(ClientMessage::Claim(ConversationRef {
            conversation_id: ConversationId(u64::MAX)
        }))
    );
    // bincode: a u64 marker for a u32 field, a u128 marker, a varint with nothing after it.
    for payload in [
        &[0xFD, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0xFE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
        &[0xFC, 0xff][..],
        &[0xFF][..],
    ] {
        let mut f = vec![WIRE_FORMAT, 11];
        f.extend_from_slice(payload);
        rejected(ClientMessage::from_binary(&f), "set_capacity overflow");
    }
}

#[test]
fn invalid_utf8_and_bad_escapes_are_refused() {
    // bincode strings must be UTF-8: a send whose client_id is 0xff 0xfe.
    let mut f = vec![WIRE_FORMAT, 3, 2, 0xff, 0xfe, 0, 1, b'x'];
    rejected(ClientMessage::from_binary(&f), "invalid UTF-8 in client_id");
    // Overlong encoding and a lone continuation byte in the text.
    f = vec![WIRE_FORMAT, 3, 1, b'a', 0, 2, 0xc0, 0xaf];
    rejected(ClientMessage::from_binary(&f), "overlong UTF-8");
    f = vec![WIRE_FORMAT, 3, 1, b'a', 0, 1, 0x80];
    rejected(ClientMessage::from_binary(&f), "lone continuation byte");
    // JSON: a lone surrogate, a truncated escape, a raw control character.
    for text in [
        r#"{"type":"send","client_id":"a","text":"\ud800"}"#,
        r#"{"type":"send","client_id":"a","text":"\udc00\ud800"}"#,
        r#"{"type":"send","client_id":"a","text":"\u12"}"#,
        "{\"type\":\"send\",\"client_id\":\"a\",\"text\":\"a\u{1}b\"}",
        r#"{"type":"se\ud800nd"}"#,
    ] {
        rejected(ClientMessage::from_json(text), text);
    }
    // A text frame with invalid UTF-8 cannot reach the JSON decoder (it takes
    // &str; tungstenite refuses such frames with 1002), and a binary frame on
    // a JSON connection is refused by kind.
    let e = rejected(
        Encoding::Json.decode_binary::<ClientMessage>(&[0xff, 0xfe, b'{']),
        "binary frame on a JSON connection",
    );
    assert!(matches!(e, DecodeError::WrongFrameKind { .. }));
}

#[test]
fn long_strings_decode_or_are_refused_by_size() {
    let long = "é".repeat(1 << 20); // 2 MiB of UTF-8
    let msg = ClientMessage::Send(SendMessage {
        client_id: "c".into(),
        conversation_id: None,
        text: long.clone(),
    });
    // The codec has no text limit (the hub enforces MAX_TEXT_CHARS): it decodes.
    assert_eq!(ClientMessage::from_json(&msg.to_json()).as_ref(), Ok(&msg));
    assert_eq!(
        ClientMessage::from_binary(&msg.to_binary()).as_ref(),
        Ok(&msg)
    );
    // Past the 4 MiB allocation limit, bincode refuses.
    let huge = ClientMessage::Send(SendMessage {
        client_id: "c".into(),
        conversation_id: None,
        text: "x".repeat(5 << 20),
    });
    rejected(
        ClientMessage::from_binary(&huge.to_binary()),
        "5 MiB string",
    );
    // A length prefix that claims 2^64-1 bytes, or more than the frame holds.
    for len in [
        &[0xFD, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0xFC, 0, 0, 0, 1][..],
    ] {
        let mut f = vec![WIRE_FORMAT, 3];
        f.extend_from_slice(len);
        f.extend_from_slice(b"abc");
        rejected(ClientMessage::from_binary(&f), "huge length prefix");
    }
    // A Vec count of 2^32 resume points in a visitor_hello.
    let f = [WIRE_FORMAT, 1, 0, 0xFC, 0xff, 0xff, 0xff, 0xff, 0];
    rejected(ClientMessage::from_binary(&f), "huge count");
    // A very long unknown type name is still told apart from a malformed message.
    let t = format!(r#"{{"type":"{}"}}"#, "z".repeat(1 << 20));
    let e = rejected(ClientMessage::from_json(&t), "long type");
    assert_eq!(e.code(), ErrorCode::UnknownType);
}

#[test]
fn every_type_byte_and_version_byte_is_handled() {
    for version in 0..=u8::MAX {
        for tag in 0..=u8::MAX {
            for payload in [&[][..], &[0][..], &[1, 0, 0, 0][..]] {
                let mut f = vec![version, tag];
                f.extend_from_slice(payload);
                decode_binary_all(&f);
            }
        }
    }
}

// ---- random inputs ----

/// Text that looks like JSON often enough to get past the first byte.
fn jsonish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"type\"".to_string()),
        prop::sample::select(ClientMessage::TYPES).prop_map(|t| format!("\"{t}\"")),
        prop::sample::select(ServerMessage::TYPES).prop_map(|t| format!("\"{t}\"")),
        prop::sample::select(
            &[
                "\"client_id\"",
                "\"text\"",
                "\"conversation_id\"",
                "\"token\"",
                "\"resume\"",
                "\"last_seq\"",
                "\"score\"",
                "\"capacity\"",
                "\"status\"",
                "\"attributes\"",
                "\"online\"",
                "\"code\"",
                "\"message\"",
                "\"seq\"",
            ][..]
        )
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "\"[^\"\\\\]{0,12}\"",
        "\\\\u[0-9a-fA-F]{0,4}",
        any::<String>(),
    ];
    vec(token, 0..24).prop_map(|t| t.concat())
}

fn mutate(frame: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut f = frame.to_vec();
    for &(at, op, byte) in edits {
        if f.is_empty() {
            f.push(byte);
            continue;
        }
        let i = at % f.len();
        match op % 4 {
            0 => f[i] ^= byte | 1,
            1 => f[i] = byte,
            2 => f.insert(i, byte),
            _ => {
                f.remove(i);
            }
        }
    }
    f
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn arbitrary_bytes_as_binary_frames(bytes in vec(any::<u8>(), 0..256)) {
        decode_binary_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header(tag in 0u8..16, bytes in vec(any::<u8>(), 0..128)) {
        let mut f = vec![WIRE_FORMAT, tag];
        f.extend_from_slice(&bytes);
        decode_binary_all(&f);
    }

    #[test]
    fn arbitrary_text_as_json_frames(text in any::<String>()) {
        decode_text_all(&text);
    }

    #[test]
    fn arbitrary_bytes_as_json_frames(bytes in vec(any::<u8>(), 0..256)) {
        // What a lenient transport would hand over: invalid UTF-8 replaced.
        decode_text_all(&String::from_utf8_lossy(&bytes));
    }


    #[test]
    fn mutated_binary_fixtures(
        which in any::<prop::sample::Index>(),
        edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let frames = &fixtures().binary;
        let (_, frame) = &frames[which.index(frames.len())];
        decode_binary_all(&mutate(frame, &edits));
    }

    #[test]
    fn mutated_json_fixtures(
        which in any::<prop::sample::Index>(),
        edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let frames = &fixtures().json;
        let (_, text) = &frames[which.index(frames.len())];
        let f = mutate(text.as_bytes(), &edits);
        decode_text_all(&String::from_utf8_lossy(&f));
    }

    #[test]
    fn truncated_random_prefix_with_garbage(
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        tail in vec(any::<u8>(), 0..16),
    ) {
        let frames = &fixtures().binary;
        let (_, frame) = &frames[which.index(frames.len())];
        let mut f = frame[..cut.index(frame.len())].to_vec();
        f.extend_from_slice(&tail);
        decode_binary_all(&f);
    }
}

proptest! {
    // Slower to generate (regexes, many tokens): fewer cases.
    #![proptest_config(config(1024))]

    #[test]
    fn json_like_text(text in jsonish()) {
        decode_text_all(&text);
    }
}

// ---- round trips of valid messages ----

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, Just(u64::MAX), any::<u64>()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z ]{0,20}", Just(String::new())]
}

fn resume() -> impl Strategy<Value = Vec<ResumePoint>> {
    vec(
        (id(), id()).prop_map(|(c, s)| ResumePoint {
            conversation_id: ConversationId(c),
            last_seq: s,
        }),
        0..5,
    )
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let conv = || id().prop_map(ConversationId);
    prop_oneof![
        (prop::option::of(text()), resume(), prop::option::of(text())).prop_map(
            |(token, resume, page_url)| ClientMessage::VisitorHello(VisitorHello {
                token,
                resume,
                page_url,
                ..Default::default()
            })
        ),
        (text(), resume())
            .prop_map(|(token, resume)| ClientMessage::AgentHello(AgentHello { token, resume })),
        (text(), prop::option::of(conv()), text()).prop_map(
            |(client_id, conversation_id, text)| {
                ClientMessage::Send(SendMessage {
                    client_id,
                    conversation_id,
                    text,
                })
            }
        ),
        (conv(), any::<bool>()).prop_map(|(conversation_id, typing)| {
            ClientMessage::Typing(Typing {
                conversation_id,
                typing,
            })
        }),
        (conv(), id()).prop_map(|(conversation_id, seq)| ClientMessage::Read(Read {
            conversation_id,
            seq
        })),
        (
            conv(),
            prop::option::of(id()),
            prop::option::of(id()),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(conversation_id, before, after, limit)| {
                ClientMessage::History(History {
                    conversation_id,
                    before,
                    after,
                    limit,
                })
            }),
        conv()
            .prop_map(|conversation_id| ClientMessage::Claim(ConversationRef { conversation_id })),
        conv()
            .prop_map(|conversation_id| ClientMessage::Close(ConversationRef { conversation_id })),
        conv().prop_map(|conversation_id| ClientMessage::Handoff(ConversationRef {
            conversation_id
        })),
        (conv(), id()).prop_map(|(conversation_id, a)| ClientMessage::Transfer(Transfer {
            conversation_id,
            to_agent: AgentId(a)
        })),
        (conv(), text()).prop_map(|(conversation_id, team)| ClientMessage::TransferToTeam(
            TransferToTeam {
                conversation_id,
                team
            }
        )),
        prop::sample::select(&[AgentStatus::Online, AgentStatus::Away, AgentStatus::Offline][..])
            .prop_map(|status| ClientMessage::SetStatus(SetStatus { status })),
        any::<u32>().prop_map(|capacity| ClientMessage::SetCapacity(SetCapacity { capacity })),
        (conv(), any::<u8>(), prop::option::of(text())).prop_map(
            |(conversation_id, score, comment)| ClientMessage::Rate(Rate {
                conversation_id,
                score,
                comment
            })
        ),
        (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            btree_map(text(), text(), 0..4),
        )
            .prop_map(|(user_id, name, email, attributes)| {
                ClientMessage::Identify(Identify {
                    user_id,
                    name,
                    email,
                    attributes,
                    ..Identify::default()
                })
            }),
    ]
}

fn author() -> impl Strategy<Value = Author> {
    (
        prop::sample::select(
            &[
                AuthorKind::Visitor,
                AuthorKind::Agent,
                AuthorKind::Bot,
                AuthorKind::System,
            ][..],
        ),
        id(),
        text(),
    )
        .prop_map(|(kind, id, name)| Author { kind, id, name })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let conv = || id().prop_map(ConversationId);
    const CODES: &[ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::UnknownType,
        ErrorCode::TooLarge,
        ErrorCode::NotFound,
        ErrorCode::StoreUnavailable,
        ErrorCode::Internal,
    ];
    prop_oneof![
        (text(), conv(), id(), id()).prop_map(|(client_id, conversation_id, m, seq)| {
            ServerMessage::Ack(Ack {
                client_id,
                conversation_id,
                message_id: MessageId(m),
                seq,
            })
        }),
        (
            prop::sample::select(CODES),
            text(),
            prop::option::of(text()),
            prop::option::of(conv())
        )
            .prop_map(|(code, message, client_id, conversation_id)| {
                ServerMessage::Error(ErrorMessage {
                    code,
                    message,
                    client_id,
                    conversation_id,
                })
            }),
        (conv(), author(), any::<bool>()).prop_map(|(conversation_id, author, typing)| {
            ServerMessage::Typing(TypingEvent {
                conversation_id,
                author,
                typing,
            })
        }),
        (conv(), author(), id()).prop_map(|(conversation_id, a, seq)| {
            ServerMessage::Read(ReadEvent {
                conversation_id,
                reader: a.kind,
                seq,
            })
        }),
        (conv(), any::<u32>()).prop_map(|(conversation_id, position)| {
            ServerMessage::QueuePosition(QueuePosition {
                conversation_id,
                position,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn client_messages_round_trip(msg in client_message()) {
        prop_assert_eq!(ClientMessage::from_json(&msg.to_json()), Ok(msg.clone()));
        prop_assert_eq!(ClientMessage::from_binary(&msg.to_binary()), Ok(msg.clone()));
        for enc in [Encoding::Json, Encoding::Bincode] {
            let back = match enc.encode(&msg) {
                switchboard_protocol::Encoded::Text(t) => enc.decode_text::<ClientMessage>(&t),
                switchboard_protocol::Encoded::Binary(b) => enc.decode_binary::<ClientMessage>(&b),
            };
            prop_assert_eq!(back, Ok(msg.clone()));
        }
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        prop_assert_eq!(ServerMessage::from_json(&msg.to_json()), Ok(msg.clone()));
        prop_assert_eq!(ServerMessage::from_binary(&msg.to_binary()), Ok(msg.clone()));
    }

    /// Every strict prefix of a valid random frame is refused.
    #[test]
    fn prefixes_of_random_valid_frames_are_refused(msg in client_message()) {
        let bin = msg.to_binary();
        for end in 0..bin.len() {
            prop_assert!(ClientMessage::from_binary(&bin[..end]).is_err());
        }
        let json = msg.to_json();
        for end in (0..json.len()).filter(|&i| json.is_char_boundary(i)).step_by(3) {
            prop_assert!(ClientMessage::from_json(&json[..end]).is_err());
        }
    }
}
