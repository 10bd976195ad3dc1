//! The liveness file: created after bind, its mtime refreshed by every event-loop heartbeat (which
//! puts it back if it was removed or replaced), removed on exit if it is still the server's; and
//! the `lameduck live` check that reads it.
//!
//! Why a file and not an HTTP liveness endpoint: a liveness probe through the HTTP server fails
//! when the server is merely busy or draining, and Kubernetes then kills a healthy pod. A file
//! whose mtime the event loop refreshes says exactly "the loop is turning", and the check is the
//! binary itself, because a `scratch` image has no shell and no `cat`.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server's liveness file. It stays the server's own: the heartbeat puts it back if it was
/// removed or replaced, and [`LiveFile::remove`] (also run on drop, so every exit path that
/// unwinds removes it) leaves alone a file that is no longer ours.
#[derive(Debug)]
pub struct LiveFile {
    path: PathBuf,
    /// The file we wrote at `path`; `None` once removed.
    own: Option<Own>,
}

/// A liveness file this process wrote, kept open.
#[derive(Debug)]
struct Own {
    /// Kept open so a heartbeat is one `futimens` on the descriptor, with no path lookup that a
    /// swapped-in symlink could redirect. Holding it also pins the inode: while it is open no
    /// other file on that filesystem can be given the same number, so `id` stays unambiguous.
    file: File,
    /// Its identity, read once by `fstat` when it was written: it never changes.
    id: FileId,
}

/// Which file a path names: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// What a heartbeat did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The file at the path was ours: its mtime is now the heartbeat's time.
    Touched,
    /// The file at the path was not ours any more, so a new one was put there (atomically: the
    /// path never went missing during the repair).
    Recreated(Lost),
}

/// How the server's file left the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Nothing was at the path: an operator cleaned `/tmp`, or a server sharing the path removed
    /// it on its way out (the race described in [`LiveFile::remove`]).
    Removed,
    /// Something else was at the path: another server wrote its own file there.
    Replaced,
}

impl Lost {
    /// The `reason=` of the `live_file_recreated` log line.
    pub fn name(self) -> &'static str {
        match self {
            Lost::Removed => "removed",
            Lost::Replaced => "replaced",
        }
    }
}

impl LiveFile {
    /// Writes the file at `path` (replacing whatever regular file is there), refusing a symlink
    /// and anything that is not a regular file: at start-up those are a configuration mistake
    /// (or a trap in a shared `/tmp`) the operator should hear about.
    pub fn create(path: &Path) -> io::Result<LiveFile> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "{}: is a symlink; refusing to follow it",
                    path.display()
                )));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(io::Error::other(format!(
                    "{}: not a regular file",
                    path.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(path, e)),
        }
        Ok(LiveFile {
            path: path.to_path_buf(),
            own: Some(Own::install(path, SystemTime::now())?),
        })
    }

    /// "The event loop was here at `now`": refreshes the mtime if the file at the path is still
    /// ours, and otherwise puts a new one there. The common case costs one `lstat` and one
    /// `futimens`. After [`LiveFile::remove`] it is an error: a stopped server is not live.
    pub fn heartbeat(&mut self, now: SystemTime) -> io::Result<Heartbeat> {
        let Some(own) = &self.own else {
            return Err(io::Error::other(format!(
                "{}: already removed",
                self.path.display()
            )));
        };
        let lost = match fs::symlink_metadata(&self.path) {
            Ok(meta) if FileId::of(&meta) == own.id => {
                own.file.set_modified(now).map_err(|e| at(&self.path, e))?;
                return Ok(Heartbeat::Touched);
            }
            Ok(_) => Lost::Replaced,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Lost::Removed,
            Err(e) => return Err(at(&self.path, e)),
        };
        // Whatever is at the path now (even a symlink) is replaced, not followed: rename(2)
        // swaps the directory entry itself.
        self.own = Some(Own::install(&self.path, now)?);
        Ok(Heartbeat::Recreated(lost))
    }

    /// Removes the file if it is still ours; a file another server put at the path is left
    /// alone, since it tells the truth about that server. Calling it again does nothing.
    pub fn remove(&mut self) {
        let Some(own) = self.own.take() else {
            return;
        };
        // Check, then unlink: there is no "unlink if this inode" system call. Another server that
        // renames its file over the path between the two calls loses that file, and its next
        // heartbeat puts it back (reason=removed), so a probe can find the path missing for at
        // most one heartbeat. The window is two system calls wide.
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|meta| FileId::of(&meta) == own.id);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// Refreshes the file only if it is still ours, and otherwise leaves the path alone; says
    /// whether it was ours. For the moments when another process may rightly be taking the path
    /// over (a new process of an in-place upgrade, not yet ready), where a heartbeat that put
    /// our own file back would fight it.
    pub fn touch_if_ours(&self, now: SystemTime) -> io::Result<bool> {
        let Some(own) = &self.own else {
            return Ok(false);
        };
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if FileId::of(&meta) == own.id => {
                own.file.set_modified(now).map_err(|e| at(&self.path, e))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(at(&self.path, e)),
        }
    }

    /// Gives the path up without removing anything: another process (the new one of an
    /// in-place upgrade) owns it now, and its file must stay.
    pub fn release(mut self) {
        self.own = None;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Own {
    /// Writes a new file (our pid inside, mtime `now`) under a temporary name beside `path`, then
    /// renames it over `path`. rename(2) replaces the directory entry atomically, so `lameduck
    /// live` sees the old file or the new one, never a gap; and a second server starting on the
    /// same path gets its own inode instead of sharing (and later removing) ours.
    fn install(path: &Path, now: SystemTime) -> io::Result<Own> {
        let temp = temp_path(path)?;
        // O_EXCL: the file is created here and now, so it is a regular file and nothing planted
        // at that name (a symlink, a FIFO, another user's file) is ever opened; a clash is an
        // error, and the next heartbeat tries a new name. O_NOFOLLOW says so for symlinks
        // explicitly.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(|e| at(path, e))?;
        let written = (|| {
            writeln!(file, "{}", std::process::id())?;
            file.set_modified(now)?;
            let id = FileId::of(&file.metadata()?);
            fs::rename(&temp, path)?;
            Ok(id)
        })();
        match written {
            Ok(id) => Ok(Own { file, id }),
            Err(e) => {
                // The temporary file is ours (O_EXCL created it): don't leave it behind.
                let _ = fs::remove_file(&temp);
                Err(at(path, e))
            }
        }
    }
}

/// `.NAME.PID.NANOS.tmp` beside `path`. The pid and the time make it unique even for two servers
/// that share the directory and are both pid 1 in their containers.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{}: not a file name", path.display())))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.{nanos}.tmp", std::process::id()));
    Ok(path.with_file_name(temp))
}

