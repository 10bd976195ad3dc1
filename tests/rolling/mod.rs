//! Rolling-update harness: real lameduck processes behind a real HAProxy, under continuous load.
//!
//! # Layout
//!
//! - `mod.rs` (this file): the run itself, [`RunConfig`] in, [`Report`] out, and the report format.
//! - `haproxy.rs`: starts HAProxy on loopback and drives it through its runtime API.
//! - `haproxy.cfg`: the HAProxy template (L4 `mode tcp`, `/health` checks, no retries, no redispatch).
//! - `pod.rs`: one lameduck process (spawn on port 0, learn the port from its log, signal, reap).
//! - `load.rs`: the keep-alive and new-connection clients, and the rule for what a failure is.
//! - `long.sh`: the long run (>= 10 restarts per mode, both modes, a results table).
//!
//! # The model
//!
//! Kubernetes, one replica, `maxSurge: 1, maxUnavailable: 0`, kube-proxy as an L4 balancer. Each
//! replacement:
//!
//! 1. starts the new process on a free port (`--port 0`, its port read from `event=listening`),
//!    points the free HAProxy slot at it and lets it in; waits until HAProxy's own `/health` check
//!    reports it UP (the readiness probe passing);
//! 2. sends SIGTERM to the old process and, *at the same time* in Kubernetes but seen by the
//!    balancer only after a propagation lag, removes its endpoint: the harness waits `lag` on a
//!    plain timer (this timer *is* the model of that lag, not a synchronisation guess) and then puts
//!    the old slot into maintenance;
//! 3. waits for the old process to exit by itself within the grace period (SIGKILL after it, like
//!    the kubelet), recording exit code and stop time.
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
use std::time::{Duration, Instant};

pub use haproxy::{Checks, find as find_haproxy};
use haproxy::{Haproxy, SLOTS};
pub use load::Kind;
use load::Load;
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

/// One harness run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Name in the report ("default", "naive").
    pub label: String,
    /// The lameduck binary.
    pub lameduck: PathBuf,
    /// The haproxy binary.
    pub haproxy: PathBuf,
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
    pub keepalive_clients: usize,
    pub newconn_clients: usize,
    /// Requests that must complete before the first replacement starts.
    pub warmup_requests: u64,
}

impl RunConfig {
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
    pub exit: Exit,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Report {
    pub config: RunConfig,
    pub duration: Duration,
    pub ok_keepalive: u64,
    pub ok_newconn: u64,
    pub failed: BTreeMap<Kind, u64>,
    pub keepalive_conns: u64,
    pub idle_closed: u64,
    pub idle_reset: u64,
    pub unsolicited: u64,
    pub failures: Vec<load::Failure>,
    pub restarts: Vec<Restart>,
    /// Kept when the run saw something worth reading (logs of every process and of HAProxy).
    pub scratch: PathBuf,
}

/// Runs the rolling update and returns what it measured. `Err` means the harness itself could
/// not do its job (a process did not start, HAProxy did not report a server UP, ...).
pub fn run(cfg: &RunConfig) -> Result<Report, String> {
    let scratch = scratch_dir(&cfg.label).map_err(|e| format!("scratch dir: {e}"))?;
    let result = run_in(cfg, &scratch);
    if let Err(e) = &result {
        return Err(format!("{e}\n(logs kept in {})", scratch.display()));
    }
    result
}

fn run_in(cfg: &RunConfig, scratch: &Path) -> Result<Report, String> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let lb = Haproxy::start(&cfg.haproxy, scratch, cfg.checks).map_err(err("start haproxy"))?;
    let args = cfg.server_args();

    let mut slot = 0;
    let mut current =
        Pod::spawn(&cfg.lameduck, scratch, 0, &args).map_err(err("start first lameduck"))?;
    bring_up(&lb, SLOTS[slot], &current).map_err(err("first lameduck up"))?;

    let t0 = Instant::now();
    let load = Load::start(lb.front, cfg.keepalive_clients, cfg.newconn_clients, t0);
    wait_requests(&load, cfg.warmup_requests, WARMUP_TIMEOUT)?;

