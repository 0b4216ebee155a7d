"""The fs3 channel-relevance sweep of global directions (re-exported by `editing.global_direction`).

For every non-toRGB channel and each of M images: set the channel to its mean, render at mean +- alpha std,
embed both with CLIP, normalise the difference per image, sum over images, normalise (official GetFs).
Vectorised (vmap over a block of channels, all images of a chunk at once), the activations before the
perturbed layer computed once per layer, a block's channels sharded over the process's devices, the blocks
dealt out to the processes of a multi-process run, resumable from atomically written blocks with any
process or device count, and the per-call batch fitted to the device's memory (`styleclip_jax.memory`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import pathlib
import sys
from typing import Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from . import global_direction_math as gd_math
from .. import files, memory
from ..checkpoints.params_io import write_json
from ..errors import ConfigError
from ..models import ops
from ..models.clip import embed_images
from ..models.generator import synthesis_layers


# XLA's bytes for a sweep call, by everything that decides them (shapes, settings, device count): a second
# sweep in the same process (a study, a benchmark, a resumed run) skips the probe compiles
_BYTES_CACHE: Dict[tuple, int] = {}


def _shapes_key(tree) -> tuple:
    return tuple((jax.tree_util.keystr(p), tuple(np.shape(x)), str(getattr(x, "dtype", "")))
                 for p, x in jax.tree_util.tree_leaves_with_path(tree))


def _progress(total, desc, enabled=True):
    if enabled and jax.process_index() == 0:
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit="ch" if "channel" in desc else "it", dynamic_ncols=True)

    class _Null:
        def update(self, n):
            pass

        def close(self):
            pass
    return _Null()


def _prefix(G, s, layer_index: int, noise_mode: str, precision: str = "float32"):
    """State (x, img) before S layer `layer_index` for the images of `s` (computed once per layer)."""
    return synthesis_layers(G.params, G.cfg, s, start=0, stop=layer_index, noise_mode=noise_mode,
                            modconv=ops.modconv_for(precision))


def _block_sum(G, clip, state, s, idx, mean_l, std_l, *, layer_index: int, alpha: float, noise_mode: str,
               precision: str = "float32"):
    """Sum over this chunk's images of the normalised CLIP difference for each channel in `idx`.

    state: prefix (x, img) of M images; s: S dict (M, C) for layers >= layer_index; idx: (B,) ints.
    Returns (B, D).
    """
    layer = G.layout[layer_index]
    base = s[layer.name]
    m = base.shape[0]

    def tile2(a):
        return None if a is None else jnp.concatenate([a, a], axis=0)

    state2 = (tile2(state[0]), tile2(state[1]))
    rest2 = {k: tile2(v) for k, v in s.items() if k != layer.name}

    def one(c):
        col = jax.nn.one_hot(c, base.shape[1], dtype=base.dtype)
        mu, sd = jnp.sum(mean_l * col), jnp.sum(std_l * col)
        centred = base * (1 - col) + mu * col
        codes = jnp.concatenate([centred - alpha * sd * col, centred + alpha * sd * col], axis=0)  # (2M, C)
        _, img = synthesis_layers(G.params, G.cfg, {**rest2, layer.name: codes}, start=layer_index,
                                  state=state2, noise_mode=noise_mode, modconv=ops.modconv_for(precision))
        f = embed_images(clip, img)
        d = f[m:] - f[:m]
        d = gd_math.unit_or_zero(d, -1)  # a channel that leaves the image unchanged adds 0 (official: 0 / 0)
        return jnp.sum(d, axis=0)

    return jax.vmap(one)(idx)


_SWEEP_PROGRAMS: Dict[tuple, tuple] = {}


def _sweep_programs(li: int, alpha: float, noise_mode: str, precision: str, mesh):
    """(block_sum, prefix) jitted for layer li on `mesh`, kept for the process's lifetime so that every sweep
    (a resumed one, another output folder) reuses the compiled programs."""
    key = (li, alpha, noise_mode, precision, mesh)
    if key not in _SWEEP_PROGRAMS:
        from .. import parallel
        f = jax.jit(functools.partial(_block_sum, layer_index=li, alpha=alpha, noise_mode=noise_mode,
                                      precision=precision), out_shardings=parallel.batch_sharded(mesh))
        pre = jax.jit(functools.partial(_prefix, layer_index=li, noise_mode=noise_mode, precision=precision),
                      out_shardings=parallel.replicated(mesh))
        _SWEEP_PROGRAMS[key] = (f, pre)
    return _SWEEP_PROGRAMS[key]


def relevance_from_features(all_f):
    """Official GetFs normalisation of (channels, images, 2, D) features -> (channels, D)."""
    return gd_math.relevance_from_features(all_f)


def _settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class SweepPlan:
    """The fixed partition of the sweep into (layer, channel block) units, in official order."""

    def __init__(self, G, block_size: int, max_resolution: Optional[int] = None):
        self.units: List[Tuple[int, int, int]] = []  # (layer_index, start, stop)
        for l in G.layout:
            if l.is_torgb or (max_resolution is not None and l.resolution > max_resolution):
                continue
            for a in range(0, l.channels, block_size):
                self.units.append((l.index, a, min(a + block_size, l.channels)))
        self.num_channels = sum(b - a for _, a, b in self.units)

    @staticmethod
    def block_name(layer_index, start):
        return f"L{layer_index:02d}_C{start:05d}.npy"


# 64 renders at 1024 px per call: XLA asked for 56 GiB for such a call on an H100 and the run ran out of memory
# (benchmarks/results/2026-11-27_h100/run1_global_direction.txt); a bound, not a measured fit
RENDER_PIXELS_PER_CALL = 64 * 1024 * 1024


def auto_image_batch(img_resolution: int, block_size: int, num_images: int) -> int:
    """Images per sweep call when none is given: as many as keep one call (block_size channels x images x
    2 renders) within RENDER_PIXELS_PER_CALL output pixels, at least 1, at most all `num_images`.
    1024 px, block 16 -> 2; 256 px -> 32; the 32-px shapes world -> all 100 (one call per block)."""
    per_image = 2 * block_size * img_resolution ** 2
    return int(max(1, min(num_images, RENDER_PIXELS_PER_CALL // per_image)))


def channel_relevance(G, clip, mean, std, num_images: int = 100, *, ws=None, seed: int = 0,
                      truncation_psi: float = 0.7, truncation_cutoff: Optional[int] = 8, alpha: float = 5.0,
                      max_resolution: Optional[int] = None, block_size: int = 16, image_batch: Optional[int] = None,
                      out_dir=None, precision: str = "float32", devices=None, noise_mode: str = "const",
                      progress: bool = True, stop_after_blocks: Optional[int] = None,
                      computed_blocks: Optional[list] = None, memory_fraction: float = 0.9,
                      memory_budget: Optional[int] = None) -> Optional[np.ndarray]:
    """The channel-relevance array fs3 (num_channels, D) in official order (see module docstring).

    Args:
      mean, std: style_stats dicts. num_images: M (official 100), images = the first M samples of
        the seed stream (or `ws` (M, num_ws, w_dim) if given).
      max_resolution: only layers up to this resolution (official torch script: 128).
      block_size: channels per block, the unit of work and of resume (`SweepPlan`); fixed by this number
        alone, so a sweep resumed with other process or device counts skips the same finished blocks. A
        block runs as one call with its channels padded to a multiple of the local device count.
      image_batch: images per call (default: the most that fit, see memory_*; on a CPU without a budget
        `auto_image_batch`: all M for small generators, 2 at 1024 px with block 16); the per-image
        differences are summed over chunks and normalised at the end, which equals the all-at-once average
        direction (to float rounding: resumed blocks may mix image batches).
      memory_fraction, memory_budget: the bytes per device a call may use (`styleclip_jax.memory`): the
        device's free memory x memory_fraction, or memory_budget bytes. From XLA's memory analysis of the
        first layer's call (the costliest: it renders the most layers), the sweep takes the most images
        per call that fit (at most image_batch), and when one image with the whole block does not fit,
        fewer channels per call; raises ConfigError before running when 1 image x 1 channel per device
        does not fit. No probing on CPU without a budget.
      out_dir: if given, finished blocks go to out_dir/blocks/*.npy (atomic) and fs3.npy at the end;
        a restarted sweep skips finished blocks and gives a bit-identical array.
      precision: "float32" (default) or "bfloat16": the generator's convolutions take bf16-rounded inputs and
        accumulate in float32 (`ops.modconv_for`); compare the two with `agreement`.
      devices: this process's devices for the mesh (default: `jax.local_devices()`); a block's channels
        are sharded across them.
      stop_after_blocks: testing hook, return None after that many rounds of new blocks (one block per
        process and round) as if killed.
      computed_blocks: if a list, (layer_index, start, stop) of every block this process computed is appended.

    Several processes (jax.distributed): the unfinished blocks, in plan order, are dealt out round-robin
    (`parallel.process_share`); after every round the new blocks are gathered to all processes and process 0
    writes them, so a kill loses at most one round. Every process returns the whole array.
    """
    from .. import parallel
    ops.modconv_for(precision)  # validates
    mesh = parallel.local_mesh(devices)
    nd = mesh.size
    block_size = int(block_size)
    if block_size < 1:
        raise ValueError(f"block_size={block_size}: expected a positive number of channels")
    call = int(math.ceil(block_size / nd) * nd)  # channels per call, padded to the local device count
    if ws is None:
        from .global_direction import sample_ws
        ws = sample_ws(G, num_images, truncation_psi, truncation_cutoff, seed)
    ws = np.asarray(ws, np.float32)
    m = ws.shape[0]
    ib = auto_image_batch(G.cfg.img_resolution, call, m) if image_batch is None else max(1, min(int(image_batch), m))
    s_all = {k: np.asarray(v) for k, v in G.w_to_s(ws).items()}
    plan = SweepPlan(G, block_size, max_resolution)
    settings = {"generator": G.config, "num_images": m, "ws_sha": hashlib.sha256(ws.tobytes()).hexdigest()[:16],
                "alpha": alpha, "block_size": block_size, "max_resolution": max_resolution,
                "precision": precision, "noise_mode": noise_mode, "clip_preprocess": getattr(clip, "preprocess", None),
                "clip_embed_dim": clip.embed_dim,
                "clip_weights": clip.fingerprint() if hasattr(clip, "fingerprint") else None,
                "stats_sha": hashlib.sha256(b"".join(np.asarray(std[l.name]).tobytes() + np.asarray(mean[l.name]).tobytes()
                                                     for l in G.layout)).hexdigest()[:16]}
    blocks_dir = None
    writer = parallel.is_writer()
    results: Dict[Tuple[int, int], np.ndarray] = {}
    finished = np.zeros(len(plan.units), bool)
    if out_dir is not None:  # process 0 reads the directory and tells the others what it found
        out_dir = pathlib.Path(out_dir)
        blocks_dir = out_dir / "blocks"
        manifest = out_dir / "sweep.json"
        clash = False
        if writer:
            if manifest.exists():
                clash = json.loads(manifest.read_text()).get("hash") != _settings_hash(settings)
            else:
                blocks_dir.mkdir(parents=True, exist_ok=True)
                write_json(manifest, {"hash": _settings_hash(settings), "settings": settings})
            if not clash:
                for i, (li, a, b) in enumerate(plan.units):
                    path = blocks_dir / SweepPlan.block_name(li, a)
                    if path.exists():
                        results[(li, a)] = np.load(path)
                        finished[i] = True
        clash, finished = parallel.broadcast_from_writer((np.asarray(clash), finished))
        if bool(clash):
            raise ValueError(f"{manifest}: an unfinished sweep with other settings lives in {out_dir}; "
                             f"use another directory or delete it")
        finished = np.asarray(finished, bool)

    repl, chan = parallel.replicated(mesh), parallel.batch_sharded(mesh)

    def fn_for(li):
        return _sweep_programs(li, float(alpha), noise_mode, precision, mesh)

    G_r = jax.device_put(G, repl)
    clip_r = jax.device_put(clip, repl)
    names_before = {li: {l.name for l in G.layout[:li]} for li, _, _ in plan.units}
    avail = memory.available_bytes(memory_fraction, memory_budget, mesh.devices.flat[0])
    if avail is not None and plan.units:
        li0 = plan.units[0][0]
        key0 = (_shapes_key(G.params), json.dumps(G.config, sort_keys=True, default=str), _shapes_key(clip.params),
                getattr(clip, "preprocess", None), li0, float(alpha), noise_mode, precision, nd, jax.default_backend())

        def need(n_img, n_ch):  # bytes per device of one call of the first layer's program
            if (key0, n_img, n_ch) not in _BYTES_CACHE:
                _BYTES_CACHE[(key0, n_img, n_ch)] = probe(n_img, n_ch)
            return _BYTES_CACHE[(key0, n_img, n_ch)]

        def probe(n_img, n_ch):
            f, pre = fn_for(li0)
            st = {k: jax.ShapeDtypeStruct((n_img,) + v.shape[1:], v.dtype, sharding=repl) for k, v in s_all.items()}
            state = jax.eval_shape(pre, G_r, {k: st[k] for k in st if k in names_before[li0]})
            state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl), state)
            vec = jax.ShapeDtypeStruct((G.layout[li0].channels,), jnp.float32, sharding=repl)
            with jax.default_matmul_precision("highest"):
                return memory.program_bytes(f, G_r, clip_r, state, {k: st[k] for k in st if k not in names_before[li0]},
                                            jax.ShapeDtypeStruct((n_ch,), jnp.int32, sharding=chan), vec, vec)

        try:
            ib = memory.fit_batch(lambda b: need(b, call), m if image_batch is None else ib, avail,
                                  f"channel-relevance sweep, {call} channels per call")
        except ConfigError:  # not even one image with the whole block: fewer channels per call
            per_dev = memory.fit_batch(lambda c: need(1, c * nd), call // nd, avail,
                                       "channel-relevance sweep, 1 image per call")
            ib, call = 1, per_dev * nd
    if progress and writer:
        print("  " + parallel.describe(mesh, call // nd, f"channels x {ib} images"), flush=True)

    ctx = jax.default_matmul_precision("highest")  # float32 everywhere but the bf16 convs of ops.modconv_for
    todo = [u for u, done in zip(plan.units, finished) if not done]
    nproc, me = jax.process_count(), jax.process_index()
    # round r: block r*nproc + p is process p's (its blocks are parallel.process_share(todo))
    rounds = [todo[r:r + nproc] for r in range(0, len(todo), nproc)]
    bar = _progress(plan.num_channels, "channel relevance", progress)
    bar.update(sum(b - a for (li, a, b), done in zip(plan.units, finished) if done))
    computed = 0
    prefix_cache: Dict[int, list] = {}

    def compute(li, a, b):
        f, pre = fn_for(li)
        layer = G.layout[li]
        names = [l.name for l in G.layout[li:]]
        if li not in prefix_cache:
            prefix_cache.clear()  # keep only the current layer's activations
            chunks = []
            for i0 in range(0, m, ib):
                s_c = {k: jax.device_put(v[i0:i0 + ib], repl) for k, v in s_all.items()}
                state = pre(G_r, {k: s_c[k] for k in s_c if k in names_before[li]})
                chunks.append((state, {k: s_c[k] for k in names}))
            prefix_cache[li] = chunks
        mu = jax.device_put(jnp.asarray(mean[layer.name]), repl)
        sd = jax.device_put(jnp.asarray(std[layer.name]), repl)
        rows = []
        for c0 in range(a, b, call):  # one call per `call` channels (the whole block unless memory-bound)
            idx = np.arange(c0, c0 + call) % layer.channels  # pad by wrapping
            idx_d = jax.device_put(jnp.asarray(idx, jnp.int32), chan)
            acc = None
            for state, s_c in prefix_cache[li]:
                part = f(G_r, clip_r, state, s_c, idx_d, mu, sd)
                acc = part if acc is None else acc + part
            rows.append(np.asarray(acc)[: min(call, b - c0)])
        acc = np.concatenate(rows)
        return np.asarray(gd_math.unit_or_zero(jnp.asarray(acc / m), -1), np.float32)  # acc / m: the mean

    with ctx:
        for r, units in enumerate(rounds):
            mine = units[me] if me < len(units) else None
            block = np.zeros((block_size, clip.embed_dim), np.float32)  # same shape on every process
            if mine is not None:
                block[: mine[2] - mine[1]] = compute(*mine)
                computed += 1
                if computed_blocks is not None:
                    computed_blocks.append(tuple(int(v) for v in mine))
            gathered = parallel.allgather(block) if nproc > 1 else block[None]
            for (li, a, b), got in zip(units, gathered):
                results[(li, a)] = got[: b - a]
                if blocks_dir is not None and writer:
                    files.write_npy(blocks_dir / SweepPlan.block_name(li, a), results[(li, a)])
                bar.update(b - a)
            if stop_after_blocks is not None and r + 1 >= stop_after_blocks:  # the same round everywhere
                bar.close()
                return None
    bar.close()
    if progress and nproc > 1:  # one line per process (stderr: main.py silences the others' stdout): its share
        print(f"  process {me} of {nproc}: computed {computed} of {len(todo)} unfinished blocks "
              f"({sum(b - a for li, a, b in parallel.process_share(todo))} channels)", file=sys.stderr, flush=True)
    if writer:
        fs3 = np.concatenate([results[(li, a)] for (li, a, _) in plan.units], axis=0)
    else:  # blocks found finished on disk live on process 0 only
        fs3 = np.zeros((plan.num_channels, clip.embed_dim), np.float32)
    fs3 = np.asarray(parallel.broadcast_from_writer(fs3))
    if out_dir is not None and writer:
        files.write_npy(out_dir / "fs3.npy", fs3)
    return fs3
