"""`--mode=global_direction_precompute`: StyleSpace statistics and the fs3 sweep only (cached, resumable)."""
from __future__ import annotations

import json
import pathlib

from .global_direction import load_models, precompute, validate_precompute

validate = validate_precompute  # the same fields as --mode=global_direction's precomputation


def run(config, workdir: str) -> dict:
    import jax
    G, clip, _ = load_models(config)
    mean, std, fs3, paths = precompute(config, G, clip)
    if jax.process_index() == 0:
        out = pathlib.Path(workdir)
        out.mkdir(parents=True, exist_ok=True)
        from ..editing import global_direction as gd
        from . import outputs as io_utils
        io_utils.write_npy(out / "fs3.npy", fs3)
        gd.save_stats(out / "stats.npz", mean, std)
        if "agreement" in paths:  # reduced-precision sweep: its agreement with the cached float32 one
            io_utils.write_json(out / "agreement.json", json.loads(pathlib.Path(paths["agreement"]).read_text()))
        print(f"fs3 {fs3.shape} and S statistics written to {out} (cache: {paths})")
    return paths
