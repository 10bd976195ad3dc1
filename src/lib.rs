//! lameduck: a tiny HTTP/1.1 server that is correct under rolling updates.
//!
//! When an orchestrator sends SIGTERM it starts, at the same moment, to take the pod out of its
//! load balancers; those learn of it a few seconds later. A server that closes its listener at
//! once refuses the connections still sent its way. lameduck instead (1) fails its readiness
//! check while still serving for a lame-duck delay, (2) drains: finishes in-flight requests,
//! closes keep-alive connections gently, with a deadline, and (3) proves it is alive with a file
//! that its event loop refreshes, checked by the binary itself (`lameduck live`), so the probe
//! works in a `scratch` image without going through the HTTP server.
//!
//! # Layout
//!
//! - [`config`]: every limit and timeout with its default, and the command line's parser.
//! - [`cli`]: the command line itself (`serve`, `live`, exit codes), for the binary and for a
//!   program with its own handler.
//! - [`server`]: the event loop (one thread, one `mio::Poll`) and the shutdown lifecycle.
//! - [`conn`]: one connection's state machine and socket I/O.
//! - [`handler`]: the [`Handler`] trait, and the [`Reply`] that answers a request later.
//! - [`codec`]: HTTP/1.1 parsing and encoding over httparse; pure, no sockets.
//! - [`routes`]: the readiness route (a wrapper around any handler) and the default handler
//!   (`/` → `Hello, World!`).
//! - `stream` (private): streamed bodies, the channel between a producer thread and the
//!   connection writing its pieces ([`BodyWriter`]).
//! - [`pool`]: a fixed pool of worker threads that runs blocking handlers off the loop.
//! - [`live`]: the liveness file and the `live` check.
//! - [`signals`]: SIGTERM/SIGINT/SIGUSR2 as a pollable source.
//! - [`log`]: logfmt phase-change lines on stderr.
//! - [`slab`]: the token-keyed connection table.
//! - `upgrade` (private): the in-place binary upgrade on SIGUSR2 (start the new binary on our
//!   listening socket, hand over once it is ready).
//! - `sys` (private): the raw system calls: a listener with our own backlog, discarding
//!   received bytes, the accept-queue length, the checks of an inherited socket.
//! - `listener` (private): where the listening socket comes from: bound, or inherited from
//!   systemd (socket activation).
//! - `notify` (private): readiness and shutdown reports to systemd (`NOTIFY_SOCKET`).
//!
//! # Running the loop with your own handler
//!
//! ```no_run
//! use lameduck::{Config, Response, Server};
//!
//! let mut server = Server::bind(Config::default())?;
//! let outcome = server.run(|request: &lameduck::Request<'_>| match request.path {
//!     "/hi" => Response::text(200, "hi\n"),
//!     _ => Response::text(404, "not found\n"),
//! })?;
//! std::process::exit(outcome.exit_code());
//! # Ok::<(), std::io::Error>(())
//! ```

#[macro_use]
mod sys;

pub mod cli;
pub mod codec;
pub mod config;
pub mod conn;
pub mod handler;
mod listener;
pub mod live;
pub mod log;
mod notify;
pub mod pool;
pub mod routes;
pub mod server;
pub mod signals;
pub mod slab;
mod stream;
mod upgrade;

pub use codec::{Body, Chunk, Request, Response};
pub use config::{Command, Config, ConfigError, LiveConfig};
pub use handler::{Call, Handler, Reply};
pub use pool::{Pool, PoolHandler};
pub use server::{Outcome, Server};
pub use stream::{BodyWriter, STREAM_HIGH_WATER};
