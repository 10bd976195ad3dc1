//! The lifecycle as an embedder sees it: a [`Lifecycle`] handle, taken from a bound
//! [`Server`](crate::Server), that tells any thread the [`Phase`] the moment it changes and starts
//! the same [`Stop`] a signal starts.
//!
//! The loop owns the lifecycle (the phases and their rules are `server.rs`'s, and
//! docs/design.md's "The lifecycle"); this handle only *publishes* each phase change and *posts*
//! stop requests. Publishing is a mutex and a condition variable, touched once per phase change,
//! never per request. A stop request wakes the loop through its one `mio::Waker` (the one replies
//! from other threads use), and the loop takes it between two events, exactly as it takes a
//! signal: the rules that follow are the signals' rules, with no exception.
//!
//! - [`Stop::Graceful`] is SIGTERM: ANNOUNCE (the lame-duck delay), then DRAIN.
//! - [`Stop::Now`] is SIGINT: DRAIN at once.
//! - A stop request, by signal or by [`Lifecycle::stop`], to a process already stopping for an
//!   earlier one ends it at once (exit 1, `outcome=interrupted`): the second of two requests is
//!   someone insisting. So call `stop` for a reason of your own (a failed dependency, an admin
//!   endpoint), never in answer to SIGTERM or SIGINT: the server has those already, and your call
//!   would be the second request.
//! - A stop request to a process that is draining only because it handed its socket to an
//!   upgrade's new process is its first: the drain goes on.
//!
//! How it compares: Go's `Server.Shutdown` is [`Stop::Now`] without the forced exit (its context
//! is the deadline; ours is `--drain-timeout`), and `RegisterOnShutdown` is a thread blocked in
//! [`Lifecycle::wait_until`]`(Phase::Announce)`; Go has no lame-duck phase, as neither axum's
//! `with_graceful_shutdown` (a future the embedder resolves: our [`Lifecycle::stop`]) nor
//! actix-web's `ServerHandle::stop(graceful)` (our `Stop::Graceful` / `Stop::Now`) has. What
//! only lameduck gives is the phase itself, observable from any thread without async.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::handler::Inbox;
use crate::server::Outcome;

/// Where the server is in its lifecycle, as a [`Lifecycle`] reports it. Phases only move
/// forward, in this order (`Ord` follows it), and may skip one: SIGINT and [`Stop::Now`] skip
/// `Announce`, and so does a drain after an in-place upgrade has handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Bound, and [`Server::run`](crate::Server::run) has not started its loop yet.
    Starting,
    /// SERVING: readiness answers 200.
    Serving,
    /// ANNOUNCE, the lame duck: readiness answers 503, every request is still served, each
    /// with `Connection: close`.
    Announce,
    /// DRAIN: the listener is closed; connections finish, at most for `--drain-timeout`.
    Drain,
    /// `run` has returned, or is returning: the liveness file is gone, and
    /// [`Lifecycle::outcome`] says how it ended (FORCE is `Outcome::Forced`).
    Stopped,
}

impl Phase {
    /// Whether the server has begun to stop (`Announce` or later): background work tied to the
    /// server's life should end now.
    ///
    /// ```
    /// use lameduck::Phase;
    ///
    /// assert!(!Phase::Serving.is_stopping());
    /// assert!(Phase::Announce.is_stopping() && Phase::Drain.is_stopping());
    /// ```
    pub fn is_stopping(self) -> bool {
        self >= Phase::Announce
    }
}

/// A programmatic stop: the same stop as a signal, started from code (see the module doc for
/// the rules, which are the signals').
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stop {
    /// As SIGTERM: ANNOUNCE for `--shutdown-delay`, then DRAIN.
    Graceful,
    /// As SIGINT: DRAIN at once.
    Now,
}

impl Stop {
    /// How the phase lines name it, where a signal is named `SIGTERM` or `SIGINT`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stop::Graceful => "stop_graceful",
            Stop::Now => "stop_now",
        }
    }
}

