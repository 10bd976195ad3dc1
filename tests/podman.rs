//! The image, built and run by a real container engine: podman with runc.
//!
//! The Dockerfile is what most users deploy, so these tests build its runtime stage with podman,
//! exactly as written: the Containerfile here *is* the Dockerfile's last stage, read from the
//! file. Only its build stage is replaced, because its `rust:` base image cannot be pulled here:
//! `--build-context build=DIR` hands the runtime stage's `COPY --from=build` a directory laid out
//! as the build stage lays out `/out/rootfs` (tests/deploy/image.rs), holding the binary that
//! deploy/build-static.sh (the build stage's script, as tests/deploy.rs checks) built from the
//! `.dockerignore`d context. Nothing is pulled (`--pull=never`).
//!
//! Then, over real sockets through a published port:
//! - the container runs as deploy/kubernetes.yaml runs it (uid 65532, read-only root, `/tmp` an
//!   in-memory volume and the only writable place of the image), and serves `/` and `/health`;
//! - the image's HEALTHCHECK (`podman healthcheck run`) is healthy while the loop runs,
//!   unhealthy once the process has been stopped (SIGSTOP) for longer than the probe's max age,
//!   healthy again after SIGCONT; SIGUSR2 (an in-place upgrade) is refused by PID 1;
//! - `podman stop` of a busy container: the lame-duck 503, every connection answered or closed
//!   gently until the listener closes, the drain, exit 0; a second stop signal exits 1 at once;
//! - `podman kube play` of the manifest starts the pod with its args, probes and security
//!   context; stopped with the manifest's grace period it drains to exit 0, and `podman kube
//!   down` removes it.
//!
//! Facts of the machines this runs on (root, no systemd as PID 1, cgroups v1): crun refuses the
//! hybrid cgroup layout, so `--runtime runc`; setting rlimits in a container is not permitted, so
//! .ci/run writes `default_ulimits = []` into containers.conf and containers get `--ulimit host`;
//! HEALTHCHECK timers need systemd (podman logs a harmless error), so checks run on demand with
//! `podman healthcheck run`.
//!
//! Without root or podman the tests print why they skip; with `CI` set (as .ci/run does) that is a
//! failure. The tests share one image, built once, and take turns (podman's state is global to
//! the machine and the stop tests are timing-sensitive on two cores); every container, pod and
//! volume is named after this process and removed even when a test fails. Every podman command
//! has a hard timeout, so a hang fails instead of hanging CI.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

#[path = "deploy/image.rs"]
mod image;
#[path = "deploy/manifest.rs"]
mod manifest;
mod support;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use manifest::{
    DEFAULT_LIVE_FILE, DEFAULT_MAX_AGE, DEFAULT_SHUTDOWN_DELAY, IMAGE_ENTRIES, IMAGE_ROOT,
    MANIFEST, Manifest, dockerfile_final_stage, dockerfile_final_stage_source,
    dockerfile_instruction, exec_form, flag, parse_duration, quantity, repo_path,
};
use support::{
    PROMPT, TempDir, eventually_within as eventually, field, get, read_response,
    receive_until_close, run_command, skip_or_fail,
};

/// The bound for one podman command that should finish promptly (run, inspect, kill, exec, a
/// build from local files). Generous: starting a container on a busy two-core machine takes a
/// second or two, and the bound only exists so that a hang fails.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The tests

