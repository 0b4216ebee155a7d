"""Latent optimisation speed: the compiled loop as the library runs it vs ONE jitted step called alone.

    python benchmarks/latent_optimization.py                                   # CPU: 256 px, batch 1
    python benchmarks/latent_optimization.py --configs=256,1024 --batches=1,8,32 --steps=20 --rounds=3   # GPU

Per (config, pairs) it times, in alternating rounds of `--steps` Adam steps each:

* `step`: one jitted step (`lo.pair_losses` -> `jax.grad` -> optax Adam, the library's optimiser) called
  from a Python loop, its outputs fed back -- the floor a compiled loop should reach;
* `loop`: the library's loop -- `lo._chunk_compiled` driven exactly as `lo.optimize` drives it
  (`lo.steps_per_call()` steps per call, unrolled on CPU, buffers donated);
* `scan`: `lo.run_steps`, the whole loop as one rolled `lax.scan` (issue #17: 3x the step on CPU);
* `optimize`: `lo.optimize(..., verbose=False)` end to end (adds one forward before and one after).

and prints ms/step of each, `loop/step` and `scan/step` (medians of the per-round ratios: a ratio far
above 1 means a regression of the issue-#17 kind), edits/s for 300-step edits and GFLOP/s. Random
generator weights (256-px and FFHQ-1024 config-f layouts), a ViT-B/32-shaped random native CLIP. No
asserts on time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from styleclip_jax.editing import latent_optimization as lo  # noqa: E402
from _common import device_lock, emit, fmt, generator_precision, print_table, set_precision  # noqa: E402
from _models import CLIP_VIT_B32_GFLOP, random_generator, synthesis_gflop, vit_b32_clip  # noqa: E402


def one_step(cfg):
    """One Adam step of the library's objective, jitted alone: (var, opt_state) -> (var, opt_state)."""
    tx = lo.build_optimizer(cfg)

    @jax.jit
    def step(G, clip, var, opt_state, init, t):
        def loss_fn(v):
            total, _ = lo.pair_losses(G, clip, v, {}, init, t, None, None, cfg)
            return jnp.sum(total)
        grads = jax.grad(loss_fn)(var)
        updates, opt_state = tx.update(grads, opt_state, var)
        return optax.apply_updates(var, updates), opt_state
    return step


def library_loop(G, clip, w, t, cfg):
    """run(n): n Adam steps through `lo._chunk_compiled`, driven exactly as `lo.optimize` drives it (chunks of
    `lo.steps_per_call(cfg)` steps, unrolled on CPU, variables and optimiser state donated)."""
    k = lo.steps_per_call(cfg)
    unroll = True if jax.default_backend() == "cpu" and k <= lo.MAX_CPU_UNROLL else 1
    tx = lo.build_optimizer(cfg)

    def run(n):
        v, s = jnp.copy(w), tx.init(w)
        done = 0
        while done < n:
            m = min(k, n - done)
            v, s, _ = lo._chunk_compiled(G, clip, None, v, s, w, {}, t, None, cfg, m, unroll)
            done += m
        return v
    return run


