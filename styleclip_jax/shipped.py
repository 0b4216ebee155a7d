"""The table of what ships inside the package: the offline "shapes" world's models and data.

Every loader resolves the name "shapes" through this table, so asset paths live in one place.
"""
from __future__ import annotations

import pathlib

ASSETS = pathlib.Path(__file__).resolve().parent / "assets"

SHAPES_GENERATOR = ASSETS / "shapes_generator"            # converted StyleGAN2 folder (orbax + config.json)
SHAPES_CLIP = ASSETS / "shapes_clip"                      # Hugging Face CLIP folder
SHAPES_ENCODER = ASSETS / "shapes_encoder"                # converted e4e-style encoder folder
SHAPES_GLOBAL_DIRECTION = ASSETS / "shapes_global_direction"  # StyleSpace stats + fs3 of the shapes world
# the default precomputation of the shapes world (configs/global_direction.py), as the job caches it
SHAPES_STATS = SHAPES_GLOBAL_DIRECTION / "stats_n100000_psi0.7_cut8_seed5.npz"
SHAPES_FS3 = SHAPES_GLOBAL_DIRECTION / "fs3_m100_a5.0_resNone_float32_clip0b5a6dd6" / "fs3.npy"
IMAGENET_TEMPLATES = ASSETS / "imagenet_templates.json"   # StyleCLIP's 79 prompt templates

SHAPES = "shapes"  # the name every loader accepts for the shipped world


def is_shapes(name) -> bool:
    """True when a model argument names the shipped shapes world."""
    return str(name) == SHAPES
