//! Opening a WebSocket to the target and framing protocol messages on it.
//!
//! [`Connector`] owns the dial: source address, subprotocol header, and a
//! small client buffer configuration so that thousands of simulated
//! participants in one process do not each hold 256 KiB of buffers.
//! [`Frame`] is what a session makes of an incoming WebSocket message.

use crate::source::SourceIps;
use crate::target::Target;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use switchboard_protocol::{ClientMessage, Encoded, Encoding, ServerMessage};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// One client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Dials the target.
#[derive(Debug)]
pub struct Connector {
    pub target: Target,
    pub encoding: Encoding,
    sources: SourceIps,
}

impl Connector {
    pub fn new(target: Target, encoding: Encoding, sources: SourceIps) -> Connector {
        Connector {
            target,
            encoding,
            sources,
        }
    }

    /// TCP connect (from the next source address) and WebSocket upgrade with
    /// our subprotocol. Errors are named by [`ConnectError::kind`].
    pub async fn connect(&self) -> Result<Ws, ConnectError> {
        self.connect_with(None).await
    }

    /// [`Connector::connect`] with the kernel receive buffer (SO_RCVBUF) set
    /// before the handshake, so the TCP window stays that small.
    pub async fn connect_with(&self, recv_buffer: Option<u32>) -> Result<Ws, ConnectError> {
        let tcp = self.dial(recv_buffer).await.map_err(ConnectError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let mut request = self
            .target
            .url
            .as_str()
            .into_client_request()
            .map_err(ConnectError::WebSocket)?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(self.encoding.subprotocol()),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20));
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
                .await
                .map_err(ConnectError::WebSocket)?;
        Ok(ws)
    }

    async fn dial(&self, recv_buffer: Option<u32>) -> std::io::Result<TcpStream> {
        let to = self.target.addr;
        let socket = match to {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(ip) = self.sources.next() {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(to).await
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    Tcp(std::io::Error),
    WebSocket(tungstenite::Error),
}

impl ConnectError {
    /// A short, stable name for the error tally.
    pub fn kind(&self) -> String {
        match self {
            ConnectError::Tcp(e) => format!("connect: {:?}", e.kind()),
            ConnectError::WebSocket(tungstenite::Error::Http(resp)) => {
                format!("upgrade: HTTP {}", resp.status().as_u16())
            }
            ConnectError::WebSocket(e) => format!("upgrade: {}", error_kind(e)),
        }
    }
}

/// A short name for a WebSocket error.
pub fn error_kind(e: &tungstenite::Error) -> String {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "closed".into(),
        E::Io(io) => format!("io {:?}", io.kind()),
        E::Protocol(p) => format!("protocol {p}"),
        E::Capacity(c) => format!("capacity {c}"),
        E::Http(r) => format!("HTTP {}", r.status().as_u16()),
        other => other.to_string(),
    }
}

/// What an incoming WebSocket message turned out to be: by default a
/// protocol message (`T`: what a data message decodes to).
// Built once per message and matched at once: boxing the server message
// would cost an allocation per frame and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Frame<T = ServerMessage> {
    Server(T),
    /// Ping/pong/raw: nothing for the session to do (tungstenite answers pings).
    Control,
    /// The server closed, with this code (`None`: no close frame, the stream ended).
    Closed(Option<u16>),
    /// The frame could not be decoded.
    Undecodable(String),
    /// The transport failed.
    Failed(String),
}

/// Encodes a client message for `encoding`.
pub fn to_message(encoding: Encoding, msg: &ClientMessage) -> Message {
    match encoding.encode(msg) {
        Encoded::Text(s) => Message::text(s),
        Encoded::Binary(b) => Message::binary(b),
    }
}

/// Decodes what `ws.next()` produced.
pub fn to_frame(encoding: Encoding, next: Option<Result<Message, tungstenite::Error>>) -> Frame {
    classify(next, |m| decode(encoding, &m))
}

/// Sorts what `ws.next()` produced: the stream's end, a transport error, a
/// close, a control frame, or a text or binary message, which `decode` reads.
pub fn classify<T>(
    next: Option<Result<Message, tungstenite::Error>>,
    decode: impl FnOnce(Message) -> Result<T, String>,
) -> Frame<T> {
    let data = match next {
        None => return Frame::Closed(None),
        Some(Err(e)) => return Frame::Failed(error_kind(&e)),
        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
        Some(Ok(Message::Close(c))) => {
            return Frame::Closed(Some(c.map_or(1005, |c| u16::from(c.code))))
        }
        Some(Ok(_)) => return Frame::Control,
    };
    match decode(data) {
        Ok(m) => Frame::Server(m),
        Err(e) => Frame::Undecodable(e),
    }
}

/// Decodes a text or binary message in `encoding`.
pub fn decode(encoding: Encoding, m: &Message) -> Result<ServerMessage, String> {
    let decoded = match m {
        Message::Text(t) => encoding.decode_text::<ServerMessage>(t.as_str()),
        Message::Binary(b) => encoding.decode_binary::<ServerMessage>(b),
        _ => return Err("not a data message".into()),
    };
    decoded.map_err(|e| e.to_string())
}

/// Sends one message (and flushes it).
pub async fn send(ws: &mut Ws, encoding: Encoding, msg: &ClientMessage) -> Result<(), String> {
    ws.send(to_message(encoding, msg))
        .await
        .map_err(|e| error_kind(&e))
}

/// Reads the next frame.
pub async fn recv(ws: &mut Ws, encoding: Encoding) -> Frame {
    to_frame(encoding, ws.next().await)
}

/// Closes politely; errors do not matter any more.
pub async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::server::QueuePosition;
    use switchboard_protocol::ConversationId;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    #[test]
    fn frames_decode_in_both_encodings() {
        let msg = ServerMessage::QueuePosition(QueuePosition {
            conversation_id: ConversationId(3),
            position: 1,
        });
        for enc in [Encoding::Json, Encoding::Bincode] {
            let ws_msg = match enc.encode(&msg) {
                Encoded::Text(s) => Message::text(s),
                Encoded::Binary(b) => Message::binary(b),
            };
            assert!(matches!(to_frame(enc, Some(Ok(ws_msg))), Frame::Server(m) if m == msg));
        }
        let wrong = to_frame(Encoding::Bincode, Some(Ok(Message::text("{}"))));
        assert!(matches!(wrong, Frame::Undecodable(_)));
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::from(4000),
            reason: "slow".into(),
        }));
        assert!(matches!(
            to_frame(Encoding::Json, Some(Ok(close))),
            Frame::Closed(Some(4000))
        ));
        assert!(matches!(
            to_frame(Encoding::Json, None),
            Frame::Closed(None)
        ));
    }

    #[test]
    fn only_data_messages_reach_the_decoder() {
        let raw = |next| classify(next, |m: Message| Ok::<_, String>(m));
        assert!(
            matches!(raw(Some(Ok(Message::text("1.2 x")))), Frame::Server(Message::Text(t)) if t.as_str() == "1.2 x")
        );
        assert!(matches!(
            raw(Some(Ok(Message::Ping(Default::default())))),
            Frame::Control
        ));
        assert!(matches!(
            raw(Some(Ok(Message::Close(None)))),
            Frame::Closed(Some(1005))
        ));
        let refused = classify(Some(Ok(Message::binary(vec![1]))), |_| {
            Err::<(), _>("no".to_string())
        });
        assert!(matches!(refused, Frame::Undecodable(e) if e == "no"));
    }
}