/// Prefixes an I/O error with the path it concerns, for the log line.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Drop for LiveFile {
    fn drop(&mut self) {
        self.remove();
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
    /// The mtime is more than the max age ahead of the clock.
    Future {
        path: PathBuf,
        ahead: Duration,
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
            NotLive::Future {
                path,
                ahead,
                max_age,
            } => write!(
                f,
                "not live: {}: mtime is {}ms in the future (max age {}ms): clock stepped back or \
                 file forged",
                path.display(),
                ahead.as_millis(),
                max_age.as_millis()
            ),
        }
    }
}

/// The `live` check: the file exists, is a regular file (not a symlink) and its mtime is within
/// `max_age` of `now`, before or after.
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
    match now.duration_since(modified) {
        Ok(age) if age > max_age => Err(NotLive::Stale {
            path: path.to_path_buf(),
            age,
            max_age,
        }),
        // An mtime a little ahead is clock skew (a file system whose clock differs from ours):
        // fresh. Far ahead means the wall clock stepped back and no heartbeat has run since (a
        // turning loop rewrites the mtime with the new time within one heartbeat), or someone
        // wrote the mtime by hand: either way nothing shows the loop is turning.
        Err(ahead) if ahead.duration() > max_age => Err(NotLive::Future {
            path: path.to_path_buf(),
            ahead: ahead.duration(),
            max_age,
        }),
        _ => Ok(()),
    }
}

