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

The sweep (`relevance_sweep.py`, re-exported here) is vectorised, shards a block's channels over the
process's devices, deals its blocks out to the processes of a multi-process run, fits its calls to the
device's memory and resumes from atomically written blocks (with any process or device count).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from . import global_direction_math as gd_math
from .. import files
from ..models import layout as layout_lib
from ..models.clip import embed_images
from ..models.generator import truncate, w_to_s
# the sweep lives in relevance_sweep.py; its names are part of this module's interface
from .relevance_sweep import (RENDER_PIXELS_PER_CALL, SweepPlan, _block_sum,  # noqa: F401
                              _prefix, _progress, _sweep_programs, auto_image_batch, channel_relevance,
                              relevance_from_features)

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
def _styles_of_z(consts, z):
    """S of z mapped with truncation psi on rows [:cutoff]; consts = (G, psi, cutoff), psi traced (one compile
    for all psi). Rows are independent (`parallel.map_batched`)."""
    G, psi, cutoff = consts
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
                seed: int = 0, batch_size: int = 2000, progress: bool = False, devices=None,
                memory_fraction: float = 0.9, memory_budget: Optional[int] = None):
    """Per-channel mean and std (ddof 0) of every S layer over `num_samples` mapped samples.

    z = RandomState(seed).randn(num_samples, z_dim) (official: seed 5, 100k, psi 0.7, cutoff 8);
    computed in jitted calls of about `batch_size` samples split over `devices` (default: every device of
    every process; `parallel.map_batched`, sized to the free memory), float64 accumulation on the host in
    sample order. Returns (mean, std): dicts name -> (C,).
    """
    from .. import parallel
    rs = np.random.RandomState(seed)
    cut = G.num_ws if truncation_cutoff is None else int(truncation_cutoff)
    z = np.concatenate([rs.randn(min(batch_size, num_samples - i), G.cfg.z_dim).astype(np.float32)
                        for i in range(0, num_samples, batch_size)])  # the same stream as one batch at a time
    consts = (G, jnp.float32(truncation_psi), jnp.int32(cut))
    mesh, per = parallel.batch_plan(_styles_of_z, consts, z, parallel.rows_per_device(batch_size, devices),
                                    devices=devices,
                                    memory_fraction=memory_fraction, memory_budget=memory_budget, what="samples")
    if progress and parallel.is_writer():
        print("  " + parallel.describe(mesh, per, "samples"), flush=True)
    sums: Dict[str, np.ndarray] = {}
    sqs: Dict[str, np.ndarray] = {}
    bar = _progress(num_samples, "S statistics", progress)
    for _, s in parallel.iter_batched(_styles_of_z, consts, z, per, mesh=mesh):
        for k, v in s.items():
            v = np.asarray(v, np.float64)
            sums[k] = sums.get(k, 0.0) + v.sum(0)
            sqs[k] = sqs.get(k, 0.0) + (v * v).sum(0)
        bar.update(len(next(iter(s.values()))))
    bar.close()
    names = [l.name for l in G.layout]
    mean = {k: (sums[k] / num_samples).astype(np.float32) for k in names}
    std = {}
    for k in names:
        m = sums[k] / num_samples
        var = sqs[k] / num_samples - m ** 2
        # a constant channel (a style channel that reads no w coordinate) leaves only float64 cancellation
        # noise (~1e-16 m^2), whose square root, ~1e-8 |m|, would still move the sweep's codes: report 0
        var = np.where(var <= 1e-12 * m ** 2, 0.0, var)
        std[k] = np.sqrt(np.maximum(var, 0.0)).astype(np.float32)
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
            per.append(np.asarray(embed_images(clip, G.synthesis_from_s(e, noise_mode=noise_mode))))
        feats.append(np.stack(per, axis=1))  # (M, 2, D)
    return np.asarray(relevance_from_features(np.stack(feats)))


