//! The benchmark's ceiling: an axum server that reads each `POST /events` body and
//! answers 200, with no decoding or routing.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use clap::Parser;
use std::net::SocketAddr;

/// A bare axum server for the benchmark baseline.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Router::new().route(
        "/events",
        post(|body: Bytes| async move {
            std::hint::black_box(body.len());
            ([("content-type", "application/json")], "{\"ok\":true}")
        }),
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
