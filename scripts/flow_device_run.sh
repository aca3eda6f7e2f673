#!/usr/bin/env bash
# One GPU call for the flow families, from the repository root on the device, with .benchcarry/ carried:
#   pallaidium.xz (cargo build --release --features cuda, xz), gpu-libs.sh (shared/cuda), whl/diffusers-0.42.1-*.whl.
# STAGE: check (scripts/gpu_flow_check.py, then the FLUX bf16 1024x1024 step vs diffusers), flux, zimage,
# all (bench ops, the check, FLUX and Z-Image; baseline.xz, an earlier build, is timed beside this one when carried).
set -uo pipefail
C=$(pwd)/.benchcarry
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
cd "$C" && { [ -x pallaidium ] || { xz -dc pallaidium.xz > pallaidium && chmod +x pallaidium; }; }
# An earlier build to time beside this one (optional): baseline.xz.
BASE=()
if [ -f baseline.xz ]; then
  [ -x baseline ] || { xz -dc baseline.xz > baseline && chmod +x baseline; }
  BASE=(--baseline-bin "$C/baseline")
fi
source "$C/gpu-libs.sh"
# The Python packages as wheels (whl/), or unpacked and xz-compressed (site.tar.xz: smaller to carry).
if [ -f "$C/site.tar.xz" ]; then
  mkdir -p /tmp/site && tar -C /tmp/site -xJf "$C/site.tar.xz"
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$C"/whl/*.whl > "$OUT/pip.txt" 2>&1
fi
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
cd "$C/.."
nvidia-smi > "$OUT/gpu.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$OUT/gpu.txt" 2>&1
python3 -c "import torch, diffusers; print(torch.__version__, torch.version.cuda, diffusers.__version__)" > "$OUT/versions.txt" 2>&1
lscpu | head -20 > "$OUT/cpu.txt"
"$C/pallaidium" --version >> "$OUT/versions.txt" 2>&1
case "$1" in
  check)
    mkdir -p "$OUT/flow_check"
    timeout 250 python3 scripts/gpu_flow_check.py --bin "$C/pallaidium" --out "$OUT/flow_check" --dtypes f32,bf16 > "$OUT/flow_check.jsonl" 2> "$OUT/flow_check.err"
    rm -rf "$OUT"/flow_check/*/ 2>/dev/null
    tail -3 "$OUT/flow_check.jsonl"
    timeout 300 python3 scripts/bench_flux_device.py "$OUT" --bin "$C/pallaidium" --budget-s 290 --models flux-schnell
    ;;
  all)
    # The kernels against candle's ops (branch f/gpu-kernels adds the flow transformers' head size 128), every flow
    # fixture on CUDA, then FLUX, Z-Image and SD 3.5 Medium steps against diffusers (and the baseline build).
    timeout 120 "$C/pallaidium" bench ops --device cuda --dtype f16 --runs 5 --json > "$OUT/ops.json" 2> "$OUT/ops.err"
    mkdir -p "$OUT/flow_check"
    timeout 200 python3 scripts/gpu_flow_check.py --bin "$C/pallaidium" --out "$OUT/flow_check" --dtypes f32,bf16 > "$OUT/flow_check.jsonl" 2> "$OUT/flow_check.err"
    rm -rf "$OUT"/flow_check/*/ 2>/dev/null
    tail -3 "$OUT/flow_check.jsonl"
    timeout 330 python3 scripts/bench_flux_device.py "$OUT" --bin "$C/pallaidium" "${BASE[@]}" --budget-s 320 --models flux-schnell,z-image-turbo,sd35-medium
    ;;
  zimage)
    python3 scripts/bench_flux_device.py "$OUT" --bin "$C/pallaidium" --budget-s 540 --models z-image-turbo
    ;;
  flux)
    python3 scripts/bench_flux_device.py "$OUT" --bin "$C/pallaidium" --budget-s 540 --models flux-schnell
    ;;
esac
ls -la "$OUT"
# At most a few files come back from the device: everything in one archive.
(cd "$OUT" && rm -rf flow_check && tar czf /tmp/results.tar.gz . && find . -mindepth 1 -delete && mv /tmp/results.tar.gz .)
