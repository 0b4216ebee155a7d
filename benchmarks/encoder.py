"""Encoder and inversion-refinement throughput: e4e images/s (256 px) and refinement Adam steps/s.

    python benchmarks/encoder.py                                        # CPU-friendly defaults
    python benchmarks/encoder.py --batches=1,8,32 --refine_config=1024 --refine_batches=1,8 --refine_steps=10  # GPU

Random weights of the official sizes: Encoder4Editing on IR-SE-50 with 18 W+ rows (pSp's GradualStyleEncoder
costs the same), and the 256-px / FFHQ-1024 config-f generator layouts. GFLOP from XLA's cost analysis of the
compiled program (per image for the encoder; for the refinement loop XLA counts the scanned body once: about
one step). Prints numbers; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from styleclip_jax.editing import invert  # noqa: E402
from styleclip_jax.models import encoder as enc  # noqa: E402
from _common import compile_once, emit, fmt, print_table, set_precision, time_fn  # noqa: E402
from _models import random_generator  # noqa: E402


def bench_encoder(batches, iters, encoder_type):
    cfg = enc.EncoderConfig(encoder_type=encoder_type)
    params = jax.jit(enc.init_encoder_params, static_argnums=1)(jax.random.PRNGKey(0), cfg)
    latent_avg = jnp.zeros((cfg.num_ws, cfg.w_dim))
    headers = ["encoder", "batch", "compile s", "images/s", "ms/image", "GFLOP/image (XLA)"]
    rows = []
    for b in batches:
        x = jax.random.uniform(jax.random.PRNGKey(1), (b, cfg.input_size, cfg.input_size, 3), minval=-1, maxval=1)

        def run(params, latent_avg, x):
            return enc.encode_fn(params, latent_avg, cfg, x)
        compiled, flops, csec = compile_once(run, params, latent_avg, x)
        sec = time_fn(compiled, params, latent_avg, x, iters=iters)
        rows.append([f"{encoder_type} {cfg.input_size}px", b, fmt(csec, ".1f"), fmt(b / sec, ".2f"),
                     fmt(1e3 * sec / b, ".1f"), fmt(flops and flops / b / 1e9, ".1f")])
        emit(headers, rows[-1])
    return rows, headers


def bench_refine(name, batches, steps, iters):
    G = random_generator(name)
    headers = ["refine", "batch", "compile s", "steps/s", "image-steps/s", "GFLOP/step (XLA)"]
    rows = []
    cfg = invert.RefineConfig(steps=steps)
    hyper = {"lr": jnp.float32(0.01), "l2_lambda": jnp.float32(0.0), "id_lambda": jnp.float32(0.0)}
    for b in batches:
        w = G.mapping(jax.random.normal(jax.random.PRNGKey(1), (b, 512)), truncation_psi=0.7)
        targets = jax.random.uniform(jax.random.PRNGKey(2), (b, G.resolution, G.resolution, 3), minval=-1, maxval=1)

        def one_step(G, w, targets):  # XLA's FLOP count of one step (a 1-step chunk)
            return invert._refine_chunk(G, None, w, optax.adam(1.0).init(w), w, {}, targets, hyper, cfg, 1, 1)
        _, flops, csec = compile_once(one_step, G, w, targets)

        def run(G, w, targets):  # refine's own loop: compiled chunks driven from Python
            return invert._refine_loop(G, None, w, {}, targets, jnp.ones((b,), jnp.float32), hyper, cfg)[0]
        sec = time_fn(run, G, w, targets, iters=iters)
        step = sec / steps  # includes the before/after renders: 2 extra forwards per call
        rows.append([f"{name}px W+ MSE", b, fmt(csec, ".1f"), fmt(1 / step, ".2f"), fmt(b / step, ".2f"),
                     fmt(flops and flops / 1e9, ".0f")])
        emit(headers, rows[-1])
    return rows, headers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="1,8", help="encoder batch sizes")
    ap.add_argument("--encoder_type", default=enc.E4E, choices=enc.ENCODER_TYPES)
    ap.add_argument("--refine_config", default="256", choices=["256", "1024"])
    ap.add_argument("--refine_batches", default="1,4")
    ap.add_argument("--refine_steps", type=int, default=3, help="steps per timed program")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--precision", default="highest", choices=["highest", "default"],
                    help="highest: float32; default: TF32 on GPUs")
    args = ap.parse_args()
    set_precision(args.precision)
    rows, headers = bench_encoder([int(b) for b in args.batches.split(",")], args.iters, args.encoder_type)
    print_table(rows, headers)
    if args.refine_batches:
        rows, headers = bench_refine(args.refine_config, [int(b) for b in args.refine_batches.split(",")],
                                     args.refine_steps, args.iters)
        print_table(rows, headers)


if __name__ == "__main__":
    main()
