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
//! - **Output is queued only up to [`OUTPUT_HIGH_WATER`], and bodies are not copied at all.**
//!   Response heads (and bodies of at most a kilobyte) are encoded into the output buffer the
//!   event loop shares and written at once; only what the socket does not take is copied into
//!   the connection's own `unsent` queue, and a connection with that much queued starts no new
//!   request until the client has read some of it. A larger body is written from where it lives
//!   (`writev` of queue and body, resumed at an offset): an owned body is held once, a shared
//!   one costs a reference, a streamed one the piece being written plus what its channel
//!   queues ([`STREAM_HIGH_WATER`](crate::STREAM_HIGH_WATER)), its producer held back meanwhile.
//! - **One budget for what must be buffered.** Unfinished heads and request bodies being
//!   collected count against `--buffer-budget` ([`Context::budget_room`]). A request that needs
//!   more than is left waits in the kernel; a request that needs nothing buffered is answered
//!   whatever the budget says, so the budget limits what is held, never who is served.
//!
//! # The request/response cycle
//!
//! A request goes to the handler once it is complete, body included (a body that arrived with
//! its head is lent in place; one still arriving is collected in an `Upload`, admitted only
//! when the budget can hold all of it). The handler answers at once, or takes the reply and
//! answers later from another thread: the connection then waits (`Exchange::Handler`), reading
//! nothing more, until the server hands it the answer ([`Connection::on_reply`]). A large or
//! streamed body is then written (`Exchange::Body`) before the next request is read. Responses
//! therefore leave in the order of their requests.
//!
//! In steady state `carry` and `unsent` are empty, which is why an idle connection costs about
//! 160 bytes (measured with 10,000 open: 161 B each, `benches/compare.sh`), and why answering a
//! request allocates nothing.

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpStream;

use crate::codec::response::Source;
use crate::codec::{
    self, BodyDecoder, BodyFraming, Chunk, Encoder, Framing, HeadLimits, Parse, Persistence,
    ProtocolError, Request, Response, Version,
};
use crate::config::Config;
use crate::handler::{Call, Handler, Inbox, ReplyId, Shared};
use crate::stream::{Next, Receiver, Wake};

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

