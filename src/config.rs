//! Configuration: every limit and timeout with its default, its bounds and their reasons, and
//! the command line (flags, with an environment variable for each; flags win). Parsed by hand to
//! keep the dependency budget at four crates.
//!
//! Every numeric and duration setting has an upper bound (and a lower one where 0 cannot work),
//! checked before anything is bound or created: an absurd value is a clear exit 2 naming the flag,
//! never an overflow panic in the event loop or an allocation abort after start-up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Time Kubernetes needs between our exit deadline and its SIGKILL: the kubelet's own latency
/// and the process teardown. `shutdown delay + drain timeout + this` must fit the grace period.
pub const GRACE_MARGIN: Duration = Duration::from_secs(2);

/// Longest any duration setting may be: 7 days (604800 s). Kubernetes grace periods of hours
/// exist (long-running work finishing before a pod goes), a week does not; and a bound this size
/// keeps every sum of durations and every `Instant + duration` the server forms far from
/// overflow, so `--shutdown-delay 18446744073709551615` is refused here instead of panicking.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Shortest `--heartbeat`, `--header-timeout`, `--idle-timeout` and `live --max-age`: more than
/// 0 (1 ms is the finest a duration is written). At 0 the heartbeat would spin the event loop,
/// every request would time out before its head is read, every response that does not leave in
/// one write would cut its client off (the idle timeout is also the patience given to a client
/// that reads slowly), and no liveness file would ever be fresh enough. `--shutdown-delay 0` and
/// `--drain-timeout 0` do make sense (no lame-duck phase; no waiting for work in flight).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Most `--max-conns`: 1,000,000. Each open connection takes a descriptor and kernel socket
/// buffers; more than a million on one single-threaded loop is a typo, not a plan.
pub const MAX_CONNS: usize = 1_000_000;

/// Largest `--max-body`: 1 GiB. A request body is read by the one event-loop thread (and handed
/// to the handler whole); a bigger upload belongs to a streaming service, not this server.
pub const MAX_BODY: u64 = 1024 * 1024 * 1024;

/// Smallest `--buffer-budget`: 64 KiB, a few unfinished heads' worth. (It must also hold one
/// whole request: `--max-body` + `--max-header-bytes`, checked by [`Config::validate`].)
pub const MIN_BUFFER_BUDGET: usize = 64 * 1024;

/// Largest `--buffer-budget`: 16 GiB. The budget exists to stay inside a memory limit; beyond
/// this it is a typo.
pub const MAX_BUFFER_BUDGET: usize = 16 * 1024 * 1024 * 1024;

/// Smallest `--max-header-bytes`: 64. The shortest request a real client sends
/// (`GET / HTTP/1.1`, `Host: localhost`, the empty line) is 35 bytes; below 64 hardly anything
/// but a 431 could be answered.
pub const MIN_HEADER_BYTES: usize = 64;

/// Largest `--max-header-bytes` (and so `--max-uri-bytes`): 1 MiB, 32 times nginx's largest
/// default header buffer set (4 × 8 KiB). The event loop's shared input buffer is sized from it
/// (a byte more than the limit, so that a head too large is seen, not stuck), so an absurd
/// value would abort on allocation after start-up; and a client part-way through a head makes
/// its connection carry up to this many bytes.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// Largest `--backlog`: `listen(2)` takes a C `int` (the kernel then caps it at
/// `net.core.somaxconn`).
pub const MAX_BACKLOG: u32 = libc::c_int::MAX as u32;

