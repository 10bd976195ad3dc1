#!/usr/bin/env python3
"""benches/slow_readers.py: slow readers of a large shared body, the run that
benches/slow_readers.sh builds for (issue 15). Two shapes, each on a fresh instance of every
server (pinned to SERVER_CPU; this process, all the clients, on CLIENT_CPU):

  memory   READERS (500) clients each ask for GET /blob (the 8 MiB shared body) and read it at
           RATE (120 KiB/s) for DURATION s. VmRSS is read every SAMPLE_S once every reader has its
           first bytes; (VmRSS - idle VmRSS) / READERS is the user-space memory a slow reader
           costs, given as min / median / max over the samples (flat = the server holds no more
           for a reader as its download goes on). A `GET /` on a fresh connection every
           PROBE_EVERY_S says whether the server still answers others, and how fast.
  latency  LAT_READERS (20) clients read GET /blob at LAT_RATE (200 KB/s) for LAT_DURATION s while
           `GET /` and `GET /health` are timed on fresh connections, against the same probes
           on the idle server just before (issue 15's goal: within 2x of idle).

The clients are one selector-free loop: every TICK_S each reader may read what its rate allows
since its request was sent (recv_into a shared buffer, non-blocking), so the pace holds without a
thread per client. Their sockets are small (SO_RCVBUF CLIENT_RCVBUF) and negotiate CLIENT_MSS
(1448, an Ethernet path; loopback's 64 KiB MSS would give each server socket a ~4 MiB send
buffer), both set before connect. Kernel socket buffers are not in RSS: the server's sockets'
kernel memory (`ss -tm`) is reported apart. Writes results/slow-readers.md and .json;
REPORT_ONLY=1 redraws them from the JSON. Standard library only; reuses harness.py.
"""

import errno
import json
import os
import platform
import random
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the imports below
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402  (the sibling module, found through the line above)
from inflight import run_delay_s  # noqa: E402  (schedstat: waiting for a CPU)
from large import latency_summary  # noqa: E402
from memory_clients import server_socket_bytes  # noqa: E402  (ss -tm of the server's sockets)

QUICK = h.QUICK
ROUNDS = h.env_int("ROUNDS", 1)
SHAPES = [s for s in os.environ.get("SHAPES", "memory,latency").split(",") if s]
READERS = h.env_int("READERS", 500)
RATE = h.env_int("RATE", 120 * 1024)  # bytes per second per reader
DURATION = h.env_float("DURATION", 6 if QUICK else 12)
LAT_READERS = h.env_int("LAT_READERS", 20)
LAT_RATE = h.env_int("LAT_RATE", 200_000)
LAT_DURATION = h.env_float("LAT_DURATION", 3 if QUICK else 6)
SAMPLE_S = h.env_float("SAMPLE_S", 1.0)
PROBE_EVERY_S = h.env_float("PROBE_EVERY_S", 0.5)  # memory shape; latency probes every tick
TICK_S = h.env_float("TICK_S", 0.05)
PROBE_TIMEOUT_S = h.env_float("PROBE_TIMEOUT_S", 5.0)
CLIENT_MSS = h.env_int("CLIENT_MSS", 1448)
CLIENT_RCVBUF = h.env_int("CLIENT_RCVBUF", 16 * 1024)
BASE_PORT = h.env_int("BASE_PORT", 21080)
MIN_READ = 4096  # a reader reads once its allowance reaches this (no 1-byte recvs)
SPECS = h.blob_servers()
SERVER_NAMES = [s for s in os.environ.get("SERVERS", ",".join(SPECS)).split(",") if s]
KIB = 1024


class Reader:
    """One slow client of GET /blob: connected, request sent, then read at a fixed pace."""

    def __init__(self, port):
        s = socket.socket()
        try:
            if CLIENT_MSS:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, CLIENT_MSS)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /blob HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock, self.t0, self.got, self.head = s, time.monotonic(), 0, b""
        self.status, self.ended = None, None  # ended: why the reader stopped ("EOF", an error)

    def pump(self, now, rate, buf):
        """Reads what the pace allows by now; returns the bytes read."""
        if self.ended:
            return 0
        allowance = int(rate * (now - self.t0)) - self.got
        if allowance < MIN_READ:
            return 0
        try:
            n = self.sock.recv_into(buf, min(allowance, len(buf)))
        except BlockingIOError:
            return 0
        except OSError as e:
            self.ended = type(e).__name__
            return 0
        if n == 0:
            self.ended = "EOF"
            return 0
        if self.status is None:  # the status line comes first; keep bytes until it is whole
            self.head += bytes(buf[:min(n, 64)])
            if b"\r\n" in self.head:
                self.status = int(self.head.split()[1])
        self.got += n
        return n

    def close(self):
        self.sock.close()


