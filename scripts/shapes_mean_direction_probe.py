#!/usr/bin/env python
"""Is a failing shapes-world colour edit the generator's StyleSpace, CLIP's text, or the fs3 sweep? (issue #15)

Edits the held-out seeds 100-147 that are not of the target colour with three directions, over the alphas of
the study range, and prints the fraction that turns target-dominant with the shape (mask IoU >= 0.7) and
saturation (>= 80 %) kept at some alpha, as scripts/measure_shapes_edits.py counts it:

  mean S      no CLIP: mean S of the generator's target-coloured samples minus mean S of the others (pixel-
              metric colour of 2,000 samples, seeds 10000-11999, truncation 0.7);
  text        the global direction from fs3 and CLIP's text direction "a shape" -> "a {target} shape"
              (what the global_direction mode does), at beta 0.1;
  image       the same fs3 and beta, but the text direction replaced by CLIP's *image-space* direction
              (mean embedding of the target-coloured samples minus mean of the others). If this fails
              too, the text/image alignment of the CLIP is not what limits the edit: the per-channel
              relevance (fs3) is.

Usage:  python scripts/shapes_mean_direction_probe.py [--generator G] [--fs3-dir DIR] [--clip C] [--target red]
(--generator default: the shipped "shapes"; --fs3-dir: a folder holding stats_*.npz and fs3_*/fs3.npy, as the
global_direction_precompute mode writes to its cache_dir; without it only the mean-S row is printed.)
"""
import argparse
import glob
import os
import sys

import jax.numpy as jnp
import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import styleclip_jax as sc  # noqa: E402
from styleclip_jax.editing import global_direction as gd  # noqa: E402
from styleclip_jax.models.generator import seeds_to_z  # noqa: E402
from styleclip_jax.shapes import metrics as M, render as R  # noqa: E402

ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0)  # the study range of scripts/measure_shapes_edits.py
BETA = 0.1                           # the shapes-world default (configs/global_direction.py)
LABELLED, HELD_OUT = range(10000, 12000), range(100, 148)


def _success(G, src, s, delta, k):
    """(N,) whether gd.apply(s, delta, alpha) is target-dominant with shape and saturation kept at some alpha."""
    reached = np.zeros(len(src), bool)
    for a in ALPHAS:
        rep = M.edit_report(src, np.asarray(G.synthesis_from_s(gd.apply(s, delta, a))))
        reached |= (rep["colour_after"] == k) & (rep["iou"] >= 0.7) & (rep["saturation_ratio"] >= 0.8)
    return reached


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generator", default="shapes")
    p.add_argument("--fs3-dir", default=None)
    p.add_argument("--clip", default="shapes")
    p.add_argument("--target", default="red", choices=R.COLOURS)
    a = p.parse_args(argv)
    G = sc.load_generator(a.generator)
    k = R.COLOURS.index(a.target)

    def styles(seeds):
        ws = G.mapping(jnp.asarray(seeds_to_z(seeds, G.z_dim)), truncation_psi=0.7)
        return ws, G.w_to_s(ws)

    ws, s = styles(LABELLED)
    imgs = np.asarray(G.synthesis(ws))
    is_k = M.dominant_colour_index(imgs) == k
    ws2, s2 = styles(HELD_OUT)
    src = np.asarray(G.synthesis(ws2))
    todo = M.dominant_colour_index(src) != k
    rows = [("mean S", {n: v[is_k].mean(0) - v[~is_k].mean(0) for n, v in s.items()})]
    if a.fs3_dir:
        clip = sc.load_clip(a.clip)
        mean, std = gd.load_stats(glob.glob(os.path.join(a.fs3_dir, "stats*.npz"))[0], G)
        fs3 = gd.load_fs3(glob.glob(os.path.join(a.fs3_dir, "fs3*", "fs3.npy"))[0], G)
        f = np.concatenate([np.asarray(gd.embed_images(clip, jnp.asarray(imgs[i:i + 250])))
                            for i in range(0, len(imgs), 250)])
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        d_img = f[is_k].mean(0) - f[~is_k].mean(0)
        for name, dt in (("text", gd.text_direction(clip, "a shape", f"a {a.target} shape")),
                         ("image", jnp.asarray(d_img / np.linalg.norm(d_img)))):
            delta, kept = gd.direction(fs3, dt, std, BETA)
            rows.append((f"{name} ({int(kept)} channels)", delta))
    for name, delta in rows:
        ok = _success(G, src, s2, delta, k)
        print(f"{name:>22}: {np.mean(ok[todo]):.2f} of {int(todo.sum())} non-{a.target} samples turn {a.target} "
              f"with shape and saturation kept", flush=True)


if __name__ == "__main__":
    main()
