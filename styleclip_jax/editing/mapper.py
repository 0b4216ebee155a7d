"""StyleCLIP latent mappers (method 2): load / apply trained mappers, and train K of them at once.

A mapper ``M_t`` is trained for one text prompt ``t`` so that ``w_hat = w + 0.1 * M_t(w)`` edits any
W+ latent toward ``t`` in one forward pass (``mapper/training/coach.py``)::

    m = load_mapper("runs/mapper/best/00")      # our folder, a converted folder, or an official .pt
    delta = m(w)                                # (N, num_ws, w_dim) -> M(w), same shape
    w_edit = m.apply(w, alpha=1.0)              # w + 0.1 * alpha * M(w)

Training (as the official coach, README section 3.5)::

    x     = G(w)                                (no gradient; noise_mode "const" = randomize_noise=False)
    w_hat = w + 0.1 * M(w);  x_hat = G(w_hat)
    loss  = clip_lambda * mean_i CLIP(x_hat_i, t) + l2_lambda * mean((w_hat - w)^2)
            + id_lambda * mean_i (1 - <R(x_hat_i), stopgrad(R(x_i))>)

with Ranger (lr 0.5, optax lookahead around the official RAdam) or Adam. K prompts are trained in
one program: the mapper params and optimiser states carry a leading K axis and the per-prompt update
is ``jax.vmap``-ed over (params, opt state, text embedding); every prompt sees the same data batches
and starts from the same init (same seed), so mapper k equals what training prompt k alone gives.
The generator image ``x`` and its identity features are computed once per batch and shared.

Pure, jittable core: :func:`mapper_loss`, :func:`train_step`, :func:`eval_losses`,
:func:`batch_indices`, :func:`init_train_state`. The training loop (orbax checkpoints, exact resume,
metrics, best-mapper export, sample grids, progress) is the job driver
:func:`styleclip_jax.jobs.mapper_train.train`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from typing import Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..models import ops
from . import optim
from ..models.mapper import MapperConfig, apply_mapper, init_mapper_params, read_styleclip_mapper_pt

__all__ = ["Mapper", "load_mapper", "MapperTrainConfig", "mapper_loss", "train_step", "eval_losses",
           "batch_indices", "init_train_state", "current_params", "make_optimizer",
           "sample_latents", "sample_images", "STEP_SCALE"]

STEP_SCALE = 0.1  # w_hat = w + 0.1 * M(w), hard-coded in coach.py and inference.py
MAPPER_KIND = "styleclip_mapper"


# ---------------------------------------------------------------------------------------
# Trained mapper object + loading
# ---------------------------------------------------------------------------------------
@jax.tree_util.register_pytree_node_class
class Mapper:
    """A latent mapper: ``params`` (pytree, official key layout) + static :class:`MapperConfig`.

    A pytree (params are the leaves), so it can be passed to ``jax.jit`` as an argument.
    ``info`` holds metadata (prompt, source, step) and is not part of the pytree data.
    """

    def __init__(self, params, config: Union[MapperConfig, Mapping], info: Optional[Mapping] = None):
        self.params = params
        self.config = config if isinstance(config, MapperConfig) else MapperConfig.from_dict(config)
        self.info = dict(info or {})

    def tree_flatten(self):
        return (self.params,), (self.config, tuple(sorted((k, json.dumps(v, default=str))
                                                          for k, v in self.info.items())))

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = cls.__new__(cls)
        obj.params = children[0]
        obj.config = aux[0]
        obj.info = {k: json.loads(v) for k, v in aux[1]}
        return obj

    @property
    def prompt(self) -> Optional[str]:
        return self.info.get("prompt")

    def __call__(self, w):
        """``M(w)``: (N, num_ws, w_dim) -> (N, num_ws, w_dim) (StyleSpace mapper: list/dict of S codes)."""
        if self.config.mapper_type != "WithoutToRGBStyleSpaceMapper":
            w = jnp.asarray(w, jnp.float32)
            if w.ndim != 3 or w.shape[-1] != self.config.latent_dim:
                raise ValueError(f"mapper expects w+ of shape (N, num_ws, {self.config.latent_dim}), "
                                 f"got {tuple(w.shape)}")
        return apply_mapper(self.params, w, self.config)

    def apply(self, w, alpha: float = 1.0):
        """``w + 0.1 * alpha * M(w)`` (same structure as ``w``)."""
        delta = self(w)
        return jax.tree_util.tree_map(lambda a, d: a + (STEP_SCALE * alpha) * d, w, delta)

    def save(self, directory, extra: Optional[Mapping] = None, overwrite: bool = False):
        """Write a folder readable by :func:`load_mapper` (``checkpoints.save_params``, atomic)."""
        from ..checkpoints import save_params
        info = {**self.info, **dict(extra or {})}
        return save_params(directory, self.params, {"kind": MAPPER_KIND, **self.config.to_dict()},
                           extra=info, overwrite=overwrite)

    def __repr__(self):
        n = sum(int(np.prod(np.shape(a))) for a in jax.tree_util.tree_leaves(self.params))
        return (f"Mapper({self.config.mapper_type}, dim={self.config.latent_dim}, pixelnorm="
                f"{self.config.pixelnorm_axis}, n_params={n}, prompt={self.prompt!r})")


def _resolve_mapper_dir(p: pathlib.Path) -> pathlib.Path:
    """A mapper folder, or a training workdir with exactly one prompt (best/00, else final/00)."""
    if (p / "config.json").is_file():
        return p
    for sub in ("best", "final"):
        d = p / sub
        if d.is_dir():
            entries = sorted(e for e in d.iterdir() if (e / "config.json").is_file())
            if len(entries) == 1:
                return entries[0]
            if len(entries) > 1:
                raise ValueError(f"{p}: a training workdir with {len(entries)} mappers; pass one of "
                                 f"{[str(e) for e in entries]}")
    raise FileNotFoundError(f"{p}: not a mapper folder (no config.json) nor a mapper training workdir "
                            "(no best/ or final/ with a mapper)")


def load_mapper(path, pixelnorm_axis: str = "rows") -> Mapper:
    """Load a latent mapper.

    Args:
      path: a folder written by mapper training (``best/00``, ``final/00``, or the workdir of a
        one-prompt run) or by ``checkpoints_convert/convert_mapper.py``; or an official StyleCLIP
        mapper checkpoint ``.pt`` (``{'state_dict': {'mapper.*', 'decoder.*'}, 'opts'}``, needs torch).
      pixelnorm_axis: for ``.pt`` files only: ``"rows"`` = official behaviour (PixelNorm over the w+
        rows axis, README pitfall 1). Folders record their own variant in ``config.json``.
    Returns:
      :class:`Mapper`.
    """
    p = pathlib.Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise FileNotFoundError(f"mapper {p} does not exist (expected a mapper folder or an official .pt)")
    if p.is_file():
        params, cfg, info = read_styleclip_mapper_pt(p, pixelnorm_axis, return_info=True)
        opts = info["opts"]
        meta = {"source": str(p), "format": "official_pt"}
        if opts.get("description"):
            meta["prompt"] = str(opts["description"])
        return Mapper(params, cfg, meta)
    from ..checkpoints import load_extra, load_params
    d = _resolve_mapper_dir(p)
    params, config = load_params(d)
    kind = config.pop("kind", MAPPER_KIND)
    if kind != MAPPER_KIND:
        raise ValueError(f"{d}: checkpoint kind is {kind!r}, expected {MAPPER_KIND!r}")
    info = load_extra(d)
    if "prompt" not in info and isinstance(info.get("official_opts"), Mapping):
        if info["official_opts"].get("description"):
            info["prompt"] = str(info["official_opts"]["description"])
    info.setdefault("source", str(d))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    return Mapper(params, MapperConfig.from_dict(config), info)


# ---------------------------------------------------------------------------------------
# Training: pure core
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MapperTrainConfig:
    """Training hyper-parameters (official defaults; hashable, used as a jit static argument).

    Attributes:
      optimizer: ``"ranger"`` (official) or ``"adam"`` (torch defaults betas (0.9, 0.999), eps 1e-8).
      lr: learning rate (0.5 official for Ranger).
      batch_size: latents per step (2).
      clip_lambda, l2_lambda, id_lambda: loss weights (1.0, 0.8, and 0.1 only with ArcFace).
      noise_mode: generator noise (``"const"`` = official ``randomize_noise=False``).
      precision: generator convolutions in ``"float32"`` (default) or ``"bfloat16"`` (bf16 inputs, float32
        accumulation; ``ops.modconv_for``).
      remat: recompute inside every synthesis layer in the backward pass (``jax.checkpoint``): less memory
        per image, about one more forward of compute (README, "Scaling out").
    """
    optimizer: str = "ranger"
    lr: float = 0.5
    batch_size: int = 2
    clip_lambda: float = 1.0
    l2_lambda: float = 0.8
    id_lambda: float = 0.0
    noise_mode: str = "const"
    precision: str = "float32"
    remat: bool = False

    def validate(self):
        ops.modconv_for(self.precision)  # validates
        if self.optimizer not in ("ranger", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r}: expected 'ranger' or 'adam'")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr}: expected > 0")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: expected >= 1")
        for k in ("clip_lambda", "l2_lambda", "id_lambda"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k}={getattr(self, k)}: expected >= 0")


def make_optimizer(tcfg: MapperTrainConfig) -> optax.GradientTransformation:
    """Ranger (acts on ``optax.LookaheadParams``) or Adam (acts on plain params)."""
    if tcfg.optimizer == "ranger":
        return optim.ranger(learning_rate=tcfg.lr)
    return optax.adam(tcfg.lr, b1=0.9, b2=0.999, eps=1e-8)


def _fast(opt_params, tcfg: MapperTrainConfig):
    return optim.fast_params(opt_params) if tcfg.optimizer == "ranger" else opt_params


def current_params(state: Mapping, tcfg: MapperTrainConfig):
    """The mapper params (leading K axis) the official code would hold: Ranger's fast weights."""
    return _fast(state["opt_params"], tcfg)


