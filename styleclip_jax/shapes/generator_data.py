"""The shapes-world generator's training target: a deterministic rule z -> render attributes.

The tiny shipped StyleGAN2 (``load_generator("shapes")``) is trained so that ``G(z)`` looks like
``render_attributes(z_to_attributes(z))``. The rule reads the *normalised* latent
``x = z / rms(z)`` (exactly what the mapping network sees first), so the target is a function of the
network's input and nothing is left to chance:

==============  =========================================================================
dims            attribute
==============  =========================================================================
0, 1            hue         = ``render.hue_from_uniform(atan2(x1, x0))``: the angle of the pair
                            on the full circle, so hue is a smooth function of z (no colour modes
                            in W; the colour word is the nearest palette hue)
2..5            shape       = argmax(x[2:6])  (circle, square, triangle, ring)
6..12           saturation, brightness, size, cx, cy, rotation, background level
                            = the normal CDFs of x[6..12] across their ranges in ``render``
13..            ignored (the generator should not depend on them)
==============  =========================================================================

With z ~ N(0, I) the CDFs are close to uniform, like the renderer's own sampler, and truncation
towards the mean latent gives mid-range values (mid-sized, centred, upright shapes on mid-grey).
Also here: pixel-based checks of generated images against the rule (``evaluate``).
"""
from __future__ import annotations

import math

import numpy as np

from . import render as R

N_COLOURS = len(R.COLOURS)
N_SHAPES = len(R.SHAPES)
HUE_DIMS = (0, 1)
SHAPE_DIMS = slice(2, 2 + N_SHAPES)
CONTINUOUS_DIMS = slice(6, 13)  # saturation, brightness, size, cx, cy, rotation, background level
MIN_Z_DIM = 13  # the rule needs at least this many latent dims

_erf = np.vectorize(math.erf, otypes=[np.float64])


def normal_cdf(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def normalise_z(z) -> np.ndarray:
    """z / sqrt(mean(z**2) + 1e-8) per row: the mapping network's first operation (float64)."""
    z = np.asarray(z, np.float64)
    return z / np.sqrt(np.mean(np.square(z), axis=-1, keepdims=True) + 1e-8)


def z_to_attributes(z) -> dict:
    """Latents (N, z_dim) (or one (z_dim,) latent) -> attribute dict for ``render.render_attributes``
    (keys and dtypes as ``render.sample_attributes``). A 1-d ``z`` gives 0-d arrays."""
    z = np.asarray(z)
    single = z.ndim == 1
    z = np.atleast_2d(z)
    if z.ndim != 2 or z.shape[1] < MIN_Z_DIM:
        raise ValueError(f"z_to_attributes: z must be (N, >= {MIN_Z_DIM}), got {np.shape(z)}")
    if not np.all(np.isfinite(z)):
        raise ValueError("z_to_attributes: z contains non-finite values")
    x = normalise_z(z)
    angle = np.mod(np.arctan2(x[:, HUE_DIMS[1]], x[:, HUE_DIMS[0]]) / (2.0 * np.pi), 1.0)
    cdf = normal_cdf(x[:, CONTINUOUS_DIMS])  # (N, 7)
    u = np.concatenate([angle[:, None], cdf], axis=1)
    shape = np.argmax(x[:, SHAPE_DIMS], axis=1).astype(np.int64)
    attrs = R.attributes_from_uniforms(u, shape)
    if single:
        attrs = {k: v[0] for k, v in attrs.items()}
    return attrs


def render_z(z) -> np.ndarray:
    """The target images of latents: ``render_attributes(z_to_attributes(z))``, (N, 32, 32, 3) in [-1, 1]."""
    return R.render_attributes(z_to_attributes(z))


def shape_decisive_pixels(attrs: dict) -> np.ndarray:
    """(N, 32, 32) in [0, 1]: where the shapes differ at these attributes, max_k cov_k - min_k cov_k over
    every shape k drawn at the same size, centre and rotation. Training weights these pixels up: equal-area
    shapes differ in few pixels, so a plain pixel loss hardly tells the generator which shape to draw."""
    n = len(np.atleast_1d(attrs["shape"]))
    cov = np.stack([R.coverage(np.full(n, k), *(np.atleast_1d(attrs[key]).astype(np.float64)
                                                  for key in ("size", "cx", "cy", "rotation")),
                                R.IMAGE_SIZE, 2) for k in range(N_SHAPES)])
    return cov.max(0) - cov.min(0)


def evaluate(images, z) -> dict:
    """Compare generated images (N, 32, 32, 3) with the renders of their latents' attributes.

    Returns mean abs pixel error (``mae``, [-1, 1] scale), ``mse``, ``colour_acc`` (pixel metric's dominant
    colour = the rule's colour), ``shape_acc`` (mask metric's shape = the rule's shape), ``hue_err`` (mean
    circular distance in degrees between the images' and the renders' mean hue) and ``iou`` (mean
    shape-mask IoU between image and render).
    """
    from . import metrics as M

    images = np.asarray(images, np.float64)
    attrs = z_to_attributes(z)
    target = R.render_attributes(attrs).astype(np.float64)
    dom = M.dominant_colour_index(images)
    d = np.abs(M.mean_hue(images) - M.mean_hue(target))
    return {
        "mae": float(np.mean(np.abs(images - target))),
        "mse": float(np.mean(np.square(images - target))),
        "colour_acc": float(np.mean(dom == attrs["colour"])),
        "shape_acc": float(np.mean(M.shape_of(images) == attrs["shape"])),
        "hue_err": float(np.nanmean(np.minimum(d, 360.0 - d))),
        "iou": float(np.mean(M.mask_iou(images, target))),
    }
