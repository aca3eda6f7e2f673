#!/usr/bin/env python3
"""The flow families' command-line references on a GPU: every `reference/pipeline_cli_*.json` of the
tiny FLUX, SD 3.5 and Z-Image fixtures run through `pallaidium --headless --device cuda` (f32, and
bf16 for the look of it), each PNG compared with diffusers' CPU float32 image: mean |diff| in 0-255
levels. The CPU tests hold these under 1 level; on a GPU f32 should stay near that, bf16 within a
few levels. One JSON line a run on stdout, a summary at the end. Needs only numpy.

  python3 scripts/gpu_flow_check.py --bin ./pallaidium --out DIR [--dtypes f32,bf16]

Run from the repository root (tests/fixtures/ must be there).
"""
import argparse
import glob
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

FIXTURES = "tests/fixtures"
MODELS = ["flux-schnell-tiny", "flux-dev-tiny", "sd3-tiny", "zimage-tiny"]


def safetensors_tensor(path, key):
    """One float32 tensor of a safetensors file, read without the safetensors package."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        meta = header[key]
        assert meta["dtype"] == "F32", meta
        start, end = meta["data_offsets"]
        f.seek(8 + n + start)
        data = f.read(end - start)
    return np.frombuffer(data, dtype=np.float32).reshape(meta["shape"])


def png_rgb(path):
    """An 8-bit RGB PNG as (h, w, 3) uint8, with zlib only (no Pillow on the GPU machine)."""
    import zlib

    raw = open(path, "rb").read()
    pos, chunks = 8, []
    width = height = None
    while pos < len(raw):
        n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color == 2, (depth, color)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + n
    data = zlib.decompress(b"".join(chunks))
    stride = width * 3
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        ftype = data[y * (stride + 1)]
        line = np.frombuffer(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)], dtype=np.uint8).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = cur[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if ftype == 0:
                p = 0
            elif ftype == 1:
                p = a
            elif ftype == 2:
                p = b
            elif ftype == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(height, width, 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./pallaidium")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    results = []
    for model in MODELS:
        for ref in sorted(glob.glob(f"{FIXTURES}/{model}/reference/pipeline_cli_*.json")):
            r = json.load(open(ref))
            cli = r.get("cli")
            if not cli:
                continue
            name = os.path.basename(ref)[len("pipeline_"):-len(".json")]
            want = safetensors_tensor(f"{FIXTURES}/{cli['image']}", "image")
            want = want.reshape(want.shape[-3:])
            for dtype in a.dtypes.split(","):
                out = os.path.join(a.out, f"{model}_{name}_{dtype}")
                cmd = [a.bin, "--headless", "--json", "--device", a.device, "--dtype", dtype, "--seed", "0",
                       "--model", f"{FIXTURES}/{model}", "--prompt", cli["prompt"], "--steps", str(cli["steps"]),
                       "--width", str(cli["width"]), "--height", str(cli["height"]),
                       "--init-latents", f"{FIXTURES}/{cli['noise']}", "--out", out]
                if cli.get("max_sequence_length"):
                    cmd += ["--max-sequence-length", str(cli["max_sequence_length"])]
                if r.get("guidance_used") is not False and cli.get("guidance_scale") is not None \
                        and model != "flux-schnell-tiny":
                    cmd += ["--guidance", str(cli["guidance_scale"])]
                if cli.get("negative_prompt"):
                    cmd += ["--negative", cli["negative_prompt"]]
                    if cli.get("true_cfg_scale"):
                        cmd += ["--true-cfg", str(cli["true_cfg_scale"])]
                if cli.get("init_image"):
                    cmd += ["--init-image", f"{FIXTURES}/{cli['init_image']}", "--strength", str(cli["strength"])]
                if cli.get("gguf"):
                    cmd += ["--transformer", f"{FIXTURES}/{cli['gguf']}"]
                if cli.get("no_t5"):
                    cmd += ["--no-t5"]
                if r.get("text_encoder_gguf"):
                    cmd += ["--text-encoder-2", f"{FIXTURES}/{r['text_encoder_gguf']}"]
                t = time.time()
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                row = {"model": model, "reference": name, "dtype": dtype, "rc": p.returncode,
                       "seconds": round(time.time() - t, 2)}
                done = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{") and '"done"' in l]
                if p.returncode == 0 and done:
                    ours = png_rgb(done[0]["outputs"][0]).astype(np.float64)
                    row["mean_abs_diff_255"] = float(np.abs(ours - want.astype(np.float64) * 255.0).mean())
                else:
                    row["stderr"] = p.stderr[-1500:]
                print(json.dumps(row), flush=True)
                results.append(row)
    json.dump(results, open(os.path.join(a.out, "flow_check.json"), "w"), indent=1)
    bad = [r for r in results if r["rc"] != 0]
    print(f"{len(results)} runs, {len(bad)} failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
