"""`--mode=mapper_train`: train K latent mappers (one per prompt) with exact resume.

Also runnable as ``python -m styleclip_jax.jobs.mapper_train --workdir=DIR [--config.x=...]``.
"""
from __future__ import annotations

import pathlib

import numpy as np

from . import outputs as io_utils

SHAPES_MAX_STEPS = 400
SHAPES_OPTIMIZER = "adam"
SHAPES_L2_LAMBDA = 0.2
OFFICIAL_L2_LAMBDA = 0.8
OFFICIAL_MAX_STEPS = 50000
DEFAULT_ID_LAMBDA = 0.1


def _id_lambda(config) -> float:
    """Explicit --config.id_lambda, else the official 0.1 when ArcFace is given, else 0."""
    if config.id_lambda is not None:
        return float(config.id_lambda)
    return DEFAULT_ID_LAMBDA if config.arcface else 0.0


def _optimizer(config) -> str:
    """Explicit --config.optimizer, else the official Ranger; Adam for the shapes world.

    Measured with the shapes models ("a green shape", lr 0.5, batch 2, green share of shape pixels of
    32 held-out latents; the patch-16 CLIP shipped before 2026-11-27, except the last figure): Ranger
    0.04 -> 0.08 after 2000 steps at l2 0.8 and 0.04 -> 0.04 after 200 steps at l2 0.2 (presumably its eps
    1e-5 on sqrt(v) dwarfs the tiny world's gradients at the lr-multiplied mapper weights); Adam (eps 1e-8) at l2 0.2 0.04 -> 0.50 in 200 steps (0.04 -> 0.56 with
    the current patch-8 CLIP)."""
    if config.optimizer is not None:
        return str(config.optimizer)
    return SHAPES_OPTIMIZER if str(config.generator) == "shapes" else "ranger"


def _l2_lambda(config) -> float:
    """Explicit --config.l2_lambda, else the official 0.8; 0.2 for the shapes world.

    Measured ("a green shape", Adam lr 0.5, 400 steps, 32 held-out latents, the patch-16 CLIP): green share
    of shape pixels 0.04 -> 0.14 with 0.8, -> 0.23 with 0.4, -> 0.58 with 0.2 (recolouring the shape needs a
    larger step in this world's small W than a hair-colour edit does in FFHQ's)."""
    if config.l2_lambda is not None:
        return float(config.l2_lambda)
    return SHAPES_L2_LAMBDA if str(config.generator) == "shapes" else OFFICIAL_L2_LAMBDA


def _max_steps(config) -> int:
    if config.max_steps is not None:
        return int(config.max_steps)
    return SHAPES_MAX_STEPS if str(config.generator) == "shapes" else OFFICIAL_MAX_STEPS


def build_configs(config):
    """(MapperConfig without latent_dim, MapperTrainConfig) from the flags, with errors naming the flag."""
    from ..editing.mapper import MapperTrainConfig
    from ..models.mapper import MAPPER_TYPES, MapperConfig
    if config.mapper_type not in ("LevelsMapper", "SingleMapper"):
        extra = " (the StyleSpace mapper is supported for inference only)" if config.mapper_type in MAPPER_TYPES else ""
        raise ValueError(f"--config.mapper_type={config.mapper_type!r}: expected LevelsMapper or SingleMapper{extra}")
    if config.pixelnorm_axis not in ("rows", "features"):
        raise ValueError(f"--config.pixelnorm_axis={config.pixelnorm_axis!r}: expected 'rows' or 'features'")
    if config.mapper_type == "LevelsMapper" and config.no_coarse_mapper and config.no_medium_mapper \
            and config.no_fine_mapper:
        raise ValueError("--config.no_coarse_mapper/no_medium_mapper/no_fine_mapper: all three levels are off; "
                         "nothing to train")
    mcfg = MapperConfig(mapper_type=config.mapper_type, no_coarse_mapper=bool(config.no_coarse_mapper),
                        no_medium_mapper=bool(config.no_medium_mapper), no_fine_mapper=bool(config.no_fine_mapper),
                        pixelnorm_axis=config.pixelnorm_axis)
    tcfg = MapperTrainConfig(optimizer=_optimizer(config), lr=float(config.lr), batch_size=int(config.batch_size),
                             clip_lambda=float(config.clip_lambda), l2_lambda=_l2_lambda(config),
                             id_lambda=_id_lambda(config), noise_mode=config.noise_mode,
                             precision=str(config.precision))
    try:
        tcfg.validate()
    except ValueError as e:
        raise ValueError(f"--config.{e}") from None
    return mcfg, tcfg


