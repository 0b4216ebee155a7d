"""CLIP image-embedding throughput of styleclip_jax.clip on whatever device JAX sees.

Builds a ViT-B/32-shaped FlaxCLIPModel with random weights from its config (no download), jits
``image_features(params, images)`` (StyleCLIP pre-processing from a generator-sized image, then
ViT-B/32, projection and L2 normalisation) with the parameters as arguments, and prints a table of
images/s and GFLOP/image from XLA's cost analysis. No assertions on time.

    python benchmarks/clip.py                    # small defaults on CPU, batch 64 on an accelerator
    python benchmarks/clip.py --batch 64 --iters 20 --sizes 256,1024 --preprocess official
"""
from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from styleclip_jax.models import clip as C  # noqa: E402


def vit_b32_random(seed: int = 0):
    """(FlaxCLIPModel without params, params) shaped like openai/clip-vit-base-patch32, random weights."""
    from transformers import CLIPConfig, FlaxCLIPModel

    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77),
        vision_config=dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
                           num_hidden_layers=12, num_attention_heads=12),
        projection_dim=512,
    )
    model = FlaxCLIPModel(cfg, _do_init=False)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):  # host-side fill: a Flax init would compile for a long time on CPU
        name = jax.tree_util.keystr(path)
        if "logit_scale" in name:
            return jnp.full(leaf.shape, np.log(100.0), jnp.float32)
        if "text_model" in name:  # not used for image embeddings; keep it cheap
            return jnp.zeros(leaf.shape, leaf.dtype)
        base = 1.0 if name.endswith("['scale']") else 0.0
        return jnp.asarray(base + 0.02 * rng.standard_normal(leaf.shape, dtype=np.float32))

    return model, jax.tree_util.tree_map_with_path(fill, model.params_shape_tree)


def _flops(compiled) -> float:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return float((ca or {}).get("flops", float("nan")))


def main(argv=None):
    on_cpu = jax.default_backend() == "cpu"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4 if on_cpu else 64)
    p.add_argument("--iters", type=int, default=2 if on_cpu else 20)
    p.add_argument("--sizes", default="256" if on_cpu else "256,1024",
                   help="comma-separated generator resolutions (official mode needs multiples of 32)")
    p.add_argument("--preprocess", default="official", choices=C.PREPROCESS_MODES)
    p.add_argument("--precision", default="default", choices=["default", "high", "highest"],
                   help="jax_default_matmul_precision")
    args = p.parse_args(argv)
    if args.batch < 1 or args.iters < 1:
        p.error("--batch and --iters must be >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if args.precision != "default":
        jax.config.update("jax_default_matmul_precision", args.precision)

    t0 = time.perf_counter()
    model, params = vit_b32_random()
    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({dev.device_kind}), jax {jax.__version__}; ViT-B/32 random weights built in "
          f"{time.perf_counter() - t0:.1f} s; batch {args.batch}, iters {args.iters}, preprocess {args.preprocess}, "
          f"matmul precision {args.precision}")
    fn = jax.jit(functools.partial(C.image_features, module=model, preprocess=args.preprocess))

    header = f"{'input':>11} | {'compile s':>9} | {'ms/batch':>9} | {'images/s':>9} | {'GFLOP/img':>9} | {'TFLOP/s':>8}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        x = jax.random.uniform(jax.random.PRNGKey(size), (args.batch, size, size, 3), jnp.float32, -1.0, 1.0)
        t0 = time.perf_counter()
        compiled = fn.lower(params, x).compile()
        compile_s = time.perf_counter() - t0
        gflop_img = _flops(compiled) / args.batch / 1e9
        jax.block_until_ready(compiled(params, x))  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.iters):
            out = compiled(params, x)
        jax.block_until_ready(out)
        dt = (time.perf_counter() - t0) / args.iters
        ips = args.batch / dt
        print(f"{size:>5}x{size:<5} | {compile_s:9.2f} | {dt * 1e3:9.1f} | {ips:9.1f} | {gflop_img:9.2f} | "
              f"{gflop_img * ips / 1e3:8.3f}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
