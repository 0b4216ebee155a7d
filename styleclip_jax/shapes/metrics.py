"""Pixel metrics and zero-shot CLIP classification for the shapes world.

* ``colour_shares(images)`` / ``colour_share(images, colour)``: among the shape (non-background)
  pixels, the fraction whose hue is nearest to each named colour (HSV hue distance, with saturation
  and value thresholds). The background is the dominant border colour (per-channel median of the
  1-pixel border); a pixel is "shape" when it differs from it by more than ``bg_tol``.
* ``dominant_colour(images)``: the named colour with the largest share per image.
* ``mean_hue(images)`` / ``mean_saturation(images)``: circular mean hue and mean saturation of the shape.
* ``shape_of(images)``: the shape (index into SHAPES) whose equal-area render, placed at the mask's
  centroid and best rotation, overlaps the shape mask most (template matching on the mask);
  ``mask_iou(a, b)``: IoU of the shape masks of two image sets.
* ``sample_colour_shares(G, n, colour, seed)``: colour share of ``n`` generator samples.
* ``zero_shot_predict`` / ``zero_shot_accuracy``: CLIP zero-shot classification with the prompts
  "a {colour} shape", "a {shape}", "a shape on a {background} background".
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..shipped import SHAPES_CLIP, is_shapes
from . import render as R
from .render import BACKGROUNDS, COLOUR_HUES, COLOURS, SHAPES

ASSET_DIR = str(SHAPES_CLIP)

ATTRIBUTES = {"colour": COLOURS, "shape": SHAPES, "background": BACKGROUNDS}
PROMPTS = {
    "colour": "a {} shape",
    "shape": "a {}",
    "background": "a shape on a {} background",
}


# ------------------------------------------------------------------------------------------ pixels
def rgb_to_hsv(rgb: np.ndarray):
    """(..., 3) RGB in [0, 1] -> (hue degrees [0, 360), saturation, value), each (...)."""
    rgb = np.asarray(rgb, np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(d > 0, h * 60.0, 0.0) % 360.0
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return h, s, mx


def _to01(images) -> np.ndarray:
    x = np.asarray(images, np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected images (N, H, W, 3) in [-1, 1], got shape {x.shape}")
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def background_colour(images) -> np.ndarray:
    """Dominant border colour (N, 3) in [0, 1]: per-channel median of the 1-pixel image border."""
    x = _to01(images)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], axis=1)  # (N, P, 3)
    return np.median(border, axis=1)


def shape_mask(images, bg_tol: float = 0.15) -> np.ndarray:
    """(N, H, W) bool: pixels that differ from the background colour by more than ``bg_tol`` (max abs
    channel difference, [0, 1] scale)."""
    x = _to01(images)
    bg = background_colour(images)
    return np.abs(x - bg[:, None, None, :]).max(-1) > bg_tol


def nearest_palette_hue(hue):
    """(index into COLOURS of the nearest palette hue, circular distance in degrees) for hues (...) in
    degrees; each (...)."""
    dist = np.abs(np.asarray(hue)[..., None] - COLOUR_HUES)
    dist = np.minimum(dist, 360.0 - dist)
    return dist.argmin(-1), dist.min(-1)


def colour_shares(images, *, sat_min: float = 0.35, val_min: float = 0.25, max_hue_dist: float = 180.0,
                  bg_tol: float = 0.15) -> np.ndarray:
    """(N, len(COLOURS)): for each image, the fraction of its shape pixels assigned to each named colour
    (nearest palette hue, within ``max_hue_dist`` degrees if given, saturation >= ``sat_min``, value >=
    ``val_min``).
    Shape pixels that are not saturated/bright enough count for no colour. An image with no shape
    pixels gets all zeros."""
    x = _to01(images)
    mask = shape_mask(images, bg_tol)
    h, s, v = rgb_to_hsv(x)
    nearest, dist = nearest_palette_hue(h)
    ok = mask & (s >= sat_min) & (v >= val_min) & (dist <= max_hue_dist)
    n_shape = mask.sum(axis=(1, 2)).astype(np.float64)
    out = np.zeros((x.shape[0], len(COLOURS)))
    for k in range(len(COLOURS)):
        out[:, k] = (ok & (nearest == k)).sum(axis=(1, 2))
    return out / np.maximum(n_shape, 1.0)[:, None]


def colour_share(images, colour: str, **kw) -> np.ndarray:
    """(N,) fraction of shape pixels near the named colour's hue (see ``colour_shares``)."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known: {COLOURS}")
    return colour_shares(images, **kw)[:, COLOURS.index(colour)]


