//! Ingest over real HTTP: the three content modes, specversion 0.3, and every bad
//! input with its status and message.

use crate::common::*;
use axum::http::StatusCode;
use cloudevents::{AttributesReader as _, EventBuilder as _, EventBuilderV10};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A router with one forward route for everything, so each accepted event is
/// observable at the sink.
async fn router_to_sink(server: &str) -> (TestRouter, Sink) {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "{server}\n[[route]]\nname = \"all\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    (router, sink)
}

fn routes_of(body: &Value, event: usize) -> Vec<(String, String)> {
    body["events"][event]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn binary_mode_is_decoded_and_forwarded_in_binary_mode() {
    let (router, sink) = router_to_sink("").await;
    let mut headers = ce_headers("b-1", "com.example.test");
    headers.push(("ce-subject", "caf%C3%A9"));
    headers.push(("ce-tenant", "acme"));
    headers.push(("content-type", "application/json"));
    let (status, body) = post_binary(&router.events_url(), &headers, r#"{"x":1}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        routes_of(&body, 0),
        vec![("all".into(), "delivered".into())]
    );
    let got = sink.wait_for(1).await;
    // Decoded at ingest, encoded again on the way out (§3.1.3.2).
    assert_eq!(got[0].headers["ce-subject"], "caf%C3%A9");
    assert_eq!(got[0].ce("tenant").as_deref(), Some("acme"));
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(got[0].json(), json!({"x": 1}));
}

#[tokio::test]
async fn structured_mode_from_the_official_sdk() {
    let (router, sink) = router_to_sink("").await;
    let event = EventBuilderV10::new()
        .id("s-1")
        .source("/sdk")
        .ty("com.example.sdk")
        .extension("tenant", "acme")
        .data("application/json", json!({"hello": "world"}))
        .build()
        .expect("sdk event");
    let body = serde_json::to_vec(&event).expect("sdk serialises");
    for content_type in [
        "application/cloudevents+json",
        "Application/CloudEvents+JSON; charset=UTF-8",
    ] {
        let (status, answer) = post(&router.events_url(), content_type, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {answer}");
    }
    let got = sink.wait_for(2).await;
    for r in &got {
        let back = r.event();
        assert_eq!(
            (
                back.id(),
                back.source().as_str(),
                back.ty(),
                back.datacontenttype()
            ),
            (
                event.id(),
                event.source().as_str(),
                event.ty(),
                event.datacontenttype()
            ),
            "the SDK reads back the attributes it sent"
        );
        assert_eq!(r.ce("tenant").as_deref(), Some("acme"));
        assert_eq!(r.json(), json!({"hello": "world"}));
    }
}

#[tokio::test]
async fn batched_mode_routes_every_event_and_reports_each() {
    let (router, sink) = router_to_sink("").await;
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"specversion": "1.0", "id": format!("k-{i}"), "source": "/b", "type": "t", "data": {"i": i}}))
        .collect();
    let (status, body) = post(
        &router.events_url(),
        "application/cloudevents-batch+json",
        serde_json::to_vec(&batch).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(5));
    let mut ids: Vec<_> = sink
        .wait_for(5)
        .await
        .iter()
        .filter_map(|r| r.ce("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["k-0", "k-1", "k-2", "k-3", "k-4"]);

    let (status, body) = post(
        &router.events_url(),
        "application/cloudevents-batch+json",
        "[]",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"], json!([]));
}

#[tokio::test]
async fn a_batch_is_dispatched_sixteen_events_at_a_time_in_request_order() {
    batch_lanes("", 16).await;
}

#[tokio::test]
async fn batch_concurrency_sets_how_many_events_of_a_batch_are_in_dispatch() {
    batch_lanes("[server]\nbatch_concurrency = 3\n", 3).await;
}

/// Posts a batch of 40 to a router (`server`: its `[server]` table) whose one
/// route forwards to a sink that holds its requests: exactly `lanes` forwards
/// must be held at once, and the reports come back in request order.
async fn batch_lanes(server: &str, lanes: usize) {
    let (router, sink) = router_to_sink(server).await;
    sink.close();
    let batch: Vec<Value> = (0..40)
        .map(|i| json!({"specversion": "1.0", "id": format!("lane-{i}"), "source": "/b", "type": "t"}))
        .collect();
    let url = router.events_url();
    let request = tokio::spawn(async move {
        post(
            &url,
            "application/cloudevents-batch+json",
            serde_json::to_vec(&batch).expect("json"),
        )
        .await
    });
    // Concurrent (one event at a time would hold one forward), and bounded:
    // the forwards of the lanes wait at the closed sink, and no more start.
    crate::durable::until(
        &format!("{lanes} forwards are held at the sink"),
        || async { sink.waiting() == lanes },
    )
    .await;
    sink.open();
    assert_eq!(sink.wait_for(40).await.len(), 40);
    assert_eq!(sink.peak_waiting(), lanes);
    let (status, body) = request.await.expect("request");
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("lane-{i}")).collect();
    assert_eq!(ids, expected, "reports in request order");
}

#[tokio::test]
async fn specversion_03_is_accepted_and_converted() {
    let (router, sink) = router_to_sink("").await;
    let headers = [
        ("ce-specversion", "0.3"),
        ("ce-id", "old-1"),
        ("ce-source", "/legacy"),
        ("ce-type", "t"),
        ("ce-schemaurl", "https://example.com/schema"),
    ];
    let (status, body) = post_binary(&router.events_url(), &headers, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let structured = json!({"specversion": "0.3", "id": "old-2", "source": "/legacy", "type": "t",
        "datacontentencoding": "base64", "datacontenttype": "text/plain", "data": "aGVsbG8="});
    let (status, body) = post(
        &router.events_url(),
        "application/cloudevents+json",
        structured.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = sink.wait_for(2).await;
    for r in &got {
        assert_eq!(r.headers["ce-specversion"], "1.0");
    }
    let old1 = got
        .iter()
        .find(|r| r.ce("id").as_deref() == Some("old-1"))
        .expect("old-1");
    assert_eq!(old1.headers["ce-dataschema"], "https://example.com/schema");
    let old2 = got
        .iter()
        .find(|r| r.ce("id").as_deref() == Some("old-2"))
        .expect("old-2");
    assert_eq!(&old2.body[..], b"hello");
}

/// Each bad request, the status it must get, and the attribute the answer names.
#[tokio::test]
async fn bad_input_gets_a_clear_error_and_reaches_no_route() {
    let (router, sink) = router_to_sink("").await;
    let url = router.events_url();
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = ce_headers("bad", "t");
        h.extend_from_slice(extra);
        h
    };
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let binary_cases: Vec<(Headers, Option<&str>)> = vec![
        (ce_headers("", "t"), Some("id")),
        (
            vec![("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-type", "t")],
            Some("source"),
        ),
        (
            vec![("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")],
            Some("specversion"),
        ),
        (
            vec![
                ("ce-specversion", "9.9"),
                ("ce-id", "1"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
            ],
            Some("specversion"),
        ),
        (with(&[("ce-time", "yesterday")]), Some("time")),
        (with(&[("ce-Bad_Name", "x")]), Some("bad_name")),
        (
            with(&[("ce-datacontenttype", "text/plain")]),
            Some("ce-datacontenttype"),
        ),
        (with(&[("ce-subject", "50%")]), Some("ce-subject")),
        (with(&[("ce-subject", "%C0%AF")]), Some("ce-subject")),
    ];
    for (headers, attribute) in binary_cases {
        let (status, body) = post_binary(&url, &headers, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}: {body}");
        assert_eq!(body["attribute"].as_str(), attribute, "{headers:?}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    let structured = |v: Value| v.to_string();
    let structured_cases = [
        (
            structured(
                json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": 1, "data_base64": "AA=="}),
            ),
            Some("data_base64"),
        ),
        (
            structured(json!({"specversion": "1.0", "id": "1", "source": "/s"})),
            Some("type"),
        ),
        (
            structured(
                json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "time": "2024-13-01T00:00:00Z"}),
            ),
            Some("time"),
        ),
        ("{not json".to_owned(), None),
    ];
    for (body_text, attribute) in structured_cases {
        let (status, body) = post(&url, "application/cloudevents+json", body_text.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body_text}: {body}");
        assert_eq!(body["attribute"].as_str(), attribute, "{body_text}: {body}");
    }

    let good = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
    let mixed = json!([good, {"specversion": "0.3", "id": "2", "source": "/s", "type": "t"}]);
    let (status, body) = post(
        &url,
        "application/cloudevents-batch+json",
        mixed.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["index"].as_u64(), body["attribute"].as_str()),
        (Some(1), Some("specversion"))
    );
    let invalid =
        json!([good, good, {"specversion": "1.0", "id": "3", "source": "/s", "type": ""}]);
    let (status, body) = post(
        &url,
        "application/cloudevents-batch+json",
        invalid.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["index"].as_u64(), body["attribute"].as_str()),
        (Some(2), Some("type"))
    );

    for content_type in [
        "text/plain",
        "application/cloudevents+xml",
        "application/cloudevents-batch+avro",
    ] {
        let (status, body) = post(&url, content_type, "x").await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {body}"
        );
    }

    let response = client().get(&url).send().await.expect("get");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST, OPTIONS");

    // Nothing above reached a route.
    let (status, _) = post_binary(&url, &ce_headers("last", "t"), "").await;
    assert_eq!(status, StatusCode::OK);
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ce("id").as_deref(), Some("last"));
}

