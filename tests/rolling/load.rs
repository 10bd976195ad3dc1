//! Continuous HTTP load through the balancer, and the rule for what counts as a failed request.
//!
//! Two kinds of client threads run for the whole rolling update, back to back with no pause:
//!
//! - **keep-alive** clients hold one connection and send `GET /` on it again and again, the way a
//!   pooling HTTP client (Go's `net/http`, hyper, a browser) does;
//! - **new-connection** clients open a fresh connection for every request (`Connection: close`),
//!   the way a naive client or a health checker does. They are the ones that hit a closed listener.
//!
//! # What is a failure
//!
//! A request is **failed** when the client committed to sending it and did not get a complete
//! `200` response back:
//!
//! - the connection for it could not be opened (`refused`, `reset`, `timeout`);
//! - it was written (or writing it failed) and then the response did not arrive complete: the
//!   peer closed first (`eof`, including a partial response), reset the connection (`reset`), or
//!   stayed silent for [`REQUEST_TIMEOUT`] (`timeout`);
//! - the response was complete but not `200` (`non200`).
//!
//! A keep-alive connection that the server ends **before** the next request is written is *not* a
//! failure, because no request was lost and every pooling client handles it: either the last
//! response said `Connection: close` (the client drops the connection, as HTTP requires), or the
//! client finds the idle connection already closed when it checks it just before reuse (a
//! non-blocking `peek` seeing EOF). Those are counted separately and reported. The check-then-write
//! race is *not* forgiven: if the server closes the connection after the check but before the
//! request lands, that request is a failure. Real clients retry such idempotent requests, but this
//! harness does not, because a server that closes idle keep-alive connections while traffic still
//! flows is exactly what it must catch. Nothing is retried, anywhere.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connect, write and read timeout for one request. Far above loopback latency; a request that
/// takes this long is stuck, and is reported as `timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures kept with their details (counts are always exact); bounds memory in the naive control.
const MAX_RECORDED: usize = 100_000;

const REQ_KEEPALIVE: &[u8] = b"GET / HTTP/1.1\r\nHost: lameduck\r\n\r\n";
const REQ_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: lameduck\r\nConnection: close\r\n\r\n";

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Connection refused.
    Refused,
    /// Connection reset (or broken pipe / aborted) while connecting, writing or reading.
    Reset,
    /// The peer closed before a complete response (zero or some bytes of it) arrived.
    Eof,
    /// Nothing for [`REQUEST_TIMEOUT`].
    Timeout,
    /// A complete response with a status other than 200.
    Non200,
    /// Anything else (garbled response, local resource errors); see the detail.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Refused,
        Kind::Reset,
        Kind::Eof,
        Kind::Timeout,
        Kind::Non200,
        Kind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Refused => "refused",
            Kind::Reset => "reset",
            Kind::Eof => "eof",
            Kind::Timeout => "timeout",
            Kind::Non200 => "non200",
            Kind::Other => "other",
        }
    }

    fn of(e: &io::Error) -> Kind {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Kind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Kind::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Kind::Timeout,
            io::ErrorKind::UnexpectedEof => Kind::Eof,
            _ => Kind::Other,
        }
    }
}

/// One failed request.
#[derive(Clone, Debug)]
pub struct Failure {
    /// When the request started, since the start of the load.
    pub at: Duration,
    /// Which client thread ("ka-0", "nc-3").
    pub client: String,
    pub kind: Kind,
    pub detail: String,
}

/// Counters shared by all client threads.
#[derive(Default)]
pub struct Stats {
    pub ok_keepalive: AtomicU64,
    pub ok_newconn: AtomicU64,
    /// Failed requests, indexed like [`Kind::ALL`].
    pub failed: [AtomicU64; 6],
    /// Connections opened by keep-alive clients (each one ended by `Connection: close` or by the peer).
    pub keepalive_conns: AtomicU64,
    /// Idle keep-alive connections found closed (EOF) before reuse: not failures, see the module doc.
    pub idle_closed: AtomicU64,
    /// Idle keep-alive connections found reset before reuse: not failures either, but a graceful
    /// server should not produce them, so they are reported.
    pub idle_reset: AtomicU64,
    /// Idle keep-alive connections with unrequested bytes waiting (e.g. a 408): dropped, reported.
    pub unsolicited: AtomicU64,
    /// The first [`MAX_RECORDED`] failures in full.
    pub failures: Mutex<Vec<Failure>>,
}

