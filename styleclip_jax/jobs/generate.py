"""`--mode=generate`: sample images from seeds and write a PNG grid and images.npz."""
from __future__ import annotations

import math
import pathlib

import numpy as np

from . import outputs as io_utils
from ..errors import ConfigError
from ..models.generator import seeds_to_z

NOISE_MODES = ("const", "random", "none")


def validate(config) -> None:
    if config.generator is None:
        raise ConfigError("--config.generator is required with this preset (an NVlabs .pkl, a rosinality .pt or "
                          "a converted folder)")
    io_utils.parse_seeds(config.seeds)
    if not (0.0 <= float(config.truncation_psi) <= 2.0):
        raise ConfigError(f"--config.truncation_psi={config.truncation_psi}: expected a number in [0, 2]")
    if config.noise_mode not in NOISE_MODES:
        raise ConfigError(f"--config.noise_mode={config.noise_mode!r}: expected one of {NOISE_MODES}")
    if int(config.batch_size) < 1:
        raise ConfigError(f"--config.batch_size={config.batch_size}: expected a positive integer")


def run(config, workdir: str) -> dict:
    """Map seeds with truncation, synthesise in batches, write grid.png + images.npz to workdir."""
    import jax
    from ..loaders import load_generator
    seeds = io_utils.parse_seeds(config.seeds)
    G = load_generator(config.generator)
    z = seeds_to_z(seeds, G.cfg.z_dim)
    cutoff = None if config.truncation_cutoff is None else int(config.truncation_cutoff)
    images, ws_all = [], []
    bs = int(config.batch_size)
    for i in range(0, len(seeds), bs):
        ws = G.mapping(z[i:i + bs], truncation_psi=float(config.truncation_psi), truncation_cutoff=cutoff)
        key = jax.random.PRNGKey(seeds[i]) if config.noise_mode == "random" else None
        images.append(np.asarray(G.synthesis(ws, noise_mode=config.noise_mode, noise_key=key)))
        ws_all.append(np.asarray(ws))
    images = np.concatenate(images)
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    cols = int(config.grid_cols) or min(len(seeds), int(math.ceil(math.sqrt(len(seeds)))))
    rows = int(math.ceil(len(seeds) / cols))
    pad = rows * cols - len(seeds)
    grid_imgs = np.concatenate([images, np.full((pad,) + images.shape[1:], 1.0, np.float32)]) if pad else images
    io_utils.save_grid(out / "grid.png", grid_imgs, rows, cols)
    io_utils.write_npz(out / "images.npz", images=images.astype(np.float32), seeds=np.asarray(seeds))
    io_utils.write_npy(out / "latents.npy", np.concatenate(ws_all).astype(np.float32))
    summary = {"generator": str(config.generator), "seeds": seeds, "truncation_psi": float(config.truncation_psi),
               "images": list(images.shape), "outputs": ["grid.png", "images.npz", "latents.npy"]}
    io_utils.write_json(out / "generate.json", summary)
    print(f"wrote {len(seeds)} images ({images.shape[1]}x{images.shape[2]}) to {out}/grid.png, images.npz")
    return summary
