//! SIGTERM, SIGINT and SIGUSR2 as a pollable source in each server's `mio::Poll`: every delivery
//! counted, in the order the handlers ran, for every live server in the process; and, once none is
//! live, the signals acting as they did before the first one.
//!
//! # Why a byte per signal
//!
//! The lifecycle counts: the first signal starts the stop, a second one ends the process at once.
//! A flag per signal ("SIGTERM happened since you last looked"), which is what signal-hook-mio's
//! `Signals` keeps, folds two deliveries that reach us before the loop looks into one, and hands
//! back SIGINT before SIGTERM whatever their order. So the action writes one byte, the signal's
//! number, to a non-blocking socket pair whose other end the loop polls: the bytes are the
//! deliveries, in order. If the socket's buffer is full (hundreds of kilobytes of signals nobody
//! read), further bytes are dropped rather than blocking a handler; the lifecycle only ever needs
//! the first two.
//!
//! What no process can see: the kernel keeps *one pending instance* of each standard signal, not
//! a queue. Two `kill(SIGTERM)` sent before the first was delivered are one delivery, and when
//! SIGTERM and SIGINT are both pending, the kernel picks the order in which their handlers run.
//! "Counted and ordered" is therefore about deliveries, which is as far as a process can know.
//!
//! # One action per signal, through signal-hook's registry
//!
//! Signals belong to the process; a `Server` belongs to whoever embeds it, and there may be
//! several (a public and an admin port, say). So the first [`SignalSource`] registers one action
//! per signal with `signal_hook::low_level::register`, once per process, never removed, and every
//! `SignalSource` after that only puts its socket in the table the actions read (`LIVE`), and
//! takes it out again when dropped. Why this shape:
//!
//! - **Other handlers keep working.** signal-hook's registry chains: a handler installed before
//!   ours (through signal-hook, or with plain `sigaction(2)`) still runs, and so do actions other
//!   libraries register after ours. A hand-written `sigaction(2)` would replace the first kind,
//!   and putting its disposition back on drop would destroy the second.
//! - **Several servers at once.** The action writes to every socket in the table, so one
//!   SIGTERM drains every live server.
//! - **After the last server is gone, the process acts as before.** The registry cannot give a
//!   disposition back (unregistering its last action leaves its handler installed), so instead
//!   the action does, for a delivery no server takes, what the disposition it found would have
//!   done: where that was the default, `signal_hook::low_level::emulate_default_handler`
//!   (SIGTERM, SIGINT and SIGUSR2 then end the process, by that signal: a shell sees 143 for
//!   SIGTERM); where it was ignored, nothing; where it was someone else's handler, nothing
//!   either, since the registry runs that handler anyway.
//!
//! What this cannot do. The registry does not tell who else is registered, so an action that
//! another library registers *after* the first `SignalSource`, for a signal whose disposition
//! was the default, does not keep the process alive once no server is live: ours runs first and
//! ends the process, as the default would have. Registered before the first `Server::bind`, it
//! does: ours then finds signal-hook's handler, not the default, and leaves the signal to it.
//! And a signal ignored at start-up is handled from the first registration on, so a program
//! exec'd later starts with the default disposition for it instead of inheriting `SIG_IGN`.
//!
//! # The action and the socket's lifetime
//!
//! The action is async-signal-safe: atomics, one `write(2)` per live server, and
//! `emulate_default_handler` (which signal-hook documents as async-signal-safe); signal-hook's
//! handler saves and restores `errno` around it. A `SignalSource` is in the table from `new` to
//! its drop. An action can still be running on another thread when drop takes its socket out,
//! so drop waits until `IN_ACTION` is back to zero before the socket closes: a late action
//! never writes into a descriptor number that may already name someone else's file.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

use libc::c_int;
use mio::net::UnixStream;

/// The signals the lifecycle reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The orchestrator's stop: lame-duck delay, then drain.
    Term,
    /// Ctrl-C: drain at once.
    Int,
    /// The operator's "replace the binary in place" (as nginx's): start the new one on the same
    /// listening socket, then drain.
    Upgrade,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Upgrade => "SIGUSR2",
        }
    }

    /// The signal whose number the action wrote as `byte`.
    fn from_byte(byte: u8) -> Option<Signal> {
        HANDLED
            .iter()
            .find(|&&(number, _)| number == c_int::from(byte))
            .map(|&(_, signal)| signal)
    }
}

/// The signals we register an action for, with their numbers (each fits the byte the action
/// writes).
const HANDLED: [(c_int, Signal); 3] = [
    (libc::SIGTERM, Signal::Term),
    (libc::SIGINT, Signal::Int),
    (libc::SIGUSR2, Signal::Upgrade),
];