def init_train_state(init_key, data_key, mcfg: MapperConfig, tcfg: MapperTrainConfig, num_prompts: int):
    """Training state for K = ``num_prompts`` mappers (all start from the init drawn from ``init_key``).

    Returns a dict pytree: ``step`` () int32, ``opt_params`` (K-stacked params, or LookaheadParams of
    them), ``opt_state`` (K-stacked), ``data_key`` (2,) uint32, ``best_val`` (K,) float32 (+inf until
    the first validation), ``best_step`` (K,) int32.
    """
    params = init_mapper_params(init_key, mcfg)
    stacked = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (num_prompts,) + a.shape), params)
    opt_params = optim.init_params(stacked) if tcfg.optimizer == "ranger" else stacked
    opt_state = jax.vmap(make_optimizer(tcfg).init)(opt_params)
    return {"step": jnp.zeros((), jnp.int32), "opt_params": opt_params, "opt_state": opt_state,
            "data_key": jnp.asarray(data_key, jnp.uint32),
            "best_val": jnp.full((num_prompts,), jnp.inf, jnp.float32),
            "best_step": jnp.full((num_prompts,), -1, jnp.int32)}


def _render(G, w, noise_mode, precision="float32", remat=False):
    from ..models.generator import synthesis
    return synthesis(G.params, G.cfg, w, noise_mode, modconv=ops.modconv_for(precision), remat=remat)


