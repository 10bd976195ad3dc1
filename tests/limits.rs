//! Resource limits under attack-shaped load, against the real binary: slowloris, descriptor
//! exhaustion, `--max-conns`, and a client that pipelines without reading its responses.
//!
//! Resource use is measured from `/proc` (CPU ticks, resident memory), never as a wall-clock
//! speed: these tests assert what the server consumes, not how fast a shared machine runs it.
//! Synchronisation is by reading (a response, an EOF, a log line); the only fixed waits are the
//! slow clients' pacing (the attack itself) and the windows over which CPU use and "not
//! answered" are observed.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::{Lameduck, read_response};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// Sends `GET /` on an open connection and expects a keep-alive 200.
fn get_ok(reader: &mut BufReader<TcpStream>) {
    reader.get_mut().write_all(GET).expect("write GET");
    let response = read_response(reader, false).expect("read response");
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(!response.closes(), "{}", response.head);
}

/// A new connection that has been served once and stays open.
fn served_connection(server: &Lameduck) -> BufReader<TcpStream> {
    let mut reader = BufReader::new(server.connect());
    get_ok(&mut reader);
    reader
}

/// True when nothing at all has arrived on `stream` (no bytes, no EOF, no reset) right now.
fn nothing_received(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let quiet = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    quiet
}

/// Waits `window` for a response on `reader` and returns true if none came (and the connection
/// was neither closed nor reset): the client is still waiting.
fn unanswered_for(reader: &mut BufReader<TcpStream>, window: Duration) -> bool {
    let stream = reader.get_ref();
    stream.set_read_timeout(Some(window)).expect("read timeout");
    let result = reader.fill_buf().map(|buf| buf.len());
    reader
        .get_ref()
        .set_read_timeout(Some(support::PROMPT))
        .expect("read timeout");
    matches!(result, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Reads EOF (or a reset) on `reader`: the server has closed.
fn closed(reader: &mut BufReader<TcpStream>) -> bool {
    let mut byte = [0u8; 1];
    match reader.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
    }
}

/// User + system CPU time of `pid` so far, from `/proc/PID/stat`.
fn cpu_time(pid: libc::pid_t) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf takes no pointers.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Resident memory of `pid` in KiB, from `/proc/PID/status`.
fn resident_kib(pid: libc::pid_t) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Descriptors `pid` has open below `limit`. Only those count against `RLIMIT_NOFILE`: a
/// descriptor inherited above it (a build tool's jobserver pipe, say) takes no slot.
fn descriptors_below(pid: libc::pid_t, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < limit)
        .count()
}

/// `n` clients that connect and write `GET /` each. connect() returning means the handshake is
/// done, so while the server takes no more connections they wait in its backlog.
fn queue_requests(server: &Lameduck, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(GET).expect("write GET");
            stream
        })
        .collect()
}

/// Pipelines `GET /` on `stream` without reading until a write makes no progress for `stall`
/// (the server has stopped reading and every buffer on the way is full); returns how many whole
/// requests were sent.
fn fill_until_stalled(stream: &mut TcpStream, stall: Duration) -> usize {
    /// If the server had not stopped reading by then, it is buffering without bound.
    const GIVE_UP_BYTES: usize = 256 * 1024 * 1024;
    stream
        .set_write_timeout(Some(stall))
        .expect("write timeout");
    let batch = GET.repeat(4096);
    let mut sent = 0usize;
    'flood: loop {
        let mut at = 0;
        while at < batch.len() {
            match stream.write(&batch[at..]) {
                Ok(n) => at += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    sent += at;
                    break 'flood;
                }
                Err(e) => panic!("flood write failed after {sent} bytes: {e}"),
            }
        }
        sent += at;
        assert!(
            sent < GIVE_UP_BYTES,
            "the server read {sent} bytes of requests without its responses being read"
        );
    }
    stream
        .set_write_timeout(Some(support::PROMPT))
        .expect("write timeout");
    sent / GET.len()
}

