"""`--mode=mapper_infer`: apply P latent mappers to N latents (file or seeds), w + 0.1*alpha*M(w).

Outputs as `--mode=latent_optimization`: grid.png (rows: sources; columns: source | edit per mapper),
images.npz (`source` (N,H,W,3), `edited` (P,N,H,W,3)), latents.npy (P,N,num_ws,w_dim) (W+ mappers) or
styles.npz (StyleSpace mappers: S layer name -> (P,N,C)), metrics.json.
"""
from __future__ import annotations

import functools
import pathlib
import time

import numpy as np

from . import outputs as io_utils
from . import sources
from ..errors import ConfigError


def mapper_paths(value) -> list:
    """--config.mapper: one path or a JSON list of paths."""
    if value is None:
        raise ConfigError("--config.mapper is required: a mapper folder (from mapper_train or "
                         "checkpoints_convert/convert_mapper.py), a training workdir, or an official .pt; "
                         "or a JSON list of them")
    return io_utils.parse_list(value, "--config.mapper")


def validate(config) -> None:
    for p in mapper_paths(config.mapper):
        if not pathlib.Path(p).expanduser().exists():
            raise ConfigError(f"--config.mapper: {p} does not exist")
    sources.validate(config)
    if config.generator is None:
        raise ConfigError("--config.generator is required with this preset (the generator the mappers were "
                          "trained for)")
    try:
        float(config.alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"--config.alpha={config.alpha!r}: expected a number") from None
    if int(config.batch_size) < 1:
        raise ConfigError(f"--config.batch_size={config.batch_size}: expected a positive integer")
    if config.noise_mode not in ("const", "none"):
        raise ConfigError(f"--config.noise_mode={config.noise_mode!r}: expected 'const' or 'none'")
    from ..memory import memory_args
    memory_args(config)
    if config.prompts is not None:
        n = len(io_utils.parse_list(config.prompts, "--config.prompts"))
        if n != len(mapper_paths(config.mapper)):
            raise ConfigError(f"--config.prompts has {n} prompts for {len(mapper_paths(config.mapper))} mappers")


def _edit_rows(consts, w, mcfg, noise_mode):
    """(images, edited codes) of W+ rows under one mapper; consts = (G, mapper params, alpha). Rows are
    independent (`parallel.map_batched`)."""
    from ..models.generator import synthesis, synthesis_from_s, w_to_s
    from ..editing.mapper import STEP_SCALE
    from ..models.mapper import apply_mapper
    G, params, alpha = consts
    if mcfg.mapper_type != "WithoutToRGBStyleSpaceMapper":
        w_hat = w + (STEP_SCALE * alpha) * apply_mapper(params, w, mcfg)
        return synthesis(G.params, G.cfg, w_hat, noise_mode), w_hat
    s = w_to_s(G.params, G.cfg, w)
    names = [l.name for l in G.cfg.layout]
    delta = apply_mapper(params, [s[n] for n in names], mcfg)
    s_hat = {n: s[n] + (STEP_SCALE * alpha) * d for n, d in zip(names, delta)}
    return synthesis_from_s(G.params, G.cfg, s_hat, noise_mode), s_hat


def _source_rows(G, w, noise_mode):
    from ..models.generator import synthesis
    return synthesis(G.params, G.cfg, w, noise_mode)


def _check_fit(m, G, path):
    cfg = m.config
    if cfg.mapper_type == "WithoutToRGBStyleSpaceMapper":
        dims = tuple(l.channels for l in G.layout)
        if dims != tuple(cfg.stylespace_dims):
            raise ConfigError(f"--config.mapper={path}: StyleSpace mapper for S layers {cfg.stylespace_dims}, "
                             f"but the generator has {dims}")
    elif cfg.latent_dim != G.cfg.w_dim:
        raise ConfigError(f"--config.mapper={path}: mapper width {cfg.latent_dim} != generator w_dim {G.cfg.w_dim}")


def edit(G, mapper, w, alpha=1.0, noise_mode="const", batch_size=16, devices=None, **memory):
    """Images (N, H, W, 3) and edited codes (W+ (N, num_ws, w_dim) or S dict of (N, C)) of one mapper; calls of
    batch_size rows split over `devices` (default: every device of every process), fewer where memory says so."""
    import jax.numpy as jnp
    from .. import parallel
    fn = functools.partial(_edit_rows, mcfg=mapper.config, noise_mode=noise_mode)
    return parallel.map_batched(fn, (G, mapper.params, jnp.float32(alpha)), np.asarray(w, np.float32),
                                parallel.rows_per_device(batch_size, devices), devices=devices, what="images", **memory)


