//! The browser code, embedded in the binary at build time so it runs alone:
//! the demo page, the widget, and the agent console (from `web-widget/src`).

use super::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Route, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../web-widget/src/demo.html"),
    ),
    (
        "/widget.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web-widget/src/widget.js"),
    ),
    (
        "/console",
        "text/html; charset=utf-8",
        include_str!("../../../web-widget/src/console/index.html"),
    ),
    (
        "/console/",
        "text/html; charset=utf-8",
        include_str!("../../../web-widget/src/console/index.html"),
    ),
    (
        "/console/console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web-widget/src/console/console.js"),
    ),
    (
        "/console/console.css",
        "text/css; charset=utf-8",
        include_str!("../../../web-widget/src/console/console.css"),
    ),
];

/// The console's content security policy: scripts and styles only from us,
/// WebSockets to us, and no framing by other sites.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(super) fn routes() -> Router<AppState> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            let console = path.starts_with("/console");
            router.route(
                path,
                get(move || async move {
                    let mut headers = vec![
                        (header::CONTENT_TYPE, content_type),
                        (header::CACHE_CONTROL, "no-cache"),
                    ];
                    if console {
                        headers.push((header::CONTENT_SECURITY_POLICY, CONSOLE_CSP));
                    }
                    let headers: Vec<_> = headers
                        .into_iter()
                        .map(|(k, v)| (k, axum::http::HeaderValue::from_static(v)))
                        .collect();
                    (axum::http::HeaderMap::from_iter(headers), body).into_response()
                }),
            )
        })
}
