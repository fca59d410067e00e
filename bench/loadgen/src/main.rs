//! Load generator for the router's end-to-end benchmarks.
//!
//! `--mode max` is a closed loop: every connection sends its next request as soon
//! as the previous one is answered (maximum throughput). `--mode rate` is an open
//! loop: requests are scheduled at fixed intervals and latency is measured from the
//! *scheduled* time, so a slow server cannot hide its latency by slowing the
//! sender down (coordinated omission). Each scheduled time goes to whichever
//! connection is free; when none is, the time waits, and the wait is counted.
//!
//! The open loop runs on one thread, and its pacer spins: it yields to the
//! runtime between clock reads, and every yield polls the sockets. tokio's timer
//! rounds to whole milliseconds (a bare server's median read 1.3 ms), and a
//! pacer thread of its own woke late whenever it shared the load tool's core
//! with the runtime's worker, which put the sender's delays into the
//! measured tail. The price is one busy core, the load tool's own.
//! Where the load tool shares its core with the server (`--pacer timer`), that
//! busy core would be the server's loss: there the runtime sleeps between send
//! times and a timerfd (nanosecond expiry, unlike tokio's timer) wakes it.
//! Results go to stdout as one JSON object. Its `slow_windows` list the 100 ms
//! windows of scheduled send time whose slowest request took over 1 ms: one
//! stall of the server (or of the host) shows as a run of windows, spread
//! tail latency as scattered ones.

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How requests are paced.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Closed loop, as fast as answers come back.
    Max,
    /// Open loop at `--rate` requests per second.
    Rate,
}

/// How the open loop waits for its send times (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pacer {
    /// Spins: the most precise, at the price of a busy core.
    Spin,
    /// Sleeps until a timerfd expires: leaves the core to others.
    Timer,
}

/// Load generator options.
#[derive(Parser)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Closed or open loop.
    #[arg(long, value_enum, default_value = "max")]
    mode: Mode,
    /// Requests per second in open-loop mode.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How the open loop waits for its send times.
    #[arg(long, value_enum, default_value = "spin")]
    pacer: Pacer,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Events per request: 1 sends binary mode, more sends a batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Bytes of data per event.
    #[arg(long, default_value_t = 256)]
    event_size: usize,
    /// The events' type.
    #[arg(long = "type", default_value = "bench.event")]
    ty: String,
    /// A tag for the events' ids (`{run}-{sequence}`).
    #[arg(long, default_value = "run")]
    run: String,
    /// A `Prefer` header for every request (RFC 7240), for example
    /// `return=minimal`: what the answer's report costs the server.
    #[arg(long)]
    prefer: Option<String>,
}

#[derive(Default)]
struct Counts {
    ok_requests: AtomicU64,
    acked_events: AtomicU64,
    failed: AtomicU64,
    sequence: AtomicU64,
}

/// An event's data: `--event-size` bytes of JSON, made once.
fn event_data(args: &Args) -> String {
    format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(args.event_size.saturating_sub(10))
    )
}

fn request(args: &Args, data: &str, counts: &Counts) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/events").header("host", "bench");
    if let Some(prefer) = &args.prefer {
        builder = builder.header("prefer", prefer);
    }
    if args.batch <= 1 {
        let seq = counts.sequence.fetch_add(1, Ordering::Relaxed);
        builder
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("{}-{seq}", args.run))
            .header("ce-source", "/loadgen")
            .header("ce-type", &args.ty)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(data.as_bytes())))
            .unwrap_or_default()
    } else {
        let first = counts
            .sequence
            .fetch_add(args.batch as u64, Ordering::Relaxed);
        // One buffer, written in place: the load tool shares the machine with
        // the router, so its own cost per event is kept small.
        let mut body = String::with_capacity(args.batch * (data.len() + 160) + 2);
        body.push('[');
        for i in 0..args.batch as u64 {
            if i > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                "{{\"specversion\":\"1.0\",\"id\":\"{}-{}\",\"source\":\"/loadgen\",\"type\":\"{}\",\"datacontenttype\":\"application/json\",\"data\":{data}}}",
                args.run,
                first + i,
                args.ty
            );
        }
        body.push(']');
        builder
            .header("content-type", "application/cloudevents-batch+json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }
}

