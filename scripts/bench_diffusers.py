#!/usr/bin/env python3
"""diffusers side of `pallaidium bench`: the same configurations, the same JSON keys.

    /opt/fixvenv/bin/python scripts/bench_diffusers.py unet --model sd15 --width 512 --height 512 \
        --batch 2 --dtype f32 --device cpu --runs 3 --json
    /opt/fixvenv/bin/python scripts/bench_diffusers.py image --model sd15 --steps 2 --runs 1 --json

`unet`: UNet2DConditionModel.from_config(src/commands/bench/configs/<id>/unet/config.json) with
PyTorch's default random init, SDPA attention (diffusers' default AttnProcessor2_0), one forward
under inference_mode over --batch latents (batch 2 = one image with CFG) and 77 text tokens,
timestep 500; median/min over --runs after --warmup. Peak: the process VmHWM over the timed runs
(reset through /proc/self/clear_refs, as pallaidium does; includes the weights) on the CPU,
torch.cuda.max_memory_allocated on CUDA.

`image`: from_pretrained on the folder `pallaidium bench image` wrote
($PALLAIDIUM_HOME/bench-models/<id>), Euler scheduler, guidance 7.5, the same prompt. By default
each call is timed whole, with nothing inside diffusers' loop and one synchronize at the end (the
headline numbers). `--stages` adds per-stage times (text encoder, first step, all steps, VAE
decode) through hooks that synchronize the device at every mark (one sync a step), which removes
diffusers' host/GPU overlap: use them for splits, from a separate run, never as the headline;
`--no-stage-sync` keeps the hooks but without the synchronize (stage times are then host times).
diffusers decodes the whole batch at once; `--vae-slicing` decodes one image at a time
(pipe.vae.enable_slicing()), which is what pallaidium does, so peak memory compares like with like.
Threads: torch.set_num_threads(os.cpu_count()).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "src" / "commands" / "bench" / "configs"
PROMPT = "a photograph of an astronaut riding a horse"


def status_bytes(field):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_description():
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} threads"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def dtype_of(name):
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[name]


def common(args, device):
    import diffusers

    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description(),
        "dtype": args.dtype,
        "attention": "SDPA (AttnProcessor2_0)",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_description(),
    }


def bench_unet(args, device, dtype):
    from diffusers import UNet2DConditionModel

    cfg = json.loads((CONFIGS / args.model / "unet" / "config.json").read_text())
    rss_before = status_bytes("VmRSS")
    t = time.perf_counter()
    unet = UNet2DConditionModel.from_config(cfg).to(device=device, dtype=dtype).eval()
    sync(device)
    build_s = time.perf_counter() - t
    rss_after = status_bytes("VmRSS")
    b, h, w = args.batch, args.height // 8, args.width // 8
    g = torch.Generator().manual_seed(0)
    sample = torch.randn((b, cfg["in_channels"], h, w), generator=g).to(device, dtype)
    ctx = torch.randn((b, 77, cfg["cross_attention_dim"]), generator=g).to(device, dtype)
    added = None
    if cfg.get("addition_embed_type") == "text_time":
        pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
        ids = torch.tensor([[args.height, args.width, 0, 0, args.height, args.width]] * b)
        added = {
            "text_embeds": torch.randn((b, pooled), generator=g).to(device, dtype),
            "time_ids": ids.to(device, dtype),
        }
    timestep = 500

    def step():
        with torch.inference_mode():
            out = unet(sample, timestep, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
        sync(device)
        del out

    for _ in range(args.warmup):
        step()
    reset_ok = reset_peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else status_bytes("VmHWM")
    return {
        "bench": "unet",
        "model": args.model,
        "width": args.width,
        "height": args.height,
        "batch": b,
        "timestep": timestep,
        "runs": len(times),
        "warmup": args.warmup,
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "build_s": build_s,
        "peak_bytes": peak,
        "peak_kind": "torch.cuda.max_memory_allocated" if device.type == "cuda" else (
            "process VmHWM over the timed runs (includes the weights)" if reset_ok
            else "process VmHWM since start"),
        "rss_before_build_bytes": rss_before,
        "rss_after_build_bytes": rss_after,
    }


def bench_image(args, device, dtype):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    home = Path(os.environ.get("PALLAIDIUM_HOME") or Path.home() / ".local/share/pallaidium")
    folder = Path(args.model_dir) if args.model_dir else home / "bench-models" / args.model
    if not (folder / "bench-model.json").is_file():
        sys.exit(f"{folder} is missing: run `pallaidium bench image --model {args.model}` first")
    cls = StableDiffusionXLPipeline if args.model == "sdxl" else StableDiffusionPipeline
    extra = {} if args.model == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    if device.type == "cuda":
        # Open the CUDA context first: pallaidium opens its device before it times the load.
        torch.zeros(1, device=device)
        sync(device)
    t = time.perf_counter()
    pipe = cls.from_pretrained(folder, torch_dtype=dtype, **extra).to(device)
    sync(device)
    load_s = time.perf_counter() - t
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if args.vae_slicing:
        pipe.vae.enable_slicing()

    marks = []

    def mark(label):
        if args.stage_sync:
            sync(device)
        marks.append((label, time.perf_counter()))

    def wrap(module, name, label):
        inner = getattr(module, name)

        def timed(*a, **k):
            mark(label + " start")
            out = inner(*a, **k)
            mark(label + " end")
            return out

        setattr(module, name, timed)

    if args.stages:
        wrap(pipe.vae, "decode", "vae_decode")
        encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if getattr(pipe, "text_encoder_2", None) else [])
        for enc in encoders:
            wrap(enc, "forward", "text_encoder")

    def on_step(p, i, t, kw):
        mark(f"step {i + 1}")
        return kw

    hooks = {"callback_on_step_end": on_step} if args.stages else {}
    first_image_s = None

    runs, totals = [], []
    for r in range(args.warmup + args.runs):
        marks.clear()
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(PROMPT, negative_prompt="", num_inference_steps=args.steps, guidance_scale=7.5,
                 width=args.width, height=args.height, num_images_per_prompt=args.batch,
                 generator=torch.Generator().manual_seed(0), **hooks)
        sync(device)
        total = time.perf_counter() - start
        if first_image_s is None:
            first_image_s = load_s + total
        first = lambda label: next(t for l, t in marks if l == label) - start
        last = lambda label: [t for l, t in marks if l == label][-1] - start
        if r >= args.warmup and not args.stages:
            runs.append({"generate_s": total})
            totals.append(total)
        elif r >= args.warmup:
            text_end = last("text_encoder end")
            s1, sn = first("step 1"), first(f"step {args.steps}")
            runs.append({
                "text_encoder_s": text_end - first("text_encoder start"),
                "first_step_s": s1 - text_end,
                "denoise_s": sn - text_end,
                "step_mean_s": (sn - text_end) / args.steps,
                "vae_decode_s": total - first("vae_decode start"),
                "generate_s": total,
                "generate_to_first_step_s": s1,
            })
            totals.append(total)
    return {
        "bench": "image",
        "model": args.model,
        "model_dir": str(folder),
        "width": args.width,
        "height": args.height,
        "batch": args.batch,
        "steps": args.steps,
        "guidance": 7.5,
        "scheduler": "euler",
        "runs": len(runs),
        "warmup": args.warmup,
        "load_s": load_s,
        "from_pretrained_s": load_s,
        "load_to_first_step_s": load_s + runs[0]["generate_to_first_step_s"] if args.stages else None,
        "load_to_first_image_s": first_image_s,
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "stages": runs,
        "peak_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else status_bytes("VmHWM"),
        "peak_kind": "torch.cuda.max_memory_allocated since start (load and every generation)"
        if device.type == "cuda"
        else "process VmHWM over load and every generation (includes the Python/torch runtime)",
        "vae_decode": ("one image at a time (vae.enable_slicing)" if args.vae_slicing
                       else "whole batch at once (diffusers' default)")
        + (f", in {args.dtype} (StableDiffusionPipeline ignores force_upcast)" if args.model != "sdxl"
           else ", upcast to f32 when the VAE says force_upcast"),
        "stage_hooks": args.stages,
        "stage_sync": args.stage_sync if args.stages else None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["unet", "image"])
    p.add_argument("--model", default="sd15", choices=["sd15", "sd21", "sdxl"])
    p.add_argument("--model-dir", help="image: a diffusers folder instead of bench-models/<id>")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--vae-slicing", action="store_true", help="image: decode one image at a time")
    p.add_argument("--stages", action="store_true",
                   help="image: per-stage times through hooks (synchronizing; never the headline numbers)")
    p.add_argument("--no-stage-sync", dest="stage_sync", action="store_false",
                   help="image, with --stages: stage marks without a device synchronize")
    args = p.parse_args()
    if args.width % 8 or args.height % 8 or args.runs < 1:
        sys.exit("sizes must be multiples of 8 and --runs at least 1")
    torch.set_num_threads(os.cpu_count())
    device = torch.device(args.device)
    dtype = dtype_of(args.dtype)
    result = bench_unet(args, device, dtype) if args.what == "unet" else bench_image(args, device, dtype)
    result.update(common(args, device))
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for k, v in result.items():
            if isinstance(v, float):
                v = f"{v:.3f}"
            elif k.endswith("_bytes") and isinstance(v, int):
                v = f"{v / 2**30:.2f} GiB"
            print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
