"""Apply trained latent mappers to latents or seeds: w_edit = w + 0.1 * alpha * M(w).

Run (after --mode=mapper_train --workdir=runs/mapper_green; 5.1 s on a 2-core CPU; seeds 0-7 at alpha 1: 8 of 8
green-dominant, mask IoU with the source 0.91-0.99):
    python main.py --mode=mapper_infer --workdir=runs/mapper_infer --config.mapper=runs/mapper_green/best/00
Several mappers (ours, converted, or official .pt) on a latents file, at a stronger step:
    python main.py --mode=mapper_infer --config=configs/mapper_infer.py:official --workdir=runs/infer \\
        --config.generator=stylegan2-ffhq-config-f.pt --config.mapper='["purple_hair.pt", "runs/mappers/best/01"]' \\
        --config.latents=test_faces.pt --config.alpha=1.5
Outputs: grid.png (rows: sources; columns: source | one edit per mapper), images.npz (`source` (N,H,W,3),
`edited` (P,N,H,W,3)), latents.npy (P, N, num_ws, w_dim) (styles.npz for StyleSpace mappers), metrics.json.
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    common.models(c, preset)
    c.clip_model = config_dict.placeholder(str)  # optional: CLIP similarity before/after in metrics.json
    c.mapper = config_dict.placeholder(str)     # a mapper folder / training workdir / official .pt, or a JSON list
    c.prompts = config_dict.placeholder(str)    # JSON list, one per mapper (default: each mapper's own prompt)
    common.sources(c, preset)
    c.alpha = 1.0                               # scales the 0.1 * M(w) step (0 = no edit)
    c.noise_mode = "const"
    c.batch_size = 16                           # images per call over all devices (fewer if memory says so)
    common.memory(c)
    return c
