//! The `FROM scratch` image works, proven without a container engine.
//!
//! The image is one static musl binary and an empty /tmp. Instead of building it, these tests
//! build the same binary the same way (deploy/build-static.sh, which the Dockerfile runs, as
//! tests/deploy.rs checks, in a copy of the build context that `.dockerignore` leaves), check
//! that the ELF file needs no dynamic loader or shared library, and then recreate the image as
//! a directory: the binary, an empty /tmp (1777), nothing else, not writable (the same layout
//! the build stage makes and the image copies: tests/deploy/image.rs). The server runs
//! there under chroot(2) as the manifest's non-root uid with no_new_privs and an empty
//! environment, with the manifest's exact argv; the manifest's liveness command runs inside
//! the same root. So "no libc, no shell, no `cat`, no writable root" are tested, not assumed.
//!
//! chroot needs root (CAP_SYS_CHROOT). Without it, or without the musl target or std's source,
//! the tests print why they skip; with `CI` set (as .ci/run does) a skip is a failure instead, so
//! CI cannot go green without the proof.
//!
//! tests/podman.rs builds and runs the real image with podman; this proof stays because it needs
//! no container engine (a developer without podman still runs it) and because it checks what the
//! engine test does not: the ELF headers, an empty environment, and the root's exact contents
//! while the server runs and after it exits.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

#[path = "deploy/image.rs"]
mod image;
#[path = "deploy/manifest.rs"]
mod manifest;
mod support;

use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use image::{lay_out_root, set_mode};
use manifest::{Manifest, dockerfile_final_stage, dockerfile_instruction, exec_form, with_flag};
use support::{Lameduck, PROMPT, field, get, request, run_command, skip_or_fail};

#[test]
fn musl_binary_is_static() {
    let Some(binary) = musl_binary() else { return };
    let bytes = std::fs::read(binary).expect("read musl binary");
    let elf = Elf::parse(&bytes);
    assert!(
        !elf.has_interp,
        "PT_INTERP present: needs a dynamic loader that scratch lacks"
    );
    assert_eq!(
        elf.needed, 0,
        "DT_NEEDED present: needs shared libraries that scratch lacks"
    );
    // Not asserted (sizes move with the compiler), but reported for the README.
    report(&format!(
        "musl binary: {} bytes ({} KiB), {}, {}",
        bytes.len(),
        bytes.len().div_ceil(1024),
        if elf.is_pie { "static-pie" } else { "static" },
        if elf.has_symtab {
            "not stripped"
        } else {
            "stripped"
        },
    ));
}

/// The whole life of a pod, in a directory that is the image.
#[test]
fn scratch_root_serves_probes_and_drains_as_non_root() {
    let Some(binary) = musl_binary() else { return };
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        skip("chroot(2) needs root (CAP_SYS_CHROOT); run as root to prove the scratch image");
        return;
    }
    let m = Manifest::load();
    let stage = dockerfile_final_stage();
    let entrypoint = exec_form(&dockerfile_instruction(&stage, "ENTRYPOINT"));
    let uid = m.run_as_user();
    let gid = m.run_as_group();
    let root = ImageRoot::create(binary, &entrypoint[0]);

    // The manifest's argv, on an ephemeral loopback port (we share this machine).
    let args = with_flag(&m.args(), "--port", "0");
    let args = with_flag(&args, "--addr", "127.0.0.1");
    // The liveness file, as seen from outside the root.
    let live_file = root.path.join(m.server_live_file().trim_start_matches('/'));
    let command = root.command(&entrypoint[0], &args, uid, gid);
    let mut server = match Lameduck::spawn(command, &live_file) {
        Ok(server) => server,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            skip(&format!(
                "chroot/setuid refused ({e}); is CAP_SYS_CHROOT missing?"
            ));
            return;
        }
        Err(e) => panic!("spawn the server in {}: {e}", root.path.display()),
    };

    // It really runs as the non-root uid, and wrote nothing but its liveness file, in /tmp.
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read /proc/PID/status");
    let uids = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid: line");
    let uid_text = uid.to_string();
    assert!(
        uids.split_whitespace().skip(1).all(|id| id == uid_text),
        "real/effective/saved/fs uid: {uids}"
    );
    assert_eq!(
        std::fs::metadata(&server.live_file)
            .expect("liveness file exists")
            .uid(),
        uid
    );
    assert_eq!(root.entries(), ["lameduck", "tmp", "tmp/lameduck.live"]);

    // Served from outside the root, over loopback.
    let hello = request(server.addr, &get("/"));
    assert_eq!(
        (hello.status, hello.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{hello:?}"
    );
    let ready = request(
        server.addr,
        &get(m.container().str("readinessProbe.httpGet.path")),
    );
    assert_eq!(ready.status, 200, "{ready:?}");

    // The livenessProbe, exactly as the kubelet would exec it, inside the same root.
    let probe = || {
        let argv = m.liveness_command();
        run_command(root.command(&argv[0], &argv[1..], uid, gid), PROMPT)
    };
    let live = probe();
    assert!(live.status.success(), "live while serving: {live:?}");

    // What Kubernetes does on scale-down or rollout: SIGTERM, then the lame-duck phase.
    server.signal(libc::SIGTERM);
    server.wait_for("event=announce");
    let lame = request(server.addr, &get("/health"));
    assert_eq!(
        lame.status, 503,
        "readiness during the lame-duck delay: {lame:?}"
    );
    let still = request(server.addr, &get("/"));
    assert_eq!(
        still.status, 200,
        "still serving during the lame-duck delay: {still:?}"
    );
    let live = probe();
    assert!(
        live.status.success(),
        "a shutting-down pod must stay live: {live:?}"
    );

    // A clean drain, well inside the pod's grace period.
    let status = server.wait_exit(m.termination_grace_period());
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log.join("\n"));
    if let Some(exit) = server
        .log
        .iter()
        .find(|l| field(l, "event") == Some("exit"))
    {
        assert_eq!(field(exit, "code"), Some("0"), "{exit}");
    }

    let dead = probe();
    assert_eq!(dead.status.code(), Some(1), "live after exit: {dead:?}");
    assert_eq!(
        root.entries(),
        ["lameduck", "tmp"],
        "liveness file removed on exit"
    );
}

