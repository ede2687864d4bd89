//! One WebSocket connection, visitor or agent: the hello, then one `select!`
//! loop over the client's frames, the outbound queue, the heartbeat, and the
//! two ways a session is told to stop (server shutdown, kill switch).
//!
//! The session owns the socket. Everything it sends goes through its
//! bounded outbound queue except its own replies (welcome, resume, history,
//! errors), which it writes directly. It never blocks anyone else: the broker
//! only `try_send`s into the queue, and a full queue cuts the session off
//! with [`close::SLOW_CONSUMER`].

use crate::hub::accounts::{ACCOUNT_DELETED, ACCOUNT_DISABLED};
use crate::hub::broker::{KillSwitch, Outbound, Participant, SessionHandle};
use crate::hub::{Actor, Hub, HubError};
use crate::limits::{Admission, Bucket, Rate, Verdict};
use crate::metrics::RoleLabel;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::client::{ResumePoint, SendMessage};
use switchboard_protocol::limits::MAX_RESUME_POINTS;
use switchboard_protocol::server::ErrorMessage;
use switchboard_protocol::{
    close, ClientMessage, ConversationId, Encoded, Encoding, ErrorCode, ServerMessage,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// Longest a session spends saying goodbye: our close frame out, the peer's back.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Most queued outbound messages written before one flush.
const WRITE_BATCH: usize = 64;

/// Timers of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimers {
    pub hello: Duration,
    pub idle: Duration,
}

/// A session's share of the abuse limits: its connection's admission (whose
/// address buckets it shares with the address's other connections) and its
/// own message bucket.
pub struct SessionLimits {
    admission: Option<Arc<Admission>>,
    rate: Rate,
    bucket: Bucket,
}

impl SessionLimits {
    /// No admission: no limits (a connection served outside the accept loop).
    pub fn new(admission: Option<Arc<Admission>>) -> SessionLimits {
        let rate = admission
            .as_ref()
            .map_or(Rate::UNLIMITED, |a| a.settings().connection_messages);
        SessionLimits {
            admission,
            rate,
            bucket: Bucket::full(rate),
        }
    }

    /// Charges one client frame: the connection's bucket, and for visitors the address's too.
    fn frame(&mut self, visitor: bool) -> Verdict {
        let own = self.bucket.take(self.rate);
        if own != Verdict::Allow || !visitor {
            return own;
        }
        self.admission
            .as_ref()
            .map_or(Verdict::Allow, |a| a.address_message())
    }

    /// Charges the start of a new conversation (a new visitor) to the address.
    fn new_conversation(&self) -> Verdict {
        self.admission
            .as_ref()
            .map_or(Verdict::Allow, |a| a.new_conversation())
    }
}

/// What woke an idle session.
enum Event {
    Outbound(Outbound),
    Frame(Option<Result<WsMessage, tungstenite::Error>>),
    Tick,
}

/// How a session ended.
#[derive(Debug)]
enum Exit {
    /// We close with this code and reason.
    Close(u16, &'static str),
    /// The client closed, or the connection is gone: nothing left to say.
    Gone,
}

pub struct Session<S> {
    hub: Hub,
    ws: WebSocketStream<S>,
    encoding: Encoding,
    handle: SessionHandle,
    outbound: mpsc::Receiver<Outbound>,
    kill: Arc<KillSwitch>,
    shutdown: CancellationToken,
    timers: SessionTimers,
    user_agent: Option<String>,
    limits: SessionLimits,
    heartbeat: watch::Receiver<()>,
    /// Highest sequence delivered per conversation: replays and live events never repeat one.
    delivered: HashMap<ConversationId, u64>,
}

/// What a session is told at its start, besides the hub and the socket.
pub struct SessionSettings {
    /// Chosen by subprotocol.
    pub encoding: Encoding,
    /// Outbound queue length before the session is cut off as too slow.
    pub queue: usize,
    pub timers: SessionTimers,
    /// The handshake's User-Agent (kept on a visitor's profile).
    pub user_agent: Option<String>,
    pub limits: SessionLimits,
    /// Ticks every ping interval: ping the client, check it is still there.
    pub heartbeat: watch::Receiver<()>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn new(
        hub: Hub,
        ws: WebSocketStream<S>,
        settings: SessionSettings,
        shutdown: CancellationToken,
    ) -> Session<S> {
        let (handle, outbound, kill) = hub.new_session(settings.queue);
        Session {
            hub,
            ws,
            encoding: settings.encoding,
            handle,
            outbound,
            kill,
            shutdown,
            timers: settings.timers,
            user_agent: settings.user_agent,
            limits: settings.limits,
            heartbeat: settings.heartbeat,
            delivered: HashMap::new(),
        }
    }

