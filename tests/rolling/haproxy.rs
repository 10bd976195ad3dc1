//! HAProxy on loopback as the load balancer, driven through its runtime API: L4 (`mode tcp`, the
//! kube-proxy stand-in) or L7 with pooled server connections (`mode http`, the ingress stand-in).
//!
//! The harness owns the HAProxy process: it renders `haproxy.cfg` into a scratch directory, starts
//! HAProxy in the foreground, and talks to it only through the admin socket (`stats socket`):
//! `set server ... addr` to point a slot at a new process, `state ready` / `state maint` to add and
//! remove the endpoint, and `show stat` to read what HAProxy believes (UP/DOWN/MAINT, session
//! counts, connection reuses, errors).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The backend name in `haproxy.cfg`.
pub const BACKEND: &str = "be";
/// The two endpoint slots in `haproxy.cfg`; a rolling update alternates between them.
pub const SLOTS: [&str; 2] = ["s1", "s2"];

/// The configuration template; placeholders are `{{NAME}}`.
const TEMPLATE: &str = include_str!("haproxy.cfg");

/// How long HAProxy may take to start answering on its admin socket and frontend.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read/write timeout for one runtime-API command; the API answers in microseconds when healthy.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// How often state is re-read while waiting for HAProxy to change its mind about a server.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// Attempts at binding the frontend: its port is picked by binding port 0 and releasing it, which
/// leaves a tiny window in which another process may take it.
const BIND_ATTEMPTS: usize = 3;

/// How HAProxy balances (`mode` in `haproxy.cfg`, which explains both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// L4: each client connection is spliced to one server connection (kube-proxy).
    Tcp,
    /// L7: HAProxy ends client connections and sends requests over pooled keep-alive server
    /// connections, any request over any idle one (`http-reuse always`), never retrying (an
    /// ingress controller).
    Http,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
        }
    }
}

/// The readiness-probe parameters (HAProxy `inter`, `fall`, `rise`).
#[derive(Clone, Copy, Debug)]
pub struct Checks {
    pub inter: Duration,
    pub fall: u32,
    pub rise: u32,
}

/// One server line of `show stat`, reduced to what the harness reads.
#[derive(Clone, Debug)]
pub struct ServerStat {
    pub name: String,
    /// "UP", "DOWN", "MAINT", or a transition such as "UP 1/3" (up, failed one check of three).
    pub status: String,
    /// Total sessions (connections) HAProxy has sent to this slot since it started.
    pub sessions: u64,
    /// Failed connects to this slot (`econ`): behind an L4 proxy a backend's refused connection
    /// reaches the client only as an EOF, so this is the proxy-side evidence of it.
    pub connect_errors: u64,
    /// `ip:port` the slot currently points at.
    pub addr: String,
    /// Requests sent over an already open (pooled) server connection (`reuse`; `mode http`).
    pub reuses: u64,
    /// Response errors (`eresp`): the server closed or reset before a complete response; with
    /// `mode http` each one is a 502 to the client.
    pub response_errors: u64,
    /// Idle connections HAProxy holds open to this slot for reuse right now (`srv_icur`).
    pub idle_conns: u64,
}

/// A running HAProxy; killed and reaped on drop.
pub struct Haproxy {
    child: Child,
    /// The frontend address the load clients connect to.
    pub front: SocketAddr,
    socket: PathBuf,
    log: PathBuf,
}

/// Finds the haproxy binary: `$ROLLING_HAPROXY`, then `$PATH`, then the sbin directories Debian
/// uses (they are not on a non-root user's `PATH`).
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ROLLING_HAPROXY") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
}

impl Haproxy {
    /// Starts HAProxy with the rendered template in `dir` and waits until both its admin socket and
    /// its frontend accept connections.
    pub fn start(bin: &Path, dir: &Path, mode: Mode, checks: Checks) -> io::Result<Haproxy> {
        let socket = dir.join("haproxy.sock");
        let mut last_err = None;
        for attempt in 0..BIND_ATTEMPTS {
            let front = free_loopback_port()?;
            let cfg = TEMPLATE
                .replace("{{SOCKET}}", &socket.display().to_string())
                .replace("{{MODE}}", mode.name())
                .replace("{{FRONT}}", &front.to_string())
                .replace("{{INTER}}", &format!("{}ms", checks.inter.as_millis()))
                .replace("{{FALL}}", &checks.fall.to_string())
                .replace("{{RISE}}", &checks.rise.to_string());
            let cfg_path = dir.join("haproxy.cfg");
            fs::write(&cfg_path, cfg)?;
            let log = dir.join(format!("haproxy-{attempt}.log"));
            let out = File::create(&log)?;
            let _ = fs::remove_file(&socket);
            // `-db`: stay in the foreground so the harness owns the process and its exit status.
            let child = Command::new(bin)
                .arg("-db")
                .arg("-f")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()?;
            let mut h = Haproxy {
                child,
                front,
                socket: socket.clone(),
                log,
            };
            match h.wait_started() {
                Ok(()) => return Ok(h),
                Err(e) => last_err = Some(e), // dropping `h` kills this attempt
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("haproxy did not start")))
    }

