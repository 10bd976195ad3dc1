//! Rolling-update harness: real server processes behind a real HAProxy, under continuous load.
//!
//! # Layout
//!
//! - `mod.rs` (this file): the run itself, [`RunConfig`] in, [`Report`] out, and the report format.
//! - `haproxy.rs`: starts HAProxy on loopback and drives it through its runtime API.
//! - `haproxy.cfg`: the HAProxy template (L4 `mode tcp` or L7 `mode http` with pooled server
//!   connections, `/health` checks, no retries, no redispatch).
//! - `pod.rs`: one server process (spawn on port 0, learn the port from its log, signal, reap).
//! - `load.rs`: the busy keep-alive, new-connection, idle keep-alive, slow-request, upload and
//!   download clients, and the rule for what a failure is (and what a connection closed between
//!   two requests is).
//! - `long.sh`: the long run (>= 10 restarts per run, both proxy modes, default and naive, a
//!   results table).
//!
//! The server is `examples/slow_work.rs`: lameduck's server with a pool of worker threads behind
//! `/sleep` and `/upload`, and large answers behind `/download` (streamed by a producer thread,
//! sized or chunked) and `/blob` (one shared allocation), so that slow work, request bodies and
//! response bodies are in flight at every SIGTERM.
//!
//! # The model
//!
//! Kubernetes, one replica, `maxSurge: 1, maxUnavailable: 0`, with kube-proxy as an L4 balancer
//! ([`Mode::Tcp`]) or an ingress controller keeping pooled connections to the pods
//! ([`Mode::Http`]). Each replacement:
//!
//! 1. starts the new process on a free port (`--port 0`, its port read from `event=listening`),
//!    points the free HAProxy slot at it and lets it in; waits until HAProxy's own `/health` check
//!    reports it UP (the readiness probe passing);
//! 2. sends SIGTERM to the old process and, *at the same time* in Kubernetes but seen by the
//!    balancer only after a propagation lag, removes its endpoint: the harness waits `lag` on a
//!    plain timer (this timer *is* the model of that lag, not a synchronisation guess) and then puts
//!    the old slot into maintenance;
//! 3. waits for the old process to exit by itself within the grace period (SIGKILL after it, like
//!    the kubelet), recording exit code and stop time, and reads its `event=announce` line (how
//!    many response bodies it was writing when SIGTERM came), its `event=drain` line (when DRAIN
//!    started, how many idle keep-alive connections it closed gently, how many answers were still
//!    pending, how many response bodies were still being written) and its `event=exit` line
//!    (requests finished after the signal, abandoned).
//!
//! Everything else is synchronised by reading state: the server's log line, HAProxy's `show stat`,
//! the child's exit status, the clients' counters. Every wait has a deadline.

#[path = "haproxy.rs"]
mod haproxy;
#[path = "load.rs"]
mod load;
#[path = "pod.rs"]
mod pod;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use haproxy::{Checks, Mode, find as find_haproxy};
use haproxy::{Haproxy, SLOTS};
pub use load::{Kind, Shape};
use load::{Load, LoadConfig, Outcome, PersistentCounts, Shot};
use pod::{Exit, Pod};

/// How long a new process may take to be reported UP by HAProxy after it was let in: a few check
/// intervals plus slack for a loaded machine.
const UP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the warm-up may take to reach its request count.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often progress counters are polled.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// Teardown: the last process gets SIGINT (no traffic is left, so the announce phase is skipped)
/// and this long to exit.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an exited process's last log lines may take to reach its log file (they are copied
/// by a reader thread).
const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// One harness run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Name in the report ("default", "naive", "http-default", ...).
    pub label: String,
    /// The server program: takes the flags of `lameduck serve` and, if there are slow, upload or
    /// download clients, serves `/sleep`, `/upload`, `/download` and `/blob`
    /// (`examples/slow_work.rs`).
    pub server: PathBuf,
    /// The haproxy binary.
    pub haproxy: PathBuf,
    /// How HAProxy balances: L4 (kube-proxy) or L7 with pooled server connections (ingress).
    pub proxy: Mode,
    /// Number of rolling replacements.
    pub restarts: usize,
    /// `--shutdown-delay` to pass; `None` runs lameduck with its default (5 s).
    pub shutdown_delay: Option<String>,
    /// `--grace-period` to pass; also the harness's SIGKILL deadline after SIGTERM.
    pub grace_period: Duration,
    /// Endpoint-removal lag between SIGTERM and the balancer taking the old slot out.
    pub lag: Duration,
    /// HAProxy's readiness checks.
    pub checks: Checks,
    /// Busy keep-alive clients (back to back on one connection).
    pub keepalive_clients: usize,
    /// New-connection-per-request clients.
    pub newconn_clients: usize,
    /// Idle keep-alive clients (one connection, a think time between requests).
    pub idle_clients: usize,
    /// Slow-request clients (`GET /sleep?ms=N`, back to back on one connection).
    pub slow_clients: usize,
    /// Upload clients (`POST /upload`, back to back on one connection).
    pub upload_clients: usize,
    /// Download clients (`GET /download` and `/blob`, back to back on one connection).
    pub download_clients: usize,
    /// The idle clients' think time range; its top must exceed the lame-duck delay, or no
    /// connection is idle when DRAIN starts (see `load.rs`).
    pub think: (Duration, Duration),
    /// Seed of the think times (printed in the report; `ROLLING_SEED` replays a run).
    pub seed: u64,
    /// The idle clients' aimed mode (a measurement of the idle-close race, see `load.rs`): shot
    /// offsets in microseconds from the expected DRAIN start (SIGTERM + the lame-duck delay).
    pub aim: Option<(i64, i64)>,
    /// Requests that must complete before the first replacement starts.
    pub warmup_requests: u64,
}