impl Stats {
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn requests(&self) -> u64 {
        self.ok_keepalive.load(Relaxed) + self.ok_newconn.load(Relaxed) + self.failed_total()
    }

    pub fn failed_of(&self, kind: Kind) -> u64 {
        self.failed[kind as usize].load(Relaxed)
    }
}

/// What every client thread shares.
struct Ctx {
    front: SocketAddr,
    t0: Instant,
    stop: AtomicBool,
    stats: Arc<Stats>,
}

impl Ctx {
    fn fail(&self, client: &str, at: Duration, kind: Kind, detail: String) {
        self.stats.failed[kind as usize].fetch_add(1, Relaxed);
        let mut v = self
            .stats
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if v.len() < MAX_RECORDED {
            v.push(Failure {
                at,
                client: client.to_string(),
                kind,
                detail,
            });
        }
    }
}

/// The running load; stop it with [`Load::stop`].
pub struct Load {
    ctx: Arc<Ctx>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `keepalive` + `newconn` client threads against `front`; failure times are measured from `t0`.
    pub fn start(front: SocketAddr, keepalive: usize, newconn: usize, t0: Instant) -> Load {
        let ctx = Arc::new(Ctx {
            front,
            t0,
            stop: AtomicBool::new(false),
            stats: Arc::default(),
        });
        let mut threads = Vec::new();
        for i in 0..keepalive {
            let ctx = ctx.clone();
            threads.push(std::thread::spawn(move || {
                keepalive_client(&format!("ka-{i}"), &ctx)
            }));
        }
        for i in 0..newconn {
            let ctx = ctx.clone();
            threads.push(std::thread::spawn(move || {
                newconn_client(&format!("nc-{i}"), &ctx)
            }));
        }
        Load { ctx, threads }
    }

    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// Stops the clients after their current request (each is bounded by [`REQUEST_TIMEOUT`]) and
    /// joins them.
    pub fn stop(self) -> Arc<Stats> {
        self.ctx.stop.store(true, Relaxed);
        for t in self.threads {
            if t.join().is_err() {
                panic!("a load client thread panicked");
            }
        }
        self.ctx.stats.clone()
    }
}

/// A keep-alive client: one connection reused until the server ends it (see the module doc).
fn keepalive_client(id: &str, ctx: &Ctx) {
    let stats = &ctx.stats;
    let mut conn: Option<TcpStream> = None;
    while !ctx.stop.load(Relaxed) {
        if let Some(s) = &conn {
            match idle_check(s) {
                Idle::Open => {}
                Idle::Closed => drop_conn(&mut conn, &stats.idle_closed),
                Idle::Reset => drop_conn(&mut conn, &stats.idle_reset),
                Idle::Unsolicited => drop_conn(&mut conn, &stats.unsolicited),
            }
        }
        let at = ctx.t0.elapsed();
        let mut s = match conn.take() {
            Some(s) => s,
            None => match connect(ctx.front) {
                Ok(s) => {
                    stats.keepalive_conns.fetch_add(1, Relaxed);
                    s
                }
                Err(e) => {
                    ctx.fail(id, at, Kind::of(&e), format!("connect: {e}"));
                    continue;
                }
            },
        };
        // From here on the request is committed: anything but a complete 200 is a failure.
        match exchange(&mut s, REQ_KEEPALIVE) {
            Ok(r) => {
                if r.status == 200 {
                    stats.ok_keepalive.fetch_add(1, Relaxed);
                } else {
                    ctx.fail(id, at, Kind::Non200, format!("status {}", r.status));
                }
                if !r.close {
                    conn = Some(s);
                }
            }
            Err((kind, detail)) => ctx.fail(id, at, kind, detail),
        }
    }
}

