"""`--mode=global_direction`: cached stats + fs3, then a batched (prompt pair x alpha x beta) study."""
from __future__ import annotations

import hashlib
import html
import os
import pathlib

import numpy as np

from . import outputs as io_utils
from . import sources
from ..errors import ConfigError
from ..memory import memory_args


def validate_precompute(config) -> None:
    """The fields of the statistics / fs3 sweep (shared with --mode=global_direction_precompute)."""
    memory_args(config)
    if config.generator is None:
        raise ConfigError("--config.generator is required with this preset (an NVlabs .pkl, a rosinality .pt or "
                          "a converted folder)")
    if config.fs3 is not None and not pathlib.Path(config.fs3).is_file():
        raise ConfigError(f"--config.fs3={config.fs3}: file not found (expected an fs3 .npy)")
    from ..models.ops import PRECISIONS
    if config.sweep.precision not in PRECISIONS:
        raise ConfigError(f"--config.sweep.precision={config.sweep.precision!r}: expected one of {PRECISIONS}")
    if int(config.stats.samples) < 2 or int(config.sweep.images) < 1:
        raise ConfigError("--config.stats.samples must be >= 2 and --config.sweep.images >= 1")
    if config.clip_preprocess not in ("official", "normalized", "resize"):
        raise ConfigError(f"--config.clip_preprocess={config.clip_preprocess!r}: expected official|normalized|resize")


def validate(config) -> None:
    targets(config)
    alphas(config)
    betas(config)
    sources.validate(config)
    validate_precompute(config)


def targets(config):
    if config.targets is not None:
        return io_utils.parse_list(config.targets, "--config.targets")
    return io_utils.parse_list(config.target, "--config.target")


def alphas(config):
    if config.alphas is not None:
        return io_utils.parse_float_list(config.alphas, "--config.alphas")
    return [float(config.alpha)]


def betas(config):
    b = io_utils.parse_float_list(config.betas, "--config.betas") if config.betas is not None else [float(config.beta)]
    if any(x < 0 for x in b):
        raise ConfigError("--config.beta(s) must be >= 0")
    return b


def cache_dir_for(config) -> pathlib.Path:
    """Cache next to the checkpoint when writable, else ~/.cache/styleclip_jax/<hash>."""
    if config.cache_dir:
        return pathlib.Path(config.cache_dir)
    from ..loaders import resolve_generator_path
    src = resolve_generator_path(config.generator)
    cand = (src if src.is_dir() else src.parent / (src.name + ".cache")) / "global_direction"
    if str(config.generator) != "shapes":
        try:
            cand.mkdir(parents=True, exist_ok=True)
            if os.access(cand, os.W_OK):
                return cand
        except OSError:
            pass
    h = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:12]
    return pathlib.Path(os.path.expanduser("~/.cache/styleclip_jax")) / f"{src.name}-{h}" / "global_direction"


