//! One client connection: its state machine, its socket I/O, and the request/response cycle.
//!
//! The event loop owns two scratch buffers shared by every connection (one thread, so one
//! connection at a time uses them). A connection reads into the shared input buffer, answers
//! every complete request in it, encodes all the responses into the shared output buffer and
//! writes them with one `write`. Only what is left over (half a request, or output the socket
//! would not take) is copied into the connection's own `carry` / `unsent` vectors. In steady
//! state those stay empty, which is why an idle connection costs about 160 bytes (measured with
//! 10,000 open: 161 B each, `benches/compare.sh`) and why
//! answering a request allocates nothing.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpStream;

use crate::codec::{
    self, BodyDecoder, Encoder, HeadLimits, Parse, Persistence, ProtocolError, Request, Response,
    Version,
};

/// How long a half-closed connection keeps reading (and discarding) before it is closed.
///
/// Why linger at all: `close()` on a socket with unread input makes the kernel send RST instead
/// of FIN, and an RST can overtake our last response in the client's receive queue and destroy
/// it. So we shut down our write side (FIN after the response), keep reading until the client
/// closes too, and only then close. Two seconds is plenty for a client that has seen our FIN.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Output a connection may have queued before we stop reading its requests. A client that
/// pipelines without reading its responses cannot make us buffer more than this (plus one read's
/// worth of responses).
pub const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// What a connection needs from its byte stream: a mio `TcpStream` in the server; an in-memory
/// stream in the fuzzer and the allocation test, which drive the whole state machine without a
/// socket.
pub trait Transport: Read + Write {
    /// Sends FIN: no more bytes from us, but keep reading.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
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
    /// False from SIGTERM on: every response then says `Connection: close`.
    pub keep_alive: bool,
    /// The readiness answer: true while serving, false from SIGTERM on.
    pub ready: bool,
    /// True once the server drains: idle connections are closed as soon as they are idle.
    pub draining: bool,
    pub limits: &'a Limits,
    pub handler: &'a mut H,
}

/// Per-connection limits, taken from the `Config` once.
#[derive(Clone, Debug)]
pub struct Limits {
    pub head: HeadLimits,
    pub max_body: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub health_path: String,
}

/// A response whose request still has a body to be read; it is written once the body is in.
#[derive(Debug)]
struct Deferred {
    response: Response,
    head_only: bool,
    persistence: Persistence,
}