/// The container as the manifest runs it, its HEALTHCHECK, and a refused in-place upgrade.
#[test]
fn runs_as_the_manifest_runs_it_and_its_healthcheck_sees_a_wedged_loop() {
    let Some((image, _turn)) = setup() else {
        return;
    };
    let m = Manifest::load();
    let c = Container::run(image, "probe", &run_like_the_manifest(&m));

    // The image holds the binary and /tmp, nothing else, with the modes the Dockerfile gives
    // them: the files of the image podman built, not of the directory we gave it.
    let (listed, _) = podman_ok(&["image", "mount", image]);
    let root = PathBuf::from(&listed);
    let mut entries: Vec<(String, u32, u32)> = std::fs::read_dir(&root)
        .expect("read the image's root")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let meta = std::fs::symlink_metadata(entry.path()).expect("stat");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, mode_bits(&meta), meta_uid(&meta))
        })
        .collect();
    entries.sort();
    let _ = podman(&["image", "unmount", image]);
    let expected: Vec<(String, u32, u32)> = IMAGE_ENTRIES
        .iter()
        .map(|e| (e.path.to_string(), e.mode, 0))
        .collect();
    assert_eq!(
        entries, expected,
        "(path, mode, owner) of the image's files"
    );

    // uid and gid 65532 (real, effective, saved, fs), as runAsUser/runAsGroup say.
    let pid = c.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    for (key, id) in [("Uid:", m.run_as_user()), ("Gid:", m.run_as_group())] {
        let line = status.lines().find(|l| l.starts_with(key)).expect(key);
        assert!(
            line.split_whitespace().skip(1).all(|v| v == id.to_string()),
            "{line}"
        );
    }
    // The root is mounted read-only, /tmp is a writable tmpfs, and the liveness file is there.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let mount = |point: &str| -> (String, String) {
        // "ID PARENT DEV ROOT POINT OPTIONS ... - FSTYPE SOURCE SUPER_OPTIONS"
        let line = mounts
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no mount at {point}:\n{mounts}"));
        let options = line.split(' ').nth(5).expect("options").to_string();
        let (_, fs) = line.split_once(" - ").expect("separator");
        (options, fs.split(' ').next().expect("fstype").to_string())
    };
    assert!(mount("/").0.starts_with("ro,"), "root: {:?}", mount("/"));
    let (options, fs) = mount("/tmp");
    assert!(
        options.starts_with("rw,") && fs == "tmpfs",
        "/tmp: {options} {fs}"
    );
    // Nothing else of the image's file system is writable. What every container gets from its
    // runtime (Kubernetes' too) is left out: /dev, /proc, /sys, and the files the engine writes
    // for it (/etc/hosts, /etc/hostname, /etc/resolv.conf, /run/.containerenv).
    let runtime_owned = |point: &str| {
        ["/dev", "/proc", "/sys"]
            .iter()
            .any(|top| point == *top || point.starts_with(&format!("{top}/")))
            || [
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/run/.containerenv",
            ]
            .contains(&point)
    };
    let writable: Vec<&str> = mounts
        .lines()
        .filter(|l| l.split(' ').nth(5).is_some_and(|o| o.starts_with("rw")))
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|point| !runtime_owned(point))
        .collect();
    assert_eq!(writable, ["/tmp"], "writable mounts:\n{mounts}");
    let live_file = c.file(DEFAULT_LIVE_FILE);
    assert_eq!(
        meta_uid(&std::fs::metadata(&live_file).expect("liveness file")),
        m.run_as_user()
    );

    // Served through the published port.
    let hello = c.get("/").expect("GET /");
    assert_eq!(
        (hello.status, &hello.body[..]),
        (200, &b"Hello, World!"[..]),
        "{hello:?}"
    );
    assert_eq!(c.get("/health").expect("GET /health").status, 200);

    // The image's HEALTHCHECK, `lameduck live` with its default --max-age.
    let healthcheck = dockerfile_instruction(&dockerfile_final_stage(), "HEALTHCHECK");
    let (_, probe) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    let max_age =
        flag(&exec_form(probe), "--max-age").map_or(DEFAULT_MAX_AGE, |v| parse_duration(&v));
    assert!(c.healthy(), "healthy while the loop runs");
    // A wedged loop: the process exists but does nothing, so its liveness file goes stale.
    c.kill("SIGSTOP");
    let touched = std::fs::metadata(&live_file)
        .and_then(|meta| meta.modified())
        .expect("mtime of the liveness file");
    assert!(
        c.healthy(),
        "stopped, but the file is younger than {max_age:?}: still live"
    );
    // Waiting on purpose for time to pass: the probe can only turn unhealthy once the file is
    // older than max-age, and nothing announces that moment.
    let stale_at = touched + max_age;
    if let Ok(left) = stale_at.duration_since(SystemTime::now()) {
        thread::sleep(left);
    }
    eventually(PROMPT, "unhealthy once the file is stale", || !c.healthy());
    c.kill("SIGCONT");
    eventually(PROMPT, "healthy again after SIGCONT", || c.healthy());
    assert_eq!(c.get("/").expect("GET / after SIGCONT").status, 200);

    // SIGUSR2 asks for an in-place upgrade; PID 1's exit would end the container, new process
    // included, so it refuses and goes on serving.
    c.kill("SIGUSR2");
    let refused = c.wait_log("event=upgrade_refused", PROMPT);
    assert_eq!(field(&refused, "reason"), Some("pid1"), "{refused}");
    assert_eq!(c.get("/").expect("GET / after SIGUSR2").status, 200);
    assert_eq!(c.pid(), pid, "the same process serves");
}

