"""Text-driven global directions in StyleSpace (StyleCLIP method 3): edit + batched studies.

Presets (`--config=configs/global_direction.py:PRESET`):
  shapes (default): the shipped offline world, its cached StyleSpace statistics and fs3; "a shape" -> "a red
  shape" at alpha 3, beta 0.1 on seeds 0-7. Measured (scripts/measure_shapes_edits.py --only quickstart): the 4
  non-red samples turn red with shape (IoU 0.84-0.94) and saturation (84-110 %) kept; alpha -3 takes the red
  share of the shape pixels from 0.49 to 0.00:
    python main.py --mode=global_direction --workdir=runs/gd          # ~10 s on a 2-core CPU
  A study (P targets x A alphas x B betas, one HTML page); the shapes world's colour and shape targets are
  measured over alphas 0.5-6 (each of the six colours reached from >= 76 % of the other colours' samples, each
  shape from >= 66 %):
    python main.py --mode=global_direction --workdir=runs/gd_study \\
        --config.targets='["a red shape", "a blue shape"]' --config.alphas='[-6, -3, 0, 3, 6]' --config.betas='[0.05, 0.1]'
  official: StyleCLIP's settings for real weights (OpenAI CLIP ViT-B/32, normalised CLIP input); the first
  run computes the statistics and the fs3 sweep and caches them next to the checkpoint (issue #7's target
  for the FFHQ sweep is <= 10 min on one H100: not measured, no device here):
    python main.py --mode=global_direction --config=configs/global_direction.py:official --workdir=runs/ffhq \\
        --config.generator=ffhq.pkl --config.neutral="a face" --config.target="a face with blue eyes" \\
        --config.alpha=4.1 --config.beta=0.15
An official StyleCLIP fs3.npy can be given with --config.fs3=PATH (the S statistics are recomputed).
Outputs: grid_pXX_bYY.png (rows: images, columns: source | alphas), index.html, images.npz (`source`
(N,H,W,3), `edited` (P,A,B,N,H,W,3)), metrics.json (per cell: CLIP similarity before/after, channels kept,
mean |alpha*ds|).
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    common.models(c, preset, clip_preprocess="official" if preset == "shapes" else "normalized")
    # the edit: one (neutral, target) pair, or a study through the list fields (JSON strings)
    common.global_edit(c, preset)
    c.targets = config_dict.placeholder(str)   # e.g. '["a red shape", "a blue shape"]' (all share `neutral`)
    c.alphas = config_dict.placeholder(str)    # e.g. '[-4, 0, 4]'
    c.betas = config_dict.placeholder(str)     # e.g. '[0.05, 0.1, 0.2]'
    common.sources(c, preset)
    common.precompute(c)
    return c
