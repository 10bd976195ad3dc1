//! A fixed pool of worker threads for blocking handlers, std only.
//!
//! The event loop must never block, but plenty of real handlers do: a database driver, a file, a
//! call to another service. [`Pool::handler`] turns a blocking `Fn(&Request) -> Response` into a
//! [`Handler`]: the loop copies the request, takes its [`Reply`], and queues both for the
//! workers; a worker runs the function and sends the reply, which wakes the loop. Everything is
//! bounded: the threads, the queue (a request that finds it full is answered 503 at once), and
//! the replies waiting server-wide (`--max-pending`).
//!
//! ```no_run
//! use lameduck::{Config, Pool, Response, Server};
//!
//! let pool = Pool::new(16, 1024)?;
//! let mut server = Server::bind(Config::default())?;
//! let outcome = server.run(pool.handler(|request| {
//!     std::thread::sleep(std::time::Duration::from_millis(100)); // slow work, off the loop
//!     Response::text(200, format!("{} bytes\n", request.body.len()))
//! }))?;
//! std::process::exit(outcome.exit_code());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::codec::{BodyFraming, Request, Response, Version};
use crate::handler::{Call, Cancellation, Handler, Reply};

/// The work a pool runs: a blocking function of the request, which may watch its cancellation.
type Work = dyn Fn(&Request<'_>, &Cancellation) -> Response + Send + Sync;

/// One request on its way to a worker.
struct Job {
    request: OwnedRequest,
    reply: Reply,
    work: Arc<Work>,
}

/// Worker threads and their bounded queue. Once the pool and every [`PoolHandler`] are dropped,
/// the queue closes: each worker finishes the job in hand (its client may be gone: a job whose
/// reply is cancelled is skipped) and stops. Nobody waits for them: a stopping server must not
/// wait on slow work it has already given up.
pub struct Pool {
    jobs: SyncSender<Job>,
}

impl Pool {
    /// Starts `threads` workers (at least one) with room for `queue` jobs waiting for one.
    pub fn new(threads: usize, queue: usize) -> io::Result<Pool> {
        let (jobs, waiting) = mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..threads.max(1) {
            let waiting = waiting.clone();
            thread::Builder::new()
                .name(format!("lameduck-pool-{i}"))
                .spawn(move || work(&waiting))?;
        }
        Ok(Pool { jobs })
    }

    /// A handler that runs `work` on this pool for every request it is given.
    pub fn handler<F>(&self, work: F) -> PoolHandler
    where
        F: Fn(&Request<'_>) -> Response + Send + Sync + 'static,
    {
        self.cancellable(move |request, _| work(request))
    }

    /// Like [`handler`](Pool::handler), for work that may stop early: it is also given its
    /// request's [`Cancellation`], true once nobody waits for the answer (the client left, the
    /// request was answered 503 for `--handler-timeout`, the server forced its drain).
    pub fn cancellable<F>(&self, work: F) -> PoolHandler
    where
        F: Fn(&Request<'_>, &Cancellation) -> Response + Send + Sync + 'static,
    {
        PoolHandler {
            jobs: self.jobs.clone(),
            work: Arc::new(work),
        }
    }
}

/// A worker's life: take the next job, run it unless nobody waits for it any more, send the
/// answer. A panic in the work drops the reply, which answers 500.
fn work(waiting: &Mutex<Receiver<Job>>) {
    loop {
        let job = match waiting.lock() {
            Ok(waiting) => waiting.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(Job {
            request,
            reply,
            work,
        }) = job
        else {
            return; // the pool and its handlers are gone
        };
        if reply.is_cancelled() {
            continue;
        }
        let cancellation = reply.cancellation();
        let run = || request.with(|r| work(r, &cancellation));
        if let Ok(response) = catch_unwind(AssertUnwindSafe(run)) {
            reply.send(response);
        }
    }
}

/// The [`Handler`] of [`Pool::handler`].
pub struct PoolHandler {
    jobs: SyncSender<Job>,
    work: Arc<Work>,
}

impl Handler for PoolHandler {
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
        let reply = call.reply_later();
        if reply.is_cancelled() {
            // Over --max-pending: the connection answers 503 itself.
            return None;
        }
        let job = Job {
            request: OwnedRequest::from(request),
            reply,
            work: self.work.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => None,
            // The queue is full: refuse now rather than wait. Answering now cancels the reply,
            // so the job's handle, dropped here, answers nothing more.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Some(Response::text(503, "too busy\n").with_header("Retry-After", "1"))
            }
        }
    }
}

/// A request copied out of the loop's buffers, for another thread.
struct OwnedRequest {
    method: String,
    target: String,
    path: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    keep_alive: bool,
    framing: BodyFraming,
    expect_continue: bool,
    body: Vec<u8>,
}

impl From<&Request<'_>> for OwnedRequest {
    fn from(request: &Request<'_>) -> Self {
        OwnedRequest {
            method: request.method.to_owned(),
            target: request.target.to_owned(),
            path: request.path.to_owned(),
            version: request.version,
            headers: (request.headers.iter())
                .map(|h| (h.name.to_owned(), h.value.to_owned()))
                .collect(),
            keep_alive: request.keep_alive,
            framing: request.framing,
            expect_continue: request.expect_continue,
            body: request.body.to_owned(),
        }
    }
}

impl OwnedRequest {
    /// Lends the request out as the [`Request`] the loop had.
    fn with<T>(&self, f: impl FnOnce(&Request<'_>) -> T) -> T {
        let headers: Vec<httparse::Header<'_>> = (self.headers.iter())
            .map(|(name, value)| httparse::Header { name, value })
            .collect();
        f(&Request {
            method: &self.method,
            target: &self.target,
            path: &self.path,
            version: self.version,
            headers: &headers,
            keep_alive: self.keep_alive,
            framing: self.framing,
            body: &self.body,
            expect_continue: self.expect_continue,
        })
    }
}
