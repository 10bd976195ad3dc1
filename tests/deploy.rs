//! The deployment artefacts agree with each other and with the real binary.
//!
//! deploy/kubernetes.yaml and the Dockerfile are only ever run by an orchestrator we don't have
//! here, so their mistakes would surface in production: a grace period shorter than the drain
//! (SIGKILL mid-drain), a probe flag the binary doesn't know (every pod restarted), a readiness
//! probe too slow to see the lame-duck 503, a uid that differs between image and pod. These
//! tests check that arithmetic and run the manifest's exact argv and probe command against the
//! binary. Schema validation is deploy/validate.sh; the image itself is built and run by podman in
//! tests/podman.rs, and recreated as a chroot in tests/scratch_root.rs.

#[path = "deploy/manifest.rs"]
mod manifest;
mod support;

use std::process::Command;
use std::time::Duration;

use manifest::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_MAX_AGE, DEFAULT_SHUTDOWN_DELAY,
    DockerIgnore, GRACE_MARGIN, IMAGE_ENTRIES, IMAGE_ROOT, Manifest, dockerfile_final_stage,
    dockerfile_instruction, dockerfile_stages, exec_form, flag, parse_duration, quantity,
    with_flag,
};
use support::{Lameduck, PROMPT, TempDir, get, request, run_command};

const BIN: &str = env!("CARGO_BIN_EXE_lameduck");

#[test]
fn grace_period_covers_shutdown_delay_drain_timeout_and_margin() {
    let m = Manifest::load();
    let grace = m.termination_grace_period();
    let delay = m.server_duration("--shutdown-delay", DEFAULT_SHUTDOWN_DELAY);
    let drain = m.server_duration("--drain-timeout", DEFAULT_DRAIN_TIMEOUT);
    assert!(
        delay + drain + GRACE_MARGIN <= grace,
        "terminationGracePeriodSeconds {grace:?} < shutdown-delay {delay:?} + drain-timeout \
         {drain:?} + margin {GRACE_MARGIN:?}: Kubernetes would SIGKILL pods mid-drain"
    );
    // The server re-checks the budget at start-up, but only against the grace period it is told.
    let told = flag(&m.args(), "--grace-period").expect("args pass --grace-period");
    assert_eq!(
        parse_duration(&told),
        grace,
        "--grace-period != terminationGracePeriodSeconds"
    );
}

/// The memory limit covers the worst the flags allow: the process at rest, what every one of
/// `--max-conns` connections costs while holding nothing, and `--buffer-budget` (everything held
/// for clients: queued output, unfinished heads), with a quarter on top for the kernel's socket
/// buffers, which cgroup v2 charges to the pod too. The per-connection and resting figures are
/// measured (benches/memory.sh: 424 B per open connection, about 2 MiB at rest) and rounded up.
#[test]
fn memory_limit_covers_max_conns_and_the_buffer_budget() {
    const AT_REST: u64 = 4 * 1024 * 1024;
    const PER_CONNECTION: u64 = 512;
    let m = Manifest::load();
    let number = |name: &str| -> u64 {
        let value = flag(&m.args(), name).unwrap_or_else(|| panic!("args pass {name}"));
        value.parse().unwrap_or_else(|_| panic!("{name} {value:?}"))
    };
    let (conns, budget) = (number("--max-conns"), number("--buffer-budget"));
    let limit = quantity(m.container().str("resources.limits.memory"));
    let worst = AT_REST + conns * PER_CONNECTION + budget;
    assert!(
        worst + worst / 4 <= limit,
        "memory limit {limit} B < 1.25 x ({AT_REST} at rest + {conns} x {PER_CONNECTION} + \
         --buffer-budget {budget}): the pod could be OOM-killed under hostile clients"
    );
}

#[test]
fn readiness_probe_sees_the_lame_duck_503_before_the_delay_ends() {
    let m = Manifest::load();
    let c = m.container();
    let health_path = flag(&m.args(), "--health-path").unwrap_or_else(|| "/health".into());
    assert_eq!(
        c.str("readinessProbe.httpGet.path"),
        health_path,
        "probe path != --health-path"
    );
    assert_eq!(
        probe_port(&m, "readinessProbe"),
        server_port(&m),
        "probe port != --port"
    );
    // Worst case, the first probe after SIGTERM starts one period late and the pod is marked
    // unready after failureThreshold failed probes, each allowed timeoutSeconds.
    let period = Duration::from_secs(c.u64("readinessProbe.periodSeconds"));
    let failures = u32::try_from(c.u64("readinessProbe.failureThreshold")).expect("fits");
    let timeout = Duration::from_secs(c.u64("readinessProbe.timeoutSeconds"));
    let noticed = period * failures + timeout;
    let delay = m.server_duration("--shutdown-delay", DEFAULT_SHUTDOWN_DELAY);
    assert!(
        noticed < delay,
        "readiness needs up to {noticed:?} to see the 503 but the lame-duck delay is {delay:?}"
    );
}

