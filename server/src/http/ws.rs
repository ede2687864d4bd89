//! The WebSocket upgrade on `/ws`: checks the handshake and the Origin, picks
//! the encoding from the subprotocol, answers 101, and hands the upgraded
//! connection to a [`crate::session::Session`] on the session tracker.
//! It does the handshake with tokio-tungstenite directly so the socket's
//! buffers and limits are exactly the ones configured.

use super::conn::ConnInfo;
use super::{ApiError, AppState};
use crate::limits::Refusal;
use crate::session::{Session, SessionLimits, SessionSettings, SessionTimers};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use switchboard_protocol::{close, Encoding, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a browser page at `origin` may open a WebSocket here: its own
/// origin (same host as the request), or one configured. No Origin header
/// means a non-browser client, which cross-site hijacking cannot be.
pub(super) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed.iter().any(|a| a == "*" || *a == origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    host.is_some() && origin_host == host.as_deref()
}

/// The WebSocket settings every connection gets: read buffer, write buffer
/// and its cap, and the frame and message limits. One function, so the
/// Autobahn conformance echo runs with exactly the server's settings.
pub fn websocket_config(c: &crate::config::Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(c.read_buffer_bytes)
        .write_buffer_size(c.write_buffer_bytes)
        .max_write_buffer_size(c.max_write_buffer_bytes.max(c.write_buffer_bytes + 1))
        .max_message_size(Some(c.max_message_bytes))
        .max_frame_size(Some(c.max_message_bytes))
}

pub(super) async fn upgrade(State(app): State<AppState>, mut req: Request) -> Response {
    let headers = req.headers();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = header_has(headers, header::CONNECTION, "upgrade")
        && header_has(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| is_upgrade) else {
        return ApiError::bad_request("expected a WebSocket upgrade (version 13)").into_response();
    };
    if !origin_allowed(headers, &app.origins) {
        return ApiError::new(ErrorCode::Forbidden, "origin not allowed").into_response();
    }
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let chosen = Encoding::negotiate(offered.iter().map(String::as_str));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Served outside `conn::serve` (no ConnInfo), a connection has no limits.
    let admission = req
        .extensions()
        .get::<ConnInfo>()
        .map(|i| i.admission.clone())
        .transpose();
    let on_upgrade = hyper::upgrade::on(&mut req);

    let c = &app.config;
    let ws_config = websocket_config(c);
    let timers = SessionTimers {
        hello: c.hello_timeout(),
        idle: c.idle_timeout(),
    };
    let heartbeat = app.heartbeat.clone();
    let (hub, shutdown, queue) = (app.hub.clone(), app.shutdown.clone(), c.outbound_queue);
    app.sessions.spawn(async move {
        // Boxed: the upgrade's state is gone before the session starts (see `Session::run`).
        let upgraded = match Box::pin(on_upgrade).await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "upgrade failed"),
        };
        let ws = Box::pin(WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config),
        ))
        .await;
        let admission = match admission {
            Ok(a) => a,
            // Over a connection limit: a browser sees only close codes, so say it with one.
            Err(refusal) => return Box::pin(refuse(ws, refusal)).await,
        };
        let settings = SessionSettings {
            encoding: chosen.unwrap_or_default(),
            queue,
            timers,
            user_agent,
            limits: SessionLimits::new(admission),
            heartbeat,
        };
        Session::new(hub, ws, settings, shutdown).run().await;
    });

    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(enc) = chosen {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(enc.subprotocol()),
        );
    }
    res
}

/// Closes a connection that is over a connection limit with 4002 and the reason.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>, refusal: Refusal) {
    let frame = CloseFrame {
        code: CloseCode::from(close::TOO_MANY_CONNECTIONS),
        reason: refusal.to_string().into(),
    };
    if ws.close(Some(frame)).await.is_ok() {
        let drain = async { while let Some(Ok(_)) = ws.next().await {} };
        let _ = tokio::time::timeout(REFUSED_LINGER, drain).await;
    }
}

/// How long a refused connection may take to answer our close.
const REFUSED_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_configured_and_non_browser_pass_others_do_not() {
        let allowed = vec!["https://shop.example".to_string()];
        assert!(origin_allowed(&headers(None, "127.0.0.1:8080"), &allowed));
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(origin_allowed(
            &headers(Some("https://SHOP.example/"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:8081"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(origin_allowed(
            &headers(Some("https://any.example"), "h"),
            &["*".to_string()]
        ));
    }
}
