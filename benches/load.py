#!/usr/bin/env python3
"""External-load-client measurement of `POST /v1/generations` (issue 15): Hallmark and its Python
peer (benches/python_peer/) under the same `wrk` load, in the same run, on the same machine, with
the same torch thread settings, and the raw generator forward throughput as the ceiling.

    python benches/load.py [--hallmark target/debug/hallmark] [--duration 15] [--connections 1,8,32]
        [--torch-threads N] [--python-workers 1,2] [--accept json|png] [--out FILE]
        [--hallmark-env NAME=VALUE ...]

Needs `wrk` (apt-get install -y wrk), PostgreSQL (DATABASE_URL names the server; the databases
hallmark_load_bench, hallmark_peer_bench and hallmark_peer_bench_w<N> are dropped and made afresh), and the venv's python
with benches/python_peer/requirements.txt installed (run this script with that python).

What it does:
1. the ceiling: `benches/gan_torch.py` (the PyTorch twin of the architecture, same thread count)
   generator forward at batch 1, 64 and 256, before and after the services (the better of the
   two runs); the ceiling is the better of batch 64 and 256, as in docs/benchmarks.md;
2. starts Hallmark (a copy of the binary, `hallmark init`, `hallmark keys create --role
   generator`, `hallmark serve` with HALLMARK__LOG__LEVEL=warn, the CPU device and default
   workers: one per core) and checks on one of its images that the peer's fingerprints are
   Hallmark's; starts the Python peer once per --python-workers value (uvicorn processes), each
   with a database of its own; all stay up side by side (idle ones cost next to nothing);
3. warms each up (--warmup s at 8 connections), then at each connection count runs wrk against
   every service in turn, --duration s each (interleaved, so both sides of a ratio are measured
   moments apart; --rounds N repeats it all and keeps each side's best round), recording the
   CPU time of each service's processes, of PostgreSQL, of wrk and of the whole machine;
4. prints a markdown table: images/s and p50/p99 per side, Hallmark / Python (against the better
   peer configuration at that connection count), Hallmark / ceiling; each side's stage breakdown
   from the `Server-Timing` header, averaged over every answered request of the level; and CPU
   milliseconds per signed image.

wrk runs min(2, connections) threads, keep-alive, one static request: count 1, PNG, no seed (each
service picks a random one), `Accept: application/json` (Hallmark's 201 JSON answer) or, with
--accept png, `Accept: image/png` (the signed bytes in the answer). Torch threads: both services
run as shipped by default: Hallmark with the threads of its settings (`model.intra_op_threads`,
auto; read back from its /readyz and printed), the peer and gan_torch.py with torch's default.
--torch-threads N is an override, printed with the results: Hallmark gets
HALLMARK__MODEL__INTRA_OP_THREADS=N, the peer and the ceiling OMP_NUM_THREADS=MKL_NUM_THREADS=N
(libtorch reads them at start-up; the peer also calls torch.set_num_threads).
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
STAGES = ("inference", "encode", "fingerprint", "sign", "store")

LUA = r"""
-- POST /v1/generations, count 1, PNG; tallies statuses and Server-Timing stages per thread.
wrk.method = "POST"
wrk.body = '{"count":1,"format":"png"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LOAD_API_KEY")
wrk.headers["Accept"] = os.getenv("LOAD_ACCEPT") or "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, bad, timed = 0, 0, 0
  sums = {}
  statuses = {}
end

function response(status, headers, body)
  if status == 200 or status == 201 then
    ok = ok + 1
  else
    bad = bad + 1
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  end
  local timing = headers["server-timing"] or headers["Server-Timing"]
  if timing then
    timed = timed + 1
    for name, dur in string.gmatch(timing, "([%w_]+);dur=([%d%.]+)") do
      sums[name] = (sums[name] or 0) + tonumber(dur)
    end
  end
end

