"""Procedural "shapes world": one anti-aliased shape on a plain grey background, 32x32 RGB.

Everything is numpy and deterministic from a seed (``numpy.random.default_rng``).

* ``sample_attributes(rng, n)``  -> dict of per-image attribute arrays
* ``render_attributes(attrs)``   -> images (N, H, W, 3) float32 in [-1, 1]
* ``render(seed)``               -> (image HWC float32 in [-1, 1], caption, labels dict)
* ``render_batch(seeds)``        -> (images NHWC, captions list, labels list)

What varies, and how (continuous where nature is continuous):

==============  ==============================================================================
attribute       range
==============  ==============================================================================
hue             the full circle, degrees. ``hue_from_uniform`` warps a uniform angle so that each
                palette colour (the CLIP's six colour words) is named equally often; the name
                of a hue is the nearest palette hue (``colour`` = its index into COLOURS)
saturation      0.75 - 0.95 (HSV)
brightness      0.85 - 1.0 (HSV value)
shape           circle, square, triangle, ring (categorical; equal area at equal ``size``)
size            5.5 - 8.5 px: the radius of the circle of the same area
rotation        -30 - +30 degrees (counter-clockwise on screen)
cx, cy          within ``JITTER`` px of the centre, shape kept ``MARGIN`` px inside the canvas
bg_level        grey level 0.05 - 0.95; named by the nearest of the tones in BACKGROUND_RGB
==============  ==============================================================================

Shapes are rasterised on a 4x supersampled grid and box-downsampled (anti-aliasing).
"""
from __future__ import annotations

import numpy as np

IMAGE_SIZE = 32
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "ring")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUNDS = ("white", "black", "gray")

# The palette: the RGB a colour word stands for. Only its hue is used to name rendered hues.
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
BG_LEVELS = np.array([BACKGROUND_RGB[b][0] for b in BACKGROUNDS])

SIZE_RANGE = (5.5, 8.5)  # radius (px) of the circle with the shape's area
ROTATION_RANGE = (-30.0, 30.0)  # degrees
SATURATION_RANGE = (0.75, 0.95)
BRIGHTNESS_RANGE = (0.85, 1.0)
BG_LEVEL_RANGE = (0.05, 0.95)
MARGIN = 1.0  # min distance (px) between the shape's circumscribed circle and the image border
JITTER = 4.0  # max offset (px) of the shape centre from the image centre

# Shape geometry relative to size r (equal area pi r^2):
_SQ = np.sqrt(np.pi) / 2.0  # square half side = 0.886 r
_TRI_SIDE = np.sqrt(4.0 * np.pi / np.sqrt(3.0))  # equilateral side = 2.694 r
_TRI_H = np.sqrt(3.0) / 2.0 * _TRI_SIDE  # height = 2.333 r
_RING_OUT, _RING_IN = 1.25, 0.75  # ring radii: area pi (1.25^2 - 0.75^2) r^2 = pi r^2
# circumradius of each shape about its centre (centroid for the triangle), in units of r
CIRCUMRADIUS = np.array([1.0, _SQ * np.sqrt(2.0), _TRI_SIDE / np.sqrt(3.0), _RING_OUT])


def _rgb_to_hue(rgb) -> float:
    r, g, b = rgb
    mx, mn = max(rgb), min(rgb)
    d = mx - mn
    if mx == r:
        h = ((g - b) / d) % 6.0
    elif mx == g:
        h = (b - r) / d + 2.0
    else:
        h = (r - g) / d + 4.0
    return (h * 60.0) % 360.0


COLOUR_HUES = np.array([_rgb_to_hue(COLOUR_RGB[c]) for c in COLOURS])  # red 0, green 125, blue 226, ...
# the palette in hue order round the circle (red, orange, yellow, green, blue, purple)
_CIRCLE_ORDER = np.argsort(COLOUR_HUES)
_ANCHOR_U = np.arange(len(COLOURS) + 1) * 360.0 / len(COLOURS)
_ANCHOR_HUE = np.append(COLOUR_HUES[_CIRCLE_ORDER], COLOUR_HUES[_CIRCLE_ORDER[0]] + 360.0)


def hue_from_uniform(u_deg) -> np.ndarray:
    """Uniform angle (degrees) -> hue (degrees, [0, 360)): piecewise linear, palette hue k of the circle
    order at angle 60 k, so each palette colour is the nearest hue for about a sixth of the angles."""
    return np.interp(np.mod(u_deg, 360.0), _ANCHOR_U, _ANCHOR_HUE) % 360.0


def nearest_palette(hue) -> np.ndarray:
    """Index into COLOURS of the palette hue nearest (circularly) to each hue in degrees."""
    d = np.abs(np.asarray(hue, np.float64)[..., None] - COLOUR_HUES)
    return np.argmin(np.minimum(d, 360.0 - d), axis=-1).astype(np.int64)


