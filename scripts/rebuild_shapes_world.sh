#!/usr/bin/env bash
# Rebuild every shipped shapes-world model from scratch, in order, into styleclip_jax/assets/:
# generator (45 + 30 min budgets), CLIP (6,000 steps: 17.3 min), the global-direction statistics and fs3
# sweep (1.7 min), and the inversion encoder (8 min budget, 9 min in all): about 105 min on 2 CPU cores.
# Each step resumes when rerun (training state in $STATE). Measured runtimes: each asset folder's TRAINING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${STATE:-/tmp/shapes_world_state}
ASSETS=styleclip_jax/assets
mkdir -p "$STATE"
export JAX_PLATFORMS=cpu

# generator, run 1: no edit samples (the squares are learnt here), run 2: edit samples, hue in one layer
python scripts/train_shapes_generator.py --minutes 45 --channel-base 1024 --channel-max 32 --lr 3e-3 \
    --decisive-weight 8 --code-weight 1 --code-until 1.0 --map-pretrain-steps 20000 --oracle-until 0.8 \
    --oracle-fade 0.2 --ramp-start 0.5 --ramp-end 0.65 --eval-every 500 --hue-code palette --palette-kappa 6 \
    --code-projection identity --code-channels --state "$STATE/generator_base.pkl" --out "$STATE/generator_base"
python scripts/train_shapes_generator.py --init "$STATE/generator_base" --minutes 30 --channel-base 1024 \
    --channel-max 32 --lr 1e-3 --decisive-weight 16 --code-weight 1 --code-until 1.0 --ramp-start 0 --ramp-end 0.01 \
    --eval-every 250 --hue-code palette --palette-kappa 6 --code-projection identity --code-channels \
    --hue-layer b16/conv1 --edit-prob 0.4 --edit-negative 2.0 0.3 --edit-far dark --free-noise 0.3 \
    --state "$STATE/generator.pkl" --out "$ASSETS/shapes_generator"

python scripts/train_shapes_clip.py --out "$ASSETS/shapes_clip" --ckpt "$STATE/clip.msgpack" \
    --patch 8 --vision-width 128 --vision-layers 2 --lr 5e-4 --budget-min 90 --steps 6000 --warm-steps 2000 \
    --logit-scale 100 --aug-p 0.75 --aug-blur 2.0 --aug-tint 0.1 --aug-halo 0.8 --aug-hue 0 \
    --spread 0.5 --aux-continuous 1 --aux-hue --soft-colour 20 0.2 50

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
