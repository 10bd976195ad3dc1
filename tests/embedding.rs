//! lameduck as a library inside another program: a `Server` has SIGTERM and SIGINT only while it
//! exists, and counts every delivery in order.
//!
//! Signal dispositions belong to the whole process, so each scenario runs in a child: this test
//! binary run again with only [`child`] selected and [`ROLE`] naming the scenario. The parent
//! judges what a user would see: how the child ended, what it printed, what the server logged.
//! In the child, raise(3) delivers each signal to the calling thread before it returns, so
//! "two signals before the loop looks" is exact, not a race.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::Duration;

use lameduck::{Config, Outcome, Server, routes};
use support::{PROMPT, TempDir, field, run_command};

/// The environment variable that makes [`child`] play a scenario instead of returning at once.
const ROLE: &str = "LAMEDUCK_EMBEDDING_ROLE";

/// What the child prints once the last server is gone, just before it raises SIGTERM.
const DROPPED: &str = "last server dropped, raising SIGTERM";

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
    let config = Config {
        addr: ([127, 0, 0, 1], 0).into(),
        live_file: dir.path().join("live"),
        shutdown_delay: Duration::from_secs(60),
        // `bind` checks the timings as the command line does: the delay must fit.
        grace_period: Duration::from_secs(90),
        ..Config::default()
    };
    Server::bind(config).expect("bind")
}

fn run(server: &mut Server) -> Outcome {
    server.run(routes::default_handler).expect("run")
}

/// Delivers `signal` to the calling thread; its handler has run when this returns.
fn raise(signal: libc::c_int) {
    // SAFETY: raise(3) takes no pointers.
    assert_eq!(unsafe { libc::raise(signal) }, 0, "raise({signal})");
}

/// `"event signal"` for each log line of the child that names a signal, in order.
fn signal_events(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| Some(format!("{} {}", field(l, "event")?, field(l, "signal")?)))
        .collect()
}