def dominant_colour(images, **kw) -> list:
    """Per image, the named colour with the largest share of shape pixels (None if no pixel has any)."""
    sh = colour_shares(images, **kw)
    return [COLOURS[int(k)] if row.max() > 0 else None for k, row in zip(sh.argmax(1), sh)]


def dominant_colour_index(images, **kw) -> np.ndarray:
    """``dominant_colour`` as indices into COLOURS (-1 where no pixel has a colour)."""
    sh = colour_shares(images, **kw)
    return np.where(sh.max(1) > 0, sh.argmax(1), -1)


def _shape_hsv(images, bg_tol: float = 0.15):
    x = _to01(images)
    h, s, v = rgb_to_hsv(x)
    return shape_mask(images, bg_tol), h, s, v


def mean_hue(images, bg_tol: float = 0.15) -> np.ndarray:
    """(N,) circular mean hue (degrees) of the shape pixels, weighted by saturation; NaN without shape pixels."""
    mask, h, s, _ = _shape_hsv(images, bg_tol)
    wgt = mask * s
    t = np.deg2rad(h)
    c, sn = (wgt * np.cos(t)).sum(axis=(1, 2)), (wgt * np.sin(t)).sum(axis=(1, 2))
    out = np.rad2deg(np.arctan2(sn, c)) % 360.0
    return np.where(wgt.sum(axis=(1, 2)) > 0, out, np.nan)


def mean_saturation(images, bg_tol: float = 0.15) -> np.ndarray:
    """(N,) mean HSV saturation of the shape pixels (0 without shape pixels)."""
    mask, _, s, _ = _shape_hsv(images, bg_tol)
    return (mask * s).sum(axis=(1, 2)) / np.maximum(mask.sum(axis=(1, 2)), 1)


def half_contrast_mask(images, min_contrast: float = 0.15) -> np.ndarray:
    """(N, H, W) bool: pixels whose difference from the background colour (max abs channel difference) is more
    than half the image's contrast (the 95th percentile of that difference). On a render this is coverage
    >= 0.5, the shape's true outline; on a soft-edged generated image it is the outline at half height instead
    of the halo ``shape_mask`` also takes in. Empty when the contrast is below ``min_contrast``."""
    x = _to01(images)
    d = np.abs(x - background_colour(images)[:, None, None, :]).max(-1)
    top = np.percentile(d.reshape(len(d), -1), 95, axis=1)[:, None, None]
    return (d > 0.5 * top) & (top > min_contrast)


def mask_iou(a, b, bg_tol: float = 0.15) -> np.ndarray:
    """(N,) IoU of the shape masks of image sets ``a`` and ``b`` (same shape), 1 when both are empty."""
    ma, mb = shape_mask(a, bg_tol), shape_mask(b, bg_tol)
    inter = (ma & mb).sum(axis=(1, 2))
    union = (ma | mb).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


# rotations tried for each shape (degrees; circle and ring look the same at every rotation)
_PERIOD = {"circle": None, "square": 90.0, "triangle": 120.0, "ring": None}
_ROT_STEP = 7.5


def _templates():
    shapes, rots = [], []
    for k, name in enumerate(SHAPES):
        period = _PERIOD[name]
        angles = [0.0] if period is None else list(np.arange(-period / 2, period / 2, _ROT_STEP))
        shapes += [k] * len(angles)
        rots += angles
    return np.array(shapes, np.int64), np.array(rots, np.float64)


