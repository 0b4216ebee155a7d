"""StyleCLIP latent mappers (``mapper/latent_mappers.py``): pure functions + thin Flax modules.

Architecture
------------
A ``Mapper`` is ``PixelNorm`` followed by 4 ``EqualLinear(D, D, lr_mul=0.01)`` layers, each with
the fused leaky ReLU (bias added before the activation, slope 0.2, gain sqrt(2))::

    y = sqrt(2) * leaky_relu(x @ (W * lr_mul / sqrt(D)).T + b * lr_mul, 0.2)

Three mapper types, all returning a *delta* (the edit is ``w + 0.1 * delta``):

* ``"LevelsMapper"`` (official default): w+ rows ``[0:4]`` (coarse, official key
  ``course_mapping`` - sic), ``[4:8]`` (medium, ``medium_mapping``), ``[8:]`` (fine,
  ``fine_mapping``), each with its own Mapper; a disabled level yields exact zeros.
* ``"SingleMapper"``: one Mapper (key ``mapping``) over the whole (N, rows, 512) input.
* ``"WithoutToRGBStyleSpaceMapper"`` (``--work_in_stylespace``): one Mapper of width ``C`` per
  non-toRGB S layer (keys ``mapper_<s_index>``); toRGB layers (S indices 1, 4, 7, ...) get zeros.
  Each S code is flattened to ``(N, C)``, so its PixelNorm reduces over the ``C`` channels -
  there is no rows axis in that case and ``pixelnorm_axis`` has no effect.

PixelNorm axis (official quirk)
-------------------------------
The official PixelNorm reduces over **dim 1**. For the ``(N, rows, 512)`` slices of the W+
mappers that is the *w+ rows* axis, not the 512 features. ``pixelnorm_axis="rows"`` (default,
for imported and for newly trained mappers, recorded in :class:`MapperConfig`) reproduces it;
``"features"`` normalises over the last axis (what a StyleGAN mapping network does). For a 2-D
input ``(N, 512)`` both coincide.

Parameters
----------
Param pytrees are nested dicts that mirror the official state-dict keys split on ``"."``
(prefix ``mapper.`` removed), in torch layout (``weight`` is ``(out, in)``)::

    params["course_mapping"]["mapping"]["1"]["weight"]  # official "mapper.course_mapping.mapping.1.weight"
    params["mapper_0"]["mapping"]["4"]["bias"]          # StyleSpace mapper, S layer 0

Layer indices 1..4 (index 0 is the parameter-free PixelNorm). ``flatten_params`` /
``unflatten_params`` convert to and from the flat official names.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import CheckpointFormatError

__all__ = [
    "MapperConfig",
    "FFHQ1024_STYLESPACE_DIMS",
    "pixel_norm",
    "equal_linear",
    "mapper_mlp",
    "init_mlp_params",
    "init_mapper_params",
    "apply_mapper",
    "flatten_params",
    "unflatten_params",
    "config_from_opts",
    "params_from_state_dict",
    "read_styleclip_mapper_pt",
    "LatentMapper",
]

#: ``STYLESPACE_DIMENSIONS`` of the official code (FFHQ 1024, 26 S layers incl. toRGB).
FFHQ1024_STYLESPACE_DIMS = (512,) * 15 + (256,) * 3 + (128,) * 3 + (64,) * 3 + (32,) * 2

MAPPER_TYPES = ("LevelsMapper", "SingleMapper", "WithoutToRGBStyleSpaceMapper")
LEVEL_KEYS = (("course_mapping", 0, 4, "no_coarse_mapper"),
              ("medium_mapping", 4, 8, "no_medium_mapper"),
              ("fine_mapping", 8, None, "no_fine_mapper"))


@dataclasses.dataclass(frozen=True)
class MapperConfig:
    """Static description of a mapper (hashable: usable as a jit static argument).

    Attributes:
      mapper_type: one of ``"LevelsMapper"``, ``"SingleMapper"``, ``"WithoutToRGBStyleSpaceMapper"``.
      no_coarse_mapper / no_medium_mapper / no_fine_mapper: LevelsMapper switches (zeros when off).
      latent_dim: width of the W+ mappers (512).
      n_layers: EqualLinear layers per Mapper (4).
      lr_mul: EqualLinear learning-rate multiplier (0.01).
      pixelnorm_axis: ``"rows"`` (official: torch dim 1) or ``"features"`` (last axis).
      stylespace_dims: channels of every S layer, toRGB included, in S order (StyleSpace mapper).
      torgb_indices: S indices without a mapper; ``None`` = the generator's toRGB layers (``layout.torgb_indices_for``).
    """
    mapper_type: str = "LevelsMapper"
    no_coarse_mapper: bool = False
    no_medium_mapper: bool = False
    no_fine_mapper: bool = False
    latent_dim: int = 512
    n_layers: int = 4
    lr_mul: float = 0.01
    pixelnorm_axis: str = "rows"
    stylespace_dims: Tuple[int, ...] = FFHQ1024_STYLESPACE_DIMS
    torgb_indices: Optional[Tuple[int, ...]] = None

    def __post_init__(self):
        if self.mapper_type not in MAPPER_TYPES:
            raise ValueError(f"mapper_type must be one of {MAPPER_TYPES}, got {self.mapper_type!r}")
        if self.pixelnorm_axis not in ("rows", "features"):
            raise ValueError(f"pixelnorm_axis must be 'rows' or 'features', got {self.pixelnorm_axis!r}")
        object.__setattr__(self, "stylespace_dims", tuple(int(c) for c in self.stylespace_dims))
        if self.torgb_indices is not None:
            object.__setattr__(self, "torgb_indices", tuple(int(i) for i in self.torgb_indices))

    @property
    def stylespace_mapped_indices(self) -> Tuple[int, ...]:
        """S indices that own a Mapper (all but the toRGB layers)."""
        n = len(self.stylespace_dims)
        from .layout import torgb_indices_for
        torgb = set(torgb_indices_for(n) if self.torgb_indices is None else self.torgb_indices)
        return tuple(i for i in range(n) if i not in torgb)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stylespace_dims"] = list(self.stylespace_dims)
        d["torgb_indices"] = None if self.torgb_indices is None else list(self.torgb_indices)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MapperConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        for k in ("stylespace_dims", "torgb_indices"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def _as_config(config: Union[MapperConfig, Mapping[str, Any], None]) -> MapperConfig:
    if config is None:
        return MapperConfig()
    if isinstance(config, MapperConfig):
        return config
    return MapperConfig.from_dict(config)


# ---------------------------------------------------------------------------------------
# Pure building blocks
# ---------------------------------------------------------------------------------------
def pixel_norm(x: jax.Array, axis: int = 1, eps: float = 1e-8) -> jax.Array:
    """``x / sqrt(mean(x**2, axis) + eps)``; official PixelNorm is ``axis=1``."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def equal_linear(x: jax.Array, weight: jax.Array, bias: jax.Array, lr_mul: float = 0.01,
                 activate: bool = True) -> jax.Array:
    """EqualLinear with fused leaky ReLU.

    Args:
      x: (..., in).
      weight: (out, in) raw parameter, torch layout.
      bias: (out,) raw parameter.
    Returns:
      (..., out): ``sqrt(2) * leaky_relu(x @ (W * lr_mul/sqrt(in)).T + b * lr_mul, 0.2)``.
    """
    scale = lr_mul / math.sqrt(weight.shape[1])
    y = jnp.matmul(x, (weight * scale).T) + bias * lr_mul
    if activate:
        y = jax.nn.leaky_relu(y, 0.2) * math.sqrt(2.0)
    return y