/// `podman stop` of a busy container: keep-alive clients and new connections see the lame-duck
/// phase and a gentle close; the container exits 0 after the drain.
#[test]
fn podman_stop_of_a_busy_container_announces_drains_and_exits_0() {
    let Some((image, _turn)) = setup() else {
        return;
    };
    let m = Manifest::load();
    let c = Container::run(image, "stop", &run_like_the_manifest(&m));
    // The image's CMD is `serve` with the defaults.
    let delay = DEFAULT_SHUTDOWN_DELAY;

    // Four keep-alive clients, each with one request answered and the connection kept.
    let mut kept: Vec<BufReader<TcpStream>> = (0..4)
        .map(|_| {
            let mut stream = connect(c.addr).expect("connect");
            stream.write_all(&get("/")).expect("write");
            let mut reader = BufReader::new(stream);
            let response = read_response(&mut reader, false).expect("response");
            assert!(response.status == 200 && !response.closes(), "{response:?}");
            reader
        })
        .collect();

    let (stop, (served, end, drained_first)) = thread::scope(|scope| {
        // New connections all through the stop, until the first is refused.
        let client = scope.spawn(|| new_connections_until_refused(&c));
        // What `docker stop` / the kubelet do: the STOPSIGNAL, then SIGKILL after the grace
        // period (podman stop waits --stop-timeout, set to it).
        let stopper = scope.spawn(|| podman(&["stop", &c.name]));

        eventually(PROMPT, "/health answers 503", || {
            c.get("/health").is_ok_and(|r| r.status == 503)
        });
        let during = c.get("/").expect("GET / during the delay");
        assert!(during.status == 200 && during.closes(), "{during:?}");
        // Two keep-alive clients ask during the delay: answered, told to close, then EOF.
        for reader in &mut kept[..2] {
            reader.get_mut().write_all(&get("/")).expect("write");
            let response = read_response(reader, false).expect("answered during the delay");
            assert!(response.status == 200 && response.closes(), "{response:?}");
            let rest = receive_until_close(reader.get_mut(), PROMPT);
            assert!(
                rest.eof() && rest.bytes.is_empty(),
                "after the answer: {rest}"
            );
        }
        // The two idle ones are closed by the drain, gently: EOF, not a reset.
        for reader in &mut kept[2..] {
            let rest = receive_until_close(reader.get_mut(), delay + PROMPT);
            assert!(
                rest.eof() && rest.bytes.is_empty(),
                "idle at the drain: {rest}"
            );
        }
        (
            stopper.join().expect("podman stop"),
            client.join().expect("client"),
        )
    });
    assert!(stop.status.success(), "podman stop: {}", text(&stop.stderr));
    assert_eq!(
        end.kind(),
        io::ErrorKind::ConnectionRefused,
        "how the new connections ended: {end}"
    );
    assert!(
        drained_first,
        "a connection was refused before the listener closed (event=drain)"
    );
    assert!(
        served.iter().any(|r| r.closes()),
        "the new connections saw the lame-duck phase: {} answers",
        served.len()
    );

    assert_eq!(c.exit_code(), 0, "log:\n{}", c.logs());
    let log = c.logs();
    assert_drained(&log);
}

