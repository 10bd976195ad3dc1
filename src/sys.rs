//! The few raw system calls std and mio don't offer: a listening socket with our own backlog,
//! discarding received bytes without copying them, the length of a listener's accept queue, and
//! the questions asked of an inherited descriptor (is it a socket, of what type and family, is
//! it listening) before it is trusted. Every call goes through [`syscall!`], which turns `-1`
//! into `io::Error::last_os_error()`.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Calls a libc function and maps the C error convention (`-1` + `errno`) to `io::Result`.
/// The caller writes the `// SAFETY:` argument for the arguments it passes.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Opens a non-blocking, close-on-exec TCP listener on `addr` with `SO_REUSEADDR` and the given
/// backlog. std and mio fix the backlog at 128/1024; the listen backlog is where clients wait
/// while we are at `--max-conns` and during the lame-duck phase, so it is a setting.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes no pointers.
    let fd = syscall!(socket(domain, flags, 0))?;
    // SAFETY: `fd` is a fresh descriptor we own; OwnedFd closes it on every error path below.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);

    // Without SO_REUSEADDR a restart on the same port fails while old connections sit in TIME_WAIT.
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is passed alongside it.
    syscall!(setsockopt(
        raw,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        (&on as *const libc::c_int).cast(),
        mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))?;

    let (storage, len) = socket_addr(addr);
    // SAFETY: `storage` is a valid sockaddr of `len` bytes for this address family.
    syscall!(bind(
        raw,
        (&storage as *const libc::sockaddr_storage).cast(),
        len
    ))?;
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen(2) takes no pointers.
    syscall!(listen(raw, backlog))?;
    Ok(std::net::TcpListener::from(fd))
}

/// Converts a std address into the C `sockaddr` that bind(2) expects.
fn socket_addr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Removes up to `n` bytes from the front of a TCP socket's receive queue without copying them
/// (`recv` with `MSG_TRUNC`: on a TCP socket Linux drops the data instead of returning it, see
/// tcp(7)). Returns how many were removed; `Ok(0)` is the peer's EOF.
///
/// The connection peeks at its input and consumes only what it has answered (see conn.rs), so
/// this is how the bytes it has already looked at leave the kernel.
pub fn discard(fd: RawFd, n: usize) -> io::Result<usize> {
    let flags = libc::MSG_TRUNC | libc::MSG_DONTWAIT;
    // SAFETY: with MSG_TRUNC a TCP socket copies nothing to the buffer, so a null pointer is
    // never written through; the kernel only range-checks it.
    let taken = syscall!(recv(fd, std::ptr::null_mut(), n, flags))?;
    Ok(taken as usize)
}

/// Sets `SO_LINGER` to zero seconds: the socket's close then sends RST, not FIN (socket(7)).
pub fn linger_zero(fd: RawFd) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the pointer and length describe a live `linger` for the duration of the call.
    syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        (&linger as *const libc::linger).cast(),
        std::mem::size_of::<libc::linger>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// How many connections wait in a listening socket's accept queue: completed handshakes that
/// nobody has accepted yet. For a listener, Linux reports the queue's length in the `tcpi_unacked`
/// field of `TCP_INFO` (what `ss -l` shows as Recv-Q).
pub fn accept_queue_len(fd: RawFd) -> io::Result<u32> {
    // SAFETY: tcp_info is plain old data for which all-zero bytes are valid.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and `len` is passed by pointer as required.
    syscall!(getsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        (&mut info as *mut libc::tcp_info).cast(),
        &mut len,
    ))?;
    Ok(info.tcpi_unacked)
}

/// Lets `fd` survive `execve`: clears close-on-exec. Async-signal-safe (one `fcntl`), so it may
/// run between `fork` and `exec`.
pub fn inherit(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) with F_GETFD/F_SETFD takes no pointers.
    let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
    syscall!(fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC))?;
    Ok(())
}

/// Whether the open descriptor `fd` is a socket (`fstat(2)`'s `S_ISSOCK`). Fails with `EBADF`
/// when `fd` is not open.
pub fn is_socket(fd: RawFd) -> io::Result<bool> {
    // SAFETY: stat is plain old data for which all-zero bytes are valid.
    let mut stat: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `stat` is writable for the whole struct fstat(2) fills in.
    syscall!(fstat(fd, &mut stat))?;
    Ok(stat.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// An integer socket option of `fd` (`SO_TYPE`, `SO_ACCEPTCONN`, ...).
pub fn socket_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes, and `len` is passed by pointer as required.
    syscall!(getsockopt(
        fd,
        level,
        name,
        (&mut value as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    Ok(value)
}

/// The address family of the socket `fd` (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...), from the
/// address it is bound to (`getsockname(2)`).
pub fn socket_family(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: sockaddr_storage is plain old data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes (it holds any address family), and `len`
    // is passed by pointer as required.
    syscall!(getsockname(
        fd,
        (&mut storage as *mut libc::sockaddr_storage).cast(),
        &mut len,
    ))?;
    Ok(libc::c_int::from(storage.ss_family))
}

/// Sets close-on-exec on `fd`, so that a program this process starts does not inherit it by
/// accident. (An inherited descriptor arrives without it: that is how it was inherited.)
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) with F_GETFD/F_SETFD takes no pointers.
    let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
    // SAFETY: as above.
    syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
    Ok(())
}

/// A descriptor that becomes readable when process `pid` (our child) exits: `pidfd_open(2)`,
/// Linux 5.3 and later. It lets the event loop wait for a child's exit like for any other event.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open(2) takes a pid and flags, no pointers.
    let fd = syscall!(syscall(libc::SYS_pidfd_open, pid, 0))?;
    // SAFETY: a successful pidfd_open returns a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