function done(summary, latency, requests)
  local total = {ok = 0, bad = 0, timed = 0, sums = {}, statuses = {}}
  for _, thread in ipairs(threads) do
    total.ok = total.ok + thread:get("ok")
    total.bad = total.bad + thread:get("bad")
    total.timed = total.timed + thread:get("timed")
    for name, value in pairs(thread:get("sums")) do
      total.sums[name] = (total.sums[name] or 0) + value
    end
    for name, value in pairs(thread:get("statuses")) do
      total.statuses[name] = (total.statuses[name] or 0) + value
    end
  end
  local parts = {}
  for name, value in pairs(total.sums) do
    table.insert(parts, string.format('"%s":%.6f', name, value))
  end
  local codes = {}
  for name, value in pairs(total.statuses) do
    table.insert(codes, string.format('"%s":%d', name, value))
  end
  io.write(string.format(
    'LOAD_RESULT {"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,"timed":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"sums":{%s},"statuses":{%s}}\n',
    summary.requests, summary.duration, total.ok, total.bad, total.timed,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ","), table.concat(codes, ",")))
end
"""


def log(*parts):
    print(*parts, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_of(url: str) -> str:
    return url.split("?")[0].rpartition("/")[0]


def psql(server: str, sql: str) -> None:
    """Runs SQL on the server's `postgres` database with the venv's asyncpg."""
    import asyncio

    import asyncpg

    async def run():
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    asyncio.run(run())


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, limit: float = 180) -> None:
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the service exited ({process.returncode}) before ready:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() - started > limit:
            raise SystemExit(f"not ready within {limit} s: {url}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int):
    """(ppid, comm, cpu seconds: utime + stime) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1: text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / TICK


