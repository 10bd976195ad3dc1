//! Fuzz target `session`: the whole connection state machine (`conn::Connection`, the code the
//! server runs), bytes in → bytes out, over an in-memory transport instead of a socket.
//!
//! The same client bytes are played twice:
//! - the reference: everything in one read, a socket that takes every write, then the client's
//!   EOF (if the input asks for one);
//! - the replay: the bytes cut into reads at fuzzer-chosen points, a socket that takes only a
//!   fuzzer-chosen number of bytes per turn (so output backs up and the connection must stop
//!   reading), readiness events that arrive whether or not anything changed (mio's events may be
//!   spurious), then the same EOF.
//!
//! Checked: no panic; nothing is written after the write side is shut down; the output is a
//! sequence of complete responses (status line, `Content-Length`, body of that length; 1xx, 204
//! and 304 with neither) with documented statuses, and nothing follows a `Connection: close`
//! response; and the replay's output is byte for byte the reference's: how a client's bytes are
//! split into reads, and how fast it reads its responses, must never change what it is told.
//!
//! A third play, when the input asks for it, fires the header timeout at a fuzzer-chosen turn and
//! checks only that the output stays well-formed.
//!
//! Input layout: byte 0 picks limits, options and the lifecycle phase (bits 4-5: serving, lame
//! duck, draining), bytes 1..8 seed the cutting; the rest is what
//! the client sends. `HEAD` is rewritten to `HEAX` so that every response's body length can be
//! read off its own `Content-Length` (a HEAD response announces a body it does not carry).

#![no_main]

/// The in-memory socket, shared with tests/backpressure.rs and tests/allocations.rs (this crate
/// cannot depend on the root crate's tests, so the file is included by path).
#[path = "../../tests/support/memory.rs"]
mod memory;

use std::time::Instant;

use lameduck::codec::{HeadLimits, Request, Response};
use lameduck::conn::{Connection, Limits, Phase, Scratch, Verdict};
use libfuzzer_sys::fuzz_target;
use memory::Memory;

/// Whether the replay may deliver the client's EOF while responses are backed up. With it on,
/// this target found within seconds that conn.rs dropped the requests it had read but not yet
/// answered when it read an EOF with output queued (fixed; regression input
/// `seeds/session/regression-eof-under-backpressure`, regression test in tests/backpressure.rs).
/// A switch so that a bug found here can be fenced off while it is fixed, without losing the rest.
const EOF_UNDER_BACKPRESSURE: bool = true;

/// Statuses the server may send with this target's handler, and the ones whose framing differs
/// (204, 205, 304: no content), so that [`check_well_formed`] stays right for a handler that
/// answers them.
const STATUSES: &[u16] = &[
    100, 200, 204, 205, 304, 405, 400, 408, 413, 414, 417, 431, 501, 505,
];

/// `output` without its interim `100 Continue` responses.
fn without_continue(output: &[u8]) -> Vec<u8> {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut kept = Vec::with_capacity(output.len());
    let mut at = 0;
    while at < output.len() {
        if output[at..].starts_with(CONTINUE) {
            at += CONTINUE.len();
        } else {
            kept.push(output[at]);
            at += 1;
        }
    }
    kept
}

/// A tiny deterministic generator for the cutting, seeded by the input.
struct Cuts(u64);

impl Cuts {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A length in 1..=max, biased towards small ones.
    fn len(&mut self, max: usize) -> usize {
        let r = self.next();
        let cap = match r % 4 {
            0 => 1,
            1 => 8,
            2 => 512,
            _ => max,
        };
        1 + (r >> 8) as usize % cap.min(max).max(1)
    }
}

/// One connection and everything it needs to run.
struct Session {
    conn: Connection<Memory>,
    scratch: Scratch,
    limits: Limits,
    now: Instant,
    /// The server's lifecycle phase for the whole play.
    phase: Phase,
    replies: memory::Replies,
    open: bool,
}

