"""The shapes-world generator's training target: a deterministic rule z -> render attributes.

The tiny shipped StyleGAN2 (``load_generator("shapes")``) is trained so that ``G(z)`` looks like
``render_attributes(z_to_attributes(z))``. The rule reads the *normalised* latent
``z / rms(z)`` (exactly what the mapping network sees first), so the target is a function of the
network's input and nothing is left to chance:

==============  =========================================================================
dims            attribute
==============  =========================================================================
0..5            colour      = argmax(z[0:6])     (red, green, blue, yellow, purple, orange)
6..8            shape       = argmax(z[6:9])     (circle, square, triangle)
9..11           background  = argmax(z[9:12])    (white, black, gray)
12              size        = lerp(SIZE_RANGE, Phi(z[12]))
13, 14          cx, cy      = Phi(z[13]), Phi(z[14]) across the range that keeps the shape inside
                            the canvas (``render.place_centre``, jitter=None)
15              brightness  = 0.85 + 0.15 * Phi(z[15])
16              bg_brightness = -0.03 + 0.06 * Phi(z[16])
17..            ignored (the generator should not depend on them)
==============  =========================================================================

Phi is the standard normal CDF, so z ~ N(0, I) gives uniform size/position/brightness like the
renderer's own sampler, and truncation towards the mean latent keeps every value in range
(mid-sized, centred shapes). Also here: pixel-based checks of generated images
(``dominant_colour``, ``shape_masks``, ``evaluate``) used by the training script and the tests.
"""
from __future__ import annotations

import math

import numpy as np

from . import render as R

N_COLOURS = len(R.COLOURS)
N_SHAPES = len(R.SHAPES)
N_BACKGROUNDS = len(R.BACKGROUNDS)
COLOUR_DIMS = slice(0, 6)
SHAPE_DIMS = slice(6, 9)
BACKGROUND_DIMS = slice(9, 12)
SIZE_DIM, CX_DIM, CY_DIM, BRIGHTNESS_DIM, BG_BRIGHTNESS_DIM = 12, 13, 14, 15, 16
MIN_Z_DIM = 17  # the rule needs at least this many latent dims

_erf = np.vectorize(math.erf, otypes=[np.float64])


