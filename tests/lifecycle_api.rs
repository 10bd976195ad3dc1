//! The lifecycle as an embedder sees it: a `Lifecycle` taken from a bound `Server` reports each
//! phase to other threads as it changes, and `stop` starts the same stop as SIGTERM or SIGINT,
//! with the same rules (a second stop ends the process at once). In this process, without a
//! signal: each server runs on a thread of its own, on port 0, and the test drives it from
//! others. Then `examples/background_job.rs`, a real process sent a real SIGTERM.
//!
//! Every wait has a hard timeout ([`PROMPT`]); nothing sleeps. Where a phase must be seen
//! before it ends, something holds it: a lame-duck delay far longer than the test, or a request
//! left half-sent, which keeps DRAIN open until the test finishes it.

mod support;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lameduck::{Config, Lifecycle, Outcome, Phase, Server, Stop, routes};
use support::{PROMPT, TempDir, field, get, read_response, reads_eof, request, start_example};

/// A server bound on 127.0.0.1 port 0 with this lame-duck delay, running on a thread of its
/// own (the thread hands back what `run` returned), and an observer thread that reports each
/// phase it sees, from `Starting` on.
struct Running {
    addr: SocketAddr,
    lifecycle: Lifecycle,
    thread: JoinHandle<Outcome>,
    seen: Receiver<Phase>,
    _dir: TempDir,
}

impl Running {
    fn start(shutdown_delay: Duration) -> Running {
        let dir = TempDir::new();
        let mut server = Server::bind(Config {
            addr: ([127, 0, 0, 1], 0).into(),
            live_file: dir.path().join("live"),
            shutdown_delay,
            grace_period: Duration::from_secs(120),
            ..Config::default()
        })
        .expect("bind");
        let lifecycle = server.lifecycle();
        assert_eq!(lifecycle.phase(), Phase::Starting);
        let seen = observe(lifecycle.clone());
        let addr = server.local_addr();
        let thread = thread::spawn(move || server.run(routes::default_handler).expect("run"));
        Running {
            addr,
            lifecycle,
            thread,
            seen,
            _dir: dir,
        }
    }

    /// The next phase the observer has seen.
    fn next_seen(&self) -> Phase {
        self.seen
            .recv_timeout(PROMPT)
            .unwrap_or_else(|e| panic!("the observer saw no new phase within {PROMPT:?}: {e}"))
    }

    /// Waits for `phase` (or a later one) and returns the phase reached.
    fn wait_until(&self, phase: Phase) -> Phase {
        self.lifecycle
            .wait_until_timeout(phase, PROMPT)
            .unwrap_or_else(|| panic!("no {phase:?} within {PROMPT:?}"))
    }

    /// Waits for the end, and returns what `run` returned and what the lifecycle says.
    fn finish(self) -> (Outcome, Option<Outcome>) {
        assert_eq!(self.wait_until(Phase::Stopped), Phase::Stopped);
        let outcome = self.thread.join().expect("the server thread");
        (outcome, self.lifecycle.outcome())
    }
}

/// Sends half a request (its head unfinished), and returns once the server has read it (it
/// answers a later connection only after the events before it). It keeps DRAIN open.
fn half_a_request(addr: SocketAddr) -> TcpStream {
    let mut stream = support::connect(addr);
    stream.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
    assert_eq!(request(addr, &get("/")).status, 200);
    stream
}

/// Sends the rest of [`half_a_request`]; the answer must say `Connection: close`, then EOF.
fn finish_request(mut stream: TcpStream) {
    stream.write_all(b"st: t\r\n\r\n").expect("write");
    let response = read_response(
        &mut BufReader::new(stream.try_clone().expect("clone")),
        false,
    )
    .expect("the answer");
    assert_eq!(response.status, 200);
    assert!(response.closes(), "{}", response.head);
    assert!(reads_eof(&mut stream));
}

/// Reports each phase an observer thread sees, waiting on each next one in turn, until
/// `Stopped`. Phases held until the test moves on are seen one by one; one that passes by
/// unseen (or was skipped) is simply not reported.
fn observe(lifecycle: Lifecycle) -> Receiver<Phase> {
    let (report, seen) = mpsc::channel();
    // The first, here: the observer thread may not look before the loop has moved on.
    let mut last = lifecycle.phase();
    let _ = report.send(last);
    thread::spawn(move || {
        for next in [
            Phase::Serving,
            Phase::Announce,
            Phase::Drain,
            Phase::Stopped,
        ] {
            if last >= next {
                continue;
            }
            match lifecycle.wait_until_timeout(next, PROMPT) {
                Some(phase) => last = phase,
                None => return,
            }
            let _ = report.send(last);
        }
    });
    seen
}

