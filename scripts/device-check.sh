#!/usr/bin/env bash
# The prepared check for a lent GPU machine (issue 33; docs/gpu.md): one call, under 8 minutes,
# everything written to $OUT (at most 8 files come back from there).
#
#   scripts/device-check.sh          on the device: model.device = cuda
#   scripts/device-check.sh --cpu    the same script on this machine's CPU (smaller sizes)
#   ... --only fwd-torch,load        a rerun of some steps (env, postgres and init always run)
#
# Needs the bundle (`make device-bundle`: device-bundle/, carried with the call) and a python3
# with torch (the device's /opt/torch/.venv; here HALLMARK_DEVICE_PYTHON, e.g. the 2.11 venv that
# scripts/device-bundle.sh makes). Needs no Rust, no PostgreSQL and no network.
#
# Steps, each under `timeout` and inside an overall budget (a step that would start past it is
# skipped, so one hang cannot eat the lease):
#   env          nvidia-smi, OS, torch version and device, the bundle's binary and its libraries
#   postgres     the bundled PostgreSQL 16 on 127.0.0.1:$PG_PORT (data in $WORK, run as nobody)
#   init         hallmark init, a generator and a moderator key
#   fwd-hallmark the served generator's forward pass in Hallmark at batch 1/64/256/1024: the
#                `inference` stage of Server-Timing (latents, the model thread's forward pass, 8-bit
#                images back on the CPU) of `hallmark serve`; batch 256/1024 as bursts of count-64
#                requests that fill limits.max_batch exactly (the request completing the batch waits
#                for nothing else), checked against the hallmark_batch_size metric
#   fwd-torch    the same weights in PyTorch on the same device: forward alone and forward to 8-bit
#                images, fp32 and (CUDA) bf16/fp16 with their largest pixel difference from fp32
#   seed         `hallmark generate --seed` on the CPU and on the device: max abs pixel difference;
#                whether the signed images name the device; the PyTorch twin's mean image against
#                Hallmark's (the twin is the same model)
#   verify       `hallmark serve` on the device: POST /v1/verify (a Hallmark image, the same pixels
#                without Content Credentials, noise), latency and Server-Timing; `hallmark detect`
#   train-dcgan  Hallmark's DCGAN 32x32 step (batch 64; autocast and --full-precision on CUDA) from
#                two `hallmark train` runs of different lengths (the difference removes start-up),
#                against the same networks in PyTorch (benches/gan_torch.py's, amp and fp32)
#   train-pro    the README's GPU recipe (progressive, 128x128 RGB, latent 256, widths 16/16,
#                batch 64): Hallmark's 128x128 step from a run grown to 128x128 and resumed twice;
#                the PyTorch twin's step at every level; the time to train 120,000 steps
#   load         benches/load.py (wrk) against `hallmark serve` with model.device on the device and
#                the bundled PostgreSQL, at 1/8/32/128 connections: images/s, p50/p99, Server-Timing
#   summary      $OUT/summary.txt, $OUT/results.json
#
# $OUT gets: summary.txt, results.json, check.log (everything printed), logs.tar.gz (every step's
# log, the services' and PostgreSQL's logs, the raw results). Environment: OUT (default
# ./out-device), HALLMARK_DEVICE_PYTHON (default python3), HALLMARK_BUNDLE (default
# ./device-bundle), HALLMARK_DEVICE_WORK (default /tmp/hallmark-device-check), HALLMARK_PG_PORT
# (default 55432), HALLMARK_CHECK_BUDGET_S (default 450: steps past it are skipped).
set -uo pipefail

MODE=cuda ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) MODE=cpu ;;
        --only) ONLY=",${2:?--only takes a list of steps},"; shift ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--cpu] [--only STEP,STEP...]" >&2; exit 2 ;;
    esac
    shift
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
OUT="${OUT:-$REPO/out-device}"
PY="${HALLMARK_DEVICE_PYTHON:-python3}"
BUNDLE="${HALLMARK_BUNDLE:-$REPO/device-bundle}"
WORK="${HALLMARK_DEVICE_WORK:-/tmp/hallmark-device-check}"
PG_PORT="${HALLMARK_PG_PORT:-55432}"
BUDGET_S="${HALLMARK_CHECK_BUDGET_S:-450}"
START_S=$(date +%s)

# Sizes: the device's, and smaller ones for a 2-core CPU (said in the summary).
# On a CPU the progressive step is the recipe's networks at 32x32 (widths 16/16 at full size:
# 128 channels at 4x4) instead of 128x128, whose step takes seconds per image there.
if [ "$MODE" = cuda ]; then
    FWD_BATCHES=1,64,256,1024 FWD_ITERS=50 SERIAL_REQUESTS=30 BURSTS=10
    DCGAN_STEPS="50 250" TWIN_DCGAN_STEPS=100
    PRO_SIZE=128 PRO_BATCH=64 PRO_STEPS="10 40" TWIN_PRO_STEPS=20 PRO_IMAGES=256
    LOAD_DURATION=10 LOAD_CONNECTIONS=1,8,32,128 VERIFY_REPEAT=10
else
    FWD_BATCHES=1,64,256,1024 FWD_ITERS=5 SERIAL_REQUESTS=8 BURSTS=2
    DCGAN_STEPS="3 8" TWIN_DCGAN_STEPS=5
    PRO_SIZE=32 PRO_BATCH=8 PRO_STEPS="2 6" TWIN_PRO_STEPS=3 PRO_IMAGES=64
    LOAD_DURATION=4 LOAD_CONNECTIONS=1,8,32,128 VERIFY_REPEAT=3
fi

rm -rf "$WORK"
mkdir -p "$OUT" "$WORK"/{logs,results,py,bin,tmp}
chmod 755 "$WORK"

elapsed() { echo $(($(date +%s) - START_S)); }
say() { echo "[device-check $(elapsed)s] $*"; }

HM="$WORK/bin/hallmark"
export PATH="$WORK/bin:$PATH" PYTHONUNBUFFERED=1 MODE REPO WORK PY PG_PORT HM
export DB_SERVER="postgres://postgres@127.0.0.1:$PG_PORT"
# The settings every hallmark command of this check runs with (layered over the built-in defaults).
export HALLMARK__DATABASE__URL="$DB_SERVER/hallmark_device"
export HALLMARK__STORAGE__DATA_DIR="$WORK/data"
export HALLMARK__MODEL__DIR="$REPO/models"
export HALLMARK__MODEL__DEVICE="$MODE"
export HALLMARK__LOG__LEVEL="info,sqlx=warn,c2pa=warn"
unset HALLMARK_CONFIG RUST_LOG

# --- python helpers (written out so that each step is a plain command under `timeout`) ---------

cat >"$WORK/py/common.py" <<'EOF'
import json, os, re, statistics, sys, time, urllib.request

WORK = os.environ["WORK"]


def save(name, value):
    path = os.path.join(WORK, "results", name + ".json")
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
    print(f"result {name}: {json.dumps(value)[:2000]}")


