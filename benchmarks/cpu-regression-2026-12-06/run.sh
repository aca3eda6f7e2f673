#!/usr/bin/env bash
# Issue 18's "CPU UNet step and image times do not regress": the release binary before the
# architecture work (b771718) and after it (364fe9f), alternating, same machine, same hour.
# Usage: run.sh OLD_BINARY NEW_BINARY OUT_DIR
set -uo pipefail
OLD=$1 NEW=$2 OUT=$3
export PALLAIDIUM_HOME=${PALLAIDIUM_HOME:-/work/calib-regress}
U="bench unet --model sd15 --width 512 --height 512 --batch 2 --dtype f32 --device cpu --runs 2 --warmup 1 --json"
I="bench image --model sd15 --width 512 --height 512 --batch 1 --steps 2 --runs 2 --warmup 1 --dtype f32 --device cpu --json"
# The image bench writes its random-weight folder once (untimed); do that first.
"$NEW" bench image --model sd15 --width 64 --height 64 --batch 1 --steps 1 --runs 1 --warmup 0 --dtype f32 --device cpu --json >/dev/null 2>&1
for round in 1 2; do
  for side in old new; do
    bin=$OLD; [ "$side" = new ] && bin=$NEW
    uptime >>"$OUT/uptime.txt"
    $bin $U >"$OUT/unet_${side}_${round}.json" 2>"$OUT/unet_${side}_${round}.err"
  done
done
for round in 1 2; do
  for side in old new; do
    bin=$OLD; [ "$side" = new ] && bin=$NEW
    uptime >>"$OUT/uptime.txt"
    $bin $I >"$OUT/image_${side}_${round}.json" 2>"$OUT/image_${side}_${round}.err"
  done
done
uptime >>"$OUT/uptime.txt"
