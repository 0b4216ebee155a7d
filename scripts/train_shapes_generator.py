#!/usr/bin/env python
"""Train the tiny shapes-world StyleGAN2 generator shipped as ``load_generator("shapes")``.

Method: supervised regression, not a GAN. Every latent z has a deterministic target image,
``render_attributes(z_to_attributes(z))`` (see ``styleclip_jax/shapes/generator_data.py``: hue =
the angle of (z0, z1) on the full circle, shape = argmax z[2:6], saturation, brightness, size, position,
rotation and background level from normal CDFs of z[6:13]). The unmodified StyleGAN2 (``generator.mapping`` + ``generator.synthesis``,
noise_mode "const", noise strengths held at 0) is fitted to these targets with

    loss = MSE + r(t) * (L1 + edge_weight * L1(finite-difference gradients of G(z) vs. of the target))

where r(t) is 0 for the first half of the wall-clock budget and ramps linearly to 1 by 75 %: MSE
alone first teaches where/what the shape is (L1 terms favour the median image, plain background, while
the model cannot place shapes yet), then L1 and the edge term keep shape boundaries crisp where pure
MSE averages them into blobs. Optimiser: Adam on the
raw (equalised-lr) parameters; the mapping network's Adam step is multiplied by
``--mapping-lr-scale`` because its stored weights are scaled by mapping_lr_multiplier=0.01 at run time.
``w_avg`` is tracked as in the official training (EMA of the batch mean w, beta 0.995), so
truncation works. The learning rate follows a cosine decay over the wall-clock budget.

Efficient and bounded: the whole train step (forward, loss, grads, Adam, w_avg) is one jitted
function; targets are rendered with numpy in chunks of fresh latents in a background thread; the run
stops after ``--minutes`` of training wall time (counted across resumes); the full training state is
checkpointed every ``--ckpt-every`` minutes to ``--state`` and rerunning the same command resumes.
At the end the generator is written with ``checkpoints.save_params`` to ``--out``
(default: the package asset folder ``styleclip_jax/assets/shapes_generator``).

``--init``, ``--cls-weight`` (a shape-classifier loss) and ``--adv-weight`` (a discriminator) are for fine-tuning
experiments; what they gave is in
TRAINING.md ("Tried since"); the shipped checkpoint does not use them.
``--map-pretrain-steps``, ``--oracle-until``/``--oracle-fade`` (the two-stage schedule), ``--mix-prob`` (in-between
codes), ``--hue-code``/``--palette-kappa``, ``--code-projection``, ``--affine-l1``, ``--code-channels`` (the attribute
code's layout and sharpness, a sparsity penalty on the w -> S affines, a fixed one-coordinate-per-channel mask on them)
and ``--edit-prob``/``--edit-negative``/``--edit-far``/``--free-noise`` (palette codes moved off their curve as a
StyleSpace edit moves them, with a meaning; noise on the w coordinates outside the code) are trials
of the same kind, measured in TRAINING.md (sections after "A two-stage run").

Reproduce: the command in styleclip_jax/assets/shapes_generator/TRAINING.md (or scripts/rebuild_shapes_world.sh).
"""
from __future__ import annotations

import argparse
import math
import os
import pickle
import queue
import sys
import threading
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.scipy.stats  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from styleclip_jax import checkpoints  # noqa: E402
from styleclip_jax.models import generator as G  # noqa: E402
from styleclip_jax import ops  # noqa: E402
from styleclip_jax.shapes import generator_data as D  # noqa: E402
from styleclip_jax.shapes import render as R  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_OUT = os.path.join(REPO, "styleclip_jax", "assets", "shapes_generator")
EVAL_SEEDS = range(1_000_000, 1_000_256)  # held-out latents: np.random.RandomState(seed).randn(z_dim)
W_AVG_BETA = 0.995

# ---------------------------------------------------------------------------------------------
# Training-only fast modulated conv: the same maths as ops.modulated_conv2d (checked at start-up
# against the standard synthesis), written as im2col matmuls. XLA:CPU's grouped FIR convolutions
# and lhs-dilated transposed convolutions are slow, their gradients even more so. The up-sampling
# conv (transposed conv stride 2, then the [1,3,3,1] FIR) is folded into one 6x6 kernel on the
# zero-inserted input and split into its 4 polyphase 3x3 kernels, so it becomes one matmul.
# ---------------------------------------------------------------------------------------------

def _im2col_conv3(x, w):
    """x (N,H,W,I) padded by 1, correlate with w (O,I,3,3) via one matmul."""
    n, h, wd, i = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, dy:dy + h, dx:dx + wd, :] for dy in range(3) for dx in range(3)], axis=-1)
    wm = jnp.transpose(w, (2, 3, 1, 0)).reshape(9 * i, -1)
    return cols @ wm

def up_kernel(w, f=ops.DEFAULT_FILTER):
    """(O,I,3,3) -> phase kernels (4O, I, 3, 3) for the exact official up-conv."""
    f = jnp.asarray(np.asarray(f, np.float32))
    # K2[dy,dx], d in [-2,3] -> index d+2 in [0,5]; K2[d] = 4 sum_b f[b] w[d+2-b]
    o, i = w.shape[:2]
    K = jnp.zeros((o, i, 6, 6), w.dtype)
    for by in range(4):
        for bx in range(4):
            # w index u = d+2-b  -> d = u+b-2 -> K index d+2 = u+b
            K = K.at[:, :, by:by + 3, bx:bx + 3].add(4.0 * f[by, bx] * w)
    phases = []
    for ay in range(2):
        for ax in range(2):
            P = jnp.stack([jnp.stack([K[:, :, ay - 2 * ey + 2, ax - 2 * ex + 2] for ex in (-1, 0, 1)], -1)
                           for ey in (-1, 0, 1)], -2)
            phases.append(P)
    return jnp.concatenate(phases, axis=0)  # (4O, I, 3, 3), phase-major

def fast_modconv(x, weight, styles, noise=None, up=1, padding=0, demodulate=True):
    x = x * styles[:, None, None, :]
    kh = weight.shape[2]
    if kh == 1:
        y = x @ weight[:, :, 0, 0].T
    elif up == 1:
        assert padding == 1
        y = _im2col_conv3(x, weight)
    else:
        assert padding == 1 and up == 2
        o = weight.shape[0]
        y = _im2col_conv3(x, up_kernel(weight))
        n, h, w_, _ = y.shape
        y = y.reshape(n, h, w_, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w_, o)
    if demodulate:
        y = y * ops.demod_coefficients(weight, styles)[:, None, None, :]
    if noise is not None:
        y = y + noise
    return y


