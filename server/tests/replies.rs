//! Saved replies over REST on a real server: every agent lists them, admins
//! write them, bad input gets typed errors, and they survive a restart.

mod common;

use common::{config, TestServer};
use serde_json::json;

#[tokio::test]
async fn saved_replies_are_listed_to_agents_written_by_admins_and_kept() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(config(temp.path())).await;
    let admin = s.admin_token().await;
    let (_, agent) = s.agent_account("ann@shop.test", 5).await;
    let post = |body: serde_json::Value| {
        let (s, admin) = (&s, &admin);
        async move {
            s.http("POST", "/api/saved-replies", Some(admin), Some(body))
                .await
        }
    };

    let (st, refund) = post(json!({"shortcut": "refund", "text": "Refunds take 5 days."})).await;
    assert_eq!(st, 201, "{refund}");
    let (st, hello) =
        post(json!({"shortcut": "hello", "text": "Hi! <b>How</b> can I help?"})).await;
    assert_eq!(st, 201, "{hello}");
    assert!(hello["updated_at"].as_u64().unwrap() > 0);

    // Bad input: typed errors, nothing written.
    for (body, status, code) in [
        (
            json!({"shortcut": "Refund!", "text": "x"}),
            400,
            "bad_request",
        ),
        (json!({"shortcut": "", "text": "x"}), 400, "bad_request"),
        (
            json!({"shortcut": "a".repeat(33), "text": "x"}),
            400,
            "bad_request",
        ),
        (
            json!({"shortcut": "blank", "text": "  \n "}),
            400,
            "bad_request",
        ),
        (
            json!({"shortcut": "long", "text": "y".repeat(4001)}),
            400,
            "too_large",
        ),
        (json!({"text": "no shortcut"}), 400, "bad_request"),
        (
            json!({"shortcut": "x", "text": "t", "extra": 1}),
            400,
            "bad_request",
        ),
        (
            json!({"shortcut": "refund", "text": "again"}),
            409,
            "conflict",
        ),
    ] {
        let (st, e) = post(body.clone()).await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {e}"
        );
    }

    // Agents read them, by shortcut; they may not write.
    let (st, list) = s
        .http("GET", "/api/saved-replies", Some(&agent), None)
        .await;
    assert_eq!(st, 200, "{list}");
    let shortcuts: Vec<&str> = list["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shortcut"].as_str().unwrap())
        .collect();
    assert_eq!(shortcuts, ["hello", "refund"]);
    let (st, _) = s
        .http(
            "POST",
            "/api/saved-replies",
            Some(&agent),
            Some(json!({"shortcut": "mine", "text": "x"})),
        )
        .await;
    assert_eq!(st, 403);

    // Changes: a shortcut taken by another reply is a conflict; its own is fine.
    let path = |r: &serde_json::Value| format!("/api/saved-replies/{}", r["id"]);
    let (st, e) = s
        .http(
            "PATCH",
            &path(&hello),
            Some(&admin),
            Some(json!({"shortcut": "refund"})),
        )
        .await;
    assert_eq!((st, &e["error"]["code"]), (409, &json!("conflict")));
    let (st, changed) = s
        .http(
            "PATCH",
            &path(&hello),
            Some(&admin),
            Some(json!({"shortcut": "hello", "text": "Hello there!"})),
        )
        .await;
    assert_eq!(
        (st, &changed["text"]),
        (200, &json!("Hello there!")),
        "{changed}"
    );
    let (st, e) = s
        .http(
            "PATCH",
            "/api/saved-replies/999999",
            Some(&admin),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!((st, &e["error"]["code"]), (404, &json!("not_found")));

    // Deleted once; the second time it is not there.
    let (st, _) = s.http("DELETE", &path(&refund), Some(&admin), None).await;
    assert_eq!(st, 204);
    let (st, _) = s.http("DELETE", &path(&refund), Some(&admin), None).await;
    assert_eq!(st, 404);

    // What was acknowledged is there after a restart.
    s.stop().await;
    let s = TestServer::start_with(config(temp.path())).await;
    let admin = s.admin_token().await;
    let (_, list) = s
        .http("GET", "/api/saved-replies", Some(&admin), None)
        .await;
    assert_eq!(list["replies"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["replies"][0]["shortcut"], "hello");
    assert_eq!(list["replies"][0]["text"], "Hello there!");
    s.stop().await;
}
