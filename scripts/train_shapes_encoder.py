#!/usr/bin/env python
"""Train the small e4e encoder of the shapes world (``load_encoder("shapes")``) on generator samples.

Method (as encoder4editing / pSp train, on samples of the generator instead of photos): every step draws
z ~ N(0, I), maps it to w (per-sample truncation psi ~ U(--psi-min, 1) toward w_avg, and with probability
--mix-prob a second w on the rows from a random cutoff on: style mixing, so W+ targets are not all in W),
renders x = G(w) and trains the encoder E (the unmodified ``models/encoder.py`` e4e: IR-SE backbone, FPN,
GradualStyleBlocks, "w0 + per-row deltas", ``start_from_latent_avg`` with latent_avg = the generator's
w_avg) with

    loss = latent_weight * mean((E(x) - w)^2 / var_w) + image_weight * weighted_mse(G(E(x)), x)

var_w is the per-dimension variance of w under N(0, I) (measured once at start), so the latent term is ~1
for a constant prediction; the image term weights shape pixels (those that differ from the corner pixel)
``1 + --shape-weight`` times, because shapes cover 6-25 % of an image and colour lives there.  The encoder
reads images at the generator's resolution (32 px: c1/c2/c3 at 8/4/2 px).  BatchNorm is the inference form
of the official code with running statistics held at mean 0 / var 1 (so a per-channel affine) — training
batch statistics would need train-mode BN in ``irse.py``; the tiny backbone trains without it.

Bounded and resumable like ``train_shapes_generator.py``: the whole step (sampling, forward, loss, grads,
Adam) is one jitted function; the run stops after ``--minutes`` of training wall time counted across
resumes; the training state is pickled to ``--state`` every ``--ckpt-every`` minutes and rerunning the same
command resumes from it.  Learning rate: linear warm-up then cosine decay over the budget.

At the end it measures on fresh renders that are NOT generator samples (``shapes.render.render_batch`` on
held-out seeds, 32 images balanced over the palette colours): the fraction whose reconstruction
G(E(render)) has the render's dominant colour (``shapes.metrics.dominant_colour``), and the mean pixel MSE
before/after ``editing.invert.refine`` (also from the mean W, for comparison).  The encoder is written with
``checkpoints.e4e.save_encoder`` (orbax + config.json; ``sc.load_encoder(--out)`` reads it), the figures go
into its ``extra.json``, and ``TRAINING.md`` (command, runtime, figures) is written into ``--out``.

Reproduce:  python scripts/train_shapes_encoder.py --minutes 30
"""
from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import math
import os
import pickle
import shlex
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import styleclip_jax as sc  # noqa: E402
from styleclip_jax import shipped  # noqa: E402
from styleclip_jax.checkpoints import e4e  # noqa: E402
from styleclip_jax.editing import invert  # noqa: E402
from styleclip_jax.models import encoder as enc  # noqa: E402
from styleclip_jax.models import generator as Gm  # noqa: E402

