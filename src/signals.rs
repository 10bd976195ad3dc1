//! SIGTERM, SIGINT and SIGUSR2 as a pollable source in the loop's `mio::Poll`, every delivery counted, in
//! the order the handlers ran, and the process's own dispositions given back when it is dropped.
//!
//! # Why a byte per signal
//!
//! The lifecycle counts: the first signal starts the stop, a second one ends the process at once.
//! A flag per signal ("SIGTERM happened since you last looked"), which is what signal-hook-mio's
//! `Signals` keeps, folds two deliveries that reach us before the loop looks into one, and hands
//! back SIGINT before SIGTERM whatever their order. So the handler writes one byte, the signal's
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
//! # Why raw `sigaction(2)` and not signal-hook
//!
//! A [`SignalSource`] may be dropped while the process goes on: an embedding program that ran a
//! `Server` must then stop on SIGTERM as it would have without us. signal-hook's registry cannot
//! do that: unregistering its last action leaves its OS-level handler installed (SIGTERM is then
//! silently swallowed), and since it remembers having installed one, a disposition restored
//! behind its back would never be replaced again, breaking the next registration. So we call
//! `sigaction(2)` ourselves, keep what it returns, and put it back on drop.
//!
//! # The handler and the socket's lifetime
//!
//! The handler is async-signal-safe: two atomics, one `write(2)`, `errno` saved and restored. It
//! finds the socket through `WRITE_END`. Only one `SignalSource` exists at a time, because
//! signals belong to the process, not to a `Server`. A handler can still be running on another
//! thread when drop restores the old disposition, so drop clears `WRITE_END` and waits until
//! `IN_HANDLER` is back to zero before the socket closes: a late handler never writes into a
//! descriptor number that may already name someone else's file.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::ptr;
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

    /// The signal whose number the handler wrote as `byte`.
    fn from_byte(byte: u8) -> Option<Signal> {
        HANDLED
            .iter()
            .find(|&&(number, _)| number == c_int::from(byte))
            .map(|&(_, signal)| signal)
    }
}

/// The signals we take over, with their numbers (each fits the byte the handler writes).
const HANDLED: [(c_int, Signal); 3] = [
    (libc::SIGTERM, Signal::Term),
    (libc::SIGINT, Signal::Int),
    (libc::SIGUSR2, Signal::Upgrade),
];

/// The descriptor the handler writes to: the live [`SignalSource`]'s write end, or -1 when there
/// is none. Claiming it (-1 → fd) is what makes a `SignalSource` the only one.
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

/// How many handler invocations are running right now, on any thread.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// The installed handlers and their pollable socket.
pub struct SignalSource {
    /// The end the loop polls and reads.
    read: UnixStream,
    /// The end the handler writes to, through [`WRITE_END`]; closed only after drop has made
    /// sure no handler uses it.
    _write: UnixStream,
    /// What `sigaction(2)` replaced, per entry of [`HANDLED`] (`None`: not installed).
    previous: [Option<libc::sigaction>; HANDLED.len()],
}

