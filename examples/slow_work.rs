//! Slow work behind lameduck without blocking its event loop: blocking handlers run on a
//! [`Pool`] of worker threads, their answers come back through reply handles, and the drain
//! waits for them. Same flags and environment as `lameduck serve`.
//!
//! ```sh
//! cargo run --example slow_work -- --port 8081
//! curl -i 'localhost:8081/sleep?ms=2000'                 # 200 "slept 2000 ms", after 2 s
//! curl -i --data-binary @/etc/services localhost:8081/upload   # 200 "bytes=N"
//! ```
//!
//! Routes: `GET /sleep?ms=N` blocks a worker for N ms (at most [`MAX_SLEEP_MS`]) and answers
//! `slept N ms`; `POST /upload` answers `bytes=N`, the body's length (Content-Length or
//! chunked); everything else is the default handler's (`/` says `Hello, World!`), answered on
//! the loop itself; readiness is the server's, as always.

use std::process::ExitCode;
use std::time::Duration;

use lameduck::routes::default_handler;
use lameduck::{Call, Handler, Pool, PoolHandler, Request, Response};

/// Worker threads: as many sleeps as this run at once; more wait in the pool's queue.
const WORKERS: usize = 64;

/// Requests that may wait for a worker; one more is answered 503 at once.
const QUEUE: usize = 4096;

/// The longest sleep `/sleep` agrees to.
const MAX_SLEEP_MS: u64 = 60_000;

/// Sends the slow routes to the pool and answers the rest on the loop.
struct SlowWork {
    pool: PoolHandler,
}

impl Handler for SlowWork {
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
        match request.path {
            "/sleep" | "/upload" => self.pool.call(request, call),
            _ => Some(default_handler(request)),
        }
    }
}

/// The blocking part, on a worker thread.
fn slow(request: &Request<'_>) -> Response {
    match (request.method, request.path) {
        ("GET", "/sleep") => match sleep_ms(request.target) {
            Some(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Response::text(200, format!("slept {ms} ms\n"))
            }
            None => Response::text(400, format!("expected ?ms=0..{MAX_SLEEP_MS}\n")),
        },
        ("POST", "/upload") => Response::text(200, format!("bytes={}\n", request.body.len())),
        (_, "/sleep") => Response::text(405, "method not allowed\n").with_header("Allow", "GET"),
        _ => Response::text(405, "method not allowed\n").with_header("Allow", "POST"),
    }
}

/// `N` of a target `/sleep?ms=N`.
fn sleep_ms(target: &str) -> Option<u64> {
    let (_, query) = target.split_once('?')?;
    let ms = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))?
        .parse()
        .ok()?;
    (ms <= MAX_SLEEP_MS).then_some(ms)
}

fn main() -> ExitCode {
    let pool = match Pool::new(WORKERS, QUEUE) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("slow_work: cannot start the worker pool: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same command line as `lameduck` itself (`serve`, `live`, every flag and variable).
    lameduck::cli::main(SlowWork {
        pool: pool.handler(slow),
    })
}
