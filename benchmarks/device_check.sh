#!/usr/bin/env bash
# Every GPU measurement the issues ask for, in ONE prepared run (its limits add up to 7 min; run 1 on an H100 took 233 s, its sweep failing early; timeout_s 500):
#   global-direction sweep at 1024 px: the library's channel_relevance (100 images, blocks of 16 channels,
#      images per call fitted to the free GPU memory), channel*images/s on the first layer and the full
#      6048-channel sweep estimated from it (target <= 10 min);
#   latent optimisation at 1024 px, batch 32 (target <= 1 s per 300-step edit), the library loop vs one jitted
#      step alone (target loop/step <= 1.05);
#   mapper training at 1024 px, batch 4 (target: 100k image-steps <= 15 min), loop vs step likewise;
#   plain synthesis throughput at batch 32.
# Each benchmark prints its rows as measured; logs go to $OUT. Earlier H100 runs (2026-11-27) and what went
# wrong in them (sweep out of memory beside the others, compile times): benchmarks/results/2026-11-27_h100/.
# The library needs nothing the device image lacks (native CLIP: no transformers; no ml_collections in the
# benchmarks). Optional: wheels carried in .whl/ (git-ignored) are installed first, e.g. a pinned optax:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .whl optax==0.2.8     (then carry [".whl"])
# Run with the device tool: command "bash benchmarks/device_check.sh", timeout_s 500.
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
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__)" \
  2>&1 | tee -a "$OUT/device.txt"

if [ "${SMOKE:-0}" = 1 ]; then
  run global_direction 300 benchmarks/global_direction.py --configs=256 --sweep-blocks=1 --sweep-images=2 \
      --precision=bfloat16
  run latent_optimization 300 benchmarks/latent_optimization.py --configs=256 --batches=1 --steps=2 --iters=1 \
      --precision=bfloat16 --no-scan
  run mapper 300 benchmarks/mapper.py --sizes=256 --batches=2 --iters=1 --infer-batches= --loop-steps=1 \
      --rounds=1 --precision=bfloat16
else
  # The three target benchmarks start together so that their XLA compilations (one to two minutes each at
  # 1024 px on the 16-core host) overlap; $BENCH_LOCK makes their timed sections take the GPU one at a
  # time. Each process gets a fixed slice of GPU memory sized from XLA's memory analysis
  # (benchmarks/memory_1024.py, CPU compile): latent optimisation 2.10 GiB + 1.58 GiB per pair (bf16 convs)
  # -> 51 GiB at 32 pairs; mapper step 2.21 GiB + 1.54 GiB per image -> 6.8 GiB at batch 4; the library
  # sweep fits its images per call to what its slice leaves free (16 channels x 1 image: 8.9 GiB).
  export BENCH_LOCK=/tmp/bench.lock
  want() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }  # ONLY=sweep,mapper: just those
  want lo && XLA_PYTHON_CLIENT_MEM_FRACTION=${LO_MEM:-0.70} run latent_optimization "${LIMIT:-360}" \
      benchmarks/latent_optimization.py --configs=1024 --batches=32 --steps=6 --rounds=3 --no-scan --no-optimize \
      --precision=bfloat16 &
  # the sweep's probe compiles autotune cuDNN convolutions with up to 4 GiB of workspace each: a 12 GiB slice
  # ran out of memory there (run 1), hence SWEEP_MEM 0.70 when run beside the mapper alone (ONLY=sweep,mapper)
  want sweep && XLA_PYTHON_CLIENT_MEM_FRACTION=${SWEEP_MEM:-0.15} run global_direction "${LIMIT:-360}" \
      benchmarks/global_direction.py --configs=1024 --sweep-blocks=2 --precision=bfloat16 &
  want mapper && XLA_PYTHON_CLIENT_MEM_FRACTION=${MAPPER_MEM:-0.10} run mapper "${LIMIT:-360}" benchmarks/mapper.py \
      --sizes=1024 --batches=4 --iters=10 --infer-batches= --loop-steps=10 --rounds=3 --precision=bfloat16 &
  wait
  # then, alone on the GPU: plain synthesis throughput
  want generator && run generator 50 benchmarks/generator.py --configs=1024 --batches=32 --iters=5 --precision=default
fi
echo "logs in $OUT"
