//! lameduck as a library inside another program: a `Server` has SIGTERM and SIGINT only while it
//! exists, and counts every delivery in order; several `Server`s in one process all get each
//! signal; the program's own signal-hook actions keep working beside them and after them.
//!
//! Signal dispositions belong to the whole process, so each scenario runs in a child: this test
//! binary run again with only [`child`] selected and [`ROLE`] naming the scenario. The parent
//! judges what a user would see: how the child ended, what it printed, what the server logged.
//! In the child, raise(3) delivers each signal to the calling thread before it returns, so
//! "two signals before the loop looks" is exact, not a race.

mod support;

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lameduck::{Config, Outcome, Server, routes};
use support::{PROMPT, TempDir, field, get, request, run_command};

/// The environment variable that makes [`child`] play a scenario instead of returning at once.
const ROLE: &str = "LAMEDUCK_EMBEDDING_ROLE";

/// What the child prints once the last server is gone, just before it raises SIGTERM.
const DROPPED: &str = "last server dropped, raising SIGTERM";

/// What the child prints when SIGINT, ignored at its start, was ignored again after the drop.
const STILL_IGNORED: &str = "SIGINT still ignored after the drop";

/// What the child prints when its own signal-hook flags were set after the drop too.
const FLAGS_SET: &str = "both flags set during the run and after the drop";

/// How many servers the child runs side by side in the `servers` scenario.
const SERVERS: usize = 3;

#[test]
fn a_dropped_server_gives_sigterm_back_and_a_new_one_takes_it_again() {
    let output = run_child("restore");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(DROPPED),
        "the child stopped before the last step: {output:?}"
    );
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGTERM),
        "the child should die by SIGTERM once no server has it: {output:?}"
    );
}

#[test]
fn two_sigterms_delivered_before_the_loop_looks_are_two() {
    let output = run_child("count");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        signal_events(&output),
        ["announce SIGTERM", "interrupted SIGTERM"]
    );
}

#[test]
fn signals_delivered_before_the_loop_looks_keep_their_order() {
    let output = run_child("order");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        signal_events(&output),
        ["announce SIGTERM", "interrupted SIGINT"]
    );
}

#[test]
fn sigint_ignored_at_start_stays_ignored_after_the_server_is_dropped() {
    let output = run_child("ignored");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(STILL_IGNORED),
        "{output:?}"
    );
    // While the server lived, it had SIGINT all the same.
    assert_eq!(signal_events(&output), ["drain SIGINT"]);
}

/// Regression: the server's `sigaction(2)` replaced signal-hook's handler, so a flag registered
/// before `bind` was never set during the run, and its drop put back the default disposition, so
/// after it SIGTERM killed a program that had registered a flag after `bind`.
#[test]
fn the_programs_own_signal_hook_flags_work_during_the_run_and_after_it() {
    let output = run_child("flags");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(FLAGS_SET),
        "{output:?}"
    );
    assert_eq!(signal_events(&output), ["drain SIGTERM"]);
}

/// Regression: a second `Server` in one process failed to bind (`ResourceBusy`).
#[test]
fn servers_side_by_side_all_drain_on_one_sigterm() {
    let output = run_child("servers");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(signal_events(&output), ["drain SIGTERM"; SERVERS]);
}