impl SignalSource {
    /// Installs the handlers. From here on SIGTERM/SIGINT/SIGUSR2 no longer act on the process; they are
    /// queued for the loop, until the `SignalSource` is dropped. Fails with
    /// [`io::ErrorKind::ResourceBusy`] while another `SignalSource` is alive.
    pub fn new() -> io::Result<Self> {
        // A socket pair rather than a pipe: mio's `UnixStream` is a `Source` already, and comes
        // non-blocking (a full buffer never blocks a handler) and close-on-exec.
        let (read, write) = UnixStream::pair()?;
        WRITE_END
            .compare_exchange(-1, write.as_raw_fd(), SeqCst, SeqCst)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "SIGTERM, SIGINT and SIGUSR2 are already handled by another SignalSource",
                )
            })?;
        // From here on, dropping `source` (also on an error below) undoes what was done.
        let mut source = SignalSource {
            read,
            _write: write,
            previous: [None; HANDLED.len()],
        };
        for (previous, &(number, _)) in source.previous.iter_mut().zip(&HANDLED) {
            *previous = Some(install(number)?);
        }
        Ok(source)
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
    /// Gives the signals back, then waits out any handler still running before the socket closes
    /// (see the module doc).
    fn drop(&mut self) {
        for (previous, &(number, _)) in self.previous.iter().zip(&HANDLED).rev() {
            if let Some(previous) = previous {
                // SAFETY: `previous` is a sigaction that sigaction(2) itself filled in; the null
                // pointer says we don't want the one it replaces.
                let _ = syscall!(sigaction(number, previous, ptr::null_mut()));
            }
        }
        // A handler that loads WRITE_END after this store sees -1 and writes nothing. One that
        // loaded it before had already counted itself in IN_HANDLER (both SeqCst), so the wait
        // below sees it. Handlers are a single write(2): the wait is short.
        WRITE_END.store(-1, SeqCst);
        while IN_HANDLER.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
    }
}

/// Makes [`on_signal`] the handler of `number` and returns the disposition it replaces.
fn install(number: c_int) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction is plain old data; all-zero bytes are valid, and every field we rely on
    // is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
    // SA_RESTART: the rest of an embedding program keeps its blocking calls uninterrupted.
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa_mask` is a sigset_t we own. An empty mask blocks nothing extra while the
    // handler runs (the signal being handled is blocked by the kernel as usual).
    syscall!(sigemptyset(&mut action.sa_mask))?;
    // SAFETY: as above; sigaction(2) only fills `previous`.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live sigaction values for the duration of the call.
    syscall!(sigaction(number, &action, &mut previous))?;
    Ok(previous)
}

/// The signal handler: one byte, the signal's number, to the live source's socket. Only
/// async-signal-safe operations (lock-free atomics, write(2)), and `errno` as it was found, since
/// the handler may interrupt code between a failing call and its look at `errno`.
extern "C" fn on_signal(number: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    IN_HANDLER.fetch_add(1, SeqCst);
    let fd = WRITE_END.load(SeqCst);
    if fd >= 0 {
        // HANDLED's numbers are below 256.
        let byte = number as u8;
        // SAFETY: write(2) is async-signal-safe, `byte` outlives the call, and `fd` stays open
        // until IN_HANDLER is back to zero (see Drop). A full buffer fails with EAGAIN: that
        // byte is dropped, as the module doc explains.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    IN_HANDLER.fetch_sub(1, SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever handles `number` right now.
    fn disposition(number: c_int) -> libc::sighandler_t {
        // SAFETY: all-zero is a valid sigaction; sigaction(2) only fills it in.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only queries; `current` outlives the call.
        syscall!(sigaction(number, ptr::null(), &mut current)).expect("sigaction query");
        current.sa_sigaction
    }

    /// raise(3) delivers to the calling thread before it returns, so each call is one delivery.
    fn raise(number: c_int) {
        // SAFETY: raise(3) takes no pointers.
        assert_eq!(unsafe { libc::raise(number) }, 0);
    }

    // One test: signal dispositions are process-wide, and the lib's tests run in parallel.
    #[test]
    fn counts_orders_restores_and_installs_again() {
        let before = HANDLED.map(|(number, _)| disposition(number));
        let mut source = SignalSource::new().expect("first source");
        let second = SignalSource::new().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(second, Err(io::ErrorKind::ResourceBusy));

        raise(libc::SIGTERM);
        raise(libc::SIGINT);
        raise(libc::SIGTERM);
        assert_eq!(source.pending(), [Signal::Term, Signal::Int, Signal::Term]);
        assert_eq!(source.pending(), []);
        drop(source);
        assert_eq!(HANDLED.map(|(number, _)| disposition(number)), before);

        let mut again = SignalSource::new().expect("a source after a drop");
        raise(libc::SIGINT);
        assert_eq!(again.pending(), [Signal::Int]);
    }
}
