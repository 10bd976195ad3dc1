//! Continuous HTTP load through the balancer, and the rule for what counts as a failed request.
//!
//! Six kinds of client threads run for the whole rolling update:
//!
//! - **keep-alive** clients hold one connection and send `GET /` on it again and again, back to
//!   back with no pause, the way a busy pooling HTTP client (Go's `net/http`, hyper) does. Their
//!   connection is never idle for more than a loopback round trip, so it is never idle when a
//!   server starts DRAIN: during the lame-duck window it gets `Connection: close` on its next
//!   response instead.
//! - **new-connection** clients open a fresh connection for every request (`Connection: close`),
//!   the way a naive client or a health checker does. They are the ones that hit a closed listener.
//! - **idle keep-alive** clients also reuse one connection, but *think* between requests (a random
//!   pause, uniform in [`LoadConfig::think`]), the way a browser tab or a low-rate service client
//!   does. They exist to put idle connections on the old server when its DRAIN starts, so that the
//!   drain's gentle close of idle connections (half-close, then a lingering read) is exercised
//!   through the balancer. A connection is idle at DRAIN only if its last request came before
//!   SIGTERM (any request during the lame-duck window is answered with `Connection: close`) and its
//!   next comes after DRAIN starts: the think time must sometimes be longer than the lame-duck
//!   window, so the range reaches past `--shutdown-delay` on purpose. The pause is modelled
//!   behaviour, not synchronisation; a stopping load wakes the thinkers at once (`unpark`).
//! - **slow** clients are busy keep-alive clients whose requests take time to answer:
//!   `GET /sleep?ms=N`, N uniform in [`SLOW_MS`] (the example program blocks a worker thread for
//!   N ms). They put work in flight across every SIGTERM, and some of it across the start of
//!   DRAIN, which must wait for it.
//! - **upload** clients are busy keep-alive clients that send bodies: `POST /upload` with
//!   [`UPLOAD_BYTES`] of body, one request in [`CHUNKED_ONE_IN`] chunked, the others with a
//!   `Content-Length`, each body at the pace of a 1 MiB/s uplink (so it takes up to a second).
//!   They put bodies in flight, half sent, across every SIGTERM.
//! - **download** clients are busy keep-alive clients that fetch large answers, in three
//!   [`Shape`]s drawn at random: `GET /download?bytes=N` (a body streamed by a producer thread,
//!   with a `Content-Length`), `GET /download?bytes=N&chunked=1` (the same, chunked), and
//!   `GET /blob` (one shared 8 MiB allocation). One download in [`PACED_ONE_IN`] is read at the
//!   pace of a [`DOWNLINK`] downlink (N from [`PACED_BYTES`], so it takes up to 3 s); the others
//!   are read as fast as the client can (N from [`DOWNLOAD_BYTES`]). The paced ones keep the
//!   server writing a body across most SIGTERMs, and now and then across the start of DRAIN;
//!   ANNOUNCE or DRAIN must finish them.
//!   Every byte is checked: byte `i` of each body is `i % 251`, and the framing strictly (the
//!   promised `Content-Length`, or chunks ending with the last, zero-size chunk).
//!
//! The slow, upload and download clients need a server that serves their routes: the example
//! program `examples/slow_work.rs`.
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
//! - the response was complete but not `200` (`non200`), or a `200` whose body is not the
//!   answer the request asked for (`wrong`): `slept N ms` for a sleep of N ms, `bytes=N` for an
//!   upload of N bytes, N bytes of the pattern in the asked-for framing for a download (the other
//!   requests take any body). A download cut short is an `eof` (or a `reset`) like any response
//!   cut short, whatever part of it had arrived: a chunked body without its last chunk included.
//!
//! # A connection closed by the server between two requests
//!
//! Every client that reuses its connection (all kinds but new-connection) checks it just before
//! reusing it, exactly like this: the socket is switched to non-blocking and `peek`ed for one
//! byte (`recv(MSG_PEEK)`, which consumes nothing), then switched back. HAProxy in `mode tcp`
//! forwards the server's half-close to the client as a FIN, and a FIN already received makes that
//! `peek` return 0 at once. (In `mode http` the client's connection ends at HAProxy, which keeps
//! it open whatever the servers do; there the same race is between HAProxy and the server, over
//! a pooled connection. HAProxy answers a request it loses that way with a `502` if it was the
//! first on the client's connection; on a later one it passes the race on instead: it closes the
//! client's connection without an answer, and logs nothing, so that the client retries as on any
//! keep-alive connection (`abort_keep_alive` in HAProxy's `src/http_ana.c`). Here that is an
//! `eof`, counted as closed under a written request.)
//!
//! - `peek` returns 0 (EOF): the server closed the idle connection. Nothing has been written, so no
//!   request is lost: the client drops the connection and sends its request on a new one. Counted
//!   as **closed while idle, detected before reuse**, not a failure. A server may close an idle
//!   persistent connection at any time, and clients must expect it (RFC 9112 §9.3.1, §9.5);
//!   urllib3 does exactly this check (`is_connection_dropped`) before reusing a pooled connection.
//! - `peek` fails (e.g. `ECONNRESET`): reset while idle. No request lost either, but a gentle close
//!   is a FIN, never an RST, so it is counted and reported (and must be 0 in default mode).
//! - `peek` returns bytes: the server sent something unrequested (e.g. a 408); dropped, counted.
//! - `peek` would block: nothing has arrived, so the connection is taken to be open and the
//!   request is written. **From that moment the request is committed**: anything but a complete
//!   `200` is a failure. The request is lost if the server decided to close the connection
//!   before it *read* the request: because the request and the server's FIN crossed in flight
//!   (through HAProxy, both ways), or because the request already sat unread in the server's
//!   receive buffer when the drain half-closed the connection. Either way the server, lingering,
//!   reads and discards it, and the client reads EOF: counted under its kind (`eof`, or `reset`)
//!   *and* as **closed under a written request**. This is the race RFC 9112 §9.5 describes (a
//!   client starts a request as the server closes the "idle" connection); §9.3.1 lets a real
//!   client retry such an idempotent `GET`, but this harness retries nothing, so every such
//!   request is visible. Each one records how long the connection had been idle, how long passed
//!   between the check and the write, and how long after the write the close arrived.
//!
//! A response carrying `Connection: close` ends the connection after it (the client drops it, as
//! HTTP requires); that is counted too, and is not a failure.
//!
//! # Aimed mode (a measurement, not a test of zero downtime)
//!
//! With [`LoadConfig::aim`] set, the idle clients stop thinking at random: each holds an idle
//! connection on the server that is about to be replaced, and when the harness sends SIGTERM
//! ([`Load::aim`]) it fires its next request at the *expected DRAIN start* plus a random offset
//! from the range, then reconnects (to the new server) and waits for the next SIGTERM. Every shot
//! is recorded with its actual offset and what happened ([`Outcome`]): served before the drain
//! (`Connection: close`), found closed before reuse, or closed under the written request. The
//! share of the last kind, times the width of the range, is the width of the race window.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connect, write and read timeout for one request. Far above loopback latency; a request that
/// takes this long is stuck, and is reported as `timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures kept with their details (counts are always exact); bounds memory in the naive control.
const MAX_RECORDED: usize = 100_000;