/// The scenarios, run in a child process by the tests above; does nothing in a normal run.
/// Each one ends with an assertion on what `run` returned, or with SIGTERM.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = TempDir::new();
    match role.as_str() {
        "restore" => {
            // A server that never runs still has the signals, and gives them back when dropped.
            drop(bind(&dir));
            // The next one takes them again: SIGINT drains it instead of killing the process.
            let mut server = bind(&dir);
            raise(libc::SIGINT);
            assert_eq!(run(&mut server), Outcome::Drained);
            drop(server);
            drop(dir);
            println!("{DROPPED}");
            raise(libc::SIGTERM);
            println!("SIGTERM was swallowed after the server was dropped");
        }
        "count" => {
            let mut server = bind(&dir);
            raise(libc::SIGTERM);
            raise(libc::SIGTERM);
            assert_eq!(run(&mut server), Outcome::Interrupted);
        }
        "order" => {
            let mut server = bind(&dir);
            raise(libc::SIGTERM);
            raise(libc::SIGINT);
            assert_eq!(run(&mut server), Outcome::Interrupted);
        }
        "ignored" => {
            // As `nohup` or a shell's `&` would start the program.
            // SAFETY: signal(2) with SIG_IGN installs no code; no other thread exists yet.
            let previous = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            assert_ne!(previous, libc::SIG_ERR);
            let mut server = bind_with(dir.path().join("live"), Duration::ZERO);
            raise(libc::SIGINT);
            assert_eq!(run(&mut server), Outcome::Drained);
            drop(server);
            raise(libc::SIGINT);
            println!("{STILL_IGNORED}");
        }
        "flags" => {
            let before = Arc::new(AtomicBool::new(false));
            let after = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(libc::SIGTERM, Arc::clone(&before)).expect("flag");
            let server = bind_with(dir.path().join("live"), Duration::ZERO);
            signal_hook::flag::register(libc::SIGTERM, Arc::clone(&after)).expect("flag");
            let (addr, running) = serve_on_a_thread(server);
            wait_until_serving(addr);
            raise(libc::SIGTERM);
            assert!(before.load(Ordering::SeqCst), "flag registered before bind");
            assert!(after.load(Ordering::SeqCst), "flag registered after bind");
            let (outcome, server) = running.join().expect("server thread");
            assert_eq!(outcome, Outcome::Drained);
            drop(server);
            before.store(false, Ordering::SeqCst);
            after.store(false, Ordering::SeqCst);
            // The program chose to handle SIGTERM before the server came: it still does.
            raise(libc::SIGTERM);
            assert!(before.load(Ordering::SeqCst), "flag registered before bind");
            assert!(after.load(Ordering::SeqCst), "flag registered after bind");
            println!("{FLAGS_SET}");
        }
        "servers" => {
            let running: Vec<_> = (0..SERVERS)
                .map(|i| {
                    let server = bind_with(dir.path().join(format!("live{i}")), Duration::ZERO);
                    serve_on_a_thread(server)
                })
                .collect();
            for (addr, _) in &running {
                wait_until_serving(*addr);
            }
            // One process-directed SIGTERM, as an orchestrator sends it.
            // SAFETY: kill(2) on our own pid; no memory is involved.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
            for (addr, server) in running {
                let (outcome, _server) = server.join().expect("server thread");
                assert_eq!(outcome, Outcome::Drained, "the server on {addr}");
            }
        }
        other => panic!("unknown {ROLE}={other}"),
    }
}

/// Runs this test binary again with only [`child`] selected, playing `role`.
fn run_child(role: &str) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(ROLE, role);
    run_command(command, PROMPT)
}

/// A server on 127.0.0.1 port 0 with its liveness file in `dir`, and a lame-duck delay long
/// enough that a signal missed after the first shows as a child that does not finish in time.
fn bind(dir: &TempDir) -> Server {
    bind_with(dir.path().join("live"), Duration::from_secs(60))
}

/// A server on 127.0.0.1 port 0 with its liveness file at `live_file` and this lame-duck delay.
fn bind_with(live_file: PathBuf, shutdown_delay: Duration) -> Server {
    let config = Config {
        addr: ([127, 0, 0, 1], 0).into(),
        live_file,
        shutdown_delay,
        // `bind` checks the timings as the command line does: the delay must fit.
        grace_period: Duration::from_secs(90),
        ..Config::default()
    };
    Server::bind(config).expect("bind")
}

/// Runs `server` on a thread of its own; the thread hands back the outcome and the server.
fn serve_on_a_thread(mut server: Server) -> (SocketAddr, JoinHandle<(Outcome, Server)>) {
    let addr = server.local_addr();
    let running = thread::spawn(move || (run(&mut server), server));
    (addr, running)
}

/// Returns once the server on `addr` has answered its readiness path: its loop is running.
fn wait_until_serving(addr: SocketAddr) {
    assert_eq!(request(addr, &get("/health")).status, 200, "{addr}");
}

fn run(server: &mut Server) -> Outcome {
    server.run(routes::default_handler).expect("run")
}

/// Delivers `signal` to the calling thread; its handler has run when this returns.
fn raise(signal: libc::c_int) {
    // SAFETY: raise(3) takes no pointers.
    assert_eq!(unsafe { libc::raise(signal) }, 0, "raise({signal})");
}

/// `"event signal"` for each log line of the child that names a signal (`signal=`, or the
/// drain's `after=`), in order.
fn signal_events(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| {
            let signal = field(l, "signal").or_else(|| field(l, "after"))?;
            Some(format!("{} {signal}", field(l, "event")?))
        })
        .collect()
}