    let mut restarts = Vec::new();
    for index in 1..=cfg.restarts {
        let new_slot = 1 - slot;
        let new =
            Pod::spawn(&cfg.lameduck, scratch, index, &args).map_err(err("start lameduck"))?;
        let new_up_after = bring_up(&lb, SLOTS[new_slot], &new).map_err(err("new lameduck up"))?;

        let before = lb.server(SLOTS[slot]).map_err(err("show stat"))?;
        let term = Instant::now();
        let sigterm_at = t0.elapsed();
        current.signal(libc::SIGTERM).map_err(err("SIGTERM"))?;
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
        lb.maint(SLOTS[slot]).map_err(err("maint"))?;
        lb.wait_status(SLOTS[slot], "MAINT", UP_TIMEOUT)
            .map_err(err("old slot to MAINT"))?;

        let exit = match early_exit {
            Some(exit) => exit,
            None => current
                .wait_exit(term, cfg.grace_period)
                .map_err(err("wait for exit"))?,
        };
        // The slot is in maintenance, so these counters no longer move: read them once, here.
        let after = lb.server(SLOTS[slot]).map_err(err("show stat"))?;
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
            exit,
        });
        current = new;
        slot = new_slot;
    }

    let stats = load.stop();
    let duration = t0.elapsed();
    // Teardown, not measured: no client is left, so SIGINT (no announce phase) is enough.
    let _ = current.signal(libc::SIGINT);
    let _ = current.wait_exit(Instant::now(), TEARDOWN_TIMEOUT);
    drop(lb);

    let failures = std::mem::take(&mut *stats.failures.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Report {
        config: cfg.clone(),
        duration,
        ok_keepalive: stats.ok_keepalive.load(Relaxed),
        ok_newconn: stats.ok_newconn.load(Relaxed),
        failed: Kind::ALL.iter().map(|&k| (k, stats.failed_of(k))).collect(),
        keepalive_conns: stats.keepalive_conns.load(Relaxed),
        idle_closed: stats.idle_closed.load(Relaxed),
        idle_reset: stats.idle_reset.load(Relaxed),
        unsolicited: stats.unsolicited.load(Relaxed),
        failures,
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

impl Report {
    pub fn requests(&self) -> u64 {
        self.ok_keepalive + self.ok_newconn + self.failures_total()
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
        let _ = writeln!(
            o,
            "== rolling update [{}]: {} restarts, --shutdown-delay {delay}, --grace-period {:?}, lag {:?}, checks inter {:?} fall {} rise {}, clients {} keep-alive + {} new-connection ==",
            c.label,
            c.restarts,
            c.grace_period,
            c.lag,
            c.checks.inter,
            c.checks.fall,
            c.checks.rise,
            c.keepalive_clients,
            c.newconn_clients
        );
        let _ = writeln!(
            o,
            "requests: {} in {:.1}s (keep-alive ok {} on {} connections, new-connection ok {})",
            self.requests(),
            self.duration.as_secs_f64(),
            self.ok_keepalive,
            self.keepalive_conns,
            self.ok_newconn
        );
        let kinds: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let _ = writeln!(
            o,
            "failures: {} ({})",
            self.failures_total(),
            kinds.join(", ")
        );
        let _ = writeln!(
            o,
            "not failures: idle keep-alive connections closed by the server before reuse {}, reset while idle {}, unsolicited bytes {}",
            self.idle_closed, self.idle_reset, self.unsolicited
        );
        let _ = writeln!(
            o,
            "{:>3} | {:>7} | {:>13} | {:>10} | {:>9} | {:>23} | {:>14} | {:>18} | {:>9} | {:>8}",
            "#",
            "old pid",
            "ports old>new",
            "new UP in",
            "SIGTERM @",
            "conns to old after TERM",
            "refused by old",
            "exit code",
            "stop time",
            "failures"
        );
        for (i, r) in self.restarts.iter().enumerate() {
            let until = self
                .restarts
                .get(i + 1)
                .map_or(Duration::MAX, |n| n.sigterm_at);
            let _ = writeln!(
                o,
                "{:>3} | {:>7} | {:>13} | {:>9.2}s | {:>8.2}s | {:>23} | {:>14} | {:>18} | {:>8.2}s | {:>8}",
                r.index,
                r.old_pid,
                format!("{}>{}", r.old_port, r.new_port),
                r.new_up_after.as_secs_f64(),
                r.sigterm_at.as_secs_f64(),
                r.sessions_after_sigterm,
                r.connect_errors_after_sigterm,
                r.exit.describe(),
                r.exit.after.as_secs_f64(),
                self.failures_between(r.sigterm_at, until)
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(o, "first failures (t = request start since load start):");
            for f in self.failures.iter().take(15) {
                let _ = writeln!(
                    o,
                    "  t={:>8.3}s {:<5} {:<7} {}",
                    f.at.as_secs_f64(),
                    f.client,
                    f.kind.name(),
                    f.detail
                );
            }
        }
        let _ = writeln!(
            o,
            "logs: {} (deleted when the test passes unless ROLLING_KEEP_LOGS is set)",
            self.scratch.display()
        );
        o
    }

    /// One machine-readable line for `long.sh`.
    pub fn result_line(&self) -> String {
        let kinds: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        let exits: Vec<String> = self
            .restarts
            .iter()
            .map(|r| r.exit.describe().replace(' ', "_"))
            .collect();
        let stops: Vec<String> = self
            .restarts
            .iter()
            .map(|r| format!("{:.2}", r.exit.after.as_secs_f64()))
            .collect();
        format!(
            "RESULT label={} restarts={} shutdown_delay={} lag={:?} requests={} keepalive_ok={} newconn_ok={} failures={} {} exit_codes={} stop_times_s={} duration_s={:.1}",
            self.config.label,
            self.restarts.len(),
            self.config.shutdown_delay.as_deref().unwrap_or("default"),
            self.config.lag,
            self.requests(),
            self.ok_keepalive,
            self.ok_newconn,
            self.failures_total(),
            kinds.join(" "),
            exits.join(","),
            stops.join(","),
            self.duration.as_secs_f64()
        )
    }
}