/// The operator insists: a second stop signal during the drain ends the container at once with
/// exit 1, instead of waiting for the work in flight or the drain deadline.
#[test]
fn a_second_stop_signal_during_the_drain_exits_1_at_once() {
    let Some((image, _turn)) = setup() else {
        return;
    };
    let m = Manifest::load();
    let c = Container::run(image, "twice", &run_like_the_manifest(&m));
    // A request whose body is still arriving is work in flight: the drain waits for it.
    let mut upload = connect(c.addr).expect("connect");
    upload
        .write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nx")
        .expect("write");

    c.kill("SIGTERM");
    c.wait_log("event=drain", DEFAULT_SHUTDOWN_DELAY + PROMPT);
    c.kill("SIGTERM");
    // `podman wait` is bounded by PROMPT, well inside the 20 s drain deadline: the exit is the
    // second signal's, not the deadline's (the log says which).
    let (code, _) = podman_ok_within(&["wait", &c.name], PROMPT);
    assert_eq!(code, "1", "log:\n{}", c.logs());
    let log = c.logs();
    let interrupted = log.lines().find(|l| l.contains("event=interrupted"));
    assert!(
        interrupted.is_some_and(|l| field(l, "signal") == Some("SIGTERM")),
        "{log}"
    );
    assert_exit(&log, "1", "interrupted");
}

/// `podman kube play` of deploy/kubernetes.yaml, adjusted only where podman differs from a
/// cluster (see [`for_podman`]), stopped as the kubelet stops a pod, and `podman kube down`.
#[test]
fn kube_play_runs_the_manifest_and_kube_down_drains_it() {
    let Some((image, _turn)) = setup() else {
        return;
    };
    let m = Manifest::load();
    let port = free_port();
    let pod = Pod::play(image, port);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually(PROMPT, "the pod answers /health", || {
        try_get(addr, "/health").is_ok_and(|r| r.status == 200)
    });
    let container = pod.container();

    // The manifest's args, security context and liveness probe, as podman applied them.
    let inspect = |format: &str| podman_ok(&["inspect", "--format", format, &container]).0;
    assert_eq!(exec_form(&inspect("{{json .Args}}")), m.args());
    assert_eq!(
        inspect("{{.Config.User}}"),
        format!("{}:{}", m.run_as_user(), m.run_as_group())
    );
    assert_eq!(inspect("{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert!(inspect("{{.HostConfig.SecurityOpt}}").contains("no-new-privileges"));
    // podman 4.3 turns the exec livenessProbe into a HEALTHCHECK run by a shell
    // (`CMD-SHELL <command> || exit 1`), which a scratch image does not have: `podman healthcheck
    // run` cannot pass here. The command is the manifest's, and it is run below as the kubelet
    // runs it, exec'd in the container with no shell.
    let liveness = m.liveness_command();
    let healthcheck = inspect("{{.Config.Healthcheck.Test}}");
    assert!(healthcheck.contains(&liveness.join(" ")), "{healthcheck}");
    let mut exec = vec!["exec", container.as_str()];
    exec.extend(liveness.iter().map(String::as_str));
    podman_ok(&exec);
    // The readinessProbe's request (podman 4.3 does not run readiness probes itself).
    let ready =
        try_get(addr, m.container().str("readinessProbe.httpGet.path")).expect("GET /health");
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(try_get(addr, "/").expect("GET /").status, 200);

    // The kubelet's stop: the STOPSIGNAL, then SIGKILL after terminationGracePeriodSeconds.
    // `podman kube down` alone cannot show it on podman < 5.1: it SIGKILLs the pod's containers
    // at once (containers/podman#22397), and podman 4.3's kube play ignores the grace period
    // (the containers' stop timeout is its default, 10 s). So the pod is stopped first, as the
    // podman maintainers advise, with the manifest's grace period, and then taken down.
    let grace = m.termination_grace_period();
    podman_ok_within(
        &[
            "pod",
            "stop",
            "--time",
            &grace.as_secs().to_string(),
            &pod.pod_name(),
        ],
        grace + PROMPT,
    );
    let (code, _) = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &container]);
    let (stdout, log) = podman_ok(&["logs", &container]);
    let log = stdout + &log;
    assert_eq!(code, "0", "log:\n{log}");
    assert_drained(&log);
    podman_ok(&["kube", "down", pod.file.to_str().expect("UTF-8 path")]);
}