EVAL_Z_SEED = 777           # held-out generator samples for the progress lines
RENDER_SEEDS_START = 9_000_000  # held-out render seeds (the renderer's own sampler; never seen in training)
N_RENDERS = 32
VAR_W_SAMPLES = 4096
MAX_BYTES = 5 * 2 ** 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", default="shapes", help="generator to invert ('shapes' = the shipped one)")
    p.add_argument("--out", default=str(shipped.SHAPES_ENCODER), help="folder for the trained encoder")
    p.add_argument("--state", default="/tmp/shapes_encoder_state.pkl", help="resumable training state file")
    p.add_argument("--fresh", action="store_true", help="ignore an existing --state file")
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget (across resumes)")
    p.add_argument("--max-steps", type=int, default=0, help="also stop after this many steps (0: no limit)")
    p.add_argument("--ckpt-every", type=float, default=3.0, help="minutes between state checkpoints")
    p.add_argument("--eval-every", type=int, default=200, help="steps between progress lines")
    p.add_argument("--progress-eval", action=argparse.BooleanOptionalAction, default=True,
                   help="progress lines also measure held-out generator samples and the renders' colour recovery")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-final", type=float, default=0.05, help="final lr as a fraction of --lr (cosine)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    p.add_argument("--latent-weight", type=float, default=1.0, help="weight of the W+ regression term")
    p.add_argument("--image-weight", type=float, default=4.0, help="weight of the image reconstruction term")
    p.add_argument("--shape-weight", type=float, default=4.0, help="extra image-MSE weight on shape pixels")
    p.add_argument("--psi-min", type=float, default=0.7, help="truncation psi ~ U(psi_min, 1) per sample")
    p.add_argument("--mix-prob", type=float, default=0.3, help="probability of style mixing per sample")
    p.add_argument("--encoder-type", default=enc.E4E, choices=enc.ENCODER_TYPES)
    p.add_argument("--stage-units", default="1,2,2,1", help="IR-SE units per stage (4 stages)")
    p.add_argument("--stage-depths", default="16,32,48,64", help="channels per stage")
    p.add_argument("--input-size", type=int, default=0,
                   help="encoder input size (0: the generator's resolution, at least 32: at 16 px the coarse "
                        "style blocks would have no conv)")
    p.add_argument("--coarse-ind", type=int, default=3, help="rows < this read c3 (e4e: 3)")
    p.add_argument("--middle-ind", type=int, default=7, help="rows < this read p2 (e4e: 7)")
    p.add_argument("--refine-steps", type=int, default=200, help="invert.refine steps of the final measurement")
    p.add_argument("--save-dtype", default="float32", choices=("float32", "float16"),
                   help="dtype of the saved weights (float16 halves the folder; load_encoder computes in float32, "
                        "and the final measurement uses the rounded weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bench", type=int, default=0, help="only time this many train steps and exit")
    return p.parse_args(argv)


def _ints(text, flag):
    try:
        return tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise SystemExit(f"{flag}={text}: expected comma-separated integers") from None


def encoder_config(G, a) -> enc.EncoderConfig:
    """The encoder for generator G: its num_ws rows of its w_dim, reading images at its resolution (>= 32 px)."""
    try:
        return enc.EncoderConfig(encoder_type=a.encoder_type, stage_units=_ints(a.stage_units, "--stage-units"),
                                 stage_depths=_ints(a.stage_depths, "--stage-depths"), num_ws=G.num_ws,
                                 w_dim=G.w_dim, input_size=a.input_size or max(32, G.resolution),
                                 coarse_ind=a.coarse_ind, middle_ind=a.middle_ind, start_from_latent_avg=True)
    except ValueError as e:
        raise SystemExit(f"encoder config: {e}") from None


def generator_fingerprint(G) -> str:
    """sha256 (16 hex) of the generator's config and params: the state and the metadata name the G used."""
    h = hashlib.sha256(json.dumps(G.cfg.to_dict(), sort_keys=True).encode())
    for path, leaf in jax.tree_util.tree_leaves_with_path(G.params):
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return h.hexdigest()[:16]


def init_params(seed, ecfg):
    """Random encoder params, the distributions of ``enc.init_encoder_params`` (He-normal conv/SE kernels, BN
    scale 1 / bias 0 / mean 0 / var 1, PReLU 0.25, biases 0, N(0, 1) EqualLinear kernels) drawn with numpy:
    eager ``jax.random`` compiles one program per leaf shape (measured 18 s for the tiny test config on
    the shared 2-core machine; this takes ~1 s)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda: enc.init_encoder_params(jax.random.PRNGKey(0), ecfg))

    def leaf(path, s):
        names = [getattr(k, "key", None) for k in path]
        if names[-1] in ("scale", "var"):
            return jnp.ones(s.shape, jnp.float32)
        if names[-1] in ("bias", "mean"):
            return jnp.zeros(s.shape, jnp.float32)
        if names[-1] == "prelu":
            return jnp.full(s.shape, 0.25, jnp.float32)
        fan_in = 1 if names[-2] == "linear" else int(np.prod(s.shape[:-1]))  # EqualLinear scales at run time
        return jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(fan_in), jnp.float32)
    return jax.tree_util.tree_map_with_path(leaf, shapes)


def w_variance(G, n=VAR_W_SAMPLES, seed=12345):
    """Per-dimension variance (w_dim,) of w = mapping(z), z ~ N(0, I)."""
    z = jax.random.normal(jax.random.PRNGKey(seed), (n, G.z_dim))
    return jnp.var(G.mapping(z)[:, 0], axis=0) + 1e-8


def trainable_mask(params):
    """1.0 for trained leaves, 0.0 for BatchNorm running statistics (held at mean 0, var 1)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, _: 0.0 if getattr(p[-1], "key", None) in ("mean", "var") else 1.0, params)


