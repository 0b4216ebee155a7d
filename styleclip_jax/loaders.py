"""Loading models by path or by name (the shipped offline "shapes" world)."""
from __future__ import annotations

import os
import pathlib

from .errors import CheckpointNotFoundError
from .models.generator import Generator, GeneratorConfig, check_params

from .shipped import SHAPES_GENERATOR, is_shapes


def resolve_generator_path(path) -> pathlib.Path:
    if is_shapes(path):
        if not SHAPES_GENERATOR.is_dir():
            raise CheckpointNotFoundError(f"the shipped shapes generator is missing: expected a folder at {SHAPES_GENERATOR}")
        return SHAPES_GENERATOR
    p = pathlib.Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise CheckpointNotFoundError(f"generator checkpoint {p} does not exist (expected an NVlabs .pkl, a rosinality "
                                f".pt, a folder written by checkpoints_convert/convert_stylegan2.py, or 'shapes')")
    return p


def load_generator(path="shapes") -> Generator:
    """Load a StyleGAN2 generator.

    path: an NVlabs stylegan2-ada-pytorch network pickle (.pkl; G_ema is read without executing
    any code from the file), a rosinality/StyleCLIP checkpoint (.pt, `{'g_ema', 'latent_avg'}`,
    needs torch), an e4e/pSp checkpoint (its `decoder.*` generator), a folder written by
    `checkpoints_convert/convert_stylegan2.py` (no torch), or
    "shapes" for the tiny generator shipped with the package.
    """
    from .checkpoints import stylegan2  # torch is imported lazily inside, only for .pt files
    p = resolve_generator_path(path)
    from .checkpoints import e4e
    if e4e.is_e4e_checkpoint(p):  # an official e4e/pSp checkpoint: its decoder.* generator
        params, config = e4e.load_generator_arrays(p)
    else:
        params, config = stylegan2.load_generator_arrays(p)
    cfg = GeneratorConfig.from_dict(config)
    check_params(params, cfg, where=str(p))
    import jax.numpy as jnp
    import jax
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    return Generator(params, cfg)
