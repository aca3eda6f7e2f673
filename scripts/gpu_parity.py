#!/usr/bin/env python3
"""GPU parity of pallaidium with diffusers: the full-size SD 1.5 UNet and a whole 20-step image, both
in fp16, on the same random weights and the same initial latents. Run on the lent GPU by
scripts/gpu_device_run.sh; BENCHMARKS.md records the results.

Weights: the folder `pallaidium bench image --model sd15` writes (full-size SD 1.5 configuration,
random weights drawn by our bench, Kaiming-normal like the layers' own init, saved as f32
safetensors in diffusers layout). diffusers loads the same files with from_pretrained, so both sides
run exactly the same numbers.

    python3 scripts/gpu_parity.py prepare --model DIR --out DIR
        diffusers' side: writes unet_io.safetensors (sample, encoder_hidden_states, timestep, and
        diffusers' UNet output in fp16 and in fp32 without TF32, the reference both fp16 outputs
        are measured against), init_latents.npy, and the 20-step fp16 image from those latents
        (diffusers_image.npy / .png) plus one from other latents (to show the comparison has power).
    python3 scripts/gpu_parity.py compare --out DIR --ours PNG [--name NAME]
        our PNG against diffusers' image; writes image_parity[_NAME].json; exit 1 when outside the
        limits below or when any value is not finite.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

PROMPT = "a photograph of an astronaut riding a horse"
STEPS = 20
GUIDANCE = 7.5
SIZE = 512
UNET_SEED = 1234
LATENT_SEED = 42
TIMESTEP = 500.0
# Set before the first device run, on the 0-255 scale of the 8-bit PNG: fp16 on both sides drifts
# apart a little over 20 steps; these bound the mean and the 99th percentile, and the maximum is
# reported. The other-noise image must differ by far more than the mean limit, or the test has
# no power (e.g. random weights that saturate every pixel).
IMAGE_MEAN_LIMIT = 2.0
IMAGE_P99_LIMIT = 16.0
POWER_FACTOR = 5.0


def write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


def prepare(a):
    import diffusers
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from PIL import Image
    from safetensors.torch import save_file

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(a.device)
    size = a.size
    unet_config = json.loads((Path(a.model) / "unet" / "config.json").read_text())
    # Does torch.cuda.max_memory_allocated count cuBLAS's workspace? The first GEMM of the process
    # creates it; whatever memory_allocated grows by beyond the product's own bytes is the workspace.
    workspace = None
    if dev.type == "cuda":
        x = torch.randn(1024, 1024, device=dev, dtype=torch.float16)
        y = torch.randn_like(x)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        z = x @ y
        torch.cuda.synchronize()
        workspace = torch.cuda.memory_allocated() - before - z.numel() * z.element_size()
        del x, y, z
    # The fp32 reference without TF32, so it is far closer to exact than either fp16 output.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    g = torch.Generator().manual_seed(UNET_SEED)
    sample = torch.randn(2, unet_config["in_channels"], size // 8, size // 8, generator=g)
    context = torch.randn(2, 77, unet_config["cross_attention_dim"], generator=g)
    t0 = time.time()
    unet = UNet2DConditionModel.from_pretrained(Path(a.model) / "unet", torch_dtype=torch.float32)
    unet = unet.to(dev).eval()
    with torch.inference_mode():
        f32 = unet(sample.to(dev), TIMESTEP, encoder_hidden_states=context.to(dev)).sample.float().cpu()
        unet = unet.to(torch.float16)
        f16 = unet(
            sample.to(dev, torch.float16), TIMESTEP, encoder_hidden_states=context.to(dev, torch.float16)
        ).sample.float().cpu()
    del unet
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    save_file(
        {
            "sample": sample.contiguous(),
            "encoder_hidden_states": context.contiguous(),
            "timestep": torch.tensor([TIMESTEP], dtype=torch.float32),
            "diffusers_f16": f16.contiguous(),
            "diffusers_f32": f32.contiguous(),
        },
        str(out / "unet_io.safetensors"),
    )
    unet_s = time.time() - t0

    pipe = StableDiffusionPipeline.from_pretrained(
        a.model, torch_dtype=torch.float16, safety_checker=None, requires_safety_checker=False
    ).to(dev)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    gl = torch.Generator().manual_seed(LATENT_SEED)
    init = torch.randn(1, 4, size // 8, size // 8, generator=gl)
    other = torch.randn(1, 4, size // 8, size // 8, generator=gl)
    np.save(out / "init_latents.npy", init.numpy().astype(np.float32))

    def image(latents):
        with torch.inference_mode():
            img = pipe(
                prompt=PROMPT,
                num_inference_steps=STEPS,
                guidance_scale=GUIDANCE,
                latents=latents.to(dev, torch.float16),
                height=size,
                width=size,
                output_type="np",
            ).images
        return np.asarray(img, dtype=np.float32)[0]

    t0 = time.time()
    ref = image(init)
    image_s = time.time() - t0
    alt = image(other)
    np.save(out / "diffusers_image.npy", ref)
    np.save(out / "diffusers_image_other_noise.npy", alt)
    for name, img in [("diffusers_image.png", ref), ("diffusers_image_other_noise.png", alt)]:
        clean = np.nan_to_num(img, nan=0.0)
        Image.fromarray((clean.clip(0, 1) * 255).round().astype(np.uint8)).save(out / name)
    write_json(
        out / "diffusers.json",
        {
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
            "weights": str(a.model),
            "unet_inputs": f"sample {list(sample.shape)} and encoder_hidden_states {list(context.shape)} "
            f"from torch.randn (seed {UNET_SEED}), timestep {TIMESTEP}; fp16 inputs are these cast",
            "unet_f32": "float32, TF32 off (matmul and cuDNN)",
            "unet_f16": "the same weights cast to float16, SDPA attention (diffusers' default)",
            "cublas_workspace_counted_by_memory_allocated_bytes": workspace,
            "fp16_reduced_precision_reduction": torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
            "unet_s": unet_s,
            "image": {
                "pipeline": "StableDiffusionPipeline, torch_dtype float16 (text encoder, UNet and VAE decode in fp16)",
                "scheduler": "EulerDiscreteScheduler.from_config(pipe.scheduler.config)",
                "prompt": PROMPT,
                "negative_prompt": None,
                "steps": STEPS,
                "guidance_scale": GUIDANCE,
                "size": [size, size],
                "latents": f"init_latents.npy (torch.randn {list(init.shape)}, seed {LATENT_SEED}), passed as latents=",
                "seconds": image_s,
                "finite": bool(np.isfinite(ref).all()),
                "other_noise_finite": bool(np.isfinite(alt).all()),
            },
            "timesteps": [float(t) for t in pipe.scheduler.timesteps],
        },
    )
    print(f"prepare: unet {unet_s:.1f} s, image {image_s:.2f} s, finite {np.isfinite(ref).all()}")


def compare(a):
    from PIL import Image

    out = Path(a.out)
    ours = np.asarray(Image.open(a.ours).convert("RGB"), dtype=np.float64)
    ref = np.load(out / "diffusers_image.npy").astype(np.float64) * 255.0
    alt = np.load(out / "diffusers_image_other_noise.npy").astype(np.float64) * 255.0
    finite = bool(np.isfinite(ref).all() and np.isfinite(alt).all())
    result = {"ours": str(a.ours), "shape": list(ours.shape), "finite": finite}
    if finite and ours.shape == ref.shape:
        d = np.abs(ours - ref)
        power = float(np.abs(alt - ref).mean())
        result.update(
            {
                "mean_abs": float(d.mean()),
                "p99_abs": float(np.percentile(d, 99)),
                "max_abs": float(d.max()),
                "share_over_8_levels": float((d > 8).mean()),
                "reference_std": float(ref.std()),
                "reference_saturated_share": float(((ref <= 0.5) | (ref >= 254.5)).mean()),
                "power_mean_abs_other_noise": power,
                "limits": {
                    "mean_abs": IMAGE_MEAN_LIMIT,
                    "p99_abs": IMAGE_P99_LIMIT,
                    "power_at_least": POWER_FACTOR * IMAGE_MEAN_LIMIT,
                },
            }
        )
        ok = (
            result["mean_abs"] <= IMAGE_MEAN_LIMIT
            and result["p99_abs"] <= IMAGE_P99_LIMIT
            and power >= POWER_FACTOR * IMAGE_MEAN_LIMIT
        )
    else:
        ok = False
    result["pass"] = ok
    suffix = f"_{a.name}" if a.name else ""
    write_json(out / f"image_parity{suffix}.json", result)
    print(json.dumps(result))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--model", required=True)
    pp.add_argument("--out", required=True)
    pp.add_argument("--size", type=int, default=SIZE)
    pp.add_argument("--device", default="cuda")
    pc = sub.add_parser("compare")
    pc.add_argument("--out", required=True)
    pc.add_argument("--ours", required=True)
    pc.add_argument("--name", default="")
    a = p.parse_args()
    if a.cmd == "prepare":
        prepare(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