def _id_features(arc, images):
    from ..models.arcface import features_fn
    return features_fn(arc.params, images, num_layers=arc.num_layers)


def mapper_loss(params, w, x_feats_id, text_emb, *, G, clip, arc, mcfg: MapperConfig,
                tcfg: MapperTrainConfig):
    """Loss of ONE mapper on one batch.

    Args:
      params: mapper params (no K axis).
      w: (B, num_ws, w_dim) source latents.
      x_feats_id: (B, 512) stop-gradient identity features of G(w), or None (no ID term).
      text_emb: (D,) unit text embedding.
    Returns:
      (scalar loss, {"loss", "clip", "l2", "id"} scalars).
    """
    from ..models.clip import clip_loss_from_features, image_features
    w_hat = w + STEP_SCALE * apply_mapper(params, w, mcfg)
    x_hat = _render(G, w_hat, tcfg.noise_mode, tcfg.precision, tcfg.remat)
    e = image_features(clip.params, x_hat, module=clip.module, preprocess=clip.preprocess)
    c_loss = jnp.mean(clip_loss_from_features(e, text_emb[None], clip.params["logit_scale"]))
    l2 = jnp.mean(jnp.square(w_hat - w))
    loss = tcfg.clip_lambda * c_loss + tcfg.l2_lambda * l2
    if x_feats_id is not None:
        f = _id_features(arc, x_hat)
        id_l = jnp.mean(1.0 - jnp.sum(f * jax.lax.stop_gradient(x_feats_id), axis=-1))
        loss = loss + tcfg.id_lambda * id_l
    else:
        id_l = jnp.zeros(())
    return loss, {"loss": loss, "clip": c_loss, "l2": l2, "id": id_l}