#[test]
fn liveness_probe_execs_the_image_binary_against_the_servers_live_file() {
    let m = Manifest::load();
    let c = m.container();
    let command = m.liveness_command();
    let entrypoint = exec_form(&dockerfile_instruction(
        &dockerfile_final_stage(),
        "ENTRYPOINT",
    ));
    assert_eq!(
        command[0], entrypoint[0],
        "probe must exec the image's binary (no shell)"
    );
    assert_eq!(command[1], "live");

    let live_file =
        flag(&command, "--live-file").unwrap_or_else(|| manifest::DEFAULT_LIVE_FILE.into());
    assert_eq!(
        live_file,
        m.server_live_file(),
        "probe and server must use the same live file"
    );
    let mounts = c.items("volumeMounts");
    assert!(
        mounts
            .iter()
            .any(|v| live_file.starts_with(&format!("{}/", v.str("mountPath")))),
        "{live_file} must be on a writable volume: the root filesystem is read-only"
    );

    // Stale means "the loop missed several heartbeats", not one slow turn.
    let max_age = flag(&command, "--max-age").map_or(DEFAULT_MAX_AGE, |v| parse_duration(&v));
    let heartbeat = m.server_duration("--heartbeat", DEFAULT_HEARTBEAT);
    assert!(
        max_age >= heartbeat * 3,
        "--max-age {max_age:?} vs heartbeat {heartbeat:?}"
    );
    assert!(c.u64("livenessProbe.timeoutSeconds") >= 1);
    assert!(
        c.u64("livenessProbe.failureThreshold") >= 2,
        "one slow exec must not restart"
    );
}

#[test]
fn rolling_update_surges_before_stopping_anything() {
    let m = Manifest::load();
    let d = m.deployment();
    assert_eq!(d.str("spec.strategy.type"), "RollingUpdate");
    assert_eq!(d.str("spec.strategy.rollingUpdate.maxUnavailable"), "0");
    assert_eq!(d.str("spec.strategy.rollingUpdate.maxSurge"), "1");
    assert!(
        d.u64("spec.replicas") >= 2,
        "one replica cannot roll without a gap"
    );

    // The Service must select the pods and send traffic to the port the server listens on.
    let service = m.kind("Service");
    let selector = service.at("spec.selector");
    let labels = d.at("spec.template.metadata.labels");
    assert_eq!(selector, labels, "Service selector != pod labels");
    assert_eq!(
        d.at("spec.selector.matchLabels"),
        labels,
        "Deployment selector != pod labels"
    );
    let target = service.str("spec.ports.0.targetPort");
    assert_eq!(
        named_port(&m, target),
        server_port(&m),
        "Service targetPort != --port"
    );
}

