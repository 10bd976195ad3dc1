//! Benchmark peer: lameduck with a slow route answered from another thread, for the in-flight
//! capacity run (`benches/inflight.sh`).
//!
//! Same flags and environment as `lameduck serve`. `GET /` and readiness are the server's own;
//! `GET /delay` answers `Hello, World!` `DELAY_MS` milliseconds later (environment, default 100),
//! like the other peers' `/delay`. The handler does not block anything for it: it takes the
//! request's [`Reply`] and hands it, with its deadline, to one timer thread, which sends each
//! reply when its deadline comes. So 10,000 requests waiting cost 10,000 reply handles in a heap,
//! not 10,000 blocked threads or tasks.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lameduck::routes::{default_handler, HELLO};
use lameduck::{Call, Handler, Reply, Request, Response};

/// The timer thread's resolution: it sleeps at least this long between two batches, so a reply
/// goes out up to this late, never early. Without it, at 100,000 replies a second the thread
/// would wake every few microseconds for one or two replies, and each wake-up is a context
/// switch on the server's core. tokio's timer has the same 1 ms resolution.
const TICK: Duration = Duration::from_millis(1);

/// Routes `/delay` to the timer and everything else to the default handler.
struct Delayed {
    timer: Arc<Timer>,
    delay: Duration,
}

impl Handler for Delayed {
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
        if request.path != "/delay" {
            return Some(default_handler(request));
        }
        let reply = call.reply_later();
        if !reply.is_cancelled() {
            // Cancelled from the start means over --max-pending: the server answers 503 itself.
            self.timer.schedule(Instant::now() + self.delay, reply);
        }
        None
    }
}

/// Replies waiting for their deadline, earliest on top, and the thread that sends them.
struct Timer {
    due: Mutex<BinaryHeap<Due>>,
    /// Wakes the timer thread when a new deadline is earlier than every one it knew of.
    earlier: Condvar,
}

/// One reply and when to send it. Ordered by deadline, reversed: `BinaryHeap` is a max-heap.
struct Due {
    at: Instant,
    reply: Reply,
}

impl Timer {
    /// Starts the timer thread.
    fn start() -> std::io::Result<Arc<Timer>> {
        let timer = Arc::new(Timer {
            due: Mutex::new(BinaryHeap::new()),
            earlier: Condvar::new(),
        });
        let worker = timer.clone();
        thread::Builder::new()
            .name("delay-timer".into())
            .spawn(move || worker.run())?;
        Ok(timer)
    }

    /// Sends `reply` at `at`. Wakes the timer thread only when `at` becomes its next deadline:
    /// with equal delays that is when the heap was empty, so the loop pays no futex call per
    /// request.
    fn schedule(&self, at: Instant, reply: Reply) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = due.peek().is_none_or(|next| at < next.at);
        due.push(Due { at, reply });
        drop(due);
        if earliest {
            self.earlier.notify_one();
        }
    }

    /// The timer thread: take every reply whose deadline has passed, send them outside the lock
    /// (a send takes the server's inbox lock and wakes its loop), sleep until the next deadline
    /// or for a [`TICK`], whichever is later.
    fn run(&self) {
        let mut ready = Vec::new();
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            while due.peek().is_some_and(|next| next.at <= now) {
                ready.extend(due.pop());
            }
            if !ready.is_empty() {
                drop(due);
                for Due { reply, .. } in ready.drain(..) {
                    reply.send(Response::text(200, HELLO));
                }
                due = self.due.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            due = match due.peek().map(|next| (next.at - now).max(TICK)) {
                Some(wait) => {
                    self.earlier
                        .wait_timeout(due, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.earlier.wait(due).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

/// `DELAY_MS` from the environment, 100 ms if unset.
fn delay() -> Result<Duration, String> {
    match std::env::var("DELAY_MS") {
        Ok(ms) => ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("DELAY_MS={ms}: expected milliseconds")),
        Err(_) => Ok(Duration::from_millis(100)),
    }
}

fn main() -> ExitCode {
    let delay = match delay() {
        Ok(delay) => delay,
        Err(e) => {
            eprintln!("peer-lameduck: {e}");
            return ExitCode::from(2);
        }
    };
    let timer = match Timer::start() {
        Ok(timer) => timer,
        Err(e) => {
            eprintln!("peer-lameduck: cannot start the timer thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same command line as `lameduck serve`.
    lameduck::cli::main(Delayed { timer, delay })
}
