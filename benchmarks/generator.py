"""Generator throughput: images/s of jitted synthesis, GFLOP/image from XLA, fraction of peak.

    python benchmarks/generator.py                      # CPU-friendly defaults
    python benchmarks/generator.py --configs=256,1024 --batches=1,8,32 --iters=10   # on a GPU

Random weights (no download). No asserts on time: it prints a table. "of peak" is the conv-only model
count (`_models.synthesis_gflop`) per second over the device's FP32 peak; on CPU the peak is derived from
/proc/cpuinfo (cores x FMA pipes x lanes x 2 x clock; `_common.cpu_fp32_peak` prints how and its assumptions).

XLA:CPU options, each measured in its own process (XLA_FLAGS is read once per process), alternating
rounds, the first variant being the baseline:

    python benchmarks/generator.py --batches=4 --xla-variants='|--xla_cpu_prefer_vector_width=512' --rounds=3
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
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
    ap.add_argument("--xla-variants", default=None,
                    help="'|'-separated XLA_FLAGS values, each run in a subprocess per round (first = baseline)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of --xla-variants")
    args = ap.parse_args()
    if args.xla_variants is not None:
        return compare_variants(args)
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


def compare_variants(args):
    """Run this script once per (round, XLA_FLAGS variant), alternating, and print median images/s per
    variant and the median per-round ratio to the first variant."""
    variants = args.xla_variants.split("|")
    base_cmd = [sys.executable, os.path.abspath(__file__), f"--configs={args.configs}", f"--batches={args.batches}",
                f"--iters={args.iters}", f"--precision={args.precision}"]
    res = {}  # (variant, config, batch) -> [images/s per round]
    for r in range(args.rounds):
        for v in variants:
            env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + v).strip())
            out = subprocess.run(base_cmd, env=env, capture_output=True, text=True, check=True).stdout
            if r == 0 and v == variants[0]:
                print("\n".join(l for l in out.splitlines() if l.startswith(("device", "CPU"))))
            for m in re.finditer(r"row: config=(\S+), batch=(\d+), .*?images/s=([\d.]+)", out):
                res.setdefault((v, m.group(1), int(m.group(2))), []).append(float(m.group(3)))
                print(f"round {r} XLA_FLAGS+={v or '(none)'!r}: {m.group(1)} batch {m.group(2)} "
                      f"{m.group(3)} images/s", flush=True)
    headers = ["XLA_FLAGS added", "config", "batch", "images/s (median)", "ratio to baseline (median/round)"]
    rows = []
    for (v, c, b), ips in res.items():
        base = res[(variants[0], c, b)]
        rows.append([v or "(baseline)", c, b, fmt(statistics.median(ips), ".2f"),
                     fmt(statistics.median([x / y for x, y in zip(ips, base)]), ".2f")])
    print_table(rows, headers)


if __name__ == "__main__":
    main()