/// A handle on one server's lifecycle, from [`Server::lifecycle`](crate::Server::lifecycle):
/// cheap to clone, `Send` and `Sync`, valid before, during and after `run`.
///
/// A background job that must end when the server starts to stop waits on it rather than
/// sleeping between runs, and any thread can stop the server:
///
/// ```
/// use std::time::Duration;
/// use lameduck::{Config, Outcome, Phase, Server, Stop};
///
/// let dir = std::env::temp_dir().join(format!("lameduck-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut server = Server::bind(Config {
///     addr: ([127, 0, 0, 1], 0).into(),
///     live_file: dir.join("live"),
///     ..Config::default()
/// })?;
/// let lifecycle = server.lifecycle();
/// let job = std::thread::spawn({
///     let lifecycle = lifecycle.clone();
///     move || {
///         // Work every 10 ms, until the server starts to stop; then at once.
///         while lifecycle.wait_until_timeout(Phase::Announce, Duration::from_millis(10)).is_none() {
///             // refresh a cache, poll a queue, ...
///         }
///         eprintln!("job stopped");
///     }
/// });
/// // Any thread may stop the server (here as SIGINT would), once it serves or even before.
/// let stopper = lifecycle.clone();
/// std::thread::spawn(move || {
///     stopper.wait_until(Phase::Serving);
///     stopper.stop(Stop::Now);
/// });
/// let outcome = server.run(lameduck::routes::default_handler)?;
/// job.join().unwrap();
/// assert_eq!(outcome, Outcome::Drained);
/// assert_eq!((lifecycle.phase(), lifecycle.outcome()), (Phase::Stopped, Some(Outcome::Drained)));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lifecycle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Notified at each phase change.
    changed: Condvar,
    /// The loop's waker (with the replies it carries): a stop request wakes the loop through it.
    inbox: Arc<Inbox>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Set with [`Phase::Stopped`] when `run` ended with an outcome (not with an error).
    outcome: Option<Outcome>,
    /// Stop requests the loop has not taken yet, in the order they were made.
    requests: Vec<Stop>,
}

impl Lifecycle {
    /// The lifecycle of a server whose loop `inbox` wakes, in [`Phase::Starting`].
    pub(crate) fn new(inbox: Arc<Inbox>) -> Lifecycle {
        let state = State {
            phase: Phase::Starting,
            outcome: None,
            requests: Vec::new(),
        };
        Lifecycle {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: Condvar::new(),
                inbox,
            }),
        }
    }

    /// The phase right now.
    pub fn phase(&self) -> Phase {
        self.state().phase
    }

    /// How the server ended, once `run` has returned an outcome (`None` before, and after `run`
    /// failed with an error or a server was dropped without running).
    pub fn outcome(&self) -> Option<Outcome> {
        self.state().outcome
    }

    /// Blocks until the phase is `phase` or a later one, and returns the phase then. Waiters
    /// wake as the loop changes phase, after its log line for the change is written.
    /// `wait_until(Phase::Announce)` is "until the server starts to stop", however it stops.
    pub fn wait_until(&self, phase: Phase) -> Phase {
        let state = self.state();
        let state = self
            .shared
            .changed
            .wait_while(state, |state| state.phase < phase)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.phase
    }

    /// Like [`Lifecycle::wait_until`], for at most `timeout`: `None` if the phase has not come
    /// by then. Periodic work waits with this between two runs, and so ends the moment the
    /// server starts to stop, not at its next wake-up.
    pub fn wait_until_timeout(&self, phase: Phase, timeout: Duration) -> Option<Phase> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        while state.phase < phase {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = match self.shared.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        Some(state.phase)
    }

    /// Starts `stop`, as the signal would (see the module doc): the loop takes the request at
    /// its next turn, or at its first if it is not running yet. After the loop is gone it does
    /// nothing.
    pub fn stop(&self, stop: Stop) {
        let mut state = self.state();
        if state.phase == Phase::Stopped {
            return;
        }
        state.requests.push(stop);
        drop(state);
        self.shared.inbox.wake();
    }

    /// The stop requests made since the last call, in order (for the loop).
    pub(crate) fn take_requests(&self) -> Vec<Stop> {
        std::mem::take(&mut self.state().requests)
    }

    /// Publishes a phase change and wakes every waiter (for the loop).
    pub(crate) fn publish(&self, phase: Phase) {
        self.publish_with(phase, None);
    }

    /// Publishes [`Phase::Stopped`] with how the server ended (`None`: with an error, or
    /// without running). Stop requests still queued are dropped: nobody will take them.
    pub(crate) fn finish(&self, outcome: Option<Outcome>) {
        self.publish_with(Phase::Stopped, outcome);
    }

    fn publish_with(&self, phase: Phase, outcome: Option<Outcome>) {
        let mut state = self.state();
        if state.phase >= phase {
            return;
        }
        state.phase = phase;
        state.outcome = outcome;
        if phase == Phase::Stopped {
            state.requests.clear();
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// The state; a waiter that panicked while holding the lock left it consistent (every
    /// change is one assignment), so a poisoned lock is used as is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
