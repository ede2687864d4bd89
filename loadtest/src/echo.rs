//! `--raw`: a participant that speaks no Switchboard protocol at all, for
//! measuring a plain WebSocket echo server (the transport's ceiling, see
//! `bench/echo/`). It connects, then writes frames at its [`Pace`] and waits
//! for each to come back.
//!
//! Each frame carries `{n}.{sent_at_us}` (padded to `--message-bytes`), so the
//! round trip is recorded as send → ack, and the ledger checks that every
//! frame came back exactly once (key: connection index, n).

use crate::ledger::Delivery;
use crate::session::{Ctx, End};
use crate::stats::{self, Metric, Recorder};
use crate::visitor::{tick, Pace};
use crate::wire::{error_kind, Ws};
use futures::{SinkExt, StreamExt};
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
        let end = End::of(self.serve().await);
        let ctx = self.ctx.clone();
        ctx.finish("echo", self.ws, end).await;
    }

    async fn serve(&mut self) -> Result<(), End> {
        let mut timer = self.pace.timer(self.offset);
        if self.pace == Pace::ClosedLoop {
            self.send_next().await?;
        }
        loop {
            let sending = !self.ctx.stop_sending.is_cancelled();
            tokio::select! {
                // The run is over.
                _ = self.ctx.shutdown.cancelled() => return Ok(()),
                // Time to write (open loop and burst).
                _ = tick(&mut timer), if sending => {
                    for _ in 0..self.pace.per_tick() {
                        self.send_next().await?;
                    }
                }
                // A frame came back.
                next = self.ws.next() => match next {
                    Some(Ok(Message::Text(t))) => self.on_echo(t.as_str()).await?,
                    Some(Ok(Message::Binary(b))) => self.on_echo(&String::from_utf8_lossy(&b)).await?,
                    Some(Ok(Message::Close(c))) => return Err(End::Closed(Some(c.map_or(1005, |c| u16::from(c.code))))),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(End::Failed(error_kind(&e))),
                    None => return Err(End::Closed(None)),
                },
            }
        }
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

    async fn on_echo(&mut self, frame: &str) -> Result<(), End> {
        let Some((n, sent_at)) = parse_echo(frame) else {
            self.ctx
                .stats
                .error("echo: a frame that was not ours came back");
            return Ok(());
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
        if self.pace == Pace::ClosedLoop {
            self.send_next().await?;
        }
        Ok(())
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
