//! The event loop: one thread, one `mio::Poll`, the listener, the signal source, the
//! connections, the timers, and the shutdown lifecycle (SERVING → ANNOUNCE → DRAIN → exit, or
//! FORCE; its diagram and the reason for each phase are in docs/design.md, "The lifecycle").
//!
//! A stop is a signal (SIGTERM as ANNOUNCE, SIGINT as DRAIN) or the same request made through a
//! [`Lifecycle`] ([`Stop::Graceful`], [`Stop::Now`]); each phase change is published to the
//! `Lifecycle` right after its log line.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use crate::codec::DateCache;
use crate::config::{self, Config};
use crate::conn::{self, Connection, Context, Limits, Scratch, State, Verdict};
use crate::handler::{Handler, Inbox, Message};
use crate::lifecycle::{self, Lifecycle, Stop};
use crate::listener::{self, Origin};
use crate::live::{Heartbeat, LiveFile};
use crate::log::{self, Level};
use crate::notify;
use crate::routes::Readiness;
use crate::signals::{Signal, SignalSource};
use crate::slab::Slab;
use crate::sys;
use crate::upgrade::{self, ReadyReport, Report, Upgrade};

/// The listening socket.
const LISTENER: Token = Token(0);
/// The signal source (SIGTERM, SIGINT, SIGUSR2).
const SIGNALS: Token = Token(1);
/// The report channel of the new process of an in-place upgrade, while it starts.
const UPGRADE: Token = Token(2);
/// The loop's waker: a handler's reply, sent from another thread, has arrived, or a stop request
/// from a [`Lifecycle`].
const WAKER: Token = Token(3);
/// Connections use tokens from here on: token = `FIRST_CONNECTION` + slab index. Timers need no
/// token: they are the `poll` timeout.
const FIRST_CONNECTION: usize = 4;

/// How often connection deadlines are checked. Timeouts are therefore up to this late, which
/// is nothing next to their lengths (seconds), and one pass over the connections every quarter
/// second is far cheaper than a timer per connection.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// How long a drain leaves an idle keep-alive connection open when the listening socket lives
/// on in another process (an upgrade's child, or systemd's socket unit) and no lame-duck window
/// came first. Those clients are connected to this process directly, and a busy one is about to
/// send its next request: that request is answered, with `Connection: close`, so the client
/// reconnects, to the next server. Closing at once would race with that request (RFC 9112
/// §9.5); a second covers a client between two requests without keeping idle ones for long.
const HAND_OVER_IDLE_GRACE: Duration = Duration::from_secs(1);

/// After `accept` fails for lack of file descriptors (EMFILE/ENFILE), wait this long before
/// trying again. Retrying at once would spin: the pending connection keeps the listener ready.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Readiness events handled per `poll` call.
const EVENTS_CAPACITY: usize = 1024;

/// Shared input buffer size: one peek can see this many bytes of pipelined requests or body.
const SCRATCH_INPUT_BYTES: usize = 64 * 1024;

/// The lifecycle phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Normal service; readiness 200.
    Serving,
    /// Lame duck, until `until`: readiness 503, still accepting and serving, every response
    /// `Connection: close`.
    Announce { until: Instant },
    /// Listener closed, connections finishing; forced at `deadline`. Idle connections are closed
    /// once idle for `idle_grace` (from `since` at the earliest): at once after the lame-duck
    /// delay or SIGINT, after [`HAND_OVER_IDLE_GRACE`] when the socket lives on elsewhere.
    Drain {
        deadline: Instant,
        since: Instant,
        idle_grace: Duration,
    },
}

/// Logs a server-wide bound's change of state, once per change and never per request: `events[0]`
/// (a warning) when it becomes `full`, `events[1]` when it has room again. `was_full` remembers
/// the state of the last line; `pairs` are built only when a line is written.
fn log_bound_change<'a, const N: usize>(
    was_full: &mut bool,
    full: bool,
    events: [&str; 2],
    pairs: impl FnOnce() -> [(&'static str, log::Value<'a>); N],
) {
    if full == *was_full {
        return;
    }
    *was_full = full;
    let (level, event) = if full {
        (Level::Warn, events[0])
    } else {
        (Level::Info, events[1])
    };
    log::event(level, event, &pairs());
}

/// How the server ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every connection finished within the drain timeout.
    Drained,
    /// The drain timeout passed; the remaining connections were closed.
    Forced,
    /// A second signal arrived; the process stops at once.
    Interrupted,
    /// Every connection finished, but clients waiting in the accept backlog could not be taken
    /// (no file descriptors) and were reset when the listener closed.
    BacklogLost,
}

impl Phase {
    /// The phase as a [`Lifecycle`] reports it.
    fn observed(self) -> lifecycle::Phase {
        match self {
            Phase::Serving => lifecycle::Phase::Serving,
            Phase::Announce { .. } => lifecycle::Phase::Announce,
            Phase::Drain { .. } => lifecycle::Phase::Drain,
        }
    }
}

impl Outcome {
    /// The process exit code for this outcome (docs/design.md, "Command line").
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Drained => 0,
            Outcome::Forced | Outcome::Interrupted | Outcome::BacklogLost => 1,
        }
    }
}