/// The log of a lame-duck stop that drained cleanly: announce, drain, and an exit line with
/// code 0.
fn assert_drained(log: &str) {
    for event in ["event=announce", "event=drain"] {
        assert!(log.contains(event), "no {event} in the log:\n{log}");
    }
    assert_exit(log, "0", "drained");
}

/// The exit line says `code` and `outcome`.
fn assert_exit(log: &str, code: &str, outcome: &str) {
    let exit = (log.lines().find(|l| l.contains("event=exit")))
        .unwrap_or_else(|| panic!("no exit line in the log:\n{log}"));
    assert_eq!(
        (field(exit, "code"), field(exit, "outcome")),
        (Some(code), Some(outcome)),
        "{exit}"
    );
}

// ---------------------------------------------------------------------------------------------
// The image, podman, and taking turns

/// The image (built once per test run) and this test's turn, or `None` after saying why podman
/// cannot run here.
fn setup() -> Option<(&'static str, MutexGuard<'static, ()>)> {
    static TURN: Mutex<()> = Mutex::new(());
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    // A test that failed while holding the turn leaves nothing behind (its guards cleaned up).
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match IMAGE.get_or_init(build_image) {
        Ok(image) => Some((image.as_str(), turn)),
        Err(reason) => {
            skip_or_fail("podman", reason);
            None
        }
    }
}

/// This run's image name: unique per process on a shared machine.
fn image_name() -> String {
    format!("localhost/lameduck-test-{}:latest", std::process::id())
}

