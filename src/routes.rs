//! The default handler: `GET`/`HEAD /` answers `Hello, World!`; other paths are 404 and other
//! methods on `/` are 405; `OPTIONS *` says what the server allows. (The readiness path is
//! answered by the server, not here.)

use crate::codec::{Request, Response};

/// The body of `GET /`.
pub const HELLO: &str = "Hello, World!";

/// Routes a request the way `lameduck serve` does.
pub fn default_handler(request: &Request<'_>) -> Response {
    match (request.path, request.method) {
        // RFC 9110 §9.3.7: `OPTIONS *` asks about the server as a whole.
        ("*", "OPTIONS") => Response::text(200, "").with_header("Allow", "GET, HEAD"),
        ("/", "GET" | "HEAD") => Response::text(200, HELLO),
        ("/", _) => Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD"),
        _ => Response::text(404, "not found\n"),
    }
}
