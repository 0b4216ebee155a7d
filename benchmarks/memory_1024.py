"""XLA's memory analysis (CPU compilation, nothing runs) of the 1024-px config-f programs whose batch
styleclip_jax.memory chooses: one fs3 sweep call (16 channels x M images x 2 renders + ViT-B/32) and one
latent-optimisation step (P pairs, W+, ViT-B/32), at two batch sizes, and the bytes each image / pair adds.

    python benchmarks/memory_1024.py            # weights are abstract (shapes only): no checkpoint needed
    python benchmarks/memory_1024.py lo mapper  # only these rows (float32 / bfloat16 convs, with / without remat)
"""
from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from styleclip_jax import memory, parallel
from styleclip_jax.editing import global_direction as gd
from styleclip_jax.editing import latent_optimization as lo
from styleclip_jax.editing import mapper as M
from styleclip_jax.models.mapper import MapperConfig
from styleclip_jax.models import clip_net
from styleclip_jax.models.clip import CLIP
from styleclip_jax.models.generator import Generator, GeneratorConfig, init_params


def abstract(tree):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.float32), tree)


def main():
    cfg = GeneratorConfig()  # config-f, 1024 px
    G = Generator(abstract(jax.eval_shape(lambda: init_params(jax.random.PRNGKey(0), cfg))), cfg)
    ccfg = clip_net.Config()  # ViT-B/32
    shapes = clip_net.param_shapes(ccfg)
    cp = jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s, jnp.float32), shapes,
                                is_leaf=lambda s: isinstance(s, tuple))
    clip = CLIP(clip_net.CLIPNet(ccfg), None, cp, preprocess="normalized")
    mesh = parallel.data_mesh(jax.local_devices()[:1])
    rep, chan = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    li = next(l.index for l in G.layout if not l.is_torgb)  # the first layer: its calls render the most
    f, pre = gd._sweep_programs(li, 5.0, "const", "float32", mesh)
    s_shapes = {l.name: (l.channels,) for l in G.layout}

    def sweep_bytes(m, ch=16):
        s = {k: jax.ShapeDtypeStruct((m,) + v, jnp.float32, sharding=rep) for k, v in s_shapes.items()}
        before = {l.name for l in G.layout[:li]}
        state = jax.eval_shape(pre, G, {k: s[k] for k in s if k in before})
        state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), state)
        vec = jax.ShapeDtypeStruct((G.layout[li].channels,), jnp.float32, sharding=rep)
        with jax.default_matmul_precision("highest"):
            return memory.program_bytes(f, G, clip, state, {k: s[k] for k in s if k not in before},
                                        jax.ShapeDtypeStruct((ch,), jnp.int32, sharding=chan), vec, vec)

    w1 = jax.ShapeDtypeStruct((1, G.num_ws, cfg.w_dim), jnp.float32)
    t1 = jax.ShapeDtypeStruct((1, ccfg.projection_dim), jnp.float32)

    def lo_bytes(precision, remat):
        lcfg = lo.LatentOptConfig(steps=1, precision=precision, remat=remat)
        return lambda b: lo._chunk_bytes(G, clip, None, w1, {}, t1, lcfg, mesh, b)

    mcfg = MapperConfig()
    K = 1

    def mapper_bytes(precision, remat):
        tcfg = M.MapperTrainConfig(precision=precision, remat=remat)
        state = jax.eval_shape(lambda: M.init_train_state(jax.random.PRNGKey(0), jax.random.PRNGKey(1), mcfg, tcfg, K))
        text = jax.ShapeDtypeStruct((K, ccfg.projection_dim), jnp.float32)

        def at(b):
            w = jax.ShapeDtypeStruct((b, G.num_ws, cfg.w_dim), jnp.float32)
            return memory.program_bytes(M.train_step, G, clip, None, state, w, text, mcfg=mcfg, tcfg=tcfg)
        return at

    only = set(sys.argv[1:])  # optional filter: sweep, lo, mapper
    rows = [("sweep", "sweep call, 16 channels, float32, images", sweep_bytes)]
    for prec in ("float32", "bfloat16"):
        for remat in (False, True):
            rows.append(("lo", f"latent-optimisation step, W+, {prec}, remat={remat}, pairs", lo_bytes(prec, remat)))
            rows.append(("mapper", f"mapper train step, K=1, {prec}, remat={remat}, batch", mapper_bytes(prec, remat)))
    for key, name, fn in rows:
        if only and key not in only:
            continue
        t = time.time()
        a, b = fn(1), fn(2)
        print(f"{name}: 1 -> {a / 2**30:.2f} GiB, 2 -> {b / 2**30:.2f} GiB, each more +{(b - a) / 2**30:.2f} GiB "
              f"(compiled in {time.time() - t:.0f} s)", flush=True)

if __name__ == "__main__":
    main()