def sample_batch(G, key, n, psi_min, mix_prob):
    """Generator samples: (w (n, num_ws, w_dim) the true W+, images (n, R, R, 3)); nothing differentiable."""
    kz, kz2, kpsi, kmix, kcut = jax.random.split(key, 5)
    w_avg = G.params["mapping"]["w_avg"]
    psi = jax.random.uniform(kpsi, (n, 1, 1), minval=psi_min, maxval=1.0)
    w1 = Gm.truncate(Gm.mapping(G.params, G.cfg, jax.random.normal(kz, (n, G.z_dim))), w_avg, psi)
    w2 = Gm.truncate(Gm.mapping(G.params, G.cfg, jax.random.normal(kz2, (n, G.z_dim))), w_avg, psi)
    cut = jax.random.randint(kcut, (n, 1, 1), 1, G.num_ws)
    mix = (jax.random.uniform(kmix, (n, 1, 1)) < mix_prob) & (jnp.arange(G.num_ws)[None, :, None] >= cut)
    w = jnp.where(mix, w2, w1)
    return jax.lax.stop_gradient(w), jax.lax.stop_gradient(Gm.synthesis(G.params, G.cfg, w))


def shape_weights(images, shape_weight):
    """(N, R, R, 1) pixel weights: 1 + shape_weight on pixels that differ from the corner (background) pixel."""
    fg = jnp.max(jnp.abs(images - images[:, :1, :1, :]), axis=-1, keepdims=True) > 0.3
    return 1.0 + shape_weight * fg.astype(images.dtype)


def losses(params, G, ecfg, var_w, w_true, images, weights):
    """(total, parts) of one batch. weights: dict of latent/image/shape weights (traced)."""
    x = images if images.shape[1] == ecfg.input_size else invert.resize_targets(images, ecfg.input_size)
    w_pred = enc.encode_fn(params, G.params["mapping"]["w_avg"], ecfg, x)
    latent = jnp.mean(jnp.square(w_pred - w_true) / var_w)
    recon = Gm.synthesis(G.params, G.cfg, w_pred)
    wmap = shape_weights(images, weights["shape"])
    image = jnp.mean(wmap * jnp.square(recon - images)) / jnp.mean(wmap)
    total = weights["latent"] * latent + weights["image"] * image
    return total, {"loss": total, "latent": latent, "image_wmse": image, "image_mse": jnp.mean(jnp.square(recon - images))}


TX = optax.scale_by_adam()  # Adam's direction; the (scheduled) lr and the trainable mask scale it


@functools.partial(jax.jit, static_argnames=("ecfg", "batch", "psi_min", "mix_prob"))
def train_step(params, opt_state, G, var_w, mask, key, lr, weights, *, ecfg, batch, psi_min, mix_prob):
    """One step: sample a batch from G, loss, grads, Adam. -> (params, opt_state, metrics).
    A module-level jit: every run with the same static config reuses the compiled step."""
    w_true, images = sample_batch(G, key, batch, psi_min, mix_prob)
    (_, parts), grads = jax.value_and_grad(losses, has_aux=True)(params, G, ecfg, var_w, w_true, images, weights)
    updates, opt_state = TX.update(grads, opt_state, params)
    params = jax.tree_util.tree_map(lambda p, u, m: p - lr * m * u, params, updates, mask)
    return params, opt_state, parts


def make_step(G, ecfg, var_w, mask, batch, psi_min, mix_prob):
    """(tx, step): step(params, opt_state, key, lr, weights) -> (params, opt_state, metrics)."""
    def step(params, opt_state, key, lr, weights):
        return train_step(params, opt_state, G, var_w, mask, key, jnp.float32(lr), weights, ecfg=ecfg, batch=batch,
                          psi_min=float(psi_min), mix_prob=float(mix_prob))
    return TX, step


