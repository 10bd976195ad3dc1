//! The connection state machine (`conn::Connection`, the code the server runs) under output
//! backpressure, over the in-memory transport of tests/support/memory.rs: the socket's room for
//! output is set per turn, so the moments at which output backs up are exact instead of left to
//! the kernel's buffers.
//!
//! These are deterministic versions of what the `session` fuzz target checks at random: how fast
//! a client reads its responses must never change what it is told. They also pin down where the
//! bytes of a client that does not read live: its requests in the kernel (here: the bytes of
//! `Memory::arrived` not yet consumed), at most a small queue of output with us.

mod support;

use std::time::Instant;

use lameduck::codec::{Request, Response};
use lameduck::conn::{Connection, Limits, OUTPUT_HIGH_WATER, Scratch, Verdict};
use lameduck::routes::default_handler;
use support::memory::{self, Memory, Replies};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

struct Session {
    conn: Connection<Memory>,
    scratch: Scratch,
    limits: Limits,
    replies: Replies,
    open: bool,
}

impl Session {
    fn new() -> Session {
        Session {
            conn: Connection::new(Memory::default(), Instant::now()),
            scratch: Scratch::new(64 * 1024),
            limits: memory::limits(),
            replies: Replies::new(),
            open: true,
        }
    }

    /// One readiness event, with `room` more bytes of output the socket will take.
    fn turn(&mut self, room: usize, read_closed: bool) {
        self.turn_with_budget(room, read_closed, usize::MAX);
    }

    /// One readiness event with `budget_room` bytes left of the server-wide budget.
    fn turn_with_budget(&mut self, room: usize, read_closed: bool, budget_room: usize) {
        self.conn.stream_mut().give_room(room);
        if !self.open {
            return;
        }
        let mut handler: fn(&Request<'_>) -> Response = default_handler;
        let mut ctx = memory::context(
            &self.limits,
            Instant::now(),
            &mut handler,
            &mut self.replies,
        );
        ctx.budget_room = budget_room;
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

/// The length of one response to `GET /`.
fn response_len() -> usize {
    let mut session = Session::new();
    session.conn.stream_mut().arrive(GET);
    session.turn(usize::MAX, false);
    session.conn.stream_mut().written.len()
}

/// A client that pipelines and never reads costs us its capped output queue and nothing else:
/// every request we have not answered stays in the kernel, byte for byte. (Before, the server
/// copied up to 64 KiB of them into the connection and queued 64 KiB of output: about 120 kB
/// pinned per such client.)
#[test]
fn a_client_that_does_not_read_costs_only_the_output_cap() {
    const REQUESTS: usize = 5000;
    let mut session = Session::new();
    session.conn.stream_mut().arrive(&GET.repeat(REQUESTS));
    for _ in 0..10 {
        session.turn(0, false);
    }
    let answered = session.conn.served() as usize;
    assert!(answered > 0, "nothing answered");
    assert!(
        session.conn.buffered() <= OUTPUT_HIGH_WATER + response_len(),
        "{} bytes queued for a client that does not read",
        session.conn.buffered()
    );
    assert_eq!(
        session.conn.stream_mut().unread().len(),
        (REQUESTS - answered) * GET.len(),
        "the requests not answered yet must stay in the kernel"
    );
    // Once the client reads, everything is answered, and nothing is held any more.
    for _ in 0..10_000 {
        session.turn(usize::MAX, false);
        if session.conn.served() as usize == REQUESTS {
            break;
        }
    }
    assert_eq!(session.responses(), REQUESTS);
    assert_eq!(session.conn.buffered(), 0);
}

/// An unfinished head is the one input we hold ourselves (leaving it in the kernel can shut the
/// TCP window for good: see `Connection::hold`), and it counts as buffered; once the head is
/// complete and answered, nothing is held.
#[test]
fn an_unfinished_head_is_held_and_counted() {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n",
        "p".repeat(5000)
    );
    let mut session = Session::new();
    session.conn.stream_mut().arrive(head.as_bytes());
    session.turn(usize::MAX, false);
    assert_eq!(session.conn.buffered(), head.len());
    assert!(session.conn.stream_mut().unread().is_empty());
    session.conn.stream_mut().arrive(b"\r\n");
    session.turn(usize::MAX, false);
    assert_eq!(session.responses(), 1);
    assert_eq!(session.conn.buffered(), 0);
}

/// The budget limits what is buffered, never who is served: with no room left at all, a whole
/// request without a body is still answered (it needs nothing held), while an unfinished head
/// (which would be copied out) and a body still to arrive (which would be collected) wait in the
/// kernel, unread, and go on once there is room.
#[test]
fn a_spent_budget_holds_back_only_what_needs_buffering() {
    let mut session = Session::new();
    session.conn.stream_mut().arrive(GET);
    session.turn_with_budget(usize::MAX, false, 0);
    assert_eq!(session.responses(), 1, "a bodiless request needs no budget");
    assert!(session.conn.stream_mut().unread().is_empty());

    let partial = b"GET / HTTP/1.1\r\nHost:";
    session.conn.stream_mut().arrive(partial);
    session.turn_with_budget(usize::MAX, false, 0);
    assert_eq!(session.conn.buffered(), 0, "nothing held without room");
    assert_eq!(session.conn.stream_mut().unread(), partial);
    session.turn_with_budget(usize::MAX, false, 1024);
    assert_eq!(session.conn.buffered(), partial.len());
    session.conn.stream_mut().arrive(b" t\r\n\r\n");
    session.turn(usize::MAX, false);
    assert_eq!(session.responses(), 2);

    let upload = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n";
    session.conn.stream_mut().arrive(upload);
    session.turn_with_budget(usize::MAX, false, 99);
    assert_eq!(
        session.conn.stream_mut().unread(),
        upload,
        "no room for its 100 bytes"
    );
    session.turn_with_budget(usize::MAX, false, upload.len() + 100);
    assert!(session.conn.stream_mut().unread().is_empty());
    // Counted at its declared length from the start: it will never need more.
    assert_eq!(session.conn.buffered(), upload.len() + 100);
    session.conn.stream_mut().arrive(&[b'x'; 100]);
    session.turn_with_budget(usize::MAX, false, 0);
    assert_eq!(session.conn.buffered(), 0);
    let out = String::from_utf8_lossy(&session.conn.stream_mut().written).into_owned();
    assert_eq!(out.matches("HTTP/1.1 ").count(), 3, "{out}");
}
