//! One client connection: its state machine, its socket I/O, and the request/response cycle.
//!
//! # Where the bytes live
//!
//! Every byte a client can make the server hold is bounded, and most are not held by us at all:
//!
//! - **Whole requests stay in the kernel until they are answered.** A connection *peeks* at its
//!   socket (`recv(MSG_PEEK)`) into the input buffer the event loop shares between all
//!   connections, answers every complete request it sees, and only then *consumes* the bytes of
//!   the requests it answered (`recv(MSG_TRUNC)`, which discards without copying). Pipelined
//!   requests we will not answer yet stay in the socket's receive buffer, where the kernel bounds
//!   them and TCP flow control makes the client wait: a client that pipelines thousands of
//!   requests costs us no input buffering.
//! - **An unfinished head is the exception**: it is copied into the connection's `carry` (at most
//!   `--max-header-bytes`), because leaving it in the kernel can shut the TCP window for good
//!   (`Connection::hold` says why).
//! - **Output is queued only up to [`OUTPUT_HIGH_WATER`].** Responses are encoded into the output
//!   buffer the event loop shares, written with one `write`, and only what the socket does not
//!   take is copied into the connection's own `unsent` queue. A connection with that much queued
//!   starts no new request until the client has read some of it.
//! - **One budget for all of it.** While the bytes held for all connections together are at
//!   `--buffer-budget` ([`Context::budget_full`]), no connection starts a new request.
//!
//! # The request/response cycle
//!
//! A request goes to the handler once it is complete, body included (a body that arrived with
//! its head is lent in place; one still arriving is collected in an `Upload`). The handler
//! answers at once, or takes the reply and answers later from another thread: the connection
//! then waits (`Awaiting`), reading nothing more, until the server hands it the answer
//! ([`Connection::on_reply`]). Responses therefore leave in the order of their requests.
//!
//! In steady state `carry` and `unsent` are empty, which is why an idle connection costs about
//! 160 bytes (measured with 10,000 open: 161 B each, `benches/compare.sh`), and why answering a
//! request allocates nothing.

use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpStream;

use crate::codec::{
    self, BodyDecoder, BodyFraming, Encoder, HeadLimits, Parse, Persistence, ProtocolError,
    Request, Response, Version,
};
use crate::config::Config;
use crate::handler::{Call, Handler, Inbox, ReplyId, Shared};

/// How long a half-closed connection keeps reading (and discarding) before it is closed.
///
/// Why linger at all: `close()` on a socket with unread input makes the kernel send RST instead
/// of FIN, and an RST can overtake our last response in the client's receive queue and destroy
/// it. So we shut down our write side (FIN after the response), keep reading until the client
/// closes too, and only then close. Two seconds is plenty for a client that has seen our FIN.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Output a connection may have queued before it stops starting new requests. A client that
/// pipelines without reading its responses cannot make us queue more than this plus one
/// response: the rest of its requests wait, unread, in the kernel.
///
/// Why 4 KiB: it holds a pipelined batch of about thirty small responses, so a client that does
/// read is not slowed down (the socket usually takes the batch whole and nothing is queued at
/// all), while ten thousand clients that don't read cost at most 40 MiB. Go's `net/http` queues
/// 4 KiB per connection too (its `bufio.Writer`).
pub const OUTPUT_HIGH_WATER: usize = 4 * 1024;

/// During DRAIN, a connection that has not sent a byte gets this long (from its accept) to start
/// its request before it is closed. It covers clients taken from the accept backlog whose request
/// is still in flight, without waiting on browsers' speculative pre-connections.
pub const NEW_CONNECTION_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The most a lingering connection discards per call; any size works, this just bounds one call.
const LINGER_DISCARD_BYTES: usize = 64 * 1024;

/// What a connection needs from its byte stream: a mio `TcpStream` in the server; an in-memory
/// stream in the fuzzer and the allocation test, which drive the whole state machine without a
/// socket.
///
/// Input is looked at before it is taken (see the module docs): [`Transport::peek`] shows what
/// has arrived without removing it, [`Transport::consume`] removes what has been answered.
pub trait Transport: Write {
    /// Copies the start of the received bytes into `buf`, leaving them in place. `Ok(0)` means
    /// the peer has closed its side and nothing is left; `WouldBlock` that nothing has arrived.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Removes up to `n` received bytes without copying them anywhere; returns how many were
    /// removed (`Ok(0)`: the peer has closed its side and nothing is left).
    fn consume(&mut self, n: usize) -> io::Result<usize>;