def time_steps(run, n):
    with device_lock():
        t0 = time.perf_counter()
        jax.block_until_ready(run(n))
        return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="256")
    ap.add_argument("--batches", default="1", help="pairs per program")
    ap.add_argument("--steps", type=int, default=4, help="steps per timed run (edits/s assume 300)")
    ap.add_argument("--rounds", "--iters", type=int, default=2, help="alternating rounds (medians are printed)")
    ap.add_argument("--no-scan", action="store_true", help="skip the rolled-scan row (one more compile)")
    ap.add_argument("--no-optimize", action="store_true",
                    help="skip the end-to-end optimize row (on a GPU it first fits the pairs per program to the "
                         "free memory: two or three more compiles)")
    ap.add_argument("--remat", action="store_true", help="recompute inside synthesis layers (LatentOptConfig.remat)")
    ap.add_argument("--precision", default="highest", choices=["highest", "default", "bfloat16"],
                    help="highest: float32; default: TF32 on GPUs; bfloat16: generator convs in bf16 (f32 "
                         "accumulation), the rest TF32")
    args = ap.parse_args()
    peak = set_precision(args.precision)
    clip = vit_b32_clip()
    S = args.steps
    headers = ["config", "pairs", "k/call", "step ms", "loop ms", "loop/step", "scan ms", "scan/step",
               "optimize ms", "compile s (step, loop, scan)", "s/edit (loop)", "TFLOP/s (loop)", "of peak"]
    rows = []
    for name in args.configs.split(","):
        G = random_generator(name)
        cfg = lo.LatentOptConfig(steps=S, lr=0.1, precision=generator_precision(args.precision), remat=args.remat)
        k = lo.steps_per_call(cfg)
        for b in [int(x) for x in args.batches.split(",")]:
            w = G.mapping(jax.random.normal(jax.random.PRNGKey(1), (b, 512)), truncation_psi=0.7)
            t = jax.random.normal(jax.random.PRNGKey(2), (b, 512))
            t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
            step = one_step(cfg)
            tx = lo.build_optimizer(cfg)

            def run_step(n):
                v, s = w, tx.init(w)
                for _ in range(n):
                    v, s = step(G, clip, v, s, w, t)
                return v

            run_loop = library_loop(G, clip, w, t, cfg)

            scan = jax.jit(lambda G, clip, w, t: lo.run_steps(G, clip, None, w, {}, t, None, cfg)[0])
            compile_s = []
            for fn in (run_step, run_loop) + (() if args.no_scan else (lambda n: scan(G, clip, w, t),)):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(S))  # compiles every chunk length the timed runs use (the scan: all S)
                compile_s.append(time.perf_counter() - t0)
            if not args.no_optimize:
                lo.optimize(G, clip, w, t, cfg, verbose=False)  # compiles before/after
            res = {"step": [], "loop": [], "scan": [], "optimize": []}
            for r in range(args.rounds):
                res["step"].append(time_steps(run_step, S))
                res["loop"].append(time_steps(run_loop, S))
                if not args.no_scan:
                    res["scan"].append(time_steps(lambda n: scan(G, clip, w, t), S))
                if not args.no_optimize:
                    with device_lock():
                        t0 = time.perf_counter()
                        lo.optimize(G, clip, w, t, cfg, verbose=False)
                        res["optimize"].append((time.perf_counter() - t0) / S)
                print(f"  round {r}: " + ", ".join(f"{kk} {v[-1] * 1e3:.0f} ms/step" for kk, v in res.items() if v),
                      flush=True)
            med = {kk: statistics.median(v) if v else None for kk, v in res.items()}
            ratio = lambda kk: statistics.median([a / s for a, s in zip(res[kk], res["step"])]) if res[kk] else None  # noqa: E731
            model = b * 2 * (synthesis_gflop(G) + CLIP_VIT_B32_GFLOP) * 1e9
            achieved = model / med["loop"]
            rows.append([f"{name}px", b, k, fmt(med["step"] * 1e3, ".0f"), fmt(med["loop"] * 1e3, ".0f"),
                         fmt(ratio("loop"), ".2f"), fmt(med["scan"] and med["scan"] * 1e3, ".0f"),
                         fmt(ratio("scan"), ".2f"), fmt(med["optimize"] and med["optimize"] * 1e3, ".0f"),
                         " ".join(f"{c:.0f}" for c in compile_s), fmt(300 * med["loop"] / b, ".1f"),
                         fmt(achieved / 1e12, ".3f"), fmt(peak and achieved / peak, ".1%")])
            emit(headers, rows[-1])
    print(f"\nms per Adam step (medians of {args.rounds} alternating rounds of {S} steps; ratios: medians of "
          "per-round ratios to the step jitted alone)")
    print_table(rows, headers)


if __name__ == "__main__":
    main()
