"""The CLIP network as pure functions over a parameter pytree in Hugging Face's Flax CLIP layout.

``encode_image(params, pixels, cfg)`` and ``encode_text(params, input_ids, attention_mask, cfg)`` compute
what ``transformers.FlaxCLIPModel.get_image_features`` / ``get_text_features`` compute, from the same
parameter tree (``params["vision_model"]["encoder"]["layers"]["0"]["self_attn"]["q_proj"]["kernel"]``, ...),
so one set of weights serves both backends without renaming and hashes to the same fingerprint:

* vision: a ViT -- patches of ``patch_size`` (a conv without bias, run as one matmul over flattened
  patches), a learned class token, position embeddings, ``pre_layrnorm`` (sic, HF's name), pre-LN
  encoder layers, ``post_layernorm`` of the class token, ``visual_projection`` (no bias);
* text: token + position embeddings, pre-LN encoder layers with a causal mask (and the padding mask),
  ``final_layer_norm``, the hidden state at the end-of-text token (the first ``eos_token_id``; legacy
  configs with ``eos_token_id == 2`` take ``argmax(input_ids)`` as HF does), ``text_projection`` (no bias);
* an encoder layer: ``x + attn(LN1(x))`` then ``x + fc2(act(fc1(LN2(x))))``; ``act`` from ``hidden_act``
  (OpenAI's models use QuickGELU ``x * sigmoid(1.702 x)``; ``"gelu"`` is the exact erf GELU).

:class:`Config` is read from a Hugging Face ``config.json`` (:meth:`Config.from_dict`, HF's defaults for
missing fields, legacy ``text_config_dict`` / ``vision_config_dict`` honoured). :class:`CLIPNet` binds a
config and offers the two ``get_*_features`` methods with FlaxCLIPModel's signatures, so code written for
either backend takes both.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ACTIVATIONS", "CLIPNet", "Config", "TextConfig", "VisionConfig", "encode_image", "encode_text",
           "init_params", "param_shapes"]


def quick_gelu(x):
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS = {
    "quick_gelu": quick_gelu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    bos_token_id: int = 49406
    eos_token_id: int = 49407


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5


@dataclasses.dataclass(frozen=True)
class Config:
    """A CLIP configuration (defaults: ViT-B/32, as transformers' ``CLIPConfig()``). Hashable (a jit static)."""

    text_config: TextConfig = TextConfig()
    vision_config: VisionConfig = VisionConfig()
    projection_dim: int = 512
    logit_scale_init_value: float = 2.6592

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """From a Hugging Face CLIP ``config.json`` dict; unknown keys are ignored, missing ones take HF's
        defaults. Raises ValueError naming a field with a value this implementation cannot run."""
        def sub(kind, klass):
            fields = {f.name for f in dataclasses.fields(klass)}
            merged = {**(d.get(f"{kind}_config") or {}), **(d.get(f"{kind}_config_dict") or {})}
            kw = {k: v for k, v in merged.items() if k in fields and v is not None}
            return klass(**kw)

        top = {k: d[k] for k in ("projection_dim", "logit_scale_init_value") if d.get(k) is not None}
        cfg = cls(text_config=sub("text", TextConfig), vision_config=sub("vision", VisionConfig), **top)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return {"model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": self.projection_dim,
                "logit_scale_init_value": self.logit_scale_init_value,
                "text_config": dataclasses.asdict(self.text_config),
                "vision_config": dataclasses.asdict(self.vision_config)}

    def validate(self) -> None:
        for name, c in (("text_config", self.text_config), ("vision_config", self.vision_config)):
            if c.hidden_act not in ACTIVATIONS:
                raise ValueError(f"{name}.hidden_act={c.hidden_act!r} is not supported (one of {sorted(ACTIVATIONS)})")
            if c.hidden_size % c.num_attention_heads:
                raise ValueError(f"{name}.hidden_size={c.hidden_size} is not a multiple of "
                                 f"num_attention_heads={c.num_attention_heads}")
        v = self.vision_config
        if v.image_size % v.patch_size:
            raise ValueError(f"vision_config.image_size={v.image_size} is not a multiple of patch_size={v.patch_size}")


# --------------------------------------------------------------------------------------------------
# Parameter layout


def param_shapes(cfg: Config) -> dict:
    """The parameter tree (HF Flax CLIP layout) with shape tuples as leaves."""
    def tower(c):
        d, f = c.hidden_size, c.intermediate_size
        dense = lambda i, o: {"kernel": (i, o), "bias": (o,)}  # noqa: E731
        ln = {"scale": (d,), "bias": (d,)}
        layer = {"self_attn": {k: dense(d, d) for k in ("k_proj", "v_proj", "q_proj", "out_proj")},
                 "layer_norm1": ln, "mlp": {"fc1": dense(d, f), "fc2": dense(f, d)}, "layer_norm2": ln}
        return {"layers": {str(i): layer for i in range(c.num_hidden_layers)}}

    t, v = cfg.text_config, cfg.vision_config
    num_pos = (v.image_size // v.patch_size) ** 2 + 1
    return {
        "text_model": {
            "embeddings": {"token_embedding": {"embedding": (t.vocab_size, t.hidden_size)},
                           "position_embedding": {"embedding": (t.max_position_embeddings, t.hidden_size)}},
            "encoder": tower(t),
            "final_layer_norm": {"scale": (t.hidden_size,), "bias": (t.hidden_size,)},
        },
        "vision_model": {
            "embeddings": {"class_embedding": (v.hidden_size,),
                           "patch_embedding": {"kernel": (v.patch_size, v.patch_size, v.num_channels, v.hidden_size)},
                           "position_embedding": {"embedding": (num_pos, v.hidden_size)}},
            "pre_layrnorm": {"scale": (v.hidden_size,), "bias": (v.hidden_size,)},
            "encoder": tower(v),
            "post_layernorm": {"scale": (v.hidden_size,), "bias": (v.hidden_size,)},
        },
        "visual_projection": {"kernel": (v.hidden_size, cfg.projection_dim)},
        "text_projection": {"kernel": (t.hidden_size, cfg.projection_dim)},
        "logit_scale": (),
    }


def _is_shape(x) -> bool:
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def init_params(seed: int, cfg: Config, std: float = 0.02) -> dict:
    """Random float32 parameters (numpy, host-side: no compile): normal(0, std) weights and embeddings,
    zero biases, unit LayerNorm scales, ``logit_scale = cfg.logit_scale_init_value``."""
    rng = np.random.default_rng(seed)

    def fill(path, shape):
        name = path[-1].key
        if name == "logit_scale":
            return np.full(shape, cfg.logit_scale_init_value, np.float32)
        if name == "scale":
            return np.ones(shape, np.float32)
        if name == "bias":
            return np.zeros(shape, np.float32)
        return std * rng.standard_normal(shape, dtype=np.float32)

    return jax.tree_util.tree_map_with_path(fill, param_shapes(cfg), is_leaf=_is_shape)


# --------------------------------------------------------------------------------------------------
# Maths


def _layer_norm(p, x, eps):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def _dense(p, x):
    y = x @ p["kernel"]
    return y + p["bias"] if "bias" in p else y


def _attention(p, x, bias, num_heads):
    """x (B, L, D), bias (B or 1, 1, L, L) additive or None -> (B, L, D)."""
    b, n, d = x.shape
    hd = d // num_heads
    split = lambda y: y.reshape(b, n, num_heads, hd)  # noqa: E731
    q = split(_dense(p["q_proj"], x)) / jnp.sqrt(hd).astype(x.dtype)
    k, v = split(_dense(p["k_proj"], x)), split(_dense(p["v_proj"], x))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k)
    if bias is not None:
        logits = logits + bias
    w = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, n, d)
    return _dense(p["out_proj"], out)


