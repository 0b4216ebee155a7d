"""Global-direction maths of StyleCLIP (``global_torch/StyleCLIP.py``, ``SingleChannel.py``,
``manipulate.py``), as pure jnp/numpy functions. No generator or CLIP model is needed here.

Conventions
-----------
* A **layout** is the table of :mod:`styleclip_jax.models.layout` (``G.layout``, or
  ``layout.from_names(names, channels)`` for the official code's lists; toRGB = ``'RGB' in name``), e.g.
  FFHQ 1024: 26 layers ``conv1_resolution_4, toRGB_resolution_4, conv0_resolution_8, ...``.
* **Official channel order** (fs3 rows, relevance vector ``r``): the non-toRGB layers in S order,
  channels in order within a layer (6048 for FFHQ 1024; the torch ``SingleChannel.py`` only
  covers layers up to 128 px, 5376 channels - a layer-aligned prefix, see :func:`direction`).
* S codes are dicts ``name -> (N, C)``; per-layer statistics dicts ``name -> (C,)``.

Pipeline: ``all_f -> relevance_from_features -> fs3``; text embeddings ->
``template_average`` (:mod:`styleclip_jax.models.clip`) -> ``text_direction_from_features -> dt``; ``direction(fs3, dt, std, beta)
-> delta_s``; ``apply(s, delta_s, alpha)`` -> edited S.
"""
from __future__ import annotations

import os
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import jax.numpy as jnp
import numpy as np

from ..models import layout as layout_lib
from ..models.clip import template_average
from ..models.layout import SLayer
from ..models.ops import l2_normalize as normalize

__all__ = [
    "normalize",
    "relevance_from_features",
    "unit_or_zero",
    "STILL",
    "template_average",
    "text_direction_from_features",
    "relevance",
    "direction",
    "split_by_layout",
    "apply",
    "single_channel_edit",
    "single_channel_schedule",
    "single_channel_codes",
    "load_fs3",
]

Layout = Sequence[SLayer]


# ---------------------------------------------------------------------------------------
# Image side: channel relevance directions
# ---------------------------------------------------------------------------------------
# Below this norm a difference of two normalised CLIP embeddings counts as 0: a channel with std 0 (a style
# channel that reads no w coordinate, e.g. the shapes world's hue channels outside their one layer) renders the
# same image at -5 and +5 std, where official GetFs divides 0 by 0, or, when the two renders are rows of one
# batched call, float32 rounding noise (~1e-7) by its own norm. The smallest change of a channel with std > 0
# measured in the shapes world is 4.7e-6 (benchmarks/results/2026-12-07_cpu/shapes_hue_layer.txt).
STILL = 1e-6


def unit_or_zero(x, axis: int = -1):
    """``x / ||x||`` along ``axis`` (official), and 0 where ``||x|| < STILL``."""
    n = jnp.linalg.norm(x, axis=axis, keepdims=True)
    return jnp.where(n >= STILL, x / jnp.where(n >= STILL, n, 1.0), 0.0)


def relevance_from_features(all_f):
    """Official ``GetFs``: CLIP-space direction of every S channel.

    Args:
      all_f: (channels, images, 2, D) image features; ``[:, :, 0]`` at ``-5 std``,
        ``[:, :, 1]`` at ``+5 std``.
    Returns:
      fs3: (channels, D) unit vectors: normalise each feature, take (+) - (-), normalise,
      average over images, normalise. A difference below STILL counts as 0 (official: 0 / 0), so a
      channel that changes no image gets the zero row (relevance 0 for every text).
    """
    f = normalize(jnp.asarray(all_f), -1)
    d = unit_or_zero(f[:, :, 1, :] - f[:, :, 0, :], -1)
    return unit_or_zero(jnp.mean(d, axis=1), -1)


# ---------------------------------------------------------------------------------------
# Text side
# ---------------------------------------------------------------------------------------
def text_direction_from_features(t_target, t_neutral):
    """Official ``GetDt``: ``dt = normalise(t_target - t_neutral)`` for (D,) class features."""
    return normalize(jnp.asarray(t_target) - jnp.asarray(t_neutral), -1)