/// A new-connection client: connect, one request with `Connection: close`, read the response, repeat.
fn newconn_client(id: &str, ctx: &Ctx) {
    while !ctx.stop.load(Relaxed) {
        let at = ctx.t0.elapsed();
        let mut s = match connect(ctx.front) {
            Ok(s) => s,
            Err(e) => {
                ctx.fail(id, at, Kind::of(&e), format!("connect: {e}"));
                continue;
            }
        };
        match exchange(&mut s, REQ_CLOSE) {
            Ok(r) if r.status == 200 => {
                ctx.stats.ok_newconn.fetch_add(1, Relaxed);
            }
            Ok(r) => ctx.fail(id, at, Kind::Non200, format!("status {}", r.status)),
            Err((kind, detail)) => ctx.fail(id, at, kind, detail),
        }
    }
}

fn drop_conn(conn: &mut Option<TcpStream>, counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
    *conn = None;
}

fn connect(front: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&front, REQUEST_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    Ok(s)
}

/// State of an idle keep-alive connection just before reuse.
enum Idle {
    Open,
    Closed,
    Reset,
    Unsolicited,
}

/// Looks at an idle connection without blocking and without consuming anything.
fn idle_check(s: &TcpStream) -> Idle {
    let mut byte = [0u8; 1];
    if s.set_nonblocking(true).is_err() {
        return Idle::Reset;
    }
    let state = match s.peek(&mut byte) {
        Ok(0) => Idle::Closed,
        Ok(_) => Idle::Unsolicited,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Idle::Open,
        Err(_) => Idle::Reset,
    };
    if s.set_nonblocking(false).is_err() {
        return Idle::Reset;
    }
    state
}

/// The parts of a response the clients act on.
struct Response {
    status: u16,
    /// The server will close the connection after this response.
    close: bool,
}

type Failed = (Kind, String);

/// Writes one request and reads exactly one complete response.
fn exchange(s: &mut TcpStream, req: &[u8]) -> Result<Response, Failed> {
    s.write_all(req)
        .map_err(|e| (Kind::of(&e), format!("write: {e}")))?;
    read_response(s)
}

/// Reads one response: head up to the blank line, then `Content-Length` bytes of body (or, with no
/// length and `Connection: close`, everything up to EOF).
fn read_response(s: &mut TcpStream) -> Result<Response, Failed> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let mut head: Option<(Response, Option<usize>)> = None;
    loop {
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err((
                    Kind::of(&e),
                    format!("read after {} response bytes: {e}", buf.len()),
                ));
            }
        };
        if n == 0 {
            return match head {
                Some((r, None)) => Ok(r), // body delimited by EOF
                _ => Err((Kind::Eof, format!("EOF after {} response bytes", buf.len()))),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let (r, len) = parse_head(&buf[..end])?;
                head = Some((r, len.map(|l| end + 4 + l)));
            }
        }
        if let Some((r, Some(total))) = head.take() {
            if buf.len() >= total {
                return Ok(r);
            }
            head = Some((r, Some(total)));
        }
    }
}

/// Parses a response head; returns the response and its body length (None = until EOF).
fn parse_head(head: &[u8]) -> Result<(Response, Option<usize>), Failed> {
    let garbled = || {
        (
            Kind::Other,
            format!("garbled response head: {:?}", String::from_utf8_lossy(head)),
        )
    };
    let text = std::str::from_utf8(head).map_err(|_| garbled())?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next().unwrap_or("").splitn(3, ' ');
    let version = status_line.next().unwrap_or("");
    let status: u16 = status_line
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(garbled)?;
    if !version.starts_with("HTTP/1.") {
        return Err(garbled());
    }
    let mut len = None;
    let mut connection = String::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(garbled)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            len = Some(value.parse::<usize>().map_err(|_| garbled())?);
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((
                Kind::Other,
                format!("unexpected Transfer-Encoding: {value}"),
            ));
        }
    }
    let close = if version == "HTTP/1.0" {
        !connection.contains("keep-alive")
    } else {
        connection.split(',').any(|t| t.trim() == "close")
    };
    if len.is_none() && !close {
        return Err((
            Kind::Other,
            "keep-alive response without Content-Length".to_string(),
        ));
    }
    Ok((Response { status, close }, len))
}
