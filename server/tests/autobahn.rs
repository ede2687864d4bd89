//! Autobahn|Testsuite conformance of the server's WebSocket layer.
//!
//! An echo endpoint on 127.0.0.1:0 runs with exactly the server's WebSocket
//! settings (`http::websocket_config(&Config::default())`: 64 KiB frame and
//! message limit, 4 KiB read buffer, write buffer cap) and ends connections
//! the way a session does: the close code comes from `session::close_for`
//! (1009 too big, 1007 invalid UTF-8, 1002 protocol error), and a client's
//! Close is answered by flushing tungstenite's reply, as `Session::finish`
//! does. The Autobahn fuzzing client (PyPI `kosoku`, which runs Autobahn's
//! own case files) drives it; kosoku's exit status counts UNIMPLEMENTED as a
//! failure, so the verdicts are read from its JSON report instead.
//!
//! kosoku is found through `SWITCHBOARD_KOSOKU` (a path) or `kosoku` on PATH;
//! `.ci/run` installs it into a venv. Without it the test fails when `CI` is
//! set and prints a loud skip otherwise. Run alone with
//! `cargo test -p switchboard-server --test autobahn -- --nocapture`;
//! `SWITCHBOARD_AUTOBAHN_REPORT=dir` keeps the HTML/JSON report and
//! `SWITCHBOARD_AUTOBAHN_CASES="6.* 7.1.1"` runs only those cases.
//! Counts and the command: docs/conformance.md.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchboard_server::config::Config;
use switchboard_server::http::websocket_config;
use switchboard_server::session;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The whole suite takes about 5 s here; give up well before CI would.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// Cases excluded from "must pass", each with its reason. Every one is run.
///
/// Over the limit by design (each must end with our close 1009 instead): 9.x
/// are performance cases; these send one message of 256 KiB to 16 MiB (9.1,
/// 9.2: text, binary; the first of each, 64 KiB, is within the limit and must
/// pass), or 4 MiB / 1 MiB messages in fragments (9.3, 9.4, 9.5, 9.6), and
/// Autobahn wants them echoed. Measured: all 40 FAILED with remote close 1009.
/// 9.7 and 9.8 (1000 small messages each) must pass.
const OVER_LIMIT: &[(&str, &str)] = &[
    (
        "9.1.",
        "one text message of 256 KiB to 16 MiB (9.1.1, 64 KiB, must pass)",
    ),
    (
        "9.2.",
        "one binary message of 256 KiB to 16 MiB (9.2.1, 64 KiB, must pass)",
    ),
    ("9.3.", "a 4 MiB text message in fragments of 64 B to 4 MiB"),
    (
        "9.4.",
        "a 4 MiB binary message in fragments of 64 B to 4 MiB",
    ),
    (
        "9.5.",
        "a 1 MiB text message written in chops of 64 B to 2 KiB",
    ),
    (
        "9.6.",
        "a 1 MiB binary message written in chops of 64 B to 2 KiB",
    ),
];
const WITHIN_LIMIT: &[&str] = &["9.1.1", "9.2.1"];

/// Series whose cases may be UNIMPLEMENTED: permessage-deflate (RFC 7692),
/// which the server does not offer, so Autobahn skips them after the handshake.
const UNIMPLEMENTED_OK: &[(&str, &str)] = &[
    ("12.", "permessage-deflate, not offered"),
    ("13.", "permessage-deflate, not offered"),
];

fn over_limit(id: &str) -> bool {
    OVER_LIMIT.iter().any(|(p, _)| id.starts_with(p)) && !WITHIN_LIMIT.contains(&id)
}

/// One echo connection: every text and binary message goes back as it came.
/// The ends are the session's (`session.rs` `next_message` and `finish`).
async fn echo(stream: TcpStream) {
    let config = websocket_config(&Config::default());
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (code, reason) = loop {
        match ws.next().await {
            // Echo data.
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            // The client closed: send tungstenite's queued reply, as the session does.
            Some(Ok(Message::Close(_))) => {
                let _ = ws.flush().await;
                return;
            }
            // Pings are answered by tungstenite.
            Some(Ok(_)) => continue,
            // A broken frame or message: the session's close code, if it has one.
            Some(Err(e)) => match session::close_for(&e) {
                Some(close) => break close,
                None => return,
            },
            None => return,
        }
    };
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    if ws.close(Some(frame)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

async fn start_echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream));
        }
    });
    addr
}

