"""Latent-mapper training and inference speed: image-steps/s vs batch size, GFLOP/step, fraction of
device peak, extrapolated time for 100k image-steps (the official 50k steps x batch 2), and the
inference latency per image (mapper + synthesis).

Random weights, no download: a StyleGAN2 generator in the 256-px (z=w=512, channel_base 16384) or the
1024-px config-f (channel_base 32768) layout, a ViT-B/32-shaped CLIP (``transformers.CLIPConfig()``
defaults), a LevelsMapper (official init). The timed step is ``styleclip_jax.editing.mapper.train_step``
(the jitted step of the training job: G(w), mapper, G(w_hat), CLIP loss, L2, Ranger) for K prompts.

Loop vs step: in alternating rounds of ``--loop-steps`` steps it times ONE jitted ``train_step`` called
alone from a Python loop (state fed back) and the training loop as the library runs it
(``styleclip_jax.jobs.mapper_train.train`` in a temporary workdir, no logging, validation, images or
checkpoints, returning after ``--loop-steps`` steps via ``stop_after``), and prints the medians and the
median per-round ratio ``loop/step`` (far above 1 = a regression of the issue-#17 kind).

    python benchmarks/mapper.py                                    # CPU-friendly: 256 px, batch 1-2, 2 iters
    python benchmarks/mapper.py --sizes 256,1024 --batches 1,2,4,8 --iters 10 --prompts 1   # on a GPU

No asserts on time: it prints tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from styleclip_jax.editing import mapper as M  # noqa: E402
from styleclip_jax.models.mapper import MapperConfig  # noqa: E402
from styleclip_jax.jobs import mapper_train  # noqa: E402
from _common import compile_once, device_lock, emit, fmt, generator_precision, print_table, set_precision, time_fn  # noqa: E402
from _models import CLIP_VIT_B32_GFLOP, GENERATORS, random_generator, synthesis_gflop, vit_b32_clip  # noqa: E402

IMAGE_STEPS = 100_000
# model FLOPs of an image-step: G(w_hat) forward + its data gradient (~2x forward) and the same for CLIP
# (no ArcFace here); XLA's count is printed beside it (on GPUs it does not see inside cuDNN convolutions)
TRAIN_HEADERS = ["config", "batch", "K", "compile s", "ms/step", "img-steps/s", "GFLOP/step (XLA)",
                 "GFLOP/step (model)", "TFLOP/s", "of peak", f"min/{IMAGE_STEPS // 1000}k img-steps",
                 "loop ms/step", "loop/step"]
INFER_HEADERS = ["config", "batch", "ms/image", "mapper ms/img", "images/s"]


def loop_vs_step(G, clip, state, text, b, mcfg, tcfg, n, rounds):
    """(median s/step of `mapper_train.train`, median per-round ratio loop/step) over alternating rounds of
    n steps of the jitted `train_step` alone (Python loop, state fed back) and of the library's loop."""
    K = text.shape[0]
    w_all = G.mapping(jax.random.normal(jax.random.PRNGKey(7), (max(4 * b, 8), G.cfg.z_dim)), truncation_psi=0.7)
    w_all = jax.device_get(w_all)
    prompts = [f"prompt {k}" for k in range(K)]

    def run_loop(steps):
        with tempfile.TemporaryDirectory() as d:
            out = mapper_train.train(G, clip, w_all, w_all[:2], text, prompts, d, mcfg=mcfg, tcfg=tcfg,
                               max_steps=10 ** 6, stop_after=steps, val_every=0, ckpt_every=0, ckpt_minutes=1e9,
                               log_every=0, image_every=0, tensorboard=False, verbose=False)
            return out["seconds"]  # the loop only: from before the first step to the last result on the host

    def run_step(steps):
        s, wb = state, jax.numpy.asarray(w_all[:b])
        t0 = time.perf_counter()
        for _ in range(steps):
            s, _ = M.train_step(G, clip, None, s, wb, text, mcfg=mcfg, tcfg=tcfg)
        jax.block_until_ready(s)
        return time.perf_counter() - t0

    run_loop(n)  # warm-up with the timed length: the loop's own programs (train step for its inputs, helpers)
    run_step(1)  # warm-up: train_step for these (unsharded) inputs
    loops, steps = [], []
    for r in range(rounds):
        with device_lock():
            steps.append(run_step(n) / n)
            loops.append(run_loop(n) / n)
        print(f"  round {r}: train_step alone {steps[-1] * 1e3:.0f} ms/step, mapper_train.train loop "
              f"{loops[-1] * 1e3:.0f} ms/step", flush=True)
    return statistics.median(loops), statistics.median([a / s for a, s in zip(loops, steps)])