/// The scheduled send times of the open loop, shared by the connections.
type Schedule = Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>;
/// The pacer's end of the schedule.
type Sender = tokio::sync::mpsc::UnboundedSender<Instant>;

/// Hands out the open loop's scheduled times, at those times, until `deadline`.
/// Runs as a task on the load tool's single-threaded runtime and spins (see the
/// module comment): each `yield_now` lets the connections run and polls their
/// sockets before the clock is read again.
async fn pace(rate: u64, started: Instant, deadline: Instant, times: Sender) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut next = started;
    while next < deadline {
        if !hand_out_due(&mut next, interval, deadline, &times) {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Sends every scheduled time due by now, at once, so that a late turn does
/// not shift the schedule; whether the connections still take them.
fn hand_out_due(next: &mut Instant, interval: Duration, deadline: Instant, times: &Sender) -> bool {
    let now = Instant::now();
    while *next <= now && *next < deadline {
        if times.send(*next).is_err() {
            return false;
        }
        *next += interval;
    }
    true
}

/// [`pace`] without spinning: the runtime sleeps in epoll until a periodic
/// timerfd expires, then hands out every time due by then.
#[allow(unsafe_code)]
async fn pace_by_timer(rate: u64, started: Instant, deadline: Instant, times: Sender) {
    use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let timespec = |d: Duration| Timespec::try_from(d).expect("a timespec");
    let timer = rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )
    .expect("timerfd");
    // A zero first expiry would disarm the timer.
    let first = started
        .saturating_duration_since(Instant::now())
        .max(Duration::from_nanos(1));
    let period = Itimerspec {
        it_interval: timespec(interval),
        it_value: timespec(first),
    };
    rustix::time::timerfd_settime(&timer, TimerfdTimerFlags::empty(), &period)
        .expect("timerfd_settime");
    // SAFETY: the AsyncFd owns the timerfd, which so stays open while
    // registered.
    let timer = unsafe { tokio::io::unix::AsyncFd::register(timer) }
        .map_err(|e| e.into_parts().1)
        .expect("timerfd in the runtime");
    let mut next = started;
    while next < deadline {
        let mut ready = timer.readable().await.expect("timerfd readable");
        // The count of expiries since the last read; the clock says what is due.
        let mut expiries = [0u8; 8];
        match rustix::io::read(ready.get_inner(), &mut expiries) {
            Ok(_) => {}
            Err(rustix::io::Errno::AGAIN) => {
                ready.clear_ready();
                continue;
            }
            Err(e) => panic!("timerfd read: {e}"),
        }
        if !hand_out_due(&mut next, interval, deadline, &times) {
            return;
        }
    }
}

/// Width of a window of `slow_windows`.
const WINDOW: Duration = Duration::from_millis(100);
/// A window is slow when its slowest request took longer than this.
const SLOW: Duration = Duration::from_millis(1);

/// Latencies of one connection: all of them, and per window of send time the
/// slowest and how many took over [`SLOW`].
struct Recorded {
    histogram: Histogram<u64>,
    windows: Vec<(u64, u64)>,
}

impl Recorded {
    fn new() -> Self {
        Self {
            histogram: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
            windows: Vec::new(),
        }
    }

    fn record(&mut self, started: Instant, sent: Instant) {
        let took = sent.elapsed();
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self.histogram.record(micros.max(1));
        let window =
            (sent.saturating_duration_since(started).as_millis() / WINDOW.as_millis()) as usize;
        if self.windows.len() <= window {
            self.windows.resize(window + 1, (0, 0));
        }
        let (slowest, over) = &mut self.windows[window];
        *slowest = (*slowest).max(micros);
        *over += u64::from(took > SLOW);
    }

    fn add(&mut self, other: Recorded) {
        let _ = self.histogram.add(other.histogram);
        if self.windows.len() < other.windows.len() {
            self.windows.resize(other.windows.len(), (0, 0));
        }
        for (mine, (slowest, over)) in self.windows.iter_mut().zip(other.windows) {
            mine.0 = mine.0.max(slowest);
            mine.1 += over;
        }
    }
}

/// One keep-alive connection, handshaken; `None` (counted as failed) when the
/// server cannot be reached.
async fn connect(args: &Args, counts: &Counts) -> Option<SendRequest<Full<Bytes>>> {
    let connected = async {
        let stream = tokio::net::TcpStream::connect(args.addr).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(sender)
    };
    let sender = connected.await;
    if sender.is_none() {
        counts.failed.fetch_add(1, Ordering::Relaxed);
    }
    sender
}

async fn connection(
    args: Arc<Args>,
    counts: Arc<Counts>,
    mut sender: SendRequest<Full<Bytes>>,
    schedule: Option<Schedule>,
    started: Instant,
) -> Recorded {
    let mut recorded = Recorded::new();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let data = event_data(&args);
    loop {
        let sent = match &schedule {
            // The next scheduled time; none left when the pacer is done.
            Some(schedule) => match schedule.lock().await.recv().await {
                Some(at) => at,
                None => break,
            },
            None if Instant::now() >= deadline => break,
            None => Instant::now(),
        };
        let outcome = match sender.send_request(request(&args, &data, &counts)).await {
            Ok(response) => {
                let ok = response.status().is_success();
                let _ = response.into_body().collect().await;
                ok
            }
            Err(_) => false,
        };
        if outcome {
            counts.ok_requests.fetch_add(1, Ordering::Relaxed);
            counts
                .acked_events
                .fetch_add(args.batch.max(1) as u64, Ordering::Relaxed);
            recorded.record(started, sent);
        } else {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            if sender.ready().await.is_err() {
                break;
            }
        }
    }
    recorded
}

fn main() {
    let args = Arc::new(Args::parse());
    // The open loop on one thread (see the module comment); the closed loop on
    // a worker per core the load tool may use.
    let runtime = match args.mode {
        Mode::Rate => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Mode::Max => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Arc<Args>) {
    let counts = Arc::new(Counts::default());
    // Every connection is made before the clock starts: the open loop's first
    // scheduled times would otherwise wait for connections that do not exist
    // yet, and count the handshakes as the server's latency.
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        senders.extend(connect(&args, &counts).await);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let schedule = (args.mode == Mode::Rate).then(|| {
        let (times, schedule) = tokio::sync::mpsc::unbounded_channel();
        match args.pacer {
            Pacer::Spin => tokio::spawn(pace(args.rate, started, deadline, times)),
            Pacer::Timer => tokio::spawn(pace_by_timer(args.rate, started, deadline, times)),
        };
        Arc::new(tokio::sync::Mutex::new(schedule))
    });
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            tokio::spawn(connection(
                Arc::clone(&args),
                Arc::clone(&counts),
                sender,
                schedule.clone(),
                started,
            ))
        })
        .collect();
    let mut recorded = Recorded::new();
    for task in tasks {
        if let Ok(r) = task.await {
            recorded.add(r);
        }
    }
    let histogram = &recorded.histogram;
    let slow_windows: Vec<_> = recorded
        .windows
        .iter()
        .enumerate()
        .filter(|(_, (slowest, _))| *slowest > SLOW.as_micros() as u64)
        .map(|(i, (slowest, over))| {
            serde_json::json!({
                "at_ms": i as u128 * WINDOW.as_millis(),
                "slowest_us": slowest,
                "over_1ms": over,
            })
        })
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let ok = counts.ok_requests.load(Ordering::Relaxed);
    let acked = counts.acked_events.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let q = |p: f64| histogram.value_at_quantile(p);
    let report = serde_json::json!({
        "duration_s": elapsed,
        "requests_per_s": ok as f64 / elapsed,
        "events_per_s": acked as f64 / elapsed,
        "acked_events": acked,
        "failed": failed,
        "latency_us": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": histogram.max() },
        "slow_windows": slow_windows,
    });
    eprintln!(
        "{:.0} req/s, {:.0} events/s, {failed} failed, p50 {} us, p99 {} us, p99.9 {} us",
        ok as f64 / elapsed,
        acked as f64 / elapsed,
        q(0.5),
        q(0.99),
        q(0.999)
    );
    println!("{report}");
}
