#!/usr/bin/env python3
"""diffusers' side of `pallaidium bench transformer --model sd35-medium` (the side-by-side peer).

  # random full-size bf16 weights, saved as a diffusers transformer/ folder both sides load:
  python3 scripts/bench_sd3_diffusers.py write DIR
  # one SD3Transformer2DModel step, timed as pallaidium times it:
  python3 scripts/bench_sd3_diffusers.py bench DIR --width 1024 --height 1024 --runs 10 --warmup 3

What is timed: one `transformer(...)` call followed by one `torch.cuda.synchronize()`, per run,
nothing else inside the timed region (inputs are made before). Inputs as pallaidium's bench: one
latent (1, 16, h/8, w/8), 333 joint text states of 4096 (77 CLIP + 256 T5 tokens, the pipeline's
default), pooled projections (1, 2048), timestep 500 (the pipeline's 0..1000 scale). Batch 1: a
CFG step runs the batch of two, on both sides alike. Peak memory: torch.cuda.max_memory_allocated /
max_memory_reserved over the timed runs (reset after the warm-up; the weights are included).

The committed config (src/commands/bench/configs/sd35-medium/transformer/config.json, SD 3.5
Medium's) gives the architecture. `write` builds the model on the GPU in bf16, fills every weight
with N(0, 0.02) (norm scales 1) and saves it as bf16 safetensors.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "..", "src", "commands", "bench", "configs", "sd35-medium", "transformer")


def write(args):
    from diffusers import SD3Transformer2DModel

    cfg = SD3Transformer2DModel.load_config(CONFIG_DIR)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = SD3Transformer2DModel.from_config(cfg)
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
    from diffusers import SD3Transformer2DModel

    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    t = time.time()
    model = SD3Transformer2DModel.from_pretrained(args.dir, torch_dtype=dtype).to("cuda")
    model.eval()
    torch.cuda.synchronize()
    load_s = time.time() - t
    cfg = dict(model.config)
    g = torch.Generator(device="cpu").manual_seed(0)
    latent = torch.randn(1, cfg["in_channels"], args.height // 8, args.width // 8, generator=g).to("cuda", dtype)
    text = torch.randn(1, args.text_tokens, cfg["joint_attention_dim"], generator=g).to("cuda", dtype)
    pooled = torch.randn(1, cfg["pooled_projection_dim"], generator=g).to("cuda", dtype)
    timestep = torch.tensor([500.0], device="cuda")

    def step():
        return model(hidden_states=latent, encoder_hidden_states=text, pooled_projections=pooled,
                     timestep=timestep, return_dict=False)

    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            step()
            torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            del out
    print(json.dumps({
        "bench": "transformer", "side": "diffusers", "model": "sd35-medium",
        "width": args.width, "height": args.height,
        "image_tokens": (args.width // 16) * (args.height // 16), "text_tokens": args.text_tokens,
        "dtype": args.dtype, "runs": args.runs, "warmup": args.warmup, "times_s": times,
        "median_s": statistics.median(times), "min_s": min(times), "load_s": load_s,
        "peak_bytes": torch.cuda.max_memory_allocated(),
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
        "peak_kind": "torch.cuda.max_memory_allocated / max_memory_reserved over the timed runs",
        "attention": "diffusers default (JointAttnProcessor2_0: torch SDPA)",
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
    ap.add_argument("--text-tokens", type=int, default=333)
    ap.add_argument("--dtype", default="bf16")
    args = ap.parse_args()
    if args.what == "write":
        write(args)
    else:
        bench(args)


if __name__ == "__main__":
    sys.exit(main())
