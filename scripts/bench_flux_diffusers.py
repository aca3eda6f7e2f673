#!/usr/bin/env python3
"""diffusers' side of `pallaidium bench transformer` for FLUX.1 (the side-by-side peer).

  # random full-size bf16 weights, saved as a diffusers transformer/ folder both sides load:
  python3 scripts/bench_flux_diffusers.py write DIR --model flux-dev
  # one FluxTransformer2DModel step, timed as pallaidium times it:
  python3 scripts/bench_flux_diffusers.py bench DIR --model flux-schnell --width 1024 \
      --height 1024 --runs 10 --warmup 3

What is timed: one `transformer(...)` call followed by one `torch.cuda.synchronize()`, per run,
nothing else inside the timed region (inputs are made before). Inputs as pallaidium's bench:
(h/16)*(w/16) packed image tokens of 64 channels, 256 (schnell) or 512 (dev) T5 tokens, pooled
CLIP of 768, timestep 1.0 (the pipeline passes t/1000), guidance 3.5 for dev, image ids
(0, row, col), text ids 0. Peak memory: torch.cuda.max_memory_allocated / max_memory_reserved
over the timed runs (reset after the warm-up; the weights are included).

The committed configs (src/commands/bench/configs/flux-*/transformer/config.json) give the
architecture. `write` builds the model on the GPU in bf16, fills every weight with N(0, 0.02)
(norm scales 1) and saves it as bf16 safetensors.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "src", "commands", "bench", "configs")
TEXT_TOKENS = {"flux-schnell": 256, "flux-dev": 512}


def config_path(model):
    return os.path.join(CONFIGS, model, "transformer", "config.json")


def write(args):
    from diffusers import FluxTransformer2DModel

    cfg = FluxTransformer2DModel.load_config(os.path.dirname(config_path(args.model)))
    torch.manual_seed(0)
    # Built in bf16 on the GPU directly: an fp32 model (48 GB) then cast would not fit beside it.
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = FluxTransformer2DModel.from_config(cfg)
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


def inputs(model, cfg, width, height, text_tokens, device, dtype):
    lh, lw = height // 16, width // 16
    g = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(1, lh * lw, cfg["in_channels"], generator=g).to(device, dtype)
    text = torch.randn(1, text_tokens, cfg["joint_attention_dim"], generator=g).to(device, dtype)
    pooled = torch.randn(1, cfg["pooled_projection_dim"], generator=g).to(device, dtype)
    rows = torch.arange(lh).repeat_interleave(lw)
    cols = torch.arange(lw).repeat(lh)
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=1).float().to(device)
    txt_ids = torch.zeros(text_tokens, 3, device=device)
    timestep = torch.tensor([1.0], device=device, dtype=dtype)
    guidance = torch.tensor([3.5], device=device, dtype=torch.float32) \
        if cfg["guidance_embeds"] else None
    return dict(hidden_states=hidden, encoder_hidden_states=text, pooled_projections=pooled,
                timestep=timestep, guidance=guidance, img_ids=img_ids, txt_ids=txt_ids,
                return_dict=False)


def bench(args):
    import diffusers
    from diffusers import FluxTransformer2DModel

    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    t = time.time()
    model = FluxTransformer2DModel.from_pretrained(args.dir, torch_dtype=dtype).to("cuda")
    model.eval()
    torch.cuda.synchronize()
    load_s = time.time() - t
    cfg = dict(model.config)
    expected = json.load(open(config_path(args.model)))
    assert cfg["guidance_embeds"] == expected["guidance_embeds"], "folder/model mismatch"
    n_txt = args.text_tokens or TEXT_TOKENS[args.model]
    kw = inputs(model, cfg, args.width, args.height, n_txt, "cuda", dtype)
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(**kw)
            torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = model(**kw)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            del out
    print(json.dumps({
        "bench": "transformer", "side": "diffusers", "model": args.model,
        "width": args.width, "height": args.height,
        "image_tokens": (args.width // 16) * (args.height // 16), "text_tokens": n_txt,
        "dtype": args.dtype, "runs": args.runs, "warmup": args.warmup, "times_s": times,
        "median_s": statistics.median(times), "min_s": min(times), "load_s": load_s,
        "peak_bytes": torch.cuda.max_memory_allocated(),
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
        "peak_kind": "torch.cuda.max_memory_allocated / max_memory_reserved over the timed runs",
        "attention": "diffusers default (AttnProcessor: torch SDPA)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "diffusers": diffusers.__version__, "torch": torch.__version__,
        "cuda": torch.version.cuda, "device_name": torch.cuda.get_device_name(0),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["write", "bench"])
    ap.add_argument("dir")
    ap.add_argument("--model", default="flux-schnell", choices=sorted(TEXT_TOKENS))
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=0)
    ap.add_argument("--dtype", default="bf16")
    args = ap.parse_args()
    if args.what == "write":
        write(args)
    else:
        bench(args)


if __name__ == "__main__":
    sys.exit(main())
