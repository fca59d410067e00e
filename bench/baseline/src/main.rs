//! The benchmark's ceiling: an axum server that reads each `POST /events` body and
//! answers 200, with no decoding or routing. With `--forward URL`, it posts each
//! body on to `URL` and answers once that answers: the floor of a forwarding
//! route (bench/isolation.py).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use std::net::SocketAddr;

/// A bare axum server for the benchmark baseline.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Post each body on to this URL (as the router's forward does, with a
    /// pooled client) and answer once it answers.
    #[arg(long)]
    forward: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = match args.forward {
        None => Router::new().route(
            "/events",
            post(|body: Bytes| async move {
                std::hint::black_box(body.len());
                ([("content-type", "application/json")], "{\"ok\":true}")
            }),
        ),
        Some(url) => Router::new()
            .route("/events", post(forward))
            .with_state((reqwest::Client::new(), url)),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

/// Posts `body` to the forward URL; 200 when it answered with success.
async fn forward(
    State((client, url)): State<(reqwest::Client, String)>,
    body: Bytes,
) -> StatusCode {
    let answer = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) if answer.status().is_success() => StatusCode::OK,
        _ => StatusCode::BAD_GATEWAY,
    }
}