    /// Runs the session to its end. Errors are the client's business: they are
    /// answered on the socket and logged at debug level only.
    ///
    /// Memory: a connection spends nearly all its life idle in [`Self::serve`]'s
    /// `select!`, so that state is kept small. Everything else (the hello and
    /// replay, handling a frame, writing a batch, the goodbye) runs in a boxed
    /// future that exists only while it runs, instead of widening every idle
    /// connection's task to the largest of them.
    pub async fn run(mut self) {
        let actor = match Box::pin(self.hello()).await {
            Ok(actor) => actor,
            Err(exit) => return Box::pin(self.finish(exit)).await,
        };
        let role = RoleLabel {
            role: if actor.agent_id().is_some() {
                "agent"
            } else {
                "visitor"
            },
        };
        let gauge = self.hub.metrics().connections.get_or_create(&role).clone();
        gauge.inc();
        let exit = self.serve(&actor).await;
        // Boxed: leaving may wait for the commit queue, and that state must
        // not widen every idle connection's task (see `run`).
        Box::pin(self.hub.leave(&actor, self.handle.id)).await;
        gauge.dec();
        tracing::debug!(participant = ?actor.who, session = self.handle.id, ?exit, "session ended");
        Box::pin(self.finish(exit)).await;
    }

    /// Reads the hello, authenticates, subscribes, welcomes, and replays what the client missed.
    async fn hello(&mut self) -> Result<Actor, Exit> {
        let first = match timeout(self.timers.hello, self.next_message()).await {
            Err(_) => return Err(Exit::Close(close::BAD_HELLO, "no hello in time")),
            Ok(Err(exit)) => return Err(exit),
            Ok(Ok(m)) => m,
        };
        let refused = |e: HubError| match e {
            HubError::Unauthorized => Exit::Close(close::UNAUTHORIZED, "invalid or expired token"),
            HubError::Identity(why) => Exit::Close(close::UNAUTHORIZED, why),
            // A genuine token of an account that may not connect (disabled).
            HubError::Forbidden(why) => Exit::Close(close::FORBIDDEN, why),
            HubError::ShuttingDown => Exit::Close(close::GOING_AWAY, "server going away"),
            // The client's own mistake: retrying the same hello would fail the same way.
            HubError::BadRequest(_) | HubError::TooLarge(_) => {
                Exit::Close(close::BAD_HELLO, "invalid hello")
            }
            _ => Exit::Close(close::INTERNAL_ERROR, "could not start the session"),
        };
        let (actor, resume) = match first {
            ClientMessage::VisitorHello(h) => {
                let anonymous_new = h.token.is_none() && h.user_hash.is_none();
                if anonymous_new && self.limits.new_conversation() != Verdict::Allow {
                    return Err(Exit::Close(
                        close::RATE_LIMITED,
                        "too many new conversations from your address: retry later",
                    ));
                }
                let (actor, welcome) = self
                    .hub
                    .visitor_hello(&h, self.user_agent.as_deref())
                    .map_err(refused)?;
                self.hub.join_visitor(&actor, self.handle.clone());
                self.write(&ServerMessage::VisitorWelcome(welcome)).await?;
                (actor, h.resume)
            }
            ClientMessage::AgentHello(h) => {
                let actor = self
                    .hub
                    .authenticate_session(&h.token, &self.handle)
                    .map_err(refused)?;
                let welcome = self
                    .hub
                    .join_agent(&actor, self.handle.clone())
                    .await
                    .map_err(refused)?;
                self.write(&ServerMessage::AgentWelcome(welcome)).await?;
                (actor, h.resume)
            }
            _ => {
                return Err(Exit::Close(
                    close::BAD_HELLO,
                    "the first message must be a hello",
                ))
            }
        };
        if let Err(exit) = self.resume(&actor, &resume).await {
            Box::pin(self.hub.leave(&actor, self.handle.id)).await;
            return Err(exit);
        }
        Ok(actor)
    }

