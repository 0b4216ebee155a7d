"""Generator throughput: images/s of jitted synthesis, GFLOP/image from XLA, fraction of peak.

    python benchmarks/generator.py                      # CPU-friendly defaults
    python benchmarks/generator.py --configs=256,1024 --batches=1,8,32 --iters=10   # on a GPU

Random weights (no download). No asserts on time: it prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import styleclip_jax as sc  # noqa: E402
from styleclip_jax.models import generator as gen  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import compile_once, emit, fmt, print_table, set_precision, time_fn  # noqa: E402
from _models import GENERATORS as CONFIGS, synthesis_gflop  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="256", help="comma list of %s" % list(CONFIGS))
    ap.add_argument("--batches", default="1,4", help="comma list of batch sizes")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--precision", default="highest", choices=["highest", "default"],
                    help="matmul/conv precision ('default' allows TF32 on GPUs)")
    args = ap.parse_args()
    peak = set_precision(args.precision)
    # TFLOP/s and the fraction of peak use the conv-only model count (XLA's count, printed beside it,
    # does not see inside cuDNN convolutions on GPUs)
    headers = ["config", "batch", "compile s", "images/s", "ms/batch", "GFLOP/img (XLA)", "GFLOP/img (model)",
               "TFLOP/s", "of peak"]
    rows = []
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        params = sc.init_params(jax.random.PRNGKey(0), cfg)
        for b in [int(x) for x in args.batches.split(",")]:
            ws = jax.random.normal(jax.random.PRNGKey(1), (b, cfg.num_ws, cfg.w_dim))
            fn, flops, csec = compile_once(lambda p, w, cfg=cfg: gen.synthesis(p, cfg, w), params, ws)
            sec = time_fn(fn, params, ws, iters=args.iters)
            model = synthesis_gflop(sc.Generator(params, cfg)) * 1e9
            achieved = b * model / sec
            rows.append([f"{name}px", b, fmt(csec, ".1f"), fmt(b / sec, ".2f"), fmt(sec * 1e3, ".1f"),
                         fmt(flops and flops / b / 1e9, ".1f"), fmt(model / 1e9, ".1f"), fmt(achieved / 1e12, ".2f"),
                         fmt(peak and achieved / peak, ".1%")])
            emit(headers, rows[-1])
    print_table(rows, headers)


if __name__ == "__main__":
    main()
