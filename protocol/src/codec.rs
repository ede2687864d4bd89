//! The two encodings of the wire protocol, and the one place that touches bincode.
//!
//! A client picks its encoding with the WebSocket subprotocol:
//! - [`Encoding::Json`] (`switchboard.v1.json`, the default): one JSON object
//!   per text frame, `{"type": "send", ...}`.
//! - [`Encoding::Bincode`] (`switchboard.v1.bincode`): one binary frame per
//!   message: a format-version byte ([`WIRE_FORMAT`]), a type byte (the tag
//!   listed beside each variant), then the variant's payload as bincode 2
//!   (standard configuration, serde).
//!
//! The payload carries the variant's fields only, because bincode cannot read
//! serde's internally tagged enums (they need a self-describing format); the
//! type byte takes the place of the `type` field.
//!
//! bincode is pinned to 2.0.1 and no longer maintained, so everything that
//! encodes with it goes through [`to_bincode`] / [`from_bincode`] here (the
//! server's store included). Replacing it is a change to this file only.

use crate::error::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version byte at the start of every binary frame.
pub const WIRE_FORMAT: u8 = 1;

/// Decoding never allocates more than this for one value (bounds hostile length prefixes).
const DECODE_LIMIT: usize = 4 * 1024 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Why a frame or a stored value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("this connection speaks {expected}, not {got}")]
    WrongFrameKind {
        expected: &'static str,
        got: &'static str,
    },
}

impl DecodeError {
    /// The error code a client is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// The encoding a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    #[default]
    Json,
    Bincode,
}

/// An encoded message: what goes into one WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    Text(String),
    Binary(Vec<u8>),
}

impl Encoding {
    pub const JSON_SUBPROTOCOL: &'static str = "switchboard.v1.json";
    pub const BINCODE_SUBPROTOCOL: &'static str = "switchboard.v1.bincode";

    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => Self::JSON_SUBPROTOCOL,
            Encoding::Bincode => Self::BINCODE_SUBPROTOCOL,
        }
    }

    /// The first subprotocol in `offered` that we speak.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Encoding> {
        offered.into_iter().find_map(|p| match p.trim() {
            Self::JSON_SUBPROTOCOL => Some(Encoding::Json),
            Self::BINCODE_SUBPROTOCOL => Some(Encoding::Bincode),
            _ => None,
        })
    }

    pub fn encode<M: Wire>(self, msg: &M) -> Encoded {
        match self {
            Encoding::Json => Encoded::Text(msg.to_json()),
            Encoding::Bincode => Encoded::Binary(msg.to_binary()),
        }
    }

    /// Decodes a text frame.
    pub fn decode_text<M: Wire>(self, text: &str) -> Result<M, DecodeError> {
        match self {
            Encoding::Json => M::from_json(text),
            Encoding::Bincode => Err(DecodeError::WrongFrameKind {
                expected: "binary frames",
                got: "a text frame",
            }),
        }
    }

    /// Decodes a binary frame.
    pub fn decode_binary<M: Wire>(self, bytes: &[u8]) -> Result<M, DecodeError> {
        match self {
            Encoding::Bincode => M::from_binary(bytes),
            Encoding::Json => Err(DecodeError::WrongFrameKind {
                expected: "JSON text frames",
                got: "a binary frame",
            }),
        }
    }
}

/// A top-level wire message ([`crate::ClientMessage`] or [`crate::ServerMessage`]).
pub trait Wire: Sized + Serialize + DeserializeOwned {
    /// The `type` names of every variant, as on the wire.
    const TYPES: &'static [&'static str];
    /// This message's `type` name.
    fn type_name(&self) -> &'static str;
    /// This message's type byte in the binary encoding.
    fn tag(&self) -> u8;
    #[doc(hidden)]
    fn encode_payload(&self, out: &mut Vec<u8>);
    #[doc(hidden)]
    fn decode_payload(tag: u8, payload: &[u8]) -> Result<Self, DecodeError>;

    fn to_json(&self) -> String {
        // Our types are plain structs, strings, numbers and string-keyed maps:
        // serde_json cannot fail on them.
        serde_json::to_string(self).expect("wire types always serialize to JSON")
    }

    fn from_json(text: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(text).map_err(|e| classify_json_error::<Self>(text, e))
    }

    fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(WIRE_FORMAT);
        out.push(self.tag());
        self.encode_payload(&mut out);
        out
    }

    fn from_binary(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes {
            [] => Err(DecodeError::Empty),
            [WIRE_FORMAT, tag, payload @ ..] => Self::decode_payload(*tag, payload),
            [WIRE_FORMAT] => Err(DecodeError::Malformed("missing type byte".into())),
            [version, ..] => Err(DecodeError::Version(*version)),
        }
    }
}

