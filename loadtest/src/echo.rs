//! `--raw`: a participant that speaks no Switchboard protocol at all, for
//! measuring a plain WebSocket echo server (the transport's ceiling, see
//! `bench/echo/`). It connects, then writes frames at its [`Pace`] and waits
//! for each to come back.
//!
//! Each frame carries `{n}.{sent_at_us}` (padded to `--message-bytes`), so the
//! round trip is recorded as send → ack, and the ledger checks that every
//! frame came back exactly once (key: connection index, n). Its loop is
//! [`crate::session::drive`], like a visitor's; what comes back is read raw.

use crate::ledger::Delivery;
use crate::session::{self, Client, Ctx, End, Turn};
use crate::stats::{self, Metric, Recorder};
use crate::visitor::Pace;
use crate::wire::{error_kind, Ws};
use futures::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A connected echo client.
#[derive(Debug)]
pub struct EchoClient {
    index: u64,
    ws: Ws,
    ctx: Ctx,
    rec: Recorder,
    pace: Pace,
    offset: Duration,
    sent: u64,
}

impl EchoClient {
    /// Connects (TCP + WebSocket upgrade, no hello). `None` when that failed (tallied).
    pub async fn connect(
        index: usize,
        ctx: Ctx,
        pace: Pace,
        offset: Duration,
    ) -> Option<EchoClient> {
        let rec = Recorder::new(ctx.stats.clone());
        let ws = ctx.open_raw(&rec).await?;
        Some(EchoClient {
            index: u64::try_from(index).unwrap_or(u64::MAX),
            ws,
            ctx,
            rec,
            pace,
            offset,
            sent: 0,
        })
    }

    /// Echoes until the run shuts down or the connection ends.
    pub async fn run(mut self) {
        let (pace, offset) = (self.pace, self.offset);
        let end = End::of(session::drive(&mut self, pace, offset).await);
        let ctx = self.ctx.clone();
        ctx.finish("echo", self.ws, end).await;
    }

    /// A frame came back: its turn is over (closed loop: the next one goes).
    fn on_echo(&mut self, frame: &str) -> Turn {
        let Some((n, sent_at)) = parse_echo(frame) else {
            self.ctx
                .stats
                .error("echo: a frame that was not ours came back");
            return Turn::Wait;
        };
        match self.ctx.ledger.deliver(self.index, n) {
            Delivery::First | Delivery::AfterHistory => {
                stats::bump(&self.ctx.stats.counters.acked);
                stats::bump(&self.ctx.stats.counters.delivered);
                self.rec
                    .record(Metric::SendToAck, stats::now_us().saturating_sub(sent_at));
            }
            Delivery::Duplicate => self.ctx.stats.error("echo: duplicate frame"),
        }
        Turn::Next
    }
}

impl Client for EchoClient {
    /// Frames are read raw: no Switchboard protocol here.
    type In = Message;

    fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn ws(&mut self) -> &mut Ws {
        &mut self.ws
    }

    fn decode(&self, m: Message) -> Result<Message, String> {
        Ok(m)
    }

    async fn send_next(&mut self) -> Result<(), End> {
        if self.ctx.stop_sending.is_cancelled() {
            return Ok(());
        }
        self.sent += 1;
        let mut frame = format!("{}.{} ", self.sent, stats::now_us());
        frame.push_str(&self.ctx.text[..self.ctx.text.len().saturating_sub(frame.len())]);
        // The frame is "sent" = owed back: the ledger's ack.
        self.ctx.ledger.ack(self.index, self.sent);
        stats::bump(&self.ctx.stats.counters.visitor_sent);
        self.ws
            .send(Message::text(frame))
            .await
            .map_err(|e| End::Failed(error_kind(&e)))
    }

    async fn on_message(&mut self, m: Message) -> Result<Turn, End> {
        Ok(match m {
            Message::Text(t) => self.on_echo(t.as_str()),
            Message::Binary(b) => self.on_echo(&String::from_utf8_lossy(&b)),
            // Only text and binary messages reach here.
            _ => Turn::Wait,
        })
    }
}

/// `(n, sent_at_us)` from a frame `"{n}.{sent_at_us} padding"`.
pub fn parse_echo(frame: &str) -> Option<(u64, u64)> {
    let head = frame.split(' ').next()?;
    let (n, t) = head.split_once('.')?;
    Some((n.parse().ok()?, t.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_frames_carry_their_number_and_time() {
        assert_eq!(parse_echo("12.3456 load test"), Some((12, 3456)));
        assert_eq!(parse_echo("7.8"), Some((7, 8)));
        assert_eq!(parse_echo("{\"type\":\"ack\"}"), None);
        assert_eq!(parse_echo("x.1 y"), None);
    }
}
