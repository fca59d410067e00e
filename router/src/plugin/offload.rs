//! Long guest calls moved off the I/O workers.
//!
//! A call starts inline, on the tokio worker that handles the event: most calls
//! take microseconds, and a hand-off to another thread for each would cost more
//! than the call. A call that keeps its thread busy for half of an epoch tick
//! ([`EPOCH_TICK`](super::EPOCH_TICK)) or more has shown that it is long: it
//! yields, and moves, whole, to the guest threads, a runtime of its own whose
//! threads run at the lowest CPU priority Linux has (`SCHED_IDLE`, see
//! [`guest_thread_start`]). The kernel then gives the I/O workers (ingest,
//! admin, forwards, the short calls of every plugin) the CPU whenever they want
//! it, and busy guests share what is left.
//!
//! "Busy" is measured in the thread's CPU time, not by the clock: a short call
//! that the kernel merely preempted on a loaded machine, or that happened to
//! span a tick, stays where it is. A call that moved by mistake would wait
//! behind the busy guests at the lower priority.
//!
//! Finding out costs the I/O worker one to two ticks per long call. A plugin
//! whose calls are long again and again (a guest that spins until a short time
//! limit, a CPU-heavy component) would keep charging that to its neighbours, so
//! each plugin keeps a [`Habit`]: for [`REMEMBERED`] after a long call, its calls
//! start on the guest threads at once. The price, a hand-off per call, is paid
//! only by a plugin that was long within the last second; the others read one
//! atomic that stays zero.
//!
//! Without this, busy guests held the workers that drive HTTP: a guest yields at
//! every tick, but tokio polls the I/O driver only every 61 task polls, so with
//! as many busy guests as workers, every route waited hundreds of milliseconds.

use super::EPOCH_TICK;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Runtime};
use tracing::Instrument;
use wasmtime::UpdateDeadline;

/// The niceness of the guest threads where `SCHED_IDLE` is refused (a seccomp
/// filter, another kernel): a nice-0 thread outweighs one at 10 by ten to one.
const GUEST_NICE: i32 = 10;

/// The CPU time in one tick that makes a call long.
const BUSY: Duration = Duration::from_micros(EPOCH_TICK.as_micros() as u64 / 2);

/// How long after a long call a plugin's calls start on the guest threads: a
/// plugin quiet for that long costs the I/O workers at most one or two ticks per
/// second again.
const REMEMBERED: Duration = Duration::from_secs(1);

/// Whether a plugin's calls were long lately (see the module's documentation).
/// Clones share it: the calls moved to the guest threads keep it up to date.
#[derive(Clone, Debug, Default)]
pub(super) struct Habit(Arc<AtomicU64>);

impl Habit {
    /// Whether a call of this plugin was long within the last [`REMEMBERED`].
    fn recently_long(&self) -> bool {
        // Until when, in milliseconds on `clock`; 0 when not long lately, so the
        // plugins whose calls are short read no clock.
        let until = self.0.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if clock() < until {
            return true;
        }
        // Lost to a call that was just long: that one's mark stays.
        let _ = self
            .0
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        false
    }

