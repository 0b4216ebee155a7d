#!/usr/bin/env bash
# Every GPU measurement the issues ask for, in ONE prepared run (time limit $LIMIT, default 240 s, for
# all three running side by side):
#   #7 global-direction sweep at 1024 px: channel*images/s, bfloat16 and float32 (+ their agreement),
#      extrapolated full 6048 x 100 sweep time (target <= 10 min);
#   #5 latent optimisation at 1024 px (target <= 1 s per 300-step edit at batch 32; batch 8 here);
#   #6 mapper training at 1024 px (target: 100k image-steps <= 15 min; batch 4 here).
# H100 runs, 2026-11-27 (logs in benchmarks/results/2026-11-27_h100/): run 1 (sequential, batch 32) finished
# only the generator (143 img/s at batch 32, TF32, compile 42 s): the others spent their limits compiling,
# building the CLIP with its jitted init (105 s; now filled on the host) and, for the sweep, needing 56 GB
# for 4 x 8 x 2 renders (XLA's CPU analysis said 19 GB). Run 2 (this parallel layout, on-demand memory)
# measured latent optimisation (batch 8) and the mapper (batch 4); the sweep ran out of memory beside them.
# Hence fixed memory slices per process now (XLA_PYTHON_CLIENT_MEM_FRACTION; not yet run this way).
# Since then the FIR of every up-sampling step runs as two 1-D passes instead of a depthwise conv (2.6x
# faster synthesis on CPU), so the H100 figures above are from before that change; and latent optimisation
# and mapper training run here with bfloat16 generator convolutions (f32 accumulation; their TF32 figures
# are in the logs above), the sweep in both precisions.
# Each benchmark prints its rows as measured, with XLA's GFLOP beside a conv model count and the fraction of
# device peak from the model count; logs go to $OUT.
#
# Prepare once on a machine with internet (the device image ships transformers 5, which has no Flax
# CLIP, and no ml_collections):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .whl transformers==4.57.6 tokenizers==0.22.1 \
#       huggingface_hub==0.36.0 ml_collections
# Run with the device tool: command "bash benchmarks/device_check.sh", carry [".whl"], timeout_s 600.
# Check the flags on CPU first (tiny sizes, ~3 min on 2 cores): SMOKE=1 bash benchmarks/device_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.92

run() {  # run NAME SECONDS script args...: one benchmark, bounded, logged to $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "=== $name: python3 $* (limit ${limit}s)" | tee "$OUT/$name.txt"
  timeout "$limit" python3 "$@" 2>&1 | tee -a "$OUT/$name.txt"
  echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}

(nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi") | tee "$OUT/device.txt"
python3 -c "import jax, flax, optax, transformers; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'transformers', transformers.__version__)" \
  2>&1 | tee -a "$OUT/device.txt"

if [ "${SMOKE:-0}" = 1 ]; then
  run global_direction 300 benchmarks/global_direction.py --configs=256 --block=2 --images=2 --layers=0,17 \
      --precision=float32,bfloat16 --iters=1
  run latent_optimization 300 benchmarks/latent_optimization.py --configs=256 --batches=1 --steps=2 --iters=1 \
      --precision=bfloat16
  run mapper 300 benchmarks/mapper.py --sizes=256 --batches=2 --iters=1 --infer-batches=1 --precision=bfloat16
  run generator 300 benchmarks/generator.py --configs=256 --batches=1 --iters=1
  run ops 300 benchmarks/ops.py --configs=256 --batch=1 --iters=1
else
  # The three target benchmarks start together so that their XLA compilations (tens of seconds each at
  # 1024 px on the 16-core host) overlap; $BENCH_LOCK makes their timed sections take the GPU one at a
  # time; each process gets a fixed slice of GPU memory (the sweep call needs 19 GB on the GPU).
  export BENCH_LOCK=/tmp/bench.lock
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.34 run global_direction "${LIMIT:-240}" benchmarks/global_direction.py \
      --configs=1024 --block=2 --images=4 --layers=0 --precision=bfloat16,float32 --iters=3 &
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.34 run latent_optimization "${LIMIT:-240}" benchmarks/latent_optimization.py \
      --configs=1024 --batches=8,4 --steps=10 --iters=2 --precision=bfloat16 &
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.26 run mapper "${LIMIT:-240}" benchmarks/mapper.py --sizes=1024 --batches=4 \
      --iters=5 --infer-batches= --precision=bfloat16 &
  wait
  # then, alone on the GPU: the generator and where its time goes, op by op
  run generator 60 benchmarks/generator.py --configs=1024 --batches=32 --iters=5 --precision=default
  run ops 90 benchmarks/ops.py --configs=1024 --batch=8 --iters=3 --precision=default
fi
echo "logs in $OUT"
