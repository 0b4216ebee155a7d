"""Other ways to compute the generator's 3x3 convolution on CPU, timed against XLA's own.

    python benchmarks/conv_forms.py                 # the 256-px config's conv1 shapes, batches 1 and 4
    python benchmarks/conv_forms.py --parts=forms --batches=1 --bf16   # also the bfloat16 forms
    python benchmarks/conv_forms.py --parts=matmul   # a 1024^2 matmul: float32 vs bfloat16 inputs

For each (batch, resolution, channels) of a 256-px config-f layer, one jitted 3x3 "same" convolution
(NHWC, HWIO weight) computed as
  conv      jax.lax.conv_general_dilated (what the generator uses),
  im2col    the nine shifted copies concatenated, then one matmul,
  shifted   nine matmuls of the shifted input, summed,
  winograd  Winograd F(2x2, 3x3): 4x4 input tiles, transforms as einsums, 16 batched matmuls,
With ``--bf16`` the conv, im2col and shifted forms also run on bfloat16 inputs with float32 accumulation
(``preferred_element_type``): XLA:CPU hands dots to YNNPACK, which uses AVX-512 BF16 where the CPU has it.
Reported with the median time, GFLOP/s of the direct convolution's FLOP count, and each form's largest
difference from `conv` relative to its largest output. A second table (``--parts=weights``) times the
weight-sized work of one modulated conv at batch 1 beside the whole `ops.modulated_conv2d`: laying the
(O, I, 3, 3) weight out as HWIO, and the demodulation coefficients. Nothing is asserted; the README
quotes the measured tables (section Benchmarks, CPU efficiency).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from _common import print_table, time_fn  # noqa: E402
from styleclip_jax.models import ops  # noqa: E402

# Winograd F(2x2, 3x3) matrices (Lavin & Gray 2016)
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)


def conv(x, w, acc=None):
    """x (N, H, W, I), w (3, 3, I, O) -> (N, H, W, O), zero padding 1; ``acc``: accumulation/output dtype."""
    return jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        preferred_element_type=acc)


def _shifts(x):
    h, wd = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return [xp[:, dy:dy + h, dx:dx + wd, :] for dy in range(3) for dx in range(3)]


def im2col(x, w, acc=None):
    n, h, wd, i = x.shape
    cols = jnp.concatenate(_shifts(x), axis=-1)
    return jnp.matmul(cols.reshape(-1, 9 * i), w.reshape(9 * i, -1), preferred_element_type=acc).reshape(n, h, wd, -1)


def shifted(x, w, acc=None):
    return sum(jnp.matmul(s, w[k // 3, k % 3], preferred_element_type=acc) for k, s in enumerate(_shifts(x)))


def in_bfloat16(fn):
    """The form on bfloat16-rounded inputs, accumulated and returned in float32."""
    return lambda x, w: fn(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), acc=jnp.float32)


def winograd(x, w):
    """Same result as `conv` for even H, W (float rounding aside)."""
    n, h, wd, _ = x.shape
    u = jnp.einsum("ai,ijco,bj->abco", _G, w, _G)  # (4, 4, I, O) transformed kernel
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    th, tw = h // 2, wd // 2
    rows = jnp.stack([xp[:, i:i + 2 * th:2] for i in range(4)], 1)
    tiles = jnp.stack([rows[:, :, :, j:j + 2 * tw:2] for j in range(4)], 2)  # (N, 4, 4, th, tw, I)
    v = jnp.einsum("ai,nijxyc,bj->abnxyc", _BT, tiles, _BT)
    m = jnp.einsum("abnxyc,abco->abnxyo", v, u)
    y = jnp.einsum("ia,abnxyo,jb->nxiyjo", _AT, m, _AT)
    return y.reshape(n, 2 * th, 2 * tw, -1)


FORMS = {"conv": conv, "im2col": im2col, "shifted": shifted, "winograd": winograd}
# (resolution, channels) of the conv1 layers of the 256-px config (channel_base 16384, channel_max 512)
SHAPES = [(4, 512), (8, 512), (16, 512), (32, 512), (64, 256), (128, 128), (256, 64)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--parts", default="forms,weights")
    ap.add_argument("--bf16", action="store_true", help="also time conv, im2col and shifted on bfloat16 inputs")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if "forms" in parts:
        forms_table(args)
    if "weights" in parts:
        weights_table(args)
    if "matmul" in parts:
        matmul_table(args)


def matmul_table(args):
    """Does XLA:CPU use the CPU's bfloat16 dot instructions? One 1024 x 1024 x 1024 matmul both ways."""
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a, b = jax.random.normal(ka, (1024, 1024)), jax.random.normal(kb, (1024, 1024))
    rows = []
    for name, f in (("float32", jnp.matmul), ("bfloat16 inputs", lambda a, b: jnp.matmul(
            a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32))):
        sec = time_fn(jax.jit(f), a, b, iters=args.iters)
        rows.append([name, f"{sec * 1e3:.2f}", f"{2 * 1024 ** 3 / 1e9 / sec:.0f}"])
    print_table(rows, ["1024^3 matmul", "ms", "GFLOP/s"])


def weights_table(args):
    rows = []
    for res, ch in SHAPES:
        k = jax.random.split(jax.random.PRNGKey(res), 3)
        x = jax.random.normal(k[0], (1, res, res, ch))
        w = jax.random.normal(k[1], (ch, ch, 3, 3))
        s = jax.random.normal(k[2], (1, ch))
        t_all = time_fn(jax.jit(lambda x, w, s: ops.modulated_conv2d(x, w, s, padding=1)), x, w, s, iters=args.iters)
        t_lay = time_fn(jax.jit(lambda w: jnp.transpose(w, (2, 3, 1, 0))), w, iters=args.iters)
        t_dem = time_fn(jax.jit(ops.demod_coefficients), w, s, iters=args.iters)
        t_conv = time_fn(jax.jit(conv), x * s[:, None, None, :], jnp.transpose(w, (2, 3, 1, 0)), iters=args.iters)
        rows.append([res, ch, f"{t_all * 1e3:.2f}", f"{t_conv * 1e3:.2f}", f"{t_lay * 1e3:.2f}", f"{t_dem * 1e3:.2f}"])
    print_table(rows, ["px", "channels", "modulated_conv2d ms", "its 3x3 conv alone ms", "weight to HWIO ms",
                       "demodulation ms"])


def forms_table(args):
    rows = []
    for n in (int(b) for b in args.batches.split(",")):
        for res, ch in SHAPES:
            kx, kw = jax.random.split(jax.random.PRNGKey(res))
            x = jax.random.normal(kx, (n, res, res, ch))
            w = jax.random.normal(kw, (3, 3, ch, ch)) * (1.0 / np.sqrt(9 * ch))
            gflop = 2 * n * res * res * 9 * ch * ch / 1e9
            ref = None
            forms = dict(FORMS)
            if args.bf16:
                forms.update({f"{k} bf16": in_bfloat16(FORMS[k]) for k in ("conv", "im2col", "shifted")})
            for name, fn in forms.items():
                f = jax.jit(fn)
                out = f(x, w)
                ref = out if ref is None else ref
                err = float(jnp.abs(out - ref).max() / jnp.abs(ref).max())
                sec = time_fn(f, x, w, iters=args.iters)
                rows.append([n, res, ch, name, f"{sec * 1e3:.2f}", f"{gflop / sec:.0f}", f"{err:.0e}"])
            print(f"batch {n} {res}px {ch}ch done", flush=True)
    print_table(rows, ["batch", "px", "channels", "form", "ms", "GFLOP/s", "max rel diff"])


if __name__ == "__main__":
    main()