def shape_of(images, chunk: int = 64) -> np.ndarray:
    """(N,) index into SHAPES of each image's shape, from its shape mask alone (no colour, no labels).

    Template matching on the ``half_contrast_mask``: its pixel count gives the equal-area size and its centroid the centre;
    every shape is rendered there (squares and triangles at rotations ``_ROT_STEP`` degrees apart over
    their period) and the shape of the template with the highest IoU with the mask wins. -1 for an
    image without shape pixels.
    """
    mask = half_contrast_mask(images)
    n, hgt, wid = mask.shape
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    yy, xx = np.mgrid[0:hgt, 0:wid] + 0.5
    safe = np.maximum(area, 1.0)
    cy = (mask * yy).sum(axis=(1, 2)) / safe
    cx = (mask * xx).sum(axis=(1, 2)) / safe
    size = np.sqrt(safe / np.pi)
    t_shape, t_rot = _templates()
    k = len(t_shape)
    out = np.full(n, -1, np.int64)
    for i in range(0, n, chunk):
        sl = slice(i, min(n, i + chunk))
        m = sl.stop - sl.start
        rep = lambda a: np.repeat(a[sl], k)  # noqa: E731
        cov = R.coverage(np.tile(t_shape, m), rep(size), rep(cx), rep(cy), np.tile(t_rot, m), hgt, 2)
        tmpl = cov.reshape(m, k, hgt, wid) >= 0.5
        mk = mask[sl][:, None]
        iou = (tmpl & mk).sum(axis=(2, 3)) / np.maximum((tmpl | mk).sum(axis=(2, 3)), 1)
        out[sl] = t_shape[np.argmax(iou, axis=1)]
    out[area == 0] = -1
    return out


def _z_dim(G) -> int:
    for name in ("z_dim", "style_dim", "latent_dim", "w_dim"):
        val = getattr(G, name, None)
        if isinstance(val, (int, np.integer)):
            return int(val)
    raise AttributeError("generator has no z_dim/style_dim attribute")


def generate_images(G, n: int, seed: int = 0, truncation_psi: float = 1.0, batch_size: int = 64) -> np.ndarray:
    """``n`` samples (N, H, W, 3) from ``G.synthesis(G.mapping(z, truncation_psi=psi), noise_mode='const')``
    with z ~ N(0, I) from ``numpy.random.default_rng(seed)``; NCHW outputs are transposed to NHWC."""
    import jax.numpy as jnp

    z = np.random.default_rng(seed).standard_normal((n, _z_dim(G))).astype(np.float32)
    out = []
    for i in range(0, n, batch_size):
        ws = G.mapping(jnp.asarray(z[i:i + batch_size]), truncation_psi=truncation_psi)
        img = np.asarray(G.synthesis(ws, noise_mode="const"), np.float32)
        if img.ndim == 4 and img.shape[1] == 3 and img.shape[-1] != 3:
            img = img.transpose(0, 2, 3, 1)
        out.append(img)
    return np.concatenate(out, 0)


def sample_colour_shares(G, n: int, colour: str, seed: int = 0, truncation_psi: float = 1.0,
                         batch_size: int = 64) -> np.ndarray:
    """(n,) ``colour_share`` of ``n`` generator samples (see ``generate_images``)."""
    return colour_share(generate_images(G, n, seed, truncation_psi, batch_size), colour)


# ------------------------------------------------------------------------------------ zero-shot CLIP
def load_shapes_clip(path: str | None = None):
    """The packaged tiny CLIP as ``(FlaxCLIPModel, tokenizer)`` straight from the folder (no network)."""
    from transformers import CLIPTokenizer, FlaxCLIPModel

    path = path or ASSET_DIR
    return FlaxCLIPModel.from_pretrained(path, local_files_only=True), CLIPTokenizer.from_pretrained(path, local_files_only=True)


