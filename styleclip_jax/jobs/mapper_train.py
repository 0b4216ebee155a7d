"""`--mode=mapper_train`: train K latent mappers (one per prompt) with exact resume.

The driver around the jittable core in `styleclip_jax.editing.mapper`: the orbax CheckpointManager (params,
optimiser state, step, data-order key, best validation losses), exact resume after a kill, JSON-lines
metrics (+ TensorBoard), validation with best-mapper export, sample grids and a progress bar. Workdir::

    checkpoints/<step>/      orbax training state (the last few)      run.json        prompts + settings
    metrics.jsonl            one JSON object per (step, prompt, split) samples/step_XXXXXX.png
    best/<k:02d>/            best-validation mapper of prompt k       final/<k:02d>/  mapper at the end

Shapes-world preset (configs/mapper_train.py): Adam lr 0.2, l2_lambda 2.0, batch 4, 1000 steps instead of the
official Ranger lr 0.5 / 0.8 / batch 2. In the current world (v2) that makes 28 of 32 held-out latents green
with their shape kept, where lr 0.05 / l2 0.2 / batch 2 / 400 steps turned 26 green but changed 6 shapes
(`scripts/measure_shapes_edits.py --only mapper`). Earlier, with the first shapes world's models
("a green shape", lr 0.5, batch 2, green share of shape pixels of 32
held-out latents; the patch-16 CLIP shipped before 2026-11-27, except the last figure): Ranger 0.04 -> 0.08
after 2000 steps at l2 0.8 and 0.04 -> 0.04 after 200 steps at l2 0.2 (presumably its eps 1e-5 on sqrt(v)
dwarfs the tiny world's gradients at the lr-multiplied mapper weights); Adam (eps 1e-8) at l2 0.2 0.04 -> 0.50
in 200 steps (0.04 -> 0.56 with the current patch-8 CLIP). l2 0.8 / 0.4 / 0.2 with Adam, 400 steps: green share
0.04 -> 0.14 / 0.23 / 0.58 (recolouring a shape needs a larger step in this world's small W than a hair-colour
edit does in FFHQ's).
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import outputs as io_utils
from ..errors import ConfigError, InputError
from ..memory import memory_args


def build_configs(config):
    """(MapperConfig without latent_dim, MapperTrainConfig) from the flags, with errors naming the flag."""
    from ..editing.mapper import MapperTrainConfig
    from ..models.mapper import MAPPER_TYPES, MapperConfig
    m, o, lo = config.mapper, config.optim, config.loss
    if m.type not in ("LevelsMapper", "SingleMapper"):
        extra = " (the StyleSpace mapper is supported for inference only)" if m.type in MAPPER_TYPES else ""
        raise ConfigError(f"--config.mapper.type={m.type!r}: expected LevelsMapper or SingleMapper{extra}")
    if m.pixelnorm_axis not in ("rows", "features"):
        raise ConfigError(f"--config.mapper.pixelnorm_axis={m.pixelnorm_axis!r}: expected 'rows' or 'features'")
    if m.type == "LevelsMapper" and m.no_coarse and m.no_medium and m.no_fine:
        raise ConfigError("--config.mapper.no_coarse/no_medium/no_fine: all three levels are off; nothing to train")
    mcfg = MapperConfig(mapper_type=m.type, no_coarse_mapper=bool(m.no_coarse), no_medium_mapper=bool(m.no_medium),
                        no_fine_mapper=bool(m.no_fine), pixelnorm_axis=m.pixelnorm_axis)
    tcfg = MapperTrainConfig(optimizer=str(o.optimizer), lr=float(o.lr), batch_size=int(o.batch_size),
                             clip_lambda=float(lo.clip_lambda), l2_lambda=float(lo.l2_lambda),
                             id_lambda=float(lo.id_lambda) if config.arcface else 0.0, noise_mode=config.noise_mode,
                             precision=str(config.precision),
                             remat=bool(config.remat))
    try:
        tcfg.validate()
    except ValueError as e:
        field = str(e).split("=", 1)[0].strip()
        section = {"optimizer": "optim.", "lr": "optim.", "batch_size": "optim.", "clip_lambda": "loss.",
                   "l2_lambda": "loss.", "id_lambda": "loss."}.get(field, "")
        raise ConfigError(f"--config.{section}{e}") from None
    return mcfg, tcfg


def validate(config) -> None:
    if config.generator is None:
        raise ConfigError("--config.generator is required with this preset (an NVlabs .pkl, a rosinality .pt or "
                          "a converted folder)")
    build_configs(config)
    memory_args(config)
    io_utils.parse_list(config.prompts, "--config.prompts")
    for flag in ("latents_train", "latents_test"):
        path = getattr(config.data, flag)
        if path is not None and not pathlib.Path(path).expanduser().is_file():
            raise ConfigError(f"--config.data.{flag}={path}: file not found (expected .npy/.npz/.pt W+ latents)")
    for section, flag, low in (("data", "train_size", 1), ("data", "test_size", 1), ("log", "test_batch_size", 1),
                               ("log", "num_samples", 0), ("log", "max_to_keep", 1), ("optim", "max_steps", 1)):
        if int(config[section][flag]) < low:
            raise ConfigError(f"--config.{section}.{flag}={config[section][flag]}: expected an integer >= {low}")
    if float(config.log.ckpt_minutes) <= 0:
        raise ConfigError(f"--config.log.ckpt_minutes={config.log.ckpt_minutes}: expected a positive number")
    if config.noise_mode not in ("const", "none"):
        raise ConfigError(f"--config.noise_mode={config.noise_mode!r}: expected 'const' or 'none' (deterministic)")


def load_data(G, config):
    """(w_train, w_test) as float32 (N, num_ws, w_dim): from files, or sampled with truncation."""
    from ..checkpoints.latents import load_latents
    from ..editing.mapper import sample_latents
    d = config.data
    psi = float(d.truncation_psi)
    if d.latents_train is not None:
        w_train = load_latents(pathlib.Path(d.latents_train).expanduser(), G.num_ws, G.cfg.w_dim)
    else:
        w_train = sample_latents(G, int(d.train_size), int(d.seed), psi)
    if d.latents_test is not None:
        w_test = load_latents(pathlib.Path(d.latents_test).expanduser(), G.num_ws, G.cfg.w_dim)
    else:
        w_test = sample_latents(G, int(d.test_size), int(d.seed) + 1, psi)
    return w_train, w_test


def prepare(config) -> dict:
    """Load models and data; returns the keyword arguments of :func:`train` (minus ``workdir``)."""
    from ..loaders import load_generator
    from ..models.arcface import load_arcface
    from ..models.clip import load_clip
    mcfg, tcfg = build_configs(config)
    prompts = io_utils.parse_list(config.prompts, "--config.prompts")
    G = load_generator(config.generator)
    mcfg = dataclasses.replace(mcfg, latent_dim=G.cfg.w_dim)
    clip = load_clip(config.clip_model, preprocess=config.clip_preprocess)
    arc = load_arcface(config.arcface) if config.arcface and tcfg.id_lambda > 0 else None
    w_train, w_test = load_data(G, config)
    text = np.asarray(clip.encode_texts(prompts))
    d = config.data
    fingerprint = {"generator": str(config.generator), "clip_model": str(config.clip_model),
                   "clip_preprocess": str(config.clip_preprocess),
                   "arcface": None if config.arcface is None else str(config.arcface),
                   **{k: (None if d[k] is None else str(d[k]))
                      for k in ("latents_train", "latents_test", "train_size", "test_size", "truncation_psi")},
                   "data_seed": str(d.seed)}
    lg = config.log
    return dict(G=G, clip=clip, arc=arc, w_train=w_train, w_test=w_test, text_embs=text, prompts=prompts,
                mcfg=mcfg, tcfg=tcfg, max_steps=int(config.optim.max_steps), seed=int(config.seed),
                test_batch_size=int(lg.test_batch_size), val_every=int(lg.val_every),
                ckpt_every=int(lg.ckpt_every), ckpt_minutes=float(lg.ckpt_minutes), log_every=int(lg.every),
                image_every=int(lg.image_every), num_samples=int(lg.num_samples),
                max_to_keep=int(lg.max_to_keep), tensorboard=bool(lg.tensorboard), **memory_args(config),
                run_info={"fingerprint": fingerprint, "generator": str(config.generator),
                          "clip_model": str(config.clip_model)})


def run(config, workdir: str) -> dict:
    kw = prepare(config)
    K = len(kw["prompts"])
    t = kw["tcfg"]
    print(f"training {K} mapper(s) x {kw['max_steps']} steps ({kw['mcfg'].mapper_type}, {t.optimizer} lr {t.lr}, "
          f"batch {t.batch_size}, lambdas clip/l2/id {t.clip_lambda}/{t.l2_lambda}/{t.id_lambda}) on "
          f"{len(kw['w_train'])} train / {len(kw['w_test'])} test latents -> {workdir}")
    out = train(workdir=workdir, **kw)
    if out["finished"]:
        for k, p in enumerate(kw["prompts"]):
            print(f"  {p!r}: best val loss {out['best_val'][k]:.4f} -> {workdir}/best/{k:02d}, "
                  f"final -> {out['final_dirs'][k]}")
    return out


# ---------------------------------------------------------------------------------------------- training loop
def _is_main() -> bool:
    import jax
    return jax.process_index() == 0


def _checkpoint_manager(directory: pathlib.Path, max_to_keep: int):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
                                        enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.absolute(), options=opts)


def _save_state(mngr, state):
    import orbax.checkpoint as ocp
    mngr.save(int(state["step"]), args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()


def _restore_state(mngr, step, template):
    import jax
    import orbax.checkpoint as ocp
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


def _read_metrics_upto(path: pathlib.Path, step: int) -> List[str]:
    """Lines of a metrics.jsonl with step <= ``step`` (drops a torn last line after kill -9)."""
    keep = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(rec.get("step", 0)) <= step:
                keep.append(line)
    return keep


class _Logger:
    """metrics.jsonl (+ TensorBoard if tensorboardX or torch.utils.tensorboard is importable)."""

    def __init__(self, workdir: pathlib.Path, resume_step: int, tensorboard: bool):
        self.path = workdir / "metrics.jsonl"
        self.enabled = _is_main()
        self.tb = None
        if not self.enabled:
            return
        lines = _read_metrics_upto(self.path, resume_step)
        with io_utils.atomic_path(self.path) as tmp:
            pathlib.Path(tmp).write_text("".join(l + "\n" for l in lines))
        self.f = open(self.path, "a")
        if tensorboard:
            for mod in ("tensorboardX", "torch.utils.tensorboard"):
                try:
                    self.tb = __import__(mod, fromlist=["SummaryWriter"]).SummaryWriter(str(workdir / "tb"))
                    break
                except Exception:  # optional dependency
                    continue

    def write(self, step: int, split: str, prompts: Sequence[str], metrics: Mapping[str, np.ndarray], **extra):
        if not self.enabled:
            return
        for k, prompt in enumerate(prompts):
            rec = {"step": int(step), "split": split, "prompt_index": k, "prompt": prompt,
                   **{name: float(v[k]) for name, v in metrics.items()}, **extra}
            self.f.write(json.dumps(rec) + "\n")
            if self.tb is not None:
                for name, v in metrics.items():
                    self.tb.add_scalar(f"{split}/{k:02d}/{name}", float(v[k]), step)
        self.f.flush()

    def close(self):
        if self.enabled:
            self.f.close()
            if self.tb is not None:
                self.tb.close()


def _mapper_for(params_k, k, mcfg):
    import jax
    from ..editing.mapper import Mapper
    return Mapper(jax.tree_util.tree_map(lambda a: np.asarray(a[k]), params_k), mcfg)


def checkpoint_interval(max_steps: int, ckpt_every: int) -> int:
    """Steps between checkpoints: ``ckpt_every``, but at least every 10 % of the run (so that a kill loses
    little even with the default of a short run); <= 0 disables step-based checkpoints."""
    if ckpt_every <= 0:
        return 0
    return max(1, min(int(ckpt_every), math.ceil(max_steps / 10)))


def train(G, clip, w_train, w_test, text_embs, prompts: Sequence[str], workdir, *,
          mcfg, tcfg, max_steps: int, arc=None, seed: int = 0,
          test_batch_size: int = 8, val_every: int = 2000, ckpt_every: int = 1000, ckpt_minutes: float = 5.0,
          log_every: int = 50, image_every: int = 100, num_samples: int = 4, max_to_keep: int = 2,
          tensorboard: bool = True, run_info: Optional[Mapping] = None, stop_after: Optional[int] = None,
          verbose: bool = True, devices=None, memory_fraction: float = 0.9,
          memory_budget: Optional[int] = None) -> Dict:
    """Train K = len(prompts) mappers for ``max_steps`` steps in ``workdir``, resuming if it holds a
    checkpoint of the same run.

    Args:
      G, clip, arc: generator, CLIP bundle, ArcFace (or None: no ID term).
      w_train: (N_train, num_ws, w_dim) training latents; w_test: (N_test, ...) validation latents.
      text_embs: (K, D) unit text embeddings, prompts: their K strings (for logs and metadata).
      mcfg, tcfg: mapper / training configs. seed: mapper init (``PRNGKey(seed)``) and data order
        (``fold_in(PRNGKey(seed), 1)``).
      val_every / ckpt_every / log_every / image_every: intervals in steps (<= 0 disables; an enabled
        one also fires at the last step; the last step is always checkpointed). Checkpoints are also
        written at least every 10 % of ``max_steps`` and every ``ckpt_minutes`` of wall time.
      run_info: JSON dict stored in ``run.json``; on resume its ``fingerprint`` entry must match.
      stop_after: testing/preemption aid: return after this many steps of THIS call without the final
        checkpoint or exports (as if the process had been killed).
      devices: each batch is split over these (default: all devices; the batch size must be a multiple of
        their count), the models and the training state are replicated, so the gradient is the mean over
        the whole batch as on one device; checkpoints restore onto any device count.
      memory_fraction, memory_budget: the bytes per device a step may use (`styleclip_jax.memory`). The batch is
        a hyper-parameter, so it is not shrunk: a step that does not fit (XLA's analysis of the compiled step)
        fails before training with a ConfigError giving needed vs available bytes.
    Returns:
      dict with ``params`` (K-stacked numpy mapper params), ``step``, ``best_val`` (K,), ``resumed_from``,
      ``final_dirs``, ``best_dirs`` and ``seconds``.
    """
    import jax
    import jax.numpy as jnp

    from ..editing.mapper import (batch_indices, current_params, eval_losses, init_train_state, sample_images,
                                  train_step, uses_id)
    tcfg.validate()
    workdir = pathlib.Path(workdir)
    K = len(prompts)
    text_embs = jnp.asarray(text_embs, jnp.float32)
    if text_embs.shape[0] != K:
        raise InputError(f"{text_embs.shape[0]} text embeddings for {K} prompts")
    w_train = np.asarray(w_train, np.float32)
    w_test = np.asarray(w_test, np.float32)
    for name, arr in (("training", w_train), ("test", w_test)):
        if arr.ndim != 3 or arr.shape[1:] != (G.num_ws, G.cfg.w_dim):
            raise InputError(f"{name} latents have shape {arr.shape}, expected (N, {G.num_ws}, {G.cfg.w_dim})")
    if mcfg.latent_dim != G.cfg.w_dim:
        raise InputError(f"mapper latent_dim {mcfg.latent_dim} != generator w_dim {G.cfg.w_dim}")
    if len(w_train) < tcfg.batch_size:
        raise InputError(f"{len(w_train)} training latents < batch_size {tcfg.batch_size}")
    if len(w_test) < 1:
        raise InputError("no test latents")
    if tcfg.id_lambda > 0 and arc is None:
        raise InputError("id_lambda > 0 needs ArcFace weights (arc=...)")
    arc_used = arc if uses_id(arc, tcfg) else None
    from .. import parallel
    mesh = parallel.data_mesh(devices)
    if tcfg.batch_size % mesh.size:
        raise ConfigError(f"--config.optim.batch_size={tcfg.batch_size}: must be a multiple of the {mesh.size} "
                          "devices the batch is split over")
    rep_s, bat_s = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    if mesh.size > 1:
        G, clip, arc_used, text_embs = jax.device_put((G, clip, arc_used, text_embs), rep_s)

    key = jax.random.PRNGKey(seed)
    template = init_train_state(key, jax.random.fold_in(key, 1), mcfg, tcfg, K)
    mngr = _checkpoint_manager(workdir / "checkpoints", max_to_keep)
    run_path = workdir / "run.json"
    info = {"prompts": list(prompts), "mapper_config": mcfg.to_dict(),
            "train_config": dataclasses.asdict(tcfg), "seed": seed, **dict(run_info or {})}
    latest = mngr.latest_step()
    if latest is not None:
        if run_path.is_file():
            old = json.loads(run_path.read_text())
            diff = [k for k in ("prompts", "mapper_config", "train_config", "seed", "fingerprint")
                    if old.get(k) != info.get(k)]
            if diff:
                raise InputError(f"{workdir}: holds a checkpoint of a different run (changed: {diff}); "
                                 "use a new --workdir or delete the old one")
        state = _restore_state(mngr, latest, template)
    else:
        state = template
    if mesh.size > 1:
        state = jax.device_put(state, rep_s)
    start = int(state["step"])
    from .. import memory
    avail = memory.available_bytes(memory_fraction, memory_budget, jax.local_devices()[0])
    if avail is not None:
        w_abs = jax.ShapeDtypeStruct((tcfg.batch_size,) + w_train.shape[1:], jnp.float32, sharding=bat_s)
        G_abs, clip_abs, arc_abs, state_abs, text_abs = memory.abstract((G, clip, arc_used, state, text_embs), rep_s)
        need = memory.program_bytes(train_step, G_abs, clip_abs, arc_abs, state_abs, w_abs, text_abs,
                                    mcfg=mcfg, tcfg=tcfg)
        if need > avail:
            raise ConfigError(f"mapper training: one step of {tcfg.batch_size // mesh.size} latents per device needs "
                              f"{need:,} bytes per device but {avail:,} are available (lower "
                              f"--config.optim.batch_size, set --config.remat=True, add devices, or raise "
                              f"--config.memory_fraction / --config.memory_budget_mb)")
    if verbose and _is_main():
        print(parallel.describe(mesh, tcfg.batch_size // mesh.size, "latents"), flush=True)
    if _is_main():
        workdir.mkdir(parents=True, exist_ok=True)
        io_utils.write_json(run_path, {**info, "max_steps": int(max_steps)})
    logger = _Logger(workdir, start, tensorboard)
    w_samples = w_test[:num_samples]
    best_dirs = [workdir / "best" / f"{k:02d}" for k in range(K)]
    final_dirs = [workdir / "final" / f"{k:02d}" for k in range(K)]

    def validate(step):
        params_k = current_params(state, tcfg)
        sums, n = None, 0
        for i in range(0, len(w_test), test_batch_size):
            wb = jnp.asarray(w_test[i:i + test_batch_size])
            m = eval_losses(G, clip, arc_used, params_k, wb, text_embs, mcfg=mcfg, tcfg=tcfg)
            m = {k: np.asarray(v, np.float64) * len(wb) for k, v in m.items()}
            sums = m if sums is None else {k: sums[k] + m[k] for k in m}
            n += len(wb)
        return {k: v / n for k, v in sums.items()}

    def save_samples(step):
        if not _is_main() or len(w_samples) == 0:
            return
        params_k = current_params(state, tcfg)
        src, edited = sample_images(G, params_k, jnp.asarray(w_samples), mcfg=mcfg, noise_mode=tcfg.noise_mode)
        cells = np.concatenate([np.asarray(src)[None], np.asarray(edited)], 0)  # (1+K, N, H, W, 3)
        cells = np.transpose(cells, (1, 0, 2, 3, 4)).reshape(-1, *src.shape[1:])
        io_utils.save_grid(workdir / "samples" / f"step_{step:06d}.png", cells, rows=len(w_samples), cols=1 + K)

    def export(dirs, step, extra):
        if not _is_main():
            return
        params_k = current_params(state, tcfg)
        for k in range(K):
            if dirs[k] is None:
                continue
            meta = {"prompt": prompts[k], "step": int(step), "trained_by": "styleclip_jax.jobs.mapper_train.train",
                    "train_config": dataclasses.asdict(tcfg), **{kk: v[k] for kk, v in extra.items()},
                    **{kk: v for kk, v in (run_info or {}).items() if kk in ("generator", "clip_model")}}
            _mapper_for(params_k, k, mcfg).save(dirs[k], extra=meta, overwrite=True)

    t0 = last_ckpt = time.time()
    n_train = len(w_train)
    every = checkpoint_interval(max_steps, ckpt_every)
    bar = None
    talk = verbose and _is_main()
    if talk:
        print(f"resumed from {workdir / 'checkpoints'} at step {start}" if start > 0 else
              f"starting fresh: no checkpoint in {workdir / 'checkpoints'}")
        if start < max_steps:
            print("compiling the training step...", flush=True)
    done_this_call = 0
    step = start
    try:
        while step < max_steps:
            idx = np.asarray(batch_indices(state["data_key"], step, num_examples=n_train,
                                           batch_size=tcfg.batch_size))
            batch = jax.device_put(jnp.asarray(w_train[idx]), bat_s)
            state, m = train_step(G, clip, arc_used, state, batch, text_embs,
                                  mcfg=mcfg, tcfg=tcfg)
            step += 1
            done_this_call += 1
            if talk and bar is None:  # the rate (and ETA) starts after the first, compiled, step
                from tqdm.auto import tqdm
                jax.block_until_ready(state["step"])
                bar = tqdm(total=max_steps, initial=step - 1, desc=f"mapper x{K}", unit="step", dynamic_ncols=True)
            last = step == max_steps
            if log_every > 0 and (step % log_every == 0 or last):
                m = {k: np.asarray(v) for k, v in m.items()}
                logger.write(step, "train", prompts, m, seconds=round(time.time() - t0, 3))
                if bar is not None:
                    bar.set_postfix(loss=" ".join(f"{v:.4f}" for v in m["loss"]))
            if val_every > 0 and (step % val_every == 0 or last):
                v = validate(step)
                logger.write(step, "val", prompts, v)
                best = np.asarray(state["best_val"])
                improved = v["loss"] < best
                if improved.any():
                    export([d if improved[k] else None for k, d in enumerate(best_dirs)], step,
                           {"val_loss": [float(x) for x in v["loss"]]})
                    state = dict(state, best_val=jnp.asarray(np.where(improved, v["loss"], best), jnp.float32),
                                 best_step=jnp.where(jnp.asarray(improved), step, state["best_step"]))
            if image_every > 0 and (step % image_every == 0 or last):
                save_samples(step)
            if (every > 0 and step % every == 0) or last or time.time() - last_ckpt >= 60 * ckpt_minutes:
                _save_state(mngr, state)
                last_ckpt = time.time()
            if bar is not None:
                bar.update(1)
            if stop_after is not None and done_this_call >= stop_after and not last:
                break
        else:
            export(final_dirs, step, {"best_val_loss": [float(x) if np.isfinite(x) else None
                                                        for x in np.asarray(state["best_val"])],
                                      "best_step": [int(x) for x in np.asarray(state["best_step"])]})
    finally:
        if bar is not None:
            bar.close()
        logger.close()
        mngr.wait_until_finished()
        mngr.close()
    finished = step >= max_steps
    return {"params": jax.tree_util.tree_map(np.asarray, current_params(state, tcfg)), "step": step,
            "best_val": np.asarray(state["best_val"]), "resumed_from": start, "finished": finished,
            "final_dirs": [str(d) for d in final_dirs] if finished else [],
            "best_dirs": [str(d) for d in best_dirs], "seconds": time.time() - t0}
