//! The connection state machine (`conn::Connection`, the code the server runs) under output
//! backpressure, over an in-memory transport: the socket's room for output is set per turn, so
//! the moments at which output backs up are exact instead of left to the kernel's buffers.
//!
//! These are deterministic versions of what the `session` fuzz target checks at random: how fast
//! a client reads its responses must never change what it is told.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use lameduck::codec::{HeadLimits, Request, Response};
use lameduck::conn::{Connection, Context, Limits, Scratch, Transport, Verdict};
use lameduck::routes::default_handler;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// A socket in memory: what the client sent, whether it has half-closed, and what the server
/// wrote, with a budget of bytes the socket will take before a write would block.
#[derive(Default)]
struct Memory {
    sent: Vec<u8>,
    read_at: usize,
    eof: bool,
    written: Vec<u8>,
    room: usize,
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.sent[self.read_at..];
        if left.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.read_at += n;
        Ok(n)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.room);
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.room -= n;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Memory {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Session {
    conn: Connection<Memory>,
    scratch: Scratch,
    limits: Limits,
    open: bool,
}

impl Session {
    fn new() -> Session {
        let limits = Limits {
            head: HeadLimits {
                max_head_bytes: 8192,
                max_target_bytes: 4096,
            },
            max_body: 1 << 20,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            health_path: "/health".to_string(),
        };
        Session {
            conn: Connection::new(Memory::default(), Instant::now()),
            scratch: Scratch::new(64 * 1024),
            limits,
            open: true,
        }
    }

    /// One readiness event, with `room` more bytes of output the socket will take.
    fn turn(&mut self, room: usize, read_closed: bool) {
        let stream = self.conn.stream_mut();
        stream.room = stream.room.saturating_add(room);
        if !self.open {
            return;
        }
        let mut handler: fn(&Request<'_>) -> Response = default_handler;
        let mut ctx = Context {
            now: Instant::now(),
            date: b"Thu, 01 Jan 1970 00:00:00 GMT",
            keep_alive: true,
            ready: true,
            draining: false,
            limits: &self.limits,
            handler: &mut handler,
        };
        if self.conn.on_ready(&mut self.scratch, &mut ctx, read_closed) == Verdict::Close {
            self.open = false;
        }
    }

    /// Responses in the output so far (every `default_handler` response to `GET /` is 200).
    fn responses(&mut self) -> usize {
        let out = &self.conn.stream_mut().written;
        out.windows(12).filter(|w| w == b"HTTP/1.1 200").count()
    }
}

/// The same 3 000 pipelined requests, read by the client at different paces, always get 3 000
/// responses.
#[test]
fn every_pipelined_request_is_answered_at_any_read_pace() {
    const REQUESTS: usize = 3000;
    for room in [usize::MAX, 100_000, 4096, 1000, 1] {
        let mut session = Session::new();
        session.conn.stream_mut().sent = GET.repeat(REQUESTS);
        for _ in 0..100_000 {
            session.turn(room, false);
            if session.conn.stream_mut().read_at == REQUESTS * GET.len()
                && !session.conn.has_unsent()
            {
                break;
            }
        }
        session.turn(usize::MAX, false);
        assert_eq!(
            session.responses(),
            REQUESTS,
            "with {room} bytes of room per turn"
        );
    }
}

/// The client sends its requests and half-closes at once (RFC 9112 §9.6 lets it), then reads
/// slowly. The server sees the EOF while responses are backed up behind the output cap; the
/// requests it has read but not yet answered must still be answered.
///
/// Regression (found by the `session` fuzz target): conn.rs dropped these requests. Step by
/// step: 3 000 pipelined `GET /` (81 KB) and the EOF are all there; each turn the socket takes
/// 1 000 bytes of output, until the server has read every request (most of them still
/// unanswered behind the 64 KiB output cap); one more such turn: the flush brings the queued
/// output under the cap, so the connection reads again, sees the EOF, answers up to the cap and
/// cannot write it all. That state ("peer closed, output queued") used to become `Closing`, which
/// dropped the requests not yet answered. Then the socket takes everything.
#[test]
fn requests_before_a_half_close_are_all_answered_under_backpressure() {
    const REQUESTS: usize = 3000;
    let mut session = Session::new();
    session.conn.stream_mut().sent = GET.repeat(REQUESTS);
    session.conn.stream_mut().eof = true;
    // The client reads 1 000 bytes per turn until the server has read every request...
    while session.conn.stream_mut().read_at < REQUESTS * GET.len() {
        session.turn(1000, true);
    }
    // ...and one more turn at that pace: now the server reads the EOF with output still queued.
    session.turn(1000, true);
    // Then the client reads everything.
    for _ in 0..100 {
        session.turn(usize::MAX, true);
    }
    assert_eq!(
        session.responses(),
        REQUESTS,
        "responses to requests sent before the client's EOF"
    );
}