/// The slow clients' sleeps, in milliseconds (inclusive): from a quick database query to a slow
/// report. The top stays well below `--drain-timeout` (20 s), so a drain can always wait for one.
pub const SLOW_MS: (u64, u64) = (200, 3_000);
/// The upload clients' body sizes (inclusive); the top is the server's default `--max-body`.
pub const UPLOAD_BYTES: (usize, usize) = (64 * 1024, 1024 * 1024);
/// One upload in this many is sent chunked (chunks of [`CHUNK_BYTES`]), the others with a length.
pub const CHUNKED_ONE_IN: u64 = 4;
/// The size of each chunk of a chunked upload (inclusive).
const CHUNK_BYTES: (usize, usize) = (1, 64 * 1024);
/// Uploads are sent at the pace of a client on a 1 MiB/s (8 Mbit/s) uplink: a piece of this
/// many bytes every [`UPLOAD_PIECE_EVERY`], so a body takes 60 ms to 1 s to arrive and is often
/// still arriving when a SIGTERM comes. (Back to back at loopback speed, a few upload clients
/// would keep both cores of a small machine busy copying bytes, and measure that instead.)
const UPLOAD_PIECE: usize = 16 * 1024;
const UPLOAD_PIECE_EVERY: Duration = Duration::from_millis(16);
/// The sizes of the downloads read at full speed, for `/download?bytes=N` (inclusive): a page's
/// assets to a small file.
pub const DOWNLOAD_BYTES: (u64, u64) = (256 * 1024, 3 * 1024 * 1024);
/// The sizes of the paced downloads (inclusive). A paced download keeps the server writing only
/// while more of it is left than the sockets between them hold: about 4 MiB on loopback, most of
/// it the server's own send buffer as the kernel's autotuning grows it (HAProxy's share is
/// bounded in `haproxy.cfg`). So these are larger: at [`DOWNLINK`] they take 1.5 to 3 s, of which
/// the server writes for the first 0.5 to 2.
pub const PACED_BYTES: (u64, u64) = (6 * 1024 * 1024, 12 * 1024 * 1024);
/// The size of the example's shared `/blob`.
const BLOB_BYTES: u64 = 8 * 1024 * 1024;
/// One download in this many is read at the pace of a [`DOWNLINK`] downlink, so that it takes up
/// to 3 s, the span of the slowest request: long enough to be in flight at a SIGTERM, and no
/// longer than the work already in flight then, so the old process's stop time (and the run)
/// does not grow. The others are read as fast as the client can; they are smaller, because on a
/// small machine a fast download keeps a core busy producing it while it lasts.
pub const PACED_ONE_IN: u64 = 2;
/// The paced downloads' downlink, in bytes per second: 4 MiB/s (a 32 Mbit/s phone).
pub const DOWNLINK: u64 = 4 * 1024 * 1024;
/// The most a paced client reads at once (and the size of every response reader's buffer).
const DOWNLOAD_PIECE: usize = 64 * 1024;
/// The longest head or chunk-size line a response may have; longer is garbled.
const MAX_LINE: usize = 16 * 1024;

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
    /// A 200 whose body is not the answer the request asked for.
    Wrong,
    /// Anything else (garbled response, local resource errors); see the detail.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Refused,
        Kind::Reset,
        Kind::Eof,
        Kind::Timeout,
        Kind::Non200,
        Kind::Wrong,
        Kind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Refused => "refused",
            Kind::Reset => "reset",
            Kind::Eof => "eof",
            Kind::Timeout => "timeout",
            Kind::Non200 => "non200",
            Kind::Wrong => "wrong",
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

    /// The connection ended under the request (as opposed to a timeout or a bad answer).
    fn is_close(self) -> bool {
        matches!(self, Kind::Eof | Kind::Reset)
    }
}

/// The three kinds of large answer a download client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    /// `GET /download?bytes=N`: streamed by a producer thread, with `Content-Length: N`.
    Sized,
    /// `GET /download?bytes=N&chunked=1`: the same bytes, chunked.
    Chunked,
    /// `GET /blob`: 8 MiB from one allocation shared by every client.
    Blob,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Sized, Shape::Chunked, Shape::Blob];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Sized => "sized",
            Shape::Chunked => "chunked",
            Shape::Blob => "blob",
        }
    }
}