# ---------------------------------------------------------------------------------------
# Boundary (GetBoundary + SplitS) and edit (MSCode)
# ---------------------------------------------------------------------------------------
def relevance(fs3, dt, beta: float):
    """Official ``GetBoundary`` before the split.

    Args:
      fs3: (K, D) channel directions in official channel order.
      dt: (D,) text direction.
      beta: disentanglement threshold; channels with ``|fs3 @ dt| < beta`` are zeroed.
    Returns:
      ``(ds_imp (K,), num_kept ())``: ``ds_imp = r_kept / max|r_kept|``. If no channel survives,
      the official code divides 0 by 0 (NaN); we return zeros instead.
    """
    r = jnp.asarray(fs3) @ jnp.asarray(dt)
    keep = jnp.abs(r) >= beta
    r = jnp.where(keep, r, 0.0)
    m = jnp.max(jnp.abs(r))
    ds_imp = jnp.where(m > 0, r / jnp.where(m > 0, m, 1.0), 0.0)
    return ds_imp, jnp.sum(keep)


def split_by_layout(ds_imp, std: Mapping[str, object], layout: Layout, use_std: bool = True
                    ) -> Dict[str, jnp.ndarray]:
    """Official ``SplitS``: a flat (K,) channel vector -> dict ``name -> (C,)`` for every layer.

    Non-toRGB layers take consecutive slices (times ``std[name]`` if ``use_std``); toRGB layers
    get zeros. ``K`` may be shorter than the layout's non-toRGB total when it ends on a layer
    boundary (torch ``SingleChannel.py`` fs3 stops at 128 px): the remaining layers get zeros,
    as in the official code, whose slice pointer stops at the first empty slice so that every
    later layer is zero too. A ``K`` ending inside a layer is an error (the official code
    crashes on the broadcast).
    """
    ds_imp = jnp.asarray(ds_imp)
    k = ds_imp.shape[0]
    bounds = layout_lib.channel_bounds(layout)
    if k not in bounds:
        raise ValueError(f"relevance vector has {k} channels; it must end on a layer boundary of the "
                         f"layout (non-toRGB cumulative counts {bounds[1:]})")
    out, start = {}, 0
    for l in layout:
        name, c = l.name, l.channels
        if l.is_torgb or start >= k:
            out[name] = jnp.zeros((c,), ds_imp.dtype)
            continue
        piece = ds_imp[start:start + c]
        out[name] = piece * jnp.asarray(std[name], ds_imp.dtype) if use_std else piece
        start += c
    return out


def direction(fs3, dt, std: Mapping[str, object], beta: float, layout: Layout
              ) -> Tuple[Dict[str, jnp.ndarray], jnp.ndarray]:
    """Global direction Δs for a text direction (official ``GetBoundary`` with ``SplitS``).

    Args:
      fs3: (K, D) channel relevance directions (official channel order, see :func:`load_fs3`).
      dt: (D,) unit text direction.
      std: ``name -> (C,)`` per-channel std of S (``code_std``); only non-toRGB layers are read.
      beta: threshold on ``|fs3 @ dt|``.
      layout: the S layout (``G.layout`` or ``layout.from_names``).
    Returns:
      ``(delta_s, num_kept)``: ``delta_s[name]`` (C,) for every layer (zeros for toRGB), and the
      number of channels with ``|r| >= beta``.
    """
    ds_imp, num = relevance(fs3, dt, beta)
    return split_by_layout(ds_imp, std, layout, use_std=True), num


def apply(s: Mapping[str, object], delta_s: Mapping[str, object], alpha,
          layers: Optional[Sequence[str]] = None) -> Dict[str, jnp.ndarray]:
    """Official ``MSCode``: ``s'[l] = s[l] + alpha * delta_s[l]``.

    Args:
      s: ``name -> (N, C)`` S codes.
      delta_s: ``name -> (C,)``; layers missing from it are left unchanged.
      alpha: scalar -> results (N, C); 1-D (A,) -> results (N, A, C) (one code per strength).
      layers: only edit these layers (official ``manipulate_layers``); ``None`` = all.
    Returns:
      dict ``name -> (N, C)`` or ``(N, A, C)`` for every layer of ``s``.
    """
    a = jnp.asarray(alpha, jnp.float32)
    out = {}
    for name, x in s.items():
        x = jnp.asarray(x)
        if a.ndim == 1:
            x = jnp.broadcast_to(x[:, None, :], (x.shape[0], a.shape[0], x.shape[-1]))
        if name in delta_s and (layers is None or name in layers):
            d = jnp.asarray(delta_s[name], x.dtype)
            x = x + (a[:, None] * d if a.ndim == 1 else a * d)
        out[name] = x
    return out


