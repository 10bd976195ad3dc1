#!/usr/bin/env python3
"""benches/large.py: large answers, the run that benches/large.sh builds for (issue 15).

Every server answers `GET /blob?bytes=N` with the first N bytes of one shared 8 MiB body (byte i
is i % 251; held once per process; nginx reads it from a file with sendfile). For each round, for
each server (A B C ... A B C ...), on a fresh instance pinned to SERVER_CPU:

  1. check that /blob answers the right bytes for every size (a lameduck build without the route
     answers 404: it is reported as such and left out of the remaining rounds);
  2. time `GET /` on fresh connections while the server is idle (the latency baseline);
  3. warm up, then for each size (1 MiB, 8 MiB) run `wrk -t1 -cCONNS` on CLIENT_CPU for DURATION
     s, reading the server's utime + stime before and after, while this process times `GET /` on
     fresh connections every PROBE_EVERY_S;
  4. read VmHWM, kill the server.

Server CPU per GiB = (utime + stime) / (bytes wrk read / 2^30): what the server spent to push a
GiB through loopback, syscalls and copies included. Each round's figure is divided by the
floor's from the same round (BASELINE); the report gives medians over rounds of both. Writes
results/large.md and results/large.json; REPORT_ONLY=1 redraws them from the JSON. Reuses
harness.py's helpers (standard library only).
"""

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402  (the sibling module, found through the line above)
from inflight import WAIT_LIMIT, run_delay_s  # noqa: E402  (schedstat: waiting for a CPU)

QUICK = h.QUICK
ROUNDS = h.env_int("ROUNDS", 1 if QUICK else 3)
DURATION = h.env_int("DURATION", 2 if QUICK else 6)  # whole seconds per size (wrk's unit)
WARMUP = h.env_int("WARMUP", 1)
CONNS = h.env_int("CONNS", 16)
SIZES = [int(n) for n in os.environ.get("SIZES", ",".join(map(str, h.BLOB_SIZES))).split(",")]
BASE_PORT = h.env_int("BASE_PORT", 20080)
BASELINE = os.environ.get("BASELINE", "floor")
# GET / on a fresh connection every PROBE_EVERY_S during each load; IDLE_PROBES before it.
PROBE_EVERY_S = h.env_float("PROBE_EVERY_S", 0.02)
IDLE_PROBES = h.env_int("IDLE_PROBES", 100)
GIB = 2**30
SPECS = h.blob_servers()
SERVER_NAMES = [s for s in os.environ.get("SERVERS", ",".join(SPECS)).split(",") if s]
FRAMEWORKS = ("hyper", "axum", "actix", "go-chi", "nginx")


def size_name(n):
    return f"{n // 2**20}MiB" if n % 2**20 == 0 else f"{n}B"


