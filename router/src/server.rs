//! The listener loops: HTTP/1.1 connections with a header-read timeout on the
//! ingest listener and on the admin API's own, and a graceful shutdown that stops
//! accepting on both, then waits for requests in flight.
//!
//! It takes the listeners and the shutdown signal as arguments (like tokio's
//! mini-redis), so tests can start it on port 0 and stop it when they like.

use crate::config::{AdminToken, Config, MIN_HEADER_LIMIT, MetricsListener};
use crate::dispatch::Dispatcher;
use crate::graceful::Shutdown;
use crate::head_timeout::{HeadTimeout, Progress};
use crate::http::{AppState, Limits, admin_app, ingest_app};
use crate::reload::{ReloadSettings, Reloader};
use crate::runtime::Runtime;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A router ready to serve: the configuration it was built from and its state.
pub struct Server {
    state: AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    /// `server.header_limit`: the longest request line and headers taken.
    header_limit: usize,
    shutdown_timeout: Duration,
    admin_token: Option<AdminToken>,
    metrics: MetricsListener,
    max_connections: usize,
}

/// The listeners a server serves on.
pub struct Listeners {
    /// Ingest: `POST /events`, `/healthz`, `/readyz` (and `/metrics` with
    /// `[admin] metrics = "ingest"`). Never the admin API.
    pub ingest: TcpListener,
    /// The admin API (and `/metrics` by default); not served when absent.
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// Ingest only, without the admin API.
    fn from(ingest: TcpListener) -> Self {
        Self {
            ingest,
            admin: None,
        }
    }
}

impl Server {
    /// Builds the runtime (loading every plugin) for `config`.
    pub async fn build(config: &Config) -> Result<Self, crate::config::ConfigErrors> {
        Ok(Self::new(config, Runtime::build(config).await?))
    }

    /// A server for `config` serving `runtime` (built from `config`: its Redis is
    /// the durable queue's).
    pub fn new(config: &Config, runtime: Runtime) -> Self {
        let server = &config.server;
        let queue = runtime
            .queue_redis()
            .map(|redis| crate::queue::RedisQueue::new(&config.queue, redis.clone()));
        let dispatcher = Arc::new(Dispatcher::new(runtime));
        let reloader = Arc::new(Reloader::new(
            &config.source.file,
            Arc::clone(&dispatcher),
            ReloadSettings {
                debounce: config.reload.debounce.0,
                max_wait: config.reload.max_wait.0,
                settle: config.reload.settle.0,
            },
        ));
        let replays = Arc::new(crate::replay::Replays::new(
            Arc::clone(&dispatcher),
            queue.clone(),
        ));
        Self {
            tls: None,
            state: AppState {
                dispatcher,
                reloader,
                replays,
                queue,
                limits: Limits {
                    body: server.body_limit.0,
                    batch: server.batch_limit,
                    batch_concurrency: server.batch_concurrency.get(),
                    body_timeout: server.body_timeout.0,
                    id: server.id_limit,
                    source: server.source_limit,
                    report: server.report,
                },
                budget: crate::http::ByteBudget::new(server.max_buffered_bytes.0),
            },
            header_timeout: server.header_timeout.0,
            header_limit: usize::try_from(server.header_limit.0).unwrap_or(usize::MAX),
            shutdown_timeout: server.shutdown_timeout.0,
            admin_token: config.admin.token.clone(),
            metrics: config.admin.metrics,
            max_connections: server.max_connections.get(),
        }
    }

    /// The dispatcher, for tests.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.state.dispatcher
    }

    /// The reloader: SIGHUP asks it for a reload.
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.state.reloader
    }

    /// Serves HTTPS with `acceptor` (see [`crate::tls::acceptor`]).
    pub fn with_tls(mut self, acceptor: Option<tokio_rustls::TlsAcceptor>) -> Self {
        self.tls = acceptor;
        self
    }

    /// Starts watching the configuration and plugin files for changes.
    pub fn watch(&self) -> notify::Result<()> {
        self.state.reloader.watch()
    }

    /// Serves on `listeners` (a `TcpListener` alone is ingest without the admin
    /// API) until `shutdown` completes, then stops accepting and waits (up to the
    /// shutdown timeout) for the requests in flight to finish.
    pub async fn run(self, listeners: impl Into<Listeners>, shutdown: impl Future<Output = ()>) {
        let Listeners { ingest, admin } = listeners.into();
        let state = Arc::new(self.state.clone());
        let graceful = Shutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper's header-read timeout is off (it has no timer): the listeners
        // keep their own (`head_timeout`).
        builder
            // hyper's default lets each connection buffer about 400 KiB of
            // headers (400 MiB over 1024 connections). The buffer's cap alone
            // is checked only between reads, so a head that arrives in one
            // read could pass it: the head's own limit makes the 431 exact.
            // hyper panics below its minimum, which the configuration refuses.
            .max_buf_size(self.header_limit.max(MIN_HEADER_LIMIT as usize))
            .max_header_size(self.header_limit)
            .keep_alive(true);
        let connections = Connections {
            builder,
            tls: self.tls.clone(),
            header_timeout: self.header_timeout,
            graceful: &graceful,
            max_connections: self.max_connections,
        };
        let (stop_reloads, reloads_stopped) = tokio::sync::oneshot::channel::<()>();
        let reloads = tokio::spawn(Arc::clone(&self.state.reloader).run(async {
            let _ = reloads_stopped.await;
        }));
        let (stop_queue, queue_stopped) = tokio::sync::watch::channel(false);
        let workers = self.state.queue.as_ref().and_then(|queue| {
            if !queue.consumes() {
                tracing::info!(
                    "durable mode, ingest only (consume = false): other processes route the Redis stream"
                );
                return None;
            }
            tracing::info!(
                consumer = queue.consumer(),
                "durable mode: consuming the Redis stream"
            );
            Some(queue.start(Arc::clone(&self.state.dispatcher), queue_stopped))
        });
        let (stop_accepting, accepting) = tokio::sync::watch::channel(false);
        let ingest = accept_loop(
            ingest,
            &connections,
            Surface {
                router: ingest_app(self.state.clone(), self.metrics),
                ingest: Some(Arc::clone(&state)),
            },
            accepting.clone(),
        );
        let admin = async {
            if let Some(admin) = admin {
                let surface = Surface {
                    router: admin_app(self.state.clone(), self.admin_token.clone(), self.metrics),
                    ingest: None,
                };
                accept_loop(admin, &connections, surface, accepting.clone()).await;
            }
        };
        let stop = async {
            shutdown.await;
            // Stop taking entries (before the listeners close, so that a closed
            // port means no new entry is taken); those in hand are finished and
            // acknowledged, the rest stay in the stream for the other consumers.
            let _ = stop_queue.send(true);
            let _ = stop_accepting.send(true);
        };
        tokio::join!(ingest, admin, stop);
        // Replays stop after the event in hand, their checkpoints saved, so
        // that a restarted router resumes them where they stopped.
        if tokio::time::timeout(self.shutdown_timeout, self.state.replays.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("replays still busy after the shutdown timeout");
        }
        let _ = stop_reloads.send(());
        let _ = reloads.await;
        if let Some(workers) = workers
            && tokio::time::timeout(self.shutdown_timeout, workers)
                .await
                .is_err()
        {
            tracing::warn!("queue workers still busy after the shutdown timeout");
        }
        tracing::info!("shutting down: waiting for requests in flight");
        if tokio::time::timeout(self.shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?self.shutdown_timeout,
                "requests still in flight after the shutdown timeout"
            );
        }
    }
}

