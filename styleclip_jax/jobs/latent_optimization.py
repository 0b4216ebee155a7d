"""`--mode=latent_optimization`: batched CLIP-guided latent optimisation with PNG/NPZ/JSON outputs."""
from __future__ import annotations

import pathlib

import numpy as np

from . import outputs as io_utils
from . import sources
from ..editing import latent_optimization as lo
from ..memory import memory_args
from ..parallel import is_writer
from ..errors import ConfigError


def build_config(config) -> lo.LatentOptConfig:
    o = config.optim
    cfg = lo.LatentOptConfig(mode=config.mode, space=config.space, lr=float(o.lr), steps=int(o.steps),
                             l2_lambda=float(o.l2_lambda), id_lambda=float(o.id_lambda),
                             report_every=max(1, int(config.report_every)), precision=str(o.precision),
                             remat=bool(o.remat))
    try:
        cfg.validate()
    except ValueError as e:
        field = str(e).split("=", 1)[0]
        raise ConfigError(f"--config.{'' if field in ('mode', 'space') else 'optim.'}{e}") from None
    return cfg


def validate(config) -> None:
    build_config(config)
    memory_args(config)
    io_utils.parse_list(config.prompts, "--config.prompts")
    sources.validate(config)
    if config.pairing not in ("product", "zip"):
        raise ConfigError(f"--config.pairing={config.pairing!r}: expected 'product' or 'zip'")
    if float(config.optim.id_lambda) > 0 and config.mode == "edit" and config.arcface is None:
        raise ConfigError("--config.optim.id_lambda > 0 needs --config.arcface=model_ir_se50.pth "
                          "(or a converted folder)")


def run(config, workdir: str) -> dict:
    from ..models.arcface import load_arcface
    from ..models.clip import load_clip
    from ..loaders import load_generator
    cfg = build_config(config)
    prompts = io_utils.parse_list(config.prompts, "--config.prompts")
    G = load_generator(config.generator)
    clip = load_clip(config.clip_model, preprocess=config.clip_preprocess)
    arc = load_arcface(config.arcface) if config.arcface else None
    w_src, labels, photos = sources.load(G, config, with_photos=True)
    text = clip.encode_texts(prompts)
    n, p = len(w_src), len(prompts)
    pairs = lo.make_pairs(n, p, config.pairing)
    print(f"optimising {len(pairs[0])} (source, prompt) pairs x {cfg.steps} steps, all pairs in each compiled step "
          f"({cfg.space}, lr {cfg.lr}, l2 {cfg.l2_lambda}, id {cfg.id_lambda})")
    edited, m = lo.optimize(G, clip, w_src, text, cfg, arc=arc, pairs=pairs, **memory_args(config))
    if not is_writer():  # several processes: process 0 writes
        return {}
    return write_outputs(G, workdir, w_src, labels, prompts, pairs, edited, m, cfg, config.pairing, photos)


def write_outputs(G, workdir, w_src, labels, prompts, pairs, edited, m, cfg, pairing, photos=None):
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    src_idx, prm_idx = pairs
    n = len(w_src)
    src_img = np.asarray(G.synthesis(w_src, noise_mode=cfg.noise_mode))
    if cfg.space == "wplus":
        edit_img = np.asarray(G.synthesis(edited, noise_mode=cfg.noise_mode))
    else:
        edit_img = np.asarray(G.synthesis_from_s(edited, noise_mode=cfg.noise_mode))
    if pairing == "product":
        P = len(prompts)
        grid_edit = edit_img.reshape(P, n, *edit_img.shape[1:])
    else:  # zip: one edit per source
        P = 1
        grid_edit = edit_img[np.argsort(src_idx)][None]
    io_utils.save_columns(out / "grid.png", [src_img, *grid_edit], photos)
    io_utils.write_npz(out / "images.npz", **io_utils.photo_entry(photos), source=src_img.astype(np.float32),
                       edited=grid_edit.astype(np.float32))
    if cfg.space == "wplus":
        lat = np.asarray(edited, np.float32)
        lat = lat.reshape(P, n, *lat.shape[1:]) if pairing == "product" else lat[np.argsort(src_idx)][None]
        io_utils.write_npy(out / "latents.npy", lat)
    else:
        io_utils.write_npz(out / "styles.npz", **{k: np.asarray(v, np.float32) for k, v in edited.items()})
    records = []
    for k in range(len(src_idx)):
        r = {"source": labels[src_idx[k]], "source_index": int(src_idx[k]), "prompt": prompts[prm_idx[k]],
             "clip_similarity_before": float(m["clip_cos_before"][k]),
             "clip_similarity_after": float(m["clip_cos_after"][k]),
             "latent_l2_distance": float(np.sqrt(m["l2_sum_sq"][k])),
             "loss": {"first": float(m["loss_first"][k]), "last": float(m["loss_last"][k]),
                      "min": float(m["loss_min"][k]), "curve": [float(x) for x in m["loss_curve"][k]]}}
        if "id_similarity" in m:
            r["identity_similarity"] = float(m["id_similarity"][k])
        records.append(r)
    summary = {"config": {**cfg.__dict__}, "pairing": pairing, "num_pairs": len(records),
               "seconds": float(m["seconds"]), "edits_per_second": len(records) / max(float(m["seconds"]), 1e-9),
               "pairs": records}
    io_utils.write_json(out / "metrics.json", summary)
    gain = np.mean([r["clip_similarity_after"] - r["clip_similarity_before"] for r in records])
    print(f"wrote {out}/grid.png, images.npz, metrics.json; mean CLIP similarity change {gain:+.4f} "
          f"({summary['edits_per_second']:.2f} edits/s)")
    return summary