/// A bound, not yet running server: [`bind`](Server::bind) does the start-up (the socket, the
/// signals, the liveness file), [`run`](Server::run) serves until the lifecycle ends.
///
/// ```
/// use std::io::{Read, Write};
/// use lameduck::{Config, Outcome, Phase, Response, Server, Stop, handler_fn};
///
/// let dir = std::env::temp_dir().join(format!("lameduck-server-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut server = Server::bind(Config {
///     addr: ([127, 0, 0, 1], 0).into(), // port 0: any free port
///     live_file: dir.join("live"),
///     ..Config::default()
/// })?;
/// let (addr, lifecycle) = (server.local_addr(), server.lifecycle());
/// let client = std::thread::spawn(move || -> std::io::Result<String> {
///     lifecycle.wait_until(Phase::Serving);
///     let mut stream = std::net::TcpStream::connect(addr)?;
///     stream.write_all(b"GET /hi HTTP/1.1\r\nHost: doc\r\nConnection: close\r\n\r\n")?;
///     let mut answer = String::new();
///     stream.read_to_string(&mut answer)?;
///     lifecycle.stop(Stop::Now); // as SIGINT: drain now
///     Ok(answer)
/// });
/// let outcome = server.run(handler_fn(|request| match request.path {
///     "/hi" => Response::text(200, "hi\n"),
///     _ => Response::text(404, "not found\n"),
/// }))?;
/// assert!(client.join().unwrap()?.ends_with("\r\n\r\nhi\n"));
/// assert_eq!(outcome, Outcome::Drained);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    config: Config,
    poll: Poll,
    /// `None` once DRAIN has closed it.
    listener: Option<TcpListener>,
    /// Bound here, or inherited (socket activation): decides whether DRAIN loses the backlog.
    origin: Origin,
    local_addr: SocketAddr,
    signals: SignalSource,
    /// Open connections, keyed by token.
    conns: Slab<Connection>,
    /// Removed when `run` returns, and on drop (a panic, or a `Server` that never ran); `None`
    /// once an in-place upgrade has handed it to the new process.
    live: Option<LiveFile>,
    /// The path to start an in-place upgrade's new process from (see
    /// [`upgrade::started_from`]), taken at start-up.
    exe: Option<PathBuf>,
    /// The new process of an in-place upgrade, from SIGUSR2 until it is ready or given up.
    upgrade: Option<Upgrade>,
    /// When this process is the new one of an upgrade: where to say it serves.
    ready_report: Option<ReadyReport>,
    /// Where replies from other threads arrive, with the loop's one waker (a stop request from
    /// the lifecycle wakes the loop through it too). Made at `bind`, so that a [`Lifecycle`]
    /// taken before `run` can wake the loop.
    inbox: Arc<Inbox>,
    /// What the embedder sees of the lifecycle, and its stop requests.
    lifecycle: Lifecycle,
}

impl Drop for Server {
    /// A server dropped without running (or after `run`) tells its [`Lifecycle`] that it has
    /// stopped, so that no thread waits on it for ever.
    fn drop(&mut self) {
        self.lifecycle.finish(None);
    }
}

/// Counters for the phase-change log lines.
#[derive(Default, Debug)]
struct Stats {
    accepted: u64,
    served: u64,
    /// Connections taken from the accept backlog when DRAIN closed the listener.
    backlog_accepted: u64,
    /// Connections left in the accept backlog when DRAIN closed the listener (reset by it).
    backlog_lost: u64,
    /// Responses served before the stop signal (the exit line reports those after it).
    served_at_signal: u64,
    /// Answers not given when FORCE closed their connections: replies still owed, and bodies
    /// not completely written.
    abandoned: u64,
}

/// The loop's mutable state besides the sources.
struct Runtime<H> {
    phase: Phase,
    /// The user's handler, inside the server's readiness route.
    handler: Readiness<H>,
    /// Where replies sent from other threads arrive, with the loop's waker.
    inbox: Arc<Inbox>,
    /// Replies handed out so far (each reply's serial).
    serial: u64,
    /// Requests whose handler owes a reply, against `--max-pending`.
    pending: usize,
    /// `pending` has reached `--max-pending`: one more is answered 503.
    pending_full: bool,
    now: Instant,
    date: DateCache,
    scratch: Scratch,
    limits: Limits,
    next_heartbeat: Instant,
    next_sweep: Instant,
    /// Whether (and why) accepting has stopped.
    accept_pause: AcceptPause,
    accept_retry_at: Option<Instant>,
    signal_at: Option<Instant>,
    /// A stop (signal or [`Lifecycle::stop`]) has been taken: the next one ends the process at
    /// once. Not set by an upgrade's hand-over, which drains without being asked to stop.
    stop_taken: bool,
    /// Bytes held in user space for all connections together ([`Connection::buffered`]),
    /// against `--buffer-budget`.
    buffered: usize,
    budget: usize,
    /// Connections whose next request needs more of the budget than is left (it waits in the
    /// kernel); requests that need none are answered meanwhile.
    budget_waiting: usize,
    /// `budget_waiting` is not zero (the state of the last `budget_full` line).
    budget_full: bool,
    stats: Stats,
}