def _encoders(clip):
    """-> (encode_images(images NHWC [-1,1]) -> (N, D) unit, encode_texts(list[str]) -> (T, D) unit)."""
    if isinstance(clip, (str, os.PathLike)):
        try:
            from styleclip_jax.models.clip import load_clip
        except ImportError:
            clip = load_shapes_clip(None if is_shapes(os.fspath(clip)) else os.fspath(clip))
        else:
            clip = load_clip(os.fspath(clip))
    if hasattr(clip, "encode_images") and hasattr(clip, "encode_texts"):  # styleclip_jax.models.clip.CLIP
        def unit(x):
            x = np.asarray(x, np.float64)
            return x / np.linalg.norm(x, axis=-1, keepdims=True)
        return (lambda im: unit(clip.encode_images(im))), (lambda t: unit(clip.encode_texts(list(t))))
    model, tok = clip  # (FlaxCLIPModel, tokenizer): pixels fed as they are (image_size = render size)

    def enc_img(images):
        x = np.asarray(images, np.float32)
        if x.shape[1] != model.config.vision_config.image_size:
            raise ValueError(f"images are {x.shape[1]} px but the CLIP model takes "
                             f"{model.config.vision_config.image_size} px; use styleclip_jax.clip for resizing")
        f = np.asarray(model.get_image_features(x.transpose(0, 3, 1, 2)), np.float64)
        return f / np.linalg.norm(f, axis=-1, keepdims=True)

    def enc_txt(texts):
        enc = tok(list(texts), padding=True, return_tensors="np")
        if tok.unk_token_id in enc["input_ids"]:
            raise ValueError(f"out-of-vocabulary word in {list(texts)}")
        f = np.asarray(model.get_text_features(enc["input_ids"], enc["attention_mask"]), np.float64)
        return f / np.linalg.norm(f, axis=-1, keepdims=True)

    return enc_img, enc_txt


def _label_indices(labels, attribute: str) -> np.ndarray:
    names = ATTRIBUTES[attribute]
    if len(labels) and isinstance(labels[0], dict):
        labels = [lab[attribute] for lab in labels]
    arr = np.asarray(labels)
    if arr.dtype.kind in "US":
        return np.array([names.index(str(v)) for v in arr])
    return arr.astype(np.int64)


def zero_shot_predict(clip: Any, images, attribute: str, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices (into ``ATTRIBUTES[attribute]``) for images (N, H, W, 3) in [-1, 1].

    ``clip``: a ``styleclip_jax.models.clip.CLIP`` (or anything with ``encode_images``/``encode_texts``), a
    name/path for ``styleclip_jax.models.clip.load_clip`` (e.g. ``"shapes"``), or ``(FlaxCLIPModel, tokenizer)``.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {tuple(ATTRIBUTES)}, got {attribute!r}")
    enc_img, enc_txt = _encoders(clip)
    txt = enc_txt([PROMPTS[attribute].format(v) for v in ATTRIBUTES[attribute]])
    images = np.asarray(images, np.float32)
    preds = [np.argmax(enc_img(images[i:i + batch_size]) @ txt.T, axis=1) for i in range(0, len(images), batch_size)]
    return np.concatenate(preds)


def zero_shot_accuracy(clip: Any, images, labels: Sequence, attribute: str, batch_size: int = 256) -> float:
    """Zero-shot accuracy on ``attribute`` ("colour", "shape" or "background"); ``labels`` are render
    label dicts, names, or indices."""
    pred = zero_shot_predict(clip, images, attribute, batch_size)
    return float(np.mean(pred == _label_indices(labels, attribute)))


# ------------------------------------------------------------------------------------ edit outcomes
def edit_report(source, edited) -> dict:
    """Per-image outcome of an edit, from pixels and masks only: source images (N, H, W, 3) -> edited ones.

    Returns arrays (N,): ``colour_before``/``colour_after`` (dominant colour index, -1 none),
    ``shape_before``/``shape_after`` (mask metric, index into SHAPES), ``iou`` (shape masks of source and
    edit), ``saturation_ratio`` (mean shape saturation after / before), ``hue_shift`` (degrees, circular).
    """
    source, edited = np.asarray(source), np.asarray(edited)
    if source.shape != edited.shape:
        raise ValueError(f"edit_report: source {source.shape} and edited {edited.shape} differ in shape")
    hb, ha = mean_hue(source), mean_hue(edited)
    d = np.abs(ha - hb)
    return {
        "colour_before": dominant_colour_index(source), "colour_after": dominant_colour_index(edited),
        "shape_before": shape_of(source), "shape_after": shape_of(edited),
        "iou": mask_iou(source, edited),
        "saturation_ratio": mean_saturation(edited) / np.maximum(mean_saturation(source), 1e-6),
        "hue_shift": np.minimum(d, 360.0 - d),
    }
