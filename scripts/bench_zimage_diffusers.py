#!/usr/bin/env python3
"""diffusers' side of `pallaidium bench transformer --model z-image-turbo` (the side-by-side peer).

  # random full-size bf16 weights, saved as a diffusers transformer/ folder both sides load:
  python3 scripts/bench_zimage_diffusers.py write DIR
  # one ZImageTransformer2DModel step, timed as pallaidium times it:
  python3 scripts/bench_zimage_diffusers.py bench DIR --width 1024 --height 1024 --runs 10 --warmup 3

What is timed: one `transformer(...)` call followed by one `torch.cuda.synchronize()`, per run,
nothing else inside the timed region (inputs are made before). Inputs as pallaidium's bench: one
latent (16, 1, h/8, w/8), 128 caption features of 2560 (a list of one, as ZImagePipeline passes
them), timestep 0.5 (the pipeline's (1000 - t) / 1000). Peak memory: torch.cuda.max_memory_allocated
/ max_memory_reserved over the timed runs (reset after the warm-up; the weights are included).

The committed config (src/commands/bench/configs/z-image-turbo/transformer/config.json) gives the
architecture. `write` builds the model on the GPU in bf16, fills every weight with N(0, 0.02) (norm
scales 1) and saves it as bf16 safetensors.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "..", "src", "commands", "bench", "configs", "z-image-turbo", "transformer")


def write(args):
    from diffusers import ZImageTransformer2DModel

    cfg = ZImageTransformer2DModel.load_config(CONFIG_DIR)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = ZImageTransformer2DModel.from_config(cfg)
    torch.set_default_dtype(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    t = time.time()
    model.save_pretrained(args.dir, safe_serialization=True, max_shard_size="10GB")
    print(json.dumps({"wrote": args.dir, "seconds": time.time() - t,
                      "parameters": sum(p.numel() for p in model.parameters())}))


def bench(args):
    import diffusers
    from diffusers import ZImageTransformer2DModel

    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    t = time.time()
    model = ZImageTransformer2DModel.from_pretrained(args.dir, torch_dtype=dtype).to("cuda")
    model.eval()
    torch.cuda.synchronize()
    load_s = time.time() - t
    cfg = dict(model.config)
    g = torch.Generator(device="cpu").manual_seed(0)
    latent = torch.randn(cfg["in_channels"], 1, args.height // 8, args.width // 8, generator=g).to("cuda", dtype)
    caption = torch.randn(args.text_tokens, cfg["cap_feat_dim"], generator=g).to("cuda", dtype)
    timestep = torch.tensor([0.5], device="cuda")
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            model([latent], timestep, [caption], return_dict=False)
            torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = model([latent], timestep, [caption], return_dict=False)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            del out
    print(json.dumps({
        "bench": "transformer", "side": "diffusers", "model": "z-image-turbo",
        "width": args.width, "height": args.height,
        "image_tokens": (args.width // 16) * (args.height // 16), "text_tokens": args.text_tokens,
        "dtype": args.dtype, "runs": args.runs, "warmup": args.warmup, "times_s": times,
        "median_s": statistics.median(times), "min_s": min(times), "load_s": load_s,
        "peak_bytes": torch.cuda.max_memory_allocated(),
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
        "peak_kind": "torch.cuda.max_memory_allocated / max_memory_reserved over the timed runs",
        "attention": "diffusers default (dispatch_attention_fn: torch SDPA)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "diffusers": diffusers.__version__, "torch": torch.__version__,
        "cuda": torch.version.cuda, "device_name": torch.cuda.get_device_name(0),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["write", "bench"])
    ap.add_argument("dir")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bf16")
    args = ap.parse_args()
    if args.what == "write":
        write(args)
    else:
        bench(args)


if __name__ == "__main__":
    sys.exit(main())