/// Tells "unknown type" apart from "known type, bad fields" (cold path only).
fn classify_json_error<M: Wire>(text: &str, err: serde_json::Error) -> DecodeError {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    match serde_json::from_str::<Probe>(text) {
        Ok(Probe { kind: Some(kind) }) if !M::TYPES.contains(&kind.as_str()) => {
            DecodeError::UnknownType(kind)
        }
        Ok(Probe { kind: None }) => DecodeError::Malformed("missing field `type`".into()),
        _ => DecodeError::Malformed(err.to_string()),
    }
}

/// Appends `value` as bincode (no version byte).
#[doc(hidden)]
pub fn append_bincode<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write(value, out, config())
        .expect("wire and store types always serialize to bincode");
}

/// Decodes one bincode value that must fill `bytes` exactly.
#[doc(hidden)]
pub fn decode_bincode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Encodes a value for storage: `format` (a version byte the caller owns) then bincode.
pub fn to_bincode<T: Serialize>(format: u8, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(format);
    append_bincode(value, &mut out);
    out
}

/// Decodes a value written by [`to_bincode`] with the same `format` byte.
pub fn from_bincode<T: DeserializeOwned>(format: u8, bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&v, rest)) if v == format => decode_bincode(rest),
        Some((&v, _)) => Err(DecodeError::Version(v)),
    }
}

