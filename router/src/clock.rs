//! Cheap time for what is done on every request: a coarse clock for
//! deadlines measured in seconds, and hyper's timer for a connection's
//! header-read timeout, which arms no timer of tokio's per request.
//!
//! `Instant::now()` reads the TSC through the vDSO (about 18 ns on the 2-core
//! VM of the benchmarks); the coarse clock reads the time of the last scheduler
//! tick (about 3.5 ns), at most a tick (1 to 10 ms) behind.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Now, to within a scheduler tick: for deadlines and ages of seconds (a retry
/// policy's `max_age`, a header-read timeout), not for durations that are
/// measured.
pub fn coarse_now() -> Instant {
    // `Instant` has no constructor from a time of the clock: the coarse clock
    // is measured from the moment this first ran.
    static ORIGIN: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (origin, at) = *ORIGIN.get_or_init(|| (Instant::now(), coarse()));
    origin + coarse().saturating_sub(at)
}

#[cfg(target_os = "linux")]
fn coarse() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(not(target_os = "linux"))]
fn coarse() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// hyper's timer for one connection, made for its header-read timeout.
///
/// hyper arms that timeout each time it starts reading a request's head and
/// drops it once the head is read: with tokio's timer, a timer entry inserted
/// and removed per request (a lock of the timer wheel each time) and a
/// clock read. Here each connection keeps one tokio timer, which is only moved
/// when it goes off before the deadline of the head being read (about once
/// per timeout per connection); hyper's deadlines come from the coarse clock.
/// A timer left behind by a head read in time wakes its connection once,
/// for nothing.
#[derive(Clone, Default)]
pub struct ConnectionTimer {
    /// The connection's tokio timer, made when first awaited.
    timer: Arc<Mutex<Option<Armed>>>,
}

/// A connection's tokio timer and the waker its last poll left with it.
struct Armed {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Who the timer wakes when it goes off.
    waker: Option<Waker>,
}

impl ConnectionTimer {
    /// A timer for a new connection.
    pub fn new() -> Self {
        Self::default()
    }
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline {
            at: deadline,
            timer: Arc::clone(&self.timer),
        })
    }

    fn now(&self) -> Instant {
        coarse_now()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Deadline>() {
            Some(deadline) => deadline.get_mut().at = new_deadline,
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// One of hyper's sleeps on a [`ConnectionTimer`]: done at `at`.
struct Deadline {
    at: Instant,
    timer: Arc<Mutex<Option<Armed>>>,
}

impl hyper::rt::Sleep for Deadline {}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let at = tokio::time::Instant::from_std(self.at);
        let mut armed = crate::sync::lock(&self.timer);
        let armed = armed.get_or_insert_with(|| Armed {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            waker: None,
        });
        // hyper polls its sleep on every poll of the connection while it reads
        // a head, twice a request. A timer that goes off no later than `at`,
        // has not gone off yet and wakes this very task needs nothing: it
        // will wake the task, and this poll finds out then. Polling it anyway
        // (its entry's state, the waker's registration, the task's budget) was
        // a hundred instructions a time.
        if armed.sleep.deadline() <= at
            && !armed.sleep.is_elapsed()
            && armed
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        armed.waker = Some(cx.waker().clone());
        let timer = &mut armed.sleep;
        // The timer never goes off after `at`: it is moved back to it when
        // later (a deadline reset earlier), and forward to it when it has gone
        // off before it (the deadline of an earlier head).
        loop {
            if timer.deadline() > at {
                timer.as_mut().reset(at);
            }
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if timer.deadline() >= at => return Poll::Ready(()),
                Poll::Ready(()) => timer.as_mut().reset(at),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer as _;

    /// Whether one poll of `sleep` leaves it pending.
    async fn pending(sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx).is_pending())).await
    }

    #[test]
    fn the_coarse_clock_keeps_up_with_the_precise_one() {
        // Warmed up, and then some time for the clocks to drift apart.
        coarse_now();
        std::thread::sleep(Duration::from_millis(50));
        // Bounds that a preemption between the reads only loosens: a tick
        // behind and a tick ahead at most (the origin's lag), 10 ms each.
        let before = Instant::now();
        let coarse = coarse_now();
        let after = Instant::now();
        assert!(
            coarse + Duration::from_millis(20) >= before,
            "{coarse:?} {before:?}"
        );
        assert!(
            coarse <= after + Duration::from_millis(20),
            "{coarse:?} {after:?}"
        );
    }

    #[tokio::test]
    async fn a_sleep_ends_at_its_deadline_after_an_earlier_one_was_dropped() {
        let timer = ConnectionTimer::new();
        let start = Instant::now();
        // The first head's deadline arms the connection's tokio timer; the head
        // is read in time and its sleep dropped.
        // (Pending, unless a busy machine kept this test from it for 100 ms:
        // then the timer has gone off already, which the second sleep must
        // also get over.)
        let mut first = timer.sleep_until(start + Duration::from_millis(100));
        pending(&mut first).await;
        drop(first);
        // The second waits past the first deadline: the timer goes off then,
        // and is moved to the second's.
        let second = timer.sleep_until(start + Duration::from_millis(300));
        second.await;
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_reset_to_an_earlier_deadline_is_kept() {
        let timer = ConnectionTimer::new();
        let start = Instant::now();
        let mut sleep = timer.sleep_until(start + Duration::from_secs(60));
        assert!(pending(&mut sleep).await);
        timer.reset(&mut sleep, start + Duration::from_millis(200));
        tokio::time::timeout(Duration::from_secs(30), sleep)
            .await
            .expect("the reset deadline, not the first one");
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }
}
