#!/usr/bin/env python3
"""One GPU call of the flow-model side-by-side: for flux-schnell, flux-dev, z-image-turbo and sd35-medium, random
full-size bf16 weights written once (scripts/bench_flux_diffusers.py / bench_zimage_diffusers.py
/ bench_sd3_diffusers.py write), then ours
(`pallaidium bench transformer --weights`) and diffusers on the very same folder, ours first,
1024x1024, bf16, 3 warm-ups + 10 timed runs each. Every JSON, the log and nvidia-smi go to OUT.

  python3 scripts/bench_flux_device.py OUT --bin ./pallaidium [--budget-s 540]

Run from the folder that holds scripts/ and src/commands/bench/configs/ (the carried copy).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bin", default="./pallaidium")
    ap.add_argument("--budget-s", type=float, default=540)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--models", default="flux-schnell,flux-dev,z-image-turbo")
    ap.add_argument("--scratch", default="/tmp/flux-bench-weights")
    ap.add_argument("--baseline-bin", help="an earlier build of ours, timed on the same weights in the same call")
    a = ap.parse_args()
    start = time.time()
    log = open(os.path.join(a.out, "log.txt"), "a")

    def run(name, cmd, timeout, save=True):
        left = a.budget_s - (time.time() - start)
        if left < 30:
            log.write(f"SKIPPED {name}: {left:.0f} s left\n")
            return None
        t = time.time()
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=min(timeout, left))
        except subprocess.TimeoutExpired:
            log.write(f"TIMEOUT {name} after {time.time() - t:.0f} s\n")
            return None
        log.write(p.stderr[-6000:])
        log.write(f"rc={p.returncode} {name} {time.time() - t:.1f} s\n")
        log.flush()
        line = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode == 0 and line:
            log.write(line[-1] + "\n")
            if save:
                with open(os.path.join(a.out, name + ".json"), "w") as f:
                    f.write(line[-1] + "\n")
            print(name, json.loads(line[-1]).get("median_s"), flush=True)
            return json.loads(line[-1])
        print(name, "FAILED rc", p.returncode, p.stderr[-1500:], flush=True)
        return None

    smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
    open(os.path.join(a.out, "gpu.txt"), "w").write(smi)
    py = sys.executable
    for model in a.models.split(","):
        script = {"z-image-turbo": "bench_zimage_diffusers.py", "sd35-medium": "bench_sd3_diffusers.py"}
        diff = os.path.join(HERE, script.get(model, "bench_flux_diffusers.py"))
        which = [] if model in script else ["--model", model]
        w = os.path.join(a.scratch, model)
        shutil.rmtree(w, ignore_errors=True)
        if run(f"write_{model}", [py, diff, "write", w, *which], 240, save=False) is None:
            continue
        size = [str(a.size)]
        ours = ["bench", "transformer", "--model", model, "--weights", w, "--width", *size, "--height", *size,
                "--runs", str(a.runs), "--warmup", str(a.warmup), "--device", "cuda", "--dtype", "bf16", "--json"]
        run(f"ours_{model}", [a.bin, *ours], 300)
        if a.baseline_bin:
            run(f"baseline_{model}", [a.baseline_bin, *ours], 300)
        run(f"diffusers_{model}", [py, diff, "bench", w, *which, "--width", *size,
                                   "--height", *size, "--runs", str(a.runs),
                                   "--warmup", str(a.warmup)], 300)
        shutil.rmtree(w, ignore_errors=True)
    log.write(f"total {time.time() - start:.0f} s\n")


if __name__ == "__main__":
    sys.exit(main())
