//! Real work in flight, through the real example program `examples/slow_work.rs` (blocking
//! handlers on a worker pool, answers through reply handles): the lifecycle waits for work in
//! flight, bounds it, and the loop never waits for it.
//!
//! Plain `cargo test` builds the examples before it runs the tests (see
//! [`support::start_example`]).

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::SystemTime;

use support::{
    Lameduck, PROMPT, TempDir, field, get, read_response, receive_until_close, request,
    start_example,
};

fn start(dir: &TempDir, args: &[&str]) -> Lameduck {
    start_example("slow_work", dir, args)
}

/// Sends `raw` on a new connection, then makes sure the server has read it: a request on a
/// second connection is answered only after the events before it (epoll reports ready sockets
/// in the order they became ready).
fn send_and_settle(server: &Lameduck, raw: &[u8]) -> TcpStream {
    let mut stream = server.connect();
    stream.write_all(raw).expect("write");
    assert_eq!(request(server.addr, &get("/health")).status, 200);
    stream
}

/// A 2 s request in flight at SIGTERM is answered in full, with `Connection: close`, during
/// DRAIN, and the process exits 0, counting it as served after the signal.
#[test]
fn a_slow_request_in_flight_at_sigterm_is_answered_during_drain() {
    let dir = TempDir::new();
    let mut server = start(&dir, &["--shutdown-delay", "0"]);
    let stream = send_and_settle(&server, &get("/sleep?ms=2000"));
    server.signal(libc::SIGTERM);
    let drain = server.wait_for("event=drain");
    assert_eq!(field(&drain, "pending"), Some("1"), "{drain}");
    let response = read_response(&mut BufReader::new(stream), false).expect("the answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"slept 2000 ms\n");
    assert!(response.closes(), "{}", response.head);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    let exit = server.wait_for("event=exit");
    assert_eq!(field(&exit, "served_after_signal"), Some("1"), "{exit}");
    assert_eq!(field(&exit, "abandoned"), Some("0"), "{exit}");
}

/// Work longer than `--drain-timeout` is abandoned at FORCE: exit 1, and counted.
#[test]
fn work_longer_than_the_drain_timeout_is_abandoned_and_counted() {
    let dir = TempDir::new();
    let mut server = start(&dir, &["--shutdown-delay", "0", "--drain-timeout", "1s"]);
    let mut stream = send_and_settle(&server, &get("/sleep?ms=30000"));
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(1));
    let exit = server.wait_for("event=exit");
    assert_eq!(field(&exit, "outcome"), Some("forced"), "{exit}");
    assert_eq!(field(&exit, "abandoned"), Some("1"), "{exit}");
    let received = receive_until_close(&mut stream, PROMPT);
    assert!(received.bytes.is_empty(), "{received}");
}

/// A 1 MiB upload sent slowly across the ANNOUNCE → DRAIN boundary is read, handled and
/// answered.
#[test]
fn a_slow_upload_across_announce_and_drain_is_answered() {
    const SIZE: usize = 1024 * 1024;
    let dir = TempDir::new();
    let mut server = start(&dir, &["--shutdown-delay", "1s"]);
    let head = format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n");
    let body = vec![b'x'; SIZE];
    let mut stream = send_and_settle(&server, head.as_bytes());
    stream.write_all(&body[..SIZE / 2]).expect("first half");
    server.signal(libc::SIGTERM);
    server.wait_for("event=announce");
    stream
        .write_all(&body[SIZE / 2..SIZE * 3 / 4])
        .expect("third quarter");
    server.wait_for("event=drain");
    stream
        .write_all(&body[SIZE * 3 / 4..])
        .expect("last quarter");
    let response = read_response(&mut BufReader::new(stream), false).expect("the answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, format!("bytes={SIZE}\n").as_bytes());
    assert!(response.closes(), "{}", response.head);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}

/// While 1,000 slow requests wait for workers, the loop goes on: `/` and `/health` on other
/// connections are answered (read with the usual bound, nothing slept), and the liveness file
/// keeps being refreshed.
#[test]
fn a_thousand_pending_requests_do_not_stop_the_loop() {
    raise_descriptor_limit(4096);
    let dir = TempDir::new();
    let mut server = start(&dir, &["--heartbeat", "100ms", "--drain-timeout", "1s"]);
    let pending: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(&get("/sleep?ms=60000")).expect("write");
            stream
        })
        .collect();
    assert_eq!(request(server.addr, &get("/health")).status, 200);
    assert_eq!(request(server.addr, &get("/")).status, 200);
    let before = modified(&server.live_file);
    support::eventually("the liveness file is refreshed", || {
        modified(&server.live_file) > before
    });
    server.signal(libc::SIGINT);
    let drain = server.wait_for("event=drain");
    assert_eq!(field(&drain, "pending"), Some("1000"), "{drain}");
    assert_eq!(server.wait_exit(PROMPT).code(), Some(1));
    let exit = server.wait_for("event=exit");
    assert_eq!(field(&exit, "abandoned"), Some("1000"), "{exit}");
    drop(pending);
}