    /// Sends every durable message after each resume point. Subscription came
    /// first, so anything newer arrives live, and `delivered` drops overlaps.
    async fn resume(&mut self, actor: &Actor, points: &[ResumePoint]) -> Result<(), Exit> {
        for p in points.iter().take(MAX_RESUME_POINTS) {
            match self.hub.resume_from(actor, p.conversation_id, p.last_seq) {
                Ok(messages) => {
                    self.delivered.insert(p.conversation_id, p.last_seq);
                    for m in messages {
                        self.delivered.insert(m.conversation_id, m.seq);
                        self.feed(&ServerMessage::Message(m)).await?;
                    }
                }
                Err(e) => {
                    self.feed(&error_message(&e, Some(p.conversation_id), None))
                        .await?
                }
            }
        }
        self.ws.flush().await.map_err(|_| Exit::Gone)
    }

    async fn serve(&mut self, actor: &Actor) -> Exit {
        let mut last_heard = Instant::now();
        let kill = self.kill.clone();
        loop {
            // Wait for something to happen; the waiting futures are dropped
            // before it is handled, so handling does not add to the idle state.
            let event = tokio::select! {
                // The server is shutting down: clients should come back.
                _ = self.shutdown.cancelled() => return Exit::Close(close::GOING_AWAY, "server going away"),
                // The broker or an admin cut this session off.
                _ = kill.tripped() => return self.killed(actor),
                Some(first) = self.outbound.recv() => Event::Outbound(first),
                frame = self.ws.next() => Event::Frame(frame),
                // The server-wide heartbeat (one timer for every connection).
                beat = self.heartbeat.changed() => match beat {
                    Ok(()) => Event::Tick,
                    Err(_) => return Exit::Close(close::GOING_AWAY, "server going away"),
                },
            };
            let handled = match event {
                // Events for this participant: write all that are queued, flush once.
                Event::Outbound(first) => Box::pin(self.write_guarded(actor, first, &kill)).await,
                // A frame from the client.
                Event::Frame(frame) => {
                    last_heard = Instant::now();
                    match frame {
                        None => Err(Exit::Gone),
                        Some(Err(e)) => Err(ws_error_exit(&e)),
                        Some(Ok(msg)) => Box::pin(self.on_frame(actor, msg)).await,
                    }
                }
                // Heartbeat: ping, and give up on a peer silent for too long.
                Event::Tick if last_heard.elapsed() >= self.timers.idle => {
                    Err(Exit::Close(close::IDLE_TIMEOUT, "no pong"))
                }
                Event::Tick => Box::pin(self.ws.send(WsMessage::Ping(Default::default())))
                    .await
                    .map_err(|_| Exit::Gone),
            };
            if let Err(exit) = handled {
                return exit;
            }
        }
    }

    /// Writes a batch. A peer that stops reading blocks the write once the
    /// kernel's buffer is full: that must not also hold off shutdown, the kill
    /// switch, or the idle deadline.
    async fn write_guarded(
        &mut self,
        actor: &Actor,
        first: Outbound,
        kill: &KillSwitch,
    ) -> Result<(), Exit> {
        let shutdown = self.shutdown.clone();
        tokio::select! {
            r = timeout(self.timers.idle, self.write_queued(first)) => match r {
                Ok(written) => written,
                Err(_) => Err(Exit::Close(close::SLOW_CONSUMER, "too slow: reconnect and resume")),
            },
            _ = kill.tripped() => Err(self.killed(actor)),
            _ = shutdown.cancelled() => Err(Exit::Close(close::GOING_AWAY, "server going away")),
        }
    }

    fn killed(&self, actor: &Actor) -> Exit {
        match self.kill.code() {
            Some(close::SLOW_CONSUMER) => {
                Exit::Close(close::SLOW_CONSUMER, "too slow: reconnect and resume")
            }
            Some(close::FORBIDDEN) => Exit::Close(close::FORBIDDEN, self.forbidden(actor)),
            Some(close::UNAUTHORIZED) => Exit::Close(close::UNAUTHORIZED, "credentials revoked"),
            Some(code) => Exit::Close(code, "closed by the server"),
            None => Exit::Gone,
        }
    }

    /// Why an agent was cut off with 4503: their account is disabled, or gone.
    fn forbidden(&self, actor: &Actor) -> &'static str {
        let deleted = actor
            .agent_id()
            .is_some_and(|id| matches!(self.hub.store().agent(id), Ok(None)));
        if deleted {
            ACCOUNT_DELETED
        } else {
            ACCOUNT_DISABLED
        }
    }

