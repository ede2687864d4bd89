//! What every simulated participant shares: the run's context ([`Ctx`]),
//! opening a session (dial, hello, welcome, under the handshake limit), the
//! message stamps that carry send times, how a session's end is tallied, and
//! the one loop visitors, `--raw` echo clients and slow readers run
//! ([`drive`], each a [`Client`]).

use crate::ledger::Ledger;
use crate::slow::SlowBoard;
use crate::stats::{self, Metric, Recorder, Stats};
use crate::visitor::Pace;
use crate::wire::{self, Connector, Frame, Ws};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::{ClientMessage, Encoding, ServerMessage};
use tokio::sync::Semaphore;
use tokio::time::Interval;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long a hello may wait for its welcome.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

/// The run's shared context; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub connector: Arc<Connector>,
    pub stats: Arc<Stats>,
    pub ledger: Arc<Ledger>,
    /// Limits handshakes in flight.
    pub handshakes: Arc<Semaphore>,
    /// Cancelled when visitors should stop starting new messages (drain phase).
    pub stop_sending: CancellationToken,
    /// Cancelled when every session should close.
    pub shutdown: CancellationToken,
    /// Text of every chat message (already `--message-bytes` long).
    pub text: Arc<str>,
    /// What the `--slow-readers` did, and which conversations are theirs.
    pub slow: Arc<SlowBoard>,
}

impl Ctx {
    pub fn encoding(&self) -> Encoding {
        self.connector.encoding
    }

    /// Dials, says `hello` and waits for the welcome, holding a handshake
    /// slot throughout. Failures are tallied here; `None` means "give up".
    pub async fn open(&self, hello: &ClientMessage, rec: &Recorder) -> Option<(Ws, ServerMessage)> {
        self.open_with(hello, rec, None).await
    }

    /// [`Ctx::open`] with the socket's kernel receive buffer set to `recv_buffer` bytes.
    pub async fn open_with(
        &self,
        hello: &ClientMessage,
        rec: &Recorder,
        recv_buffer: Option<u32>,
    ) -> Option<(Ws, ServerMessage)> {
        let _slot = tokio::select! {
            slot = self.handshakes.acquire() => slot.ok()?,
            _ = self.shutdown.cancelled() => return None,
        };
        let started = stats::now_us();
        let opened = tokio::select! {
            opened = tokio::time::timeout(WELCOME_TIMEOUT, self.handshake(hello, recv_buffer)) => opened,
            _ = self.shutdown.cancelled() => return None,
        };
        match opened {
            Ok(Ok(session)) => {
                rec.record(Metric::Handshake, stats::now_us().saturating_sub(started));
                stats::bump(&self.stats.counters.connected);
                stats::bump(&self.stats.counters.open);
                Some(session)
            }
            Ok(Err(kind)) => self.failed(kind),
            Err(_) => self.failed("handshake: no welcome in time".into()),
        }
    }

    /// `--raw`: dials and upgrades only (no hello), under the same handshake limit.
    pub async fn open_raw(&self, rec: &Recorder) -> Option<Ws> {
        let _slot = tokio::select! {
            slot = self.handshakes.acquire() => slot.ok()?,
            _ = self.shutdown.cancelled() => return None,
        };
        let started = stats::now_us();
        let opened = tokio::select! {
            opened = tokio::time::timeout(WELCOME_TIMEOUT, self.connector.connect()) => opened,
            _ = self.shutdown.cancelled() => return None,
        };
        match opened {
            Ok(Ok(ws)) => {
                rec.record(Metric::Handshake, stats::now_us().saturating_sub(started));
                stats::bump(&self.stats.counters.connected);
                stats::bump(&self.stats.counters.open);
                Some(ws)
            }
            Ok(Err(e)) => self.failed(e.kind()),
            Err(_) => self.failed("upgrade: no answer in time".into()),
        }
    }

    fn failed<T>(&self, kind: String) -> Option<T> {
        self.stats.error(kind);
        stats::bump(&self.stats.counters.connect_failed);
        None
    }

    async fn handshake(
        &self,
        hello: &ClientMessage,
        recv_buffer: Option<u32>,
    ) -> Result<(Ws, ServerMessage), String> {
        let mut ws = self
            .connector
            .connect_with(recv_buffer)
            .await
            .map_err(|e| e.kind())?;
        wire::send(&mut ws, self.encoding(), hello)
            .await
            .map_err(|e| format!("hello: {e}"))?;
        loop {
            match wire::recv(&mut ws, self.encoding()).await {
                Frame::Server(
                    m @ (ServerMessage::VisitorWelcome(_) | ServerMessage::AgentWelcome(_)),
                ) => {
                    return Ok((ws, m));
                }
                Frame::Server(ServerMessage::Error(e)) => {
                    return Err(format!("hello refused: {}", e.code.as_str()));
                }
                Frame::Server(_) | Frame::Control => continue,
                Frame::Closed(code) => {
                    if let Some(code) = code {
                        self.stats.close_code(code);
                    }
                    return Err(format!(
                        "hello: closed ({})",
                        code.map_or("no close frame".into(), |c| c.to_string())
                    ));
                }
                Frame::Undecodable(e) => return Err(format!("hello: undecodable answer: {e}")),
                Frame::Failed(e) => return Err(format!("hello: {e}")),
            }
        }
    }

