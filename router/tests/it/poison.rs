//! Durable mode's poison entries are dead letters like any other: with no
//! `[delivery.dead_letter]`, they go to the stream `<stream>:dead` in the
//! dead-letter layout, and `router dlq list|show|redrive` sees them.

use crate::common::*;
use crate::durable::{RedisServer, all_acknowledged, until, wait_ready};
use axum::http::StatusCode;

/// `router dlq --url <router> <args...>`, which must succeed: its standard output.
async fn dlq(router: &TestRouter, args: &[&str]) -> String {
    let (success, stdout, stderr) = dlq_output(router, args).await;
    assert!(success, "router dlq {args:?}: {stdout}\n{stderr}");
    stdout
}

/// `router dlq --url <router> <args...>`: whether it succeeded, its standard
/// output and its standard error.
async fn dlq_output(router: &TestRouter, args: &[&str]) -> (bool, String, String) {
    let url = router.admin_url();
    // tokio's Command: the router under test serves on this test's runtime.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &url])
        .args(args)
        .output()
        .await
        .expect("router dlq");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_poison_entry_is_listed_shown_and_redriven_by_the_cli() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    sink.answer(StatusCode::SERVICE_UNAVAILABLE);
    let router = TestRouter::start(&format!(
        "[queue]\nkind = \"redis\"\nurl = \"{}\"\nstream = \"t:cli\"\nvisibility_timeout = \"300ms\"\nmax_deliveries = 1\n\n[[route]]\nname = \"down\"\nforward = \"{}\"\n",
        redis.url(),
        sink.url()
    ))
    .await;
    wait_ready(&router).await;

    // One entry exhausts its deliveries; another holds no event at all.
    let (status, _) = post_binary(
        &router.events_url(),
        &ce_headers("poison-1", "test.poison"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let _: String = redis
        .query(
            redis::cmd("XADD")
                .arg("t:cli")
                .arg("*")
                .arg("event")
                .arg("not a cloudevent"),
        )
        .await;
    until("both entries are dead letters", || async {
        router.admin("dlq").await["count"] == 2
    })
    .await;
    assert_eq!(
        sink.received().len(),
        1,
        "delivered max_deliveries (1) times, then dead-lettered"
    );
    until("the dead-lettered entries are acknowledged", || {
        all_acknowledged(&redis, "t:cli")
    })
    .await;

    let listed = dlq(&router, &["list"]).await;
    assert!(listed.starts_with("2 dead letters\n"), "{listed}");
    assert!(
        listed.contains("route=*  event=poison-1") && listed.contains("reason=max_deliveries"),
        "{listed}"
    );
    assert!(listed.contains("reason=undecodable"), "{listed}");

    let letters = router.admin("dlq").await["dead_letters"].clone();
    let poison = letters
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["reason"] == "max_deliveries")
        .expect("the exhausted entry");
    let id = poison["id"].as_str().unwrap().to_owned();
    let shown = dlq(&router, &["show", &id]).await;
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["event"]["id"], "poison-1");
    assert_eq!(shown["route"], "*");
    assert!(
        shown["entry"].as_str().unwrap().starts_with("t:cli "),
        "{shown}"
    );
    let undecodable = letters
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["reason"] == "undecodable")
        .expect("the undecodable entry");
    assert_eq!(
        undecodable["event"], "not a cloudevent",
        "its body is kept as it was"
    );

    // Redriven while the route still fails: the CLI says so, exits non-zero,
    // and the event is still a dead letter.
    let (success, stdout, stderr) = dlq_output(&router, &["redrive", &id]).await;
    assert!(
        !success,
        "a failed redrive exits non-zero: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("1 dead letter did not get through"),
        "{stderr}"
    );
    let still = router.admin("dlq").await;
    let id = still["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["event"]["id"] == "poison-1")
        .and_then(|l| l["id"].as_str())
        .unwrap_or_else(|| panic!("poison-1 is no dead letter any more: {still}"))
        .to_owned();

    // Redriven through the live routes: the route takes it now.
    sink.answer(StatusCode::OK);
    let before = sink.received().len();
    let redriven = dlq(&router, &["redrive", &id]).await;
    assert!(
        redriven.contains("1 delivered, 0 dead-lettered again, 0 failed"),
        "{redriven}"
    );
    assert!(redriven.contains("delivered (route down)"), "{redriven}");
    let received = sink.received();
    assert_eq!(received.len(), before + 1, "delivered once more");
    assert_eq!(
        received.last().unwrap().ce("id").as_deref(),
        Some("poison-1")
    );
    let left = router.admin("dlq").await;
    assert_eq!(left["count"], 1, "{left}");
    assert_eq!(left["dead_letters"][0]["reason"], "undecodable");
}