/// Most [`SignalSource`]s, and so `Server`s, live in one process at once. A fixed table is what a
/// signal handler can read without allocating or locking, and the action scans all of it on
/// every delivery. 64 is far more servers than one process has reason to run (a public and an
/// admin port is the usual case), and 64 atomic loads cost nothing beside the write(2)s.
const MAX_LIVE: usize = 64;

/// A free entry of [`LIVE`].
const FREE: RawFd = -1;

/// The write ends of the live sources' socket pairs, one per entry, [`FREE`] where there is none.
/// Taking an entry (`FREE` → fd) makes a source live; its drop gives it back.
static LIVE: [AtomicI32; MAX_LIVE] = [const { AtomicI32::new(FREE) }; MAX_LIVE];

/// How many actions are running right now, on any thread.
static IN_ACTION: AtomicUsize = AtomicUsize::new(0);

/// The outcome of registering the actions, which happens once per process: a second attempt
/// after a partial failure would register some actions twice (two bytes per delivery).
static REGISTERED: OnceLock<io::Result<()>> = OnceLock::new();

/// What an action does with a delivery when no server is live: what the signal's disposition,
/// as found before the action was registered, would have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unserved {
    /// The disposition was the default: emulate it (for our three signals, end the process).
    Default,
    /// The disposition was `SIG_IGN`, or a handler that signal-hook's registry now runs itself
    /// before our action: nothing more to do.
    Nothing,
}

impl Unserved {
    /// What `number`'s disposition right now says to do once no server is live.
    fn of(number: c_int) -> io::Result<Unserved> {
        // SAFETY: sigaction is plain old data; all-zero bytes are valid, and sigaction(2) only
        // fills it in.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only queries; `current` outlives the call.
        syscall!(sigaction(number, ptr::null(), &mut current))?;
        Ok(if current.sa_sigaction == libc::SIG_DFL {
            Unserved::Default
        } else {
            Unserved::Nothing
        })
    }
}

/// One live server's share of the signals: its entry in `LIVE` and its pollable socket.
pub struct SignalSource {
    /// The end the loop polls and reads.
    read: UnixStream,
    /// The end the action writes to, through [`LIVE`]; closed only after drop has made sure no
    /// action uses it.
    _write: UnixStream,
    /// The index of our entry in [`LIVE`].
    entry: usize,
}

impl SignalSource {
    /// Makes this server live for SIGTERM/SIGINT/SIGUSR2: from here on, until the `SignalSource`
    /// is dropped, each delivery is queued for its loop (and for every other live server's),
    /// instead of acting on the process. The first call in a process registers the actions (see
    /// the module doc). Fails if 64 sources (`MAX_LIVE`) are live already.
    pub fn new() -> io::Result<Self> {
        if let Err(e) = REGISTERED.get_or_init(register) {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot register the signal actions: {e}"),
            ));
        }
        // A socket pair rather than a pipe: mio's `UnixStream` is a `Source` already, and comes
        // non-blocking (a full buffer never blocks an action) and close-on-exec.
        let (read, write) = UnixStream::pair()?;
        let entry = LIVE
            .iter()
            .position(|entry| {
                entry
                    .compare_exchange(FREE, write.as_raw_fd(), SeqCst, SeqCst)
                    .is_ok()
            })
            .ok_or_else(|| {
                io::Error::other(format!(
                    "more than {MAX_LIVE} lameduck servers would be live in this process at once"
                ))
            })?;
        Ok(SignalSource {
            read,
            _write: write,
            entry,
        })
    }

    /// The mio source to register.
    pub fn source(&mut self) -> &mut UnixStream {
        &mut self.read
    }

    /// Every signal delivered since the last call, in the order the handlers ran. Reads until
    /// the socket is empty, as mio's edge-triggered readiness requires.
    pub fn pending(&mut self) -> Vec<Signal> {
        let mut signals = Vec::new();
        let mut bytes = [0u8; 64];
        loop {
            match self.read.read(&mut bytes) {
                Ok(0) => break,
                Ok(n) => signals.extend(bytes[..n].iter().filter_map(|&b| Signal::from_byte(b))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: all read. Nothing else can fail on a connected local socket.
                Err(_) => break,
            }
        }
        signals
    }
}

impl Drop for SignalSource {
    /// Takes our socket out of the table, then waits out any action still running before the
    /// socket closes (see the module doc). The actions stay registered.
    fn drop(&mut self) {
        // An action that loads our entry after this store sees FREE and writes nothing. One that
        // loaded it before had already counted itself in IN_ACTION (both SeqCst), so the wait
        // below sees it. Actions are a few write(2)s: the wait is short.
        LIVE[self.entry].store(FREE, SeqCst);
        while IN_ACTION.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
    }
}