    /// Sends FIN: no more bytes from us, but keep reading.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::peek(self, buf)
    }

    fn consume(&mut self, n: usize) -> io::Result<usize> {
        crate::sys::discard(self.as_raw_fd(), n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// Connection states, after Go's `net/http` `ConnState`. Legal transitions:
///
/// ```text
///   New ──first byte──▶ Active ◀──next byte── Idle
///    │                  │  │  └──response flushed, keep-alive──▶ Idle
///    │                  │  └──last response queued (close, error, timeout)──▶ Closing
///    │                  └──peer reset──▶ (removed)
///    └──drain / timeout──▶ Lingering ◀──flushed── Closing        Idle ──drain / idle timeout──▶ Lingering
///                          Lingering ──peer EOF / linger timeout──▶ (removed)
/// ```
///
/// Empty lines between requests (a stray CRLF, RFC 9112 §2.2) are not a "first byte": they are
/// consumed and ignored, and the connection stays New or Idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Accepted; no byte of a request yet.
    New,
    /// A request is being read or answered, or its response is still being written.
    Active,
    /// Keep-alive: between requests, nothing buffered, nothing to write.
    Idle,
    /// The last response is queued; flush it, then half-close.
    Closing,
    /// Write side shut down; reading and discarding until the peer closes (see [`LINGER_TIMEOUT`]).
    Lingering,
}

/// The server's lifecycle phase, as one connection sees it: one value, so that readiness,
/// keep-alive and the drain rule can never disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Normal service: readiness 200, keep-alive as the client asks.
    Serving,
    /// SIGTERM has arrived (ANNOUNCE): readiness 503; every response says `Connection: close`.
    LameDuck,
    /// DRAIN: as `LameDuck`, and idle connections are closed once they have been idle for
    /// `idle_grace` (counted from `since`, the start of the drain, at the earliest; see
    /// [`Connection::on_tick`]). The grace is zero after the lame-duck delay or SIGINT, and short
    /// when the listening socket lives on elsewhere (an in-place upgrade, or a SIGTERM without
    /// delay on systemd's socket): busy keep-alive clients are about to send their next request.
    Draining {
        since: Instant,
        idle_grace: Duration,
    },
}

impl Phase {
    /// Whether the readiness path answers 200.
    pub fn ready(self) -> bool {
        self == Phase::Serving
    }

    /// Whether a response written now may leave the connection open. Decided when the response
    /// is written, not when its request arrived: a request whose head came before SIGTERM and
    /// whose body came after is answered with `Connection: close` like any other.
    pub fn keep_alive(self) -> bool {
        self == Phase::Serving
    }
}

/// What the event loop must do with a connection after driving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Open,
    Close,
}

/// Buffers shared by every connection of one event loop.
pub struct Scratch {
    input: Box<[u8]>,
    output: Encoder,
}

impl Scratch {
    /// `input_len` must be larger than the head limit so a too-large head is detected, not stuck.
    pub fn new(input_len: usize) -> Self {
        Scratch {
            input: vec![0; input_len].into_boxed_slice(),
            output: Encoder::with_capacity(OUTPUT_HIGH_WATER),
        }
    }
}

/// What a connection needs to know about the server while it answers requests.
pub struct Context<'a, H> {
    pub now: Instant,
    /// The cached `Date` header value.
    pub date: &'a [u8],
    /// The lifecycle phase.
    pub phase: Phase,
    /// True while the bytes held for all connections together ([`Connection::buffered`]) are at
    /// `--buffer-budget`: no connection starts a new request until clients have read some of
    /// their output (or gone).
    pub budget_full: bool,
    pub limits: &'a Limits,
    pub handler: &'a mut H,
    /// Where replies to requests answered later arrive (see [`crate::handler`]).
    pub inbox: &'a Arc<Inbox>,
    /// The loop's counter of replies handed out, to tell each apart.
    pub serial: &'a mut u64,
    /// False while `--max-pending` replies wait: one more is answered 503 at once.
    pub pending_room: bool,
    /// This connection's slab index: replies name it.
    pub index: usize,
}

/// Per-connection limits, taken from the `Config` once.
#[derive(Clone, Debug)]
pub struct Limits {
    pub head: HeadLimits,
    pub max_body: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub handler_timeout: Duration,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Self {
        Limits {
            head: HeadLimits {
                max_head_bytes: config.max_header_bytes,
                max_target_bytes: config.max_uri_bytes,
            },
            max_body: config.max_body,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            handler_timeout: config.handler_timeout,
        }
    }
}

/// A request whose body is still arriving: its head, copied (the shared input buffer moves on),
/// and the body so far, de-chunked. Both count against the budget.
#[derive(Debug)]
struct Upload {
    head: Vec<u8>,
    body: Vec<u8>,
    decoder: BodyDecoder,
}

