"""StyleCLIP latent optimisation, batched: many (source, prompt) edits in one compiled program.

Per pair, as `optimization/run_optimization.py`:
    loss = CLIP(G(w), t) + l2_lambda * sum((w - w_src)^2) + id_lambda * (1 - <R(G(w)), R(G(w_src))>)
("edit" mode) or loss = CLIP(G(w), t) ("free_generation", starting from the mean latent). Adam with
the official lr schedule. In "s" space the variables are the non-toRGB StyleSpace layers.

Pairs are independent problems: the batched objective is the *sum* of per-pair losses, so each
pair's gradient (and Adam's elementwise update) is exactly what it would be alone.

    w_edit, metrics = optimize(G, clip, w_src, prompts, LatentOptConfig(steps=300))

`run_steps` is the whole loop as one jittable `lax.scan`; `optimize` runs the same steps as a Python loop
over a compiled chunk of `steps_per_call` steps with the variables and optimiser state donated, and
prints progress between chunks (on CPU one unrolled step per call: a rolled loop runs the backward pass
3x slower there; see `steps_per_call`).
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

from .. import memory, parallel
from ..models import ops
from . import optim

MODES = ("edit", "free_generation")
MAX_CPU_UNROLL = 16  # on CPU a chunk of up to this many steps is unrolled (no XLA while loop); longer: rolled
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
    steps_per_call: Optional[int] = None  # Adam steps per compiled call; None: see `steps_per_call()`
    remat: bool = False  # recompute inside every synthesis layer in the backward pass (less memory, see README)

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
        if self.steps_per_call is not None and self.steps_per_call < 1:
            raise ValueError(f"steps_per_call={self.steps_per_call}: expected >= 1 (or None)")
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


def split_s(G, s):
    """StyleSpace dict -> (trainable non-toRGB dict, frozen toRGB dict)."""
    train = {l.name: s[l.name] for l in G.layout if not l.is_torgb}
    frozen = {l.name: s[l.name] for l in G.layout if l.is_torgb}
    return train, frozen


def render(G, var, frozen, cfg):
    """Images of the optimised variables: W+ (P, num_ws, w_dim), or the non-toRGB S layers plus the frozen
    toRGB ones; `cfg` gives space, precision and noise_mode (LatentOptConfig, invert.RefineConfig)."""
    from ..models.generator import synthesis, synthesis_from_s
    modconv = ops.modconv_for(cfg.precision)
    remat = getattr(cfg, "remat", False)
    if cfg.space == "wplus":
        return synthesis(G.params, G.cfg, var, cfg.noise_mode, modconv=modconv, remat=remat)
    return synthesis_from_s(G.params, G.cfg, {**var, **frozen}, cfg.noise_mode, modconv=modconv, remat=remat)


def _clip_embed(clip, images):
    from ..models.clip import image_features
    return image_features(clip.params, images, module=clip.module, preprocess=clip.preprocess)


def pair_losses(G, clip, var, frozen, init, text_emb, orig_feats, arc, cfg: LatentOptConfig):
    """Per-pair losses (P,) and their parts. var/init: (P, num_ws, w_dim) or S dicts of (P, C)."""
    img = render(G, var, frozen, cfg)
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


def build_optimizer(cfg: LatentOptConfig) -> optax.GradientTransformation:
    """Adam (0.9, 0.999, 1e-8) with the official lr schedule (0 at step 0, ramps, cosine down)."""
    return optax.adam(optim.styleclip_lr_schedule(cfg.lr, cfg.steps), b1=0.9, b2=0.999, eps=1e-8)


def run_chunk(G, clip, arc, var, opt_state, init_var, frozen, text_emb, orig_feats, cfg: LatentOptConfig,
              length: int, unroll=1):
    """`length` Adam steps from (var, opt_state) in a lax.scan: (var, opt_state, loss history (length, P))."""
    tx = build_optimizer(cfg)

    def loss_fn(v):
        total, _ = pair_losses(G, clip, v, frozen, init_var, text_emb, orig_feats, arc, cfg)
        return jnp.sum(total), total

    def step(carry, _):
        v, s = carry
        (_, per_pair), grads = jax.value_and_grad(loss_fn, has_aux=True)(v)
        updates, s = tx.update(grads, s, v)
        return (optax.apply_updates(v, updates), s), per_pair

    (var, opt_state), hist = optim.scan_steps(step, (var, opt_state), length, unroll)
    return var, opt_state, hist


def run_steps(G, clip, arc, init_var, frozen, text_emb, orig_feats, cfg: LatentOptConfig):
    """The whole loop as one jittable scan: `cfg.steps` Adam steps from init_var. Returns (final var, loss
    history (steps, P)). (`optimize` drives the same steps in chunks; see `steps_per_call`.)"""
    var, _, hist = run_chunk(G, clip, arc, init_var, build_optimizer(cfg).init(init_var), init_var, frozen,
                             text_emb, orig_feats, cfg, cfg.steps)
    return var, hist


def steps_per_call(cfg: LatentOptConfig, backend: Optional[str] = None) -> int:
    """Adam steps per compiled call of `optimize`: `cfg.steps_per_call` if set; on CPU 2, unrolled (no XLA
    while loop); elsewhere `report_every`, rolled, so that Python runs once per progress line.

    Why not one rolled scan on CPU: inside a while loop XLA:CPU folds the kernel transposes of the synthesis'
    backward pass into backward-data convolutions (dim_labels b01f_01oi->b01f) that it runs as naive loop
    nests instead of its fast convolution library (issue #17: 3x slower per step than the step jitted alone
    at 256 px). Measured in the shapes world (8 pairs, 300 steps, 2-core CPU, /tmp probe of
    `optimize(..., LatentOptConfig(steps_per_call=k))`): one rolled 300-step scan 63 ms/step; k=1 52 ms;
    k=2 14.7 ms; k=4 13.5 ms; k=5 15.5 ms; k=10 18.2 ms (compile time grows with k; k=1 was then a
    length-1 scan, which `run_chunk` no longer uses). Chunks of up to
    MAX_CPU_UNROLL steps are unrolled on CPU. `benchmarks/latent_optimization.py` prints the per-step time
    of this loop beside one jitted step."""
    if cfg.steps_per_call:
        return int(cfg.steps_per_call)
    return 2 if (backend or jax.default_backend()) == "cpu" else max(1, cfg.report_every)


@functools.partial(jax.jit, static_argnames=("cfg", "length", "unroll"), donate_argnums=(3, 4))
def _chunk_compiled(G, clip, arc, var, opt_state, init_var, frozen, t, orig_feats, cfg, length, unroll):
    return run_chunk(G, clip, arc, var, opt_state, init_var, frozen, t, orig_feats, cfg, length, unroll)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _before_compiled(G, clip, arc, init_var, frozen, t, cfg: LatentOptConfig):
    """Source identity features (for the ID loss) and the per-pair losses before optimisation."""
    from ..models.arcface import features_fn
    orig_feats = None
    if arc is not None:
        orig_feats = features_fn(arc.params, render(G, init_var, frozen, cfg), num_layers=arc.num_layers)
    _, before = pair_losses(G, clip, init_var, frozen, init_var, t, orig_feats, arc, cfg)
    return orig_feats, before


@functools.partial(jax.jit, static_argnames=("cfg",))
def _after_compiled(G, clip, arc, var, init_var, frozen, t, orig_feats, cfg: LatentOptConfig):
    from ..models.arcface import features_fn
    _, after = pair_losses(G, clip, var, frozen, init_var, t, orig_feats, arc, cfg)
    idsim = None
    if arc is not None:
        f = features_fn(arc.params, render(G, var, frozen, cfg), num_layers=arc.num_layers)
        idsim = jnp.sum(f * orig_feats, axis=-1)
    return after, idsim


def optimize(G, clip, w_src, text_emb, cfg: LatentOptConfig = LatentOptConfig(), arc=None,
             pairs: Optional[tuple] = None, verbose: bool = True, devices=None, memory_fraction: float = 0.9,
             memory_budget: Optional[int] = None, _part: bool = False):
    """Optimise every (source, prompt) pair together.

    Args:
      G: Generator. clip: CLIP bundle (styleclip_jax.clip). arc: ArcFace or None (needed if id_lambda>0).
      w_src: (N, num_ws, w_dim) source W+ latents (ignored rows for free_generation: mean latent used).
      text_emb: (T, D) unit text embeddings (e.g. clip.encode_texts(prompts)).
      pairs: (src_idx, prompt_idx) arrays of length P; default every prompt x every source.
      devices: the pairs are split over these (default: all devices; `styleclip_jax.parallel`), padded to a
        multiple of their count; the models are replicated. Results equal one device's.
      memory_fraction, memory_budget: bytes per device a program may use (`styleclip_jax.memory`: the
        device's free memory x memory_fraction, or memory_budget bytes; no probing on CPU without a
        budget). When all pairs do not fit in one program (XLA's memory analysis of the compiled chunk),
        they run as several programs of the most pairs per device that fit, one after the other; pairs are
        independent, so the results equal one program's (to float rounding). ConfigError before running
        when one pair per device does not fit.
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
    num_pairs = len(src_idx)
    mesh = parallel.data_mesh(devices)
    rows = parallel.pad_index(np.arange(num_pairs), mesh)  # padding pairs repeat the last one, then dropped
    if cfg.mode == "free_generation":
        w0 = jnp.broadcast_to(G.mean_w(), (len(rows), G.num_ws, G.cfg.w_dim))
    else:
        w0 = w_src[src_idx[rows]]
    t = text_emb[prm_idx[rows]]
    if cfg.space == "wplus":
        init_var, frozen = w0, {}
    else:
        init_var, frozen = split_s(G, G.w_to_s(w0))
    avail = None if _part else memory.available_bytes(memory_fraction, memory_budget, jax.local_devices()[0])
    if avail is not None:
        per_dev = memory.fit_batch(lambda b: _chunk_bytes(G, clip, arc, init_var, frozen, t, cfg, mesh, b),
                                   len(rows) // mesh.size, avail, "latent optimisation, pairs per device")
        per_dev = int(parallel.broadcast_from_writer(np.int32(per_dev)))  # one program shape on every process
        if per_dev * mesh.size < num_pairs:  # several programs, one after the other
            group = per_dev * mesh.size
            if verbose:
                print("  " + parallel.describe(mesh, per_dev, "pairs") + f" ({num_pairs} pairs in programs of "
                      f"{group}: {avail:,} bytes per device)", flush=True)
            parts = [optimize(G, clip, w_src, text_emb, cfg, arc, (src_idx[i:i + group], prm_idx[i:i + group]),
                              verbose, devices, _part=True) for i in range(0, num_pairs, group)]
            return _concat_results(parts)
    if verbose and not _part:
        print("  " + parallel.describe(mesh, len(rows) // mesh.size, "pairs"), flush=True)
    if mesh.size > 1:
        rep_s, bat_s = parallel.replicated(mesh), parallel.batch_sharded(mesh)
        G, clip, arc = jax.device_put((G, clip, arc), rep_s)
        init_var, frozen, t = jax.device_put((init_var, frozen, t), bat_s)
    t0 = time.time()
    orig_feats, before = _before_compiled(G, clip, arc, init_var, frozen, t, cfg)
    k = steps_per_call(cfg)
    unroll = True if jax.default_backend() == "cpu" and k <= MAX_CPU_UNROLL else 1
    # copies: the chunk calls donate (reuse) the buffers of var and the optimiser state
    var = jax.tree_util.tree_map(jnp.copy, init_var)  # keeps init_var's sharding
    opt_state = build_optimizer(cfg).init(var)
    hists, t_first, done = [], None, 0
    if verbose:
        print(f"  compiling ({k} step(s) per call)...", flush=True)
    while done < cfg.steps:
        n = min(k, cfg.steps - done)
        var, opt_state, h = _chunk_compiled(G, clip, arc, var, opt_state, init_var, frozen, t, orig_feats,
                                            cfg, n, unroll)
        hists.append(h)
        done += n
        if verbose and (done == n or done // cfg.report_every != (done - n) // cfg.report_every
                        or done == cfg.steps):
            loss = float(jnp.mean(h[-1]))  # waits for this chunk
            now = time.time()
            if t_first is None:
                t_first, first_done = now, done
                print(f"  step {done:>5d}/{cfg.steps}  mean loss {loss:.4f}", flush=True)
            else:
                rate = (done - first_done) / max(now - t_first, 1e-9)
                print(f"  step {done:>5d}/{cfg.steps}  mean loss {loss:.4f}  {rate:.2f} steps/s  "
                      f"ETA {(cfg.steps - done) / max(rate, 1e-9):.0f}s", flush=True)
    after, idsim = _after_compiled(G, clip, arc, var, init_var, frozen, t, orig_feats, cfg)
    jax.block_until_ready(var)
    # on the host (gathered from every process when the pairs are sharded across processes)
    var, frozen, before, after, idsim = parallel.to_host((var, frozen, before, after, idsim))
    hist = np.concatenate([parallel.to_host(h) for h in hists])[:, :num_pairs]
    var = jax.tree_util.tree_map(lambda a: a[:num_pairs], var)
    frozen = jax.tree_util.tree_map(lambda a: a[:num_pairs], frozen)
    before = jax.tree_util.tree_map(lambda a: a[:num_pairs], before)
    after = jax.tree_util.tree_map(lambda a: a[:num_pairs], after)
    idsim = None if idsim is None else idsim[:num_pairs]
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


def _chunk_bytes(G, clip, arc, init_var, frozen, t, cfg: LatentOptConfig, mesh, per_device: int) -> int:
    """Bytes per device of one compiled chunk of `optimize` with `per_device` pairs on each device of mesh."""
    rows = per_device * mesh.size
    rep_s, bat_s = parallel.replicated(mesh), parallel.batch_sharded(mesh)

    def abstract(x):  # leading axis = pairs: sharded; the rest (Adam's step count) replicated
        x = jnp.asarray(x) if not hasattr(x, "shape") else x
        batched = x.ndim >= 1 and x.shape[0] == rows
        if mesh.size == 1:  # as optimize's (uncommitted) arrays: the run then reuses this compilation
            return jax.ShapeDtypeStruct(x.shape, x.dtype)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=bat_s if batched else rep_s)

    def take(tree):
        return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((rows,) + a.shape[1:], a.dtype), tree)

    var, frz, tt = (jax.tree_util.tree_map(abstract, take(x)) for x in (init_var, frozen, t))
    opt_state = jax.tree_util.tree_map(abstract, jax.eval_shape(build_optimizer(cfg).init, var))
    feats = jax.eval_shape(_before_compiled, G, clip, arc, var, frz, tt, cfg)[0]
    feats = None if feats is None else jax.tree_util.tree_map(abstract, feats)
    k = steps_per_call(cfg)
    unroll = True if jax.default_backend() == "cpu" and k <= MAX_CPU_UNROLL else 1
    k = min(k, cfg.steps)  # the first (and largest) chunk optimize runs
    return memory.program_bytes(_chunk_compiled, G, clip, arc, var, opt_state, var, frz, tt, feats, cfg, k, unroll)


def _concat_results(parts):
    """(edited, metrics) of consecutive groups of pairs -> those of all pairs (pair axis first everywhere)."""
    edited = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *[e for e, _ in parts])
    metrics = {k: (sum(m[k] for _, m in parts) if k == "seconds" else np.concatenate([m[k] for _, m in parts]))
               for k in parts[0][1]}
    return edited, metrics
