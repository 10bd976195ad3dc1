//! The `lameduck` binary: parses argv, dispatches to `serve` or `live`, maps results to exit
//! codes. Everything else lives in the library.

use std::process::ExitCode;
use std::time::SystemTime;

use lameduck::config::{self, Command, USAGE};
use lameduck::log::{self, Level};
use lameduck::{Server, live, routes};

/// Exit code for a bad configuration or a failure to start (docs/design.md, "Command line").
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
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
        Ok(Command::Serve(config)) => serve(*config),
        Err(e) => {
            eprintln!("lameduck: error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(config: lameduck::Config) -> ExitCode {
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
    let code = match server.run(routes::default_handler) {
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
    // Dropping the server removes the liveness file before the process ends.
    drop(server);
    ExitCode::from(code)
}