/// The client population of a run.
#[derive(Clone, Copy, Debug)]
pub struct LoadConfig {
    /// Busy keep-alive clients (no pause between requests).
    pub keepalive: usize,
    /// New-connection-per-request clients.
    pub newconn: usize,
    /// Idle keep-alive clients (a think time between requests).
    pub idle: usize,
    /// Slow clients (busy keep-alive, `GET /sleep?ms=N`); 0 unless the server is `slow_work`.
    pub slow: usize,
    /// Upload clients (busy keep-alive, `POST /upload`); 0 unless the server is `slow_work`.
    pub upload: usize,
    /// Download clients (busy keep-alive, `GET /download` and `/blob`); 0 unless the server is
    /// `slow_work`.
    pub download: usize,
    /// The idle clients' think time is drawn uniformly from this range (inclusive).
    pub think: (Duration, Duration),
    /// Seeds the think times, so a run's client behaviour can be replayed (`ROLLING_SEED`).
    pub seed: u64,
    /// Aimed mode (see the module doc): shot offsets from the expected DRAIN start, in
    /// microseconds, uniform in `[lo, hi]`. `None` for the ordinary thinking idle clients.
    pub aim: Option<(i64, i64)>,
}

/// What happened to one request of a keep-alive client, seen from the connection it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No connection was held: the request went on a new one.
    Fresh,
    /// The held connection was found closed by the idle check; the request went on a new one.
    ClosedBeforeReuse,
    /// The held connection was found reset, or with unrequested bytes, by the idle check.
    BadBeforeReuse,
    /// Reused and answered with `Connection: close`: a lame-duck server served it.
    ReusedToldClose,
    /// Reused and answered, connection kept: a server that is not shutting down served it.
    ReusedKept,
    /// Reused, then closed (EOF or reset) under the written request: a failure.
    ClosedUnderRequest,
    /// Reused, then another failure (timeout, non-200, garbled).
    ReusedFailed,
}

/// One shot of the aimed mode.
#[derive(Clone, Copy, Debug)]
pub struct Shot {
    /// Which SIGTERM it aimed at (1 = the first replacement).
    pub restart: u64,
    /// When the idle check ran, relative to the expected DRAIN start (negative: before it).
    pub offset_us: i64,
    pub outcome: Outcome,
    /// For a request closed under it: from the write to the EOF (or reset), in microseconds.
    pub closed_after_write_us: Option<u64>,
}

/// One failed request.
#[derive(Clone, Debug)]
pub struct Failure {
    /// When the request started, since the start of the load.
    pub at: Duration,
    /// Which client thread ("ka-0", "nc-3", "id-7", "sl-2", "up-1", "dl-0").
    pub client: String,
    pub kind: Kind,
    /// Written on a reused keep-alive connection that passed the idle check and then ended
    /// under the request: "closed under a written request".
    pub closed_under_request: bool,
    pub detail: String,
}

/// Counters of one kind of keep-alive client (busy, idle, slow, upload or download).
#[derive(Default)]
pub struct Persistent {
    /// Requests answered with a complete 200.
    pub ok: AtomicU64,
    /// Body bytes of those requests that carried one: an upload's, a download's.
    pub bytes: AtomicU64,
    /// Connections opened.
    pub conns: AtomicU64,
    /// Requests written on a held connection after it passed the idle check.
    pub reused: AtomicU64,
    /// Held connections found closed (EOF) by the idle check: not failures, see the module doc.
    pub closed_before_reuse: AtomicU64,
    /// Held connections found reset by the idle check: not failures, but not gentle either.
    pub reset_before_reuse: AtomicU64,
    /// Held connections with unrequested bytes waiting (e.g. a 408): dropped.
    pub unsolicited: AtomicU64,
    /// Connections ended by a response's `Connection: close`.
    pub told_close: AtomicU64,
    /// Failed requests written on a reused connection that then ended (EOF or reset) before the
    /// response was complete. Also counted by kind in [`Stats::failed`].
    pub closed_under_request: AtomicU64,
}

/// A plain-number copy of [`Persistent`], for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersistentCounts {
    pub ok: u64,
    pub bytes: u64,
    pub conns: u64,
    pub reused: u64,
    pub closed_before_reuse: u64,
    pub reset_before_reuse: u64,
    pub unsolicited: u64,
    pub told_close: u64,
    pub closed_under_request: u64,
}

impl Persistent {
    pub fn snapshot(&self) -> PersistentCounts {
        PersistentCounts {
            ok: self.ok.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            conns: self.conns.load(Relaxed),
            reused: self.reused.load(Relaxed),
            closed_before_reuse: self.closed_before_reuse.load(Relaxed),
            reset_before_reuse: self.reset_before_reuse.load(Relaxed),
            unsolicited: self.unsolicited.load(Relaxed),
            told_close: self.told_close.load(Relaxed),
            closed_under_request: self.closed_under_request.load(Relaxed),
        }
    }
}

/// Counters shared by all client threads.
#[derive(Default)]
pub struct Stats {
    pub keepalive: Persistent,
    pub idle: Persistent,
    pub slow: Persistent,
    pub upload: Persistent,
    pub download: Persistent,
    /// The downloads answered in full, by shape, indexed like [`Shape::ALL`].
    pub downloads: [AtomicU64; 3],
    pub ok_newconn: AtomicU64,
    /// Failed requests of all clients, indexed like [`Kind::ALL`].
    pub failed: [AtomicU64; 7],
    /// The `non200` failures by status: through an HTTP proxy, a 502 (the server closed under
    /// the request) and a 503 (no connection to the server) have different causes.
    pub statuses: Mutex<BTreeMap<u16, u64>>,
    /// The first [`MAX_RECORDED`] failures in full.
    pub failures: Mutex<Vec<Failure>>,
    /// The aimed mode's shots.
    pub shots: Mutex<Vec<Shot>>,
}

impl Stats {
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn requests(&self) -> u64 {
        [
            &self.keepalive,
            &self.idle,
            &self.slow,
            &self.upload,
            &self.download,
        ]
        .iter()
        .map(|p| p.ok.load(Relaxed))
        .sum::<u64>()
            + self.ok_newconn.load(Relaxed)
            + self.failed_total()
    }

    pub fn failed_of(&self, kind: Kind) -> u64 {
        self.failed[kind as usize].load(Relaxed)
    }
}