/// Registers [`on_signal`] for each signal of [`HANDLED`], with what to do for it when no server
/// is live, read from its disposition just before: once registered, the disposition is
/// signal-hook's handler, whatever it was.
fn register() -> io::Result<()> {
    for &(number, _) in &HANDLED {
        let unserved = Unserved::of(number)?;
        // SAFETY: signal-hook requires the action to be async-signal-safe. `on_signal` is: it
        // reads and writes atomics, calls write(2), and calls emulate_default_handler, which
        // signal-hook documents as async-signal-safe. The closure only copies two integers.
        unsafe { signal_hook::low_level::register(number, move || on_signal(number, unserved)) }?;
    }
    Ok(())
}

/// The action: one byte, the signal's number, to every live source's socket; with no live
/// source, what the disposition we replaced would have done. Only async-signal-safe operations
/// (lock-free atomics, write(2)); signal-hook's handler keeps `errno` as it was found.
fn on_signal(number: c_int, unserved: Unserved) {
    IN_ACTION.fetch_add(1, SeqCst);
    // HANDLED's numbers are below 256.
    let byte = number as u8;
    let mut served = false;
    for entry in &LIVE {
        let fd = entry.load(SeqCst);
        if fd != FREE {
            // SAFETY: write(2) is async-signal-safe, `byte` outlives the call, and `fd` stays
            // open until IN_ACTION is back to zero (see Drop). A full buffer fails with EAGAIN:
            // that byte is dropped, as the module doc explains.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
            served = true;
        }
    }
    // Before emulating the default, which ends the process: a drop waiting on another thread
    // must not wait for an action that never returns.
    IN_ACTION.fetch_sub(1, SeqCst);
    if !served && unserved == Unserved::Default {
        // Can only fail for a signal signal-hook does not know; ours are all standard.
        let _ = signal_hook::low_level::emulate_default_handler(number);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, MutexGuard};

    use super::*;

    /// Signals and the table are process-wide, and the lib's tests run in parallel: each test
    /// holds this while it uses them.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> MutexGuard<'static, ()> {
        SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// raise(3) delivers to the calling thread before it returns, so each call is one delivery.
    /// Only while a source is live: otherwise SIGTERM and SIGINT end the test process.
    fn raise(number: c_int) {
        // SAFETY: raise(3) takes no pointers.
        assert_eq!(unsafe { libc::raise(number) }, 0);
    }

    #[test]
    fn counts_and_orders_every_delivery() {
        let _serial = serial();
        let mut source = SignalSource::new().expect("a source");
        raise(libc::SIGTERM);
        raise(libc::SIGINT);
        raise(libc::SIGTERM);
        raise(libc::SIGUSR2);
        assert_eq!(
            source.pending(),
            [Signal::Term, Signal::Int, Signal::Term, Signal::Upgrade]
        );
        assert_eq!(source.pending(), []);
    }

    /// Regression: a second source was refused (`ResourceBusy`), so a process could run one
    /// `Server` only.
    #[test]
    fn every_live_source_gets_every_delivery() {
        let _serial = serial();
        let mut first = SignalSource::new().expect("a first source");
        let mut second = SignalSource::new().expect("a second source beside it");
        raise(libc::SIGTERM);
        raise(libc::SIGINT);
        assert_eq!(first.pending(), [Signal::Term, Signal::Int]);
        assert_eq!(second.pending(), [Signal::Term, Signal::Int]);
        drop(first);
        raise(libc::SIGINT);
        assert_eq!(second.pending(), [Signal::Int]);
        let mut third = SignalSource::new().expect("a source after a drop");
        raise(libc::SIGTERM);
        assert_eq!(second.pending(), [Signal::Term]);
        assert_eq!(third.pending(), [Signal::Term]);
    }

    #[test]
    fn at_most_max_live_sources_and_a_dropped_one_frees_its_entry() {
        let _serial = serial();
        let mut live: Vec<SignalSource> = (0..MAX_LIVE)
            .map(|i| SignalSource::new().unwrap_or_else(|e| panic!("source {i}: {e}")))
            .collect();
        let Err(refused) = SignalSource::new() else {
            panic!("a source beyond MAX_LIVE was accepted");
        };
        assert!(refused.to_string().contains("64"), "{refused}");
        live.pop();
        let mut last = SignalSource::new().expect("the freed entry is taken again");
        raise(libc::SIGINT);
        assert_eq!(last.pending(), [Signal::Int]);
        assert!(
            live.iter_mut()
                .all(|source| source.pending() == [Signal::Int])
        );
    }
}
