//! The liveness file: created after bind, its mtime refreshed by every event-loop heartbeat,
//! removed on exit; and the `lameduck live` check that reads it.
//!
//! Why a file and not an HTTP liveness endpoint: a liveness probe through the HTTP server fails
//! when the server is merely busy or draining, and Kubernetes then kills a healthy pod. A file
//! whose mtime the event loop refreshes says exactly "the loop is turning", and the check is the
//! binary itself, because a `scratch` image has no shell and no `cat`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The server's liveness file. Dropping it removes the file, so every exit path that unwinds
/// (clean, forced, second signal, error after creation) leaves no stale "live" behind.
#[derive(Debug)]
pub struct LiveFile {
    path: PathBuf,
    /// Kept open so a heartbeat is one `futimens` on the descriptor, with no path lookup that a
    /// swapped-in symlink could redirect.
    file: File,
}

impl LiveFile {
    /// Creates (or takes over) the file at `path`, refusing symlinks and anything that is not a
    /// regular file.
    pub fn create(path: &Path) -> io::Result<LiveFile> {
        // O_NOFOLLOW: a symlink planted at the path (say in a shared /tmp) makes open fail with
        // ELOOP instead of letting us truncate whatever it points to. O_NONBLOCK: a FIFO planted
        // there cannot block start-up; the regular-file check below then refuses it.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => io::Error::other(format!(
                    "{}: is a symlink; refusing to follow it",
                    path.display()
                )),
                _ => io::Error::new(e.kind(), format!("{}: {e}", path.display())),
            })?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        writeln!(file, "{}", std::process::id())?;
        Ok(LiveFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Refreshes the mtime: "the event loop was here just now".
    pub fn touch(&self, now: SystemTime) -> io::Result<()> {
        self.file.set_modified(now)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LiveFile {
    fn drop(&mut self) {
        // Removing the path we created; if someone replaced it meanwhile, removing it still says
        // "not live", which is the truth once we are gone.
        let _ = fs::remove_file(&self.path);
    }
}

/// Why `lameduck live` says the server is not live.
#[derive(Debug, PartialEq, Eq)]
pub enum NotLive {
    Missing(PathBuf, String),
    Symlink(PathBuf),
    NotAFile(PathBuf),
    Stale {
        path: PathBuf,
        age: Duration,
        max_age: Duration,
    },
}

impl fmt::Display for NotLive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotLive::Missing(p, why) => write!(f, "not live: {}: {why}", p.display()),
            NotLive::Symlink(p) => write!(f, "not live: {} is a symlink", p.display()),
            NotLive::NotAFile(p) => write!(f, "not live: {} is not a regular file", p.display()),
            NotLive::Stale { path, age, max_age } => write!(
                f,
                "not live: {} last refreshed {}ms ago (max age {}ms): event loop stuck or gone",
                path.display(),
                age.as_millis(),
                max_age.as_millis()
            ),
        }
    }
}

/// The `live` check: the file exists, is a regular file (not a symlink) and was refreshed
/// within `max_age` of `now`.
pub fn check(path: &Path, max_age: Duration, now: SystemTime) -> Result<(), NotLive> {
    let meta = fs::symlink_metadata(path)
        .map_err(|e| NotLive::Missing(path.to_path_buf(), io_reason(&e)))?;
    if meta.file_type().is_symlink() {
        return Err(NotLive::Symlink(path.to_path_buf()));
    }
    if !meta.is_file() {
        return Err(NotLive::NotAFile(path.to_path_buf()));
    }
    let modified = meta
        .modified()
        .map_err(|e| NotLive::Missing(path.to_path_buf(), io_reason(&e)))?;
    // An mtime in the future (clock stepped back) counts as fresh: the loop did touch it.
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    if age > max_age {
        return Err(NotLive::Stale {
            path: path.to_path_buf(),
            age,
            max_age,
        });
    }
    Ok(())
}

/// `No such file or directory` rather than `... (os error 2)`.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
