#!/usr/bin/env python
"""Is a failing shapes-world colour edit the generator's StyleSpace or CLIP's direction? (issue #15)

Applies a direction that needs no CLIP: mean S of the generator's red samples minus mean S of the others
(pixel-metric colour of 2,000 samples, seeds 10000-11999, truncation 0.7), at the alphas of the study range,
to the held-out seeds 100-147 that are not red; prints the fraction that turns red-dominant with the shape
(mask IoU >= 0.7) and saturation (>= 80 %) kept, as scripts/measure_shapes_edits.py counts it.

Usage:  python scripts/shapes_mean_direction_probe.py [GENERATOR]   (default: the shipped "shapes")
"""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import styleclip_jax as sc  # noqa: E402
from styleclip_jax.models.generator import seeds_to_z  # noqa: E402
from styleclip_jax.shapes import metrics as M, render as R  # noqa: E402

ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0)  # the study range of scripts/measure_shapes_edits.py


def flat(s):
    return jnp.concatenate([v.reshape(v.shape[0], -1) for v in jax.tree_util.tree_leaves(s)], 1)


def main(generator="shapes", target="red"):
    G = sc.load_generator(generator)

    def styles(seeds, psi=0.7):
        ws = G.mapping(jnp.asarray(seeds_to_z(seeds, G.z_dim)), truncation_psi=psi)
        return ws, G.w_to_s(ws)

    k = R.COLOURS.index(target)
    ws, s = styles(range(10000, 12000))
    col = M.dominant_colour_index(np.asarray(G.synthesis(ws)))
    fs = np.asarray(flat(s))
    d = fs[col == k].mean(0) - fs[col != k].mean(0)
    ws2, s2 = styles(range(100, 148))
    src = np.asarray(G.synthesis(ws2))
    todo = M.dominant_colour_index(src) != k
    leaves, tdef = jax.tree_util.tree_flatten(s2)
    sizes = [int(np.prod(v.shape[1:])) for v in leaves]
    reached = np.zeros(len(src), bool)
    for a in ALPHAS:
        parts = np.split(np.asarray(flat(s2)) + a * d, np.cumsum(sizes)[:-1], axis=1)
        s_ed = jax.tree_util.tree_unflatten(tdef, [jnp.asarray(p.reshape(v.shape)) for p, v in zip(parts, leaves)])
        rep = M.edit_report(src, np.asarray(G.synthesis_from_s(s_ed)))
        ok = (rep["colour_after"] == k) & (rep["iou"] >= 0.7) & (rep["saturation_ratio"] >= 0.8)
        reached |= ok
        print(f"alpha {a}: {target} with shape and saturation kept {np.mean(ok[todo]):.2f}, "
              f"{target} at all {np.mean((rep['colour_after'] == k)[todo]):.2f}", flush=True)
    print(f"at some alpha: {np.mean(reached[todo]):.2f} of {int(todo.sum())} non-{target} samples")


if __name__ == "__main__":
    main(*sys.argv[1:2])