def pump_all(readers, rate, buf):
    now = time.monotonic()
    return sum(r.pump(now, rate, buf) for r in readers)


def open_readers(port, n):
    readers = []
    try:
        for _ in range(n):
            readers.append(Reader(port))
    except OSError:
        for r in readers:
            r.close()
        raise
    return readers


def warm_up(server):
    """Touch what a first /blob answer makes the server allocate (its buffers, nginx's file),
    so it is not billed to the readers, then wait until the server holds no connection."""
    for _ in range(2):
        h.get(server.port, "/blob", timeout=10)
    for _ in range(10):
        h.get(server.port, "/")
    server.wait_no_conns()
    time.sleep(0.3)


def reader_stats(readers, secs):
    rates = sorted(r.got / secs / KIB for r in readers)
    return {"kib_per_s_min": rates[0], "kib_per_s_median": rates[len(rates) // 2],
            "kib_per_s_max": rates[-1],
            "not_200": sum(1 for r in readers if r.status not in (None, 200)),
            "no_bytes": sum(1 for r in readers if r.got == 0),
            "ended": sum(1 for r in readers if r.ended)}


class Probe:
    """`GET path` on a fresh connection, driven by the readers' loop through its selector, so a
    server that is slow to answer never holds the readers back (a blocking probe did: 5 s
    timeouts left 500 readers unread). Timed from connect() to the last body byte."""

    def __init__(self, port, path):
        self.path, self.result, self.sent = path, None, False
        self.req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self.buf = bytearray()
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.t0 = time.perf_counter()
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            self.finish(None, errno.errorcode.get(err, str(err)))

    def events(self):
        return selectors.EVENT_READ if self.sent else selectors.EVENT_WRITE

    def on_ready(self):
        try:
            if not self.sent:  # connected (or failed): send the request, a few dozen bytes
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    return self.finish(None, errno.errorcode.get(err, str(err)))
                self.sock.send(self.req)
                self.sent = True
                return None
            chunk = self.sock.recv(65536)
        except OSError as e:
            return self.finish(None, type(e).__name__)
        if not chunk:
            return self.finish(None, "EOF")
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0:
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buf[:end])
            if len(self.buf) >= end + 4 + (int(m.group(1)) if m else 0):
                self.finish((time.perf_counter() - self.t0) * 1000, int(self.buf.split()[1]))
        return None

    def finish(self, ms, status):
        """(ms, status) or (None, the error's name), as harness.probe_ms gives."""
        self.result = (ms, status)
        self.sock.close()