/// Slowloris: many connections each trickle a request head, a byte at a time, never finishing
/// it. A normal client must still be served while they hold their connections, and each of them
/// must get a 408 and a close at the header timeout, however recently it sent a byte: trickling
/// does not extend the deadline.
#[test]
fn slowloris_is_cut_off_at_the_header_timeout_and_starves_no_one() {
    const SLOW_CLIENTS: usize = 100;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    let server = Lameduck::start(&["--header-timeout", "3s"]);

    let first_byte = Instant::now();
    let slow: Vec<TcpStream> = (0..SLOW_CLIENTS)
        .map(|_| {
            let mut stream = server.connect();
            stream
                .write_all(b"GET / HTTP/1.1\r\n")
                .expect("start slow head");
            stream
        })
        .collect();
    let done: Arc<Vec<AtomicBool>> =
        Arc::new((0..SLOW_CLIENTS).map(|_| AtomicBool::new(false)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = {
        let mut writers: Vec<TcpStream> =
            slow.iter().map(|s| s.try_clone().expect("clone")).collect();
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        thread::spawn(move || {
            // One header byte per connection every 100 ms: the attack's own pacing.
            let trickle = b"X-Slow: 1\r\n";
            let mut at = 0;
            while !stop.load(Ordering::Relaxed) {
                for (i, writer) in writers.iter_mut().enumerate() {
                    if !done[i].load(Ordering::Relaxed)
                        && writer.write_all(&trickle[at..=at]).is_err()
                    {
                        done[i].store(true, Ordering::Relaxed);
                    }
                }
                at = (at + 1) % trickle.len();
                thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // A normal client, on new connections and on a kept-alive one, is served while every slow
    // client still holds its connection.
    let mut kept = served_connection(&server);
    for _ in 0..20 {
        let response = support::request(server.addr, GET);
        assert_eq!(response.status, 200);
        get_ok(&mut kept);
    }
    let still_waiting = slow.iter().filter(|s| nothing_received(s)).count();
    assert_eq!(
        still_waiting, SLOW_CLIENTS,
        "the normal client must be served before any slow client is timed out"
    );

    for (i, stream) in slow.iter().enumerate() {
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let response = read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("slow client {i}: no 408: {e}"));
        let elapsed = first_byte.elapsed();
        done[i].store(true, Ordering::Relaxed);
        assert_eq!(response.status, 408, "slow client {i}: {}", response.head);
        assert!(response.closes(), "slow client {i}: {}", response.head);
        assert!(
            closed(&mut reader),
            "slow client {i}: not closed after its 408"
        );
        // The deadline runs from the first byte the server saw, which we sent after `first_byte`.
        assert!(
            elapsed >= HEADER_TIMEOUT,
            "slow client {i} cut off early, after {elapsed:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    pacer.join().expect("pacer thread");
    get_ok(&mut kept);
}

/// Descriptor exhaustion under `RLIMIT_NOFILE` = 64: accept fails with EMFILE while clients wait
/// in the backlog. The server must keep serving the connections it has, must not spin (a
/// listener that stays readable while accept fails is a classic 100 % CPU loop), and must serve
/// the waiting clients once descriptors are free again.
#[test]
fn descriptor_exhaustion_neither_spins_nor_stops_service() {
    const NOFILE: libc::rlim_t = 64;
    const WAITING: usize = 20;
    const WINDOW: Duration = Duration::from_secs(2);
    let mut server = Lameduck::start_with(&[], |command| {
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // setrlimit(2), which is async-signal-safe, on a local struct.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: NOFILE,
                    rlim_max: NOFILE,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    });
    let pid = server.pid();
    let free = NOFILE as usize - descriptors_below(pid, NOFILE as usize);

    // Take every descriptor the server has left with served, kept-alive connections.
    let mut held: Vec<BufReader<TcpStream>> =
        (0..free).map(|_| served_connection(&server)).collect();
    assert_eq!(descriptors_below(pid, NOFILE as usize), NOFILE as usize);

    // More clients: the kernel completes their handshakes, accept(2) fails with EMFILE.
    let mut waiting: Vec<BufReader<TcpStream>> = (0..WAITING)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(GET_CLOSE).expect("write");
            BufReader::new(stream)
        })
        .collect();
    server.wait_for("event=accept_paused");

    // Existing connections are still served.
    for reader in &mut held {
        get_ok(reader);
    }

    // Saturated and idle, the loop must sleep. The window doubles as the check that a waiting
    // client is neither served nor dropped meanwhile.
    let cpu_before = cpu_time(pid);
    let window_start = Instant::now();
    assert!(
        unanswered_for(&mut waiting[0], WINDOW),
        "a client waiting for a descriptor must stay queued, not be answered or reset"
    );
    let window = window_start.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    assert!(
        cpu < window / 5,
        "server used {cpu:?} of CPU in {window:?} while out of descriptors: it is spinning"
    );

    // Free a few descriptors: every waiting client is served in turn (each closes after its
    // response, which frees its descriptor for the next one).
    held.truncate(held.len() - 4);
    for (i, reader) in waiting.iter_mut().enumerate() {
        let response = read_response(reader, false)
            .unwrap_or_else(|e| panic!("waiting client {i} never served: {e}"));
        assert_eq!(response.status, 200, "waiting client {i}");
        assert!(
            closed(reader),
            "waiting client {i}: not closed after Connection: close"
        );
    }
    drop(waiting);
    for reader in &mut held {
        get_ok(reader);
    }
    assert_eq!(support::request(server.addr, GET).status, 200);
}

/// `--max-conns`: at the limit the server stops accepting, so an extra client waits in the listen
/// backlog (neither refused nor accepted-and-dropped) and is served as soon as a slot frees.
#[test]
fn max_conns_queues_the_extra_client_in_the_backlog() {
    let server = Lameduck::start(&["--max-conns", "2"]);
    let first = served_connection(&server);
    let mut second = served_connection(&server);

    let mut extra = BufReader::new(server.connect());
    extra.get_mut().write_all(GET).expect("write");
    assert!(
        unanswered_for(&mut extra, Duration::from_millis(500)),
        "at --max-conns the extra client must wait, not be served or dropped"
    );
    get_ok(&mut second);

    drop(first);
    let response = read_response(&mut extra, false).expect("extra client served once a slot frees");
    assert_eq!(response.status, 200);
    get_ok(&mut extra);
    get_ok(&mut second);
}

/// A client that pipelines requests without ever reading the responses: the server stops reading
/// from it once its output is backed up, so its memory stays flat, and every request that was
/// sent is answered, in order, once the client reads.
#[test]
fn pipelining_without_reading_keeps_memory_bounded() {
    /// Growth allowed over the baseline: the connection's capped output and carried input are
    /// a few hundred KiB; unbounded buffering of the responses below would be hundreds of MiB.
    const MAX_GROWTH_KIB: u64 = 4 * 1024;
    let server = Lameduck::start(&[]);
    let pid = server.pid();
    assert_eq!(support::request(server.addr, GET).status, 200);
    let baseline = resident_kib(pid);

    let mut flood = server.connect();
    let requests = fill_until_stalled(&mut flood, Duration::from_secs(1));
    assert!(
        requests >= 1000,
        "only {requests} requests before the pipe filled"
    );

    let grown = resident_kib(pid).saturating_sub(baseline);
    assert!(
        grown < MAX_GROWTH_KIB,
        "server memory grew by {grown} KiB while {requests} pipelined requests went unread"
    );
    // Other clients are unaffected.
    assert_eq!(support::request(server.addr, GET).status, 200);

    // Every whole request sent is answered, in order; then nothing more.
    let mut reader = BufReader::with_capacity(64 * 1024, flood.try_clone().expect("clone"));
    for i in 0..requests {
        let response = read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("response {i} of {requests}: {e}"));
        assert_eq!(response.status, 200, "response {i}");
    }
    assert!(reader.buffer().is_empty(), "more responses than requests");
    let grown = resident_kib(pid).saturating_sub(baseline);
    assert!(
        grown < MAX_GROWTH_KIB,
        "server memory grew by {grown} KiB after the backlog drained"
    );
}

/// A client that stops reading is given the idle timeout to resume (`Connection::write_out`:
/// "the client is not reading: it gets an idle timeout's worth of patience"), not the much
/// shorter header timeout: a client that pauses reading for a few seconds while it processes a
/// burst of pipelined responses must not lose its connection. Regression (found by this test):
/// such a client was reset at the header timeout.
#[test]
fn a_client_that_pauses_reading_gets_the_idle_timeout() {
    let server = Lameduck::start(&["--header-timeout", "3s", "--idle-timeout", "30s"]);
    let mut stream = server.connect();
    let requests = fill_until_stalled(&mut stream, Duration::from_millis(200));
    // The client pauses well past the header timeout but well within the idle timeout. This
    // pause is the behaviour under test, not a synchronisation.
    thread::sleep(Duration::from_secs(5));
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    for i in 0..requests {
        let response = read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("response {i} of {requests} after the pause: {e}"));
        assert_eq!(response.status, 200, "response {i}");
    }
}

/// DRAIN takes every client already queued in the accept backlog, whatever `--max-conns` says
/// (DESIGN.md: "no client sees a reset"): at the limit, five clients wait in the backlog with a
/// whole request each; SIGINT must answer each with `200` + `Connection: close` then EOF, close
/// the idle keep-alive client without a byte, log `backlog_accepted=5`, and exit 0.
/// Before the fix: the drain stopped at the limit and closed the listener, so every queued client
/// was reset (`backlog_accepted=0`).
#[test]
fn no_client_is_reset_at_the_connection_limit_during_a_drain() {
    const QUEUED: usize = 5;
    let mut server = Lameduck::start(&["--max-conns", "1"]);
    let idle = served_connection(&server);
    let mut queued = queue_requests(&server, QUEUED);
    server.wait_for("event=accept_paused");

    server.signal(libc::SIGINT);
    let drain = server.wait_for("event=drain");
    for (i, stream) in queued.iter_mut().enumerate() {
        let received = support::receive_until_close(stream, support::PROMPT);
        let response = received.only_response();
        assert!(
            received.eof()
                && response
                    .as_ref()
                    .is_some_and(|r| r.status == 200 && r.closes()),
            "queued client {i} must get one 200 with Connection: close, then EOF; got {received}; \
             drain line: {drain}"
        );
    }
    let mut idle = idle.into_inner();
    let received = support::receive_until_close(&mut idle, support::PROMPT);
    assert!(
        received.eof() && received.bytes.is_empty(),
        "the idle client is closed without a byte; got {received}"
    );
    // Closing our ends lets the server's lingering reads end at once.
    drop((idle, queued));
    let status = server.wait_exit(support::PROMPT);
    assert_eq!(
        support::field(&drain, "backlog_accepted"),
        Some("5"),
        "{drain}"
    );
    assert_eq!(status.code(), Some(0), "{:#?}", server.log);
}

/// A client queued in the backlog that the drain truly cannot take (no descriptor left) is
/// counted, and the exit does not claim a clean drain (DESIGN.md: "a client that truly cannot be
/// taken is counted, and the exit then does not claim a clean drain"). The running server's
/// `RLIMIT_NOFILE` is lowered so that one more connection fits; a kept-alive client takes it and
/// two more wait in the backlog. SIGINT must log `backlog_lost=2` on the drain line (the accept
/// queue's length when the listener is closed, read with `TCP_INFO` before the idle connection
/// frees its descriptor), `outcome=backlog_lost` on the exit line, and exit 1.
/// Before the fix: the two clients were reset unseen and the server exited 0 (`outcome=drained`).
#[test]
fn a_queued_client_that_cannot_be_taken_is_counted_and_the_exit_is_not_clean() {
    let mut server = Lameduck::start(&[]);
    // Room for exactly one more descriptor (the default --max-conns, 10 000, is far away).
    support::leave_one_descriptor(server.pid());
    let idle = served_connection(&server);
    let queued = queue_requests(&server, 2);
    server.wait_for("reason=out_of_descriptors");

    server.signal(libc::SIGINT);
    let drain = server.wait_for("event=drain");
    let mut idle = idle.into_inner();
    let received = support::receive_until_close(&mut idle, support::PROMPT);
    assert!(
        received.eof() && received.bytes.is_empty(),
        "the idle client is closed without a byte; got {received}"
    );
    drop(idle);
    let status = server.wait_exit(support::PROMPT);
    let exit = server.wait_for("event=exit");
    drop(queued);
    assert_eq!(
        support::field(&drain, "backlog_lost"),
        Some("2"),
        "drain line: {drain}; exit line: {exit}; {status}"
    );
    assert_eq!(
        support::field(&exit, "outcome"),
        Some("backlog_lost"),
        "exit line: {exit}"
    );
    assert_eq!(status.code(), Some(1), "{exit}");
}

/// A state that repeats logs once per change, never once per request (DESIGN.md): at
/// `--max-conns 1`, twenty clients queued behind one connection are served one after another,
/// each taken as the one before it closes. The server stays at its limit the whole time, so the
/// log must hold exactly one `event=accept_paused` and at most one `event=accept_resumed` (when
/// the backlog is finally empty).
/// Before the fix: every hand-over logged a resumed/paused pair (21 lines of each).
#[test]
fn one_log_line_per_accept_state_change() {
    const QUEUED: usize = 20;
    let mut server = Lameduck::start(&["--max-conns", "1"]);
    let first = served_connection(&server);
    let queued: Vec<TcpStream> = (0..QUEUED)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(GET_CLOSE).expect("write GET");
            stream
        })
        .collect();
    server.wait_for("event=accept_paused");

    drop(first);
    // Each client is dropped once served: that frees the slot for the next one.
    for (i, mut stream) in queued.into_iter().enumerate() {
        let received = support::receive_until_close(&mut stream, support::PROMPT);
        assert!(
            received.eof() && received.only_response().is_some_and(|r| r.status == 200),
            "queued client {i}: {received}"
        );
    }
    server.wait_for("event=accept_resumed");
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(support::PROMPT).code(), Some(0));
    let count = |event: &str| server.log.iter().filter(|l| l.contains(event)).count();
    let (paused, resumed) = (count("event=accept_paused"), count("event=accept_resumed"));
    assert!(
        paused == 1 && resumed <= 1,
        "{paused} accept_paused and {resumed} accept_resumed lines; log: {:#?}",
        server.log
    );
}