    /// Records that a call of this plugin was long just now.
    fn was_long(&self) {
        self.0
            .store(clock() + REMEMBERED.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Milliseconds since the first reading, for [`Habit`]s.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

thread_local! {
    /// Set by the epoch callback when the guest running on this thread used up
    /// its slice and yielded.
    static SLICE_SPENT: Cell<bool> = const { Cell::new(false) };
    /// Whether this is one of the guest threads.
    static GUEST_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// What a call does at an epoch tick (its time limit aside). `mark` is the
/// call's own state, `None` when it starts: this thread's CPU time at the
/// call's previous tick.
///
/// On a guest thread, a call yields at every tick, so busy guests take turns.
/// On an I/O worker, it runs on (without a yield, which would cost a task
/// switch) until the thread was busy for [`BUSY`] between two ticks; then it
/// yields and [`run`] moves it.
pub(super) fn at_tick(mark: &mut Option<Duration>) -> UpdateDeadline {
    if GUEST_THREAD.get() {
        return UpdateDeadline::Yield(1);
    }
    let now = thread_cpu_time();
    match (std::mem::replace(mark, now), now) {
        (Some(before), Some(now)) if now.saturating_sub(before) < BUSY => {
            UpdateDeadline::Continue(1)
        }
        // The first tick only takes the mark: the call may have begun just
        // before it.
        (None, Some(_)) => UpdateDeadline::Continue(1),
        // Busy for half a tick or more, or no CPU clock to tell: long.
        _ => {
            SLICE_SPENT.set(true);
            UpdateDeadline::Yield(1)
        }
    }
}

/// The calling thread's CPU time (user and system).
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::try_from(t).ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// A guest call, boxed so that it can move to another thread while it runs.
pub(super) type GuestCall<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs `call` of a plugin with `habit` here until it yields at an epoch tick,
/// then on the guest threads; on the guest threads from the start when the
/// plugin's calls were long lately. Dropping the returned future stops the call
/// at its next yield, wherever it runs, as it did when calls ran inline only.
/// `cancelled` is the answer should the guest threads drop a moved call (they
/// do not, short of a bug).
pub(super) async fn run<T: Send + 'static>(
    mut call: GuestCall<T>,
    habit: &Habit,
    cancelled: impl FnOnce() -> T,
) -> T {
    if !habit.recently_long() {
        let inline = std::future::poll_fn(|cx| {
            SLICE_SPENT.set(false);
            match call.as_mut().poll(cx) {
                Poll::Ready(output) => Poll::Ready(Some(output)),
                // Waiting for I/O (a `kv` call) costs no CPU: only a guest that
                // ran through its slice moves.
                Poll::Pending if SLICE_SPENT.replace(false) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if let Some(output) = inline {
            return output;
        }
        habit.was_long();
    }
    let Some(guests) = guest_threads() else {
        // No guest threads could be started: the call stays where it is.
        return call.await;
    };
    // The guest's log lines keep the span of the event they belong to.
    let span = tracing::Span::current();
    let call = Watched {
        call,
        habit: habit.clone(),
        busy: Duration::ZERO,
    };
    let task = AbortOnDrop(guests.spawn(call.instrument(span)));
    match task.await {
        Ok(output) => output,
        // A panic in the call is the caller's, as when it ran inline.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => cancelled(),
    }
}

/// A call on the guest threads, which keeps its plugin's [`Habit`] up to date:
/// the CPU time of its polls (each on whichever guest thread runs it) adds up,
/// and once it reaches [`BUSY`] the call was long. Two clock readings a poll,
/// a fraction of the hand-off that brought the call here.
struct Watched<T> {
    call: GuestCall<T>,
    habit: Habit,
    /// CPU time so far; [`Duration::MAX`] once the habit was told.
    busy: Duration,
}

impl<T> Future for Watched<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        if self.busy == Duration::MAX {
            return self.call.as_mut().poll(cx);
        }
        let before = thread_cpu_time();
        let poll = self.call.as_mut().poll(cx);
        let spent = match (before, thread_cpu_time()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            // No CPU clock: a call that had to yield counts as long.
            _ if poll.is_pending() => BUSY,
            _ => Duration::ZERO,
        };
        self.busy += spent;
        if self.busy >= BUSY {
            self.habit.was_long();
            self.busy = Duration::MAX;
        }
        poll
    }
}

/// The task of a moved call, stopped when the event's future is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runtime of the guest threads, started at the first long call: one
/// thread per core, each at the lowest priority (see [`guest_thread_start`]).
/// `None` when it cannot start.
fn guest_threads() -> Option<&'static Handle> {
    static GUESTS: OnceLock<Option<Runtime>> = OnceLock::new();
    GUESTS
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, usize::from);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("wasm-guest")
                .on_thread_start(guest_thread_start)
                .enable_all()
                .build()
                .inspect_err(|e| {
                    tracing::error!(error = %e, "cannot start the guest threads: long plugin calls stay on the I/O workers");
                })
                .ok()
        })
        .as_ref()
        .map(Runtime::handle)
}

/// Marks the calling thread as a guest thread and puts it under `SCHED_IDLE`,
/// or at nice [`GUEST_NICE`] where that is refused. On Linux both belong to the
/// thread, not the process, so the I/O workers keep theirs.
///
/// Why `SCHED_IDLE` rather than a nice value: a nice-0 thread woken on a core
/// where a nice +10 thread runs does not always preempt it. The scheduler may
/// let the running thread finish its slice, so a request waited for the next
/// scheduler tick (4 ms at 250 Hz) behind a busy guest (measured with `perf
/// sched`: I/O workers runnable for 4-7 ms beside nice +10 guests, and a
/// neighbour plugin's p99 3-15x its idle figure). A waking thread of any other
/// policy preempts a `SCHED_IDLE` one by rule: at once when it wakes on the
/// guest's core, at that core's next interrupt when woken from another (the
/// epoch tick at the latest) on the virtual machines measured
/// (docs/isolation.md).
fn guest_thread_start() {
    GUEST_THREAD.set(true);
    #[cfg(target_os = "linux")]
    if let Err(e) = idle_policy() {
        use rustix::process::{getpriority_process, setpriority_process};
        // Relative to the process's own niceness, so a router started with
        // `nice` keeps the same gap between its threads.
        let nice = getpriority_process(None).unwrap_or(0);
        if let Err(nice_error) = setpriority_process(None, (nice + GUEST_NICE).min(19)) {
            tracing::warn!(error = %e, %nice_error, "cannot lower the priority of a guest thread");
        }
    }
}