/// What every client thread shares.
struct Ctx {
    front: SocketAddr,
    t0: Instant,
    think: (Duration, Duration),
    stop: AtomicBool,
    stats: Arc<Stats>,
    /// Aimed mode: a generation number and the expected DRAIN start it announces.
    aim: Mutex<(u64, Option<Instant>)>,
}

impl Ctx {
    fn fail(&self, client: &str, at: Duration, kind: Kind, detail: String) {
        self.record(client, at, kind, false, detail);
    }

    fn record(
        &self,
        client: &str,
        at: Duration,
        kind: Kind,
        closed_under_request: bool,
        detail: String,
    ) {
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
                closed_under_request,
                detail,
            });
        }
    }

    /// Whether a complete response serves the request: a 200 carrying the `answer` the request
    /// asked for. A non-200 is also counted by status.
    fn judge(&self, r: &Response, answer: &Answer) -> Result<(), Failed> {
        if r.status != 200 {
            let mut statuses = self
                .stats
                .statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *statuses.entry(r.status).or_default() += 1;
            return Err((Kind::Non200, format!("status {}", r.status)));
        }
        match answer {
            Answer::Any => Ok(()),
            Answer::Exactly(want) if r.body != *want => Err((
                Kind::Wrong,
                format!(
                    "body {:?}, want {:?}",
                    String::from_utf8_lossy(&r.body),
                    String::from_utf8_lossy(want)
                ),
            )),
            Answer::Exactly(_) => Ok(()),
            Answer::Pattern(download) => download.check(r),
        }
    }

    /// The modelled think time: returns false if the load was stopped meanwhile. `Load::stop`
    /// unparks every thread after setting `stop`, so a thinker never delays the end of a run.
    fn think(&self, pause: Duration) -> bool {
        self.wait_until(Instant::now() + pause)
    }

    /// Aimed mode: waits (parked; `Load::aim` and `Load::stop` unpark) for an aim newer than
    /// generation `seen`. `None` once the load stops.
    fn wait_aim(&self, seen: u64) -> Option<(u64, Instant)> {
        loop {
            if self.stop.load(Relaxed) {
                return None;
            }
            if let (generation, Some(at)) = *self.aim.lock().unwrap_or_else(|p| p.into_inner()) {
                if generation != seen {
                    return Some((generation, at));
                }
            }
            std::thread::park();
        }
    }

    /// Waits until `until`; false if the load was stopped meanwhile.
    fn wait_until(&self, until: Instant) -> bool {
        loop {
            if self.stop.load(Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::park_timeout(until - now);
        }
    }
}

/// The running load; stop it with [`Load::stop`].
pub struct Load {
    ctx: Arc<Ctx>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the client threads against `front`; failure times are measured from `t0`.
    pub fn start(front: SocketAddr, cfg: LoadConfig, t0: Instant) -> Load {
        let ctx = Arc::new(Ctx {
            front,
            t0,
            think: cfg.think,
            stop: AtomicBool::new(false),
            stats: Arc::default(),
            aim: Mutex::new((0, None)),
        });
        let mut threads = Vec::new();
        for i in 0..cfg.keepalive {
            let ctx = ctx.clone();
            threads.push(std::thread::spawn(move || {
                busy_client(&format!("ka-{i}"), &ctx, &ctx.stats.keepalive, Call::hello)
            }));
        }
        for i in 0..cfg.slow {
            let ctx = ctx.clone();
            let mut rng = Rng::new(cfg.seed, SLOW_STREAMS + i as u64);
            threads.push(std::thread::spawn(move || {
                busy_client(&format!("sl-{i}"), &ctx, &ctx.stats.slow, || {
                    Call::sleep(&mut rng)
                })
            }));
        }
        for i in 0..cfg.upload {
            let ctx = ctx.clone();
            let mut rng = Rng::new(cfg.seed, UPLOAD_STREAMS + i as u64);
            threads.push(std::thread::spawn(move || {
                busy_client(&format!("up-{i}"), &ctx, &ctx.stats.upload, || {
                    Call::upload(&mut rng)
                })
            }));
        }
        for i in 0..cfg.download {
            let ctx = ctx.clone();
            let mut rng = Rng::new(cfg.seed, DOWNLOAD_STREAMS + i as u64);
            threads.push(std::thread::spawn(move || {
                busy_client(&format!("dl-{i}"), &ctx, &ctx.stats.download, || {
                    Call::download(&mut rng)
                })
            }));
        }
        for i in 0..cfg.newconn {
            let ctx = ctx.clone();
            threads.push(std::thread::spawn(move || {
                newconn_client(&format!("nc-{i}"), &ctx)
            }));
        }
        for i in 0..cfg.idle {
            let ctx = ctx.clone();
            let rng = Rng::new(cfg.seed, i as u64);
            let id = format!("id-{i}");
            threads.push(std::thread::spawn(move || match cfg.aim {
                None => idle_client(&id, &ctx, rng),
                Some(range) => aimed_client(&id, &ctx, rng, range),
            }));
        }
        Load { ctx, threads }
    }

    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// Aimed mode: tells the idle clients when the DRAIN they are to aim at is expected.
    pub fn aim(&self, drain_expected: Instant) {
        {
            let mut aim = self.ctx.aim.lock().unwrap_or_else(|p| p.into_inner());
            *aim = (aim.0 + 1, Some(drain_expected));
        }
        for t in &self.threads {
            t.thread().unpark();
        }
    }

    /// Stops the clients after their current request (each is bounded by [`REQUEST_TIMEOUT`]),
    /// wakes the thinking ones, and joins them all.
    pub fn stop(self) -> Arc<Stats> {
        self.ctx.stop.store(true, Relaxed);
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads {
            if t.join().is_err() {
                panic!("a load client thread panicked");
            }
        }
        self.ctx.stats.clone()
    }
}

/// A keep-alive connection between requests.
struct Held {
    stream: TcpStream,
    /// When its last response was read: the start of its idleness.
    idle_since: Instant,
}