// ---------------------------------------------------------------------------------------------
// The image as a directory

struct ImageRoot {
    path: PathBuf,
}

impl ImageRoot {
    /// The image's root file system (tests/deploy/image.rs: `/lameduck` 0555, `/tmp` 1777, as
    /// the Dockerfile's build stage makes them) in an otherwise empty directory, itself
    /// root-owned and read-only to everybody: the read-only root filesystem of the pod.
    fn create(binary: &Path, entrypoint: &str) -> ImageRoot {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("scratch-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        lay_out_root(binary, &path);
        assert!(
            path.join(entrypoint.trim_start_matches('/')).is_file(),
            "the image's ENTRYPOINT {entrypoint} is its binary"
        );
        set_mode(&path, 0o555);
        ImageRoot { path }
    }

    /// Everything in the root, as sorted relative paths.
    fn entries(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read root") {
                let path = entry.expect("dir entry").path();
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
                if path.is_dir() {
                    walk(&path, base, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path, &self.path, &mut out);
        out.sort();
        out
    }

    /// `program args...` confined like the container: chroot into the image root, drop to
    /// `uid:gid` with no supplementary groups, no_new_privs (allowPrivilegeEscalation: false),
    /// an empty environment, cwd `/`.
    fn command(&self, program: &str, args: &[String], uid: u32, gid: u32) -> Command {
        let root = CString::new(self.path.as_os_str().as_bytes()).expect("no NUL in path");
        let mut command = Command::new(program);
        command.args(args).env_clear();
        // SAFETY: the closure runs in the forked child before exec, and only makes
        // async-signal-safe system calls on memory prepared before the fork (`root`).
        unsafe {
            command.pre_exec(move || {
                cvt(libc::chroot(root.as_ptr()))?;
                cvt(libc::chdir(c"/".as_ptr()))?;
                cvt(libc::setgroups(0, std::ptr::null()))?;
                cvt(libc::setgid(gid))?;
                cvt(libc::setuid(uid))?;
                // prctl is variadic and the kernel demands the unused arguments be zero: pass
                // them full width.
                let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
                cvt(libc::prctl(
                    libc::PR_SET_NO_NEW_PRIVS,
                    one,
                    zero,
                    zero,
                    zero,
                ))?;
                Ok(())
            });
        }
        command
    }
}

impl Drop for ImageRoot {
    fn drop(&mut self) {
        set_mode(&self.path, 0o755);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Building the musl binary

/// Builds the release musl binary once per test run, or says why it can't (and skips).
fn musl_binary() -> Option<&'static Path> {
    image::musl_binary().map_err(skip).ok()
}

/// Prints past the test harness's output capture, so a skip is never silent.
fn report(message: &str) {
    let _ = writeln!(io::stderr(), "scratch_root: {message}");
}

fn skip(reason: &str) {
    skip_or_fail("scratch_root", reason);
}

// ---------------------------------------------------------------------------------------------
// Just enough ELF to tell a static binary from a dynamic one

struct Elf {
    /// PT_INTERP: the path of the dynamic loader (ld-linux / ld-musl) the kernel would start.
    has_interp: bool,
    /// DT_NEEDED entries: shared libraries the loader would have to find.
    needed: usize,
    /// ET_DYN: position-independent (static-pie is still static: no PT_INTERP, no DT_NEEDED).
    is_pie: bool,
    /// A .symtab section remains (strip = false).
    has_symtab: bool,
}

impl Elf {
    fn parse(b: &[u8]) -> Elf {
        assert_eq!(&b[..4], b"\x7fELF", "not an ELF file");
        assert_eq!((b[4], b[5]), (2, 1), "not 64-bit little-endian ELF");
        let u16_at = |at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
        const PT_DYNAMIC: u32 = 2;
        const PT_INTERP: u32 = 3;
        const DT_NEEDED: usize = 1;
        const ET_DYN: usize = 3;
        const SHT_SYMTAB: u32 = 2;

        let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
        let mut elf = Elf {
            has_interp: false,
            needed: 0,
            is_pie: u16_at(0x10) == ET_DYN,
            has_symtab: false,
        };
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            match u32_at(ph) {
                PT_INTERP => elf.has_interp = true,
                PT_DYNAMIC => {
                    let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
                    elf.needed = (offset..offset + size)
                        .step_by(16)
                        .map(u64_at)
                        .take_while(|&tag| tag != 0)
                        .filter(|&tag| tag == DT_NEEDED)
                        .count();
                }
                _ => {}
            }
        }
        let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3A), u16_at(0x3C));
        elf.has_symtab = (0..shnum).any(|i| u32_at(shoff + i * shentsize + 4) == SHT_SYMTAB);
        elf
    }
}
