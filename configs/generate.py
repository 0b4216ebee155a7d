"""Sample a grid of images from seeds.

Run:  python main.py --mode=generate --workdir=runs/generate        # shapes world: 16 samples, 5.3 s on a 2-core CPU
      (the shipped generator's samples: mask shape = the shape its z names on 96.5 % of seeds 0-255, README)
      python main.py --mode=generate --workdir=runs/ffhq --config.generator=ffhq.pkl --config.seeds=0-7
Outputs: grid.png, images.npz (float32 NHWC `images`, `seeds`), latents.npy (N, num_ws, w_dim).
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    # NVlabs .pkl, rosinality .pt, converted folder, or "shapes"
    c.generator = "shapes" if preset == "shapes" else config_dict.placeholder(str)
    c.seeds = "0-15"
    c.truncation_psi = 0.7
    c.truncation_cutoff = config_dict.placeholder(int)
    c.noise_mode = "const"          # const | random (each image's noise from its own seed) | none
    c.batch_size = 8                # images per call over all devices (fewer where the free memory says so)
    c.grid_cols = 0                 # 0: square-ish grid
    common.memory(c)
    return c