impl<H> Runtime<H> {
    /// Marks the moment the stop began (a signal, or the hand-over of an upgrade), unless it
    /// has begun already: the exit line counts time and responses from here.
    fn stop_started(&mut self) {
        if self.signal_at.is_some() {
            return;
        }
        self.signal_at = Some(self.now);
        self.stats.served_at_signal = self.stats.served;
    }

    /// Books a connection's change of held bytes from `before` to `after` against the budget,
    /// and of whether it waits for room, with one log line each time requests start waiting for
    /// room (the budget is full for them) and when none waits any more.
    fn account(&mut self, before: (usize, bool), after: (usize, bool)) {
        self.buffered = self.buffered - before.0 + after.0;
        self.budget_waiting = self.budget_waiting + usize::from(after.1) - usize::from(before.1);
        log_bound_change(
            &mut self.budget_full,
            self.budget_waiting > 0,
            ["budget_full", "budget_available"],
            || {
                [
                    ("buffered", self.buffered.into()),
                    ("budget", self.budget.into()),
                    ("waiting", self.budget_waiting.into()),
                ]
            },
        );
    }

    /// Books a connection's change between waiting for a reply and not, with one log line each
    /// time the pending bound is reached or has room again.
    fn count_pending(&mut self, before: bool, after: bool, max: usize) {
        self.pending = self.pending + usize::from(after) - usize::from(before);
        log_bound_change(
            &mut self.pending_full,
            self.pending >= max,
            ["pending_full", "pending_available"],
            || {
                [
                    ("pending", self.pending.into()),
                    ("max_pending", max.into()),
                ]
            },
        );
    }

    /// What connection `index` is told about the server in the current phase, and the shared
    /// buffers.
    fn connection_context(&mut self, index: usize) -> (&mut Scratch, Context<'_, Readiness<H>>) {
        let phase = match self.phase {
            Phase::Serving => conn::Phase::Serving,
            Phase::Announce { .. } => conn::Phase::LameDuck,
            Phase::Drain {
                since, idle_grace, ..
            } => conn::Phase::Draining { since, idle_grace },
        };
        let context = Context {
            now: self.now,
            date: self.date.value(),
            phase,
            budget_room: self.budget.saturating_sub(self.buffered),
            limits: &self.limits,
            handler: &mut self.handler,
            inbox: &self.inbox,
            serial: &mut self.serial,
            pending_room: !self.pending_full,
            index,
        };
        (&mut self.scratch, context)
    }
}

impl Server {
    /// Installs the signal handlers, binds the listener (or takes the one systemd passed, see
    /// `listener.rs`) and creates the liveness file, in that order: a signal during start-up is
    /// never lost, and the liveness file only ever says "live" for a server that holds its port.
    pub fn bind(config: Config) -> io::Result<Server> {
        // A `Config` built in code gets the same checks as one from the command line.
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let mut signals = SignalSource::new()?;
        poll.registry()
            .register(signals.source(), SIGNALS, Interest::READABLE)?;
        let (std_listener, origin, ready_report) = listener::acquire(&config)?;
        let mut listener = TcpListener::from_std(std_listener);
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let inbox = Inbox::new(mio::Waker::new(poll.registry(), WAKER)?);
        let live = LiveFile::create(&config.live_file)?;
        Ok(Server {
            lifecycle: Lifecycle::new(inbox.clone()),
            inbox,
            config,
            poll,
            listener: Some(listener),
            origin,
            local_addr,
            signals,
            conns: Slab::new(),
            live: Some(live),
            exe: upgrade::started_from(),
            upgrade: None,
            ready_report,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle on this server's lifecycle, for any thread: its phase as it changes, and the
    /// programmatic stop. Take it before `run` (which holds the server until it returns); every
    /// call returns a handle on the same lifecycle. See [`Lifecycle`] for an example.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// Runs the event loop with `handler` answering every path but the readiness path, until
    /// the lifecycle ends. The liveness file is gone when it returns, whatever the outcome, even
    /// if the caller then ends with `std::process::exit` (which skips `Drop`).
    pub fn run<H>(&mut self, handler: H) -> io::Result<Outcome>
    where
        H: Handler,
    {
        let result = self.run_loop(handler);
        if let Some(live) = &mut self.live {
            live.remove();
        }
        if let Some(upgrade) = self.upgrade.take() {
            // Stopped while a new process was starting: it must not outlive us half-started.
            let what = upgrade.abandon("the server stopped");
            self.log_phase(
                Level::Warn,
                "child_failed",
                &[("reason", what.as_str().into())],
            );
        }
        self.lifecycle.finish(result.as_ref().ok().copied());
        result
    }

    fn run_loop<H>(&mut self, handler: H) -> io::Result<Outcome>
    where
        H: Handler,
    {
        let now = Instant::now();
        let mut rt = Runtime {
            phase: Phase::Serving,
            handler: Readiness::new(self.config.health_path.clone(), handler),
            inbox: self.inbox.clone(),
            serial: 0,
            pending: 0,
            pending_full: false,
            now,
            date: DateCache::default(),
            scratch: Scratch::new(SCRATCH_INPUT_BYTES.max(self.config.max_header_bytes + 1)),
            limits: Limits::from(&self.config),
            next_heartbeat: now,
            next_sweep: now + SWEEP_INTERVAL,
            accept_pause: AcceptPause::No,
            accept_retry_at: None,
            signal_at: None,
            stop_taken: false,
            buffered: 0,
            budget: self.config.buffer_budget,
            budget_waiting: 0,
            budget_full: false,
            stats: Stats::default(),
        };
        log::event(
            Level::Info,
            "listening",
            &[
                ("addr", self.local_addr.to_string().as_str().into()),
                (
                    "live_file",
                    self.config.live_file.to_string_lossy().as_ref().into(),
                ),
                ("pid", u64::from(std::process::id()).into()),
                (
                    "shutdown_delay",
                    config::show(self.config.shutdown_delay).as_str().into(),
                ),
                (
                    "drain_timeout",
                    config::show(self.config.drain_timeout).as_str().into(),
                ),
            ],
        );
        notify::notify(notify::READY);
        if let Some(report) = self.ready_report.take() {
            // We are the new process of an upgrade: the old one stops accepting now.
            report.send();
        }
        self.lifecycle.publish(rt.phase.observed());
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            self.run_timers(&mut rt);
            if let Some(outcome) = self.finished(&mut rt) {
                return Ok(outcome);
            }
            let timeout = self.next_timer(&rt).saturating_duration_since(rt.now);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            rt.now = Instant::now();
            rt.date.update(SystemTime::now());
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(&mut rt),
                    UPGRADE => self.on_upgrade_report(&mut rt),
                    WAKER => {
                        self.on_replies(&mut rt);
                        if let Some(outcome) = self.on_stop_requests(&mut rt) {
                            return Ok(outcome);
                        }
                    }
                    SIGNALS => {
                        if let Some(outcome) = self.on_signals(&mut rt) {
                            return Ok(outcome);
                        }
                    }
                    token => self.on_connection(token, event.is_read_closed(), &mut rt),
                }
            }
        }
    }

