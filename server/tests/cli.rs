//! The `switchboard agent` commands on a real data folder, then a login with what they made.

mod common;

use std::process::Command;

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
