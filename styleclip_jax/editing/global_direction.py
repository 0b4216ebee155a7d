"""StyleCLIP global directions in StyleSpace (method 3): statistics, channel relevance, edits, studies.

    from styleclip_jax.editing import global_direction as gd
    mean, std = gd.style_stats(G, num_samples=100_000, truncation_psi=0.7, truncation_cutoff=8, seed=0)
    fs3 = gd.channel_relevance(G, clip, mean, std, num_images=100)   # (num_channels, D), official order
    dt = gd.text_direction(clip, "a face", "a face with blue eyes")   # (D,)
    delta_s, num_kept = gd.direction(fs3, dt, std, beta=0.15)         # dict layer -> (C,), toRGB zero
    s_edit = gd.apply(G.w_to_s(ws), delta_s, alpha=4.1)

Channel relevance ("fs3"): for every non-toRGB channel c and each of M images, set c to its mean,
render at mean +- 5 std, embed both with CLIP, take the difference of the normalised embeddings,
normalise per image, average over images, normalise. Rows follow the official channel order
(non-toRGB layers in S order, channels in order), so files are interchangeable with StyleCLIP's
published `fs3.npy`. Differences from the official torch script, on purpose: (1) the clamp of a
channel to its mean does not persist into later channels (the official shallow-copy quirk;
`gd_math.single_channel_codes(persist_mean_clamp=True)` reproduces it), (2) images reach CLIP
through the CLIP bundle's own differentiable preprocessing, not uint8 + PIL bicubic.

The sweep is vectorised (vmap over a block of channels, all images of a chunk at once), reuses
the activations before the perturbed layer for all channels of that layer, is sharded over the
process's devices with a `jax.sharding.Mesh` (channel axis), deals its blocks out to the processes of a
multi-process run, and resumes from atomically written blocks (with any process or device count).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import pathlib
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from . import global_direction_math as gd_math
from .. import files, memory
from ..checkpoints.params_io import write_json
from ..errors import ConfigError
from ..models import layout as layout_lib
from ..models import ops
from ..models.generator import synthesis_layers, truncate, w_to_s

# ------------------------------------------------------------------------------------------------
# Layout helpers
# ------------------------------------------------------------------------------------------------
def layout_of(std_or_G):
    """The S layout of a Generator, or of a per-layer dict ``name -> (..., C)`` (statistics, S codes)."""
    if hasattr(std_or_G, "layout"):
        return std_or_G.layout
    return layout_lib.from_styles({k: np.asarray(v) for k, v in std_or_G.items()})


def num_relevance_channels(G, max_resolution: Optional[int] = None) -> int:
    return layout_lib.num_channels(layout_lib.non_torgb_layers(G.layout, max_resolution))


# ------------------------------------------------------------------------------------------------
# 1. StyleSpace statistics
# ------------------------------------------------------------------------------------------------
@jax.jit
def _styles_of_z(G, z, psi, cutoff):
    """S of z mapped with truncation psi on rows [:cutoff] (psi traced, so one compile for all psi)."""
    ws = truncate(G.mapping(z, truncation_psi=1.0), G.mean_w(), psi, cutoff)
    return w_to_s(G.params, G.cfg, ws)


def sample_ws(G, num: int, truncation_psi: float = 0.7, truncation_cutoff: Optional[int] = 8, seed: int = 0,
              start: int = 0) -> np.ndarray:
    """W+ of samples [start, start+num) of the stream z = RandomState(seed).randn(., z_dim)."""
    rs = np.random.RandomState(seed)
    if start:
        rs.randn(start, G.cfg.z_dim)
    z = rs.randn(num, G.cfg.z_dim).astype(np.float32)
    return np.asarray(G.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff))


def style_stats(G, num_samples: int = 100_000, truncation_psi: float = 0.7, truncation_cutoff: Optional[int] = 8,
                seed: int = 0, batch_size: int = 2000, progress: bool = False):
    """Per-channel mean and std (ddof 0) of every S layer over `num_samples` mapped samples.

    z = RandomState(seed).randn(num_samples, z_dim) (official: seed 5, 100k, psi 0.7, cutoff 8);
    computed in jitted batches with float64 accumulation. Returns (mean, std): dicts name -> (C,).
    """
    rs = np.random.RandomState(seed)
    cut = G.num_ws if truncation_cutoff is None else int(truncation_cutoff)
    sums: Dict[str, np.ndarray] = {}
    sqs: Dict[str, np.ndarray] = {}
    done = 0
    bar = _progress(num_samples, "S statistics", progress)
    while done < num_samples:
        b = min(batch_size, num_samples - done)
        z = rs.randn(b, G.cfg.z_dim).astype(np.float32)
        s = _styles_of_z(G, z, jnp.float32(truncation_psi), jnp.int32(cut))
        for k, v in s.items():
            v = np.asarray(v, np.float64)
            sums[k] = sums.get(k, 0.0) + v.sum(0)
            sqs[k] = sqs.get(k, 0.0) + (v * v).sum(0)
        done += b
        bar.update(b)
    bar.close()
    names = [l.name for l in G.layout]
    mean = {k: (sums[k] / num_samples).astype(np.float32) for k in names}
    std = {k: np.sqrt(np.maximum(sqs[k] / num_samples - (sums[k] / num_samples) ** 2, 0.0)).astype(np.float32)
           for k in names}
    return mean, std


def save_stats(path, mean, std) -> None:
    files.write_npz(path, **{f"mean/{k}": v for k, v in mean.items()}, **{f"std/{k}": v for k, v in std.items()})


def load_stats(path, G=None):
    """(mean, std) dicts from save_stats' .npz; checked against G's layout when given."""
    try:
        with np.load(path) as z:
            mean = {k[5:]: z[k] for k in z.files if k.startswith("mean/")}
            std = {k[4:]: z[k] for k in z.files if k.startswith("std/")}
    except Exception as e:
        raise ValueError(f"StyleSpace statistics file {path} could not be read: {e}") from None
    order = layout_lib.order_names(mean)
    mean = {k: mean[k] for k in order}
    std = {k: std[k] for k in order}
    if G is not None:
        want = [(l.name, l.channels) for l in G.layout]
        got = [(k, int(v.shape[0])) for k, v in mean.items()]
        if want != got:
            raise ValueError(f"StyleSpace statistics file {path} does not match this generator's layout")
    return mean, std


# ------------------------------------------------------------------------------------------------
# 2. Channel relevance sweep
# ------------------------------------------------------------------------------------------------
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


def _clip_features(clip, images):
    """Unit image embeddings (N, D) through the bundle's pure `image_embed_fn(params, images)`."""
    return clip.image_embed_fn(clip.params, images)


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
        f = _clip_features(clip, img)
        d = f[m:] - f[:m]
        d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
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

        def need(n_img, n_ch):  # bytes per device of one call of the first layer's program
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
        return (acc / np.linalg.norm(acc, axis=-1, keepdims=True)).astype(np.float32)

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