/// `No such file or directory` rather than `... (os error 2)`.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A private directory for one test, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(test: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("lameduck-live-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        fn file(&self) -> PathBuf {
            self.0.join("live")
        }

        /// Everything in the directory: no temporary file may be left behind.
        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ino(path: &Path) -> u64 {
        fs::symlink_metadata(path).unwrap().ino()
    }

    fn mtime(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    fn at_second(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn create_writes_the_pid_and_leaves_nothing_else() {
        let dir = Dir::new("create");
        let _live = LiveFile::create(&dir.file()).unwrap();
        let pid = fs::read_to_string(dir.file()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        assert_eq!(dir.entries(), ["live"]);
    }

    #[test]
    fn create_replaces_a_stale_file_with_a_new_inode() {
        // Another server's file (or a crashed one's) is replaced, not shared: sharing the inode
        // would let that server remove our file when it exits.
        let dir = Dir::new("stale");
        fs::write(dir.file(), "1\n").unwrap();
        let before = ino(&dir.file());
        let _live = LiveFile::create(&dir.file()).unwrap();
        assert_ne!(ino(&dir.file()), before);
    }

    #[test]
    fn heartbeat_touches_its_own_file() {
        let dir = Dir::new("touch");
        let mut live = LiveFile::create(&dir.file()).unwrap();
        let inode = ino(&dir.file());
        assert_eq!(live.heartbeat(at_second(1000)).unwrap(), Heartbeat::Touched);
        assert_eq!(mtime(&dir.file()), at_second(1000));
        assert_eq!(ino(&dir.file()), inode);
    }

    #[test]
    fn heartbeat_recreates_a_removed_file() {
        let dir = Dir::new("removed");
        let mut live = LiveFile::create(&dir.file()).unwrap();
        fs::remove_file(dir.file()).unwrap();
        assert_eq!(
            live.heartbeat(at_second(2000)).unwrap(),
            Heartbeat::Recreated(Lost::Removed)
        );
        assert_eq!(mtime(&dir.file()), at_second(2000));
        assert_eq!(dir.entries(), ["live"]);
        // The new file is the one we own from now on.
        assert_eq!(live.heartbeat(at_second(3000)).unwrap(), Heartbeat::Touched);
    }

    #[test]
    fn heartbeat_replaces_a_foreign_file_or_symlink() {
        let dir = Dir::new("replaced");
        let mut live = LiveFile::create(&dir.file()).unwrap();
        fs::remove_file(dir.file()).unwrap();
        fs::write(dir.file(), "someone else\n").unwrap();
        assert_eq!(
            live.heartbeat(at_second(4000)).unwrap(),
            Heartbeat::Recreated(Lost::Replaced)
        );
        let pid = fs::read_to_string(dir.file()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());

        // A symlink is replaced, never followed.
        let target = dir.0.join("precious");
        fs::write(&target, "keep").unwrap();
        fs::remove_file(dir.file()).unwrap();
        std::os::unix::fs::symlink(&target, dir.file()).unwrap();
        assert_eq!(
            live.heartbeat(at_second(5000)).unwrap(),
            Heartbeat::Recreated(Lost::Replaced)
        );
        assert!(fs::symlink_metadata(dir.file()).unwrap().is_file());
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(dir.entries(), ["live", "precious"]);
    }

    #[test]
    fn remove_leaves_a_foreign_file_and_is_idempotent() {
        let dir = Dir::new("foreign");
        let mut live = LiveFile::create(&dir.file()).unwrap();
        fs::remove_file(dir.file()).unwrap();
        fs::write(dir.file(), "another server\n").unwrap();
        live.remove();
        assert_eq!(fs::read_to_string(dir.file()).unwrap(), "another server\n");

        let other = dir.0.join("other");
        let mut live = LiveFile::create(&other).unwrap();
        live.remove();
        assert!(!other.exists());
        // A file appearing afterwards is not ours: neither a second remove nor the drop touch it.
        fs::write(&other, "later\n").unwrap();
        live.remove();
        drop(live);
        assert_eq!(fs::read_to_string(&other).unwrap(), "later\n");
    }

    #[test]
    fn create_refuses_a_symlink_and_a_directory() {
        let dir = Dir::new("refuse");
        std::os::unix::fs::symlink("/nonexistent", dir.file()).unwrap();
        let e = LiveFile::create(&dir.file()).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let e = LiveFile::create(&dir.0).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn check_allows_small_skew_and_refuses_a_far_future_mtime() {
        let dir = Dir::new("future");
        fs::write(dir.file(), "1\n").unwrap();
        let modified = mtime(&dir.file());
        let max_age = Duration::from_secs(10);
        // `now` before the mtime: as if the mtime were in the future.
        let skewed = modified - Duration::from_secs(2);
        assert_eq!(check(&dir.file(), max_age, skewed), Ok(()));
        let stepped_back = modified - Duration::from_secs(3600);
        let not_live = check(&dir.file(), max_age, stepped_back).unwrap_err();
        assert_eq!(
            not_live,
            NotLive::Future {
                path: dir.file(),
                ahead: Duration::from_secs(3600),
                max_age
            }
        );
        assert!(
            not_live
                .to_string()
                .ends_with(": mtime is 3600000ms in the future (max age 10000ms): clock stepped back or file forged"),
            "{not_live}"
        );
        // And the past side is unchanged.
        let late = modified + Duration::from_secs(11);
        assert!(matches!(
            check(&dir.file(), max_age, late),
            Err(NotLive::Stale { .. })
        ));
        assert_eq!(check(&dir.file(), max_age, modified), Ok(()));
    }
}
