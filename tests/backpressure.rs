//! The connection state machine (`conn::Connection`, the code the server runs) under output
//! backpressure, over the in-memory transport of tests/support/memory.rs: the socket's room for
//! output is set per turn, so the moments at which output backs up are exact instead of left to
//! the kernel's buffers.
//!
//! These are deterministic versions of what the `session` fuzz target checks at random: how fast
//! a client reads its responses must never change what it is told.

mod support;

use std::time::Instant;

use lameduck::codec::{Request, Response};
use lameduck::conn::{Connection, Limits, Scratch, Verdict};
use lameduck::routes::default_handler;
use support::memory::{self, Memory};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

struct Session {
    conn: Connection<Memory>,
    scratch: Scratch,
    limits: Limits,
    open: bool,
}

impl Session {
    fn new() -> Session {
        Session {
            conn: Connection::new(Memory::default(), Instant::now()),
            scratch: Scratch::new(64 * 1024),
            limits: memory::limits(),
            open: true,
        }
    }

    /// One readiness event, with `room` more bytes of output the socket will take.
    fn turn(&mut self, room: usize, read_closed: bool) {
        self.conn.stream_mut().give_room(room);
        if !self.open {
            return;
        }
        let mut handler: fn(&Request<'_>) -> Response = default_handler;
        let mut ctx = memory::context(&self.limits, Instant::now(), &mut handler);
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
        session.conn.stream_mut().arrive(&GET.repeat(REQUESTS));
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
    session.conn.stream_mut().arrive(&GET.repeat(REQUESTS));
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
