//! The in-place upgrade on SIGUSR2, proven the way the rolling update is proven
//! (tests/rolling_update.rs), but with clients connecting **directly to the port**: no load
//! balancer steers them away from a process that is about to stop, so the only way not to refuse
//! them is that the listening socket outlives the process.
//!
//! The server runs from a copy of the binary in a temporary directory, so that the binary can be
//! replaced on disk between upgrades (by `rename`, as package managers do) and each new process
//! can be checked to run the file that was there at SIGUSR2. Every process of the chain writes to
//! the same stderr (the new one inherits it), so one log shows the whole chain; processes are
//! told apart by the `pid=` of their `upgrade_started`, `child_ready` and `exit` lines.
//!
//! The load (three kinds of clients, and what counts as a failed request) is the rolling-update
//! harness's own: tests/rolling/load.rs.

mod support;

#[allow(dead_code)]
#[path = "rolling/load.rs"]
mod load;

use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use load::{Kind, Load, LoadConfig};
use support::{Lameduck, PROMPT, TempDir, field, read_response, request};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// The client population: busy keep-alive, new connection per request, and idle keep-alive
/// clients whose think time straddles the old process's idle grace (1 s), so that some of their
/// connections are closed as idle after the hand-over and some are answered with
/// `Connection: close`. No slow, upload or download clients: `lameduck` itself serves none of
/// their routes.
fn load_config() -> LoadConfig {
    LoadConfig {
        keepalive: 2,
        newconn: 2,
        idle: 4,
        slow: 0,
        upload: 0,
        download: 0,
        think: (Duration::from_millis(200), Duration::from_millis(2500)),
        seed: 11,
        aim: None,
    }
}

/// Time between two upgrades of the load test.
const UPGRADE_EVERY: Duration = Duration::from_millis(1500);

