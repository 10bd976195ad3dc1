#!/usr/bin/env python3
"""benches/memory_clients.py: worst-case memory per hostile connection (run it via memory.sh).

For each binary, for each client kind, on a fresh server started with the manifest's flags:

  1. warm up (sequential requests, one pipelined burst that touches the shared scratch buffers),
     wait until the server holds no connection, read VmRSS / VmHWM / RssAnon of the server, the
     kernel's TCP memory (/proc/net/sockstat) and the server's own sockets' memory (`ss -tm`);
  2. open HOSTILE connections (N, at most --max-conns - 1: the last slot is the probe's), check
     in /proc/PID/fd that the server has accepted every one, then make each send its bytes:
       pipeliner  pipelined `GET /` requests, as many as the socket takes (non-blocking, at most
                  PIPELINE_MAX_BYTES per connection), never reading a byte of the answers;
       slow_body  a `POST /` head with `Content-Length: 1000000`, then BODY_BYTES of body, then
                  nothing;
       half_head  a request line and headers of HEAD_BYTES in all (a long Cookie) without the
                  empty line that ends the head;
  3. settle: keep pushing (pipeliner) and read VmRSS every 100 ms until neither changed for
     SETTLE_S (bounded by SETTLE_MAX_S); read everything again;
  4. probe: a normal `GET /` on a fresh connection, timed, while all hostile ones are held;
  5. SIGKILL the server, close the clients, wait for the kernel to free their buffers.

user B/conn = (VmRSS after - VmRSS before) / HOSTILE. Kernel socket buffers are not in RSS; they
are reported apart: the server's sockets from `ss -tm` (what a pod's memory cgroup is charged
under cgroup v2), and sockstat's TCP total (both ends: here the clients share the kernel).

Configuration comes from the environment (memory.sh documents every variable). Standard library
only. Writes OUT_DIR/memory.md and OUT_DIR/memory.json.
"""

import json
import os
import platform
import re
import resource
import select
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402  (the sibling module, found through the line above)

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


MANIFEST = Path(os.environ.get("MANIFEST", ROOT / "deploy" / "kubernetes.yaml"))
KINDS = [k for k in os.environ.get("KINDS", "pipeliner,slow_body,half_head").split(",") if k]
PIPELINE_MAX_BYTES = env_int("PIPELINE_MAX_BYTES", 1024 * 1024)
BODY_BYTES = env_int("BODY_BYTES", 16 * 1024)
CONTENT_LENGTH = env_int("CONTENT_LENGTH", 1_000_000)
HEAD_BYTES = env_int("HEAD_BYTES", 7 * 1024)
SETTLE_S = env_float("SETTLE_S", 1.0)
SETTLE_MAX_S = env_float("SETTLE_MAX_S", 30.0)
PROBE_TIMEOUT_S = env_float("PROBE_TIMEOUT_S", 5.0)
# The manifest's --header-timeout (10 s default) would close half_head and slow_body clients
# while 10,000 of them are still being opened. The timeouts bound how long a hostile client
# costs, not how much; raise them so every connection is held while it is measured.
HOLD_ARGS = os.environ.get("HOLD_ARGS", "--header-timeout 600s --idle-timeout 600s").split()
SERVER_ARGS = os.environ.get("SERVER_ARGS", "").split()
# Loopback's MSS is 64 KiB, and Linux sizes a new socket's send buffer as a multiple of the MSS
# (tcp_sndbuf_expand): measured ~4 MiB per server socket here against ~140 KB behind a 1,448-byte
# Ethernet MSS, where it grows only as the client acknowledges (and a client that never reads
# acknowledges little). The hostile clients ask for a real
# network's MSS so the server's kernel figures are the ones a pod would see; CLIENT_MSS=0 keeps
# loopback's. The clients' own buffers are kept small: they are not the server's memory, but they
# would eat the machine-wide tcp_mem budget the server's sockets are measured against.
CLIENT_MSS = env_int("CLIENT_MSS", 1448)
CLIENT_SNDBUF = env_int("CLIENT_SNDBUF", 32 * 1024)
CLIENT_RCVBUF = env_int("CLIENT_RCVBUF", 4 * 1024)
OUT_DIR = Path(os.environ.get("OUT_DIR", BENCHES / "results"))
TMP = OUT_DIR / "tmp"

