#!/usr/bin/env python3
"""Random full-size FLUX.1 files for the CPU benchmark against stable-diffusion.cpp.

  python3 scripts/bench_flux_make_files.py OUT_DIR [--dev]

writes, streaming each tensor to disk (nothing model-sized is held in memory):
  flux1-schnell-Q4_K.gguf  the transformer in city96's layout: BFL names, general.architecture
                           "flux", 2-D weights whose input width is a multiple of 256 as Q4_K,
                           other 2-D weights F16, 1-D tensors (biases, norm scales) F32. Q4_K
                           blocks are random bytes with f16 scales d = 1e-4, dmin = 7.5e-4, so
                           weights are about N(0, 0.02) with mean about 0.
  ae.safetensors           the FLUX VAE (LDM names, z 16, no quant convs), F16 random
  clip_l.safetensors       CLIP ViT-L/14 text model (HF names under transformer.), F16 random

Only numpy is needed. sd.cpp runs FLUX without T5 (it then feeds 256 zero T5 states, the same
token count as ours), so no T5 file is written.
"""
import json
import struct
import sys

import numpy as np

RNG = np.random.default_rng(0)
GGML_F32, GGML_F16, GGML_Q4_K = 0, 1, 12
QK_K, Q4_K_BYTES = 256, 144
ALIGN = 32


def flux_tensors(dev):
    d, m, hd = 3072, 12288, 128
    t = [("img_in.weight", (d, 64)), ("img_in.bias", (d,)),
         ("txt_in.weight", (d, 4096)), ("txt_in.bias", (d,))]
    emb = [("time_in", 256), ("vector_in", 768)] + ([("guidance_in", 256)] if dev else [])
    for name, i in emb:
        t += [(f"{name}.in_layer.weight", (d, i)), (f"{name}.in_layer.bias", (d,)),
              (f"{name}.out_layer.weight", (d, d)), (f"{name}.out_layer.bias", (d,))]
    for b in range(19):
        for s in ("img", "txt"):
            p = f"double_blocks.{b}.{s}"
            for name, shape in [(f"{p}_mod.lin", (6 * d, d)), (f"{p}_attn.qkv", (3 * d, d)),
                                (f"{p}_attn.proj", (d, d)), (f"{p}_mlp.0", (m, d)),
                                (f"{p}_mlp.2", (d, m))]:
                t += [(name + ".weight", shape), (name + ".bias", (shape[0],))]
            t += [(f"{p}_attn.norm.query_norm.scale", (hd,)),
                  (f"{p}_attn.norm.key_norm.scale", (hd,))]
    for b in range(38):
        p = f"single_blocks.{b}"
        for name, shape in [(f"{p}.linear1", (3 * d + m, d)), (f"{p}.linear2", (d, d + m)),
                            (f"{p}.modulation.lin", (3 * d, d))]:
            t += [(name + ".weight", shape), (name + ".bias", (shape[0],))]
        t += [(f"{p}.norm.query_norm.scale", (hd,)), (f"{p}.norm.key_norm.scale", (hd,))]
    t += [("final_layer.linear.weight", (64, d)), ("final_layer.linear.bias", (64,)),
          ("final_layer.adaLN_modulation.1.weight", (2 * d, d)),
          ("final_layer.adaLN_modulation.1.bias", (2 * d,))]
    return t


def ggml_type(_name, shape):
    if len(shape) == 2 and shape[1] % QK_K == 0:
        return GGML_Q4_K
    return GGML_F16 if len(shape) == 2 else GGML_F32


