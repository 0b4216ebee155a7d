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
    from ..memory import memory_args
    memory_args(config)


def _sample_rows(consts, rows, noise_mode):
    """(images, W+) of z rows; consts = (G, psi, cutoff). Random noise comes from each row's own key (its seed),
    so an image does not depend on the batch or the device count it was rendered with."""
    import jax
    from ..models.generator import synthesis, truncate
    G, psi, cutoff = consts
    ws = truncate(G.mapping(rows["z"], truncation_psi=1.0), G.mean_w(), psi, cutoff)
    if noise_mode != "random":
        return synthesis(G.params, G.cfg, ws, noise_mode), ws
    img = jax.vmap(lambda w, k: synthesis(G.params, G.cfg, w[None], "random", k)[0])(ws, rows["key"])
    return img, ws


def run(config, workdir: str) -> dict:
    """Map seeds with truncation, synthesise in batches over every device (`parallel.map_batched`), write grid.png +
    images.npz + latents.npy to workdir (process 0)."""
    import functools

    import jax
    import jax.numpy as jnp
    from .. import parallel
    from ..loaders import load_generator
    from ..memory import memory_args
    seeds = io_utils.parse_seeds(config.seeds)
    G = load_generator(config.generator)
    z = seeds_to_z(seeds, G.cfg.z_dim)
    cut = G.num_ws if config.truncation_cutoff is None else int(config.truncation_cutoff)
    keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])
    fn = functools.partial(_sample_rows, noise_mode=str(config.noise_mode))
    images, ws = parallel.map_batched(fn, (G, jnp.float32(config.truncation_psi), jnp.int32(cut)),
                                      {"z": z, "key": keys}, parallel.rows_per_device(config.batch_size),
                                      what="images", verbose=True,
                                      **memory_args(config))
    if not parallel.is_writer():  # several processes: process 0 writes
        return {}
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    cols = int(config.grid_cols) or min(len(seeds), int(math.ceil(math.sqrt(len(seeds)))))
    rows = int(math.ceil(len(seeds) / cols))
    pad = rows * cols - len(seeds)
    grid_imgs = np.concatenate([images, np.full((pad,) + images.shape[1:], 1.0, np.float32)]) if pad else images
    io_utils.save_grid(out / "grid.png", grid_imgs, rows, cols)
    io_utils.write_npz(out / "images.npz", images=images.astype(np.float32), seeds=np.asarray(seeds))
    io_utils.write_npy(out / "latents.npy", np.asarray(ws, np.float32))
    summary = {"generator": str(config.generator), "seeds": seeds, "truncation_psi": float(config.truncation_psi),
               "images": list(images.shape), "outputs": ["grid.png", "images.npz", "latents.npy"]}
    io_utils.write_json(out / "generate.json", summary)
    print(f"wrote {len(seeds)} images ({images.shape[1]}x{images.shape[2]}) to {out}/grid.png, images.npz")
    return summary
