"""CLIP for StyleCLIP: loading, differentiable image path, the StyleCLIP loss and text directions.

Two backends compute the same embeddings from the same parameter tree (Hugging Face's Flax CLIP layout):
``"native"`` (default; ``models/clip_net.py`` + ``models/clip_tokenizer.py``, weights read by
``checkpoints/hf_clip.py`` -- no transformers, no torch for safetensors/msgpack) and ``"transformers"``
(``FlaxCLIPModel``, transformers 4.x, ``models/clip_transformers.py``). ``CLIP.module`` is a
``clip_net.CLIPNet`` or a ``FlaxCLIPModel``; both offer ``config``, ``get_image_features`` and
``get_text_features``, which is all this module uses. Everything the editing methods
need is available as pure functions of ``(params, ...)`` so they can be jitted, vmapped, sharded and
differentiated with the CLIP weights passed as arguments (not baked into the program as constants):

* :func:`image_features` -- generator images (NHWC, float32, about [-1, 1]) -> (N, D) unit vectors;
* :func:`text_features` -- token ids -> (T, D) unit vectors;
* :func:`clip_loss` -- StyleCLIP's ``1 - logit / 100`` of shape (N, T);
* :func:`template_average`, :func:`text_direction_from_embeddings` -- global-direction text maths.

:func:`load_clip` returns a :class:`CLIP` object bundling the module, its tokenizer and the
parameters. It is a pytree whose only leaves are the parameters, so it can be passed through
``jax.jit`` / ``jax.grad`` like any other argument.

Image pre-processing (``preprocess=``):

* ``"official"`` (default): exactly what StyleCLIP's ``criteria/clip_loss.py`` does -- nearest upsampling
  x7, then average pooling with kernel = stride = ``7 * size / image_size`` (``size // 32`` for the
  224-px ViT-B/32), and **no** CLIP mean/std normalisation: the [-1, 1] pixels go straight into CLIP.
  It is the default because it reproduces StyleCLIP's numbers (latent optimisation and mapper
  training were tuned with it). It requires ``7 * size`` to be a multiple of the model's image size,
  e.g. any multiple of 32 for a 224-px model; otherwise use ``"resize"``.
* ``"normalized"``: the same official resampling, then ``x01 = (x + 1) / 2`` and
  ``(x01 - CLIP_MEAN) / CLIP_STD`` per channel. This is the input CLIP was trained on, as in the
  global-direction pipeline, but without its uint8 quantisation and clamping (so it stays
  differentiable and values outside [-1, 1] are kept, not clipped).
* ``"resize"``: antialiased bicubic ``jax.image.resize`` of the shorter side to the model's image size,
  a centre crop, then the same normalisation as ``"normalized"``. Works for any input size.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BACKENDS",
    "CLIP",
    "CLIPLoadError",
    "CLIPTokenError",
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_MODEL",
    "PREPROCESS_MODES",
    "SHAPES_CLIP_DIR",
    "clip_loss",
    "clip_loss_from_features",
    "image_features",
    "imagenet_templates",
    "l2_normalize",
    "load_clip",
    "official_resample",
    "official_resample_matrix",
    "preprocess_images",
    "raw_text_features",
    "template_average",
    "text_direction_from_embeddings",
    "text_features",
]

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
PREPROCESS_MODES = ("official", "normalized", "resize")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

from ..shipped import IMAGENET_TEMPLATES as _TEMPLATES_FILE, SHAPES_CLIP as SHAPES_CLIP_DIR, is_shapes  # noqa: E402

BACKENDS = ("native", "transformers")

from ..checkpoints import hf_clip  # noqa: E402
from ..errors import CLIPLoadError, CLIPTokenError  # noqa: E402,F401
from . import clip_net  # noqa: E402
from .ops import l2_normalize  # noqa: E402
from .clip_tokenizer import BPETokenizer  # noqa: E402


# --------------------------------------------------------------------------------------------------
# Small pure helpers


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[str, ...]:
    with open(_TEMPLATES_FILE) as f:
        templates = json.load(f)
    if len(templates) != 79 or not all("{}" in t for t in templates):
        raise RuntimeError(f"{_TEMPLATES_FILE} is corrupt: expected 79 templates containing '{{}}'")
    return tuple(templates)


def imagenet_templates() -> list[str]:
    """The 79 prompt templates of StyleCLIP's global direction (``'a bad photo of a {}.'``, ...)."""
    return list(_templates())


