"""Sample a grid of images from seeds.

Run:  python main.py --mode=generate --workdir=runs/generate
      python main.py --mode=generate --config.generator=ffhq.pkl --config.seeds=0-7 --config.truncation_psi=0.7
Expected runtime: a few seconds on CPU for the shapes generator; ~1 s per image at 1024 px on CPU.
Outputs: grid.png, images.npz (float32 NHWC `images`, `seeds`), latents.npy (N, num_ws, w_dim).
"""
from ml_collections import config_dict


def get_config():
    c = config_dict.ConfigDict()
    c.generator = "shapes"          # NVlabs .pkl, rosinality .pt, converted folder, or "shapes"
    c.seeds = "0-15"
    c.truncation_psi = 0.7
    c.truncation_cutoff = config_dict.placeholder(int)
    c.noise_mode = "const"          # const | random | none
    c.batch_size = 8
    c.grid_cols = 0                 # 0: square-ish grid
    return c