    /// The earliest moment the loop must wake without an event.
    fn next_timer<H>(&self, rt: &Runtime<H>) -> Instant {
        let mut next = rt.next_heartbeat.min(rt.next_sweep);
        if let Some(at) = rt.accept_retry_at {
            next = next.min(at);
        }
        if let Some(upgrade) = &self.upgrade {
            next = next.min(upgrade.deadline);
        }
        match rt.phase {
            Phase::Serving => next,
            Phase::Announce { until } => next.min(until),
            Phase::Drain { deadline, .. } => next.min(deadline),
        }
    }

    /// Heartbeat, connection deadlines, accept retry and phase changes that are due.
    fn run_timers<H>(&mut self, rt: &mut Runtime<H>)
    where
        H: Handler,
    {
        let now = rt.now;
        if now >= rt.next_heartbeat {
            // The heartbeat runs on the event loop itself: if the loop wedges, the file goes
            // stale and `lameduck live` fails. That is the whole point; don't move it to a thread.
            self.heartbeat();
            rt.next_heartbeat = now + self.config.heartbeat;
        }
        if rt.accept_retry_at.is_some_and(|at| now >= at) {
            rt.accept_retry_at = None;
            self.accept(rt);
        }
        if self.upgrade.as_ref().is_some_and(|u| now >= u.deadline) {
            self.on_upgrade_report(rt);
        }
        if let Phase::Announce { until } = rt.phase {
            if now >= until {
                self.start_drain(rt, "delay_over", Duration::ZERO);
            }
        }
        if now >= rt.next_sweep {
            self.sweep(rt);
            rt.next_sweep = now + SWEEP_INTERVAL;
        }
    }

    /// Returns the outcome once the lifecycle is over: drained, or forced at the deadline.
    fn finished<H>(&mut self, rt: &mut Runtime<H>) -> Option<Outcome> {
        let Phase::Drain { deadline, .. } = rt.phase else {
            return None;
        };
        if self.conns.is_empty() {
            let outcome = if rt.stats.backlog_lost > 0 {
                Outcome::BacklogLost
            } else {
                Outcome::Drained
            };
            return Some(self.conclude(rt, outcome));
        }
        if rt.now >= deadline {
            let timeout = config::show(self.config.drain_timeout);
            self.log_phase(
                Level::Warn,
                "force",
                &[("drain_timeout", timeout.as_str().into())],
            );
            self.abandon_connections(rt);
            return Some(self.conclude(rt, Outcome::Forced));
        }
        None
    }

    /// Closes every connection still open (FORCE, or a second stop), counting every answer not
    /// given as abandoned: replies a handler still owes, and responses not completely written.
    /// Their replies are cancelled as the connections go.
    fn abandon_connections<H>(&mut self, rt: &mut Runtime<H>) {
        let counts = self.counts();
        rt.stats.abandoned = (counts.pending + counts.writing) as u64;
        self.conns.clear();
    }

    /// The end of the lifecycle: removes the liveness file (if still ours), then logs the exit
    /// line, so that whoever reads that line finds the file gone.
    fn conclude<H>(&mut self, rt: &Runtime<H>, outcome: Outcome) -> Outcome {
        if let Some(live) = &mut self.live {
            live.remove();
        }
        self.log_exit(rt, outcome);
        outcome
    }

