#!/usr/bin/env bash
# One run of the CPU FLUX.1 or Z-Image-Turbo benchmark (BENCHMARKS.md, FLUX.1 CPU and Z-Image CPU),
# under /usr/bin/time -v, with the load average before and after:
#
#   scripts/bench_flux_cpu_run.sh OUT_DIR NAME ours BIN FILES_DIR [MODE]
#   scripts/bench_flux_cpu_run.sh OUT_DIR NAME sdcpp PYTHON FILES_DIR
#
# ours: BIN bench transformer on FILES_DIR/flux1-schnell-Q4_K.gguf at 128x128, one timed run, no
# warm-up, CPU f32; MODE (quantized|repacked|dequant) sets PALLAIDIUM_GGUF_MATMUL, unset = the
# default. sdcpp: scripts/bench_flux_sdcpp.py with PYTHON (stable-diffusion-cpp-python's venv),
# 128x128, 2 threads, one run. Writes OUT_DIR/NAME.json (the bench's JSON), NAME.time.txt
# (time -v and the load averages) and, for sd.cpp, NAME.log (its log without progress bars).
# FAMILY=zimage (environment; default flux): FILES_DIR is bench_zimage_make_files.py's, ours runs
# --model z-image-turbo on z_image_turbo-Q4_K.gguf with --text-tokens 16 (sd.cpp's templated
# prompt's length), sd.cpp runs --family zimage.
set -euo pipefail
out=$1 name=$2 side=$3 exe=$4 files=$5 mode=${6:-}
family=${FAMILY:-flux}
case $family in
flux) model=(--model flux-schnell --gguf "$files/flux1-schnell-Q4_K.gguf") ;;
zimage) model=(--model z-image-turbo --gguf "$files/z_image_turbo-Q4_K.gguf" --text-tokens 16) ;;
*)
    echo "FAMILY: flux or zimage" >&2
    exit 2
    ;;
esac
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
time_txt="$out/$name.time.txt"
uptime > "$time_txt.before"
case $side in
ours)
    if [ -n "$mode" ]; then export PALLAIDIUM_GGUF_MATMUL=$mode; fi
    /usr/bin/time -v -o "$time_txt" "$exe" bench transformer "${model[@]}" \
        --width 128 --height 128 --runs 1 --warmup 0 --device cpu --dtype f32 --json > "$out/$name.json"
    ;;
sdcpp)
    /usr/bin/time -v -o "$time_txt" "$exe" "$here/bench_flux_sdcpp.py" "$files" --family "$family" --size 128 \
        --threads 2 --runs 1 --log "$out/$name.raw.log" > "$out/$name.json"
    # Progress bars are carriage-return lines: keep the rest.
    tr '\r' '\n' < "$out/$name.raw.log" | grep -v '|=*>* *|' > "$out/$name.log" || true
    rm -f "$out/$name.raw.log"
    ;;
*)
    echo "side: ours or sdcpp" >&2
    exit 2
    ;;
esac
{ cat "$time_txt.before"; uptime; } >> "$time_txt"
rm -f "$time_txt.before"