def precompute(config, G, clip, verbose=True):
    """(mean, std, fs3, paths): load from the cache (or the shipped shapes assets) or compute and cache."""
    from ..editing import global_direction as gd
    from ..shipped import SHAPES_GLOBAL_DIRECTION as SHIPPED_GD, is_shapes
    cache = cache_dir_for(config)
    st, sw = config.stats, config.sweep
    stats_name = (f"stats_n{int(st.samples)}_psi{float(st.truncation_psi)}"
                  f"_cut{st.truncation_cutoff}_seed{int(st.seed)}.npz")
    # keyed by the weights, not only the name: a retrained CLIP at the same path must not reuse a stale fs3
    clip_tag = hashlib.sha256(f"{clip.fingerprint()}|{clip.preprocess}".encode()).hexdigest()[:8]
    sweep_name = (f"fs3_m{int(sw.images)}_a{float(sw.alpha)}_res{sw.max_resolution}"
                  f"_{sw.precision}_clip{clip_tag}")
    shipped = None
    if is_shapes(config.generator) and is_shapes(config.clip_model):
        shipped = SHIPPED_GD
    stats_path = cache / stats_name
    if shipped is not None and (shipped / stats_name).is_file():
        stats_path = shipped / stats_name
    if stats_path.is_file():
        mean, std = gd.load_stats(stats_path, G)
        if verbose:
            print(f"StyleSpace statistics: {stats_path}")
    else:
        if verbose:
            print(f"computing StyleSpace statistics over {int(st.samples)} samples -> {stats_path}")
        mean, std = gd.style_stats(G, int(st.samples), float(st.truncation_psi),
                                   st.truncation_cutoff, int(st.seed), progress=verbose, **memory_args(config))
        import jax
        if jax.process_index() == 0:
            gd.save_stats(stats_path, mean, std)
    if config.fs3:
        fs3 = gd.load_fs3(config.fs3, G)
        fs3_path = pathlib.Path(config.fs3)
    else:
        fs3_path = cache / sweep_name / "fs3.npy"
        if shipped is not None and (shipped / sweep_name / "fs3.npy").is_file():
            fs3_path = shipped / sweep_name / "fs3.npy"
        if fs3_path.is_file():
            fs3 = gd.load_fs3(fs3_path, G)
            if verbose:
                print(f"channel relevance (fs3): {fs3_path}")
        else:
            if verbose:
                n = gd.num_relevance_channels(G, sw.max_resolution)
                print(f"channel-relevance sweep: {n} channels x {int(sw.images)} images -> {fs3_path}")
            fs3 = gd.channel_relevance(
                G, clip, mean, std, num_images=int(sw.images), seed=int(st.seed),
                truncation_psi=float(st.truncation_psi), truncation_cutoff=st.truncation_cutoff,
                alpha=float(sw.alpha), max_resolution=sw.max_resolution,
                block_size=int(sw.block_size), image_batch=sw.image_batch,
                out_dir=fs3_path.parent, precision=sw.precision, progress=verbose, **memory_args(config))
    paths = {"stats": str(stats_path), "fs3": str(fs3_path)}
    if sw.precision != "float32" and not config.fs3:
        paths.update(_precision_agreement(fs3, fs3_path, [d / sweep_name.replace(f"_{sw.precision}_",
                                                                                 "_float32_") / "fs3.npy"
                                                          for d in (cache, shipped) if d is not None], verbose))
    return mean, std, fs3, paths


def _precision_agreement(fs3, fs3_path, float32_candidates, verbose):
    """The agreement figure of a reduced-precision sweep: mean cosine between its rows and those of the float32
    sweep with the same settings, when that one is cached (or shipped). Written to agreement.json beside the
    fs3 (process 0) and printed; {} when there is no float32 sweep to compare with."""
    import jax

    ref = next((p for p in float32_candidates if p.is_file()), None)
    if ref is None:
        if verbose:
            print("no float32 sweep with these settings is cached: no agreement figure (run the float32 sweep "
                  "once to get one)")
        return {}
    from ..editing import global_direction as gd
    cos = gd.row_cosines(fs3, np.load(ref))
    rep = {"float32_fs3": str(ref), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
           "rows": int(cos.size)}
    out = pathlib.Path(fs3_path).parent / "agreement.json"
    if jax.process_index() == 0:
        io_utils.write_json(out, rep)
    if verbose:
        print(f"agreement with the float32 sweep: mean cosine {rep['mean_cosine']:.6f}, min {rep['min_cosine']:.6f} "
              f"over {rep['rows']} channels -> {out}")
    return {"agreement": str(out)}


def load_models(config):
    from ..models.arcface import load_arcface
    from ..models.clip import load_clip
    from ..loaders import load_generator
    G = load_generator(config.generator)
    clip = load_clip(config.clip_model, preprocess=config.clip_preprocess)
    arc = load_arcface(config.arcface) if config.arcface else None
    return G, clip, arc


