"""Inversion refinement: optimise W+ (or StyleSpace) so the generator reproduces given images, batched.

Per image i, starting from ``w0_i`` (an encoder's W+, or the mean W on every row when no encoder exists):

    loss_i = pixel(G(w_i), target_i) + id_lambda (1 - <R(G(w_i)), R(target_i)>) + l2_lambda sum((w_i - w0_i)^2)

``pixel`` is the mean squared (``"mse"``) or absolute (``"l1"``) error over pixels and channels at the
generator's resolution (targets are resized to it once, bilinear with antialiasing); ``R`` is ArcFace
(identity loss only when one is given).  Adam with a constant learning rate.  The batched objective is the
sum of per-image losses, so each image's gradient and Adam update is what it would be alone; the steps run
in compiled chunks over the whole batch (2 unrolled steps per call on CPU, see `refine_steps_per_call`).

    w, metrics = refine(G, E.encode(x), x, steps=200)
"""
from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..models import ops
from .optim import scan_steps

PIXEL_LOSSES = ("mse", "l1")
SPACES = ("wplus", "s")


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """Hyper-parameters of :func:`refine` (static under jit)."""
    steps: int = 100
    lr: float = 0.01
    pixel_loss: str = "mse"
    l2_lambda: float = 0.0
    id_lambda: float = 0.0
    space: str = "wplus"
    noise_mode: str = "const"   # "none": noise-free synthesis
    precision: str = "float32"
    report_every: int = 0       # > 0: print the mean loss every that many steps

    @property
    def use_id(self) -> bool:
        return self.id_lambda > 0

    def validate(self):
        from ..errors import ConfigError
        ops.modconv_for(self.precision)
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"pixel_loss={self.pixel_loss!r}: expected one of {PIXEL_LOSSES}")
        if self.space not in SPACES:
            raise ConfigError(f"space={self.space!r}: expected one of {SPACES}")
        if self.noise_mode not in ("const", "none"):
            raise ConfigError(f"noise_mode={self.noise_mode!r}: expected 'const' or 'none' (deterministic)")
        if self.steps < 0 or self.lr <= 0 or self.l2_lambda < 0 or self.id_lambda < 0:
            raise ConfigError(f"need steps >= 0, lr > 0, l2_lambda >= 0, id_lambda >= 0; got {self}")


def resize_targets(images, resolution: int):
    """(N, H, W, 3) -> (N, resolution, resolution, 3), bilinear with antialiasing (a no-op at that size)."""
    images = jnp.asarray(images, jnp.float32)
    if images.shape[1:3] == (resolution, resolution):
        return images
    return jax.image.resize(images, (images.shape[0], resolution, resolution, images.shape[3]), "linear",
                            antialias=True)


from .latent_optimization import render as _render, split_s as _split_s  # noqa: E402 (same W+/S variables)


def pixel_error(images, targets, kind: str = "mse"):
    """Per-image mean squared / absolute error. (N, R, R, 3) x2 -> (N,)."""
    d = images - targets
    d = jnp.square(d) if kind == "mse" else jnp.abs(d)
    return jnp.mean(d.reshape(d.shape[0], -1), axis=1)


def image_losses(G, var, frozen, init, targets, target_feats, arc, cfg: RefineConfig):
    """Per-image total loss (N,) and its parts."""
    img = _render(G, var, frozen, cfg)
    pix = pixel_error(img, targets, cfg.pixel_loss)
    sq = jax.tree_util.tree_map(lambda a, b: jnp.sum(jnp.square(a - b).reshape(a.shape[0], -1), axis=1), var, init)
    l2 = sum(jax.tree_util.tree_leaves(sq))
    total = pix + cfg.l2_lambda * l2
    parts = {"pixel": pix, "mse": pixel_error(img, targets, "mse"), "l2": l2}
    if arc is not None:
        from ..models.arcface import features_fn
        sim = jnp.sum(features_fn(arc.params, img, num_layers=arc.num_layers) * target_feats, axis=-1)
        parts["id_similarity"] = sim
        if cfg.use_id:
            total = total + cfg.id_lambda * (1.0 - sim)
    return total, parts


class _Traced:
    """A RefineConfig view whose l2_lambda / id_lambda are traced scalars (static fields from ``cfg``)."""

    def __init__(self, cfg: RefineConfig, hyper):
        self._cfg, self.l2_lambda, self.lr = cfg, hyper["l2_lambda"], hyper["lr"]
        self.use_id = cfg.use_id
        self.id_lambda = hyper["id_lambda"] if cfg.use_id else 0.0

    def __getattr__(self, name):
        return getattr(self._cfg, name)


def _report(step, loss, *, steps):
    print(f"  refine step {int(step) + 1:>5d}/{steps}  mean loss {float(loss):.5f}", flush=True)


