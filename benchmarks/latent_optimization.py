"""Latent optimisation throughput: Adam steps/s and 300-step edits/s vs batch size (pairs per program).

    python benchmarks/latent_optimization.py                                   # CPU-friendly defaults
    python benchmarks/latent_optimization.py --configs=256,1024 --batches=1,4,16,32,64 --steps=20   # GPU

Random generator weights (256-px and FFHQ-1024 config-f layouts) and a ViT-B/32-shaped random CLIP.
GFLOP/step from XLA's cost analysis of the compiled loop. No asserts on time.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from styleclip_jax.editing import latent_optimization as lo  # noqa: E402
from _common import compile_once, emit, fmt, generator_precision, print_table, set_precision, time_fn  # noqa: E402
from _models import CLIP_VIT_B32_GFLOP, random_generator, synthesis_gflop, vit_b32_clip  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="256")
    ap.add_argument("--batches", default="1,2")
    ap.add_argument("--steps", type=int, default=3, help="steps per timed program (edits/s assume 300)")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--precision", default="highest", choices=["highest", "default", "bfloat16"],
                    help="highest: float32; default: TF32 on GPUs; bfloat16: generator convs in bf16 (f32 "
                         "accumulation), the rest TF32")
    args = ap.parse_args()
    peak = set_precision(args.precision)
    clip = vit_b32_clip()
    # model FLOPs of a step: synthesis forward + its data gradient (~2x forward; no weight gradients) and
    # the same for CLIP, per pair; TFLOP/s and the fraction of peak use it (XLA's count is printed beside
    # it: on GPUs it does not see inside cuDNN convolutions)
    headers = ["config", "pairs", "compile s", "steps/s", "edits/s", "s/edit", "GFLOP/step (XLA)",
               "GFLOP/step (model)", "TFLOP/s", "of peak"]
    rows = []
    for name in args.configs.split(","):
        G = random_generator(name)
        cfg = lo.LatentOptConfig(steps=args.steps, lr=0.1, precision=generator_precision(args.precision))
        for b in [int(x) for x in args.batches.split(",")]:
            w = G.mapping(jax.random.normal(jax.random.PRNGKey(1), (b, 512)), truncation_psi=0.7)
            t = jax.random.normal(jax.random.PRNGKey(2), (b, 512))
            t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)

            def run(G, clip, w, t, cfg=cfg):
                return lo.run_steps(G, clip, None, w, {}, t, None, cfg)
            # one compilation for both; run_steps is only the scanned loop, which XLA counts once: one step
            compiled, flops, csec = compile_once(run, G, clip, w, t)
            sec = time_fn(compiled, G, clip, w, t, iters=args.iters)
            step = sec / args.steps
            model = b * 2 * (synthesis_gflop(G) + CLIP_VIT_B32_GFLOP) * 1e9
            achieved = model / step
            rows.append([f"{name}px", b, fmt(csec, ".1f"), fmt(1 / step, ".2f"), fmt(b / (300 * step), ".3f"),
                         fmt(300 * step / b, ".2f"), fmt(flops and flops / 1e9, ".0f"), fmt(model / 1e9, ".0f"),
                         fmt(achieved / 1e12, ".2f"), fmt(peak and achieved / peak, ".1%")])
            emit(headers, rows[-1])
    print_table(rows, headers)


if __name__ == "__main__":
    main()
