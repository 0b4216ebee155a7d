"""Drivers for `main.py --mode=...`: each module has `validate(config)` and `run(config, workdir)`.

The jobs hold the loops, files, caches and progress lines; the maths they call lives in `models/` and
`editing/`. Importing a job is cheap: networks load inside `run`.
"""
from . import (generate, global_direction, global_direction_precompute, invert, latent_optimization,
               mapper_infer, mapper_train)

__all__ = ["generate", "global_direction", "global_direction_precompute", "invert", "latent_optimization",
           "mapper_infer", "mapper_train"]