def mapper_mlp(params: Mapping[str, Any], x: jax.Array, lr_mul: float = 0.01, pixelnorm_axis: int = 1
               ) -> jax.Array:
    """Official ``Mapper``: PixelNorm then EqualLinear layers ``"1".."n"``.

    Args:
      params: ``{"mapping": {"1": {"weight", "bias"}, ...}}``.
      x: (N, ..., D).
      pixelnorm_axis: axis PixelNorm reduces over (1 = official).
    Returns:
      (N, ..., D).
    """
    layers = params["mapping"]
    x = pixel_norm(x, axis=pixelnorm_axis)
    for i in range(1, len(layers) + 1):
        layer = layers[str(i)]
        x = equal_linear(x, layer["weight"], layer["bias"], lr_mul)
    return x


def init_mlp_params(key: jax.Array, dim: int, n_layers: int = 4, lr_mul: float = 0.01,
                    dtype=jnp.float32) -> Dict[str, Any]:
    """Official init of one Mapper: weight ``randn(out, in) / lr_mul``, bias zeros."""
    weights = jax.random.normal(key, (n_layers, dim, dim), dtype) / lr_mul  # one draw, cheap to compile
    return {"mapping": {str(i + 1): {"weight": weights[i], "bias": jnp.zeros((dim,), dtype)}
                        for i in range(n_layers)}}


