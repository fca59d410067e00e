//! Memory bounds against hostile clients (issue 19, findings 4, 5, 10 and 13):
//! request bodies reserve a byte budget before they are read, connections are
//! capped, oversized bodies get a 413 that clients which send first and read
//! later can see, ids and sources have length limits, dedup remembers digests,
//! and a plugin's store is bounded in bytes. The RSS tests measure a
//! `router serve` process of its own under the slow-body and the dedup attacks.

use crate::common::*;
use crate::durable::RedisServer;
use axum::http::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MIB: u64 = 1024 * 1024;

/// What a client that writes its whole request before reading reads back,
/// as Python's urllib or Go's net/http do: the whole answer, or the error that
/// stopped the write or the read. The first `early` bytes go out, then the
/// client waits until the router has answered (as happens when a large body
/// is still on its way) before it writes the rest, unaware of the answer.
async fn send_then_read(
    addr: std::net::SocketAddr,
    request: &[u8],
    early: usize,
) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (first, rest) = request.split_at(early);
    let exchange = async {
        stream
            .write_all(first)
            .await
            .map_err(|e| format!("write: {e}"))?;
        stream.readable().await.map_err(|e| format!("wait: {e}"))?;
        stream
            .write_all(rest)
            .await
            .map_err(|e| format!("write after the answer came: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read after {} bytes: {e}", answer.len()))?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .map_err(|_| "no end within the patience".to_owned())?
}

fn binary_head(id: &str, framing: &str) -> String {
    format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-id: {id}\r\nce-source: /mem\r\nce-type: t\r\ncontent-type: application/octet-stream\r\n{framing}\r\n"
    )
}

