//! In-place binary upgrade on SIGUSR2, as nginx does it: start the binary again, hand it the
//! listening socket, and stop accepting only once it says it is serving.
//!
//! Why: on a host without an orchestrator nothing steers clients away from a process that is
//! about to stop; they connect to the port itself. The only way not to refuse them across a
//! restart is that the listening socket outlives the process. So the running server (the
//! *parent* here) starts a new process of the binary at the path it was started from (a binary
//! replaced on disk is picked up), with the listening socket inherited, and waits, for at most
//! `--upgrade-timeout`, for the new process (the *child*) to report that its event loop runs.
//! Until then the parent serves as if nothing happened; if the child fails to start, exits, or
//! stays silent, the parent says why in its log and goes on serving. Once the child is ready,
//! the parent stops accepting (closing its copy of the socket, not the socket: the child holds
//! it) and drains its own connections; both accept from the same kernel queue meanwhile, so no
//! connection is refused at any moment.
//!
//! # The hand-over protocol
//!
//! One environment variable, [`ENV`] = `PARENT_PID:LISTENER_FD:READY_FD:ORIGIN`: the listening
//! socket and one end of a socket pair, both inherited (close-on-exec cleared for the child
//! only), and whether a service manager holds the socket too (`systemd`, when the parent had it
//! from socket activation) or not (`own`). The
//! child checks that its parent is `PARENT_PID` (a variable left in the environment of a
//! grandchild must not hand it descriptors it does not have), takes the two descriptors, removes
//! the variable, and once its loop runs writes `ready\n` to the socket pair. The parent sees that
//! line, or an EOF (the child exited, or closed the socket without being ready).
//!
//! Why not the `LISTEN_FDS` protocol of socket activation: it names the receiving process by pid
//! (`LISTEN_PID`), which the parent cannot know before `fork`, and a variable set after `fork`
//! never reaches the `execve` that `std::process::Command` prepares beforehand. Ours names the
//! sender instead, which the child can check with `getppid()`.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;

use crate::sys;

/// The environment variable of the hand-over: `PARENT_PID:LISTENER_FD:READY_FD:ORIGIN`.
pub const ENV: &str = "LAMEDUCK_UPGRADE";

/// How long a child that closed its report channel gets to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// What the child writes once its loop runs.
const READY: &[u8] = b"ready\n";

/// The path to start the new binary from: the path this process was started with, so that a
/// binary replaced there (by `rename`, as package managers do) is the one started. `argv[0]`
/// when it names a path (made absolute against the working directory at start-up), else the
/// kernel's idea of our executable (which names the old file, even once it is replaced: the
/// best we can do when we were found through `PATH`).
pub fn started_from() -> Option<PathBuf> {
    let argv0 = std::env::args_os().next()?;
    let path = Path::new(&argv0);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    if path.components().count() > 1 {
        // `components` drops the `.` of `./lameduck`, for a tidy log line.
        let absolute = std::env::current_dir().ok()?.join(path);
        return Some(absolute.components().collect());
    }
    std::env::current_exe().ok()
}

/// A new process of the binary, started with our listening socket, not yet ready.
#[derive(Debug)]
pub struct Upgrade {
    process: Child,
    /// Our end of the socket pair the child reports on.
    report: mio::net::UnixStream,
    /// A descriptor that becomes readable when the child exits (`pidfd_open(2)`), so that its
    /// exit status is read as soon as there is one; `None` on kernels before 5.3.
    exit: Option<OwnedFd>,
    /// Bytes of the report so far.
    received: Vec<u8>,
    /// The child closed the report channel without saying "ready": it is exiting.
    closed: bool,
    /// When the child is given up on.
    pub deadline: Instant,
}

/// What the child has said so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Its loop runs: hand over.
    Ready,
    /// Nothing yet.
    Pending,
    /// It will never be ready: why (already reaped, or killed).
    Failed(String),
}

