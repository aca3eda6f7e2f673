#!/usr/bin/env bash
# Planner calibration (issue 6): the memory plan's predicted peak against the measured peak RSS of
# a real one-step headless run, for the full-size SD 1.5 architecture with random weights on the CPU.
# Usage: scripts/calibrate_planner.sh [BINARY] (default target/release/pallaidium)
# Needs PALLAIDIUM_HOME/bench-models/sd15 (written by `pallaidium bench image --model sd15`).
set -euo pipefail
bin=${1:-target/release/pallaidium}
home=${PALLAIDIUM_HOME:?set PALLAIDIUM_HOME to the folder holding bench-models/}
model=$home/bench-models/sd15
[ -f "$model/model_index.json" ] || { echo "no $model: run '$bin bench image --model sd15' first" >&2; exit 2; }
printf '| size | residency | predicted peak | measured peak (VmHWM) | predicted / measured |\n|---|---|---|---|---|\n'
for size in 256 512; do
  for residency in resident staged; do
    common=(--device cpu --dtype f32 --model "$model" --prompt "calibration" --width "$size" --height "$size"
            --steps 1 --residency "$residency" --attention-slicing auto --vae-tiling off)
    predicted=$("$bin" "${common[@]}" --plan --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_bytes"])')
    log=$(mktemp)
    /usr/bin/time -v "$bin" --headless --json --out "$home/calibration-out" "${common[@]}" >/dev/null 2>"$log"
    kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$log")
    measured=$((kib * 1024))
    python3 -c "p,m=$predicted,$measured; print(f'| {$size}x{$size} | $residency | {p/2**30:.2f} GiB | {m/2**30:.2f} GiB | {p/m:.2f} |')"
    rm -f "$log"
  done
done