#[tokio::test]
async fn body_and_batch_limits_answer_413() {
    let (router, sink) = router_to_sink("[server]\nbody_limit = \"64KiB\"\nbatch_limit = 3").await;
    let url = router.events_url();
    // Exactly 64 KiB of data is always accepted: the spec's floor.
    let (status, body) = post_binary(&url, &ce_headers("big-ok", "t"), vec![b'a'; 64 * 1024]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        post_binary(&url, &ce_headers("too-big", "t"), vec![b'a'; 64 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // A chunked body (no Content-Length) is cut off when it passes the limit.
    let chunks =
        futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 4096])));
    let (status, _) = post_binary(
        &url,
        &ce_headers("chunked", "t"),
        reqwest::Body::wrap_stream(chunks),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let batch: Vec<_> = (0..4)
        .map(|i| json!({"specversion": "1.0", "id": format!("batched-{i}"), "source": "/s", "type": "t"}))
        .collect();
    let (status, body) = post(
        &url,
        "application/cloudevents-batch+json",
        json!(batch).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // Nothing refused reached the route: the sink, which gets events in order,
    // holds the first one and then only the one sent after the refusals.
    let (status, _) = post_binary(&url, &ce_headers("after-413", "t"), "").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = sink
        .wait_for(2)
        .await
        .iter()
        .map(|r| r.ce("id").unwrap_or_default())
        .collect();
    assert_eq!(ids, ["big-ok", "after-413"]);
}

/// What `stream` gives until it holds `end`, within the patience: the start of
/// an answer on a connection the client keeps open.
async fn read_until(stream: &mut tokio::net::TcpStream, end: &[u8]) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !answer.windows(end.len()).any(|w| w == end) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer before the patience runs out");
    answer
}

