//! One server process standing in for a pod (lameduck, or a program built on it such as
//! `examples/slow_work.rs`): spawn it, learn its port, signal it, wait for its exit.
//!
//! Start-up is synchronised on the server's first log line (`event=listening addr=...`), never on
//! a sleep; the exit is awaited by polling the child with a deadline (the grace period), after which
//! the process is SIGKILLed exactly as the kubelet would, and the run records it as killed.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::os::unix::process::ExitStatusExt;

/// How long a new process may take to log `event=listening`.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the child is polled while waiting for its exit.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// A running server process; SIGKILLed and reaped on drop if still running (so a failing test
/// leaves no stray servers behind).
pub struct Pod {
    child: Child,
    pub pid: u32,
    /// The port it reported in its `event=listening` line (it is started with `--port 0`).
    pub port: u16,
    /// Everything the process wrote on stderr, copied line by line by a reader thread.
    pub log: PathBuf,
}

/// How a process ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// Exit code, if it exited by itself.
    pub code: Option<i32>,
    /// Terminating signal, if any (9 after the harness's SIGKILL at the end of the grace period).
    pub signal: Option<i32>,
    /// True if the grace period ran out and the harness had to SIGKILL it.
    pub killed: bool,
    /// Time from SIGTERM to exit.
    pub after: Duration,
}

impl Exit {
    fn from_status(s: ExitStatus, killed: bool, after: Duration) -> Exit {
        Exit {
            code: s.code(),
            signal: s.signal(),
            killed,
            after,
        }
    }

    /// "0", "1", "signal 9 (killed)", for the report.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) if self.killed => format!("signal {s} (killed)"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "?".to_string(),
        }
    }
}

impl Pod {
    /// Spawns `bin --addr 127.0.0.1 --port 0 --live-file <dir>/pod-N.live <args>` and waits for
    /// its `event=listening` line. `bin` takes the flags of `lameduck serve`: the `lameduck`
    /// binary itself (`serve` is its default command) or a program built on it.
    ///
    /// The environment is cleared of `PORT` and `LAMEDUCK_*` so that "lameduck defaults" in a run
    /// really means the defaults, whatever the caller's shell exports.
    pub fn spawn(bin: &Path, dir: &Path, index: usize, args: &[String]) -> io::Result<Pod> {
        let log = dir.join(format!("pod-{index}.log"));
        let live = dir.join(format!("pod-{index}.live"));
        let mut cmd = Command::new(bin);
        cmd.args(["--addr", "127.0.0.1", "--port", "0", "--live-file"])
            .arg(&live)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars_os() {
            if k == "PORT" || k.to_string_lossy().starts_with("LAMEDUCK_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr pipe"))?;
        let mut file = File::create(&log)?;
        let (tx, rx) = mpsc::channel();
        // The reader lives until the process closes stderr (i.e. exits); it is never joined, so a
        // wedged process cannot wedge the harness.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if line.contains("event=listening") {
                    let _ = tx.send(listening_port(&line));
                }
            }
        });
        let mut pod = Pod {
            child,
            pid,
            port: 0,
            log,
        };
        match rx.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Some(port)) => {
                pod.port = port;
                Ok(pod)
            }
            Ok(None) => Err(io::Error::other(format!(
                "pod {index}: listening line without a parsable addr=; log:\n{}",
                pod.log_text()
            ))),
            Err(_) => {
                let status = pod.child.try_wait()?;
                Err(io::Error::other(format!(
                    "pod {index}: no event=listening within {LISTEN_TIMEOUT:?} (exit status {status:?}); log:\n{}",
                    pod.log_text()
                )))
            }
        }
    }

    /// Sends a signal (SIGTERM for the rolling update, SIGINT for the final teardown).
    pub fn signal(&self, sig: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.pid).map_err(io::Error::other)?;
        // SAFETY: kill(2) takes plain integers; `pid` is our own child, not yet reaped (we hold the
        // `Child` and only reap it in `wait_exit`/`drop`), so the pid cannot have been reused.
        if unsafe { libc::kill(pid, sig) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Polls for the process's exit until `until`, measuring from `since` (the moment of the
    /// signal). `None` if it is still running at `until`.
    pub fn exit_before(&mut self, since: Instant, until: Instant) -> io::Result<Option<Exit>> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(Exit::from_status(status, false, since.elapsed())));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            std::thread::sleep(POLL_EVERY.min(until - now));
        }
    }

    /// Waits for the process to exit, measuring from `since`. If it is still running at
    /// `since + grace`, SIGKILLs it (the kubelet's move) and reports it as killed.
    pub fn wait_exit(&mut self, since: Instant, grace: Duration) -> io::Result<Exit> {
        if let Some(exit) = self.exit_before(since, since + grace)? {
            return Ok(exit);
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        Ok(Exit::from_status(status, true, since.elapsed()))
    }

    /// The first log line containing `want`, once the log holds `until` (a line the process
    /// writes after `want`, e.g. `event=exit`): the reader thread copies lines a little after the
    /// process wrote them, so the log is polled for that later line, up to `timeout`. `None` if
    /// `want` never appeared.
    pub fn log_line(&self, until: &str, want: &str, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains(until) || start.elapsed() >= timeout {
                return text.lines().find(|l| l.contains(want)).map(str::to_string);
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses the port out of `... event=listening addr=127.0.0.1:PORT ...`.
fn listening_port(line: &str) -> Option<u16> {
    let addr = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))?;
    addr.parse::<SocketAddr>().ok().map(|a| a.port())
}