def nbytes(shape, ty):
    n = int(np.prod(shape))
    return {GGML_F32: 4 * n, GGML_F16: 2 * n, GGML_Q4_K: n // QK_K * Q4_K_BYTES}[ty]


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def tensor_data(name, shape, ty):
    if ty == GGML_Q4_K:
        blocks = int(np.prod(shape)) // QK_K
        raw = np.frombuffer(RNG.bytes(blocks * Q4_K_BYTES), dtype=np.uint8).reshape(blocks, -1).copy()
        raw[:, 0:2] = np.frombuffer(np.float16(1e-4).tobytes(), np.uint8)
        raw[:, 2:4] = np.frombuffer(np.float16(7.5e-4).tobytes(), np.uint8)
        return raw.tobytes()
    if name.endswith(".scale"):
        return np.ones(shape, np.float32).tobytes()
    if ty == GGML_F32:
        return (RNG.standard_normal(shape, np.float32) * 0.02).tobytes()
    return (RNG.standard_normal(shape, np.float32) * 0.02).astype(np.float16).tobytes()


def write_gguf(path, tensors, arch="flux", type_of=ggml_type, data_of=tensor_data):
    """GGUF v3 with `general.architecture` = arch, file type MOSTLY_Q4_K_S; type_of(name, shape)
    picks each tensor's type (FLUX: ggml_type's rule), data_of(name, shape, ty) its bytes."""
    kv = [("general.architecture", arch), ("general.quantization_version", 2),
          ("general.file_type", 14)]  # MOSTLY_Q4_K_S
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, v in kv:
        head += gguf_str(k)
        head += struct.pack("<I", 8) + gguf_str(v) if isinstance(v, str) else struct.pack("<II", 4, v)
    offset, infos = 0, []
    for name, shape in tensors:
        ty = type_of(name, shape)
        head += gguf_str(name) + struct.pack("<I", len(shape))
        head += b"".join(struct.pack("<Q", n) for n in reversed(shape))  # ne0 = input width
        head += struct.pack("<IQ", ty, offset)
        infos.append((name, shape, ty, offset))
        offset += (nbytes(shape, ty) + ALIGN - 1) // ALIGN * ALIGN
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        for name, shape, ty, off in infos:
            data = data_of(name, shape, ty)
            assert len(data) == nbytes(shape, ty), name
            f.write(data + b"\0" * ((-len(data)) % ALIGN))
    return offset + len(head)


def write_safetensors(path, tensors):
    header, off = {}, 0
    for name, shape in tensors:
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in tensors:
            if name.endswith("norm.weight") or ".norm1.weight" in name or ".norm2.weight" in name \
                    or "layer_norm" in name and name.endswith("weight"):
                a = np.ones(shape, np.float16)
            else:
                a = (RNG.standard_normal(shape, np.float32) * 0.02).astype(np.float16)
            f.write(a.tobytes())


def vae_tensors():
    t = []

    def conv(n, o, i, k):
        t.extend([(n + ".weight", (o, i, k, k)), (n + ".bias", (o,))])

    def norm(n, c):
        t.extend([(n + ".weight", (c,)), (n + ".bias", (c,))])

    def res(p, i, o):
        norm(p + ".norm1", i); conv(p + ".conv1", o, i, 3)
        norm(p + ".norm2", o); conv(p + ".conv2", o, o, 3)
        if i != o:
            conv(p + ".nin_shortcut", o, i, 1)

    def mid(p):
        res(p + ".mid.block_1", 512, 512)
        norm(p + ".mid.attn_1.norm", 512)
        for x in "qkv":
            conv(f"{p}.mid.attn_1.{x}", 512, 512, 1)
        conv(p + ".mid.attn_1.proj_out", 512, 512, 1)
        res(p + ".mid.block_2", 512, 512)

    mult = [1, 2, 4, 4]
    conv("encoder.conv_in", 128, 3, 3)
    cin = 128
    for i, mu in enumerate(mult):
        for j in range(2):
            res(f"encoder.down.{i}.block.{j}", cin, 128 * mu)
            cin = 128 * mu
        if i != 3:
            conv(f"encoder.down.{i}.downsample.conv", cin, cin, 3)
    mid("encoder")
    norm("encoder.norm_out", 512)
    conv("encoder.conv_out", 32, 512, 3)
    conv("decoder.conv_in", 512, 16, 3)
    mid("decoder")
    cin = 512
    for i in reversed(range(4)):
        for j in range(3):
            res(f"decoder.up.{i}.block.{j}", cin, 128 * mult[i])
            cin = 128 * mult[i]
        if i != 0:
            conv(f"decoder.up.{i}.upsample.conv", cin, cin, 3)
    norm("decoder.norm_out", 128)
    conv("decoder.conv_out", 3, 128, 3)
    return t


def clip_tensors():
    p, d = "text_model", 768
    t = [(f"{p}.embeddings.token_embedding.weight", (49408, d)),
         (f"{p}.embeddings.position_embedding.weight", (77, d))]
    for i in range(12):
        q = f"{p}.encoder.layers.{i}"
        for x in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t += [(f"{q}.self_attn.{x}.weight", (d, d)), (f"{q}.self_attn.{x}.bias", (d,))]
        for n in ("layer_norm1", "layer_norm2"):
            t += [(f"{q}.{n}.weight", (d,)), (f"{q}.{n}.bias", (d,))]
        t += [(f"{q}.mlp.fc1.weight", (4 * d, d)), (f"{q}.mlp.fc1.bias", (4 * d,)),
              (f"{q}.mlp.fc2.weight", (d, 4 * d)), (f"{q}.mlp.fc2.bias", (d,))]
    t += [(f"{p}.final_layer_norm.weight", (d,)), (f"{p}.final_layer_norm.bias", (d,))]
    return t


def main():
    out = sys.argv[1]
    dev = "--dev" in sys.argv
    import os
    os.makedirs(out, exist_ok=True)
    name = "flux1-dev-Q4_K.gguf" if dev else "flux1-schnell-Q4_K.gguf"
    n = write_gguf(os.path.join(out, name), flux_tensors(dev))
    print(f"{name}: {n} bytes")
    write_safetensors(os.path.join(out, "ae.safetensors"), vae_tensors())
    write_safetensors(os.path.join(out, "clip_l.safetensors"), clip_tensors())
    print("ae.safetensors, clip_l.safetensors written")


if __name__ == "__main__":
    main()
