"""Where the synthesis time goes: each op of every generator layer timed on its own.

    python benchmarks/ops.py                                   # CPU-friendly: 256 px, batch 1
    python benchmarks/ops.py --configs=1024 --batch=8          # on a GPU

For every layer of the layout (random weights of the real shapes) it times, jitted and separately:
the modulated conv (activation scaling, conv or up-sampling conv, demodulation), and for the up-sampling
layers its two parts (the stride-2 transposed conv, in both its dilated and its sub-pixel form, and the
[1,3,3,1] FIR); bias + leaky ReLU; and the
skip path's image up-sampling. The summary gives each kind's share of the summed time beside its share
of the convolution FLOPs, so the op that runs far below the device's rate stands out. No asserts on time.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from styleclip_jax import ops  # noqa: E402
from styleclip_jax.models.layout import stylespace_layout  # noqa: E402
from _common import emit, fmt, print_table, set_precision, time_fn  # noqa: E402
from _models import GENERATORS, layer_macs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="256")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--precision", default="highest", choices=["highest", "default"])
    args = ap.parse_args()
    set_precision(args.precision)
    headers = ["config", "layer", "op", "input", "ms", "GFLOP", "TFLOP/s"]
    rows, per_kind, flops_kind = [], collections.defaultdict(float), collections.defaultdict(float)
    key = jax.random.PRNGKey(0)
    for name in args.configs.split(","):
        cfg = GENERATORS[name]
        for l in stylespace_layout(cfg.img_resolution, cfg.channel_base, cfg.channel_max):
            b = args.batch
            up = 2 if l.up else 1
            k = 1 if l.is_torgb else 3
            r_in = l.resolution // up
            x = jax.random.normal(key, (b, r_in, r_in, l.in_channels))
            wt = jax.random.normal(key, (l.out_channels, l.in_channels, k, k))
            st = jax.random.uniform(key, (b, l.in_channels), minval=0.5, maxval=1.5)
            conv_gflop = 2 * b * layer_macs(l) / 1e9
            cases = [("modconv" + (" up" if up == 2 else ""),
                      lambda x, wt, st, up=up, k=k, demod=not l.is_torgb: ops.modulated_conv2d(
                          x, wt, st, up=up, padding=k // 2, demodulate=demod),
                      (x, wt, st), conv_gflop)]
            if up == 2:
                y = jax.random.normal(key, (b, 2 * r_in + 1, 2 * r_in + 1, l.out_channels))
                cases += [("  transposed conv", ops.conv_transpose2d_stride2, (x, wt), conv_gflop),
                          ("  transposed conv, sub-pixel", ops.conv_transpose2d_stride2_phases, (x, wt), conv_gflop),
                          ("  FIR after it", lambda y: ops.upfirdn2d(
                              y, ops.DEFAULT_FILTER, padding=ops.up_fir_padding(3, 4, 1), gain=4.0), (y,), None)]
            out = jax.random.normal(key, (b, l.resolution, l.resolution, l.out_channels))
            bias = jnp.zeros((l.out_channels,))
            if not l.is_torgb:
                cases.append(("bias+lrelu", lambda o, bb: ops.bias_act(o, bb, act="lrelu", clamp=256.0),
                              (out, bias), None))
            elif l.resolution > 4:
                img = jax.random.normal(key, (b, l.resolution // 2, l.resolution // 2, 3))
                cases.append(("skip upsample", ops.upsample2d, (img,), None))
            for op, fn, fargs, gf in cases:
                sec = time_fn(jax.jit(fn), *fargs, iters=args.iters)
                kind = op.strip()
                per_kind[kind] += sec
                flops_kind[kind] += gf or 0.0
                rows.append([f"{name}px", l.name, op, "x".join(map(str, fargs[0].shape)), fmt(sec * 1e3, ".3f"),
                             fmt(gf, ".2f"), fmt(gf and gf / sec / 1e3, ".2f")])
                emit(headers, rows[-1])
    print_table(rows, headers)
    # the modconv rows already contain their transposed conv and FIR: the split rows are shown apart
    total = sum(v for k, v in per_kind.items()
                if k not in ("transposed conv", "transposed conv, sub-pixel", "FIR after it"))
    print()
    summary = [[k, fmt(v * 1e3, ".2f"), fmt(v / total, ".1%"), fmt(flops_kind[k] or None, ".1f")]
               for k, v in per_kind.items()]
    print_table(summary, ["op kind", "total ms", "of layer-sum time", "conv GFLOP"])


if __name__ == "__main__":
    main()
