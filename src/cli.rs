//! The command line, for the `lameduck` binary and for any program built on the library: `serve`
//! (the default), `live`, `--help` and `--version`, every flag with its environment variable, and
//! the exit codes of docs/design.md ("Command line"). A program with its own handler gets all of
//! it with one call:
//!
//! ```no_run
//! use lameduck::{Request, Response};
//!
//! fn main() -> std::process::ExitCode {
//!     lameduck::cli::main(|request: &Request<'_>| match request.path {
//!         "/hi" => Response::text(200, "hi\n"),
//!         _ => Response::text(404, "not found\n"),
//!     })
//! }
//! ```
//!
//! [`main_with`] is the same, with a look at the bound [`Server`] before it runs: to take its
//! [`Lifecycle`](crate::Lifecycle) for a background job, say (`examples/background_job.rs`).

use std::process::ExitCode;
use std::time::SystemTime;

use crate::config::{self, Command, USAGE};
use crate::handler::Handler;
use crate::live;
use crate::log::{self, Level};
use crate::server::Server;

/// Exit code for a bad configuration or a failure to start.
const EXIT_CONFIG: u8 = 2;

/// Runs the command of this process's arguments and environment, with `handler` answering
/// requests when it is `serve`, and returns the exit code.
pub fn main<H: Handler>(handler: H) -> ExitCode {
    main_with(handler, |_| {})
}

/// Like [`main`], calling `setup` with the bound server just before it runs (only for `serve`,
/// and only once it is bound): the place to take its [`Lifecycle`](crate::Lifecycle).
///
/// ```no_run
/// use std::time::Duration;
/// use lameduck::Phase;
///
/// fn main() -> std::process::ExitCode {
///     lameduck::cli::main_with(lameduck::routes::default_handler, |server| {
///         let lifecycle = server.lifecycle();
///         std::thread::spawn(move || {
///             // Every second, until the server starts to stop.
///             while lifecycle.wait_until_timeout(Phase::Announce, Duration::from_secs(1)).is_none() {
///                 // refresh a cache, ...
///             }
///         });
///     })
/// }
/// ```
pub fn main_with<H: Handler>(handler: H, setup: impl FnOnce(&mut Server)) -> ExitCode {
    let command = config::parse_args(std::env::args().skip(1), |name| std::env::var(name).ok());
    match command {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("lameduck {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Live(live)) => {
            match live::check(&live.live_file, live.max_age, SystemTime::now()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(not_live) => {
                    eprintln!("{not_live}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Command::Serve(config)) => serve(*config, handler, setup),
        Err(e) => {
            eprintln!("lameduck: error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `serve`: bind, run until the lifecycle ends, and say how it ended.
fn serve<H: Handler>(
    config: config::Config,
    handler: H,
    setup: impl FnOnce(&mut Server),
) -> ExitCode {
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            log::event(
                Level::Error,
                "start_failed",
                &[("error", e.to_string().as_str().into())],
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    setup(&mut server);
    let code = match server.run(handler) {
        Ok(outcome) => outcome.exit_code() as u8,
        Err(e) => {
            log::event(
                Level::Error,
                "loop_failed",
                &[("error", e.to_string().as_str().into())],
            );
            1
        }
    };
    // `run` has removed the liveness file; dropping the server gives SIGTERM and SIGINT back.
    drop(server);
    ExitCode::from(code)
}
