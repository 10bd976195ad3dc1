//! The server's own route, readiness, as a wrapper around any handler; and the default handler:
//! `GET`/`HEAD /` answers `Hello, World!`; other paths are 404 and other methods on `/` are 405;
//! `OPTIONS *` says what the server allows.

use crate::codec::{Request, Response};
use crate::handler::{Call, Handler};

/// Answers the readiness path (200 while serving, 503 from SIGTERM on) and passes every other
/// request to `inner`. The server wraps the user's handler in it, so readiness stays the
/// server's whatever the handler does.
pub struct Readiness<H> {
    path: String,
    inner: H,
}

impl<H> Readiness<H> {
    /// Answers readiness at `path` (`--health-path`) and hands every other request to `inner`.
    pub fn new(path: impl Into<String>, inner: H) -> Self {
        Readiness {
            path: path.into(),
            inner,
        }
    }
}

impl<H: Handler> Handler for Readiness<H> {
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
        if request.path != self.path {
            return self.inner.call(request, call);
        }
        Some(match request.method {
            "GET" | "HEAD" if call.ready() => Response::text(200, "ok\n"),
            "GET" | "HEAD" => Response::text(503, "shutting down\n"),
            _ => Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD"),
        })
    }
}

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