impl RunConfig {
    /// Whether slow requests can still be running on the old process when its DRAIN starts: the
    /// old process gets requests until the lag ends, and the slowest takes [`load::SLOW_MS`].
    pub fn slow_work_outlasts_window(&self) -> bool {
        self.slow_clients > 0 && self.delay() < self.lag + Duration::from_millis(load::SLOW_MS.1)
    }

    /// The lame-duck delay the processes run with (lameduck's default is 5 s).
    fn delay(&self) -> Duration {
        let Some(d) = self.shutdown_delay.as_deref() else {
            return Duration::from_secs(5);
        };
        let parse = |n: &str| n.parse::<u64>().unwrap_or(0);
        match d.strip_suffix("ms") {
            Some(ms) => Duration::from_millis(parse(ms)),
            None => Duration::from_secs(parse(d.strip_suffix('s').unwrap_or(d))),
        }
    }

    /// The arguments every process of the run gets (besides address, port and live file).
    fn server_args(&self) -> Vec<String> {
        let ms = self.grace_period.as_millis();
        let grace = if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        let mut args = vec!["--grace-period".to_string(), grace];
        if let Some(d) = &self.shutdown_delay {
            args.push("--shutdown-delay".to_string());
            args.push(d.clone());
        }
        args
    }
}

/// One rolling replacement.
#[derive(Clone, Debug)]
pub struct Restart {
    pub index: usize,
    pub old_pid: u32,
    pub old_port: u16,
    pub new_port: u16,
    /// From letting the new slot in until HAProxy reported it UP.
    pub new_up_after: Duration,
    /// When SIGTERM was sent, since the start of the load.
    pub sigterm_at: Duration,
    /// Connections HAProxy sent to the old process between SIGTERM and maintenance: the traffic
    /// that a server closing its listener at once would refuse. Must be > 0 or the run did not
    /// exercise the race.
    pub sessions_after_sigterm: u64,
    /// Of those, how many HAProxy failed to connect (the old process refused them).
    pub connect_errors_after_sigterm: u64,
    /// `mode http`: requests HAProxy sent to the old process over a pooled connection after SIGTERM.
    pub reuses_after_sigterm: u64,
    /// Response errors on the old process after SIGTERM (`mode http`: each one is a 502).
    pub response_errors_after_sigterm: u64,
    /// `mode http`: idle connections HAProxy held to the old process when the lag ended (just
    /// before maintenance), and just after HAProxy reported MAINT.
    pub pooled_at_maint: (u64, u64),
    pub exit: Exit,
    /// Response bodies the old process was writing when SIGTERM came (`writing=` of its
    /// `event=announce` line, or of its `event=drain` line when DRAIN started at the signal).
    pub writing_at_sigterm: Option<u64>,
    /// The old process's `event=drain` line, if it logged one.
    pub drain: Option<Drain>,
    /// The old process's `event=exit` line, if it logged one.
    pub exit_line: Option<ExitLine>,
}

/// What the old process said when DRAIN started.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    /// When, since the start of the load (from the line's millisecond timestamp).
    pub at: Option<Duration>,
    /// Open connections at that moment.
    pub open: u64,
    /// Of those, idle keep-alive connections: each is half-closed at once.
    pub idle: u64,
    /// Of those, connections in the middle of an exchange (a request body still arriving, an
    /// answer pending, a response body being written): the drain waits for them.
    pub active: u64,
    /// Of the active ones, those whose handler still owed an answer.
    pub pending: u64,
    /// Connections writing a response body (an answer given, not yet all on the wire): the
    /// downloads the drain waits for.
    pub writing: u64,
}