/// The random streams of the slow, upload and download clients (the idle clients' are their
/// index), so that every client draws its own sequence from the run's seed.
const SLOW_STREAMS: u64 = 1 << 32;
const UPLOAD_STREAMS: u64 = 2 << 32;
const DOWNLOAD_STREAMS: u64 = 3 << 32;

/// One request: its bytes, and the answer its 200 must carry.
struct Call {
    request: Vec<u8>,
    /// How much of `request` is sent at once; the rest is an upload's body, sent at the pace of
    /// a slow uplink (see [`exchange`]).
    at_once: usize,
    answer: Answer,
    /// The length of its body (an upload's, de-chunked, or a download's), for the report.
    body_len: u64,
}

/// The body a request's 200 must carry.
enum Answer {
    /// Any body (`GET /`).
    Any,
    /// Exactly these bytes (`slept N ms`, `bytes=N`).
    Exactly(Vec<u8>),
    /// A download's pattern, in its framing.
    Pattern(Download),
}

/// What a download asked for, and how fast its client reads.
#[derive(Clone, Copy)]
struct Download {
    shape: Shape,
    /// The body's length: byte `i` of it is `i % 251`.
    len: u64,
    /// Read at the pace of a [`DOWNLINK`] downlink (see [`PACED_ONE_IN`]).
    paced: bool,
}

impl Download {
    /// Whether a complete 200 is this download: framed as its shape promises, `len` bytes long,
    /// every byte the pattern's.
    fn check(&self, r: &Response) -> Result<(), Failed> {
        let framing_ok = match self.shape {
            Shape::Sized | Shape::Blob => r.framing == Framing::Length(self.len),
            Shape::Chunked => r.framing == Framing::Chunked,
        };
        let wrong = |detail: String| Err((Kind::Wrong, format!("{}: {detail}", self.describe())));
        if !framing_ok {
            return wrong(format!("framed as {:?}", r.framing));
        }
        if r.body.len() as u64 != self.len {
            return wrong(format!("{} body bytes", r.body.len()));
        }
        match first_wrong_byte(&r.body) {
            Some(i) => wrong(format!(
                "byte {i} is {}, want {}",
                r.body[i],
                pattern(i as u64)
            )),
            None => Ok(()),
        }
    }

    /// "paced sized download of 123456 bytes", for failure details.
    fn describe(&self) -> String {
        let pace = if self.paced { "paced" } else { "fast" };
        format!(
            "{pace} {} download of {} bytes",
            self.shape.name(),
            self.len
        )
    }
}

/// Byte `i` of every download body (see `examples/slow_work.rs`): 251 is prime, so the pattern
/// does not line up with any power-of-two piece or chunk size, and a piece sent twice, lost or
/// out of order shows.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Where `body` first differs from the pattern. Compared a run of whole periods at a time (a
/// `memcmp`), so that checking every byte costs little beside receiving it.
fn first_wrong_byte(body: &[u8]) -> Option<usize> {
    static PERIODS: OnceLock<Vec<u8>> = OnceLock::new();
    let periods = PERIODS.get_or_init(|| (0..251 * 256).map(pattern).collect());
    let mut at = 0;
    for piece in body.chunks(periods.len()) {
        if piece != &periods[..piece.len()] {
            let off = piece.iter().zip(periods).position(|(a, b)| a != b);
            return off.map(|off| at + off);
        }
        at += piece.len();
    }
    None
}

impl Call {
    /// `GET /`, answered on the server's loop; any body.
    fn hello() -> Call {
        Call {
            request: REQ_KEEPALIVE.to_vec(),
            at_once: REQ_KEEPALIVE.len(),
            answer: Answer::Any,
            body_len: 0,
        }
    }

    /// `GET /` with `Connection: close`, for a new-connection client; any body.
    fn hello_close() -> Call {
        Call {
            request: REQ_CLOSE.to_vec(),
            at_once: REQ_CLOSE.len(),
            answer: Answer::Any,
            body_len: 0,
        }
    }

    /// `GET /sleep?ms=N` with N drawn from [`SLOW_MS`]; the answer is `slept N ms`.
    fn sleep(rng: &mut Rng) -> Call {
        let ms = rng.between_u64(SLOW_MS.0, SLOW_MS.1);
        let request = format!("GET /sleep?ms={ms} HTTP/1.1\r\nHost: lameduck\r\n\r\n").into_bytes();
        Call {
            at_once: request.len(),
            request,
            answer: Answer::Exactly(format!("slept {ms} ms\n").into_bytes()),
            body_len: 0,
        }
    }

    /// `POST /upload` with a body of [`UPLOAD_BYTES`], chunked one time in [`CHUNKED_ONE_IN`];
    /// the answer is `bytes=N`. The head is sent at once, the body at the uplink's pace.
    fn upload(rng: &mut Rng) -> Call {
        let len = rng.between_u64(UPLOAD_BYTES.0 as u64, UPLOAD_BYTES.1 as u64) as usize;
        let mut request = b"POST /upload HTTP/1.1\r\nHost: lameduck\r\n".to_vec();
        let at_once;
        if rng.next() % CHUNKED_ONE_IN == 0 {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            at_once = request.len();
            let mut left = len;
            while left > 0 {
                let chunk = (rng.between_u64(CHUNK_BYTES.0 as u64, CHUNK_BYTES.1 as u64) as usize)
                    .min(left);
                let _ = write!(request, "{chunk:x}\r\n");
                request.resize(request.len() + chunk, b'u');
                request.extend_from_slice(b"\r\n");
                left -= chunk;
            }
            request.extend_from_slice(b"0\r\n\r\n");
        } else {
            let _ = write!(request, "Content-Length: {len}\r\n\r\n");
            at_once = request.len();
            request.resize(request.len() + len, b'u');
        }
        Call {
            request,
            at_once,
            answer: Answer::Exactly(format!("bytes={len}\n").into_bytes()),
            body_len: len as u64,
        }
    }