def normal_cdf(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def normalise_z(z) -> np.ndarray:
    """z / sqrt(mean(z**2) + 1e-8) per row: the mapping network's first operation (float64)."""
    z = np.asarray(z, np.float64)
    return z / np.sqrt(np.mean(np.square(z), axis=-1, keepdims=True) + 1e-8)


def z_to_attributes(z) -> dict:
    """Latents (N, z_dim) (or one (z_dim,) latent) -> attribute dict for ``render.render_attributes``.

    Keys and dtypes as ``render.sample_attributes``: colour, shape, background (int64 indices),
    size, cx, cy, brightness, bg_brightness (float64). A 1-d ``z`` gives 0-d arrays.
    """
    z = np.asarray(z)
    single = z.ndim == 1
    z = np.atleast_2d(z)
    if z.ndim != 2 or z.shape[1] < MIN_Z_DIM:
        raise ValueError(f"z_to_attributes: z must be (N, >= {MIN_Z_DIM}), got {np.shape(z)}")
    if not np.all(np.isfinite(z)):
        raise ValueError("z_to_attributes: z contains non-finite values")
    x = normalise_z(z)
    colour = np.argmax(x[:, COLOUR_DIMS], axis=1).astype(np.int64)
    shape = np.argmax(x[:, SHAPE_DIMS], axis=1).astype(np.int64)
    background = np.argmax(x[:, BACKGROUND_DIMS], axis=1).astype(np.int64)
    lo, hi = R.SIZE_RANGE
    size = lo + (hi - lo) * normal_cdf(x[:, SIZE_DIM])
    cx, cy = R.place_centre(shape, size, normal_cdf(x[:, CX_DIM]), normal_cdf(x[:, CY_DIM]), jitter=None)
    attrs = {
        "colour": colour,
        "shape": shape,
        "background": background,
        "size": size,
        "cx": cx,
        "cy": cy,
        "brightness": 0.85 + 0.15 * normal_cdf(x[:, BRIGHTNESS_DIM]),
        "bg_brightness": -0.03 + 0.06 * normal_cdf(x[:, BG_BRIGHTNESS_DIM]),
    }
    if single:
        attrs = {k: v[0] for k, v in attrs.items()}
    return attrs


def render_z(z) -> np.ndarray:
    """The target images of latents: ``render_attributes(z_to_attributes(z))``, (N, 32, 32, 3) in [-1, 1]."""
    return R.render_attributes(z_to_attributes(z))


# ---------------------------------------------------------------------------------------------
# Pixel-based checks of (generated) images
# ---------------------------------------------------------------------------------------------
_COLOURS01 = np.array([R.COLOUR_RGB[c] for c in R.COLOURS], np.float64)
_BACKGROUNDS01 = np.array([R.BACKGROUND_RGB[b] for b in R.BACKGROUNDS], np.float64)


def _to01(images) -> np.ndarray:
    return (np.clip(np.asarray(images, np.float64), -1.0, 1.0) + 1.0) / 2.0


def dominant_colour(images, min_distance: float = 0.2) -> np.ndarray:
    """Colour index of the shape in each image, from pixels only (no attributes used).

    The background colour is the median of the 1-px border; "shape pixels" are those farther than
    ``min_distance`` (RGB in [0, 1]) from it; their mean RGB is matched to the nearest named colour
    (scaled by the renderer's mean brightness 0.925). An image with no shape pixels gets -1.
    """
    x = _to01(images)
    if x.ndim == 3:
        x = x[None]
    border = np.concatenate([x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], axis=1)  # (N, P, 3)
    bg = np.median(border, axis=1)  # (N, 3)
    dist = np.linalg.norm(x - bg[:, None, None, :], axis=-1)  # (N, H, W)
    fg = dist > min_distance
    count = fg.sum(axis=(1, 2))
    mean = (x * fg[..., None]).sum(axis=(1, 2)) / np.maximum(count, 1)[:, None]
    d = np.linalg.norm(mean[:, None, :] - 0.925 * _COLOURS01[None], axis=-1)
    out = np.argmin(d, axis=1).astype(np.int64)
    out[count == 0] = -1
    return out


def shape_masks(images, attrs) -> np.ndarray:
    """Boolean (N, H, W): pixels closer to the attributes' shape colour than to their background colour."""
    x = _to01(images)
    c = np.atleast_1d(np.asarray(attrs["colour"]))
    b = np.atleast_1d(np.asarray(attrs["background"]))
    fg = _COLOURS01[c] * np.atleast_1d(np.asarray(attrs.get("brightness", 1.0)))[:, None]
    bg = np.clip(_BACKGROUNDS01[b] + np.atleast_1d(np.asarray(attrs.get("bg_brightness", 0.0)))[:, None], 0, 1)
    dfg = np.linalg.norm(x - fg[:, None, None, :], axis=-1)
    dbg = np.linalg.norm(x - bg[:, None, None, :], axis=-1)
    return dfg < dbg


def evaluate(images, z) -> dict:
    """Compare generated images (N, 32, 32, 3) with the renders of their latents' attributes.

    Returns mean abs pixel error (``mae``, [-1, 1] scale), ``mse``, colour accuracy (pixel-based
    ``dominant_colour`` vs the z colour), mean shape-mask IoU, and ``mae_wrong_colour``: the error of
    the *target* renders against renders of the same attributes with the colour shifted by one
    (a reference scale for ``mae``).
    """
    images = np.asarray(images, np.float64)
    attrs = z_to_attributes(z)
    target = R.render_attributes(attrs).astype(np.float64)
    wrong = dict(attrs, colour=(attrs["colour"] + 1) % N_COLOURS)
    target_wrong = R.render_attributes(wrong).astype(np.float64)
    m_gen = shape_masks(images, attrs)
    m_tgt = shape_masks(target, attrs)
    inter = (m_gen & m_tgt).sum(axis=(1, 2))
    union = np.maximum((m_gen | m_tgt).sum(axis=(1, 2)), 1)
    return {
        "mae": float(np.mean(np.abs(images - target))),
        "mse": float(np.mean(np.square(images - target))),
        "colour_acc": float(np.mean(dominant_colour(images) == attrs["colour"])),
        "iou": float(np.mean(inter / union)),
        "mae_wrong_colour": float(np.mean(np.abs(target_wrong - target))),
    }
