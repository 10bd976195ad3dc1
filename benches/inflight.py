#!/usr/bin/env python3
"""benches/inflight.py: the in-flight capacity run that benches/inflight.sh builds for.

CONNS keep-alive connections (10,000), each with one `GET /delay` in flight, answered DELAY_MS
(100 ms) later from somewhere other than the thread that parsed it: lameduck hands the reply
handle to one timer thread (peers/src/bin/peer-lameduck.rs), Go + chi sleeps in the handler's
goroutine, axum and actix-web sleep on their runtime's timer. If every server kept up, each
connection would complete one request per delay: the ideal is CONNS / DELAY req/s.

For each round, for each server (A B C ... A B C ...): start it pinned to SERVER_CPU (every
thread it starts inherits the pin), read idle VmRSS; run wrk -t1 -cCONNS on CLIENT_CPU for
DURATION s, sampling the server's descriptors and VmRSS while it runs, and reading before and
after its CPU time, context switches and the time its threads and wrk spent waiting for a CPU
(schedstat: the machine's noise, measured); read VmHWM; kill it. The "ceiling" row is
lameduck's `GET /` (answered at once) under the same CONNS connections: what wrk and the kernel
can carry at all on this machine, so a req/s close to it says wrk set the pace. Medians are
taken over the rounds that other processes did not disturb. Writes results/inflight.md and
results/inflight.json (every round), or results/inflight-<CONNS>c-<DELAY_MS>ms.{md,json} for
another shape; REPORT_ONLY=1 redraws them from the JSON. Reuses harness.py's helpers.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402  (the sibling module, found through the line above)

QUICK = h.QUICK
ROUNDS = h.env_int("ROUNDS", 1 if QUICK else 3)
DURATION = h.env_int("DURATION", 4 if QUICK else 10)
CONNS = h.env_int("CONNS", 10000)
DELAY_MS = h.env_int("DELAY_MS", 100)
BASE_PORT = h.env_int("BASE_PORT", 19080)
IDEAL_RPS = CONNS / (DELAY_MS / 1000)
# The reports' file names: the default shape keeps the plain name, other shapes say theirs, so a
# second shape does not overwrite the first.
STEM = ("inflight" if (CONNS, DELAY_MS) == (10000, 100)
        else f"inflight-{CONNS}c-{DELAY_MS}ms")
PEERS_BIN = h.PEERS_BIN
# Samples of VmRSS are taken every SAMPLE_S over the second half of each run (all connections
# open, every request pending or being answered); their median is "RSS under load".
SAMPLE_S = 0.25


def lameduck_argv(port):
    # --max-conns and --max-pending above CONNS: nothing is refused for a bound we set.
    room = str(CONNS + 1000)
    return [str(PEERS_BIN / "peer-lameduck"), "serve", "--addr", "127.0.0.1", "--port", str(port),
            "--shutdown-delay", "0", "--max-conns", room, "--max-pending", room,
            "--live-file", str(h.TMP / f"lameduck-{port}.live")]


def peer(name):
    """harness.py's spec for a peer, with the delay in its environment."""
    spec = dict(h.SERVERS[name])
    spec["env"] = dict(spec.get("env", {}), DELAY_MS=str(DELAY_MS))
    return spec


SPECS = {
    "lameduck": dict(
        argv=lameduck_argv, bin=str(PEERS_BIN / "peer-lameduck"), stop=h.signal.SIGTERM,
        env={"DELAY_MS": str(DELAY_MS)}, path="/delay",
        what="lameduck (mio, one thread) + one timer thread holding the reply handles "
             "(BinaryHeap + Condvar)"),
    "go-chi": dict(peer("go-chi"), path="/delay",
                   what="Go net/http + chi, GOMAXPROCS=1, time.Sleep in the handler's goroutine"),
    "axum": dict(peer("axum"), path="/delay",
                 what="axum 0.8, tokio current-thread, tokio::time::sleep"),
    "actix": dict(peer("actix"), path="/delay",
                  what="actix-web 4, workers(1), actix_web::rt::time::sleep"),
    "ceiling": dict(
        argv=lameduck_argv, bin=str(PEERS_BIN / "peer-lameduck"), stop=h.signal.SIGTERM,
        env={"DELAY_MS": str(DELAY_MS)}, path="/",
        what="wrk ceiling: lameduck's GET / (no delay) under the same connections"),
}
SERVER_NAMES = [s for s in os.environ.get("SERVERS", ",".join(SPECS)).split(",") if s]