    /// Tallies how a session ended and closes its socket.
    pub async fn finish(&self, who: &str, mut ws: Ws, end: End) {
        match end {
            End::Shutdown => wire::close(&mut ws).await,
            End::Closed(code) => {
                if let Some(code) = code {
                    self.stats.close_code(code);
                }
                if !self.shutdown.is_cancelled() {
                    let code = code.map_or("no close frame".into(), |c| c.to_string());
                    self.stats
                        .error(format!("{who}: closed by server ({code})"));
                }
            }
            End::Failed(e) => {
                if !self.shutdown.is_cancelled() {
                    self.stats.error(format!("{who}: {e}"));
                }
            }
        }
        self.stats
            .counters
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a session loop returned.
#[derive(Debug)]
pub enum End {
    /// The run is over.
    Shutdown,
    /// The server closed (with this close code).
    Closed(Option<u16>),
    /// The transport failed.
    Failed(String),
}

impl End {
    /// How a session loop's result ends the session: `Ok` means the run is over.
    pub fn of(served: Result<(), End>) -> End {
        served.err().unwrap_or(End::Shutdown)
    }
}

/// A simulated client, as the loop they all share ([`drive`]) sees it: what
/// it writes next, how it reads what comes back, and when it is done.
pub(crate) trait Client {
    /// A text or binary message from the server, as this client reads it.
    type In;
    fn ctx(&self) -> &Ctx;
    fn ws(&mut self) -> &mut Ws;
    /// Reads a text or binary message; an `Err` goes to [`Client::undecodable`].
    fn decode(&self, m: Message) -> Result<Self::In, String>;
    /// Writes the client's next message.
    async fn send_next(&mut self) -> Result<(), End>;
    /// Handles a message; [`Turn::Next`] lets a closed-loop client write its next one.
    async fn on_message(&mut self, m: Self::In) -> Result<Turn, End>;
    /// A message that could not be decoded (default: ignored).
    fn undecodable(&mut self, _error: String) {}
    /// A closed-loop client with nothing more to write: the loop ends.
    fn done(&self) -> bool {
        false
    }
}

/// Whether a message just handled lets a closed-loop client write its next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Its message was answered (acked, echoed): write the next.
    Next,
    Wait,
}

/// The loop every simulated client runs until the run shuts down (`Ok`),
/// the client is done (`Ok`), or the connection ends (`Err`). It writes at
/// `pace` (the first timed write `offset` after the start), or in closed
/// loop one message at start and one after each [`Turn::Next`], and hands
/// every message from the server to the client.
pub(crate) async fn drive<C: Client>(c: &mut C, pace: Pace, offset: Duration) -> Result<(), End> {
    let shutdown = c.ctx().shutdown.clone();
    let stop_sending = c.ctx().stop_sending.clone();
    let mut timer = pace.timer(offset);
    if pace == Pace::ClosedLoop && !take_turn(c).await? {
        return Ok(());
    }
    loop {
        let sending = !stop_sending.is_cancelled();
        let turn = tokio::select! {
            // The run is over.
            _ = shutdown.cancelled() => return Ok(()),
            // Time to write (open loop and burst).
            _ = tick(&mut timer), if sending => {
                for _ in 0..pace.per_tick() {
                    c.send_next().await?;
                }
                Turn::Wait
            }
            // Something from the server.
            next = c.ws().next() => match wire::classify(next, |m| c.decode(m)) {
                Frame::Server(m) => c.on_message(m).await?,
                Frame::Control => Turn::Wait,
                Frame::Closed(code) => return Err(End::Closed(code)),
                Frame::Undecodable(e) => {
                    c.undecodable(e);
                    Turn::Wait
                }
                Frame::Failed(e) => return Err(End::Failed(e)),
            },
        };
        if turn == Turn::Next && pace == Pace::ClosedLoop && !take_turn(c).await? {
            return Ok(());
        }
    }
}

/// A closed-loop client's turn: `false` when it is done, else its next message is written.
async fn take_turn<C: Client>(c: &mut C) -> Result<bool, End> {
    if c.done() {
        return Ok(false);
    }
    c.send_next().await?;
    Ok(true)
}

/// Waits for the next tick, or forever without a timer (closed loop).
async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A client id that carries who sent it and when: `{who}.{n}.{sent_at_us}`.
pub fn stamp(who: &str, n: u64) -> String {
    format!("{who}.{n}.{}", stats::now_us())
}

/// A chat `send` of `text` with a fresh [`stamp`]ed client id (returned too).
pub fn chat_send(
    who: &str,
    n: u64,
    conversation: Option<switchboard_protocol::ConversationId>,
    text: &str,
) -> (String, ClientMessage) {
    let client_id = stamp(who, n);
    let msg = ClientMessage::Send(switchboard_protocol::client::SendMessage {
        client_id: client_id.clone(),
        conversation_id: conversation,
        text: text.to_string(),
    });
    (client_id, msg)
}

/// The send time carried by a [`stamp`]ed client id.
pub fn sent_at(client_id: &str) -> Option<u64> {
    client_id.rsplit_once('.')?.1.parse().ok()
}

/// `words` repeated to exactly `bytes` bytes (ASCII, so also that many characters).
pub fn filler_text(words: &str, bytes: usize) -> String {
    words.chars().cycle().take(bytes.max(1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceIps;
    use crate::target::Target;
    use futures::SinkExt;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    /// A WebSocket server on 127.0.0.1:0 for one connection: echoes text
    /// frames, and closes with 4000 instead of echoing frame `close_at`.
    async fn echo_server(close_at: Option<usize>) -> SocketAddr {
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        fn agree(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
            if let Some(p) = req.headers().get("sec-websocket-protocol") {
                resp.headers_mut()
                    .insert("sec-websocket-protocol", p.clone());
            }
            Ok(resp)
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, agree)
                .await
                .unwrap();
            let mut n = 0;
            while let Some(Ok(m)) = ws.next().await {
                if !m.is_text() {
                    continue;
                }
                n += 1;
                if Some(n) == close_at {
                    let bye = CloseFrame {
                        code: CloseCode::from(4000),
                        reason: "slow".into(),
                    };
                    let _ = ws.close(Some(bye)).await;
                } else if ws.send(m).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    fn ctx(addr: SocketAddr) -> Ctx {
        let target = Target::from_addr(addr).unwrap();
        Ctx {
            connector: Arc::new(Connector::new(target, Encoding::Json, SourceIps::default())),
            stats: Arc::default(),
            ledger: Arc::default(),
            handshakes: Arc::new(Semaphore::new(1)),
            stop_sending: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            text: "x".into(),
            slow: Arc::default(),
        }
    }

    /// Writes numbered text frames; done after `enough` came back.
    struct Counter {
        ctx: Ctx,
        ws: Ws,
        sent: usize,
        back: Vec<String>,
        enough: usize,
    }

    impl Counter {
        async fn connect(addr: SocketAddr, enough: usize) -> Counter {
            let ctx = ctx(addr);
            let ws = ctx.connector.connect().await.unwrap();
            Counter {
                ctx,
                ws,
                sent: 0,
                back: Vec::new(),
                enough,
            }
        }
    }

    impl Client for Counter {
        type In = String;

        fn ctx(&self) -> &Ctx {
            &self.ctx
        }

        fn ws(&mut self) -> &mut Ws {
            &mut self.ws
        }

        fn decode(&self, m: Message) -> Result<String, String> {
            m.into_text()
                .map(|t| t.to_string())
                .map_err(|e| e.to_string())
        }

        async fn send_next(&mut self) -> Result<(), End> {
            self.sent += 1;
            let frame = Message::text(self.sent.to_string());
            self.ws
                .send(frame)
                .await
                .map_err(|e| End::Failed(wire::error_kind(&e)))
        }

        async fn on_message(&mut self, m: String) -> Result<Turn, End> {
            self.back.push(m);
            Ok(Turn::Next)
        }

        fn done(&self) -> bool {
            self.back.len() >= self.enough
        }
    }

    #[tokio::test]
    async fn closed_loop_writes_one_message_per_answer_until_done() {
        let mut c = Counter::connect(echo_server(None).await, 3).await;
        assert!(drive(&mut c, Pace::ClosedLoop, Duration::ZERO)
            .await
            .is_ok());
        assert_eq!(c.sent, 3);
        assert_eq!(c.back, ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn the_loop_ends_on_the_servers_close_or_the_runs_shutdown() {
        let mut c = Counter::connect(echo_server(Some(2)).await, 10).await;
        let closed = drive(&mut c, Pace::ClosedLoop, Duration::ZERO).await;
        assert!(matches!(closed, Err(End::Closed(Some(4000)))), "{closed:?}");
        assert_eq!(c.back, ["1"]);

        // Open loop, nothing sent before the shutdown: it ends at once, cleanly.
        let mut c = Counter::connect(echo_server(None).await, 10).await;
        c.ctx.shutdown.cancel();
        let every = Pace::Every(Duration::from_secs(60));
        assert!(drive(&mut c, every, Duration::from_secs(60)).await.is_ok());
        assert_eq!(c.sent, 0);
    }

    #[test]
    fn stamps_round_trip() {
        let id = stamp("v12", 7);
        assert!(id.starts_with("v12.7."));
        let t = sent_at(&id).unwrap();
        assert!(t <= stats::now_us());
        assert_eq!(sent_at("a3.1.123456"), Some(123_456));
        assert_eq!(sent_at("browser-uuid"), None);
        assert!(
            stamp("v18446744073709551615", u64::MAX).len()
                <= switchboard_protocol::limits::MAX_CLIENT_ID_BYTES
        );
    }

    #[test]
    fn filler_has_the_asked_size() {
        assert_eq!(filler_text("ab ", 64).len(), 64);
        assert_eq!(filler_text("ab ", 0), "a");
        assert_eq!(filler_text("ab ", 5), "ab ab");
        assert_eq!(filler_text("xyz", 4000).chars().count(), 4000);
    }
}
