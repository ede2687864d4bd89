//! Shared test helpers: a real server on 127.0.0.1:0 with a temp sled folder,
//! a real WebSocket client (tokio-tungstenite), and a minimal HTTP client.
#![allow(dead_code, unreachable_pub)]

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_protocol::client::{AgentHello, ResumePoint, SendMessage, VisitorHello};
use switchboard_protocol::server::{AgentWelcome, VisitorWelcome};
use switchboard_protocol::{ClientMessage, ConversationId, Encoded, Encoding, ServerMessage};
use switchboard_server::config::Config;
use switchboard_server::server::{self, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ADMIN: &str = "admin@localhost";
pub const ADMIN_PASSWORD: &str = "admin-password";
const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    running: Option<Running>,
    _temp: Option<tempfile::TempDir>,
}

pub fn config(dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: dir.to_path_buf(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        // Routing tests want conversations to reach agents at once; tests/bot.rs turns it on.
        bot: false,
        // Tests talk fast from one address; tests/limits.rs sets the limits it tests.
        max_connections_per_ip: 0,
        messages_per_sec: 0.0,
        ip_messages_per_sec: 0.0,
        ip_new_conversations_per_min: 0.0,
        login_failures_per_email: 0,
        login_failures_per_ip: 0,
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let mut s = TestServer::start_with(config(temp.path())).await;
        s._temp = Some(temp);
        s
    }

    pub async fn start_with(config: Config) -> TestServer {
        let dir = config.data.clone();
        let running = server::start(config).await.expect("server starts");
        TestServer {
            addr: running.addr,
            dir,
            running: Some(running),
            _temp: None,
        }
    }

    /// Shuts down gracefully and returns the data folder (kept alive by the returned guard).
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        let r = self.running.take().unwrap();
        r.shutdown();
        r.stopped().await.expect("clean stop");
        self._temp.take()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        http(self.addr, method, path, token, body).await
    }

    /// `POST /api/login`, whatever it answers.
    pub async fn try_login(&self, email: &str, password: &str) -> (u16, Value) {
        try_login(self.addr, email, password).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        login(self.addr, email, password).await
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    /// Creates an agent with `capacity` and returns (id, bearer token).
    pub async fn agent_account(&self, email: &str, capacity: u32) -> (u64, String) {
        let admin = self.admin_token().await;
        let body = json!({"email": email, "name": email.split('@').next().unwrap(), "password": "password-1", "capacity": capacity});
        let (status, created) = self
            .http("POST", "/api/agents", Some(&admin), Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        (
            created["id"].as_u64().unwrap(),
            self.login(email, "password-1").await,
        )
    }
}

impl TestServer {
    /// Creates an agent with `capacity` in `teams` and returns (id, bearer token).
    pub async fn agent_in_teams(
        &self,
        email: &str,
        capacity: u32,
        teams: &[&str],
    ) -> (u64, String) {
        let admin = self.admin_token().await;
        let body = json!({"email": email, "name": email.split('@').next().unwrap(), "password": "password-1", "capacity": capacity, "teams": teams});
        let (status, created) = self
            .http("POST", "/api/agents", Some(&admin), Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["teams"], json!(teams), "{created}");
        (
            created["id"].as_u64().unwrap(),
            self.login(email, "password-1").await,
        )
    }
}

/// An agent and a visitor whose first message started a conversation the agent was assigned.
pub struct Pair {
    pub agent: Client,
    pub agent_id: u64,
    pub visitor: Client,
    pub visitor_token: String,
    pub conv: ConversationId,
}

impl TestServer {
    /// Agent `ann@shop.test` (capacity 5) online, a visitor who said `first`, assigned to Ann.
    pub async fn pair(&self, first: &str) -> Pair {
        let (agent_id, token) = self.agent_account("ann@shop.test", 5).await;
        let (mut agent, _) = Client::agent(&self.ws_url(), Encoding::Json, &token, vec![]).await;
        let (mut visitor, w) = Client::visitor(&self.ws_url(), Encoding::Json, None, vec![]).await;
        let (conv, _) = visitor.say("first", None, first).await;
        agent
            .event(switchboard_protocol::server::ConversationEventKind::Assigned)
            .await;
        Pair {
            agent,
            agent_id,
            visitor,
            visitor_token: w.token,
            conv,
        }
    }
}

/// `POST /api/login` on the server at `addr`, whatever it answers.
pub async fn try_login(addr: SocketAddr, email: &str, password: &str) -> (u16, Value) {
    http(
        addr,
        "POST",
        "/api/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// A bearer token from `POST /api/login` (which must succeed).
pub async fn login(addr: SocketAddr, email: &str, password: &str) -> String {
    let (status, body) = try_login(addr, email, password).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON body (Null if none).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let reply = http_raw(addr, method, path, &headers, &body).await;
    (reply.status, reply.json())
}

/// A raw HTTP reply: status, headers (names lower-cased) and body text.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (Null if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request with any headers and `Connection: close`; the whole reply.
pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A visitor on a bare socket: handshake and hello written by hand, and from
/// then on it never writes (not even pongs), so it plays a peer that has gone
/// silent without the client library answering for it.
pub async fn silent_visitor(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: switchboard.v1.json\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // One masked text frame (mask 0: the payload goes as is).
    let hello = br#"{"type":"visitor_hello"}"#;
    let mut frame = vec![0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(hello);
    s.write_all(&frame).await.unwrap();
    s
}

/// Reads a bare socket to its end and returns the close code of the server's Close frame.
pub async fn close_code_on(mut s: TcpStream) -> Option<u16> {
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("the server never closed")
        .ok()?;
    // Walk the server's (unmasked) frames.
    let mut i = 0;
    while i + 2 <= raw.len() {
        let (op, len7) = (raw[i] & 0x0f, (raw[i + 1] & 0x7f) as usize);
        let (len, start) = match len7 {
            126 => (u16::from_be_bytes([raw[i + 2], raw[i + 3]]) as usize, i + 4),
            127 => return None,
            n => (n, i + 2),
        };
        if op == 0x8 && len >= 2 {
            return Some(u16::from_be_bytes([raw[start], raw[start + 1]]));
        }
        i = start + len;
    }
    None
}

/// GET a text body.
pub async fn http_text(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw)
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub enc: Encoding,
}

impl Client {
    pub async fn connect(url: &str, enc: Encoding) -> Client {
        Client::connect_with(url, enc, None)
            .await
            .expect("connects")
    }

    /// Connects with a tiny socket receive buffer, to play a client that cannot keep up.
    pub async fn connect_slow(addr: SocketAddr, enc: Encoding) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", enc.subprotocol().parse().unwrap());
        let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
        Client { ws, enc }
    }

    pub async fn connect_with(
        url: &str,
        enc: Encoding,
        origin: Option<&str>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", enc.subprotocol().parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Client { ws, enc })
    }

    pub async fn send(&mut self, msg: ClientMessage) {
        let frame = match self.enc.encode(&msg) {
            Encoded::Text(t) => Ws::text(t),
            Encoded::Binary(b) => Ws::binary(b),
        };
        self.ws.send(frame).await.expect("send");
    }

    /// The next protocol message (control frames skipped); panics after a timeout or on close.
    pub async fn recv(&mut self) -> ServerMessage {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message");
            match frame.expect("stream ended").expect("ws error") {
                Ws::Text(t) => return self.enc.decode_text(t.as_str()).expect("decodes"),
                Ws::Binary(b) => return self.enc.decode_binary(&b).expect("decodes"),
                Ws::Close(c) => panic!("closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next protocol message, or the close code if the server closes first.
    pub async fn next_or_close(&mut self) -> Result<ServerMessage, u16> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message or a close");
            match frame {
                Some(Ok(Ws::Text(t))) => return Ok(self.enc.decode_text(t.as_str()).unwrap()),
                Some(Ok(Ws::Binary(b))) => return Ok(self.enc.decode_binary(&b).unwrap()),
                Some(Ok(Ws::Close(Some(c)))) => return Err(u16::from(c.code)),
                Some(Ok(Ws::Close(None))) | None => return Err(1005),
                Some(Ok(_)) => continue,
                Some(Err(_)) => return Err(1006),
            }
        }
    }

    /// Skips messages until one matches.
    pub async fn recv_until<T>(&mut self, mut f: impl FnMut(ServerMessage) -> Option<T>) -> T {
        loop {
            if let Some(t) = f(self.recv().await) {
                return t;
            }
        }
    }

    /// Waits for the server to close; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        self.closed_with_reason().await.0
    }

    /// Waits for the server to close; returns the close code and reason.
    pub async fn closed_with_reason(&mut self) -> (u16, String) {
        // One deadline for the whole wait: pings (or other frames) arriving
        // meanwhile must not keep a test waiting for a close that never comes.
        let wait = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Ws::Close(Some(c)))) => {
                        return (u16::from(c.code), c.reason.as_str().to_string())
                    }
                    Some(Ok(Ws::Close(None))) | None => return (1005, String::new()),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) => return (1006, String::new()),
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("timed out waiting for close")
    }

    pub async fn visitor(
        url: &str,
        enc: Encoding,
        token: Option<String>,
        resume: Vec<ResumePoint>,
    ) -> (Client, VisitorWelcome) {
        let mut c = Client::connect(url, enc).await;
        c.send(ClientMessage::VisitorHello(VisitorHello {
            token,
            resume,
            page_url: Some("http://shop.test/".into()),
            ..Default::default()
        }))
        .await;
        match c.recv().await {
            ServerMessage::VisitorWelcome(w) => (c, w),
            other => panic!("expected visitor_welcome, got {other:?}"),
        }
    }

    pub async fn agent(
        url: &str,
        enc: Encoding,
        token: &str,
        resume: Vec<ResumePoint>,
    ) -> (Client, AgentWelcome) {
        let mut c = Client::connect(url, enc).await;
        c.send(ClientMessage::AgentHello(AgentHello {
            token: token.into(),
            resume,
        }))
        .await;
        match c.recv().await {
            ServerMessage::AgentWelcome(w) => (c, w),
            other => panic!("expected agent_welcome, got {other:?}"),
        }
    }

    /// Sends a message and waits for its ack; returns (conversation, seq).
    pub async fn say(
        &mut self,
        client_id: &str,
        conversation: Option<ConversationId>,
        text: &str,
    ) -> (ConversationId, u64) {
        self.send(ClientMessage::Send(SendMessage {
            client_id: client_id.into(),
            conversation_id: conversation,
            text: text.into(),
        }))
        .await;
        self.recv_until(|m| match m {
            ServerMessage::Ack(a) if a.client_id == client_id => Some((a.conversation_id, a.seq)),
            ServerMessage::Error(e) if e.client_id.as_deref() == Some(client_id) => {
                panic!("send refused: {e:?}")
            }
            _ => None,
        })
        .await
    }

    /// Waits for a chat message with this text.
    pub async fn message(&mut self, text: &str) -> switchboard_protocol::model::Message {
        self.recv_until(|m| match m {
            ServerMessage::Message(m) if m.text == text => Some(m),
            _ => None,
        })
        .await
    }

    /// Waits for a conversation event of this kind.
    pub async fn event(
        &mut self,
        kind: switchboard_protocol::server::ConversationEventKind,
    ) -> switchboard_protocol::server::ConversationEvent {
        self.recv_until(|m| match m {
            ServerMessage::Conversation(e) if e.event == kind => Some(e),
            _ => None,
        })
        .await
    }

    /// Closes a conversation (as an agent or its visitor).
    pub async fn close(&mut self, conv: ConversationId) {
        self.send(ClientMessage::Close(
            switchboard_protocol::client::ConversationRef {
                conversation_id: conv,
            },
        ))
        .await;
    }

    /// Waits for an `agent_removed` (an account left the roster).
    pub async fn agent_removed(&mut self) -> switchboard_protocol::server::AgentRemoved {
        self.recv_until(|m| match m {
            ServerMessage::AgentRemoved(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Waits for an error.
    pub async fn error(&mut self) -> switchboard_protocol::server::ErrorMessage {
        self.recv_until(|m| match m {
            ServerMessage::Error(e) => Some(e),
            _ => None,
        })
        .await
    }
}

/// Starts the real `switchboard` binary on 127.0.0.1:0 over `dir`, with the
/// abuse limits lifted (tests send fast from one address) and `env` on top;
/// returns the child and the address it printed.
pub fn spawn_binary(dir: &Path, env: &[(&str, &str)]) -> (Spawned, SocketAddr) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let unlimited = [
        "MESSAGES_PER_SEC",
        "IP_MESSAGES_PER_SEC",
        "IP_NEW_CONVERSATIONS_PER_MIN",
        "MAX_CONNECTIONS_PER_IP",
    ]
    .map(|k| (format!("SWITCHBOARD_{k}"), "0".to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .envs(unlimited)
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .env("SWITCHBOARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("switchboard starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a first line").unwrap();
    let addr = line
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("listening address");
    std::thread::spawn(move || lines.for_each(drop));
    (Spawned(child), addr)
}

/// A server process from [`spawn_binary`]; killed when dropped, so a test
/// that fails half-way leaves no server running. Derefs to the `Child`.
pub struct Spawned(std::process::Child);

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Already gone (killed and waited for by the test): both are no-ops.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
