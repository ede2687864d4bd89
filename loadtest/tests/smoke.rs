//! Smoke run of the built `loadtest` binary against a server it spawns
//! itself: a few seconds of `chat` with a handful of visitors and agents, in
//! both encodings, and once with a `--slow-readers` visitor. Asserts the run
//! passed (exit 0) and that nothing was lost or duplicated; never asserts
//! timing (benchmarks are `loadtest` runs, not tests).
//!
//! It needs the `switchboard` binary. `cargo test --workspace` builds it into
//! the same `target/<profile>/` folder as `loadtest` (the server crate has
//! integration tests, so its binary is built before any test runs), and the
//! test takes it from there. When it is missing (e.g. `cargo test -p
//! switchboard-loadtest` on a fresh checkout), the test builds it with
//! `cargo build -p switchboard-server` into `<target>/loadtest-smoke/`: a
//! separate folder, because the running `cargo test` holds the lock on its own.

use std::path::{Path, PathBuf};
use std::process::Command;

fn loadtest() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_loadtest"))
}

/// `switchboard` beside `loadtest`, or built on demand.
fn server_binary() -> PathBuf {
    let profile_dir = loadtest().parent().expect("loadtest has a folder");
    let beside = profile_dir.join("switchboard");
    if beside.is_file() {
        return beside;
    }
    let target_dir = profile_dir
        .parent()
        .expect("a target folder")
        .join("loadtest-smoke");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "switchboard-server",
            "--bin",
            "switchboard",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build -p switchboard-server");
    assert!(status.success(), "cargo build -p switchboard-server failed");
    let built = target_dir.join("debug").join("switchboard");
    assert!(built.is_file(), "{} was not built", built.display());
    built
}

/// Runs `loadtest chat --spawn` with `args` for 2 s; asserts it passed, with
/// nothing lost or duplicated, and returns the JSON report and the table.
fn passing_chat(args: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(loadtest())
        .args(["chat", "--spawn", "--quiet", "--rate", "5"])
        .args([
            "--duration",
            "2s",
            "--ramp",
            "300ms",
            "--drain",
            "10s",
            "--deadline",
            "90s",
        ])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--server-bin")
        .arg(server_binary())
        .output()
        .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadtest failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let delivery = &report["delivery"];
    assert_eq!(delivery["lost"], 0, "{stdout}");
    assert_eq!(delivery["duplicated"], 0, "{stdout}");
    assert!(
        delivery["acked"].as_u64().unwrap() > 0,
        "nothing was acked:\n{stdout}"
    );
    assert_eq!(delivery["acked"], delivery["delivered"], "{stdout}");
    assert_eq!(report["connections"]["failed"], 0, "{stdout}");
    assert_eq!(report["passed"], true);
    (report, stdout)
}

fn smoke(encoding: &str) {
    passing_chat(&["--visitors", "6", "--agents", "2", "--encoding", encoding]);
}

#[test]
fn chat_over_json_loses_nothing() {
    smoke("json");
}

#[test]
fn chat_over_bincode_loses_nothing() {
    smoke("bincode");
}

/// A visitor that stops reading: the others' ledger still balances, and the
/// slow reader's own acked messages are in it. (Whether the server cut it
/// off in these 2 s is in the table, not asserted.)
#[test]
fn chat_with_a_slow_reader_loses_nothing() {
    let (report, stdout) = passing_chat(&[
        "--visitors",
        "4",
        "--agents",
        "2",
        "--slow-readers",
        "1",
        "--slow-flood",
        "100",
        "--server-env",
        "SWITCHBOARD_SOCKET_SEND_BUFFER_BYTES=4096",
        "--server-env",
        // Small, so the slow reader's queue fills within the run; not so
        // small that one group commit's acks and echoes for an agent's burst
        // of 100 flood messages overflow the agent's own queue.
        "SWITCHBOARD_OUTBOUND_QUEUE=64",
    ]);
    let slow = &report["slow_readers"];
    assert_eq!(slow["connected"], 1, "{stdout}");
    assert_eq!(slow["stopped_reading"], 1, "{stdout}");
    assert!(slow["acked"].as_u64().unwrap() > 0, "{stdout}");
}
