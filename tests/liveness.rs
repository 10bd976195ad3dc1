//! The liveness file and `lameduck live`: the file appears after bind, its mtime is refreshed by
//! the event loop, `live` says 0 while the loop turns and 1 when it is frozen or gone, symlinks
//! are refused, the file stays the server's own (put back when removed or replaced, and a file
//! that is no longer its own is left alone at exit), and the start-up checks exit 2.

mod support;

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::{Lameduck, PROMPT, TempDir, field, get, request, run};

fn live(file: &std::path::Path, max_age: &str) -> (i32, String) {
    run(&[
        "live",
        "--live-file",
        file.to_str().unwrap(),
        "--max-age",
        max_age,
    ])
}

#[test]
fn file_appears_after_bind_and_its_mtime_advances() {
    let server = Lameduck::start(&["--heartbeat", "100ms"]);
    // `start` returned after the listening line: the file exists by then.
    assert!(server.live_file.is_file());
    // Push the mtime into the past; the heartbeat must bring it back to now.
    let past = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(&server.live_file)
        .unwrap()
        .set_modified(past)
        .unwrap();
    support::eventually("the heartbeat refreshes the mtime", || {
        fs::metadata(&server.live_file)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > past + Duration::from_secs(3000))
    });
}

#[test]
fn live_is_0_while_serving_and_1_when_the_loop_is_frozen_or_gone() {
    let mut server = Lameduck::start(&["--heartbeat", "100ms"]);
    assert_eq!(live(&server.live_file, "10s"), (0, String::new()));

    // A wedged event loop: SIGSTOP. The heartbeat stops and the file goes stale.
    server.signal(libc::SIGSTOP);
    support::eventually(
        "live fails once the heartbeat is older than max-age",
        || live(&server.live_file, "300ms").0 == 1,
    );
    let (code, reason) = live(&server.live_file, "300ms");
    assert_eq!(code, 1);
    assert!(
        reason.contains("not live") && reason.contains("ago"),
        "{reason}"
    );
    assert_eq!(reason.lines().count(), 1, "one line: {reason:?}");

    // Unfrozen, the loop refreshes the file again.
    server.signal(libc::SIGCONT);
    support::eventually("live recovers after SIGCONT", || {
        live(&server.live_file, "300ms").0 == 0
    });

    // Two signals, the second after the first was seen (signals sent back to back coalesce).
    server.signal(libc::SIGTERM);
    server.wait_for("event=announce");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(1));
    let (code, reason) = live(&server.live_file, "10s");
    assert_eq!(code, 1);
    assert!(reason.contains("No such file"), "{reason}");
}

/// Puts a file with `contents` at `path` the way another server would: written beside it, then
/// renamed over it, so the path is never missing. Returns its inode.
fn plant(path: &Path, contents: &str) -> u64 {
    let temp = path.with_extension("planted");
    fs::write(&temp, contents).unwrap();
    let inode = fs::metadata(&temp).unwrap().ino();
    fs::rename(&temp, path).unwrap();
    inode
}