#[test]
fn security_context_matches_the_scratch_image() {
    let m = Manifest::load();
    let c = m.container();
    assert!(c.bool("securityContext.readOnlyRootFilesystem"));
    assert!(!c.bool("securityContext.allowPrivilegeEscalation"));
    assert_eq!(c.strs("securityContext.capabilities.drop"), ["ALL"]);
    assert!(m.pod_spec().bool("securityContext.runAsNonRoot"));
    assert_eq!(
        m.pod_spec().str("securityContext.seccompProfile.type"),
        "RuntimeDefault"
    );
    let tmp = m
        .pod_spec()
        .items("volumes")
        .iter()
        .find(|v| v.str("name") == "tmp")
        .cloned();
    assert!(
        tmp.expect("a `tmp` volume").get("emptyDir").is_some(),
        "/tmp is an emptyDir"
    );

    let user = dockerfile_instruction(&dockerfile_final_stage(), "USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("USER is numeric");
    assert_ne!(uid, 0, "USER must not be root");
    assert_eq!(m.run_as_user(), uid, "runAsUser != the Dockerfile's USER");
    assert!(c.get("resources.requests").is_some() && c.get("resources.limits").is_some());
}

/// The image holds exactly [`IMAGE_ENTRIES`]: the runtime stage copies the build stage's
/// [`IMAGE_ROOT`] whole, and the build stage makes exactly those entries there, with their modes.
/// (tests/podman.rs lists the files of the image a real engine built.)
#[test]
fn dockerfile_ships_only_the_binary_and_tmp_from_scratch() {
    let stages = dockerfile_stages();
    let stage = stages.last().expect("the Dockerfile has a stage");
    assert_eq!(dockerfile_instruction(stage, "FROM"), "scratch");
    let copy = dockerfile_instruction(stage, "COPY");
    let (from, source, destination) = copy_from(&copy);
    assert_eq!(
        (source, destination),
        (format!("{IMAGE_ROOT}/").as_str(), "/"),
        "the image is the build stage's {IMAGE_ROOT}, copied whole: COPY {copy}"
    );
    assert!(
        stage.iter().all(|(n, _)| n != "RUN"),
        "scratch has no shell to RUN with"
    );
    // One `install` per entry of the image's root, each with the entry's mode and kind.
    let installs: Vec<&str> = build_stage(&stages, from)
        .iter()
        .filter(|(n, _)| n == "RUN")
        .flat_map(|(_, run)| run.split("&&"))
        .map(str::trim)
        .filter(|command| command.contains(IMAGE_ROOT))
        .collect();
    let made: Vec<&str> = installs
        .iter()
        .map(|command| {
            assert!(command.starts_with("install "), "{command}");
            let target = command.rsplit(' ').next().expect("a destination");
            target
                .strip_prefix(&format!("{IMAGE_ROOT}/"))
                .unwrap_or_else(|| panic!("{command}"))
        })
        .collect();
    let expected: Vec<&str> = IMAGE_ENTRIES.iter().map(|e| e.path).collect();
    assert_eq!(made, expected, "the image holds exactly these");
    for (command, entry) in installs.iter().zip(&IMAGE_ENTRIES) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let mode = format!("{:04o}", entry.mode);
        assert!(
            words.windows(2).any(|w| w == ["-m", mode.as_str()]),
            "{} must be made with mode {mode}: {command}",
            entry.path
        );
        assert_eq!(words.contains(&"-d"), entry.is_dir, "{command}");
    }

    let entrypoint = exec_form(&dockerfile_instruction(stage, "ENTRYPOINT"));
    assert_eq!(entrypoint, ["/lameduck"]);
    assert_eq!(dockerfile_instruction(stage, "STOPSIGNAL"), "SIGTERM");
    let healthcheck = dockerfile_instruction(stage, "HEALTHCHECK");
    let (_, probe) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    assert_eq!(exec_form(probe), ["/lameduck", "live"]);
    let expose = dockerfile_instruction(stage, "EXPOSE");
    assert_eq!(
        expose.trim_end_matches("/tcp").parse::<u16>().ok(),
        Some(server_port(&Manifest::load()))
    );
}

/// The image's binary comes from deploy/build-static.sh, the script tests/scratch_root.rs and
/// tests/podman.rs build their binary with, so the binary proven there and the one shipped
/// cannot drift apart.
#[test]
fn dockerfile_ships_the_binary_the_scratch_test_builds() {
    let stages = dockerfile_stages();
    let image = stages.last().expect("the Dockerfile has a stage");
    let copy = dockerfile_instruction(image, "COPY");
    let (from, _, _) = copy_from(&copy);
    let runs: Vec<&str> = build_stage(&stages, from)
        .iter()
        .filter(|(n, _)| n == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    let builder = runs
        .iter()
        .find(|run| run.contains("deploy/build-static.sh"))
        .expect("the build stage runs deploy/build-static.sh");
    let entrypoint = exec_form(&dockerfile_instruction(image, "ENTRYPOINT"));
    let binary = format!("{IMAGE_ROOT}{}", entrypoint[0]);
    assert!(
        builder.contains(&binary),
        "the RUN that builds with the script must install what it built as {binary}: {builder}"
    );
    assert!(
        !runs.iter().any(|run| run.contains("cargo build")),
        "a second build command would ship a binary the tests never ran"
    );
}

/// `COPY --from=STAGE SOURCE DESTINATION`, as its three parts.
fn copy_from(copy: &str) -> (&str, &str, &str) {
    let from = copy
        .split_whitespace()
        .find_map(|word| word.strip_prefix("--from="))
        .unwrap_or_else(|| panic!("COPY {copy} is not from a build stage"));
    let paths: Vec<&str> = copy
        .split_whitespace()
        .filter(|word| !word.starts_with("--"))
        .collect();
    let [source, destination] = paths[..] else {
        panic!("COPY {copy}: expected one source and one destination")
    };
    (from, source, destination)
}

/// The stage named `name` (`FROM ... AS name`).
fn build_stage<'a>(stages: &'a [Vec<(String, String)>], name: &str) -> &'a [(String, String)] {
    stages
        .iter()
        .find(|stage| {
            let (instruction, args) = &stage[0];
            let args = args.to_ascii_lowercase();
            instruction == "FROM" && args.ends_with(&format!(" as {}", name.to_ascii_lowercase()))
        })
        .unwrap_or_else(|| panic!("no stage named {name}"))
}

