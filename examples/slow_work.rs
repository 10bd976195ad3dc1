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
//!
//! Large answers, whose byte `i` is always `i % 251` (so a client can check every byte):
//!
//! - `GET /download?bytes=N` streams N bytes (at most [`MAX_DOWNLOAD`]) with
//!   `Content-Length: N`, produced in pieces of [`PIECE`] bytes on a thread of its own, never
//!   held whole; `&chunked=1` sends the same bytes chunked (no length up front); `&fail_at=M`
//!   makes the producer give up after M bytes (the response fails visibly);
//! - `GET /blob` answers the same 8 MiB body to every client from one shared allocation;
//!   `/blob?bytes=N` answers its first N bytes, still without a copy (a type of our own lends
//!   the prefix).
//!
//! ```sh
//! curl -s 'localhost:8081/download?bytes=1000000000' | wc -c   # 1000000000, a few MiB of RSS
//! ```

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lameduck::routes::default_handler;
use lameduck::{Body, BodyWriter, Call, Handler, Pool, PoolHandler, Request, Response};

/// Worker threads: as many sleeps as this run at once; more wait in the pool's queue.
const WORKERS: usize = 64;

/// Requests that may wait for a worker; one more is answered 503 at once.
const QUEUE: usize = 4096;

/// The longest sleep `/sleep` agrees to.
const MAX_SLEEP_MS: u64 = 60_000;

/// The largest `/download`: 1 GiB.
const MAX_DOWNLOAD: u64 = 1 << 30;

/// The size of each piece a download's producer sends.
const PIECE: usize = 64 * 1024;

/// The size of `/blob`: 8 MiB.
const BLOB_BYTES: usize = 8 << 20;

/// Sends the slow routes to the pool and answers the rest on the loop.
struct SlowWork {
    pool: PoolHandler,
}

impl Handler for SlowWork {
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
        match request.path {
            "/sleep" | "/upload" => self.pool.call(request, call),
            "/download" if request.method == "GET" || request.method == "HEAD" => {
                Some(download(request.target))
            }
            "/blob" if request.method == "GET" || request.method == "HEAD" => {
                Some(blob(request.target))
            }
            "/download" | "/blob" => {
                Some(Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD"))
            }
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
    query_number(target, "ms=").filter(|&ms| ms <= MAX_SLEEP_MS)
}

/// The number after `key` (`"ms="`) in the query of `target`, if there is one and it parses.
fn query_number(target: &str, key: &str) -> Option<u64> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(key))?
        .parse()
        .ok()
}

/// `GET /download?bytes=N[&chunked=1]`: the head now, the body from a producer thread that
/// waits whenever the client does (see [`BodyWriter::send`]) and stops when it goes.
fn download(target: &str) -> Response {
    let Some(bytes) = query_number(target, "bytes=").filter(|&n| n <= MAX_DOWNLOAD) else {
        return Response::text(400, format!("expected ?bytes=0..{MAX_DOWNLOAD}\n"));
    };
    let chunked = target.contains("chunked=1");
    let fail_at = query_number(target, "fail_at=");
    let (body, writer) = Body::stream((!chunked).then_some(bytes));
    let producer = std::thread::Builder::new()
        .name("download".into())
        .spawn(move || produce(writer, bytes, fail_at));
    if producer.is_err() {
        return Response::text(503, "no thread for the download\n").with_header("Retry-After", "1");
    }
    Response::new(200, body).with_header("Content-Type", "application/octet-stream")
}

/// Sends `bytes` bytes of the pattern in pieces of [`PIECE`]. Stops early if the client has
/// gone (saying so on stderr, with how much it had sent), or, to show what a failure looks like
/// on the wire, after `fail_at` bytes: the writer, dropped unfinished, fails the response.
fn produce(mut writer: BodyWriter, bytes: u64, fail_at: Option<u64>) {
    let mut at = 0u64;
    while at < bytes {
        if fail_at.is_some_and(|fail_at| at >= fail_at) {
            eprintln!("event=download_failed sent={at} bytes={bytes}");
            return;
        }
        let len = PIECE.min((bytes - at) as usize);
        let piece: Vec<u8> = (at..at + len as u64).map(|i| (i % 251) as u8).collect();
        if writer.send(piece).is_err() {
            eprintln!("event=download_gone sent={at} bytes={bytes}");
            return;
        }
        at += len as u64;
    }
    let _ = writer.finish();
}

/// `GET /blob[?bytes=N]`: one 8 MiB allocation shared by every response (or its first N bytes).
fn blob(target: &str) -> Response {
    static BLOB: OnceLock<Arc<[u8]>> = OnceLock::new();
    let blob = BLOB.get_or_init(|| (0..BLOB_BYTES).map(|i| (i % 251) as u8).collect());
    let len = match query_number(target, "bytes=") {
        None if !target.contains('?') => BLOB_BYTES,
        Some(n) if n <= BLOB_BYTES as u64 => n as usize,
        _ => return Response::text(400, format!("expected ?bytes=0..{BLOB_BYTES}\n")),
    };
    let body = Body::shared(Arc::new(Prefix {
        blob: blob.clone(),
        len,
    }));
    Response::new(200, body).with_header("Content-Type", "application/octet-stream")
}

/// The first `len` bytes of a shared blob: a body of our own type, lent without a copy.
struct Prefix {
    blob: Arc<[u8]>,
    len: usize,
}

impl AsRef<[u8]> for Prefix {
    fn as_ref(&self) -> &[u8] {
        &self.blob[..self.len]
    }
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