/// Bodies up to this size are copied into the encoded output with their head (one buffer, one
/// `write`, and the constant answers cached whole, see [`Encoder`]); larger ones are written
/// from where they live, after the head. A copy of a kilobyte costs less than a second `iovec`
/// and a second pass through the kernel's copy loop.
const INLINE_BODY_BYTES: usize = 1024;

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

    /// Makes the coming close a reset (RST) instead of a FIN: the end of a response that failed
    /// where only the end of the connection delimits it, so the client cannot take it as
    /// complete.
    fn reset(&mut self);
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

    fn reset(&mut self) {
        // Best effort: if it fails, the close is a FIN, and the response is still short.
        let _ = crate::sys::linger_zero(self.as_raw_fd());
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
    /// What is left of `--buffer-budget` after the bytes held for all connections together
    /// ([`Connection::buffered`]). A request that needs more than this waits in the kernel; a
    /// request that needs nothing buffered is answered whatever it says.
    pub budget_room: usize,
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

/// What the connection is doing with its current request: the request being read, or the
/// response being written, lives in the variant, so no two can be half-true at once (after
/// hyper's `Reading::Body(Decoder)` / `Writing::Body(Encoder)`).
#[derive(Debug)]
enum Exchange {
    /// Between requests, or reading a head: requests are parsed from the input.
    Heads,
    /// A request whose body is still arriving.
    Upload(Box<Upload>),
    /// A request whose handler took the reply and has not answered yet.
    Handler(Box<Awaiting>),
    /// A response whose body is being written (its head is in the queue, or gone).
    Body(Box<Outgoing>),
}

/// A request whose body is still arriving: its head, copied (the shared input buffer moves on),
/// and the body so far, de-chunked. It counts against the budget at what it may grow to
/// (`reserved`), from the moment it is admitted, so that it never waits for room mid-body.
#[derive(Debug)]
struct Upload {
    head: Vec<u8>,
    body: Vec<u8>,
    /// The most `body` may hold: the declared length, or `--max-body` for a chunked body.
    /// `body`'s capacity never grows past it (see [`Upload::make_room`]).
    reserved: usize,
    decoder: BodyDecoder,
}

impl Upload {
    /// Bytes counted against the budget: the head, and the body at its most.
    fn held(&self) -> usize {
        self.head.len() + self.reserved
    }

    /// Grows `body` so that `incoming` more bytes fit without a reallocation of its own: by
    /// doubling, as `Vec` does, but never past `reserved`, so the capacity the allocator hands
    /// out stays within what the budget counted.
    fn make_room(&mut self, incoming: usize) {
        let want = (self.body.len() + incoming).min(self.reserved);
        if want > self.body.capacity() {
            let grown = (self.body.capacity() * 2).clamp(want, self.reserved.max(want));
            self.body.reserve_exact(grown - self.body.len());
        }
    }
}

/// A response body on its way out, after its head: written from where it lives (see
/// [`Body`](crate::Body)), never copied into the connection's queue.
#[derive(Debug)]
struct Outgoing {
    /// The bytes being written now: the whole body, or the current piece of a stream.
    chunk: Chunk,
    /// How much of `chunk` the socket has taken.
    offset: usize,
    /// Where the next pieces come from, for a streamed body.
    stream: Option<Streamed>,
}

/// The receiving end of a streamed body, and how its pieces are framed.
#[derive(Debug)]
struct Streamed {
    receiver: Receiver,
    framing: Framing,
    /// Names the stream in the wake-ups its producer posts (slab indices are reused).
    serial: u64,
}

impl Outgoing {
    /// The part of the body the socket has not taken yet.
    fn rest(&self) -> &[u8] {
        &self.chunk.as_bytes()[self.offset..]
    }
}

/// A request whose handler took the reply: what its answer needs when it comes.
#[derive(Debug)]
struct Awaiting {
    serial: u64,
    shared: Arc<Shared>,
    /// When the handler took the reply (for `--handler-timeout`).
    since: Instant,
    to: Recipient,
}

/// What a response must suit about the request it answers.
#[derive(Clone, Copy, Debug)]
struct Recipient {
    /// A HEAD: the head only.
    head_only: bool,
    /// The client's HTTP version: how a body of unknown length is framed.
    version: Version,
    /// The client's side of persistence (its version and `Connection` header); the server's is
    /// decided when the answer is written.
    keep_alive: bool,
}

impl Recipient {
    /// The last answer on a connection, to a request that may not have parsed.
    fn closing_after(head_only: bool) -> Recipient {
        Recipient {
            head_only,
            version: Version::Http11,
            keep_alive: false,
        }
    }

    /// The same client, but this answer ends the connection.
    fn closing(self) -> Recipient {
        Recipient {
            keep_alive: false,
            ..self
        }
    }

    /// What the `Connection` header of a response written now must say: keep-alive only if the
    /// client allows it and the server is still serving.
    fn persistence(self, phase: Phase) -> Persistence {
        if self.keep_alive && phase.keep_alive() {
            Persistence::KeepAlive(self.version)
        } else {
            Persistence::Close
        }
    }
}

/// Why [`Connection::process`] stopped answering requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Every complete request in the input is answered; the rest (if any) is an unfinished
    /// head or body: wait for more bytes.
    NeedInput,
    /// The output queue reached [`OUTPUT_HIGH_WATER`]: wait until the client reads.
    OutputFull,
    /// The next request needs buffered memory (an unfinished head to hold, a body to collect)
    /// and the server-wide budget has no room for it: it waits in the kernel until there is
    /// (the server drives us again).
    Budget,
    /// A response body is being written: the next request waits until it is out.
    Writing,
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
    /// Encoded output the socket has not taken yet, in order. A body being written goes after it.
    unsent: Vec<u8>,
    /// The current request or response, with what it needs.
    exchange: Exchange,
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
            exchange: Exchange::Heads,
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

    /// Bytes this connection holds against the server-wide budget on behalf of its client: an
    /// unfinished head, and an upload at the most it may grow to. (Whole requests wait in the
    /// kernel, and output is bounded per connection by [`OUTPUT_HIGH_WATER`]; see the module
    /// docs.)
    pub fn buffered(&self) -> usize {
        let upload = match &self.exchange {
            Exchange::Upload(upload) => upload.held(),
            _ => 0,
        };
        self.carry.len() + upload
    }

    /// What the server books against its budget for this connection: the bytes it holds
    /// ([`Connection::buffered`]), and whether its next request waits for room.
    pub fn held(&self) -> (usize, bool) {
        (self.buffered(), self.waiting_for_budget)
    }

    /// Whether a handler has taken this connection's reply and not answered yet.
    pub fn awaiting(&self) -> bool {
        matches!(self.exchange, Exchange::Handler(_))
    }

    /// Whether a response body is being written (an answer given, not yet delivered).
    pub fn writing(&self) -> bool {
        matches!(self.exchange, Exchange::Body(_))
    }

    /// Whether bytes are ready for the socket: queued output, or the rest of a body's piece.
    fn has_output(&self) -> bool {
        !self.unsent.is_empty()
            || matches!(&self.exchange, Exchange::Body(body) if !body.rest().is_empty())
    }

    /// Whether a response is still on its way out: queued bytes, or a body not yet complete.
    fn output_pending(&self) -> bool {
        !self.unsent.is_empty() || self.writing()
    }

    /// When the current wait times out, derived from the state in this one place:
    ///
    /// - output the client is not taking, or a streamed body its producer is not giving:
    ///   `--idle-timeout` from the last progress of either (a client pausing to process a burst
    ///   of pipelined responses is not a slowloris);
    /// - `New` / `Active`: `--header-timeout` from the head's first byte (or from the accept, or
    ///   from the last body bytes): the slowloris defence;
    /// - `Idle`: `--idle-timeout` from the last response;
    /// - `Lingering`: [`LINGER_TIMEOUT`] from the half-close;
    /// - and while a handler owes an answer: `--handler-timeout` from when it took the reply, at
    ///   the latest.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        let write = self.write_since + limits.idle_timeout;
        if let Exchange::Handler(awaiting) = &self.exchange {
            let handler = awaiting.since + limits.handler_timeout;
            return if self.unsent.is_empty() {
                handler
            } else {
                handler.min(write)
            };
        }
        match self.state {
            State::Lingering => self.since + LINGER_TIMEOUT,
            _ if self.output_pending() => write,
            State::New | State::Active => self.since + limits.header_timeout,
            State::Idle | State::Closing => self.since + limits.idle_timeout,
        }
    }

    /// The interest this connection needs, derived from its state in this one place: read while
    /// a request may come; also write while output is queued; only read while lingering.
    pub fn interest(&self) -> Interest {
        match self.state {
            State::Lingering => Interest::READABLE,
            _ if self.has_output() => Interest::READABLE | Interest::WRITABLE,
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
        (self.waiting_for_budget && ctx.budget_room > 0).then(|| self.on_ready(scratch, ctx, false))
    }

    fn drive<H>(&mut self, scratch: &mut Scratch, ctx: &mut Context<'_, H>) -> io::Result<()>
    where
        H: Handler,
    {
        if self.state == State::Lingering {
            return self.discard_input();
        }
        self.write_out(&mut scratch.output, ctx)?;
        self.waiting_for_budget = false;
        if matches!(self.exchange, Exchange::Handler(_) | Exchange::Body(_)) {
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
                self.write_out(output, ctx)?;
                if !matches!(stop, Stop::OutputFull | Stop::Writing) || self.output_pending() {
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
                Stop::NeedInput
                | Stop::OutputFull
                | Stop::Writing
                | Stop::Closed
                | Stop::Awaiting => {
                    break;
                }
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
            let upload = match &mut self.exchange {
                Exchange::Heads => None,
                Exchange::Upload(upload) => Some(upload),
                Exchange::Handler(_) => return (at, Stop::Awaiting),
                Exchange::Body(_) => return (at, Stop::Writing),
            };
            if let Some(upload) = upload {
                // Admitted with room for all of it: an upload never waits for the budget.
                let input = &input[at..];
                upload.make_room(input.len());
                match upload.decoder.decode_into(input, Some(&mut upload.body)) {
                    Err(e) => {
                        let head_only = upload.head.starts_with(b"HEAD ");
                        self.fail(e, head_only, out, ctx);
                    }
                    Ok(progress) => {
                        at += progress.consumed;
                        // Body bytes renew the header clock; trailer lines do not, so a
                        // request cannot hold its connection (and a drain) line by line.
                        if progress.consumed > 0 && !upload.decoder.in_trailers() {
                            self.since = ctx.now;
                        }
                        if !progress.done {
                            return (at, Stop::NeedInput);
                        }
                        let upload = std::mem::replace(&mut self.exchange, Exchange::Heads);
                        if let Exchange::Upload(upload) = upload {
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
            if matches!(self.state, State::New | State::Idle) {
                // The first byte of a request starts its header-read clock.
                self.state = State::Active;
                self.since = ctx.now;
            }
            let mut slots = codec::header_slots();
            match codec::parse(rest, &mut slots, &ctx.limits.head) {
                // An unfinished head is held (copied out of the kernel) only if the budget has
                // room for it; otherwise it waits where it is.
                Parse::Partial
                    if rest.len() - self.carry.len().min(rest.len()) > ctx.budget_room =>
                {
                    return (at, Stop::Budget);
                }
                Parse::Partial => {
                    self.partial_is_head = rest.starts_with(b"HEAD ");
                    return (at, Stop::NeedInput);
                }
                Parse::Error(e) => self.fail(e, rest.starts_with(b"HEAD "), out, ctx),
                Parse::Complete { request, head_len } => {
                    let (head, after_head) = rest.split_at(head_len);
                    match self.answer(request, head, after_head, out, ctx) {
                        Some(used) => at += used,
                        None => return (at, Stop::Budget),
                    }
                }
            }
        }
    }

    /// Takes one parsed request towards its handler: at once when it has no body, or its whole
    /// `Content-Length` body is already in `after_head` (handed over in place, no copy);
    /// otherwise once the body has arrived (see [`Upload`]). Returns the bytes used: the head,
    /// and the body if it was in view; `None` when the body must be collected and the budget
    /// has no room for all of it yet (the request then waits in the kernel, untouched).
    fn answer<H>(
        &mut self,
        request: Request<'_>,
        head: &[u8],
        after_head: &[u8],
        out: &mut Encoder,
        ctx: &mut Context<'_, H>,
    ) -> Option<usize>
    where
        H: Handler,
    {
        // The body's framing is checked before anything is answered: a body we refuse must
        // never be read as the next request, nor reach the handler.
        let decoder = match BodyDecoder::new(request.framing, ctx.limits.max_body) {
            Ok(decoder) => decoder,
            Err(e) => {
                self.fail(e, request.method == "HEAD", out, ctx);
                return Some(head.len());
            }
        };
        let Some(decoder) = decoder else {
            self.since = ctx.now;
            self.dispatch(&request, out, ctx);
            return Some(head.len());
        };
        let reserved = match request.framing {
            BodyFraming::Length(len) => {
                if let Some(body) = after_head.get(..len as usize) {
                    self.since = ctx.now;
                    self.dispatch(&Request { body, ..request }, out, ctx);
                    return Some(head.len() + body.len());
                }
                len as usize
            }
            _ => ctx.limits.max_body as usize,
        };
        if head.len() + reserved > ctx.budget_room {
            return None;
        }
        // The clock for the body starts now.
        self.since = ctx.now;
        if request.expect_continue && request.version == Version::Http11 {
            out.bytes.extend_from_slice(codec::response::CONTINUE);
        }
        let mut copy = Vec::new();
        queue(&mut copy, head);
        self.exchange = Exchange::Upload(Box::new(Upload {
            head: copy,
            body: Vec::new(),
            reserved,
            decoder,
        }));
        Some(head.len())
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
                self.fail(error, upload.head.starts_with(b"HEAD "), out, ctx);
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
        let to = Recipient {
            head_only,
            version: request.version,
            keep_alive: request.keep_alive,
        };
        match (answer, taken) {
            (Some(response), taken) => {
                // Answered now: a reply taken as well is no longer waited for.
                if let Some(shared) = taken {
                    shared.cancel();
                }
                self.respond(response, to, out, ctx);
            }
            (None, Some(shared)) if shared.is_cancelled() => {
                // Over --max-pending: the handle was cancelled from the start.
                let response = Response::text(503, "too many requests in flight\n")
                    .with_header("Retry-After", "1");
                self.respond(response, to.closing(), out, ctx);
            }
            (None, Some(shared)) => {
                self.exchange = Exchange::Handler(Box::new(Awaiting {
                    serial,
                    shared,
                    since: ctx.now,
                    to,
                }));
            }
            (None, None) => {
                // A handler bug: it neither answered nor kept the reply.
                let response = Response::text(500, "no response\n");
                self.respond(response, to.closing(), out, ctx);
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
        if !matches!(&self.exchange, Exchange::Handler(a) if a.serial == serial) {
            return None;
        }
        let Exchange::Handler(awaiting) = std::mem::replace(&mut self.exchange, Exchange::Heads)
        else {
            return None;
        };
        let (response, to) = match response {
            Some(response) => (response, awaiting.to),
            None => (Response::text(500, "no response\n"), awaiting.to.closing()),
        };
        let out = &mut scratch.output;
        self.respond(response, to, out, ctx);
        if self.write_out(out, ctx).is_err() {
            return Some(Verdict::Close);
        }
        Some(self.on_ready(scratch, ctx, false))
    }

    /// The streamed body `serial` has a piece (or its end) ready: write on. `None` when this
    /// connection is no longer writing that body.
    pub fn on_stream<H>(
        &mut self,
        serial: u64,
        scratch: &mut Scratch,
        ctx: &mut Context<'_, H>,
    ) -> Option<Verdict>
    where
        H: Handler,
    {
        let current = match &self.exchange {
            Exchange::Body(body) => body.stream.as_ref().is_some_and(|s| s.serial == serial),
            _ => false,
        };
        current.then(|| self.on_ready(scratch, ctx, false))
    }

    /// While a handler works, or a body is written, the connection reads nothing (later
    /// requests wait their turn in the kernel), but it still notices its client leaving: a
    /// reset, or an EOF. Like Go's `net/http`, an EOF while a handler works is taken as the
    /// client giving up, and the reply is cancelled.
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

    /// Encodes a response to `to`: its head into `out` (with the body, when it is small or not
    /// sent at all), and a larger or streamed body as the [`Outgoing`] body, written from where
    /// it lives after the head. Persistence is decided here, when the response is written.
    fn respond<H>(
        &mut self,
        mut response: Response,
        to: Recipient,
        out: &mut Encoder,
        ctx: &mut Context<'_, H>,
    ) {
        let mut persistence = to.persistence(ctx.phase);
        if !(200..=599).contains(&response.status()) {
            // A final answer is 2xx to 5xx (RFC 9110 §15): a 1xx would leave the client waiting
            // for the real one and shift every later response by one. The handler's bug, the
            // client's 500.
            crate::log::event(
                crate::log::Level::Warn,
                "handler_error",
                &[
                    ("reason", "not_a_final_status".into()),
                    ("status", u64::from(response.status()).into()),
                ],
            );
            response = Response::text(500, "the handler answered with no final status\n");
            persistence = Persistence::Close;
        }
        let framing = response.framing(to.version);
        if framing == Framing::UntilClose {
            persistence = Persistence::Close;
        }
        self.served += 1;
        if persistence == Persistence::Close {
            self.state = State::Closing;
        }
        // (A stream is never inline: its bytes are not here yet.)
        let inline = (response.body().as_bytes()).is_some_and(|b| b.len() <= INLINE_BODY_BYTES);
        if to.head_only || inline {
            // A HEAD's stream, dropped with the response, tells its producer nobody listens.
            return match framing {
                Framing::Chunked | Framing::UntilClose => {
                    codec::encode_head(&mut out.bytes, &response, framing, persistence, ctx.date)
                }
                _ => out.encode(&response, to.head_only, persistence, ctx.date),
            };
        }
        codec::encode_head(&mut out.bytes, &response, framing, persistence, ctx.date);
        let (chunk, stream) = match response.take_body().into_source() {
            Source::Bytes(chunk) => (chunk, None),
            Source::Stream(receiver) => {
                let serial = *ctx.serial;
                *ctx.serial += 1;
                let stream = Streamed {
                    receiver,
                    framing,
                    serial,
                };
                (Chunk::from(&b""[..]), Some(stream))
            }
        };
        self.exchange = Exchange::Body(Box::new(Outgoing {
            chunk,
            offset: 0,
            stream,
        }));
    }

    /// Answers a protocol error and ends the connection after it.
    ///
    /// An error answer to HEAD has no content either (RFC 9110 §9.3.2): the client reads none,
    /// so content would be taken for the start of the next response.
    fn fail<H>(
        &mut self,
        error: ProtocolError,
        head_only: bool,
        out: &mut Encoder,
        ctx: &mut Context<'_, H>,
    ) {
        self.exchange = Exchange::Heads;
        let response = Response::text(error.status(), format!("{error}\n"));
        self.respond(response, Recipient::closing_after(head_only), out, ctx);
    }

    /// Writes what is queued, then `fresh` (encoded this turn), then the body being written, as
    /// far as the socket takes them, in one `writev` per round; keeps what is left of `fresh`
    /// in the queue. The body is never copied: its rest waits for the next writable event.
    /// An error ends the connection: the client left, or a streamed body failed.
    fn write_out<H>(&mut self, fresh: &mut Encoder, ctx: &Context<'_, H>) -> io::Result<()> {
        if fresh.bytes.is_empty() && self.unsent.is_empty() && !self.writing() {
            return Ok(());
        }
        let mut fresh_at = 0;
        let result = loop {
            // A stream's next piece (and its chunk framing, which goes in the queue) only once
            // everything before the body is out: the framing must follow the head.
            let before_body = self.unsent.len() + fresh.bytes.len() - fresh_at;
            if before_body == 0 {
                if let Err(e) = self.next_piece(ctx) {
                    break Err(e);
                }
            }
            let body = match &self.exchange {
                Exchange::Body(body) => body.rest(),
                _ => &[],
            };
            let parts = [
                IoSlice::new(&self.unsent),
                IoSlice::new(&fresh.bytes[fresh_at..]),
                IoSlice::new(body),
            ];
            let total = parts.iter().map(|part| part.len()).sum::<usize>();
            if total == 0 {
                break Ok(());
            }
            // One slice (the common case: a turn's answers, no body) goes out with a plain
            // `write`: `writev` walks its vector even where the other entries are empty.
            let mut nonempty = parts.iter().filter(|part| !part.is_empty());
            let attempt = match (nonempty.next(), nonempty.next()) {
                (Some(only), None) => self.stream.write(only),
                _ => self.stream.write_vectored(&parts),
            };
            let mut written = match attempt {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            self.write_since = ctx.now;
            let from_queue = written.min(self.unsent.len());
            self.unsent.drain(..from_queue);
            written -= from_queue;
            let from_fresh = written.min(fresh.bytes.len() - fresh_at);
            fresh_at += from_fresh;
            written -= from_fresh;
            if let Exchange::Body(body) = &mut self.exchange {
                body.offset += written;
            }
        };
        queue(&mut self.unsent, &fresh.bytes[fresh_at..]);
        fresh.clear();
        if self.unsent.is_empty() {
            // Release the queue: a burst must not leave its capacity behind.
            self.unsent = Vec::new();
        }
        result
    }

    /// When the body's current piece is written: for a stream, takes the next piece (with its
    /// chunk framing in the queue), and ends the body when the producer has; otherwise the body
    /// is complete. A failed stream ends the response visibly: a chunked body never gets its
    /// last chunk, a sized one never reaches its length, and a close-delimited one (to an
    /// HTTP/1.0 client) ends with a reset rather than a FIN that would look like its end.
    fn next_piece<H>(&mut self, ctx: &Context<'_, H>) -> io::Result<()> {
        let Exchange::Body(body) = &mut self.exchange else {
            return Ok(());
        };
        if !body.rest().is_empty() {
            return Ok(());
        }
        let Some(stream) = &body.stream else {
            self.exchange = Exchange::Heads;
            return Ok(());
        };
        let chunked = stream.framing == Framing::Chunked;
        if chunked && !body.chunk.as_bytes().is_empty() {
            // The CRLF that ends a chunk's data (RFC 9112 §7.1).
            self.unsent.extend_from_slice(b"\r\n");
        }
        body.chunk = Chunk::from(&b""[..]);
        body.offset = 0;
        let id = ReplyId {
            index: ctx.index,
            serial: stream.serial,
        };
        let wake = || Wake {
            inbox: ctx.inbox.clone(),
            id,
        };
        match stream.receiver.next(wake) {
            Next::Piece(piece) => {
                if chunked {
                    push_chunk_size(&mut self.unsent, piece.as_bytes().len());
                }
                body.chunk = piece;
                // The producer's progress counts as the response's: only a body that
                // neither side moves times out.
                self.write_since = ctx.now;
            }
            Next::Wait => {}
            Next::Finished => {
                if chunked {
                    // The last chunk, and no trailer section (RFC 9112 §7.1).
                    self.unsent.extend_from_slice(b"0\r\n\r\n");
                }
                self.exchange = Exchange::Heads;
            }
            Next::Failed => {
                if stream.framing == Framing::UntilClose {
                    self.stream.reset();
                }
                return Err(io::Error::other("the body's producer failed"));
            }
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
            State::Closing if !self.output_pending() => return self.half_close(ctx.now),
            State::Closing => {}
            // A request in flight stays Active until its response is fully written, while the
            // start of the next one is held, and while one waits in the kernel for the budget.
            State::Active
                if matches!(self.exchange, Exchange::Heads)
                    && self.unsent.is_empty()
                    && self.carry.is_empty()
                    && !self.waiting_for_budget =>
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
            return if self.output_pending() {
                Verdict::Open
            } else {
                Verdict::Close
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
        self.exchange = Exchange::Heads;
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
        let late = match &self.exchange {
            Exchange::Handler(a) => ctx.now >= a.since + ctx.limits.handler_timeout,
            _ => false,
        };
        if late {
            if let Exchange::Handler(awaiting) =
                std::mem::replace(&mut self.exchange, Exchange::Heads)
            {
                // The handler did not answer within --handler-timeout: 503 and close; its
                // answer, if it ever comes, is discarded.
                awaiting.shared.cancel();
                let response = Response::text(503, "the handler did not answer in time\n");
                return self.answer_timeout(response, awaiting.to.closing(), scratch, ctx);
            }
        }
        match self.state {
            // Nothing was asked on this connection (recently): close without a word.
            State::New | State::Idle => self.half_close(ctx.now),
            // Output stuck behind a client that does not read (or a body its producer does
            // not give): give up on it.
            State::Active | State::Closing if self.output_pending() => Verdict::Close,
            // A request the budget could not take in time is not the client's fault: 503, and
            // when to come back (RFC 9110 §15.6.4, §10.2.3). Never a close without an answer.
            State::Active if self.waiting_for_budget => {
                let response = Response::text(503, "the server is busy; try again\n")
                    .with_header("Retry-After", "1");
                let to = Recipient::closing_after(self.partial_is_head);
                self.answer_timeout(response, to, scratch, ctx)
            }
            // A head or body that did not arrive in time: 408, then close (RFC 9110 §15.5.9).
            State::Active => {
                let head_only = match &self.exchange {
                    Exchange::Upload(upload) => upload.head.starts_with(b"HEAD "),
                    _ => self.partial_is_head,
                };
                let error = ProtocolError::RequestTimeout;
                let response = Response::text(error.status(), format!("{error}\n"));
                self.exchange = Exchange::Heads;
                self.answer_timeout(response, Recipient::closing_after(head_only), scratch, ctx)
            }
            State::Closing | State::Lingering => Verdict::Close,
        }
    }

    /// Writes the last answer of a connection whose wait timed out.
    fn answer_timeout<H>(
        &mut self,
        response: Response,
        to: Recipient,
        scratch: &mut Scratch,
        ctx: &mut Context<'_, H>,
    ) -> Verdict
    where
        H: Handler,
    {
        self.respond(response, to, &mut scratch.output, ctx);
        match self.write_out(&mut scratch.output, ctx) {
            Ok(()) => self.settle(ctx),
            Err(_) => Verdict::Close,
        }
    }

    /// Whether a response is still on its way out (an in-memory test uses it to tell when a
    /// conversation is over).
    pub fn has_unsent(&self) -> bool {
        self.output_pending()
    }
}

impl<S> Drop for Connection<S> {
    /// A connection that goes (its client left, it timed out, FORCE) cancels the reply its
    /// handler still owes: the handle can tell, and the answer is discarded.
    /// (A streamed body's producer learns the same when the receiver in `exchange` drops.)
    fn drop(&mut self) {
        if let Exchange::Handler(awaiting) = &self.exchange {
            awaiting.shared.cancel();
        }
    }
}

/// Appends the size line of a chunk of `len` bytes (RFC 9112 §7.1: hexadecimal, then CRLF).
fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
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