def lr_at(a, step, frac):
    warm = min(1.0, (step + 1) / max(1, a.warmup))
    cos = a.lr_final + (1.0 - a.lr_final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return a.lr * warm * cos


def loss_weights(a):
    return {"latent": jnp.float32(a.latent_weight), "image": jnp.float32(a.image_weight),
            "shape": jnp.float32(a.shape_weight)}


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def palette_renders(n=N_RENDERS, start=RENDER_SEEDS_START):
    """``n`` fresh renders (``render_batch`` on held-out seeds), balanced over the dominant colours of the
    palette: round-robin over colours among the first seeds from ``start``. -> (images, seeds, colours)."""
    from styleclip_jax.shapes import metrics as M
    from styleclip_jax.shapes import render as R

    pool = list(range(start, start + 40 * n))
    images, _, _ = R.render_batch(pool)
    images = np.asarray(images, np.float32)
    dom = M.dominant_colour(images)
    by_colour = {c: [i for i, d in enumerate(dom) if d == c] for c in M.COLOURS}
    picked, k = [], 0
    while len(picked) < n:
        for c in M.COLOURS:
            if k < len(by_colour[c]) and len(picked) < n:
                picked.append(by_colour[c][k])
        k += 1
        if k > len(pool):
            raise SystemExit("the renderer gave too few images of some palette colours")
    picked = sorted(picked)
    return images[picked], [pool[i] for i in picked], [dom[i] for i in picked]


def encode(E, images):
    x = jnp.asarray(images, jnp.float32)
    if x.shape[1] != E.input_size:
        x = invert.resize_targets(x, E.input_size)
    return E.encode(x)


def colour_recovery(G, w, images, want):
    """(fraction of images whose reconstruction G(w) has the wanted dominant colour, the reconstructions'
    dominant colours)."""
    from styleclip_jax.shapes import metrics as M

    recon = np.asarray(G.synthesis(jnp.asarray(w)))
    got = M.dominant_colour(recon)
    hits = [g == c for g, c in zip(got, want)]
    return float(np.mean(hits)), got


def evaluate_renders(G, E, refine_steps, renders=None):
    """Measurements on fresh renders (not generator samples): colour recovery and refinement."""
    images, seeds, colours = renders if renders is not None else palette_renders()
    t0 = time.time()
    w0 = np.asarray(encode(E, images))
    enc_s = time.time() - t0
    frac, got = colour_recovery(G, w0, images, colours)
    out = {"render_seeds": seeds, "render_colours": colours, "reconstruction_colours": got,
           "colour_recovery": frac, "encode_seconds": enc_s}
    if refine_steps > 0:
        w1, m = invert.refine(G, w0, images, refine_steps)
        out.update(refine_steps=refine_steps, mse_encoder=float(np.mean(m["mse_before"])),
                   mse_refined=float(np.mean(m["mse_after"])),
                   colour_recovery_refined=colour_recovery(G, w1, images, colours)[0],
                   refine_seconds=float(m["seconds"]))
        wm, mm = invert.refine(G, None, images, refine_steps)
        out.update(mse_mean_w=float(np.mean(mm["mse_before"])), mse_mean_w_refined=float(np.mean(mm["mse_after"])),
                   colour_recovery_mean_w_refined=colour_recovery(G, wm, images, colours)[0])
    else:
        recon = np.asarray(G.synthesis(jnp.asarray(w0)))
        out["mse_encoder"] = float(np.mean(np.square(recon - invert.resize_targets(images, G.resolution))))
    return out


@functools.partial(jax.jit, static_argnames=("ecfg",))
def eval_samples(params, G, var_w, w, images, *, ecfg):
    """Normalised W+ error and image MSE of the encoder on given generator samples (w, images = G(w))."""
    x = images if images.shape[1] == ecfg.input_size else invert.resize_targets(images, ecfg.input_size)
    w_pred = enc.encode_fn(params, G.params["mapping"]["w_avg"], ecfg, x)
    return {"latent": jnp.mean(jnp.square(w_pred - w) / var_w),
            "image_mse": jnp.mean(jnp.square(Gm.synthesis(G.params, G.cfg, w_pred) - images))}


def make_eval(G, ecfg, var_w, n=256):
    """Held-out generator samples (z from EVAL_Z_SEED, psi 1): -> fn(params) -> {latent, image_mse}."""
    z = jax.random.normal(jax.random.PRNGKey(EVAL_Z_SEED), (n, G.z_dim))
    w = G.mapping(z)
    images = G.synthesis(w)
    return lambda params: eval_samples(params, G, var_w, w, images, ecfg=ecfg)


# ---------------------------------------------------------------------------------------------
# state, output
# ---------------------------------------------------------------------------------------------
def save_state(path, state):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(jax.device_get(state), f)
    os.replace(tmp, path)


def folder_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def make_encoder(params, ecfg, G, dtype="float32") -> enc.Encoder:
    """Encoder over ``params`` rounded to ``dtype`` (float32 arrays: what load_encoder gives for such a folder)."""
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x).astype(dtype), jnp.float32),
                                    jax.device_get(params))
    return enc.Encoder(params, ecfg, jnp.asarray(G.params["mapping"]["w_avg"], jnp.float32))