def run_loop(port, readers, rate, duration, probes_due, server=None):
    """The clients for `duration` s: every TICK_S each reader reads what its pace allows; the
    probes `probes_due(t)` lists (path, seconds from start) are started when due, unless one
    to the same path is still out (it will time out or say how long the server took), and
    finished as their bytes arrive. With `server`, VmRSS is read every SAMPLE_S. Returns the
    probe results by path, the samples [(s, VmRSS KiB, readers with bytes)], the time at which
    every reader had bytes (None if never) and the seconds it ran."""
    sel = selectors.DefaultSelector()
    buf = bytearray(64 * KIB)
    results = {}
    out = {}  # path -> the probe in flight
    due = sorted(probes_due(duration), key=lambda x: x[1])
    samples, ramp = [], None
    t0 = time.monotonic()
    next_tick = next_sample = t0
    try:
        while True:
            now = time.monotonic()
            if now - t0 >= duration:
                break
            if now >= next_tick:
                pump_all(readers, rate, buf)
                started = sum(1 for r in readers if r.got or r.ended)
                if ramp is None and started == len(readers):
                    ramp = now - t0
                if server is not None and now >= next_sample:
                    samples.append((now - t0, h.proc_status_kib(server.pid, "VmRSS"), started))
                    next_sample += SAMPLE_S
                next_tick += TICK_S
            while due and t0 + due[0][1] <= now:
                path, _ = due.pop(0)
                if path not in out:
                    probe = out[path] = Probe(port, path)
                    if probe.result is None:
                        sel.register(probe.sock, probe.events(), probe)
            for path, probe in list(out.items()):
                if probe.result is None and time.perf_counter() - probe.t0 > PROBE_TIMEOUT_S:
                    sel.unregister(probe.sock)
                    probe.finish(None, "timeout")
                if probe.result is not None:
                    results.setdefault(path, []).append(probe.result)
                    del out[path]
            wake = min([next_tick] + ([t0 + due[0][1]] if due else []))
            for key, _ in sel.select(max(0.0, wake - time.monotonic())):
                probe = key.data
                was_sent = probe.sent
                probe.on_ready()
                if probe.result is not None:
                    sel.unregister(probe.sock)
                elif probe.sent != was_sent:
                    sel.modify(probe.sock, probe.events(), probe)
    finally:
        for probe in out.values():  # still out at the end: a failure if past the timeout
            if probe.result is None:
                sel.unregister(probe.sock)
                if time.perf_counter() - probe.t0 > PROBE_TIMEOUT_S:
                    probe.finish(None, "timeout")
                else:
                    probe.sock.close()  # not late yet: left out
            if probe.result is not None:
                results.setdefault(probe.path, []).append(probe.result)
        sel.close()
    return results, samples, ramp, time.monotonic() - t0


def measure_memory(name, port, tag):
    spec = SPECS[name]
    server = h.Server(name, port, tag, spec=spec)
    readers = []
    try:
        h.check_blob(port, [h.BLOB_LEN])
        warm_up(server)
        idle = h.proc_status_kib(server.pid, "VmRSS")
        cpu0, wait0 = h.proc_cpu_seconds(server.pid), run_delay_s(server.pid)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t_open = time.monotonic()
        readers = open_readers(port, READERS)
        t_open = time.monotonic() - t_open
        kernel = None

        def probes(duration):
            return [("/", k * PROBE_EVERY_S) for k in range(int(duration / PROBE_EVERY_S))]
        # Half the run, then the server's sockets' kernel memory (ss -tm), then the rest.
        res1, samples1, ramp, secs1 = run_loop(port, readers, RATE, DURATION / 2, probes, server)
        kernel = server_socket_bytes(port)
        res2, samples2, ramp2, secs2 = run_loop(port, readers, RATE, DURATION / 2, probes, server)
        secs = secs1 + secs2
        samples = samples1 + [(t + secs1, rss, n) for t, rss, n in samples2]
        if ramp is None and ramp2 is not None:
            ramp = secs1 + ramp2
        probe_results = res1.get("/", []) + res2.get("/", [])
        cpu1, wait1 = h.proc_cpu_seconds(server.pid), run_delay_s(server.pid)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        hwm = h.proc_status_kib(server.pid, "VmHWM")
        threads = h.proc_status_kib(server.pid, "Threads")
    finally:
        server.kill()  # the server goes first, so TIME_WAIT lands on its side
        for r in readers:
            r.close()
        (h.TMP / f"lameduck-{port}.live").unlink(missing_ok=True)
    # Per reader: the samples once every reader had its first bytes (the connections set up).
    steady = [rss for t, rss, n in samples if ramp is not None and t >= ramp]
    per_conn = sorted((rss - idle) / READERS for rss in steady)  # KiB
    res = {
        "idle_rss_kib": idle, "rss_samples": samples, "peak_rss_kib": hwm,
        "rss_end_kib": samples[-1][1] if samples else None,
        "readers_with_bytes_at_end": samples[-1][2] if samples else None,
        "threads": threads, "open_s": t_open, "ramp_s": ramp, "secs": secs,
        "kib_per_reader_min": per_conn[0] if per_conn else None,
        "kib_per_reader_median": h.median(per_conn),
        "kib_per_reader_max": per_conn[-1] if per_conn else None,
        "kib_per_reader_samples": len(per_conn),
        "server_kernel_kib_per_reader": kernel / READERS / KIB,
        "server_cpu_util": (cpu1 - cpu0) / secs,
        "server_cpu_wait": (wait1 - wait0) / secs,
        "client_cpu_util": ((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)) / secs,
        "probe": latency_summary(probe_results), "readers": reader_stats(readers, secs),
    }
    p, rd = res["probe"], res["readers"]
    per = (f"{res['kib_per_reader_min']:,.1f} / {res['kib_per_reader_median']:,.1f} / "
           f"{res['kib_per_reader_max']:,.1f} KiB (min/median/max of {len(per_conn)})"
           if per_conn else f"– (only {res['readers_with_bytes_at_end']} of {READERS} readers "
           f"had bytes by the end; RSS {idle:,} → {res['rss_end_kib']:,} KiB)")
    h.log(f"    {name:8} memory  idle {idle:,} KiB  per reader {per}  kernel "
          f"{res['server_kernel_kib_per_reader']:,.0f} KiB/reader  all reading after "
          f"{ramp if ramp is not None else -1:.1f} s  GET / p50 {p['p50_ms'] or 0:.2f} max "
          f"{p['max_ms'] or 0:.1f} ms ({p['failed']}/{p['n']} failed)  read "
          f"{rd['kib_per_s_min']:.0f}-{rd['kib_per_s_max']:.0f} KiB/s, {rd['ended']} ended  "
          f"server cpu {res['server_cpu_util']:.0%} waiting {res['server_cpu_wait']:.0%}  "
          f"client cpu {res['client_cpu_util']:.0%}")
    return res


