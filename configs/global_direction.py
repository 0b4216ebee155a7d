"""Text-driven global directions in StyleSpace (StyleCLIP method 3): edit + batched studies.

Run (offline shapes world; uses the shipped StyleSpace stats and fs3, ~10 s on a 2-core CPU):
    python main.py --mode=global_direction --workdir=runs/gd
A study (P targets x A alphas x B betas, one HTML page):
    python main.py --mode=global_direction --workdir=runs/gd_study \
        --config.targets='["a red shape", "a blue shape"]' --config.alphas='[-6, -3, 0, 3, 6]' --config.betas='[0.05, 0.1]'
Real FFHQ weights (the first run computes stats + the fs3 sweep and caches them; issue #7's target for the
sweep is <= 10 min on one H100, not yet measured):
    python main.py --mode=global_direction --workdir=runs/ffhq --config.generator=ffhq.pkl \
        --config.clip_model=openai/clip-vit-base-patch32 --config.neutral="a face" \
        --config.target="a face with blue eyes" --config.alpha=4.1 --config.beta=0.15 --config.seeds=0-7
An official StyleCLIP fs3.npy (and its S statistics are recomputed) can be given with --config.fs3=PATH.
Outputs: grid_pXX_bYY.png (rows: images, columns: alphas), index.html, images.npz (`source` (N,H,W,3),
`edited` (P,A,B,N,H,W,3)), metrics.json (per cell: CLIP similarity before/after, channels kept, mean |alpha*ds|).
"""
from ml_collections import config_dict


def get_config():
    c = config_dict.ConfigDict()
    c.generator = "shapes"
    c.clip_model = "shapes"
    c.clip_preprocess = config_dict.placeholder(str)  # default: official (shapes) / normalized (real CLIP)
    c.arcface = config_dict.placeholder(str)          # identity similarity in metrics when given
    # edit: one (neutral, target) pair, or a study via the list fields (JSON strings)
    c.neutral = "a shape"
    c.target = "a red shape"
    c.targets = config_dict.placeholder(str)   # e.g. '["a red shape", "a blue shape"]' (all share `neutral`)
    c.alpha = 1.0                  # shapes world; FFHQ edits typically use 2-5 (e.g. 4.1)
    c.alphas = config_dict.placeholder(str)    # e.g. '[-4, 0, 4]'
    c.beta = 0.1
    c.betas = config_dict.placeholder(str)     # e.g. '[0.05, 0.1, 0.2]'
    # images
    c.seeds = "0-7"
    c.latents = config_dict.placeholder(str)   # W+ file (.npy/.npz/.pt), e.g. StyleCLIP's w_plus.npy
    c.truncation_psi = 0.7
    # precomputation (cached next to the checkpoint, or in cache_dir)
    c.fs3 = config_dict.placeholder(str)       # use this fs3 .npy instead of the cached sweep
    c.cache_dir = config_dict.placeholder(str)
    c.stats_samples = 100_000
    c.stats_seed = 5
    c.stats_truncation_psi = 0.7
    c.stats_truncation_cutoff = 8
    c.sweep_images = 100
    c.sweep_alpha = 5.0
    c.sweep_max_resolution = config_dict.placeholder(int)  # official torch script: 128
    c.sweep_block_size = 16
    c.sweep_image_batch = config_dict.placeholder(int)
    c.sweep_precision = "float32"              # float32 | bfloat16
    return c
