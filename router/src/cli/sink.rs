//! `router sink`: a webhook stand-in that prints every CloudEvent it receives,
//! for trying out routes and examples without the real downstream services.
//!
//! Any path is accepted (the path is printed, so several forwards can share one
//! sink and still be told apart); binary, structured and batched modes are decoded
//! with the router's own codec. The answer is a chosen status, so that retries and
//! dead letters can be watched too.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use router::event::Event;
use router::event::http::{ContentMode, content_mode, decode_binary};
use router::event::json::{decode_batch, decode_structured};
use std::net::SocketAddr;

/// What `router sink` needs.
#[derive(Clone, Debug, clap::Args)]
pub struct SinkArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The status to answer with: 2xx to accept, 5xx or 429 to have the router
    /// retry and then dead-letter.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..600))]
    pub status: u16,
}

/// One line (or, with data, two) describing what arrived on `path`.
pub fn describe(path: &str, headers: &HeaderMap, body: Bytes) -> String {
    let events = match content_mode(headers) {
        Ok(ContentMode::Binary) => decode_binary(headers, body)
            .map(|e| vec![e])
            .map_err(|e| e.to_string()),
        Ok(ContentMode::Structured) => decode_structured(&body)
            .map(|e| vec![e])
            .map_err(|e| e.to_string()),
        Ok(ContentMode::Batch) => decode_batch(&body, usize::MAX).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match events {
        Ok(events) => events
            .iter()
            .map(|event| line(path, event))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("{path}  not a CloudEvent: {e}"),
    }
}

fn line(path: &str, event: &Event) -> String {
    let mut out = format!(
        "{path}  {}  id={}  source={}",
        event.ty, event.id, event.source
    );
    if let Some(subject) = &event.subject {
        out.push_str(&format!("  subject={subject}"));
    }
    for name in ["correlationid", "causationid"] {
        if let Some(value) = event.extension(name) {
            out.push_str(&format!("  {name}={value}"));
        }
    }
    if let Some(data) = &event.data {
        out.push_str(&format!("\n  {}", String::from_utf8_lossy(data)));
    }
    out
}

/// Serves until the process is stopped, printing each request's events on
/// stdout.
pub async fn run(args: &SinkArgs) -> std::io::Result<()> {
    let status = StatusCode::from_u16(args.status).unwrap_or(StatusCode::OK);
    let app = axum::Router::new().fallback(
        move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
            println!("{}", describe(uri.path(), &headers, body));
            status
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "sink: listening on http://{}/ (answering {status})",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_structured_events_are_described_with_their_chain() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "e-1"),
            ("ce-source", "/s"),
            ("ce-type", "t.created"),
            ("ce-correlationid", "c-1"),
            ("content-type", "application/json"),
        ] {
            headers.insert(k, v.parse().expect("header"));
        }
        let text = describe("/notify", &headers, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(
            text,
            "/notify  t.created  id=e-1  source=/s  correlationid=c-1\n  {\"a\":1}"
        );

        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/cloudevents+json".parse().expect("header"),
        );
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"e-2","source":"/s","type":"t","subject":"x"}"#,
        );
        assert_eq!(
            describe("/", &headers, body),
            "/  t  id=e-2  source=/s  subject=x"
        );
    }

    #[test]
    fn something_else_is_said_to_be_no_event() {
        let text = describe("/", &HeaderMap::new(), Bytes::from_static(b"hello"));
        assert!(text.starts_with("/  not a CloudEvent"), "{text}");
    }
}
