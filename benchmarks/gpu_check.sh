#!/usr/bin/env bash
# The GPU checks of issue 25, in one go, for a session that is lent a GPU for a few minutes.
#
#   OUT=/some/folder PYTHON=python3 bash benchmarks/gpu_check.sh        # from the repository root
#
# Steps (each bounded by what is left of BUDGET seconds, default 540; a step that runs out is cut and noted):
#   1. environment: nvidia-smi, torch, CUDA
#   2. the GPU-marked tests: pytest -m gpu
#   3. pconv bench --device cuda: batch-1 latency (eager and CUDA graph, fp32 and bf16) and batch-64 bf16
#      throughput (eager, channels_last, torch.compile), each against the plain-conv floor in the same run
#   4. pconv inpaint on a generated folder of 512x512 images: one process on cuda vs torchrun with 2 ranks
#      (cuda:LOCAL_RANK with 2 GPUs, both on cuda:0 with one); images/s and whether the files are byte-identical
#   5. a short training run (paper network, 256x256 crops, bf16 autocast, 60 steps): steps/s
# Everything goes under $OUT; $OUT/GPU_RESULTS.md sums it up for benchmarks/RESULTS.md.
# Needs no network and no data folder: the images are generated.
# CPU_SMOKE=1 runs the same steps on the CPU with tiny sizes (seconds, figures meaningless): a check of the script.
set -u
OUT=${OUT:?set OUT to the folder for the results}
PYTHON=${PYTHON:-python3}
BUDGET=${BUDGET:-540}
DEADLINE=$((SECONDS + BUDGET))
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
SUMMARY="$OUT/GPU_RESULTS.md"
WORK=$(mktemp -d)
if [ "${CPU_SMOKE:-0}" = 1 ]; then
    export OMP_NUM_THREADS=1 # a small shared CPU: no oversubscription
    DEV=cpu NIMG=8 SIDE=64 CROP=64 BATCH=4 STEPS=(--phase1.steps=2 --phase2.steps=1) SMALL=(--model.depth=4 --model.width=0.125)
    BENCH=(--device cpu --quick --repeats 1 --no-onnx)
else
    DEV=cuda NIMG=256 SIDE=512 CROP=256 BATCH=16 STEPS=(--phase1.steps=50 --phase2.steps=10) SMALL=(--model.depth=7 --model.width=1.0)
    BENCH=(--device cuda --repeats 5 --no-onnx)
fi

left() { echo $((DEADLINE - SECONDS)); }

# step NAME CAP_SECONDS COMMAND...: run with a timeout of min(CAP, time left), log to $OUT/NAME.log
step() {
    local name=$1 cap=$2
    shift 2
    local limit=$(($(left) < cap ? $(left) : cap))
    if ((limit < 10)); then
        echo "- $name: not run (budget spent)" >>"$SUMMARY"
        return 124
    fi
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "- $name: exit $rc in $((SECONDS - start)) s$([ $rc -eq 124 ] && echo ' (cut at the time limit)') (log: $name.log)" >>"$SUMMARY"
    tail -n 3 "$OUT/$name.log"
    return $rc
}

{
    echo "# GPU checks ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Command: \`OUT=... bash benchmarks/gpu_check.sh\` (budget ${BUDGET} s); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
} >"$SUMMARY"

# 1. environment ------------------------------------------------------------------------------------------------
step env 30 bash -c "nvidia-smi; $PYTHON -c 'import torch, numpy, PIL; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"gpus\", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"NO CUDA\")'"
if [ "$DEV" = cuda ] && ! $PYTHON -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    echo "- CUDA is not available: nothing else ran" >>"$SUMMARY"
    exit 1
fi

# 2. GPU-marked tests -------------------------------------------------------------------------------------------
step pytest_gpu 150 $PYTHON -m pytest -q -m gpu -p no:cacheprovider tests

# 3. pconv bench --device cuda ----------------------------------------------------------------------------------
if ! step bench 220 $PYTHON -m pconv bench "${BENCH[@]}" --output-dir "$OUT/bench"; then
    step bench_no_compile 90 $PYTHON -m pconv bench "${BENCH[@]}" --output-dir "$OUT/bench" --no-compile --overwrite
fi

# 4. pconv inpaint: one process vs torchrun with 2 ranks ---------------------------------------------------------
$PYTHON - "$WORK" "$NIMG" "$SIDE" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