def _encoder(p, x, bias, c):
    act = ACTIVATIONS[c.hidden_act]
    for i in range(c.num_hidden_layers):
        lp = p["layers"][str(i)]
        x = x + _attention(lp["self_attn"], _layer_norm(lp["layer_norm1"], x, c.layer_norm_eps), bias,
                           c.num_attention_heads)
        h = _layer_norm(lp["layer_norm2"], x, c.layer_norm_eps)
        x = x + _dense(lp["mlp"]["fc2"], act(_dense(lp["mlp"]["fc1"], h)))
    return x


def encode_image(params: Any, pixels: jax.Array, cfg: Config) -> jax.Array:
    """Un-normalised image embeddings. ``pixels``: (N, S, S, C) NHWC with S = ``image_size`` -> (N, projection_dim)."""
    v = cfg.vision_config
    n, h, w, c = pixels.shape
    if (h, w, c) != (v.image_size, v.image_size, v.num_channels):
        raise ValueError(f"CLIP pixels must be (N, {v.image_size}, {v.image_size}, {v.num_channels}), "
                         f"got {pixels.shape}")
    p, vp = v.patch_size, params["vision_model"]
    emb = vp["embeddings"]
    g = h // p
    patches = pixels.reshape(n, g, p, g, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, g * g, p * p * c)
    kernel = emb["patch_embedding"]["kernel"].reshape(p * p * c, v.hidden_size)  # (kh, kw, in, out) order
    x = patches @ kernel
    cls = jnp.broadcast_to(emb["class_embedding"].astype(x.dtype), (n, 1, v.hidden_size))
    x = jnp.concatenate([cls, x], axis=1) + emb["position_embedding"]["embedding"]
    x = _layer_norm(vp["pre_layrnorm"], x, v.layer_norm_eps)
    x = _encoder(vp["encoder"], x, None, v)
    pooled = _layer_norm(vp["post_layernorm"], x[:, 0], v.layer_norm_eps)
    return pooled @ params["visual_projection"]["kernel"]


