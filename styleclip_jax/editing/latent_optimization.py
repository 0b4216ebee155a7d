"""StyleCLIP latent optimisation, batched: many (source, prompt) edits in one compiled program.

Per pair, as `optimization/run_optimization.py`:
    loss = CLIP(G(w), t) + l2_lambda * sum((w - w_src)^2) + id_lambda * (1 - <R(G(w)), R(G(w_src))>)
("edit" mode) or loss = CLIP(G(w), t) ("free_generation", starting from the mean latent). Adam with
the official lr schedule. In "s" space the variables are the non-toRGB StyleSpace layers.

Pairs are independent problems: the batched objective is the *sum* of per-pair losses, so each
pair's gradient (and Adam's elementwise update) is exactly what it would be alone.

    w_edit, metrics = optimize(G, clip, w_src, prompts, LatentOptConfig(steps=300))

The step loop is a `lax.scan` inside one `jax.jit`; progress is printed from inside the compiled loop
every `report_every` steps through `jax.debug.callback`.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..models import ops
from . import optim

MODES = ("edit", "free_generation")
SPACES = ("wplus", "s")


@dataclasses.dataclass(frozen=True)
class LatentOptConfig:
    """Hyper-parameters (official defaults). lr_rampup/rampdown are fractions of `steps`."""
    mode: str = "edit"
    space: str = "wplus"
    lr: float = 0.1
    steps: int = 300
    l2_lambda: float = 0.008
    id_lambda: float = 0.0
    noise_mode: str = "const"
    report_every: int = 50
    precision: str = "float32"  # generator convs: "float32" or "bfloat16" (bf16 inputs, f32 accumulation)

    def validate(self):
        ops.modconv_for(self.precision)  # validates
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: expected one of {MODES}")
        if self.space not in SPACES:
            raise ValueError(f"space={self.space!r}: expected one of {SPACES}")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}: expected >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: expected > 0")
        if self.l2_lambda < 0 or self.id_lambda < 0:
            raise ValueError("l2_lambda and id_lambda must be >= 0")


def make_pairs(num_sources: int, num_prompts: int, pairing: str = "product"):
    """Index arrays (src_idx, prompt_idx). product: every prompt x every source (prompt-major);
    zip: source i with prompt i (needs equal counts, or a single prompt broadcast)."""
    if pairing == "product":
        p, s = np.meshgrid(np.arange(num_prompts), np.arange(num_sources), indexing="ij")
        return s.reshape(-1), p.reshape(-1)
    if pairing == "zip":
        if num_prompts == 1:
            return np.arange(num_sources), np.zeros(num_sources, np.int64)
        if num_prompts != num_sources:
            raise ValueError(f"pairing='zip' needs as many prompts as sources ({num_prompts} != {num_sources})")
        return np.arange(num_sources), np.arange(num_sources)
    raise ValueError(f"pairing={pairing!r}: expected 'product' or 'zip'")


def _split_s(G, s):
    """StyleSpace dict -> (trainable non-toRGB dict, frozen toRGB dict)."""
    train = {l.name: s[l.name] for l in G.layout if not l.is_torgb}
    frozen = {l.name: s[l.name] for l in G.layout if l.is_torgb}
    return train, frozen


def _render(G, var, frozen, cfg: LatentOptConfig):
    from ..models.generator import synthesis, synthesis_from_s
    modconv = ops.modconv_for(cfg.precision)
    if cfg.space == "wplus":
        return synthesis(G.params, G.cfg, var, cfg.noise_mode, modconv=modconv)
    return synthesis_from_s(G.params, G.cfg, {**var, **frozen}, cfg.noise_mode, modconv=modconv)


def _clip_embed(clip, images):
    from ..models.clip import image_features
    return image_features(clip.params, images, module=clip.module, preprocess=clip.preprocess)


def pair_losses(G, clip, var, frozen, init, text_emb, orig_feats, arc, cfg: LatentOptConfig):
    """Per-pair losses (P,) and their parts. var/init: (P, num_ws, w_dim) or S dicts of (P, C)."""
    img = _render(G, var, frozen, cfg)
    e = _clip_embed(clip, img)
    cos = jnp.sum(e * text_emb, axis=-1)
    c_loss = 1.0 - jnp.exp(clip.params["logit_scale"]) * cos / 100.0
    sq = jax.tree_util.tree_map(lambda a, b: jnp.sum(jnp.square(a - b).reshape(a.shape[0], -1), axis=1), var, init)
    l2 = sum(jax.tree_util.tree_leaves(sq))
    if cfg.mode == "free_generation":
        total = c_loss
        id_l = jnp.zeros_like(c_loss)
    else:
        total = c_loss + cfg.l2_lambda * l2
        if cfg.id_lambda > 0:
            from ..models.arcface import features_fn
            f = features_fn(arc.params, img, num_layers=arc.num_layers)
            id_l = 1.0 - jnp.sum(f * jax.lax.stop_gradient(orig_feats), axis=-1)
            total = total + cfg.id_lambda * id_l
        else:
            id_l = jnp.zeros_like(c_loss)
    return total, {"clip": c_loss, "cos": cos, "l2": l2, "id": id_l}


_PROGRESS = {"t0": None}


def _report(step, loss, *, steps):
    """Progress line printed from inside the compiled loop (jax.debug.callback)."""
    step, now = int(step), time.time()
    if _PROGRESS["t0"] is None or step == 0:
        _PROGRESS["t0"] = now
        print(f"  step {step + 1:>5d}/{steps}  mean loss {float(loss):.4f}", flush=True)
        return
    rate = step / max(now - _PROGRESS["t0"], 1e-9)
    eta = (steps - step - 1) / max(rate, 1e-9)
    print(f"  step {step + 1:>5d}/{steps}  mean loss {float(loss):.4f}  {rate:.1f} steps/s  ETA {eta:.0f}s",
          flush=True)


def build_optimizer(cfg: LatentOptConfig) -> optax.GradientTransformation:
    """Adam (0.9, 0.999, 1e-8) with the official lr schedule (0 at step 0, ramps, cosine down)."""
    return optax.adam(optim.styleclip_lr_schedule(cfg.lr, cfg.steps), b1=0.9, b2=0.999, eps=1e-8)


def run_steps(G, clip, arc, init_var, frozen, text_emb, orig_feats, cfg: LatentOptConfig, report=None):
    """The jittable core: `cfg.steps` Adam steps in a lax.scan. Returns (final var, loss history (steps, P))."""
    tx = build_optimizer(cfg)

    def loss_fn(var):
        total, _ = pair_losses(G, clip, var, frozen, init_var, text_emb, orig_feats, arc, cfg)
        return jnp.sum(total), total

    def step(carry, i):
        var, opt_state = carry
        (_, per_pair), grads = jax.value_and_grad(loss_fn, has_aux=True)(var)
        updates, opt_state = tx.update(grads, opt_state, var)
        var = optax.apply_updates(var, updates)
        if report is not None:
            jax.lax.cond(i % cfg.report_every == 0,
                         lambda: jax.debug.callback(report, i, jnp.mean(per_pair)), lambda: None)
        return (var, opt_state), per_pair

    (var, _), hist = jax.lax.scan(step, (init_var, tx.init(init_var)), jnp.arange(cfg.steps))
    return var, hist


@functools.partial(jax.jit, static_argnames=("cfg", "verbose"))
def _optimize_compiled(G, clip, arc, init_var, frozen, t, cfg: LatentOptConfig, verbose: bool):
    """One program: source renders, the scanned Adam loop, and before/after metrics.

    Module-level so repeated calls with the same shapes and config reuse the compilation."""
    from ..models.arcface import features_fn
    img0 = _render(G, init_var, frozen, cfg)
    orig_feats = None if arc is None else features_fn(arc.params, img0, num_layers=arc.num_layers)
    report = functools.partial(_report, steps=cfg.steps) if verbose else None
    var, hist = run_steps(G, clip, arc, init_var, frozen, t, orig_feats, cfg, report)
    _, before = pair_losses(G, clip, init_var, frozen, init_var, t, orig_feats, arc, cfg)
    _, after = pair_losses(G, clip, var, frozen, init_var, t, orig_feats, arc, cfg)
    idsim = None
    if arc is not None:
        f = features_fn(arc.params, _render(G, var, frozen, cfg), num_layers=arc.num_layers)
        idsim = jnp.sum(f * orig_feats, axis=-1)
    return var, hist, before, after, idsim


def optimize(G, clip, w_src, text_emb, cfg: LatentOptConfig = LatentOptConfig(), arc=None,
             pairs: Optional[tuple] = None, verbose: bool = True):
    """Optimise every (source, prompt) pair together.

    Args:
      G: Generator. clip: CLIP bundle (styleclip_jax.clip). arc: ArcFace or None (needed if id_lambda>0).
      w_src: (N, num_ws, w_dim) source W+ latents (ignored rows for free_generation: mean latent used).
      text_emb: (T, D) unit text embeddings (e.g. clip.encode_texts(prompts)).
      pairs: (src_idx, prompt_idx) arrays of length P; default every prompt x every source.
    Returns:
      (edited, metrics): edited is (P, num_ws, w_dim) in "wplus" space or an S dict of (P, C);
      metrics is a dict of per-pair numpy arrays (clip cos before/after, l2, id sim, loss curve).
    """
    cfg.validate()
    if cfg.id_lambda > 0 and cfg.mode == "edit" and arc is None:
        raise ValueError("id_lambda > 0 needs ArcFace weights (--config.arcface=model_ir_se50.pth)")
    w_src = jnp.asarray(w_src, jnp.float32)
    text_emb = jnp.asarray(text_emb, jnp.float32)
    if pairs is None:
        pairs = make_pairs(w_src.shape[0], text_emb.shape[0])
    src_idx, prm_idx = (np.asarray(a) for a in pairs)
    if cfg.mode == "free_generation":
        w0 = jnp.broadcast_to(G.mean_w(), (len(src_idx), G.num_ws, G.cfg.w_dim))
    else:
        w0 = w_src[src_idx]
    t = text_emb[prm_idx]
    if cfg.space == "wplus":
        init_var, frozen = w0, {}
    else:
        init_var, frozen = _split_s(G, G.w_to_s(w0))
    _PROGRESS["t0"] = None
    t0 = time.time()
    var, hist, before, after, idsim = _optimize_compiled(G, clip, arc, init_var, frozen, t, cfg, verbose)
    jax.block_until_ready(var)
    hist = np.asarray(hist)
    metrics = {
        "src_idx": src_idx, "prompt_idx": prm_idx,
        "clip_cos_before": np.asarray(before["cos"]), "clip_cos_after": np.asarray(after["cos"]),
        "l2_sum_sq": np.asarray(after["l2"]),
        "loss_first": hist[0], "loss_last": hist[-1], "loss_min": hist.min(0),
        "loss_curve": hist[:: max(1, cfg.steps // 20)].T,
        "seconds": time.time() - t0,
    }
    if idsim is not None:
        metrics["id_similarity"] = np.asarray(idsim)
    edited = var if cfg.space == "wplus" else {**var, **frozen}
    return edited, metrics