/// Puts the calling thread under `SCHED_IDLE`, which any thread may ask for
/// itself without privileges.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn idle_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid 0 is
    // the calling thread, whose policy alone changes.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's scheduling policy.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn policy() -> i32 {
        // SAFETY: no arguments but the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn guest_threads_run_below_the_priority_of_the_others() {
        let guests = guest_threads().expect("guest threads");
        let theirs = guests
            .block_on(guests.spawn(async { policy() }))
            .expect("task");
        assert_eq!(theirs, libc::SCHED_IDLE);
        assert_eq!(policy(), libc::SCHED_OTHER, "this thread keeps its policy");
    }

    #[tokio::test]
    async fn a_call_that_never_spends_its_slice_stays_on_this_thread() {
        let here = std::thread::current().id();
        let habit = Habit::default();
        let ran_on = run(
            Box::pin(async { Some(std::thread::current().id()) }),
            &habit,
            || None,
        )
        .await;
        let ran_on = ran_on.expect("not cancelled");
        assert_eq!(ran_on, here);
        assert!(!habit.recently_long());
    }

    #[tokio::test]
    async fn a_call_that_spends_its_slice_moves_to_the_guest_threads() {
        let here = std::thread::current().id();
        let habit = Habit::default();
        let ran_on = run(
            Box::pin(async {
                SLICE_SPENT.set(true);
                tokio::task::yield_now().await;
                Some(std::thread::current())
            }),
            &habit,
            || None,
        )
        .await
        .expect("not cancelled");
        assert_ne!(ran_on.id(), here);
        assert_eq!(ran_on.name(), Some("wasm-guest"));
        // The plugin's next call, however short, starts on the guest threads.
        assert!(habit.recently_long());
        let next = run(
            Box::pin(async { Some(std::thread::current()) }),
            &habit,
            || None,
        )
        .await
        .expect("not cancelled");
        assert_eq!(next.name(), Some("wasm-guest"));
    }

    #[tokio::test]
    async fn a_plugin_long_only_in_the_past_runs_its_calls_here_again() {
        let here = std::thread::current().id();
        let habit = Habit::default();
        habit.was_long();
        // As if a second had passed since.
        let until = clock() + 1;
        habit.0.store(until, Ordering::Relaxed);
        while clock() < until {
            std::hint::spin_loop();
        }
        let ran_on = run(
            Box::pin(async { Some(std::thread::current().id()) }),
            &habit,
            || None,
        )
        .await
        .expect("not cancelled");
        assert_eq!(ran_on, here);
        assert_eq!(habit.0.load(Ordering::Relaxed), 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn calls_on_the_guest_threads_keep_the_habit_while_they_are_long() {
        let habit = Habit::default();
        // Long 0.2 s ago: still remembered, but not for a whole second more.
        // Marked just before each call, so that a slow machine cannot let it
        // lapse in between.
        let mark = || {
            let marked = clock() + REMEMBERED.as_millis() as u64 - 200;
            habit.0.store(marked, Ordering::Relaxed);
            marked
        };
        let marked = mark();
        run(Box::pin(async {}), &habit, || ()).await;
        assert_eq!(habit.0.load(Ordering::Relaxed), marked, "a short call");
        let marked = mark();
        run(
            Box::pin(async {
                let from = thread_cpu_time().expect("a CPU clock");
                while thread_cpu_time().expect("a CPU clock") - from < BUSY {
                    std::hint::black_box(from);
                }
            }),
            &habit,
            || (),
        )
        .await;
        assert!(habit.0.load(Ordering::Relaxed) > marked, "a long call");
    }

    #[test]
    fn a_call_is_long_once_its_thread_was_busy_for_most_of_a_tick() {
        let mut mark = None;
        // The first tick only takes the mark: the call may have started just
        // before it.
        assert!(matches!(at_tick(&mut mark), UpdateDeadline::Continue(1)));
        assert!(!SLICE_SPENT.get());
        // Idle (as if preempted) for a tick: still short.
        std::thread::sleep(EPOCH_TICK);
        assert!(matches!(at_tick(&mut mark), UpdateDeadline::Continue(1)));
        assert!(!SLICE_SPENT.get());
        // Busy for a tick: long.
        let from = thread_cpu_time().expect("a CPU clock");
        while thread_cpu_time().expect("a CPU clock") - from < EPOCH_TICK {
            std::hint::black_box(from);
        }
        assert!(matches!(at_tick(&mut mark), UpdateDeadline::Yield(1)));
        assert!(SLICE_SPENT.replace(false));
    }
}