/// What the old process said when it exited.
#[derive(Clone, Copy, Debug)]
pub struct ExitLine {
    /// Requests answered after the signal (in ANNOUNCE and DRAIN).
    pub served_after_signal: u64,
    /// Answers given up at FORCE (must be 0: the drain timeout is far above the slowest request).
    pub abandoned: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Report {
    pub config: RunConfig,
    pub duration: Duration,
    /// Wall-clock time of the load's start (the zero of every `at` and `@`), to line the report
    /// up with the servers' log timestamps.
    pub t0_wall: SystemTime,
    pub keepalive: PersistentCounts,
    pub idle: PersistentCounts,
    pub slow: PersistentCounts,
    pub upload: PersistentCounts,
    pub download: PersistentCounts,
    /// The downloads answered in full, by shape.
    pub downloads: BTreeMap<Shape, u64>,
    pub ok_newconn: u64,
    pub failed: BTreeMap<Kind, u64>,
    /// The `non200` failures by status.
    pub statuses: BTreeMap<u16, u64>,
    /// `mode http`: HAProxy's log line for every request that went wrong (status >= 500 or an
    /// abort), in the `log-format` of `haproxy.cfg` (status, termination state, server, timers).
    pub proxy_errors: Vec<String>,
    pub failures: Vec<load::Failure>,
    /// The aimed mode's shots (empty otherwise).
    pub shots: Vec<Shot>,
    pub restarts: Vec<Restart>,
    /// Kept when the run saw something worth reading (logs of every process and of HAProxy).
    pub scratch: PathBuf,
}

/// Runs the rolling update and returns what it measured. `Err` means the harness itself could
/// not do its job (a process did not start, HAProxy did not report a server UP, ...).
pub fn run(cfg: &RunConfig) -> Result<Report, String> {
    make_room_in_conntrack();
    let scratch = scratch_dir(&cfg.label).map_err(|e| format!("scratch dir: {e}"))?;
    let result = run_in(cfg, &scratch);
    if let Err(e) = &result {
        return Err(format!("{e}\n(logs kept in {})", scratch.display()));
    }
    result
}

/// Where the kernel tracks connections (netfilter's conntrack, loaded here by podman's port
/// publishing, tests/podman.rs, which runs before these tests), every connection of a run stays
/// in its table for 120 s after it closes, and a run opens about 10,000 a second on loopback. At
/// the table's default size (262,144 on our machines) a long run fills it after about two
/// minutes, and a full table drops SYNs without a word: HAProxy's connects to a server time out
/// (`503 sC`), whoever the server. Measured: `nf_conntrack: table full, dropping packet` in the
/// kernel log at the moment of the only failures of the long `mode http` run. So the table is
/// made large enough for the runs (a few hundred MB at worst, on a test machine), once, when
/// conntrack is there and we may; otherwise the run goes on and says why it might fail.
fn make_room_in_conntrack() {
    const ENOUGH: u64 = 2 * 1024 * 1024;
    let path = "/proc/sys/net/netfilter/nf_conntrack_max";
    let Ok(current) = std::fs::read_to_string(path) else {
        return; // no connection tracking: nothing to fill
    };
    let current: u64 = current.trim().parse().unwrap_or(0);
    if current >= ENOUGH {
        return;
    }
    match std::fs::write(path, ENOUGH.to_string()) {
        Ok(()) => eprintln!(
            "rolling: raised nf_conntrack_max from {current} to {ENOUGH} (a full table drops SYNs)"
        ),
        Err(e) => eprintln!(
            "rolling: WARNING: nf_conntrack_max is {current} and cannot be raised ({e}); a long \
             run can fill the table, whose SYN drops show as HAProxy `503 sC` failures"
        ),
    }
}

fn run_in(cfg: &RunConfig, scratch: &Path) -> Result<Report, String> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let lb = Haproxy::start(&cfg.haproxy, scratch, cfg.proxy, cfg.checks)
        .map_err(err("start haproxy"))?;
    let args = cfg.server_args();

    let mut slot = 0;
    let mut current =
        Pod::spawn(&cfg.server, scratch, 0, &args).map_err(err("start first server"))?;
    bring_up(&lb, SLOTS[slot], &current).map_err(err("first server up"))?;

    let t0 = Instant::now();
    let t0_wall = SystemTime::now();
    let load = Load::start(
        lb.front,
        LoadConfig {
            keepalive: cfg.keepalive_clients,
            newconn: cfg.newconn_clients,
            idle: cfg.idle_clients,
            slow: cfg.slow_clients,
            upload: cfg.upload_clients,
            download: cfg.download_clients,
            think: cfg.think,
            seed: cfg.seed,
            aim: cfg.aim,
        },
        t0,
    );
    wait_requests(&load, cfg.warmup_requests, WARMUP_TIMEOUT)?;

