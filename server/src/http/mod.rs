//! The HTTP face: one axum router with the WebSocket endpoint (`/ws`), the
//! REST API (`/api/...`, see docs/api.md), the embedded browser assets, and
//! `/healthz` and `/metrics`.

mod api;
mod assets;
pub mod conn;
mod error;
mod nlp;
mod replies;
mod throttle;
mod ws;

use crate::config::Config;
use crate::hub::Hub;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};
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
    /// Origins allowed to open WebSockets and to call the REST API from a
    /// browser (lower-cased, no trailing slash; `*`: any).
    pub origins: Arc<Vec<String>>,
    /// Ticks every ping interval for every session (see `server::heartbeat`).
    pub heartbeat: tokio::sync::watch::Receiver<()>,
}

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/metrics", get(api::metrics))
        .merge(api_routes(&state))
        .merge(assets::routes())
        .fallback(|| async { ApiError::not_found("no such page") })
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(refuse_over_limit))
        .with_state(state);
    with_security_headers(router)
}

/// The REST API: CORS for the configured origins, never cached, and the
/// login throttle within reach of the login handler.
fn api_routes(state: &AppState) -> Router<AppState> {
    let throttle = throttle::LoginThrottle::new(throttle::LoginLimits::from_config(&state.config));
    Router::new()
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
        .route(
            "/api/agents/{id}",
            axum::routing::patch(api::update_agent).delete(api::delete_agent),
        )
        .route("/api/stats", get(api::stats))
        .route(
            "/api/nlp/knowledge",
            get(nlp::get_knowledge).put(nlp::put_knowledge),
        )
        .route("/api/nlp/model", post(nlp::load_model))
        .route("/api/nlp/analyze", post(nlp::analyze))
        .route(
            "/api/saved-replies",
            get(replies::list).post(replies::create),
        )
        .route(
            "/api/saved-replies/{id}",
            axum::routing::patch(replies::update).delete(replies::delete),
        )
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(cors(&state.origins))
        .layer(Extension(Arc::new(throttle)))
}

/// Which browser pages may call the API: the configured origins (`*`: any).
/// Credentials are bearer tokens, never cookies, so none are allowed. Every
/// `OPTIONS` under `/api/` is answered as a preflight; a page from another
/// origin gets no `Access-Control-Allow-Origin`, and its browser refuses.
fn cors(origins: &Arc<Vec<String>>) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let origins = origins.clone();
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                origins.contains(&o)
            })
        })
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(CORS_MAX_AGE)
}

/// How long a browser may reuse a preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Headers every response gets unless its handler set its own: nothing is
/// sniffed, framed by other sites, or loaded by them (`widget.js` overrides
/// that, and the pages add their CSP: see `assets`). JSON and text get no
/// CSP: with `nosniff` they never run as a page.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-resource-policy", "same-origin"),
];

fn with_security_headers(router: Router) -> Router {
    SECURITY_HEADERS
        .iter()
        .fold(router, |router, (name, value)| {
            router.layer(SetResponseHeaderLayer::if_not_present(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            ))
        })
}

/// 200 `{"status":"ok","store":"ok"}`, or 503 `{"status":"degraded","store":"unavailable"}`
/// while the store cannot write (reads still work; writes are refused).
async fn healthz(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    if app.hub.store().is_writable() {
        let ok = serde_json::json!({"status": "ok", "store": "ok"});
        (axum::http::StatusCode::OK, axum::Json(ok))
    } else {
        let degraded = serde_json::json!({"status": "degraded", "store": "unavailable"});
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(degraded),
        )
    }
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
