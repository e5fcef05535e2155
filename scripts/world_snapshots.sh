#!/bin/bash
# scripts/world_snapshots.sh — choosing the embedded default's checkpoint: train the world model on a lent GPU
# keeping snapshots, bring them back, and measure how much CFG adds over unguided sampling at each one.
#
#   scripts/world_snapshots.sh train BUNDLE_DIR OUT SECONDS KEEP RUN:ARGS [RUN:ARGS ...]   (on the GPU machine)
#       Runs `dice train-base --device cuda --keep-every KEEP` for every RUN at once (a model this small leaves
#       an H100 launch-bound, so several runs share it almost for free), each stopped after SECONDS, with ARGS
#       added (e.g. "gC:--from-scratch --seed 0 --batch 128"); then packs the snapshots (f16 weights and
#       configs, 4.5 MB each) three to a file as OUT/snapshots-NN.tar, with the runs' logs and loss.csv: the
#       device tool brings back 8 files of 16 MiB at most, so keep at most ~18 snapshots in all. BUNDLE_DIR
#       holds scripts/bundle_gpu.sh's output.
#   scripts/world_snapshots.sh eval TAR [TAR ...]                                         (here, on the CPU)
#       Unpacks the TARs into runs/ and runs `dice demo --base-only` on every snapshot in them (the demo's
#       unguided and CFG rows, on its prompts and seeds), printing a line per snapshot: mean attribute and
#       whole-caption accuracy, unguided -> CFG. 1.5-2.5 minutes a snapshot on 2 cores. It samples the demo's
#       draw --seed 1 (other prompts and noise than `make demo`'s seed 0), so that the table of the chosen
#       checkpoint is not measured on the draw it was chosen by; 32 prompts x 4 seeds (the demo's 128 images, with
#       less of the prompt-to-prompt variance than its 16 x 8).
#   scripts/world_snapshots.sh eval-dir DIR [DIR ...]                                     (here, on the CPU)
#       The same for pipeline folders already here (e.g. runs/NAME/step-NNNNNN of a CPU run).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: see the top of scripts/world_snapshots.sh" >&2; exit 2; }
mode=${1:-}
[ $# -ge 2 ] || usage
shift
if [ "$mode" = train ]; then
    [ $# -ge 5 ] || usage
    bundle=$1 seconds=$3 keep=$4
    out=$(mkdir -p "$2" && cd "$2" && pwd)
    shift 4
    mkdir -p runs
    "$bundle/run.sh" build/dice help > /dev/null 2>&1 || true  # unpacks the bundle
    for spec in "$@"; do
        name=${spec%%:*} args=${spec#*:}
        # shellcheck disable=SC2086  # ARGS are words
        OMP_NUM_THREADS=3 timeout "$seconds" "$bundle/run.sh" build/dice train-base --device cuda \
            --model assets/dice-world --out "runs/$name" --steps 1000000 --save-every 1000 --keep-every "$keep" \
            $args > "runs/$name.log" 2>&1 &
    done
    wait || true
    snaps=() extra=()
    for spec in "$@"; do
        name=${spec%%:*}
        tail -2 "runs/$name.log"
        extra+=("$name.log" "$name/loss.csv")
        for s in runs/"$name"/step-*; do [ -d "$s" ] && snaps+=("${s#runs/}"); done
    done
    for ((i = 0; i * 3 < ${#snaps[@]} || i == 0; i++)); do
        part=("${snaps[@]:i*3:3}")
        [ "$i" = 0 ] && part+=("${extra[@]}")
        (cd runs && tar cf "$out/snapshots-$(printf %02d "$i").tar" "${part[@]}")
    done
    ls -la "$out"
elif [ "$mode" = eval ] || [ "$mode" = eval-dir ]; then
    measure() {  # DIR: one line, unguided -> CFG
        "${DICE_BIN:-build/dice}" demo --base-only --seed 1 --prompts 32 --seeds 4 --real 64 --model "$1" \
            --out "$1/eval" --quiet > "$1/eval.log" 2>&1 || { echo "$1: dice demo failed ($1/eval.log)"; return 0; }
        awk -F'|' -v snap="$1" '
            $2 ~ /unguided/ {ua = $7 + 0; uc = $5 + 0} $2 ~ /CFG/ {ca = $7 + 0; cc = $5 + 0}
            END {printf "%s: attributes %.1f -> %.1f (CFG), whole captions %.1f -> %.1f\n", snap, ua, ca, uc, cc}' \
            "$1/eval/table.md"
    }
    if [ "$mode" = eval-dir ]; then
        for dir in "$@"; do measure "${dir%/}"; done
        exit 0
    fi
    mkdir -p runs
    for tar in "$@"; do
        tar xf "$tar" -C runs
        for snap in $(tar tf "$tar" | sed -n 's|^\([^/]*/step-[0-9]*\)/.*|\1|p' | sort -u); do
            measure "runs/$snap"
        done
    done
else
    usage
fi