    /// A download of a [`Shape`] drawn at random, paced one time in [`PACED_ONE_IN`]: N bytes
    /// from [`PACED_BYTES`] or [`DOWNLOAD_BYTES`], or the 8 MiB blob.
    fn download(rng: &mut Rng) -> Call {
        let shape = Shape::ALL[(rng.next() % Shape::ALL.len() as u64) as usize];
        let paced = rng.next() % PACED_ONE_IN == 0;
        let (lo, hi) = if paced { PACED_BYTES } else { DOWNLOAD_BYTES };
        let n = rng.between_u64(lo, hi);
        let (target, len) = match shape {
            Shape::Sized => (format!("/download?bytes={n}"), n),
            Shape::Chunked => (format!("/download?bytes={n}&chunked=1"), n),
            Shape::Blob => ("/blob".to_string(), BLOB_BYTES),
        };
        let request = format!("GET {target} HTTP/1.1\r\nHost: lameduck\r\n\r\n").into_bytes();
        Call {
            at_once: request.len(),
            request,
            answer: Answer::Pattern(Download { shape, len, paced }),
            body_len: len,
        }
    }
}

/// A busy keep-alive client: one connection reused back to back until the server ends it,
/// each request made by `next`.
fn busy_client(id: &str, ctx: &Ctx, stats: &Persistent, mut next: impl FnMut() -> Call) {
    let mut conn = None;
    while !ctx.stop.load(Relaxed) {
        persistent_request(id, ctx, stats, &mut conn, &next());
    }
}

/// An idle keep-alive client: think, then one request on the held connection, and again.
fn idle_client(id: &str, ctx: &Ctx, mut rng: Rng) {
    let mut conn = None;
    while !ctx.stop.load(Relaxed) {
        persistent_request(id, ctx, &ctx.stats.idle, &mut conn, &Call::hello());
        if !ctx.think(rng.between(ctx.think.0, ctx.think.1)) {
            break;
        }
    }
}

/// Aimed mode (see the module doc): hold an idle connection, fire at the expected DRAIN start
/// plus a random offset, record the shot, reconnect, wait for the next SIGTERM.
fn aimed_client(id: &str, ctx: &Ctx, mut rng: Rng, (lo, hi): (i64, i64)) {
    let mut conn = None;
    let mut seen = 0;
    persistent_request(id, ctx, &ctx.stats.idle, &mut conn, &Call::hello());
    while let Some((generation, drain_expected)) = ctx.wait_aim(seen) {
        seen = generation;
        let offset = rng.between_i64(lo, hi);
        let at = if offset >= 0 {
            drain_expected + Duration::from_micros(offset.unsigned_abs())
        } else {
            drain_expected
                .checked_sub(Duration::from_micros(offset.unsigned_abs()))
                .unwrap_or(drain_expected)
        };
        if !ctx.wait_until(at) {
            break;
        }
        let now = Instant::now();
        let offset_us = match now.checked_duration_since(drain_expected) {
            Some(after) => after.as_micros() as i64,
            None => -((drain_expected - now).as_micros() as i64),
        };
        let (outcome, closed_after_write) =
            persistent_request_timed(id, ctx, &ctx.stats.idle, &mut conn, &Call::hello());
        ctx.stats
            .shots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Shot {
                restart: generation,
                offset_us,
                outcome,
                closed_after_write_us: closed_after_write.map(|d| d.as_micros() as u64),
            });
        // The old server is in maintenance by now, so this lands on the next one to be replaced.
        if conn.is_none() {
            persistent_request(id, ctx, &ctx.stats.idle, &mut conn, &Call::hello());
        }
    }
}

/// One request of a keep-alive client: the idle check on the held connection (if any), a new
/// connection if there is none left, then the committed exchange. See the module doc for the rule.
fn persistent_request(
    id: &str,
    ctx: &Ctx,
    stats: &Persistent,
    conn: &mut Option<Held>,
    call: &Call,
) -> Outcome {
    persistent_request_timed(id, ctx, stats, conn, call).0
}

/// [`persistent_request`], also returning, for a request closed under it, how long after its
/// write the close (EOF or reset) arrived.
fn persistent_request_timed(
    id: &str,
    ctx: &Ctx,
    stats: &Persistent,
    conn: &mut Option<Held>,
    call: &Call,
) -> (Outcome, Option<Duration>) {
    let mut reused = None;
    let mut outcome = Outcome::Fresh;
    if let Some(held) = conn.take() {
        let checked = Instant::now();
        match idle_check(&held.stream) {
            Idle::Open => reused = Some((held, checked)),
            Idle::Closed => {
                outcome = Outcome::ClosedBeforeReuse;
                stats.closed_before_reuse.fetch_add(1, Relaxed);
            }
            Idle::Reset => {
                outcome = Outcome::BadBeforeReuse;
                stats.reset_before_reuse.fetch_add(1, Relaxed);
            }
            Idle::Unsolicited => {
                outcome = Outcome::BadBeforeReuse;
                stats.unsolicited.fetch_add(1, Relaxed);
            }
        }
    }
    let at = ctx.t0.elapsed();
    // `evidence` describes a reused connection: how long it was idle, how long since the check.
    let (mut s, evidence) = match reused {
        Some((held, checked)) => {
            stats.reused.fetch_add(1, Relaxed);
            let evidence = format!(
                "reused after {:.3}s idle, written {}us after the idle check",
                checked.duration_since(held.idle_since).as_secs_f64(),
                checked.elapsed().as_micros()
            );
            (held.stream, Some(evidence))
        }
        None => match connect(ctx.front) {
            Ok(s) => {
                stats.conns.fetch_add(1, Relaxed);
                (s, None)
            }
            Err(e) => {
                ctx.fail(id, at, Kind::of(&e), format!("connect: {e}"));
                return (outcome, None);
            }
        },
    };
    let is_reuse = evidence.is_some();
    // From here on the request is committed: anything but a complete 200 with the right answer
    // is a failure.
    let wrote = Instant::now();
    let result = exchange(&mut s, call);
    let ended = wrote.elapsed();
    match result {
        Ok(r) => {
            let served = ctx.judge(&r, &call.answer);
            match &served {
                Ok(()) => {
                    stats.ok.fetch_add(1, Relaxed);
                    stats.bytes.fetch_add(call.body_len, Relaxed);
                    if let Answer::Pattern(download) = &call.answer {
                        ctx.stats.downloads[download.shape as usize].fetch_add(1, Relaxed);
                    }
                }
                Err((kind, detail)) => ctx.fail(id, at, *kind, detail.clone()),
            }
            if r.close {
                stats.told_close.fetch_add(1, Relaxed);
            } else {
                *conn = Some(Held {
                    stream: s,
                    idle_since: Instant::now(),
                });
            }
            let outcome = match (is_reuse, served.is_ok(), r.close) {
                (false, _, _) => outcome,
                (true, false, _) => Outcome::ReusedFailed,
                (true, true, true) => Outcome::ReusedToldClose,
                (true, true, false) => Outcome::ReusedKept,
            };
            (outcome, None)
        }
        Err((kind, detail)) => match evidence {
            Some(evidence) if kind.is_close() => {
                stats.closed_under_request.fetch_add(1, Relaxed);
                ctx.record(
                    id,
                    at,
                    kind,
                    true,
                    format!(
                        "closed under a written request ({evidence}; closed {}us after the write): {detail}",
                        ended.as_micros()
                    ),
                );
                (Outcome::ClosedUnderRequest, Some(ended))
            }
            Some(evidence) => {
                ctx.fail(id, at, kind, format!("{detail} ({evidence})"));
                (Outcome::ReusedFailed, None)
            }
            None => {
                ctx.fail(id, at, kind, detail);
                (outcome, None)
            }
        },
    }
}