/// The pid written in the liveness file.
fn pid_in(path: &Path) -> String {
    fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn removed_file_is_put_back_by_the_heartbeat() {
    // An operator cleaned /tmp, or another server sharing the path removed it on exit.
    let mut server = Lameduck::start(&["--heartbeat", "100ms"]);
    fs::remove_file(&server.live_file).unwrap();
    let line = server.wait_for("event=live_file_recreated");
    assert_eq!(field(&line, "reason"), Some("removed"), "{line}");
    assert_eq!(
        field(&line, "path").map(PathBuf::from),
        Some(server.live_file.clone())
    );
    assert_eq!(pid_in(&server.live_file), server.pid().to_string());
    assert_eq!(live(&server.live_file, "10s"), (0, String::new()));
}

#[test]
fn replaced_file_is_replaced_by_the_servers_own() {
    // Another server started on the same path and wrote its file there.
    let mut server = Lameduck::start(&["--heartbeat", "100ms"]);
    let planted = plant(&server.live_file, "999999\n");
    let line = server.wait_for("event=live_file_recreated");
    assert_eq!(field(&line, "reason"), Some("replaced"), "{line}");
    assert_ne!(fs::metadata(&server.live_file).unwrap().ino(), planted);
    assert_eq!(pid_in(&server.live_file), server.pid().to_string());
    assert_eq!(live(&server.live_file, "10s"), (0, String::new()));
}

#[test]
fn exit_leaves_a_file_that_is_no_longer_the_servers() {
    // No heartbeat after the first one, so nothing repairs the swap before the exit.
    let mut server = Lameduck::start(&["--heartbeat", "10m"]);
    // A response means the loop has turned once, so its first heartbeat is behind us.
    assert_eq!(request(server.addr, &get("/")).status, 200);
    let planted = plant(&server.live_file, "999999\n");
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    assert_eq!(fs::metadata(&server.live_file).unwrap().ino(), planted);
    assert_eq!(pid_in(&server.live_file), "999999");
    assert!(
        !server.log.iter().any(|l| l.contains("live_file_recreated")),
        "{:#?}",
        server.log
    );
}

#[test]
fn mtime_far_in_the_future_is_not_live_but_small_skew_is() {
    let dir = TempDir::new();
    let file = dir.path().join("live");
    let set_ahead = |ahead: Duration| {
        File::create(&file)
            .unwrap()
            .set_modified(SystemTime::now() + ahead)
            .unwrap();
    };
    // The clock stepped back an hour and no heartbeat has run since, or the mtime was forged.
    set_ahead(Duration::from_secs(3600));
    let (code, reason) = live(&file, "10s");
    assert_eq!(code, 1);
    assert!(
        reason.starts_with("not live:") && reason.contains("in the future"),
        "{reason}"
    );
    assert_eq!(reason.lines().count(), 1, "one line: {reason:?}");
    // Two seconds of skew between clocks is within the max age.
    set_ahead(Duration::from_secs(2));
    assert_eq!(live(&file, "10s"), (0, String::new()));
}

#[test]
fn live_stays_green_during_the_drain() {
    // A draining pod must not be restarted by its liveness probe.
    let mut server = Lameduck::start(&["--shutdown-delay", "0", "--heartbeat", "100ms"]);
    let mut stuck = server.connect();
    std::io::Write::write_all(&mut stuck, b"GET / HTTP/1.1\r\n").unwrap();
    server.signal(libc::SIGTERM);
    server.wait_for("event=drain");
    assert_eq!(live(&server.live_file, "10s").0, 0);
    drop(stuck);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}

#[test]
fn live_never_starts_a_server() {
    let dir = TempDir::new();
    let (code, reason) = live(&dir.path().join("absent"), "10s");
    assert_eq!(code, 1);
    assert!(reason.starts_with("not live:"), "{reason}");
    // A directory is not a liveness file.
    let (code, reason) = live(dir.path(), "10s");
    assert_eq!(code, 1);
    assert!(reason.contains("not a regular file"), "{reason}");
}

#[test]
fn symlink_at_the_live_path_is_refused() {
    let dir = TempDir::new();
    let target = dir.path().join("precious");
    fs::write(&target, "do not truncate me").unwrap();
    let link = dir.path().join("live");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let (code, stderr) = run(&[
        "serve",
        "--addr",
        "127.0.0.1",
        "--port",
        "0",
        "--live-file",
        link.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "do not truncate me");
    // `live` refuses it too.
    let (code, reason) = live(&link, "10s");
    assert_eq!(code, 1);
    assert!(reason.contains("symlink"), "{reason}");
}

#[test]
fn grace_period_that_cannot_hold_the_drain_exits_2() {
    let (code, stderr) = run(&["--shutdown-delay", "10s", "--drain-timeout", "20s"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--grace-period"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The same timings with a grace period that fits start normally.
    let server = Lameduck::start(&[
        "--shutdown-delay",
        "10s",
        "--drain-timeout",
        "20s",
        "--grace-period",
        "35s",
    ]);
    drop(server);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, named) in [
        (&["--port", "eighty"][..], "--port"),
        (&["--drain-timeout", "5 hours"], "--drain-timeout"),
        (&["--frobnicate"], "--frobnicate"),
        (&["live", "--max-age", "-1"], "--max-age"),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn port_in_use_exits_2() {
    let server = Lameduck::start(&[]);
    let port = server.addr.port().to_string();
    let dir = TempDir::new();
    let file = dir.path().join("live");
    let (code, stderr) = run(&[
        "--addr",
        "127.0.0.1",
        "--port",
        &port,
        "--live-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(
        !file.exists(),
        "no liveness file for a server that never bound"
    );
}

#[test]
fn help_and_version() {
    let (code, _) = run(&["--help"]);
    assert_eq!(code, 0);
    let (code, _) = run(&["live", "--version"]);
    assert_eq!(code, 0);
}