    let mut restarts = Vec::new();
    for index in 1..=cfg.restarts {
        let new_slot = 1 - slot;
        let new = Pod::spawn(&cfg.server, scratch, index, &args).map_err(err("start server"))?;
        let new_up_after = bring_up(&lb, SLOTS[new_slot], &new).map_err(err("new server up"))?;

        let before = lb.server(SLOTS[slot]).map_err(err("show stat"))?;
        let term = Instant::now();
        let sigterm_at = t0.elapsed();
        current.signal(libc::SIGTERM).map_err(err("SIGTERM"))?;
        if cfg.aim.is_some() {
            load.aim(term + cfg.delay());
        }
        // The modelled endpoint-propagation lag (see the module doc): a timer by design. The old
        // process is polled meanwhile only so that an exit within the lag (naive mode) is timed exactly.
        let lag_end = term + cfg.lag;
        let early_exit = current
            .exit_before(term, lag_end)
            .map_err(err("wait for exit"))?;
        // The lag runs its full length even if the process is already gone: nobody told the balancer.
        if let Some(rest) = lag_end.checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
        let pooled_before = lb.server(SLOTS[slot]).map_err(err("show stat"))?.idle_conns;
        lb.maint(SLOTS[slot]).map_err(err("maint"))?;
        lb.wait_status(SLOTS[slot], "MAINT", UP_TIMEOUT)
            .map_err(err("old slot to MAINT"))?;
        let pooled_after = lb.server(SLOTS[slot]).map_err(err("show stat"))?.idle_conns;

        let exit = match early_exit {
            Some(exit) => exit,
            None => current
                .wait_exit(term, cfg.grace_period)
                .map_err(err("wait for exit"))?,
        };
        // The slot is in maintenance, so these counters no longer move: read them once, here.
        let after = lb.server(SLOTS[slot]).map_err(err("show stat"))?;
        let drain = current
            .log_line("event=exit", "event=drain", LOG_FLUSH_TIMEOUT)
            .map(|line| parse_drain(&line, t0_wall));
        let exit_line = current
            .log_line("event=exit", "event=exit", LOG_FLUSH_TIMEOUT)
            .map(|line| parse_exit(&line));
        let announce = current.log_line("event=exit", "event=announce", LOG_FLUSH_TIMEOUT);
        let writing_at_sigterm = match announce {
            Some(line) => Some(count(&line, "writing")),
            // With no lame-duck delay there is no announce line: DRAIN starts at the signal.
            None if cfg.delay().is_zero() => drain.map(|d| d.writing),
            None => None,
        };
        restarts.push(Restart {
            index,
            old_pid: current.pid,
            old_port: current.port,
            new_port: new.port,
            new_up_after,
            sigterm_at,
            sessions_after_sigterm: after.sessions.saturating_sub(before.sessions),
            connect_errors_after_sigterm: after
                .connect_errors
                .saturating_sub(before.connect_errors),
            reuses_after_sigterm: after.reuses.saturating_sub(before.reuses),
            response_errors_after_sigterm: after
                .response_errors
                .saturating_sub(before.response_errors),
            pooled_at_maint: (pooled_before, pooled_after),
            exit,
            writing_at_sigterm,
            drain,
            exit_line,
        });
        current = new;
        slot = new_slot;
    }

    let stats = load.stop();
    let duration = t0.elapsed();
    // Teardown, not measured: no client is left, so SIGINT (no announce phase) is enough.
    let _ = current.signal(libc::SIGINT);
    let _ = current.wait_exit(Instant::now(), TEARDOWN_TIMEOUT);
    let proxy_log = lb.log_path().to_path_buf();
    drop(lb);
    let proxy_errors = std::fs::read_to_string(proxy_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("status="))
        .map(str::to_string)
        .collect();

    let failures = std::mem::take(&mut *stats.failures.lock().unwrap_or_else(|p| p.into_inner()));
    let shots = std::mem::take(&mut *stats.shots.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Report {
        config: cfg.clone(),
        duration,
        t0_wall,
        keepalive: stats.keepalive.snapshot(),
        idle: stats.idle.snapshot(),
        slow: stats.slow.snapshot(),
        upload: stats.upload.snapshot(),
        download: stats.download.snapshot(),
        downloads: (Shape::ALL.iter())
            .map(|&shape| (shape, stats.downloads[shape as usize].load(Relaxed)))
            .collect(),
        ok_newconn: stats.ok_newconn.load(Relaxed),
        failed: Kind::ALL.iter().map(|&k| (k, stats.failed_of(k))).collect(),
        statuses: std::mem::take(&mut *stats.statuses.lock().unwrap_or_else(|p| p.into_inner())),
        proxy_errors,
        failures,
        shots,
        restarts,
        scratch: scratch.to_path_buf(),
    })
}

/// Points `slot` at the process, lets it in, and waits for HAProxy's checks to report it UP.
fn bring_up(lb: &Haproxy, slot: &str, pod: &Pod) -> std::io::Result<Duration> {
    lb.set_port(slot, pod.port)?;
    lb.enable(slot)?;
    lb.wait_status(slot, "UP", UP_TIMEOUT)
}

/// Polls the clients' counters until `n` requests are done.
fn wait_requests(load: &Load, n: u64, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while load.stats().requests() < n {
        if start.elapsed() >= timeout {
            return Err(format!(
                "only {} of {n} warm-up requests after {timeout:?}",
                load.stats().requests()
            ));
        }
        std::thread::sleep(POLL_EVERY);
    }
    Ok(())
}

/// The value of `name=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

/// The number in `name=` of a log line (0 if missing).
fn count(line: &str, name: &str) -> u64 {
    field(line, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Reads `open=`, `idle=`, `active=`, `pending=`, `writing=` and `ts=` from an `event=drain`
/// line; the timestamp becomes a time since the load's start (millisecond precision, like the
/// log).
fn parse_drain(line: &str, t0_wall: SystemTime) -> Drain {
    let at = field(line, "ts")
        .and_then(parse_rfc3339_millis)
        .and_then(|ts| ts.duration_since(t0_wall).ok());
    Drain {
        at,
        open: count(line, "open"),
        idle: count(line, "idle"),
        active: count(line, "active"),
        pending: count(line, "pending"),
        writing: count(line, "writing"),
    }
}

/// Reads `served_after_signal=` and `abandoned=` from an `event=exit` line.
fn parse_exit(line: &str) -> ExitLine {
    ExitLine {
        served_after_signal: count(line, "served_after_signal"),
        abandoned: count(line, "abandoned"),
    }
}

/// Parses the server's `2026-11-24T14:13:28.031Z` timestamps.
fn parse_rfc3339_millis(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = time.split_once('.')?;
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let millis: i64 = millis.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000) + millis;
    Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).ok()?))
}

