#!/usr/bin/env bash
# One GPU call for Wan (issue 22) and the cuDNN convolutions (issue 21), from the repository root on the
# device, with .benchcarry/ carried: pallaidium.xz (cargo build --release --features cudnn, xz),
# gpu-libs.sh (shared/cuda), site.tar.xz (diffusers, spandrel and einops unpacked; torch and transformers
# are on the device). In order, while the budget (BUDGET_S seconds) lasts:
#   1. the tiny Wan references through the binary on CUDA, f32 and bf16 (bench_wan_device.py check);
#   2. 512x512 x4 RRDBNet upscaling against spandrel in f16, PALLAIDIUM_CONV=cudnn then =gemm;
#   3. Wan 2.1 1.3B 832x480x33 bf16 against diffusers (bench_wan_device.py bench);
#   4. every flow fixture's CLI reference on CUDA (gpu_flow_check.py): their VAEs' convolutions run
#      through cuDNN now;
#   5. the upscale in f32, cudnn then gemm.
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
python3 -c "import torch, diffusers, transformers; print(torch.__version__, torch.version.cuda, diffusers.__version__, transformers.__version__, torch.backends.cudnn.version())" > "$OUT/versions.txt" 2>&1
"$C/pallaidium" --version >> "$OUT/versions.txt" 2>&1
lscpu | head -20 > "$OUT/cpu.txt"

upscale() {  # dtype conv
  [ "$(left)" -gt 60 ] || return
  PALLAIDIUM_CONV=$2 timeout 110 python3 scripts/bench_upscale.py --device cuda --dtype "$1" --runs 2 --repeat 3 \
    --binary "$C/pallaidium" --out "$OUT/gpu-$1-$2" > "$OUT/gpu-$1-$2.log" 2>&1
  echo "gpu $1 $2: $(tail -n 2 "$OUT/gpu-$1-$2.log" | tr '\n' ' ') [$(left)s left]"
}

timeout 100 python3 scripts/bench_wan_device.py "$OUT" --bin "$C/pallaidium" --what check 2> "$OUT/wan_check.err"
echo "wan check done [$(left)s left]"
upscale f16 cudnn
upscale f16 gemm
t=$(( $(left) - 200 ))
[ "$t" -gt 240 ] && t=240
if [ "$t" -gt 90 ]; then
  timeout "$t" python3 scripts/bench_wan_device.py "$OUT" --bin "$C/pallaidium" --what bench 2> "$OUT/wan_bench.err"
  echo "wan bench done [$(left)s left]"
fi
mkdir -p "$OUT/flow_check"
t=$(( $(left) - 10 )); [ "$t" -gt 150 ] && t=150
[ "$t" -gt 30 ] && timeout "$t" python3 scripts/gpu_flow_check.py --bin "$C/pallaidium" --out "$OUT/flow_check" --dtypes f32,bf16 \
  > "$OUT/flow_check.jsonl" 2> "$OUT/flow_check.err"
rm -rf "$OUT"/flow_check/*/ 2>/dev/null
echo "flow check: $(tail -1 "$OUT/flow_check.jsonl" 2>/dev/null) [$(left)s left]"
upscale f32 cudnn
upscale f32 gemm