def init_mapper_params(key: jax.Array, config: Union[MapperConfig, Mapping, None] = None,
                       dtype=jnp.float32) -> Dict[str, Any]:
    """Fresh params for ``config`` (disabled levels have no entry, as in the official module)."""
    cfg = _as_config(config)
    if cfg.mapper_type == "LevelsMapper":
        names = [name for name, _, _, flag in LEVEL_KEYS if not getattr(cfg, flag)]
        keys = jax.random.split(key, 3)
        return {name: init_mlp_params(keys[i], cfg.latent_dim, cfg.n_layers, cfg.lr_mul, dtype)
                for i, (name, _, _, flag) in enumerate(LEVEL_KEYS) if name in names}
    if cfg.mapper_type == "SingleMapper":
        return {"mapping": init_mlp_params(key, cfg.latent_dim, cfg.n_layers, cfg.lr_mul, dtype)}
    idx = cfg.stylespace_mapped_indices
    keys = jax.random.split(key, len(idx))
    return {f"mapper_{i}": init_mlp_params(k, cfg.stylespace_dims[i], cfg.n_layers, cfg.lr_mul, dtype)
            for k, i in zip(keys, idx)}


def _apply_w(params, w, cfg: MapperConfig):
    if w.ndim != 3:
        raise ValueError(f"{cfg.mapper_type} expects w+ of shape (N, rows, {cfg.latent_dim}), got {w.shape}")
    axis = 1 if cfg.pixelnorm_axis == "rows" else -1
    if cfg.mapper_type == "SingleMapper":
        return mapper_mlp(params["mapping"], w, cfg.lr_mul, axis)
    parts = []
    for name, start, stop, flag in LEVEL_KEYS:
        x = w[:, start:stop]
        if getattr(cfg, flag):
            parts.append(jnp.zeros_like(x))
        else:
            parts.append(mapper_mlp(params[name], x, cfg.lr_mul, axis))
    return jnp.concatenate(parts, axis=1)


def _apply_s(params, s, cfg: MapperConfig):
    mapped = set(cfg.stylespace_mapped_indices)

    def one(i, x):
        if i not in mapped:
            return jnp.zeros_like(x)
        flat = x.reshape(x.shape[0], -1)  # (N, C): PixelNorm over the C channels
        return mapper_mlp(params[f"mapper_{i}"], flat, cfg.lr_mul, 1).reshape(x.shape)

    if isinstance(s, Mapping):
        return {i: one(int(i), x) for i, x in s.items()}
    if len(s) != len(cfg.stylespace_dims):
        raise ValueError(f"expected {len(cfg.stylespace_dims)} S layers, got {len(s)}")
    return [one(i, x) for i, x in enumerate(s)]


def apply_mapper(params: Mapping[str, Any], w, config: Union[MapperConfig, Mapping, None] = None):
    """Mapper output ``delta`` (the edit is ``w + 0.1 * delta``).

    Args:
      params: param pytree (see module docstring).
      w: W+ mappers: (N, rows, 512) w+ batch.
         StyleSpace mapper: a list of all S layers in S order, each (N, C) or (N, 1, C, 1, 1), or a
         dict ``{s_index: array}`` (only the given layers are returned).
      config: :class:`MapperConfig` or its dict form.
    Returns:
      delta with the structure and shapes of ``w`` (rows / layers without a mapper are zeros).
    """
    cfg = _as_config(config)
    if cfg.mapper_type == "WithoutToRGBStyleSpaceMapper":
        return _apply_s(params, w, cfg)
    return _apply_w(params, w, cfg)