def template_average(embeddings: jax.Array) -> jax.Array:
    """Template-averaged text embedding: normalise each row, average, normalise again.

    ``embeddings``: (num_templates, D) raw text embeddings of one prompt -> (D,) unit vector.
    Works on a leading batch too: (..., num_templates, D) -> (..., D).
    """
    embeddings = jnp.asarray(embeddings)
    if embeddings.ndim < 2:
        raise ValueError(f"template_average: expected (num_templates, D) embeddings, got shape {embeddings.shape}")
    return l2_normalize(jnp.mean(l2_normalize(embeddings), axis=-2))


def text_direction_from_embeddings(target_emb: jax.Array, neutral_emb: jax.Array) -> jax.Array:
    """Global-direction text direction ``dt = normalise(t(target) - t(neutral))``.

    Each argument is either (num_templates, D) raw per-template embeddings (template-averaged here)
    or an already averaged (D,) vector. Returns (D,) unit vector.
    """
    def _avg(e, name):
        e = jnp.asarray(e)
        if e.ndim == 1:
            return l2_normalize(e)
        if e.ndim == 2:
            return template_average(e)
        raise ValueError(f"text_direction_from_embeddings: {name} must be (D,) or (num_templates, D), got {e.shape}")

    t = _avg(target_emb, "target_emb")
    n = _avg(neutral_emb, "neutral_emb")
    if t.shape != n.shape:
        raise ValueError(f"text_direction_from_embeddings: target dim {t.shape} != neutral dim {n.shape}")
    return l2_normalize(t - n)


# --------------------------------------------------------------------------------------------------
# Image path


def _official_kernel(size: int, out_size: int, axis: str) -> int:
    if size < 1 or (7 * size) % out_size:
        raise ValueError(
            f"preprocess='official': image {axis} {size} cannot be mapped onto the CLIP input size {out_size} "
            f"by nearest-upsampling x7 and average pooling (needs 7*{axis} to be a multiple of {out_size}, "
            f"e.g. a multiple of 32 for a 224-px model); use preprocess='resize' for this size"
        )
    return 7 * size // out_size