/// How many upgrades the load test does: 10, or `UPGRADES` (the long run of the README).
fn upgrades() -> u64 {
    std::env::var("UPGRADES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
}

/// A binary the test may replace: a copy of lameduck at `dir/lameduck`.
struct Binary {
    path: PathBuf,
    dir: PathBuf,
}

impl Binary {
    fn new(dir: &Path) -> Binary {
        let binary = Binary {
            path: dir.join("lameduck"),
            dir: dir.to_path_buf(),
        };
        binary.replace_with_lameduck();
        binary
    }

    /// Puts a fresh copy of the real binary at the path (a new inode), atomically.
    fn replace_with_lameduck(&self) -> u64 {
        self.replace(&fs::read(env!("CARGO_BIN_EXE_lameduck")).expect("read binary"))
    }

    /// Puts an executable with `contents` at the path, atomically; returns its inode.
    fn replace(&self, contents: &[u8]) -> u64 {
        let staged = self.dir.join("staged");
        fs::write(&staged, contents).expect("stage binary");
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::rename(&staged, &self.path).expect("rename over the binary");
        fs::metadata(&self.path).expect("stat binary").ino()
    }

    /// Starts `lameduck serve` from this path on 127.0.0.1 (port `port`, 0 = any).
    fn start(&self, port: u16, args: &[&str]) -> Lameduck {
        let live_file = self.dir.join("live");
        let mut command = Command::new(&self.path);
        command
            .args(["serve", "--addr", "127.0.0.1", "--port", &port.to_string()])
            .arg("--live-file")
            .arg(&live_file)
            .args(args);
        Lameduck::spawn(command, live_file).expect("spawn lameduck")
    }
}

/// The pid in a log line's `pid=`.
fn pid_of(line: &str) -> libc::pid_t {
    field(line, "pid")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// The inode of the executable a process runs.
fn exe_inode(pid: libc::pid_t) -> u64 {
    fs::metadata(format!("/proc/{pid}/exe"))
        .expect("stat /proc/PID/exe")
        .ino()
}

/// Sends `signal` to any process of the chain (not only the test's own child).
fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes no pointers.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// The current process of a chain: stopped (SIGKILL) when the test ends, pass or fail, since
/// after the first upgrade it is no longer the test's child.
struct Current(libc::pid_t);

impl Drop for Current {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes no pointers; an already-gone pid is harmless here.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// One in-place upgrade of `current`: replace the binary on disk, SIGUSR2, wait for the new
/// process to report ready and for the old one to exit 0. Returns the new pid.
fn upgrade(server: &mut Lameduck, binary: &Binary, current: &mut Current) -> libc::pid_t {
    let old = current.0;
    let inode = binary.replace_with_lameduck();
    kill(old, libc::SIGUSR2);
    let started = server.wait_for_next("event=upgrade_started");
    let new = pid_of(&started);
    let ready = server.wait_for_next("event=child_ready");
    assert_eq!(pid_of(&ready), new, "{ready}");
    current.0 = new;
    assert_eq!(
        exe_inode(new),
        inode,
        "the new process must run the binary replaced on disk"
    );
    let exit = server.wait_for(&format!("event=exit code=0 pid={old} "));
    assert_eq!(field(&exit, "outcome"), Some("drained"), "{exit}");
    new
}

/// 10 (or `UPGRADES`) in-place upgrades in a row under continuous direct load: no refused connection, no
/// reset, no request lost; every old process exits 0 after draining.
#[test]
fn in_place_upgrades_lose_nothing_under_direct_load() {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &["--shutdown-delay", "0"]);
    let mut current = Current(server.pid());
    let started = Instant::now();
    let load = Load::start(server.addr, load_config(), started);
    let upgrades = upgrades();
    for _ in 0..upgrades {
        // Load pacing, not synchronisation: let every kind of client settle on the new process
        // (the idle ones think up to 2.5 s), so that each hand-over meets idle connections too.
        std::thread::sleep(UPGRADE_EVERY);
        upgrade(&mut server, &binary, &mut current);
    }
    let stats = load.stop();
    let failures = stats.failures.lock().unwrap().clone();
    assert_eq!(
        stats.failed_total(),
        0,
        "{} of {} requests failed across {upgrades} upgrades; first ones: {failures:#?}",
        stats.failed_total(),
        stats.requests()
    );
    assert!(
        stats.requests() > 1000,
        "only {} requests",
        stats.requests()
    );
    // The load really met the hand-overs: busy connections told to close, idle ones closed.
    let (busy, idle) = (stats.keepalive.snapshot(), stats.idle.snapshot());
    println!(
        "{upgrades} upgrades in {:?}: {} requests, 0 failed; busy keep-alive connections told to close \
         {}; idle ones closed while idle (found before reuse) {}, told to close {}",
        started.elapsed(),
        stats.requests(),
        busy.told_close,
        idle.closed_before_reuse,
        idle.told_close
    );
    assert!(busy.told_close >= upgrades);

    kill(current.0, libc::SIGINT);
    server.wait_for_next("event=exit code=0");
}

/// The control: the same load across a plain stop-then-start restart on the same port shows
/// refused connections, or the test above would prove nothing.
#[test]
fn stop_then_start_restarts_refuse_connections() {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &["--shutdown-delay", "0"]);
    let addr = server.addr;
    let load = Load::start(addr, load_config(), Instant::now());
    let mut servers = Vec::new();
    for _ in 0..3 {
        server.signal(libc::SIGTERM);
        let status = server.wait_exit(PROMPT);
        assert_eq!(status.code(), Some(0));
        servers.push(server);
        server = binary.start(addr.port(), &["--shutdown-delay", "0"]);
    }
    let stats = load.stop();
    println!(
        "3 stop-then-start restarts: {} requests, {} failed ({} refused)",
        stats.requests(),
        stats.failed_total(),
        stats.failed_of(Kind::Refused)
    );
    assert!(
        stats.failed_of(Kind::Refused) > 0,
        "a stop-then-start restart refused no connection: the harness cannot see downtime"
    );
    server.signal(libc::SIGINT);
    server.wait_exit(PROMPT);
}

/// A new binary that exits at once: the old server says so and goes on serving as if nothing
/// happened; a later upgrade with a good binary still works.
#[test]
fn a_new_process_that_exits_at_once_leaves_the_old_one_serving() {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &[]);
    let mut current = Current(server.pid());
    binary.replace(b"#!/bin/sh\nexit 3\n");
    server.signal(libc::SIGUSR2);
    let failed = server.wait_for("event=child_failed");
    assert!(failed.contains("exit status: 3"), "{failed}");
    assert_eq!(request(server.addr, GET).status, 200);
    assert_eq!(
        fs::read_to_string(&server.live_file).unwrap().trim(),
        server.pid().to_string()
    );

    upgrade(&mut server, &binary, &mut current);
    assert_eq!(request(server.addr, GET).status, 200);
    kill(current.0, libc::SIGINT);
    server.wait_for_next("event=exit code=0");
}