def channel_relevance_naive(G, clip, mean, std, ws, layer_names: Sequence[str], channels: Sequence[int],
                            alpha: float = 5.0, noise_mode: str = "const") -> np.ndarray:
    """Slow reference: full synthesis from S for every (channel, image, sign), then GetFs."""
    s = {k: np.asarray(v) for k, v in G.w_to_s(ws).items()}
    feats = []
    for name, c in zip(layer_names, channels):
        per = []
        for sign in (-1.0, 1.0):
            e = {k: v.copy() for k, v in s.items()}
            e[name][:, c] = mean[name][c] + sign * alpha * std[name][c]
            per.append(np.asarray(_clip_features(clip, G.synthesis_from_s(e, noise_mode=noise_mode))))
        feats.append(np.stack(per, axis=1))  # (M, 2, D)
    return np.asarray(relevance_from_features(np.stack(feats)))


def agreement(fs3_a, fs3_b) -> float:
    """Mean cosine between corresponding rows of two fs3 arrays (precision comparison)."""
    a = np.asarray(fs3_a, np.float64)
    b = np.asarray(fs3_b, np.float64)
    return float(np.mean(np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))


def load_fs3(path, G) -> np.ndarray:
    """Load an fs3 .npy (ours or a published StyleCLIP one) and check it against G's layout."""
    return gd_math.load_fs3(path, layout_of(G))


# ------------------------------------------------------------------------------------------------
# 3. Text -> direction -> edit
# ------------------------------------------------------------------------------------------------
def text_direction(clip, neutral: str, target: str) -> jnp.ndarray:
    """dt (D,) = normalise(t(target) - t(neutral)), each averaged over the 79 ImageNet templates."""
    return clip.text_direction(target, neutral)


def direction(fs3, dt, std, beta: float):
    """(delta_s: dict layer -> (C,) with toRGB layers zero, num_kept) for relevance threshold beta."""
    return gd_math.direction(fs3, dt, std, beta, layout_of(std))


