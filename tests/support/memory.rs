//! An in-memory socket for driving the real connection state machine (`conn::Connection`)
//! without a kernel: the tests in tests/backpressure.rs and tests/allocations.rs, and the
//! `session` fuzz target (which includes this file by path: it is a separate crate).
//!
//! The socket's room for output is set by the caller, so the moments at which output backs up
//! are exact instead of left to the kernel's buffers.
//!
//! Nothing here allocates once its buffers have grown to a turn's size: tests/allocations.rs
//! counts every allocation on its thread, so callers that replay turns clear `written` (which
//! keeps its capacity) instead of letting it grow.
#![allow(dead_code)]

use std::io::{self, Write};
use std::time::Instant;

use lameduck::config::Config;
use std::sync::Arc;

use lameduck::conn::{Context, Limits, Phase, Transport};
use lameduck::handler::Inbox;

/// A fixed `Date` header value, so outputs can be compared byte for byte.
pub const DATE: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";

/// A socket in memory: the client's bytes that have arrived, whether the client has
/// half-closed, and what the server wrote, with a budget of bytes the socket will take before a
/// write would block.
#[derive(Default)]
pub struct Memory {
    /// The client's bytes that have arrived so far.
    pub arrived: Vec<u8>,
    /// How much of `arrived` the server has consumed (a peek looks without consuming).
    pub read_at: usize,
    /// The client has shut down its side: reads past `arrived` return EOF instead of blocking.
    pub eof: bool,
    /// What the server wrote.
    pub written: Vec<u8>,
    /// Bytes the socket will still take before a write would block.
    pub room: usize,
    /// The server has shut down its write side.
    pub shut: bool,
    /// The server asked for its close to be a reset (RST), not a FIN.
    pub reset: bool,
}

impl Memory {
    /// An empty socket that will take `room` bytes of output.
    pub fn new(room: usize) -> Memory {
        Memory {
            room,
            ..Memory::default()
        }
    }

    /// More client bytes arrive.
    pub fn arrive(&mut self, bytes: &[u8]) {
        self.arrived.extend_from_slice(bytes);
    }

    /// The client reads `n` more bytes of output: the socket takes that many more.
    pub fn give_room(&mut self, n: usize) {
        self.room = self.room.saturating_add(n);
    }
}

impl Memory {
    /// The client's bytes the server has not consumed yet: what the kernel would still hold.
    pub fn unread(&self) -> &[u8] {
        &self.arrived[self.read_at..]
    }

    /// What a read of the socket would see now: the bytes, or EOF, or "would block".
    fn available(&self) -> io::Result<&[u8]> {
        match self.unread() {
            [] if self.eof => Ok(&[]),
            [] => Err(io::ErrorKind::WouldBlock.into()),
            left => Ok(left),
        }
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(!self.shut, "write after shutdown(Write)");
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
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.available()?;
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        Ok(n)
    }

    fn consume(&mut self, n: usize) -> io::Result<usize> {
        let n = self.available()?.len().min(n);
        self.read_at += n;
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }

    fn reset(&mut self) {
        self.reset = true;
    }
}

/// The server's per-connection limits at the `Config` defaults (mapped as `Server::run` maps
/// them), so these tests follow the defaults instead of restating them.
pub fn limits() -> Limits {
    Limits::from(&Config::default())
}

/// The loop's side of replies answered later, for an in-memory connection: an inbox (woken
/// through a real `mio::Waker` of a poll nobody polls; the test takes replies itself) and the
/// serial counter.
pub struct Replies {
    pub inbox: Arc<Inbox>,
    pub serial: u64,
    _poll: mio::Poll,
}

impl Replies {
    pub fn new() -> Replies {
        let poll = mio::Poll::new().expect("poll");
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker");
        Replies {
            inbox: Inbox::new(waker),
            serial: 0,
            _poll: poll,
        }
    }
}

/// What one turn of a serving (not draining, ready, keep-alive) server tells a connection, with
/// the fixed [`DATE`]. The connection is slab index 0.
pub fn context<'a, H>(
    limits: &'a Limits,
    now: Instant,
    handler: &'a mut H,
    replies: &'a mut Replies,
) -> Context<'a, H> {
    Context {
        now,
        date: DATE,
        phase: Phase::Serving,
        budget_room: usize::MAX,
        limits,
        handler,
        inbox: &replies.inbox,
        serial: &mut replies.serial,
        pending_room: true,
        index: 0,
    }
}