def official_resample_matrix(size: int, out_size: int = 224) -> np.ndarray:
    """(out_size, size) float64 matrix ``A`` equal to nearest-upsample x7 then AvgPool(k), k = 7*size/out_size.

    ``A[i, s]`` = (number of upsampled pixels ``j`` in the pooling window ``[i*k, (i+1)*k)`` with
    ``j // 7 == s``) / k. Rows sum to 1.
    """
    k = _official_kernel(size, out_size, "size")
    j = np.arange(7 * size)
    a = np.zeros((out_size, size))
    np.add.at(a, (j // k, j // 7), 1.0 / k)
    return a


@functools.lru_cache(maxsize=64)
def _official_block(size: int, out_size: int) -> tuple[int, np.ndarray]:
    """The resampling matrix is block diagonal with ``g = gcd(size, out_size)`` equal blocks.

    Returns (g, block) with block of shape (out_size // g, size // g), float32.
    """
    full = official_resample_matrix(size, out_size)
    g = math.gcd(size, out_size)
    block = full[: out_size // g, : size // g]
    return g, block.astype(np.float32)


def official_resample(images: jax.Array, out_size: int = 224) -> jax.Array:
    """StyleCLIP's ``AvgPool2d(k)(Upsample(scale_factor=7)(x))`` without building the x7 image.

    ``images``: (N, H, W, C) float -> (N, out_size, out_size, C). Requires ``7*H`` and ``7*W`` to be
    multiples of ``out_size`` (H, W multiples of 32 for 224). Linear, jittable and differentiable:
    each axis is a block-diagonal linear map applied as a small einsum over ``gcd(size, out_size)`` blocks
    (for 1024 -> 224: 32 blocks of 7x32), i.e. about ``2 * 224 * k`` multiply-adds per output column.
    """
    if images.ndim != 4:
        raise ValueError(f"official_resample: expected NHWC images, got shape {images.shape}")
    n, h, w, c = images.shape
    _official_kernel(h, out_size, "height")
    _official_kernel(w, out_size, "width")
    gh, bh = _official_block(h, out_size)
    gw, bw = _official_block(w, out_size)
    x = images.reshape(n, gh, h // gh, gw, w // gw, c)
    hp = jax.lax.Precision.HIGHEST
    x = jnp.einsum("ab,ngbmwc->ngamwc", jnp.asarray(bh, images.dtype), x, precision=hp)
    x = jnp.einsum("ab,ngimbc->ngimac", jnp.asarray(bw, images.dtype), x, precision=hp)
    return x.reshape(n, out_size, out_size, c)


def _normalize_clip(x01: jax.Array) -> jax.Array:
    mean = jnp.asarray(CLIP_MEAN, x01.dtype)
    std = jnp.asarray(CLIP_STD, x01.dtype)
    return (x01 - mean) / std


def _resize_crop(images: jax.Array, out_size: int) -> jax.Array:
    n, h, w, c = images.shape
    scale = out_size / min(h, w)
    nh, nw = max(out_size, round(h * scale)), max(out_size, round(w * scale))
    x = jax.image.resize(images, (n, nh, nw, c), method="bicubic", antialias=True)
    top, left = (nh - out_size) // 2, (nw - out_size) // 2
    return x[:, top : top + out_size, left : left + out_size, :]


def preprocess_images(images: jax.Array, image_size: int, preprocess: str = "official") -> jax.Array:
    """Generator images (N, H, W, 3) about [-1, 1] -> CLIP pixels (N, image_size, image_size, 3).

    See the module docstring for the three modes. Jittable and differentiable.
    """
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"CLIP images must be NHWC with 3 channels (N, H, W, 3), got shape {images.shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"CLIP images must be floating point about [-1, 1], got dtype {images.dtype}")
    if preprocess == "official":
        return official_resample(images, image_size)
    if preprocess == "normalized":
        return _normalize_clip((official_resample(images, image_size) + 1.0) * 0.5)
    if preprocess == "resize":
        return _normalize_clip((_resize_crop(images, image_size) + 1.0) * 0.5)
    raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")


def image_features(params: Any, images: jax.Array, *, module: Any, preprocess: str = "official") -> jax.Array:
    """Unit-norm CLIP image embeddings. Pure: jit/vmap/grad friendly.

    ``params``: the CLIP parameter tree (``clip.params``); ``images``: (N, H, W, 3) about [-1, 1];
    ``module``: ``clip.module`` (``CLIPNet`` or ``FlaxCLIPModel``, static). Returns (N, projection_dim).
    """
    size = module.config.vision_config.image_size
    pixels = preprocess_images(images, size, preprocess)
    feats = module.get_image_features(jnp.transpose(pixels, (0, 3, 1, 2)), params=params, train=False)
    return l2_normalize(feats)


def text_features(params: Any, input_ids: jax.Array, attention_mask: jax.Array | None = None, *, module: Any) -> jax.Array:
    """Unit-norm CLIP text embeddings from token ids (T, L) int32 -> (T, projection_dim)."""
    return l2_normalize(raw_text_features(params, input_ids, attention_mask, module=module))


def raw_text_features(params: Any, input_ids: jax.Array, attention_mask: jax.Array | None = None, *, module: Any) -> jax.Array:
    """Un-normalised CLIP text embeddings (``encode_text`` output), (T, L) ids -> (T, projection_dim)."""
    input_ids = jnp.asarray(input_ids, jnp.int32)
    if attention_mask is None:
        attention_mask = jnp.ones_like(input_ids)
    return module.get_text_features(input_ids, attention_mask=attention_mask, params=params, train=False)


def embed_images(clip, images: jax.Array) -> jax.Array:
    """(N, H, W, 3) -> (N, D) unit embeddings through the bundle's pure ``image_embed_fn``: a module-level
    function of (bundle, images), so `jax.jit` and `parallel.map_batched` take the bundle as an argument."""
    return clip.image_embed_fn(clip.params, images)


def clip_loss_from_features(image_emb: jax.Array, text_emb: jax.Array, logit_scale: jax.Array) -> jax.Array:
    """StyleCLIP loss from embeddings: ``1 - exp(logit_scale) * cos(image, text) / 100``.

    ``image_emb`` (N, D), ``text_emb`` (T, D) (normalised here), ``logit_scale`` the raw log-scale
    parameter. Returns (N, T). The official code divides by 100 whatever the scale; for the released
    ViT-B/32 ``exp(logit_scale) == 100`` so this is ``1 - cos``.
    """
    cos = l2_normalize(image_emb) @ l2_normalize(text_emb).T
    return 1.0 - jnp.exp(logit_scale) * cos / 100.0


def clip_loss(params: Any, images: jax.Array, text_emb: jax.Array, *, module: Any, preprocess: str = "official") -> jax.Array:
    """StyleCLIP CLIP loss (N, T) of images (N, H, W, 3) about [-1, 1] against text embeddings (T, D)."""
    return clip_loss_from_features(
        image_features(params, images, module=module, preprocess=preprocess), text_emb, params["logit_scale"]
    )


# --------------------------------------------------------------------------------------------------
# The CLIP bundle


@functools.lru_cache(maxsize=32)
def _jitted(kind: str, module: Any, preprocess: str):
    if kind == "image":
        return jax.jit(functools.partial(image_features, module=module, preprocess=preprocess))
    if kind == "text":
        return jax.jit(functools.partial(raw_text_features, module=module))
    raise KeyError(kind)


@jax.tree_util.register_pytree_node_class
class CLIP:
    """A loaded CLIP: ``module`` (``clip_net.CLIPNet`` or ``FlaxCLIPModel``), ``tokenizer``, ``params`` and the
    ``preprocess`` mode.

    A pytree whose leaves are the parameters only, so it can be an argument of jitted functions.
    Images are NHWC float32 about [-1, 1]; all embeddings are unit vectors.
    """

    def __init__(self, module: Any, tokenizer: Any, params: Any, preprocess: str = "official", name: str = ""):
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
        self.module = module
        self.tokenizer = tokenizer
        self.params = params
        self.preprocess = preprocess
        self.name = name

    # pytree protocol ------------------------------------------------------------------------------
    def tree_flatten(self):
        return (self.params,), (self.module, self.tokenizer, self.preprocess, self.name)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.module, obj.tokenizer, obj.preprocess, obj.name = aux
        obj.params = children[0]
        return obj

    def __repr__(self):
        return (f"CLIP(name={self.name!r}, image_size={self.image_size}, embed_dim={self.embed_dim}, "
                f"preprocess={self.preprocess!r})")

    # properties -----------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return int(self.module.config.vision_config.image_size)

    @property
    def embed_dim(self) -> int:
        return int(self.module.config.projection_dim)

    @property
    def max_length(self) -> int:
        return int(self.module.config.text_config.max_position_embeddings)

    @property
    def backend(self) -> str:
        """``"native"`` or ``"transformers"`` (which module computes the embeddings)."""
        return "native" if isinstance(self.module, clip_net.CLIPNet) else "transformers"

    @property
    def logit_scale(self) -> jax.Array:
        """``exp`` of the learned log-scale (100 for the released OpenAI models)."""
        return jnp.exp(self.params["logit_scale"])

    @property
    def image_embed_fn(self):
        """Pure ``f(params, images) -> (N, D)`` unit embeddings (module and preprocess bound)."""
        return functools.partial(image_features, module=self.module, preprocess=self.preprocess)

    @property
    def loss_fn(self):
        """Pure ``f(params, images, text_emb (T, D)) -> (N, T)`` StyleCLIP loss."""
        return functools.partial(clip_loss, module=self.module, preprocess=self.preprocess)

    def fingerprint(self) -> str:
        """16 hex digits identifying the weights (sha256 over every parameter's path, dtype, shape and
        bytes): caches keyed by it (e.g. global-direction fs3) go stale when the weights change, not
        only when the name does. Platform-independent; it hashes every weight byte (seconds for ViT-B/32 on a CPU), so it is computed once per
        object (params are treated as immutable, as everywhere in this package)."""
        cached = getattr(self, "_fingerprint", None)
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(self.params), key=lambda kv: jax.tree_util.keystr(kv[0])):
            a = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}".encode())
            h.update(a.tobytes())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def with_preprocess(self, preprocess: str) -> "CLIP":
        """Same model and params with another pre-processing mode."""
        return CLIP(self.module, self.tokenizer, self.params, preprocess, self.name)

    # text -----------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Strings -> (input_ids, attention_mask), each (T, max_position_embeddings) int32.

        Raises :class:`CLIPTokenError` naming the word if the vocabulary maps any part of it to the
        unknown token (small vocabularies), instead of silently encoding ``<unk>``.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a non-empty list of strings, got {texts!r}")
        tok = self.tokenizer
        unk = tok.unk_token_id
        for text in texts:
            # Content ids only (no bos/eos added): an unknown piece shows up as unk_token_id here, even when
            # unk shares its id with <|endoftext|> as in the OpenAI vocabulary.
            content = tok(text, add_special_tokens=False)["input_ids"]
            if unk is not None and unk in content:
                bad = [w for w in text.split() if unk in tok(w, add_special_tokens=False)["input_ids"]]
                raise CLIPTokenError(
                    f"prompt {text!r}: word(s) {bad or [text]} are not in the CLIP tokenizer vocabulary "
                    f"({self.name or 'this model'}, {len(tok)} tokens); rephrase with known words"
                )
        enc = tok(texts, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="np")
        return enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)

    def encode_texts_raw(self, texts: Sequence[str]) -> jax.Array:
        """Un-normalised text embeddings (CLIP ``encode_text``), (T, D)."""
        ids, mask = self.tokenize(texts)
        return _jitted("text", self.module, "")(self.params, ids, mask)

    def encode_texts(self, texts: Sequence[str]) -> jax.Array:
        """Strings -> (T, D) unit embeddings."""
        return l2_normalize(self.encode_texts_raw(texts))

    def encode_texts_templated(self, texts: Sequence[str], templates: Sequence[str] | None = None) -> jax.Array:
        """Each prompt formatted with the 79 ImageNet templates and template-averaged -> (T, D) unit vectors."""
        if isinstance(texts, str):
            texts = [texts]
        templates = list(_templates() if templates is None else templates)
        out = []
        for text in texts:
            raw = self.encode_texts_raw([t.format(text) for t in templates])
            out.append(template_average(raw))
        return jnp.stack(out)

    def text_direction(self, target: str, neutral: str, templates: Sequence[str] | None = None) -> jax.Array:
        """Global-direction ``dt`` (D,) for a (target, neutral) prompt pair, e.g. ('a man', 'a woman')."""
        emb = self.encode_texts_templated([target, neutral], templates)
        return text_direction_from_embeddings(emb[0], emb[1])

    # images ---------------------------------------------------------------------------------------
    def preprocess_images(self, images: jax.Array) -> jax.Array:
        """(N, H, W, 3) about [-1, 1] -> CLIP pixels (N, image_size, image_size, 3)."""
        return preprocess_images(images, self.image_size, self.preprocess)

    def encode_images(self, images: jax.Array) -> jax.Array:
        """(N, H, W, 3) about [-1, 1] -> (N, D) unit embeddings (differentiable)."""
        return _jitted("image", self.module, self.preprocess)(self.params, images)

    def loss(self, images: jax.Array, texts_or_embeddings: Any) -> jax.Array:
        """StyleCLIP loss ``1 - exp(logit_scale) cos / 100``.

        ``texts_or_embeddings``: a string (-> (N,)), a list of strings (-> (N, T)), a (D,) embedding
        (-> (N,)) or (T, D) embeddings (-> (N, T)). Differentiable wrt ``images``.
        """
        single = False
        t = texts_or_embeddings
        if isinstance(t, str):
            t, single = self.encode_texts([t]), True
        elif isinstance(t, (list, tuple)) and t and all(isinstance(s, str) for s in t):
            t = self.encode_texts(t)
        else:
            t = jnp.asarray(t)
            if t.ndim == 1:
                t, single = t[None], True
            if t.ndim != 2 or t.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"text embeddings must be (T, {self.embed_dim}) or ({self.embed_dim},), got shape {t.shape}"
                )
        loss = clip_loss_from_features(self.encode_images(images), t, self.params["logit_scale"])
        return loss[:, 0] if single else loss