/// Declares a top-level wire enum: serde-tagged for JSON, with a type byte
/// per variant for the binary encoding. Each variant is
/// `tag => "wire_name" Variant(Payload)`.
macro_rules! wire_enum {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$vdoc:meta])* $tag:literal => $wire:literal $variant:ident($payload:ty), )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type")]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $wire)] $variant($payload), )*
        }

        impl $crate::codec::Wire for $name {
            const TYPES: &'static [&'static str] = &[$($wire),*];

            fn type_name(&self) -> &'static str {
                match self { $( $name::$variant(_) => $wire, )* }
            }

            fn tag(&self) -> u8 {
                match self { $( $name::$variant(_) => $tag, )* }
            }

            fn encode_payload(&self, out: &mut Vec<u8>) {
                match self { $( $name::$variant(p) => $crate::codec::append_bincode(p, out), )* }
            }

            fn decode_payload(tag: u8, payload: &[u8]) -> Result<Self, $crate::codec::DecodeError> {
                match tag {
                    $( $tag => Ok($name::$variant($crate::codec::decode_bincode(payload)?)), )*
                    other => Err($crate::codec::DecodeError::UnknownType(format!("#{other}"))),
                }
            }
        }
    };
}
pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMessage, ServerMessage};
    use std::path::{Path, PathBuf};

    fn fixtures(side: &str) -> Vec<(PathBuf, serde_json::Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(side);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                (p, v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// JSON fixture → type → JSON gives the fixture back; → bincode → type gives the same value.
    fn golden<M: Wire + std::fmt::Debug + PartialEq>(side: &str) {
        let all = fixtures(side);
        let mut seen = Vec::new();
        for (path, json) in &all {
            let msg: M = M::from_json(&json.to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let back: serde_json::Value = serde_json::from_str(&msg.to_json()).unwrap();
            assert_eq!(&back, json, "{} does not round-trip", path.display());
            assert_eq!(
                M::from_binary(&msg.to_binary()).unwrap(),
                msg,
                "{}",
                path.display()
            );
            let stem = path.file_stem().unwrap().to_str().unwrap();
            assert!(
                stem.starts_with(msg.type_name()),
                "{stem} holds a {}",
                msg.type_name()
            );
            seen.push(msg.type_name());
        }
        for t in M::TYPES {
            assert!(seen.contains(t), "no {side} fixture for type {t}");
        }
    }

    #[test]
    fn client_fixtures_round_trip() {
        golden::<ClientMessage>("client");
    }

    #[test]
    fn server_fixtures_round_trip() {
        golden::<ServerMessage>("server");
    }

    /// README.md says its JSON examples are the fixtures, copied verbatim;
    /// the `visitor_hello` ones had fallen behind (no `user_id`, `user_hash`),
    /// and so had the bytes it gives for a bare hello.
    #[test]
    fn the_readme_quotes_every_fixture() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        for side in ["client", "server"] {
            for (path, _) in fixtures(side) {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    readme.contains(text.trim()),
                    "README.md does not quote {}",
                    path.display()
                );
            }
        }
        let bare = ClientMessage::VisitorHello(Default::default()).to_binary();
        let hex: Vec<String> = bare.iter().map(|b| format!("{b:02x}")).collect();
        let hex = hex.join(" ");
        assert!(
            readme.contains(&format!("= `{hex}`")),
            "README.md gives other bytes for a bare visitor_hello: {hex}"
        );
    }

    #[test]
    fn unknown_type_is_told_apart_from_bad_fields() {
        let e = ClientMessage::from_json(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(e, DecodeError::UnknownType("dance".into()));
        assert_eq!(e.code(), ErrorCode::UnknownType);
        let e = ClientMessage::from_json(r#"{"type":"send","text":1}"#).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e:?}");
        let e = ClientMessage::from_json(r#"{"text":"hi"}"#).unwrap_err();
        assert_eq!(e, DecodeError::Malformed("missing field `type`".into()));
        assert!(matches!(
            ClientMessage::from_json("[1,2"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn bad_binary_frames_are_typed_errors() {
        assert_eq!(ClientMessage::from_binary(&[]), Err(DecodeError::Empty));
        assert_eq!(
            ClientMessage::from_binary(&[9, 3]),
            Err(DecodeError::Version(9))
        );
        assert!(matches!(
            ClientMessage::from_binary(&[WIRE_FORMAT, 200]),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            ClientMessage::from_binary(&[WIRE_FORMAT]),
            Err(DecodeError::Malformed(_))
        ));
        // A send whose string length prefix claims far more than the frame holds.
        let mut frame = vec![WIRE_FORMAT, 3, 0xFC, 0xFF, 0xFF, 0xFF, 0x7F];
        frame.extend_from_slice(b"abc");
        assert!(matches!(
            ClientMessage::from_binary(&frame),
            Err(DecodeError::Malformed(_))
        ));
        // Every truncation of a valid frame is an error, never a panic.
        let ok = ClientMessage::Send(crate::client::SendMessage {
            client_id: "c1".into(),
            conversation_id: Some(crate::ConversationId(7)),
            text: "hello".into(),
        })
        .to_binary();
        for end in 0..ok.len() {
            assert!(
                ClientMessage::from_binary(&ok[..end]).is_err(),
                "prefix {end}"
            );
        }
        let mut long = ok.clone();
        long.push(0);
        assert!(ClientMessage::from_binary(&long).is_err());
    }

    #[test]
    fn frame_kind_must_match_encoding() {
        let e = Encoding::Json
            .decode_binary::<ClientMessage>(&[1, 3])
            .unwrap_err();
        assert!(matches!(e, DecodeError::WrongFrameKind { .. }));
        let e = Encoding::Bincode
            .decode_text::<ClientMessage>("{}")
            .unwrap_err();
        assert!(matches!(e, DecodeError::WrongFrameKind { .. }));
    }

    #[test]
    fn negotiation_picks_first_known() {
        assert_eq!(
            Encoding::negotiate(["x", "switchboard.v1.bincode", "switchboard.v1.json"]),
            Some(Encoding::Bincode)
        );
        assert_eq!(Encoding::negotiate(["x"]), None);
    }

    #[test]
    fn stored_values_carry_their_version() {
        let bytes = to_bincode(3, &("a".to_string(), 5u64));
        assert_eq!(bytes[0], 3);
        assert_eq!(
            from_bincode::<(String, u64)>(3, &bytes).unwrap(),
            ("a".to_string(), 5)
        );
        assert_eq!(
            from_bincode::<(String, u64)>(4, &bytes),
            Err(DecodeError::Version(3))
        );
    }
}
