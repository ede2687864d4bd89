//! Accepting connections. Each socket is admitted against the connection
//! limits, gets its options (no Nagle, an optional send-buffer cap), and is
//! served as one HTTP/1.1 connection by hyper, with a deadline on its request
//! headers (slow or idle clients cannot hold a socket for free). A WebSocket
//! upgrade hands the socket, and its admission, to a session.

use crate::limits::{Admission, Limits, Refusal};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// What a request knows about its connection (a request extension).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The connection's place under the limits, or why it has none. A refused
    /// connection still gets an answer: a 503 or, for a WebSocket, close 4002.
    pub admission: Result<Arc<Admission>, Refusal>,
}

/// How the accept loop treats sockets.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    pub header_timeout: Duration,
    pub send_buffer: Option<usize>,
}

/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while sockets close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often addresses without connections are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Accepts until `stop`, then lets each connection finish its request and
/// waits for all of them (upgraded sessions are tracked elsewhere).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Arc<Limits>,
    settings: ConnSettings,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            _ = sweep.tick() => { limits.sweep(); continue }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        configure(&tcp, settings.send_buffer);
        let info = ConnInfo {
            peer,
            admission: limits.admit(peer.ip()).map(Arc::new),
        };
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                req
            },
        ));
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(settings.header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::trace!(error = %e, %peer, "connection ended with an error");
                },
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(settings.header_timeout, conn).await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Chat frames are small: send them at once (no Nagle), and bound the kernel's send buffer if asked.
fn configure(tcp: &TcpStream, send_buffer: Option<usize>) {
    let _ = tcp.set_nodelay(true);
    if let Some(n) = send_buffer {
        let _ = socket2::SockRef::from(tcp).set_send_buffer_size(n);
    }
}
