#!/usr/bin/env bash
# One GPU call for the cuDNN convolutions (PALLAIDIUM_CONV) and the fused RRDB trunk, from the repository
# root on the device, with .benchcarry/ carried: pallaidium.xz (cargo build --release --features cudnn,
# xz), gpu-libs.sh (shared/cuda), site.tar.xz (diffusers, spandrel and einops unpacked; torch is on the
# device). In order, while the budget (BUDGET_S seconds) lasts:
#   1. 512x512 x4 RRDBNet upscaling against spandrel, f16 then f32, with PALLAIDIUM_CONV=cudnn and =gemm
#      (bench_upscale.py compares both outputs too);
#   2. every flow fixture's CLI reference on CUDA (scripts/gpu_flow_check.py, f32 and bf16): the VAEs'
#      convolutions now run through cuDNN, so this is their parity check on the device;
#   3. the same upscale on the device's CPU (16 cores), one run a side.
# Results come back under $OUT.
set -uo pipefail
C=$(pwd)/.benchcarry
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
start=$(date +%s)
left() { echo $((${BUDGET_S:-570} - ($(date +%s) - start))); }
cd "$C" && { [ -x pallaidium ] || { xz -dc pallaidium.xz > pallaidium && chmod +x pallaidium; }; }
source "$C/gpu-libs.sh"
mkdir -p /tmp/site && tar -C /tmp/site -xJf "$C/site.tar.xz"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
cd "$C/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, diffusers; print(torch.__version__, torch.version.cuda, diffusers.__version__, torch.backends.cudnn.version())" > "$OUT/versions.txt" 2>&1
"$C/pallaidium" --version >> "$OUT/versions.txt" 2>&1
lscpu | head -20 > "$OUT/cpu.txt"

for dt in f16 f32; do
  for conv in cudnn gemm; do
    [ "$(left)" -gt 60 ] || break
    PALLAIDIUM_CONV=$conv timeout 110 python3 scripts/bench_upscale.py --device cuda --dtype "$dt" --runs 2 --repeat 3 \
      --binary "$C/pallaidium" --out "$OUT/gpu-$dt-$conv" > "$OUT/gpu-$dt-$conv.log" 2>&1
    echo "gpu $dt $conv: $(tail -n 2 "$OUT/gpu-$dt-$conv.log" | tr '\n' ' ') [$(left)s left]"
  done
done
mkdir -p "$OUT/flow_check"
timeout $(( $(left) > 200 ? 200 : $(left) - 5 )) python3 scripts/gpu_flow_check.py --bin "$C/pallaidium" --out "$OUT/flow_check" --dtypes f32,bf16 \
  > "$OUT/flow_check.jsonl" 2> "$OUT/flow_check.err"
rm -rf "$OUT"/flow_check/*/ 2>/dev/null
echo "flow check: $(tail -1 "$OUT/flow_check.jsonl") [$(left)s left]"

t=$(( $(left) - 10 ))
if [ "$t" -gt 40 ]; then
  timeout "$t" python3 scripts/bench_upscale.py --device cpu --dtype f32 --runs 1 \
    --binary "$C/pallaidium" --out "$OUT/cpu" > "$OUT/cpu.log" 2>&1
  echo "cpu: $(tail -n 2 "$OUT/cpu.log" | tr '\n' ' ')"
fi