/// Finding 13: a body one byte over the limit (or three times it), sent whole
/// before the answer is read, gets the 413 (with `Connection: close`), not a
/// reset.
#[tokio::test]
async fn an_oversized_body_sent_before_reading_gets_a_413_not_a_reset() {
    let router = TestRouter::start("").await;
    let addr = router.addr;
    // One byte over, and three times the limit (still within what is drained).
    for size in [MIB as usize + 1, 3 * MIB as usize] {
        let mut request =
            binary_head("too-big", &format!("content-length: {size}\r\n")).into_bytes();
        request.extend(std::iter::repeat_n(b'a', size));
        let answer = send_then_read(addr, &request, 64 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{size} bytes: the client saw no answer: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(
            answer.contains("exceeds the limit of 1048576 bytes"),
            "{answer}"
        );
    }
}

/// Finding 13, chunked: a body without a length that grows past the limit is
/// refused with a 413 the client reads after sending all of it.
#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_gets_a_413_not_a_reset() {
    let router = TestRouter::start("").await;
    let addr = router.addr;
    let mut request = binary_head("chunked-big", "transfer-encoding: chunked\r\n").into_bytes();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..48 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // 17 chunks are past the 1 MiB limit: the router answers, the client
    // writes its other 31 chunks.
    let early = request.len() - 31 * (chunk.len() + 9) - 5;
    let answer = send_then_read(addr, &request, early)
        .await
        .unwrap_or_else(|e| panic!("the client saw no answer: {e}"));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Finding 13: a client that asks `Expect: 100-continue` for an oversized body
/// is refused before it sends it: the 413 comes without a `100 Continue`.
#[tokio::test]
async fn an_oversized_body_announced_with_expect_continue_is_refused_unsent() {
    let router = TestRouter::start("").await;
    let mut stream = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let head = binary_head(
        "expecting",
        &format!("content-length: {}\r\nexpect: 100-continue\r\n", 2 * MIB),
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer, and the connection closed")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Finding 4: bodies reserve `max_buffered_bytes` before they are read. Two
/// clients holding 1 MiB reservations with bodies they do not finish fill a
/// 2 MiB budget: the next request is refused at once with 503 and
/// `Retry-After`, and is served again once a reservation is given back.
#[tokio::test]
async fn requests_past_the_buffer_budget_get_503_until_bodies_are_done() {
    let router = TestRouter::start("[server]\nmax_buffered_bytes = \"2MiB\"").await;
    let mut slow = Vec::new();
    for i in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(router.addr)
            .await
            .expect("connect");
        let head = binary_head(&format!("slow-{i}"), &format!("content-length: {MIB}\r\n"));
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(&[b'a'; 1000]).await.expect("write");
        slow.push(stream);
    }
    let url = router.events_url();
    // The slow requests reserve as soon as the router reads their headers; until
    // then the small probe is served.
    let deadline = Instant::now() + PATIENCE;
    let (refusal, retry_after) = loop {
        let response = client()
            .post(&url)
            .headers(
                ce_headers("probe", "t")
                    .into_iter()
                    .map(|(k, v)| (k.parse().expect("name"), v.parse().expect("value")))
                    .collect(),
            )
            .body("x")
            .send()
            .await
            .expect("probe");
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = response.headers().get("retry-after").cloned();
            break (response.text().await.expect("body"), retry_after);
        }
        assert!(
            Instant::now() < deadline,
            "never refused while two 1 MiB bodies are held ({})",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refusal.contains("2097152-byte buffer budget"), "{refusal}");
    assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
    // One slow client finishes its body: its reservation goes back when its
    // answer is made, and the probe gets in again.
    let mut done = slow.pop().expect("a slow client");
    done.write_all(&vec![b'a'; MIB as usize - 1000])
        .await
        .expect("rest of the body");
    let mut answer = [0u8; 12];
    done.read_exact(&mut answer).await.expect("its answer");
    assert_eq!(&answer, b"HTTP/1.1 200");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = post_binary(&url, &ce_headers("after", "t"), "x").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finding 4: past `max_connections` a new connection is closed at once, and
/// one is accepted again when an open one ends.
#[tokio::test]
async fn connections_past_max_connections_are_closed_until_one_ends() {
    let router = TestRouter::start("[server]\nmax_connections = 2").await;
    const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(router.addr)
            .await
            .expect("connect");
        stream.write_all(HEALTH).await.expect("write");
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.expect("served");
        assert_eq!(&answer, b"HTTP/1.1 200");
        open.push(stream);
    }
    let answer = one_request(router.addr, HEALTH).await;
    assert!(
        !answer.starts_with("HTTP/1.1"),
        "a third connection was served: {answer}"
    );
    drop(open.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = one_request(router.addr, HEALTH).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection accepted after one ended: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one request on a new connection reads back until the router closes
/// it, or the error that ended it (a refused connection may end in a reset).
async fn one_request(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    let mut answer = vec![0u8; 12];
    match tokio::time::timeout(PATIENCE, stream.read_exact(&mut answer)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&answer).into_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "no answer within the patience".to_owned(),
    }
}

/// Finding 5: an `id` or `source` over its limit is refused with a 400 naming
/// the attribute (and, in a batch, the event's index); at the limit it passes.
#[tokio::test]
async fn ids_and_sources_over_their_limits_get_400_naming_the_attribute() {
    let router = TestRouter::start("[server]\nid_limit = 64\nsource_limit = 128").await;
    let url = router.events_url();
    let at_limit = "i".repeat(64);
    let (status, body) = post_binary(&url, &ce_headers(&at_limit, "t"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let long_id = "i".repeat(65);
    let (status, body) = post_binary(&url, &ce_headers(&long_id, "t"), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["attribute"], "id", "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("65 bytes")),
        "{body}"
    );
    let event = json!({"specversion": "1.0", "id": "1", "source": "s".repeat(129), "type": "t"});
    let (status, body) = post(&url, "application/cloudevents+json", event.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["attribute"], "source", "{body}");
    let batch = json!([
        {"specversion": "1.0", "id": "ok", "source": "/s", "type": "t"},
        {"specversion": "1.0", "id": long_id, "source": "/s", "type": "t"},
    ]);
    let (status, body) = post(
        &url,
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (&body["attribute"], &body["index"]),
        (&json!("id"), &json!(1)),
        "{body}"
    );

    // The defaults: 1024 bytes of id, 4096 of source.
    let router = TestRouter::start("").await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers(&"i".repeat(1025), "t"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["attribute"], "id", "{body}");
}

/// A request head (line and headers) over `server.header_limit` gets 431; one
/// under it is served. hyper's default let each connection buffer and accept
/// about 400 KiB of headers.
#[tokio::test]
async fn a_request_head_over_the_header_limit_gets_431() {
    let head = |pad: usize| {
        format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nx-pad: {}\r\nce-specversion: 1.0\r\nce-id: pad\r\nce-source: /mem\r\nce-type: t\r\ncontent-length: 0\r\n\r\n",
            "p".repeat(pad)
        )
    };
    // The default, 64 KiB.
    let router = TestRouter::start("").await;
    assert_eq!(
        one_request(router.addr, head(60_000).as_bytes()).await,
        "HTTP/1.1 200"
    );
    assert_eq!(
        one_request(router.addr, head(100_000).as_bytes()).await,
        "HTTP/1.1 431"
    );
    let router = TestRouter::start("[server]\nheader_limit = \"16KiB\"").await;
    assert_eq!(
        one_request(router.addr, head(12_000).as_bytes()).await,
        "HTTP/1.1 200"
    );
    assert_eq!(
        one_request(router.addr, head(20_000).as_bytes()).await,
        "HTTP/1.1 431"
    );
}

/// Finding 5: the Redis dedup store keeps a fixed-size digest of the pair, not
/// the id: a 1000-byte id is remembered under a 32-hex-digit key, and still
/// detected as a duplicate.
#[tokio::test]
async fn the_redis_dedup_store_keeps_digests_not_ids() {
    let redis = RedisServer::start().await;
    let router = TestRouter::start(&format!(
        "[delivery.dedup]\nwindow = \"1h\"\nstore = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    ))
    .await;
    let id = "d".repeat(1000);
    for duplicate in [false, true] {
        let (status, body) = post_binary(&router.events_url(), &ce_headers(&id, "t"), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["events"][0].get("duplicate").is_some(),
            duplicate,
            "{body}"
        );
    }
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("*seen*")).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let digest = keys[0]
        .strip_prefix("router:events:seen:")
        .unwrap_or_else(|| panic!("{keys:?}"));
    assert!(
        digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );
}

/// Finding 10: the demo `inventory` does not keep rejected orders, so a flood
/// of them cannot fill its store; with a small `kv.memory_limit` an order is
/// still reserved after 600 rejected ones.
#[tokio::test]
async fn rejected_orders_do_not_fill_the_inventory_store() {
    let sink = Sink::start().await;
    let router = TestRouter::start_config(
        &router::config::Config::parse(
            router::config::Source::new(
                "mem.toml",
                format!(
                    "[kv]\nmemory_limit = \"32KiB\"\n\n[[plugin]]\nname = \"inventory-mem\"\npath = {:?}\n\n[[route]]\nname = \"stock\"\nfilter = {{ exact = {{ type = \"com.example.order.created\" }} }}\nhandler = \"inventory-mem\"\n\n[[route]]\nname = \"out\"\nfilter = {{ exact = {{ type = \"com.example.inventory.reserved\" }} }}\nforward = \"{}\"\n",
                    plugin_artifacts::INVENTORY,
                    sink.url()
                ),
            ),
            |_| None,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let url = router.events_url();
    for round in 0..3 {
        let batch: Vec<_> = (0..200)
            .map(|i| {
                json!({
                    "specversion": "1.0", "id": format!("r{round}-{i}"), "source": "/shop",
                    "type": "com.example.order.created",
                    "datacontenttype": "application/json",
                    "data": {"orderId": format!("rejected-{round}-{i}-{}", "x".repeat(40)), "items": []},
                })
            })
            .collect();
        let (status, body) = post(
            &url,
            "application/cloudevents-batch+json",
            json!(batch).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", first_error(&body));
    }
    let (status, body) = post_binary(
        &url,
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "good"),
            ("ce-source", "/shop"),
            ("ce-type", "com.example.order.created"),
            ("content-type", "application/json"),
        ],
        order("o-good", &[("p-1", 1)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", first_error(&body));
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].json()["orderId"], "o-good");
}

/// Bytes queued on the established loopback connections to or from `port`:
/// sent and not yet read by the router, or not yet sent by a client. Zero
/// means the router has read everything its clients wrote.
fn queued_bytes(port: u16) -> u64 {
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut total = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, remote address, state (01: established), tx:rx queues
            let [_, local, remote, state, queues, ..] = fields[..] else {
                continue;
            };
            if state != "01" || (port_of(local) != Some(port) && port_of(remote) != Some(port)) {
                continue;
            }
            let (tx, rx) = queues.split_once(':').unwrap_or(("0", "0"));
            total +=
                u64::from_str_radix(tx, 16).unwrap_or(0) + u64::from_str_radix(rx, 16).unwrap_or(0);
        }
    }
    total
}

/// Starts `router serve` on `toml` and warms it with one request; returns the
/// process and its resident memory then.
async fn served(toml: &str) -> (tempfile::TempDir, crate::process::Served, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(&config, toml).expect("write config");
    let served = crate::process::serve(&[
        "--no-watch".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let url = format!("http://{}/events", served.addr);
    let (status, body) = post_binary(&url, &ce_headers("warm", "t"), "warm").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rss = crate::sandbox::proc_status_bytes(served.child.id(), "VmRSS:");
    (dir, served, rss)
}

/// 256 clients, each made by `client(i)`, write what they write at once; once
/// the router has read every byte they wrote (or dropped their connections),
/// how much its resident memory grew and how many connections the clients
/// still hold (kept open until then).
async fn flood<F, Fut>(served: &crate::process::Served, client: F) -> (u64, usize)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Option<tokio::net::TcpStream>> + Send + 'static,
{
    let before = crate::sandbox::proc_status_bytes(served.child.id(), "VmRSS:");
    let addr: std::net::SocketAddr = served.addr.parse().expect("address");
    let writers: Vec<_> = (0..256).map(|i| tokio::spawn(client(i))).collect();
    let mut held = Vec::new();
    for writer in writers {
        if let Some(stream) = tokio::time::timeout(PATIENCE, writer)
            .await
            .expect("every client finished writing or was refused")
            .expect("writer task")
        {
            held.push(stream);
        }
    }
    // Every byte a client wrote has been read by the router (or its connection
    // is gone): what it holds now is what it buffered.
    let deadline = Instant::now() + PATIENCE;
    while queued_bytes(addr.port()) > 0 {
        assert!(Instant::now() < deadline, "the router never read it all");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grown =
        crate::sandbox::proc_status_bytes(served.child.id(), "VmRSS:").saturating_sub(before);
    (grown, held.len())
}

/// The slow-body attack (finding 4): 256 connections each declare a 1 MiB body,
/// send all of it but the last byte, and stall. The router holds at most
/// `max_buffered_bytes` of them (16 MiB here; the others are refused with 503
/// before their body is read): its resident memory grows by less than 64 MiB,
/// where buffering every body grew it by more than 256 MiB.
#[tokio::test]
async fn the_slow_body_attack_grows_the_router_by_its_buffer_budget_at_most() {
    let (_dir, served, _) = served("[server]\nmax_buffered_bytes = \"16MiB\"\n").await;
    let addr: std::net::SocketAddr = served.addr.parse().expect("address");
    let (grown, stalled) = flood(&served, |i| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head = binary_head(&format!("slow-{i}"), &format!("content-length: {MIB}\r\n"));
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(&vec![b'a'; MIB as usize - 1]).await.ok()?;
        Some(stream)
    })
    .await;
    assert!(
        grown < 64 * MIB,
        "RSS grew by {} MiB with {stalled} bodies stalled",
        grown / MIB
    );
    // Still serving.
    let (status, body) = post_binary(
        &format!("http://{addr}/events"),
        &ce_headers("alive", "t"),
        "",
    )
    .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status} {body}"
    );
}

/// The header flood: 256 connections each send 300 KB of request headers and
/// never end them. Each connection's buffer grows to twice `server.header_limit`
/// (64 KiB) at most before its 431: resident memory grows by less than 40 MiB,
/// where hyper's default buffer (about 400 KiB per connection) held all 75 MB.
#[tokio::test]
async fn the_header_flood_grows_the_router_by_its_header_limit_at_most() {
    let (_dir, served, _) = served("").await;
    let addr: std::net::SocketAddr = served.addr.parse().expect("address");
    let (grown, held) = flood(&served, |i| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut head = format!("POST /events HTTP/1.1\r\nHost: x\r\nce-id: flood-{i}\r\n");
        for _ in 0..300 {
            head.push_str(&format!("x-pad: {}\r\n", "p".repeat(990)));
        }
        // Refused part-way, the rest of the write fails: the stream is kept
        // either way, so nothing is closed by the client.
        let _ = stream.write_all(head.as_bytes()).await;
        Some(stream)
    })
    .await;
    assert!(
        grown < 40 * MIB,
        "RSS grew by {} MiB with {held} heads held",
        grown / MIB
    );
    let (status, body) = post_binary(
        &format!("http://{addr}/events"),
        &ce_headers("alive", "t"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The dedup attack (finding 5): 100 events with 900 KB ids under a one-hour
/// dedup window. They are refused (the id is over its 1024-byte limit), and
/// what dedup remembers is a fixed-size digest anyway: resident memory grows
/// by less than 64 MiB, where remembering the ids grew it by 180 MB and more.
#[tokio::test]
async fn the_dedup_attack_does_not_grow_the_router() {
    let (_dir, served, before) = served("[delivery.dedup]\nwindow = \"1h\"\n").await;
    let url = format!("http://{}/events", served.addr);
    let client = client();
    for i in 0..100 {
        let id = format!("{i}-{}", "x".repeat(900_000));
        let event = json!({"specversion": "1.0", "id": id, "source": "/attack", "type": "t"});
        let response = client
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await
            .expect("request");
        assert!(
            !response.status().is_server_error(),
            "{}",
            response.status()
        );
    }
    let grown =
        crate::sandbox::proc_status_bytes(served.child.id(), "VmRSS:").saturating_sub(before);
    assert!(grown < 64 * MIB, "RSS grew by {} MiB", grown / MIB);
}