/// A client that sends its headers but not the whole body within
/// `body_timeout` gets 408, and the event reaches no route.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_answers_408() {
    let (router, sink) = router_to_sink("[server]\nbody_timeout = \"300ms\"").await;
    let mut stream = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /events HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-id: slow\r\nce-source: /s\r\nce-type: t\r\ncontent-length: 100\r\n\r\nonly part",
        )
        .await
        .expect("write");
    // The answer comes without the rest of the body; the connection stays open
    // on the client's side, so read until the status line is complete.
    let answer = read_until(&mut stream, b"\r\n").await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let (status, _) = post_binary(&router.events_url(), &ce_headers("after-408", "t"), "").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = sink
        .wait_for(1)
        .await
        .iter()
        .map(|r| r.ce("id").unwrap_or_default())
        .collect();
    assert_eq!(ids, ["after-408"]);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (router, _sink) = router_to_sink("[server]\nheader_timeout = \"200ms\"").await;
    let mut idle = Vec::new();
    let opened = std::time::Instant::now();
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(router.addr)
            .await
            .expect("connect");
        stream
            .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        idle.push(stream);
    }
    // Others are served while the half-open connections wait.
    let (status, _) = post_binary(&router.events_url(), &ce_headers("alive", "t"), "").await;
    assert_eq!(status, StatusCode::OK);
    // Each is closed by the configured 200 ms, not the default 10 s: the bound
    // leaves a loaded machine seconds of slack and still tells the two apart.
    for mut stream in idle {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5).saturating_sub(opened.elapsed()),
            stream.read_to_end(&mut buf),
        )
        .await;
        assert!(
            read.is_ok(),
            "the router kept a half-open connection past 5 s"
        );
    }
    // The router still serves afterwards.
    let (status, _) = post_binary(&router.events_url(), &ce_headers("after", "t"), "").await;
    assert_eq!(status, StatusCode::OK);
}