def run(config, workdir: str) -> dict:
    import jax
    from ..editing import global_direction as gd
    T, A, B = targets(config), alphas(config), betas(config)
    G, clip, arc = load_models(config)
    mean, std, fs3, paths = precompute(config, G, clip)
    ws, labels, photos = sources.load(G, config, with_photos=True)
    pairs = [(config.neutral, t) for t in T]
    res = gd.study(G, clip, ws, pairs, A, B, fs3, mean, std, arc=arc, verbose=True, **memory_args(config))
    if jax.process_index() != 0:
        return {}
    return write_outputs(pathlib.Path(workdir), res, pairs, A, B, labels, paths, photos)


def write_outputs(out: pathlib.Path, res, pairs, A, B, labels, paths, photos=None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    src, edited = res["source"], res["edited"]  # (N,...), (P,A,B,N,...)
    cells, figs = [], []
    for p, (neutral, target) in enumerate(pairs):
        for b, beta in enumerate(B):
            name = f"grid_p{p:02d}_b{b:02d}.png"
            io_utils.save_columns(out / name, [src, *edited[p, :, b]], photos)
            figs.append((name, neutral, target, beta, int(res["num_kept"][p, b])))
            for a, alpha in enumerate(A):
                cell = {"neutral": neutral, "target": target, "alpha": alpha, "beta": beta,
                        "channels_kept": int(res["num_kept"][p, b]),
                        "mean_abs_delta_s": float(res["mean_abs_delta"][p, a, b]),
                        "clip_similarity_before": [float(x) for x in res["clip_before"][p]],
                        "clip_similarity_after": [float(x) for x in res["clip_after"][p, a, b]],
                        "clip_similarity_gain_mean": float(np.mean(res["clip_after"][p, a, b] - res["clip_before"][p])),
                        "grid": name}
                if res["id_similarity"] is not None:
                    cell["identity_similarity"] = [float(x) for x in res["id_similarity"][p, a, b]]
                cells.append(cell)
    io_utils.write_npz(out / "images.npz", **io_utils.photo_entry(photos), source=src.astype(np.float32),
                       edited=edited.astype(np.float32))
    summary = {"images": labels, "alphas": A, "betas": B, "pairs": [list(x) for x in pairs], "cache": paths,
               "cells": cells}
    io_utils.write_json(out / "metrics.json", summary)
    write_index_html(out / "index.html", figs, A, labels)
    print(f"wrote {len(figs)} grid(s), index.html, images.npz, metrics.json to {out}")
    for c in cells:
        print(f"  {c['neutral']!r} -> {c['target']!r}  alpha {c['alpha']:+.2f}  beta {c['beta']:.3f}  "
              f"channels {c['channels_kept']:5d}  CLIP gain {c['clip_similarity_gain_mean']:+.4f}")
    return summary


def write_index_html(path, figs, alphas, labels) -> None:
    rows = []
    for name, neutral, target, beta, kept in figs:
        rows.append(
            f"<section><h2>{html.escape(neutral)} &rarr; {html.escape(target)}</h2>"
            f"<p>&beta; = {beta:g} &middot; channels kept: {kept} &middot; columns: source, "
            f"&alpha; = {', '.join(f'{a:g}' for a in alphas)} &middot; rows: {html.escape(', '.join(labels))}</p>"
            f"<img src=\"{html.escape(name)}\" alt=\"{html.escape(target)} beta {beta:g}\"></section>")
    doc = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>StyleCLIP global directions</title>"
           "<style>body{font-family:sans-serif;margin:2em}img{image-rendering:pixelated;max-width:100%}"
           "section{margin-bottom:2em}</style></head><body><h1>StyleCLIP global-direction study</h1>"
           + "".join(rows) + "</body></html>\n")
    with io_utils.atomic_path(path) as tmp:
        pathlib.Path(tmp).write_text(doc)