/// A new binary that never reports ready: after --upgrade-timeout it is killed, and the old
/// server goes on serving. A second SIGUSR2 while the first upgrade is under way is refused.
#[test]
fn a_new_process_that_never_gets_ready_is_killed_and_a_second_sigusr2_is_refused() {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &["--upgrade-timeout", "2s"]);
    binary.replace(b"#!/bin/sh\nexec sleep 600\n");
    server.signal(libc::SIGUSR2);
    let started = server.wait_for("event=upgrade_started");
    let child = pid_of(&started);
    server.signal(libc::SIGUSR2);
    let refused = server.wait_for("event=upgrade_refused");
    assert_eq!(field(&refused, "reason"), Some("in_progress"), "{refused}");

    let failed = server.wait_for("event=child_failed");
    assert!(failed.contains("killed"), "{failed}");
    assert!(
        !Path::new(&format!("/proc/{child}")).exists(),
        "the silent new process must be killed and reaped"
    );
    assert_eq!(request(server.addr, GET).status, 200);
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}

/// During the hand-over the liveness file always names a live server: at every moment the path
/// holds a fresh file, first the old process's, then the new one's, and the old one leaves the
/// new one's file in place when it exits.
#[test]
fn the_liveness_file_passes_to_the_new_process_without_a_gap() {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &["--heartbeat", "100ms"]);
    let mut current = Current(server.pid());
    let live_file = server.live_file.clone();
    let watcher = std::thread::spawn(move || {
        // Check the file as a probe would, as often as we can, until the hand-over is over.
        let until = Instant::now() + Duration::from_secs(3);
        let mut checks = 0u64;
        while Instant::now() < until {
            let live = lameduck::live::check(
                &live_file,
                Duration::from_secs(10),
                std::time::SystemTime::now(),
            );
            assert!(live.is_ok(), "after {checks} checks: {live:?}");
            checks += 1;
        }
        checks
    });
    let new = upgrade(&mut server, &binary, &mut current);
    let checks = watcher
        .join()
        .expect("the file was not live at some moment");
    assert!(checks > 100, "only {checks} checks");
    assert_eq!(
        fs::read_to_string(&server.live_file).unwrap().trim(),
        new.to_string(),
        "the file is the new process's"
    );
    kill(current.0, libc::SIGINT);
    server.wait_for_next("event=exit code=0");
    assert!(
        !server.live_file.exists(),
        "the last process removes its own file"
    );
}

/// `systemctl stop` right after `systemctl reload`: systemd signals every process of the unit,
/// so the old process, draining after its hand-over, gets a SIGTERM. That is its first stop: the
/// drain goes on (`drain_continues`), the request in flight is answered, and the exit is 0.
/// Before the fix: the SIGTERM was taken as a second signal, exit 1 at once, the request cut off.
#[test]
fn a_sigterm_after_the_hand_over_continues_the_drain() {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &["--shutdown-delay", "0"]);
    let old = server.pid();
    let mut current = Current(old);
    // Half a request on the old process, which keeps it draining; the answer to a second
    // connection says the old process has read the first (it serves alone so far).
    let mut in_flight = server.connect();
    in_flight.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    assert_eq!(request(server.addr, GET).status, 200);

    kill(old, libc::SIGUSR2);
    current.0 = pid_of(&server.wait_for("event=child_ready"));
    kill(old, libc::SIGTERM);
    let continues = server.wait_for("event=drain_continues");
    assert_eq!(field(&continues, "signal"), Some("SIGTERM"), "{continues}");

    in_flight.write_all(b"st: t\r\n\r\n").unwrap();
    let response = read_response(&mut BufReader::new(in_flight), false).expect("the answer");
    assert_eq!(response.status, 200);
    assert!(response.closes(), "{}", response.head);
    let exit = server.wait_for(&format!("event=exit code=0 pid={old} "));
    assert_eq!(field(&exit, "outcome"), Some("drained"), "{exit}");
    assert_eq!(
        request(server.addr, GET).status,
        200,
        "the new process serves"
    );
    kill(current.0, libc::SIGINT);
    server.wait_for_next("event=exit code=0");
}

