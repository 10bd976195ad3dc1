//! Configuration bounds, against the real binary: an absurd value is refused at start-up with
//! exit 2 and a one-line message naming the flag (or the environment variable it came from),
//! before the liveness file exists; never a panic, an allocation abort, or a server that runs.

mod support;

use support::{PROMPT, TempDir};

/// `u64::MAX`: the largest number a duration or size flag can be given at all.
const HUGE: &str = "18446744073709551615";

/// Runs `lameduck serve` on a free port with a liveness file in a private directory, plus
/// `args` and the environment `env`, to completion. Returns its exit code, its stderr, and
/// whether the liveness file was ever left behind.
fn start(args: &[&str], env: &[(&str, &str)]) -> (i32, String, bool) {
    let dir = TempDir::new();
    let live_file = dir.path().join("live");
    let mut command = support::serve_command(&live_file, args);
    command.envs(env.iter().copied());
    let output = support::run_command(command, PROMPT);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        live_file.exists(),
    )
}

/// Asserts the refusal a user must see: exit 2, one line naming `named`, no panic, no file.
fn assert_refused(what: &str, (code, stderr, live_file): (i32, String, bool), named: &str) {
    assert_eq!(code, 2, "{what}: {stderr}");
    assert!(
        stderr.contains(named),
        "{what}: stderr does not name {named}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(
        !live_file,
        "{what}: the liveness file was created before the refusal"
    );
}

/// Regression: `--shutdown-delay u64::MAX` panicked (a `Duration` sum overflowed), and
/// `--max-header-bytes 100000000000000` aborted allocating the input buffer after the liveness
/// file had been created; `--max-conns` and friends were taken as they came.
#[test]
fn absurd_flag_values_exit_2_before_the_liveness_file_exists() {
    for flag in [
        "--shutdown-delay",
        "--drain-timeout",
        "--grace-period",
        "--heartbeat",
        "--header-timeout",
        "--idle-timeout",
    ] {
        let what = format!("{flag} {HUGE}");
        assert_refused(&what, start(&[flag, HUGE], &[]), flag);
    }
    for (args, named) in [
        (
            &["--max-header-bytes", "100000000000000"][..],
            "--max-header-bytes",
        ),
        (&["--max-conns", "1000000000000"], "--max-conns"),
        (&["--max-body", HUGE], "--max-body"),
        (&["--backlog", "4294967295"], "--backlog"),
        (&["--max-uri-bytes", "20000"], "--max-header-bytes"),
        (&["--heartbeat", "0"], "--heartbeat"),
        (&["--header-timeout", "0"], "--header-timeout"),
        (&["--idle-timeout", "0"], "--idle-timeout"),
    ] {
        assert_refused(&args.join(" "), start(args, &[]), named);
    }
}

/// A value from the environment is bounded the same way, and the message names the variable.
#[test]
fn absurd_environment_values_exit_2_naming_the_variable() {
    for (var, value) in [
        ("LAMEDUCK_DRAIN_TIMEOUT", HUGE),
        ("LAMEDUCK_MAX_HEADER_BYTES", "100000000000000"),
        ("LAMEDUCK_MAX_CONNS", "0"),
    ] {
        let what = format!("{var}={value}");
        assert_refused(&what, start(&[], &[(var, value)]), var);
    }
}

/// `live --max-age` is bounded too.
#[test]
fn absurd_max_age_exits_2() {
    for value in [HUGE, "0"] {
        let (code, stderr) = support::run(&["live", "--max-age", value]);
        assert_eq!(code, 2, "--max-age {value}: {stderr}");
        assert!(stderr.contains("--max-age"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
