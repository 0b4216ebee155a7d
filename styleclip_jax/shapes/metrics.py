"""Pixel metrics and zero-shot CLIP classification for the shapes world.

* ``colour_shares(images)`` / ``colour_share(images, colour)``: among the shape (non-background)
  pixels, the fraction whose hue is nearest to each named colour (HSV hue distance, with saturation
  and value thresholds). The background is the dominant border colour (per-channel median of the
  1-pixel border); a pixel is "shape" when it differs from it by more than ``bg_tol``.
* ``dominant_colour(images)``: the named colour with the largest share per image.
* ``sample_colour_shares(G, n, colour, seed)``: colour share of ``n`` generator samples.
* ``zero_shot_predict`` / ``zero_shot_accuracy``: CLIP zero-shot classification with the prompts
  "a {colour} shape", "a {shape}", "a shape on a {background} background".
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..shipped import SHAPES_CLIP, is_shapes
from .render import BACKGROUNDS, COLOUR_RGB, COLOURS, SHAPES

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


COLOUR_HUES = np.array([rgb_to_hsv(np.array(COLOUR_RGB[c]))[0] for c in COLOURS])


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


def colour_shares(images, *, sat_min: float = 0.35, val_min: float = 0.25, max_hue_dist: float = 30.0,
                  bg_tol: float = 0.15) -> np.ndarray:
    """(N, len(COLOURS)): for each image, the fraction of its shape pixels assigned to each named colour
    (nearest palette hue within ``max_hue_dist`` degrees, saturation >= ``sat_min``, value >= ``val_min``).
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