    fn log_exit<H>(&self, rt: &Runtime<H>, outcome: Outcome) {
        let since_signal = rt.signal_at.map_or(0, |at| {
            rt.now.saturating_duration_since(at).as_millis() as u64
        });
        let outcome_name = match outcome {
            Outcome::Drained => "drained",
            Outcome::Forced => "forced",
            Outcome::Interrupted => "interrupted",
            Outcome::BacklogLost => "backlog_lost",
        };
        log::event(
            if outcome == Outcome::Drained {
                Level::Info
            } else {
                Level::Warn
            },
            "exit",
            &[
                ("code", (outcome.exit_code() as u64).into()),
                ("pid", u64::from(std::process::id()).into()),
                ("outcome", outcome_name.into()),
                ("since_signal_ms", since_signal.into()),
                ("accepted", rt.stats.accepted.into()),
                ("served", rt.stats.served.into()),
                (
                    "served_after_signal",
                    (rt.stats.served - rt.stats.served_at_signal).into(),
                ),
                ("abandoned", rt.stats.abandoned.into()),
            ],
        );
    }

    /// Accepts until the backlog is empty (the readiness contract of edge-triggered polling),
    /// the connection limit is reached, or descriptors run out.
    fn accept<H>(&mut self, rt: &mut Runtime<H>) {
        while self.listener.is_some() {
            if self.conns.len() >= self.config.max_conns {
                // Stop accepting rather than accept-and-drop: waiting clients stay in the listen
                // backlog and are taken as soon as a connection closes (see `apply`).
                set_pause(rt, AcceptPause::AtLimit, self.conns.len(), None);
                return;
            }
            match self.accept_one(rt) {
                Accepted::One => {}
                // The backlog is empty and there is room: accepting has resumed, if it had
                // paused. (Not on each accept at the limit: that would log twice per request.)
                Accepted::Empty => {
                    set_pause(rt, AcceptPause::No, self.conns.len(), None);
                    return;
                }
                Accepted::OutOfDescriptors(e) => {
                    // Existing connections keep being served; new ones wait in the backlog.
                    let open = self.conns.len();
                    set_pause(rt, AcceptPause::OutOfDescriptors, open, Some(&e));
                    rt.accept_retry_at = Some(rt.now + ACCEPT_BACKOFF);
                    return;
                }
                Accepted::Failed => return,
            }
        }
    }

    /// Accepts one connection from the backlog and registers it.
    fn accept_one<H>(&mut self, rt: &mut Runtime<H>) -> Accepted {
        let Some(listener) = &self.listener else {
            return Accepted::Empty;
        };
        let stream = loop {
            match listener.accept() {
                Ok((stream, _peer)) => break stream,
                Err(e) if would_block(&e) => return Accepted::Empty,
                Err(e) if interrupted(&e) || aborted(&e) => continue,
                Err(e) if out_of_descriptors(&e) => return Accepted::OutOfDescriptors(e),
                Err(e) => {
                    log::event(
                        Level::Error,
                        "accept_failed",
                        &[("error", e.to_string().as_str().into())],
                    );
                    return Accepted::Failed;
                }
            }
        };
        rt.stats.accepted += 1;
        // Responses are written whole, in one write; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let index = self.conns.insert(Connection::new(stream, rt.now));
        let token = Token(FIRST_CONNECTION + index);
        let registered = match self.conns.get_mut(index) {
            Some(conn) => {
                self.poll
                    .registry()
                    .register(conn.stream_mut(), token, Interest::READABLE)
            }
            None => Ok(()),
        };
        if registered.is_err() {
            self.conns.remove(index);
        }
        Accepted::One
    }

    /// DRAIN's first step: takes every client already in the accept backlog, whatever
    /// `--max-conns` says. These clients completed their handshake and have probably sent their
    /// request; closing the listener on them would reset them. Each is answered, with
    /// `Connection: close` since we are draining. Clients that cannot be taken (no descriptors
    /// left) are counted, because closing the listener will reset them.
    fn take_backlog<H>(&mut self, rt: &mut Runtime<H>) {
        while let Accepted::One = self.accept_one(rt) {
            rt.stats.backlog_accepted += 1;
        }
        // Whatever is queued now is lost: clients we could not take, and any that completed
        // their handshake since our last accept. Unless the socket is inherited: then it stays
        // open in the process that handed it over, and they wait there for the next server.
        if let (Some(listener), Origin::Bound) = (&self.listener, self.origin) {
            rt.stats.backlog_lost =
                sys::accept_queue_len(listener.as_raw_fd()).map_or(0, u64::from);
        }
    }

    /// Reacts to SIGTERM / SIGINT (stops, as [`Stop::Graceful`] / [`Stop::Now`]) and SIGUSR2
    /// (an in-place upgrade), in the order they were delivered.
    fn on_signals<H>(&mut self, rt: &mut Runtime<H>) -> Option<Outcome>
    where
        H: Handler,
    {
        for signal in self.signals.pending() {
            let outcome = match signal {
                Signal::Upgrade => {
                    self.start_upgrade(rt);
                    None
                }
                Signal::Term => self.on_stop(rt, Stop::Graceful, signal.name()),
                Signal::Int => self.on_stop(rt, Stop::Now, signal.name()),
            };
            if outcome.is_some() {
                return outcome;
            }
        }
        None
    }

