"""Procedural "shapes world": one anti-aliased shape on a plain background, 32x32 RGB.

Everything is numpy and deterministic from a seed (``numpy.random.default_rng``).

* ``sample_attributes(rng, n)``  -> dict of per-image attribute arrays
* ``render_attributes(attrs)``   -> images (N, H, W, 3) float32 in [-1, 1]
* ``render(seed)``               -> (image HWC float32 in [-1, 1], caption, labels dict)
* ``render_batch(seeds)``        -> (images NHWC, captions list, labels list)

Shapes are drawn with equal area at equal ``size`` (a circle of radius ``size``, a square and an
equilateral triangle of the same area), so pixel count does not give the shape away.
Shapes are rasterised on a 4x supersampled grid and box-downsampled (anti-aliasing).
"""
from __future__ import annotations

import numpy as np

IMAGE_SIZE = 32
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUNDS = ("white", "black", "gray")

# Base RGB in [0, 1]. Hues: red 0, orange ~32, yellow ~57, green ~125, blue ~226, purple ~283 deg.
COLOUR_RGB = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.15),
    "blue": (0.10, 0.25, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "purple": (0.60, 0.15, 0.80),
    "orange": (1.00, 0.55, 0.05),
}
BACKGROUND_RGB = {
    "white": (0.95, 0.95, 0.95),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
}
_COLOUR_ARR = np.array([COLOUR_RGB[c] for c in COLOURS], np.float64)
_BG_ARR = np.array([BACKGROUND_RGB[b] for b in BACKGROUNDS], np.float64)

SIZE_RANGE = (5.0, 9.0)  # "radius" in output pixels (circle radius; others have equal area)
MARGIN = 1.0  # min distance (px) between the shape's bounding box and the image border
JITTER = 5.0  # max offset (px) of the shape centre from the image centre (also kept inside MARGIN)

# Shape geometry relative to size r (equal area pi r^2):
_SQ = np.sqrt(np.pi) / 2.0  # square half side  = 0.886 r
_TRI_SIDE = np.sqrt(4.0 * np.pi / np.sqrt(3.0))  # equilateral side = 2.694 r
_TRI_H = np.sqrt(3.0) / 2.0 * _TRI_SIDE  # height = 2.333 r
# bounding box offsets from the centre (centroid for the triangle), in units of r:
# (x_half_extent, y_up_extent, y_down_extent)
_EXTENTS = np.array([
    [1.0, 1.0, 1.0],  # circle
    [_SQ, _SQ, _SQ],  # square
    [_TRI_SIDE / 2.0, 2.0 * _TRI_H / 3.0, _TRI_H / 3.0],  # triangle (apex up)
])


def _index(value, names):
    """Name(s) or index(es) -> int array of indices into ``names``."""
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        flat = [names.index(str(v)) for v in arr.reshape(-1)]
        return np.asarray(flat, np.int64).reshape(arr.shape)
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= len(names)):
        raise ValueError(f"index out of range for {names}: {arr}")
    return arr


