#!/usr/bin/env bash
# Planner calibration (issues 6 and 7): the memory plan's predicted peak against the measured peak RSS
# of a real one-step headless run, for the full-size SD 1.5 architecture with random weights on the CPU.
# Usage: scripts/calibrate_planner.sh [BINARY] (default target/release/pallaidium)
# Needs PALLAIDIUM_HOME/bench-models/sd15 (written by `pallaidium bench image --model sd15`).
# CONFIGS overrides the runs, as SIZE:RESIDENCY:TILING words (the default peaks at 7.3 GiB measured,
# 8.5 GiB planned: 1024x1024 untiled resident; on 2 cores the whole set takes about 25 minutes).
set -euo pipefail
bin=${1:-target/release/pallaidium}
home=${PALLAIDIUM_HOME:?set PALLAIDIUM_HOME to the folder holding bench-models/}
model=$home/bench-models/sd15
[ -f "$model/model_index.json" ] || { echo "no $model: run '$bin bench image --model sd15' first" >&2; exit 2; }
configs=${CONFIGS:-"256:resident:off 256:staged:off 512:resident:off 512:staged:off 768:resident:off 768:staged:off 1024:resident:off 1024:resident:on 1024:staged:off"}
printf '| size | residency | VAE tiling | predicted peak (stage) | measured peak (VmHWM) | predicted / measured |\n|---|---|---|---|---|---|\n'
for cfg in $configs; do
  IFS=: read -r size residency tiling <<< "$cfg"
  common=(--device cpu --dtype f32 --model "$model" --prompt "calibration" --width "$size" --height "$size"
          --steps 1 --residency "$residency" --attention-slicing auto --vae-tiling "$tiling")
  plan=$("$bin" "${common[@]}" --plan --json)
  predicted=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["peak_bytes"])' "$plan")
  stage=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["breakdown"]["peak_stage"])' "$plan")
  log=$(mktemp)
  /usr/bin/time -v "$bin" --headless --json --out "$home/calibration-out" "${common[@]}" >/dev/null 2>"$log"
  kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$log")
  measured=$((kib * 1024))
  python3 -c "p,m=$predicted,$measured; print(f'| {$size}x{$size} | $residency | $tiling | {p/2**30:.2f} GiB ($stage) | {m/2**30:.2f} GiB | {p/m:.2f} |')"
  rm -f "$log"
done