def cpu_snapshot(root: int) -> dict:
    """CPU seconds so far of the service (its process tree), of PostgreSQL (every `postgres`
    process), and of the whole machine (busy, total) from /proc/stat."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = proc_stat(int(entry))
            if found:
                stats[int(entry)] = found
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return {
        "service": {pid: stats[pid][2] for pid in tree if pid in stats},
        "postgres": {pid: cpu for pid, (_, comm, cpu) in stats.items() if comm == "postgres"},
        "machine": ((sum(ticks) - idle) / TICK, sum(ticks) / TICK),
    }


def cpu_used(before: dict, after: dict) -> dict:
    def delta(kind):  # processes present at both ends
        return sum(after[kind][pid] - cpu for pid, cpu in before[kind].items() if pid in after[kind])
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    return {"service_s": delta("service"), "postgres_s": delta("postgres"), "machine_busy_s": busy,
            "machine_total_s": total}


def wrk(lua: Path, url: str, key: str, accept: str, connections: int, duration: int,
        service_pid: int = 0) -> dict:
    threads = min(2, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
               "--timeout", "30s", "-s", str(lua), url]
    environment = {**os.environ, "LOAD_API_KEY": key, "LOAD_ACCEPT": accept}
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_snapshot(service_pid) if service_pid else None
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    after = cpu_snapshot(service_pid) if service_pid else None
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^LOAD_RESULT (\{.*\})$", done.stdout, re.M)
    if done.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result = json.loads(match.group(1))
    seconds = result["duration_us"] / 1e6
    result["images_per_s"] = result["ok"] / seconds
    result["stage_ms"] = {name: result["sums"].get(name, 0.0) / max(result["timed"], 1) for name in STAGES}
    result["connections"] = connections
    result["wrk_threads"] = threads
    result["cpu"] = cpu_used(before, after) if before else None
    if result["cpu"]:
        result["cpu"]["wrk_s"] = (children_after.ru_utime + children_after.ru_stime
                                  - children.ru_utime - children.ru_stime)
    return result


class Service:
    def __init__(self, name: str, url: str, key: str, process: subprocess.Popen):
        self.name, self.url, self.key, self.process = name, url, key, process


def measure(service: Service, args, lua: Path, connections: int) -> dict:
    name = service.name
    result = wrk(lua, service.url, service.key, args.accept_header, connections, args.duration,
                 service.process.pid)
    stages = ", ".join(f"{s} {result['stage_ms'][s]:.2f}" for s in STAGES)
    log(f"{name}: {connections:>3} connections: {result['images_per_s']:8.1f} images/s, "
        f"p50 {result['p50_us'] / 1000:.1f} ms, p99 {result['p99_us'] / 1000:.1f} ms, "
        f"{result['ok']} ok, {result['bad']} failed {result['statuses']}, errors "
        f"c/r/w/t {result['connect_errors']}/{result['read_errors']}/{result['write_errors']}/"
        f"{result['timeouts']}; stages (ms per request, mean of {result['timed']}): {stages}")
    cpu = result["cpu"]
    if cpu and result["ok"]:
        per = lambda s: 1000 * s / result["ok"]  # noqa: E731
        log(f"{name}: {connections:>3} connections: CPU ms per image: service {per(cpu['service_s']):.2f}, "
            f"PostgreSQL {per(cpu['postgres_s']):.2f}, wrk {per(cpu['wrk_s']):.2f}, machine (all processes) "
            f"{per(cpu['machine_busy_s']):.2f}; machine busy "
            f"{100 * cpu['machine_busy_s'] / max(cpu['machine_total_s'], 1e-9):.0f}% of {os.cpu_count()} CPUs")
    return result


def ceiling(python: str, threads: int) -> dict:
    done = subprocess.run([python, str(BENCHES / "gan_torch.py"), "--threads", str(threads), "--steps", "1",
                           "--infer-batches", "1,64,256", "--infer-iters", "30"],
                          capture_output=True, text=True, check=True, env=torch_env(threads))
    return json.loads(done.stdout.strip().splitlines()[-1])["infer_images_per_s"]


def torch_env(threads: int) -> dict:
    environment = dict(os.environ)
    if threads > 0:
        environment["OMP_NUM_THREADS"] = str(threads)
        environment["MKL_NUM_THREADS"] = str(threads)
    return environment


def start_hallmark(args, work: Path) -> Service:
    binary = work / "hallmark"
    shutil.copy2(args.hallmark, binary)  # a rebuild by others cannot swap it mid-run
    db = f"{args.server}/hallmark_load_bench{args.db_query}"
    psql(args.server, 'DROP DATABASE IF EXISTS "hallmark_load_bench" WITH (FORCE)')
    data = work / "hallmark-data"
    # Hallmark runs as shipped: its torch threads come from its settings (model.intra_op_threads,
    # auto by default), never from OMP_NUM_THREADS; --torch-threads, when given, is passed as that
    # setting and printed with the results as an override.
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("HALLMARK_") and k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    environment.pop("RUST_LOG", None)
    port = free_port()
    environment.update({
        "HALLMARK__DATABASE__URL": db,
        "HALLMARK__STORAGE__DATA_DIR": str(data),
        "HALLMARK__MODEL__DIR": str(REPO / "models"),
        "HALLMARK__MODEL__DEVICE": "cpu",
        "HALLMARK__LOG__LEVEL": "warn",
        "HALLMARK__SERVER__PORT": str(port),
        "HALLMARK__METRICS__LISTEN": "127.0.0.1:0",
    })
    if args.torch_threads > 0:
        environment["HALLMARK__MODEL__INTRA_OP_THREADS"] = str(args.torch_threads)
    for setting in args.hallmark_env:
        name, _, value = setting.partition("=")
        environment[name] = value

    def hallmark(*command):
        return subprocess.run([str(binary), *command], env=environment, capture_output=True, text=True,
                              check=True).stdout
    hallmark("init")
    key = hallmark("keys", "create", "--role", "generator", "--name", "load").strip().splitlines()[-1]
    log_path = work / "hallmark-serve.log"
    with open(log_path, "w") as out:
        process = subprocess.Popen([str(binary), "serve"], env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", process, log_path)
    except BaseException:
        stop(process)
        raise
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as ready:
        model = json.load(ready).get("model") or {}
    override = environment.get("HALLMARK__MODEL__INTRA_OP_THREADS")
    setting = (f"HALLMARK__MODEL__INTRA_OP_THREADS={override} (override)" if override
               else "the shipped settings (model.intra_op_threads = 0: auto)")
    log(f"hallmark torch threads from /readyz: intra-op {model.get('intra_op_threads')}, inter-op "
        f"{model.get('inter_op_threads')}, from {setting}")
    try:
        cross_check(f"http://127.0.0.1:{port}", key, db)
    except Exception as error:  # a check, not the measurement
        log(f"cross-check failed: {error!r}")
    return Service("hallmark", f"http://127.0.0.1:{port}/v1/generations", key, process)


def start_python(args, work: Path, workers: int) -> Service:
    app = BENCHES / "python_peer" / "app.py"
    name = "hallmark_peer_bench" if workers == 1 else f"hallmark_peer_bench_w{workers}"
    db = f"{args.server}/{name}{args.db_query}"
    psql(args.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    data = work / f"peer-data-{workers}"
    environment = torch_env(args.torch_threads)
    key = subprocess.run([args.python, str(app), "init", "--database-url", db, "--data-dir", str(data)],
                         env=environment, capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    log_path = work / f"peer-serve-{workers}.log"
    with open(log_path, "w") as out:
        process = subprocess.Popen(
            [args.python, str(app), "serve", "--database-url", db, "--data-dir", str(data), "--port", str(port),
             "--workers", str(workers), "--torch-threads", str(args.torch_threads)],
            env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", process, log_path)
    except BaseException:
        stop(process)
        raise
    return Service(f"python-w{workers}", f"http://127.0.0.1:{port}/v1/generations", key, process)


def cross_check(base: str, key: str, db: str) -> None:
    """One Hallmark image: are the peer's fingerprints (numpy) Hallmark's own? Compares the pixel
    SHA-256, the pHash and the 17 registered variant pHashes of the served file."""
    import asyncio
    import io

    import asyncpg
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(BENCHES / "python_peer"))
    import app

    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    req = urllib.request.Request(f"{base}/v1/generations", data=b'{"count":1,"format":"png"}', headers=auth)
    with urllib.request.urlopen(req, timeout=30) as r:
        image = json.loads(r.read())["images"][0]
    with urllib.request.urlopen(urllib.request.Request(base + image["image_url"], headers=auth), timeout=30) as r:
        signed = r.read()
    pixels = np.asarray(Image.open(io.BytesIO(signed)))
    grey = pixels if pixels.ndim == 2 else pixels[..., 0]
    mine = app.Fingerprinter(grey.shape[0]).phashes(grey)

    async def registered():
        conn = await asyncpg.connect(db)
        try:
            rows = await conn.fetch("SELECT phash FROM record_hashes WHERE record_id = $1 ORDER BY variant",
                                    __import__("uuid").UUID(image["id"]))
            return [r["phash"] for r in rows]
        finally:
            await conn.close()
    theirs = asyncio.run(registered())
    same_pixels = app.pixel_sha256(pixels if pixels.ndim == 3 else pixels[..., None]).hex() == image["pixel_sha256"]
    same_phash = f"{mine[0]:016x}" == image["phash"]
    same_variants = [app.i64(h) for h in mine] == theirs
    log(f"cross-check on a Hallmark image: pixel_sha256 {'same' if same_pixels else 'DIFFERENT'}, "
        f"pHash {'same' if same_phash else 'DIFFERENT'}, {len(theirs)} registered variant pHashes "
        f"{'all the same' if same_variants else 'DIFFERENT'} as the peer's numpy fingerprints")


def busiest(seconds: float = 1.0) -> str:
    """The processes using the most CPU over the next second (others' builds and tests share the
    machine), as %CPU of one core."""
    def snapshot():
        found = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = proc_stat(int(entry))
                if stat:
                    found[int(entry)] = stat
        return found
    before = snapshot()
    time.sleep(seconds)
    after = snapshot()
    use = sorted(((after[p][2] - before[p][2]) / seconds, after[p][1]) for p in after if p in before)
    top = [f"{name} {100 * cpu:.0f}%" for cpu, name in reversed(use[-6:]) if cpu > 0.02]
    return ", ".join(top) or "none above 2%"


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(args, ceilings: dict, hallmark: list, peers: dict) -> None:
    best = max(ceilings.get("64", 0), ceilings.get("256", 0))
    log(f"\n## Results ({args.duration} s per level, wrk, count 1 PNG, Accept: {args.accept_header}, "
        f"torch threads {args.torch_threads or 'default'})\n")
    log(f"raw generator forward (benches/gan_torch.py, PyTorch, {args.torch_threads or 'default'} threads): "
        + ", ".join(f"batch {b} {v:.0f} images/s" for b, v in ceilings.items())
        + f" (best of the runs before and after the services; ceiling: the better of 64 and 256, {best:.0f})\n")
    names = list(peers)
    log("| connections | Hallmark images/s | p50 ms | p99 ms | Python images/s (best of "
        + ", ".join(names) + ") | p50 ms | p99 ms | Hallmark / Python | Hallmark / ceiling |")
    log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for index, connections in enumerate(args.connections):
        h = hallmark[index] if hallmark else None
        candidates = [(rows[index], name) for name, rows in peers.items()]
        p, pname = max(candidates, key=lambda c: c[0]["images_per_s"]) if candidates else (None, "")
        ratio = h["images_per_s"] / p["images_per_s"] if h and p and p["images_per_s"] else None
        log(f"| {connections} | {fmt(h and h['images_per_s'])} | {fmt(h and h['p50_us'] / 1000)} | "
            f"{fmt(h and h['p99_us'] / 1000)} | {fmt(p and p['images_per_s'])} ({pname}) | "
            f"{fmt(p and p['p50_us'] / 1000)} | {fmt(p and p['p99_us'] / 1000)} | "
            f"{fmt(ratio, 2)}x | {fmt(h and 100 * h['images_per_s'] / best, 1)}% |")
    log("\nStage breakdown from Server-Timing (ms per request, mean over every answered request of the level; "
        "`inference` and `store` include waiting for a batch or a connection):\n")
    log("| service | connections | requests timed | " + " | ".join(STAGES) + " | sum | wall (1000/images/s x conns) |")
    log("|---|---:|---:|" + "---:|" * (len(STAGES) + 2))
    for name, rows in [("hallmark", hallmark)] + list(peers.items()):
        for row in rows or []:
            stages = row["stage_ms"]
            row.setdefault("name", name)
            wall = 1000 * row["connections"] / row["images_per_s"] if row["images_per_s"] else None
            log(f"| {name} | {row['connections']} | {row['timed']} | "
                + " | ".join(f"{stages[s]:.2f}" for s in STAGES)
                + f" | {sum(stages.values()):.2f} | {fmt(wall, 2)} |")
    log("\nCPU per signed image (ms; /proc, over the level): the service's processes, every PostgreSQL "
        "process (other users of the server included), wrk, and the whole machine; machine busy = share "
        f"of all {os.cpu_count()} CPUs in use:\n")
    log("| service | connections | service | PostgreSQL | wrk | machine | machine busy |")
    log("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in [("hallmark", hallmark)] + list(peers.items()):
        for row in rows or []:
            cpu = row.get("cpu")
            if not cpu or not row["ok"]:
                continue
            per = lambda s: 1000 * s / row["ok"]  # noqa: E731
            log(f"| {name} | {row['connections']} | {per(cpu['service_s']):.2f} | {per(cpu['postgres_s']):.2f} | "
                f"{per(cpu['wrk_s']):.2f} | {per(cpu['machine_busy_s']):.2f} | "
                f"{100 * cpu['machine_busy_s'] / max(cpu['machine_total_s'], 1e-9):.0f}% |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hallmark", default=None, help="binary (default: target/release/hallmark, else debug)")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="repeat every level; each side's best round counts")
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="an override: torch intra-op threads for both services (Hallmark's "
                             "model.intra_op_threads, the peer's OMP/MKL threads) and the ceiling; 0 (default): "
                             "none, each side as shipped (Hallmark's settings, torch's default for the peer)")
    parser.add_argument("--python-workers", default="1,2", help="uvicorn process counts to measure")
    parser.add_argument("--accept", choices=("json", "png"), default="json")
    parser.add_argument("--db-sslmode", default="",
                        help="sslmode for both services' database URLs (e.g. disable); default: none given, "
                             "so both use their driver's default, prefer (TLS when the server offers it)")
    parser.add_argument("--skip-hallmark", action="store_true")
    parser.add_argument("--hallmark-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for Hallmark (e.g. HALLMARK__LIMITS__BATCH_DELAY_MS=0); repeatable")
    parser.add_argument("--skip-python", action="store_true")
    parser.add_argument("--python", default=sys.executable, help="the venv's python for the peer")
    parser.add_argument("--out", help="also write everything printed to this file")
    parser.add_argument("--write-lua", help="write the wrk script here and exit")
    args = parser.parse_args()
    if args.write_lua:
        Path(args.write_lua).write_text(LUA)
        return 0
    args.connections = [int(c) for c in args.connections.split(",")]
    args.accept_header = "application/json" if args.accept == "json" else "image/png"
    args.db_query = f"?sslmode={args.db_sslmode}" if args.db_sslmode else ""
    args.server = server_of(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hallmark"))
    if args.hallmark is None:
        for profile in ("release", "debug"):
            candidate = REPO / "target" / profile / "hallmark"
            if candidate.exists():
                args.hallmark = str(candidate)
                break
    if not args.skip_hallmark and not (args.hallmark and Path(args.hallmark).exists()):
        raise SystemExit("no hallmark binary: build one (cargo build --bin hallmark) or pass --hallmark")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    if args.out:
        tee = open(args.out, "w")
        original = sys.stdout

        class Tee:
            def write(self, text):
                original.write(text)
                tee.write(text)

            def flush(self):
                original.flush()
                tee.flush()
        sys.stdout = Tee()

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    log(f"# benches/load.py, {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    log(f"machine: {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}, "
        f"{platform.platform()}; git HEAD {head} (working tree may differ)")
    if not args.skip_hallmark:
        st = Path(args.hallmark).stat()
        where = str(Path(args.hallmark).resolve())
        profile = ("release" if "/release/" in where else "dev (debug)" if "/debug/" in where
                   else "unknown: say which")
        log(f"hallmark binary: {args.hallmark} ({profile} profile, built "
            f"{datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat(timespec='seconds')}, {st.st_size} bytes)")
    log(f"load client: {' '.join(wrk_version)}; python {platform.python_version()} ({args.python})")
    log(f"torch threads: {'override ' + str(args.torch_threads) if args.torch_threads else 'no override'} "
        f"(Hallmark: its settings; peer and ceiling: OMP_NUM_THREADS=MKL_NUM_THREADS="
        f"{args.torch_threads or 'unset, torch default'}); "
        f"python peer workers: {args.python_workers}; connections {args.connections}, {args.duration} s each, "
        f"{args.warmup} s warm-up at 8 connections; database sslmode: {args.db_sslmode or 'not set (prefer)'} "
        "for both services")

    log(f"busiest processes before the run (1 s, % of one CPU): {busiest()}")
    ceilings = ceiling(args.python, args.torch_threads)
    log("raw forward (gan_torch.py): " + json.dumps({k: round(v) for k, v in ceilings.items()}))
    with tempfile.TemporaryDirectory(prefix="hallmark-load-") as tmp:
        work = Path(tmp)
        lua = work / "generation.lua"
        lua.write_text(LUA)
        services = []
        try:
            if not args.skip_hallmark:
                services.append(start_hallmark(args, work))
            if not args.skip_python:
                for workers in [int(w) for w in args.python_workers.split(",")]:
                    services.append(start_python(args, work, workers))
            log(f"\nall services up: {', '.join(s.name for s in services)}; warm-up {args.warmup} s each at 8 "
                "connections (not reported)")
            for service in services:
                wrk(lua, service.url, service.key, args.accept_header, 8, args.warmup)
            # Interleaved: at each connection count every service in turn, so that the sides of a
            # comparison are measured moments apart under the same machine conditions; with
            # --rounds N, each side's best round counts.
            best = {service.name: {} for service in services}
            for round_ in range(args.rounds):
                log(f"\n## round {round_ + 1} of {args.rounds}")
                for connections in args.connections:
                    for service in services:
                        result = measure(service, args, lua, connections)
                        kept = best[service.name].get(connections)
                        if kept is None or result["images_per_s"] > kept["images_per_s"]:
                            best[service.name][connections] = result
        finally:
            for service in services:
                stop(service.process)
        rows = {name: [levels[c] for c in args.connections] for name, levels in best.items()}
        hallmark = rows.pop("hallmark", [])
        peers = rows
    again = ceiling(args.python, args.torch_threads)
    log("raw forward again after the services (gan_torch.py): " + json.dumps({k: round(v) for k, v in again.items()}))
    ceilings = {k: max(v, again.get(k, 0)) for k, v in ceilings.items()}
    report(args, ceilings, hallmark, peers)
    log(f"\nload average at the end: {os.getloadavg()}; busiest processes: {busiest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