    /// Polls until the admin socket answers and the frontend accepts, or HAProxy exits.
    fn wait_started(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "haproxy exited with {status} during start-up; log:\n{}",
                    self.log_text()
                )));
            }
            let api_up = self.command("show info").is_ok();
            if api_up && TcpStream::connect_timeout(&self.front, API_TIMEOUT).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "haproxy not ready after {START_TIMEOUT:?}; log:\n{}",
                    self.log_text()
                )));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Sends one runtime-API command and returns HAProxy's answer (the API closes after answering).
    pub fn command(&self, cmd: &str) -> io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(API_TIMEOUT))?;
        s.set_write_timeout(Some(API_TIMEOUT))?;
        s.write_all(cmd.as_bytes())?;
        s.write_all(b"\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Reads `show stat` and returns the two slots of the backend.
    pub fn servers(&self) -> io::Result<Vec<ServerStat>> {
        let text = self.command("show stat")?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .ok_or_else(|| io::Error::other(format!("unexpected `show stat` output: {text:?}")))?;
        let cols = split_csv(header);
        let col = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .ok_or_else(|| io::Error::other(format!("`show stat` has no column {name}")))
        };
        let (px, sv, status, stot, econ, addr) = (
            col("pxname")?,
            col("svname")?,
            col("status")?,
            col("stot")?,
            col("econ")?,
            col("addr")?,
        );
        let (reuse, eresp, icur) = (col("reuse")?, col("eresp")?, col("srv_icur")?);
        let mut out = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let f = split_csv(line);
            let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
            let count = |i: usize| get(i).parse().unwrap_or(0);
            if get(px) == BACKEND && SLOTS.contains(&get(sv)) {
                out.push(ServerStat {
                    name: get(sv).to_string(),
                    status: get(status).to_string(),
                    sessions: count(stot),
                    connect_errors: count(econ),
                    addr: get(addr).to_string(),
                    reuses: count(reuse),
                    response_errors: count(eresp),
                    idle_conns: count(icur),
                });
            }
        }
        Ok(out)
    }

    /// The `show stat` line of one slot.
    pub fn server(&self, slot: &str) -> io::Result<ServerStat> {
        self.servers()?
            .into_iter()
            .find(|s| s.name == slot)
            .ok_or_else(|| io::Error::other(format!("slot {slot} missing from `show stat`")))
    }

    /// Points a slot (which must be in maintenance) at `127.0.0.1:port`, and checks that HAProxy took it.
    pub fn set_port(&self, slot: &str, port: u16) -> io::Result<()> {
        let answer = self.command(&format!(
            "set server {BACKEND}/{slot} addr 127.0.0.1 port {port}"
        ))?;
        let now = self.server(slot)?.addr;
        if now != format!("127.0.0.1:{port}") {
            return Err(io::Error::other(format!(
                "set addr on {slot} failed: {answer:?} (addr is {now})"
            )));
        }
        Ok(())
    }

    /// Lets a slot out of maintenance as a *not yet ready* endpoint.
    ///
    /// HAProxy puts a server leaving maintenance straight into UP, before any check; Kubernetes
    /// instead adds an endpoint only once its readiness probe passes. Forcing the health to DOWN in
    /// the same command line makes HAProxy wait for a real `/health` check (`rise`) before sending
    /// traffic, as kube-proxy would. The harness only calls this once the process has logged
    /// `event=listening`, so even a connection slipping in between the two commands is served.
    pub fn enable(&self, slot: &str) -> io::Result<()> {
        let answer = self.command(&format!(
            "set server {BACKEND}/{slot} state ready; set server {BACKEND}/{slot} health down"
        ))?;
        expect_silent(&answer, "enable")
    }

    /// Removes a slot from the balancer (the endpoint removal reaching kube-proxy). Established
    /// connections are left alone, as kube-proxy leaves them.
    pub fn maint(&self, slot: &str) -> io::Result<()> {
        let answer = self.command(&format!("set server {BACKEND}/{slot} state maint"))?;
        expect_silent(&answer, "maint")
    }

    /// Polls `show stat` until the slot's status is exactly `want`; returns how long that took.
    pub fn wait_status(&self, slot: &str, want: &str, timeout: Duration) -> io::Result<Duration> {
        let start = Instant::now();
        loop {
            let st = self.server(slot)?;
            if st.status == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= timeout {
                return Err(io::Error::other(format!(
                    "slot {slot} still {:?} (want {want:?}) after {timeout:?}; haproxy log:\n{}",
                    st.status,
                    self.log_text()
                )));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// HAProxy's own log (server state changes with reasons), for failure messages.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's path (kept with the run's other logs).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `set server` answers with an empty line on success and with a message otherwise.
fn expect_silent(answer: &str, what: &str) -> io::Result<()> {
    if answer.trim().is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "haproxy rejected {what}: {}",
            answer.trim()
        )))
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_loopback_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Splits one line of HAProxy's CSV, which double-quotes fields that contain commas.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().expect("never empty").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out
}
