#!/usr/bin/env python3
"""stable-diffusion.cpp's side of the CPU FLUX and Z-Image benchmarks (stable-diffusion-cpp-python).

  /opt/sdcpp/bin/python scripts/bench_flux_sdcpp.py FILES_DIR --threads 2 --size 256 --runs 1
  /opt/sdcpp/bin/python scripts/bench_flux_sdcpp.py FILES_DIR --family zimage --size 128

--family zimage: FILES_DIR holds what scripts/bench_zimage_make_files.py writes (the Q4_K
Z-Image-Turbo transformer GGUF, the Qwen3-4B GGUF given as llm_path, the FLUX VAE); the prompt
goes through sd.cpp's Qwen3 with its chat template, and text_tokens is the caption length its
tokenizer logs (16 for the prompt below). The rest is as for FLUX:

FILES_DIR holds what scripts/bench_flux_make_files.py writes (the Q4_K transformer GGUF, a
random FLUX VAE and CLIP-L; no T5: sd.cpp then feeds 256 zero T5 states, the token count our
bench uses for schnell). Loads once, then `--warmup` + `--runs` generations of one Euler step,
cfg 1, at SIZE x SIZE. sd.cpp cannot run its transformer alone, so what is timed per run:
  sampling_s   sd.cpp's own "sampling completed, taking X s" (one step = one transformer call,
               with its graph building and compute-buffer allocation), parsed from its log
  generate_s   the whole generate_image call (CLIP-L, the zero T5 states, sampling, VAE decode)
Peak RSS: getrusage(RUSAGE_SELF).ru_maxrss of this process (load and every run included).
Prints one JSON object on stdout; sd.cpp's log goes to stderr and to --log.
"""
import argparse
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files")
    ap.add_argument("--family", choices=["flux", "zimage"], default="flux")
    ap.add_argument("--gguf", default=None, help="default: the family's file in FILES_DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "sdcpp-flux.log"))
    args = ap.parse_args()

    # sd.cpp logs through a C callback that prints to stderr: send fd 2 to the log file too.
    log = open(args.log, "w")
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    from stable_diffusion_cpp import StableDiffusion
    import stable_diffusion_cpp

    if args.family == "flux":
        args.gguf = args.gguf or "flux1-schnell-Q4_K.gguf"
        encoders = {"clip_l_path": os.path.join(args.files, "clip_l.safetensors")}
    else:
        args.gguf = args.gguf or "z_image_turbo-Q4_K.gguf"
        encoders = {"llm_path": os.path.join(args.files, "Qwen3-4B-Q4_K.gguf")}
    t = time.perf_counter()
    sd = StableDiffusion(
        diffusion_model_path=os.path.join(args.files, args.gguf),
        vae_path=os.path.join(args.files, "ae.safetensors"),
        **encoders,
        n_threads=args.threads,
        vae_decode_only=True,
        verbose=True,
    )
    load_s = time.perf_counter() - t
    gens = []
    for i in range(args.warmup + args.runs):
        t = time.perf_counter()
        sd.generate_image(prompt="a photograph of an astronaut riding a horse",
                          width=args.size, height=args.size, sample_steps=1, cfg_scale=1.0,
                          sample_method="euler", seed=42)
        gens.append(time.perf_counter() - t)
    log.flush()
    os.dup2(saved, 2)
    text = open(args.log).read()
    sampling = [float(x) for x in re.findall(r"sampling completed, taking ([0-9.]+)s", text)]
    timed_gen = gens[args.warmup:]
    timed_sampling = sampling[args.warmup:]
    version = getattr(stable_diffusion_cpp, "__version__", "unknown")
    if args.family == "flux":
        text_tokens = 256
    else:
        # sd.cpp's tokenizer logs each piece of the templated prompt as 'split prompt "..." to
        # tokens ["a", "Ġphotograph", ...]': their count over all pieces, per generation.
        pieces = re.findall(r'to tokens \[(.*?)\]\s*$', text, re.M)
        count = sum(len(re.findall(r'"(?:[^"\\]|\\.)*"', p)) for p in pieces)
        text_tokens = count // len(gens) if pieces else None
    print(json.dumps({
        "bench": "transformer", "side": "stable-diffusion.cpp", "family": args.family,
        "width": args.size, "height": args.size, "image_tokens": (args.size // 16) ** 2,
        "text_tokens": text_tokens,
        "steps": 1, "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
        "sampling_times_s": timed_sampling, "generate_times_s": timed_gen,
        "sampling_median_s": statistics.median(timed_sampling) if timed_sampling else None,
        "generate_median_s": statistics.median(timed_gen) if timed_gen else None,
        "load_s": load_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_kind": "getrusage ru_maxrss of the process (load + all runs)",
        "stable_diffusion_cpp_python": version,
        "gguf": os.path.join(args.files, args.gguf),
    }))


if __name__ == "__main__":
    sys.exit(main())
