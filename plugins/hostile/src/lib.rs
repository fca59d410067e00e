//! Deliberately hostile test plugin: it exists only for the router's sandbox
//! tests. What it attempts is chosen by the event's data:
//!
//! | data | attempt |
//! | --- | --- |
//! | `loop` | an endless loop |
//! | `memory` | allocating (and touching) memory without bound |
//! | `stack` | unbounded recursion |
//! | `panic` | a panic |
//! | `flood` | emitting a million events |
//! | `invalid` | emitting an event with an empty id and a bad extension name |
//! | `bigevent` | emitting an event with 8 MiB of data |
//! | `log` | 1,000 log lines of 10 KiB |
//! | `print` | 1 MiB to stdout and 1 MiB to stderr |
//! | `passwd`, `readfile:<path>` | reading a file |
//! | `socket:<addr>` | opening a TCP connection |
//! | `env:<NAME>` | reading an environment variable |
//! | `http:<url>` | an outbound HTTP GET through `wasi:http` |
//! | `http-<method>:<url>` | an outbound HTTP request with that method (`http-post:...`) |
//! | `emit:<n>` | emitting `n` small events |
//! | `bytes:<n>` | emitting one event with `n` bytes of data |
//! | `alloc:<n>` | allocating (and touching) `n` MiB, then returning normally |
//! | `log:<n>` | `n` bytes of log, in lines of at most 1 KiB |
//!
//! The numeric cases sit just below or just above a limit, so the router's tests
//! can check where each limit lies, not only that there is one.

use router_guest::{Event, HandlerError, handler, log};
use std::hint::black_box;
use std::io::Write as _;

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let text = String::from_utf8_lossy(event.data().unwrap_or_default()).into_owned();
    let reply =
        |suffix: &str, ty: &str| Event::new(format!("{}-{suffix}", event.id()), "/hostile", ty);
    match text.as_str() {
        "loop" => {
            let mut n = 0u64;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![7u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        "stack" => Ok(vec![
            reply("deep", "hostile.deep").with_subject(recurse(0).to_string()),
        ]),
        "panic" => panic!("hostile plugin panics on purpose"),
        "flood" => Ok((0..1_000_000)
            .map(|n| Event::new(format!("f-{n}"), "/hostile", "hostile.flood"))
            .collect()),
        "invalid" => Ok(vec![
            Event::new("", "/hostile", "hostile.invalid").with_extension("Bad-Name", "x"),
        ]),
        "bigevent" => {
            Ok(vec![reply("big", "hostile.big").with_data(
                vec![b'x'; 8 << 20],
                "application/octet-stream",
            )])
        }
        "log" => {
            let line = "l".repeat(10 * 1024);
            for _ in 0..1000 {
                log::info(&line);
            }
            Ok(vec![])
        }
        "print" => {
            let chunk = "p".repeat(4096);
            for _ in 0..256 {
                let _ = std::io::stdout().write_all(chunk.as_bytes());
                let _ = std::io::stderr().write_all(chunk.as_bytes());
            }
            Ok(vec![])
        }
        "passwd" => read(&event, "/etc/passwd"),
        other => {
            if let Some(path) = other.strip_prefix("readfile:") {
                read(&event, path)
            } else if let Some(addr) = other.strip_prefix("socket:") {
                std::net::TcpStream::connect(addr)
                    .map(|_| vec![reply("connected", "hostile.connected")])
                    .map_err(|e| HandlerError::fatal(format!("connect {addr}: {e}")))
            } else if let Some(name) = other.strip_prefix("env:") {
                let seen = std::env::var(name)
                    .map_or_else(|_| "absent".to_owned(), |v| format!("present:{v}"));
                Ok(vec![
                    reply("env", "hostile.env").with_data(seen, "text/plain"),
                ])
            } else if let Some(url) = other.strip_prefix("http:") {
                let answer = http_request("GET", url)
                    .map_err(|e| HandlerError::fatal(format!("http {url}: {e}")))?;
                Ok(vec![
                    reply("http", "hostile.http").with_data(answer, "text/plain"),
                ])
            } else if let Some((method, url)) = other
                .strip_prefix("http-")
                .and_then(|rest| rest.split_once(':'))
            {
                let answer = http_request(method, url)
                    .map_err(|e| HandlerError::fatal(format!("http {method} {url}: {e}")))?;
                Ok(vec![
                    reply("http", "hostile.http").with_data(answer, "text/plain"),
                ])
            } else if let Some(n) = number(other, "emit:") {
                Ok((0..n)
                    .map(|i| reply(&format!("e{i}"), "hostile.emit"))
                    .collect())
            } else if let Some(n) = number(other, "bytes:") {
                Ok(vec![
                    reply("bytes", "hostile.bytes")
                        .with_data(vec![b'x'; n], "application/octet-stream"),
                ])
            } else if let Some(n) = number(other, "alloc:") {
                let hoard = vec![7u8; n << 20];
                black_box(&hoard);
                Ok(vec![])
            } else if let Some(n) = number(other, "log:") {
                let line = "l".repeat(1024);
                let mut left = n;
                while left > 0 {
                    let size = left.min(line.len());
                    log::info(&line[..size]);
                    left -= size;
                }
                Ok(vec![])
            } else {
                Ok(vec![])
            }
        }
    }
}

fn read(event: &Event, path: &str) -> Result<Vec<Event>, HandlerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HandlerError::fatal(format!("read {path}: {e}")))?;
    Ok(vec![
        Event::new(format!("{}-read", event.id()), "/hostile", "hostile.read")
            .with_data(text, "text/plain"),
    ])
}

// Unbounded on purpose: the stack limit must stop it.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    black_box(recurse(depth + 1)) + frame[0]
}

/// The number after `prefix` in `text`, if `text` is `<prefix><n>`.
fn number(text: &str, prefix: &str) -> Option<usize> {
    text.strip_prefix(prefix)?.parse().ok()
}

/// A request through `wasi:http/outgoing-handler`, without a body; errors carry
/// the host's error code.
fn http_request(method: &str, url: &str) -> Result<String, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = OutgoingRequest::new(Fields::new());
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    request.set_method(&method).map_err(|()| "method")?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| "path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "body")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        bytes.extend(chunk);
    }
    Ok(format!("{status} {}", String::from_utf8_lossy(&bytes)))
}

handler!(handle);