def _target_feats(arc, targets):
    if arc is None:
        return None
    from ..models.arcface import features_fn
    return jax.lax.stop_gradient(features_fn(arc.params, targets, num_layers=arc.num_layers))


def _refine_step(G, arc, init_var, frozen, targets, target_feats, hyper, cfg: RefineConfig):
    """One Adam step ``(var, opt_state) -> ((var, opt_state), per-image loss)``. ``hyper`` holds lr,
    l2_lambda, id_lambda as traced scalars (changing them does not recompile); ``cfg`` is the structure with
    those three fields zeroed (id_lambda 1 where the identity loss is on)."""
    cfg_traced = _Traced(cfg, hyper)
    tx = optax.adam(hyper["lr"])

    def loss_fn(var):
        total, _ = image_losses(G, var, frozen, init_var, targets, target_feats, arc, cfg_traced)
        return jnp.sum(total), total

    def step(carry, _):
        var, opt_state = carry
        (_, per_image), grads = jax.value_and_grad(loss_fn, has_aux=True)(var)
        updates, opt_state = tx.update(grads, opt_state, var)
        return (optax.apply_updates(var, updates), opt_state), per_image
    return step


@functools.partial(jax.jit, static_argnames=("cfg", "length", "unroll"), donate_argnums=(2, 3))
def _refine_chunk(G, arc, var, opt_state, init_var, frozen, targets, hyper, cfg: RefineConfig, length: int, unroll):
    """``length`` steps from (var, opt_state): (var, opt_state, per-image losses (length, N))."""
    step = _refine_step(G, arc, init_var, frozen, targets, _target_feats(arc, targets), hyper, cfg)
    (var, opt_state), hist = scan_steps(step, (var, opt_state), length, unroll)
    return var, opt_state, hist


@functools.partial(jax.jit, static_argnames=("cfg",))
def _refine_losses(G, arc, var, init_var, frozen, targets, hyper, cfg: RefineConfig):
    """(per-image loss parts, total) at ``var``: the before / after figures."""
    total, parts = image_losses(G, var, frozen, init_var, targets, _target_feats(arc, targets), arc,
                                _Traced(cfg, hyper))
    return parts, total


def refine_steps_per_call(cfg: RefineConfig, backend=None) -> int:
    """Steps per compiled call of `refine`: on CPU 2, unrolled (XLA:CPU runs the synthesis' backward pass
    inside a rolled loop 2.6x slower than the same step alone: 256-px NVlabs config, batch 1, 1107 vs 429 ms;
    see latent_optimization.steps_per_call); elsewhere ``report_every`` (or all steps), rolled."""
    if (backend or jax.default_backend()) == "cpu":
        return 2
    return max(1, cfg.report_every or cfg.steps)


def _refine_loop(G, arc, init_var, frozen, targets, valid, hyper, cfg: RefineConfig):
    """The refinement driven from Python in compiled chunks of `refine_steps_per_call` steps, progress lines
    every ``report_every`` steps. Returns (var, loss history (steps, N), before parts, after parts)."""
    before, _ = _refine_losses(G, arc, init_var, init_var, frozen, targets, hyper, cfg)
    k = refine_steps_per_call(cfg)
    unroll = True if jax.default_backend() == "cpu" else 1
    var, opt_state = jax.tree_util.tree_map(jnp.copy, init_var), optax.adam(1.0).init(init_var)
    hist, done = [], 0
    while done < cfg.steps:
        m = min(k, cfg.steps - done)
        var, opt_state, h = _refine_chunk(G, arc, var, opt_state, init_var, frozen, targets, hyper, cfg, m, unroll)
        hist.append(h)
        if cfg.report_every > 0:
            for j in range(m):
                if (done + j) % cfg.report_every == 0:
                    _report(done + j, jnp.sum(h[j] * valid) / jnp.sum(valid), steps=cfg.steps)
        done += m
    after, _ = _refine_losses(G, arc, var, init_var, frozen, targets, hyper, cfg)
    n = jax.tree_util.tree_leaves(init_var)[0].shape[0]
    hist = jnp.concatenate(hist) if hist else jnp.zeros((0, n), jnp.float32)
    return var, hist, before, after


def mean_w_plus(G, n: int):
    """The mean W on every row: (n, num_ws, w_dim) (the start when no encoder exists)."""
    return jnp.broadcast_to(G.mean_w(), (n, G.num_ws, G.cfg.w_dim))