def timings(header):
    """Server-Timing 'inference;dur=1.2, encode;dur=...' -> {name: ms}."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"([\w-]+);dur=([\d.]+)", header or "")}


def request(url, data=None, headers=None, timeout=120):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
        return r.status, dict(r.headers), body, time.perf_counter() - t


def wait_ready(url, limit):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            status, _, body, _ = request(url, timeout=2)
            if status == 200:
                return json.loads(body)
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"not ready within {limit} s: {url}")


def median(xs):
    return statistics.median(xs) if xs else None
EOF

cat >"$WORK/py/wait.py" <<'EOF'
import json, sys
from common import wait_ready
print(json.dumps(wait_ready(sys.argv[1], float(sys.argv[2]))))
EOF

# Hallmark's forward pass through the service: the `inference` stage of count-N requests.
cat >"$WORK/py/burst.py" <<'EOF'
"""burst.py BASE KEY BATCH REPEATS METRICS_URL -> results/fwd-hallmark-BATCH.json"""
import json, sys, threading
from common import median, request, save, timings

base, key, batch, repeats, metrics = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
count = min(batch, 64)
k = batch // count
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
body = json.dumps({"count": count, "format": "png"}).encode()


def batch_metric():
    _, _, text, _ = request(metrics, timeout=10)
    values = {}
    for line in text.decode().splitlines():
        for name in ("hallmark_batch_size_sum", "hallmark_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values.get("hallmark_batch_size_sum", 0.0), values.get("hallmark_batch_size_count", 0.0)


def one(results, i, gate):
    gate.wait()
    status, hdrs, _, wall = request(base + "/v1/generations", body, headers)
    t = timings(hdrs.get("Server-Timing") or hdrs.get("server-timing"))
    results[i] = (status, t.get("inference"), wall * 1000, t)


inference, walls, stages, before = [], [], [], None
for r in range(repeats + 1):  # the first round warms up
    if r == 1:
        before = batch_metric()
    results = [None] * k
    gate = threading.Barrier(k)
    threads = [threading.Thread(target=one, args=(results, i, gate)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(x is None or x[0] != 201 for x in results):
        raise SystemExit(f"a request failed: {results}")
    if r > 0:
        # The request that completed the batch waited for no other: its inference stage is the
        # batch's forward pass (with the latents and the copy of 8-bit images to the CPU).
        inference.append(min(x[1] for x in results))
        walls.append(max(x[2] for x in results))
        stages.append(results[0][3])
after = batch_metric()
batches = after[1] - before[1]
mean_batch = (after[0] - before[0]) / batches if batches else None
ms = median(inference)
save(f"fwd-hallmark-{batch}", {
    "batch": batch, "requests_per_batch": k, "count_per_request": count, "rounds": repeats,
    "inference_ms_median": ms, "inference_ms_min": min(inference), "inference_ms_max": max(inference),
    "images_per_s": batch / (ms / 1000) if ms else None,
    "round_wall_ms_median": median(walls), "mean_batch_size_seen": mean_batch,
    "one_request_stages_ms": stages[-1] if stages else None,
})
if mean_batch is not None and abs(mean_batch - batch) > 0.5:
    raise SystemExit(f"batches averaged {mean_batch} images, not {batch}")
EOF

# The served generator in PyTorch: the same safetensors, the same operations (tch's defaults:
# transposed convolutions, batch norm eps 1e-5 with the running statistics, ReLU, tanh).
cat >"$WORK/py/twin_forward.py" <<'EOF'
"""twin_forward.py DEVICE MODEL_DIR BATCHES ITERS THREADS -> results/fwd-torch.json"""
import os, sys, time, tomllib
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from common import median, save

dev, model_dir, batches, iters, threads = sys.argv[1], sys.argv[2], [int(b) for b in sys.argv[3].split(",")], int(sys.argv[4]), int(sys.argv[5])
if threads > 0:
    torch.set_num_threads(threads)
device = torch.device(dev)
card = tomllib.load(open(os.path.join(model_dir, "model.toml"), "rb"))
arch = card["architecture"]
if arch["family"] != "dcgan":
    raise SystemExit(f"the twin is a DCGAN; the served model is {arch['family']}")
latent = arch["latent_dim"]
w32 = {k: v.to(device) for k, v in load_file(os.path.join(model_dir, "generator.safetensors")).items()}


def forward(z, w):
    x = z.view(z.shape[0], latent, 1, 1)
    i = 0
    while f"up{i}.weight" in w:
        x = F.conv_transpose2d(x, w[f"up{i}.weight"], None, stride=1 if i == 0 else 2, padding=0 if i == 0 else 1)
        x = F.batch_norm(x, w[f"bn{i}.running_mean"], w[f"bn{i}.running_var"], w[f"bn{i}.weight"], w[f"bn{i}.bias"],
                         False, 0.0, 1e-5)
        x = F.relu(x)
        i += 1
    return torch.tanh(F.conv_transpose2d(x, w["out.weight"], w["out.bias"], stride=2, padding=1))


def to_images(x):
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n):
    for _ in range(max(2, n // 10)):
        fn()
    sync()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return median(ts)


dtypes = {"fp32": torch.float32}
if device.type == "cuda":
    dtypes.update(bf16=torch.bfloat16, fp16=torch.float16)
rows = []
g = torch.Generator().manual_seed(0)
with torch.inference_mode():
    for b in batches:
        z32 = torch.randn(b, latent, generator=g).to(device)
        ref = to_images(forward(z32, w32)).int()
        for name, dt in dtypes.items():
            w = {k: v.to(dt) for k, v in w32.items()}
            z = z32.to(dt)
            n = iters if b <= 256 or device.type == "cuda" else max(2, iters // 2)
            try:
                fwd = timed(lambda: forward(z, w), n)
                img = timed(lambda: to_images(forward(z, w)), n)
                diff = (to_images(forward(z, w)).int() - ref).abs().max().item()
            except Exception as e:  # a dtype the device's kernels refuse: noted, not fatal
                print(f"batch {b} {name}: {e!r}", flush=True)
                rows.append({"batch": b, "dtype": name, "error": repr(e)[:300]})
                continue
            rows.append({"batch": b, "dtype": name, "forward_ms": fwd * 1e3, "to_images_ms": img * 1e3,
                         "forward_images_per_s": b / fwd, "to_images_images_per_s": b / img,
                         "max_pixel_diff_vs_fp32": diff})
            print(f"batch {b:5d} {name}: forward {fwd * 1e3:8.3f} ms ({b / fwd:10.0f} images/s), to 8-bit images "
                  f"{img * 1e3:8.3f} ms ({b / img:10.0f} images/s), max pixel difference from fp32 {diff}", flush=True)
    # The twin's mean image over 1024 latents, for the seed step's check that it is the same model.
    z = torch.randn(1024, latent, generator=g).to(device)
    mean_image = to_images(forward(z, w32)).float().mean(0).squeeze(-1)
info = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "tf32_conv": torch.backends.cudnn.allow_tf32, "name": torch.cuda.get_device_name() if device.type == "cuda" else None}
save("fwd-torch", {"info": info, "rows": rows, "mean_image": mean_image.tolist()})
EOF

cat >"$WORK/py/compare.py" <<'EOF'
"""compare.py DIR_CPU DIR_DEVICE -> results/seed.json: pixels of the same seed on two devices."""
import glob, os, sys
import numpy as np
from PIL import Image
from common import save

a_dir, b_dir = sys.argv[1], sys.argv[2]
a_files = sorted(glob.glob(os.path.join(a_dir, "*.png")))
b_files = sorted(glob.glob(os.path.join(b_dir, "*.png")))
if not a_files or [os.path.basename(f) for f in a_files] != [os.path.basename(f) for f in b_files]:
    raise SystemExit(f"different files: {len(a_files)} vs {len(b_files)}")
diffs, differing, total = [], 0, 0
for fa, fb in zip(a_files, b_files):
    pa = np.asarray(Image.open(fa)).astype(np.int16)
    pb = np.asarray(Image.open(fb)).astype(np.int16)
    d = np.abs(pa - pb)
    diffs.append(int(d.max()))
    differing += int((d > 0).sum())
    total += d.size
names = {}
for word in (b"cuda", b"cpu"):
    names[word.decode()] = sum(word in open(f, "rb").read() for f in b_files)
hallmark_mean = np.mean([np.asarray(Image.open(f)).astype(np.float64) for f in a_files], axis=0)
twin = None
twin_path = os.path.join(os.environ["WORK"], "results", "fwd-torch.json")
if os.path.exists(twin_path):
    import json
    m = np.asarray(json.load(open(twin_path))["mean_image"], dtype=np.float64)
    if m.shape == hallmark_mean.shape:
        twin = {"correlation": float(np.corrcoef(m.ravel(), hallmark_mean.ravel())[0, 1]),
                "mean_abs_diff": float(np.abs(m - hallmark_mean).mean())}
save("seed", {"images": len(a_files), "max_abs_pixel_diff": max(diffs), "pixels_differing": differing,
              "pixels": total, "images_identical": sum(d == 0 for d in diffs),
              "device_images_mentioning": names, "twin_mean_image_vs_hallmark": twin})
EOF

cat >"$WORK/py/mkdata.py" <<'EOF'
"""mkdata.py DIR N SIZE CHANNELS: a folder of smooth random PNGs (training data for the step timing)."""
import os, sys
import numpy as np
from PIL import Image

out, n, size, channels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(n):
    small = rng.integers(0, 256, (8, 8, channels), dtype=np.uint8)
    img = Image.fromarray(small.squeeze(-1) if channels == 1 else small).resize((size, size), Image.BILINEAR)
    img.save(os.path.join(out, f"{i:05d}.png"))
EOF

cat >"$WORK/py/card.py" <<'EOF'
"""card.py MODEL_DIR: the [training] figures of a model card as JSON."""
import json, sys, tomllib
t = tomllib.load(open(sys.argv[1] + "/model.toml", "rb"))["training"]
print(json.dumps({k: t.get(k) for k in ("steps", "batch_size", "training_time_s", "images_per_s", "device")}))
EOF

# PyTorch twins of the training steps, on the same device.
cat >"$WORK/py/twin_train.py" <<'EOF'
"""twin_train.py DEVICE dcgan|progressive BATCH STEPS AMP(0|1) THREADS -> results/twin-KIND-amp|fp32.json"""
import math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from common import save

dev, kind, batch, steps, amp, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
if threads > 0:
    torch.set_num_threads(threads)
device = torch.device(dev)
amp = amp and device.type == "cuda"
torch.manual_seed(0)


def autocast():
    return torch.autocast("cuda", dtype=torch.float16, enabled=amp) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


scaler_d = torch.amp.GradScaler("cuda", enabled=amp)
scaler_g = torch.amp.GradScaler("cuda", enabled=amp)


def opt_step(opt, scaler, loss):
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


if kind == "dcgan":
    # benches/gan_torch.py's networks: Hallmark's DCGAN 32x32x1, latent 64, widths 32/32.
    sys.path.insert(0, os.path.join(os.environ["REPO"], "benches"))
    from gan_torch import discriminator, generator
    g = generator(32, 1, 64, 32).to(device)
    d = discriminator(32, 1, 32).to(device)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 32, 32, device=device) * 2 - 1

    def step(_):
        z = torch.randn(batch, 64, device=device)
        with autocast():
            fake = g(z)
            logits = d(torch.cat([real, fake.detach()]))
            d_loss = F.softplus(-logits[:batch]).mean() + F.softplus(logits[batch:]).mean()
        opt_step(opt_d, scaler_d, d_loss)
        with autocast():
            g_loss = F.softplus(-d(fake)).mean()
        opt_step(opt_g, scaler_g, g_loss)
        return d_loss.item(), g_loss.item()

    for i in range(5):
        step(i)
    sync()
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    ms = (time.perf_counter() - t) / steps * 1000
    save(f"twin-dcgan-{'amp' if amp else 'fp32'}", {"batch": batch, "steps": steps, "amp": amp, "ms_per_step": ms})
    raise SystemExit(0)

# Progressive (src/gan/progressive.rs): 128x128x3, latent 256, widths 16/16 (README's GPU recipe;
# PRO_SIZE=32 for the CPU check).
SIZE, CH, LATENT, GW, DW = int(os.environ.get("PRO_SIZE", "128")), 3, 256, 16, 16
STAGES = int(math.log2(SIZE)) - 2
SQRT2 = math.sqrt(2)


def width(base, level):
    return min(base << (STAGES - level), 512)


class EqConv(nn.Module):
    def __init__(self, i, o, k, gain):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i, k, k))
        self.bias = nn.Parameter(torch.zeros(o))
        self.scale, self.pad = gain / math.sqrt(i * k * k), k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class EqLinear(nn.Module):
    def __init__(self, i, o, gain):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i))
        self.bias = nn.Parameter(torch.zeros(o))
        self.scale = gain / math.sqrt(i)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def pixel_norm(x):
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


def fade(old, new, alpha):
    return old + (new - old) * alpha


class G(nn.Module):
    def __init__(self):
        super().__init__()
        self.w0 = width(GW, 0)
        self.dense = EqLinear(LATENT, self.w0 * 16, SQRT2 / 4)
        self.conv0 = EqConv(self.w0, self.w0, 3, SQRT2)
        self.blocks = nn.ModuleList(nn.ModuleList([EqConv(width(GW, l - 1), width(GW, l), 3, SQRT2),
                                                   EqConv(width(GW, l), width(GW, l), 3, SQRT2)]) for l in range(1, STAGES + 1))
        self.to_rgb = nn.ModuleList(EqConv(width(GW, l), CH, 1, 1.0) for l in range(STAGES + 1))

    def forward(self, z, level, alpha):
        x = lrelu(self.dense(pixel_norm(z))).view(-1, self.w0, 4, 4)
        x = pixel_norm(x)
        x = pixel_norm(lrelu(self.conv0(x)))
        prev = None
        for a, b in list(self.blocks)[:level]:
            up = F.interpolate(x, scale_factor=2, mode="nearest")
            prev = x
            x = pixel_norm(lrelu(a(up)))
            x = pixel_norm(lrelu(b(x)))
        out = self.to_rgb[level](x)
        if prev is not None and alpha < 1:
            out = fade(F.interpolate(self.to_rgb[level - 1](prev), scale_factor=2, mode="nearest"), out, alpha)
        return out


def mbstd(x):
    n, c, h, w = x.shape
    group = min(4, n) if n % 4 == 0 else n
    y = x.view(group, -1, c, h, w)
    y = (y - y.mean(0, keepdim=True)).square().mean(0).add(1e-8).sqrt()
    y = y.mean([1, 2, 3], keepdim=True).repeat(group, 1, h, w)
    return torch.cat([x, y], 1)


class D(nn.Module):
    def __init__(self):
        super().__init__()
        w0 = width(DW, 0)
        self.from_rgb = nn.ModuleList(EqConv(CH, width(DW, l), 1, SQRT2) for l in range(STAGES + 1))
        self.blocks = nn.ModuleList(nn.ModuleList([EqConv(width(DW, l), width(DW, l), 3, SQRT2),
                                                   EqConv(width(DW, l), width(DW, l - 1), 3, SQRT2)]) for l in range(1, STAGES + 1))
        self.last_conv = EqConv(w0 + 1, w0, 3, SQRT2)
        self.dense = EqLinear(w0 * 16, w0, SQRT2)
        self.out = EqLinear(w0, 1, 1.0)

    def block(self, level, h):
        a, b = self.blocks[level - 1]
        return F.avg_pool2d(lrelu(b(lrelu(a(h)))), 2)

    def forward(self, x, level, alpha):
        res = 4 << level
        if x.shape[2] != res:
            x = F.adaptive_avg_pool2d(x, res)
        h = lrelu(self.from_rgb[level](x))
        if level > 0:
            h = self.block(level, h)
            if alpha < 1:
                h = fade(lrelu(self.from_rgb[level - 1](F.avg_pool2d(x, 2))), h, alpha)
            for l in range(level - 1, 0, -1):
                h = self.block(l, h)
        h = lrelu(self.last_conv(mbstd(h)))
        return self.out(lrelu(self.dense(h.flatten(1)))).view(-1)


g, d, ema = G().to(device), D().to(device), G().to(device)
ema.load_state_dict(g.state_dict())
ema.requires_grad_(False)
opt_g = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.0, 0.99))
opt_d = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.0, 0.99))
full = torch.rand(batch, CH, SIZE, SIZE, device=device) * 2 - 1
g_params, ema_params = list(g.parameters()), list(ema.parameters())


def step(i, level):
    res = 4 << level
    real = full if res == SIZE else F.adaptive_avg_pool2d(full, res)
    z = torch.randn(batch, LATENT, device=device)
    with autocast():
        fake = g(z, level, 1.0)
        d_loss = F.softplus(-d(real, level, 1.0)).mean() + F.softplus(d(fake.detach(), level, 1.0)).mean()
    if i % 4 == 0:  # R1 (gamma 0.1, every 4th step, weighted by 4), in full precision
        x = real.detach().requires_grad_(True)
        out = d(x, level, 1.0).sum()
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
        d_loss = d_loss + grad.square().sum([1, 2, 3]).mean() * (0.4 / 2)
    opt_step(opt_d, scaler_d, d_loss)
    with autocast():
        g_loss = F.softplus(-d(fake, level, 1.0)).mean()
    opt_step(opt_g, scaler_g, g_loss)
    with torch.no_grad():
        torch._foreach_lerp_(ema_params, g_params, 1 - 0.999)
    return d_loss.item(), g_loss.item()


levels = {}
for level in range(STAGES + 1):
    n = steps if device.type == "cuda" or level >= STAGES - 1 else max(steps, 4)
    for i in range(3):
        step(i, level)
    sync()
    t = time.perf_counter()
    for i in range(n):
        step(i, level)
    sync()
    ms = (time.perf_counter() - t) / n * 1000
    levels[str(4 << level)] = ms
    print(f"progressive twin {4 << level}x{4 << level}: {ms:.1f} ms/step (batch {batch}, {'amp' if amp else 'fp32'})", flush=True)
# The README's recipe: --steps 120000 over 6 levels: 10,000 steps per stage and per fade-in, so
# 10k at 4x4, 20k at each of 8..64, 30k at 128 (fade-ins counted at their level's cost).
per_level_steps = {"4": 10000, "8": 20000, "16": 20000, "32": 20000, "64": 20000, "128": 30000} if SIZE == 128 else None
recipe_s = sum(per_level_steps[r] * levels[r] / 1000 for r in levels) if per_level_steps else None
save(f"twin-progressive-{'amp' if amp else 'fp32'}", {"batch": batch, "amp": amp, "ms_per_step_by_resolution": levels,
                                                     "recipe_steps_by_resolution": per_level_steps,
                                                     "recipe_time_s": recipe_s})
EOF

cat >"$WORK/py/verify.py" <<'EOF'
"""verify.py BASE KEY REPEAT FILE... -> results/verify.json: POST /v1/verify (raw body)."""
import json, sys
from common import median, request, save, timings

base, key, repeat, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
out = {}
for path in files:
    data = open(path, "rb").read()
    walls, stages, report = [], [], None
    for _ in range(repeat + 1):
        status, hdrs, body, wall = request(base + "/v1/verify", data,
                                           {"Authorization": f"Bearer {key}", "Content-Type": "image/png"})
        if status != 200:
            raise SystemExit(f"{path}: status {status}: {body[:500]}")
        walls.append(wall * 1000)
        stages.append(timings(hdrs.get("Server-Timing") or hdrs.get("server-timing")))
        report = json.loads(body)
    walls, stages = walls[1:], stages[1:]
    names = sorted({n for s in stages for n in s})
    out[path.rsplit("/", 1)[-1]] = {
        "wall_ms_median": median(walls),
        "stages_ms_median": {n: median([s.get(n, 0.0) for s in stages]) for n in names},
        "verdict": report.get("verdict"),
        "report": report,
    }
    print(f"{path}: verdict {json.dumps(report.get('verdict'))[:300]}; {median(walls):.1f} ms", flush=True)
save("verify", out)
EOF

cat >"$WORK/py/summary.py" <<'EOF'
"""summary.py OUT_DIR: the summary table from the results."""
import glob, json, os, sys
from common import WORK

out_dir = sys.argv[1]
R = {}
for path in sorted(glob.glob(os.path.join(WORK, "results", "*.json"))):
    try:
        R[os.path.basename(path)[:-5]] = json.load(open(path))
    except Exception as e:
        R[os.path.basename(path)[:-5]] = {"error": repr(e)}
steps = [line.rstrip("\n").split("\t") for line in open(os.path.join(WORK, "steps.tsv"))] if os.path.exists(os.path.join(WORK, "steps.tsv")) else []
mode = os.environ["MODE"]
lines = []
p = lines.append


def f(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


env = R.get("env", {})
seen = R.get("hallmark-device", {}).get("line", "n/a")
seen = seen.split("torch device", 1)[-1].strip() if "torch device" in seen else seen
p(f"# Hallmark device check ({mode}) — {env.get('date', '')}")
p(f"device: {env.get('device_name') or 'CPU'} (capability {env.get('capability')}); driver {env.get('driver')}; "
  f"python3's torch {env.get('torch')} (CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}); {env.get('cpus')} CPUs; {env.get('os', '')}")
p(f"hallmark (bundle, tch 0.24 / libtorch 2.11) sees: {seen}")
if mode == "cpu":
    p("sizes: the --cpu ones (5 timing iterations, 2 bursts, 3/8 DCGAN steps, the progressive recipe's networks at 32x32 with batch 8, "
      "4 s load levels) on a shared 2-core machine: a check that everything runs end to end, not figures")
p("")
p("| step | exit | seconds |")
p("|---|---:|---:|")
for name, rc, secs in steps:
    p(f"| {name} | {rc} | {secs} |")
p("")
fwd = R.get("fwd-torch", {}).get("rows", [])
if fwd or any(k.startswith("fwd-hallmark-") for k in R):
    dtypes = [d for d in ("fp32", "bf16", "fp16") if any(r["dtype"] == d for r in fwd)]
    p("Generator forward (served model), images/s — Hallmark: the service's `inference` stage (forward + 8-bit images on the CPU), fp32 only; PyTorch: same weights, forward alone / to 8-bit images on the CPU")
    p("| batch | Hallmark fp32 | " + " | ".join(f"PyTorch {d} fwd | PyTorch {d} to images" for d in dtypes) + " | Hallmark / PyTorch fp32 to images | max px diff bf16/fp16 |")
    p("|---:|---:|" + "---:|---:|" * len(dtypes) + "---:|---:|")
    batches = sorted({r["batch"] for r in fwd} | {v["batch"] for k, v in R.items() if k.startswith("fwd-hallmark-") and "batch" in v})
    for b in batches:
        h = R.get(f"fwd-hallmark-{b}", {}).get("images_per_s")
        row = {r["dtype"]: r for r in fwd if r["batch"] == b}
        cells = []
        for d in dtypes:
            r = row.get(d)
            cells += [f(r and r.get("forward_images_per_s"), 0), f(r and r.get("to_images_images_per_s"), 0)]
        base = row.get("fp32", {}).get("to_images_images_per_s")
        ratio = h / base if h and base else None
        diffs = "/".join(str(row[d].get("max_pixel_diff_vs_fp32", "error")) for d in ("bf16", "fp16") if d in row) or "n/a"
        p(f"| {b} | {f(h, 0)} | " + " | ".join(cells) + f" | {f(ratio, 2)} | {diffs} |")
    p("")
seed = R.get("seed")
if seed:
    twin = seed.get("twin_mean_image_vs_hallmark") or {}
    p(f"Same seed, CPU vs {mode}: {seed['images']} images, max abs pixel difference {seed['max_abs_pixel_diff']}, "
      f"{seed['pixels_differing']} of {seed['pixels']} pixels differ, {seed['images_identical']} images identical; "
      f"signed images mentioning 'cuda': {seed['device_images_mentioning'].get('cuda')}, 'cpu': {seed['device_images_mentioning'].get('cpu')}; "
      f"PyTorch twin's mean image vs Hallmark's: correlation {f(twin.get('correlation'), 4)}, mean abs difference {f(twin.get('mean_abs_diff'), 2)}")
    p("")
ver = R.get("verify")
if ver:
    p("POST /v1/verify on the service (model.device = %s): median ms and the verdict" % mode)
    for name, v in ver.items():
        verdict = v.get("verdict")
        p(f"- {name}: {f(v['wall_ms_median'], 1)} ms; stages {json.dumps({k: round(x, 2) for k, x in v['stages_ms_median'].items()})}; verdict {json.dumps(verdict)[:200]}")
    p("")
tr = {k: v for k, v in R.items() if k.startswith("train-") or k.startswith("twin-")}
if tr:
    p("Training steps, ms/step")
    for k, v in sorted(tr.items()):
        if k.startswith("twin-progressive"):
            p(f"- {k}: " + ", ".join(f"{r}x{r} {f(ms, 1)}" for r, ms in v["ms_per_step_by_resolution"].items())
              + (f"; the recipe's 120,000 steps: {f(v['recipe_time_s'] / 3600, 2)} h" if v.get("recipe_time_s") else "")
              + f" (batch {v['batch']})")
        elif k.startswith("twin-"):
            p(f"- {k}: {f(v['ms_per_step'], 2)} (batch {v['batch']}, {v['steps']} steps)")
        else:
            p(f"- {k}: {f(v.get('ms_per_step'), 2)} (batch {v.get('batch')}; from runs of {v.get('runs')} steps: "
              f"{', '.join(f(x, 2) for x in v.get('ms_per_step_each_run', []))} ms/step each incl. warm-up)"
              + (f"; the recipe's 120,000 steps estimated at {f(v['recipe_estimate_s'] / 3600, 2)} h" if v.get("recipe_estimate_s") else ""))
    p("")
load = R.get("load", {})
if load.get("table"):
    p(f"Whole service under load (benches/load.py, wrk, model.device = {mode}, bundled PostgreSQL):")
    lines.extend(load["table"])
    p("")
text = "\n".join(lines) + "\n"
open(os.path.join(out_dir, "summary.txt"), "w").write(text)
json.dump({"mode": mode, "steps": steps, "results": {k: v for k, v in R.items() if k != "fwd-torch"} | {"fwd-torch": {k: v for k, v in R.get("fwd-torch", {}).items() if k != "mean_image"}}},
          open(os.path.join(out_dir, "results.json"), "w"), indent=1)
print(text)
EOF

# --- steps --------------------------------------------------------------------------------------

: >"$WORK/steps.tsv"
# step NAME LIMIT_S FUNCTION: runs FUNCTION under timeout (bounded by the overall budget), its
# output into logs/NAME.log and on screen.
step() {
    local name=$1 limit=$2 fn=$3 left t0 rc
    case "$name" in env | postgres | init | summary) ;; *)
        if [ -n "$ONLY" ] && [[ "$ONLY" != *",$name,"* ]]; then
            printf '%s\tnot asked\t0\n' "$name" >>"$WORK/steps.tsv"
            return
        fi ;;
    esac
    left=$((BUDGET_S - $(elapsed)))
    if [ "$left" -lt 20 ]; then
        say "SKIP $name: the budget of ${BUDGET_S}s is spent"
        printf '%s\tskipped\t0\n' "$name" >>"$WORK/steps.tsv"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "=== $name (limit ${limit}s)"
    t0=$(date +%s.%N)
    timeout -k 5 "$limit" bash -c "$fn" 2>&1 | tee "$WORK/logs/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && say "TIMEOUT $name after ${limit}s"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >>"$WORK/steps.tsv"
    say "=== $name: exit $rc"
    return 0
}

# Runs as an unprivileged user (nobody): PostgreSQL refuses to run as root.
PG_UID=65534 PG_GID=65534
if [ "$(id -u)" -eq 0 ]; then
    if id -u nobody >/dev/null 2>&1; then
        PG_UID=$(id -u nobody) PG_GID=$(id -g nobody)
    elif useradd --system --no-create-home hallmark-pg >/dev/null 2>&1; then
        PG_UID=$(id -u hallmark-pg) PG_GID=$(id -g hallmark-pg)
    fi
fi
export PG_UID PG_GID
as_nobody() {
    if [ "$(id -u)" -eq 0 ]; then
        "$PY" -c 'import os, sys; os.setgroups([]); os.setgid(int(os.environ["PG_GID"])); os.setuid(int(os.environ["PG_UID"])); os.execv(sys.argv[1], sys.argv[1:])' "$@"
    else
        "$@"
    fi
}

# serve NAME PORT [NAME=VALUE...]: starts `hallmark serve` with extra settings; waits for /readyz.
serve() {
    local name=$1 port=$2
    shift 2
    env HALLMARK__SERVER__PORT="$port" HALLMARK__METRICS__LISTEN="127.0.0.1:$((port + 1))" "$@" \
        "$HM" serve >"$WORK/logs/serve-$name.log" 2>&1 &
    echo $! >"$WORK/serve-$name.pid"
    "$PY" "$WORK/py/wait.py" "http://127.0.0.1:$port/readyz" 180 || {
        tail -30 "$WORK/logs/serve-$name.log"
        return 1
    }
}
unserve() {
    local pid
    pid="$(cat "$WORK/serve-$1.pid" 2>/dev/null)" || return 0
    kill "$pid" 2>/dev/null && for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$WORK/serve-$1.pid"
}
export -f say elapsed as_nobody serve unserve
export START_S BUDGET_S

PGBIN="$WORK/b/pg/pgserver/pginstall/bin"
export PGBIN

cleanup() {
    for f in "$WORK"/serve-*.pid; do
        [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    [ -x "$PGBIN/pg_ctl" ] && [ -d "$WORK/pgdata" ] && as_nobody "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m fast -w -t 20 stop >/dev/null 2>&1
}
trap cleanup EXIT

s_env() {
    set -eo pipefail
    echo "mode $MODE; repo $REPO; work $WORK; python $(command -v "$PY")"
    uname -a
    grep PRETTY_NAME /etc/os-release || true
    nproc
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi || true
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv || true
    else
        echo "no nvidia-smi"
    fi
    [ -f "$BUNDLE/hallmark-device.tar.xz" ] || { echo "no bundle at $BUNDLE: run make device-bundle, and carry device-bundle"; exit 1; }
    cat "$BUNDLE/MANIFEST.txt" | sed -n '1,12p'
    mkdir -p "$WORK/b"
    if command -v xz >/dev/null; then
        tar -C "$WORK/b" -xJf "$BUNDLE/hallmark-device.tar.xz"
    else
        "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE/hallmark-device.tar.xz" "$WORK/b"
    fi
    local torch_lib
    torch_lib="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    # Wrappers: the bundle's libraries, then the device's libtorch (the binary also has NEEDED
    # libtorch_cuda.so, so CUDA registers as in a tch build linked against CUDA libtorch).
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s:%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
        "$WORK/b/lib" "$torch_lib" "$WORK/b/bin/hallmark" >"$WORK/bin/hallmark"
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
        "$WORK/b/lib" "$WORK/b/bin/wrk" >"$WORK/bin/wrk"
    chmod +x "$WORK/bin/hallmark" "$WORK/bin/wrk"
    # benches/load.py asks git for the commit; the device may have no git.
    command -v git >/dev/null || printf '#!/bin/sh\nexit 1\n' >"$WORK/bin/git"
    chmod +x "$WORK/bin/git" 2>/dev/null || true
    # asyncpg for benches/load.py (the device's python has none: the bundle's cp312 wheel).
    if ! "$PY" -c 'import asyncpg' 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$BUNDLE"/wheels/asyncpg-*.whl
    fi
    echo "--- the binary's libraries"
    LD_LIBRARY_PATH="$WORK/b/lib:$torch_lib" ldd "$WORK/b/bin/hallmark" | grep -E 'not found|torch|c10|jemalloc|cuda' || true
    if LD_LIBRARY_PATH="$WORK/b/lib:$torch_lib" ldd "$WORK/b/bin/hallmark" | grep -q 'not found'; then
        echo "missing libraries"; exit 1
    fi
    LD_LIBRARY_PATH="$WORK/b/lib" ldd "$WORK/b/bin/wrk" | grep 'not found' && { echo "wrk misses libraries"; exit 1; }
    "$HM" --version
    "$WORK/bin/wrk" -v 2>&1 | head -1 || true
    "$PGBIN/postgres" --version
    "$PY" - <<'EOF'
import json, os, platform, subprocess, sys, time
import torch
sys.path.insert(0, os.path.join(os.environ["WORK"], "py"))
from common import save
cuda = torch.cuda.is_available()
driver = None
try:
    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip() or None
except OSError:
    pass
info = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device_name": torch.cuda.get_device_name() if cuda else None,
        "capability": torch.cuda.get_device_capability() if cuda else None, "driver": driver,
        "cpus": os.cpu_count(), "os": platform.platform(), "python": sys.version.split()[0]}
save("env", info)
EOF
}

s_postgres() {
    set -eo pipefail
    mkdir -p "$WORK/pgdata"
    [ "$(id -u)" -eq 0 ] && chown "$PG_UID:$PG_GID" "$WORK/pgdata"
    chmod 700 "$WORK/pgdata"
    as_nobody "$PGBIN/initdb" -D "$WORK/pgdata" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
    as_nobody "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pgdata/server.log" -w -t 60 \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300" start
    "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc "select version()"
}

s_init() {
    set -eo pipefail
    "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database hallmark_device" || true
    "$HM" init
    "$HM" keys create --role generator --name device-check | tail -1 >"$WORK/key-generator"
    "$HM" keys create --role moderator --name device-check | tail -1 >"$WORK/key-moderator"
    test -s "$WORK/key-generator" && test -s "$WORK/key-moderator"
    # Which device hallmark itself sees (its log line at start-up), from one generated image.
    "$HM" generate --seed 1 --count 1 --device "$MODE" --out "$WORK/tmp/probe" 2>&1 \
        | sed 's/\x1b\[[0-9;]*m//g' | tee "$WORK/tmp/probe.log" | tail -3
    grep -a -m1 'torch device' "$WORK/tmp/probe.log" >"$WORK/hallmark-device.txt" || echo "no 'torch device' line" >"$WORK/hallmark-device.txt"
    "$PY" -c 'import json, sys; print(json.dumps({"line": open(sys.argv[1]).read().strip()}))' "$WORK/hallmark-device.txt" \
        >"$WORK/results/hallmark-device.json"
    cat "$WORK/hallmark-device.txt"
}

s_fwd_hallmark() {
    set -eo pipefail
    local key
    key="$(cat "$WORK/key-generator")"
    # Batches up to 64: one request at a time, continuous batching (delay 0) -> one request a batch.
    serve fwd 18080 HALLMARK__LIMITS__MAX_BATCH=1024
    grep -a -m1 'torch device' "$WORK/logs/serve-fwd.log" | sed 's/\x1b\[[0-9;]*m//g' || true
    "$PY" - "http://127.0.0.1:18080/readyz" <<'EOF'
import json, sys
sys.path.insert(0, __import__("os").environ["WORK"] + "/py")
from common import request, save
_, _, body, _ = request(sys.argv[1])
save("readyz", json.loads(body))
EOF
    for b in ${FWD_BATCHES//,/ }; do
        if [ "$b" -le 64 ]; then
            "$PY" "$WORK/py/burst.py" http://127.0.0.1:18080 "$key" "$b" "$SERIAL_REQUESTS" http://127.0.0.1:18081/metrics
        fi
    done
    unserve fwd
    # Larger batches: max_batch = the batch and a long delay, so a burst of count-64 requests forms
    # exactly one batch that starts when its last request arrives.
    for b in ${FWD_BATCHES//,/ }; do
        [ "$b" -gt 64 ] || continue
        serve "fwd$b" 18080 HALLMARK__LIMITS__MAX_BATCH="$b" HALLMARK__LIMITS__BATCH_DELAY_MS=10000 HALLMARK__LIMITS__QUEUE_DEPTH=4096
        "$PY" "$WORK/py/burst.py" http://127.0.0.1:18080 "$key" "$b" "$BURSTS" http://127.0.0.1:18081/metrics
        unserve "fwd$b"
    done
}

s_fwd_torch() {
    set -eo pipefail
    local threads=0
    # On a CPU, the twin gets the model thread's torch threads (read back from /readyz).
    [ "$MODE" = cpu ] && threads="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["intra_op_threads"])' "$WORK/results/readyz.json" 2>/dev/null || echo 1)"
    "$PY" "$WORK/py/twin_forward.py" "$MODE" "$REPO/models/fashion-dcgan32-ema" "$FWD_BATCHES" "$FWD_ITERS" "$threads"
}

s_seed() {
    set -eo pipefail
    "$HM" generate --seed 7 --count 64 --device cpu --out "$WORK/seed-cpu" | tail -2
    "$HM" generate --seed 7 --count 64 --device "$MODE" --out "$WORK/seed-$MODE-device" | tail -2
    "$PY" "$WORK/py/compare.py" "$WORK/seed-cpu" "$WORK/seed-$MODE-device"
}

s_verify() {
    set -eo pipefail
    local key files
    key="$(cat "$WORK/key-moderator")"
    [ -d "$WORK/seed-$MODE-device" ] || "$HM" generate --seed 7 --count 4 --out "$WORK/seed-$MODE-device" | tail -1
    files=("$WORK/seed-$MODE-device"/*.png)
    local first="${files[0]}"
    mkdir -p "$WORK/verify"
    cp "$first" "$WORK/verify/hallmark.png"
    "$PY" - "$first" "$WORK/verify" <<'EOF'
import sys
import numpy as np
from PIL import Image
src, out = sys.argv[1], sys.argv[2]
Image.fromarray(np.asarray(Image.open(src))).save(out + "/stripped.png")  # same pixels, no manifest
rng = np.random.default_rng(1)
Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(out + "/noise.png")
EOF
    serve verify 18090
    "$PY" "$WORK/py/verify.py" http://127.0.0.1:18090 "$key" "$VERIFY_REPEAT" \
        "$WORK/verify/hallmark.png" "$WORK/verify/stripped.png" "$WORK/verify/noise.png"
    unserve verify
    echo "--- hallmark detect (model.device = $MODE)"
    "$HM" detect --json "$WORK/verify/hallmark.png" "$WORK/verify/noise.png"
}

# train_runs NAME BATCH "N1 N2" ARGS...: two `hallmark train` runs; the step time from their
# difference (start-up and warm-up cancel), from the printed images/s or the card.
train_runs() {
    local name=$1 batch=$2 runs=$3
    shift 3
    local n
    for n in $runs; do
        rm -rf "$WORK/train/$name-$n"
        "$HM" train --model "$name-$n" --out "$WORK/train/$name-$n" --steps "$n" --batch-size "$batch" \
            --checkpoint-every 1000000 --device "$MODE" --quiet "$@" 2>&1 | sed '/^\s*$/d' | tail -3
        "$PY" "$WORK/py/card.py" "$WORK/train/$name-$n" >"$WORK/train/$name-$n.card.json"
    done
}

# The step time of two runs: (seconds of run 2 - seconds of run 1) / (steps 2 - steps 1), where a
# run's seconds are steps x batch / its images per second (printed rounded to 1, so the card's
# time, rounded to 0.1 s, is used when that is more precise).
step_time_py='
import json, sys
sys.path.insert(0, __import__("os").environ["WORK"] + "/py")
from common import save
name, batch, extra = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
runs = []
for arg in sys.argv[4:]:
    steps_run, card = arg.split("=", 1)
    c = json.load(open(card))
    steps_run = int(steps_run)
    ips = c.get("images_per_s") or 0
    by_rate = steps_run * batch / ips if ips else None
    rel_rate = 0.5 / ips if ips else 1
    s = by_rate if by_rate and rel_rate < 0.002 else extra.get("seconds", {}).get(card, c.get("training_time_s"))
    runs.append((steps_run, s))
(n1, s1), (n2, s2) = runs
ms = (s2 - s1) / (n2 - n1) * 1000
out = {"batch": batch, "runs": [n1, n2], "seconds": [s1, s2], "ms_per_step": ms,
       "ms_per_step_each_run": [s1 / n1 * 1000, s2 / n2 * 1000]} | extra.get("fields", {})
save(name, out)
'
export step_time_py

s_train_dcgan() {
    set -eo pipefail
    "$PY" "$WORK/py/mkdata.py" "$WORK/data32" 512 32 1
    local n1 n2 precisions=(autocast) threads=0
    read -r n1 n2 <<<"$DCGAN_STEPS"
    [ "$MODE" = cuda ] && precisions+=(fp32)
    [ "$MODE" = cpu ] && threads=2
    for p in "${precisions[@]}"; do
        local extra=()
        [ "$p" = fp32 ] && extra=(--full-precision)
        [ "$MODE" = cpu ] && extra+=(--threads 2)
        train_runs "dcgan-$p" 64 "$n1 $n2" --dataset "$WORK/data32" --size 32 --channels 1 "${extra[@]}"
        "$PY" -c "$step_time_py" "train-dcgan-$([ "$MODE" = cpu ] && echo fp32-cpu || echo "$p")" 64 '{}' \
            "$n1=$WORK/train/dcgan-$p-$n1.card.json" "$n2=$WORK/train/dcgan-$p-$n2.card.json"
    done
    "$PY" "$WORK/py/twin_train.py" "$MODE" dcgan 64 "$TWIN_DCGAN_STEPS" 1 "$threads"
    [ "$MODE" = cuda ] && "$PY" "$WORK/py/twin_train.py" "$MODE" dcgan 64 "$TWIN_DCGAN_STEPS" 0 "$threads"
    true
}

s_train_pro() {
    set -eo pipefail
    "$PY" "$WORK/py/mkdata.py" "$WORK/data$PRO_SIZE" "$PRO_IMAGES" "$PRO_SIZE" 3
    local n1 n2 threads=0 extra=()
    read -r n1 n2 <<<"$PRO_STEPS"
    [ "$MODE" = cpu ] && threads=2 && extra=(--threads 2)
    local common=(--dataset "$WORK/data$PRO_SIZE" --size "$PRO_SIZE" --channels 3 --latent-dim 256 --g-width 16 --d-width 16
        --batch-size "$PRO_BATCH" --checkpoint-every 1000000 --device "$MODE" --quiet "${extra[@]}")
    # Grown to full size in one step per stage and per fade-in (11 for 128x128), then resumed twice.
    local levels ramp base="$WORK/train/pro-base"
    levels=$(("$("$PY" -c "import math; print(int(math.log2($PRO_SIZE)))")" - 1))
    ramp=$((2 * levels - 1))
    rm -rf "$base"
    "$HM" train --model pro-base --out "$base" --progressive --stage-steps 1 --fade-steps 1 --steps "$ramp" "${common[@]}" 2>&1 | tail -2
    local n cards=()
    for n in "$n1" "$n2"; do
        rm -rf "$WORK/train/pro-$n"
        cp -a "$base" "$WORK/train/pro-$n"
        "$PY" "$WORK/py/card.py" "$WORK/train/pro-$n" >"$WORK/train/pro-$n.before.json"
        "$HM" train --model "pro-$n" --out "$WORK/train/pro-$n" --resume --steps $((ramp + n)) "${common[@]}" 2>&1 | tail -2
        "$PY" "$WORK/py/card.py" "$WORK/train/pro-$n" >"$WORK/train/pro-$n.card.json"
        cards+=("$n=$WORK/train/pro-$n.card.json")
    done
    # A resumed card holds the total time: this run's is the difference.
    local seconds
    seconds="$("$PY" - "$PRO_BATCH" "$n1" "$n2" <<'EOF'
import json, os, sys
work = os.environ["WORK"]
batch = int(sys.argv[1])
out = {}
for n in sys.argv[2:]:
    before = json.load(open(f"{work}/train/pro-{n}.before.json"))
    after = json.load(open(f"{work}/train/pro-{n}.card.json"))
    out[f"{work}/train/pro-{n}.card.json"] = after["training_time_s"] - before["training_time_s"]
print(json.dumps({"seconds": out}))
EOF
)"
    PRO_SIZE=$PRO_SIZE "$PY" "$WORK/py/twin_train.py" "$MODE" progressive "$PRO_BATCH" "$TWIN_PRO_STEPS" 1 "$threads"
    # Hallmark's recipe time: its 128x128 step scaled by the twin's per-resolution mix.
    local fields
    fields="$("$PY" - <<'EOF'
import glob, json, os
work = os.environ["WORK"]
twin = json.load(open(glob.glob(f"{work}/results/twin-progressive-*.json")[0]))
ms = twin["ms_per_step_by_resolution"]
full = max(ms, key=int)
share = twin["recipe_time_s"] / (120000 * ms[full] / 1000) if twin.get("recipe_time_s") else None
print(json.dumps({"recipe_share_of_full_size_steps": share, "size": int(full)}))
EOF
)"
    "$PY" -c "$step_time_py" "train-progressive$PRO_SIZE" "$PRO_BATCH" \
        "$("$PY" -c 'import json, sys; a = json.loads(sys.argv[1]); a["fields"] = json.loads(sys.argv[2]); print(json.dumps(a))' "$seconds" "$fields")" \
        "${cards[@]}"
    "$PY" - <<'EOF'
import json, os
work = os.environ["WORK"]
size = os.environ["PRO_SIZE"]
p = f"{work}/results/train-progressive{size}.json"
r = json.load(open(p))
if r.get("recipe_share_of_full_size_steps"):
    r["recipe_estimate_s"] = 120000 * r["ms_per_step"] / 1000 * r["recipe_share_of_full_size_steps"]
json.dump(r, open(p, "w"), indent=1)
print(f"Hallmark progressive {size}x{size}x3 step: {r['ms_per_step']:.1f} ms (batch {r['batch']})"
      + (f"; the recipe's 120,000 steps estimated at {r['recipe_estimate_s'] / 3600:.2f} h" if r.get("recipe_estimate_s") else ""))
EOF
}

s_load() {
    set -eo pipefail
    [ -d "$WORK/site" ] && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
    DATABASE_URL="$DB_SERVER/hallmark" "$PY" "$REPO/benches/load.py" --hallmark "$HM" --skip-python \
        --connections "$LOAD_CONNECTIONS" --duration "$LOAD_DURATION" --warmup 3 --db-sslmode disable \
        --hallmark-env HALLMARK__MODEL__DEVICE="$MODE" --hallmark-env HALLMARK__LOG__LEVEL=warn \
        --out "$WORK/results/load.md"
    "$PY" - <<'EOF'
import json, os
work = os.environ["WORK"]
text = open(f"{work}/results/load.md").read().splitlines()
start = next(i for i, l in enumerate(text) if l.startswith("## Results"))
table = [l.rstrip() for l in text[start:]]
json.dump({"table": table}, open(f"{work}/results/load.json", "w"), indent=1)
EOF
}

export -f s_env s_postgres s_init s_fwd_hallmark s_fwd_torch s_seed s_verify train_runs s_train_dcgan s_train_pro s_load
export PRO_SIZE FWD_BATCHES FWD_ITERS SERIAL_REQUESTS BURSTS DCGAN_STEPS TWIN_DCGAN_STEPS PRO_BATCH PRO_STEPS TWIN_PRO_STEPS \
    PRO_IMAGES LOAD_DURATION LOAD_CONNECTIONS VERIFY_REPEAT BUNDLE
export PYTHONPATH_BASE="${PYTHONPATH:-}"

main() {
say "mode $MODE, budget ${BUDGET_S}s, OUT $OUT, work $WORK"
step env 120 s_env
if [ "$(tail -1 "$WORK/steps.tsv" | cut -f2)" != 0 ]; then
    say "the bundle does not run here: stopping"
else
    step postgres 60 s_postgres
    step init 60 s_init
    step fwd-hallmark 150 s_fwd_hallmark
    step fwd-torch 120 s_fwd_torch
    step seed 90 s_seed
    step verify 90 s_verify
    step train-dcgan 120 s_train_dcgan
    step train-pro 180 s_train_pro
    step load 210 s_load
fi
step summary 30 "$PY $WORK/py/summary.py $OUT"
cp "$WORK/pgdata/server.log" "$WORK/logs/postgres.log" 2>/dev/null
cleanup
trap - EXIT
tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs results steps.tsv 2>/dev/null
say "done in $(elapsed)s; $OUT: $(ls "$OUT" | tr '\n' ' ')"
}
main 2>&1 | tee "$OUT/check.log"
exit "${PIPESTATUS[0]}"
