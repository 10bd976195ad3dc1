//! systemd socket activation against the real binary. The test plays systemd: it binds a
//! listening socket, holds it, and starts each server with a duplicate of it at fd 3 and
//! `LISTEN_FDS=1`, `LISTEN_PID=<the server's pid>` (the `sd_listen_fds(3)` protocol).
//!
//! `LISTEN_PID` must be the server's own pid, which a parent cannot know before the fork, while
//! `Command` fixes the environment before it. So each server is started through
//! `/bin/sh -c 'export LISTEN_PID=$$; exec lameduck …'`: exec keeps the shell's pid. (That is
//! how `systemd-socket-activate` does it too: it sets the variables and execs the server.)
//!
//! - the server serves on the inherited socket, says so, and its `listening` line shows the
//!   socket's address, not `--addr`/`--port`; the socket outlives it;
//! - a `systemctl restart` loop under load: stop, then start the next server on the same socket,
//!   five times: no refused connection, no reset, every request answered, every old process
//!   exits 0 with `backlog_lost=0`;
//! - a stop without lame-duck delay answers a keep-alive client's next request with
//!   `Connection: close` instead of closing under it;
//! - clients the old server could not take (no descriptors) are not lost: the next one serves them;
//! - `NOTIFY_SOCKET` gets `READY=1` and `STOPPING=1`;
//! - fd 3 that is not a listening TCP socket, or several sockets, is refused with exit 2;
//! - the shipped units' command line runs as systemd would run it;
//! - Debian's `systemd-socket-activate` hands a socket over (required when `CI` is set).
//!
//! Every test fails on the code before socket activation: that server binds `--port 0` and
//! never looks at fd 3 (so its address is not the held socket's, and refusals never happen).

mod support;

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use support::{
    Lameduck, PROMPT, TempDir, eventually, field, get, read_response, receive_until_close, request,
};

/// The `sh -c` script that sets `LISTEN_PID` to its own pid and then becomes the server.
const AS_OWN_PID: &str = r#"export LISTEN_PID=$$; exec "$0" "$@""#;

/// The shipped units.
const SERVICE_UNIT: &str = "deploy/systemd/lameduck.service";

/// A listening socket on a free loopback port, held by the test as systemd holds a `.socket`
/// unit's (close-on-exec, like every socket std opens: only [`activated`] passes it on).
fn hold_socket() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind the socket to hand over")
}

/// `lameduck serve ARGS` started as systemd starts a socket-activated service (see
/// [`systemd_start`]). `--addr 127.0.0.1 --port 0` come first, to show that they do not apply.
fn activated(socket: &impl AsRawFd, listen_fds: &str, live_file: &Path, args: &[&str]) -> Command {
    let mut command = systemd_start(
        socket,
        listen_fds,
        ["serve", "--addr", "127.0.0.1", "--port", "0", "--live-file"],
    );
    command.arg(live_file).args(args);
    command
}

/// `lameduck ARGV…` (more may be added) started as systemd starts a socket-activated service:
/// `socket` at fd 3, `LISTEN_FDS` as given, `LISTEN_PID` the server's own pid.
fn systemd_start<S: AsRef<OsStr>>(
    socket: &impl AsRawFd,
    listen_fds: &str,
    argv: impl IntoIterator<Item = S>,
) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", AS_OWN_PID, env!("CARGO_BIN_EXE_lameduck")])
        .args(argv)
        .env("LISTEN_FDS", listen_fds);
    let fd = socket.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only calls dup2(2) and
    // fcntl(2), which are async-signal-safe.
    unsafe { command.pre_exec(move || at_fd3(fd)) };
    command
}

