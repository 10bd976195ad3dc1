//! The library used as the README shows it: `Server::bind`, `run` with a handler, then the
//! caller's own exit. When `run` returns, the liveness file is already gone, because a caller
//! that ends with `std::process::exit` never drops the `Server`.
//!
//! This file is its own test process: it sends SIGINT to itself, which must not reach the
//! servers of other test files. Keep it to one test that signals while its `Server` is alive
//! (once the `Server` is dropped, SIGINT acts as it did before: it would end the process).

mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use lameduck::{Config, ConfigError, Outcome, Server, routes};
use support::{PROMPT, TempDir};

#[test]
fn run_removes_the_liveness_file_before_it_returns() {
    let dir = TempDir::new();
    let live_file = dir.path().join("live");
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut server = Server::bind(Config {
        addr,
        live_file: live_file.clone(),
        ..Config::default()
    })
    .unwrap();
    assert!(live_file.is_file(), "bind creates the liveness file");

    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let outcome = server.run(routes::default_handler);
        // Hand the server back alive: the file must be gone without any drop.
        let _ = done.send((outcome.map_err(|e| e.to_string()), server));
    });
    // bind installed the handlers, so this SIGINT is queued for the loop, whenever it starts.
    // SAFETY: kill(2) on our own pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGINT) }, 0);
    let (outcome, server) = finished
        .recv_timeout(PROMPT)
        .expect("run returns after SIGINT");
    assert_eq!(outcome, Ok(Outcome::Drained));
    assert!(
        !live_file.exists(),
        "the liveness file is gone when run returns, before the Server is dropped"
    );
    drop(server);
}

/// A `Config` built in code gets the command line's checks: `bind` refuses absurd values with
/// `InvalidInput` naming the flag and carrying the `ConfigError`, before it installs anything or
/// creates the liveness file.
/// (Before, `--max-header-bytes` of 100 TB aborted on allocation inside `run`.)
#[test]
fn bind_refuses_a_config_the_command_line_would_refuse() {
    let dir = TempDir::new();
    let live_file = dir.path().join("live");
    let refused = Server::bind(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        live_file: live_file.clone(),
        max_header_bytes: 100_000_000_000_000,
        ..Config::default()
    });
    let Err(error) = refused else {
        panic!("bind accepted a 100 TB head limit");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("--max-header-bytes"), "{error}");
    // The refusal itself travels inside, for an embedder to match on.
    let refusal = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<ConfigError>());
    assert!(
        matches!(refusal, Some(ConfigError::AboveMaximum { flag, .. }) if flag == "max-header-bytes"),
        "{error:?}"
    );
    assert!(!live_file.exists(), "a refused config left a liveness file");
}
