//! What the image holds, made without the image's build stage: the static binary, built by
//! deploy/build-static.sh (the script the Dockerfile's build stage runs) in a copy of the build
//! context that `.dockerignore` leaves, and the root file system the runtime stage copies whole.
//!
//! Shared by tests/scratch_root.rs (the root as a chroot) and tests/podman.rs (the root as the
//! build stage a real engine copies from).
#![allow(dead_code)]

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::manifest::{DockerIgnore, IMAGE_ENTRIES, repo_path};
use crate::support::run_command;

pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// A cold release build with LTO of the whole dependency tree, std included.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Lays out the image's root file system in `root` (created, and left writable so it can be
/// removed; callers that need a read-only root change its mode): [`IMAGE_ENTRIES`], the one file
/// being `binary`, the one directory empty, each with its mode, owned by whoever runs the test
/// (root, as in the image, when that is root).
pub fn lay_out_root(binary: &Path, root: &Path) {
    std::fs::create_dir_all(root).expect("create the image root");
    for entry in &IMAGE_ENTRIES {
        let path = root.join(entry.path);
        if entry.is_dir {
            std::fs::create_dir(&path).expect("create a directory of the image");
        } else {
            std::fs::copy(binary, &path).expect("copy the binary");
        }
        set_mode(&path, entry.mode);
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Builds the release musl binary once per test run, or says why it can't (the caller skips).
pub fn musl_binary() -> Result<&'static Path, &'static str> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(build_musl) {
        Ok(path) => Ok(path),
        Err(reason) => Err(reason),
    }
}

fn build_musl() -> Result<PathBuf, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let print = |what: &[&str]| {
        Command::new(&rustc)
            .arg("--print")
            .args(what)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if !print(&["target-libdir", "--target", MUSL]).is_some_and(|dir| dir.is_dir()) {
        return Err(format!(
            "the {MUSL} target is not installed: rustup target add {MUSL}"
        ));
    }
    // deploy/build-static.sh rebuilds std from its source.
    if !print(&["sysroot"]).is_some_and(|root| root.join("lib/rustlib/src/rust/library").is_dir()) {
        return Err("std's source is not installed: rustup component add rust-src".into());
    }
    // Our own target dir: the `cargo test` that runs us holds the lock on the usual one.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("musl-test");
    // Built from what `docker build` would send (the repository trimmed by .dockerignore), so a
    // file the build needs but the context lacks fails here, not in someone's image build.
    let context = target_dir.join("context");
    if context.exists() {
        std::fs::remove_dir_all(&context).expect("remove the old build context");
    }
    let ignore = DockerIgnore::load();
    copy_build_context(&ignore, &repo_path(""), "", &context).expect("copy the build context");
    let mut build = Command::new(context.join("deploy/build-static.sh"));
    build
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    let out = run_command(build, BUILD_TIMEOUT);
    assert!(
        out.status.success(),
        "deploy/build-static.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It prints "PATH SIZE".
    let printed = String::from_utf8_lossy(&out.stdout);
    let (path, _size) = printed
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("deploy/build-static.sh printed {printed:?}"));
    Ok(PathBuf::from(path))
}

/// Copies the files under `dir` (the repository, `relative` to its root) that `ignore` sends to
/// the build, to `dest`.
fn copy_build_context(
    ignore: &DockerIgnore,
    dir: &Path,
    relative: &str,
    dest: &Path,
) -> io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = if relative.is_empty() {
            name.to_string()
        } else {
            format!("{relative}/{name}")
        };
        let sent = ignore.sends(&path);
        if entry.file_type()?.is_dir() {
            if sent || ignore.reincludes_below(&path) {
                copy_build_context(ignore, &entry.path(), &path, &dest.join(&*name))?;
            }
        } else if sent {
            std::fs::copy(entry.path(), dest.join(&*name))?;
        }
    }
    Ok(())
}