def nearest_background(level) -> np.ndarray:
    """Index into BACKGROUNDS of the tone nearest to each grey level."""
    return np.argmin(np.abs(np.asarray(level, np.float64)[..., None] - BG_LEVELS), axis=-1).astype(np.int64)


def hsv_to_rgb(h, s, v) -> np.ndarray:
    """Hue (degrees), saturation, value arrays (...) -> RGB (..., 3) in [0, 1]."""
    h = np.mod(np.asarray(h, np.float64), 360.0) / 60.0
    s, v = np.asarray(s, np.float64), np.asarray(v, np.float64)
    k = np.stack([(5.0 + h) % 6.0, (3.0 + h) % 6.0, (1.0 + h) % 6.0], axis=-1)
    return v[..., None] - (v * s)[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


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


def _lerp(rng_pair, u):
    lo, hi = rng_pair
    return lo + (hi - lo) * np.asarray(u, np.float64)


def place_centre(shape, size, ux, uy):
    """Shape centres (cx, cy), each (N,) pixels, from uniforms ``ux``, ``uy`` in [0, 1]: within ``JITTER`` px
    of the image centre, and keeping the shape's circumscribed circle ``MARGIN`` px inside the canvas."""
    reach = CIRCUMRADIUS[np.asarray(shape)] * np.asarray(size, np.float64)
    mid = IMAGE_SIZE / 2.0
    half = np.clip(np.minimum(JITTER, mid - MARGIN - reach), 0.0, None)
    return mid + (2.0 * np.asarray(ux) - 1.0) * half, mid + (2.0 * np.asarray(uy) - 1.0) * half


def attributes_from_uniforms(u: np.ndarray, shape) -> dict:
    """The attribute dict from uniforms ``u`` (N, 8) in [0, 1] (hue angle, saturation, brightness, size,
    cx, cy, rotation, background level, in that order) and shape indices (N,). ``sample_attributes`` and
    the generator's rule (``generator_data.z_to_attributes``) both go through here."""
    u = np.asarray(u, np.float64)
    shape = np.asarray(shape, np.int64)
    hue = hue_from_uniform(360.0 * u[:, 0])
    size = _lerp(SIZE_RANGE, u[:, 3])
    cx, cy = place_centre(shape, size, u[:, 4], u[:, 5])
    bg_level = _lerp(BG_LEVEL_RANGE, u[:, 7])
    return {
        "colour": nearest_palette(hue),
        "shape": shape,
        "background": nearest_background(bg_level),
        "hue": hue,
        "saturation": _lerp(SATURATION_RANGE, u[:, 1]),
        "brightness": _lerp(BRIGHTNESS_RANGE, u[:, 2]),
        "size": size,
        "cx": cx,
        "cy": cy,
        "rotation": _lerp(ROTATION_RANGE, u[:, 6]),
        "bg_level": bg_level,
    }


def sample_attributes(rng, n: int | None = None, *, colour=None, shape=None, background=None) -> dict:
    """Draw attributes for ``n`` images (or one image, as 0-d arrays, if ``n`` is None).

    ``colour``/``shape``/``background`` may fix an attribute by name or index (scalar or per-image): a fixed
    colour draws its palette hue, a fixed background its tone. Returns a dict of numpy arrays: colour,
    shape, background (int indices; colour and background name the hue and grey level), hue,
    saturation, brightness, size, cx, cy, rotation, bg_level.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    m = 1 if n is None else int(n)
    # fixed order of draws, so fixing one attribute does not shift the others
    u = rng.random(size=(m, 8))
    s = rng.integers(0, len(SHAPES), size=m)
    if shape is not None:
        s = np.broadcast_to(_index(shape, SHAPES), (m,)).copy()
    attrs = attributes_from_uniforms(u, s)
    if colour is not None:
        c = np.broadcast_to(_index(colour, COLOURS), (m,)).copy()
        attrs.update(colour=c, hue=COLOUR_HUES[c].copy())
    if background is not None:
        b = np.broadcast_to(_index(background, BACKGROUNDS), (m,)).copy()
        attrs.update(background=b, bg_level=BG_LEVELS[b].copy())
    if n is None:
        attrs = {k: v[0] for k, v in attrs.items()}
    return attrs


_DEFAULTS = {"size": 7.0, "cx": IMAGE_SIZE / 2.0, "cy": IMAGE_SIZE / 2.0, "rotation": 0.0,
             "saturation": 0.85, "brightness": 0.95}


def coverage(shape, size, cx, cy, rotation, image_size, ss):
    """Anti-aliased coverage (N, H, W) in [0, 1]."""
    n = shape.shape[0]
    g = (np.arange(image_size * ss, dtype=np.float64) + 0.5) / ss  # sub-pixel centres in pixel units
    gx = g[None, None, :] - cx[:, None, None]  # (N, 1, W')
    gy = g[None, :, None] - cy[:, None, None]  # (N, H', 1)
    # shape frame: rotate the grid by -rotation (screen y grows downwards, so "counter-clockwise" is -y)
    t = np.deg2rad(rotation)[:, None, None]
    c, s = np.cos(t), np.sin(t)
    dx = c * gx - s * gy
    dy = s * gx + c * gy
    r = size[:, None, None]
    rr = dx * dx + dy * dy
    circle = rr <= r * r
    h = _SQ * r
    square = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    # equilateral triangle, apex up, centroid at the centre
    top = -2.0 * _TRI_H / 3.0 * r
    bottom = _TRI_H / 3.0 * r
    half = _TRI_SIDE / 2.0 * r
    tri = (dy <= bottom) & (np.abs(dx) <= half * (dy - top) / (bottom - top))
    ring = (rr <= (_RING_OUT * r) ** 2) & (rr >= (_RING_IN * r) ** 2)
    sel = shape[:, None, None]
    mask = np.select([sel == 0, sel == 1, sel == 2], [circle, square, tri], ring)
    return mask.reshape(n, image_size, ss, image_size, ss).mean(axis=(2, 4))


def render_layers(attrs: dict, image_size: int = IMAGE_SIZE, chunk: int = 512):
    """The layers an image is composed of: (coverage (N, H, W) in [0, 1], shape RGB (N, 3), background
    RGB (N, 3), both in [0, 1]). ``compose_layers`` of them is ``render_attributes(attrs)``.

    The shape colour is HSV(hue, saturation, brightness); without ``hue`` the palette hue of ``colour``
    is used; without ``bg_level`` the tone of ``background``."""
    s = np.atleast_1d(_index(attrs["shape"], SHAPES))
    if "hue" in attrs:
        hue = np.atleast_1d(np.asarray(attrs["hue"], np.float64))
    else:
        hue = COLOUR_HUES[np.atleast_1d(_index(attrs["colour"], COLOURS))]
    if "bg_level" in attrs:
        level = np.atleast_1d(np.asarray(attrs["bg_level"], np.float64))
    else:
        level = BG_LEVELS[np.atleast_1d(_index(attrs["background"], BACKGROUNDS))]
    n = max([len(s), len(hue), len(level)] + [np.size(attrs[k]) for k in _DEFAULTS if k in attrs])
    s, hue, level = (np.broadcast_to(a, (n,)) for a in (s, hue, level))
    cont = {k: np.broadcast_to(np.atleast_1d(np.asarray(attrs.get(k, v), np.float64)), (n,)) for k, v in _DEFAULTS.items()}
    scale = image_size / IMAGE_SIZE  # positions/sizes are expressed on the 32-px canvas
    cov = np.empty((n, image_size, image_size), np.float64)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        cov[sl] = coverage(s[sl], cont["size"][sl] * scale, cont["cx"][sl] * scale, cont["cy"][sl] * scale,
                            cont["rotation"][sl], image_size, SUPERSAMPLE)
    fg = hsv_to_rgb(hue, cont["saturation"], cont["brightness"])
    bg = np.repeat(np.clip(level, 0.0, 1.0)[:, None], 3, axis=1)
    return cov, fg, bg


def compose_layers(cov, fg, bg) -> np.ndarray:
    """Coverage (N, H, W), shape and background RGB (N, 3) in [0, 1] -> images (N, H, W, 3) float32 in [-1, 1]."""
    cov = np.asarray(cov, np.float64)[..., None]
    fg = np.asarray(fg, np.float64)[:, None, None, :]
    bg = np.asarray(bg, np.float64)[:, None, None, :]
    return ((bg * (1.0 - cov) + fg * cov) * 2.0 - 1.0).astype(np.float32)


def render_attributes(attrs: dict, image_size: int = IMAGE_SIZE, chunk: int = 512) -> np.ndarray:
    """Render attributes (as from ``sample_attributes``; names or indices accepted for the categorical
    ones; missing continuous ones default to a centred, mid-sized, upright shape) to images
    (N, H, W, 3) float32 in [-1, 1]. A 0-d attribute dict gives a single (H, W, 3) image."""
    single = all(np.ndim(v) == 0 for v in attrs.values())
    out = compose_layers(*render_layers(attrs, image_size, chunk))
    return out[0] if single else out


def labels_for(attrs: dict, i: int | None = None) -> dict:
    """Labels dict of one image (index ``i`` of a batched attribute dict, or a 0-d dict)."""
    get = (lambda k: attrs[k]) if i is None else (lambda k: np.asarray(attrs[k])[i])
    c, s, b = int(get("colour")), int(get("shape")), int(get("background"))
    out = {"colour": COLOURS[c], "shape": SHAPES[s], "background": BACKGROUNDS[b],
           "colour_idx": c, "shape_idx": s, "background_idx": b}
    out.update({k: float(get(k)) for k in ("hue", "saturation", "brightness", "size", "cx", "cy", "rotation",
                                          "bg_level") if k in attrs})
    return out


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
