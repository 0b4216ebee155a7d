"""Inversion refinement: the per-step time of `invert.refine`'s loop beside ONE jitted step called alone.

    python benchmarks/refine_loop.py                  # 256-px NVlabs config, batch 1 (CPU-friendly)
    python benchmarks/refine_loop.py --config=1024 --batch=4

The loop's per-step time is (time of refine(steps=long) - time of refine(steps=short)) / (long - short),
so the before/after renders cancel; each call is timed after a warm-up call that compiles its chunks.
The step alone is `jax.grad` of the same per-image losses, jitted. Random weights; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from styleclip_jax.editing import invert  # noqa: E402
from _common import time_fn  # noqa: E402
from _models import random_generator  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="256", choices=["256", "1024"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--short", type=int, default=2)
    ap.add_argument("--long", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    G = random_generator(args.config)
    w = G.mapping(jax.random.normal(jax.random.PRNGKey(0), (args.batch, G.cfg.z_dim)), truncation_psi=0.7)
    res = G.resolution
    targets = jax.random.uniform(jax.random.PRNGKey(1), (args.batch, res, res, 3), minval=-1, maxval=1)

    def run(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(invert.refine(G, w, targets, steps=steps)[0])
        return time.perf_counter() - t0

    for s in (args.short, args.long):
        run(s)  # compiles
    loop = []
    for _ in range(args.rounds):
        loop.append((run(args.long) - run(args.short)) / (args.long - args.short))
    cfg = invert.RefineConfig(steps=1)
    hyper = {"lr": jnp.float32(0.01), "l2_lambda": jnp.float32(0.0), "id_lambda": jnp.float32(0.0)}
    t = invert.resize_targets(targets, res)

    def loss(v):
        return jnp.sum(invert.image_losses(G, v, {}, w, t, None, None, invert._Traced(cfg, hyper))[0])
    step = time_fn(jax.jit(jax.grad(loss)), w, iters=3)
    best = sorted(loop)[len(loop) // 2]
    print(f"{args.config}px batch {args.batch} on {jax.default_backend()}: refine loop {best * 1e3:.0f} ms/step "
          f"(rounds: {', '.join(f'{x * 1e3:.0f}' for x in loop)}), one jitted step {step * 1e3:.0f} ms, "
          f"loop/step {best / step:.2f}", flush=True)


if __name__ == "__main__":
    main()