# The pipelined request; its answer is ~130 bytes, so each one sent asks ~5x its size back.
PIPELINED = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n"
CHUNK = 64 * 1024  # bytes offered to one socket per send


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# What the deployment allows: the manifest's serve flags and memory limit.

QUANTITY = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_quantity(text):
    """A Kubernetes memory quantity (`128Mi`, `1G`, `134217728`) in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGT]i?|Ki)?", text.strip().strip('"\''))
    if not m:
        raise ValueError(f"not a memory quantity: {text!r}")
    return int(float(m.group(1)) * QUANTITY[m.group(2) or ""])


def manifest_settings(path):
    """(serve args, memory limit in bytes) of the first container: a line-based read of the
    two blocks we need (`args:` list, `limits:` → `memory:`), so no YAML library is needed."""
    lines = path.read_text().splitlines()
    args, limit = [], None
    for i, line in enumerate(lines):
        key = line.strip()
        indent = len(line) - len(line.lstrip())
        if key == "args:" and not args:
            for item in lines[i + 1:]:
                s = item.strip()
                if s.startswith("#"):
                    continue
                if not s.startswith("- "):
                    break
                args.append(s[2:].strip().strip('"\''))
        elif key == "limits:" and limit is None:
            for item in lines[i + 1:]:
                if item.strip() and len(item) - len(item.lstrip()) <= indent:
                    break
                m = re.match(r"\s*memory:\s*(\S+)", item)
                if m:
                    limit = parse_quantity(m.group(1))
    if args[:1] == ["serve"]:
        args = args[1:]
    return args, limit


def without_flags(args, names):
    """`args` minus the given `--flag value` / `--flag=value` pairs."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        name = a[2:].split("=", 1)[0] if a.startswith("--") else None
        if name in names:
            skip = "=" not in a
            continue
        out.append(a)
    return out


def flag_value(args, name):
    """The last value given to `--name` in `args`, or None."""
    value = None
    for i, a in enumerate(args):
        if a == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(f"--{name}="):
            value = a.split("=", 1)[1]
    return value


def help_default(binary, name):
    """The default `--help` prints for `--name`, as `(1234)` at the end of its line."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    m = re.search(rf"--{name} \S+.*\((\d+)\)\s*$", out, re.M)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------
# /proc readers

def proc_status(pid):
    """VmRSS, VmHWM and RssAnon of `pid`, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                out[key] = int(line.split()[1])
    return out


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sockstat_tcp_bytes():
    """The kernel's TCP buffer memory, all sockets of this network namespace (both ends of a
    loopback connection). sockstat counts it in pages."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * PAGE
    return None


def tcp_mem_limit_bytes():
    """tcp_mem's third value: the machine-wide ceiling on TCP buffer memory."""
    return int(Path("/proc/sys/net/ipv4/tcp_mem").read_text().split()[2]) * PAGE