def latency_probes(duration):
    """One `GET /` and one `GET /health` per tick, each at a random point of it: right after
    the pump the server is refilling the readers' sockets, later it may be idle, and a fixed
    point would pick one."""
    return [(path, k * TICK_S + random.uniform(0, TICK_S))
            for k in range(int(duration / TICK_S)) for path in ("/", "/health")]


def measure_latency(name, port, tag):
    """The same loop and probes without readers (idle), then with LAT_READERS: probes that
    follow a sleep wake idle cores (~0.4 ms here), which back-to-back probes never pay, so the
    baseline is taken the same way."""
    spec = SPECS[name]
    server = h.Server(name, port, tag, spec=spec)
    readers = []
    try:
        h.check_blob(port, [h.BLOB_LEN])
        warm_up(server)
        idle, _, _, _ = run_loop(port, [], LAT_RATE, LAT_DURATION, latency_probes)
        readers = open_readers(port, LAT_READERS)
        busy, _, _, secs = run_loop(port, readers, LAT_RATE, LAT_DURATION, latency_probes)
    finally:
        server.kill()
        for r in readers:
            r.close()
        (h.TMP / f"lameduck-{port}.live").unlink(missing_ok=True)
    res = {"secs": secs, "readers": reader_stats(readers, secs)}
    for path in ("/", "/health"):
        i, b = latency_summary(idle.get(path, [])), latency_summary(busy.get(path, []))
        res[path] = {"idle": i, "busy": b,
                     "p50_ratio": b["p50_ms"] / i["p50_ms"] if b["p50_ms"] and i["p50_ms"]
                     else None,
                     "p99_ratio": b["p99_ms"] / i["p99_ms"] if b["p99_ms"] and i["p99_ms"]
                     else None}
        h.log(f"    {name:8} latency {path:8} idle p50 {i['p50_ms'] or 0:.2f} p99 "
              f"{i['p99_ms'] or 0:.2f} ms, with {LAT_READERS} readers p50 {b['p50_ms'] or 0:.2f} "
              f"p99 {b['p99_ms'] or 0:.2f} ms ({b['failed']}/{b['n']} failed)")
    return res


MEASURE = {"memory": measure_memory, "latency": measure_latency}


def num(v, spec):
    return "–" if v is None else format(v, spec)


