#!/usr/bin/env bash
# One short call on a lent CUDA machine (no network there: portproof and greenlet travel as wheels in .whl/,
# the machine's own torch, timm and onnxruntime are used; weights are seeded random, since no hub is reachable):
#   1. the CUDA-touching unit tests;
#   2. `portproof check` of vit_tiny on cuda in fp32, tf32, bf16 and fp16 with the layer pass;
#   3. benchmarks/tune.py on cuda at batch 1: tune's grid (eager and compile, with torch.compile's CUDA-graph and
#      max-autotune modes on the fastest passing compile configuration), then the fastest candidates timed by
#      hand in clean processes, synchronised after each call.
# Everything it prints also lands in $OUT (logs, and runs-STEP.tgz with each run's files).
# Usage: benchmarks/cuda.sh [check|tune|all]   (check: steps 1 and 2; tune: step 3; default all)
# Build the wheels here first:  pip wheel --no-deps -w .whl .  and greenlet's cp312 wheel (see the device README).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/portproof-cuda}
RUNS=/tmp/portproof-runs
mkdir -p "$OUT" "$RUNS"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
STEP=${1:-all}
save() { tar czf "$OUT/runs-$1.tgz" -C "$RUNS" . ; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
python3 -c "import torch, timm, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(), '| timm', timm.__version__, '| onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
python3 -m portproof env 2>&1 | tee "$OUT/env.txt"

if [ "$STEP" != tune ]; then
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/backends/test_torch_eager.py tests/backends/test_torch_compile.py 2>&1 | tail -5

timeout 150 python3 -m portproof check vit_tiny_patch16_224 --offline --target cuda --target cuda/tf32 \
    --target cuda/bf16 --target cuda/fp16 --layers --out "$RUNS/check" 2>&1 | tee "$OUT/check.txt" | tail -40
echo "check exit ${PIPESTATUS[0]}"
save check
fi

[ "$STEP" = check ] && exit 0

timeout "${TUNE_TIMEOUT:-330}" python3 benchmarks/tune.py --device cuda --hand-top 3 --iters 200 --warmup 50 \
    --budget "${TUNE_BUDGET:-240}" --out "$RUNS/tune" -- --dtypes fp32,tf32,bf16,fp16 --iters 200 --warmup 50 2>&1 \
    | tee "$OUT/tune.txt"
echo "tune exit ${PIPESTATUS[0]}"
save tune
