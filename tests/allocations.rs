//! "No allocation per request on the hot path", shown rather than claimed: a counting global
//! allocator around the real connection state machine (`Connection` over the in-memory stream of
//! tests/support/memory.rs, so the test counts the server's allocations and not a socket
//! client's).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use lameduck::conn::{Connection, Scratch, Verdict};
use lameduck::routes::default_handler;
use support::memory::{self, Memory, Replies};

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

const ONE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n";

/// Requests served per turn and allocations counted over `turns` turns after a warm-up. Every
/// turn the same `input` arrives again and the socket takes all output.
fn allocations_per_turn(input: &[u8], turns: usize) -> (usize, usize) {
    let limits = memory::limits();
    let mut handler = default_handler;
    let mut scratch = Scratch::new(64 * 1024);
    let mut stream = Memory::new(usize::MAX);
    stream.arrive(input);
    let mut conn = Connection::new(stream, Instant::now());
    let mut replies = Replies::new();
    let mut counted = 0;
    for turn in 0..turns + 10 {
        if turn == 10 {
            counted = allocations();
        }
        // Replay the input and forget the last turn's output. `clear` keeps the buffer, so after
        // the warm-up the transport itself allocates nothing.
        let stream = conn.stream_mut();
        stream.read_at = 0;
        stream.written.clear();
        let mut ctx = memory::context(&limits, Instant::now(), &mut handler, &mut replies);
        assert_eq!(conn.on_ready(&mut scratch, &mut ctx, false), Verdict::Open);
        assert!(conn.stream_mut().written.ends_with(b"Hello, World!"));
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
    let (per_turn, allocations) = allocations_per_turn(&ONE.repeat(16), 1_000);
    assert_eq!(per_turn, 16);
    assert_eq!(allocations, 0, "allocations over 16 000 pipelined requests");
}