/// Puts `fd` at descriptor 3, open across exec. dup2(2) makes a copy without close-on-exec;
/// when `fd` already is 3, dup2 does nothing, so the flag is cleared instead.
fn at_fd3(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) and dup2(2) on descriptors of this process; no memory is involved.
    let rc = unsafe {
        if fd == 3 {
            libc::fcntl(3, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, 3)
        }
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A server started on `socket` as systemd would, once it logged `event=listening`, with the
/// directory of its liveness file.
fn start_on(socket: &TcpListener, args: &[&str]) -> (Lameduck, TempDir) {
    start_command(|live| activated(socket, "1", live, args))
}

/// Spawns the command `make` builds for a liveness file in a fresh directory, and waits for its
/// `event=listening` line.
fn start_command(make: impl FnOnce(&Path) -> Command) -> (Lameduck, TempDir) {
    let dir = TempDir::new();
    let live_file = dir.path().join("live");
    let server = Lameduck::spawn(make(&live_file), &live_file).expect("spawn lameduck");
    (server, dir)
}

/// Stops `server` with SIGTERM and checks the promises of a stop on an inherited socket: exit 0,
/// and nothing counted as lost.
fn stop_cleanly(server: &mut Lameduck) {
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(PROMPT);
    let drain = server.wait_for("event=drain");
    assert_eq!(field(&drain, "backlog_lost"), Some("0"), "{drain}");
    assert_eq!(status.code(), Some(0), "{:#?}", server.log);
}

#[test]
fn serves_on_the_inherited_socket_which_outlives_it() {
    let socket = hold_socket();
    let (mut server, _dir) = start_on(&socket, &["--shutdown-delay", "0"]);
    assert_eq!(
        server.addr,
        socket.local_addr().unwrap(),
        "the listening line must show the inherited socket, not --port 0"
    );
    let inherited = server.wait_for("event=socket_inherited");
    assert_eq!(field(&inherited, "from"), Some("systemd"), "{inherited}");
    assert_eq!(field(&inherited, "fd"), Some("3"), "{inherited}");
    let response = request(server.addr, &get("/"));
    assert_eq!(
        (response.status, &response.body[..]),
        (200, &b"Hello, World!"[..])
    );
    stop_cleanly(&mut server);

    // The server closed its copy at DRAIN; the socket the test holds still listens.
    let client = TcpStream::connect(socket.local_addr().unwrap()).expect("socket still listening");
    let (accepted, _) = socket.accept().expect("the held socket still accepts");
    assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
}

/// The proof of socket activation, as `systemctl restart` does it: stop (SIGTERM), wait for the
/// exit, start the next server on the same socket. Under load from clients that connect to the
/// port directly, five times over. While no server runs, every client waits in the backlog of
/// the socket the test holds (checked: the queue fills up with all of them), and the next server
/// answers them.
///
/// Keep-alive clients check a held connection before reusing it and reconnect when the server
/// closed it, as HTTP clients do. A request written on a reused connection that the server
/// closes before answering a byte is sent again on a new connection (RFC 9112 §9.3.1 allows it
/// for an idempotent request, and pooling clients do it); those are counted and printed. A busy
/// client is told to close by the answer to its next request, but one that waited a whole second
/// between two requests can still write one as the server closes (RFC 9112 §9.5).
#[test]
fn restarts_on_a_held_socket_refuse_nothing_and_lose_nothing() {
    const RESTARTS: usize = 5;
    /// Requests each server must answer before it is stopped.
    const PER_SERVER: u64 = 200;
    let socket = hold_socket();
    let addr = socket.local_addr().unwrap();
    let load = Load::start(addr, 2, 2);
    for round in 0..=RESTARTS {
        let (mut server, _dir) = start_on(&socket, &["--shutdown-delay", "0"]);
        assert_eq!(server.addr, addr);
        let before = load.tally.answered.load(Relaxed);
        eventually("the new server answers requests", || {
            load.tally.answered.load(Relaxed) >= before + PER_SERVER
        });
        if round == RESTARTS {
            load.stop();
        }
        stop_cleanly(&mut server);
        if round < RESTARTS {
            eventually("every client waits in the held socket's backlog", || {
                accept_queue_len(&socket) >= load.clients
            });
        }
    }
    let tally = &load.tally;
    let failures = tally.failures.lock().unwrap();
    let _ = writeln!(
        io::stderr(),
        "socket_activation restarts={RESTARTS} answered={} reconnected={} retried={} failed={}",
        tally.answered.load(Relaxed),
        tally.reconnected.load(Relaxed),
        tally.retried.load(Relaxed),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
}

/// `systemctl restart` with the shipped `--shutdown-delay 0`: no lame-duck window has told busy
/// keep-alive clients to close, so the drain hands them over as an upgrade's does. A client that
/// sends its next request after DRAIN began gets it answered, with `Connection: close` (closing
/// its connection at once would race with that request: RFC 9112 §9.5), and a connection that
/// stays idle is closed gently a second later. Two busy clients ask in turn: the loop answers
/// the first only after the sweep that starts DRAIN, so the second's request certainly comes
/// after it. Fails with a drain that closes idle connections at once: a request then meets a
/// half-closed connection and is never answered.
#[test]
fn a_stop_without_delay_tells_keep_alive_clients_to_close_before_closing_them() {
    let socket = hold_socket();
    let (mut server, _dir) = start_on(&socket, &["--shutdown-delay", "0"]);
    let mut clients: Vec<BufReader<TcpStream>> =
        (0..3).map(|_| BufReader::new(server.connect())).collect();
    for client in &mut clients {
        client.get_mut().write_all(&get("/")).unwrap();
        let response = read_response(client, false).unwrap();
        assert!(response.status == 200 && !response.closes(), "{response:?}");
    }
    let mut idle = clients.pop().unwrap();

    server.signal(libc::SIGTERM);
    server.wait_for("event=drain");
    for (i, busy) in clients.iter_mut().enumerate() {
        busy.get_mut().write_all(&get("/")).unwrap();
        let response = read_response(busy, false)
            .unwrap_or_else(|e| panic!("busy client {i}: no answer after DRAIN began: {e}"));
        assert_eq!(response.status, 200);
        assert!(response.closes(), "{}", response.head);
        let rest = receive_until_close(busy.get_mut(), PROMPT);
        assert!(rest.eof() && rest.bytes.is_empty(), "{rest:?}");
    }
    let idle_end = receive_until_close(idle.get_mut(), PROMPT);
    assert!(idle_end.eof() && idle_end.bytes.is_empty(), "{idle_end:?}");
    drop((clients, idle)); // our FINs end the server's lingering reads
    assert_eq!(
        server.wait_exit(PROMPT).code(),
        Some(0),
        "{:#?}",
        server.log
    );
}

/// A client the old server could not take (it is out of descriptors) is not lost when the
/// socket is inherited: the drain counts nothing as lost, the exit is clean, and the next
/// server answers it. (With a socket it bound itself the same drain is `backlog_lost=2`, exit 1:
/// tests/limits.rs.) Fails without the `Origin::Inherited` case of `take_backlog`.
#[test]
fn clients_the_old_server_could_not_take_are_served_by_the_next() {
    let socket = hold_socket();
    let (mut old, _dir) = start_on(&socket, &["--shutdown-delay", "0"]);
    support::leave_one_descriptor(old.pid());
    let mut idle = BufReader::new(old.connect());
    idle.get_mut().write_all(&get("/")).unwrap();
    assert_eq!(read_response(&mut idle, false).unwrap().status, 200);
    let queued: Vec<BufReader<TcpStream>> = (0..2)
        .map(|_| {
            let mut stream = old.connect();
            stream.write_all(&get("/")).unwrap();
            BufReader::new(stream)
        })
        .collect();
    old.wait_for("reason=out_of_descriptors");

    old.signal(libc::SIGINT);
    let drain = old.wait_for("event=drain");
    assert_eq!(field(&drain, "backlog_lost"), Some("0"), "{drain}");
    drop(idle);
    assert_eq!(old.wait_exit(PROMPT).code(), Some(0), "{:#?}", old.log);
    let exit = old.wait_for("event=exit");
    assert_eq!(field(&exit, "outcome"), Some("drained"), "{exit}");

    let (mut next, _next_dir) = start_on(&socket, &["--shutdown-delay", "0"]);
    for (i, mut client) in queued.into_iter().enumerate() {
        let response = read_response(&mut client, false).expect("the next server answers");
        assert_eq!(response.status, 200, "queued client {i}");
    }
    stop_cleanly(&mut next);
}

#[test]
fn notify_socket_gets_ready_then_stopping() {
    let dir = TempDir::new();
    let path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&path).unwrap();
    notify.set_read_timeout(Some(PROMPT)).unwrap();
    let mut server = Lameduck::start_with(&["--shutdown-delay", "0"], |command| {
        command.env("NOTIFY_SOCKET", &path);
    });
    assert_eq!(received(&notify), "READY=1", "after {:#?}", server.log);
    assert_eq!(request(server.addr, &get("/")).status, 200);
    server.signal(libc::SIGTERM);
    assert_eq!(received(&notify), "STOPPING=1");
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    assert!(
        !server.log.iter().any(|l| l.contains("event=notify_failed")),
        "{:#?}",
        server.log
    );
}

/// One datagram from `socket`, as text.
fn received(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within PROMPT");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// What is passed at fd 3 must be one listening TCP socket; anything else is refused at start,
/// exit 2, with the reason, before the liveness file exists.
#[test]
fn refuses_what_is_not_one_listening_tcp_socket() {
    let dir = TempDir::new();
    let file = std::fs::File::create(dir.path().join("not-a-socket")).unwrap();
    let listener = hold_socket();
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let local = UnixListener::bind(dir.path().join("local.sock")).unwrap();
    let fds: &[(&str, &dyn AsRawFd, &str, &str)] = &[
        ("a file", &file, "1", "is not a socket"),
        ("a connected socket", &connected, "1", "is not listening"),
        (
            "a local socket",
            &local,
            "1",
            "is not an IPv4 or IPv6 socket",
        ),
        ("two sockets", &listener, "2", "LISTEN_FDS=2"),
    ];
    for &(what, fd, listen_fds, why) in fds {
        let live_file = dir.path().join("live");
        let command = activated(&fd.as_raw_fd(), listen_fds, &live_file, &[]);
        let output = support::run_command(command, PROMPT);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("event=start_failed") && stderr.contains(why),
            "{what}: {stderr}"
        );
        assert!(!live_file.exists(), "{what}: no liveness file");
    }
}

/// The service unit's own `ExecStart`, run as systemd runs it: on a socket it holds, with
/// `NOTIFY_SOCKET`. Its timings pass the server's own check against `--grace-period`, which
/// equals the unit's `TimeoutStopSec`. Only the liveness file moves to a private directory.
#[test]
fn the_service_units_command_line_runs_as_systemd_runs_it() {
    let unit = Unit::read(SERVICE_UNIT);
    assert_eq!(unit.get("Type"), Some("notify"));
    let exec_start = unit.get("ExecStart").expect("ExecStart");
    let mut words = exec_start.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/lameduck"));
    let args: Vec<&str> = words.collect();
    let flag = |name: &str| {
        let at = args.iter().position(|a| *a == name);
        at.and_then(|i| args.get(i + 1).copied())
            .unwrap_or_else(|| panic!("{name} in {exec_start}"))
    };
    assert_eq!(flag("--grace-period"), unit.get("TimeoutStopSec").unwrap());
    let runtime_dir = format!("/run/{}/", unit.get("RuntimeDirectory").unwrap());
    assert!(
        flag("--live-file").starts_with(&runtime_dir),
        "{exec_start}"
    );

    let dir = TempDir::new();
    let live_file = dir.path().join("live");
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            if a.starts_with(&runtime_dir) {
                live_file.to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(PROMPT)).unwrap();
    let socket = hold_socket();
    let mut command = systemd_start(&socket, "1", &args);
    command.env("NOTIFY_SOCKET", &notify_path);
    let mut server = Lameduck::spawn(command, &live_file).expect("spawn the unit's command");
    assert_eq!(server.addr, socket.local_addr().unwrap());
    assert_eq!(received(&notify), "READY=1");
    assert_eq!(request(server.addr, &get("/")).status, 200);
    assert!(live_file.is_file());
    stop_cleanly(&mut server);
    assert_eq!(received(&notify), "STOPPING=1");
}

/// Debian's `systemd-socket-activate` binds the port, waits for the first connection, and execs
/// the server with the socket at fd 3. The server must take it and answer that first client.
#[test]
fn systemd_socket_activate_hands_over_its_socket() {
    let Some(tool) = socket_activate_or_skip() else {
        return;
    };
    // The tool wants a port number: take a free one from the kernel and give it back.
    let port = hold_socket().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The first client starts the server; the tool has to be listening first.
    let client = thread::spawn(move || {
        let mut stream = None;
        eventually("systemd-socket-activate listens", || {
            stream = TcpStream::connect(addr).ok();
            stream.is_some()
        });
        let mut stream = stream.expect("connected");
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        stream.write_all(&get("/")).unwrap();
        read_response(&mut BufReader::new(stream), false)
    });
    let (mut server, _dir) = start_command(|live| {
        let mut command = Command::new(tool);
        command
            .arg("--listen")
            .arg(addr.to_string())
            // The tool passes on only the variables it is told to.
            .args(["--setenv", "LAMEDUCK_SHUTDOWN_DELAY=0"])
            .arg(env!("CARGO_BIN_EXE_lameduck"))
            .args(["serve", "--live-file"])
            .arg(live);
        command
    });
    assert_eq!(server.addr, addr, "{:#?}", server.log);
    let response = client
        .join()
        .unwrap()
        .expect("the first client is answered");
    assert_eq!(response.status, 200);
    stop_cleanly(&mut server);
}

/// `systemd-socket-activate`, or `None` (after saying so) when it is missing outside CI. In CI
/// (`CI` set) a missing tool is a failure: a skipped proof must not pass for a green one (the
/// convention of tests/rolling_update.rs).
fn socket_activate_or_skip() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("systemd-socket-activate"))
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !in_ci,
        "systemd-socket-activate not found and CI is set: install it (apt-get install -y systemd)"
    );
    // Written to stderr directly: the test harness captures `eprintln!`.
    let _ = writeln!(
        io::stderr(),
        "SKIPPED socket_activation: systemd-socket-activate not found; install it (apt-get \
         install systemd) to run systemd_socket_activate_hands_over_its_socket"
    );
    None
}

