//! Runs lameduck processes for the deploy tests with hard timeouts: a hung process fails the
//! test instead of hanging CI. Synchronisation is by reading the server's log lines and waiting
//! on the child, never by sleeping.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for anything that should happen "at once" (start-up, a probe, a response).
pub const PROMPT: Duration = Duration::from_secs(10);

/// A running server whose stderr log is read line by line.
pub struct Server {
    pid: libc::pid_t,
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every log line seen so far, for failure messages.
    pub log: Vec<String>,
}

impl Server {
    pub fn spawn(mut command: Command) -> io::Result<Server> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id() as libc::pid_t;
        Ok(Server {
            pid,
            child: Some(child),
            lines,
            log: Vec::new(),
        })
    }

    /// Waits for the log line with `event=<event>` and returns it.
    pub fn wait_for_event(&mut self, event: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let wanted = format!("event={event}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.split_whitespace().any(|field| field == wanted) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no `{wanted}` within {timeout:?}; log:\n{}",
                        self.log.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(Child::try_wait);
                    panic!(
                        "stderr closed before `{wanted}` (exit: {status:?}); log:\n{}",
                        self.log.join("\n")
                    )
                }
            }
        }
    }

    /// Waits for `event=listening` and returns its `addr=`.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let line = self.wait_for_event("listening", PROMPT);
        let addr = field(&line, "addr").unwrap_or_else(|| panic!("no addr= in {line:?}"));
        addr.parse().unwrap_or_else(|e| panic!("addr={addr}: {e}"))
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    pub fn signal(&self, signal: libc::c_int) {
        assert!(self.child.is_some(), "signal after exit");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child,
        // so it cannot have been recycled for another process.
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}): {}",
            self.pid,
            io::Error::last_os_error()
        );
    }

    /// Waits for the process to exit; past `timeout` it is killed and the test fails.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.take().expect("waited once");
        match wait_timeout(child, timeout) {
            Some(status) => {
                // The rest of the log (the exit line); stderr closes when the process is gone.
                let deadline = Instant::now() + PROMPT;
                while let Ok(line) = self
                    .lines
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    self.log.push(line);
                }
                status
            }
            None => panic!(
                "still running after {timeout:?}; log:\n{}",
                self.log.join("\n")
            ),
        }
    }
}

impl Drop for Server {
    /// A failed assertion must not leave a server behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of `key=` in a logfmt line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// Waits for `child` on a helper thread; on timeout kills it (SIGKILL) and returns `None`.
fn wait_timeout(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(timeout) {
        Ok(status) => Some(status.expect("wait(2)")),
        Err(_) => {
            // SAFETY: as in `Server::signal`; the waiting thread has not reaped it yet, or
            // the kill is a harmless ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            None
        }
    }
}

/// Runs a short-lived command (a probe) to completion, capturing its output.
pub fn run(mut command: Command, timeout: Duration) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = wait_timeout(child, timeout)
        .unwrap_or_else(|| panic!("{command:?} still running after {timeout:?}"));
    Output {
        status,
        stdout: out.join().expect("reader"),
        stderr: err.join().expect("reader"),
    }
}

/// One HTTP/1.1 response, as raw parts.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` with `Connection: close`, read until the server closes.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, PROMPT).expect("connect");
    stream.set_read_timeout(Some(PROMPT)).expect("timeout");
    stream.set_write_timeout(Some(PROMPT)).expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: lameduck\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head end: {raw:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