fn scratch_dir(label: &str) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "lameduck-rolling-{label}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One failure as a report line: `t=…s client kind detail`.
fn write_failure(o: &mut String, f: &load::Failure) {
    let _ = writeln!(
        o,
        "  t={:>8.3}s {:<5} {:<7} {}",
        f.at.as_secs_f64(),
        f.client,
        f.kind.name(),
        f.detail
    );
}

impl Report {
    pub fn requests(&self) -> u64 {
        let ok: u64 = self.persistent().iter().map(|(_, p)| p.ok).sum();
        ok + self.ok_newconn + self.failures_total()
    }

    /// The counters of every client kind that reuses its connection, with its name.
    fn persistent(&self) -> [(&'static str, &PersistentCounts); 5] {
        [
            ("keep-alive", &self.keepalive),
            ("idle keep-alive", &self.idle),
            ("slow", &self.slow),
            ("upload", &self.upload),
            ("download", &self.download),
        ]
    }

    /// Reused connections found reset (not closed gently) by the idle check, all kinds.
    pub fn reset_before_reuse(&self) -> u64 {
        let kinds = self.persistent();
        kinds.iter().map(|(_, p)| p.reset_before_reuse).sum()
    }

    /// Answers still owed when the old processes' DRAIN started: work the drain waited for.
    pub fn pending_at_drain(&self) -> u64 {
        self.restarts
            .iter()
            .filter_map(|r| r.drain.map(|d| d.pending))
            .sum()
    }

    /// Response bodies being written when the old processes got SIGTERM: downloads in flight
    /// across the signal, which ANNOUNCE or DRAIN had to finish.
    pub fn writing_at_sigterm(&self) -> u64 {
        self.restarts
            .iter()
            .filter_map(|r| r.writing_at_sigterm)
            .sum()
    }

    /// Response bodies still being written when the old processes' DRAIN started: downloads
    /// the drain waited for.
    pub fn writing_at_drain(&self) -> u64 {
        self.restarts
            .iter()
            .filter_map(|r| r.drain.map(|d| d.writing))
            .sum()
    }

    /// Downloads answered in full of one shape.
    pub fn downloads_of(&self, shape: Shape) -> u64 {
        self.downloads.get(&shape).copied().unwrap_or(0)
    }

    /// Requests in flight (body arriving, answer pending, or body being written) when the old
    /// processes' DRAIN started: everything the drain waited for.
    pub fn active_at_drain(&self) -> u64 {
        self.restarts
            .iter()
            .filter_map(|r| r.drain.map(|d| d.active))
            .sum()
    }

    /// Requests the old processes answered after their SIGTERM, and answers they abandoned.
    pub fn after_signal(&self) -> (u64, u64) {
        let lines = self.restarts.iter().filter_map(|r| r.exit_line);
        lines.fold((0, 0), |(served, abandoned), e| {
            (served + e.served_after_signal, abandoned + e.abandoned)
        })
    }

    /// HAProxy's error log lines (`mode http`) counted by status and termination state, e.g.
    /// `502 SH--`.
    pub fn proxy_errors_by_cause(&self) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for line in &self.proxy_errors {
            let cause = format!(
                "{} {}",
                field(line, "status").unwrap_or("?"),
                field(line, "term").unwrap_or("?")
            );
            *by.entry(cause).or_default() += 1;
        }
        by
    }

    /// Idle keep-alive connections the old processes closed when their DRAIN started.
    pub fn idle_at_drain(&self) -> u64 {
        self.restarts
            .iter()
            .filter_map(|r| r.drain.map(|d| d.idle))
            .sum()
    }

    /// Requests written on a reused connection that then ended under them (all kinds).
    pub fn closed_under_request(&self) -> u64 {
        let kinds = self.persistent();
        kinds.iter().map(|(_, p)| p.closed_under_request).sum()
    }

    pub fn failures_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Every old process exited by itself with code 0.
    pub fn all_exits_clean(&self) -> bool {
        self.restarts
            .iter()
            .all(|r| r.exit.code == Some(0) && !r.exit.killed)
    }

    /// Deletes the scratch directory (call when the run is not worth keeping).
    pub fn discard_logs(&self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }

    /// Failures whose request started in `[from, to)`.
    fn failures_between(&self, from: Duration, to: Duration) -> usize {
        self.failures
            .iter()
            .filter(|f| f.at >= from && f.at < to)
            .count()
    }