/// A client that goes away while its answer is pending is cleaned up at once: the drain that
/// follows finds no connection left and exits 0 without waiting for the work.
#[test]
fn a_client_that_leaves_while_pending_is_cleaned_up() {
    let dir = TempDir::new();
    let mut server = start(&dir, &[]);
    let stream = send_and_settle(&server, &get("/sleep?ms=30000"));
    drop(stream);
    // The server has seen the EOF once a later connection is answered.
    assert_eq!(request(server.addr, &get("/health")).status, 200);
    server.signal(libc::SIGINT);
    let drain = server.wait_for("event=drain");
    assert_eq!(field(&drain, "open"), Some("0"), "{drain}");
    assert_eq!(field(&drain, "pending"), Some("0"), "{drain}");
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}

/// `--handler-timeout`: a request waiting longer is answered 503 and closed.
#[test]
fn a_request_waiting_past_the_handler_timeout_gets_503() {
    let dir = TempDir::new();
    let server = start(&dir, &["--handler-timeout", "300ms"]);
    let mut stream = server.connect();
    stream.write_all(&get("/sleep?ms=5000")).expect("write");
    let response = read_response(&mut BufReader::new(stream), false).expect("503");
    assert_eq!(response.status, 503);
    assert!(response.closes(), "{}", response.head);
}

/// `--max-pending`: over it a request is answered 503 with `Retry-After` at once, and the bound
/// being reached is one log line.
#[test]
fn over_max_pending_a_request_gets_503_with_retry_after() {
    let dir = TempDir::new();
    let mut server = start(&dir, &["--max-pending", "2"]);
    let _first = send_and_settle(&server, &get("/sleep?ms=30000"));
    let _second = send_and_settle(&server, &get("/sleep?ms=30000"));
    server.wait_for("event=pending_full");
    let response = request(server.addr, &get("/sleep?ms=30000"));
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("1"));
    // Answers that need no reply handle are not affected.
    assert_eq!(request(server.addr, &get("/")).status, 200);
}

/// Pipelined behind a pending request, a fast request is answered after it, in order.
#[test]
fn responses_stay_in_order_behind_a_pending_request() {
    let dir = TempDir::new();
    let server = start(&dir, &[]);
    let mut stream = server.connect();
    let mut pipelined = get("/sleep?ms=300");
    pipelined.extend(get("/"));
    stream.write_all(&pipelined).expect("write");
    let mut reader = BufReader::new(stream);
    let first = read_response(&mut reader, false).expect("first");
    let second = read_response(&mut reader, false).expect("second");
    assert_eq!(first.body, b"slept 300 ms\n");
    assert_eq!(second.body, b"Hello, World!");
}

fn modified(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A thousand clients and their thousand server-side connections need more descriptors than a
/// default soft limit of 1024; the child inherits the raised limit.
fn raise_descriptor_limit(want: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}