def memory_pressures():
    """TcpExt TCPMemoryPressures: times the kernel entered TCP memory pressure."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("TCPMemoryPressures")]) if "TCPMemoryPressures" in names else 0


def server_socket_bytes(port):
    """Kernel memory held by the server's side of its connections: for every socket on local
    port `port`, `ss -tm`'s receive queue (r) + write queue (w) + forward allocation (f), the
    bytes the kernel has charged to the socket (and, under cgroup v2, to its memory cgroup)."""
    out = subprocess.run(["ss", "-tmnH", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    total = 0
    for m in re.finditer(r"skmem:\(([^)]*)\)", out):
        fields = dict(re.match(r"([a-z]+)(\d+)", f).groups() for f in m.group(1).split(","))
        total += int(fields.get("r", 0)) + int(fields.get("w", 0)) + int(fields.get("f", 0))
    return total


def snapshot(pid, port):
    s = proc_status(pid)
    return {"rss_kib": s["VmRSS"], "hwm_kib": s["VmHWM"], "anon_kib": s.get("RssAnon"),
            "fds": open_fds(pid), "kernel_tcp_bytes": sockstat_tcp_bytes(),
            "server_socket_bytes": server_socket_bytes(port)}


# ---------------------------------------------------------------------------------------------
# Warm-up (readiness and the probe use harness.py's blocking client, `h.get`).

def warm_up(port):
    """Sequential requests, then one pipelined burst larger than the server's shared input and
    output buffers, so pages those buffers touch the first time are not billed to the clients."""
    for _ in range(10):
        h.get(port, "/")
    burst = 3000  # 81 KB of requests, ~400 KB of answers
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(PIPELINED * burst)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("warm-up: closed before the first answer")
            got += chunk
        head = got[:got.index(b"\r\n\r\n") + 4]
        length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
        # Every answer has the same length (the Date header is fixed-width): count bytes.
        total, want = len(got), burst * (len(head) + length)
        while total < want:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("warm-up: closed before the last answer")
            total += len(chunk)


def probe(port):
    """Milliseconds for a fresh connection's `GET /` to be answered in full, or an error."""
    t0 = time.perf_counter()
    try:
        status = h.get(port, "/", timeout=PROBE_TIMEOUT_S)[0]
    except OSError as e:
        return {"error": type(e).__name__}
    ms = (time.perf_counter() - t0) * 1000
    return {"ms": round(ms, 2), "status": status}


# ---------------------------------------------------------------------------------------------
# Hostile clients

class Feed:
    """What one client still has to send: a fixed payload, or (`repeat`) the same request over
    and over up to `cap` bytes, always offered from a request boundary."""

    def __init__(self, sock, unit, cap, repeat):
        self.sock, self.cap, self.repeat, self.sent = sock, cap, repeat, 0
        self.unit_len = len(unit)
        data = unit * (CHUNK // len(unit) + 2) if repeat else unit
        self.view = memoryview(data)
        self.dead = None  # the error that ended this client, if any

    def done(self):
        return self.dead is not None or self.sent >= self.cap

    def push(self):
        """Sends what the socket takes now; returns the byte count."""
        if self.done():
            return 0
        start = self.sent % self.unit_len if self.repeat else self.sent
        chunk = self.view[start:start + min(CHUNK, self.cap - self.sent)]
        try:
            n = self.sock.send(chunk)
        except BlockingIOError:
            return 0
        except OSError as e:
            self.dead = type(e).__name__
            return 0
        self.sent += n
        return n


def payload(kind):
    """(unit, cap, repeat) for one client of `kind`."""
    if kind == "pipeliner":
        return PIPELINED, PIPELINE_MAX_BYTES, True
    if kind == "slow_body":
        head = f"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: {CONTENT_LENGTH}\r\n\r\n".encode()
        return head + b"x" * BODY_BYTES, None, False
    if kind == "half_head":
        start = b"GET / HTTP/1.1\r\nHost: b\r\nCookie: c="
        filler = max(0, HEAD_BYTES - len(start) - 2)
        return start + b"a" * filler + b"\r\n", None, False
    raise ValueError(f"unknown kind {kind!r} (pipeliner, slow_body, half_head)")


def connect_hostile(port):
    """A non-blocking client socket with the MSS and buffer sizes above (set before connect:
    the MSS is negotiated in the handshake and the window scale is fixed there)."""
    s = socket.socket()
    try:
        if CLIENT_MSS:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, CLIENT_MSS)
        if CLIENT_SNDBUF:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SNDBUF)
        if CLIENT_RCVBUF:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        raise


def push_all(feeds):
    return sum(f.push() for f in feeds)


