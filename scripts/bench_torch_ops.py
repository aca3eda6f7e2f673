#!/usr/bin/env python3
"""PyTorch's time for the layers `pallaidium bench ops` measures, at the same shapes (SD 1.5 at
512x512: the UNet's first level, the VAE decoder's full resolution), so each of our kernels can
be put next to what diffusers runs (cuDNN convolutions, SDPA attention, cuBLAS GEMMs).

    python scripts/bench_torch_ops.py --batch 8 --dtype f16 --device cuda --runs 10 --json

Prints one JSON object: {"ops": [{"op", "shape", "dtype", "ms"}], "torch": ..., "device_name": ...}.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def timed(fn, device, warmup, runs):
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--dtype", default="f16", choices=["f16", "f32", "bf16"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    dt = {"f16": torch.float16, "f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    dev, b = a.device, a.batch
    images = (b + 1) // 2
    torch.manual_seed(0)
    ops = []

    def add(name, shape, dtype, fn):
        ms = timed(fn, dev, a.warmup, a.runs)
        ops.append({"op": name, "shape": shape, "dtype": str(dtype).replace("torch.", ""), "ms": ms})

    with torch.inference_mode():
        x = torch.randn(b, 320, 64, 64, device=dev, dtype=dt)
        gn = torch.nn.GroupNorm(32, 320, eps=1e-5).to(dev, dt)
        add("unet_group_norm_silu", f"{b}x320x64x64", dt, lambda: F.silu(gn(x)))
        for name, k, s in [("unet_conv3x3", 3, 1), ("unet_conv1x1", 1, 1), ("unet_conv3x3_stride2", 3, 2)]:
            conv = torch.nn.Conv2d(320, 320, k, stride=s, padding=k // 2).to(dev, dt)
            add(name, f"{b}x320x64x64 -> 320", dt, lambda conv=conv: conv(x))
        for name, n_q, n_k, d in [("unet_attention_level0", 4096, 4096, 40),
                                  ("unet_attention_level1", 1024, 1024, 80),
                                  ("unet_cross_attention", 4096, 77, 40)]:
            q = torch.randn(b, 8, n_q, d, device=dev, dtype=dt)
            kk = torch.randn(b, 8, n_k, d, device=dev, dtype=dt)
            v = torch.randn(b, 8, n_k, d, device=dev, dtype=dt)
            add(name, f"{b * 8}x{n_q}x{d} . {n_k} keys (SDPA)", dt,
                lambda q=q, kk=kk, v=v: F.scaled_dot_product_attention(q, kk, v))
        h = torch.randn(b, 4096, 2560, device=dev, dtype=dt)
        add("unet_geglu", f"{b}x4096x2560", dt,
            lambda: h[..., :1280] * F.gelu(h[..., 1280:]))
        m = torch.randn(b * 4096, 2880, device=dev, dtype=dt)
        w = torch.randn(2880, 320, device=dev, dtype=dt)
        add("matmul", f"{b * 4096}x2880 . 2880x320", dt, lambda: m @ w)
        for vdt in ([dt, torch.float32] if dt != torch.float32 else [dt]):
            xv = torch.randn(images, 128, 512, 512, device=dev, dtype=vdt)
            vgn = torch.nn.GroupNorm(32, 128, eps=1e-6).to(dev, vdt)
            add("vae_group_norm_silu", f"{images}x128x512x512", vdt, lambda xv=xv, vgn=vgn: F.silu(vgn(xv)))
            vconv = torch.nn.Conv2d(128, 128, 3, padding=1).to(dev, vdt)
            add("vae_conv3x3", f"{images}x128x512x512 -> 128", vdt, lambda xv=xv, vconv=vconv: vconv(xv))
    out = {
        "bench": "torch_ops",
        "batch": b,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if dev == "cuda" else None,
        "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "ops": ops,
    }
    if a.json:
        print(json.dumps(out))
    else:
        for o in ops:
            print(f"{o['op']:24} {o['shape']:40} {o['dtype']:8} {o['ms']:8.3f} ms")


if __name__ == "__main__":
    main()