/// `SWITCHBOARD_KOSOKU`, else `kosoku` on PATH.
fn kosoku() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SWITCHBOARD_KOSOKU") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SWITCHBOARD_KOSOKU={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kosoku"))
        .find(|p| p.is_file())
}

/// Runs kosoku against `addr` and returns case id → that case's index entry.
async fn run_kosoku(bin: &Path, addr: std::net::SocketAddr, out: &Path) -> BTreeMap<String, Value> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg(format!("ws://{addr}"))
        .args(["--parallelism", "4", "--outdir"])
        .arg(out)
        .kill_on_drop(true);
    if let Ok(only) = std::env::var("SWITCHBOARD_AUTOBAHN_CASES") {
        for case in only.split_whitespace() {
            cmd.args(["--include", case]);
        }
    }
    eprintln!("running {cmd:?}");
    let output = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("kosoku finished in time")
        .expect("kosoku runs");
    // Its exit status is 1 whenever a case is not OK (UNIMPLEMENTED included): the report says which.
    eprintln!("kosoku exited with {}", output.status);
    let index = std::fs::read_to_string(out.join("index.json")).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); kosoku said:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let index: BTreeMap<String, BTreeMap<String, Value>> = serde_json::from_str(&index).unwrap();
    index.into_values().flatten().collect()
}

/// Why a case fails our bar, if it does.
fn verdict(id: &str, case: &Value) -> Option<String> {
    let behavior = case["behavior"].as_str().unwrap_or("?");
    let close = case["behaviorClose"].as_str().unwrap_or("?");
    let code = &case["remoteCloseCode"];
    if over_limit(id) {
        return (code != 1009).then(|| format!("{id}: over the limit but closed with {code}"));
    }
    let behavior_ok = match behavior {
        "OK" | "NON-STRICT" | "INFORMATIONAL" => true,
        "UNIMPLEMENTED" => UNIMPLEMENTED_OK.iter().any(|(p, _)| id.starts_with(p)),
        _ => false,
    };
    let close_ok = matches!(close, "OK" | "INFORMATIONAL");
    (!(behavior_ok && close_ok)).then(|| format!("{id}: {behavior}, close {close} (code {code})"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_fuzzing_client_finds_no_failure() {
    let Some(bin) = kosoku() else {
        let msg = "kosoku not found (set SWITCHBOARD_KOSOKU or put it on PATH; see .ci/run)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n!!!!!!!! SKIPPED autobahn conformance: {msg} !!!!!!!!\n");
        return;
    };
    let addr = start_echo().await;
    let temp = tempfile::tempdir().unwrap();
    let out = std::env::var_os("SWITCHBOARD_AUTOBAHN_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let started = Instant::now();
    let cases = run_kosoku(&bin, addr, &out).await;
    let whole_suite = std::env::var_os("SWITCHBOARD_AUTOBAHN_CASES").is_none();
    if whole_suite {
        assert!(cases.len() >= 517, "only {} cases ran", cases.len());
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases.values() {
        *counts
            .entry(case["behavior"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let by_design = cases.keys().filter(|id| over_limit(id)).count();
    eprintln!(
        "autobahn: {} cases in {:.1?}: {counts:?}; of the FAILED, {by_design} are over the 64 KiB limit by design",
        cases.len(),
        started.elapsed(),
    );
    let failed: Vec<String> = cases.iter().filter_map(|(id, c)| verdict(id, c)).collect();
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
    if whole_suite {
        assert_eq!(
            by_design, 40,
            "the over-limit list no longer matches the suite"
        );
    }
}

/// What the over-limit 9.x cases check, without kosoku: a message or a frame
/// over the limit is refused with 1009 (RFC 6455 7.4.1), and one at the limit is echoed.
#[tokio::test]
async fn oversize_closes_with_1009() {
    let addr = start_echo().await;
    let limit = Config::default().max_message_bytes;
    let url = format!("ws://{addr}");

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::binary(vec![7u8; limit])).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(b))) => assert_eq!(b.len(), limit),
        other => panic!("expected the echo, got {other:?}"),
    }

    for size in [limit + 1, 256 * 1024, 16 * 1024 * 1024] {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // The server may close before it has read everything: ignore the send error.
        let _ = ws.send(Message::text("x".repeat(size))).await;
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(c)))) => break u16::from(c.code),
                Some(Ok(_)) => continue,
                other => panic!("{size} bytes: expected close 1009, got {other:?}"),
            }
        };
        assert_eq!(code, 1009, "{size} bytes");
    }
}