# ---------------------------------------------------------------------------------------------
# One measurement

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, args, tag):
    port = free_port()
    log_path = TMP / f"memory-{tag}.log"
    argv = [binary, "serve"] + args + [
        "--addr", "127.0.0.1", "--port", str(port),
        "--live-file", str(TMP / f"memory-{tag}.live")] + HOLD_ARGS + SERVER_ARGS
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} at start (log: {log_path})")
        try:
            if h.get(port, "/health")[0] == 200:
                return proc, port, argv
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"no /health 200 within 10 s (log: {log_path})")
        time.sleep(0.02)


def wait_until(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def settle(pid, feeds):
    """Pushes and reads VmRSS every 100 ms until neither changed for SETTLE_S (bounded).
    Returns (settled, seconds)."""
    t0 = time.monotonic()
    last_rss, last_change = None, t0
    while True:
        pushed = push_all(feeds)
        rss = proc_status(pid)["VmRSS"]
        now = time.monotonic()
        if pushed or rss != last_rss:
            last_rss, last_change = rss, now
        if now - last_change >= SETTLE_S:
            return True, round(now - t0, 1)
        if now - t0 > SETTLE_MAX_S:
            return False, round(now - t0, 1)
        time.sleep(0.1)


def answered_count(socks):
    """Clients the server has sent something to (an error answer, or FIN): for slow_body and
    half_head that means the server gave up on them."""
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    return len(poller.poll(0))


def server_socket_count(port):
    out = subprocess.run(["ss", "-tnH", f"sport = :{port}"], capture_output=True, text=True)
    return sum(1 for line in out.stdout.splitlines()
               if line.strip() and not line.startswith("TIME-WAIT"))


def measure(name, binary, kind, base_args, max_conns, hostile):
    tag = f"{name}-{kind}"
    proc, port, argv = start_server(binary, base_args + ["--max-conns", str(max_conns)], tag)
    socks = []
    t_start = time.monotonic()
    try:
        warm_up(port)
        wait_until(lambda: server_socket_count(port) == 0, 5)
        time.sleep(0.2)
        pressures0 = memory_pressures()
        before = snapshot(proc.pid, port)

        for _ in range(hostile):
            socks.append(connect_hostile(port))
        accepted = wait_until(lambda: open_fds(proc.pid) >= before["fds"] + hostile, 30)
        unit, cap, repeat = payload(kind)
        feeds = [Feed(s, unit, cap or len(unit), repeat) for s in socks]
        deadline = time.monotonic() + 60
        while push_all(feeds) and time.monotonic() < deadline:
            pass
        settled, settle_s = settle(proc.pid, feeds)
        after = snapshot(proc.pid, port)
        pressures = memory_pressures() - pressures0
        short = sum(1 for f in feeds if not repeat and f.sent < f.cap)
        dead = sum(1 for f in feeds if f.dead)
        answered = 0 if repeat else answered_count(socks)
        result_probe = probe(port)
        open_after_probe = open_fds(proc.pid) - before["fds"]
    finally:
        # The server goes first, so its sockets (not the clients') end in TIME_WAIT.
        proc.kill()
        proc.wait()
        for s in socks:
            s.close()
        (TMP / f"memory-{tag}.live").unlink(missing_ok=True)
    # Let the kernel free both ends' buffers before the next server is measured.
    kernel_before = before["kernel_tcp_bytes"]
    wait_until(lambda: sockstat_tcp_bytes() <= kernel_before + 4 * 1024 * 1024, 30, 0.2)

    sent = [f.sent for f in feeds]
    return {
        "binary": name, "kind": kind, "hostile": hostile, "max_conns": max_conns,
        "argv": argv, "before": before, "after": after,
        "open_on_server": after["fds"] - before["fds"], "all_accepted": accepted,
        "open_after_probe": open_after_probe,
        "clients_short_of_payload": short, "clients_failed": dead,
        "clients_answered": answered,
        "bytes_sent_per_client": {"min": min(sent), "max": max(sent),
                                  "mean": round(sum(sent) / len(sent))},
        "settled": settled, "settle_s": settle_s,
        "user_bytes_per_conn": (after["rss_kib"] - before["rss_kib"]) * 1024 / hostile,
        "anon_bytes_per_conn": ((after["anon_kib"] - before["anon_kib"]) * 1024 / hostile
                                if after["anon_kib"] is not None else None),
        "server_kernel_bytes_per_conn":
            (after["server_socket_bytes"] - before["server_socket_bytes"]) / hostile,
        "tcp_memory_pressures": pressures,
        "probe": result_probe, "elapsed_s": round(time.monotonic() - t_start, 1),
    }


# ---------------------------------------------------------------------------------------------
# Reports

def mib(b):
    return b / 2**20


def projection(run, limit):
    """What --max-conns clients of this kind would cost, from the per-connection figures."""
    user = run["before"]["rss_kib"] * 1024 + run["user_bytes_per_conn"] * run["max_conns"]
    kernel = run["server_kernel_bytes_per_conn"] * run["max_conns"]
    return {"user_bytes": user, "user_and_kernel_bytes": user + kernel,
            "user_fits": limit is None or user <= limit,
            "user_and_kernel_fit": limit is None or user + kernel <= limit}


def probe_text(p):
    return f"{p['ms']:.1f}" + ("" if p.get("status") == 200 else f" ({p.get('status')})") \
        if "ms" in p else f"✗ {p['error']}"


def write_markdown(path, meta, runs):
    limit = meta["memory_limit_bytes"]
    limit_s = f"{mib(limit):,.0f} MiB" if limit else "none"
    mss = f"{CLIENT_MSS:,} bytes" if CLIENT_MSS else "loopback's 64 KiB"
    L = ["# lameduck: memory held per hostile connection\n",
         f"Generated by `benches/memory.sh` on {meta['date']} (lameduck {meta['commit']}). "
         f"Host: {meta['cpu']}, {meta['nproc']} cores, {meta['mem_total_mib']:,} MiB, "
         f"Linux {meta['kernel']}, load average {meta['loadavg']} at start. Manifest "
         f"`{meta['manifest']}`: memory limit **{limit_s}**; the server runs with its flags "
         f"plus `{' '.join(HOLD_ARGS + SERVER_ARGS)}`. Each row is a fresh server holding "
         f"*hostile* clients of one kind (the last --max-conns slot is kept for the probe); "
         f"they negotiate an MSS of {mss} and keep their own buffers small "
         f"(SO_SNDBUF {CLIENT_SNDBUF}, SO_RCVBUF {CLIENT_RCVBUF}). "
         f"Kernel socket memory: tcp_rmem `{meta['tcp_rmem']}`, tcp_wmem `{meta['tcp_wmem']}`, "
         f"tcp_mem ceiling {mib(meta['tcp_mem_limit_bytes']):,.0f} MiB for the whole "
         f"machine.\n",
         "| binary | kind | hostile | open on server | RSS before KiB | RSS after KiB | "
         "VmHWM after KiB | user B/conn | server kernel B/conn | kernel TCP MiB before → after "
         "(both ends) | probe GET / ms | settled s |",
         "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        if "error" in r:
            L.append(f"| {r['binary']} | {r['kind']} | – | FAILED: {r['error']} |"
                     + " |" * 8)
            continue
        b, a = r["before"], r["after"]
        open_s = f"{r['open_on_server']:,}" + ("" if r["open_on_server"] >= r["hostile"]
                                                else " ⚠")
        if r["clients_answered"]:
            open_s += f" ({r['clients_answered']:,} answered ⚠)"
        pressure = " ⚠ pressure" if r["tcp_memory_pressures"] else ""
        settled = f"{r['settle_s']:.1f}" + ("" if r["settled"] else " ⚠ not settled")
        L.append(f"| {r['binary']} | {r['kind']} | {r['hostile']:,} | {open_s} | "
                 f"{b['rss_kib']:,} | {a['rss_kib']:,} | {a['hwm_kib']:,} | "
                 f"{r['user_bytes_per_conn']:,.0f} | {r['server_kernel_bytes_per_conn']:,.0f} | "
                 f"{mib(b['kernel_tcp_bytes']):,.1f} → {mib(a['kernel_tcp_bytes']):,.1f}"
                 f"{pressure} | {probe_text(r['probe'])} | {settled} |")
    L += ["", f"## At --max-conns, against the {limit_s} limit\n",
          "Projected from the row above: RSS before + per-connection cost × --max-conns. "
          "\"user\" is the process's RSS, what lameduck controls; \"+ server kernel\" adds its "
          "sockets' buffers, which cgroup v2 charges to the pod too but which tcp_rmem / "
          "tcp_wmem bound, not lameduck.\n",
          "| binary | kind | --max-conns | user MiB | fits | user + server kernel MiB | fits |",
          "|---|---|--:|--:|:-:|--:|:-:|"]
    for r in runs:
        if "error" in r:
            continue
        p = r["projection"]
        L.append(f"| {r['binary']} | {r['kind']} | {r['max_conns']:,} | "
                 f"{mib(p['user_bytes']):,.1f} | {'yes' if p['user_fits'] else '**no**'} | "
                 f"{mib(p['user_and_kernel_bytes']):,.1f} | "
                 f"{'yes' if p['user_and_kernel_fit'] else '**no**'} |")
    notes = []
    for r in runs:
        if "error" in r:
            continue
        who = f"{r['binary']} {r['kind']}"
        if r["open_on_server"] < r["hostile"]:
            notes.append(f"{who}: only {r['open_on_server']:,} of {r['hostile']:,} connections "
                         f"open on the server when measured.")
        if r["clients_answered"]:
            notes.append(f"{who}: the server answered or closed {r['clients_answered']:,} "
                         f"clients before the measurement (a limit or a timeout hit them).")
        if r["clients_failed"] or r["clients_short_of_payload"]:
            notes.append(f"{who}: {r['clients_failed']:,} clients failed, "
                         f"{r['clients_short_of_payload']:,} could not send their payload.")
        if r["tcp_memory_pressures"]:
            notes.append(f"{who}: the kernel entered TCP memory pressure "
                         f"({r['tcp_memory_pressures']}×): TCP memory went past tcp_mem's "
                         f"pressure threshold and the kernel shrank buffers, so the kernel "
                         f"figures are lower bounds.")
        if r["kind"] == "pipeliner":
            s = r["bytes_sent_per_client"]
            notes.append(f"{who}: each client got {s['min'] / 1024:,.0f}–{s['max'] / 1024:,.0f} "
                         f"KiB of requests into the sockets (cap {PIPELINE_MAX_BYTES / 1024:,.0f} "
                         f"KiB).")
    if notes:
        L += ["", "## Notes\n"] + [f"- {n}" for n in notes]
    L.append("")
    path.write_text("\n".join(L))


def git_commit():
    c = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                           capture_output=True, text=True).stdout.strip()
    return (c or "?") + ("+dirty src" if dirty else "")


def machine():
    model = platform.processor()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    sysctl = lambda n: " ".join(Path(f"/proc/sys/net/ipv4/{n}").read_text().split())
    return {"cpu": model, "nproc": len(os.sched_getaffinity(0)), "mem_total_mib": mem // 1024,
            "kernel": platform.release(), "loadavg": Path("/proc/loadavg").read_text().split()[0],
            "tcp_rmem": sysctl("tcp_rmem"), "tcp_wmem": sysctl("tcp_wmem"),
            "tcp_mem_limit_bytes": tcp_mem_limit_bytes()}


def raise_nofile(need):
    """Descriptors for `need` sockets here and in the server (which inherits the limit). Root
    (CAP_SYS_RESOURCE) may raise the hard limit, up to fs.nr_open; anyone may raise the soft
    one to the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            sys.exit(f"memory_clients.py: RLIMIT_NOFILE hard limit {hard} < {need} needed: "
                     f"raise it (ulimit -Hn; root needs CAP_SYS_RESOURCE) or lower N")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_bins(text):
    bins = []
    for item in text.replace(",", " ").split():
        name, _, path = item.rpartition("=")
        name = name or Path(path).name
        if not os.access(path, os.X_OK):
            sys.exit(f"memory_clients.py: {name}: no executable at {path}")
        bins.append((name, path))
    return bins


def main():
    bins = parse_bins(os.environ.get("BINS", ""))
    if not bins:
        sys.exit("memory_clients.py: BINS is empty (name=path ...); run benches/memory.sh")
    for kind in KINDS:
        payload(kind)  # unknown kinds fail before anything starts
    manifest_args, limit = manifest_settings(MANIFEST)
    if "MEM_LIMIT" in os.environ:
        limit = parse_quantity(os.environ["MEM_LIMIT"])
    base_args = without_flags(manifest_args, {"addr", "port", "live-file", "max-conns"})
    # Each binary may have its own --max-conns default; the manifest or MAX_CONNS override it.
    plans = []
    for name, path in bins:
        max_conns = int(os.environ.get("MAX_CONNS") or flag_value(manifest_args, "max-conns")
                        or help_default(path, "max-conns") or 10000)
        n = env_int("N", max_conns)
        hostile = min(n, max_conns - 1)
        if hostile < n:
            log(f"{name}: N={n} capped at --max-conns - 1 = {hostile}: the last slot is the "
                f"probe's (a connection past the limit waits in the backlog)")
        head_limit = int(flag_value(manifest_args + SERVER_ARGS, "max-header-bytes")
                         or help_default(path, "max-header-bytes") or 0)
        if "half_head" in KINDS and head_limit and HEAD_BYTES >= head_limit:
            log(f"{name}: HEAD_BYTES={HEAD_BYTES} is not under its --max-header-bytes "
                f"{head_limit}: half_head clients will be answered 431, not held")
        plans.append((name, path, max_conns, hostile))
    raise_nofile(max(h for *_, h in plans) + 1024)
    TMP.mkdir(parents=True, exist_ok=True)

    meta = dict(machine(), date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                commit=git_commit(), manifest=str(MANIFEST.relative_to(ROOT))
                if MANIFEST.is_relative_to(ROOT) else str(MANIFEST),
                memory_limit_bytes=limit, manifest_args=manifest_args,
                hold_args=HOLD_ARGS, server_args=SERVER_ARGS,
                bins={n: p for n, p in bins}, kinds=KINDS,
                pipeline_max_bytes=PIPELINE_MAX_BYTES, body_bytes=BODY_BYTES,
                content_length=CONTENT_LENGTH, head_bytes=HEAD_BYTES, settle_s=SETTLE_S,
                client_mss=CLIENT_MSS, client_sndbuf=CLIENT_SNDBUF, client_rcvbuf=CLIENT_RCVBUF)
    log(f"memory: bins={[n for n, _ in bins]} kinds={KINDS} limit={limit} "
        f"hostile={[h for *_, h in plans]}")
    t0 = time.monotonic()
    runs = []
    for name, path, max_conns, hostile in plans:
        for kind in KINDS:
            log(f"  {name} {kind}: {hostile:,} clients")
            try:
                r = measure(name, path, kind, base_args, max_conns, hostile)
                r["projection"] = projection(r, limit)
                log(f"    RSS {r['before']['rss_kib']:,} → {r['after']['rss_kib']:,} KiB, "
                    f"{r['user_bytes_per_conn']:,.0f} B/conn user, "
                    f"{r['server_kernel_bytes_per_conn']:,.0f} B/conn server kernel, "
                    f"open {r['open_on_server']:,}, probe {probe_text(r['probe'])} ms, "
                    f"{r['elapsed_s']} s")
            except Exception as e:  # one failure must not lose the other rows
                log(f"    FAILED: {e}")
                r = {"binary": name, "kind": kind, "error": str(e)}
            runs.append(r)
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "memory.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    write_markdown(OUT_DIR / "memory.md", meta, runs)
    log(f"done in {meta['elapsed_s']:.0f} s: {OUT_DIR / 'memory.md'}")
    print((OUT_DIR / "memory.md").read_text())


if __name__ == "__main__":
    main()
