//! Running the lameduck event loop with your own handler: the lifecycle (lame-duck readiness,
//! drain, liveness file) comes with it; the readiness path stays the server's.
//!
//! ```sh
//! cargo run --example custom_handler -- --port 8081
//! curl localhost:8081/time
//! ```

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use lameduck::config::{self, Command};
use lameduck::{Request, Response, Server};

/// Answers `/time` with the Unix time, `/` with a greeting, anything else with 404.
fn handler(request: &Request<'_>) -> Response {
    match (request.method, request.path) {
        ("GET", "/time") => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Response::text(200, format!("{}\n", now.as_secs()))
        }
        ("GET", "/") => Response::text(200, "hello from a custom handler\n")
            .with_header("Cache-Control", "no-store"),
        _ => Response::text(404, "not found\n"),
    }
}

fn main() -> ExitCode {
    // The same flags and environment variables as `lameduck serve`.
    let config = match config::parse_args(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Command::Serve(config)) => *config,
        Ok(_) => {
            eprint!("{}", config::USAGE);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("custom_handler: error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("custom_handler: {e}");
            return ExitCode::from(2);
        }
    };
    match server.run(handler) {
        Ok(outcome) => ExitCode::from(outcome.exit_code() as u8),
        Err(e) => {
            eprintln!("custom_handler: {e}");
            ExitCode::FAILURE
        }
    }
}