def save(out, E, dtype, extra) -> str:
    """``checkpoints.e4e.save_encoder`` with the params stored as ``dtype`` (latent_avg float32)."""
    stored = enc.Encoder(jax.tree_util.tree_map(lambda x: np.asarray(x).astype(dtype), E.params), E.config,
                         E.latent_avg)
    return e4e.save_encoder(out, stored, extra=extra, overwrite=True)


def training_md(a, ecfg, G, fingerprint, n_params, size, it, minutes, step_s, total, ev, runs) -> str:
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    rows = [("colour recovery, G(E(render)) (target >= 80 %)", pct(ev["colour_recovery"]))]
    if "mse_refined" in ev:
        rows += [(f"mean pixel MSE, encoder -> + {ev['refine_steps']} refine steps",
                  f"{ev['mse_encoder']:.4f} -> {ev['mse_refined']:.4f}"),
                 ("colour recovery after refinement", pct(ev["colour_recovery_refined"])),
                 (f"for comparison: mean W -> + {ev['refine_steps']} refine steps",
                  f"{ev['mse_mean_w']:.4f} -> {ev['mse_mean_w_refined']:.4f} (colour "
                  f"{pct(ev['colour_recovery_mean_w_refined'])})")]
    else:
        rows += [("mean pixel MSE of G(E(render))", f"{ev['mse_encoder']:.4f}")]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    commands = "\n".join(f"    {r['command']}    # steps {r['from_step']} -> {r['to_step']}" for r in runs)
    return f"""# Shapes-world encoder: how this checkpoint was trained

Written by `scripts/train_shapes_encoder.py` at the end of its run ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC);
every figure below was measured by that run.

## Model

The official e4e code path (`styleclip_jax/models/encoder.py`, `{ecfg.encoder_type}`), small backbone:
IR-SE stages of {list(ecfg.stage_units)} units with {list(ecfg.stage_depths)} channels (SE on), FPN, one
GradualStyleBlock per W+ row ({ecfg.num_ws} rows x {ecfg.w_dim}, coarse/middle split at rows {ecfg.coarse_ind}/{ecfg.middle_ind}),
input {ecfg.input_size} px, `start_from_latent_avg` with the generator's `w_avg`.
{n_params:,} parameters stored as {a.save_dtype}; folder {size / 2 ** 20:.2f} MiB.

Generator: `{a.generator}` ({G!r}), fingerprint `{fingerprint}` (sha256 of its config and params; a different
generator needs a retrained encoder).

## Method

e4e-style training on generator samples (no renders, no photos): z ~ N(0, I) -> w (truncation psi ~ U({a.psi_min}, 1),
style mixing with probability {a.mix_prob}) -> x = G(w); loss = {a.latent_weight} x mean((E(x) - w)^2 / var(w))
+ {a.image_weight} x MSE(G(E(x)), x) (shape pixels weighted x{1 + a.shape_weight:g}). Adam, lr {a.lr:g} (warm-up
{a.warmup} steps, cosine to {a.lr_final:g} x), batch {a.batch}, one jitted step; BatchNorm running statistics held
at 0 / 1.

## Reproduce ({os.cpu_count()} CPU cores)

{commands}

(rerunning a command without `--fresh` resumes from `--state`.)
{it:,} steps in {minutes:.1f} min of training wall time ({step_s:.3f} s/step including compilation and the
progress evaluations); the last invocation took {total:.1f} min in all (start-up, training, final measurement).

## Measured on {N_RENDERS} fresh renders (not generator samples)

`shapes.render.render_batch` on held-out seeds from {RENDER_SEEDS_START:,}, balanced over the palette colours
(`shapes.metrics.dominant_colour`); pixel MSE at {G.resolution} px in [-1, 1].

| metric | value |
|---|---|
{table}

Targets (issue 16): {"; ".join(f"{k.replace('_', ' ')}: {'met' if v else 'NOT MET'}" for k, v in ev.get("targets", {}).items())}.
"""