work, count, side = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
(work / "images").mkdir()
(work / "masks").mkdir()
rng = np.random.default_rng(0)
for i in range(count):
    small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # smooth "photos": upscaled noise
    Image.fromarray(small).resize((side, side), Image.BICUBIC).save(work / "images" / f"{i:04d}.jpg", quality=95)
    hole = np.zeros((side, side), np.uint8)
    y, x = rng.integers(0, side * 3 // 4, 2)
    hole[y : y + side // 4, x : x + side // 4] = 255
    Image.fromarray(hole).save(work / "masks" / f"{i:04d}.png")
EOF
GPUS=$($PYTHON -c 'import torch; print(torch.cuda.device_count())')
DEVICE_FOR_TWO=$([ "$DEV" = cpu ] && echo "--device cpu" || ([ "$GPUS" -ge 2 ] && echo "" || echo "--device cuda:0"))
INPAINT=(inpaint --image "$WORK/images" --mask "$WORK/masks" --device "$DEV" --batch-size "$BATCH")
timed() { # timed NAME COMMAND...: wall seconds into $OUT/NAME.seconds
    local name=$1
    shift
    local start=$(date +%s.%N)
    step "$name" 150 "$@" && $PYTHON -c "print(f'{$(date +%s.%N) - $start:.1f}')" >"$OUT/$name.seconds"
}
timed inpaint_1proc $PYTHON -m pconv "${INPAINT[@]}" --output "$WORK/one"
timed inpaint_torchrun2 $PYTHON -m torch.distributed.run --standalone --nproc_per_node=2 -m pconv inpaint \
    --image "$WORK/images" --mask "$WORK/masks" --batch-size "$BATCH" --output "$WORK/two" $DEVICE_FOR_TWO
{
    echo
    echo "## pconv inpaint, $NIMG generated ${SIDE}x$SIDE JPEGs, shipped model, 4 passes (default), --batch-size $BATCH, $DEV"
    echo
    echo "| run | wall s (start-up and model load included) | images/s |"
    echo "|---|---:|---:|"
    for run in inpaint_1proc inpaint_torchrun2; do
        if [ -f "$OUT/$run.seconds" ]; then
            s=$(cat "$OUT/$run.seconds")
            echo "| $run | $s | $($PYTHON -c "print(f'{$NIMG / $s:.1f}')") |"
        fi
    done
    echo
    if [ -d "$WORK/one" ] && [ -d "$WORK/two" ] && diff -rq "$WORK/one" "$WORK/two" >/dev/null; then
        echo "Files of the 2-rank run byte-identical to the one-process run: yes ($(ls "$WORK/two" | wc -l) files; 2 ranks on ${DEVICE_FOR_TWO:-cuda:LOCAL_RANK})"
    else
        echo "Files of the 2-rank run byte-identical to the one-process run: **no** (or a run did not finish)"
    fi
} >>"$SUMMARY"

# 5. a short training run ---------------------------------------------------------------------------------------
mkdir -p "$WORK/train_photos"
cp "$WORK"/images/000?.jpg "$WORK/train_photos/"
step train 120 $PYTHON -m pconv train --config configs/tiny.yaml --data.train_root="$WORK/train_photos" \
    --train.out_dir="$WORK/run" --train.device="$DEV" --train.precision="$([ "$DEV" = cuda ] && echo bf16 || echo fp32)" \
    "${SMALL[@]}" --data.crop_size="$CROP" --data.batch_size=8 --data.num_workers=2 "${STEPS[@]}" \
    --train.log_every=10 --train.ckpt_every=1000
{
    echo
    echo "## Short training run (${SMALL[*]}, ${CROP}x$CROP crops, batch 8, ${STEPS[*]}, $DEV, no VGG terms)"
    echo
    echo '```'
    tail -n 8 "$OUT/train.log" 2>/dev/null
    echo '```'
    if [ -f "$OUT/bench/RESULTS.md" ]; then
        echo
        echo "## pconv bench ${BENCH[*]} (its RESULTS.md)"
        echo
        cat "$OUT/bench/RESULTS.md"
    fi
    echo
    echo "Total: $((SECONDS)) s of a ${BUDGET} s budget."
} >>"$SUMMARY"
rm -rf "$WORK"
echo "wrote $SUMMARY"
