#!/usr/bin/env bash
# One call on the lent GPU: the device tests, the full-size fp16 UNet and 20-step image parity with
# diffusers, the same image with PALLAIDIUM_STOCK_KERNELS=1 (shows the switch in the PNG's
# metadata), then benchmarks while time is left. Everything it needs is carried in .devcarry/:
#   pallaidium.xz (cargo build --release --features cuda), libtests.xz (cargo test --release
#   --features cuda --lib --no-run), diffusers-*.whl, gpu-libs.sh (../shared/cuda), gpu_parity.py
#   bench_diffusers.py (this branch's) and this script. From the repository root on the device: bash .devcarry/gpu_device_run.sh
# Results: $OUT/run.log, $OUT/results.tgz (JSON, PNGs, test output), $OUT/summary.txt.
set -uo pipefail
C=$(pwd)/.devcarry
W=/tmp/gpuwork
OUT=${OUT:-/tmp/gpuout}
mkdir -p "$W" "$OUT"
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
log() { echo "[$(elapsed)s] $*" | tee -a "$W/summary.txt"; }
BUDGET_S=${BUDGET_S:-470}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,power.limit --format=csv >"$W/gpu.txt" 2>&1
log "gpu: $(tail -n 1 "$W/gpu.txt")"
# shellcheck disable=SC1091
source "$C/gpu-libs.sh"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$C"/diffusers-*.whl >"$W/pip.txt" 2>&1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
for b in pallaidium libtests; do
  xz -dc "$C/$b.xz" >"$W/$b" 2>/dev/null || python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$C/$b.xz" >"$W/$b"
  chmod +x "$W/$b"
done
P=$W/pallaidium
T=$W/libtests

# 1. Device tests. The default run shows them ignored (not passed); --ignored runs them.
"$T" --list --ignored >"$W/tests_ignored_list.txt" 2>&1
"$T" kernels::cuda weights::tests::staged >"$W/tests_default.txt" 2>&1
log "default run: $(grep '^test result' "$W/tests_default.txt")"
"$T" --ignored --skip unet_parity >"$W/tests_ignored.txt" 2>&1
log "device tests (--ignored): $(grep '^test result' "$W/tests_ignored.txt")"

# 2. The random-weight SD 1.5 folder (written by bench image), and bench image batch 1.
export PALLAIDIUM_HOME=$W/home
"$P" bench image --model sd15 --width 512 --height 512 --dtype f16 --device cuda --batch 1 --steps 20 \
  --runs 3 --warmup 1 --json >"$W/image_b1.json" 2>"$W/image_b1.err"
log "bench image b1 (and weights written): rc $? $(head -c 300 "$W/image_b1.json")"
M=$W/home/bench-models/sd15

# 3. diffusers' side, then our UNet against it.
D=$W/parity
python3 "$C/gpu_parity.py" prepare --model "$M" --out "$D" >"$D.prepare.txt" 2>&1
log "prepare: rc $? $(tail -n 2 "$D.prepare.txt")"
GPU_PARITY_DIR=$D GPU_PARITY_MODEL=$M "$T" --ignored unet_parity --nocapture >"$W/tests_unet_parity.txt" 2>&1
log "unet parity: $(grep '^test result' "$W/tests_unet_parity.txt")"

# 4. The whole image through the CLI, with our kernels and with candle's stock layers.
image() {
  local name=$1
  shift
  env "$@" "$P" --headless --json --device cuda --dtype f16 --model "$M" --prompt "a photograph of an astronaut riding a horse" \
    --steps 20 --guidance 7.5 --width 512 --height 512 --scheduler euler --seed 0 \
    --init-latents "$D/init_latents.npy" --out "$D/$name" >"$D/${name}_events.jsonl" 2>"$D/${name}.err"
  local png
  png=$(python3 -c "import json,sys; print(next(json.loads(l)['outputs'][0] for l in open(sys.argv[1]) if l.startswith('{') and json.loads(l).get('event')=='done'))" "$D/${name}_events.jsonl")
  cp "$png" "$D/${name}.png"
  "$P" info --json "$png" >"$D/${name}_info.json" 2>&1
  python3 "$C/gpu_parity.py" compare --out "$D" --ours "$png" --name "$name" >"$D/${name}_compare.txt" 2>&1
  log "image $name: rc $? $(cat "$D/${name}_compare.txt")"
}
image ours
image stock PALLAIDIUM_STOCK_KERNELS=1

# 5. Benchmarks while time is left (both tools, same machine, same call).
bench() {
  local name=$1
  shift
  if [ "$(elapsed)" -gt "$BUDGET_S" ]; then
    log "skipped $name (time)"
    return
  fi
  "$@" >"$W/$name.json" 2>"$W/$name.err"
  log "$name: rc $? $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: d.get(k) for k in ('median_s','min_s','peak_bytes','switches')})" "$W/$name.json" 2>&1 | tail -n 1)"
}
S="--model sd15 --width 512 --height 512 --dtype f16 --device cuda"
BD="python3 $C/bench_diffusers.py image $S --steps 20 --runs 3 --warmup 1 --json"
bench dimage_b1 $BD --batch 1
bench image_b4 "$P" bench image $S --batch 4 --steps 20 --runs 3 --warmup 1 --json
bench dimage_b4 $BD --batch 4
bench dimage_b4_slicing $BD --batch 4 --vae-slicing
bench dimage_b4_stages $BD --batch 4 --vae-slicing --stages
bench dimage_b1_stages $BD --batch 1 --stages
bench unet_b2 "$P" bench unet $S --batch 2 --runs 10 --warmup 3 --json
bench dunet_b2 python3 "$C/bench_diffusers.py" unet $S --batch 2 --runs 10 --warmup 3 --json
bench unet_b8 "$P" bench unet $S --batch 8 --runs 10 --warmup 3 --json
bench dunet_b8 python3 "$C/bench_diffusers.py" unet $S --batch 8 --runs 10 --warmup 3 --json

cp "$W/summary.txt" "$OUT/summary.txt"
(cd "$W" && tar czf "$OUT/results.tgz" --exclude='*.npy' --exclude='*.safetensors' --exclude=home \
  --exclude=pallaidium --exclude=libtests --exclude='*.jsonl.tmp' .)
log "done"
cat "$W/summary.txt"