def summarise(rounds, names):
    """Medians over rounds of each figure (one round by default)."""
    out = {}
    for n in names:
        s = {}
        mem = [r[n]["memory"] for r in rounds if "memory" in r.get(n, {})]
        for key in ("idle_rss_kib", "peak_rss_kib", "kib_per_reader_min",
                    "kib_per_reader_median", "kib_per_reader_max", "rss_end_kib",
                    "readers_with_bytes_at_end", "server_kernel_kib_per_reader",
                    "server_cpu_util", "server_cpu_wait", "client_cpu_util", "ramp_s",
                    "threads"):
            s[f"memory.{key}"] = h.median([m.get(key) for m in mem])
        for key in ("p50_ms", "max_ms", "failed", "n"):
            s[f"memory.probe.{key}"] = h.median([m["probe"][key] for m in mem])
        for key in ("kib_per_s_min", "kib_per_s_max", "ended", "not_200"):
            s[f"memory.readers.{key}"] = h.median([m["readers"][key] for m in mem])
        lat = [r[n]["latency"] for r in rounds if "latency" in r.get(n, {})]
        for path in ("/", "/health"):
            for when in ("idle", "busy"):
                for key in ("p50_ms", "p99_ms", "failed"):
                    s[f"latency.{path}.{when}.{key}"] = h.median([x[path][when][key]
                                                                  for x in lat])
            for key in ("p50_ratio", "p99_ratio"):
                s[f"latency.{path}.{key}"] = h.median([x[path][key] for x in lat])
        out[n] = s
    return out


def goal_lines(summary):
    """Issue 15's goals for lameduck; reported, never asserted."""
    s = summary.get("lameduck")
    if not s:
        return []
    out = []
    v, top = s["memory.kib_per_reader_median"], s["memory.kib_per_reader_max"]
    if v is not None:
        out.append(("≤ 4 KiB of user-space memory per slow reader (median; max)",
                    f"{v:.1f}; {top:.1f} KiB", top <= 4))
        if "nginx" in summary and summary["nginx"]["memory.kib_per_reader_median"] is not None:
            nv = summary["nginx"]["memory.kib_per_reader_median"]
            out.append(("below nginx's per slow reader", f"{v:.1f} vs {nv:.1f} KiB", v < nv))
        failed = s["memory.probe.failed"]
        out.append(("`GET /` answered during the slow readers", f"{failed:.0f} failed",
                    failed == 0))
    for path in ("/", "/health"):
        r = s[f"latency.{path}.p50_ratio"]
        if r is not None:
            out.append((f"`GET {path}` p50 with {LAT_READERS} readers within 2× of idle "
                        f"(p99 ratio beside)",
                        f"{r:.2f}× (p99 {num(s[f'latency.{path}.p99_ratio'], '.2f')}×)", r <= 2))
    return out