/// A new-connection client: connect, one request with `Connection: close`, read the response, repeat.
fn newconn_client(id: &str, ctx: &Ctx) {
    let call = Call::hello_close();
    while !ctx.stop.load(Relaxed) {
        let at = ctx.t0.elapsed();
        let mut s = match connect(ctx.front) {
            Ok(s) => s,
            Err(e) => {
                ctx.fail(id, at, Kind::of(&e), format!("connect: {e}"));
                continue;
            }
        };
        match exchange(&mut s, &call).and_then(|r| ctx.judge(&r, &call.answer)) {
            Ok(()) => {
                ctx.stats.ok_newconn.fetch_add(1, Relaxed);
            }
            Err((kind, detail)) => ctx.fail(id, at, kind, detail),
        }
    }
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

/// Looks at an idle connection without blocking and without consuming anything: a non-blocking
/// `recv(MSG_PEEK)` of one byte (see the module doc for what each answer means).
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

/// A small seeded generator (splitmix64) for think times, sleeps and body sizes: no dependency,
/// and a run can be replayed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`, to the microsecond.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.next() % (span + 1))
    }

    /// Uniform in `[lo, hi]`.
    fn between_u64(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }

    /// Uniform in `[lo, hi]`.
    fn between_i64(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.saturating_sub(lo).max(0).unsigned_abs();
        lo + (self.next() % (span + 1)) as i64
    }
}

/// The parts of a response the clients act on.
struct Response {
    status: u16,
    /// The server will close the connection after this response.
    close: bool,
    /// How its body was delimited.
    framing: Framing,
    /// The body, de-chunked.
    body: Vec<u8>,
}

/// How a response's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: chunks up to the last, zero-size chunk (and trailers).
    Chunked,
    /// Neither, with `Connection: close`: everything up to EOF.
    UntilClose,
}

type Failed = (Kind, String);

/// Writes one request and reads exactly one complete response: the first `at_once` bytes in one
/// write, the rest (an upload's body) in [`UPLOAD_PIECE`]s, one every [`UPLOAD_PIECE_EVERY`];
/// the response as fast as possible, or a paced download's at the pace of its downlink.
///
/// A peer may answer before it has read the whole request and close (HAProxy's 503 when it has
/// no server, a 413): the write then fails, but the answer may be waiting, so it is read before
/// the write error is reported, as an HTTP client does.
fn exchange(s: &mut TcpStream, call: &Call) -> Result<Response, Failed> {
    let (head, body) = call.request.split_at(call.at_once.min(call.request.len()));
    let mut written = s.write_all(head);
    for piece in body.chunks(UPLOAD_PIECE) {
        if written.is_err() {
            break;
        }
        // The modelled uplink, not a synchronisation: the client has no faster link.
        std::thread::sleep(UPLOAD_PIECE_EVERY);
        written = s.write_all(piece);
    }
    let paced = matches!(call.answer, Answer::Pattern(Download { paced: true, .. }));
    let read = read_response(Downlink::new(s, paced));
    match written {
        Ok(()) => read,
        Err(e) => read.map_err(|_| (Kind::of(&e), format!("write: {e}"))),
    }
}

/// The client's side of the connection, as the response reader sees it: the socket, read at
/// the pace of a [`DOWNLINK`] downlink for a paced download, with a count of the bytes read so
/// far (for the failure details).
struct Downlink<'a> {
    s: &'a mut TcpStream,
    /// For a paced download: when its first read started.
    paced_since: Option<Instant>,
    paced: bool,
    read: u64,
}