impl Session {
    fn new(limits: Limits, phase: Phase, room: usize) -> Session {
        let now = Instant::now();
        Session {
            conn: Connection::new(Memory::new(room), now),
            scratch: Scratch::new((64 * 1024).max(limits.head.max_head_bytes + 1)),
            limits,
            now,
            phase,
            replies: memory::Replies::new(),
            open: true,
        }
    }

    /// A readiness event (possibly spurious).
    fn event(&mut self, read_closed: bool) {
        if !self.open {
            return;
        }
        let mut handler: fn(&Request<'_>) -> Response = handler;
        let mut ctx = memory::context(&self.limits, self.now, &mut handler, &mut self.replies);
        ctx.phase = self.phase;
        if self.conn.on_ready(&mut self.scratch, &mut ctx, read_closed) == Verdict::Close {
            self.open = false;
        }
    }

    /// The connection's deadline passed.
    fn timeout(&mut self) {
        if !self.open {
            return;
        }
        self.now = self.conn.deadline(&self.limits).max(self.now);
        let mut handler: fn(&Request<'_>) -> Response = handler;
        let mut ctx = memory::context(&self.limits, self.now, &mut handler, &mut self.replies);
        ctx.phase = self.phase;
        if self.conn.on_tick(&mut self.scratch, &mut ctx) == Some(Verdict::Close) {
            self.open = false;
        }
    }

    fn arrive(&mut self, bytes: &[u8]) {
        self.conn.stream_mut().arrive(bytes);
    }

    fn close_client(&mut self) {
        self.conn.stream_mut().eof = true;
    }

    fn give_room(&mut self, n: usize) {
        self.conn.stream_mut().give_room(n);
    }

    /// Lets the socket take everything and delivers events until nothing changes any more.
    fn settle(&mut self, read_closed: bool) {
        self.give_room(usize::MAX);
        for _ in 0..64 {
            let before = self.progress();
            self.event(read_closed);
            if self.progress() == before {
                return;
            }
        }
        panic!("the connection never settles");
    }

    fn progress(&mut self) -> (bool, usize, usize) {
        let stream = self.conn.stream_mut();
        (self.open, stream.read_at, stream.written.len())
    }

    fn output(&mut self) -> &[u8] {
        &self.conn.stream_mut().written
    }
}

/// This target's handler: every path 200 (the readiness path is the server's), with a body of
/// 1 KiB per byte of path, so that a few kilobytes of input can fill the connection's output cap
/// (`OUTPUT_HIGH_WATER`, 64 KiB) and reach the code that stops reading a client that does not read.
fn handler(request: &Request<'_>) -> Response {
    Response::text(200, "x".repeat(request.path.len() * 1024))
}

/// Checks that `out` is a sequence of complete, documented responses, none after a close.
fn check_well_formed(out: &[u8]) {
    let mut at = 0;
    while at < out.len() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&out[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "bad response at {at}: {other:?}: {:?}",
                String::from_utf8_lossy(&out[at..])
            ),
        };
        let status = response.code.unwrap_or(0);
        assert!(STATUSES.contains(&status), "status {status}");
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        at += head_len;
        let length: Option<usize> = header("content-length").map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("status {status}: bad Content-Length {v:?}"))
        });
        if status < 200 {
            assert_eq!(length, None, "interim {status} with Content-Length");
            continue;
        }
        assert!(header("date").is_some(), "status {status} without Date");
        // RFC 9110 §6.4.1, §8.6, §15.3.6: a 204 or 304 ends at its head, without a length; a 205
        // announces 0. Content after a 204 or 304 fails to parse as the next response above.
        let length = match status {
            204 | 304 => {
                assert_eq!(length, None, "status {status} with Content-Length");
                0
            }
            205 => {
                assert_eq!(length, Some(0), "205 with content");
                0
            }
            _ => length.unwrap_or_else(|| panic!("status {status} without Content-Length")),
        };
        assert!(at + length <= out.len(), "truncated body");
        at += length;
        let closes = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        if status >= 400 && status != 405 {
            assert!(closes, "error {status} without Connection: close");
        }
        if closes {
            assert_eq!(at, out.len(), "bytes after a Connection: close response");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [config, s0, s1, s2, s3, s4, s5, s6, rest @ ..] = data else {
        return;
    };
    let seed = u64::from_le_bytes([*s0, *s1, *s2, *s3, *s4, *s5, *s6, 1]);
    let mut input = rest.to_vec();
    for i in 0..input.len().saturating_sub(3) {
        if &input[i..i + 4] == b"HEAD" {
            input[i + 3] = b'X';
        }
    }
    let mut limits = memory::limits();
    if config & 1 != 0 {
        limits.head = HeadLimits {
            max_head_bytes: 64,
            max_target_bytes: 24,
        };
    }
    if config & 2 != 0 {
        limits.max_body = 16;
    }
    let client_closes = config & 4 != 0;
    let with_timeout = config & 8 != 0;
    // Any phase: after SIGTERM every response must say `Connection: close`, however it is cut.
    let phase = match (config >> 4) & 3 {
        1 => Phase::LameDuck,
        2 => Phase::Draining {
            since: Instant::now(),
            idle_grace: std::time::Duration::ZERO,
        },
        _ => Phase::Serving,
    };

    // The reference play.
    let mut reference = Session::new(limits.clone(), phase, usize::MAX);
    reference.arrive(&input);
    reference.event(false);
    reference.settle(false);
    if client_closes {
        reference.close_client();
        reference.settle(true);
    }
    let expected = reference.output().to_vec();
    check_well_formed(&expected);
    if phase != Phase::Serving && !expected.is_empty() {
        // Nothing may follow a `Connection: close` response, so this is the one final answer.
        assert!(
            expected.windows(19).any(|w| w == b"Connection: close\r\n"),
            "a response written after SIGTERM without Connection: close"
        );
    }

    // The replay: cut reads, a slow reader, spurious events.
    let mut cuts = Cuts(seed);
    let mut replay = Session::new(limits.clone(), phase, 0);
    let mut at = 0;
    while at < input.len() {
        let n = cuts.len(input.len() - at);
        replay.arrive(&input[at..at + n]);
        at += n;
        let room = cuts.len(4096);
        replay.give_room(room);
        replay.event(false);
        if cuts.next().is_multiple_of(4) {
            replay.event(false);
        }
    }
    if client_closes && EOF_UNDER_BACKPRESSURE {
        // The client half-closes at once, perhaps while its responses are still backed up.
        replay.close_client();
        replay.event(true);
        for _ in 0..8 {
            replay.give_room(cuts.len(64 * 1024));
            replay.event(true);
        }
        replay.settle(true);
    } else {
        replay.settle(false);
        if client_closes {
            replay.close_client();
            replay.settle(true);
        }
    }
    check_well_formed(replay.output());
    // `100 Continue` is the one thing the cuts may change: a server may leave it out when the
    // body has already arrived (RFC 9110 §10.1.1), and whether it has depends on where the reads
    // were cut. Every final response must still be the same, byte for byte.
    let got = without_continue(replay.output());
    let expected = without_continue(&expected);
    assert!(
        got == expected,
        "output depends on read cuts / write pace:\nreference: {:?}\nreplay:    {:?}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(&got)
    );

    // A play where the header timeout fires at some turn: only well-formedness is checked.
    if with_timeout {
        let mut cuts = Cuts(seed ^ 0x9e37_79b9_7f4a_7c15);
        let fire_at = cuts.len(input.len().max(1));
        // A socket that takes everything: a timeout with output still queued rightly drops the
        // connection mid-response, which is not what this play looks at.
        let mut timed = Session::new(limits, phase, usize::MAX);
        let mut at = 0;
        let mut fired = false;
        while at < input.len() {
            let n = cuts.len(input.len() - at);
            timed.arrive(&input[at..at + n]);
            at += n;
            timed.event(false);
            if !fired && at >= fire_at {
                fired = true;
                timed.timeout();
            }
        }
        if !fired {
            timed.timeout();
        }
        timed.settle(false);
        let out = timed.output().to_vec();
        check_well_formed(&out);
    }
});