    /// Takes the stop requests made through the [`Lifecycle`], in order.
    fn on_stop_requests<H>(&mut self, rt: &mut Runtime<H>) -> Option<Outcome>
    where
        H: Handler,
    {
        for stop in self.lifecycle.take_requests() {
            if let Some(outcome) = self.on_stop(rt, stop, stop.name()) {
                return Some(outcome);
            }
        }
        None
    }

    /// One stop request, a signal's or the [`Lifecycle`]'s (`by` names it in the log). The first
    /// starts ANNOUNCE ([`Stop::Graceful`]) or DRAIN ([`Stop::Now`]); one while an earlier stop
    /// is under way ends the process at once, counting every answer not given. A process that
    /// drains because it handed its socket to an upgrade's new process was not asked to stop:
    /// for it, this is the first stop, and the drain goes on.
    fn on_stop<H>(&mut self, rt: &mut Runtime<H>, stop: Stop, by: &str) -> Option<Outcome>
    where
        H: Handler,
    {
        if rt.stop_taken {
            // The operator (or a second Ctrl-C) insists: stop now. Exit code 1 says the stop
            // was not clean.
            self.log_phase(Level::Warn, "interrupted", &[("signal", by.into())]);
            self.abandon_connections(rt);
            return Some(self.conclude(rt, Outcome::Interrupted));
        }
        rt.stop_taken = true;
        if self.upgrade.is_some() {
            // A new process that has said "ready" may be accepting already: it must never be
            // killed. Hear what it said (its report may have come with the stop) before
            // deciding; if it is ready, hand over first.
            self.on_upgrade_report(rt);
        }
        if matches!(rt.phase, Phase::Drain { .. }) {
            // Draining after a hand-over: the new process is the service now (systemd's main
            // process, so no STOPPING=1 from us), and ours was the drain asked for.
            self.log_phase(Level::Info, "drain_continues", &[("signal", by.into())]);
            return None;
        }
        rt.stop_started();
        notify::notify(notify::STOPPING);
        if self.upgrade.is_some() {
            // Not ready: the service is being stopped, and a new process must not come up
            // behind it.
            self.upgrade_failed("the server is stopping");
        }
        match stop {
            Stop::Graceful if !self.config.shutdown_delay.is_zero() => {
                rt.phase = Phase::Announce {
                    until: rt.now + self.config.shutdown_delay,
                };
                let delay = config::show(self.config.shutdown_delay);
                self.log_phase(
                    Level::Info,
                    "announce",
                    &[("signal", by.into()), ("delay", delay.as_str().into())],
                );
                self.lifecycle.publish(rt.phase.observed());
            }
            // SIGTERM with no lame-duck delay. On a socket that lives on in systemd the next
            // server takes over this socket's clients, so they are handed over as in an
            // upgrade: told to close by their next answer, or closed after a second idle.
            Stop::Graceful if matches!(self.origin, Origin::Inherited { .. }) => {
                self.start_drain(rt, by, HAND_OVER_IDLE_GRACE);
            }
            // SIGINT (a person at a terminal: skip the lame-duck delay), or SIGTERM with no
            // delay on our own socket: drain at once.
            _ => self.start_drain(rt, by, Duration::ZERO),
        }
        None
    }

    /// DRAIN after a signal: take what is queued in the backlog, close the listener, close idle
    /// connections gently (once idle for `idle_grace`), and let the active ones finish. `after`
    /// says what started it.
    fn start_drain<H>(&mut self, rt: &mut Runtime<H>, after: &str, idle_grace: Duration)
    where
        H: Handler,
    {
        self.take_backlog(rt);
        self.enter_drain(rt, after, idle_grace);
    }

    /// Closes our listener and drains, idle connections after `idle_grace`. The listener is
    /// only deregistered and dropped: after an upgrade the new process holds the same socket.
    fn enter_drain<H>(&mut self, rt: &mut Runtime<H>, after: &str, idle_grace: Duration)
    where
        H: Handler,
    {
        rt.phase = Phase::Drain {
            deadline: rt.now + self.config.drain_timeout,
            since: rt.now,
            idle_grace,
        };
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let timeout = config::show(self.config.drain_timeout);
        self.log_phase(
            Level::Info,
            "drain",
            &[
                ("after", after.into()),
                ("backlog_accepted", rt.stats.backlog_accepted.into()),
                ("backlog_lost", rt.stats.backlog_lost.into()),
                ("timeout", timeout.as_str().into()),
            ],
        );
        self.lifecycle.publish(rt.phase.observed());
        self.sweep(rt);
    }