# ---------------------------------------------------------------------------------------
# Official checkpoints
# ---------------------------------------------------------------------------------------
def flatten_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Nested params -> ``{"course_mapping.mapping.1.weight": array, ...}`` (official dotted names)."""
    from flax.traverse_util import flatten_dict
    return flatten_dict(dict(params), sep=".")


def unflatten_params(flat: Mapping[str, Any]) -> Dict[str, Any]:
    """Inverse of :func:`flatten_params`."""
    from flax.traverse_util import unflatten_dict
    return unflatten_dict(dict(flat), sep=".")


def config_from_opts(opts: Mapping[str, Any], state_dict: Optional[Mapping[str, Any]] = None,
                     pixelnorm_axis: str = "rows") -> MapperConfig:
    """MapperConfig from the checkpoint's ``opts`` (``vars(opts)`` of the training run).

    For a StyleSpace mapper the official code hard-codes the FFHQ 1024 layout
    (``STYLESPACE_DIMENSIONS``, 26 S layers); the mapped layers' widths are checked against the
    weights when a ``state_dict`` (mapper keys without the ``mapper.`` prefix) is given.
    """
    opts = dict(opts)
    if opts.get("work_in_stylespace", False):
        dims = list(FFHQ1024_STYLESPACE_DIMS)
        for k, v in (state_dict or {}).items():
            if k.startswith("mapper_") and k.endswith(".mapping.1.weight"):
                i = int(k.split(".")[0][len("mapper_"):])
                if i >= len(dims) or dims[i] != int(v.shape[0]):
                    raise ValueError(f"StyleSpace mapper weight {k} {tuple(v.shape)} does not fit the "
                                     f"official 26-layer STYLESPACE_DIMENSIONS")
        return MapperConfig(mapper_type="WithoutToRGBStyleSpaceMapper", pixelnorm_axis=pixelnorm_axis,
                            stylespace_dims=tuple(dims))
    mtype = opts.get("mapper_type", "LevelsMapper")
    return MapperConfig(mapper_type=mtype,
                        no_coarse_mapper=bool(opts.get("no_coarse_mapper", False)),
                        no_medium_mapper=bool(opts.get("no_medium_mapper", False)),
                        no_fine_mapper=bool(opts.get("no_fine_mapper", False)),
                        pixelnorm_axis=pixelnorm_axis)


def params_from_state_dict(state_dict: Mapping[str, Any], config: MapperConfig) -> Dict[str, Any]:
    """Mapper params from official ``mapper.*`` tensors (prefix already stripped), strictly.

    Raises ``KeyError`` listing missing / unexpected keys, ``ValueError`` on shape mismatch.
    """
    template = jax.eval_shape(lambda: init_mapper_params(jax.random.PRNGKey(0), config))
    want = flatten_params(template)
    have = {k: np.asarray(v) for k, v in state_dict.items()}
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    if missing or unexpected:
        raise KeyError(f"mapper state dict does not match {config.mapper_type}: missing {missing[:8]}"
                       f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                       f"{'...' if len(unexpected) > 8 else ''}")
    for k, spec in want.items():
        if tuple(have[k].shape) != tuple(spec.shape):
            raise ValueError(f"{k}: shape {have[k].shape}, expected {spec.shape}")
    return unflatten_params({k: jnp.asarray(have[k], jnp.float32) for k in want})


def read_styleclip_mapper_pt(path, pixelnorm_axis: str = "rows", return_info: bool = False):
    """Read a published StyleCLIP mapper checkpoint ``{'state_dict': {...}, 'opts': {...}}``.

    Loads with ``torch.load(..., weights_only=True)`` (torch imported lazily). ``decoder.*`` tensors
    (the StyleGAN2 generator copy stored in every mapper checkpoint) are ignored and only counted.

    Returns:
      ``(params, config)``, or ``(params, config, info)`` with ``return_info=True`` where ``info`` =
      ``{"opts": dict, "num_mapper_tensors": int, "num_decoder_tensors": int,
      "num_decoder_values": int, "other_keys": list}``.
    """
    from ..checkpoints import torch_pt

    ckpt = torch_pt.load(path, "StyleCLIP mapper checkpoint (.pt)")
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        got = f"keys {torch_pt.key_summary(ckpt)}" if isinstance(ckpt, Mapping) else f"a {type(ckpt).__name__}"
        raise CheckpointFormatError(f"{path}: expected a dict with 'state_dict' (and 'opts'), got {got}")
    sd = ckpt["state_dict"]
    opts = ckpt.get("opts") or {}
    if not isinstance(opts, Mapping):
        raise CheckpointFormatError(f"{path}: 'opts' is a {type(opts).__name__}, expected a dict")
    opts = dict(opts)
    mapper_sd, n_dec, n_dec_values, other = {}, 0, 0, []
    for k, v in sd.items():
        k = str(k)
        if k.startswith("mapper."):
            mapper_sd[k[len("mapper."):]] = torch_pt.to_numpy(v, k, path).astype(np.float32)
        elif k.startswith("decoder."):
            n_dec += 1
            n_dec_values += int(getattr(v, "numel", lambda: 0)())
        else:
            other.append(k[:100])
    if not mapper_sd:
        raise CheckpointFormatError(f"{path}: no 'mapper.*' tensors in state_dict")
    try:
        config = config_from_opts(opts, mapper_sd, pixelnorm_axis)
        params = params_from_state_dict(mapper_sd, config)
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise CheckpointFormatError(f"{path}: not a StyleCLIP mapper this package can read ({msg})") from None
    if return_info:
        info = {"opts": opts, "num_mapper_tensors": len(mapper_sd), "num_decoder_tensors": n_dec,
                "num_decoder_values": n_dec_values, "other_keys": other}
        return params, config, info
    return params, config


# ---------------------------------------------------------------------------------------
# Thin Flax module
# ---------------------------------------------------------------------------------------
class LatentMapper(nn.Module):
    """Flax wrapper: one ``"mapper"`` param collection entry holding the official-keyed pytree.

    ``variables = LatentMapper(cfg).init(key, w)``; ``variables["params"]["mapper"]`` has the
    structure of :func:`init_mapper_params`, so imported params can be dropped in directly:
    ``{"params": {"mapper": params}}``.
    """
    config: MapperConfig = MapperConfig()

    @nn.compact
    def __call__(self, w):
        params = self.param("mapper", lambda key: init_mapper_params(key, self.config))
        return apply_mapper(params, w, self.config)