/// How many connections wait in `socket`'s accept queue (Linux reports it for a listener in
/// `TCP_INFO`'s `tcpi_unacked`, as `ss -l` shows it).
fn accept_queue_len(socket: &TcpListener) -> usize {
    // SAFETY: tcp_info is plain old data for which all-zero bytes are valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and `len` is passed by pointer.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
    info.tcpi_unacked as usize
}

/// A systemd unit file, `Key=Value` lines (continued lines joined), the last value of a key.
struct Unit(Vec<(String, String)>);

impl Unit {
    fn read(path: &str) -> Unit {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let joined = text.replace("\\\n", " ");
        let pairs = joined
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('['))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Unit(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Client threads sending `GET /` to one address until stopped, and their tally.
struct Load {
    clients: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct Tally {
    /// Requests answered with a complete 200.
    answered: AtomicU64,
    /// Held connections found closed by the server before reuse (not a failure: nothing sent).
    reconnected: AtomicU64,
    /// Requests sent again because a reused connection closed before any byte of the answer.
    retried: AtomicU64,
    /// Everything else that went wrong, one line each: refused, reset, timeout, bad answer.
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

impl Load {
    /// `new_connection` clients open a connection per request (`Connection: close`);
    /// `keep_alive` clients hold one and send on it back to back, as a busy pooling client does.
    fn start(addr: SocketAddr, new_connection: usize, keep_alive: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut threads = Vec::new();
        for i in 0..new_connection + keep_alive {
            let (stop, tally) = (stop.clone(), tally.clone());
            let pooled = i >= new_connection;
            threads.push(thread::spawn(move || {
                let mut held = None;
                while !stop.load(Relaxed) {
                    if pooled {
                        keep_alive_request(addr, &mut held, &tally);
                    } else {
                        new_connection_request(addr, &tally);
                    }
                }
            }));
        }
        Load {
            clients: new_connection + keep_alive,
            stop,
            tally,
            threads: Mutex::new(threads),
        }
    }

    /// Stops the clients after their current request, and waits for them.
    fn stop(&self) {
        self.stop.store(true, Relaxed);
        for thread in self.threads.lock().unwrap().drain(..) {
            thread.join().expect("client thread");
        }
    }
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
const REQUEST_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

fn new_connection_request(addr: SocketAddr, tally: &Tally) {
    let mut stream = match connect(addr) {
        Ok(stream) => stream,
        Err(e) => return tally.fail(format!("new connection: connect: {e}")),
    };
    if let Err(e) = stream.write_all(REQUEST_CLOSE) {
        return tally.fail(format!("new connection: write: {e}"));
    }
    match answer(&mut BufReader::new(stream)) {
        Answer::Ok(_) => {
            tally.answered.fetch_add(1, Relaxed);
        }
        Answer::NothingThenClosed => tally.fail("new connection: closed unanswered".into()),
        Answer::Failed(e) => tally.fail(format!("new connection: {e}")),
    }
}

/// One request on the held connection, or on a new one when there is none or the server has
/// closed it.
fn keep_alive_request(addr: SocketAddr, held: &mut Option<BufReader<TcpStream>>, tally: &Tally) {
    if let Some(reader) = held {
        match closed_while_idle(reader.get_ref()) {
            Ok(false) => {}
            Ok(true) => {
                tally.reconnected.fetch_add(1, Relaxed);
                *held = None;
            }
            Err(e) => {
                tally.fail(format!("keep-alive: while idle: {e}"));
                *held = None;
            }
        }
    }
    let reused = held.is_some();
    let reader = match held {
        Some(reader) => reader,
        None => match connect(addr) {
            Ok(stream) => held.insert(BufReader::new(stream)),
            Err(e) => return tally.fail(format!("keep-alive: connect: {e}")),
        },
    };
    if let Err(e) = reader.get_mut().write_all(REQUEST) {
        *held = None;
        return tally.fail(format!("keep-alive: write: {e}"));
    }
    match answer(reader) {
        Answer::Ok(response) => {
            tally.answered.fetch_add(1, Relaxed);
            if response.closes() {
                *held = None;
            }
        }
        // Sent again on a new connection by the next call (RFC 9112 §9.3.1).
        Answer::NothingThenClosed if reused => {
            tally.retried.fetch_add(1, Relaxed);
            *held = None;
        }
        Answer::NothingThenClosed => {
            *held = None;
            tally.fail("keep-alive: new connection closed unanswered".into());
        }
        Answer::Failed(e) => {
            *held = None;
            tally.fail(format!("keep-alive: {e}"));
        }
    }
}

/// Connects with the harness's timeouts. While no server runs the handshake still completes
/// (the kernel queues the client on the held socket), so a refusal here is a real failure.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, PROMPT)?;
    stream.set_read_timeout(Some(PROMPT))?;
    stream.set_write_timeout(Some(PROMPT))?;
    Ok(stream)
}

/// Whether the server has closed a held connection, checked without consuming anything (a
/// non-blocking peek, as urllib3's `is_connection_dropped`). Bytes or a reset are errors.
fn closed_while_idle(stream: &TcpStream) -> io::Result<bool> {
    stream.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let peeked = stream.peek(&mut byte);
    stream.set_nonblocking(false)?;
    match peeked {
        Ok(0) => Ok(true),
        Ok(_) => Err(io::Error::other("unrequested bytes")),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

enum Answer {
    /// A complete 200.
    Ok(support::Response),
    /// The connection closed (FIN) before any byte of an answer.
    NothingThenClosed,
    /// A reset, a timeout, a partial or a non-200 answer.
    Failed(String),
}

fn answer(reader: &mut BufReader<TcpStream>) -> Answer {
    match reader.fill_buf() {
        Ok([]) => return Answer::NothingThenClosed,
        Ok(_) => {}
        Err(e) => return Answer::Failed(e.to_string()),
    }
    match read_response(reader, false) {
        Ok(response) if response.status == 200 => Answer::Ok(response),
        Ok(response) => Answer::Failed(response.head),
        Err(e) => Answer::Failed(e.to_string()),
    }
}