    /// Handles one frame: decode, dispatch, answer errors.
    async fn on_frame(&mut self, actor: &Actor, frame: WsMessage) -> Result<(), Exit> {
        let decoded = match &frame {
            WsMessage::Text(t) => self.encoding.decode_text::<ClientMessage>(t.as_str()),
            WsMessage::Binary(b) => self.encoding.decode_binary::<ClientMessage>(b),
            WsMessage::Close(_) => return Err(Exit::Gone),
            // Pings are answered by tungstenite; pongs only prove liveness.
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return Ok(()),
        };
        let verdict = self.limits.frame(actor.agent_id().is_none());
        match (decoded, verdict) {
            (_, Verdict::Abusive) => Err(Exit::Close(
                close::RATE_LIMITED,
                "rate limit exceeded after being told to slow down",
            )),
            (decoded, Verdict::Limited(wait)) => {
                let (client_id, conv) = match &decoded {
                    Ok(ClientMessage::Send(m)) => (Some(m.client_id.clone()), m.conversation_id),
                    Ok(msg) => (None, conversation_of(msg)),
                    Err(_) => (None, None),
                };
                let err = ErrorMessage {
                    code: ErrorCode::RateLimited,
                    message: format!("too many messages: retry in {} ms", wait.as_millis().max(1)),
                    client_id,
                    conversation_id: conv,
                };
                self.write(&ServerMessage::Error(err)).await
            }
            (Ok(msg), Verdict::Allow) => self.dispatch(actor, msg).await,
            (Err(e), Verdict::Allow) => {
                let err = ErrorMessage {
                    code: e.code(),
                    message: e.to_string(),
                    client_id: None,
                    conversation_id: None,
                };
                self.write(&ServerMessage::Error(err)).await
            }
        }
    }

    async fn dispatch(&mut self, actor: &Actor, msg: ClientMessage) -> Result<(), Exit> {
        let conv = conversation_of(&msg);
        let hub = self.hub.clone();
        let result = match msg {
            ClientMessage::Send(m) => return self.send(actor, m).await,
            ClientMessage::History(h) => match hub.history(actor, &h) {
                Ok(page) => return self.write(&ServerMessage::History(page)).await,
                Err(e) => Err(e),
            },
            ClientMessage::Typing(t) => hub.typing(actor, t.conversation_id, t.typing),
            ClientMessage::Read(r) => hub.mark_read(actor, r.conversation_id, r.seq).await,
            ClientMessage::Claim(c) => hub.claim(actor, c.conversation_id).await,
            ClientMessage::Transfer(t) => hub.transfer(actor, t.conversation_id, t.to_agent).await,
            ClientMessage::Close(c) => hub.close(actor, c.conversation_id).await,
            ClientMessage::SetStatus(s) => hub.set_status(actor, s.status).await,
            ClientMessage::SetCapacity(c) => hub.set_capacity(actor, c.capacity).await,
            ClientMessage::Rate(r) => hub.rate(actor, r).await,
            ClientMessage::Identify(i) => hub.identify(actor, i).await,
            ClientMessage::Handoff(c) => hub.handoff(actor, c.conversation_id, 0, None).await,
            ClientMessage::TransferToTeam(t) => {
                hub.transfer_to_team(actor, t.conversation_id, t.team).await
            }
            ClientMessage::Note(n) => hub.add_note(actor, n).await,
            ClientMessage::VisitorHello(_) | ClientMessage::AgentHello(_) => {
                Err(HubError::BadRequest("already said hello".into()))
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.write(&error_message(&e, conv, None)).await,
        }
    }

    async fn send(&mut self, actor: &Actor, m: SendMessage) -> Result<(), Exit> {
        let (client_id, conv) = (m.client_id.clone(), m.conversation_id);
        let sent = match actor.who {
            Participant::Visitor(_) => self.hub.visitor_message(actor, &self.handle, m).await,
            Participant::Agent(_) => self
                .hub
                .send_message(actor, Some(&self.handle), m, None)
                .await
                .map(|_| ()),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(e) => self.write(&error_message(&e, conv, Some(client_id))).await,
        }
    }

    /// Writes `first` and whatever else is queued (up to a batch), then flushes once.
    async fn write_queued(&mut self, first: Outbound) -> Result<(), Exit> {
        self.feed_outbound(first).await?;
        for _ in 1..WRITE_BATCH {
            match self.outbound.try_recv() {
                Ok(next) => self.feed_outbound(next).await?,
                Err(_) => break,
            }
        }
        self.ws.flush().await.map_err(|_| Exit::Gone)
    }

    async fn feed_outbound(&mut self, msg: Outbound) -> Result<(), Exit> {
        if let ServerMessage::Message(m) = msg.message() {
            let seen = self.delivered.entry(m.conversation_id).or_insert(0);
            if m.seq <= *seen {
                return Ok(());
            }
            *seen = m.seq;
        }
        // Encoded once per encoding for all the sessions it goes to.
        let frame = msg.frame(self.encoding);
        self.ws.feed(frame).await.map_err(|_| Exit::Gone)
    }

    async fn feed(&mut self, msg: &ServerMessage) -> Result<(), Exit> {
        let frame = match self.encoding.encode(msg) {
            Encoded::Text(t) => WsMessage::text(t),
            Encoded::Binary(b) => WsMessage::binary(b),
        };
        self.ws.feed(frame).await.map_err(|_| Exit::Gone)
    }

    async fn write(&mut self, msg: &ServerMessage) -> Result<(), Exit> {
        self.feed(msg).await?;
        self.ws.flush().await.map_err(|_| Exit::Gone)
    }

    /// Receives the next data message (skipping control frames).
    async fn next_message(&mut self) -> Result<ClientMessage, Exit> {
        loop {
            let decoded = match self.ws.next().await {
                None => return Err(Exit::Gone),
                Some(Err(e)) => return Err(ws_error_exit(&e)),
                Some(Ok(WsMessage::Text(t))) => {
                    self.encoding.decode_text::<ClientMessage>(t.as_str())
                }
                Some(Ok(WsMessage::Binary(b))) => self.encoding.decode_binary::<ClientMessage>(&b),
                Some(Ok(WsMessage::Close(_))) => return Err(Exit::Gone),
                Some(Ok(_)) => continue,
            };
            return decoded
                .map_err(|_| Exit::Close(close::BAD_HELLO, "the first message must be a hello"));
        }
    }

    /// Sends our close frame (if any) and waits briefly for the client's reply.
    /// Bounded by [`CLOSE_LINGER`]: a peer that reads nothing cannot hold the
    /// session (or the server's shutdown) open.
    async fn finish(mut self, exit: Exit) {
        let _ = timeout(CLOSE_LINGER, async {
            match exit {
                // After the client's Close, tungstenite has queued our reply (RFC 6455
                // 5.5.1: we MUST send one); it goes out on the next write or flush.
                Exit::Gone => {
                    let _ = self.ws.flush().await;
                }
                Exit::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    if self.ws.close(Some(frame)).await.is_ok() {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    }
                }
            }
        })
        .await;
    }
}

