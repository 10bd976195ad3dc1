//! Reports to the service manager (systemd's `Type=notify`): one datagram per state change to
//! the AF_UNIX socket named by `NOTIFY_SOCKET`, the protocol of `sd_notify(3)`, with std alone
//! (no libsystemd).
//!
//! - [`READY`] once the loop serves: systemd then considers the start done (`systemctl start`
//!   returns, units ordered after this one start), instead of guessing from the fork.
//! - [`STOPPING`] when SIGTERM or SIGINT starts the shutdown: `systemctl status` says
//!   "deactivating" while the server drains.
//! - Anything else through [`notify`] (`MAINPID=<pid>` when a new process takes over).
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or not `Type=notify`) nothing is sent. Sending
//! never blocks the loop (the socket is non-blocking: a full queue drops the report) and never
//! stops the server: a failure is logged once, as `event=notify_failed`, and the server goes on.
//!
//! `NOTIFY_SOCKET` is read on every report and left in the environment, unlike `sd_notify(3)`
//! with `unset_environment`: a process started to take over from this one (an in-place upgrade)
//! reports on the same socket, which the unit allows with `NotifyAccess=all`.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::log::{self, Level};

/// The server is serving.
pub const READY: &str = "READY=1";
/// The server has begun to shut down.
pub const STOPPING: &str = "STOPPING=1";

/// The variable that names the service manager's socket: an absolute path, or `@name` for a
/// name in the abstract namespace.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Whether a failed report has been logged already: one line per process is enough to see that
/// reports do not arrive, and a broken socket must not add a line to every state change.
static FAILURE_LOGGED: AtomicBool = AtomicBool::new(false);

/// Sends `state` (one or more `KEY=VALUE` lines, such as [`READY`]) to the service manager, if
/// `NOTIFY_SOCKET` names one. Errors are logged once and otherwise ignored.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(e) = send(&target, state) {
        if !FAILURE_LOGGED.swap(true, Ordering::Relaxed) {
            log::event(
                Level::Warn,
                "notify_failed",
                &[
                    ("state", state.into()),
                    ("socket", target.to_string_lossy().as_ref().into()),
                    ("error", e.to_string().as_str().into()),
                ],
            );
        }
    }
}

/// Sends one datagram holding `state` to the socket `target` names.
fn send(target: &OsStr, state: &str) -> io::Result<()> {
    let addr = address(target)?;
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// The socket address `NOTIFY_SOCKET` names. Other forms (systemd's `vsock:` for virtual
/// machines) are not supported.
fn address(target: &OsStr) -> io::Result<SocketAddr> {
    match target.as_bytes() {
        [b'/', ..] => SocketAddr::from_pathname(target),
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path() {
        let path = std::env::temp_dir().join(format!("lameduck-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), READY).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(received(&socket), READY);
    }

    #[test]
    fn sends_to_an_abstract_name() {
        let name = format!("lameduck-notify-{}", std::process::id());
        let socket =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        send(OsStr::new(&format!("@{name}")), STOPPING).unwrap();
        assert_eq!(received(&socket), STOPPING);
    }

    #[test]
    fn refuses_a_relative_path_and_reports_a_missing_socket() {
        assert!(send(OsStr::new("notify.sock"), READY).is_err());
        assert!(send(OsStr::new("/nonexistent/lameduck/notify"), READY).is_err());
    }
}