/// Everything `lameduck serve` can be told: built in code (every field has its default), or
/// from a command line and environment as `lameduck serve` reads them.
///
/// ```
/// use std::time::Duration;
/// use lameduck::{Command, Config};
///
/// let args = ["--port", "9000", "--shutdown-delay", "3s"].map(String::from);
/// let env = |name: &str| (name == "LAMEDUCK_MAX_CONNS").then(|| "500".to_string());
/// let Command::Serve(config) = lameduck::config::parse_args(args, env)? else {
///     unreachable!("no subcommand means serve")
/// };
/// assert_eq!(config.addr.port(), 9000);
/// assert_eq!(config.shutdown_delay, Duration::from_secs(3));
/// assert_eq!(config.max_conns, 500); // from the environment: flags win over it
/// assert_eq!(config.drain_timeout, Config::default().drain_timeout);
/// # Ok::<(), lameduck::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on. Default `0.0.0.0:8080`: in a container the pod IP is not known in
    /// advance, and 8080 needs no privilege.
    pub addr: SocketAddr,
    /// Lame-duck ANNOUNCE phase after SIGTERM: readiness fails but everything is still served,
    /// so load balancers that learn of the shutdown late do not hit a closed port. Default 5 s.
    pub shutdown_delay: Duration,
    /// Longest DRAIN: then the remaining connections are closed and the exit code is 1. Default 20 s.
    pub drain_timeout: Duration,
    /// The orchestrator's grace period (Kubernetes `terminationGracePeriodSeconds`, default 30 s).
    /// Only used to refuse timings that would get the process SIGKILLed mid-drain.
    pub grace_period: Duration,
    /// How often the event loop refreshes the liveness file. Default 1 s; more than 0.
    pub heartbeat: Duration,
    /// The liveness file. Default `/tmp/lameduck.live`: `/tmp` is the one writable path in a
    /// read-only-root pod (an `emptyDir`).
    pub live_file: PathBuf,
    /// Time allowed from a request's first byte to the end of its head (and between body reads).
    /// Slowloris defence. Default 10 s; more than 0 ([`MIN_TIMEOUT`]).
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept. Default 75 s: longer than common load
    /// balancers' idle timeout (60 s), so the balancer closes first and never reuses a
    /// connection we are closing. Also the patience given to a client that stops reading its
    /// responses. More than 0 ([`MIN_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// Most open connections. At the limit the server stops accepting (clients wait in the
    /// listen backlog) rather than accept-and-drop. Default 10 000; 1 to [`MAX_CONNS`].
    pub max_conns: usize,
    /// Longest wait for a handler that took a request's reply (see `lameduck::handler`): then
    /// the request is answered 503 and closed, and the late answer discarded. Default 15 s:
    /// slow work takes seconds, not minutes, and 15 s is inside the 20 s `--drain-timeout`, so a
    /// request in flight at SIGTERM is answered (or refused) before the drain is forced.
    /// [`MIN_TIMEOUT`] to [`MAX_DURATION`].
    pub handler_timeout: Duration,
    /// Most requests waiting for a handler's reply at once; one more is answered 503 with
    /// `Retry-After` at once. Default 1024: a handler defers because its work is elsewhere (a
    /// pool, another service); a thousand waiting usually means that elsewhere is stuck, and a
    /// fast 503 serves clients better than a queue that only empties at the handler timeout.
    /// 1 to [`MAX_CONNS`] (each waiting request holds a connection anyway).
    pub max_pending: usize,
    /// How long, after SIGUSR2, the new process of an in-place upgrade has to report that it
    /// serves before the old one gives up on it (kills it, and goes on serving). Default 10 s:
    /// starting takes milliseconds; ten seconds covers a loaded machine without leaving an
    /// operator waiting on a binary that will never come up. [`MIN_TIMEOUT`] to
    /// [`MAX_DURATION`].
    pub upgrade_timeout: Duration,
    /// Bytes the server may hold in user space on behalf of all its clients together: unfinished
    /// request heads, and request bodies being collected (each counted at its declared length,
    /// or `--max-body` when chunked, from the moment it is admitted). A request that needs more
    /// than is left waits in the kernel (TCP flow control makes its client wait), and is answered
    /// 503 with `Retry-After` if the room does not come within `--header-timeout`; a request
    /// that needs nothing buffered (a whole head without a body, `/health` above all) is answered
    /// whatever the budget says. Output is not counted: it is bounded per connection
    /// ([`OUTPUT_HIGH_WATER`](crate::conn::OUTPUT_HIGH_WATER)), and bodies are written from where
    /// they live. Default 64 MiB: 64 uploads of the default `--max-body` at once. Must hold
    /// `--max-body` + `--max-header-bytes`. Set it, with `--max-conns`, from the container's
    /// memory limit (deploy/kubernetes.yaml shows how). [`MIN_BUFFER_BUDGET`] to
    /// [`MAX_BUFFER_BUDGET`].
    pub buffer_budget: usize,
    /// Largest request body in bytes; larger is 413. Default 1 MiB; at most [`MAX_BODY`]
    /// (0 refuses every body).
    pub max_body: u64,
    /// Largest request head in bytes (request line + header lines); larger is 431. Default
    /// 12 KiB: room for an 8,000-octet request line (RFC 9112 §3's recommended minimum) plus
    /// 4 KiB of ordinary headers. nginx accepts a request line of up to 8 KiB and a head of up to
    /// 32 KiB (`large_client_header_buffers 4 8k`); Apache 8190 bytes per line, 100 lines.
    /// Why not more: a client part-way through a head makes its connection hold what it sent so
    /// far (conn.rs explains why that cannot wait in the kernel), so this limit is the
    /// per-connection worst case of a half-sent head, and 12 KiB keeps it under 16 KiB.
    /// [`MIN_HEADER_BYTES`] to [`MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Longest request-target in bytes; longer is 414. Default 8 KiB: RFC 9112 §3 recommends
    /// supporting request lines of at least 8000 octets, and long query strings (signed URLs,
    /// tracking parameters) get close. From 1 to [`Config::max_header_bytes`]: the target is
    /// part of the head.
    pub max_uri_bytes: usize,
    /// `listen(2)` backlog. Default 1024; 1 to [`MAX_BACKLOG`]. The kernel caps it at
    /// `net.core.somaxconn`.
    pub backlog: u32,
    /// The readiness path. Default `/health`.
    pub health_path: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
            shutdown_delay: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(20),
            grace_period: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            live_file: PathBuf::from("/tmp/lameduck.live"),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_conns: 10_000,
            handler_timeout: Duration::from_secs(15),
            max_pending: 1024,
            upgrade_timeout: Duration::from_secs(10),
            buffer_budget: 64 * 1024 * 1024,
            max_body: 1024 * 1024,
            max_header_bytes: 12 * 1024,
            max_uri_bytes: 8 * 1024,
            backlog: 1024,
            health_path: "/health".to_string(),
        }
    }
}

