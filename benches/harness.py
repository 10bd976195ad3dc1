#!/usr/bin/env python3
"""benches/harness.py: runs the comparison that benches/compare.sh builds for.

compare.sh builds every server and then execs this file; run it directly only when the binaries
already exist. Standard library only (Python >= 3.9: os.pidfd_open).

For each round, for each server (A B C ... A B C ...):
  instance 1: start pinned to SERVER_CPU, wait for GET /health == 200, read idle VmRSS;
              warm up; run every load profile with wrk pinned to CLIENT_CPU, reading the
              server's utime+stime from /proc/PID/stat before and after each run; read VmRSS and
              VmHWM after load; wait until the server holds no TCP connection; send the stop
              signal and time it to exit (pidfd, not a sleep loop).
  instance 2: start fresh, read VmRSS, open IDLE_CONNS keep-alive connections with one request
              each, read VmRSS again: (delta / connections) is user-space memory per idle
              connection (kernel socket buffers are not in RSS). Then kill it.
Every figure is also divided by the BASELINE server's (nginx) figure from the same round; the
reports give medians over rounds of both. Outputs: results.json, results.md, results.png.
"""

import json
import os
import platform
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


QUICK = os.environ.get("QUICK", "0") not in ("", "0")
ROUNDS = env_int("ROUNDS", 1 if QUICK else 3)
DURATION = env_int("DURATION", 2 if QUICK else 10)  # whole seconds per wrk run (wrk's unit)
WARMUP = env_int("WARMUP", 1 if QUICK else 2)  # seconds of unmeasured load per instance
IDLE_CONNS = env_int("IDLE_CONNS", 2000 if QUICK else 10000)
PIPELINE_DEPTH = env_int("PIPELINE_DEPTH", 16)
# SCHED=fifo runs server and wrk as SCHED_FIFO (chrt -f 1): on a shared machine where another
# cgroup keeps both cores busy, CFS hands each side only its group's share and both sit waiting;
# real-time priority takes the cores back (the kernel's RT throttle still leaves others 5 %).
SCHED = os.environ.get("SCHED", "other")
SCHED_PREFIX = ["chrt", "-f", "1"] if SCHED == "fifo" else []
SERVER_CPU = os.environ.get("SERVER_CPU", "1")
CLIENT_CPU = os.environ.get("CLIENT_CPU", "0")
BASE_PORT = env_int("BASE_PORT", 18080)
BASELINE = os.environ.get("BASELINE", "nginx")
OUT_DIR = Path(os.environ.get("OUT_DIR", BENCHES / "results"))
TMP = OUT_DIR / "tmp"
PERF = [s for s in os.environ.get("PERF", "").split(",") if s]  # servers to `perf record`
LAMEDUCK_BIN = os.environ.get("LAMEDUCK_BIN", str(ROOT / "target/release/lameduck"))
LAMEDUCK_MUSL_BIN = os.environ.get(
    "LAMEDUCK_MUSL_BIN", str(ROOT / "target/x86_64-unknown-linux-musl/release/lameduck"))
PEERS_BIN = Path(os.environ.get("PEERS_BIN", BENCHES / "peers/target/release"))
NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
# LD_PRELOAD shim counting malloc & co. (alloc/alloccount.c, built by compare.sh); ALLOCS=0 skips.
ALLOC_SHIM = Path(os.environ.get("ALLOC_SHIM", BENCHES / "peers/target/alloccount.so"))
ALLOCS = os.environ.get("ALLOCS", "1") not in ("", "0") and ALLOC_SHIM.exists()
ALLOC_REQS = env_int("ALLOC_REQS", 10000)
# Connection limit for the servers that have one (lameduck, nginx): room for the idle test.
MAX_CONNS = max(IDLE_CONNS, 10000) + 1000
START_TIMEOUT = 10.0  # seconds for a server to answer /health
STOP_TIMEOUT = 40.0  # seconds for a server to exit after its stop signal (peers drain up to 30 s)

# (name, connections, pipeline depth): the three load profiles of docs/design.md.
ALL_PROFILES = {
    "c64": (64, 1),
    "c512": (512, 1),
    f"p{PIPELINE_DEPTH}": (64, PIPELINE_DEPTH),
}
PROFILES = [p for p in os.environ.get("PROFILES", ",".join(ALL_PROFILES)).split(",") if p]

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOADAVG_AT_START = "?"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The servers. argv(port) builds the command line; `stop` is the signal of its graceful stop.

# GET /blob (large.py, slow_readers.py): every server answers BLOB_LEN bytes where byte i is
# i % 251, and `?bytes=N` the first N. nginx reads them from files, one per size in BLOB_SIZES.
BLOB_LEN = 8 * 1024 * 1024
BLOB_SIZES = (1024 * 1024, BLOB_LEN)


def blob_bytes(n):
    """The first n bytes of the shared body every server's GET /blob answers."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def blob_dir():
    """nginx's /blob files, written once: blob-N holds the first N bytes of the body."""
    d = TMP / "blob"
    d.mkdir(parents=True, exist_ok=True)
    for n in BLOB_SIZES:
        f = d / f"blob-{n}"
        if not f.exists() or f.stat().st_size != n:
            f.write_bytes(blob_bytes(n))
    return d


class NoBlobRoute(RuntimeError):
    """The server answers GET /blob 404: a lameduck build from before issue 15's routes."""