/// A request whose handler took the reply: what its answer needs when it comes.
#[derive(Debug)]
struct Awaiting {
    serial: u64,
    shared: Arc<Shared>,
    /// When the handler took the reply (for `--handler-timeout`).
    since: Instant,
    head_only: bool,
    /// The client's side of persistence (its version and `Connection` header); the server's is
    /// decided when the answer is written.
    keep_alive: bool,
    version: Version,
}

/// Why [`Connection::process`] stopped answering requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Every complete request in the input is answered; the rest (if any) is an unfinished
    /// head or body: wait for more bytes.
    NeedInput,
    /// The output queue reached [`OUTPUT_HIGH_WATER`]: wait until the client reads.
    OutputFull,
    /// The server-wide budget is spent: wait until it has room (the server drives us again).
    Budget,
    /// The last response is queued (the state is `Closing`): nothing more is read.
    Closed,
    /// The handler will answer later: later requests wait their turn (in the kernel).
    Awaiting,
}

/// One client connection.
pub struct Connection<S = TcpStream> {
    stream: S,
    state: State,
    /// The start of a request head whose rest has not arrived, taken out of the kernel (see
    /// [`Connection::hold`]). At most `--max-header-bytes`.
    carry: Vec<u8>,
    /// Encoded output the socket has not taken yet, in order.
    unsent: Vec<u8>,
    /// The current request, while its body arrives.
    upload: Option<Box<Upload>>,
    /// The current request, while its handler works on it elsewhere.
    awaiting: Option<Box<Awaiting>>,
    /// When the connection was accepted (drain closes long-silent new connections).
    accepted: Instant,
    /// When the current wait on the client began: accept, the first byte of the current head,
    /// the last body bytes, the start of idleness or of lingering. See [`Connection::deadline`].
    since: Instant,
    /// When the client last took some of our output (while `unsent` is not empty).
    write_since: Instant,
    /// The interest currently registered with the poller.
    registered: Interest,
    /// The client has sent FIN (a readiness event said so): what the kernel holds is all there
    /// will ever be. The bytes before the FIN may still be unanswered.
    fin: bool,
    /// No more input will ever be of use: the peer closed and everything before its FIN has
    /// been consumed (or can never form a request).
    peer_closed: bool,
    /// The unfinished head in `carry` is a HEAD request (a 408 to it carries no content).
    partial_is_head: bool,
    /// A request is waiting for the server-wide budget; the server drives us again when it has
    /// room (no readiness event would).
    waiting_for_budget: bool,
    /// Responses written on this connection.
    served: u64,
}

impl<S: Transport> Connection<S> {
    /// A freshly accepted connection, registered for `READABLE` by the caller.
    pub fn new(stream: S, now: Instant) -> Self {
        Connection {
            stream,
            state: State::New,
            carry: Vec::new(),
            unsent: Vec::new(),
            upload: None,
            awaiting: None,
            accepted: now,
            since: now,
            write_since: now,
            registered: Interest::READABLE,
            fin: false,
            peer_closed: false,
            partial_is_head: false,
            waiting_for_budget: false,
            served: 0,
        }
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn served(&self) -> u64 {
        self.served
    }

    /// Bytes this connection holds in user space on behalf of its client: the output it has
    /// queued and an unfinished head. (Whole requests wait in the kernel; see the module docs.)
    /// The server adds these up into its budget.
    pub fn buffered(&self) -> usize {
        // An upload's body grows by doubling: count what it has allocated, not what it holds.
        let upload = (self.upload.as_ref()).map_or(0, |u| u.head.capacity() + u.body.capacity());
        self.unsent.len() + self.carry.len() + upload
    }

    /// Whether a handler has taken this connection's reply and not answered yet.
    pub fn awaiting(&self) -> bool {
        self.awaiting.is_some()
    }

    /// When the current wait times out, derived from the state in this one place:
    ///
    /// - output the client is not taking: `--idle-timeout` from its last progress (a client
    ///   pausing to process a burst of pipelined responses is not a slowloris);
    /// - `New` / `Active`: `--header-timeout` from the head's first byte (or from the accept, or
    ///   from the last body bytes): the slowloris defence;
    /// - `Idle`: `--idle-timeout` from the last response;
    /// - `Lingering`: [`LINGER_TIMEOUT`] from the half-close;
    /// - and while a handler owes an answer: `--handler-timeout` from when it took the reply, at
    ///   the latest.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        let write = self.write_since + limits.idle_timeout;
        if let Some(awaiting) = &self.awaiting {
            let handler = awaiting.since + limits.handler_timeout;
            return if self.unsent.is_empty() {
                handler
            } else {
                handler.min(write)
            };
        }
        match self.state {
            State::Lingering => self.since + LINGER_TIMEOUT,
            _ if !self.unsent.is_empty() => write,
            State::New | State::Active => self.since + limits.header_timeout,
            State::Idle | State::Closing => self.since + limits.idle_timeout,
        }
    }