/// How connections are served, the same on every listener.
struct Connections<'a> {
    builder: hyper::server::conn::http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    graceful: &'a Shutdown,
    /// `server.max_connections`, counted per listener: a flood of ingest
    /// connections does not lock the admin API out.
    max_connections: usize,
}

/// What one listener serves.
struct Surface {
    router: axum::Router,
    /// The state of the ingest handler, which `POST /events` goes to without
    /// routing: on the ingest listener only.
    ingest: Option<Arc<AppState>>,
}

/// Accepts connections on `listener` and serves `surface` on each until `stop`
/// turns true; then drops the listener, so its port refuses new connections,
/// while the connections already accepted finish under `connections.graceful`.
async fn accept_loop(
    listener: TcpListener,
    connections: &Connections<'_>,
    surface: Surface,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Each connection's task holds a permit until the connection ends.
    let open = Arc::new(tokio::sync::Semaphore::new(connections.max_connections));
    let head_timeout = HeadTimeout::new(connections.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Only ever set to true, and an ended sender means the same.
            _ = stop.changed() => break,
        };
        // Past the cap a new connection is closed at once rather than left
        // waiting in the backlog: the client learns immediately that it should
        // come back later or go elsewhere.
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!(%peer, limit = connections.max_connections, "too many connections: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = connections.builder.clone();
        let Some(tls) = connections.tls.clone() else {
            let watcher = connections.graceful.watcher();
            head_timeout.spawn(|progress| {
                let service =
                    connection_service(surface.ingest.as_ref(), &surface.router, peer, progress);
                let connection =
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                async move {
                    let _permit = permit;
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            });
            continue;
        };
        let watcher = connections.graceful.watcher();
        head_timeout.spawn(|progress| {
            let service =
                connection_service(surface.ingest.as_ref(), &surface.router, peer, progress);
            // A client that never finishes the handshake is closed by the
            // header timeout, like one that never finishes its headers.
            async move {
                let _permit = permit;
                let stream = match tls.accept(stream).await {
                    Ok(stream) => stream,
                    Err(e) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                };
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
}

/// A request's future on a connection, boxed (see `connection_service`).
type ServiceFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>>
            + Send,
    >,
>;

/// The service of one connection from `peer`: with an ingest state, `POST
/// /events` goes straight to the ingest handler (with the client's address, for
/// per-client rate limits); everything else goes through axum's router. Each
/// request is counted in the connection's `progress` while in hand.
fn connection_service(
    ingest: Option<&Arc<AppState>>,
    router: &axum::Router,
    peer: std::net::SocketAddr,
    progress: Arc<Progress>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    use tower::ServiceExt as _;
    let (ingest, router) = (ingest.cloned(), router.clone());
    // Each request's future is boxed, the ingest one made in its box
    // (`boxed::pinned`). Unboxed, it would live in hyper's slot of the
    // connection, one per connection: under load a cold one each request
    // (the ingest future is the largest of the request), copied whole into
    // it. A box is the block the allocator's thread cache handed the request
    // before, still in the first-level cache: callgrind counted 67 fewer data
    // misses a request (382 -> 315) for 110 more instructions (33,083).
    hyper::service::service_fn(
        move |request: hyper::Request<hyper::body::Incoming>| -> ServiceFuture {
            let request = request.map(axum::body::Body::new);
            let in_hand = progress.take();
            match &ingest {
                Some(state)
                    if request.method() == http::Method::POST
                        && request.uri().path() == "/events" =>
                {
                    let state = Arc::clone(state);
                    crate::boxed::pinned(move || async move {
                        let _in_hand = in_hand;
                        Ok(crate::http::ingest_request(&state, Some(peer), request).await)
                    })
                }
                _ => {
                    let answer = router.clone().oneshot(request);
                    Box::pin(async move {
                        let _in_hand = in_hand;
                        answer.await
                    })
                }
            }
        },
    )
}