# --------------------------------------------------------------------------------------------------
# Loading


def _check_consistency(config, tokenizer, label: str) -> None:
    tc = config.text_config
    eos = tokenizer.eos_token_id
    if eos is None:
        raise CLIPLoadError(f"CLIP tokenizer of {label} has no eos token (<|endoftext|>)")
    if tc.eos_token_id == 2 and eos != 2:
        # Legacy configs pool the text at argmax(input_ids): eos must be the largest id.
        if eos != max(tokenizer.get_vocab().values()):
            raise CLIPLoadError(
                f"CLIP {label}: the config pools text at argmax(input_ids) (eos_token_id=2), so the tokenizer's "
                f"eos token must have the highest id, but eos id {eos} is not the largest"
            )
    elif tc.eos_token_id != eos:
        raise CLIPLoadError(
            f"CLIP {label}: text_config.eos_token_id={tc.eos_token_id} but the tokenizer's eos id is {eos}"
        )
    if len(tokenizer) > tc.vocab_size:
        raise CLIPLoadError(f"CLIP {label}: tokenizer has {len(tokenizer)} tokens but the model vocab_size is "
                            f"{tc.vocab_size}")


def _load_native(folder: pathlib.Path, from_pt: bool | None):
    cfg = hf_clip.read_config(folder)
    order = {None: hf_clip.WEIGHT_FILES, True: ("model.safetensors", "pytorch_model.bin"),
             False: ("flax_model.msgpack",)}[from_pt]
    params, _ = hf_clip.read_params(folder, cfg, order)
    return clip_net.CLIPNet(cfg), BPETokenizer.from_folder(folder), params


