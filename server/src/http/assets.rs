//! The browser code, embedded in the binary at build time so it runs alone:
//! the demo page, the widget, and the agent console (from `web-widget/src`).
//!
//! Each asset carries the headers its kind needs on top of the router's
//! defaults (`super::SECURITY_HEADERS`): the pages a content security policy
//! that lets exactly their own code run, the widget permission to be loaded
//! by other sites.

use super::AppState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// What an asset is, for its headers.
#[derive(Clone, Copy)]
enum Kind {
    /// The agent console: never framed.
    Console,
    /// The demo shop page, with one inline script (allowed by its hash).
    Demo,
    /// `widget.js`, which customers' sites load from their own origin.
    Widget,
    /// A script or stylesheet of our own pages.
    Plain,
}

const DEMO: &str = include_str!("../../../web-widget/src/demo.html");
const CONSOLE: &str = include_str!("../../../web-widget/src/console/index.html");

/// Route, content type, kind, body.
const ASSETS: &[(&str, &str, Kind, &str)] = &[
    ("/", "text/html; charset=utf-8", Kind::Demo, DEMO),
    (
        "/widget.js",
        "text/javascript; charset=utf-8",
        Kind::Widget,
        include_str!("../../../web-widget/src/widget.js"),
    ),
    (
        "/console",
        "text/html; charset=utf-8",
        Kind::Console,
        CONSOLE,
    ),
    (
        "/console/",
        "text/html; charset=utf-8",
        Kind::Console,
        CONSOLE,
    ),
    (
        "/console/console.js",
        "text/javascript; charset=utf-8",
        Kind::Plain,
        include_str!("../../../web-widget/src/console/console.js"),
    ),
    (
        "/console/console.css",
        "text/css; charset=utf-8",
        Kind::Plain,
        include_str!("../../../web-widget/src/console/console.css"),
    ),
];

/// The console's policy: scripts, styles and connections (`'self'` covers
/// the WebSocket to this host) only from here, nothing else, no framing.
/// Inline styles stay allowed: both pages set `style` attributes from script.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The demo page's policy: as the console's, plus its inline script by hash
/// (computed from the page itself, so editing the page keeps it working);
/// it may be framed by pages of this origin only.
fn demo_csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hashes: String = inline_scripts(DEMO)
            .map(|s| format!(" 'sha256-{}'", STANDARD.encode(Sha256::digest(s.as_bytes()))))
            .collect();
        format!(
            "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
        )
    })
}

/// The text of each `<script>` element without a `src`, exactly as the browser hashes it.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script").skip(1).filter_map(|rest| {
        let (tag, body) = rest.split_once('>')?;
        let (text, _) = body.split_once("</script>")?;
        (!tag.contains("src=")).then_some(text)
    })
}

/// `Cross-Origin-Resource-Policy` (the `http` crate has no constant for it).
const CORP: HeaderName = HeaderName::from_static("cross-origin-resource-policy");

fn headers(kind: Kind, content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut set = |name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_TYPE, content_type);
    set(header::CACHE_CONTROL, "no-cache");
    match kind {
        Kind::Console => {
            set(header::CONTENT_SECURITY_POLICY, CONSOLE_CSP);
            set(header::X_FRAME_OPTIONS, "DENY");
        }
        Kind::Demo => {
            set(header::CONTENT_SECURITY_POLICY, demo_csp());
            set(header::X_FRAME_OPTIONS, "SAMEORIGIN");
        }
        // Any site may load it with <script src>, also under
        // `Cross-Origin-Embedder-Policy: require-corp`, or with `crossorigin`
        // and integrity (it is public and carries no credentials).
        Kind::Widget => {
            set(CORP, "cross-origin");
            set(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        }
        Kind::Plain => {}
    }
    h
}

pub(super) fn routes() -> Router<AppState> {
    ASSETS.iter().fold(
        Router::new(),
        |router, &(path, content_type, kind, body)| {
            router.route(
                path,
                get(move || async move { (headers(kind, content_type), body).into_response() }),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_found_and_external_ones_skipped() {
        let html = "<script src=\"/a.js\" async></script>\n<script>\n  go();\n</script><script type=\"module\">x()</script>";
        assert_eq!(
            inline_scripts(html).collect::<Vec<_>>(),
            ["\n  go();\n", "x()"]
        );
        // The demo page has exactly one inline script, and the policy allows it.
        assert_eq!(inline_scripts(DEMO).count(), 1);
        assert_eq!(demo_csp().matches("'sha256-").count(), 1);
        // The console has none.
        assert_eq!(inline_scripts(CONSOLE).count(), 0);
    }
}
