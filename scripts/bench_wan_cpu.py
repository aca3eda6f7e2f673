#!/usr/bin/env python3
"""Wan or LTX-Video on the CPU, tiny size (issue 22): the committed tiny Wan 2.1 T2V pipeline
(tests/fixtures/wan-t2v-tiny) at 96x64, 9 frames, 3 steps, guidance 4, f32, the committed noise
(wan-pipeline/f9_noise.npy) on both sides; with `--model ltx` the tiny LTXPipeline
(tests/fixtures/ltx-tiny, case cli9 of ltx-pipeline/: 96x64, 9 frames, 3 steps, guidance 3.5, fps 25,
its noise) against LTXPipeline. Ours: `pallaidium --headless --json` runs, the done event's
`generate` time (text encoder, denoise, VAE decode; no loading, no MP4 writing) and the process wall time.
diffusers: WanPipeline.from_pretrained(folder) once, then the same call (output_type="np") timed whole;
torch.set_num_threads(os.cpu_count()). Median of --runs after one warm-up on each side. One JSON to OUT.

  /work/venv/bin/python scripts/bench_wan_cpu.py OUT.json --bin target/release/pallaidium [--runs 5] [--model ltx]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

FIX = "tests/fixtures"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", choices=["wan", "ltx"], default="wan")
    a = ap.parse_args()
    refs, case, folder = {
        "wan": ("wan-pipeline", "f9", f"{FIX}/wan-t2v-tiny"),
        "ltx": ("ltx-pipeline", "cli9", f"{FIX}/ltx-tiny"),
    }[a.model]
    meta = json.load(open(f"{FIX}/{refs}/cases.json"))
    c = meta["cases"][case]
    noise = f"{FIX}/{refs}/{case}_noise.npy"
    ours = []
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, PALLAIDIUM_HOME=home, HF_HUB_OFFLINE="1")
        for i in range(a.runs + 1):
            cmd = [a.bin, "--headless", "--json", "--device", "cpu", "--dtype", "f32", "--seed", "0",
                   "--kind", "txt2vid", "--model", folder, "--prompt", meta["prompt"], "--init-latents", noise,
                   "--out", os.path.join(home, "out")]
            for k in ["steps", "guidance", "width", "height", "frames"]:
                cmd += [f"--{k}", str(c[k])]
            if a.model == "ltx":
                cmd += ["--fps", "25"]
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t
            if p.returncode != 0:
                sys.exit(p.stderr[-2000:])
            done = [json.loads(l) for l in p.stdout.splitlines() if '"done"' in l][-1]
            if i > 0:
                ours.append({"generate_s": done["timings"]["generate"], "wall_s": wall})
    import torch
    from diffusers import LTXPipeline, WanPipeline

    torch.set_num_threads(os.cpu_count())
    t = time.perf_counter()
    cls = LTXPipeline if a.model == "ltx" else WanPipeline
    pipe = cls.from_pretrained(folder, torch_dtype=torch.float32)
    load = time.perf_counter() - t
    pipe.set_progress_bar_config(disable=True)
    latents = torch.from_numpy(np.load(noise))
    if a.model == "ltx":
        # LTXPipeline takes its latents packed into tokens (patch 1).
        latents = pipe._pack_latents(latents, 1, 1)
    theirs = []
    for i in range(a.runs + 1):
        t = time.perf_counter()
        pipe(prompt=meta["prompt"], negative_prompt=None, height=c["height"], width=c["width"],
             num_frames=c["frames"], num_inference_steps=c["steps"], guidance_scale=c["guidance"],
             latents=latents.clone(), output_type="np")
        if i > 0:
            theirs.append(time.perf_counter() - t)
    r = {
        "model": a.model,
        "case": c, "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "ours": {"runs": ours, "median_generate_s": statistics.median(o["generate_s"] for o in ours),
                 "median_wall_s": statistics.median(o["wall_s"] for o in ours)},
        "diffusers_side": {"load_s": load, "runs_s": theirs, "median_call_s": statistics.median(theirs)},
    }
    json.dump(r, open(a.out, "w"), indent=1)
    print(json.dumps({"ours_generate_s": r["ours"]["median_generate_s"], "ours_wall_s": r["ours"]["median_wall_s"],
                      "diffusers_call_s": r["diffusers_side"]["median_call_s"]}))


if __name__ == "__main__":
    main()