def check_blob(port, sizes):
    """Fails unless GET /blob?bytes=N answers 200 with the right N bytes for every N in sizes."""
    for n in sizes:
        status, body = get(port, f"/blob?bytes={n}", timeout=10)
        if status == 404:
            raise NoBlobRoute(f"GET /blob?bytes={n} answered 404: this build has no /blob route")
        if status != 200 or body != blob_bytes(n):
            raise RuntimeError(f"GET /blob?bytes={n} answered {status} with {len(body)} bytes "
                               f"{'(wrong content)' if len(body) == n else ''}")


def probe_ms(port, path, timeout=5.0):
    """Milliseconds for `GET path` on a fresh connection to be answered in full: (ms, status),
    or (None, the error's name) when it failed or took longer than `timeout` per step."""
    t0 = time.perf_counter()
    try:
        status, _ = get(port, path, timeout=timeout)
    except OSError as e:
        return None, type(e).__name__
    return (time.perf_counter() - t0) * 1000, status


def nginx_conf(port):
    """One worker, no master (so one PID holds all of the work and memory), no access log."""
    prefix = TMP / f"nginx-{port}"
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text((BENCHES / "nginx/nginx.conf.in").read_text()
                    .replace("@PORT@", str(port)).replace("@PREFIX@", str(prefix))
                    .replace("@BLOBDIR@", str(blob_dir()))
                    .replace("@CONNS@", str(MAX_CONNS))
                    .replace("@NOFILE@", str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
    return conf


def lameduck_argv(binary, port):
    return [binary, "serve", "--addr", "127.0.0.1", "--port", str(port),
            "--shutdown-delay", "0", "--max-conns", str(MAX_CONNS),
            "--live-file", str(TMP / f"lameduck-{port}.live")] \
        + os.environ.get("LAMEDUCK_ARGS", "").split()


SERVERS = {
    "lameduck": dict(
        argv=lambda p: lameduck_argv(LAMEDUCK_BIN, p),
        bin=LAMEDUCK_BIN, stop=signal.SIGTERM,
        what="lameduck (mio, one thread), host target build, --shutdown-delay 0"),
    "lameduck-musl": dict(
        argv=lambda p: lameduck_argv(LAMEDUCK_MUSL_BIN, p),
        bin=LAMEDUCK_MUSL_BIN, stop=signal.SIGTERM,
        what="the same, static musl build (what the scratch image ships), --shutdown-delay 0"),
    "floor": dict(
        argv=lambda p: [str(PEERS_BIN / "floor"), str(p)],
        bin=str(PEERS_BIN / "floor"), stop=signal.SIGTERM,
        what="minimal C epoll responder (the floor; no graceful stop: SIGTERM kills it)"),
    "hyper": dict(
        argv=lambda p: [str(PEERS_BIN / "peer-hyper"), str(p)],
        bin=str(PEERS_BIN / "peer-hyper"), stop=signal.SIGTERM,
        what="hyper 1.x http1, tokio current-thread, GracefulShutdown"),
    "axum": dict(
        argv=lambda p: [str(PEERS_BIN / "peer-axum"), str(p)],
        bin=str(PEERS_BIN / "peer-axum"), stop=signal.SIGTERM,
        what="axum 0.8, tokio current-thread, with_graceful_shutdown"),
    "actix": dict(
        argv=lambda p: [str(PEERS_BIN / "peer-actix"), str(p)],
        bin=str(PEERS_BIN / "peer-actix"), stop=signal.SIGTERM,
        what="actix-web 4, workers(1), built-in graceful stop"),
    "go-chi": dict(
        argv=lambda p: [str(PEERS_BIN / "peer-go-chi"), str(p)],
        env={"GOMAXPROCS": "1"}, malloc=False,  # Go's allocator does not go through malloc
        bin=str(PEERS_BIN / "peer-go-chi"), stop=signal.SIGTERM,
        what="Go net/http + chi, GOMAXPROCS=1, Server.Shutdown"),
    "nginx": dict(
        argv=lambda p: [NGINX_BIN, "-p", str(TMP / f"nginx-{p}"), "-c", str(nginx_conf(p)),
                        "-e", "stderr"],
        bin=NGINX_BIN, stop=signal.SIGQUIT,
        what="nginx, one process, return 200; SIGQUIT (its graceful stop)"),
}
SERVER_NAMES = [s for s in os.environ.get("SERVERS", ",".join(SERVERS)).split(",") if s]

# lameduck's side of the /blob runs (large.py, slow_readers.py) is examples/slow_work.rs, which
# serves GET /blob from one shared allocation (issue 15); the `lameduck` binary has no such route.
SLOW_WORK_BIN = os.environ.get("SLOW_WORK_BIN", str(ROOT / "target/release/examples/slow_work"))


def blob_servers():
    """The servers of the /blob runs: the peers above, and lameduck as examples/slow_work."""
    specs = {"lameduck": dict(
        argv=lambda p: lameduck_argv(SLOW_WORK_BIN, p), bin=SLOW_WORK_BIN, stop=signal.SIGTERM,
        what="lameduck's examples/slow_work (mio, one thread; /blob one shared allocation), "
             "--shutdown-delay 0")}
    how = {
        "floor": "minimal C epoll responder; writev of the head and a pointer into one static "
                 "buffer, the rest queued by reference after a short write",
        "hyper": "hyper 1.x http1, tokio current-thread; a Bytes slice of one allocation",
        "axum": "axum 0.8, tokio current-thread; a Bytes slice of one allocation",
        "actix": "actix-web 4, workers(1); a web::Bytes of one allocation, which actix-web's "
                 "encoder copies into the connection's write buffer",
        "go-chi": "Go net/http + chi, GOMAXPROCS=1; a slice of one package-level []byte",
        "nginx": "nginx, one process; one file per size (page cache), sendfile on",
    }
    for name, what in how.items():
        specs[name] = dict(SERVERS[name], what=what)
    return specs


# ---------------------------------------------------------------------------------------------
# /proc readers

def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def proc_cpu_seconds(pid):
    """utime + stime of the whole thread group (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def server_side_conns(port):
    """TCP sockets whose local port is `port`, other than LISTEN and TIME_WAIT."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state = parts[1], parts[3]
                    if int(local.rsplit(":", 1)[1], 16) == port and state not in ("0A", "06"):
                        n += 1
        except FileNotFoundError:
            pass
    return n


# ---------------------------------------------------------------------------------------------
# A tiny blocking HTTP client (readiness checks and the idle-connection test).

def read_response(sock):
    """Reads one response with a Content-Length body; returns (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, first = buf.split(b"\r\n\r\n", 1)
    body = bytearray(first)  # grows in place: /blob bodies are megabytes
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return status, bytes(body)


def get(port, path, sock=None, timeout=2.0):
    """`GET path` on `sock`, or on a new connection that waits at most `timeout` s per step;
    returns (status, body)."""
    own = sock is None
    if own:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        return read_response(sock)
    finally:
        if own:
            sock.close()


def port_is_free(port):
    """Free to listen on, as the servers do: with SO_REUSEADDR (TIME_WAIT does not count)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Server processes

class Server:
    def __init__(self, name, port, tag, extra_env=None, spec=None):
        """`spec` (argv, stop, env, ...) defaults to SERVERS[name]; inflight.py passes its own."""
        self.name, self.port, self.spec = name, port, spec or SERVERS[name]
        if not port_is_free(port):
            raise RuntimeError(f"port {port} is busy")
        env = dict(os.environ, **self.spec.get("env", {}), **(extra_env or {}))
        self.log_path = TMP / "logs" / f"{name}-{tag}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            # taskset and chrt exec what follows, so the PID is the server's own.
            SCHED_PREFIX + ["taskset", "-c", SERVER_CPU] + self.spec["argv"](port),
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        self.pidfd = os.pidfd_open(self.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode} at start "
                                   f"(log: {self.log_path})")
            try:
                status, _ = get(port, "/health")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{name} did not answer /health within {START_TIMEOUT}s")
            time.sleep(0.02)
        status, body = get(port, "/")
        if status != 200 or body != b"Hello, World!":
            self.kill()
            raise RuntimeError(f"{name}: GET / answered {status} {body!r}")

    def wait_no_conns(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while server_side_conns(self.port) and time.monotonic() < deadline:
            time.sleep(0.01)
        return server_side_conns(self.port)

    def stop_timed(self):
        """Sends the graceful stop signal; returns milliseconds until the process exited."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        t0 = time.perf_counter_ns()
        os.kill(self.pid, self.spec["stop"])
        ready = poller.poll(STOP_TIMEOUT * 1000)
        t1 = time.perf_counter_ns()
        if not ready:
            self.kill()
            return None, None
        code = self.proc.wait()
        self.close()
        return (t1 - t0) / 1e6, code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self):
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.log_file.close()


# ---------------------------------------------------------------------------------------------
# Load

def run_wrk(port, conns, depth, duration, path="/", watch=None):
    """Runs wrk; returns its JSON summary plus its own CPU time. `watch(proc)`, if given, is
    called once wrk has started and may sample the server until `proc` exits."""
    script = BENCHES / "wrk" / ("pipeline.lua" if depth > 1 else "report.lua")
    cmd = SCHED_PREFIX + ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{duration}s",
           "--timeout", "5s", "-s", str(script), f"http://127.0.0.1:{port}{path}"]
    if depth > 1:
        cmd += ["--", str(depth)]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if watch:
        watch(proc)
    stdout, stderr = proc.communicate(timeout=duration + 60)
    out = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            w = json.loads(line[len("WRK_JSON "):])
            # chrt/taskset exec wrk, so this child's rusage is wrk's own CPU time.
            w["client_cpu_s"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            return w
    raise RuntimeError(f"wrk gave no report (exit {out.returncode}): "
                       f"{(out.stderr or out.stdout).strip().splitlines()[:1]}")


def measure_load(server, profile, perf_out=None):
    conns, depth = ALL_PROFILES[profile]
    perf = None
    if perf_out:
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(server.pid),
                                 "-o", str(perf_out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0 = proc_cpu_seconds(server.pid)
    w = run_wrk(server.port, conns, depth, DURATION)
    cpu1 = proc_cpu_seconds(server.pid)
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        report = subprocess.run(["perf", "report", "-i", str(perf_out), "--no-children",
                                 "--sort", "dso,symbol", "--stdio", "-g", "none",
                                 "--percent-limit", "0.5"],
                                capture_output=True, text=True)
        perf_out.with_suffix(".txt").write_text(report.stdout)
        log(f"    perf profile: {perf_out.with_suffix('.txt')}")
    reqs = w["requests"]
    errors = sum(w["errors"].values())
    r = {
        "requests": reqs,
        "rps": reqs / (w["duration_us"] / 1e6),
        "cpu_s": cpu1 - cpu0,
        "cpu_us_per_req": (cpu1 - cpu0) * 1e6 / reqs if reqs else None,
        "server_cpu_util": (cpu1 - cpu0) / (w["duration_us"] / 1e6),
        # Near 100 % means wrk, not the server, set the pace: compare CPU/req, not req/s.
        "client_cpu_util": w["client_cpu_s"] / (w["duration_us"] / 1e6),
        "errors": errors,
        "errors_detail": w["errors"],
    }
    if depth == 1:
        r["p50_ms"] = w["p50_us"] / 1000
        r["p99_ms"] = w["p99_us"] / 1000
    return r


def measure_idle_conns(name, port, tag):
    """Fresh instance; RSS delta per idle keep-alive connection after one request on each."""
    server = Server(name, port, tag + "-idle")
    socks = []
    try:
        server.wait_no_conns()
        time.sleep(0.2)
        base = proc_status_kib(server.pid, "VmRSS")
        for _ in range(IDLE_CONNS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
            status, _ = get(port, "/", sock=s)
            if status != 200:
                raise RuntimeError(f"{name}: idle-connection request answered {status}")
        time.sleep(1.0)  # let the server settle (lazy frees, runtime housekeeping)
        rss = proc_status_kib(server.pid, "VmRSS")
        # A connection the server closed meanwhile reads as EOF: count the ones still open.
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        alive = len(socks) - len(poller.poll(0))
        return {
            "conns": len(socks), "alive": alive, "rss_before_kib": base, "rss_after_kib": rss,
            "bytes_per_conn": (rss - base) * 1024 / len(socks),
        }
    finally:
        server.kill()  # the server closes first, so TIME_WAIT lands on its side
        for s in socks:
            s.close()
        (TMP / f"lameduck-{port}.live").unlink(missing_ok=True)  # SIGKILL left it behind


def measure_allocs(name, port, tag):
    """Heap allocations per request, per pipelined request and per connection (malloc shim)."""
    counts = TMP / f"allocs-{name}.cnt"
    counts.unlink(missing_ok=True)
    server = Server(name, port, tag + "-allocs",
                    {"LD_PRELOAD": str(ALLOC_SHIM), "ALLOC_COUNT_FILE": str(counts)})

    def total():
        data = counts.read_bytes()[:32]  # malloc, calloc, realloc, aligned (not free)
        return sum(int.from_bytes(data[i:i + 8], "little") for i in range(0, 32, 8))

    req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    try:
        if not counts.exists() or total() == 0:
            return None  # the shim did not load (static binary) or nothing calls malloc
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        for _ in range(200):  # warm: first-use allocations are not per request
            get(port, "/", sock=sock)
        a = total()
        for _ in range(ALLOC_REQS):
            get(port, "/", sock=sock)
        b = total()
        depth = PIPELINE_DEPTH
        batches = max(1, ALLOC_REQS // depth)
        for _ in range(batches):
            sock.sendall(req * depth)
            for _ in range(depth):
                read_response_buffered(sock)
        c = total()
        sock.close()
        conns = max(1, ALLOC_REQS // 10)
        for _ in range(conns):
            get(port, "/")
        server.wait_no_conns()
        d = total()
        per_req = (b - a) / ALLOC_REQS
        return {"per_request": per_req, "per_pipelined_request": (c - b) / (batches * depth),
                "per_connection": (d - c) / conns - per_req}
    finally:
        server.kill()
        (TMP / f"lameduck-{port}.live").unlink(missing_ok=True)


_pending = {}


def read_response_buffered(sock):
    """read_response for pipelined replies: keeps bytes past one response for the next call."""
    buf = _pending.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        rest += chunk
    _pending[sock.fileno()] = rest[length:]
    return int(head.split()[1])


def measure_server(name, round_no, port):
    tag = f"r{round_no}"
    res = {"profiles": {}}
    server = Server(name, port, tag)
    try:
        server.wait_no_conns()
        time.sleep(0.2)
        res["idle_rss_kib"] = proc_status_kib(server.pid, "VmRSS")
        # VmRSS also counts mapped file pages (the binary, libc); RssAnon is the heap, stacks
        # and other private memory the server itself created.
        res["idle_rss_anon_kib"] = proc_status_kib(server.pid, "RssAnon")
        if WARMUP > 0:
            run_wrk(port, 64, 1, WARMUP)
        for profile in PROFILES:
            perf_out = None
            if name in PERF and round_no == 1:
                perf_out = TMP / f"perf-{name}-{profile}.data"
            res["profiles"][profile] = measure_load(server, profile, perf_out)
            p = res["profiles"][profile]
            log(f"    {name:9} {profile:5} {p['rps']:>11,.0f} req/s  "
                f"{p['cpu_us_per_req']:6.2f} µs/req  cpu {p['server_cpu_util']:.0%}"
                f" (wrk {p['client_cpu_util']:.0%})"
                + (f"  p50 {p['p50_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms" if "p50_ms" in p else "")
                + (f"  ERRORS {p['errors']}" if p["errors"] else ""))
        res["rss_after_load_kib"] = proc_status_kib(server.pid, "VmRSS")
        res["peak_rss_kib"] = proc_status_kib(server.pid, "VmHWM")
        left = server.wait_no_conns()
        res["conns_at_stop"] = left
        res["stop_ms"], res["exit_code"] = server.stop_timed()
    except BaseException:
        server.kill()
        raise
    if IDLE_CONNS > 0:
        res["idle"] = measure_idle_conns(name, port, tag)
    if (ALLOCS and round_no == 1 and SERVERS[name].get("malloc", True)
            and not binary_info(SERVERS[name]["bin"]).get("static")):  # LD_PRELOAD needs ld.so
        res["allocs"] = measure_allocs(name, port, tag)
        if res["allocs"]:
            a = res["allocs"]
            log(f"    {name:9} heap allocations: {a['per_request']:.2f}/request, "
                f"{a['per_pipelined_request']:.2f}/pipelined request, "
                f"{a['per_connection']:.1f}/connection")
    log(f"    {name:9} idle {res['idle_rss_kib']} KiB, peak {res['peak_rss_kib']} KiB, "
        f"stop {res['stop_ms'] and round(res['stop_ms'], 2)} ms (exit {res['exit_code']})"
        + (f", {res['idle']['bytes_per_conn']:.0f} B/idle conn "
           f"({res['idle']['alive']}/{res['idle']['conns']} open)" if "idle" in res else ""))
    return res


# ---------------------------------------------------------------------------------------------
# Figures, ratios, medians

# (key, label, unit, path into a round's result, lower is better)
def figures():
    out = []
    for prof in PROFILES:
        out.append((f"{prof}.rps", f"{prof} req/s", "req/s", (prof, "rps"), False))
        if ALL_PROFILES[prof][1] == 1:
            out.append((f"{prof}.p50_ms", f"{prof} p50", "ms", (prof, "p50_ms"), True))
            out.append((f"{prof}.p99_ms", f"{prof} p99", "ms", (prof, "p99_ms"), True))
        out.append((f"{prof}.cpu_us_per_req", f"{prof} CPU/req", "µs", (prof, "cpu_us_per_req"),
                    True))
    out += [
        ("idle_rss_kib", "idle RSS", "KiB", ("idle_rss_kib",), True),
        ("idle_rss_anon_kib", "idle RssAnon", "KiB", ("idle_rss_anon_kib",), True),
        ("peak_rss_kib", "peak RSS", "KiB", ("peak_rss_kib",), True),
        ("rss_after_load_kib", "RSS after load", "KiB", ("rss_after_load_kib",), True),
        ("bytes_per_idle_conn", "per idle conn", "B", ("idle", "bytes_per_conn"), True),
        ("stop_ms", "stop → exit", "ms", ("stop_ms",), True),
        ("allocs_per_req", "allocs/request", "n", ("allocs", "per_request"), True),
        ("allocs_per_pipelined_req", "allocs/pipelined request", "n",
         ("allocs", "per_pipelined_request"), True),
        ("allocs_per_conn", "allocs/connection", "n", ("allocs", "per_connection"), True),
    ]
    return out


def pick(res, path):
    if len(path) == 2 and path[0] in res.get("profiles", {}):
        return res["profiles"][path[0]].get(path[1])
    cur = res
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(rounds, names):
    summary = {}
    for name in names:
        s = {}
        for key, _, _, path, _ in figures():
            vals, ratios = [], []
            for rnd in rounds:
                res = rnd.get(name)
                base = rnd.get(BASELINE)
                v = pick(res, path) if isinstance(res, dict) else None
                vals.append(v)
                b = pick(base, path) if isinstance(base, dict) else None
                ratios.append(v / b if v is not None and b else None)
            s[key] = {"median": median(vals), "ratio_median": median(ratios),
                      "rounds": vals, "ratios": ratios}
        summary[name] = s
    return summary


def ratio_median(rounds, a, b, path):
    """Median over rounds of a's figure / b's figure from the same round."""
    rs = []
    for rnd in rounds:
        ra, rb = rnd.get(a), rnd.get(b)
        if isinstance(ra, dict) and isinstance(rb, dict):
            va, vb = pick(ra, path), pick(rb, path)
            if va is not None and vb:
                rs.append(va / vb)
    return median(rs)


def target_checks(rounds, summary, name):
    """The performance targets (docs/design.md) for one lameduck build: (target, measured, met or
    None if unmeasured)."""
    out = []
    p16 = f"p{PIPELINE_DEPTH}"

    def vs(other, path, limit, text, fmt_r="{:.2f}×", ge=False):
        if other not in summary and other != name:
            return
        r = ratio_median(rounds, name, other, path)
        met = None if r is None else (r >= limit if ge else r <= limit)
        out.append((text, "–" if r is None else fmt_r.format(r), met))

    def absolute(key, limit, text, unit):
        v = summary[name].get(key, {}).get("median")
        out.append((text, "–" if v is None else f"{fmt(v, unit)} {unit}", None if v is None
                    else v <= limit))

    if "c64" in PROFILES:
        vs("nginx", ("c64", "cpu_us_per_req"), 1.0, "c64 CPU/req ≤ nginx's")
        vs("hyper", ("c64", "cpu_us_per_req"), 1.0, "c64 CPU/req ≤ hyper's")
        vs("floor", ("c64", "cpu_us_per_req"), 1.05, "c64 CPU/req within 5 % of the floor")
    if p16 in PROFILES:
        vs("nginx", (p16, "rps"), 8.0, f"{p16} req/s ≥ 8× nginx's", ge=True)
        if "actix" in summary:
            r = ratio_median(rounds, "actix", name, (p16, "cpu_us_per_req"))
            out.append((f"{p16} CPU efficiency ≥ 1.5× actix's",
                        "–" if r is None else f"{r:.2f}×", None if r is None else r >= 1.5))
    absolute("idle_rss_kib", 512, "idle RSS ≤ 0.5 MiB", "KiB")
    absolute("peak_rss_kib", 2048, "peak RSS after load ≤ 2 MiB", "KiB")
    absolute("bytes_per_idle_conn", 1024, "≤ 1 KiB per idle keep-alive connection", "B")
    absolute("stop_ms", 2.5, "SIGTERM → exit ≤ 2.5 ms (no connections, no delay)", "ms")
    v = summary[name].get("allocs_per_req", {}).get("median")
    if v is not None:
        out.append(("no heap allocation per request (keep-alive; pipelined)",
                    f"{v:.2f}; {summary[name]['allocs_per_pipelined_req']['median']:.2f}",
                    v < 0.01 and summary[name]["allocs_per_pipelined_req"]["median"] < 0.01))
    return out


def elf_has_interp(path):
    """Whether a 64-bit little-endian ELF file asks for a dynamic loader (PT_INTERP)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return True  # not ELF64: assume dynamic, so nothing static-only is claimed
        phoff = int.from_bytes(head[0x20:0x28], "little")
        phentsize = int.from_bytes(head[0x36:0x38], "little")
        phnum = int.from_bytes(head[0x38:0x3a], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(int.from_bytes(table[i:i + 4], "little") == 3  # PT_INTERP
               for i in range(0, len(table), phentsize))


def binary_info(path):
    """Stripped size (strip a copy) and whether the file is statically linked."""
    info = {"path": path}
    try:
        real = os.path.realpath(path)
        tmp = TMP / ("strip-" + Path(real).name)
        subprocess.run(["cp", real, str(tmp)], check=True)
        subprocess.run(["strip", str(tmp)], check=True, capture_output=True)
        info["stripped_bytes"] = tmp.stat().st_size
        info["file_bytes"] = Path(real).stat().st_size
        info["static"] = not elf_has_interp(real)
        tmp.unlink()
    except (OSError, subprocess.CalledProcessError) as e:
        info["error"] = str(e)
    return info


# ---------------------------------------------------------------------------------------------
# Reports

def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "req/s":
        return f"{v:,.0f}"
    if unit in ("KiB", "B"):
        return f"{v:,.0f}"
    if unit == "µs":
        return f"{v:.2f}"
    if unit == "ms":
        return f"{v:.2f}" if v < 100 else f"{v:,.0f}"
    if unit == "n":
        return f"{v:.2f}" if v < 100 else f"{v:,.0f}"
    return f"{v}"


def cell(s, key, unit):
    f = s[key]
    if f["median"] is None:
        return "–"
    r = f["ratio_median"]
    return fmt(f["median"], unit) + (f" ({r:.2f}×)" if r is not None else "")


def report_tail(goals, goal_heading, goal_note, names, specs, skipped, section, raw):
    """The end of a large-answer or slow-reader report: the goals met or not, what each server
    is, what could not be measured, and where the figures are explained. Returns the lines."""
    lines = []
    if goals:
        lines += [f"\n## {goal_heading}\n", f"{goal_note}\n",
                  "| goal | measured | met |", "|---|--:|:-:|"]
        lines += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in goals]
    lines.append("\n## Servers\n")
    for n in names:
        lines.append(f"- **{n}**: {specs[n]['what']}.")
    if skipped:
        lines.append("\n## Not measured\n")
        lines += [f"- **{n}**: {why}" for n, why in skipped.items()]
    lines.append(f"\nFigures are explained in `benches/README.md` (\"{section}\"). {raw}\n")
    return lines


def write_markdown(path, meta, summary, names, bins, errors, failures):
    L = []
    L.append("# lameduck vs framework servers\n")
    sched = ", both SCHED_FIFO" if SCHED == "fifo" else ""
    L.append(f"Generated by `benches/compare.sh` on {meta['date']} "
             f"(lameduck {meta['lameduck_commit']}). Host: {meta['cpu']}, {meta['ncpu']} cores, "
             f"Linux {meta['kernel']}, load average {meta['loadavg_at_start']} at start. "
             f"Server pinned to CPU {SERVER_CPU}, wrk (1 thread) to CPU {CLIENT_CPU}{sched}. "
             f"{meta['rounds']} interleaved rounds × {meta['duration_s']:g} s per profile; each "
             f"cell is the median over rounds, and in brackets the median of the per-round ratio "
             f"to **{BASELINE}** (same round). Lower is better except req/s. \"disturbed\" "
             f"counts rounds in which neither server nor wrk reached 70 % CPU: another process "
             f"had the cores, so that round's req/s and latency measure the machine.\n")
    for prof in PROFILES:
        conns, depth = ALL_PROFILES[prof]
        title = f"{conns} connections" + (f", pipelined {depth} deep" if depth > 1 else
                                          ", keep-alive, one request in flight each")
        L.append(f"\n## {prof}: {title}\n")
        if depth > 1:
            L.append("| server | req/s | server CPU µs/req | CPU use server / wrk | disturbed |")
            L.append("|---|--:|--:|--:|--:|")
        else:
            L.append("| server | req/s | p50 ms | p99 ms | server CPU µs/req | CPU use server / wrk "
                     "| disturbed |")
            L.append("|---|--:|--:|--:|--:|--:|--:|")
        for name in names:
            s = summary[name]
            util_s = []
            for which in ("server_cpu_util", "client_cpu_util"):
                u = median([pick(rnd.get(name), (prof, which))
                            for rnd in meta["_rounds"] if isinstance(rnd.get(name), dict)])
                util_s.append(f"{u:.0%}" if u is not None else "–")
            util_s = " / ".join(util_s)
            # Neither side near saturation: something else had the cores (see README).
            disturbed = sum(1 for rnd in meta["_rounds"] if isinstance(rnd.get(name), dict)
                            and (pick(rnd[name], (prof, "server_cpu_util")) or 1) < 0.7
                            and (pick(rnd[name], (prof, "client_cpu_util")) or 1) < 0.7)
            util_s += f" | {disturbed}/{len(meta['_rounds'])}" if disturbed else " | "
            err = errors.get((name, prof))
            tag = f" ⚠ {err} errors" if err else ""
            if depth > 1:
                L.append(f"| {name}{tag} | {cell(s, prof + '.rps', 'req/s')} | "
                         f"{cell(s, prof + '.cpu_us_per_req', 'µs')} | {util_s} |")
            else:
                L.append(f"| {name}{tag} | {cell(s, prof + '.rps', 'req/s')} | "
                         f"{cell(s, prof + '.p50_ms', 'ms')} | {cell(s, prof + '.p99_ms', 'ms')} | "
                         f"{cell(s, prof + '.cpu_us_per_req', 'µs')} | {util_s} |")
    L.append(f"\n## Memory, shutdown, size\n")
    L.append(f"| server | idle RSS KiB | idle RssAnon KiB | peak RSS KiB (VmHWM after load) | "
             f"RSS after load KiB | B per idle keep-alive conn ({IDLE_CONNS:,} open) | "
             f"stop signal → exit ms | stripped binary KiB |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|")
    base_bin = bins.get(BASELINE, {}).get("stripped_bytes")
    for name in names:
        s = summary[name]
        b = bins.get(name, {})
        size = b.get("stripped_bytes")
        size_s = "–" if size is None else f"{size / 1024:,.0f}" + (
            f" ({size / base_bin:.2f}×)" if base_bin else "") + (
            ", static" if b.get("static") else ", dynamic")
        L.append(f"| {name} | {cell(s, 'idle_rss_kib', 'KiB')} | "
                 f"{cell(s, 'idle_rss_anon_kib', 'KiB')} | {cell(s, 'peak_rss_kib', 'KiB')} | "
                 f"{cell(s, 'rss_after_load_kib', 'KiB')} | {cell(s, 'bytes_per_idle_conn', 'B')} | "
                 f"{cell(s, 'stop_ms', 'ms')} | {size_s} |")
    if any(summary[n]["allocs_per_req"]["median"] is not None for n in names):
        L.append("\n## Heap allocations (round 1)\n")
        L.append(f"Calls to malloc, calloc, realloc and the aligned variants, counted by an "
                 f"LD_PRELOAD shim (`alloc/alloccount.c`) around {ALLOC_REQS:,} sequential "
                 f"keep-alive requests, the same number pipelined {PIPELINE_DEPTH} deep, and "
                 f"{max(1, ALLOC_REQS // 10):,} one-request connections. Static builds and Go "
                 f"(its own allocator) are not covered.\n")
        L.append("| server | per request | per pipelined request | per connection |")
        L.append("|---|--:|--:|--:|")
        for name in names:
            s = summary[name]
            if s["allocs_per_req"]["median"] is None:
                continue
            L.append(f"| {name} | {cell(s, 'allocs_per_req', 'n')} | "
                     f"{cell(s, 'allocs_per_pipelined_req', 'n')} | "
                     f"{cell(s, 'allocs_per_conn', 'n')} |")
    for name in [n for n in names if n.startswith("lameduck")]:
        checks = target_checks(meta["_rounds"], summary, name)
        L.append(f"\n## Targets (docs/design.md): {name}\n")
        L.append("| target | measured (median) | met |")
        L.append("|---|--:|:-:|")
        for text, measured, met in checks:
            L.append(f"| {text} | {measured} | {'–' if met is None else 'yes' if met else 'no'} |")
    L.append("\n## Servers\n")
    for name in names:
        L.append(f"- **{name}**: {SERVERS[name]['what']}.")
    notes = []
    for (name, key), msg in failures.items():
        notes.append(f"- {name} {key}: {msg}")
    for name in names:
        for rnd_no, rnd in enumerate(meta["_rounds"], 1):
            res = rnd.get(name)
            if isinstance(res, dict):
                idle = res.get("idle")
                if idle and idle["alive"] < idle["conns"]:
                    notes.append(f"- {name} round {rnd_no}: only {idle['alive']} of "
                                 f"{idle['conns']} idle connections were still open at the RSS "
                                 f"reading.")
                if res.get("exit_code") not in (0, None) and name not in ("floor",):
                    notes.append(f"- {name} round {rnd_no}: exit code {res['exit_code']} after "
                                 f"the stop signal.")
                if res.get("conns_at_stop"):
                    notes.append(f"- {name} round {rnd_no}: {res['conns_at_stop']} connections "
                                 f"still open when the stop signal was sent.")
    if notes:
        L.append("\n## Notes from this run\n")
        L += notes
    L.append("\nFigures are explained in `benches/README.md`. Raw per-round values: "
             "`results.json`.\n")
    path.write_text("\n".join(L))


def write_plot(summary, names):
    """results.png via gnuplot: req/s and CPU µs/req per profile, memory figures."""
    dat = TMP / "plot.dat"
    cols = []
    for prof in PROFILES:
        cols += [f"{prof}.rps", f"{prof}.cpu_us_per_req"]
    cols += ["idle_rss_kib", "peak_rss_kib", "bytes_per_idle_conn", "idle_rss_anon_kib"]
    with open(dat, "w") as f:
        f.write("server " + " ".join(cols) + "\n")
        for name in names:
            vals = []
            for c in cols:
                v = summary[name][c]["median"]
                vals.append("NaN" if v is None else f"{v:.6g}")
            f.write(name + " " + " ".join(vals) + "\n")
    png = OUT_DIR / "results.png"
    args = ["gnuplot", "-e",
            f"datafile='{dat}'; outfile='{png}'; nprof={len(PROFILES)}; "
            f"profiles='{' '.join(PROFILES)}'; idleconns='{IDLE_CONNS}'",
            str(BENCHES / "plot.gp")]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        log("gnuplot failed:", out.stderr)


# ---------------------------------------------------------------------------------------------

def git_commit():
    try:
        c = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                               capture_output=True, text=True).stdout.strip()
        return c + ("+dirty src" if dirty else "")
    except OSError:
        return "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    TMP.mkdir(parents=True, exist_ok=True)
    # 10k idle connections need 10k descriptors here and in the server (which inherits this).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < IDLE_CONNS + 1000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for IDLE_CONNS={IDLE_CONNS}")
    os.sched_setaffinity(0, {int(CLIENT_CPU)})  # this process is a client too

    unknown = [n for n in SERVER_NAMES if n not in SERVERS]
    if unknown:
        sys.exit(f"unknown servers {unknown}; known: {list(SERVERS)}")
    names = SERVER_NAMES
    log(f"harness: rounds={ROUNDS} duration={DURATION}s warmup={WARMUP}s profiles={PROFILES} "
        f"idle_conns={IDLE_CONNS} servers={names}")
    global LOADAVG_AT_START
    LOADAVG_AT_START = Path("/proc/loadavg").read_text().split()[0]
    t_start = time.monotonic()
    rounds, failures = [], {}
    for r in range(1, ROUNDS + 1):
        log(f"round {r}/{ROUNDS}")
        rnd = {}
        for i, name in enumerate(names):
            if (name, "start") in failures:
                continue
            port = BASE_PORT + (r - 1) * 2 * len(SERVERS) + 2 * i  # fresh ports every round
            try:
                rnd[name] = measure_server(name, r, port)
            except Exception as e:  # one server failing must not lose the others' results
                log(f"    {name}: FAILED: {e}")
                failures[(name, "start" if "at start" in str(e) or "health" in str(e)
                          else f"round {r}")] = str(e)
                rnd[name] = {"error": str(e)}
        rounds.append(rnd)
    names = [n for n in names if any(isinstance(rnd.get(n), dict) and "error" not in rnd[n]
                                     for rnd in rounds)]
    bins = {n: binary_info(SERVERS[n]["bin"]) for n in names}
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "lameduck_commit": git_commit(), "lameduck_bin": LAMEDUCK_BIN,
        "cpu": cpu_model(), "ncpu": os.cpu_count(), "kernel": platform.release(),
        "rounds": ROUNDS, "duration_s": DURATION, "warmup_s": WARMUP, "idle_conns": IDLE_CONNS,
        "profiles": {p: {"connections": ALL_PROFILES[p][0], "pipeline": ALL_PROFILES[p][1]}
                     for p in PROFILES},
        "pipeline_depth": PIPELINE_DEPTH, "alloc_reqs": ALLOC_REQS,
        "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU, "baseline": BASELINE,
        "sched": SCHED, "loadavg_at_start": LOADAVG_AT_START,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }
    write_reports(meta, rounds, names, bins, {f"{k[0]} {k[1]}": v for k, v in failures.items()})
    log(f"done in {meta['elapsed_s']:.0f} s: {OUT_DIR / 'results.md'}")
    print((OUT_DIR / "results.md").read_text())