/// `stop(Graceful)` from another thread is SIGTERM: ANNOUNCE (readiness 503, still serving),
/// then DRAIN, then a clean end, and an observer thread sees each phase in turn.
#[test]
fn stop_graceful_from_another_thread_announces_drains_and_ends_cleanly() {
    let server = Running::start(Duration::from_secs(2));
    assert_eq!(server.next_seen(), Phase::Starting);
    assert_eq!(server.next_seen(), Phase::Serving);
    let in_flight = half_a_request(server.addr);

    let stopper = server.lifecycle.clone();
    thread::spawn(move || stopper.stop(Stop::Graceful))
        .join()
        .expect("the stopping thread");
    assert_eq!(server.next_seen(), Phase::Announce);
    assert_eq!(request(server.addr, &get("/health")).status, 503);
    // The request in flight holds DRAIN open once the delay is over.
    assert_eq!(server.next_seen(), Phase::Drain);
    finish_request(in_flight);
    assert_eq!(server.next_seen(), Phase::Stopped);
    assert_eq!(server.finish(), (Outcome::Drained, Some(Outcome::Drained)));
}

/// `stop(Now)` is SIGINT: no ANNOUNCE, however long the delay; DRAIN at once, then a clean end.
#[test]
fn stop_now_skips_the_lame_duck_delay_and_drains() {
    let server = Running::start(Duration::from_secs(60));
    assert_eq!(server.next_seen(), Phase::Starting);
    assert_eq!(server.next_seen(), Phase::Serving);
    let in_flight = half_a_request(server.addr);

    let stopper = server.lifecycle.clone();
    thread::spawn(move || stopper.stop(Stop::Now))
        .join()
        .expect("the stopping thread");
    // Announce never comes: the first phase at or past it is DRAIN.
    assert_eq!(server.next_seen(), Phase::Drain);
    assert_eq!(server.lifecycle.wait_until(Phase::Announce), Phase::Drain);
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "the listener is closed in DRAIN"
    );
    finish_request(in_flight);
    assert_eq!(server.next_seen(), Phase::Stopped);
    assert_eq!(server.finish(), (Outcome::Drained, Some(Outcome::Drained)));
}

/// A programmatic stop counts as a stop request, as a signal does: a second one, while the
/// first is under way, ends the server at once (`Interrupted`), not after the 60 s delay.
#[test]
fn a_second_stop_ends_the_server_at_once() {
    let server = Running::start(Duration::from_secs(60));
    server.lifecycle.stop(Stop::Graceful);
    assert_eq!(server.wait_until(Phase::Announce), Phase::Announce);
    server.lifecycle.stop(Stop::Now);
    assert_eq!(
        server.finish(),
        (Outcome::Interrupted, Some(Outcome::Interrupted))
    );
}

/// A stop asked for before `run` is taken at the loop's first turn (as a signal during start-up
/// is); a `Server` dropped without running tells its waiters it has stopped, with no outcome.
#[test]
fn a_stop_before_run_is_kept_and_a_dropped_server_releases_its_waiters() {
    let dir = TempDir::new();
    let config = Config {
        addr: ([127, 0, 0, 1], 0).into(),
        live_file: dir.path().join("live"),
        ..Config::default()
    };
    let mut server = Server::bind(config.clone()).expect("bind");
    let lifecycle = server.lifecycle();
    lifecycle.stop(Stop::Now);
    assert_eq!(lifecycle.phase(), Phase::Starting);
    let outcome = thread::spawn(move || server.run(routes::default_handler).expect("run"));
    assert_eq!(outcome.join().expect("the server thread"), Outcome::Drained);
    assert_eq!(lifecycle.outcome(), Some(Outcome::Drained));

    let never_run = Server::bind(config).expect("bind");
    let lifecycle = never_run.lifecycle();
    let waiter = thread::spawn(move || lifecycle.wait_until(Phase::Serving));
    drop(never_run);
    assert_eq!(waiter.join().expect("the waiter"), Phase::Stopped);
}

/// `examples/background_job.rs`, as a deployment runs it: SIGTERM wakes its job at once (the
/// job waits on the lifecycle between runs), so `job stopped` comes right after the announce
/// line, before the drain (2 s later); then the drain, and exit 0. A job that slept its 10 s
/// period instead would say nothing before the process exits.
#[test]
fn the_background_job_stops_at_sigterm_before_the_drain() {
    let dir = TempDir::new();
    let mut server = start_example(
        "background_job",
        &dir,
        &["--shutdown-delay", "2s", "--drain-timeout", "5s"],
    );
    assert_eq!(request(server.addr, &get("/")).status, 200);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    let events: Vec<&str> = server
        .log
        .iter()
        .map(|line| {
            field(line, "event").unwrap_or(if line.starts_with("job stopped") {
                "job stopped"
            } else {
                line
            })
        })
        .collect();
    assert_eq!(
        events,
        ["listening", "announce", "job stopped", "drain", "exit"],
        "{:#?}",
        server.log
    );
    let stopped = server.wait_for("job stopped");
    assert_eq!(field(&stopped, "phase"), Some("Announce"), "{stopped}");
}