def main(argv=None):
    on_cpu = jax.default_backend() == "cpu"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="256" if on_cpu else "256,1024", help=f"comma list of {list(GENERATORS)}")
    ap.add_argument("--batches", default="1,2" if on_cpu else "1,2,4,8", help="training batch sizes")
    ap.add_argument("--prompts", type=int, default=1, help="K mappers trained together (vmapped)")
    ap.add_argument("--iters", type=int, default=2 if on_cpu else 10)
    ap.add_argument("--optimizer", default="ranger", choices=["ranger", "adam"])
    ap.add_argument("--loop-steps", type=int, default=3, help="steps per timed round of loop vs step (0: skip)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating loop/step rounds")
    ap.add_argument("--infer-batches", default="1" if on_cpu else "1,8", help="inference batch sizes ('' for none)")
    ap.add_argument("--remat", action="store_true", help="recompute inside synthesis layers (MapperTrainConfig.remat)")
    ap.add_argument("--precision", default="highest", choices=["highest", "default", "bfloat16"],
                    help="highest: float32; default: TF32 on GPUs; bfloat16: generator convs in bf16 (f32 "
                         "accumulation), the rest TF32")
    args = ap.parse_args(argv)
    peak = set_precision(args.precision)
    t0 = time.perf_counter()
    clip = vit_b32_clip()
    print(f"ViT-B/32 random CLIP built in {time.perf_counter() - t0:.1f} s; "
          f"K={args.prompts} prompt(s), {args.optimizer}, {args.iters} iters")
    K = args.prompts
    tcfg = M.MapperTrainConfig(optimizer=args.optimizer, precision=generator_precision(args.precision),
                               remat=args.remat)
    train_rows, infer_rows = [], []
    for name in args.sizes.split(","):
        gcfg = GENERATORS[name]
        G = random_generator(name)
        mcfg = MapperConfig(latent_dim=gcfg.w_dim)
        state = M.init_train_state(jax.random.PRNGKey(1), jax.random.PRNGKey(2), mcfg, tcfg, K)
        text = jax.random.normal(jax.random.PRNGKey(3), (K, clip.embed_dim))
        text = text / jnp.linalg.norm(text, axis=-1, keepdims=True)
        for b in [int(x) for x in args.batches.split(",")]:
            tcfg_b = dataclasses.replace(tcfg, batch_size=b)  # the loop's batch; one compile serves both
            w = G.mapping(jax.random.normal(jax.random.PRNGKey(b), (b, gcfg.z_dim)), truncation_psi=0.7)
            compiled, flops, compile_s = compile_once(
                lambda G, c, s, w, t: M.train_step(G, c, None, s, w, t, mcfg=mcfg, tcfg=tcfg_b), G, clip, state, w, text)
            sec = time_fn(compiled, G, clip, state, w, text, iters=args.iters)
            loop_sec = ratio = None
            if args.loop_steps > 0:
                loop_sec, ratio = loop_vs_step(G, clip, state, text, b, mcfg, tcfg_b, args.loop_steps, args.rounds)
            ips = b * K / sec
            model = b * K * 2 * (synthesis_gflop(G) + CLIP_VIT_B32_GFLOP) * 1e9
            achieved = model / sec
            train_rows.append([f"{name}px", b, K, fmt(compile_s, ".1f"), fmt(sec * 1e3, ".1f"), fmt(ips, ".2f"),
                               fmt(flops and flops / 1e9, ".1f"), fmt(model / 1e9, ".1f"),
                               fmt(achieved / 1e12, ".2f"), fmt(peak and achieved / peak, ".1%"),
                               fmt(IMAGE_STEPS / ips / 60, ".1f"), fmt(loop_sec and loop_sec * 1e3, ".1f"),
                               fmt(ratio, ".2f")])
            emit(TRAIN_HEADERS, train_rows[-1])
        m = M.Mapper(jax.tree_util.tree_map(lambda a: a[0], M.current_params(state, tcfg)), mcfg)
        infer = jax.jit(lambda G, m, w: G.synthesis(m.apply(w)))
        for b in [int(x) for x in args.infer_batches.split(",") if x]:
            w = G.mapping(jax.random.normal(jax.random.PRNGKey(100 + b), (b, gcfg.z_dim)), truncation_psi=0.7)
            sec = time_fn(infer, G, m, w, iters=args.iters)
            mapper_only = time_fn(jax.jit(lambda m, w: m.apply(w)), m, w, iters=args.iters)
            infer_rows.append([f"{name}px", b, fmt(sec / b * 1e3, ".2f"), fmt(mapper_only / b * 1e3, ".3f"),
                               fmt(b / sec, ".1f")])
            emit(INFER_HEADERS, infer_rows[-1])
    print("\ntraining (styleclip_jax.editing.mapper.train_step; image-steps = batch x K per step; loop: "
          "jobs.mapper_train.train, medians of alternating rounds, loop/step the median per-round ratio)")
    print_table(train_rows, TRAIN_HEADERS)
    print("\ninference (w + 0.1 * M(w), then synthesis)")
    print_table(infer_rows, INFER_HEADERS)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