    /// The human-readable report: totals, one row per replacement, the first failures.
    pub fn render(&self) -> String {
        let c = &self.config;
        let mut o = String::new();
        let delay = c.shutdown_delay.as_deref().unwrap_or("default (5s)");
        let server = c.server.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(
            o,
            "== rolling update [{}]: {server} behind HAProxy mode {}, {} restarts, --shutdown-delay {delay}, --grace-period {:?}, lag {:?}, checks inter {:?} fall {} rise {}, clients {} keep-alive + {} new-connection + {} idle keep-alive (think {:?}..{:?}) + {} slow ({}..{} ms) + {} upload ({}..{} bytes) + {} download ({}..{} bytes, or {}..{} paced at {} MiB/s one in {}, or the 8 MiB blob), seed {} ==",
            c.label,
            c.proxy.name(),
            c.restarts,
            c.grace_period,
            c.lag,
            c.checks.inter,
            c.checks.fall,
            c.checks.rise,
            c.keepalive_clients,
            c.newconn_clients,
            c.idle_clients,
            c.think.0,
            c.think.1,
            c.slow_clients,
            load::SLOW_MS.0,
            load::SLOW_MS.1,
            c.upload_clients,
            load::UPLOAD_BYTES.0,
            load::UPLOAD_BYTES.1,
            c.download_clients,
            load::DOWNLOAD_BYTES.0,
            load::DOWNLOAD_BYTES.1,
            load::PACED_BYTES.0,
            load::PACED_BYTES.1,
            load::DOWNLINK >> 20,
            load::PACED_ONE_IN,
            c.seed
        );
        let t0 = self
            .t0_wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let _ = writeln!(
            o,
            "requests: {} in {:.1}s (load start = unix {t0:.3}; keep-alive ok {} on {} connections, new-connection ok {}, idle keep-alive ok {} on {} connections, slow ok {} on {} connections, upload ok {} ({:.0} MiB) on {} connections, download ok {} ({}; {:.0} MiB) on {} connections)",
            self.requests(),
            self.duration.as_secs_f64(),
            self.keepalive.ok,
            self.keepalive.conns,
            self.ok_newconn,
            self.idle.ok,
            self.idle.conns,
            self.slow.ok,
            self.slow.conns,
            self.upload.ok,
            mib(self.upload.bytes),
            self.upload.conns,
            self.download.ok,
            (Shape::ALL.iter())
                .map(|&shape| format!("{} {}", shape.name(), self.downloads_of(shape)))
                .collect::<Vec<_>>()
                .join(", "),
            mib(self.download.bytes),
            self.download.conns
        );
        let kinds: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s} x{n}"))
            .collect();
        let _ = writeln!(
            o,
            "failures: {} ({}; non200 by status: {}); of these, closed under a written request on a reused connection: {}",
            self.failures_total(),
            kinds.join(", "),
            if statuses.is_empty() {
                "-".to_string()
            } else {
                statuses.join(", ")
            },
            self.closed_under_request(),
        );
        for (name, p) in self.persistent() {
            let _ = writeln!(
                o,
                "{name} connections, not failures: closed while idle, detected before reuse {}; reset while idle {}; unsolicited bytes {}; ended by Connection: close {}; reused after the idle check {}; closed under a written request (failures) {}",
                p.closed_before_reuse,
                p.reset_before_reuse,
                p.unsolicited,
                p.told_close,
                p.reused,
                p.closed_under_request
            );
        }
        let (served_after, abandoned) = self.after_signal();
        let _ = writeln!(
            o,
            "old processes: response bodies being written at SIGTERM {}; idle keep-alive connections closed by DRAIN {}; requests in flight at DRAIN (waited for) {}, of which answers pending {} and response bodies being written {}; requests answered after SIGTERM {}; abandoned {}",
            self.writing_at_sigterm(),
            self.idle_at_drain(),
            self.active_at_drain(),
            self.pending_at_drain(),
            self.writing_at_drain(),
            served_after,
            abandoned
        );
        if c.proxy == Mode::Http {
            let causes: Vec<String> = self
                .proxy_errors_by_cause()
                .iter()
                .map(|(cause, n)| format!("{cause} x{n}"))
                .collect();
            let _ = writeln!(
                o,
                "HAProxy error log (status termination-state): {}",
                if causes.is_empty() {
                    "none".to_string()
                } else {
                    causes.join(", ")
                }
            );
        }
        let _ = writeln!(
            o,
            "{:>3} | {:>7} | {:>13} | {:>10} | {:>9} | {:>15} | {:>17} | {:>7} | {:>16} | {:>15} | {:>9} | {:>32} | {:>17} | {:>9} | {:>9} | {:>8}",
            "#",
            "old pid",
            "ports old>new",
            "new UP in",
            "SIGTERM @",
            "writing at TERM",
            "to old after TERM",
            "refused",
            "reused / resp err",
            "pooled at MAINT",
            "DRAIN @",
            "idle/active/pending/writing/open",
            "served after TERM",
            "exit code",
            "stop time",
            "failures"
        );
        for (i, r) in self.restarts.iter().enumerate() {
            let until = self
                .restarts
                .get(i + 1)
                .map_or(Duration::MAX, |n| n.sigterm_at);
            let (drain_at, counts) = match r.drain {
                Some(d) => (
                    d.at.map_or("?".to_string(), |a| format!("{:.3}s", a.as_secs_f64())),
                    format!(
                        "{}/{}/{}/{}/{}",
                        d.idle, d.active, d.pending, d.writing, d.open
                    ),
                ),
                None => ("-".to_string(), "-".to_string()),
            };
            let _ = writeln!(
                o,
                "{:>3} | {:>7} | {:>13} | {:>9.2}s | {:>8.2}s | {:>15} | {:>17} | {:>7} | {:>16} | {:>15} | {:>9} | {:>32} | {:>17} | {:>9} | {:>8.2}s | {:>8}",
                r.index,
                r.old_pid,
                format!("{}>{}", r.old_port, r.new_port),
                r.new_up_after.as_secs_f64(),
                r.sigterm_at.as_secs_f64(),
                r.writing_at_sigterm
                    .map_or("-".to_string(), |w| w.to_string()),
                r.sessions_after_sigterm,
                r.connect_errors_after_sigterm,
                format!(
                    "{} / {}",
                    r.reuses_after_sigterm, r.response_errors_after_sigterm
                ),
                format!("{} > {}", r.pooled_at_maint.0, r.pooled_at_maint.1),
                drain_at,
                counts,
                r.exit_line
                    .map_or("-".to_string(), |e| e.served_after_signal.to_string()),
                r.exit.describe(),
                r.exit.after.as_secs_f64(),
                self.failures_between(r.sigterm_at, until)
            );
        }
        if (self.failures.len() as u64) < self.failures_total() {
            let _ = writeln!(
                o,
                "(the failures column counts only the {} failures recorded in full)",
                self.failures.len()
            );
        }
        if !self.proxy_errors.is_empty() {
            let _ = writeln!(o, "first HAProxy error log lines:");
            for line in self.proxy_errors.iter().take(15) {
                let _ = writeln!(o, "  {line}");
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(o, "first failures (t = request start since load start):");
            for f in self.failures.iter().take(15) {
                write_failure(&mut o, f);
            }
        }
        let under: Vec<_> = self
            .failures
            .iter()
            .filter(|f| f.closed_under_request)
            .collect();
        if !under.is_empty() {
            const SHOWN: usize = 40;
            let _ = writeln!(
                o,
                "closed under a written request ({} recorded{}):",
                under.len(),
                if under.len() > SHOWN {
                    format!(", first {SHOWN} shown")
                } else {
                    String::new()
                }
            );
            for f in under.into_iter().take(SHOWN) {
                write_failure(&mut o, f);
            }
        }
        if !self.shots.is_empty() {
            o.push_str(&self.render_shots());
        }
        let _ = writeln!(
            o,
            "logs: {} (deleted when the test passes unless ROLLING_KEEP_LOGS is set)",
            self.scratch.display()
        );
        o
    }

