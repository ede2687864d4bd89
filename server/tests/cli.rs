//! The `switchboard agent` commands on a real data folder, then a login with what they made.

mod common;

use common::{Client, TestServer};
use serde_json::json;
use std::process::Command;
use switchboard_protocol::server::ConversationEventKind;
use switchboard_protocol::Encoding;

fn switchboard(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .arg("--data")
        .arg(dir)
        .env_remove("SWITCHBOARD_AGENT_PASSWORD")
        .output()
        .expect("runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn agent_add_list_passwd_remove() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out) = switchboard(
        d,
        &[
            "agent",
            "add",
            "--email",
            "bo@shop.test",
            "--name",
            "Bo",
            "--team",
            "orders",
            "--team",
            "billing",
            "--team",
            "orders",
            "--password",
            "first-pass",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = switchboard(
        d,
        &[
            "agent",
            "add",
            "--email",
            "t@shop.test",
            "--name",
            "T",
            "--team",
            "Two Words",
        ],
    );
    assert!(!ok && out.contains("team name"), "{out}");
    let (ok, out) = switchboard(
        d,
        &[
            "agent",
            "add",
            "--email",
            "BO@shop.test",
            "--name",
            "Dup",
            "--password",
            "xxxxxxxx",
        ],
    );
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = switchboard(
        d,
        &[
            "agent",
            "add",
            "--email",
            "cy@shop.test",
            "--name",
            "Cy",
            "--role",
            "admin",
        ],
    );
    assert!(
        ok && out.contains("password: "),
        "a generated password is printed once: {out}"
    );
    let (_, list) = switchboard(d, &["agent", "list"]);
    assert!(
        list.contains("bo@shop.test") && list.contains("cy@shop.test\tCy\tadmin"),
        "{list}"
    );
    assert!(list.contains("teams billing,orders"), "{list}");
    assert!(!list.contains("t@shop.test"), "{list}");
    let (ok, out) = switchboard(
        d,
        &[
            "agent",
            "passwd",
            "--email",
            "bo@shop.test",
            "--password",
            "second-pass",
        ],
    );
    assert!(ok, "{out}");
    // Cy is the only admin: removing Cy would leave nobody to manage accounts.
    let (ok, out) = switchboard(d, &["agent", "remove", "--email", "cy@shop.test"]);
    assert!(!ok && out.contains("last enabled admin"), "{out}");
    let (ok, out) = switchboard(
        d,
        &["agent", "set", "--email", "bo@shop.test", "--role", "admin"],
    );
    assert!(ok, "{out}");
    let (ok, out) = switchboard(d, &["agent", "remove", "--email", "cy@shop.test"]);
    assert!(ok, "{out}");
    let (_, list) = switchboard(d, &["agent", "list"]);
    assert!(!list.contains("cy@shop.test"), "{list}");
    let (ok, out) = switchboard(
        d,
        &[
            "agent", "add", "--email", "x@y.z", "--name", "X", "--role", "boss",
        ],
    );
    assert!(!ok && out.contains("admin or agent"), "{out}");

    // Agents exist, so serving creates no first admin; Bo logs in with the new password.
    let mut cfg = common::config(d);
    cfg.admin_password = None;
    let s = common::TestServer::start_with(cfg).await;
    let (status, _) = s.try_login("bo@shop.test", "first-pass").await;
    assert_eq!(status, 401);
    let bo = s.login("bo@shop.test", "second-pass").await;
    let (_, me) = s.http("GET", "/api/me", Some(&bo), None).await;
    assert_eq!(
        me["teams"],
        serde_json::json!(["billing", "orders"]),
        "{me}"
    );
    let (status, _) = s.try_login("admin@localhost", common::ADMIN_PASSWORD).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn agent_set_changes_an_account_as_the_rest_api_would() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Ann (orders) has a visitor's conversation when the server stops.
    let s = TestServer::start_with(common::config(d)).await;
    let (_, ann) = s.agent_in_teams("ann@shop.test", 5, &["orders"]).await;
    let (mut a, _) = Client::agent(&s.ws_url(), Encoding::Json, &ann, vec![]).await;
    let (mut v, _) = Client::visitor(&s.ws_url(), Encoding::Json, None, vec![]).await;
    let (conv, _) = v.say("1", None, "hello?").await;
    a.event(ConversationEventKind::Assigned).await;
    drop((a, v));
    s.stop().await;

    let set = |args: &[&str]| {
        let mut all = vec!["agent", "set", "--email", "ann@shop.test"];
        all.extend_from_slice(args);
        switchboard(d, &all)
    };
    let (ok, out) = set(&[
        "--team",
        "vip",
        "--team",
        "billing",
        "--capacity",
        "3",
        "--role",
        "admin",
        "--name",
        "Ann B",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ann@shop.test\tAnn B\tadmin\tcapacity 3\tenabled\tteams billing,vip"),
        "{out}"
    );
    let (ok, out) = set(&[]);
    assert!(!ok && out.contains("nothing to change"), "{out}");
    let (ok, out) = set(&["--team", "Two Words"]);
    assert!(!ok && out.contains("team name"), "{out}");
    let (ok, out) = set(&["--team", "x", "--no-teams"]);
    assert!(!ok && out.contains("cannot be used with"), "{out}");
    let (ok, out) = set(&["--disable", "--enable"]);
    assert!(!ok && out.contains("cannot be used with"), "{out}");
    let (ok, out) = switchboard(d, &["agent", "set", "--email", "zed@shop.test", "--enable"]);
    assert!(!ok && out.contains("no agent zed@shop.test"), "{out}");
    // Disabled: her conversation goes back to the queue, as over REST.
    let (ok, out) = set(&["--disable"]);
    assert!(ok && out.contains("\tdisabled\t"), "{out}");

    let s = TestServer::start_with(common::config(d)).await;
    let admin = s.admin_token().await;
    let (_, got) = s
        .http(
            "GET",
            &format!("/api/conversations/{conv}"),
            Some(&admin),
            None,
        )
        .await;
    let c = &got["conversation"];
    assert_eq!(
        (&c["status"], &c["agent_id"]),
        (&json!("queued"), &json!(null)),
        "{got}"
    );
    let (status, _) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!(status, 403, "a disabled account's token is refused as such");
    s.stop().await;

    // Enabled again, out of every team: she signs in anew.
    let (ok, out) = set(&["--enable", "--no-teams"]);
    assert!(ok && out.contains("\tenabled\tteams -"), "{out}");
    let s = TestServer::start_with(common::config(d)).await;
    let (status, _) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!(status, 401, "tokens from before the disable are revoked");
    let ann = s.login("ann@shop.test", "password-1").await;
    let (_, me) = s.http("GET", "/api/me", Some(&ann), None).await;
    assert_eq!(
        (&me["name"], &me["role"], &me["capacity"], &me["teams"]),
        (&json!("Ann B"), &json!("admin"), &json!(3), &json!([])),
        "{me}"
    );
    s.stop().await;
}

/// The `nlp` commands through the real binary, with the interface the issue
/// fixes (`nlp train --data FILE --out MODEL`, `nlp eval --train … --test …
/// --json`): the flags share the binary's parser with the server settings,
/// and a name clash there once made `nlp train --data` panic.
#[test]
fn nlp_train_and_eval_run_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("small.csv");
    let mut rows = String::from("text,category\n");
    for i in 0..12 {
        rows.push_str(&format!("where is my parcel number {i},track\n"));
        rows.push_str(&format!("\"I want my money back, order {i}\",refund\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let model = dir.path().join("model.bin");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(args)
            .output()
            .expect("runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let csv = csv.to_str().unwrap();
    run(&[
        "nlp",
        "train",
        "--data",
        csv,
        "--out",
        model.to_str().unwrap(),
        "--settings",
        r#"{"epochs":4}"#,
    ]);
    assert!(std::fs::metadata(&model).unwrap().len() > 0);
    let out = run(&["nlp", "eval", "--train", csv, "--test", csv, "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a last line")).unwrap();
    assert_eq!(report["n_test"], 24, "{report}");
    assert!(report["accuracy"].as_f64().unwrap() > 0.9, "{report}");
}

/// The first admin's password from the environment follows the rule every
/// password follows: a short one stops the first start with a clear error
/// (it used to create an admin with a two-letter password).
#[test]
fn a_short_first_admin_password_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .env("SWITCHBOARD_ADMIN_PASSWORD", "qa")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("at least 8 characters"), "{stderr}");
}