impl Upgrade {
    /// Starts `exe` with this process's arguments and environment, plus the listening socket
    /// `listener` and the report channel, handed over as [`ENV`] describes.
    pub fn start(
        exe: &Path,
        listener: RawFd,
        shared_with_systemd: bool,
        timeout: Duration,
        now: Instant,
    ) -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let handed = [listener, theirs.as_raw_fd()];
        let origin = if shared_with_systemd {
            "systemd"
        } else {
            "own"
        };
        let value = format!(
            "{}:{}:{}:{origin}",
            std::process::id(),
            handed[0],
            handed[1]
        );
        let mut command = Command::new(exe);
        command.args(std::env::args_os().skip(1)).env(ENV, value);
        // SAFETY: between fork and exec only async-signal-safe calls run: two fcntl(2) on
        // descriptors that are open in the child (they were open in the parent at fork).
        unsafe {
            command.pre_exec(move || {
                for fd in handed {
                    sys::inherit(fd)?;
                }
                Ok(())
            });
        }
        let process = command.spawn()?;
        // Our copy of the child's end closes here, so the child's exit shows as EOF.
        drop(theirs);
        Ok(Upgrade {
            exit: sys::pidfd_open(process.id()).ok(),
            process,
            report: mio::net::UnixStream::from_std(ours),
            received: Vec::new(),
            closed: false,
            deadline: now + timeout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Registers what becomes readable when the child reports or exits, under `token`.
    pub fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        registry.register(&mut self.report, token, mio::Interest::READABLE)?;
        if let Some(exit) = &self.exit {
            let fd = exit.as_raw_fd();
            registry.register(&mut SourceFd(&fd), token, mio::Interest::READABLE)?;
        }
        Ok(())
    }

    /// Reads what the child reported; call on every readiness event of its sources, and once
    /// its deadline has passed.
    pub fn poll(&mut self, now: Instant) -> Report {
        let mut buf = [0u8; 64];
        loop {
            match self.report.read(&mut buf) {
                Ok(0) if self.closed => break,
                Ok(0) => {
                    // The child is exiting (its descriptors close before it can be reaped):
                    // wait for its exit status, a little.
                    self.closed = true;
                    self.deadline = self.deadline.min(now + EXIT_GRACE);
                    break;
                }
                Ok(n) => {
                    self.received.extend_from_slice(&buf[..n]);
                    if self.received.starts_with(READY) {
                        return Report::Ready;
                    }
                    if self.received.len() >= READY.len() {
                        return Report::Failed(self.reap("reported nonsense"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Report::Failed(self.reap(&format!("report failed: {e}"))),
            }
        }
        match self.process.try_wait() {
            Ok(Some(status)) => Report::Failed(format!("it exited ({status})")),
            _ if now >= self.deadline && self.closed => {
                Report::Failed(self.reap("it closed its report channel but did not exit"))
            }
            _ if now >= self.deadline => {
                Report::Failed(self.reap("it did not report ready within --upgrade-timeout"))
            }
            _ => Report::Pending,
        }
    }

    /// Gives up on the child (a timeout, a shutdown): kills it if it still runs and reaps it.
    /// Returns what became of it, for the log.
    pub fn abandon(mut self, why: &str) -> String {
        self.reap(why)
    }

    /// Reaps the child, killing it first if it still runs; says what became of it.
    fn reap(&mut self, why: &str) -> String {
        match self.process.try_wait() {
            Ok(Some(status)) => format!("{why}; it exited ({status})"),
            _ => {
                let _ = self.process.kill();
                let _ = self.process.wait();
                format!("{why}; it was killed")
            }
        }
    }
}

/// What an upgrading parent handed this process (see [`ENV`]): the listening socket, and where
/// to say "ready".
#[derive(Debug)]
pub struct Handover {
    /// The listening socket's descriptor, not yet checked (`listener::acquire` checks it as it
    /// checks any inherited socket).
    pub listener: RawFd,
    /// Whether a service manager holds the socket too (the parent had it from systemd), which
    /// decides what closing it at DRAIN means.
    pub shared_with_systemd: bool,
    pub report: ReadyReport,
}

impl Handover {
    /// Reads [`ENV`], if this process was started by an upgrading parent. The variable is
    /// removed either way (while the process has one thread: see `listener::forget_variables`).
    pub fn take() -> io::Result<Option<Handover>> {
        let Some(value) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        crate::listener::forget_variables(&[ENV]);
        let Some(([parent, listener, report], shared_with_systemd)) = parse(&value) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ENV}={value:?}: not PID:FD:FD:systemd|own"),
            ));
        };
        // SAFETY: getppid(2) cannot fail and takes no pointers.
        if i64::from(unsafe { libc::getppid() }) != parent {
            // Not from our parent: a stale variable, with descriptors we do not have.
            return Ok(None);
        }
        let report = report as RawFd;
        sys::set_cloexec(report)?;
        // SAFETY: the parent handed this descriptor to us, and nothing else in this process
        // knows of it: we take ownership of it exactly once.
        let report = UnixStream::from(unsafe { OwnedFd::from_raw_fd(report) });
        Ok(Some(Handover {
            listener: listener as RawFd,
            shared_with_systemd,
            report: ReadyReport(report),
        }))
    }
}

/// Where a child started by [`Upgrade::start`] says it is ready.
#[derive(Debug)]
pub struct ReadyReport(UnixStream);

impl ReadyReport {
    /// Tells the parent that our loop runs (it then stops accepting and drains).
    pub fn send(mut self) {
        // If the parent is gone there is no one to tell; nothing else to do.
        let _ = self.0.write_all(READY);
    }
}

/// `PID:FD:FD:ORIGIN` as three numbers and whether the origin is `systemd`.
fn parse(value: &OsString) -> Option<([i64; 3], bool)> {
    let text = value.to_str()?;
    let (numbers, origin) = text.rsplit_once(':')?;
    let shared = match origin {
        "systemd" => true,
        "own" => false,
        _ => return None,
    };
    let mut numbers = numbers.split(':').map(|part| part.parse::<i64>().ok());
    let parsed = [numbers.next()??, numbers.next()??, numbers.next()??];
    let in_range = parsed[1..]
        .iter()
        .all(|&fd| (0..=i64::from(i32::MAX)).contains(&fd));
    (numbers.next().is_none() && in_range).then_some((parsed, shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_is_three_numbers_and_an_origin() {
        assert_eq!(parse(&"12:3:4:own".into()), Some(([12, 3, 4], false)));
        assert_eq!(parse(&"12:3:4:systemd".into()), Some(([12, 3, 4], true)));
        for bad in [
            "",
            "12:3:4",
            "12:3:4:5:own",
            "a:3:4:own",
            "12:-1:4:own",
            "12:3:99999999999:own",
            "12:3:4:other",
        ] {
            assert_eq!(parse(&bad.into()), None, "{bad:?}");
        }
    }
}