/// One client connection.
pub struct Connection<S = TcpStream> {
    stream: S,
    state: State,
    /// Unparsed input kept between reads: the start of a request head, or requests we paused on.
    carry: Vec<u8>,
    /// Encoded output the socket has not taken yet, in order.
    unsent: Vec<u8>,
    /// The body of the current request, while it is being consumed.
    body: Option<BodyDecoder>,
    /// The response to the current request, while its body is being consumed.
    deferred: Option<Box<Deferred>>,
    /// When the connection was accepted (drain closes long-silent new connections).
    accepted: Instant,
    /// When the current wait on the client began: accept, the first byte of the current head,
    /// the last body bytes, the start of idleness or of lingering. See [`Connection::deadline`].
    since: Instant,
    /// When the client last took some of our output (while `unsent` is not empty).
    write_since: Instant,
    /// The interest currently registered with the poller.
    registered: Interest,
    /// The client has shut down its write side (we read EOF).
    peer_closed: bool,
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
            body: None,
            deferred: None,
            accepted: now,
            since: now,
            write_since: now,
            registered: Interest::READABLE,
            peer_closed: false,
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

    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    /// When the current wait times out, derived from the state in this one place:
    ///
    /// - output the client is not taking: `--idle-timeout` from its last progress (a client
    ///   pausing to process a burst of pipelined responses is not a slowloris);
    /// - `New` / `Active`: `--header-timeout` from the head's first byte (or from the accept, or
    ///   from the last body bytes): the slowloris defence;
    /// - `Idle`: `--idle-timeout` from the last response;
    /// - `Lingering`: [`LINGER_TIMEOUT`] from the half-close.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        match self.state {
            State::Lingering => self.since + LINGER_TIMEOUT,
            _ if !self.unsent.is_empty() => self.write_since + limits.idle_timeout,
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
        H: FnMut(&Request<'_>) -> Response,
    {
        match self.drive(scratch, ctx, read_closed) {
            Ok(()) => self.settle(ctx),
            // Resets, broken pipes and the like end this connection only. A client that goes
            // away is not an error worth a log line.
            Err(_) => Verdict::Close,
        }
    }

    fn drive<H>(
        &mut self,
        scratch: &mut Scratch,
        ctx: &mut Context<'_, H>,
        read_closed: bool,
    ) -> io::Result<()>
    where
        H: FnMut(&Request<'_>) -> Response,
    {
        if self.state == State::Lingering {
            return self.discard_input(&mut scratch.input);
        }
        self.flush_unsent(ctx.now)?;

        let Scratch { input, output } = scratch;
        // Continue where the last read stopped.
        let mut len = self.carry.len();
        input[..len].copy_from_slice(&self.carry);
        self.carry.clear();

        loop {
            let space = input.len() - len;
            // Whether the socket may still hold bytes we have not read.
            let mut more = false;
            if self.may_read() && space > 0 {
                match self.stream.read(&mut input[len..]) {
                    Ok(0) => self.peer_closed = true,
                    Ok(n) => {
                        len += n;
                        // A short read emptied the socket: with edge-triggered epoll any later
                        // byte raises a new event, so the extra read that would only return
                        // EAGAIN is skipped (as nginx does). Not when the peer has sent FIN:
                        // then we read on to see the EOF, which raises no further event.
                        more = n == space || read_closed;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => more = true,
                    Err(e) => return Err(e),
                }
            }
            let (consumed, output_full) = self.process(&input[..len], output, ctx);
            input.copy_within(consumed..len, 0);
            len -= consumed;
            self.write_out(&mut output.bytes, ctx.now)?;
            // Responses held back by the output cap went out in full: answer the rest.
            more |= output_full && self.unsent.is_empty() && len > 0;
            if !more || !(self.may_read() || output_full) {
                break;
            }
        }
        if self.state != State::Closing {
            self.carry.extend_from_slice(&input[..len]);
        }
        Ok(())
    }

    /// Whether we want more request bytes now.
    fn may_read(&self) -> bool {
        matches!(self.state, State::New | State::Active | State::Idle)
            && !self.peer_closed
            && self.unsent.len() < OUTPUT_HIGH_WATER
    }

    /// Answers every complete request at the start of `input`, encoding responses into `out`.
    /// Returns the bytes consumed and whether it stopped because `out` reached the cap.
    fn process<H>(
        &mut self,
        input: &[u8],
        out: &mut Encoder,
        ctx: &mut Context<'_, H>,
    ) -> (usize, bool)
    where
        H: FnMut(&Request<'_>) -> Response,
    {
        let mut at = 0;
        while self.state != State::Closing {
            if out.bytes.len() + self.unsent.len() >= OUTPUT_HIGH_WATER {
                return (at, true);
            }
            if let Some(body) = &mut self.body {
                match body.decode(&input[at..]) {
                    Err(e) => {
                        let head_only = self.deferred.as_ref().is_some_and(|d| d.head_only);
                        self.fail(e, head_only, out, ctx.date);
                    }
                    Ok(progress) => {
                        at += progress.consumed;
                        if progress.consumed > 0 {
                            self.since = ctx.now;
                        }
                        if !progress.done {
                            break;
                        }
                        self.body = None;
                        if let Some(d) = self.deferred.take() {
                            self.respond(&d.response, d.head_only, d.persistence, out, ctx.date);
                        }
                    }
                }
                continue;
            }
            let rest = &input[at..];
            if rest.is_empty() {
                break;
            }
            if matches!(self.state, State::New | State::Idle) {
                // The first byte of a request starts its header-read clock.
                self.state = State::Active;
                self.since = ctx.now;
            }
            let mut slots = codec::header_slots();
            match codec::parse(rest, &mut slots, &ctx.limits.head) {
                Parse::Partial => break,
                Parse::Error(e) => self.fail(e, rest.starts_with(b"HEAD "), out, ctx.date),
                Parse::Complete { request, head_len } => {
                    at += head_len;
                    self.answer(&request, out, ctx);
                }
            }
        }
        (at, false)
    }

    /// Answers one parsed request: the response goes out now, or after its body has been read.
    fn answer<H>(&mut self, request: &Request<'_>, out: &mut Encoder, ctx: &mut Context<'_, H>)
    where
        H: FnMut(&Request<'_>) -> Response,
    {
        // The body's framing is checked before anything is answered: a body we refuse must
        // never be read as the next request.
        let body = match BodyDecoder::new(request.body, ctx.limits.max_body) {
            Ok(body) => body,
            Err(e) => return self.fail(e, request.method == "HEAD", out, ctx.date),
        };
        let response = route(request, ctx);
        let head_only = request.method == "HEAD";
        let persistence = if request.keep_alive && ctx.keep_alive {
            Persistence::KeepAlive(request.version)
        } else {
            Persistence::Close
        };
        // The clock for the next head (or this body) starts now.
        self.since = ctx.now;
        match body {
            None => self.respond(&response, head_only, persistence, out, ctx.date),
            Some(body) => {
                if request.expect_continue && request.version == Version::Http11 {
                    out.bytes.extend_from_slice(codec::response::CONTINUE);
                }
                self.body = Some(body);
                self.deferred = Some(Box::new(Deferred {
                    response,
                    head_only,
                    persistence,
                }));
            }
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
        self.body = None;
        self.deferred = None;
        let response = Response::text(error.status(), format!("{error}\n"));
        self.respond(&response, head_only, Persistence::Close, out, date);
    }

    /// Writes `out` (after anything already queued), keeping what the socket does not take.
    fn write_out(&mut self, out: &mut Vec<u8>, now: Instant) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        if !self.unsent.is_empty() {
            self.unsent.extend_from_slice(out);
            out.clear();
            return self.flush_unsent(now);
        }
        let written = write_some(&mut self.stream, out)?;
        if written < out.len() {
            self.unsent.extend_from_slice(&out[written..]);
            self.write_since = now;
        }
        out.clear();
        Ok(())
    }

    /// Writes queued output. Every bit of progress renews the stalled-client deadline.
    fn flush_unsent(&mut self, now: Instant) -> io::Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let written = write_some(&mut self.stream, &self.unsent)?;
        self.unsent.drain(..written);
        if written > 0 {
            self.write_since = now;
        }
        Ok(())
    }

    /// Reads and drops input while lingering; EOF ends the linger.
    fn discard_input(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match self.stream.read(buf) {
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
            // A request in flight stays Active until its response is fully written.
            State::Active
                if self.body.is_none() && self.carry.is_empty() && self.unsent.is_empty() =>
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
        if self.state == State::Idle && ctx.draining {
            return self.half_close(ctx.now);
        }
        Verdict::Open
    }

    fn become_idle(&mut self, now: Instant) {
        self.state = State::Idle;
        self.since = now;
        // Release what a burst left behind, so thousands of idle connections cost little.
        self.carry = Vec::new();
        self.unsent = Vec::new();
    }

    /// Starts the gentle close: FIN after everything written, then linger (see [`LINGER_TIMEOUT`]).
    pub fn half_close(&mut self, now: Instant) -> Verdict {
        self.carry = Vec::new();
        self.unsent = Vec::new();
        if self.peer_closed {
            return Verdict::Close;
        }
        match self.stream.shutdown_write() {
            Ok(()) => {
                self.state = State::Lingering;
                self.since = now;
                Verdict::Open
            }
            Err(_) => Verdict::Close,
        }
    }

    /// Called by the timer sweep once `deadline` has passed.
    pub fn on_timeout<H>(&mut self, scratch: &mut Scratch, ctx: &mut Context<'_, H>) -> Verdict
    where
        H: FnMut(&Request<'_>) -> Response,
    {
        match self.state {
            // Nothing was asked on this connection (recently): close without a word.
            State::New | State::Idle => self.half_close(ctx.now),
            // Output stuck behind a client that does not read: give up on it.
            State::Active | State::Closing if !self.unsent.is_empty() => Verdict::Close,
            // A head or body that did not arrive in time: 408, then close (RFC 9110 §15.5.9).
            State::Active => {
                let head_only = match &self.deferred {
                    Some(d) => d.head_only,
                    None => self.carry.starts_with(b"HEAD "),
                };
                self.fail(
                    ProtocolError::RequestTimeout,
                    head_only,
                    &mut scratch.output,
                    ctx.date,
                );
                match self.write_out(&mut scratch.output.bytes, ctx.now) {
                    Ok(()) => self.settle(ctx),
                    Err(_) => Verdict::Close,
                }
            }
            State::Closing | State::Lingering => Verdict::Close,
        }
    }

    /// Whether the write side has output the client has not taken (for the drain's counts).
    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }
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

/// The readiness path belongs to the server (its answer depends on the lifecycle); every other
/// path goes to the user's handler.
fn route<H>(request: &Request<'_>, ctx: &mut Context<'_, H>) -> Response
where
    H: FnMut(&Request<'_>) -> Response,
{
    if request.path != ctx.limits.health_path {
        return (ctx.handler)(request);
    }
    match request.method {
        "GET" | "HEAD" if ctx.ready => Response::text(200, "ok\n"),
        "GET" | "HEAD" => Response::text(503, "shutting down\n"),
        _ => Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD"),
    }
}
