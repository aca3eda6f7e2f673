#!/usr/bin/env python3
"""Random full-size Z-Image-Turbo files for the CPU benchmark against stable-diffusion.cpp.

  python3 scripts/bench_zimage_make_files.py OUT_DIR [--no-llm]

writes, streaming each tensor to disk (nothing model-sized is held in memory):
  z_image_turbo-Q4_K.gguf  the transformer as ComfyUI-GGUF/city96 write it: the original
                           checkpoint's names (fused attention.qkv, attention.out, q_norm/k_norm,
                           x_embedder., final_layer., t_embedder.mlp., cap_embedder.),
                           general.architecture "lumina2"; 2-D weights whose input width is a
                           multiple of 256 as Q4_K (every block matrix, the caption and timestep
                           embedders, the final layer), the rest (x_embedder, the two pad tokens,
                           biases, norm scales) F32. 6.15 B parameters. Q4_K blocks are random bytes
                           with f16 scales d = 1e-4, dmin = 7.5e-4 (weights about N(0, 0.02)),
                           norm scales 1, other F32 tensors N(0, 0.02).
  Qwen3-4B-Q4_K.gguf       (unless --no-llm) the Qwen3-4B text encoder as llama.cpp writes it
                           (general.architecture "qwen3", token_embd/blk.N.*/output_norm, 36
                           blocks, tied embeddings), every matrix Q4_K, same random scheme:
                           stable-diffusion.cpp refuses Z-Image without an LLM text encoder.
  ae.safetensors           the FLUX VAE (16 latent channels, as Z-Image uses), F16 random

Only numpy is needed (the GGUF/safetensors writers are bench_flux_make_files.py's). Shapes are
those of src/commands/bench/configs/z-image-turbo (dim 3840, 30 heads, 30 layers, 2 noise and 2
context refiners, FFN 10240, caption features 2560, adaLN 256) and src/models/planner/zimage_tests.rs.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_flux_make_files import (GGML_F32, GGML_Q4_K, QK_K, tensor_data, vae_tensors,  # noqa: E402
                                   write_gguf, write_safetensors)

DIM, FFN, ADALN, CAP = 3840, 10240, 256, 2560


def block(prefix, modulated):
    t = [(f"{prefix}.attention.qkv.weight", (3 * DIM, DIM)),
         (f"{prefix}.attention.out.weight", (DIM, DIM)),
         (f"{prefix}.attention.q_norm.weight", (128,)),
         (f"{prefix}.attention.k_norm.weight", (128,)),
         (f"{prefix}.feed_forward.w1.weight", (FFN, DIM)),
         (f"{prefix}.feed_forward.w2.weight", (DIM, FFN)),
         (f"{prefix}.feed_forward.w3.weight", (FFN, DIM))]
    t += [(f"{prefix}.{n}.weight", (DIM,))
          for n in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2")]
    if modulated:
        t += [(f"{prefix}.adaLN_modulation.0.weight", (4 * DIM, ADALN)),
              (f"{prefix}.adaLN_modulation.0.bias", (4 * DIM,))]
    return t


def zimage_tensors():
    t = [("x_embedder.weight", (DIM, 64)), ("x_embedder.bias", (DIM,)),
         ("x_pad_token", (1, DIM)), ("cap_pad_token", (1, DIM)),
         ("cap_embedder.0.weight", (CAP,)),
         ("cap_embedder.1.weight", (DIM, CAP)), ("cap_embedder.1.bias", (DIM,)),
         ("t_embedder.mlp.0.weight", (1024, 256)), ("t_embedder.mlp.0.bias", (1024,)),
         ("t_embedder.mlp.2.weight", (ADALN, 1024)), ("t_embedder.mlp.2.bias", (ADALN,)),
         ("final_layer.linear.weight", (64, DIM)), ("final_layer.linear.bias", (64,)),
         ("final_layer.adaLN_modulation.1.weight", (DIM, ADALN)),
         ("final_layer.adaLN_modulation.1.bias", (DIM,))]
    for i in range(30):
        t += block(f"layers.{i}", True)
    for i in range(2):
        t += block(f"noise_refiner.{i}", True)
        t += block(f"context_refiner.{i}", False)
    return t


def qwen3_tensors():
    h, ff, kv, q = 2560, 9728, 8 * 128, 32 * 128
    t = [("token_embd.weight", (151_936, h)), ("output_norm.weight", (h,))]
    for i in range(36):
        p = f"blk.{i}"
        t += [(f"{p}.attn_q.weight", (q, h)), (f"{p}.attn_k.weight", (kv, h)),
              (f"{p}.attn_v.weight", (kv, h)), (f"{p}.attn_output.weight", (h, q)),
              (f"{p}.attn_q_norm.weight", (128,)), (f"{p}.attn_k_norm.weight", (128,)),
              (f"{p}.attn_norm.weight", (h,)), (f"{p}.ffn_norm.weight", (h,)),
              (f"{p}.ffn_gate.weight", (ff, h)), (f"{p}.ffn_up.weight", (ff, h)),
              (f"{p}.ffn_down.weight", (h, ff))]
    return t


def q4k_or_f32(_name, shape):
    """Q4_K for a matrix of more than one row whose input width fills 256-wide blocks, else F32."""
    return GGML_Q4_K if len(shape) == 2 and shape[0] > 1 and shape[1] % QK_K == 0 else GGML_F32


def data(name, shape, ty):
    """Norm scales 1 (RMSNorm weights), everything else bench_flux_make_files' random scheme."""
    if len(shape) == 1 and "norm" in name:
        return np.ones(shape, np.float32).tobytes()
    return tensor_data(name, shape, ty)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = write_gguf(os.path.join(out, "z_image_turbo-Q4_K.gguf"), zimage_tensors(), "lumina2",
                   q4k_or_f32, data)
    print(f"z_image_turbo-Q4_K.gguf: {n} bytes")
    if "--no-llm" not in sys.argv:
        n = write_gguf(os.path.join(out, "Qwen3-4B-Q4_K.gguf"), qwen3_tensors(), "qwen3",
                       q4k_or_f32, data)
        print(f"Qwen3-4B-Q4_K.gguf: {n} bytes")
    write_safetensors(os.path.join(out, "ae.safetensors"), vae_tensors())
    print("ae.safetensors written")


if __name__ == "__main__":
    main()