def load_clip(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    preprocess: str = "official",
    *,
    backend: str = "native",
    dtype=jnp.float32,
    local_files_only: bool = False,
    from_pt: bool | None = None,
) -> CLIP:
    """Load a CLIP model and its tokenizer.

    ``name_or_path``:
      * a local Hugging Face CLIP folder: ``config.json``, weights (``flax_model.msgpack``, ``model.safetensors``
        or ``pytorch_model.bin``; tried in this order, ``from_pt=True`` skips the msgpack, ``False`` takes only
        it) and the tokenizer files ``vocab.json`` + ``merges.txt`` (or ``tokenizer.json``);
      * ``"shapes"``: the packaged tiny model in ``styleclip_jax/assets/shapes_clip/``;
      * a hub name such as ``"openai/clip-vit-base-patch32"`` (default): the local HF cache first, then the
        network (skipped when ``local_files_only`` or ``HF_HUB_OFFLINE=1`` or the hub is unreachable).

    ``backend``: ``"native"`` (default: ``clip_net`` + ``BPETokenizer``, float32, no transformers) or
    ``"transformers"`` (``FlaxCLIPModel``, needs transformers 4.x; ``dtype`` is its computation dtype). Both
    give the same parameter tree, hence the same :meth:`CLIP.fingerprint` (and global-direction cache keys).
    ``preprocess``: ``"official"`` (default, exact StyleCLIP), ``"normalized"`` or ``"resize"``; see the
    module docstring. Raises :class:`CLIPLoadError` (one message, no hub traceback) on failure.
    """
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"load_clip: preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
    if backend not in BACKENDS:
        raise ValueError(f"load_clip: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "native" and jnp.dtype(dtype) != jnp.float32:
        raise ValueError(f"load_clip: the native backend computes in float32 (got dtype={dtype}); "
                         "use backend='transformers' for another computation dtype")
    name = os.fspath(name_or_path)
    if is_shapes(name):
        folder = SHAPES_CLIP_DIR
        label = "'shapes'"
        if not folder.is_dir():
            raise CLIPLoadError(
                f"the packaged 'shapes' CLIP model is missing: expected a folder {folder} with {hf_clip.NEEDED_FILES}")
        hf_clip.check_folder(folder, label)
    else:
        label = repr(name)
        folder = None
        if pathlib.Path(name).expanduser().exists() or hf_clip.looks_like_path(name) or backend == "native":
            folder = hf_clip.resolve(name, local_files_only)
    if backend == "native":
        module, tokenizer, params = _load_native(folder, from_pt)
    else:
        from . import clip_transformers
        module, tokenizer, params = clip_transformers.load(name, folder, dtype, local_files_only, from_pt)
        # float32 leaves as the native reader gives, so both backends hash the same weights alike
        params = jax.tree_util.tree_map(
            lambda a: np.asarray(a, np.float32) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, params)
    _check_consistency(module.config, tokenizer, label)
    return CLIP(module, tokenizer, jax.tree_util.tree_map(jnp.asarray, params), preprocess, name)
