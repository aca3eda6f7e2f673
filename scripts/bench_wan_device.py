#!/usr/bin/env python3
"""Wan on a GPU, in one device call (issue 22):

1. `check`: the tiny WanPipeline references (tests/fixtures/wan-pipeline/cases.json: f5, f9, ti2v)
   through `pallaidium --headless --device cuda` with the committed --init-latents, f32 and bf16;
   every --save-frames PNG against diffusers' CPU float32 frames: mean |diff| in 0-255 levels.
2. `bench`: Wan 2.1 T2V 1.3B at full size with random weights, written once by diffusers
   (WanTransformer3DModel with the public 1.3B config, AutoencoderKLWan's defaults = Wan 2.1's VAE,
   and a UMT5 text encoder with the public XXL width (d_model 4096, 64 heads) but only 2 layers:
   the encoder runs once per clip and is not in any figure below), then ours and diffusers on that
   very folder: 832x480, 33 frames, bf16 everywhere (diffusers' VAE too), guidance 5 (two
   transformer passes a step on both sides), the repo's UniPC.
   Per step: the difference of two whole denoising loops, (T(8 steps) - T(2 steps)) / 6, so warm-up
   and the text encoder drop out; diffusers: pipe(..., output_type="latent") timed whole with one
   synchronize at the end, nothing inside its loop; ours: the `denoise` stage time of two runs (the
   stage ends with one device synchronize). VAE decode: diffusers' `vae.decode` of the 8-step latents
   (after a warm-up decode), ours the `vae_decode` stage of the 8-step run (its first decode in that
   process, so ours includes its warm-up). Peak device memory: torch.cuda.max_memory_allocated over
   the 8-step call plus decode; ours the job's `device_peak_bytes` (the CUDA pool's used high-water
   mark, the same measure). One JSON per figure under OUT.

  python3 scripts/bench_wan_device.py OUT --bin ./pallaidium [--budget-s 400] [--what check,bench]

Run from the repository root (tests/fixtures/ must be there); needs torch + diffusers + transformers.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_flow_check import png_rgb  # noqa: E402

FIX = "tests/fixtures"
PROMPT = "a red fox runs through the snowy forest at dawn"
WIDTH, HEIGHT, FRAMES = 832, 480, 33
TRANSFORMER_1_3B = dict(
    patch_size=[1, 2, 2], num_attention_heads=12, attention_head_dim=128, in_channels=16,
    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
    cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None,
    added_kv_proj_dim=None, rope_max_seq_len=1024,
)


def check(a, log):
    meta = json.load(open(f"{FIX}/wan-pipeline/cases.json"))
    rows = []
    for name, c in meta["cases"].items():
        want = np.load(f"{FIX}/wan-pipeline/{name}_frames.npy") * 255.0
        folder = f"{FIX}/wan-ti2v-tiny" if c.get("ti2v") else f"{FIX}/wan-t2v-tiny"
        for dtype in ["f32", "bf16"]:
            out = os.path.join(a.out, "check", f"{name}-{dtype}")
            shutil.rmtree(out, ignore_errors=True)
            cmd = [a.bin, "--headless", "--json", "--device", "cuda", "--dtype", dtype, "--seed", "0",
                   "--kind", "txt2vid", "--model", folder, "--save-frames", "--out", out,
                   "--prompt", meta["prompt"], "--init-latents", f"{FIX}/wan-pipeline/{name}_noise.npy",
                   "--fps", "12"]
            for k in ["steps", "guidance", "width", "height", "frames"]:
                cmd += [f"--{k}", str(c[k])]
            t = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            row = {"case": name, "dtype": dtype, "rc": p.returncode, "seconds": round(time.time() - t, 2)}
            if p.returncode == 0:
                done = [json.loads(l) for l in p.stdout.splitlines() if '"done"' in l][-1]
                pngs = sorted(o for o in done["outputs"] if o.endswith(".png"))
                got = np.stack([png_rgb(f).astype(np.float64) for f in pngs])
                row["frames"] = len(pngs)
                row["mean_abs_diff_255"] = float(np.abs(got - want).mean()) if got.shape == want.shape else None
            else:
                log.write(p.stderr[-3000:])
            rows.append(row)
            print(json.dumps(row), flush=True)
    json.dump(rows, open(os.path.join(a.out, "wan_gpu_check.json"), "w"), indent=1)
    shutil.rmtree(os.path.join(a.out, "check"), ignore_errors=True)


def make_folder(d):
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    if os.path.isfile(os.path.join(d, "model_index.json")):
        return
    tiny = f"{FIX}/wan-t2v-tiny"
    os.makedirs(d, exist_ok=True)
    for part in ["tokenizer", "scheduler"]:
        shutil.copytree(os.path.join(tiny, part), os.path.join(d, part), dirs_exist_ok=True)
    shutil.copy(os.path.join(tiny, "model_index.json"), d)
    torch.manual_seed(0)
    with torch.device("cuda"):
        t = WanTransformer3DModel(**TRANSFORMER_1_3B).to(torch.bfloat16)
        t.save_pretrained(os.path.join(d, "transformer"))
        del t
        v = AutoencoderKLWan().to(torch.bfloat16)
        v.save_pretrained(os.path.join(d, "vae"))
        del v
        tiny_te = json.load(open(os.path.join(tiny, "text_encoder", "config.json")))
        cfg = UMT5Config(vocab_size=tiny_te["vocab_size"], d_model=4096, d_kv=64, d_ff=10240, num_heads=64,
                         num_layers=2, num_decoder_layers=2, relative_attention_num_buckets=32,
                         relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                         dense_act_fn="gelu_new", is_gated_act=True, tie_word_embeddings=False)
        te = UMT5EncoderModel(cfg).to(torch.bfloat16)
        te.save_pretrained(os.path.join(d, "text_encoder"))
        del te
    torch.cuda.empty_cache()


def ours(a, d, steps, log):
    cmd = [a.bin, "--headless", "--json", "--device", "cuda", "--dtype", "bf16", "--seed", "0",
           "--kind", "txt2vid", "--model", d, "--out", os.path.join(a.out, "clips"), "--prompt", PROMPT,
           "--width", str(WIDTH), "--height", str(HEIGHT), "--frames", str(FRAMES), "--steps", str(steps),
           "--guidance", "5", "--residency", "resident"]
    log.write("$ " + " ".join(cmd) + "\n")
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log.write(p.stderr[-4000:] + f"\nrc={p.returncode} {time.time() - t:.1f} s\n")
    log.flush()
    stages = {}
    plain = re.sub(r"\x1b\[[0-9;]*m", "", p.stderr)
    for m in re.finditer(r'stage done stage="?(\w+)"? seconds=([0-9.e+-]+)', plain):
        stages[m.group(1)] = float(m.group(2))
    events = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    done = next((e for e in events if e.get("event") == "done"), {})
    elapsed = [e["elapsed_s"] for e in events if e.get("event") == "progress"]
    diffs = [b - a_ for a_, b in zip(elapsed, elapsed[1:])]
    return {"rc": p.returncode, "wall_s": time.time() - t, "stages": stages, "progress_step_diffs_s": diffs,
            "device_peak_bytes": done.get("device_peak_bytes"), "timings": done.get("timings")}


def diffusers_side(d, log):
    import torch
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(d, torch_dtype=torch.bfloat16).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    kw = dict(prompt=PROMPT, negative_prompt=None, height=HEIGHT, width=WIDTH, num_frames=FRAMES,
              guidance_scale=5.0, output_type="latent", generator=torch.Generator("cuda").manual_seed(0))

    def timed(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = pipe(num_inference_steps=steps, **kw).frames
        torch.cuda.synchronize()
        return time.perf_counter() - t, out

    timed(2)  # warm-up
    t2, _ = timed(2)
    torch.cuda.reset_peak_memory_stats()
    t8, latents = timed(8)
    vae = pipe.vae
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)
    z = (latents / inv_std + mean).to(vae.dtype)
    with torch.no_grad():
        vae.decode(z, return_dict=False)  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        vae.decode(z, return_dict=False)
        torch.cuda.synchronize()
        decode = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated()
    r = {"whole_call_2_steps_s": t2, "whole_call_8_steps_s": t8, "step_s": (t8 - t2) / 6, "vae_decode_s": decode,
         "peak_allocated_bytes": peak, "max_reserved_bytes": torch.cuda.max_memory_reserved()}
    del pipe
    torch.cuda.empty_cache()
    return r


def bench(a, log):
    d = a.scratch
    t = time.time()
    make_folder(d)
    log.write(f"weights written in {time.time() - t:.1f} s\n")
    mine = {s: ours(a, d, s, log) for s in (2, 8)}
    shutil.rmtree(os.path.join(a.out, "clips"), ignore_errors=True)
    r = {"config": {"width": WIDTH, "height": HEIGHT, "frames": FRAMES, "dtype": "bf16", "guidance": 5.0,
                    "transformer": TRANSFORMER_1_3B, "text_encoder": "UMT5 d_model 4096, 2 layers (not timed)"},
         "ours": mine}
    try:
        den = [mine[s]["stages"].get("denoise") for s in (2, 8)]
        if None not in den:
            r["ours_step_s"] = (den[1] - den[0]) / 6
        r["ours_vae_decode_s"] = mine[8]["stages"].get("vae_decode")
    except (KeyError, TypeError):
        pass
    json.dump(r, open(os.path.join(a.out, "wan_bench.json"), "w"), indent=1)
    print("ours", r.get("ours_step_s"), r.get("ours_vae_decode_s"), mine[8].get("device_peak_bytes"), flush=True)
    r["diffusers"] = diffusers_side(d, log)
    json.dump(r, open(os.path.join(a.out, "wan_bench.json"), "w"), indent=1)
    print("diffusers", json.dumps(r["diffusers"]), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bin", default="./pallaidium")
    ap.add_argument("--what", default="check,bench")
    ap.add_argument("--scratch", default="/tmp/wan-bench-weights")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "wan_log.txt"), "a")
    if "check" in a.what:
        check(a, log)
    if "bench" in a.what:
        bench(a, log)


if __name__ == "__main__":
    main()