def write_markdown(path, meta, summary, names, skipped):
    L = ["# Slow readers of a large shared body\n",
         f"Generated by `benches/slow_readers.sh` on {meta['date']} (lameduck "
         f"{meta['lameduck_commit']}, `examples/slow_work`). Host: {meta['cpu']}, {meta['ncpu']} "
         f"cores, Linux {meta['kernel']}, load average {meta['loadavg_at_start']} at start. "
         f"Server pinned to CPU {h.SERVER_CPU}, the clients (one Python loop) to CPU "
         f"{h.CLIENT_CPU}. {meta['rounds']} round(s); cells are medians over rounds. Every "
         f"server answers `GET /blob` with one 8 MiB body shared by all connections (nginx: "
         f"a file, sendfile). Client sockets: SO_RCVBUF {CLIENT_RCVBUF:,}, MSS "
         f"{CLIENT_MSS or 'loopback'}, set before connect.\n",
         f"\n## Memory: {READERS} readers at {RATE / KIB:,.0f} KiB/s for {meta['duration_s']:g} s\n",
         f"KiB per reader = (VmRSS − idle VmRSS) / {READERS}, sampled every {SAMPLE_S:g} s once "
         f"every reader had its first bytes (\"all reading after\"): min / median / max over the "
         f"samples (close together = flat). Kernel socket buffers are not in RSS; the server's side of them (`ss -tm`: "
         f"receive + write queue + forward allocation, mid-run) is the kernel column. `GET /`: a "
         f"fresh connection every {PROBE_EVERY_S:g} s during the run, driven by the readers' loop "
         f"(a slow answer never holds the readers back; failed = no answer within "
         f"{PROBE_TIMEOUT_S:g} s). Read KiB/s: the pace the readers got over the whole run "
         f"(slowest–fastest, ramp included). Server CPU use and time spent waiting for a CPU "
         f"(schedstat), over the run.\n",
         "| server | KiB per reader min / median / max | server kernel KiB per reader | "
         "idle RSS KiB | peak RSS KiB | all reading after s | `GET /` during p50 / max ms | "
         "`GET /` failed | read KiB/s | readers ended early | server CPU use / waiting |",
         "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for n in names:
        s = summary[n]
        if s["memory.idle_rss_kib"] is None:
            continue
        if s["memory.kib_per_reader_median"] is None:  # never every reader reading: say so
            per = (f"– ({num(s['memory.readers_with_bytes_at_end'], '.0f')} of {READERS} "
                   f"readers had bytes by the end; RSS then "
                   f"{num(s['memory.rss_end_kib'], ',.0f')} KiB)")
        else:
            per = (f"{num(s['memory.kib_per_reader_min'], ',.1f')} / "
                   f"**{num(s['memory.kib_per_reader_median'], ',.1f')}** / "
                   f"{num(s['memory.kib_per_reader_max'], ',.1f')}")
        L.append(f"| {n} | {per} | "
                 f"{num(s['memory.server_kernel_kib_per_reader'], ',.0f')} | "
                 f"{num(s['memory.idle_rss_kib'], ',.0f')} | "
                 f"{num(s['memory.peak_rss_kib'], ',.0f')} | "
                 f"{num(s['memory.ramp_s'], '.1f')} | "
                 f"{num(s['memory.probe.p50_ms'], '.2f')} / "
                 f"{num(s['memory.probe.max_ms'], '.1f')} | "
                 f"{num(s['memory.probe.failed'], '.0f')} of {num(s['memory.probe.n'], '.0f')} | "
                 f"{num(s['memory.readers.kib_per_s_min'], '.0f')}–"
                 f"{num(s['memory.readers.kib_per_s_max'], '.0f')} | "
                 f"{num(s['memory.readers.ended'], '.0f')} | "
                 f"{num(s['memory.server_cpu_util'], '.0%')} / "
                 f"{num(s['memory.server_cpu_wait'], '.0%')} |")
    L += [f"\n## Latency: `GET /` and `GET /health` while {LAT_READERS} readers read at "
          f"{LAT_RATE / 1000:,.0f} KB/s\n",
          f"Fresh connections, one of each path at a random point of each "
          f"{TICK_S * 1000:.0f} ms tick of the readers' loop for "
          f"{meta['lat_duration_s']:g} s, against the same loop without readers on the idle "
          f"server just before. Ratio = with readers / idle.\n",
          "| server | path | idle p50 / p99 ms | with readers p50 / p99 ms | ratio p50 / p99 | "
          "failed |",
          "|---|---|--:|--:|--:|--:|"]
    for n in names:
        s = summary[n]
        for p in ("/", "/health"):
            if s[f"latency.{p}.idle.p50_ms"] is None:
                continue
            L.append(f"| {n} | `{p}` | {num(s[f'latency.{p}.idle.p50_ms'], '.2f')} / "
                     f"{num(s[f'latency.{p}.idle.p99_ms'], '.2f')} | "
                     f"{num(s[f'latency.{p}.busy.p50_ms'], '.2f')} / "
                     f"{num(s[f'latency.{p}.busy.p99_ms'], '.2f')} | "
                     f"{num(s[f'latency.{p}.p50_ratio'], '.2f')}× / "
                     f"{num(s[f'latency.{p}.p99_ratio'], '.2f')}× | "
                     f"{num(s[f'latency.{p}.busy.failed'], '.0f')} |")
    L += h.report_tail(goal_lines(summary), "Goals (issue 15), lameduck",
                       "Reported, not asserted.", names, SPECS, skipped, "Slow readers",
                       "Raw values: `slow-readers.json`.")
    path.write_text("\n".join(L))


def write_reports(meta, rounds, names, skipped):
    summary = summarise(rounds, names)
    h.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (h.OUT_DIR / "slow-readers.json").write_text(json.dumps({
        "meta": meta, "skipped": skipped,
        "servers": {n: {"what": SPECS[n]["what"], "figures": summary[n]} for n in names},
        "goals": [{"goal": t, "measured": m, "met": ok} for t, m, ok in goal_lines(summary)],
        "rounds": rounds}, indent=1) + "\n")
    write_markdown(h.OUT_DIR / "slow-readers.md", meta, summary, names, skipped)


def main():
    h.TMP.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < READERS + 1000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for READERS={READERS}")
    os.sched_setaffinity(0, {int(h.CLIENT_CPU)})  # the clients: keep them off the server's core
    unknown = [n for n in SERVER_NAMES if n not in SPECS]
    bad = [s for s in SHAPES if s not in MEASURE]
    if unknown or bad:
        sys.exit(f"unknown servers {unknown} or shapes {bad}; known: {list(SPECS)}, "
                 f"{list(MEASURE)}")
    h.log(f"slow_readers: rounds={ROUNDS} shapes={SHAPES} memory: {READERS} readers at "
          f"{RATE / KIB:.0f} KiB/s for {DURATION:g} s; latency: {LAT_READERS} at "
          f"{LAT_RATE / 1000:.0f} KB/s for {LAT_DURATION:g} s; servers={SERVER_NAMES}")
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t_start = time.monotonic()
    rounds, skipped = [], {}
    for r in range(1, ROUNDS + 1):
        h.log(f"round {r}/{ROUNDS}")
        rnd = {}
        for i, name in enumerate(SERVER_NAMES):
            rnd[name] = {}
            for j, shape in enumerate(SHAPES):
                if name in skipped:
                    break
                port = BASE_PORT + ((r - 1) * len(SPECS) + i) * len(MEASURE) + j  # fresh ports
                try:
                    rnd[name][shape] = MEASURE[shape](name, port, f"slow-{shape}-r{r}")
                except h.NoBlobRoute as e:  # a lameduck from before issue 15: say so, go on
                    h.log(f"    {name}: SKIPPED: {e}")
                    skipped[name] = f"{e} ({SPECS[name]['bin']})"
                except Exception as e:  # one server failing must not lose the others' results
                    h.log(f"    {name} {shape}: FAILED: {e}")
                    rnd[name][f"{shape}_error"] = str(e)
        rounds.append(rnd)
    names = [n for n in SERVER_NAMES if n not in skipped
             and any(set(SHAPES) & set(rnd.get(n, {})) for rnd in rounds)]
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "lameduck_commit": h.git_commit(), "slow_work_bin": h.SLOW_WORK_BIN,
        "cpu": h.cpu_model(), "ncpu": os.cpu_count(), "kernel": platform.release(),
        "rounds": ROUNDS, "shapes": SHAPES, "readers": READERS, "rate": RATE,
        "duration_s": DURATION, "lat_readers": LAT_READERS, "lat_rate": LAT_RATE,
        "lat_duration_s": LAT_DURATION, "sample_s": SAMPLE_S,
        "probe_every_s": PROBE_EVERY_S, "tick_s": TICK_S, "client_mss": CLIENT_MSS,
        "client_rcvbuf": CLIENT_RCVBUF, "server_cpu": h.SERVER_CPU,
        "client_cpu": h.CLIENT_CPU, "loadavg_at_start": loadavg,
        "elapsed_s": round(time.monotonic() - t_start, 1),
    }
    write_reports(meta, rounds, names, skipped)
    h.log(f"done in {meta['elapsed_s']:.0f} s: {h.OUT_DIR / 'slow-readers.md'}")
    print((h.OUT_DIR / "slow-readers.md").read_text())


def report_only():
    """REPORT_ONLY=1: rewrite slow-readers.md (and the summary in its JSON) from its rounds."""
    global READERS, RATE, LAT_READERS, LAT_RATE, SAMPLE_S, PROBE_EVERY_S, TICK_S
    global CLIENT_MSS, CLIENT_RCVBUF
    data = json.loads((h.OUT_DIR / "slow-readers.json").read_text())
    m = data["meta"]
    READERS, RATE, LAT_READERS, LAT_RATE = m["readers"], m["rate"], m["lat_readers"], m["lat_rate"]
    SAMPLE_S, PROBE_EVERY_S = m["sample_s"], m["probe_every_s"]
    TICK_S, CLIENT_MSS, CLIENT_RCVBUF = m["tick_s"], m["client_mss"], m["client_rcvbuf"]
    h.SERVER_CPU, h.CLIENT_CPU = m["server_cpu"], m["client_cpu"]
    write_reports(m, data["rounds"], list(data["servers"]), data.get("skipped", {}))
    print((h.OUT_DIR / "slow-readers.md").read_text())


if __name__ == "__main__":
    if os.environ.get("REPORT_ONLY", "0") not in ("", "0"):
        report_only()
    else:
        main()