def encode_text(params: Any, input_ids: jax.Array, attention_mask: jax.Array | None, cfg: Config) -> jax.Array:
    """Un-normalised text embeddings. ``input_ids``/``attention_mask``: (T, L) int, L <= max_position_embeddings
    -> (T, projection_dim)."""
    t = cfg.text_config
    input_ids = jnp.asarray(input_ids, jnp.int32)
    b, n = input_ids.shape
    if n > t.max_position_embeddings:
        raise ValueError(f"token ids have length {n} > max_position_embeddings {t.max_position_embeddings}")
    tp = params["text_model"]
    x = (jnp.take(tp["embeddings"]["token_embedding"]["embedding"], input_ids, axis=0)
         + tp["embeddings"]["position_embedding"]["embedding"][:n])
    keep = jnp.tril(jnp.ones((n, n), bool))[None, None]
    if attention_mask is not None:
        keep = keep & (jnp.asarray(attention_mask) > 0)[:, None, None, :]
    bias = jnp.where(keep, 0.0, jnp.finfo(x.dtype).min).astype(x.dtype)
    x = _encoder(tp["encoder"], x, bias, t)
    x = _layer_norm(tp["final_layer_norm"], x, t.layer_norm_eps)
    eot = jnp.argmax(input_ids, axis=-1) if t.eos_token_id == 2 else jnp.argmax(input_ids == t.eos_token_id, axis=-1)
    pooled = x[jnp.arange(b), eot]
    return pooled @ params["text_projection"]["kernel"]


# --------------------------------------------------------------------------------------------------
# FlaxCLIPModel-shaped module object


@dataclasses.dataclass(frozen=True)
class CLIPNet:
    """The native CLIP module: a config plus FlaxCLIPModel's ``get_image_features`` / ``get_text_features``
    call signatures over the pure functions above (``params`` is required: the object holds none)."""

    config: Config

    def get_image_features(self, pixel_values, params=None, train: bool = False):
        """``pixel_values`` (N, C, S, S) NCHW as in transformers -> (N, projection_dim)."""
        del train
        return encode_image(params, jnp.transpose(jnp.asarray(pixel_values, jnp.float32), (0, 2, 3, 1)), self.config)

    def get_text_features(self, input_ids, attention_mask=None, params=None, train: bool = False):
        del train
        return encode_text(params, input_ids, attention_mask, self.config)

    @property
    def num_params(self) -> int:
        shapes = jax.tree_util.tree_leaves(param_shapes(self.config), is_leaf=_is_shape)
        return int(sum(math.prod(s) for s in shapes))
