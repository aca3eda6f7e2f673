#!/usr/bin/env python3
"""Where diffusers' UNet step spends its GPU time, next to `PALLAIDIUM_PROFILE=1 pallaidium bench unet`.

    python scripts/profile_diffusers_unet.py --model sd15 --batch 8 --dtype f16 --steps 5

The same UNet as `bench_diffusers.py unet` (from_config, PyTorch's random init, SDPA), one forward
per step under inference_mode. torch.profiler records the CUDA kernels of --steps forwards after
--warmup; the JSON gives the wall time per step, the summed kernel time per step (wall well above
it means the step waits on the CPU launching kernels), the kernel time per category (convolution,
attention, GEMM, normalization, elementwise, other) and the top kernels.
"""
import argparse
import json
import re
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

CONFIGS = Path(__file__).resolve().parent.parent / "src" / "commands" / "bench" / "configs"
# First match wins; matched against the lower-cased kernel name.
CATEGORIES = [
    ("attention", r"flash|fmha|attention|sdpa|efficient_attention"),
    ("convolution", r"conv|fprop|implicit|winograd|dgrad|wgrad|nchw|nhwc"),
    ("gemm", r"gemm|cutlass|xmma|matmul|sm\d+_"),
    ("normalization", r"norm|welford"),
    ("elementwise", r"elementwise|vectorized|unrolled|reduce|cat|copy|gelu|silu|fill"),
]


def category(name):
    low = name.lower()
    for cat, pattern in CATEGORIES:
        if re.search(pattern, low):
            return cat
    return "other"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="sd15")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtype", default="f16", choices=["f16", "bf16", "f32"])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    from diffusers import UNet2DConditionModel

    dtype = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    cfg = json.loads((CONFIGS / args.model / "unet" / "config.json").read_text())
    unet = UNet2DConditionModel.from_config(cfg).to("cuda", dtype).eval()
    g = torch.Generator().manual_seed(0)
    b, h, w = args.batch, args.height // 8, args.width // 8
    sample = torch.randn((b, cfg["in_channels"], h, w), generator=g).to("cuda", dtype)
    ctx = torch.randn((b, 77, cfg["cross_attention_dim"]), generator=g).to("cuda", dtype)

    def step():
        with torch.inference_mode():
            unet(sample, 500, encoder_hidden_states=ctx).sample
        torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        wall = (time.perf_counter() - t) / args.steps
    kernels = {}
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if us <= 0 or e.key.startswith("ProfilerStep"):
            continue
        k = kernels.setdefault(e.key, {"ms": 0.0, "calls": 0})
        k["ms"] += us / 1000.0 / args.steps
        k["calls"] += e.count / args.steps
    # Operator rows (aten::...) also carry device time; keep kernels only.
    kernels = {n: v for n, v in kernels.items() if not n.startswith("aten::")}
    cats = {}
    for name, v in kernels.items():
        c = cats.setdefault(category(name), {"ms": 0.0, "calls": 0.0})
        c["ms"] += v["ms"]
        c["calls"] += v["calls"]
    top = sorted(kernels.items(), key=lambda kv: -kv[1]["ms"])[: args.top]
    print(json.dumps({
        "model": args.model, "batch": b, "dtype": args.dtype, "steps": args.steps,
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
        "wall_ms_per_step": wall * 1000.0,
        "kernel_ms_per_step": sum(v["ms"] for v in kernels.values()),
        "categories": {k: {"ms": round(v["ms"], 3), "calls": round(v["calls"], 1)} for k, v in cats.items()},
        "top": [{"kernel": n[:120], "ms": round(v["ms"], 3), "calls": round(v["calls"], 1),
                 "category": category(n)} for n, v in top],
    }))


if __name__ == "__main__":
    main()
