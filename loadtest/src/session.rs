//! What every simulated participant shares: the run's context ([`Ctx`]),
//! opening a session (dial, hello, welcome, under the handshake limit), the
//! message stamps that carry send times, and how a session's end is tallied.

use crate::ledger::Ledger;
use crate::slow::SlowBoard;
use crate::stats::{self, Metric, Recorder, Stats};
use crate::wire::{self, Connector, Frame, Ws};
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::{ClientMessage, Encoding, ServerMessage};
use tokio::sync::Semaphore;
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

/// A client id that carries who sent it and when: `{who}.{n}.{sent_at_us}`.
pub fn stamp(who: &str, n: u64) -> String {
    format!("{who}.{n}.{}", stats::now_us())
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