def status(pid):
    """VmRSS, VmHWM (KiB) and Threads from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def run_delay_s(pid):
    """Seconds the process's threads have spent runnable but waiting for a CPU
    (/proc/PID/task/TID/schedstat, second field): how much another process had the core."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of the process so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total


def watcher(server, samples):
    """Samples the server while wrk runs: its open descriptors until it holds every connection
    (when that happened is the ramp: a server that accepts slowly, or whose backlog overflows,
    leaves clients retrying SYNs for seconds), then VmRSS over the second half of the run, and
    once, at the middle, its thread and descriptor counts."""
    def watch(proc):
        t0 = time.monotonic()
        base_fds = len(os.listdir(f"/proc/{server.pid}/fd"))
        while proc.poll() is None:
            elapsed = time.monotonic() - t0
            try:  # wrk's wait for a CPU, up to its last sample (it may have just exited)
                samples["wrk_wait_s"] = run_delay_s(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                pass
            if "ramp_s" not in samples and \
                    len(os.listdir(f"/proc/{server.pid}/fd")) - base_fds >= CONNS:
                samples["ramp_s"] = elapsed
            if DURATION / 2 <= elapsed <= DURATION - SAMPLE_S:
                st = status(server.pid)
                samples["rss_kib"].append(st["VmRSS"])
                if "threads" not in samples:
                    samples["threads"] = st["Threads"]
                    samples["fds"] = len(os.listdir(f"/proc/{server.pid}/fd"))
            time.sleep(SAMPLE_S)
    return watch


def measure(name, round_no, port):
    spec = SPECS[name]
    server = h.Server(name, port, f"inflight-r{round_no}", spec=spec)
    try:
        server.wait_no_conns()
        time.sleep(0.2)
        idle = status(server.pid)
        samples = {"rss_kib": []}
        cpu0, cs0 = h.proc_cpu_seconds(server.pid), context_switches(server.pid)
        wait0 = run_delay_s(server.pid)
        w = h.run_wrk(port, CONNS, 1, DURATION, path=spec["path"],
                      watch=watcher(server, samples))
        cpu1, cs1 = h.proc_cpu_seconds(server.pid), context_switches(server.pid)
        wait1 = run_delay_s(server.pid)
        after = status(server.pid)
    finally:
        server.kill()
        (h.TMP / f"lameduck-{port}.live").unlink(missing_ok=True)
    secs = w["duration_us"] / 1e6
    load_kib = statistics.median(samples["rss_kib"]) if samples["rss_kib"] else None
    r = {
        "requests": w["requests"],
        "rps": w["requests"] / secs,
        "of_ideal": w["requests"] / secs / IDEAL_RPS,
        "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000, "max_ms": w["max_us"] / 1000,
        "errors": sum(w["errors"].values()), "errors_detail": w["errors"],
        "cpu_us_per_req": (cpu1 - cpu0) * 1e6 / w["requests"] if w["requests"] else None,
        "server_cpu_util": (cpu1 - cpu0) / secs,
        "cs_per_req": (cs1 - cs0) / w["requests"] if w["requests"] else None,
        "client_cpu_util": w["client_cpu_s"] / secs,
        # Share of the run spent runnable but not running: the machine's noise, measured.
        "server_cpu_wait": (wait1 - wait0) / secs,
        "client_cpu_wait": samples.get("wrk_wait_s", 0) / secs,
        "idle_rss_kib": idle["VmRSS"],
        "load_rss_kib": load_kib,
        "peak_rss_kib": after["VmHWM"],
        "bytes_per_pending": None if load_kib is None
        else (load_kib - idle["VmRSS"]) * 1024 / CONNS,
        "threads": samples.get("threads"), "fds": samples.get("fds"),
        "ramp_s": samples.get("ramp_s"),
    }
    h.log(f"    {name:8} {r['rps']:>9,.0f} req/s ({r['of_ideal']:.0%} of ideal)  "
          f"p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms  cpu {r['server_cpu_util']:.0%} "
          f"(wrk {r['client_cpu_util']:.0%})  waiting for a cpu {r['server_cpu_wait']:.0%} "
          f"(wrk {r['client_cpu_wait']:.0%})  RSS idle {r['idle_rss_kib']:,} load "
          f"{load_kib or 0:,.0f} peak {r['peak_rss_kib']:,} KiB  "
          f"{r['bytes_per_pending'] or 0:,.0f} B/pending  threads {r['threads']} fds {r['fds']}  "
          f"{r['cs_per_req']:.2f} cs/req  all conns after {r['ramp_s'] or -1:.2f} s"
          + (f"  ERRORS {r['errors_detail']}" if r["errors"] else ""))
    return r


FIGURES = ["rps", "of_ideal", "p50_ms", "p99_ms", "max_ms", "errors", "cpu_us_per_req",
           "cs_per_req", "server_cpu_util", "client_cpu_util", "server_cpu_wait",
           "client_cpu_wait", "idle_rss_kib", "load_rss_kib", "peak_rss_kib", "bytes_per_pending",
           "threads", "fds", "ramp_s"]


# How long the server's threads or wrk may wait for a CPU, as a share of the run, before the
# round counts as disturbed. Not near zero: a server whose threads share its one core also waits
# for itself (lameduck's loop for its timer thread: about 15 % on a quiet machine), and the
# harness samples the server from wrk's core.
WAIT_LIMIT = 0.25


def disturbed(r):
    """Other processes had the cores: req/s and latency measure the machine, not the server."""
    return r["client_cpu_wait"] > WAIT_LIMIT or r["server_cpu_wait"] > WAIT_LIMIT


def summarise(rounds, names):
    """Medians over the rounds that were not disturbed, or over all of them if every one was."""
    out = {}
    for n in names:
        ok = [r[n] for r in rounds if "error" not in r.get(n, {"error": 1})]
        use = [r for r in ok if not disturbed(r)] or ok
        out[n] = {k: h.median([r.get(k) for r in use]) for k in FIGURES}
        out[n]["rounds_used"] = len(use)
    return out


def write_markdown(path, meta, summary, names):
    def num(v, spec=",.0f"):
        return "–" if v is None else format(v, spec)

    L = [f"# In-flight capacity: {CONNS:,} connections, each request answered {DELAY_MS} ms "
         f"later\n",
         f"Generated by `benches/inflight.sh` on {meta['date']} (lameduck "
         f"{meta['lameduck_commit']}). Host: {meta['cpu']}, {meta['ncpu']} cores, Linux "
         f"{meta['kernel']}, load average {meta['loadavg_at_start']} at start. Server (all its "
         f"threads) pinned to CPU {h.SERVER_CPU}, `wrk -t1 -c{CONNS:,}` to CPU {h.CLIENT_CPU}. "
         f"{meta['rounds']} interleaved rounds × {meta['duration_s']} s; each cell is the median "
         f"over the rounds that were not disturbed (over all of them if every one was; "
         f"\"disturbed\" says how many were). Ideal req/s = {CONNS:,} / "
         f"{DELAY_MS / 1000:g} s = {IDEAL_RPS:,.0f}. "
         f"RSS under load is the median VmRSS over the second half of the run; B per pending "
         f"request = (RSS under load − idle RSS) / {CONNS:,}.\n",
         "| server | req/s | of ideal | p50 ms | p99 ms | max ms | errors | all connections "
         "open after s | server CPU µs/req | context switches /req | CPU use server / wrk | "
         "waiting for a CPU server / wrk | disturbed |",
         "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for n in names:
        s = summary[n]
        util = ("–" if s["server_cpu_util"] is None
                else f"{s['server_cpu_util']:.0%} / {s['client_cpu_util']:.0%}")
        wait = ("–" if s["server_cpu_wait"] is None
                else f"{s['server_cpu_wait']:.0%} / {s['client_cpu_wait']:.0%}")
        ok = [r[n] for r in meta["_rounds"] if "error" not in r.get(n, {"error": 1})]
        dist = sum(1 for r in ok if disturbed(r))
        L.append(f"| {n} | {num(s['rps'])} | {num(s['of_ideal'], '.0%')} | "
                 f"{num(s['p50_ms'], '.1f')} | {num(s['p99_ms'], '.1f')} | "
                 f"{num(s['max_ms'], ',.0f')} | {num(s['errors'])} | {num(s['ramp_s'], '.2f')} | "
                 f"{num(s['cpu_us_per_req'], '.2f')} | {num(s['cs_per_req'], '.2f')} | {util} | "
                 f"{wait} | "
                 f"{f'{dist}/{len(ok)}' if dist else ''} |")
    L += ["\n## Memory\n",
          "| server | idle RSS KiB | RSS under load KiB | peak RSS KiB | B per pending request | "
          "threads under load | descriptors under load |",
          "|---|--:|--:|--:|--:|--:|--:|"]
    for n in names:
        s = summary[n]
        L.append(f"| {n} | {num(s['idle_rss_kib'])} | {num(s['load_rss_kib'])} | "
                 f"{num(s['peak_rss_kib'])} | {num(s['bytes_per_pending'])} | "
                 f"{num(s['threads'])} | {num(s['fds'])} |")
    L.append("\n## Servers\n")
    for n in names:
        L.append(f"- **{n}**: {SPECS[n]['what']}" + ("" if n == "ceiling" else
                                                     f", `GET {SPECS[n]['path']}`") + ".")
    L.append("\nFigures are explained in `benches/README.md` (\"In-flight capacity\"). Raw "
             f"per-round values: `{STEM}.json`.\n")
    path.write_text("\n".join(L))


def main():
    h.TMP.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by wrk and servers
    if hard < CONNS + 1000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for CONNS={CONNS}")
    os.sched_setaffinity(0, {int(h.CLIENT_CPU)})  # this process samples: keep it off the server
    unknown = [n for n in SERVER_NAMES if n not in SPECS]
    if unknown:
        sys.exit(f"unknown servers {unknown}; known: {list(SPECS)}")
    h.log(f"inflight: rounds={ROUNDS} duration={DURATION}s conns={CONNS} delay={DELAY_MS}ms "
          f"servers={SERVER_NAMES}")
    loadavg = Path("/proc/loadavg").read_text().split()[0]
    t_start = time.monotonic()
    rounds = []
    for r in range(1, ROUNDS + 1):
        h.log(f"round {r}/{ROUNDS}")
        rnd = {}
        for i, name in enumerate(SERVER_NAMES):
            port = BASE_PORT + (r - 1) * len(SPECS) + i  # fresh ports every round
            try:
                rnd[name] = measure(name, r, port)
            except Exception as e:  # one server failing must not lose the others' results
                h.log(f"    {name}: FAILED: {e}")
                rnd[name] = {"error": str(e)}
        rounds.append(rnd)
    names = [n for n in SERVER_NAMES if any("error" not in rnd[n] for rnd in rounds)]
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "lameduck_commit": h.git_commit(), "cpu": h.cpu_model(), "ncpu": os.cpu_count(),
        "kernel": platform.release(), "rounds": ROUNDS, "duration_s": DURATION,
        "conns": CONNS, "delay_ms": DELAY_MS, "ideal_rps": IDEAL_RPS,
        "server_cpu": h.SERVER_CPU, "client_cpu": h.CLIENT_CPU, "loadavg_at_start": loadavg,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }
    write_reports(meta, rounds, names)
    h.log(f"done in {meta['elapsed_s']:.0f} s: {h.OUT_DIR / f'{STEM}.md'}")
    print((h.OUT_DIR / f"{STEM}.md").read_text())


def write_reports(meta, rounds, names):
    """inflight.json and inflight.md from the raw per-round results."""
    summary = summarise(rounds, names)
    h.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (h.OUT_DIR / f"{STEM}.json").write_text(json.dumps({
        "meta": meta, "servers": {n: {"what": SPECS[n]["what"], "figures": summary[n]}
                                  for n in names},
        "rounds": rounds}, indent=1) + "\n")
    write_markdown(h.OUT_DIR / f"{STEM}.md", dict(meta, _rounds=rounds), summary, names)


def report_only():
    """REPORT_ONLY=1: rewrite inflight.md (and the summary in inflight.json) from the rounds
    stored in inflight.json, e.g. after changing how the report looks."""
    global CONNS, DELAY_MS, IDEAL_RPS
    data = json.loads((h.OUT_DIR / f"{STEM}.json").read_text())
    meta = data["meta"]
    CONNS, DELAY_MS, IDEAL_RPS = meta["conns"], meta["delay_ms"], meta["ideal_rps"]
    h.SERVER_CPU, h.CLIENT_CPU = meta["server_cpu"], meta["client_cpu"]
    write_reports(meta, data["rounds"], list(data["servers"]))
    print((h.OUT_DIR / f"{STEM}.md").read_text())


if __name__ == "__main__":
    if os.environ.get("REPORT_ONLY", "0") not in ("", "0"):
        report_only()
    else:
        main()
