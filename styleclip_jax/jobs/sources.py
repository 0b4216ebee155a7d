"""The images a job edits: seeds of the generator, a W+ latents file, or photos inverted with an encoder and
refinement (`configs/common.sources`)."""
from __future__ import annotations

import pathlib

import numpy as np

from ..errors import ConfigError
from .outputs import parse_seeds


def validate(config) -> None:
    """Check --config.seeds / --config.latents / --config.images before anything loads."""
    if config.get("images") is not None:
        if config.latents is not None:
            raise ConfigError("--config.images and --config.latents: give one of them (the sources to edit)")
        from ..images import resolve_paths
        resolve_paths(config.images)
        enc = config.encoder
        if enc is not None and str(enc).lower() not in ("none", "shapes") and not pathlib.Path(enc).expanduser().exists():
            raise ConfigError(f"--config.encoder={enc}: no such file or folder (an e4e/pSp .pt, a converted "
                              "folder, 'shapes' or 'none')")
        if int(config.refine_steps) < 0:
            raise ConfigError(f"--config.refine_steps={config.refine_steps}: expected >= 0")
    elif config.latents is None:
        parse_seeds(config.seeds)
    elif not pathlib.Path(config.latents).expanduser().is_file():
        raise ConfigError(f"--config.latents={config.latents}: file not found (expected W+ latents: "
                          ".npy/.npz/.pt, (N, num_ws, w_dim))")


def load(G, config, with_photos: bool = False):
    """(w, labels): (N, num_ws, w_dim) float32 W+ sources and one label per source; with ``with_photos``
    also the photos (N, H, W, 3) in [-1, 1] at the generator's resolution, or None for seeds/latents."""
    if config.get("images") is not None:
        w, labels, photos = invert_photos(G, config.images, config.encoder, int(config.refine_steps))
        return (w, labels, photos) if with_photos else (w, labels)
    w, labels = _load_codes(G, config)
    return (w, labels, None) if with_photos else (w, labels)


def invert_photos(G, images, encoder=None, refine_steps: int = 200):
    """Photos -> W+ of G: the encoder's output (e4e/pSp .pt, converted folder, "shapes"; None: the shipped
    shapes encoder when there is one, else the mean W) refined by ``refine_steps`` of pixel-MSE optimisation.
    Returns (w (N, num_ws, w_dim), file names, photos (N, R, R, 3) in [-1, 1])."""
    from ..checkpoints.e4e import load_encoder
    from ..editing import invert
    from ..images import load_images
    from ..shipped import SHAPES, SHAPES_ENCODER
    photos, names = load_images(images, G.resolution)
    if encoder is None:
        encoder = SHAPES if SHAPES_ENCODER.is_dir() else None
    elif str(encoder).lower() == "none":
        encoder = None
    if encoder is None:
        w0 = np.asarray(invert.mean_w_plus(G, len(names)))
        how = "from the mean W"
    else:
        E = load_encoder(encoder)
        if (E.num_ws, E.w_dim) != (G.num_ws, G.w_dim):
            raise ConfigError(f"--config.encoder={encoder} gives W+ of {E.num_ws} x {E.w_dim} but the generator "
                              f"takes {G.num_ws} x {G.w_dim}")
        x = photos if E.input_size == G.resolution else load_images(images, E.input_size)[0]
        w0 = np.concatenate([np.asarray(E.encode(x[i:i + 8])) for i in range(0, len(x), 8)])
        how = f"with {encoder}"
    if refine_steps > 0:
        w, m = invert.refine(G, w0, photos, refine_steps)
        print(f"inverted {len(names)} image(s) {how} + {refine_steps} refinement steps: mean MSE "
              f"{float(np.mean(m['mse_before'])):.4f} -> {float(np.mean(m['mse_after'])):.4f}")
    else:
        w = w0
        print(f"inverted {len(names)} image(s) {how} (no refinement)")
    return np.asarray(w, np.float32), list(names), photos


def _load_codes(G, config):
    from ..checkpoints.latents import load_latents
    from ..models.generator import seeds_to_z
    if config.latents is not None:
        w = load_latents(pathlib.Path(config.latents).expanduser(), G.num_ws, G.cfg.w_dim)
        return w, [f"latent {i}" for i in range(len(w))]
    seeds = parse_seeds(config.seeds)
    w = np.asarray(G.mapping(seeds_to_z(seeds, G.cfg.z_dim), truncation_psi=float(config.truncation_psi)))
    return w, [f"seed {s}" for s in seeds]