def uses_id(arc, tcfg):
    return arc is not None and tcfg.id_lambda > 0


@functools.partial(jax.jit, static_argnames=("mcfg", "tcfg"))
def train_step(G, clip, arc, state, w, text_embs, *, mcfg: MapperConfig, tcfg: MapperTrainConfig):
    """One optimiser step of all K mappers on the batch ``w`` (B, num_ws, w_dim).

    ``text_embs``: (K, D). Returns (new state, metrics dict of (K,) arrays, computed before the step).
    """
    tx = make_optimizer(tcfg)
    feats = None
    if uses_id(arc, tcfg):
        feats = jax.lax.stop_gradient(_id_features(arc, _render(G, w, tcfg.noise_mode, tcfg.precision)))

    def one(opt_params, opt_state, text):
        grad_fn = jax.value_and_grad(
            functools.partial(mapper_loss, G=G, clip=clip, arc=arc, mcfg=mcfg, tcfg=tcfg), has_aux=True)
        (_, aux), grads = grad_fn(_fast(opt_params, tcfg), w, feats, text)
        updates, opt_state = tx.update(grads, opt_state, opt_params)
        return optax.apply_updates(opt_params, updates), opt_state, aux

    opt_params, opt_state, aux = jax.vmap(one)(state["opt_params"], state["opt_state"], text_embs)
    new = dict(state, step=state["step"] + 1, opt_params=opt_params, opt_state=opt_state)
    return new, aux


@functools.partial(jax.jit, static_argnames=("mcfg", "tcfg"))
def eval_losses(G, clip, arc, params_k, w, text_embs, *, mcfg: MapperConfig, tcfg: MapperTrainConfig):
    """Validation losses of K mappers (params with a K axis) on the batch ``w``: dict of (K,) arrays."""
    feats = None
    if uses_id(arc, tcfg):
        feats = _id_features(arc, _render(G, w, tcfg.noise_mode, tcfg.precision))

    def one(p, text):
        return mapper_loss(p, w, feats, text, G=G, clip=clip, arc=arc, mcfg=mcfg, tcfg=tcfg)[1]

    return jax.vmap(one)(params_k, text_embs)


@functools.partial(jax.jit, static_argnames=("num_examples", "batch_size"))
def batch_indices(data_key, step, *, num_examples: int, batch_size: int):
    """Indices (batch_size,) of training step ``step`` (0-based): a fresh permutation per epoch
    (``fold_in(data_key, epoch)``), consecutive slices, incomplete last batch dropped (as the
    official ``DataLoader(shuffle=True, drop_last=True)``). A pure function of (key, step)."""
    per_epoch = num_examples // batch_size
    epoch, i = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
    return jax.lax.dynamic_slice(perm, (i * batch_size,), (batch_size,))


@functools.partial(jax.jit, static_argnames=("mcfg", "noise_mode"))
def sample_images(G, params_k, w, alpha=1.0, *, mcfg: MapperConfig, noise_mode: str = "const"):
    """Sources and edits of K mappers: (N, H, W, 3) images of ``w`` and (K, N, H, W, 3) images of
    ``w + 0.1 * alpha * M_k(w)`` (params with a leading K axis)."""
    def one(p):
        return _render(G, w + (STEP_SCALE * alpha) * apply_mapper(p, w, mcfg), noise_mode)
    return _render(G, w, noise_mode), jax.vmap(one)(params_k)


def sample_latents(G, num: int, seed: int, truncation_psi: float = 0.7, chunk: int = 1000) -> np.ndarray:
    """(num, num_ws, w_dim) W+ latents: z ~ N(0, I) from ``jax.random.PRNGKey(seed)``, mapped with
    truncation toward the average w (every row, as the official rosinality decoder)."""
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (num, G.cfg.z_dim), jnp.float32))
    out = [np.asarray(G.mapping(z[i:i + chunk], truncation_psi=float(truncation_psi)))
           for i in range(0, num, chunk)]
    return np.concatenate(out).astype(np.float32)