fn build_image() -> Result<String, String> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "rootful podman needs root (runc, published ports, /proc of the container)".into(),
        );
    }
    for tool in ["podman", "runc", "catatonit"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!(
                "{tool} not found: apt-get install podman runc catatonit (catatonit: kube play's pod)"
            ));
        }
    }
    let binary = image::musl_binary().map_err(String::from)?;
    // The Dockerfile's runtime stage, verbatim, and for its `COPY --from=STAGE` a directory laid
    // out as that build stage lays out /out/rootfs.
    let stage = dockerfile_final_stage();
    let copy = dockerfile_instruction(&stage, "COPY");
    let from = copy
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--from="))
        .expect("the runtime stage copies from the build stage");
    let dir = TempDir::new();
    let containerfile = dir.path().join("Containerfile");
    std::fs::write(&containerfile, dockerfile_final_stage_source()).expect("write Containerfile");
    let build_stage = dir.path().join("build-stage");
    image::lay_out_root(
        binary,
        &build_stage.join(IMAGE_ROOT.trim_start_matches('/')),
    );
    let context = dir.path().join("context"); // the runtime stage reads nothing from it
    std::fs::create_dir(&context).expect("create context");
    let name = image_name();
    let build_context = format!("{from}={}", build_stage.display());
    let containerfile = containerfile.to_str().expect("UTF-8 path");
    // --format docker: the OCI format has no HEALTHCHECK (podman would drop it).
    // --layers=false: no intermediate images left behind.
    podman_ok(&[
        "build",
        "--format",
        "docker",
        "--pull=never",
        "--layers=false",
        "--build-context",
        &build_context,
        "--tag",
        &name,
        "--file",
        containerfile,
        context.to_str().expect("UTF-8 path"),
    ]);
    // Statics are never dropped: the image is removed when the test process exits.
    extern "C" fn remove_image() {
        let _ = Command::new("timeout")
            .args(["60", "podman", "rmi", "--force", &image_name()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    // SAFETY: registers a plain function with no captured state.
    unsafe { libc::atexit(remove_image) };
    Ok(name)
}

/// `podman --runtime runc ARGS`, bounded by [`PODMAN_TIMEOUT`].
fn podman(args: &[&str]) -> Output {
    podman_within(args, PODMAN_TIMEOUT)
}

fn podman_within(args: &[&str], limit: Duration) -> Output {
    let mut command = Command::new("podman");
    command.args(["--runtime", "runc"]).args(args);
    run_command(command, limit)
}

/// Like [`podman`], failing the test unless it succeeds; its stdout and stderr, trimmed.
fn podman_ok(args: &[&str]) -> (String, String) {
    podman_ok_within(args, PODMAN_TIMEOUT)
}

fn podman_ok_within(args: &[&str], limit: Duration) -> (String, String) {
    let out = podman_within(args, limit);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        text(&out.stderr)
    );
    (text(&out.stdout).trim().to_string(), text(&out.stderr))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// A container

/// The `podman run` flags that give the container what deploy/kubernetes.yaml gives the pod.
fn run_like_the_manifest(m: &Manifest) -> Vec<String> {
    let c = m.container();
    let mut args = vec![
        "--user".to_string(),
        format!("{}:{}", m.run_as_user(), m.run_as_group()),
    ];
    assert!(c.bool("securityContext.readOnlyRootFilesystem"));
    assert!(!c.bool("securityContext.allowPrivilegeEscalation"));
    assert_eq!(c.strs("securityContext.capabilities.drop"), ["ALL"]);
    // The image's /tmp lies on the read-only root, as in the pod, and the pod mounts an
    // in-memory emptyDir of sizeLimit there: the same as a tmpfs of that size. (Not podman's
    // own --read-only-tmpfs, which would also mount /run and /var/tmp.)
    let tmp = m
        .pod_spec()
        .items("volumes")
        .iter()
        .find(|v| v.str("name") == "tmp")
        .expect("a tmp volume");
    assert_eq!(tmp.str("emptyDir.medium"), "Memory");
    let size = quantity(tmp.str("emptyDir.sizeLimit"));
    args.extend(
        [
            "--read-only",
            "--read-only-tmpfs=false",
            "--tmpfs",
            &format!("/tmp:rw,size={size},mode=1777"),
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--stop-timeout",
            &m.termination_grace_period().as_secs().to_string(),
        ]
        .map(String::from),
    );
    args
}

/// A running container, removed (killed if need be) when dropped.
struct Container {
    name: String,
    /// Its port 8080, published on loopback.
    addr: SocketAddr,
}

impl Container {
    /// `podman run -d` of `image` with `args`, its port published on a free loopback port; waits
    /// until it serves.
    fn run(image: &str, label: &str, args: &[String]) -> Container {
        let name = format!("lameduck-test-{}-{label}", std::process::id());
        let mut run = vec![
            "run",
            "--detach",
            "--name",
            &name,
            "--ulimit",
            "host",
            "--log-driver",
            "k8s-file",
            "--publish",
            "127.0.0.1::8080",
        ];
        run.extend(args.iter().map(String::as_str));
        run.push(image);
        let mut container = Container {
            name: name.clone(),
            addr: ([127, 0, 0, 1], 0).into(),
        };
        podman_ok(&run);
        let (published, _) = podman_ok(&["port", &name, "8080/tcp"]);
        container.addr = published
            .parse()
            .unwrap_or_else(|_| panic!("podman port said {published:?}"));
        eventually(PROMPT, "the container serves", || {
            container.get("/health").is_ok_and(|r| r.status == 200)
        });
        container
    }

    fn get(&self, path: &str) -> io::Result<support::Response> {
        try_get(self.addr, path)
    }

    /// The server's pid on the host.
    fn pid(&self) -> libc::pid_t {
        let (pid, _) = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &self.name]);
        pid.parse().unwrap_or_else(|_| panic!("pid {pid:?}"))
    }

    /// A path inside the container, as the host sees it.
    fn file(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }

    fn kill(&self, signal: &str) {
        podman_ok(&["kill", "--signal", signal, &self.name]);
    }

    /// `podman healthcheck run`: the image's HEALTHCHECK, once, now.
    fn healthy(&self) -> bool {
        podman(&["healthcheck", "run", &self.name]).status.success()
    }

    /// The container's log (the server logs to stderr), as `podman logs` shows it.
    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        text(&out.stdout) + &text(&out.stderr)
    }

    /// Polls the log for a line containing `needle` and returns it.
    fn wait_log(&self, needle: &str, limit: Duration) -> String {
        let mut found = None;
        eventually(limit, &format!("{needle} in the log"), || {
            found = self
                .logs()
                .lines()
                .find(|l| l.contains(needle))
                .map(String::from);
            found.is_some()
        });
        found.expect("found")
    }

    fn exit_code(&self) -> i32 {
        let (code, _) = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &self.name]);
        code.parse()
            .unwrap_or_else(|_| panic!("exit code {code:?}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.name]);
    }
}

