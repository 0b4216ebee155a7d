"""Channel-relevance sweep throughput (channel x image pairs per second) and the full-sweep estimate.

    python benchmarks/global_direction.py                                  # CPU-friendly defaults
    python benchmarks/global_direction.py --configs=256,1024 --block=16 --images=100 --precision=float32,bfloat16
    python benchmarks/global_direction.py --configs=1024 --sweep-blocks=4 --precision=bfloat16   # the library sweep

With --sweep-blocks=N it instead runs the library's `channel_relevance` itself (100 images, blocks of 16
channels, the images per call fitted to the device's free memory x --memory-fraction) for N blocks of the first
layer after a one-block warm-up, and prints its channel*images/s and two full-sweep figures: an upper bound
(every channel priced like the first layer's, whose suffix renders the most layers) and the FLOP-scaled
estimate.

Each channel x image costs two suffix renders (from the perturbed layer on) plus two CLIP
embeddings. Timed on a middle layer and on the first 1024-px layer; the full estimate
(6048 channels x 100 images for FFHQ 1024) weights every layer's measured or modelled cost by
its channel count using XLA's FLOP counts. No asserts on time.
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

from styleclip_jax.editing import global_direction as gd  # noqa: E402
from _common import compile_once, device_lock, device_peak, emit, fmt, print_table, time_fn  # noqa: E402
from _models import CLIP_VIT_B32_GFLOP, layer_macs, random_generator, synthesis_gflop, vit_b32_clip  # noqa: E402


def suffix_macs(G, start: int) -> float:
    """Multiply-adds of the synthesis convolutions from S layer `start` on, for the two renders of a
    channel*image (see `_models.layer_macs`)."""
    return 2 * sum(layer_macs(l) for l in G.layout[start:])


def library_sweep(name, blocks, precisions, images, fraction):
    """Time `channel_relevance` as the global_direction job runs it (memory-fitted batch) on the first layer."""
    import time
    G = random_generator(name)
    clip = vit_b32_clip("normalized")
    ws = gd.sample_ws(G, images, seed=0)
    s = {k: np.asarray(v) for k, v in G.w_to_s(ws).items()}
    mean = {k: v.mean(0) for k, v in s.items()}
    std = {k: v.std(0) + 0.1 for k, v in s.items()}
    edit = [l for l in G.layout if not l.is_torgb]
    clip_macs = CLIP_VIT_B32_GFLOP / 2 * 1e9 * 2
    headers = ["config", "precision", "warm-up s (fit+compile+1 block)", "blocks timed", "chan*img/s (layer 0)",
               "full sweep min (upper bound)", "full sweep min (FLOP-scaled)"]
    rows = []
    for prec in precisions:
        kw = dict(num_images=images, ws=ws, block_size=16, precision=prec, memory_fraction=fraction)
        t0 = time.perf_counter()
        gd.channel_relevance(G, clip, mean, std, stop_after_blocks=1, **kw)
        warm = time.perf_counter() - t0
        with device_lock():
            t0 = time.perf_counter()
            gd.channel_relevance(G, clip, mean, std, stop_after_blocks=blocks, **kw)
            sec = time.perf_counter() - t0
        per = sec / (blocks * 16 * images)  # s per channel*image on the first layer (prefix included)
        total_ch = sum(l.channels for l in edit)
        b = per / (suffix_macs(G, edit[0].index) + clip_macs)
        scaled = sum(l.channels * images * b * (suffix_macs(G, l.index) + clip_macs) for l in edit)
        rows.append([f"{name}px", prec, fmt(warm, ".1f"), blocks, fmt(1 / per, ".1f"),
                     fmt(total_ch * images * per / 60, ".1f"), fmt(scaled / 60, ".1f")])
        emit(headers, rows[-1])
    print_table(rows, headers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="256")
    ap.add_argument("--block", type=int, default=2, help="channels per call")
    ap.add_argument("--images", type=int, default=2, help="images per call")
    ap.add_argument("--layers", default="auto", help="comma list of S layer indices to time (auto: 3)")
    ap.add_argument("--precision", default="float32", help="comma list of float32,bfloat16")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--sweep-blocks", type=int, default=0, help="> 0: time the library sweep instead (see above)")
    ap.add_argument("--sweep-images", type=int, default=100)
    ap.add_argument("--memory-fraction", type=float, default=0.9)
    args = ap.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})", flush=True)
    if args.sweep_blocks > 0:
        for name in args.configs.split(","):
            library_sweep(name, args.sweep_blocks, args.precision.split(","), args.sweep_images,
                          args.memory_fraction)
        return
    clip = vit_b32_clip("normalized")
    # model FLOPs of a channel*image: two suffix renders + two CLIP embeddings (XLA's count printed beside
    # it does not see inside cuDNN convolutions on GPUs); TFLOP/s and the fraction of peak use the model
    headers = ["config", "precision", "layer", "compile s", "chan*img/s", "GFLOP/(chan*img) XLA",
               "GFLOP/(chan*img) model", "TFLOP/s", "of peak"]
    est_headers = ["config", "precision", "channels", "full sweep x100 images (min, est.)"]
    rows, estimates, blocks = [], [], {}
    for name in args.configs.split(","):
        G = random_generator(name)
        ws = gd.sample_ws(G, args.images, seed=0)
        s = {k: jnp.asarray(v) for k, v in G.w_to_s(ws).items()}
        mean = {k: jnp.mean(v, 0) for k, v in s.items()}
        std = {k: jnp.std(v, 0) + 0.1 for k, v in s.items()}
        edit = [l for l in G.layout if not l.is_torgb]
        if args.layers == "auto":
            picks = [edit[0], edit[len(edit) // 2], edit[-1]]
        else:
            picks = [G.layout[int(i)] for i in args.layers.split(",")]
        for prec in args.precision.split(","):
            per_layer = {}
            peak = device_peak(prec)
            # float32: full float32 everywhere; bfloat16: the generator's convs take bf16 inputs with float32
            # accumulation (ops.modconv_for), CLIP stays float32 -- as channel_relevance(precision=...)
            with jax.default_matmul_precision("highest"):
                for l in picks:
                    li = l.index
                    state = jax.jit(lambda G, s: gd._prefix(G, s, li, "const", prec))(G, s)
                    rest = {k: v for k, v in s.items() if k in [x.name for x in G.layout[li:]]}
                    idx = jnp.arange(args.block, dtype=jnp.int32) % l.channels
                    fn = lambda G, c, st, r, i, mu, sd: gd._block_sum(G, c, st, r, i, mu, sd, layer_index=li,
                                                                     alpha=5.0, noise_mode="const", precision=prec)
                    call_args = (G, clip, state, rest, idx, mean[l.name], std[l.name])
                    jf, flops, csec = compile_once(fn, *call_args)
                    sec = time_fn(jf, *call_args, iters=args.iters)
                    with device_lock():
                        blocks[(name, prec, li)] = np.asarray(jf(*call_args))
                    pairs = args.block * args.images
                    per_layer[li] = sec / pairs
                    model = 2 * (synthesis_gflop(G, li) + CLIP_VIT_B32_GFLOP) * 1e9
                    ach = pairs * model / sec
                    rows.append([f"{name}px", prec, l.name, fmt(csec, ".1f"), fmt(pairs / sec, ".1f"),
                                 fmt(flops and flops / pairs / 1e9, ".1f"), fmt(model / 1e9, ".1f"),
                                 fmt(ach / 1e12, ".2f"), fmt(peak and ach / peak, ".1%")])
                    emit(headers, rows[-1])
                    for other in args.precision.split(","):
                        ref = blocks.get((name, other, li))
                        if other != prec and ref is not None:
                            print(f"agreement: {name}px {prec} vs {other}, S layer {li} ({l.name}): mean cosine "
                                  f"{gd.agreement(blocks[(name, prec, li)], ref):.6f} over {args.block} fs3 rows "
                                  f"({args.images} images each)", flush=True)
            # full-sweep estimate: time per channel*image modelled as a + b * (analytic suffix MACs), fitted
            # to the timed layers (a covers CLIP, which does not depend on the layer); with one timed layer,
            # time is taken as proportional to the model FLOPs (suffix renders + CLIP)
            x = np.array([suffix_macs(G, li) for li in per_layer])
            y = np.array(list(per_layer.values()))
            if len(x) > 1:
                b, a = np.polyfit(x, y, 1)
            else:
                clip_macs = CLIP_VIT_B32_GFLOP / 2 * 1e9 * 2  # two embeddings, in multiply-adds
                b = y[0] / (x[0] + clip_macs)
                a = b * clip_macs
            total = sum(l.channels * 100 * max(a + b * suffix_macs(G, l.index), 0.0) for l in edit)
            estimates.append([f"{name}px", prec, sum(l.channels for l in edit), fmt(total / 60, ".1f")])
            emit(est_headers, estimates[-1])
    print_table(rows, headers)
    print()
    print_table(estimates, est_headers)


if __name__ == "__main__":
    main()