/// The header-read timeout holds for each request of a kept-alive connection,
/// from the answer to the one before: a client that sends one request whole
/// and then stops in the middle of the next head is disconnected a timeout
/// after that answer, not a timeout after the connection opened.
#[tokio::test]
async fn a_kept_alive_client_that_stops_in_its_second_head_is_disconnected_in_time() {
    let timeout = std::time::Duration::from_secs(6);
    let (router, _sink) = router_to_sink("[server]\nheader_timeout = \"6s\"").await;
    let mut stream = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    // The first head's deadline is the connection's opening plus the timeout;
    // the second's comes 3 s later. Wide margins: a loaded machine may send the
    // first request late, or read its answer late.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    stream
        .write_all(
            b"POST /events HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-id: first\r\nce-source: /s\r\nce-type: t\r\ncontent-length: 0\r\n\r\n",
        )
        .await
        .expect("write");
    let answer = read_until(&mut stream, b"\r\n\r\n").await;
    let answered = std::time::Instant::now();
    let status = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    assert_eq!(status, "HTTP/1.1 200");
    stream
        .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut Vec::new())).await;
    assert!(
        read.is_ok(),
        "the router kept a connection stopped in its second head"
    );
    // Closed at the first head's deadline, it would be 3 s after the answer.
    let closed = answered.elapsed();
    assert!(
        closed >= timeout - std::time::Duration::from_millis(1500),
        "closed {closed:?} after the answer, before the timeout of the second head"
    );
}

/// The answer to a delivered request is the full report unless the client or
/// the server asks for the minimal one; a failure is always reported in full.
#[tokio::test]
async fn the_report_is_minimal_when_asked_and_failures_are_always_full() {
    let post = |url: String, id: &'static str, extra: Option<(&'static str, &'static str)>| async move {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/tests")
            .header("ce-type", "com.example.test");
        if let Some((k, v)) = extra {
            request = request.header(k, v);
        }
        let response = request.send().await.expect("request");
        let applied = response
            .headers()
            .get("preference-applied")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let status = response.status().as_u16();
        let body: Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
        (status, applied, body)
    };
    let (router, _sink) = router_to_sink("").await;
    let url = router.events_url();
    // The default: the report.
    let (status, applied, body) = post(url.clone(), "r-1", None).await;
    assert_eq!((status, applied), (200, None), "{body}");
    assert_eq!(
        routes_of(&body, 0),
        vec![("all".into(), "delivered".into())]
    );
    // RFC 7240, among other preferences and with a parameter.
    let prefer = Some(("prefer", "respond-async, return=minimal; x=1"));
    let (status, applied, body) = post(url.clone(), "r-2", prefer).await;
    assert_eq!(status, 200);
    assert_eq!(applied.as_deref(), Some("return=minimal"));
    assert_eq!(body, json!({"accepted": 1}));
    let (status, _, body) = post(format!("{url}?report=minimal"), "r-3", None).await;
    assert_eq!((status, body), (200, json!({"accepted": 1})));

    // A server whose default is minimal still reports in full when asked.
    let (router, _sink) = router_to_sink("[server]\nreport = \"minimal\"").await;
    let url = router.events_url();
    let (status, _, body) = post(url.clone(), "m-1", None).await;
    assert_eq!((status, body), (200, json!({"accepted": 1})));
    let prefer = Some(("prefer", "return=representation"));
    let (status, applied, body) = post(url.clone(), "m-2", prefer).await;
    assert_eq!(status, 200);
    assert_eq!(applied.as_deref(), Some("return=representation"));
    assert_eq!(
        routes_of(&body, 0),
        vec![("all".into(), "delivered".into())]
    );
    let (_, _, body) = post(format!("{url}?report=full"), "m-3", None).await;
    assert_eq!(
        routes_of(&body, 0),
        vec![("all".into(), "delivered".into())]
    );

    // A failed delivery (nothing listens at the forward's address) is
    // reported in full whatever was asked.
    let dead = TestRouter::start(
        "[server]\nreport = \"minimal\"\n[[route]]\nname = \"nowhere\"\nforward = \"http://127.0.0.1:9/\"\nretry = { max_attempts = 1 }\n",
    )
    .await;
    let (status, _, body) =
        post(dead.events_url(), "f-1", Some(("prefer", "return=minimal"))).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        routes_of(&body, 0),
        vec![("nowhere".into(), "failed".into())]
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nowhere"),
        "{body}"
    );
}
