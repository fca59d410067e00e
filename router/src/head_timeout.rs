//! The header-read timeout (`server.header_timeout`): a connection that has
//! sent no whole request head within the timeout of being opened, or of its
//! last answer, is closed.
//!
//! hyper has such a timeout of its own, but it arms a sleep for every request
//! and turns its connection loop once more after each answer to arm the next
//! one: 900 instructions and 36 first-level data misses of a request's 33,985
//! and 415 (trivial handler, callgrind, `bench/instructions.py`).
//! Here a request costs its connection two additions to a counter of its own
//! ([`Progress`]). One sweeper per listener looks at the counters of all its
//! connections [`LOOKS`] times per timeout and closes (aborts the task of)
//! each connection whose counter stood still, with no request in hand, through
//! that many looks in a row: between one and 1.25 timeouts after its last
//! head or answer. That covers what the timeout is for (a client that dribbles
//! its head, or opens connections and sends nothing, holds them for a timeout
//! at most), a TLS handshake that does not finish, and a client that does not
//! read its answers.

use crate::sync::lock;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::task::AbortHandle;

/// The looks at a connection per timeout.
const LOOKS: u32 = 4;

/// The connections of one listener, closed when they stand still for the
/// header-read timeout.
pub(crate) struct HeadTimeout {
    watched: Arc<Mutex<Watched>>,
}

/// The connections being watched, by a number of their own.
#[derive(Default)]
struct Watched {
    next: u64,
    connections: HashMap<u64, Connection>,
}

/// One watched connection.
struct Connection {
    progress: Arc<Progress>,
    task: AbortHandle,
    /// The progress at the last look (none before the first), and how many
    /// looks since then found it the same, with no request in hand.
    seen: Option<u64>,
    still: u32,
}

/// How far one connection got: requests taken (the upper half) and answered
/// (the lower half), so that a request is in hand when the halves differ. The
/// halves wrap around together.
#[derive(Default)]
pub(crate) struct Progress(AtomicU64);

/// A request in hand, from the moment hyper has read its head to the moment its
/// answer is made: the connection is not idle meanwhile.
pub(crate) struct InHand(Arc<Progress>);

impl Progress {
    /// Counts a request taken; the request is answered when the returned guard drops.
    pub(crate) fn take(self: &Arc<Self>) -> InHand {
        // Relaxed: the sweeper needs to see a change within a look, not
        // in any order with other memory.
        self.0.fetch_add(1 << 32, Ordering::Relaxed);
        InHand(Arc::clone(self))
    }

    /// The counter, and whether a request is in hand.
    fn read(&self) -> (u64, bool) {
        let now = self.0.load(Ordering::Relaxed);
        (now, (now >> 32) != (now & u64::from(u32::MAX)))
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.0.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl HeadTimeout {
    /// Watches connections for `timeout`, with a sweeper that stops once this
    /// and every connection it watches are gone.
    pub(crate) fn new(timeout: Duration) -> Self {
        let watched = Arc::new(Mutex::new(Watched::default()));
        // The configuration refuses a zero timeout; tokio's interval would
        // panic on a zero period.
        let every = (timeout / LOOKS).max(Duration::from_millis(1));
        tokio::spawn(sweep(Arc::downgrade(&watched), every));
        Self { watched }
    }

    /// Spawns the task that serves a connection, made by `serve` with the
    /// progress the connection's service reports to, and watches it.
    pub(crate) fn spawn<F>(&self, serve: impl FnOnce(Arc<Progress>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let progress = Arc::new(Progress::default());
        let serve = serve(Arc::clone(&progress));
        let watched = Arc::clone(&self.watched);
        // Locked across the spawn, so that a connection that ends at once
        // removes its entry after it was made, not before.
        let mut all = lock(&self.watched);
        let id = all.next;
        all.next += 1;
        let task = tokio::spawn(async move {
            serve.await;
            lock(&watched).connections.remove(&id);
        });
        all.connections.insert(
            id,
            Connection {
                progress,
                task: task.abort_handle(),
                seen: None,
                still: 0,
            },
        );
    }
}

/// Looks at every connection each `every`, and closes those that stood still
/// for [`LOOKS`] looks in a row.
async fn sweep(watched: Weak<Mutex<Watched>>, every: Duration) {
    let mut looks = tokio::time::interval(every);
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        looks.tick().await;
        let Some(watched) = watched.upgrade() else {
            return;
        };
        lock(&watched).connections.retain(|_, connection| {
            let (now, in_hand) = connection.progress.read();
            if in_hand || connection.seen != Some(now) {
                connection.seen = Some(now);
                connection.still = 0;
                return true;
            }
            connection.still += 1;
            if connection.still < LOOKS {
                return true;
            }
            tracing::debug!("no request head within the header timeout: connection closed");
            connection.task.abort();
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::sync::oneshot;

    const TIMEOUT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_timeout() {
        let watch = HeadTimeout::new(TIMEOUT);
        let (open, closed) = oneshot::channel::<()>();
        let start = Instant::now();
        watch.spawn(|_progress| async move {
            let _open = open;
            std::future::pending::<()>().await;
        });
        // The sender drops when the task is aborted.
        let ended = tokio::time::timeout(Duration::from_secs(30), closed)
            .await
            .expect("the connection was never closed");
        assert!(ended.is_err(), "the task ended on its own");
        assert!(
            start.elapsed() >= TIMEOUT,
            "closed after {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_request_in_hand_is_not_timed_out_and_the_wait_after_it_is() {
        let watch = HeadTimeout::new(TIMEOUT);
        let (answered, was_answered) = oneshot::channel::<Instant>();
        let (open, closed) = oneshot::channel::<()>();
        watch.spawn(|progress| async move {
            let _open = open;
            let in_hand = progress.take();
            tokio::time::sleep(TIMEOUT * 4).await;
            drop(in_hand);
            let _ = answered.send(Instant::now());
            std::future::pending::<()>().await;
        });
        let answered = tokio::time::timeout(Duration::from_secs(30), was_answered)
            .await
            .expect("never answered")
            .expect("closed with the request in hand");
        let ended = tokio::time::timeout(Duration::from_secs(30), closed)
            .await
            .expect("the connection was never closed after its answer");
        assert!(ended.is_err(), "the task ended on its own");
        assert!(
            answered.elapsed() >= TIMEOUT,
            "closed {:?} after the answer",
            answered.elapsed()
        );
    }

    #[tokio::test]
    async fn the_sweeper_stops_with_the_listener_and_its_connections() {
        let watch = HeadTimeout::new(TIMEOUT);
        let watched = Arc::downgrade(&watch.watched);
        watch.spawn(|_progress| async {});
        drop(watch);
        tokio::time::timeout(Duration::from_secs(30), async {
            while watched.upgrade().is_some() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the connections' list outlived them");
    }
}