    /// Shots that met a lame-duck connection: answered before DRAIN with `Connection: close`,
    /// found closed before reuse, or closed under the request. Returns (those, of them lost).
    pub fn shots_on_lame_duck(&self) -> (usize, usize) {
        let on = self
            .shots
            .iter()
            .filter(|s| {
                matches!(
                    s.outcome,
                    Outcome::ReusedToldClose
                        | Outcome::ClosedBeforeReuse
                        | Outcome::ClosedUnderRequest
                        | Outcome::BadBeforeReuse
                        | Outcome::ReusedFailed
                )
            })
            .count();
        let lost = self
            .shots
            .iter()
            .filter(|s| s.outcome == Outcome::ClosedUnderRequest)
            .count();
        (on, lost)
    }

    /// The aimed mode's histogram: outcome counts per offset bin, and the window estimate.
    fn render_shots(&self) -> String {
        let mut o = String::new();
        let Some((lo, hi)) = self.config.aim else {
            return o;
        };
        const BINS: i64 = 20;
        let width = ((hi - lo) / BINS).max(1);
        let _ = writeln!(
            o,
            "aimed shots: offset of the idle check from the expected DRAIN start (SIGTERM + delay), {width}us bins"
        );
        let _ = writeln!(
            o,
            "{:>17} | {:>13} | {:>13} | {:>12} | {:>10} | {:>9}",
            "offset (us)",
            "served (close)",
            "closed before",
            "LOST (under)",
            "other bad",
            "excluded"
        );
        let mut bins: BTreeMap<i64, [usize; 5]> = BTreeMap::new();
        for shot in &self.shots {
            let bin = (shot.offset_us - lo).div_euclid(width);
            let col = match shot.outcome {
                Outcome::ReusedToldClose => 0,
                Outcome::ClosedBeforeReuse => 1,
                Outcome::ClosedUnderRequest => 2,
                Outcome::BadBeforeReuse | Outcome::ReusedFailed => 3,
                Outcome::Fresh | Outcome::ReusedKept => 4,
            };
            bins.entry(bin).or_default()[col] += 1;
        }
        for (bin, c) in &bins {
            let from = lo + bin * width;
            let _ = writeln!(
                o,
                "{:>17} | {:>14} | {:>13} | {:>12} | {:>10} | {:>9}",
                format!("[{from}, {})", from + width),
                c[0],
                c[1],
                c[2],
                c[3],
                c[4]
            );
        }
        let _ = writeln!(
            o,
            "per replacement (us from the expected DRAIN start; server DRAIN line, ms resolution): last served, first found closed, lost [first..last] with close-after-write [min..max]"
        );
        for r in &self.restarts {
            let shots: Vec<&Shot> = self
                .shots
                .iter()
                .filter(|s| s.restart == r.index as u64)
                .collect();
            let expected = r.sigterm_at + self.config.delay();
            let drain = r.drain.and_then(|d| d.at).map_or("?".to_string(), |at| {
                let us = at.as_micros() as i64 - expected.as_micros() as i64;
                format!("{us:+}")
            });
            let served = shots
                .iter()
                .filter(|s| s.outcome == Outcome::ReusedToldClose)
                .map(|s| s.offset_us)
                .max();
            let closed = shots
                .iter()
                .filter(|s| s.outcome == Outcome::ClosedBeforeReuse)
                .map(|s| s.offset_us)
                .min();
            let lost: Vec<&&Shot> = shots
                .iter()
                .filter(|s| s.outcome == Outcome::ClosedUnderRequest)
                .collect();
            let range = |v: Vec<i64>| match (v.iter().min(), v.iter().max()) {
                (Some(a), Some(b)) => format!("[{a}..{b}]"),
                _ => "-".to_string(),
            };
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                o,
                "  #{:<2} DRAIN logged at {drain}us: last served {}, first closed {}, lost {} {} close-after-write {}",
                r.index,
                show(served),
                show(closed),
                lost.len(),
                range(lost.iter().map(|s| s.offset_us).collect()),
                range(
                    lost.iter()
                        .filter_map(|s| s.closed_after_write_us)
                        .map(|u| u as i64)
                        .collect()
                ),
            );
        }
        let (on, lost) = self.shots_on_lame_duck();
        let span = hi - lo;
        let _ = writeln!(
            o,
            "{} shots, {on} on a lame-duck connection, {lost} lost: window ~ {lost}/{on} x {span}us = {:.0}us",
            self.shots.len(),
            if on == 0 {
                0.0
            } else {
                lost as f64 / on as f64 * span as f64
            }
        );
        o
    }

    /// One machine-readable line for `long.sh`: `key=value` pairs, lists joined by commas
    /// (`-` for an empty one).
    pub fn result_line(&self) -> String {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(",")
            }
        };
        let kinds: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        let downloads: Vec<String> = (Shape::ALL.iter())
            .map(|&shape| format!("download_{}={}", shape.name(), self.downloads_of(shape)))
            .collect();
        let statuses = self.statuses.iter().map(|(s, n)| format!("{s}:{n}"));
        let proxy_errors = (self.proxy_errors_by_cause().into_iter())
            .map(|(cause, n)| format!("{}:{n}", cause.replace(' ', "_")));
        let exits = (self.restarts.iter()).map(|r| r.exit.describe().replace(' ', "_"));
        let stops = (self.restarts.iter()).map(|r| format!("{:.2}", r.exit.after.as_secs_f64()));
        let closed_before_reuse: u64 = (self.persistent().iter())
            .map(|(_, p)| p.closed_before_reuse)
            .sum();
        let reuses: u64 = self.restarts.iter().map(|r| r.reuses_after_sigterm).sum();
        let pooled: u64 = self.restarts.iter().map(|r| r.pooled_at_maint.0).sum();
        let (served_after, abandoned) = self.after_signal();
        format!(
            "RESULT label={} proxy={} restarts={} shutdown_delay={} lag={:?} requests={} keepalive_ok={} newconn_ok={} idle_ok={} slow_ok={} upload_ok={} upload_mib={:.0} download_ok={} {} download_mib={:.0} failures={} {} statuses={} proxy_errors={} closed_under_request={} closed_before_reuse={} reset_before_reuse={} idle_at_drain={} active_at_drain={} pending_at_drain={} writing_at_sigterm={} writing_at_drain={} served_after_signal={served_after} abandoned={abandoned} reused_after_sigterm={reuses} pooled_at_maint={pooled} exit_codes={} stop_times_s={} duration_s={:.1} seed={}",
            self.config.label,
            self.config.proxy.name(),
            self.restarts.len(),
            self.config.shutdown_delay.as_deref().unwrap_or("default"),
            self.config.lag,
            self.requests(),
            self.keepalive.ok,
            self.ok_newconn,
            self.idle.ok,
            self.slow.ok,
            self.upload.ok,
            mib(self.upload.bytes),
            self.download.ok,
            downloads.join(" "),
            mib(self.download.bytes),
            self.failures_total(),
            kinds.join(" "),
            list(statuses.collect()),
            list(proxy_errors.collect()),
            self.closed_under_request(),
            closed_before_reuse,
            self.reset_before_reuse(),
            self.idle_at_drain(),
            self.active_at_drain(),
            self.pending_at_drain(),
            self.writing_at_sigterm(),
            self.writing_at_drain(),
            list(exits.collect()),
            list(stops.collect()),
            self.duration.as_secs_f64(),
            self.config.seed
        )
    }
}
