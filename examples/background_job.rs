//! A background job that lives as long as the server serves: the default server (`/` says
//! `Hello, World!`, readiness is the server's), with the same flags and environment as
//! `lameduck serve`, plus a thread doing periodic work that stops the moment the server starts
//! to stop (SIGTERM, SIGINT, or an upgrade's hand-over), not at its next wake-up.
//!
//! ```sh
//! cargo run --example background_job -- --port 8081 --shutdown-delay 2s
//! kill -TERM <pid>   # "job stopped" right after the announce line, then the drain, exit 0
//! ```
//!
//! The job waits on the server's [`Lifecycle`] between two runs, with a timeout that is its
//! period: a stop wakes it at once, where a `sleep` would make the stop wait for it. What it
//! does when it stops is its own business (flush, let go of a lease, …); the server drains
//! meanwhile, and `run` returns when the drain is over.

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use lameduck::routes::default_handler;
use lameduck::{Lifecycle, Phase};

/// How often the job does its work (a cache refreshed every 10 s, say). A stop does not wait
/// for it.
const PERIOD: Duration = Duration::from_secs(10);

/// The periodic work: runs once per [`PERIOD`] until the server starts to stop.
fn job(lifecycle: Lifecycle) {
    let mut runs = 0u64;
    loop {
        // `Some` as soon as the server is at ANNOUNCE or later; `None` after one period.
        if let Some(phase) = lifecycle.wait_until_timeout(Phase::Announce, PERIOD) {
            eprintln!("job stopped runs={runs} phase={phase:?}");
            return;
        }
        runs += 1; // refresh a cache, poll a queue, renew a lease, ...
    }
}

fn main() -> ExitCode {
    lameduck::cli::main_with(default_handler, |server| {
        let lifecycle = server.lifecycle();
        let started = thread::Builder::new()
            .name("job".into())
            .spawn(move || job(lifecycle));
        if let Err(e) = started {
            eprintln!("background_job: cannot start the job: {e}");
        }
    })
}
