"""CLIP throughput, native backend vs transformers' FlaxCLIPModel, on whatever device JAX sees.

Builds one ViT-B/32-shaped parameter tree with random weights (``clip_net.init_params``, no download) and
runs it through both modules (the FlaxCLIPModel backend only when transformers 4.x is installed), jitted
with the parameters as arguments:

* images: ``image_features(params, images)`` -- StyleCLIP pre-processing from a generator-sized image,
  the ViT, projection and L2 normalisation -> images/s;
* texts: ``raw_text_features(params, ids, mask)`` on 77-token sequences -> texts/s.

Timed rounds alternate between the backends (so a busy machine slows both alike) and the table gives the
median time per batch; GFLOP per item is XLA's cost analysis. No assertions on time.

    python benchmarks/clip.py                    # small defaults on CPU, batch 64 on an accelerator
    python benchmarks/clip.py --batch 8 --text-batch 32 --rounds 10 --sizes 256,1024 --backends native
"""
from __future__ import annotations

import argparse
import functools
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from styleclip_jax.models import clip as C  # noqa: E402
from styleclip_jax.models import clip_net as N  # noqa: E402


def modules(backends):
    """{name: module} for the requested backends that can be built here."""
    out = {}
    for name in backends:
        if name == "native":
            out[name] = N.CLIPNet(N.Config())
        else:
            try:
                from transformers import CLIPConfig, FlaxCLIPModel
            except ImportError as e:
                print(f"skipping backend 'transformers': {e}")
                continue
            out[name] = FlaxCLIPModel(CLIPConfig(), _do_init=False)  # same defaults as N.Config(): ViT-B/32
    return out


def _flops(compiled) -> float:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return float((ca or {}).get("flops", float("nan")))


def _bench(fns, params, args, items, rounds):
    """fns: {backend: jitted fn}; returns {backend: (compile s, median s/batch, GFLOP/item)}."""
    compiled, compile_s, gflop = {}, {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        compiled[name] = fn.lower(params, *args).compile()
        compile_s[name] = time.perf_counter() - t0
        gflop[name] = _flops(compiled[name]) / items / 1e9
        jax.block_until_ready(compiled[name](params, *args))  # warm-up
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name in fns:
            t0 = time.perf_counter()
            jax.block_until_ready(compiled[name](params, *args))
            times[name].append(time.perf_counter() - t0)
    return {name: (compile_s[name], statistics.median(times[name]), gflop[name]) for name in fns}


def main(argv=None):
    on_cpu = jax.default_backend() == "cpu"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4 if on_cpu else 64, help="images per batch")
    p.add_argument("--text-batch", type=int, default=16 if on_cpu else 256, help="texts per batch")
    p.add_argument("--rounds", type=int, default=5 if on_cpu else 20)
    p.add_argument("--sizes", default="256" if on_cpu else "256,1024",
                   help="comma-separated generator resolutions (official mode needs multiples of 32)")
    p.add_argument("--preprocess", default="official", choices=C.PREPROCESS_MODES)
    p.add_argument("--backends", default="native,transformers")
    p.add_argument("--precision", default="default", choices=["default", "high", "highest"],
                   help="jax_default_matmul_precision")
    args = p.parse_args(argv)
    if min(args.batch, args.text_batch, args.rounds) < 1:
        p.error("--batch, --text-batch and --rounds must be >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    backends = [b for b in args.backends.split(",") if b]
    if not set(backends) <= set(C.BACKENDS):
        p.error(f"--backends must name some of {C.BACKENDS}")
    if args.precision != "default":
        jax.config.update("jax_default_matmul_precision", args.precision)

    t0 = time.perf_counter()
    cfg = N.Config()
    params = jax.tree_util.tree_map(jnp.asarray, N.init_params(0, cfg))
    params["logit_scale"] = jnp.asarray(np.log(100.0), jnp.float32)
    mods = modules(backends)
    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({dev.device_kind}), jax {jax.__version__}; ViT-B/32 random weights built in "
          f"{time.perf_counter() - t0:.1f} s; image batch {args.batch}, text batch {args.text_batch}, "
          f"{args.rounds} alternating rounds (median), preprocess {args.preprocess}, matmul precision {args.precision}")
    header = (f"{'backend':>12} | {'input':>15} | {'compile s':>9} | {'ms/batch':>9} | {'items/s':>9} | "
              f"{'GFLOP/item':>10} | {'vs native':>9}")
    print(header)
    print("-" * len(header))

    def report(label, res, items):
        base = res.get("native")
        for name, (cs, dt, gf) in res.items():
            rel = f"{base[1] / dt:8.2f}x" if base else ""
            print(f"{name:>12} | {label:>15} | {cs:9.2f} | {dt * 1e3:9.1f} | {items / dt:9.1f} | {gf:10.2f} | {rel:>9}")

    for size in sizes:
        x = jax.random.uniform(jax.random.PRNGKey(size), (args.batch, size, size, 3), jnp.float32, -1.0, 1.0)
        fns = {n: jax.jit(functools.partial(C.image_features, module=m, preprocess=args.preprocess))
               for n, m in mods.items()}
        report(f"images {size}px", _bench(fns, params, (x,), args.batch, args.rounds), args.batch)

    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.text_config.eos_token_id - 1, (args.text_batch, 77)).astype(np.int32)
    ends = rng.integers(5, 77, args.text_batch)
    ids[np.arange(args.text_batch), ends] = cfg.text_config.eos_token_id
    mask = (np.arange(77) <= ends[:, None]).astype(np.int32)
    fns = {n: jax.jit(functools.partial(C.raw_text_features, module=m)) for n, m in mods.items()}
    report("texts 77 tok", _bench(fns, params, (ids, mask), args.text_batch, args.rounds), args.text_batch)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