def validate(config) -> None:
    build_configs(config)
    io_utils.parse_list(config.prompts, "--config.prompts")
    if config.id_lambda is not None and float(config.id_lambda) > 0 and not config.arcface:
        raise ValueError(f"--config.id_lambda={config.id_lambda} needs --config.arcface=model_ir_se50.pth "
                         "(or a converted folder); leave id_lambda unset to train without the ID term")
    for flag in ("latents_train", "latents_test"):
        path = getattr(config, flag)
        if path is not None and not pathlib.Path(path).is_file():
            raise ValueError(f"--config.{flag}={path}: file not found (expected .npy/.npz/.pt W+ latents)")
    for flag in ("train_size", "test_size", "test_batch_size", "num_samples", "max_to_keep"):
        if int(getattr(config, flag)) < (0 if flag == "num_samples" else 1):
            raise ValueError(f"--config.{flag}={getattr(config, flag)}: expected a positive integer")
    if _max_steps(config) < 1:
        raise ValueError(f"--config.max_steps={config.max_steps}: expected >= 1")
    if config.noise_mode not in ("const", "none"):
        raise ValueError(f"--config.noise_mode={config.noise_mode!r}: expected 'const' or 'none' (deterministic)")


def load_data(G, config):
    """(w_train, w_test) as float32 (N, num_ws, w_dim): from files, or sampled with truncation."""
    from ..checkpoints.latents import load_latents
    from ..editing.mapper import sample_latents
    psi = float(config.truncation_psi)
    if config.latents_train is not None:
        w_train = load_latents(config.latents_train, G.num_ws, G.cfg.w_dim)
    else:
        w_train = sample_latents(G, int(config.train_size), int(config.data_seed), psi)
    if config.latents_test is not None:
        w_test = load_latents(config.latents_test, G.num_ws, G.cfg.w_dim)
    else:
        w_test = sample_latents(G, int(config.test_size), int(config.data_seed) + 1, psi)
    return w_train, w_test


def prepare(config) -> dict:
    """Load models and data; returns the keyword arguments of :func:`styleclip_jax.editing.mapper.fit`
    (minus ``workdir``)."""
    import dataclasses as dc

    from ..models.arcface import load_arcface
    from ..models.clip import load_clip
    from ..loaders import load_generator
    validate(config)
    mcfg, tcfg = build_configs(config)
    prompts = io_utils.parse_list(config.prompts, "--config.prompts")
    G = load_generator(config.generator)
    mcfg = dc.replace(mcfg, latent_dim=G.cfg.w_dim)
    clip = load_clip(config.clip_model, preprocess=config.clip_preprocess)
    arc = load_arcface(config.arcface) if config.arcface and tcfg.id_lambda > 0 else None
    w_train, w_test = load_data(G, config)
    text = np.asarray(clip.encode_texts(prompts))
    fingerprint = {k: (None if getattr(config, k) is None else str(getattr(config, k)))
                   for k in ("generator", "clip_model", "clip_preprocess", "arcface", "latents_train",
                             "latents_test", "train_size", "test_size", "truncation_psi", "data_seed")}
    return dict(G=G, clip=clip, arc=arc, w_train=w_train, w_test=w_test, text_embs=text, prompts=prompts,
                mcfg=mcfg, tcfg=tcfg, max_steps=_max_steps(config), seed=int(config.seed),
                test_batch_size=int(config.test_batch_size), val_every=int(config.val_every),
                ckpt_every=int(config.ckpt_every), log_every=int(config.log_every),
                image_every=int(config.image_every), num_samples=int(config.num_samples),
                max_to_keep=int(config.max_to_keep), tensorboard=bool(config.tensorboard),
                run_info={"fingerprint": fingerprint, "generator": str(config.generator),
                          "clip_model": str(config.clip_model)})


def run(config, workdir: str) -> dict:
    from ..editing.mapper import fit
    kw = prepare(config)
    K = len(kw["prompts"])
    print(f"training {K} mapper(s) x {kw['max_steps']} steps ({kw['mcfg'].mapper_type}, {kw['tcfg'].optimizer} "
          f"lr {kw['tcfg'].lr}, batch {kw['tcfg'].batch_size}, lambdas clip/l2/id "
          f"{kw['tcfg'].clip_lambda}/{kw['tcfg'].l2_lambda}/{kw['tcfg'].id_lambda}) on "
          f"{len(kw['w_train'])} train / {len(kw['w_test'])} test latents -> {workdir}")
    out = fit(workdir=workdir, **kw)
    if out["finished"]:
        for k, p in enumerate(kw["prompts"]):
            print(f"  {p!r}: best val loss {out['best_val'][k]:.4f} -> {workdir}/best/{k:02d}, "
                  f"final -> {out['final_dirs'][k]}")
    return out


if __name__ == "__main__":  # python -m styleclip_jax.jobs.mapper_train --workdir=... [--config.x=...]
    import sys

    from absl import app, flags
    from ml_collections import config_flags

    _cfg = pathlib.Path(__file__).resolve().parents[2] / "configs" / "mapper_train.py"
    flags.DEFINE_string("workdir", "runs/mapper_train", "Output / resume directory.")
    config_flags.DEFINE_config_file("config", str(_cfg), "Config file.", lock_config=True)

    def _main(argv):
        del argv
        try:
            validate(flags.FLAGS.config)
            run(flags.FLAGS.config, flags.FLAGS.workdir)
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"error: {e}")

    app.run(_main)