/// The build stage copies the build context (`COPY . .`), which `.dockerignore` trims: what the
/// build needs must survive it, and the host's build outputs must not leak in.
#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let context = DockerIgnore::load();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "src/codec/request.rs",
        "benches/codec.rs", // a [[bench]] target Cargo.toml declares
        "deploy/build-static.sh",
    ] {
        assert!(context.sends(needed), "{needed} is left out of the build");
    }
    for left_out in [
        "target/release/lameduck",
        "benches/peers/target/release/peer-lameduck",
        "benches/results/results.md",
        "deploy/kubernetes.yaml",
        ".git/HEAD",
    ] {
        assert!(!context.sends(left_out), "{left_out} is sent to the build");
    }
}

/// The manifest's argv starts the real server (so no flag is unknown and the server's own
/// budget check passes), the readiness path answers 200, and the manifest's liveness command
/// is green while it runs and red once it has exited.
#[test]
fn manifest_args_and_probe_command_work_with_the_real_binary() {
    let m = Manifest::load();
    let dir = TempDir::new();
    let live_file = dir
        .path()
        .join("lameduck.live")
        .to_str()
        .expect("UTF-8 path")
        .to_string();

    // Same argv, but on an ephemeral loopback port and a private liveness file.
    let args = with_flag(&m.args(), "--port", "0");
    let args = with_flag(&args, "--addr", "127.0.0.1");
    let args = with_flag(&args, "--live-file", &live_file);
    let mut command = Command::new(BIN);
    command.args(&args).env_clear();
    let mut server = Lameduck::spawn(command, &live_file).expect("spawn lameduck");

    let health = request(
        server.addr,
        &get(m.container().str("readinessProbe.httpGet.path")),
    );
    assert_eq!(health.status, 200, "{health:?}");

    let probe = || {
        let argv = with_flag(&m.liveness_command(), "--live-file", &live_file);
        let mut command = Command::new(BIN);
        command.args(&argv[1..]).env_clear();
        run_command(command, PROMPT)
    };
    let live = probe();
    assert!(live.status.success(), "live while serving: {live:?}");

    // SIGINT skips the announce delay; the lifecycle itself is tested elsewhere.
    server.signal(libc::SIGINT);
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log.join("\n"));

    let dead = probe();
    assert_eq!(dead.status.code(), Some(1), "live after exit: {dead:?}");
    let reason = String::from_utf8_lossy(&dead.stderr);
    assert_eq!(
        reason.trim_end().lines().count(),
        1,
        "one-line reason: {reason:?}"
    );
}

/// The container port the server listens on (`--port`, default 8080).
fn server_port(m: &Manifest) -> u16 {
    let port = flag(&m.args(), "--port").unwrap_or_else(|| "8080".into());
    let port: u16 = port.parse().expect("--port is a number");
    let declared: Vec<u64> = m
        .container()
        .items("ports")
        .iter()
        .map(|p| p.u64("containerPort"))
        .collect();
    assert!(
        declared.contains(&u64::from(port)),
        "--port {port} not in containerPort {declared:?}"
    );
    port
}

/// A probe's `httpGet.port`, resolving a port name through the container's ports.
fn probe_port(m: &Manifest, probe: &str) -> u16 {
    named_port(m, m.container().str(&format!("{probe}.httpGet.port")))
}

fn named_port(m: &Manifest, port: &str) -> u16 {
    if let Ok(number) = port.parse() {
        return number;
    }
    let ports = m.container().items("ports");
    let found = ports
        .iter()
        .find(|p| p.get("name").is_some() && p.str("name") == port);
    let found = found.unwrap_or_else(|| panic!("no container port named {port}"));
    found
        .u64("containerPort")
        .try_into()
        .expect("port fits u16")
}
