#!/usr/bin/env bash
# One GPU call for issue 21's upscaling benchmark, from the repository root on the device, with .benchcarry/
# carried: pallaidium.xz (cargo build --release --features cuda, xz), gpu-libs.sh (shared/cuda) and
# whl/ holding spandrel-0.4.2 and einops wheels (pure Python; torch is on the device).
# Runs scripts/bench_upscale.py: 512x512 x4 on the GPU in f16 and f32 (each process upscales 3 times:
# one cold, two warm), then on the device's CPU in f32 (one run a side). Everything comes back as results.tar.gz.
set -uo pipefail
C=$(pwd)/.benchcarry
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
cd "$C" && { [ -x pallaidium ] || { xz -dc pallaidium.xz > pallaidium && chmod +x pallaidium; }; }
source "$C/gpu-libs.sh"
# The Python packages as wheels (whl/), or unpacked and xz-compressed (site.tar.xz: smaller to carry).
if [ -f "$C/site.tar.xz" ]; then
  mkdir -p /tmp/site && tar -C /tmp/site -xJf "$C/site.tar.xz"
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$C"/whl/*.whl > "$OUT/pip.txt" 2>&1
fi
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
cd "$C/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
"$C/pallaidium" --version > "$OUT/versions.txt" 2>&1
for dt in f16 f32; do
  timeout 150 python3 scripts/bench_upscale.py --device cuda --dtype "$dt" --runs 2 --repeat 3 \
    --binary "$C/pallaidium" --out "$OUT/gpu-$dt" > "$OUT/gpu-$dt.log" 2>&1
done
timeout "${CPU_LIMIT_S:-300}" python3 scripts/bench_upscale.py --device cpu --dtype f32 --runs 1 \
  --binary "$C/pallaidium" --out "$OUT/cpu" > "$OUT/cpu.log" 2>&1
tail -n 3 "$OUT"/*.log
(cd "$OUT" && tar czf /tmp/results.tar.gz . && find . -mindepth 1 -delete && mv /tmp/results.tar.gz .)