# ---------------------------------------------------------------------------------------
# Single-channel protocol (SingleChannel.py + Manipulator.EditOneC)
# ---------------------------------------------------------------------------------------
def single_channel_edit(s_layer, mean, std, channel: int, alphas=(-5.0, 5.0)):
    """Codes of one layer for one channel sweep: (N, C) -> (N, A, C).

    Channel ``channel`` is set to ``mean[channel] + alpha * std[channel]`` for every alpha (the
    official protocol clamps it to the mean, then adds ``alpha * std``); other channels keep
    their values.
    """
    x = jnp.asarray(s_layer)
    a = jnp.asarray(alphas, x.dtype)
    codes = jnp.broadcast_to(x[:, None, :], (x.shape[0], a.shape[0], x.shape[1]))
    value = jnp.asarray(mean, x.dtype)[channel] + a * jnp.asarray(std, x.dtype)[channel]
    return codes.at[:, :, channel].set(jnp.broadcast_to(value, (x.shape[0], a.shape[0])))


def single_channel_schedule(layout: Layout, max_s_index: Optional[int] = 16) -> List[Tuple[str, int]]:
    """Official ``SingleChannel.py`` order: non-toRGB layers with S index <= ``max_s_index``
    (layers up to 128 px for FFHQ 1024; ``None`` = all), every channel in order."""
    return [(l.name, c) for i, l in enumerate(layout)
            if not l.is_torgb and (max_s_index is None or i <= max_s_index) for c in range(l.channels)]


def single_channel_codes(s: Mapping[str, object], code_mean: Mapping[str, object],
                         code_std: Mapping[str, object], schedule: Sequence[Tuple[str, int]],
                         alphas=(-5.0, 5.0), persist_mean_clamp: bool = False
                         ) -> Iterator[Tuple[str, int, Dict[str, np.ndarray]]]:
    """Iterate the single-channel protocol: yields ``(name, channel, codes)``.

    ``codes`` is a dict ``name -> (N, A, C)`` for every layer of ``s`` (``s``: ``name -> (N, C)``,
    e.g. the first 100 S codes): the edited layer from :func:`single_channel_edit`, the others
    repeated over the A alphas. Images rendered from ``codes[:, 0]`` / ``codes[:, 1]`` give
    ``all_f[k, :, 0/1]``.

    ``persist_mean_clamp=True`` reproduces the **official behaviour**: ``SingleChannel.py`` only
    shallow-copies the list of S arrays, so the in-place clamp of every processed channel to its
    mean persists for all later channels and layers (after layer l is done, its channels are all
    at their means when later layers are swept). ``False`` (our sweep default) clamps only the
    channel being swept, which is the intended protocol; fs3 computed either way differs slightly.
    Runs in numpy (host-side orchestration around the renderer).
    """
    base = {k: np.array(v, copy=True) for k, v in s.items()}
    alphas = np.asarray(alphas)
    for name, c in schedule:
        codes = {}
        for k, v in base.items():
            if k == name:
                continue
            codes[k] = np.broadcast_to(v[:, None, :], (v.shape[0], alphas.shape[0], v.shape[1]))
        codes[name] = np.asarray(single_channel_edit(base[name], code_mean[name], code_std[name], c, alphas))
        codes = {k: codes[k] for k in base}  # keep S order
        if persist_mean_clamp:
            base[name][:, c] = np.asarray(code_mean[name])[c]
        yield name, c, codes


# ---------------------------------------------------------------------------------------
# fs3 files
# ---------------------------------------------------------------------------------------
def load_fs3(path, layout: Optional[Layout] = None, allow_layer_prefix: bool = True) -> np.ndarray:
    """Load a published / saved ``fs3.npy`` (K, D) and check it against ``layout``.

    ``K`` must equal the layout's non-toRGB channel count (6048 for FFHQ 1024), or, with
    ``allow_layer_prefix``, a count that ends on a layer boundary (5376 = the torch
    ``SingleChannel.py`` subset up to 128 px; later layers then get no edit). Raises
    ``ValueError`` naming the file otherwise.
    """
    arr = np.load(path)
    name = os.fspath(path)
    if arr.ndim != 2:
        raise ValueError(f"{name}: fs3 must be 2-D (channels, clip_dim), got shape {arr.shape}")
    if layout is not None:
        total = layout_lib.num_channels(layout)
        bounds = layout_lib.channel_bounds(layout)[1:]
        ok = arr.shape[0] == total or (allow_layer_prefix and arr.shape[0] in bounds)
        if not ok:
            raise ValueError(f"{name}: fs3 has {arr.shape[0]} rows but the layout has {total} non-toRGB "
                             f"channels" + (f" (layer-aligned prefixes allowed: {bounds})"
                                            if allow_layer_prefix else ""))
    return arr.astype(np.float32, copy=False)
