#!/usr/bin/env python3
"""Upscaling a 512x512 image x4 with a FULL-SIZE random RRDBNet (RealESRGAN_x4plus's shape: 23 blocks,
64 features, growth 32): our release binary against PyTorch running spandrel's ESRGAN code, on this
CPU, in one script run (issue 21's benchmark).

    /opt/fixvenv/bin/python scripts/bench_upscale.py [--runs 2] [--binary PATH] [--out benchmarks/DIR]
        [--device cpu|cuda] [--dtype f32|f16] [--repeat N]

On the GPU (--device cuda) both sides run on it in --dtype; each process upscales the image --repeat times
(ours: N identical jobs in one headless run, the model loaded once; theirs: N calls of model(x), each
timed alone with one synchronize after it), so the first (cold) and later (warm) figures are both kept.
Theirs' device peak is torch.cuda.max_memory_allocated; ours is the `done` line's device_peak_bytes
(the CUDA pool's high-water mark of used bytes).

Both sides do the same work: the whole image at once (no tiles: ours gets --tile 512, which covers it),
f32, the threads the machine has. Weights: random (kaiming-scaled, BasicSR names with the
`params_ema.` prefix, as a converted RealESRGAN_x4plus.pth) in /tmp/bench_upscale/. Input: a smooth
random 512x512 RGB PNG.

Each run is a fresh process. Ours: wall time of the process, `upscale` and `load` from the `done`
line's timings, peak from its `peak_bytes` (and the process's ru_maxrss). Theirs: a subprocess that
imports torch + spandrel, loads the state dict, runs RealESRGANer's untiled path (pad nothing, model,
clamp, round) and reports its forward time and ru_maxrss (torch import included). The two outputs are
compared (mean |diff| in 8-bit levels) so the timing is of the same arithmetic. Writes results.json,
machine.txt and the load average seen to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

WORK = "/tmp/bench_upscale"
SIDE = 512

THEIRS = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np, torch
from PIL import Image
from safetensors.torch import load_file
try:
    import torchvision  # noqa: F401  spandrel's registry imports it for other architectures
except ImportError:  # a GPU host without torchvision: those architectures are never called here
    import types
    tv = types.ModuleType("torchvision"); tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    fn.InterpolationMode = None; fn.rotate = fn.normalize = None
    tv.transforms = tr; tr.functional = fn
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.transforms.functional": fn})
from spandrel import ModelLoader
import spandrel
device, dtype, repeat = sys.argv[4], {"f32": torch.float32, "f16": torch.float16}[sys.argv[5]], int(sys.argv[6])
sd = {k[len("params_ema."):]: v for k, v in load_file(sys.argv[1]).items()}
model = ModelLoader().load_from_state_dict(sd).model.eval().to(device=device, dtype=dtype)
cuda = device.startswith("cuda")
if cuda:
    torch.cuda.synchronize()
t1 = time.perf_counter()
img = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=np.float32) / 255.0
x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(device=device, dtype=dtype)
times = []
with torch.inference_mode():
    for _ in range(repeat):
        t2 = time.perf_counter()
        y = model(x)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t2)
out = (y[0].float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
Image.fromarray(out).save(sys.argv[3])
print(json.dumps({"load_s": t1 - t0, "upscale_s": times[0], "upscale_all_s": times,
                  "threads": torch.get_num_threads(), "torch": torch.__version__, "spandrel": spandrel.__version__,
                  "device_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
                  "gpu": torch.cuda.get_device_name() if cuda else None,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def make_inputs():
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    os.makedirs(WORK, exist_ok=True)
    weights = os.path.join(WORK, "rrdb_x4_full.safetensors")
    image = os.path.join(WORK, f"in_{SIDE}.png")
    if not os.path.exists(weights):
        g = torch.Generator().manual_seed(0)
        sd = {}

        def put(name, o, i, gain):
            sd[f"params_ema.{name}.weight"] = torch.randn(o, i, 3, 3, generator=g) * gain / (i * 9) ** 0.5
            sd[f"params_ema.{name}.bias"] = torch.randn(o, generator=g) * 0.01

        nf, gc = 64, 32
        put("conv_first", nf, 3, 1.0)
        for n in range(23):
            for k in range(1, 4):
                for m in range(1, 6):
                    put(f"body.{n}.rdb{k}.conv{m}", gc if m < 5 else nf, nf + (m - 1) * gc, 0.1)
        for name in ["conv_body", "conv_up1", "conv_up2", "conv_hr"]:
            put(name, nf, nf, 1.0)
        put("conv_last", 3, nf, 0.5)
        save_file(sd, weights)
    if not os.path.exists(image):
        rng = np.random.default_rng(1)
        base = (rng.random((SIDE // 8, SIDE // 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(base).resize((SIDE, SIDE), Image.BICUBIC).save(image)
    return weights, image


def run_ours(binary, weights, image, out_dir, device="cpu", dtype="f32", repeat=1):
    cmd = [binary, "--headless", "--json", "--device", device, "--dtype", dtype, "--out", out_dir,
           "--kind", "upscale", "--image", image, "--model", weights, "--tile", str(SIDE)]
    if repeat > 1:
        jobs = os.path.join(WORK, "repeat.jsonl")
        with open(jobs, "w") as f:
            f.write('{"kind": "upscale"}\n' * repeat)
        cmd += ["--jobs", jobs]
    env = dict(os.environ, PALLAIDIUM_HOME=os.path.join(WORK, "home"), HF_HUB_OFFLINE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"ours failed: {proc.stderr}")
    dones = [json.loads(l) for l in proc.stdout.splitlines() if '"done"' in l]
    done = dones[-1]
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "wall_s": wall,
        "load_s": dones[0]["timings"].get("load"),
        "upscale_s": dones[0]["timings"]["upscale"],
        "upscale_all_s": [d["timings"]["upscale"] for d in dones],
        "peak_bytes": done.get("peak_bytes"),
        "device_peak_bytes": max((d.get("device_peak_bytes") or 0 for d in dones), default=None),
        "children_maxrss_bytes": max(maxrss, before) * 1024,
        "output": done["outputs"][0],
    }


def run_theirs(weights, image, out_png, device="cpu", dtype="f32", repeat=1):
    t0 = time.perf_counter()
    argv = [sys.executable, "-c", THEIRS, weights, image, out_png, device, dtype, str(repeat)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"theirs failed: {proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    return r


def loadavg():
    return os.getloadavg()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--binary", default=os.environ.get("CARGO_TARGET_DIR", "target") + "/release/pallaidium")
    ap.add_argument("--out", default="benchmarks/upscale-cpu")
    ap.add_argument("--side", type=int, default=SIDE, help="input side (smaller for a smoke test)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16"])
    ap.add_argument("--repeat", type=int, default=1, help="upscales per process (the first is cold)")
    args = ap.parse_args()
    globals()["SIDE"] = args.side
    from PIL import Image

    weights, image = make_inputs()
    os.makedirs(args.out, exist_ok=True)
    results = {"work": f"{SIDE}x{SIDE} RGB x4, RRDBNet 23 blocks 64 features growth 32, {args.dtype}, untiled",
               "device": args.device, "dtype": args.dtype, "repeat": args.repeat,
               "switches": {k: v for k, v in os.environ.items() if k.startswith("PALLAIDIUM_")},
               "ours": [], "theirs": [], "loadavg": []}
    for i in range(args.runs):
        results["loadavg"].append(loadavg())
        ours = run_ours(args.binary, weights, image, os.path.join(WORK, "out"), args.device, args.dtype, args.repeat)
        results["loadavg"].append(loadavg())
        theirs_png = os.path.join(WORK, f"theirs_{i}.png")
        theirs = run_theirs(weights, image, theirs_png, args.device, args.dtype, args.repeat)
        results["loadavg"].append(loadavg())
        a = np.asarray(Image.open(ours["output"]).convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(theirs_png), dtype=np.float64)
        ours["mean_abs_diff_levels"] = float(np.abs(a - b).mean())
        results["ours"].append(ours)
        results["theirs"].append(theirs)
        print(json.dumps({"run": i, "ours": ours, "theirs": theirs}), flush=True)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((l for l in cpu.splitlines() if l.startswith("Flags")), "")
    isa = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile") if f" {f}" in flags]
    model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    results["machine"] = {"cpu": model, "isa": isa, "cores": os.cpu_count(), "python": platform.python_version()}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "machine.txt"), "w") as f:
        f.write(cpu)
    print(json.dumps(results["machine"]))


if __name__ == "__main__":
    main()
