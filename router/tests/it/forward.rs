//! Forwards in the default (in-request) mode: a failing or unreachable target,
//! concurrent requests, and shutdown with events in flight.

use crate::common::*;
use axum::http::StatusCode;
use std::collections::HashMap;

fn forward_to(url: &str) -> String {
    format!("[[route]]\nname = \"out\"\nforward = \"{url}\"\n")
}

#[tokio::test]
async fn a_failing_sink_fails_the_request_with_the_route_named() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&forward_to(&sink.url())).await;
    let url = router.events_url();
    for (answer, expected, retryable) in [
        (
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::BAD_GATEWAY,
            true,
        ),
        (StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY, true),
        (
            StatusCode::BAD_REQUEST,
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
        ),
        (StatusCode::ACCEPTED, StatusCode::OK, false),
    ] {
        sink.answer(answer);
        let (status, body) = post_binary(&url, &ce_headers("s-1", "t"), "").await;
        assert_eq!(status, expected, "sink answered {answer}: {body}");
        if expected != StatusCode::OK {
            let route = &body["events"][0]["routes"][0];
            assert_eq!(route["route"], "out");
            assert_eq!(route["retryable"], retryable);
            let advice = if retryable {
                "retry the request"
            } else {
                "a retry of the same event cannot succeed"
            };
            assert_eq!(
                body["error"],
                format!("route(s) failed: out; {advice}"),
                "sink answered {answer}"
            );
        }
    }
}

#[tokio::test]
async fn an_unreachable_sink_is_a_retryable_failure() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let router = TestRouter::start(&forward_to(&format!("http://127.0.0.1:{port}/"))).await;
    let response = client()
        .post(router.events_url())
        .headers(reqwest::header::HeaderMap::from_iter(
            ce_headers("u-1", "t")
                .into_iter()
                .map(|(k, v)| (k.parse().expect("name"), v.parse().expect("value"))),
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 502);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert!(
        body["events"][0]["routes"][0]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("could not be reached")),
        "{body}"
    );
}

/// Many requests at once through a plugin and a forward: every event is handled
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_each_handled_exactly_once() {
    const N: usize = 300;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[[route]]\nname = \"enrich\"\nfilter = {{ exact = {{ type = \"t\" }} }}\nhandler = \"enricher\"\n\n[[route]]\nname = \"out\"\nfilter = {{ suffix = {{ type = \".enriched\" }} }}\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    let url = router.events_url();
    let requests = (0..N).map(|i| {
        let url = url.clone();
        tokio::spawn(async move {
            let id = format!("e-{i}");
            post_binary(&url, &ce_headers(&id, "t"), format!("{{\"i\":{i}}}"))
                .await
                .0
        })
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    let got = sink.wait_for(N).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &got {
        assert_eq!(r.ce("region").as_deref(), Some("test-region"));
        *seen
            .entry(r.ce("causationid").unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), N, "every event reached the sink");
    assert!(seen.values().all(|&n| n == 1), "no event was handled twice");
}

/// Shutdown stops accepting but lets the request in flight finish with 200.
#[tokio::test]
async fn shutdown_finishes_the_events_in_flight() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&forward_to(&sink.url())).await;
    let addr = router.addr;
    sink.close();
    let url = router.events_url();
    let in_flight =
        tokio::spawn(async move { post_binary(&url, &ce_headers("inflight", "t"), "").await.0 });
    // Wait until the router has handed the event to the (held) sink.
    tokio::time::timeout(PATIENCE, async {
        while sink.received().is_empty() && !sink_has_waiter(&sink) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the event reached the sink");
    let server = router.shutdown();
    // New connections are refused once the listener is closed.
    tokio::time::timeout(PATIENCE, async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the listener closed");
    sink.open();
    assert_eq!(in_flight.await.expect("task"), StatusCode::OK);
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("server stopped")
        .expect("server task");
    assert_eq!(sink.wait_for(1).await.len(), 1);
}

fn sink_has_waiter(sink: &Sink) -> bool {
    sink.waiting() > 0
}