/// A SIGTERM that reaches the old process together with the new one's ready report: the new
/// process may be accepting already, so it is handed over to, never killed, and the SIGTERM
/// continues the old one's drain (exit 0). The old process is frozen (SIGSTOP) while the new one
/// starts, so both events wait for it when it resumes; the new one is known to accept because it
/// alone answers meanwhile.
/// Before the fix: either the stop killed the new process (its clients reset), or the report,
/// read first, made the SIGTERM a second signal (exit 1).
///
/// The freeze can come too late: the new process reports ready within a millisecond, and the
/// old one may have read the report and finished its hand-over before the SIGSTOP lands. Such an
/// attempt shows no `drain_continues` (the SIGTERM found the process gone or done); it still
/// must not kill anyone, and the scenario is tried again, up to [`ATTEMPTS`] times.
#[test]
fn a_sigterm_that_comes_with_the_ready_report_never_kills_the_new_process() {
    const ATTEMPTS: usize = 20;
    for _ in 0..ATTEMPTS {
        if sigterm_with_the_ready_report() {
            return;
        }
    }
    panic!("in {ATTEMPTS} attempts the SIGSTOP never froze the old process before its hand-over");
}

/// One attempt of the scenario above; false when the freeze came too late to set it up.
fn sigterm_with_the_ready_report() -> bool {
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let mut server = binary.start(0, &["--shutdown-delay", "0"]);
    let old = server.pid();
    let mut current = Current(old);
    kill(old, libc::SIGUSR2);
    let new = pid_of(&server.wait_for("event=upgrade_started"));
    kill(old, libc::SIGSTOP);
    current.0 = new;
    // Only the new process can answer this: it has reported ready and accepts.
    assert_eq!(request(server.addr, GET).status, 200);
    kill(old, libc::SIGTERM);
    kill(old, libc::SIGCONT);

    let exit = server.wait_for(&format!("event=exit code=0 pid={old} "));
    assert_eq!(field(&exit, "outcome"), Some("drained"), "{exit}");
    assert!(
        !server.log.iter().any(|l| l.contains("event=child_failed")),
        "{:#?}",
        server.log
    );
    let continued = server
        .log
        .iter()
        .any(|l| l.contains("event=drain_continues"));
    assert_eq!(
        request(server.addr, GET).status,
        200,
        "the new process serves"
    );
    kill(new, libc::SIGINT);
    server.wait_for(&format!("event=exit code=0 pid={new} "));
    continued
}

/// As PID 1 (a container's init) an in-place upgrade cannot work: the container ends with its
/// init, new process included. SIGUSR2 is refused with a log line and the server goes on.
#[test]
fn sigusr2_as_pid_1_is_refused() {
    // SAFETY: geteuid(2) takes no pointers.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "needs root (a PID namespace)"
        );
        println!("SKIPPED: needs root for a PID namespace");
        return;
    }
    let dir = TempDir::new();
    let binary = Binary::new(dir.path());
    let live_file = dir.path().join("live");
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--kill-child"])
        .arg(&binary.path)
        .args(["serve", "--addr", "127.0.0.1", "--port", "0", "--live-file"])
        .arg(&live_file);
    let mut server = Lameduck::spawn(command, live_file).expect("spawn unshare");
    let listening = server.wait_for("event=listening");
    assert_eq!(field(&listening, "pid"), Some("1"), "{listening}");
    let pid = pid_in_our_namespace(server.pid());
    kill(pid, libc::SIGUSR2);
    let refused = server.wait_for("event=upgrade_refused");
    assert_eq!(field(&refused, "reason"), Some("pid1"), "{refused}");
    assert_eq!(request(server.addr, GET).status, 200);
    kill(pid, libc::SIGINT);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}

/// The pid, as we see it, of the one child of `parent` (unshare's forked server).
fn pid_in_our_namespace(parent: libc::pid_t) -> libc::pid_t {
    let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .expect("read children");
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child of {parent}: {children:?}"))
}