def refine(G, w_plus, target_images, steps: int = 100, *, lr: float = 0.01, pixel_loss: str = "mse",
           l2_lambda: float = 0.0, id_lambda: float = 0.0, arc=None, space: str = "wplus",
           noise_mode: str = "const", precision: str = "float32", report_every: int = 0, devices=None):
    """Refine inversions of ``target_images`` by optimisation, all images in one compiled program, the images
    split over ``devices`` (default: every device of every process; padded to a multiple of their count by
    repeating the last image; images are independent, so results equal one device's).

    Args:
      G: Generator. w_plus: (N, num_ws, w_dim) start (e.g. ``E.encode(x)``), or None for the mean W.
      target_images: (N, H, W, 3) in [-1, 1]; resized to the generator's resolution.
      arc: ArcFace (optional): adds ``id_lambda * (1 - cos)`` and reports identity similarity.
      space: "wplus" (optimise W+) or "s" (optimise the non-toRGB StyleSpace channels).
    Returns:
      (refined, metrics): refined is (N, num_ws, w_dim), or an S dict of (N, C) for space "s"; metrics holds
      per-image numpy arrays ``mse_before``/``mse_after`` (and ``pixel_*``, ``id_similarity_*`` with ArcFace),
      ``loss_curve`` (N, <=20 samples), ``loss_first``/``loss_last`` and ``seconds``.
    """
    from ..errors import InputError
    cfg = RefineConfig(steps=int(steps), lr=float(lr), pixel_loss=pixel_loss, l2_lambda=float(l2_lambda),
                       id_lambda=float(id_lambda), space=space, noise_mode=noise_mode, precision=precision,
                       report_every=int(report_every))
    cfg.validate()
    targets = jnp.asarray(target_images, jnp.float32)
    if targets.ndim != 4 or targets.shape[-1] != 3:
        raise InputError(f"target images must be NHWC (N, H, W, 3) in [-1, 1], got shape {targets.shape}")
    n = targets.shape[0]
    if cfg.id_lambda > 0 and arc is None:
        from ..errors import ConfigError
        raise ConfigError("id_lambda > 0 needs ArcFace weights (--config.arcface=model_ir_se50.pth)")
    w0 = mean_w_plus(G, n) if w_plus is None else jnp.asarray(w_plus, jnp.float32)
    if w0.shape != (n, G.num_ws, G.cfg.w_dim):
        raise InputError(f"w_plus has shape {w0.shape}, expected ({n}, {G.num_ws}, {G.cfg.w_dim}) for {n} images")
    targets = resize_targets(targets, G.resolution)
    from .. import parallel
    mesh = parallel.data_mesh(devices)
    rows = parallel.pad_index(np.arange(n), mesh)
    w0, targets = w0[rows], targets[rows]
    if cfg.space == "wplus":
        init_var, frozen = w0, {}
    else:
        init_var, frozen = _split_s(G, G.w_to_s(w0))
    if mesh.size > 1:
        G, arc = jax.device_put((G, arc), parallel.replicated(mesh))
        init_var, frozen, targets = jax.device_put((init_var, frozen, targets), parallel.batch_sharded(mesh))
    t0 = time.time()
    hyper = {k: jnp.float32(getattr(cfg, k)) for k in ("lr", "l2_lambda", "id_lambda")}
    structure = dataclasses.replace(cfg, lr=1.0, l2_lambda=0.0, id_lambda=float(cfg.id_lambda > 0))
    valid = jnp.asarray(np.arange(len(rows)) < n, jnp.float32)
    if mesh.size > 1:
        valid = jax.device_put(valid, parallel.batch_sharded(mesh))
    var, hist, before, after = _refine_loop(G, arc, init_var, frozen, targets, valid, hyper, structure)
    jax.block_until_ready(var)
    var, frozen, hist, before, after = parallel.to_host((var, frozen, hist, before, after))
    var, frozen, before, after = jax.tree_util.tree_map(lambda a: a[:n], (var, frozen, before, after))
    hist = np.asarray(hist).reshape(cfg.steps, len(rows))[:, :n]
    metrics = {"mse_before": np.asarray(before["mse"]), "mse_after": np.asarray(after["mse"]),
               f"{cfg.pixel_loss}_before": np.asarray(before["pixel"]),
               f"{cfg.pixel_loss}_after": np.asarray(after["pixel"]),
               "loss_curve": hist[:: max(1, cfg.steps // 20)].T, "seconds": time.time() - t0}
    if cfg.steps:
        metrics["loss_first"], metrics["loss_last"] = hist[0], hist[-1]
    if "id_similarity" in after:
        metrics["id_similarity_before"] = np.asarray(before["id_similarity"])
        metrics["id_similarity_after"] = np.asarray(after["id_similarity"])
    if cfg.space == "wplus":
        refined = var
    else:  # jit returns dicts with sorted keys: restore the StyleSpace order
        merged = {**var, **frozen}
        refined = {l.name: merged[l.name] for l in G.layout}
    return refined, metrics
