#!/usr/bin/env bash
# Rebuild every shipped shapes-world model from scratch, in order, into styleclip_jax/assets/:
# generator (80 min budget), CLIP (26 min), the global-direction statistics and fs3
# sweep (a few minutes), and the inversion encoder. Each step resumes when rerun (training state in $STATE).
# The measured runtimes of this session are in each asset folder's TRAINING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${STATE:-/tmp/shapes_world_state}
ASSETS=styleclip_jax/assets
mkdir -p "$STATE"
export JAX_PLATFORMS=cpu

python scripts/train_shapes_generator.py --minutes 80 --channel-base 1024 --channel-max 64 --lr 3e-3 \
    --decisive-weight 8 --code-weight 1 --code-until 0.5 --ramp-start 0.75 --ramp-end 0.9 --eval-every 500 \
    --state "$STATE/generator.pkl" --out "$ASSETS/shapes_generator"

python scripts/train_shapes_clip.py --out "$ASSETS/shapes_clip" --ckpt "$STATE/clip.msgpack" \
    --patch 8 --vision-width 128 --vision-layers 2 --lr 5e-4 --budget-min 90 --steps 6000 --warm-steps 2000 \
    --logit-scale 100 --aug-p 0.75 --aug-blur 2.0 --aug-tint 0.1 --aug-halo 0.8 --aug-hue 0

# StyleSpace statistics + fs3 of the default global-direction config, written into the shipped folder
# (emptied first when the generator is newer: the statistics' file name does not name the generator, so old
# ones would be reused; a rerun after a kill during the sweep keeps its finished blocks and resumes)
GD="$ASSETS/shapes_global_direction"
if [ -d "$GD" ] && [ "$ASSETS/shapes_generator/manifest.json" -nt "$GD" ]; then rm -rf "$GD"; fi
python main.py --mode=global_direction_precompute --workdir="$STATE/fs3" \
    --config.cache_dir="$ASSETS/shapes_global_direction"
rm -rf "$ASSETS"/shapes_global_direction/*/blocks

# the inversion encoder, trained on samples of the new generator
python scripts/train_shapes_encoder.py --fresh --minutes 8 --state "$STATE/encoder.pkl" --out "$ASSETS/shapes_encoder"
