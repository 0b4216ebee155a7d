"""The images a job edits: seeds of the generator or a W+ latents file (`configs/common.sources`)."""
from __future__ import annotations

import pathlib

import numpy as np

from ..errors import ConfigError
from .outputs import parse_seeds


def validate(config) -> None:
    """Check --config.seeds / --config.latents before anything loads."""
    if config.latents is None:
        parse_seeds(config.seeds)
    elif not pathlib.Path(config.latents).expanduser().is_file():
        raise ConfigError(f"--config.latents={config.latents}: file not found (expected W+ latents: "
                          ".npy/.npz/.pt, (N, num_ws, w_dim))")


def load(G, config):
    """(w, labels): (N, num_ws, w_dim) float32 W+ sources and one label per source."""
    from ..checkpoints.latents import load_latents
    from ..models.generator import seeds_to_z
    if config.latents is not None:
        w = load_latents(pathlib.Path(config.latents).expanduser(), G.num_ws, G.cfg.w_dim)
        return w, [f"latent {i}" for i in range(len(w))]
    seeds = parse_seeds(config.seeds)
    w = np.asarray(G.mapping(seeds_to_z(seeds, G.cfg.z_dim), truncation_psi=float(config.truncation_psi)))
    return w, [f"seed {s}" for s in seeds]
