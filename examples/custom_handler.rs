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

use lameduck::{Request, Response};

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
    // The same command line as `lameduck` itself (`serve`, `live`, every flag and variable).
    lameduck::cli::main(handler)
}