impl Config {
    /// Refuses configurations that cannot work, before anything is bound: every setting within
    /// its bounds, the request-target limit inside the head limit, the shutdown timings inside
    /// the grace period.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (flag, _) in SERVE_ENV {
            self.check(flag)?;
        }
        if self.max_uri_bytes > self.max_header_bytes {
            return Err(ConfigError::UriLimitAboveHeadLimit {
                max_uri_bytes: self.max_uri_bytes,
                max_header_bytes: self.max_header_bytes,
            });
        }
        // One request may hold a whole head and a whole body; if that cannot fit in the budget,
        // an upload would wait for room that only it could free. Refused rather than stalled.
        if (self.max_header_bytes as u64).saturating_add(self.max_body) > self.buffer_budget as u64
        {
            return Err(ConfigError::RequestExceedsBufferBudget {
                max_body: self.max_body,
                max_header_bytes: self.max_header_bytes,
                buffer_budget: self.buffer_budget,
            });
        }
        if stop_time(self.shutdown_delay, self.drain_timeout) > self.grace_period {
            return Err(ConfigError::TimingsExceedGracePeriod {
                shutdown_delay: self.shutdown_delay,
                drain_timeout: self.drain_timeout,
                grace_period: self.grace_period,
            });
        }
        Ok(())
    }

    /// Checks the one setting `flag` names against its own bounds. The parser runs it after
    /// each value it applies, so that a value from the environment is reported with its
    /// variable's name; [`Config::validate`] runs it for every flag, so that a `Config` built in
    /// code is held to the same bounds.
    fn check(&self, flag: &str) -> Result<(), ConfigError> {
        let duration = |value, min| within(flag, value, min, MAX_DURATION, show);
        let count = |value: usize, min, max| within(flag, value, min, max, |n| n.to_string());
        match flag {
            "shutdown-delay" => duration(self.shutdown_delay, Duration::ZERO),
            "drain-timeout" => duration(self.drain_timeout, Duration::ZERO),
            "grace-period" => duration(self.grace_period, Duration::ZERO),
            "heartbeat" => duration(self.heartbeat, MIN_TIMEOUT),
            "header-timeout" => duration(self.header_timeout, MIN_TIMEOUT),
            "idle-timeout" => duration(self.idle_timeout, MIN_TIMEOUT),
            "upgrade-timeout" => duration(self.upgrade_timeout, MIN_TIMEOUT),
            "handler-timeout" => duration(self.handler_timeout, MIN_TIMEOUT),
            "max-pending" => count(self.max_pending, 1, MAX_CONNS),
            "max-conns" => count(self.max_conns, 1, MAX_CONNS),
            "max-header-bytes" => count(self.max_header_bytes, MIN_HEADER_BYTES, MAX_HEADER_BYTES),
            "max-uri-bytes" => count(self.max_uri_bytes, 1, MAX_HEADER_BYTES),
            "max-body" => within(flag, self.max_body, 0, MAX_BODY, |n| n.to_string()),
            "buffer-budget" => count(self.buffer_budget, MIN_BUFFER_BUDGET, MAX_BUFFER_BUDGET),
            "backlog" => within(flag, self.backlog, 1, MAX_BACKLOG, |n| n.to_string()),
            "health-path" if !self.health_path.starts_with('/') => {
                Err(ConfigError::HealthPathNotAbsolute {
                    path: self.health_path.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// How long a stop may take before the orchestrator's SIGKILL must not come: the lame-duck
/// delay, the drain timeout and [`GRACE_MARGIN`]. Added with a check although the bounds keep the
/// sum far from overflow: an overflow would be a panic at start-up instead of a message.
fn stop_time(shutdown_delay: Duration, drain_timeout: Duration) -> Duration {
    shutdown_delay
        .checked_add(drain_timeout)
        .and_then(|d| d.checked_add(GRACE_MARGIN))
        .unwrap_or(Duration::MAX)
}

/// `value` of `--flag` within `min..=max`, or an error that names the flag and the bound broken.
fn within<T: PartialOrd + Copy>(
    flag: &str,
    value: T,
    min: T,
    max: T,
    show: impl Fn(T) -> String,
) -> Result<(), ConfigError> {
    let flag = flag.to_string();
    if value < min {
        Err(ConfigError::BelowMinimum {
            flag,
            value: show(value),
            minimum: show(min),
        })
    } else if value > max {
        Err(ConfigError::AboveMaximum {
            flag,
            value: show(value),
            maximum: show(max),
        })
    } else {
        Ok(())
    }
}

/// Everything `lameduck live` can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// The liveness file to check (the server's `--live-file`).
    pub live_file: PathBuf,
    /// Oldest acceptable heartbeat. Default 10 s: ten missed 1 s heartbeats means the loop is
    /// wedged, while a busy loop that is a little late is not killed. [`MIN_TIMEOUT`] to
    /// [`MAX_DURATION`].
    pub max_age: Duration,
}

impl LiveConfig {
    /// Checks the one setting `flag` names against its bounds (see [`Config::validate`]).
    fn check(&self, flag: &str) -> Result<(), ConfigError> {
        match flag {
            "max-age" => within(flag, self.max_age, MIN_TIMEOUT, MAX_DURATION, show),
            _ => Ok(()),
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            live_file: Config::default().live_file,
            max_age: Duration::from_secs(10),
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `lameduck serve` (or no command): run the server. Boxed: a `Config` is a few hundred
    /// bytes, the other commands a few words.
    Serve(Box<Config>),
    /// `lameduck live`: check the liveness file and exit.
    Live(LiveConfig),
    /// `--help`: print [`USAGE`].
    Help,
    /// `--version`: print the version.
    Version,
}

/// Why a command line or a [`Config`] was refused: one variant per kind of refusal, each with what
/// was refused. Its message (`Display`) names the flag, or the environment variable the value
/// came from; the binary prints it and exits 2. Flag names are kept without their leading `--`.
/// Non-exhaustive: a later version may refuse something new, so a `match` needs a `_` arm.
///
/// [`Server::bind`](crate::Server::bind) refuses a `Config` with an `io::Error` of kind
/// `InvalidInput` that carries the `ConfigError` itself, so an embedder can tell the refusals
/// apart:
///
/// ```
/// use std::time::Duration;
/// use lameduck::{Config, ConfigError, Server};
///
/// let config = Config {
///     addr: ([127, 0, 0, 1], 0).into(),
///     drain_timeout: Duration::from_secs(60),
///     ..Config::default()
/// };
/// let error = Server::bind(config).err().expect("60 s of drain do not fit in 30 s of grace");
/// match error.get_ref().and_then(|e| e.downcast_ref::<ConfigError>()) {
///     Some(ConfigError::TimingsExceedGracePeriod { grace_period, .. }) => {
///         assert_eq!(*grace_period, Duration::from_secs(30));
///     }
///     other => panic!("expected the grace-period refusal, got {other:?}"),
/// }
/// assert!(error.to_string().starts_with("--shutdown-delay 5s + --drain-timeout 60s"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// An argument that is not a flag (no leading `--`), where only flags may come.
    UnexpectedArgument {
        /// The argument as given.
        argument: String,
    },
    /// A flag the command (`serve` or `live`) does not know.
    UnknownFlag {
        /// The flag's name.
        flag: String,
    },
    /// A flag at the end of the command line, without its value.
    MissingValue {
        /// The flag's name.
        flag: String,
    },
    /// A value that does not parse as what its flag takes.
    InvalidValue {
        /// The flag's name.
        flag: String,
        /// The value as given.
        value: String,
        /// What the flag takes, as the message says it ("a duration like 500ms, 5s or 2m").
        expected: &'static str,
    },
    /// A value below its flag's lower bound (the flag's documentation gives the bound's reason).
    BelowMinimum {
        /// The flag's name.
        flag: String,
        /// The value, written as the message shows it (`0s`, `63`).
        value: String,
        /// The bound, written the same way.
        minimum: String,
    },
    /// A value above its flag's upper bound.
    AboveMaximum {
        /// The flag's name.
        flag: String,
        /// The value, written as the message shows it (`604801s`, `1000001`).
        value: String,
        /// The bound, written the same way.
        maximum: String,
    },
    /// `--health-path` that does not start with `/`: no request-target could ever match it.
    HealthPathNotAbsolute {
        /// The path as given.
        path: String,
    },
    /// `--max-uri-bytes` above `--max-header-bytes`: the request-target is part of the head, so
    /// the larger limit could never apply.
    UriLimitAboveHeadLimit {
        /// `--max-uri-bytes`.
        max_uri_bytes: usize,
        /// `--max-header-bytes`.
        max_header_bytes: usize,
    },
    /// `--max-body` + `--max-header-bytes` more than `--buffer-budget`: one upload could never
    /// be taken, since it would wait for room only it could free.
    RequestExceedsBufferBudget {
        /// `--max-body`.
        max_body: u64,
        /// `--max-header-bytes`.
        max_header_bytes: usize,
        /// `--buffer-budget`.
        buffer_budget: usize,
    },
    /// `--shutdown-delay` + `--drain-timeout` + [`GRACE_MARGIN`] longer than `--grace-period`:
    /// the orchestrator would SIGKILL the server mid-drain.
    TimingsExceedGracePeriod {
        /// `--shutdown-delay`.
        shutdown_delay: Duration,
        /// `--drain-timeout`.
        drain_timeout: Duration,
        /// `--grace-period`.
        grace_period: Duration,
    },
    /// A value from an environment variable, refused as `error` says. Not a
    /// [`source`](std::error::Error::source): the message already includes `error`'s.
    FromEnvironment {
        /// The variable's name (`PORT`, `LAMEDUCK_MAX_CONNS`, …).
        variable: &'static str,
        /// Why its value was refused.
        error: Box<ConfigError>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnexpectedArgument { argument } => {
                write!(f, "unexpected argument '{argument}' (see --help)")
            }
            ConfigError::UnknownFlag { flag } => write!(f, "unknown flag --{flag} (see --help)"),
            ConfigError::MissingValue { flag } => write!(f, "--{flag} needs a value"),
            ConfigError::InvalidValue {
                flag,
                value,
                expected,
            } => write!(f, "--{flag}: invalid value '{value}': expected {expected}"),
            ConfigError::BelowMinimum {
                flag,
                value,
                minimum,
            } => write!(f, "--{flag}: {value} is below the minimum {minimum}"),
            ConfigError::AboveMaximum {
                flag,
                value,
                maximum,
            } => write!(f, "--{flag}: {value} is above the maximum {maximum}"),
            ConfigError::HealthPathNotAbsolute { .. } => {
                f.write_str("--health-path must start with '/'")
            }
            ConfigError::UriLimitAboveHeadLimit {
                max_uri_bytes,
                max_header_bytes,
            } => write!(
                f,
                "--max-uri-bytes {max_uri_bytes} is above --max-header-bytes \
                 {max_header_bytes}: the request-target is part of the head"
            ),
            ConfigError::RequestExceedsBufferBudget {
                max_body,
                max_header_bytes,
                buffer_budget,
            } => write!(
                f,
                "--max-body {max_body} + --max-header-bytes {max_header_bytes} = {} does not fit \
                 in --buffer-budget {buffer_budget}: one upload could never be taken (raise \
                 --buffer-budget or lower --max-body)",
                *max_body + *max_header_bytes as u64
            ),
            ConfigError::TimingsExceedGracePeriod {
                shutdown_delay,
                drain_timeout,
                grace_period,
            } => write!(
                f,
                "--shutdown-delay {} + --drain-timeout {} + {} margin = {} does not fit in \
                 --grace-period {}: the orchestrator would SIGKILL the server mid-drain \
                 (raise --grace-period / terminationGracePeriodSeconds or shorten the others)",
                show(*shutdown_delay),
                show(*drain_timeout),
                show(GRACE_MARGIN),
                show(stop_time(*shutdown_delay, *drain_timeout)),
                show(*grace_period)
            ),
            ConfigError::FromEnvironment { variable, error } => write!(f, "{variable}: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The text of `--help`: every command, flag, environment variable and default.
pub const USAGE: &str = "\
lameduck: a tiny HTTP/1.1 server that survives rolling updates

USAGE:
    lameduck [serve] [FLAGS]        run the server (the default)
    lameduck live [FLAGS]           liveness probe: exit 0 if the server's heartbeat is fresh
    lameduck --help | --version

SERVE FLAGS (environment variable in brackets; flags win):
    --addr IP                 address to listen on [LAMEDUCK_ADDR] (0.0.0.0)
    --port N                  port to listen on, 0 = any [PORT] (8080)
    --shutdown-delay D        lame-duck time after SIGTERM: /health 503, still serving [LAMEDUCK_SHUTDOWN_DELAY] (5s)
    --drain-timeout D         longest drain before connections are forced closed [LAMEDUCK_DRAIN_TIMEOUT] (20s)
    --grace-period D          orchestrator's grace period the two above must fit in [LAMEDUCK_GRACE_PERIOD] (30s)
    --heartbeat D             liveness-file refresh interval [LAMEDUCK_HEARTBEAT] (1s)
    --live-file PATH          liveness file [LAMEDUCK_LIVE_FILE] (/tmp/lameduck.live)
    --header-timeout D        time to receive a request head [LAMEDUCK_HEADER_TIMEOUT] (10s)
    --idle-timeout D          keep-alive idle timeout [LAMEDUCK_IDLE_TIMEOUT] (75s)
    --upgrade-timeout D       SIGUSR2 upgrade: time the new process has to report ready [LAMEDUCK_UPGRADE_TIMEOUT] (10s)
    --handler-timeout D       longest wait for a handler that answers later (503 after) [LAMEDUCK_HANDLER_TIMEOUT] (15s)
    --max-pending N           most requests waiting for a later answer (503 above) [LAMEDUCK_MAX_PENDING] (1024)
    --max-conns N             most open connections, 1 to 1000000 [LAMEDUCK_MAX_CONNS] (10000)
    --max-body BYTES          largest request body, at most 1073741824 [LAMEDUCK_MAX_BODY] (1048576)
    --buffer-budget BYTES     bytes of heads and bodies held for all clients, 65536 to 17179869184 [LAMEDUCK_BUFFER_BUDGET] (67108864)
    --max-header-bytes BYTES  largest request head, 64 to 1048576 [LAMEDUCK_MAX_HEADER_BYTES] (12288)
    --max-uri-bytes BYTES     longest request-target, 1 to --max-header-bytes [LAMEDUCK_MAX_URI_BYTES] (8192)
    --backlog N               listen backlog, 1 to 2147483647 [LAMEDUCK_BACKLOG] (1024)
    --health-path PATH        readiness path [LAMEDUCK_HEALTH_PATH] (/health)

LIVE FLAGS:
    --live-file PATH          liveness file [LAMEDUCK_LIVE_FILE] (/tmp/lameduck.live)
    --max-age D               oldest acceptable heartbeat [LAMEDUCK_MAX_AGE] (10s)

Durations: 0, 500ms, 5s, 2m (a bare number is seconds); at most 604800s (7 days).
--heartbeat, --header-timeout, --idle-timeout and --max-age must be more than 0.
Exit codes (serve): 0 clean drain, 1 forced (drain timeout or second signal), 2 bad configuration or cannot bind.
Exit codes (live): 0 live, 1 not live (reason on stderr).
";

/// Parses argv (without the program name) and the environment (`env` looks a variable up).
pub fn parse_args<I, E>(args: I, env: E) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let mut args = args.into_iter().peekable();
    let mode = match args.peek().map(String::as_str) {
        Some("serve") => {
            args.next();
            "serve"
        }
        Some("live") => {
            args.next();
            "live"
        }
        _ => "serve",
    };

    // Collect `--flag value` / `--flag=value` pairs first, so env defaults can be applied
    // underneath and flags win regardless of order.
    let mut flags: Vec<(String, String)> = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            _ => {}
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(ConfigError::UnexpectedArgument { argument: arg });
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = args.next().ok_or_else(|| ConfigError::MissingValue {
                    flag: flag.to_string(),
                })?;
                (flag.to_string(), value)
            }
        };
        flags.push((name, value));
    }

    if mode == "live" {
        let mut live = LiveConfig::default();
        let mut apply = |name: &str, value: &str| -> Result<bool, ConfigError> {
            match name {
                "live-file" => live.live_file = PathBuf::from(value),
                "max-age" => live.max_age = parse_duration(name, value)?,
                _ => return Ok(false),
            }
            live.check(name)?;
            Ok(true)
        };
        apply_env_then_flags(&mut apply, &flags, &env, LIVE_ENV)?;
        return Ok(Command::Live(live));
    }

    let mut config = Config::default();
    let mut apply = |name: &str, value: &str| -> Result<bool, ConfigError> {
        match name {
            "addr" => {
                let ip: IpAddr = value
                    .parse()
                    .map_err(|_| invalid(name, value, "an IP address"))?;
                config.addr.set_ip(ip);
            }
            "port" => config.addr.set_port(parse_number(name, value)?),
            "shutdown-delay" => config.shutdown_delay = parse_duration(name, value)?,
            "drain-timeout" => config.drain_timeout = parse_duration(name, value)?,
            "grace-period" => config.grace_period = parse_duration(name, value)?,
            "heartbeat" => config.heartbeat = parse_duration(name, value)?,
            "live-file" => config.live_file = PathBuf::from(value),
            "header-timeout" => config.header_timeout = parse_duration(name, value)?,
            "idle-timeout" => config.idle_timeout = parse_duration(name, value)?,
            "upgrade-timeout" => config.upgrade_timeout = parse_duration(name, value)?,
            "handler-timeout" => config.handler_timeout = parse_duration(name, value)?,
            "max-pending" => config.max_pending = parse_number(name, value)?,
            "max-conns" => config.max_conns = parse_number(name, value)?,
            "max-body" => config.max_body = parse_number(name, value)?,
            "buffer-budget" => config.buffer_budget = parse_number(name, value)?,
            "max-header-bytes" => config.max_header_bytes = parse_number(name, value)?,
            "max-uri-bytes" => config.max_uri_bytes = parse_number(name, value)?,
            "backlog" => config.backlog = parse_number(name, value)?,
            "health-path" => config.health_path = value.to_string(),
            _ => return Ok(false),
        }
        config.check(name)?;
        Ok(true)
    };
    apply_env_then_flags(&mut apply, &flags, &env, SERVE_ENV)?;
    config.validate()?;
    Ok(Command::Serve(Box::new(config)))
}

/// Flag name → environment variable, for `serve`.
const SERVE_ENV: &[(&str, &str)] = &[
    ("addr", "LAMEDUCK_ADDR"),
    ("port", "PORT"),
    ("shutdown-delay", "LAMEDUCK_SHUTDOWN_DELAY"),
    ("drain-timeout", "LAMEDUCK_DRAIN_TIMEOUT"),
    ("grace-period", "LAMEDUCK_GRACE_PERIOD"),
    ("heartbeat", "LAMEDUCK_HEARTBEAT"),
    ("live-file", "LAMEDUCK_LIVE_FILE"),
    ("header-timeout", "LAMEDUCK_HEADER_TIMEOUT"),
    ("idle-timeout", "LAMEDUCK_IDLE_TIMEOUT"),
    ("upgrade-timeout", "LAMEDUCK_UPGRADE_TIMEOUT"),
    ("handler-timeout", "LAMEDUCK_HANDLER_TIMEOUT"),
    ("max-pending", "LAMEDUCK_MAX_PENDING"),
    ("max-conns", "LAMEDUCK_MAX_CONNS"),
    ("max-body", "LAMEDUCK_MAX_BODY"),
    ("buffer-budget", "LAMEDUCK_BUFFER_BUDGET"),
    ("max-header-bytes", "LAMEDUCK_MAX_HEADER_BYTES"),
    ("max-uri-bytes", "LAMEDUCK_MAX_URI_BYTES"),
    ("backlog", "LAMEDUCK_BACKLOG"),
    ("health-path", "LAMEDUCK_HEALTH_PATH"),
];

/// Flag name → environment variable, for `live`.
const LIVE_ENV: &[(&str, &str)] = &[
    ("live-file", "LAMEDUCK_LIVE_FILE"),
    ("max-age", "LAMEDUCK_MAX_AGE"),
];

fn apply_env_then_flags<F, E>(
    apply: &mut F,
    flags: &[(String, String)],
    env: &E,
    table: &[(&str, &'static str)],
) -> Result<(), ConfigError>
where
    F: FnMut(&str, &str) -> Result<bool, ConfigError>,
    E: Fn(&str) -> Option<String>,
{
    for &(name, variable) in table {
        if let Some(value) = env(variable) {
            apply(name, &value).map_err(|error| ConfigError::FromEnvironment {
                variable,
                error: Box::new(error),
            })?;
        }
    }
    for (name, value) in flags {
        if !apply(name, value)? {
            return Err(ConfigError::UnknownFlag { flag: name.clone() });
        }
    }
    Ok(())
}

fn invalid(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        flag: name.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(name, value, "a non-negative whole number in range"))
}

/// Parses `0`, `500ms`, `5s`, `2m`; a bare number is seconds.
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let bad = || invalid(name, value, "a duration like 500ms, 5s or 2m");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A duration as a person writes it: `5s`, `500ms`, `1500ms`.
pub fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_args(args.iter().map(|s| s.to_string()), |k| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn no_arguments_is_serve_with_defaults() {
        assert_eq!(parse(&[], &[]), Ok(Command::Serve(Box::default())));
        assert_eq!(Config::default().addr.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn flags_win_over_env() {
        let Ok(Command::Serve(c)) = parse(&["--port", "9000"], &[("PORT", "7000")]) else {
            panic!("expected serve");
        };
        assert_eq!(c.addr.port(), 9000);
        let Ok(Command::Serve(c)) = parse(&["serve"], &[("PORT", "7000")]) else {
            panic!("expected serve");
        };
        assert_eq!(c.addr.port(), 7000);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("x", "500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("x", "5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("x", "7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("x", "2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "-1s", "1.5s", "5 s", "5h", "ms"] {
            assert!(
                parse_duration("x", bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = parse(&["--port", "http"], &[]).unwrap_err();
        assert!(err.to_string().contains("--port"), "{err}");
        let err = parse(&["--shutdown-delay=soon"], &[]).unwrap_err();
        assert!(err.to_string().contains("--shutdown-delay"), "{err}");
        let err = parse(&["--bogus", "1"], &[]).unwrap_err();
        assert!(err.to_string().contains("--bogus"), "{err}");
        let err = parse(&[], &[("PORT", "x")]).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    /// One case per kind of refusal: the variant an embedder matches on, and the message the
    /// binary prints, word for word as before `ConfigError` was an enum (scripts and
    /// tests/config.rs read it).
    #[test]
    fn each_refusal_is_its_own_variant_with_its_message() {
        /// Arguments, environment, the refusal, its message.
        type Case = (
            &'static [&'static str],
            &'static [(&'static str, &'static str)],
            ConfigError,
            &'static str,
        );
        let s = String::from;
        let cases: &[Case] = &[
            (
                &["foo"],
                &[],
                ConfigError::UnexpectedArgument { argument: s("foo") },
                "unexpected argument 'foo' (see --help)",
            ),
            (
                &["--bogus", "1"],
                &[],
                ConfigError::UnknownFlag { flag: s("bogus") },
                "unknown flag --bogus (see --help)",
            ),
            (
                &["--port"],
                &[],
                ConfigError::MissingValue { flag: s("port") },
                "--port needs a value",
            ),
            (
                &["--addr", "nope"],
                &[],
                ConfigError::InvalidValue {
                    flag: s("addr"),
                    value: s("nope"),
                    expected: "an IP address",
                },
                "--addr: invalid value 'nope': expected an IP address",
            ),
            (
                &["--heartbeat", "0"],
                &[],
                ConfigError::BelowMinimum {
                    flag: s("heartbeat"),
                    value: s("0s"),
                    minimum: s("1ms"),
                },
                "--heartbeat: 0s is below the minimum 1ms",
            ),
            (
                &["--max-conns", "1000001"],
                &[],
                ConfigError::AboveMaximum {
                    flag: s("max-conns"),
                    value: s("1000001"),
                    maximum: s("1000000"),
                },
                "--max-conns: 1000001 is above the maximum 1000000",
            ),
            (
                &["--health-path", "health"],
                &[],
                ConfigError::HealthPathNotAbsolute { path: s("health") },
                "--health-path must start with '/'",
            ),
            (
                &["--max-uri-bytes", "20000"],
                &[],
                ConfigError::UriLimitAboveHeadLimit {
                    max_uri_bytes: 20000,
                    max_header_bytes: 12288,
                },
                "--max-uri-bytes 20000 is above --max-header-bytes 12288: the request-target is \
                 part of the head",
            ),
            (
                &["--drain-timeout", "23500ms"],
                &[],
                ConfigError::TimingsExceedGracePeriod {
                    shutdown_delay: Duration::from_secs(5),
                    drain_timeout: Duration::from_millis(23500),
                    grace_period: Duration::from_secs(30),
                },
                "--shutdown-delay 5s + --drain-timeout 23500ms + 2s margin = 30500ms does not fit \
                 in --grace-period 30s: the orchestrator would SIGKILL the server mid-drain \
                 (raise --grace-period / terminationGracePeriodSeconds or shorten the others)",
            ),
            (
                &[],
                &[("PORT", "x")],
                ConfigError::FromEnvironment {
                    variable: "PORT",
                    error: Box::new(ConfigError::InvalidValue {
                        flag: s("port"),
                        value: s("x"),
                        expected: "a non-negative whole number in range",
                    }),
                },
                "PORT: --port: invalid value 'x': expected a non-negative whole number in range",
            ),
        ];
        for (args, env, variant, message) in cases {
            let err = parse(args, env).unwrap_err();
            assert_eq!(&err, variant, "{args:?} {env:?}");
            assert_eq!(err.to_string(), *message, "{args:?} {env:?}");
        }
    }

    #[test]
    fn grace_period_must_hold_delay_and_drain() {
        assert!(parse(&["--drain-timeout", "23s"], &[]).is_ok());
        let err = parse(&["--drain-timeout", "24s"], &[]).unwrap_err();
        assert!(err.to_string().contains("--grace-period"), "{err}");
        assert!(parse(&["--drain-timeout", "24s", "--grace-period", "31s"], &[]).is_ok());
    }

    #[test]
    fn defaults_are_within_bounds() {
        assert_eq!(Config::default().validate(), Ok(()));
        let c = Config::default();
        // RFC 9112 §3: request lines of at least 8000 octets.
        assert!(c.max_uri_bytes >= 8000 && c.max_uri_bytes <= c.max_header_bytes);
    }

    #[test]
    fn absurd_values_are_refused_naming_the_flag() {
        let huge = u64::MAX.to_string();
        for (args, named, broken) in [
            (
                &["--shutdown-delay", huge.as_str()][..],
                "--shutdown-delay",
                "above the maximum",
            ),
            (
                &["--drain-timeout", &huge],
                "--drain-timeout",
                "above the maximum",
            ),
            (
                &["--grace-period", &huge],
                "--grace-period",
                "above the maximum",
            ),
            (&["--heartbeat", &huge], "--heartbeat", "above the maximum"),
            (
                &["--header-timeout", &huge],
                "--header-timeout",
                "above the maximum",
            ),
            (
                &["--idle-timeout=18446744073709551615ms"],
                "--idle-timeout",
                "above the maximum",
            ),
            (&["--heartbeat", "0"], "--heartbeat", "below the minimum"),
            (
                &["--header-timeout", "0"],
                "--header-timeout",
                "below the minimum",
            ),
            (
                &["--idle-timeout", "0ms"],
                "--idle-timeout",
                "below the minimum",
            ),
            (
                &["--max-header-bytes", "100000000000000"],
                "--max-header-bytes",
                "above the maximum",
            ),
            (
                &["--max-header-bytes", "63", "--max-uri-bytes", "1"],
                "--max-header-bytes",
                "below the minimum",
            ),
            (
                &["--max-uri-bytes", "0"],
                "--max-uri-bytes",
                "below the minimum",
            ),
            (
                &["--max-conns", "1000001"],
                "--max-conns",
                "above the maximum",
            ),
            (&["--max-conns", "0"], "--max-conns", "below the minimum"),
            (&["--max-body", &huge], "--max-body", "above the maximum"),
            (
                &["--backlog", "2147483648"],
                "--backlog",
                "above the maximum",
            ),
            (&["--backlog", "0"], "--backlog", "below the minimum"),
            (
                &["live", "--max-age", &huge],
                "--max-age",
                "above the maximum",
            ),
            (
                &["live", "--max-age", "0"],
                "--max-age",
                "below the minimum",
            ),
        ] {
            let err = parse(args, &[]).unwrap_err();
            assert!(err.to_string().starts_with(named), "{args:?}: {err}");
            assert!(err.to_string().contains(broken), "{args:?}: {err}");
        }
    }

    /// One whole request (the largest head and body) must fit in the budget, or an upload could
    /// wait for room only it could free: refused at start, naming both flags.
    #[test]
    fn one_request_must_fit_in_the_buffer_budget() {
        let err = parse(&["--buffer-budget", "65536"], &[]).unwrap_err();
        assert!(
            matches!(err, ConfigError::RequestExceedsBufferBudget { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("--max-body 1048576"), "{message}");
        assert!(message.contains("--buffer-budget 65536"), "{message}");
        assert!(parse(&["--buffer-budget", "65536", "--max-body", "50000"], &[]).is_ok());
    }

    #[test]
    fn bounds_are_inclusive() {
        let week = MAX_DURATION.as_secs().to_string();
        let over = (MAX_DURATION.as_secs() + 1).to_string();
        for flag in ["--idle-timeout", "--header-timeout", "--heartbeat"] {
            assert!(parse(&[flag, &week], &[]).is_ok(), "{flag} {week}");
            assert!(parse(&[flag, &over], &[]).is_err(), "{flag} {over}");
            assert!(parse(&[flag, "1ms"], &[]).is_ok(), "{flag} 1ms");
        }
        let ok = |args: &[&str]| assert!(parse(args, &[]).is_ok(), "{args:?}");
        ok(&["--max-conns", "1000000"]);
        ok(&["--max-conns", "1"]);
        ok(&["--max-body", "1073741824", "--buffer-budget", "2147483648"]);
        ok(&["--max-body", "0"]);
        ok(&[
            "--max-header-bytes",
            "1048576",
            "--max-uri-bytes",
            "1048576",
        ]);
        ok(&["--max-header-bytes", "64", "--max-uri-bytes", "1"]);
        ok(&["--backlog", "2147483647"]);
        ok(&["--shutdown-delay", "0", "--drain-timeout", "0"]);
        ok(&["live", "--max-age", &week]);
        assert!(parse(&["--max-body", "1073741825"], &[]).is_err());
    }

    #[test]
    fn longest_timings_do_not_overflow_the_grace_check() {
        // Each within its own bound, their sum is not: refused by the grace check, no panic.
        let week = MAX_DURATION.as_secs().to_string();
        let err = parse(
            &[
                "--shutdown-delay",
                &week,
                "--drain-timeout",
                &week,
                "--grace-period",
                &week,
            ],
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("--grace-period"), "{err}");
        // A `Config` built in code is held to the same bounds, without overflowing.
        let config = Config {
            shutdown_delay: Duration::MAX,
            drain_timeout: Duration::MAX,
            ..Config::default()
        };
        assert!(
            matches!(
                config.validate(),
                Err(ConfigError::AboveMaximum { flag, .. }) if flag == "shutdown-delay"
            ),
            "{:?}",
            config.validate()
        );
        let config = Config {
            max_header_bytes: usize::MAX,
            ..Config::default()
        };
        assert!(
            matches!(
                config.validate(),
                Err(ConfigError::AboveMaximum { flag, .. }) if flag == "max-header-bytes"
            ),
            "{:?}",
            config.validate()
        );
    }

    #[test]
    fn target_limit_must_fit_in_the_head_limit() {
        let err = parse(&["--max-uri-bytes", "12289"], &[]).unwrap_err();
        assert!(
            err.to_string().contains("--max-uri-bytes")
                && err.to_string().contains("--max-header-bytes"),
            "{err}"
        );
        let err = parse(&["--max-header-bytes", "4096"], &[]).unwrap_err();
        assert!(err.to_string().contains("--max-uri-bytes"), "{err}");
        assert!(
            parse(
                &["--max-header-bytes", "4096", "--max-uri-bytes", "4096"],
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn out_of_bounds_env_values_name_the_variable() {
        for (var, value, flag) in [
            (
                "LAMEDUCK_SHUTDOWN_DELAY",
                "18446744073709551615",
                "--shutdown-delay",
            ),
            (
                "LAMEDUCK_MAX_HEADER_BYTES",
                "100000000000000",
                "--max-header-bytes",
            ),
            ("LAMEDUCK_HEARTBEAT", "0", "--heartbeat"),
            ("LAMEDUCK_HEALTH_PATH", "health", "--health-path"),
        ] {
            let err = parse(&[], &[(var, value)]).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{var}: {flag}")),
                "{err}"
            );
        }
        let err = parse(&["live"], &[("LAMEDUCK_MAX_AGE", "0")]).unwrap_err();
        assert!(
            err.to_string().starts_with("LAMEDUCK_MAX_AGE: --max-age"),
            "{err}"
        );
    }

    #[test]
    fn live_mode() {
        assert_eq!(
            parse(&["live", "--live-file", "/x", "--max-age=3s"], &[]),
            Ok(Command::Live(LiveConfig {
                live_file: PathBuf::from("/x"),
                max_age: Duration::from_secs(3)
            }))
        );
        assert!(parse(&["live", "--port", "1"], &[]).is_err());
        assert_eq!(parse(&["live", "--help"], &[]), Ok(Command::Help));
    }
}