/// New connections, one after another, each asking `GET /`, until one is refused; every one
/// accepted must be answered in full (a reset or an EOF instead is a lost request). Returns the
/// answers, the error that ended it, and whether the log already said `event=drain` (the
/// listener closed) when the refusal came.
fn new_connections_until_refused(c: &Container) -> (Vec<support::Response>, io::Error, bool) {
    let deadline = Instant::now() + DEFAULT_SHUTDOWN_DELAY + PROMPT;
    let mut served = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "the listener never closed");
        match connect(c.addr) {
            Err(e) => {
                let drained = c.logs().contains("event=drain");
                return (served, e, drained);
            }
            Ok(mut stream) => {
                stream
                    .write_all(&get("/"))
                    .expect("write to an accepted connection");
                let response = read_response(&mut BufReader::new(stream), false)
                    .unwrap_or_else(|e| panic!("accepted, then {e} instead of an answer"));
                assert_eq!(response.status, 200, "{response:?}");
                served.push(response);
            }
        }
        // Pacing, not synchronisation: a new connection every 20 ms covers the delay densely
        // and leaves the two CPUs (and the ephemeral ports) to the server and podman.
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// A pod from the manifest

/// A pod played from the adjusted manifest; `podman kube down` (and its volume removed) when
/// dropped.
struct Pod {
    /// The adjusted manifest, alone in a fresh directory.
    file: PathBuf,
    name: String,
    volume: String,
    _dir: TempDir,
}

impl Pod {
    fn play(image: &str, port: u16) -> Pod {
        // A fresh directory: `kube play` takes a directory named like the image in its working
        // directory for a build context and would build that instead.
        let dir = TempDir::new();
        let name = format!("lameduck-test-{}", std::process::id());
        let volume = format!("{name}-tmp");
        let file = dir.path().join("kubernetes.yaml");
        let source = std::fs::read_to_string(repo_path(MANIFEST)).expect("read the manifest");
        std::fs::write(&file, for_podman(&source, &name, image, port, &volume)).expect("write");
        let pod = Pod {
            file,
            name,
            volume,
            _dir: dir,
        };
        let mut play = Command::new("podman");
        play.current_dir(pod._dir.path())
            .args([
                "--runtime",
                "runc",
                "kube",
                "play",
                "--log-driver",
                "k8s-file",
            ])
            .arg(&pod.file);
        let out = run_command(play, PODMAN_TIMEOUT);
        assert!(
            out.status.success(),
            "podman kube play: {}",
            text(&out.stderr)
        );
        pod
    }

