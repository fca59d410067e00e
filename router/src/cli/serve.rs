//! `router serve`: the server with its signals (SIGTERM stops, SIGHUP reloads).

use anyhow::Context as _;
use router::runtime::Runtime;
use router::server::Server;
use std::process::ExitCode;

/// Serves the configuration at `path` until SIGINT or SIGTERM.
pub async fn run(
    path: &std::path::Path,
    listen: Option<std::net::SocketAddr>,
    no_watch: bool,
) -> anyhow::Result<ExitCode> {
    let (config, runtime) = match Runtime::load(path).await {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let tls = match router::tls::acceptor(&config) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let server = Server::new(&config, runtime).with_tls(tls);
    if config.reload.watch && !no_watch {
        server
            .watch()
            .context("cannot watch the configuration files")?;
    }
    reload_on_sighup(&server);
    let addr = listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        plugins = config.plugins.len(),
        routes = config.routes.len(),
        "router serving"
    );
    server.run(listener, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP asks for a reload, as daemons conventionally do.
fn reload_on_sighup(server: &Server) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let reloader = std::sync::Arc::clone(server.reloader());
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading");
                        reloader.request();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    let _ = server;
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the router");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