/// `--buffer-budget` limits what is buffered, never who is served (docs/design.md, "Memory").
/// Twenty-four clients that pipeline without reading, and uploads that hold the whole budget,
/// leave a new client's `GET /` and `/health` answered at once; the upload that does not fit
/// waits in the kernel, unanswered but not refused, and goes on when an upload in flight
/// finishes. Each change of the budget's state is one log line.
#[test]
fn a_full_buffer_budget_stalls_only_what_needs_buffering() {
    let mut server = Lameduck::start(&["--buffer-budget", "65536", "--max-body", "16384"]);
    let floods: Vec<TcpStream> = (0..24)
        .map(|_| {
            let mut flood = server.connect();
            fill_until_stalled(&mut flood, Duration::from_millis(100));
            flood
        })
        .collect();
    // Three uploads of 16 KiB each are admitted (each counted at its declared length from the
    // start, with its head); a fourth does not fit in what is left.
    const UPLOAD: &[u8] = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 16384\r\n\r\n";
    let mut uploads: Vec<BufReader<TcpStream>> = (0..4)
        .map(|_| {
            let mut upload = server.connect();
            upload.write_all(UPLOAD).expect("write upload head");
            BufReader::new(upload)
        })
        .collect();
    server.wait_for("event=budget_full");

    for path in ["/", "/health"] {
        let mut probe = BufReader::new(server.connect());
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        probe
            .get_mut()
            .write_all(raw.as_bytes())
            .expect("write GET");
        let response = read_response(&mut probe, false).expect("answered with the budget full");
        assert_eq!(response.status, 200, "{path}");
    }
    // One upload waits; the others are in flight. Finishing one makes room for it.
    let body = [b'x'; 16384];
    let first = &mut uploads[0];
    first.get_mut().write_all(&body).expect("write body");
    let response = read_response(first, false).expect("the first upload is answered");
    assert_eq!(response.status, 404, "the default handler has no /upload");
    server.wait_for("event=budget_available");
    for upload in &mut uploads[1..] {
        upload.get_mut().write_all(&body).expect("write body");
        let response = read_response(upload, false).expect("every upload is answered");
        assert_eq!(response.status, 404);
    }
    drop(floods);
}

