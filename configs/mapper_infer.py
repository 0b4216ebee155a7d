"""Apply trained latent mappers to latents or seeds: w_edit = w + 0.1 * alpha * M(w).

Run (after --mode=mapper_train --workdir=runs/mapper_green):
    python main.py --mode=mapper_infer --workdir=runs/mapper_infer --config.mapper=runs/mapper_green/best/00
Several mappers (ours, converted, or official .pt) on a latents file, at a stronger step:
    python main.py --mode=mapper_infer --workdir=runs/infer --config.generator=stylegan2-ffhq-config-f.pt \
        --config.mapper='["purple_hair.pt", "runs/mappers/best/01"]' --config.latents=test_faces.pt --config.alpha=1.5
Expected runtime: seconds on CPU for the shapes world; ~0.1-1 s per image at 1024 px on CPU.
Outputs: grid.png (rows: sources; columns: source | one edit per mapper), images.npz (`source` (N,H,W,3),
`edited` (P,N,H,W,3)), latents.npy (P, N, num_ws, w_dim) (styles.npz for StyleSpace mappers), metrics.json.
"""
from ml_collections import config_dict


def get_config():
    c = config_dict.ConfigDict()
    c.generator = "shapes"
    c.mapper = config_dict.placeholder(str)     # a mapper folder / training workdir / official .pt, or a JSON list
    c.latents = config_dict.placeholder(str)    # W+ latents file (.npy/.npz/.pt) ...
    c.seeds = "0-7"                             # ... or seeds mapped with truncation_psi
    c.truncation_psi = 0.7
    c.alpha = 1.0                               # scales the 0.1 * M(w) step (0 = no edit)
    c.noise_mode = "const"
    c.batch_size = 16
    c.clip_model = config_dict.placeholder(str)  # optional: CLIP similarity before/after in metrics.json
    c.clip_preprocess = "official"
    c.prompts = config_dict.placeholder(str)    # JSON list, one per mapper (default: each mapper's own prompt)
    return c