def check_fast_conv(params, cfg, n=4):
    """The training synthesis (fast_modconv) must equal the shipped one (ops.modulated_conv2d)."""
    z = jnp.asarray(np.random.default_rng(123).standard_normal((n, cfg.z_dim)), jnp.float32)
    ws = G.mapping(params, cfg, z)
    ref = np.asarray(G.synthesis(params, cfg, ws))
    fast = np.asarray(G.synthesis(params, cfg, ws, modconv=fast_modconv))
    err = float(np.max(np.abs(ref - fast)) / (np.max(np.abs(ref)) + 1e-12))
    if not err < 1e-3:
        raise SystemExit(f"fast_modconv disagrees with ops.modulated_conv2d (relative max error {err:.2e})")
    print(f"fast_modconv check: relative max error {err:.1e} vs. the standard synthesis", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for the final generator (save_params)")
    p.add_argument("--state", default="/tmp/shapes_generator_state.pkl", help="resumable training state file")
    p.add_argument("--minutes", type=float, default=40.0, help="training wall-clock budget (across resumes)")
    p.add_argument("--ckpt-every", type=float, default=3.0, help="minutes between state checkpoints")
    p.add_argument("--eval-every", type=int, default=100, help="steps between held-out evaluations")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-final", type=float, default=0.05, help="final lr as a fraction of --lr (cosine)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    p.add_argument("--mapping-lr-scale", type=float, default=100.0)
    p.add_argument("--edge-weight", type=float, default=1.0)
    p.add_argument("--shape-weight", type=float, default=4.0, help="extra MSE weight on shape pixels")
    p.add_argument("--decisive-weight", type=float, default=0.0,
                   help="extra MSE weight on the pixels where the shapes differ (shape_decisive_pixels)")
    p.add_argument("--code-weight", type=float, default=0.0,
                   help="weight of an MSE pulling w toward a fixed linear code of the attributes (one-hot shape, "
                        "hue direction, continuous values), decayed linearly to 0 at --code-until of the budget: "
                        "the mapping network learns the argmax and the synthesis gets the shape as a linear feature")
    p.add_argument("--code-until", type=float, default=0.5)
    p.add_argument("--oracle-until", type=float, default=0.0,
                   help="budget fraction during which the synthesis network is fed the attribute code itself "
                        "instead of mapping(z) (faded out linearly over --oracle-fade; the mapping network learns "
                        "the code meanwhile through the code term)")
    p.add_argument("--oracle-fade", type=float, default=0.1, help="budget fraction of the oracle's fade-out")
    p.add_argument("--map-pretrain-steps", type=int, default=0,
                   help="before training, fit the mapping network alone to the attribute code for this many steps "
                        "(batch 256, cosine lr from 3e-3; 20,000 take ~10 s on 2 cores)")
    p.add_argument("--mix-prob", type=float, default=0.0,
                   help="fraction of training samples whose oracle code lies between two samples' codes: hue on the "
                        "chord between two hue directions (rendered at the chord's angle, saturation times its "
                        "length), shape between two one-hots (rendered as the same blend of the two coverages); "
                        "they count with the oracle's weight, so they fade out with it")
    p.add_argument("--edit-prob", type=float, default=0.0,
                   help="(--hue-code palette) fraction of training samples whose palette coordinates are moved off "
                        "the code's curve as a StyleSpace edit would move them, drawn at the hue palette_hue_of "
                        "gives them (saturation kept); they are always drawn from their code, at full weight")
    p.add_argument("--edit-negative", type=float, nargs=2, default=(1.2, 0.2), metavar=("S_MAX", "NOISE"),
                   help="(--edit-prob) an edited sample's own palette coordinates are scaled by 1 - s, s ~ U(0, "
                        "S_MAX), and every coordinate gets noise up to +-NOISE: how far below 0 edits are taught")
    p.add_argument("--edit-far", default="arc", choices=("arc", "dark"),
                   help="(--edit-prob) how two raised palette coordinates that are not neighbours round the hue "
                        "circle are drawn: 'arc' moves the hue along the shorter arc (through the colours between "
                        "them), 'dark' keeps the larger one's hue and darkens it (see palette_value_of)")
    p.add_argument("--free-noise", type=float, default=0.0,
                   help="std of Gaussian noise added to every W+ row's coordinates outside the attribute code in "
                        "the synthesis input (free_noise; with --code-projection identity)")
    p.add_argument("--hue-code", default="circle", choices=("circle", "palette"),
                   help="how the attribute code writes hue: (cos, sin), or six palette affinities (see HUE_CODE)")
    p.add_argument("--palette-kappa", type=float, default=3.0,
                   help="(--hue-code palette) sharpness of the six affinities exp(kappa (cos(angle - angle_k) - 1)): "
                        "3 gives a colour's neighbours (60 degrees away) 0.22, 6 gives them 0.05")
    p.add_argument("--code-projection", default="random", choices=("random", "identity"),
                   help="where the attribute code goes in w: a fixed random orthogonal map, or w's first coordinates")
    p.add_argument("--affine-l1", type=float, default=0.0,
                   help="weight of an L1 penalty on the synthesis layers' style affine weights (w -> S), which "
                        "pushes every StyleSpace channel to read few coordinates of w")
    p.add_argument("--code-channels", action="store_true",
                   help="(with --code-projection identity) fix the sparsity of every synthesis layer's style affine "
                        "(w -> S): channel j < code_dims() reads w coordinate j alone (one attribute-code "
                        "coordinate per channel: a channel per palette colour, per shape, per continuous "
                        "attribute), the other channels read no code coordinate")
    p.add_argument("--hue-layer", default=None, metavar="BLOCK/LAYER",
                   help="(with --code-channels and --hue-code palette) the one synthesis layer whose style channels "
                        "read the hue coordinates, e.g. b16/conv1; in every other layer (toRGB too) those channels "
                        "read no w coordinate, so a single StyleSpace channel holds all of a colour (what the "
                        "global directions' channel sweep measures)")
    p.add_argument("--l1-weight", type=float, default=1.0)
    p.add_argument("--ramp-start", type=float, default=0.5, help="budget fraction where L1/edge terms start")
    p.add_argument("--ramp-end", type=float, default=0.75, help="budget fraction where they reach full weight")
    p.add_argument("--init", default=None,
                   help="fine-tune: start from the generator saved in this folder (fresh Adam state, fresh lr "
                        "schedule over --minutes) instead of random weights")
    p.add_argument("--cls-weight", type=float, default=0.0,
                   help="weight of the shape-classifier cross-entropy on G(z) (a small CNN trained first on renders)")
    p.add_argument("--cls-steps", type=int, default=1500, help="training steps of that classifier (batch 128)")
    p.add_argument("--adv-weight", type=float, default=0.0,
                   help="weight of the adversarial (non-saturating) loss of a small discriminator on G(z) vs. the renders")
    p.add_argument("--r1-gamma", type=float, default=1.0, help="R1 penalty of that discriminator on the renders")
    p.add_argument("--chunk", type=int, default=4096, help="latents rendered per data chunk")
    p.add_argument("--passes", type=int, default=2, help="minibatch passes over each chunk")
    p.add_argument("--z-dim", type=int, default=16)
    p.add_argument("--w-dim", type=int, default=64)
    p.add_argument("--mapping-layers", type=int, default=4)
    p.add_argument("--channel-base", type=int, default=1024)
    p.add_argument("--channel-max", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--standard-conv", action="store_true", help="train with ops.modulated_conv2d (slow on CPU)")
    p.add_argument("--bench", type=int, default=0, help="only time this many train steps and exit")
    p.add_argument("--fresh", action="store_true", help="ignore an existing --state file")
    return p.parse_args(argv)


def make_config(a) -> G.GeneratorConfig:
    return G.GeneratorConfig(z_dim=a.z_dim, w_dim=a.w_dim, img_resolution=R.IMAGE_SIZE, img_channels=3, c_dim=0,
                             mapping_layers=a.mapping_layers, mapping_lr_multiplier=0.01,
                             channel_base=a.channel_base, channel_max=a.channel_max, conv_clamp=None,
                             source="nvlabs")


def update_scales(params, mapping_lr_scale: float):
    """Per-leaf multiplier of the Adam step: 0 for w_avg (EMA) and noise strengths (held at 0)."""
    def scale(path, _):
        names = [getattr(k, "key", None) for k in path]
        if names[-1] in ("w_avg", "noise_strength", "noise_const"):
            return 0.0
        return mapping_lr_scale if names[0] == "mapping" else 1.0
    return jax.tree_util.tree_map_with_path(scale, params)


def image_grads(x):
    return x[:, 1:, :, :] - x[:, :-1, :, :], x[:, :, 1:, :] - x[:, :, :-1, :]


# ---------------------------------------------------------------------------------------------
# Shape-classifier loss (fine-tune stage). Equal-area circles, squares and triangles differ in a few
# corner pixels only, so the pixel losses give the generator little reason to draw corners: the first
# 80-min regression run drew squares and triangles as soft blobs (mask metric 48.8 % right). A small
# CNN, trained here on renders of the rule (not on generator output) to tell the four shapes apart,
# turns "which shape is this" into one strong global gradient: its cross-entropy against the rule's
# shape is added to the pixel losses (``--cls-weight``). It is trained with blur and pixel noise so it
# keys on geometry, not on pixel-exact rendering.
# ---------------------------------------------------------------------------------------------

def _cls_init(key, widths=(32, 64, 96)):
    params, cin = [], 1
    for i, cout in enumerate(widths):
        k = jax.random.fold_in(key, i)
        params.append({"w": jax.random.normal(k, (3, 3, cin, cout)) * math.sqrt(2.0 / (9 * cin)),
                       "b": jnp.zeros((cout,))})
        cin = cout
    params.append({"w": jax.random.normal(jax.random.fold_in(key, 99), (cin, D.N_SHAPES)) / math.sqrt(cin),
                   "b": jnp.zeros((D.N_SHAPES,))})
    return params


def cls_logits(cparams, img):
    """img (N, 32, 32, 3) in [-1, 1] -> (N, 4) shape logits. Input is made colour- and background-blind
    (distance of each pixel from the corner pixel) so the classifier sees only the shape's mask."""
    x = jnp.sqrt(jnp.sum(jnp.square(img - img[:, :1, :1, :]), axis=-1, keepdims=True) + 1e-6)
    for layer in cparams[:-1]:
        x = jax.lax.conv_general_dilated(x, layer["w"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer["b"]
        x = jax.nn.relu(x)
        n, h, w, c = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return x.mean(axis=(1, 2)) @ cparams[-1]["w"] + cparams[-1]["b"]


def train_shape_classifier(seed: int, steps: int, batch: int = 128, z_dim: int = 16):
    """Train ``cls_logits`` on rule renders (blurred / noised at random); returns (params, accuracy on
    1,024 fresh renders, accuracy on the same renders blurred with sigma 1)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, 4242])

    def data(n):
        z = rng.standard_normal((n, z_dim)).astype(np.float32)
        attrs = D.z_to_attributes(z)
        img = R.render_attributes(attrs)
        sig = rng.uniform(0.0, 1.2, n)
        img = np.stack([gaussian_filter(im, (s, s, 0)) if s > 0.2 else im for im, s in zip(img, sig)])
        img = img + rng.normal(0, 1, (n, 1, 1, 1)) * 0.03 * rng.standard_normal(img.shape)
        return img.astype(np.float32), attrs["shape"]

    cparams = _cls_init(jax.random.PRNGKey(seed))
    tx = optax.adam(optax.cosine_decay_schedule(2e-3, steps, 0.05))
    opt = tx.init(cparams)

    @jax.jit
    def cstep(cparams, opt, x, y):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(cls_logits(p, x), y).mean()
        l, g = jax.value_and_grad(loss)(cparams)
        up, opt = tx.update(g, opt, cparams)
        return optax.apply_updates(cparams, up), opt, l

    t0 = time.time()
    for i in range(steps):
        x, y = data(batch)
        cparams, opt, l = cstep(cparams, opt, x, y)
        if (i + 1) % 250 == 0:
            print(f"shape classifier step {i + 1}/{steps}: loss {float(l):.4f} ({time.time() - t0:.0f} s)", flush=True)
    z = np.random.default_rng([seed, 777]).standard_normal((1024, z_dim)).astype(np.float32)
    attrs = D.z_to_attributes(z)
    img = R.render_attributes(attrs)
    acc = float(np.mean(np.argmax(np.asarray(cls_logits(cparams, img)), 1) == attrs["shape"]))
    blur = gaussian_filter(img, (0, 1.0, 1.0, 0))
    acc_blur = float(np.mean(np.argmax(np.asarray(cls_logits(cparams, blur)), 1) == attrs["shape"]))
    return cparams, acc, acc_blur


# ---------------------------------------------------------------------------------------------
# Adversarial term (fine-tune stage, ``--adv-weight``): a small discriminator learns to tell the batch's
# target renders from G(z) (non-saturating loss, R1 penalty on the renders), and G gets its
# non-saturating loss on top of the pixel losses, as pix2pix does with L1: the pixel losses keep the
# content, the discriminator punishes what renders never have (soft corners, blobs).
# ---------------------------------------------------------------------------------------------

def disc_init(key, widths=(32, 64, 128)):
    params, cin = [], 3
    for i, cout in enumerate(widths):
        params.append({"w": jax.random.normal(jax.random.fold_in(key, i), (3, 3, cin, cout)) * math.sqrt(2.0 / (9 * cin)),
                       "b": jnp.zeros((cout,))})
        cin = cout
    n_in = cin * (R.IMAGE_SIZE // 2 ** len(widths)) ** 2
    params.append({"w": jax.random.normal(jax.random.fold_in(key, 99), (n_in, 1)) / math.sqrt(n_in),
                   "b": jnp.zeros((1,))})
    return params


def disc_logits(dparams, img):
    """img (N, 32, 32, 3) in [-1, 1] -> (N,) real/fake logits."""
    x = img
    for layer in dparams[:-1]:
        x = jax.lax.conv_general_dilated(x, layer["w"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer["b"]
        x = jax.nn.leaky_relu(x, 0.2)
        n, h, w, c = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return (x.reshape(x.shape[0], -1) @ dparams[-1]["w"] + dparams[-1]["b"])[:, 0]


DISC_TX = optax.adam(2e-4, b1=0.0, b2=0.99)


# How the attribute code writes hue (--hue-code): "circle" = the direction (cos, sin) of z[0:2]; "palette" = six
# smooth affinities exp(kappa (cos(angle - angle_k) - 1)) to the palette colours' angles (colour k sits at
# 60 degrees x its place round the circle, as render.hue_from_uniform maps it), so that every palette colour
# has its own axis in the code. And where the code goes in w (--code-projection): "random" = a fixed random
# orthogonal map; "identity" = the first coordinates of w (times 2), the rest 0.
HUE_CODE = "circle"
CODE_PROJECTION = "random"
PALETTE_KAPPA = 3.0
EDIT_S_MAX, EDIT_NOISE = 1.2, 0.2  # --edit-negative
EDIT_FAR, FAR_DARKEN = "arc", 0.7  # --edit-far; with "dark": value x (1 - FAR_DARKEN r) between non-neighbours
_PALETTE_ANGLES = np.deg2rad(60.0 * np.argsort(np.argsort(R.COLOUR_HUES)))  # COLOURS order


def hue_code_dims() -> int:
    return 2 if HUE_CODE == "circle" else len(R.COLOURS)


def code_dims() -> int:
    return hue_code_dims() + D.N_SHAPES + len(range(D.MIN_Z_DIM)[D.CONTINUOUS_DIMS])


def shape_code_slice() -> slice:
    return slice(hue_code_dims(), hue_code_dims() + D.N_SHAPES)


def _hue_code(x, xp):
    """x (N, >=2) normalised z -> (N, hue_code_dims()) with array module xp (numpy or jax.numpy)."""
    unit = x[:, 0:2] / xp.clip(xp.linalg.norm(x[:, 0:2], axis=-1, keepdims=True), 1e-6, None)
    if HUE_CODE == "circle":
        return unit
    cos_d = unit[:, :1] * xp.cos(_PALETTE_ANGLES) + unit[:, 1:2] * xp.sin(_PALETTE_ANGLES)  # cos(angle - angle_k)
    return xp.exp(PALETTE_KAPPA * (cos_d - 1.0))


def _code(x, xp, normal_cdf):
    """x (N, z_dim) normalised z -> (N, code_dims()) attribute code before projection: hue (--hue-code), one-hot
    shape (4), the 7 continuous attributes as 2 Phi(x) - 1 in [-1, 1]; xp: numpy or jax.numpy."""
    shape = xp.eye(D.N_SHAPES)[xp.argmax(x[:, D.SHAPE_DIMS], axis=1)]
    cont = 2.0 * normal_cdf(x[:, D.CONTINUOUS_DIMS]) - 1.0
    return xp.concatenate([_hue_code(x, xp), shape, cont], axis=1)


def code_coordinates(z) -> np.ndarray:
    """(N, code_dims()) the attribute code before projection, in numpy (for the data thread's mixed samples)."""
    return _code(D.normalise_z(z), np, D.normal_cdf).astype(np.float32)


def mixed_samples(z, rng, mix_prob):
    """Training targets and oracle codes for latents ``z``, a ``mix_prob`` fraction of them moved to points
    between the codes of two samples, with a target that gives those points a meaning: hue = the chord
    lambda h_i + (1 - lambda) h_j between two hue directions, rendered at the chord's angle with the saturation
    scaled by its length (a colour wheel); shape = mu e_a + (1 - mu) e_b, rendered as the same blend of the two
    shapes' coverages. Returns (target (N, 32, 32, 4) with the decisive-pixel channel, code (N, 13),
    mixed (N,) float)."""
    attrs = D.z_to_attributes(z)
    code = code_coordinates(z)
    n = len(z)
    mixed = rng.random(n) < mix_prob
    cov, fg, bg = R.render_layers(attrs)
    if mixed.any():
        idx = np.where(mixed)[0]
        lam = rng.random(len(idx))
        partner = rng.integers(0, n, len(idx))
        h = lam[:, None] * code[idx, 0:2] + (1.0 - lam[:, None]) * code[partner, 0:2]
        r = np.linalg.norm(h, axis=1)
        u = np.mod(np.arctan2(h[:, 1], h[:, 0]) / (2.0 * np.pi), 1.0)
        hue = R.hue_from_uniform(360.0 * u)
        sat = np.asarray(attrs["saturation"])[idx] * np.clip(r, 0.0, 1.0)
        fg = fg.copy()
        fg[idx] = R.hsv_to_rgb(hue, sat, np.asarray(attrs["brightness"])[idx])
        code[idx, 0:2] = h
        mu = rng.random(len(idx))
        other = (np.asarray(attrs["shape"])[idx] + rng.integers(1, D.N_SHAPES, len(idx))) % D.N_SHAPES
        sub = {k: np.asarray(v)[idx] for k, v in attrs.items()}
        cov_other = R.render_layers(dict(sub, shape=other))[0]
        cov = cov.copy()
        cov[idx] = mu[:, None, None] * cov[idx] + (1.0 - mu[:, None, None]) * cov_other
        code[idx, 2:6] = mu[:, None] * code[idx, 2:6] + (1.0 - mu[:, None]) * np.eye(D.N_SHAPES)[other]
    target = np.concatenate([R.compose_layers(cov, fg, bg), D.shape_decisive_pixels(attrs)[..., None]], axis=-1)
    return target.astype(np.float32), code, mixed.astype(np.float32)


def free_noise(rng, n, cfg, sigma):
    """(n, num_ws, w_dim) N(0, sigma^2) noise on the w coordinates >= code_dims() (0 on the code's), one draw per
    W+ row: added to the synthesis input (--free-noise) so the generator learns to ignore the coordinates that
    carry no attribute, which a W+ optimisation would otherwise move to deform the shape."""
    e = rng.standard_normal((n, cfg.num_ws, cfg.w_dim)).astype(np.float32) * sigma
    e[..., :code_dims()] = 0.0
    return e


def palette_hue_of(c) -> np.ndarray:
    """(N, 6) palette coordinates (COLOURS order, any real values) -> the hue (degrees) the --edit-prob rule
    draws them with: a = the largest coordinate, b = the second, the hue goes from palette hue a toward palette
    hue b along the shorter arc of the hue circle, by a fraction in [0, 1/2] of r = c_b / c_a. For neighbours
    round the circle it is the fraction the palette code itself gives them: a hue d degrees (of code angle,
    0 <= d <= 30) from colour a toward neighbour b has r = exp(kappa (cos(60 - d) - cos d)), so f(r) = d / 60
    and on the code's own curve the rule returns the rendered hue (up to the third coordinate, < 0.01 degrees at
    kappa 6); for colours further apart, which the curve never mixes, it is r / 2, so that a coordinate raised
    to 8 x the largest one draws its colour from any source (with --edit-far dark it is 0 there: the hue stays
    a's and palette_value_of darkens it). Coordinates below 0 count as 0; where none is above 0.05 the largest
    colour is drawn."""
    ia, ib, r = _top_two(c)
    d = np.linspace(0.0, 30.0, 301)
    ratio = np.exp(PALETTE_KAPPA * (np.cos(np.deg2rad(60.0 - d)) - np.cos(np.deg2rad(d))))
    near = _neighbours(ia, ib)
    f = np.where(near, np.interp(r, ratio, d / 60.0), 0.5 * r if EDIT_FAR == "arc" else 0.0)
    ha, hb = R.COLOUR_HUES[ia], R.COLOUR_HUES[ib]
    return np.mod(ha + f * (np.mod(hb - ha + 180.0, 360.0) - 180.0), 360.0)


def _top_two(c):
    """(N, 6) palette coordinates (below 0 count as 0) -> (ia, ib, r): the largest and second coordinates' colour
    indices and r = c_b / c_a (0 where c_a <= 0.05)."""
    c = np.maximum(np.asarray(c, np.float64), 0.0)
    rows = np.arange(len(c))
    order = np.argsort(-c, axis=1, kind="stable")
    ia, ib = order[:, 0], order[:, 1]
    ca, cb = c[rows, ia], c[rows, ib]
    return ia, ib, np.where(ca > 0.05, cb / np.maximum(ca, 1e-8), 0.0)


def _neighbours(ia, ib):
    """(N,) bool: palette colours ia and ib (COLOURS indices) are next to each other round the hue circle."""
    steps = np.abs(np.round((_PALETTE_ANGLES[ib] - _PALETTE_ANGLES[ia]) / (np.pi / 3.0))) % 6
    return (steps == 1) | (steps == 5)


def palette_value_of(c) -> np.ndarray:
    """(N, 6) palette coordinates -> (N,) factor on the rendered value (brightness): 1, except with --edit-far
    dark where the two largest coordinates a, b are not neighbours: 1 - FAR_DARKEN r, r = c_b / c_a, so that
    raising a far colour's coordinate darkens the shape (the hue stays a's, see palette_hue_of) until it passes
    the largest, then the shape brightens in the new colour, instead of passing the colours in between."""
    if EDIT_FAR == "arc":
        return np.ones(len(c))
    ia, ib, r = _top_two(c)
    return np.where(_neighbours(ia, ib), 1.0, 1.0 - FAR_DARKEN * r)


def palette_edit_samples(z, rng, edit_prob):
    """Training targets and oracle codes for latents ``z`` (--hue-code palette), an ``edit_prob`` fraction of
    them moved off the code's curve the way a StyleSpace edit moves them: the palette coordinates become
    (1 - s) c + t e_k + noise (s ~ U(0, EDIT_S_MAX), t ~ U(0, 1.5), a random colour k, noise ~ U(-EDIT_NOISE,
    EDIT_NOISE) x U(0, 1); --edit-negative sets the first two: how far below 0 a lowered coordinate may go),
    drawn at ``palette_hue_of`` of them with saturation, shape and everything else kept, so that every palette
    coordinate alone moves the hue toward its colour and none greys the shape. Returns (target (N, 32, 32, 4)
    with the decisive-pixel channel, code (N, code_dims()), edited (N,) float)."""
    attrs = D.z_to_attributes(z)
    code = code_coordinates(z)
    n, k = len(z), hue_code_dims()
    edited = rng.random(n) < edit_prob
    cov, fg, bg = R.render_layers(attrs)
    if edited.any():
        idx = np.where(edited)[0]
        m = len(idx)
        s = rng.uniform(0.0, EDIT_S_MAX, m)[:, None]
        t = rng.uniform(0.0, 1.5, m)[:, None]
        hue = (1.0 - s) * code[idx, :k] + t * np.eye(k)[rng.integers(0, k, m)]
        hue = hue + rng.uniform(-EDIT_NOISE, EDIT_NOISE, (m, k)) * rng.uniform(0.0, 1.0, (m, 1))
        code[idx, :k] = hue
        fg = fg.copy()
        fg[idx] = R.hsv_to_rgb(palette_hue_of(hue), np.asarray(attrs["saturation"])[idx],
                               np.asarray(attrs["brightness"])[idx] * palette_value_of(hue))
    target = np.concatenate([R.compose_layers(cov, fg, bg), D.shape_decisive_pixels(attrs)[..., None]], axis=-1)
    return target.astype(np.float32), code, edited.astype(np.float32)


def code_projection(w_dim):
    """(w_dim, code_dims()) fixed map with orthogonal columns of norm 2: code coordinates -> w (random, seed 0, or
    the first coordinates of w; --code-projection)."""
    if CODE_PROJECTION == "identity":
        return np.eye(w_dim, code_dims()) * 2.0
    return np.linalg.qr(np.random.default_rng(0).standard_normal((w_dim, code_dims())))[0] * 2.0


def attribute_code_of(z, w_dim):
    """The attribute code of latents z (N, z_dim) in w (N, w_dim): ``_code`` in jax.numpy (traceable, used inside
    the jitted steps), projected by code_projection."""
    proj = jnp.asarray(code_projection(w_dim), jnp.float32)
    x = z / jnp.sqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
    return _code(x, jnp, jax.scipy.stats.norm.cdf) @ proj.T


def pretrain_mapping(params, cfg, scales, steps, seed=0, lr=3e-3, batch=256):
    """Fit the mapping network alone to ``attribute_code_of(z)`` (MSE, Adam, cosine lr), so that from the first
    generator step mapping(z) already carries the rule's attributes, the one-hot shape included (the argmax is
    the hard part). Cheap: no synthesis. Returns (params, final loss, shape read back from w on EVAL_SEEDS)."""
    tx = optax.scale_by_adam()
    mp, sc = params["mapping"], scales["mapping"]
    opt = tx.init(mp)

    def loss(mp, z):
        ws = G.mapping(dict(params, mapping=mp), cfg, z)
        return jnp.mean(jnp.square(ws[:, 0] - attribute_code_of(z, cfg.w_dim)))

    @jax.jit
    def step(mp, opt, z, lr_i):
        val, g = jax.value_and_grad(loss)(mp, z)
        u, opt = tx.update(g, opt, mp)
        return jax.tree_util.tree_map(lambda p, u, s: p - lr_i * s * u, mp, u, sc), opt, val

    rng = np.random.default_rng([seed, 4242])
    val = jnp.zeros(())
    for i in range(steps):
        z = jnp.asarray(rng.standard_normal((batch, cfg.z_dim)).astype(np.float32))
        mp, opt, val = step(mp, opt, z, lr * 0.5 * (1.0 + math.cos(math.pi * i / steps)))
    params = dict(params, mapping=mp)
    z = jnp.asarray(G.seeds_to_z(EVAL_SEEDS, cfg.z_dim))
    w = G.mapping(params, cfg, z)[:, 0]
    coords = np.asarray(w) @ code_projection(cfg.w_dim) / 4.0  # back to the code coordinates
    x = D.normalise_z(np.asarray(z))
    shape_acc = float(np.mean(np.argmax(coords[:, shape_code_slice()], 1) == np.argmax(x[:, D.SHAPE_DIMS], 1)))
    return params, float(val), shape_acc


def affine_layers(params):
    """[((block, layer), style affine weight (C, w_dim))] for every synthesis layer (convs and toRGB)."""
    return [((b, l), layer["affine"]["weight"]) for b, block in params["synthesis"].items() if isinstance(block, dict)
            for l, layer in block.items() if isinstance(layer, dict) and "affine" in layer]


def affine_weights(params):
    """The style affine weight matrices (w -> S) of every synthesis layer."""
    return [w for _, w in affine_layers(params)]


def code_channel_mask(shape, k, silent=0):
    """(C, w_dim) 0/1 mask of a style affine weight for --code-channels: row j < k reads coordinate j only,
    rows >= k read no coordinate < k; rows j < silent read nothing (--hue-layer: the hue rows of the other
    layers)."""
    c, w_dim = shape
    m = np.ones((c, w_dim), np.float32)
    m[:, :k] = 0.0
    for j in range(min(c, k)):
        m[j, :] = 0.0
        m[j, j] = 1.0 if j >= silent else 0.0
    return m


def apply_affine_masks(params, masks):
    """Multiply every synthesis layer's style affine weight by its mask (masks: {(block, layer): mask})."""
    if not masks:
        return params
    syn = dict(params["synthesis"])
    for (b, l), m in masks.items():
        layer = dict(syn[b][l])
        layer["affine"] = dict(layer["affine"], weight=layer["affine"]["weight"] * m)
        syn[b] = dict(syn[b], **{l: layer})
    return dict(params, synthesis=syn)


def affine_masks_for(params, hue_layer=None):
    """{(block, layer): code_channel_mask} for every synthesis layer (--code-channels); with hue_layer
    ("b16/conv1") only that layer's channels read the hue coordinates."""
    keys = ["/".join(key) for key, _ in affine_layers(params)]
    if hue_layer is not None and hue_layer not in keys:
        raise SystemExit(f"--hue-layer: expected one of {', '.join(keys)}, got {hue_layer!r}")
    return {key: jnp.asarray(code_channel_mask(
        w.shape, code_dims(), 0 if hue_layer in (None, "/".join(key)) else hue_code_dims()))
        for key, w in affine_layers(params)}


def make_step(cfg, scales, modconv, shape_weight=4.0, decisive_weight=0.0, cls_params=None, r1_gamma=1.0,
              affine_l1=0.0, masks=None, edits_keep_oracle=False):
    tx = optax.scale_by_adam()

    proj = jnp.asarray(code_projection(cfg.w_dim), jnp.float32)

    def loss_fn(params, z, target, l1_weight, edge_weight, code_weight, cls_weight, dparams, adv_weight, oracle,
                code, mixed, wnoise=None):
        ws = G.mapping(params, cfg, z)
        code_w = attribute_code_of(z, cfg.w_dim)
        # oracle > 0: the synthesis network sees (a blend toward) the attribute code itself, so it can learn to
        # draw from exact attributes while the mapping network learns to produce that code; ``code`` may hold
        # points between two samples' codes (``mixed``, see mixed_samples), whose weight fades with the oracle
        oracle_w = code_w if code is None else code @ proj.T
        if mixed is not None and edits_keep_oracle:  # --edit-prob: edited samples are always drawn from their code
            o = oracle + mixed * (1.0 - oracle)
            ws_syn = ws + o[:, None, None] * (oracle_w[:, None, :] - ws)
        else:
            ws_syn = ws + oracle * (oracle_w[:, None, :] - ws)
        if wnoise is not None:  # --free-noise: the w coordinates outside the code, jittered per layer
            ws_syn = ws_syn + wnoise
        img = G.synthesis(params, cfg, ws_syn, noise_mode="const", modconv=modconv)
        # shape pixels are 6-25 % of an image: weight them up so colour and placement are learned
        # before the (easy) background dominates the loss; the corner pixel is always background
        # channel 3 of the target: where the shapes differ (generator_data.shape_decisive_pixels)
        target, decisive = target[..., :3], target[..., 3:]
        diff = img - target
        fg = (jnp.sum(jnp.abs(target - target[:, :1, :1, :]), axis=-1, keepdims=True) > 0.15)
        wmap = 1.0 + shape_weight * fg.astype(img.dtype) + decisive_weight * decisive
        if mixed is not None and not edits_keep_oracle:
            diff = diff * (1.0 - mixed * (1.0 - oracle))[:, None, None, None]
        mse = jnp.mean(wmap * jnp.square(diff)) / jnp.mean(wmap)
        l1 = jnp.mean(jnp.abs(diff))
        gy, gx = image_grads(img)
        ty, tx_ = image_grads(target)
        edge = 0.5 * (jnp.mean(jnp.abs(gy - ty)) + jnp.mean(jnp.abs(gx - tx_)))
        code = jnp.mean(jnp.square(ws[:, 0] - code_w))
        loss = mse + l1_weight * l1 + edge_weight * edge + code_weight * code
        if affine_l1 > 0:
            aff = affine_weights(params)
            loss = loss + affine_l1 * sum(jnp.sum(jnp.abs(w)) for w in aff) / sum(w.size for w in aff)
        cls = jnp.zeros(())
        if cls_params is not None:
            x = z / jnp.sqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
            label = jnp.argmax(x[:, D.SHAPE_DIMS], axis=1)
            cls = optax.softmax_cross_entropy_with_integer_labels(cls_logits(cls_params, img), label).mean()
            loss = loss + cls_weight * cls
        adv = jnp.zeros(())
        if dparams is not None:
            adv = jnp.mean(jax.nn.softplus(-disc_logits(dparams, img)))
            loss = loss + adv_weight * adv
        return loss, (mse, l1, edge, cls, adv, img, jnp.mean(ws[:, 0], axis=0))

    def disc_loss(dparams, real, fake):
        real_logits, vjp = jax.vjp(lambda x: disc_logits(dparams, x), real)
        r1 = jnp.sum(jnp.square(vjp(jnp.ones_like(real_logits))[0]), axis=(1, 2, 3))
        loss = jnp.mean(jax.nn.softplus(disc_logits(dparams, fake)) + jax.nn.softplus(-real_logits)
                        + 0.5 * r1_gamma * r1)
        return loss

    @jax.jit
    def step(params, opt_state, z, target, lr, l1_weight, edge_weight, code_weight=0.0, cls_weight=0.0,
             disc=None, adv_weight=0.0, oracle=0.0, code=None, mixed=None, wnoise=None):
        dparams = None if disc is None else disc["params"]
        (loss, (mse, l1, edge, cls, adv, img, w_mean)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, z, target, l1_weight, edge_weight, code_weight, cls_weight, dparams, adv_weight, oracle, code,
            mixed, wnoise)
        dloss = jnp.zeros(())
        if disc is not None:
            dloss, dgrads = jax.value_and_grad(disc_loss)(dparams, target[..., :3], jax.lax.stop_gradient(img))
            dup, dopt = DISC_TX.update(dgrads, disc["opt"], dparams)
            disc = {"params": optax.apply_updates(dparams, dup), "opt": dopt}
        updates, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree_util.tree_map(lambda p, u, s: p - lr * s * u, params, updates, scales)
        params = apply_affine_masks(params, masks)
        m = params["mapping"]
        params = dict(params, mapping=dict(m, w_avg=w_mean + W_AVG_BETA * (m["w_avg"] - w_mean)))
        metrics = {"loss": loss, "mse": mse, "l1": l1, "edge": edge, "cls": cls, "adv": adv, "dloss": dloss}
        if disc is None:
            return params, opt_state, metrics
        return params, opt_state, metrics, disc

    return tx, step


def loss_weights_at(a, frac):
    """(l1_weight, edge_weight): 0 for the first ``ramp_start`` of the budget, then a linear ramp.

    Early on the model cannot yet place a shape; L1 (and L1 on gradients) then favour the median
    image, i.e. plain background, and give no signal towards blobs, while MSE pulls towards the
    (blurry) mean shape and so teaches position/size/colour first. The L1 and edge terms sharpen later.
    """
    r = min(1.0, max(0.0, (frac - a.ramp_start) / max(1e-6, a.ramp_end - a.ramp_start)))
    return a.l1_weight * r, a.edge_weight * r


def oracle_at(a, frac):
    """Weight of the attribute code in the synthesis network's input: 1 until ``oracle_until - oracle_fade``,
    then a linear fade to 0 at ``oracle_until``."""
    if a.oracle_until <= 0:
        return 0.0
    start = a.oracle_until - a.oracle_fade
    return float(min(1.0, max(0.0, (a.oracle_until - frac) / max(1e-6, a.oracle_until - start))))


def lr_at(a, step, frac):
    warm = min(1.0, (step + 1) / max(1, a.warmup))
    cos = a.lr_final + (1.0 - a.lr_final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return a.lr * warm * cos


class ChunkMaker:
    """Background thread rendering chunks of (z, target) with fresh latents from a seeded stream."""

    def __init__(self, z_dim, chunk, seed, start_chunk, mix_prob=0.0, edit_prob=0.0):
        self.z_dim, self.chunk, self.seed, self.mix_prob, self.edit_prob = z_dim, chunk, seed, mix_prob, edit_prob
        self.q = queue.Queue(maxsize=1)
        self.next = start_chunk
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            rng = np.random.default_rng([self.seed, self.next])
            z = rng.standard_normal((self.chunk, self.z_dim)).astype(np.float32)
            if self.edit_prob > 0:
                target, code, mixed = palette_edit_samples(z, rng, self.edit_prob)
            else:
                target, code, mixed = mixed_samples(z, rng, self.mix_prob)
            self.q.put((self.next, z, target, code, mixed))
            self.next += 1

    def get(self):
        return self.q.get()


def evaluate(params, cfg, z_eval, fwd):
    imgs = np.asarray(fwd(params, z_eval))
    return D.evaluate(imgs, z_eval)


def save_state(path, state):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(jax.device_get(state), f)
    os.replace(tmp, path)


def main(argv=None):
    global HUE_CODE, CODE_PROJECTION, PALETTE_KAPPA, EDIT_S_MAX, EDIT_NOISE, EDIT_FAR
    a = parse_args(argv)
    HUE_CODE, CODE_PROJECTION, PALETTE_KAPPA = a.hue_code, a.code_projection, a.palette_kappa
    EDIT_S_MAX, EDIT_NOISE = a.edit_negative
    EDIT_FAR = a.edit_far
    if a.mix_prob > 0 and HUE_CODE != "circle":
        raise SystemExit("--mix-prob: in-between samples are defined for --hue-code circle only")
    if a.free_noise > 0 and a.code_projection != "identity":
        raise SystemExit("--free-noise: needs --code-projection identity (the code's coordinates are w's first)")
    if a.edit_prob > 0 and (HUE_CODE != "palette" or a.mix_prob > 0):
        raise SystemExit("--edit-prob: edited samples are defined for --hue-code palette without --mix-prob")
    cfg = make_config(a)
    n_params = sum(int(np.prod(s)) for s in jax.tree_util.tree_leaves(G.param_shapes(cfg),
                                                                        is_leaf=lambda x: isinstance(x, tuple)))
    print(f"config: {cfg}\nparameters: {n_params:,} ({n_params * 4 / 2**20:.2f} MiB float32)", flush=True)

    params = G.init_params(jax.random.PRNGKey(a.seed), cfg)
    if a.init:
        init_params, init_cfg = checkpoints.load_params(a.init)
        init_cfg = {k: v for k, v in init_cfg.items() if k != "kind"}
        if init_cfg != cfg.to_dict():
            raise SystemExit(f"--init {a.init}: its generator config {init_cfg} differs from this run's {cfg.to_dict()}")
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), init_params)
        print(f"starting from the generator in {a.init}", flush=True)
    cls_params = None
    if a.cls_weight > 0:
        t0 = time.time()
        cls_params, acc, acc_blur = train_shape_classifier(a.seed, a.cls_steps, z_dim=cfg.z_dim)
        print(f"shape classifier: {acc:.3f} right on fresh renders, {acc_blur:.3f} on renders blurred (sigma 1); "
              f"{time.time() - t0:.0f} s", flush=True)
    scales = update_scales(params, a.mapping_lr_scale)
    modconv = ops.modulated_conv2d if a.standard_conv else fast_modconv
    check_fast_conv(params, cfg)
    masks = None
    if a.hue_layer and not (a.code_channels and a.hue_code == "palette"):
        raise SystemExit("--hue-layer: needs --code-channels and --hue-code palette")
    if a.code_channels:
        if a.code_projection != "identity":
            raise SystemExit("--code-channels: needs --code-projection identity (channel j reads code coordinate j)")
        masks = affine_masks_for(params, a.hue_layer)
        params = apply_affine_masks(params, masks)
    tx, step = make_step(cfg, scales, modconv, a.shape_weight, a.decisive_weight, cls_params, a.r1_gamma,
                         a.affine_l1, masks, edits_keep_oracle=a.edit_prob > 0)
    opt_state = tx.init(params)
    disc = None
    if a.adv_weight > 0:
        dparams = disc_init(jax.random.PRNGKey(a.seed + 17))
        disc = {"params": dparams, "opt": DISC_TX.init(dparams)}
    it, elapsed, chunk_id, history = 0, 0.0, 0, []
    if os.path.exists(a.state) and not a.fresh and not a.bench:
        with open(a.state, "rb") as f:
            st = pickle.load(f)
        if st["config"] != cfg.to_dict():
            raise SystemExit(f"{a.state} was written for another config ({st['config']}); use --fresh")
        params = jax.tree_util.tree_map(jnp.asarray, st["params"])
        opt_state = jax.tree_util.tree_map(jnp.asarray, st["opt_state"])
        it, elapsed, chunk_id, history = st["step"], st["elapsed"], st["chunk_id"], st["history"]
        if disc is not None and st.get("disc") is not None:
            disc = jax.tree_util.tree_map(jnp.asarray, st["disc"])
        print(f"resumed from {a.state}: step {it}, {elapsed / 60:.1f} min done", flush=True)
    elif a.map_pretrain_steps > 0 and not a.bench and not a.init:
        t0 = time.time()
        params, val, acc = pretrain_mapping(params, cfg, scales, a.map_pretrain_steps, a.seed)
        print(f"mapping network fitted to the attribute code: {a.map_pretrain_steps} steps, loss {val:.4f}, "
              f"shape read back from w right on {acc:.3f} of the held-out latents; {time.time() - t0:.0f} s", flush=True)

    fwd = jax.jit(lambda p, z: G.synthesis(p, cfg, G.mapping(p, cfg, z), noise_mode="const"))
    z_eval = G.seeds_to_z(EVAL_SEEDS, cfg.z_dim)
    fwd_code = jax.jit(lambda p, z: G.synthesis(
        p, cfg, jnp.broadcast_to(attribute_code_of(z, cfg.w_dim)[:, None],
                                 (z.shape[0], cfg.num_ws, cfg.w_dim)), noise_mode="const"))
    budget = a.minutes * 60.0
    maker = ChunkMaker(cfg.z_dim, a.chunk, a.seed, chunk_id, a.mix_prob, a.edit_prob)
    steps_per_chunk = max(1, a.passes * a.chunk // a.batch)
    rng = np.random.default_rng([a.seed, 999, it])

    if a.bench:
        _, z, tgt, _, _ = maker.get()
        t0 = time.time()
        out = step(params, opt_state, z[:a.batch], tgt[:a.batch], 1e-3, 1.0, 1.0)
        jax.block_until_ready(out)
        print(f"compile+1 step: {time.time() - t0:.1f}s", flush=True)
        t0 = time.time()
        for i in range(a.bench):
            params, opt_state, m = step(params, opt_state, z[i * a.batch:(i + 1) * a.batch],
                                        tgt[i * a.batch:(i + 1) * a.batch], 1e-3, 1.0, 1.0)
        jax.block_until_ready(params)
        print(f"{(time.time() - t0) / a.bench:.3f} s/step (batch {a.batch})", flush=True)
        maker.stop = True
        return

    t_start = time.time() - elapsed
    last_ckpt = time.time()
    run_metrics = []
    while True:
        cid, z_chunk, t_chunk, c_chunk, m_chunk = maker.get()
        chunk_id = cid + 1
        order = np.concatenate([rng.permutation(a.chunk) for _ in range(a.passes)])
        for j in range(steps_per_chunk):
            idx = order[j * a.batch:(j + 1) * a.batch]
            elapsed = time.time() - t_start
            lr = lr_at(a, it, elapsed / budget)
            l1_w, edge_w = loss_weights_at(a, elapsed / budget)
            code_w = a.code_weight * max(0.0, 1.0 - elapsed / budget / a.code_until) if a.code_until > 0 else 0.0
            oracle = oracle_at(a, elapsed / budget)
            mix = {} if a.mix_prob <= 0 and a.edit_prob <= 0 else {"code": c_chunk[idx], "mixed": m_chunk[idx]}
            if a.free_noise > 0:
                mix["wnoise"] = free_noise(rng, len(idx), cfg, a.free_noise)
            if disc is None:
                params, opt_state, m = step(params, opt_state, z_chunk[idx], t_chunk[idx], lr, l1_w, edge_w, code_w,
                                            a.cls_weight, oracle=oracle, **mix)
            else:
                params, opt_state, m, disc = step(params, opt_state, z_chunk[idx], t_chunk[idx], lr, l1_w, edge_w,
                                                  code_w, a.cls_weight, disc, a.adv_weight, oracle)
            it += 1
            run_metrics.append(m)
            if it % a.eval_every == 0:
                ms = jax.device_get(run_metrics)
                run_metrics = []
                avg = {k: float(np.mean([x[k] for x in ms])) for k in ms[0]}
                ev = evaluate(params, cfg, z_eval, fwd)
                if oracle > 0:  # what the synthesis network draws from the exact code
                    ev_o = D.evaluate(np.asarray(fwd_code(params, z_eval)), z_eval)
                    ev.update({"oracle_" + k: ev_o[k] for k in ("mae", "shape_acc", "iou")})
                elapsed = time.time() - t_start
                eta = max(0.0, budget - elapsed)
                history.append({"step": it, "minutes": elapsed / 60, "lr": lr, "l1_weight": l1_w, "edge_weight": edge_w, **avg, **{"eval_" + k: v for k, v in ev.items()}})
                print(f"step {it:6d} | {elapsed / 60:5.1f} min, {elapsed / it:.3f} s/step, ETA {eta / 60:4.1f} min"
                      f" | lr {lr:.2e} l1/edge w {l1_w:.2f} | train loss {avg['loss']:.4f} mse {avg['mse']:.4f} edge {avg['edge']:.4f}"
                      f" cls {avg['cls']:.3f} adv {avg['adv']:.3f} D {avg['dloss']:.3f}"
                      f" | held-out mae {ev['mae']:.4f} mse {ev['mse']:.4f} colour {ev['colour_acc']:.3f}"
                      f" shape {ev['shape_acc']:.3f} hue err {ev['hue_err']:.1f} iou {ev['iou']:.3f}"
                      + (f" | from the code: mae {ev['oracle_mae']:.4f} shape {ev['oracle_shape_acc']:.3f}"
                         f" iou {ev['oracle_iou']:.3f}" if "oracle_mae" in ev else ""), flush=True)
            if time.time() - last_ckpt > a.ckpt_every * 60 or time.time() - t_start > budget:
                save_state(a.state, {"config": cfg.to_dict(), "params": params, "opt_state": opt_state, "step": it,
                                     "elapsed": time.time() - t_start, "chunk_id": chunk_id, "history": history,
                                     "disc": disc})
                last_ckpt = time.time()
            if time.time() - t_start > budget:
                break
        if time.time() - t_start > budget:
            break
    maker.stop = True
    elapsed = time.time() - t_start
    ev = evaluate(params, cfg, z_eval, fwd)
    print(f"done: {it} steps in {elapsed / 60:.1f} min | held-out {ev}", flush=True)
    params_np = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), jax.device_get(params))
    extra = {"method": "supervised regression to render_attributes(z_to_attributes(z)); loss MSE + L1 + edge",
             "args": {k: v for k, v in vars(a).items() if k not in ("out", "state")},
             "steps": it, "train_minutes": elapsed / 60, "eval_seeds": [EVAL_SEEDS.start, EVAL_SEEDS.stop],
             "final_eval": ev, "history": history}
    notes = os.path.join(a.out, "TRAINING.md")  # keep the hand-written notes across a retrain
    notes_text = open(notes, encoding="utf-8").read() if os.path.isfile(notes) else None
    checkpoints.save_params(a.out, params_np, {**cfg.to_dict(), "kind": "stylegan2_generator"}, extra=extra,
                            overwrite=True)
    if notes_text is not None:
        with open(notes, "w", encoding="utf-8") as f:
            f.write(notes_text)
    print(f"saved generator to {a.out}", flush=True)


if __name__ == "__main__":
    main()