/// A request that needs room the budget does not have, and does not get it within
/// `--header-timeout`, is answered 503 with `Retry-After` (the server is busy; the client did
/// nothing wrong), never closed without an answer.
#[test]
fn a_request_the_budget_cannot_take_in_time_gets_503_and_retry_after() {
    let mut server = Lameduck::start(&[
        "--buffer-budget",
        "65536",
        "--max-body",
        "40000",
        "--header-timeout",
        "1s",
    ]);
    let hold = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 40000\r\n\r\n";
    let mut holder = server.connect();
    holder.write_all(hold).expect("write first upload head");
    // The holder keeps its upload alive (and the budget spent) by sending a byte of its body
    // every 200 ms, well inside its own header timeout: the pace of a slow client.
    let done = Arc::new(AtomicBool::new(false));
    let trickle = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) && holder.write_all(b"x").is_ok() {
                thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut waiting = BufReader::new(server.connect());
    waiting
        .get_mut()
        .write_all(hold)
        .expect("write second upload head");
    server.wait_for("event=budget_full");
    let response = read_response(&mut waiting, false).expect("an answer, not a silent close");
    done.store(true, Ordering::Relaxed);
    assert_eq!(response.status, 503);
    assert_eq!(response.header("Retry-After"), Some("1"));
    assert!(response.closes());
    trickle.join().expect("trickle thread");
}
