#!/usr/bin/env python
"""Measure what the shapes world's edits do, with the pixel and mask metrics (issue #15's targets).

Every figure uses the shapes-world defaults of the configs (the same settings as the README commands)
and seeds the training never saw (the generator trains on fresh random latents, not seeds; the
held-out checks below use seeds 100-147 and 5000-5031):

  quickstart   `python main.py --mode=global_direction --workdir=runs/gd` exactly (seeds 0-7): how many
               non-red samples turn red-dominant with the shape kept (mask IoU >= 0.7) and saturation
               kept (>= 80 % of the source's); and the red share at alpha = -alpha.
  colours      for each palette colour as the target ("a shape" -> "a {colour} shape"), the fraction of
               48 samples of other colours that become target-dominant with shape kept at some alpha
               of the study range (STUDY_ALPHAS).
  shapes       "a shape" -> "a {shape}": the fraction of samples of other shapes whose mask metric
               shape becomes the target at some alpha of the range, hue kept within 30 degrees.
  lo           `--mode=latent_optimization` defaults toward "a blue shape" on the non-blue samples of
               seeds 0-59: fraction blue-dominant with shape kept.
  mapper       `--mode=mapper_train` defaults ("a green shape"), then 32 held-out latents: fraction
               green-dominant with shape kept.
  lo_grid      the `lo` measurement for ten other (space, lr, l2_lambda) settings (not in the default run:
               about 12 min on 2 cores).

Usage:  python scripts/measure_shapes_edits.py [--only quickstart,colours,shapes,lo,mapper] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import styleclip_jax as sc  # noqa: E402
from styleclip_jax.shapes import metrics as M  # noqa: E402
from styleclip_jax.shapes import render as R  # noqa: E402

STUDY_ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)  # the alphas of a study (configs/global_direction.py docstring)
HELD_OUT = list(range(100, 148))
IOU_KEPT = 0.7


def _ws(G, seeds, psi=0.7):
    return np.asarray(G.mapping(sc.seeds_to_z(seeds, G.cfg.z_dim), truncation_psi=psi))


def quickstart():
    from configs.global_direction import get_config
    from styleclip_jax.jobs import global_direction as job

    out = {}
    for sign in (1, -1):
        c = get_config()
        c.alpha = sign * c.alpha
        with tempfile.TemporaryDirectory() as tmp:
            job.run(c, tmp)
            data = np.load(os.path.join(tmp, "images.npz"))
            src, ed = data["source"], data["edited"][0, 0, 0]
        rep = M.edit_report(src, ed)
        red = R.COLOURS.index("red")
        if sign == 1:
            todo = rep["colour_before"] != red
            ok = todo & (rep["colour_after"] == red) & (rep["iou"] >= IOU_KEPT) & (rep["saturation_ratio"] >= 0.8)
            out.update(alpha=float(c.alpha), beta=float(c.beta), non_red=int(todo.sum()), turned_red=int(ok.sum()),
                       iou=rep["iou"].round(3).tolist(), saturation_ratio=rep["saturation_ratio"].round(3).tolist(),
                       colours_before=[R.COLOURS[k] if k >= 0 else None for k in rep["colour_before"]],
                       colours_after=[R.COLOURS[k] if k >= 0 else None for k in rep["colour_after"]],
                       red_share_source=float(M.colour_share(src, "red").mean()),
                       red_share_plus=float(M.colour_share(ed, "red").mean()))
        else:
            out["red_share_minus"] = float(M.colour_share(ed, "red").mean())
    return out


def _study(G, clip, ws, pairs, fs3, mean, std, beta):
    from styleclip_jax.editing import global_direction as gd
    return gd.study(G, clip, ws, pairs, list(STUDY_ALPHAS), [beta], fs3, mean, std)


def _models_and_direction_data():
    from configs.global_direction import get_config
    from styleclip_jax.jobs import global_direction as job

    c = get_config()
    G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    mean, std, fs3, _ = job.precompute(c, G, clip, verbose=False)
    return c, G, clip, mean, std, fs3


def _reached(res, names, hit, before):
    """Per target p of a study: among the samples whose ``edit_report[before]`` is not p, how many satisfy
    ``hit(report, p)`` at some alpha of STUDY_ALPHAS, and the median first such alpha."""
    out = {}
    for p, name in enumerate(names):
        reps = [M.edit_report(res["source"], res["edited"][p, a, 0]) for a in range(len(STUDY_ALPHAS))]
        hits = np.stack([hit(r, p) for r in reps])  # (A, N)
        todo = reps[0][before] != p
        done = hits.any(0) & todo
        first = np.asarray(STUDY_ALPHAS)[hits.argmax(0)]
        out[name] = {"others": int(todo.sum()), "became": int(done.sum()),
                     "fraction": float(done.sum() / max(1, todo.sum())),
                     "median_alpha": float(np.median(first[done])) if done.any() else None}
    return out


def colours(seeds=HELD_OUT):
    c, G, clip, mean, std, fs3 = _models_and_direction_data()
    res = _study(G, clip, _ws(G, seeds), [("a shape", f"a {col} shape") for col in R.COLOURS], fs3, mean, std, c.beta)
    return _reached(res, R.COLOURS, lambda r, k: (r["colour_after"] == k) & (r["iou"] >= IOU_KEPT)
                    & (r["saturation_ratio"] >= 0.8), "colour_before")


def shapes(seeds=HELD_OUT):
    c, G, clip, mean, std, fs3 = _models_and_direction_data()
    res = _study(G, clip, _ws(G, seeds), [("a shape", f"a {s}") for s in R.SHAPES], fs3, mean, std, c.beta)
    return _reached(res, R.SHAPES, lambda r, k: (r["shape_after"] == k) & (r["hue_shift"] <= 30.0), "shape_before")


def latent_optimization(seeds=range(60)):
    from configs.latent_optimization import get_config
    from styleclip_jax.editing import latent_optimization as lo
    from styleclip_jax.jobs import latent_optimization as job

    c = get_config()
    G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    w = _ws(G, list(seeds), c.truncation_psi)
    blue = R.COLOURS.index("blue")
    keep = M.dominant_colour_index(np.asarray(G.synthesis(w))) != blue
    w = w[keep]
    t = clip.encode_texts(json.loads(c.prompts))
    edited, _ = lo.optimize(G, clip, w, t, job.build_config(c), verbose=False)
    rep = M.edit_report(np.asarray(G.synthesis(w)), np.asarray(G.synthesis(edited)).reshape((len(w),) + (32, 32, 3)))
    ok = (rep["colour_after"] == blue) & (rep["iou"] >= IOU_KEPT)
    return {"sources": int(len(w)), "became_blue": int(ok.sum()), "fraction": float(ok.mean()),
            "steps": int(c.optim.steps), "lr": float(c.optim.lr), "l2_lambda": float(c.optim.l2_lambda)}


LO_GRID = [("wplus", 0.05, 0.02), ("wplus", 0.1, 0.02), ("wplus", 0.05, 0.005), ("wplus", 0.05, 0.05),
           ("wplus", 0.2, 0.05), ("wplus", 0.3, 0.1), ("wplus", 0.5, 0.1), ("s", 0.05, 0.02), ("s", 0.1, 0.02),
           ("s", 0.05, 0.1)]  # (space, lr, l2_lambda), 300 steps each


def latent_optimization_grid(seeds=range(60)):
    """The `lo` measurement for other settings (LO_GRID): blue with shape kept, blue at all, shape lost."""
    from styleclip_jax.editing import latent_optimization as lo
    G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
    w = _ws(G, list(seeds))
    blue = R.COLOURS.index("blue")
    src = np.asarray(G.synthesis(w))
    keep = M.dominant_colour_index(src) != blue
    w, src = w[keep], src[keep]
    t = clip.encode_texts(["a blue shape"])
    rows = []
    for space, lr, l2 in LO_GRID:
        ed, _ = lo.optimize(G, clip, w, t, lo.LatentOptConfig(steps=300, lr=lr, l2_lambda=l2, space=space),
                            verbose=False)
        img = np.asarray(G.synthesis(ed) if space == "wplus" else G.synthesis_from_s(ed))
        rep = M.edit_report(src, img)
        is_blue = rep["colour_after"] == blue
        rows.append({"space": space, "lr": lr, "l2_lambda": l2, "sources": int(len(w)),
                     "blue_shape_kept": int((is_blue & (rep["iou"] >= IOU_KEPT)).sum()), "blue": int(is_blue.sum()),
                     "shape_lost": int((rep["iou"] < IOU_KEPT).sum())})
        print("  " + json.dumps(rows[-1]), flush=True)
    return rows


def mapper(n_test=32, seed=5000):
    from configs.mapper_train import get_config
    from styleclip_jax.editing import mapper as mp
    from styleclip_jax.jobs import mapper_train as job

    c = get_config()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        res = job.run(c, tmp)
        seconds = time.time() - t0
        m = sc.load_mapper(res["final_dirs"][0])
        G = sc.load_generator("shapes")
        w = mp.sample_latents(G, n_test, seed)
        src, ed = np.asarray(G.synthesis(w)), np.asarray(G.synthesis(m.apply(w)))
    green = R.COLOURS.index("green")
    rep = M.edit_report(src, ed)
    todo = rep["colour_before"] != green
    ok = (rep["colour_after"] == green) & (rep["iou"] >= IOU_KEPT)
    return {"test_latents": n_test, "became_green": int(ok.sum()), "fraction": float(ok.mean()),
            "fraction_of_non_green": float((ok & todo).sum() / max(1, todo.sum())), "train_seconds": seconds}


PARTS = {"quickstart": quickstart, "colours": colours, "shapes": shapes, "lo": latent_optimization, "mapper": mapper,
         "lo_grid": latent_optimization_grid}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(p for p in PARTS if p != "lo_grid"),
                    help="comma-separated parts: " + ", ".join(PARTS))
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--alphas", default=None,
                    help="comma-separated alphas of the colour and shape studies (default: STUDY_ALPHAS)")
    a = ap.parse_args()
    if a.alphas:
        global STUDY_ALPHAS
        try:
            STUDY_ALPHAS = tuple(float(x) for x in a.alphas.split(","))
        except ValueError:
            ap.error(f"--alphas: expected comma-separated numbers such as 0.5,1,2,4, got {a.alphas!r}")
    results = {}
    for name in a.only.split(","):
        t0 = time.time()
        results[name] = PARTS[name]()
        print(f"== {name} ({time.time() - t0:.0f} s)\n{json.dumps(results[name], indent=1)}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
