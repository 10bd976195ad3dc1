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
//! The public API is what an embedder uses: [`Server`], [`Config`], [`Handler`] (with [`Call`],
//! [`Reply`] and [`Cancellation`]), [`Request`], [`Response`] and its [`Body`], [`BodyWriter`],
//! [`Pool`], the [`Lifecycle`] with its [`Phase`] and [`Stop`], and the modules [`config`],
//! [`cli`], [`routes`] and [`logging`]. The rest is internal; each file says its job:
//!
//! - [`config`]: every limit and timeout with its default, and the command line's parser.
//! - [`cli`]: the command line itself (`serve`, `live`, exit codes), for the binary and for a
//!   program with its own handler.
//! - [`routes`]: the readiness route (a wrapper around any handler) and the default handler
//!   (`/` → `Hello, World!`).
//! - `server`: the event loop (one thread, one `mio::Poll`) and the shutdown lifecycle.
//! - `lifecycle`: the lifecycle as an embedder sees it ([`Lifecycle`], [`Phase`], [`Stop`]):
//!   the phase from any thread as it changes, and the programmatic stop.
//! - `conn`: one connection's state machine and socket I/O.
//! - `handler`: the [`Handler`] trait, and the [`Reply`] that answers a request later.
//! - `codec`: HTTP/1.1 parsing and encoding over httparse; pure, no sockets.
//! - `stream`: streamed bodies, the channel between a producer thread and the connection
//!   writing its pieces ([`BodyWriter`]).
//! - `pool`: a fixed pool of worker threads that runs blocking handlers off the loop.
//! - `live`: the liveness file and the `live` check.
//! - `signals`: SIGTERM/SIGINT/SIGUSR2 as a pollable source, through signal-hook.
//! - `log`: logfmt phase-change lines, and where they go (re-exported as [`logging`]).
//! - `slab`: the token-keyed connection table.
//! - `upgrade`: the in-place binary upgrade on SIGUSR2 (start the new binary on our listening
//!   socket, hand over once it is ready).
//! - `sys`: the raw system calls: a listener with our own backlog, discarding received bytes,
//!   the accept-queue length, the checks of an inherited socket.
//! - `listener`: where the listening socket comes from: bound, or inherited from systemd
//!   (socket activation).
//! - `notify`: readiness and shutdown reports to systemd (`NOTIFY_SOCKET`).
//!
//! `codec`, `conn`, `handler`, `live`, `log`, `signals` and `slab` are public but hidden from
//! the documentation: the project's tests, benchmarks and fuzzer drive them directly (a
//! connection over an in-memory socket, the codec alone). They are not API.
//!
//! # Running the loop with your own handler
//!
//! ```no_run
//! use lameduck::{Config, Response, Server};
//!
//! let mut server = Server::bind(Config::default())?;
//! let outcome = server.run(lameduck::handler_fn(|request| match request.path {
//!     "/hi" => Response::text(200, "hi\n"),
//!     _ => Response::text(404, "not found\n"),
//! }))?;
//! std::process::exit(outcome.exit_code());
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

#[macro_use]
mod sys;

// The public API: the command line, the configuration, the default routes, and the types
// re-exported below. The other modules are internals: hidden from the documentation and
// public only so that the project's own tests, benchmarks and fuzzer can drive them (the
// connection over an in-memory socket, the codec alone); they carry no stability promise.
pub mod cli;
pub mod config;
pub mod routes;

#[doc(hidden)]
pub mod codec;
#[doc(hidden)]
pub mod conn;
#[doc(hidden)]
pub mod handler;
mod lifecycle;
mod listener;
#[doc(hidden)]
pub mod live;
#[doc(hidden)]
pub mod log;
mod notify;
mod pool;
mod server;
#[doc(hidden)]
pub mod signals;
#[doc(hidden)]
pub mod slab;
mod stream;
mod upgrade;

pub use codec::{Body, BodyFraming, Chunk, Header, InvalidHeader, Request, Response, Version};
pub use config::{Command, Config, ConfigError, LiveConfig};
pub use handler::{Call, Cancellation, Handler, Reply, handler_fn};
pub use lifecycle::{Lifecycle, Phase, Stop};
pub use pool::{Pool, PoolHandler};
pub use server::{Outcome, Server};
pub use stream::{BodyWriter, STREAM_HIGH_WATER};

/// Where the phase log lines go: stderr (the default), nowhere, or a function of yours
/// ([`set_sink`](logging::set_sink)).
pub mod logging {
    pub use crate::log::{Level, Record, Sink, Value, set_sink};
}