def row_cosines(fs3_a, fs3_b) -> np.ndarray:
    """(K,) cosine between corresponding rows of two fs3 arrays; two zero rows (a channel that changes no image
    in both) agree (1), a zero row against a non-zero one does not (0)."""
    a = np.asarray(fs3_a, np.float64)
    b = np.asarray(fs3_b, np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    both = (na > 0) & (nb > 0)
    cos = np.where(both, np.sum(a * b, -1) / np.where(both, na * nb, 1.0), 0.0)
    return np.where((na == 0) & (nb == 0), 1.0, cos)


def agreement(fs3_a, fs3_b) -> float:
    """Mean of :func:`row_cosines` (precision comparison)."""
    return float(np.mean(row_cosines(fs3_a, fs3_b)))


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
def _render_s_rows(G, s):
    """Images of StyleSpace rows (a dict of (R, C)); rows are independent (`parallel.map_batched`)."""
    from ..models.generator import synthesis_from_s
    return synthesis_from_s(G.params, G.cfg, s, "const")


def study(G, clip, ws, prompt_pairs: Sequence[Tuple[str, str]], alphas: Sequence[float], betas: Sequence[float],
          fs3, mean, std, arc=None, max_images_per_call: int = 64, devices=None, memory_fraction: float = 0.9,
          memory_budget: Optional[int] = None, verbose: bool = False):
    """Edit N images with P (neutral, target) pairs x A alphas x B betas.

    The P*B*A*N edited StyleSpace codes are rendered and CLIP-embedded as rows split over `devices` (default:
    every device of every process), max_images_per_call per call (fewer where the free memory says so;
    `parallel.map_batched`): results equal one device's.

    Returns dict: source (N,H,W,3), edited (P,A,B,N,H,W,3), num_kept (P,B), mean_abs_delta (P,A,B),
    clip_before (P,N), clip_after (P,A,B,N) (cosine to the target text), id_similarity (P,A,B,N) or None.
    """
    from .. import parallel
    ws = jnp.asarray(ws, jnp.float32)
    s = G.w_to_s(ws)
    n = ws.shape[0]
    P, A, B = len(prompt_pairs), len(alphas), len(betas)
    deltas, kept = [], np.zeros((P, B), np.int64)
    for p, (neutral, target) in enumerate(prompt_pairs):
        dt = text_direction(clip, neutral, target)
        for b, beta in enumerate(betas):
            d, k = direction(fs3, dt, std, float(beta))
            deltas.append(d)
            kept[p, b] = int(k)
    delta = {name: np.stack([np.asarray(d[name]) for d in deltas]) for name in s}  # (P*B, C)
    alphas_np = np.asarray(alphas, np.float32)
    # rows (P*B, A, N) of edited codes, then sources: every image of the study in one row-parallel map
    rows = {name: np.concatenate([(np.asarray(s[name])[None, None] + alphas_np[None, :, None, None]
                                   * delta[name][:, None, None, :]).reshape(P * B * A * n, -1),
                                  np.asarray(s[name])]) for name in s}
    mem = dict(devices=devices, memory_fraction=memory_fraction, memory_budget=memory_budget)
    per = parallel.rows_per_device(max_images_per_call, devices)
    imgs = parallel.map_batched(_render_s_rows, G, rows, per, what="renders", verbose=verbose, **mem)
    source = imgs[P * B * A * n:]
    imgs = imgs[:P * B * A * n].reshape(P * B, A, n, *imgs.shape[1:])  # (P*B, A, N, H, W, 3)
    edited = imgs.reshape(P, B, A, n, *imgs.shape[3:]).transpose(0, 2, 1, 3, 4, 5, 6)  # (P, A, B, N, ...)
    t_emb = clip.encode_texts([t for _, t in prompt_pairs])  # (P, D)
    flat = edited.reshape(-1, *edited.shape[4:])
    e_all = parallel.map_batched(embed_images, clip, np.concatenate([flat, source]), 4 * per, what="images", **mem)
    e_src = e_all[len(flat):]
    clip_before = e_src @ np.asarray(t_emb).T  # (N, P)
    e_edit = e_all[:len(flat)].reshape(P, A, B, n, -1)
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