def apply(s, delta_s, alpha):
    """s + alpha * delta_s per layer (alpha scalar -> (N, C); (A,) -> (N, A, C))."""
    return gd_math.apply(s, delta_s, alpha)


# ------------------------------------------------------------------------------------------------
# 4. Batched directional studies
# ------------------------------------------------------------------------------------------------
@jax.jit
def _render_cells(G, s, delta, alphas):
    """s: (N, C) dicts; delta: (K, C) dicts (K = P*B); alphas (A,) -> images (K, A, N, H, W, 3)."""
    from ..models.generator import synthesis_from_s
    k = next(iter(delta.values())).shape[0]
    a = alphas.shape[0]
    n = next(iter(s.values())).shape[0]
    edited = {name: (s[name][None, None] + alphas[None, :, None, None] * delta[name][:, None, None, :]
                     ).reshape(k * a * n, -1) for name in s}
    img = synthesis_from_s(G.params, G.cfg, edited, "const")
    return img.reshape(k, a, n, *img.shape[1:])


def study(G, clip, ws, prompt_pairs: Sequence[Tuple[str, str]], alphas: Sequence[float], betas: Sequence[float],
          fs3, mean, std, arc=None, max_images_per_call: int = 64):
    """Edit N images with P (neutral, target) pairs x A alphas x B betas.

    Returns dict: source (N,H,W,3), edited (P,A,B,N,H,W,3), num_kept (P,B), mean_abs_delta (P,A,B),
    clip_before (P,N), clip_after (P,A,B,N) (cosine to the target text), id_similarity (P,A,B,N) or None.
    """
    ws = jnp.asarray(ws, jnp.float32)
    s = G.w_to_s(ws)
    n = ws.shape[0]
    P, A, B = len(prompt_pairs), len(alphas), len(betas)
    alphas_j = jnp.asarray(alphas, jnp.float32)
    deltas, kept = [], np.zeros((P, B), np.int64)
    for p, (neutral, target) in enumerate(prompt_pairs):
        dt = text_direction(clip, neutral, target)
        for b, beta in enumerate(betas):
            d, k = direction(fs3, dt, std, float(beta))
            deltas.append(d)
            kept[p, b] = int(k)
    delta = {name: jnp.stack([d[name] for d in deltas]) for name in s}  # (P*B, C)
    # render in groups of (prompt, beta) cells so each call has at most ~max_images_per_call images
    per_cell = A * n
    group = max(1, max_images_per_call // max(per_cell, 1))
    imgs = []
    for g0 in range(0, P * B, group):
        sub = {k: v[g0:g0 + group] for k, v in delta.items()}
        imgs.append(np.asarray(_render_cells(G, s, sub, alphas_j)))
    imgs = np.concatenate(imgs)  # (P*B, A, N, H, W, 3)
    edited = imgs.reshape(P, B, A, n, *imgs.shape[3:]).transpose(0, 2, 1, 3, 4, 5, 6)  # (P, A, B, N, ...)
    source = np.asarray(G.synthesis_from_s(s))
    t_emb = clip.encode_texts([t for _, t in prompt_pairs])  # (P, D)
    e_src = np.asarray(clip.encode_images(source))
    clip_before = e_src @ np.asarray(t_emb).T  # (N, P)
    flat = edited.reshape(-1, *edited.shape[4:])
    e_edit = np.concatenate([np.asarray(clip.encode_images(flat[i:i + 256])) for i in range(0, len(flat), 256)])
    e_edit = e_edit.reshape(P, A, B, n, -1)
    clip_after = np.einsum("pabnd,pd->pabn", e_edit, np.asarray(t_emb))
    nt = [l.name for l in layout_lib.non_torgb_layers(G.layout)]
    mad = np.zeros((P, A, B))
    for p in range(P):
        for b in range(B):
            flat_d = np.concatenate([np.asarray(delta[name][p * B + b]) for name in nt])
            mad[p, :, b] = np.abs(np.asarray(alphas))[:] * np.mean(np.abs(flat_d))
    idsim = None
    if arc is not None:
        from ..models.arcface import identity_similarity
        src_rep = np.broadcast_to(source, edited.shape).reshape(flat.shape)
        idsim = np.concatenate([np.asarray(identity_similarity(arc, flat[i:i + 64], src_rep[i:i + 64]))
                                for i in range(0, len(flat), 64)]).reshape(P, A, B, n)
    return {"source": source, "edited": edited, "num_kept": kept, "mean_abs_delta": mad,
            "clip_before": clip_before.T, "clip_after": clip_after, "id_similarity": idsim}
