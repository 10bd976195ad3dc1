//! Running the lameduck event loop with your own handler: the lifecycle (lame-duck readiness,
//! drain, liveness file) comes with it; the readiness path stays the server's.
//!
//! ```sh
//! cargo run --example custom_handler -- --port 8081
//! curl -i localhost:8081/time
//! curl -i -H 'X-Request-Id: abc' localhost:8081/ping
//! ```

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use lameduck::config::{self, Command};
use lameduck::{Request, Response, Server};

/// Routes the request, then echoes the client's `X-Request-Id` on whatever it answers.
fn handler(request: &Request<'_>) -> Response {
    let response = route(request);
    let Some(id) = request.header("X-Request-Id") else {
        return response;
    };
    // A value from outside the program goes through `try_header`, which refuses what HTTP
    // forbids in a header (`with_header` would panic on it).
    let id = String::from_utf8_lossy(id).into_owned();
    response
        .try_header("X-Request-Id", id)
        .unwrap_or_else(|e| Response::text(400, format!("{e}\n")))
}

/// `/time` answers the Unix time as JSON, `/ping` 204 No Content, `/` a greeting, anything else
/// 404.
fn route(request: &Request<'_>) -> Response {
    match (request.method, request.path) {
        ("GET", "/time") => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            // Setting `Content-Type` replaces the `text/plain` that `text` put there.
            Response::text(200, format!("{{\"unix\":{}}}\n", now.as_secs()))
                .with_header("Content-Type", "application/json")
        }
        ("GET" | "HEAD", "/ping") => Response::empty(204),
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