def write_reports(meta, rounds, names, bins, failures):
    """results.json, results.md and results.png from the raw per-round results."""
    summary = summarise(rounds, names)
    errors = {}
    for rnd in rounds:
        for name in names:
            for prof, p in (rnd.get(name) or {}).get("profiles", {}).items():
                if p.get("errors"):
                    errors[(name, prof)] = errors.get((name, prof), 0) + p["errors"]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps({
        "meta": meta,
        "servers": {n: {"what": SERVERS[n]["what"], "binary": bins[n], "figures": summary[n]}
                    for n in names},
        "targets": {n: [{"target": t, "measured": m, "met": ok}
                        for t, m, ok in target_checks(rounds, summary, n)]
                    for n in names if n.startswith("lameduck")},
        "rounds": rounds,
        "failures": failures,
    }, indent=1, default=str) + "\n")
    meta = dict(meta, _rounds=rounds)
    failures = {tuple(k.split(" ", 1)): v for k, v in failures.items()}
    write_markdown(OUT_DIR / "results.md", meta, summary, names, bins, errors, failures)
    write_plot(summary, names)


def report_only():
    """REPORT_ONLY=1: redraw results.md / results.png (and the summary in results.json) from the
    raw rounds already in results.json, e.g. after changing how the report looks."""
    global PROFILES, IDLE_CONNS, BASELINE, SERVER_CPU, CLIENT_CPU, SCHED, ALLOC_REQS
    global PIPELINE_DEPTH
    data = json.loads((OUT_DIR / "results.json").read_text())
    meta = data["meta"]
    for prof, p in meta["profiles"].items():
        ALL_PROFILES[prof] = (p["connections"], p["pipeline"])
    PROFILES = list(meta["profiles"])
    PIPELINE_DEPTH = meta.get("pipeline_depth", PIPELINE_DEPTH)
    IDLE_CONNS, BASELINE = meta["idle_conns"], meta["baseline"]
    SERVER_CPU, CLIENT_CPU = meta["server_cpu"], meta["client_cpu"]
    SCHED, ALLOC_REQS = meta.get("sched", SCHED), meta.get("alloc_reqs", ALLOC_REQS)
    TMP.mkdir(parents=True, exist_ok=True)
    names = list(data["servers"])
    bins = {n: data["servers"][n]["binary"] for n in names}
    write_reports(meta, data["rounds"], names, bins, data.get("failures", {}))
    print((OUT_DIR / "results.md").read_text())


if __name__ == "__main__":
    if os.environ.get("REPORT_ONLY", "0") not in ("", "0"):
        report_only()
    else:
        main()