    /// SIGUSR2: starts the binary again on our listening socket (see the `upgrade` module), unless
    /// that cannot work or is already under way.
    fn start_upgrade<H>(&mut self, rt: &mut Runtime<H>) {
        let refused = if std::process::id() == 1 {
            // In a container we are PID 1 (its init): our exit ends the container, new process
            // included. Half-working would be worse than refusing: there, replace the container.
            Some("pid1")
        } else if rt.phase != Phase::Serving {
            Some("shutting_down")
        } else if self.upgrade.is_some() {
            Some("in_progress")
        } else {
            None
        };
        if let Some(reason) = refused {
            self.log_phase(Level::Warn, "upgrade_refused", &[("reason", reason.into())]);
            return;
        }
        let (Some(exe), Some(listener)) = (&self.exe, &self.listener) else {
            let reason = "no path to start the binary from";
            self.log_phase(Level::Warn, "upgrade_refused", &[("reason", reason.into())]);
            return;
        };
        let shared_with_systemd = matches!(self.origin, Origin::Inherited { .. });
        let started = Upgrade::start(
            exe,
            listener.as_raw_fd(),
            shared_with_systemd,
            self.config.upgrade_timeout,
            rt.now,
        )
        .and_then(|mut upgrade| {
            upgrade
                .register(self.poll.registry(), UPGRADE)
                .map(|()| upgrade)
        });
        match started {
            Ok(upgrade) => {
                self.log_phase(
                    Level::Info,
                    "upgrade_started",
                    &[
                        ("pid", u64::from(upgrade.pid()).into()),
                        ("exe", exe.to_string_lossy().as_ref().into()),
                    ],
                );
                self.upgrade = Some(upgrade);
            }
            Err(e) => {
                let reason = format!("cannot start {}: {e}", exe.display());
                self.log_phase(
                    Level::Warn,
                    "child_failed",
                    &[("reason", reason.as_str().into())],
                );
            }
        }
    }

    /// The new process of an upgrade reported (or exited).
    fn on_upgrade_report<H>(&mut self, rt: &mut Runtime<H>)
    where
        H: Handler,
    {
        let Some(upgrade) = &mut self.upgrade else {
            return;
        };
        match upgrade.poll(rt.now) {
            Report::Pending => {}
            Report::Failed(why) => {
                self.upgrade = None;
                self.log_phase(
                    Level::Warn,
                    "child_failed",
                    &[("reason", why.as_str().into())],
                );
                // It may have put its liveness file at our path, and removed it on its way out:
                // put ours back now rather than at the next heartbeat.
                self.heartbeat();
            }
            Report::Ready => {
                let pid = upgrade.pid();
                self.upgrade = None;
                rt.stop_started();
                // Under systemd the new process is the service's main process from now on.
                notify::notify(&format!("MAINPID={pid}"));
                self.log_phase(
                    Level::Info,
                    "child_ready",
                    &[("pid", u64::from(pid).into())],
                );
                // The liveness file is the new process's now: it must not be refreshed, put back
                // or removed by us.
                if let Some(live) = self.live.take() {
                    live.release();
                }
                // No backlog intake: the new process accepts from the same queue.
                self.enter_drain(rt, "upgrade", HAND_OVER_IDLE_GRACE);
            }
        }
    }

    /// Gives up on the new process of an upgrade; we go on serving.
    fn upgrade_failed(&mut self, why: &str) {
        if let Some(upgrade) = self.upgrade.take() {
            let what = upgrade.abandon(why);
            self.log_phase(
                Level::Warn,
                "child_failed",
                &[("reason", what.as_str().into())],
            );
            self.heartbeat();
        }
    }

    /// Refreshes the liveness file (and logs a repair). While a new process of an upgrade starts,
    /// it may rightly replace our file with its own: then we only refresh ours if it is still
    /// there, and never put it back.
    fn heartbeat(&mut self) {
        let Some(live) = &mut self.live else {
            return;
        };
        let now = SystemTime::now();
        let result = if self.upgrade.is_some() {
            live.touch_if_ours(now).map(|_| Heartbeat::Touched)
        } else {
            live.heartbeat(now)
        };
        match result {
            Ok(Heartbeat::Touched) => {}
            Ok(Heartbeat::Recreated(lost)) => log::event(
                Level::Warn,
                "live_file_recreated",
                &[
                    ("reason", lost.name().into()),
                    ("path", live.path().to_string_lossy().as_ref().into()),
                ],
            ),
            Err(e) => log::event(
                Level::Warn,
                "heartbeat_failed",
                &[("error", e.to_string().as_str().into())],
            ),
        }
    }

    /// Replies sent from other threads, and streamed bodies with pieces ready: each goes to the
    /// connection that waits for it (none, if the request was answered 503 meanwhile or its
    /// client went away: then it is discarded).
    fn on_replies<H>(&mut self, rt: &mut Runtime<H>)
    where
        H: Handler,
    {
        for (id, message) in rt.inbox.take() {
            self.step(id.index, rt, |conn, scratch, ctx| match message {
                Message::Answer(response) => conn.on_reply(id.serial, response, scratch, ctx),
                Message::Stream => conn.on_stream(id.serial, scratch, ctx),
            });
        }
    }

    /// Drives one connection after a readiness event.
    fn on_connection<H>(&mut self, token: Token, read_closed: bool, rt: &mut Runtime<H>)
    where
        H: Handler,
    {
        // A spurious event for a connection closed earlier in this batch finds no connection.
        if let Some(index) = token.0.checked_sub(FIRST_CONNECTION) {
            self.step(index, rt, |conn, scratch, ctx| {
                Some(conn.on_ready(scratch, ctx, read_closed))
            });
        }
    }