def caption_for(colour: str, shape: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


def place_centre(shape, size, ux, uy, jitter: float | None = JITTER):
    """Shape centres (cx, cy), each (N,) pixels, from uniforms ``ux``, ``uy`` in [0, 1]: the range that keeps
    the shape's bounding box ``MARGIN`` px inside the canvas, narrowed to ``jitter`` px around the image
    centre (``None``: not narrowed). ``shape`` (N,) indices, ``size`` (N,) radii."""
    ext = _EXTENTS[shape] * size[:, None]
    lo_x, hi_x = MARGIN + ext[:, 0], IMAGE_SIZE - MARGIN - ext[:, 0]
    lo_y, hi_y = MARGIN + ext[:, 1], IMAGE_SIZE - MARGIN - ext[:, 2]
    if jitter is not None:
        mid = IMAGE_SIZE / 2.0
        lo_x, hi_x = np.maximum(lo_x, mid - jitter), np.minimum(hi_x, mid + jitter)
        lo_y, hi_y = np.maximum(lo_y, mid - jitter), np.minimum(hi_y, mid + jitter)
    return lo_x + ux * (hi_x - lo_x), lo_y + uy * (hi_y - lo_y)


def sample_attributes(rng, n: int | None = None, *, colour=None, shape=None, background=None) -> dict:
    """Draw attributes for ``n`` images (or one image, as 0-d arrays, if ``n`` is None).

    ``colour``/``shape``/``background`` may fix a categorical attribute (name or index, scalar or
    per-image array); the remaining ones are drawn. Returns a dict of numpy arrays:
    colour, shape, background (int indices), size, cx, cy (pixels), brightness, bg_brightness.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    m = 1 if n is None else int(n)
    # Draw everything (fixed order of draws, so fixing one attribute does not shift the others).
    c = rng.integers(0, len(COLOURS), size=m)
    s = rng.integers(0, len(SHAPES), size=m)
    b = rng.integers(0, len(BACKGROUNDS), size=m)
    size = rng.uniform(*SIZE_RANGE, size=m)
    ux = rng.random(size=m)
    uy = rng.random(size=m)
    brightness = rng.uniform(0.85, 1.0, size=m)
    bg_brightness = rng.uniform(-0.03, 0.03, size=m)
    if colour is not None:
        c = np.broadcast_to(_index(colour, COLOURS), (m,)).copy()
    if shape is not None:
        s = np.broadcast_to(_index(shape, SHAPES), (m,)).copy()
    if background is not None:
        b = np.broadcast_to(_index(background, BACKGROUNDS), (m,)).copy()
    cx, cy = place_centre(s, size, ux, uy)
    attrs = {
        "colour": c,
        "shape": s,
        "background": b,
        "size": size,
        "cx": cx,
        "cy": cy,
        "brightness": brightness,
        "bg_brightness": bg_brightness,
    }
    if n is None:
        attrs = {k: v[0] for k, v in attrs.items()}
    return attrs


_DEFAULTS = {"size": 7.0, "cx": IMAGE_SIZE / 2.0, "cy": IMAGE_SIZE / 2.0, "brightness": 1.0, "bg_brightness": 0.0}


def _coverage(shape, size, cx, cy, image_size, ss):
    """Anti-aliased coverage (N, H, W) in [0, 1]."""
    n = shape.shape[0]
    g = (np.arange(image_size * ss, dtype=np.float64) + 0.5) / ss  # sub-pixel centres in pixel units
    dx = g[None, None, :] - cx[:, None, None]  # (N, 1, W')
    dy = g[None, :, None] - cy[:, None, None]  # (N, H', 1)
    r = size[:, None, None]
    circle = dx * dx + dy * dy <= r * r
    h = _SQ * r
    square = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    # equilateral triangle, apex up (image y grows downwards), centroid at (cx, cy)
    top = -2.0 * _TRI_H / 3.0 * r
    bottom = _TRI_H / 3.0 * r
    half = _TRI_SIDE / 2.0 * r
    # at height dy the half-width is half * (dy - top) / (bottom - top)
    tri = (dy <= bottom) & (np.abs(dx) <= half * (dy - top) / (bottom - top))
    sel = shape[:, None, None]
    mask = np.where(sel == 0, circle, np.where(sel == 1, square, tri))
    return mask.reshape(n, image_size, ss, image_size, ss).mean(axis=(2, 4))


def render_layers(attrs: dict, image_size: int = IMAGE_SIZE, chunk: int = 512):
    """The layers an image is composed of: (coverage (N, H, W) in [0, 1], shape RGB (N, 3), background
    RGB (N, 3), both in [0, 1]). ``compose_layers`` of them is ``render_attributes(attrs)``."""
    c = np.atleast_1d(_index(attrs["colour"], COLOURS))
    s = np.atleast_1d(_index(attrs["shape"], SHAPES))
    b = np.atleast_1d(_index(attrs["background"], BACKGROUNDS))
    n = max(len(c), len(s), len(b))
    c, s, b = (np.broadcast_to(a, (n,)) for a in (c, s, b))
    cont = {k: np.broadcast_to(np.atleast_1d(np.asarray(attrs.get(k, v), np.float64)), (n,)) for k, v in _DEFAULTS.items()}
    scale = image_size / IMAGE_SIZE  # positions/sizes are expressed on the 32-px canvas
    cov = np.empty((n, image_size, image_size), np.float64)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        cov[sl] = _coverage(s[sl], cont["size"][sl] * scale, cont["cx"][sl] * scale, cont["cy"][sl] * scale,
                            image_size, SUPERSAMPLE)
    fg = _COLOUR_ARR[c] * cont["brightness"][:, None]
    bg = np.clip(_BG_ARR[b] + cont["bg_brightness"][:, None], 0.0, 1.0)
    return cov, fg, bg


def compose_layers(cov, fg, bg) -> np.ndarray:
    """Coverage (N, H, W), shape and background RGB (N, 3) in [0, 1] -> images (N, H, W, 3) float32 in [-1, 1]."""
    cov = np.asarray(cov, np.float64)[..., None]
    fg = np.asarray(fg, np.float64)[:, None, None, :]
    bg = np.asarray(bg, np.float64)[:, None, None, :]
    return ((bg * (1.0 - cov) + fg * cov) * 2.0 - 1.0).astype(np.float32)


def render_attributes(attrs: dict, image_size: int = IMAGE_SIZE, chunk: int = 512) -> np.ndarray:
    """Render attributes (as from ``sample_attributes``; names or indices accepted for the categorical
    ones; missing continuous ones default to a centred, mid-sized, full-brightness shape) to images
    (N, H, W, 3) float32 in [-1, 1]. A 0-d attribute dict gives a single (H, W, 3) image."""
    single = np.ndim(attrs["colour"]) == 0
    out = compose_layers(*render_layers(attrs, image_size, chunk))
    return out[0] if single else out


def labels_for(attrs: dict, i: int | None = None) -> dict:
    """Labels dict of one image (index ``i`` of a batched attribute dict, or a 0-d dict)."""
    get = (lambda k: attrs[k]) if i is None else (lambda k: np.asarray(attrs[k])[i])
    c, s, b = int(get("colour")), int(get("shape")), int(get("background"))
    return {
        "colour": COLOURS[c], "shape": SHAPES[s], "background": BACKGROUNDS[b],
        "colour_idx": c, "shape_idx": s, "background_idx": b,
        "size": float(get("size")), "cx": float(get("cx")), "cy": float(get("cy")),
        "brightness": float(get("brightness")), "bg_brightness": float(get("bg_brightness")),
    }


def render(seed: int):
    """One image from a seed: (image (32, 32, 3) float32 in [-1, 1], caption, labels dict)."""
    attrs = sample_attributes(np.random.default_rng(seed))
    labels = labels_for(attrs)
    return render_attributes(attrs), caption_for(labels["colour"], labels["shape"], labels["background"]), labels


def attributes_for_seeds(seeds) -> dict:
    """Batched attribute dict, image i drawn exactly as ``render(seeds[i])`` draws it."""
    per = [sample_attributes(np.random.default_rng(int(sd))) for sd in seeds]
    return {k: np.array([p[k] for p in per]) for k in per[0]} if per else sample_attributes(0, 0)


def render_batch(seeds):
    """Vectorised ``render`` over seeds: (images (N, 32, 32, 3), captions, labels list);
    image i equals ``render(seeds[i])[0]``."""
    attrs = attributes_for_seeds(seeds)
    images = render_attributes(attrs)
    labels = [labels_for(attrs, i) for i in range(len(seeds))]
    captions = [caption_for(l["colour"], l["shape"], l["background"]) for l in labels]
    return images, captions, labels