def percentile(xs, q):
    """The q-th percentile (nearest rank) of xs, or None."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


def latency_summary(samples):
    """p50 / p99 / max ms of (ms, status) probes, and how many failed or were not 200."""
    ms = [m for m, st in samples if m is not None and st == 200]
    return {"n": len(samples), "failed": len(samples) - len(ms), "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


def idle_probes(port):
    """IDLE_PROBES of GET / on fresh connections, paced as the probes during load are (a probe
    that follows a sleep wakes idle cores, which back-to-back probes never pay)."""
    out = []
    for _ in range(IDLE_PROBES):
        t0 = time.monotonic()
        out.append(h.probe_ms(port, "/"))
        time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - t0)))
    return out


def prober(port, samples, waits):
    """run_wrk's `watch`: times GET / on fresh connections until wrk exits, and keeps wrk's
    time spent waiting for a CPU up to its last sample."""
    def watch(proc):
        while proc.poll() is None:
            t0 = time.monotonic()
            samples.append(h.probe_ms(port, "/"))
            try:
                waits["wrk_s"] = run_delay_s(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                pass  # wrk has just exited
            time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - t0)))
    return watch


def disturbed(r):
    """Other processes had the cores (inflight.py's rule): req/s and latency measure the
    machine; CPU per GiB, the server's own time, still holds."""
    return r["server_cpu_wait"] > WAIT_LIMIT or r["client_cpu_wait"] > WAIT_LIMIT


def measure(name, round_no, port):
    spec = SPECS[name]
    server = h.Server(name, port, f"large-r{round_no}", spec=spec)
    res = {"sizes": {}}
    try:
        h.check_blob(port, SIZES)
        server.wait_no_conns()
        res["idle_rss_kib"] = h.proc_status_kib(server.pid, "VmRSS")
        res["idle_probe"] = latency_summary(idle_probes(port))
        if WARMUP > 0:
            h.run_wrk(port, CONNS, 1, WARMUP, path=f"/blob?bytes={SIZES[0]}")
        for n in SIZES:
            samples, waits = [], {}
            cpu0, wait0 = h.proc_cpu_seconds(server.pid), run_delay_s(server.pid)
            w = h.run_wrk(port, CONNS, 1, DURATION, path=f"/blob?bytes={n}",
                          watch=prober(port, samples, waits))
            cpu1, wait1 = h.proc_cpu_seconds(server.pid), run_delay_s(server.pid)
            secs = w["duration_us"] / 1e6
            gib = w["bytes"] / GIB
            r = {
                "requests": w["requests"], "bytes": w["bytes"],
                "rps": w["requests"] / secs, "gib_per_s": gib / secs,
                "cpu_s": cpu1 - cpu0,
                "cpu_s_per_gib": (cpu1 - cpu0) / gib if gib else None,
                "server_cpu_util": (cpu1 - cpu0) / secs,
                "client_cpu_util": w["client_cpu_s"] / secs,
                # Share of the run spent runnable but not running: the machine's noise.
                "server_cpu_wait": (wait1 - wait0) / secs,
                "client_cpu_wait": waits.get("wrk_s", 0) / secs,
                "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
                "errors": sum(w["errors"].values()), "errors_detail": w["errors"],
                "probe": latency_summary(samples),
            }
            res["sizes"][size_name(n)] = r
            p = r["probe"]
            h.log(f"    {name:8} {size_name(n):5} {r['rps']:>8,.0f} req/s {r['gib_per_s']:5.2f} "
                  f"GiB/s  {r['cpu_s_per_gib'] or 0:.3f} CPU s/GiB  cpu {r['server_cpu_util']:.0%}"
                  f" (wrk {r['client_cpu_util']:.0%}) waiting {r['server_cpu_wait']:.0%} "
                  f"(wrk {r['client_cpu_wait']:.0%})  GET / p50 {p['p50_ms'] or 0:.2f} p99 "
                  f"{p['p99_ms'] or 0:.2f} ms ({p['failed']} failed; idle p50 "
                  f"{res['idle_probe']['p50_ms'] or 0:.2f} p99 "
                  f"{res['idle_probe']['p99_ms'] or 0:.2f})"
                  + (f"  ERRORS {r['errors_detail']}" if r["errors"] else ""))
        res["peak_rss_kib"] = h.proc_status_kib(server.pid, "VmHWM")
    finally:
        server.kill()
        (h.TMP / f"lameduck-{port}.live").unlink(missing_ok=True)
    return res


# (key, path into a round's result for one size)
FIGURES = ["rps", "gib_per_s", "cpu_s_per_gib", "server_cpu_util", "client_cpu_util",
           "server_cpu_wait", "client_cpu_wait",
           "p50_ms", "p99_ms", "errors", ("probe", "p50_ms"), ("probe", "p99_ms"),
           ("probe", "failed")]


def pick(res, size, fig):
    if not isinstance(res, dict) or "error" in res:
        return None
    cur = res["sizes"].get(size)
    for k in (fig if isinstance(fig, tuple) else (fig,)):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur


def fig_key(fig):
    return ".".join(fig) if isinstance(fig, tuple) else fig


def ratio_median(rounds, a, b, size, fig):
    """Median over rounds of a's figure over b's from the same round."""
    rs = []
    for rnd in rounds:
        va, vb = pick(rnd.get(a), size, fig), pick(rnd.get(b), size, fig)
        if va is not None and vb:
            rs.append(va / vb)
    return h.median(rs)


def summarise(rounds, names, sizes):
    out = {}
    for n in names:
        s = {}
        for size in sizes:
            for fig in FIGURES:
                s[f"{size}.{fig_key(fig)}"] = h.median([pick(r.get(n), size, fig) for r in rounds])
            s[f"{size}.cpu_s_per_gib.ratio"] = ratio_median(rounds, n, BASELINE, size,
                                                            "cpu_s_per_gib")
        for key in ("idle_rss_kib", "peak_rss_kib"):
            s[key] = h.median([r[n].get(key) for r in rounds if "error" not in r.get(n, {})])
        for key in ("p50_ms", "p99_ms"):
            s[f"idle_probe.{key}"] = h.median([r[n]["idle_probe"][key] for r in rounds
                                               if "error" not in r.get(n, {"error": 1})])
        out[n] = s
    return out


def goal_lines(rounds, summary, sizes):
    """Issue 15's goal for lameduck, per size: CPU per GiB within 1.1x the floor's, and below
    every framework's (ratios from the same round, medians). Reported, never asserted."""
    if "lameduck" not in summary:
        return []
    out = []
    for size in sizes:
        r = ratio_median(rounds, "lameduck", BASELINE, size, "cpu_s_per_gib")
        if r is not None:
            out.append((f"{size}: CPU per GiB within 1.1× the {BASELINE}'s", f"{r:.2f}×",
                        r <= 1.1))
        for fw in FRAMEWORKS:
            if fw in summary:
                r = ratio_median(rounds, "lameduck", fw, size, "cpu_s_per_gib")
                if r is not None:
                    out.append((f"{size}: CPU per GiB below {fw}'s", f"{r:.2f}×", r < 1.0))
    return out


def num(v, spec):
    return "–" if v is None else format(v, spec)


def write_markdown(path, meta, rounds, summary, names, skipped):
    sizes = meta["sizes"]
    L = ["# Large answers: server CPU per GiB served\n",
         f"Generated by `benches/large.sh` on {meta['date']} (lameduck {meta['lameduck_commit']}, "
         f"`examples/slow_work`). Host: {meta['cpu']}, {meta['ncpu']} cores, Linux "
         f"{meta['kernel']}, load average {meta['loadavg_at_start']} at start. Server pinned to "
         f"CPU {h.SERVER_CPU}, `wrk -t1 -c{CONNS}` (keep-alive) and this harness to CPU "
         f"{h.CLIENT_CPU}. {meta['rounds']} interleaved rounds × {meta['duration_s']} s per "
         f"size; each cell is the median over rounds, and in brackets the median of the "
         f"per-round ratio to **{BASELINE}**. Every server answers `GET /blob?bytes=N` with "
         f"the first N bytes of one 8 MiB body shared by all connections (nginx: a file, "
         f"sendfile). CPU s/GiB = server utime + stime / GiB that wrk read. `GET /` during load: "
         f"a fresh connection every {PROBE_EVERY_S * 1000:.0f} ms, timed by this harness (it "
         f"shares CPU {h.CLIENT_CPU} with wrk, so its figures include waiting for that core); "
         f"idle: {IDLE_PROBES} of them, paced the same, before the load. \"disturbed\" counts rounds in which "
         f"the server or wrk spent more than {WAIT_LIMIT:.0%} of the run waiting for a CPU "
         f"(schedstat): another process had the core, so that round's req/s and latency "
         f"measure the machine; CPU s/GiB is the server's own time and holds better.\n"]
    for size in sizes:
        L += [f"\n## {size} answers\n",
              "| server | req/s | GiB/s | server CPU s/GiB | CPU use server / wrk | "
              "waiting for a CPU server / wrk | disturbed | p50 / p99 ms | "
              "`GET /` during load p50 / p99 ms | errors |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for n in names:
            s = summary[n]
            ratio = s[f"{size}.cpu_s_per_gib.ratio"]
            cpu = num(s[f"{size}.cpu_s_per_gib"], ".3f") + (
                f" ({ratio:.2f}×)" if ratio is not None else "")
            util = (f"{num(s[f'{size}.server_cpu_util'], '.0%')} / "
                    f"{num(s[f'{size}.client_cpu_util'], '.0%')}")
            wait = (f"{num(s[f'{size}.server_cpu_wait'], '.0%')} / "
                    f"{num(s[f'{size}.client_cpu_wait'], '.0%')}")
            ok = [r[n]["sizes"][size] for r in rounds if size in r.get(n, {}).get("sizes", {})]
            dist = sum(1 for r in ok if disturbed(r))
            util += f" | {wait} | " + (f"{dist}/{len(ok)}" if dist else "")
            failed = s[f"{size}.probe.failed"]
            L.append(f"| {n} | {num(s[f'{size}.rps'], ',.0f')} | "
                     f"{num(s[f'{size}.gib_per_s'], '.2f')} | {cpu} | {util} | "
                     f"{num(s[f'{size}.p50_ms'], '.1f')} / {num(s[f'{size}.p99_ms'], '.1f')} | "
                     f"{num(s[f'{size}.probe.p50_ms'], '.2f')} / "
                     f"{num(s[f'{size}.probe.p99_ms'], '.2f')}"
                     + (f" ({failed:.0f} failed)" if failed else "") + " | "
                     f"{num(s[f'{size}.errors'], ',.0f')} |")
    L += ["\n## Idle, memory\n",
          "| server | `GET /` idle p50 / p99 ms | idle RSS KiB | peak RSS KiB (VmHWM) |",
          "|---|--:|--:|--:|"]
    for n in names:
        s = summary[n]
        L.append(f"| {n} | {num(s['idle_probe.p50_ms'], '.2f')} / "
                 f"{num(s['idle_probe.p99_ms'], '.2f')} | {num(s['idle_rss_kib'], ',.0f')} | "
                 f"{num(s['peak_rss_kib'], ',.0f')} |")
    L += h.report_tail(goal_lines(rounds, summary, sizes), "Goal (issue 15), lameduck",
                       "Medians of per-round ratios of CPU s/GiB; reported, not asserted.",
                       names, SPECS, skipped, "Large answers",
                       "Raw per-round values: `large.json`.")
    path.write_text("\n".join(L))


def write_reports(meta, rounds, names, skipped):
    summary = summarise(rounds, names, meta["sizes"])
    h.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (h.OUT_DIR / "large.json").write_text(json.dumps({
        "meta": meta, "skipped": skipped,
        "servers": {n: {"what": SPECS[n]["what"], "figures": summary[n]} for n in names},
        "goals": [{"goal": t, "measured": m, "met": ok}
                  for t, m, ok in goal_lines(rounds, summary, meta["sizes"])],
        "rounds": rounds}, indent=1) + "\n")
    write_markdown(h.OUT_DIR / "large.md", meta, rounds, summary, names, skipped)


def main():
    h.TMP.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.sched_setaffinity(0, {int(h.CLIENT_CPU)})  # this process is a client too
    unknown = [n for n in SERVER_NAMES if n not in SPECS]
    if unknown:
        sys.exit(f"unknown servers {unknown}; known: {list(SPECS)}")
    if max(SIZES) > h.BLOB_LEN:
        sys.exit(f"SIZES: at most {h.BLOB_LEN}")
    h.log(f"large: rounds={ROUNDS} duration={DURATION}s conns={CONNS} "
          f"sizes={[size_name(n) for n in SIZES]} servers={SERVER_NAMES}")
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t_start = time.monotonic()
    rounds, skipped = [], {}
    for r in range(1, ROUNDS + 1):
        h.log(f"round {r}/{ROUNDS}")
        rnd = {}
        for i, name in enumerate(SERVER_NAMES):
            if name in skipped:
                continue
            port = BASE_PORT + (r - 1) * len(SPECS) + i  # fresh ports every round
            try:
                rnd[name] = measure(name, r, port)
            except h.NoBlobRoute as e:  # a lameduck from before issue 15: say so, go on
                h.log(f"    {name}: SKIPPED: {e}")
                skipped[name] = f"{e} ({SPECS[name]['bin']})"
            except Exception as e:  # one server failing must not lose the others' results
                h.log(f"    {name}: FAILED: {e}")
                rnd[name] = {"error": str(e)}
        rounds.append(rnd)
    names = [n for n in SERVER_NAMES
             if any("error" not in rnd.get(n, {"error": 1}) for rnd in rounds)]
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "lameduck_commit": h.git_commit(), "slow_work_bin": h.SLOW_WORK_BIN,
        "cpu": h.cpu_model(), "ncpu": os.cpu_count(), "kernel": platform.release(),
        "rounds": ROUNDS, "duration_s": DURATION, "conns": CONNS,
        "sizes": [size_name(n) for n in SIZES], "baseline": BASELINE,
        "server_cpu": h.SERVER_CPU, "client_cpu": h.CLIENT_CPU, "loadavg_at_start": loadavg,
        "probe_every_s": PROBE_EVERY_S, "idle_probes": IDLE_PROBES,
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }
    write_reports(meta, rounds, names, skipped)
    h.log(f"done in {meta['elapsed_s']:.0f} s: {h.OUT_DIR / 'large.md'}")
    print((h.OUT_DIR / "large.md").read_text())


def report_only():
    """REPORT_ONLY=1: rewrite large.md (and the summary in large.json) from its rounds."""
    global CONNS, BASELINE, PROBE_EVERY_S, IDLE_PROBES
    data = json.loads((h.OUT_DIR / "large.json").read_text())
    meta = data["meta"]
    CONNS, BASELINE = meta["conns"], meta["baseline"]
    PROBE_EVERY_S, IDLE_PROBES = meta["probe_every_s"], meta["idle_probes"]
    h.SERVER_CPU, h.CLIENT_CPU = meta["server_cpu"], meta["client_cpu"]
    rounds = data["rounds"]
    write_reports(meta, rounds, list(data["servers"]), data.get("skipped", {}))
    print((h.OUT_DIR / "large.md").read_text())


if __name__ == "__main__":
    if os.environ.get("REPORT_ONLY", "0") not in ("", "0"):
        report_only()
    else:
        main()