impl<'a> Downlink<'a> {
    fn new(s: &'a mut TcpStream, paced: bool) -> BufReader<Downlink<'a>> {
        let downlink = Downlink {
            s,
            paced_since: None,
            paced,
            read: 0,
        };
        BufReader::with_capacity(DOWNLOAD_PIECE, downlink)
    }
}

impl Read for Downlink<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = buf;
        if self.paced {
            // The modelled downlink, not a synchronisation: the client has no faster link, so
            // the server's writes wait for it (which is what keeps a download in flight). Each
            // read waits until the link would have carried everything read before it.
            let since = *self.paced_since.get_or_insert_with(Instant::now);
            let due = since + Duration::from_micros(self.read * 1_000_000 / DOWNLINK);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let max = buf.len().min(DOWNLOAD_PIECE);
            buf = &mut buf[..max];
        }
        let n = self.s.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads one response: the head up to the blank line, then the body as the head frames it
/// (`Content-Length` bytes, chunks up to the last one, or, with neither and `Connection:
/// close`, everything up to EOF). A body cut short, a chunked one without its last chunk
/// included, is an `eof` (or whatever error ended it), never a shorter answer.
fn read_response(mut wire: BufReader<Downlink<'_>>) -> Result<Response, Failed> {
    let mut head = Vec::with_capacity(512);
    while !head.ends_with(b"\r\n\r\n") {
        if line(&mut wire, &mut head)? == 0 {
            return Err(eof(&wire));
        }
        if head.len() > MAX_LINE {
            return Err(garbled(&head));
        }
    }
    let (status, close, framing) = parse_head(&head[..head.len() - 4])?;
    let mut body = Vec::new();
    match framing {
        Framing::Length(len) => body_bytes(&mut wire, len, &mut body)?,
        Framing::Chunked => loop {
            let mut size_line = Vec::new();
            if line(&mut wire, &mut size_line)? == 0 {
                return Err(eof(&wire));
            }
            let size = chunk_size(&size_line).ok_or_else(|| garbled(&size_line))?;
            if size == 0 {
                // The last chunk: trailer fields (none expected, any accepted), then a blank line.
                let mut trailer = Vec::new();
                while trailer != b"\r\n" {
                    trailer.clear();
                    if line(&mut wire, &mut trailer)? == 0 {
                        return Err(eof(&wire));
                    }
                }
                break;
            }
            body_bytes(&mut wire, size, &mut body)?;
            let mut crlf = Vec::new();
            if line(&mut wire, &mut crlf)? == 0 {
                return Err(eof(&wire));
            }
            if crlf != b"\r\n" {
                return Err(garbled(&crlf));
            }
        },
        Framing::UntilClose => {
            wire.read_to_end(&mut body)
                .map_err(|e| read_error(&wire, &e))?;
        }
    }
    Ok(Response {
        status,
        close,
        framing,
        body,
    })
}

/// Appends one line, up to and including its LF, to `out`; returns its length (0: EOF first).
fn line(wire: &mut BufReader<Downlink<'_>>, out: &mut Vec<u8>) -> Result<usize, Failed> {
    let mut bounded = wire.by_ref().take(MAX_LINE as u64);
    match bounded.read_until(b'\n', out) {
        Ok(n) => Ok(n),
        Err(e) => Err(read_error(wire, &e)),
    }
}

/// Appends exactly `len` body bytes to `out`; EOF first is a failure.
fn body_bytes(
    wire: &mut BufReader<Downlink<'_>>,
    len: u64,
    out: &mut Vec<u8>,
) -> Result<(), Failed> {
    let mut left = len;
    while left > 0 {
        let available = match wire.fill_buf() {
            Ok([]) => return Err(eof(wire)),
            Ok(available) => available,
            Err(e) => return Err(read_error(wire, &e)),
        };
        let n = available.len().min(left.try_into().unwrap_or(usize::MAX));
        out.extend_from_slice(&available[..n]);
        wire.consume(n);
        left -= n as u64;
    }
    Ok(())
}

/// The size of a chunk from its size line (`1a2b\r\n`, extensions allowed); `None` if garbled.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line.strip_suffix(b"\r\n")?).ok()?;
    let hex = text.split(';').next()?.trim();
    u64::from_str_radix(hex, 16).ok()
}

fn eof(wire: &BufReader<Downlink<'_>>) -> Failed {
    let read = wire.get_ref().read;
    (Kind::Eof, format!("EOF after {read} response bytes"))
}

fn read_error(wire: &BufReader<Downlink<'_>>, e: &io::Error) -> Failed {
    let read = wire.get_ref().read;
    (
        Kind::of(e),
        format!("read after {read} response bytes: {e}"),
    )
}

fn garbled(bytes: &[u8]) -> Failed {
    let shown = &bytes[..bytes.len().min(200)];
    (
        Kind::Other,
        format!("garbled response: {:?}", String::from_utf8_lossy(shown)),
    )
}

/// Parses a response head: its status, whether the connection closes after it, and how its
/// body is framed.
fn parse_head(head: &[u8]) -> Result<(u16, bool, Framing), Failed> {
    let text = std::str::from_utf8(head).map_err(|_| garbled(head))?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next().unwrap_or("").splitn(3, ' ');
    let version = status_line.next().unwrap_or("");
    let status: u16 = status_line
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| garbled(head))?;
    if !version.starts_with("HTTP/1.") {
        return Err(garbled(head));
    }
    let mut len = None;
    let mut chunked = false;
    let mut connection = String::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| garbled(head))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            len = Some(value.parse::<u64>().map_err(|_| garbled(head))?);
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` alone is what lameduck (and HAProxy passing it on) may send.
            if !value.eq_ignore_ascii_case("chunked") {
                return Err((
                    Kind::Other,
                    format!("unexpected Transfer-Encoding: {value}"),
                ));
            }
            chunked = true;
        }
    }
    let close = if version == "HTTP/1.0" {
        !connection.contains("keep-alive")
    } else {
        connection.split(',').any(|t| t.trim() == "close")
    };
    let framing = match (chunked, len) {
        (true, Some(_)) => {
            return Err((
                Kind::Other,
                "both Transfer-Encoding and Content-Length".to_string(),
            ));
        }
        (true, None) => Framing::Chunked,
        (false, Some(len)) => Framing::Length(len),
        (false, None) if close => Framing::UntilClose,
        (false, None) => {
            return Err((
                Kind::Other,
                "keep-alive response without Content-Length or chunked framing".to_string(),
            ));
        }
    };
    Ok((status, close, framing))
}
