//! A plain WebSocket echo server on tokio-tungstenite, with its default
//! configuration (128 KiB read buffer): the ceiling of the transport
//! Switchboard is built on, measured by `loadtest --raw` in `bench/run.sh`.
//!
//! Accepts `switchboard serve`'s arguments (`serve --listen HOST:PORT --data DIR`,
//! only the port is used) and prints the same `listening on http://…` line, so
//! `loadtest --spawn --server-bin` starts it like the real server. It agrees to
//! whatever subprotocol the client offers first and sends every text or
//! binary frame straight back.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = listen_port(std::env::args());
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(echo(tcp));
    }
}

/// The port of `--listen HOST:PORT`, or 0 (any free port).
fn listen_port(mut args: impl Iterator<Item = String>) -> u16 {
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            return args
                .next()
                .and_then(|a| a.rsplit(':').next().and_then(|p| p.parse().ok()))
                .unwrap_or(0);
        }
    }
    0
}

/// Echoes one connection until it closes.
async fn echo(tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, agree_subprotocol).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        let echo = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => return,
            _ => continue,
        };
        if ws.send(echo).await.is_err() {
            return;
        }
    }
}

/// Answers with the first subprotocol the client offered (the client insists on one).
/// The error type is tungstenite's callback signature, not ours to shrink.
#[allow(clippy::result_large_err)]
fn agree_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let first = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_string());
    if let Some(p) = first.and_then(|p| p.parse().ok()) {
        resp.headers_mut().insert("sec-websocket-protocol", p);
    }
    Ok(resp)
}
