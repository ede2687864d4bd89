//! The HTTP face: one axum router with the WebSocket endpoint (`/ws`), the
//! REST API (`/api/...`, see docs/api.md), the embedded browser assets, and
//! `/healthz` and `/metrics`.

mod api;
mod assets;
pub mod conn;
mod error;
mod nlp;
mod ws;

use crate::config::Config;
use crate::hub::Hub;
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;
pub use ws::websocket_config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub config: Arc<Config>,
    /// Cancelled when the server shuts down; sessions watch it.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket sessions, which axum's graceful shutdown does not see.
    pub sessions: TaskTracker,
    /// Origins allowed to open WebSockets (lower-cased, no trailing slash).
    pub origins: Arc<Vec<String>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(api::metrics))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route(
            "/api/customers",
            get(api::list_customers).post(api::create_customer),
        )
        .route(
            "/api/customers/{id}",
            get(api::get_customer)
                .patch(api::update_customer)
                .delete(api::delete_customer),
        )
        .route("/api/conversations", get(api::list_conversations))
        .route("/api/conversations/{id}", get(api::get_conversation))
        .route("/api/agents", get(api::list_agents).post(api::create_agent))
        .route("/api/agents/{id}", axum::routing::patch(api::update_agent))
        .route("/api/stats", get(api::stats))
        .route(
            "/api/nlp/knowledge",
            get(nlp::get_knowledge).put(nlp::put_knowledge),
        )
        .route("/api/nlp/model", post(nlp::load_model))
        .route("/api/nlp/analyze", post(nlp::analyze))
        .merge(assets::routes())
        .fallback(|| async { ApiError::not_found("no such page") })
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(refuse_over_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .with_state(state)
}

/// A connection over a connection limit gets one clear answer: 503 here, or
/// for a WebSocket upgrade, close code 4002 (see `ws::upgrade`).
async fn refuse_over_limit(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(conn::ConnInfo {
        admission: Err(refusal),
        ..
    }) = req.extensions().get::<conn::ConnInfo>()
    {
        if req.uri().path() != "/ws" {
            // One answer, then the socket goes.
            let mut res = ApiError::new(
                switchboard_protocol::ErrorCode::Overloaded,
                refusal.to_string(),
            )
            .into_response();
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return res;
        }
    }
    next.run(req).await
}