    /// Runs `step` on one connection, then settles the books: responses served, output queued
    /// against the budget, and the connection's registration (or its removal).
    fn step<H>(
        &mut self,
        index: usize,
        rt: &mut Runtime<H>,
        step: impl FnOnce(
            &mut Connection,
            &mut Scratch,
            &mut Context<'_, Readiness<H>>,
        ) -> Option<Verdict>,
    ) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let (served, held, awaiting) = (conn.served(), conn.held(), conn.awaiting());
        let (scratch, mut ctx) = rt.connection_context(index);
        let Some(verdict) = step(conn, scratch, &mut ctx) else {
            return;
        };
        rt.stats.served += conn.served() - served;
        rt.account(held, conn.held());
        rt.count_pending(awaiting, conn.awaiting(), self.config.max_pending);
        self.apply(index, verdict, rt);
    }

    /// Closes a connection or brings its registration in line with its state.
    fn apply<H>(&mut self, index: usize, verdict: Verdict, rt: &mut Runtime<H>) {
        let registered = match (verdict, self.conns.get_mut(index)) {
            (Verdict::Open, Some(conn)) => {
                let interest = conn.interest();
                let token = Token(FIRST_CONNECTION + index);
                !conn.set_registered(interest)
                    || (self.poll.registry())
                        .reregister(conn.stream_mut(), token, interest)
                        .is_ok()
            }
            _ => false,
        };
        if registered {
            return;
        }
        if let Some(mut conn) = self.conns.remove(index) {
            rt.account(conn.held(), (0, false));
            rt.count_pending(conn.awaiting(), false, self.config.max_pending);
            let _ = self.poll.registry().deregister(conn.stream_mut());
        }
        if rt.accept_pause != AcceptPause::No && rt.accept_retry_at.is_none() {
            // A slot is free again: take the next client from the backlog.
            self.accept(rt);
        }
    }

    /// Gives every connection its periodic turn: timeouts, and in DRAIN the closing of idle
    /// connections (the rule itself is [`Connection::on_tick`]'s).
    fn sweep<H>(&mut self, rt: &mut Runtime<H>)
    where
        H: Handler,
    {
        for index in self.conns.indices() {
            self.step(index, rt, |conn, scratch, ctx| conn.on_tick(scratch, ctx));
        }
    }

    /// Logs a phase change: the connections by state (what an operator needs to see why a
    /// shutdown took as long as it did), then `extra`.
    fn log_phase(&self, level: Level, event: &str, extra: &[(&str, log::Value<'_>)]) {
        let counts = self.counts();
        let mut pairs = vec![
            ("open", self.conns.len().into()),
            ("new", counts.new.into()),
            ("active", counts.active.into()),
            ("idle", counts.idle.into()),
            ("closing", counts.closing.into()),
            ("pending", counts.pending.into()),
            ("writing", counts.writing.into()),
        ];
        pairs.extend_from_slice(extra);
        log::event(level, event, &pairs);
    }

    /// Connections per state, for the log lines.
    fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for conn in self.conns.iter() {
            match conn.state() {
                State::New => counts.new += 1,
                State::Active => counts.active += 1,
                State::Idle => counts.idle += 1,
                State::Closing | State::Lingering => counts.closing += 1,
            }
            counts.pending += usize::from(conn.awaiting());
            counts.writing += usize::from(conn.writing());
        }
        counts
    }
}

#[derive(Default)]
struct Counts {
    new: usize,
    active: usize,
    idle: usize,
    closing: usize,
    /// Connections whose handler owes a reply (a subset of `active`).
    pending: usize,
    /// Connections writing a response body: an answer given but not yet delivered (a subset
    /// of `active` and `closing`).
    writing: usize,
}

/// Why the loop is not accepting new connections right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcceptPause {
    No,
    /// `--max-conns` connections are open.
    AtLimit,
    /// `accept` failed with EMFILE/ENFILE (or the kernel is out of buffers); retried after
    /// [`ACCEPT_BACKOFF`] or when a connection closes.
    OutOfDescriptors,
}

/// Records a change of accept state, with one log line per change (not per retry: a server out
/// of descriptors retries ten times a second and must not flood its log).
fn set_pause<H>(rt: &mut Runtime<H>, pause: AcceptPause, open: usize, error: Option<&io::Error>) {
    if rt.accept_pause == pause {
        return;
    }
    rt.accept_pause = pause;
    let error = error.map(ToString::to_string).unwrap_or_default();
    match pause {
        AcceptPause::No => log::event(Level::Info, "accept_resumed", &[("open", open.into())]),
        AcceptPause::AtLimit => log::event(
            Level::Warn,
            "accept_paused",
            &[("reason", "max_conns".into()), ("open", open.into())],
        ),
        AcceptPause::OutOfDescriptors => log::event(
            Level::Warn,
            "accept_paused",
            &[
                ("reason", "out_of_descriptors".into()),
                ("error", error.as_str().into()),
                ("open", open.into()),
            ],
        ),
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// The client gave up between the handshake and our accept.
fn aborted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionAborted
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// What one attempt to accept a connection came to.
enum Accepted {
    /// A connection was accepted and registered.
    One,
    /// The backlog is empty (or the listener is closed).
    Empty,
    /// `accept` failed for lack of descriptors or kernel memory; the client stays queued.
    OutOfDescriptors(io::Error),
    /// `accept` failed otherwise (logged).
    Failed,
}
