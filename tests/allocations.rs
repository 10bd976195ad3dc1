//! "No allocation per request on the hot path", shown rather than claimed: a counting global
//! allocator around the real connection state machine (`Connection` over an in-memory stream, so
//! the test counts the server's allocations and not a socket client's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use lameduck::codec::{DateCache, HeadLimits};
use lameduck::conn::{Connection, Context, Limits, Scratch, Transport, Verdict};
use lameduck::routes::default_handler;

/// Counts every allocation and reallocation, per thread: the test harness runs tests (and
/// itself) on other threads, whose allocations are not the server's.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A byte stream that hands out one fixed input per turn and counts what is written.
struct Memory {
    input: &'static [u8],
    at: usize,
    written: usize,
    last: [u8; 16],
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        let tail = buf.len().min(16);
        self.last = [0; 16];
        self.last[..tail].copy_from_slice(&buf[buf.len() - tail..]);
        Ok(buf.len())
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

const ONE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n";

/// Requests served per turn and allocations counted over `turns` turns after a warm-up.
fn allocations_per_turn(input: &'static [u8], turns: usize) -> (usize, usize) {
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
    let mut handler = default_handler;
    let date = DateCache::default();
    let mut scratch = Scratch::new(64 * 1024);
    let stream = Memory {
        input,
        at: 0,
        written: 0,
        last: [0; 16],
    };
    let mut conn = Connection::new(stream, Instant::now());
    let mut counted = 0;
    for turn in 0..turns + 10 {
        if turn == 10 {
            counted = allocations();
        }
        conn.stream_mut().at = 0;
        let mut ctx = Context {
            now: Instant::now(),
            date: date.value(),
            keep_alive: true,
            ready: true,
            draining: false,
            limits: &limits,
            handler: &mut handler,
        };
        assert_eq!(conn.on_ready(&mut scratch, &mut ctx, false), Verdict::Open);
        assert!(conn.stream_mut().last.ends_with(b"Hello, World!"));
    }
    let allocations = allocations() - counted;
    (conn.served() as usize / (turns + 10), allocations)
}

#[test]
fn keep_alive_requests_allocate_nothing() {
    let (per_turn, allocations) = allocations_per_turn(ONE, 10_000);
    assert_eq!(per_turn, 1);
    assert_eq!(
        allocations, 0,
        "allocations over 10 000 keep-alive requests"
    );
}

#[test]
fn pipelined_batches_allocate_nothing() {
    let batch: &'static [u8] = ONE.repeat(16).leak();
    let (per_turn, allocations) = allocations_per_turn(batch, 1_000);
    assert_eq!(per_turn, 16);
    assert_eq!(allocations, 0, "allocations over 16 000 pipelined requests");
}