    /// The pod podman made for the Deployment (`NAME-pod-0` on podman 4.3).
    fn pod_name(&self) -> String {
        let (pods, _) = podman_ok(&[
            "pod",
            "ps",
            "--filter",
            &format!("name=^{}-", self.name),
            "--format",
            "{{.Name}}",
        ]);
        let pods: Vec<&str> = pods.lines().collect();
        assert_eq!(pods.len(), 1, "one replica, one pod: {pods:?}");
        pods[0].to_string()
    }

    /// The lameduck container of the pod (not its infra container).
    fn container(&self) -> String {
        let (names, _) = podman_ok(&[
            "ps",
            "--all",
            "--filter",
            &format!("pod={}", self.pod_name()),
            "--format",
            "{{.Names}} {{.IsInfra}}",
        ]);
        let found: Vec<&str> = names
            .lines()
            .filter_map(|l| l.strip_suffix(" false"))
            .collect();
        assert_eq!(found.len(), 1, "the pod's containers: {names}");
        found[0].to_string()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = podman(&["kube", "down", self.file.to_str().unwrap_or_default()]);
        let _ = podman(&["volume", "rm", "--force", &self.volume]);
    }
}

/// deploy/kubernetes.yaml as podman must be given it; nothing else changes:
/// - the image is the one under test (`imagePullPolicy: IfNotPresent` then uses it, no pull);
/// - one replica: podman publishes `containerPort` on the host, and a second replica could not
///   bind it;
/// - `hostIP: 127.0.0.1` and a free `hostPort`: otherwise podman publishes 0.0.0.0:8080, which
///   is exposed and may be taken on a shared machine;
/// - the objects' names and the `tmp` emptyDir's name get this run's unique name: podman's pods,
///   containers and volumes are global to the machine, and podman 4.3 makes an emptyDir a named
///   volume that outlives the pod and is shared by every pod that names it.
fn for_podman(source: &str, name: &str, image: &str, port: u16, volume: &str) -> String {
    let mut out = String::new();
    let mut changed = [0; 5];
    for line in source.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let replaced = match line.trim_start() {
            "image: lameduck:0.1.0" => Some((0, format!("{indent}image: {image}"))),
            "replicas: 2" => Some((1, format!("{indent}replicas: 1"))),
            "containerPort: 8080" => Some((
                2,
                format!("{line}\n{indent}hostIP: 127.0.0.1\n{indent}hostPort: {port}"),
            )),
            "name: lameduck" if indent.len() == 2 => Some((3, format!("{indent}name: {name}"))),
            "- name: tmp" => Some((4, format!("{indent}- name: {volume}"))),
            _ => None,
        };
        match replaced {
            Some((which, text)) => {
                changed[which] += 1;
                out.push_str(&text);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    // image, replicas, port: once; the Deployment's and the Service's names; the volume and its
    // mount. A manifest edit that moves these fails here instead of testing something else.
    assert_eq!(
        changed,
        [1, 1, 1, 2, 2],
        "the manifest's lines to adjust moved"
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Connects with [`PROMPT`] timeouts, returning the error (a refusal is an answer here).
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, PROMPT)?;
    stream.set_read_timeout(Some(PROMPT))?;
    stream.set_write_timeout(Some(PROMPT))?;
    Ok(stream)
}

/// `GET path` on a new connection; an error while the server is not (yet, or any more) there.
fn try_get(addr: SocketAddr, path: &str) -> io::Result<support::Response> {
    let mut stream = connect(addr)?;
    stream.write_all(&get(path))?;
    read_response(&mut BufReader::new(stream), false)
}

/// A loopback port nobody listens on now, for a `hostPort`. (`podman run` picks its own; `kube
/// play` needs a number.)
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn mode_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

fn meta_uid(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.uid()
}
