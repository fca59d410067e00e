//! The graceful shutdown of HTTP connections: once it begins, each connection
//! finishes the request in hand and closes; the shutdown waits for all of them.
//!
//! The same as hyper-util's `GracefulShutdown`, whose connection future polls
//! the shutdown notice on every poll of the connection (a lock of the notice's
//! waiter list each time, twice a request: about 300 instructions a request,
//! measured with callgrind). Here the notice is polled only when the
//! connection's task has another waker than the one it holds, or when the
//! notice has come; other polls cost a comparison and an atomic read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::sync::watch;

/// Starts and awaits the graceful shutdown of the connections it watches.
pub(crate) struct Shutdown {
    notice: watch::Sender<()>,
}

impl Shutdown {
    /// No connection watched yet.
    pub(crate) fn new() -> Self {
        Self {
            notice: watch::channel(()).0,
        }
    }

    /// A handle that watches connections, for a task that outlives a borrow of
    /// this (a TLS handshake first).
    pub(crate) fn watcher(&self) -> Watcher {
        Watcher {
            notice: self.notice.subscribe(),
        }
    }

    /// Tells every watched connection to finish, and waits until all have.
    pub(crate) async fn shutdown(self) {
        let _ = self.notice.send(());
        self.notice.closed().await;
    }
}

/// What [`Shutdown::watcher`] gives: watches one connection.
pub(crate) struct Watcher {
    notice: watch::Receiver<()>,
}

/// A served HTTP/1.1 connection.
type Connection<I, S> = hyper::server::conn::http1::Connection<I, S>;

impl Watcher {
    /// `connection`, shut down gracefully once the shutdown begins.
    pub(crate) fn watch<I, S>(self, connection: Connection<I, S>) -> Watched<I, S>
    where
        S: hyper::service::HttpService<hyper::body::Incoming>,
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
    {
        let mut notice = self.notice.clone();
        Watched {
            connection: Box::pin(connection),
            notice: self.notice,
            // Owns its receiver: the future that waits must live across polls
            // for its registration to hold.
            changed: Some(Box::pin(async move {
                let _ = notice.changed().await;
            })),
            waker: None,
        }
    }
}

/// A connection that shuts down gracefully when told (see the module).
pub(crate) struct Watched<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
{
    connection: Pin<Box<Connection<I, S>>>,
    /// Read to tell whether the notice came, without polling `changed`.
    notice: watch::Receiver<()>,
    /// Done when the notice comes (or the shutdown is dropped); `None` once
    /// the connection was told.
    changed: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The waker `changed` was last polled with, which the notice wakes.
    waker: Option<Waker>,
}

impl<I, S, B> Future for Watched<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(changed) = &mut this.changed {
            let registered = this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
            // A sender that is gone counts as the notice, as it does for `changed`.
            let noticed = this.notice.has_changed().unwrap_or(true);
            if !registered || noticed {
                this.waker = Some(cx.waker().clone());
                if changed.as_mut().poll(cx).is_ready() {
                    this.changed = None;
                    this.connection.as_mut().graceful_shutdown();
                }
            }
        }
        this.connection.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Only catches a hang: the shutdown of an idle connection is immediate.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A connection that served a request and waits, idle, for the next is
    /// woken by the shutdown, closes, and lets the shutdown end.
    #[tokio::test]
    async fn an_idle_kept_alive_connection_closes_when_the_shutdown_begins() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        let shutdown = Shutdown::new();
        let service = hyper::service::service_fn(|_request| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let served = tokio::spawn(shutdown.watcher().watch(connection));

        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("request");
        let mut answer = Vec::new();
        while !answer.ends_with(b"ok") {
            let mut chunk = [0; 256];
            let n = client.read(&mut chunk).await.expect("answer");
            assert_ne!(n, 0, "the connection closed before answering");
            answer.extend_from_slice(&chunk[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

        tokio::time::timeout(PATIENCE, shutdown.shutdown())
            .await
            .expect("the shutdown waited for no one but the idle connection");
        tokio::time::timeout(PATIENCE, served)
            .await
            .expect("the connection ended")
            .expect("its task")
            .expect("without an error");
        let n = tokio::time::timeout(PATIENCE, client.read(&mut [0; 16]))
            .await
            .expect("closed")
            .expect("read");
        assert_eq!(n, 0, "the router closed the connection");
    }

    /// A shutdown with no connection ends at once; one whose connection was
    /// never polled still waits for it.
    #[tokio::test]
    async fn the_shutdown_waits_for_every_watcher() {
        tokio::time::timeout(PATIENCE, Shutdown::new().shutdown())
            .await
            .expect("nothing to wait for");
        let shutdown = Shutdown::new();
        let watcher = shutdown.watcher();
        let mut ended = Box::pin(shutdown.shutdown());
        let pending = std::future::poll_fn(|cx| Poll::Ready(ended.as_mut().poll(cx).is_pending()));
        assert!(pending.await, "a watcher is still there");
        drop(watcher);
        tokio::time::timeout(PATIENCE, ended)
            .await
            .expect("the watcher went");
    }
}