    /// The interest this connection needs, derived from its state in this one place: read while
    /// a request may come; also write while output is queued; only read while lingering.
    pub fn interest(&self) -> Interest {
        match self.state {
            State::Lingering => Interest::READABLE,
            _ if !self.unsent.is_empty() => Interest::READABLE | Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }

    /// Records what is registered now; returns true if it differs from what was.
    pub fn set_registered(&mut self, interest: Interest) -> bool {
        let changed = self.registered != interest;
        self.registered = interest;
        changed
    }

    /// Drives the connection after a readiness event (or a state change that may unblock it):
    /// flushes queued output, reads, answers every complete request, writes the answers.
    /// `read_closed` is the event's hint that the peer has sent FIN.
    pub fn on_ready<H>(
        &mut self,
        scratch: &mut Scratch,
        ctx: &mut Context<'_, H>,
        read_closed: bool,
    ) -> Verdict
    where
        H: Handler,
    {
        self.fin |= read_closed;
        match self.drive(scratch, ctx) {
            Ok(()) => self.settle(ctx),
            // Resets, broken pipes and the like end this connection only. A client that goes
            // away is not an error worth a log line.
            Err(_) => Verdict::Close,
        }
    }

    /// Called by the server's periodic sweep; returns `None` when nothing was due. This is the
    /// one place that decides what time and the lifecycle do to a connection:
    ///
    /// - past its [`deadline`](Connection::deadline): the timeout (408, or a quiet close);
    /// - waiting for the output budget, which has room again: carry on;
    /// - while draining, an idle connection, or a new one silent for longer than
    ///   [`NEW_CONNECTION_DRAIN_GRACE`], is closed gently. It is read first: a request that
    ///   arrived since the last poll is already in the receive buffer, and a half-close would
    ///   discard it. Driving the connection answers it (with `Connection: close`); only a
    ///   connection that is still silent is closed. Work in flight is waited for.
    pub fn on_tick<H>(&mut self, scratch: &mut Scratch, ctx: &mut Context<'_, H>) -> Option<Verdict>
    where
        H: Handler,
    {
        if ctx.now >= self.deadline(ctx.limits) {
            return Some(self.on_timeout(scratch, ctx));
        }
        let Phase::Draining { since, idle_grace } = ctx.phase else {
            return self.resume_if_budget_has_room(scratch, ctx);
        };
        let silent = match self.state {
            State::Idle => ctx.now >= self.since.max(since) + idle_grace,
            State::New => {
                ctx.now.saturating_duration_since(self.accepted) >= NEW_CONNECTION_DRAIN_GRACE
            }
            _ => false,
        };
        if silent {
            return Some(match self.on_ready(scratch, ctx, false) {
                // (A request held back by a spent budget is work in flight, not silence.)
                Verdict::Open
                    if matches!(self.state, State::Idle | State::New)
                        && !self.waiting_for_budget =>
                {
                    self.half_close(ctx.now)
                }
                verdict => verdict,
            });
        }
        self.resume_if_budget_has_room(scratch, ctx)
    }

    /// Carries on with a request that waited for the server-wide budget, if it has room now.
    fn resume_if_budget_has_room<H>(
        &mut self,
        scratch: &mut Scratch,
        ctx: &mut Context<'_, H>,
    ) -> Option<Verdict>
    where
        H: Handler,
    {
        (self.waiting_for_budget && !ctx.budget_full).then(|| self.on_ready(scratch, ctx, false))
    }

    fn drive<H>(&mut self, scratch: &mut Scratch, ctx: &mut Context<'_, H>) -> io::Result<()>
    where
        H: Handler,
    {
        if self.state == State::Lingering {
            return self.discard_input();
        }
        self.flush_unsent(ctx.now)?;
        self.waiting_for_budget = false;
        if self.awaiting.is_some() {
            return self.watch_for_departure();
        }

        let Scratch { input, output } = scratch;
        while self.may_read() {
            // The view: the unfinished head we hold (if any), then what the kernel shows us.
            let held = self.carry.len();
            input[..held].copy_from_slice(&self.carry);
            let seen = match self.stream.peek(&mut input[held..]) {
                Ok(0) => {
                    self.peer_closed = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let view = held + seen;
            // Answer what is in view; whenever the output cap stops us and the socket then takes
            // the output whole, answer on from where we stopped: the bytes are still in view.
            let mut used = 0;
            let stop = loop {
                let (n, stop) = self.process(&input[used..view], output, ctx);
                used += n;
                self.write_out(output, ctx.now)?;
                if stop != Stop::OutputFull || !self.unsent.is_empty() {
                    break stop;
                }
            };
            if stop == Stop::NeedInput {
                // What is left is an unfinished head (or nothing): take it out of the kernel.
                self.hold(&input[used..view]);
                self.consume(seen)?;
            } else {
                // Requests we are not answering yet stay where they are.
                self.hold(&input[used.min(held)..held]);
                self.consume(used.saturating_sub(held))?;
            }
            match stop {
                // The view was full: more may be waiting in the kernel, and no new event would
                // say so. A FIN is due: it raises no further event either. Look again.
                Stop::NeedInput if seen == input.len() - held || self.fin => continue,
                // Otherwise the socket holds nothing more now; edge-triggered polling reports
                // the next byte that arrives.
                Stop::NeedInput | Stop::OutputFull | Stop::Closed | Stop::Awaiting => break,
                Stop::Budget => {
                    self.waiting_for_budget = true;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Keeps `head`, the start of a request head, as the connection's own: `carry` becomes it.
    ///
    /// Why not leave it in the kernel like the requests we are not answering yet: the kernel
    /// accounts receive memory by buffer, not by byte, so a few bytes can pin a whole receive
    /// buffer (measured: 25 bytes left in the queue held 129,910 of its 131,072 bytes). The TCP
    /// window then stays shut, the rest of the head can never arrive, and the client waits for a
    /// 408. So an unfinished head is copied out (at most `--max-header-bytes`); requests we hold
    /// back for the output cap need no such care, since writing our output unblocks them.
    fn hold(&mut self, head: &[u8]) {
        if head.is_empty() {
            self.carry = Vec::new();
        } else if head != self.carry.as_slice() {
            self.carry.clear();
            queue(&mut self.carry, head);
        }
    }

    /// Whether we want to look at more request bytes now.
    fn may_read(&self) -> bool {
        matches!(self.state, State::New | State::Active | State::Idle)
            && !self.peer_closed
            && self.unsent.len() < OUTPUT_HIGH_WATER
    }

    /// Takes `n` answered bytes out of the socket.
    fn consume(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            match self.stream.consume(n) {
                // A peek showed these bytes; they cannot vanish. Treat it as the reset it must be.
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(taken) => n -= taken.min(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Answers every complete request at the start of `input`, encoding responses into `out`.
    /// Returns the bytes used (answered requests, body bytes, ignored empty lines) and why it
    /// stopped.
    fn process<H>(
        &mut self,
        input: &[u8],
        out: &mut Encoder,
        ctx: &mut Context<'_, H>,
    ) -> (usize, Stop)
    where
        H: Handler,
    {
        let mut at = 0;
        loop {
            if self.state == State::Closing {
                return (at, Stop::Closed);
            }
            if self.awaiting.is_some() {
                return (at, Stop::Awaiting);
            }
            if let Some(upload) = &mut self.upload {
                if ctx.budget_full {
                    // The rest of the body waits in the kernel until the budget has room.
                    return (at, Stop::Budget);
                }
                match upload
                    .decoder
                    .decode_into(&input[at..], Some(&mut upload.body))
                {
                    Err(e) => {
                        let head_only = upload.head.starts_with(b"HEAD ");
                        self.fail(e, head_only, out, ctx.date);
                    }
                    Ok(progress) => {
                        at += progress.consumed;
                        if progress.consumed > 0 {
                            self.since = ctx.now;
                        }
                        if !progress.done {
                            return (at, Stop::NeedInput);
                        }
                        if let Some(upload) = self.upload.take() {
                            self.dispatch_upload(&upload, out, ctx);
                        }
                    }
                }
                continue;
            }
            // Between requests. RFC 9112 §2.2: empty lines before a request line are ignored.
            // They are not the start of a request: an idle connection stays idle, and no header
            // clock starts. (A head's worth of them at once is left to the parser, which refuses
            // it with 400 like any head that does not end in time.)
            let empty = empty_lines(&input[at..]);
            if empty < ctx.limits.head.max_head_bytes {
                at += empty;
            }
            let rest = &input[at..];
            if rest.is_empty() || rest == b"\r" {
                return (at, Stop::NeedInput);
            }
            // A new request: is there room for its answer?
            if out.bytes.len() + self.unsent.len() >= OUTPUT_HIGH_WATER {
                return (at, Stop::OutputFull);
            }
            if ctx.budget_full {
                return (at, Stop::Budget);
            }
            if matches!(self.state, State::New | State::Idle) {
                // The first byte of a request starts its header-read clock.
                self.state = State::Active;
                self.since = ctx.now;
            }
            let mut slots = codec::header_slots();
            match codec::parse(rest, &mut slots, &ctx.limits.head) {
                Parse::Partial => {
                    self.partial_is_head = rest.starts_with(b"HEAD ");
                    return (at, Stop::NeedInput);
                }
                Parse::Error(e) => self.fail(e, rest.starts_with(b"HEAD "), out, ctx.date),
                Parse::Complete { request, head_len } => {
                    let (head, after_head) = rest.split_at(head_len);
                    at += self.answer(request, head, after_head, out, ctx);
                }
            }
        }
    }

    /// Takes one parsed request towards its handler: at once when it has no body, or its whole
    /// `Content-Length` body is already in `after_head` (handed over in place, no copy);
    /// otherwise once the body has arrived (see [`Upload`]). Returns the bytes used: the head,
    /// and the body if it was in view.
    fn answer<H>(
        &mut self,
        request: Request<'_>,
        head: &[u8],
        after_head: &[u8],
        out: &mut Encoder,
        ctx: &mut Context<'_, H>,
    ) -> usize
    where
        H: Handler,
    {
        // The body's framing is checked before anything is answered: a body we refuse must
        // never be read as the next request, nor reach the handler.
        let decoder = match BodyDecoder::new(request.framing, ctx.limits.max_body) {
            Ok(decoder) => decoder,
            Err(e) => {
                self.fail(e, request.method == "HEAD", out, ctx.date);
                return head.len();
            }
        };
        // The clock for the next head (or this body) starts now.
        self.since = ctx.now;
        let Some(decoder) = decoder else {
            self.dispatch(&request, out, ctx);
            return head.len();
        };
        if let BodyFraming::Length(len) = request.framing {
            if let Some(body) = after_head.get(..len as usize) {
                self.dispatch(&Request { body, ..request }, out, ctx);
                return head.len() + body.len();
            }
        }
        if request.expect_continue && request.version == Version::Http11 {
            out.bytes.extend_from_slice(codec::response::CONTINUE);
        }
        let mut copy = Vec::new();
        queue(&mut copy, head);
        self.upload = Some(Box::new(Upload {
            head: copy,
            body: Vec::new(),
            decoder,
        }));
        head.len()
    }

    /// The body of an [`Upload`] is complete: parse its head again (it parsed before, so it
    /// does again) and hand the whole request to the handler.
    fn dispatch_upload<H>(&mut self, upload: &Upload, out: &mut Encoder, ctx: &mut Context<'_, H>)
    where
        H: Handler,
    {
        let mut slots = codec::header_slots();
        match codec::parse(&upload.head, &mut slots, &ctx.limits.head) {
            Parse::Complete { request, .. } => {
                let body = upload.body.as_slice();
                self.dispatch(&Request { body, ..request }, out, ctx);
            }
            Parse::Partial | Parse::Error(_) => {
                let error = ProtocolError::Malformed("request head changed");
                self.fail(error, upload.head.starts_with(b"HEAD "), out, ctx.date);
            }
        }
    }

    /// Calls the handler with a whole request and writes its answer, or waits for its reply.
    fn dispatch<H>(&mut self, request: &Request<'_>, out: &mut Encoder, ctx: &mut Context<'_, H>)
    where
        H: Handler,
    {
        let head_only = request.method == "HEAD";
        let serial = *ctx.serial;
        *ctx.serial += 1;
        let mut taken = None;
        let call = Call {
            ready: ctx.phase.ready(),
            inbox: ctx.inbox,
            id: ReplyId {
                index: ctx.index,
                serial,
            },
            room: ctx.pending_room,
            taken: &mut taken,
        };
        let answer = ctx.handler.call(request, call);
        let persistence = persistence(request.keep_alive, request.version, ctx.phase);
        match (answer, taken) {
            (Some(response), taken) => {
                // Answered now: a reply taken as well is no longer waited for.
                if let Some(shared) = taken {
                    shared.cancel();
                }
                self.respond(&response, head_only, persistence, out, ctx.date);
            }
            (None, Some(shared)) if shared.is_cancelled() => {
                // Over --max-pending: the handle was cancelled from the start.
                let response = Response::text(503, "too many requests in flight\n")
                    .with_header("Retry-After", "1");
                self.respond(&response, head_only, Persistence::Close, out, ctx.date);
            }
            (None, Some(shared)) => {
                self.awaiting = Some(Box::new(Awaiting {
                    serial,
                    shared,
                    since: ctx.now,
                    head_only,
                    keep_alive: request.keep_alive,
                    version: request.version,
                }));
            }
            (None, None) => {
                // A handler bug: it neither answered nor kept the reply.
                let response = Response::text(500, "no response\n");
                self.respond(&response, head_only, Persistence::Close, out, ctx.date);
            }
        }
    }

    /// The handler's reply for request `serial` has come (`None`: the handle was dropped
    /// unsent, a handler bug, answered 500). Writes it and carries on with the requests that
    /// waited behind it. `None` when it is not this connection's current reply (a late answer
    /// for a request already answered 503, or for a connection that has since been replaced).
    pub fn on_reply<H>(
        &mut self,
        serial: u64,
        response: Option<Response>,
        scratch: &mut Scratch,
        ctx: &mut Context<'_, H>,
    ) -> Option<Verdict>
    where
        H: Handler,
    {
        if self.awaiting.as_ref().is_none_or(|a| a.serial != serial) {
            return None;
        }
        let awaiting = self.awaiting.take()?;
        let (response, persistence) = match response {
            Some(response) => {
                let persistence = persistence(awaiting.keep_alive, awaiting.version, ctx.phase);
                (response, persistence)
            }
            None => (Response::text(500, "no response\n"), Persistence::Close),
        };
        let out = &mut scratch.output;
        self.respond(&response, awaiting.head_only, persistence, out, ctx.date);
        if self.write_out(out, ctx.now).is_err() {
            return Some(Verdict::Close);
        }
        Some(self.on_ready(scratch, ctx, false))
    }

    /// While a handler works, the connection reads nothing (later requests wait their turn in
    /// the kernel), but it still notices its client leaving: a reset, or an EOF. Like Go's
    /// `net/http`, an EOF here is taken as the client giving up, and the reply is cancelled.
    fn watch_for_departure(&mut self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        match self.stream.peek(&mut byte) {
            Ok(0) => {
                self.peer_closed = true;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn respond(
        &mut self,
        response: &Response,
        head_only: bool,
        persistence: Persistence,
        out: &mut Encoder,
        date: &[u8],
    ) {
        out.encode(response, head_only, persistence, date);
        self.served += 1;
        if persistence == Persistence::Close {
            self.state = State::Closing;
        }
    }

    /// Answers a protocol error and ends the connection after it.
    ///
    /// An error answer to HEAD has no content either (RFC 9110 §9.3.2): the client reads none,
    /// so content would be taken for the start of the next response.
    fn fail(&mut self, error: ProtocolError, head_only: bool, out: &mut Encoder, date: &[u8]) {
        self.upload = None;
        let response = Response::text(error.status(), format!("{error}\n"));
        self.respond(&response, head_only, Persistence::Close, out, date);
    }

    /// Writes `out` (after anything already queued), keeping what the socket does not take.
    fn write_out(&mut self, out: &mut Encoder, now: Instant) -> io::Result<()> {
        if out.bytes.is_empty() {
            return Ok(());
        }
        let result = if self.unsent.is_empty() {
            write_some(&mut self.stream, &out.bytes).map(|written| {
                if written < out.bytes.len() {
                    queue(&mut self.unsent, &out.bytes[written..]);
                    self.write_since = now;
                }
            })
        } else {
            queue(&mut self.unsent, &out.bytes);
            self.flush_unsent(now)
        };
        out.clear();
        result
    }

    /// Writes queued output. Every bit of progress renews the stalled-client deadline.
    fn flush_unsent(&mut self, now: Instant) -> io::Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let written = write_some(&mut self.stream, &self.unsent)?;
        if written == self.unsent.len() {
            // Release the queue: a large response must not leave its capacity behind.
            self.unsent = Vec::new();
        } else {
            self.unsent.drain(..written);
        }
        if written > 0 {
            self.write_since = now;
        }
        Ok(())
    }

    /// Discards input while lingering; EOF ends the linger.
    fn discard_input(&mut self) -> io::Result<()> {
        loop {
            match self.stream.consume(LINGER_DISCARD_BYTES) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the state machine on after I/O: to Idle, to a half-close, or to removal.
    fn settle<H>(&mut self, ctx: &Context<'_, H>) -> Verdict {
        match self.state {
            State::Lingering if self.peer_closed => return Verdict::Close,
            State::Lingering => return Verdict::Open,
            State::Closing if self.unsent.is_empty() => return self.half_close(ctx.now),
            State::Closing => {}
            // A request in flight stays Active until its response is fully written, and while
            // the start of the next one waits in the kernel.
            State::Active
                if self.upload.is_none()
                    && self.awaiting.is_none()
                    && self.unsent.is_empty()
                    && self.carry.is_empty() =>
            {
                self.become_idle(ctx.now);
            }
            State::New | State::Active | State::Idle => {}
        }
        if self.peer_closed {
            // The client is done sending (RFC 9112 §9.6 lets it half-close after its requests).
            // `drive` answers every whole request as long as the output it queues is taken, so
            // once nothing is left to write, nothing is left to do. Until then the connection
            // stays as it is: requests held back by the output cap are still to be answered.
            return if self.unsent.is_empty() {
                Verdict::Close
            } else {
                Verdict::Open
            };
        }
        Verdict::Open
    }

    fn become_idle(&mut self, now: Instant) {
        self.state = State::Idle;
        self.since = now;
        // Release what a burst left behind, so thousands of idle connections cost little.
        self.unsent = Vec::new();
    }

    /// Starts the gentle close: FIN after everything written, then linger (see [`LINGER_TIMEOUT`]).
    pub fn half_close(&mut self, now: Instant) -> Verdict {
        self.carry = Vec::new();
        self.unsent = Vec::new();
        if self.peer_closed {
            return Verdict::Close;
        }
        if self.stream.shutdown_write().is_err() {
            return Verdict::Close;
        }
        self.state = State::Lingering;
        self.since = now;
        // What the client sent before our FIN is read now: if its own FIN is already here (it
        // raises no further event), the linger is over at once.
        match self.discard_input() {
            Ok(()) if !self.peer_closed => Verdict::Open,
            _ => Verdict::Close,
        }
    }

    /// The timeout, once `deadline` has passed.
    fn on_timeout<H>(&mut self, scratch: &mut Scratch, ctx: &mut Context<'_, H>) -> Verdict
    where
        H: Handler,
    {
        let handler_late = self
            .awaiting
            .as_ref()
            .is_some_and(|a| ctx.now >= a.since + ctx.limits.handler_timeout);
        if let Some(awaiting) = self.awaiting.take().filter(|_| handler_late) {
            // The handler did not answer within --handler-timeout: 503 and close; its answer,
            // if it ever comes, is discarded.
            awaiting.shared.cancel();
            let response = Response::text(503, "the handler did not answer in time\n");
            let out = &mut scratch.output;
            self.respond(
                &response,
                awaiting.head_only,
                Persistence::Close,
                out,
                ctx.date,
            );
            return match self.write_out(out, ctx.now) {
                Ok(()) => self.settle(ctx),
                Err(_) => Verdict::Close,
            };
        }
        match self.state {
            // Nothing was asked on this connection (recently): close without a word.
            State::New | State::Idle => self.half_close(ctx.now),
            // Output stuck behind a client that does not read: give up on it.
            State::Active | State::Closing if !self.unsent.is_empty() => Verdict::Close,
            // A head or body that did not arrive in time: 408, then close (RFC 9110 §15.5.9).
            State::Active => {
                let head_only = match &self.upload {
                    Some(upload) => upload.head.starts_with(b"HEAD "),
                    None => self.partial_is_head,
                };
                self.fail(
                    ProtocolError::RequestTimeout,
                    head_only,
                    &mut scratch.output,
                    ctx.date,
                );
                match self.write_out(&mut scratch.output, ctx.now) {
                    Ok(()) => self.settle(ctx),
                    Err(_) => Verdict::Close,
                }
            }
            State::Closing | State::Lingering => Verdict::Close,
        }
    }

    /// Whether output is queued that the client has not taken yet (an in-memory test uses it
    /// to tell when a conversation is over).
    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }
}

impl<S> Drop for Connection<S> {
    /// A connection that goes (its client left, it timed out, FORCE) cancels the reply its
    /// handler still owes: the handle can tell, and the answer is discarded.
    fn drop(&mut self) {
        if let Some(awaiting) = &self.awaiting {
            awaiting.shared.cancel();
        }
    }
}

/// What the `Connection` header of a response written now must say: keep-alive only if the
/// client allows it and the server is still serving.
fn persistence(keep_alive: bool, version: Version, phase: Phase) -> Persistence {
    if keep_alive && phase.keep_alive() {
        Persistence::KeepAlive(version)
    } else {
        Persistence::Close
    }
}

/// The length of the empty lines (`CRLF`s) at the start of `input`.
fn empty_lines(input: &[u8]) -> usize {
    input
        .chunks_exact(2)
        .take_while(|pair| *pair == b"\r\n")
        .count()
        * 2
}

/// Appends to an output queue, reserving exactly what is needed: the queue of a client that does
/// not read is part of the per-connection worst case, and doubling growth would double it.
fn queue(unsent: &mut Vec<u8>, bytes: &[u8]) {
    unsent.reserve_exact(bytes.len());
    unsent.extend_from_slice(bytes);
}

/// Writes as much of `buf` as the socket takes now.
fn write_some(stream: &mut impl Write, buf: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < buf.len() {
        match stream.write(&buf[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