fn ws_error_exit(e: &tungstenite::Error) -> Exit {
    close_for(e).map_or(Exit::Gone, |(code, reason)| Exit::Close(code, reason))
}

/// The close code and reason a session answers a broken connection with, or
/// `None` when the connection is simply gone. Public so the Autobahn echo
/// (`tests/autobahn.rs`) closes exactly as sessions do.
pub fn close_for(e: &tungstenite::Error) -> Option<(u16, &'static str)> {
    use tungstenite::error::CapacityError;
    match e {
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some((close::MESSAGE_TOO_BIG, "message too big"))
        }
        tungstenite::Error::Utf8(_) => Some((close::INVALID_PAYLOAD, "invalid UTF-8")),
        tungstenite::Error::Protocol(_) => Some((close::PROTOCOL_ERROR, "protocol error")),
        _ => None,
    }
}

fn conversation_of(msg: &ClientMessage) -> Option<ConversationId> {
    match msg {
        ClientMessage::Send(m) => m.conversation_id,
        ClientMessage::Typing(t) => Some(t.conversation_id),
        ClientMessage::Read(r) => Some(r.conversation_id),
        ClientMessage::History(h) => Some(h.conversation_id),
        ClientMessage::Claim(c) | ClientMessage::Close(c) | ClientMessage::Handoff(c) => {
            Some(c.conversation_id)
        }
        ClientMessage::Transfer(t) => Some(t.conversation_id),
        ClientMessage::TransferToTeam(t) => Some(t.conversation_id),
        ClientMessage::Rate(r) => Some(r.conversation_id),
        ClientMessage::Note(n) => Some(n.conversation_id),
        _ => None,
    }
}

fn error_message(
    e: &HubError,
    conversation_id: Option<ConversationId>,
    client_id: Option<String>,
) -> ServerMessage {
    if let HubError::Store(inner) = e {
        tracing::error!(error = %inner, "store error while serving a session");
    }
    let message = match e {
        HubError::Store(_) => "internal error".to_string(),
        other => other.to_string(),
    };
    ServerMessage::Error(ErrorMessage {
        code: e.code(),
        message,
        client_id,
        conversation_id,
    })
}