def run(config, workdir: str) -> dict:
    import jax.numpy as jnp

    from ..loaders import load_generator
    from ..editing.mapper import load_mapper
    paths = mapper_paths(config.mapper)
    G = load_generator(config.generator)
    mappers = [load_mapper(p) for p in paths]
    for m, p in zip(mappers, paths):
        _check_fit(m, G, p)
    w_src, labels, photos = sources.load(G, config, with_photos=True)
    from .. import parallel
    from ..memory import memory_args
    alpha, bs, nm = float(config.alpha), int(config.batch_size), config.noise_mode
    mem = memory_args(config)
    prompts = (io_utils.parse_list(config.prompts, "--config.prompts") if config.prompts is not None
               else [m.prompt for m in mappers])
    src_img = parallel.map_batched(functools.partial(_source_rows, noise_mode=nm), G, np.asarray(w_src, np.float32),
                                   parallel.rows_per_device(bs), what="images", verbose=True, **mem)
    t0 = time.time()
    results = [edit(G, m, w_src, alpha, nm, bs, **mem) for m in mappers]
    seconds = time.time() - t0
    edited = np.stack([r[0] for r in results])  # (P, N, H, W, 3)
    n, P = len(w_src), len(mappers)
    clip_cos = None
    if config.clip_model is not None and all(prompts):
        from ..models.clip import embed_images, load_clip
        clip = load_clip(config.clip_model, preprocess=config.clip_preprocess)
        text = np.asarray(clip.encode_texts(prompts))  # (P, D)
        rows = np.concatenate([src_img, edited.reshape(-1, *src_img.shape[1:])])
        e_all = parallel.map_batched(embed_images, clip, rows, parallel.rows_per_device(bs), what="images", **mem)
        e_src, e_edit = e_all[:n], e_all[n:].reshape(P, n, -1)
        clip_cos = [(e_src @ text[k], e_edit[k] @ text[k]) for k in range(P)]

    if not parallel.is_writer():  # several processes: process 0 writes
        return {}
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    io_utils.save_columns(out / "grid.png", [src_img, *edited], photos)
    io_utils.write_npz(out / "images.npz", **io_utils.photo_entry(photos), source=src_img.astype(np.float32),
                       edited=edited.astype(np.float32))
    wplus = [i for i, m in enumerate(mappers) if m.config.mapper_type != "WithoutToRGBStyleSpaceMapper"]
    outputs = ["grid.png", "images.npz", "metrics.json"]
    if len(wplus) == P:
        io_utils.write_npy(out / "latents.npy", np.stack([r[1] for r in results]).astype(np.float32))
        outputs.append("latents.npy")
    else:
        if wplus:  # mixed: convert W+ results to S so every mapper has S codes
            for i in wplus:
                results[i] = (results[i][0], {k: np.asarray(v) for k, v in G.w_to_s(results[i][1]).items()})
        io_utils.write_npz(out / "styles.npz", **{l.name: np.stack([r[1][l.name] for r in results]).astype(np.float32)
                                                   for l in G.layout})
        outputs.append("styles.npz")

    records = []
    for k, (m, p) in enumerate(zip(mappers, paths)):
        if m.config.mapper_type != "WithoutToRGBStyleSpaceMapper":
            dist = np.sqrt(np.sum(np.square(results[k][1] - w_src).reshape(n, -1), axis=1))
        else:
            s0 = G.w_to_s(jnp.asarray(w_src))
            dist = np.sqrt(sum(np.sum(np.square(results[k][1][name] - np.asarray(s0[name])).reshape(n, -1), axis=1)
                               for name in s0))
        r = {"mapper": str(p), "prompt": prompts[k], "mapper_type": m.config.mapper_type,
             "pixelnorm_axis": m.config.pixelnorm_axis, "alpha": alpha,
             "latent_l2_distance": [float(x) for x in dist], "mean_latent_l2_distance": float(dist.mean()),
             "mean_abs_pixel_change": float(np.abs(edited[k] - src_img).mean())}
        if clip_cos is not None:
            before, after = clip_cos[k]
            r.update(clip_similarity_before=[float(x) for x in before], clip_similarity_after=[float(x) for x in after],
                     mean_clip_similarity_change=float(np.mean(after - before)))
        records.append(r)
    summary = {"generator": str(config.generator), "alpha": alpha, "sources": labels, "num_sources": n,
               "num_mappers": P, "seconds": seconds, "images_per_second": n * P / max(seconds, 1e-9),
               "outputs": outputs, "mappers": records}
    io_utils.write_json(out / "metrics.json", summary)
    print(f"applied {P} mapper(s) to {n} sources (alpha {alpha}) -> {out}/grid.png, images.npz, "
          f"{outputs[-1]}, metrics.json ({summary['images_per_second']:.1f} images/s incl. compilation)")
    return summary
