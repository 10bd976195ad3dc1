//! Where the listening socket comes from: bound here from `--addr`/`--port`, or inherited from
//! a service manager (systemd socket activation, the `sd_listen_fds(3)` protocol). One function,
//! [`acquire`], with one `match` over the sources, so that every source gets the same checks.
//!
//! # Socket activation
//!
//! systemd (or `systemd-socket-activate`) binds the socket itself, keeps it open, and starts the
//! server with a duplicate at fd 3 (`SD_LISTEN_FDS_START`) and two variables: `LISTEN_FDS`, how
//! many descriptors it passed, and `LISTEN_PID`, the process they are meant for. The rules for
//! reading them are `sd_listen_fds(3)`'s: missing, or meant for another pid, means "nothing
//! passed"; malformed is an error. This module follows them without libsystemd.
//!
//! Why this gives restarts that refuse nobody: the socket outlives every server process. While
//! no server runs (between a stop and the next start) the kernel still completes handshakes and
//! queues clients in the socket's backlog, and the next server accepts them.
//!
//! What is refused (exit 2, with the reason): a descriptor that is not a listening IPv4 or IPv6
//! TCP socket, and more than one descriptor. lameduck serves one socket; silently serving the
//! first of several would leave the clients of the others queued forever in a backlog nobody
//! accepts from, which is worse than a refusal at start. (One IPv6 socket, systemd's
//! `ListenStream=8080`, takes IPv4 clients too.) `--addr`, `--port` and `--backlog` do not apply
//! to an inherited socket: its address and backlog are the `.socket` unit's.

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::config::Config;
use crate::log::{self, Level};
use crate::sys;
use crate::upgrade::{Handover, ReadyReport};

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START` in sd-daemon.h).
const SD_LISTEN_FDS_START: RawFd = 3;

/// The `sd_listen_fds(3)` variables. All are dropped once read (its `unset_environment`), see
/// [`forget_variables`].
const LISTEN_PID: &str = "LISTEN_PID";
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";

/// Where the listening socket came from. It decides what closing the listener at DRAIN means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This process's alone: bound here, or handed over by an upgrading parent that has let go
    /// of it since. Closing it closes the socket: clients still queued in its backlog are reset.
    Bound,
    /// Inherited from a process that keeps its own descriptor for the same socket (`from`:
    /// `"systemd"`). Closing ours only drops this process's reference (close(2) closes a
    /// descriptor; the socket lives while any descriptor refers to it), so the socket stays open
    /// and listening in that process, and clients still queued in its backlog wait there for the
    /// next server. That is also why the listener is only ever closed, never `shutdown(2)`: a
    /// shutdown acts on the socket itself, for every process that holds it.
    Inherited { from: &'static str },
}

/// The places a listening socket can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// A service manager passed one socket, at [`SD_LISTEN_FDS_START`].
    Systemd,
    /// Nothing was handed over: bind `--addr`/`--port` with `--backlog`.
    Bind,
}

/// The listening socket for `config`, non-blocking and close-on-exec, and where it came from.
/// Errors (exit 2 in the binary) say which source failed and why.
///
/// The new process of an in-place upgrade is handed its parent's socket (see `upgrade`): that
/// comes first, with the same checks, and with the report channel the parent waits on.
pub fn acquire(config: &Config) -> io::Result<(TcpListener, Origin, Option<ReadyReport>)> {
    if let Some(handover) = Handover::take()? {
        let from = "upgrade";
        let listener = inherit(handover.listener, from)?;
        let addr = listener.local_addr()?;
        log::event(
            Level::Info,
            "socket_inherited",
            &[
                ("from", from.into()),
                ("fd", (handover.listener as u64).into()),
                ("addr", addr.to_string().as_str().into()),
                ("ignored", "--addr --port --backlog".into()),
            ],
        );
        // Once the parent has let go, we hold the socket alone, unless systemd holds it too.
        let origin = if handover.shared_with_systemd {
            Origin::Inherited { from: "systemd" }
        } else {
            Origin::Bound
        };
        return Ok((listener, origin, Some(handover.report)));
    }
    let (listener, origin) = match source()? {
        Source::Systemd => {
            let from = "systemd";
            let listener = inherit(SD_LISTEN_FDS_START, from)?;
            let addr = listener.local_addr()?;
            log::event(
                Level::Info,
                "socket_inherited",
                &[
                    ("from", from.into()),
                    ("fd", (SD_LISTEN_FDS_START as u64).into()),
                    ("addr", addr.to_string().as_str().into()),
                    ("ignored", "--addr --port --backlog".into()),
                ],
            );
            (listener, Origin::Inherited { from })
        }
        Source::Bind => {
            let listener = sys::listen(config.addr, config.backlog).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.addr))
            })?;
            (listener, Origin::Bound)
        }
    };
    Ok((listener, origin, None))
}

/// Which source applies, from the environment. The `sd_listen_fds(3)` variables are dropped
/// once read, whatever they said.
fn source() -> io::Result<Source> {
    let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let (pid, fds) = (var(LISTEN_PID), var(LISTEN_FDS));
    if pid.is_none() && fds.is_none() && var(LISTEN_FDNAMES).is_none() {
        return Ok(Source::Bind);
    }
    let source = systemd_source(pid.as_deref(), fds.as_deref(), std::process::id());
    forget_variables(&[LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES]);
    source.map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))
}

/// What the `sd_listen_fds(3)` variables say to the process `pid`, by that function's rules:
/// `LISTEN_PID` missing or naming another process (a parent that was socket-activated and left
/// them behind) means nothing was passed to us, and so does `LISTEN_FDS` missing or 0.
fn systemd_source(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<Source, String> {
    let Some(listen_pid) = listen_pid else {
        return Ok(Source::Bind);
    };
    let listen_pid: u32 = listen_pid
        .parse()
        .map_err(|_| format!("LISTEN_PID={listen_pid} is not a process id"))?;
    if listen_pid != pid {
        return Ok(Source::Bind);
    }
    let Some(listen_fds) = listen_fds else {
        return Ok(Source::Bind);
    };
    match listen_fds.parse::<u32>() {
        Ok(0) => Ok(Source::Bind),
        Ok(1) => Ok(Source::Systemd),
        Ok(n) => Err(format!(
            "LISTEN_FDS={n}: lameduck serves exactly one listening socket; give its .socket unit \
             a single ListenStream= (an IPv6 one, such as ListenStream=8080, takes IPv4 clients too)"
        )),
        Err(_) => Err(format!("LISTEN_FDS={listen_fds} is not a number")),
    }
}

/// Takes the inherited descriptor `fd` as the listener once it has shown itself to be what the
/// server needs: a listening IPv4 or IPv6 TCP socket. Anything else is refused with the reason
/// and left alone (not even closed: it is not known to be ours).
///
/// In `Server::bind` the poller and the signal source are opened before this runs, so a fd 3
/// that was not open at start is by now one of theirs: it is refused as not a listening TCP
/// socket, never taken.
fn inherit(fd: RawFd, from: &str) -> io::Result<TcpListener> {
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd}, inherited from {from}, {why}; lameduck needs a listening TCP socket"),
        )
    };
    match sys::is_socket(fd) {
        Ok(true) => {}
        Ok(false) => return Err(refuse("is not a socket")),
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Err(refuse("is not open")),
        Err(e) => return Err(e),
    }
    if sys::socket_option(fd, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(refuse("is not a stream socket"));
    }
    if !matches!(sys::socket_family(fd)?, libc::AF_INET | libc::AF_INET6) {
        return Err(refuse("is not an IPv4 or IPv6 socket"));
    }
    if sys::socket_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return Err(refuse(
            "is not listening (a .socket unit with Accept=yes passes connections, not its listener)",
        ));
    }
    // Close-on-exec, like every other descriptor of ours: a program we start gets the socket
    // only if it is handed over on purpose.
    sys::set_cloexec(fd)?;
    // SAFETY: `fd` is open (fstat succeeded) and is the listening socket the protocol hands to
    // this process; nothing else in the process uses it. From here on it is ours to close.
    let listener = TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) });
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Drops the environment variables `names` once read (the `sd_listen_fds(3)` ones, the
/// upgrade's hand-over), so that nothing this process starts mistakes them for its own. Only
/// done while the process has a single thread: `remove_var` is unsafe because another thread
/// could read the environment (getenv(3) in some C library) while it changes. With more than one
/// thread the variables stay; each names the process it was meant for (`LISTEN_PID` our pid, the
/// hand-over our parent's), so a process we start ignores them all the same.
pub(crate) fn forget_variables(names: &[&str]) {
    if !single_threaded() {
        return;
    }
    for name in names {
        // SAFETY: the process has one thread, this one (just checked): no other thread exists
        // to read or write the environment during the call, and only this one could start one.
        unsafe { std::env::remove_var(name) };
    }
}

/// Whether this process has exactly one thread (`/proc/self/task` holds one entry per thread).
/// Without `/proc` (a bare chroot) the answer is unknown, taken as no.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    /// Name, `LISTEN_PID`, `LISTEN_FDS`, and the source (or the start of the refusal).
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Result<Source, &'static str>,
    );

    #[test]
    fn sd_listen_fds_rules() {
        let cases: &[Case] = &[
            ("nothing", None, None, Ok(Source::Bind)),
            ("fds without pid", None, Some("1"), Ok(Source::Bind)),
            ("pid without fds", Some("4242"), None, Ok(Source::Bind)),
            ("another process", Some("17"), Some("1"), Ok(Source::Bind)),
            ("zero fds", Some("4242"), Some("0"), Ok(Source::Bind)),
            ("one fd", Some("4242"), Some("1"), Ok(Source::Systemd)),
            ("two fds", Some("4242"), Some("2"), Err("LISTEN_FDS=2:")),
            (
                "bad pid",
                Some("me"),
                Some("1"),
                Err("LISTEN_PID=me is not"),
            ),
            (
                "bad fds",
                Some("4242"),
                Some("x"),
                Err("LISTEN_FDS=x is not"),
            ),
            // Another process's malformed count is none of our business.
            (
                "bad fds, other pid",
                Some("17"),
                Some("x"),
                Ok(Source::Bind),
            ),
        ];
        for (name, pid, fds, want) in cases {
            let got = systemd_source(*pid, *fds, PID);
            match (want, &got) {
                (Ok(want), Ok(got)) => assert_eq!(want, got, "{name}"),
                (Err(prefix), Err(message)) => {
                    assert!(message.starts_with(prefix), "{name}: {message}")
                }
                _ => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_listening_tcp_socket() {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open("/dev/null").unwrap();
        let unix = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let path = std::env::temp_dir().join(format!("lameduck-unit-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let local = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        for (fd, why) in [
            (file.as_raw_fd(), "is not a socket"),
            (unix.as_raw_fd(), "is not a stream socket"),
            (udp.as_raw_fd(), "is not a stream socket"),
            (local.as_raw_fd(), "is not an IPv4 or IPv6 socket"),
            (stream.as_raw_fd(), "is not listening"),
        ] {
            let message = inherit(fd, "test").unwrap_err().to_string();
            assert!(message.contains(why), "{message}");
        }
    }
}
