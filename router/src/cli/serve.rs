//! `router serve`: the server with its signals (SIGTERM stops, SIGHUP reloads).

use anyhow::Context as _;
use router::runtime::Runtime;
use router::server::{Listeners, Server};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Where `serve` listens: `None` keeps the configuration's address.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenOverrides {
    /// Ingest, instead of `server.listen`.
    pub ingest: Option<SocketAddr>,
    /// The admin API, instead of `admin.listen`.
    pub admin: Option<SocketAddr>,
}

/// Serves the configuration at `path` until SIGINT or SIGTERM.
pub async fn run(
    path: &std::path::Path,
    listen: ListenOverrides,
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
    let admin_addr = listen.admin.unwrap_or(config.admin.listen);
    // The configuration checked its own address; an override is checked here, so
    // no command line opens the admin API to the network without a token.
    if let Err(e) = config.admin.check_listen(admin_addr) {
        eprintln!("error: --admin-listen: {e}");
        return Ok(ExitCode::FAILURE);
    }
    let server = Server::new(&config, runtime).with_tls(tls);
    if config.reload.watch && !no_watch {
        server
            .watch()
            .context("cannot watch the configuration files")?;
    }
    reload_on_sighup(&server);
    let shutdown = shutdown_signal();
    let addr = listen.ingest.unwrap_or(config.server.listen);
    let ingest = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let admin = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| {
            format!("cannot listen on {admin_addr} for the admin API (set `[admin] listen` or --admin-listen)")
        })?;
    tracing::info!(
        addr = %ingest.local_addr()?,
        admin = %admin.local_addr()?,
        admin_token = config.admin.token.is_some(),
        metrics = ?config.admin.metrics,
        plugins = config.plugins.len(),
        routes = config.routes.len(),
        "router serving"
    );
    let listeners = Listeners {
        ingest,
        admin: Some(admin),
    };
    server.run(listeners, shutdown).await;
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

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: called before the listeners are
/// bound, a signal sent once the router answers never meets the default
/// (fatal) action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)));
        async move {
            match signals {
                Ok((mut term, mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = interrupt.recv() => {},
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the router");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