def main(argv=None):
    t_run = time.time()
    a = parse_args(argv)
    command = "python scripts/train_shapes_encoder.py " + " ".join(shlex.quote(v) for v in (argv or sys.argv[1:]))
    G = sc.load_generator(a.generator)
    ecfg = encoder_config(G, a)
    fingerprint = generator_fingerprint(G)
    params = init_params(a.seed, ecfg)
    n_params = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(params))
    print(f"generator: {G!r} (fingerprint {fingerprint})\nencoder: {ecfg}\nparameters: {n_params:,} "
          f"({n_params * 4 / 2 ** 20:.2f} MiB float32)", flush=True)
    n_bytes = n_params * np.dtype(a.save_dtype).itemsize
    if n_bytes > 0.95 * MAX_BYTES:  # the style blocks dominate: (1-3 convs of 9 w_dim^2) per W+ row
        print(f"warning: {n_bytes / 2 ** 20:.1f} MiB of {a.save_dtype} weights exceeds the 5 MB asset budget; "
              "pass --save-dtype float16, narrow --stage-depths, or raise --coarse-ind/--middle-ind (rows reading "
              "the 2-px map have 1 conv, those reading 8 px have 3)", flush=True)
    var_w = w_variance(G)
    mask = trainable_mask(params)
    tx, step = make_step(G, ecfg, var_w, mask, a.batch, a.psi_min, a.mix_prob)
    weights = loss_weights(a)
    opt_state = tx.init(params)
    run_cfg = {"encoder": ecfg.to_dict(), "generator": fingerprint, "batch": a.batch, "seed": a.seed}
    it, elapsed, history, runs = 0, 0.0, [], []
    if os.path.exists(a.state) and not a.fresh and not a.bench:
        with open(a.state, "rb") as f:
            st = pickle.load(f)
        if st["run"] != run_cfg:
            raise SystemExit(f"{a.state} was written for another encoder/generator ({st['run']}); use --fresh")
        params = jax.tree_util.tree_map(jnp.asarray, st["params"])
        opt_state = jax.tree_util.tree_map(jnp.asarray, st["opt_state"])
        it, elapsed, history, runs = st["step"], st["elapsed"], st["history"], st.get("runs", [])
        print(f"resumed from {a.state}: step {it}, {elapsed / 60:.1f} min done", flush=True)

    key0 = jax.random.PRNGKey(a.seed + 1)
    if a.bench:
        t0 = time.time()
        out = step(params, opt_state, key0, 1e-3, weights)
        jax.block_until_ready(out)
        print(f"compile + 1 step: {time.time() - t0:.1f} s", flush=True)
        t0 = time.time()
        for i in range(a.bench):
            params, opt_state, m = step(params, opt_state, jax.random.fold_in(key0, i), 1e-3, weights)
        jax.block_until_ready(params)
        print(f"{(time.time() - t0) / a.bench:.3f} s/step (batch {a.batch})", flush=True)
        return None

    eval_fn = make_eval(G, ecfg, var_w) if a.progress_eval else None
    renders = palette_renders()
    budget = a.minutes * 60.0
    t_start = time.time() - elapsed
    last_ckpt, run_metrics, it0, t_seg = time.time(), [], it, time.time()  # it0/t_seg: this invocation
    done = lambda: time.time() - t_start > budget or (a.max_steps and it >= a.max_steps)  # noqa: E731
    while not done():
        frac = (time.time() - t_start) / budget
        lr = lr_at(a, it, frac)
        params, opt_state, m = step(params, opt_state, jax.random.fold_in(key0, it), lr, weights)
        it += 1
        run_metrics.append(m)
        if it % a.eval_every == 0 or done():
            ms = jax.device_get(run_metrics)
            run_metrics = []
            avg = {k: float(np.mean([x[k] for x in ms])) for k in ms[0]}
            el = time.time() - t_start
            step_s = (time.time() - t_seg) / max(1, it - it0)
            rec = {"step": it, "minutes": el / 60, "lr": lr, **avg}
            line = (f"step {it:6d} | {el / 60:5.1f} min, {step_s:.3f} s/step, ETA {max(0.0, budget - el) / 60:4.1f} "
                    f"min | lr {lr:.2e} | train loss {avg['loss']:.4f} latent {avg['latent']:.4f} image mse "
                    f"{avg['image_mse']:.4f}")
            if a.progress_eval:
                ev = {k: float(v) for k, v in eval_fn(params).items()}
                E = make_encoder(params, ecfg, G)
                colour = colour_recovery(G, encode(E, renders[0]), renders[0], renders[2])[0]
                rec.update(eval_latent=ev["latent"], eval_image_mse=ev["image_mse"], render_colour_recovery=colour)
                line += (f" | held-out samples: latent {ev['latent']:.4f} image mse {ev['image_mse']:.4f}"
                         f" | renders: colour {colour:.3f}")
            history.append(rec)
            print(line, flush=True)
        if time.time() - last_ckpt > a.ckpt_every * 60 or done():
            save_state(a.state, {"run": run_cfg, "params": params, "opt_state": opt_state, "step": it,
                                 "elapsed": time.time() - t_start, "history": history,
                                 "runs": runs + [{"command": command, "from_step": it0, "to_step": it}]})
            last_ckpt = time.time()
    elapsed = time.time() - t_start
    step_s = elapsed / max(1, it)  # training wall time per step, across resumes (incl. compile, progress evals)
    E = make_encoder(params, ecfg, G, a.save_dtype)
    print(f"done: {it} steps in {elapsed / 60:.1f} min; measuring on {N_RENDERS} fresh renders ...", flush=True)
    ev = evaluate_renders(G, E, a.refine_steps, renders)
    line = f"renders: colour recovery {100 * ev['colour_recovery']:.1f} % (target >= 80 %)"
    if "mse_refined" in ev:
        line += (f"; pixel MSE encoder {ev['mse_encoder']:.4f} -> refined ({a.refine_steps} steps) "
                 f"{ev['mse_refined']:.4f} (colour {100 * ev['colour_recovery_refined']:.1f} %); from the mean W "
                 f"{ev['mse_mean_w']:.4f} -> {ev['mse_mean_w_refined']:.4f}")
    print(line, flush=True)
    ev["targets"] = {"colour_recovery_at_least_80_percent": ev["colour_recovery"] >= 0.8}
    if "mse_refined" in ev:
        ev["targets"]["refinement_lowers_the_error"] = ev["mse_refined"] < ev["mse_encoder"]
    print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT MET'}" for k, v in ev["targets"].items()), flush=True)
    extra = {"method": "e4e-style training on generator samples: latent regression + image reconstruction",
             "generator": str(a.generator), "generator_fingerprint": fingerprint, "command": command,
             "args": {k: v for k, v in vars(a).items() if k not in ("out", "state")},
             "steps": it, "train_minutes": elapsed / 60, "seconds_per_step": step_s, "cpu_count": os.cpu_count(),
             "run_minutes_this_invocation": (time.time() - t_run) / 60,
             "render_eval": ev, "history": history, "invocations": runs + [{"command": command, "from_step": it0,
                                                                           "to_step": it}]}
    out = save(a.out, E, a.save_dtype, extra)
    size = folder_bytes(out)
    total = (time.time() - t_run) / 60
    with open(os.path.join(out, "TRAINING.md"), "w", encoding="utf-8") as f:
        f.write(training_md(a, ecfg, G, fingerprint, n_params, size, it, elapsed / 60, step_s, total, ev,
                            extra["invocations"]))
    size = folder_bytes(out)
    print(f"saved encoder to {out} ({size / 2 ** 20:.2f} MiB{'' if size <= MAX_BYTES else ', OVER the 5 MB limit'})",
          flush=True)
    return {"out": str(out), "steps": it, "history": history, "render_eval": ev, "bytes": size}


if __name__ == "__main__":
    main()
