"""e4e (``Encoder4Editing``) and pSp (``GradualStyleEncoder``) image encoders to W+: pure functions over params.

As in omertov/encoder4editing ``models/encoders/psp_encoders.py`` (eval mode), NHWC throughout:

* backbone: the IR-SE network of ``irse.py`` (officially IR-SE-50, 3/4/14/3 units of 64/128/256/512 channels);
  ``c1``, ``c2``, ``c3`` are the features after the last unit of stages 2, 3, 4 (body units 6, 20, 23).
* feature pyramid: ``p2 = up(c3) + latlayer1(c2)``, ``p1 = up(p2) + latlayer2(c1)``; ``up`` is bilinear with
  ``align_corners=True`` to the lateral map's size; latlayers are 1x1 convs with bias.
* style blocks (``GradualStyleBlock``): log2(spatial) conv3x3 stride 2 pad 1 (+bias) each followed by
  LeakyReLU(0.01), down to 1x1, then EqualLinear ``x @ (W / sqrt(in)).T + b``.  Rows ``< coarse_ind`` (3)
  read c3, rows ``< middle_ind`` (7) read p2, the rest read p1.
* e4e: ``w = styles[0](c3)`` on every row, plus ``styles[i](features)`` on row i >= 1 (inference stage).
  pSp: row i is ``styles[i](features)``.
* ``encode`` adds ``latent_avg`` ((num_ws, w_dim) or (w_dim,)) when ``start_from_latent_avg``.

Backbone depth/width, the number of W+ rows and the input size are configuration (:class:`EncoderConfig`),
so a small encoder uses the same code.  Params: ``{'input', 'body'}`` (irse) + ``'latlayer1'``, ``'latlayer2'``
(``{'kernel': (1,1,Cin,Cout), 'bias'}``) + ``'styles': {'style_00': {'convs': {'conv_0': {'kernel', 'bias'}, ...},
'linear': {'kernel': (in, out) raw, 'bias'}}, ...}``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

import flax.linen as nn
from flax import struct
import jax
import jax.numpy as jnp
import numpy as np

from . import irse

Params = Dict[str, Any]

E4E = "Encoder4Editing"
PSP = "GradualStyleEncoder"
ENCODER_TYPES = (E4E, PSP)
MODEL_NAME = "psp_encoder"
LEAKY_SLOPE = 0.01


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Static description of an encoder (hashable: used as a jit static argument)."""

    encoder_type: str = E4E
    stage_units: Tuple[int, ...] = irse.STAGE_UNITS[50]
    stage_depths: Tuple[int, ...] = irse.STAGE_DEPTHS
    num_ws: int = 18
    w_dim: int = 512
    input_size: int = 256
    coarse_ind: int = 3
    middle_ind: int = 7
    start_from_latent_avg: bool = True
    se: bool = True

    def __post_init__(self):
        object.__setattr__(self, "stage_units", tuple(int(v) for v in self.stage_units))
        object.__setattr__(self, "stage_depths", tuple(int(v) for v in self.stage_depths))
        if self.encoder_type not in ENCODER_TYPES:
            raise ValueError(f"encoder_type must be one of {ENCODER_TYPES}, got {self.encoder_type!r}")
        if len(self.stage_units) != 4:
            raise ValueError(f"the feature pyramid reads stages 2-4: stage_units must have 4 entries, got "
                             f"{self.stage_units}")
        if self.input_size % 2 ** len(self.stage_units) or not _is_pow2(self.input_size // 16):
            raise ValueError(f"input_size must be 16 * a power of two, got {self.input_size}")
        if self.num_ws < 1 or not 0 < self.coarse_ind <= self.middle_ind:
            raise ValueError(f"need num_ws >= 1 and 0 < coarse_ind <= middle_ind, got {self.num_ws}, "
                             f"{self.coarse_ind}, {self.middle_ind}")

    @property
    def specs(self):
        return irse.unit_specs(self.stage_units, self.stage_depths)

    @property
    def feature_units(self) -> Tuple[int, int, int]:
        """Body indices of c1, c2, c3 (6, 20, 23 for IR-SE-50)."""
        return irse.stage_ends(self.stage_units)[1:]

    def style_spatial(self, i: int) -> int:
        """Side of the map style block i reads (16, 32 or 64 at input 256)."""
        c3 = self.input_size // 2 ** len(self.stage_units)
        return c3 if i < self.coarse_ind else (2 * c3 if i < self.middle_ind else 4 * c3)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stage_units"], d["stage_depths"] = list(self.stage_units), list(self.stage_depths)
        return d

    @classmethod
    def from_dict(cls, d) -> "EncoderConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def num_ws_for(stylegan_size: int) -> int:
    """W+ rows of a StyleGAN2 of resolution ``stylegan_size``: 2 log2(size) - 2 (18 at 1024)."""
    return 2 * int(math.log2(stylegan_size)) - 2


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------
def upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix of ``F.interpolate(mode='bilinear', align_corners=True)``
    along one axis: output i samples input position i (n_in - 1) / (n_out - 1)."""
    m = np.zeros((n_out, n_in), np.float64)
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    for i in range(n_out):
        src = i * scale
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m.astype(np.float32)


def upsample_add(x, y):
    """Bilinear (align_corners=True) resize of x (N,h,w,C) to y's (N,H,W,C) size, plus y."""
    mh = jnp.asarray(upsample_matrix(x.shape[1], y.shape[1]))
    mw = jnp.asarray(upsample_matrix(x.shape[2], y.shape[2]))
    x = jnp.einsum("ih,nhwc->niwc", mh, x, precision=irse.HIGHEST)
    x = jnp.einsum("jw,niwc->nijc", mw, x, precision=irse.HIGHEST)
    return x + y


def conv_bias(x, p, stride: int = 1, padding: int = 0):
    return irse.conv(x, p["kernel"], stride=stride, padding=padding) + p["bias"]


def style_block(p, x):
    """GradualStyleBlock. x: (N, s, s, Cin) -> (N, w_dim); its log2(s) stride-2 convs must reach 1x1."""
    for k in range(len(p["convs"])):
        x = jax.nn.leaky_relu(conv_bias(x, p["convs"][f"conv_{k}"], stride=2, padding=1), LEAKY_SLOPE)
    if x.shape[1:3] != (1, 1):
        raise ValueError(f"style block ends on a {x.shape[1]}x{x.shape[2]} map, expected 1x1: the input size "
                         "does not match the encoder's")
    x = x[:, 0, 0, :]
    lin = p["linear"]
    scale = 1.0 / math.sqrt(lin["kernel"].shape[0])  # EqualLinear, lr_mul 1
    return jnp.dot(x, lin["kernel"] * scale, precision=irse.HIGHEST) + lin["bias"]


def _style_name(i: int) -> str:
    return f"style_{i:02d}"


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------
def _check_images(images, cfg: EncoderConfig):
    images = jnp.asarray(images, jnp.float32)
    s = cfg.input_size
    if images.ndim != 4 or images.shape[1:] != (s, s, 3):
        raise ValueError(f"images must be NHWC (N, {s}, {s}, 3) in [-1, 1] (the encoder's input size), got "
                         f"shape {images.shape}")
    return images


def features_fn(params: Params, cfg: EncoderConfig, images):
    """Backbone. images: (N, S, S, 3) in [-1, 1] -> (c1, c2, c3) NHWC (S/4, S/8, S/16 px at 4 stages)."""
    images = _check_images(images, cfg)
    i1, i2, i3 = cfg.feature_units
    _, kept = irse.body(params, images, cfg.specs[:i3 + 1], keep=(i1, i2, i3))
    return kept[i1], kept[i2], kept[i3]


def codes_from_features_fn(params: Params, cfg: EncoderConfig, c1, c2, c3):
    """Style heads on the backbone features -> raw codes (N, num_ws, w_dim) (no latent_avg)."""
    styles = params["styles"]
    pyramid = {}

    def feats(i):
        if i < cfg.coarse_ind:
            return c3
        if "p2" not in pyramid:
            pyramid["p2"] = upsample_add(c3, conv_bias(c2, params["latlayer1"]))
        if i < cfg.middle_ind:
            return pyramid["p2"]
        if "p1" not in pyramid:
            pyramid["p1"] = upsample_add(pyramid["p2"], conv_bias(c1, params["latlayer2"]))
        return pyramid["p1"]

    rows = [style_block(styles[_style_name(i)], feats(i)) for i in range(cfg.num_ws)]
    if cfg.encoder_type == E4E:
        w0 = rows[0]
        rows = [w0] + [w0 + r for r in rows[1:]]
    return jnp.stack(rows, axis=1)


def codes_fn(params: Params, cfg: EncoderConfig, images):
    """Raw encoder output. images: (N, S, S, 3) in [-1, 1] -> (N, num_ws, w_dim)."""
    return codes_from_features_fn(params, cfg, *features_fn(params, cfg, images))


def encode_fn(params: Params, latent_avg, cfg: EncoderConfig, images):
    """W+ for the generator: codes (+ latent_avg when cfg.start_from_latent_avg). -> (N, num_ws, w_dim)."""
    return add_latent_avg(codes_fn(params, cfg, images), latent_avg, cfg)


def add_latent_avg(codes, latent_avg, cfg: EncoderConfig):
    """pSp's forward: codes (N, num_ws, w_dim) + latent_avg ((num_ws, w_dim) or (w_dim,)) when
    cfg.start_from_latent_avg, else codes unchanged."""
    if not cfg.start_from_latent_avg:
        return codes
    return codes + jnp.reshape(latent_avg, (-1, cfg.w_dim))[None]


_codes_jit = jax.jit(codes_fn, static_argnums=1)
_encode_jit = jax.jit(encode_fn, static_argnums=2)
_features_jit = jax.jit(features_fn, static_argnums=1)


# --------------------------------------------------------------------------------------------
# Encoder object (pytree)
# --------------------------------------------------------------------------------------------
@struct.dataclass
class Encoder:
    """An e4e/pSp encoder: params pytree + ``latent_avg`` (leaves) and a static :class:`EncoderConfig`.

    ``E.encode(images)`` -> W+ (N, num_ws, w_dim) for NHWC images in [-1, 1] at ``E.input_size``;
    ``E.codes(images)`` the raw encoder output; ``E.features(images)`` -> (c1, c2, c3).
    """

    params: Params
    config: EncoderConfig = struct.field(pytree_node=False)
    latent_avg: Any = None  # (num_ws, w_dim) or (w_dim,); required when config.start_from_latent_avg

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def w_dim(self) -> int:
        return self.config.w_dim

    def codes(self, images):
        return _codes_jit(self.params, self.config, images)

    def encode(self, images):
        return _encode_jit(self.params, self.latent_avg, self.config, images)

    def features(self, images):
        return _features_jit(self.params, self.config, images)

    @property
    def module(self) -> "PSPEncoder":
        return PSPEncoder(self.config)

    @property
    def variables(self):
        """Variables of :attr:`module`: ``{'params': {'encoder': params, 'latent_avg': ...}}``."""
        p = {"encoder": self.params}
        if self.latent_avg is not None:
            p["latent_avg"] = self.latent_avg
        return {"params": p}

    def __repr__(self):
        c = self.config
        return (f"Encoder({c.encoder_type}, stages {c.stage_units} x {c.stage_depths}, {c.num_ws} x {c.w_dim} "
                f"W+, input {c.input_size}px)")


class PSPEncoder(nn.Module):
    """Thin Flax module over the same params: ``variables['params'] = {'encoder': <params>, 'latent_avg'}``.
    ``__call__(images)`` -> W+ (``encode``); ``codes(images)`` the raw output (``module.apply(..., method=...)``)."""
    config: EncoderConfig

    @nn.compact
    def _params(self):
        params = self.param("encoder", lambda rng: init_encoder_params(rng, self.config))
        latent_avg = None
        if self.config.start_from_latent_avg:
            latent_avg = self.param("latent_avg", lambda rng: jnp.zeros((self.config.num_ws, self.config.w_dim)))
        return params, latent_avg

    def __call__(self, images):
        params, latent_avg = self._params()
        return encode_fn(params, latent_avg, self.config, images)

    def codes(self, images):
        return codes_fn(self._params()[0], self.config, images)


def init_encoder_params(rng, cfg: EncoderConfig) -> Params:
    """Random params with the converted layout (for tests and training from scratch)."""
    k_bb, k_lat1, k_lat2, k_st = jax.random.split(rng, 4)
    params = irse.init_backbone_params(k_bb, cfg.specs, se=cfg.se)
    d1, d2, d3 = cfg.stage_depths[1:]
    params["latlayer1"] = {"kernel": irse.he_init(k_lat1, (1, 1, d2, d3)), "bias": jnp.zeros((d3,), jnp.float32)}
    params["latlayer2"] = {"kernel": irse.he_init(k_lat2, (1, 1, d1, d3)), "bias": jnp.zeros((d3,), jnp.float32)}
    styles = {}
    for i, key in enumerate(jax.random.split(k_st, cfg.num_ws)):
        n = int(math.log2(cfg.style_spatial(i)))
        keys = jax.random.split(key, n + 1)
        convs = {f"conv_{k}": {"kernel": irse.he_init(keys[k], (3, 3, d3 if k == 0 else cfg.w_dim, cfg.w_dim)),
                               "bias": jnp.zeros((cfg.w_dim,), jnp.float32)} for k in range(n)}
        styles[_style_name(i)] = {"convs": convs,
                                  "linear": {"kernel": jax.random.normal(keys[n], (cfg.w_dim, cfg.w_dim)),
                                             "bias": jnp.zeros((cfg.w_dim,), jnp.float32)}}
    params["styles"] = styles
    return params


# --------------------------------------------------------------------------------------------
# conversion from the official state dict
# --------------------------------------------------------------------------------------------
def encoder_from_state_dict(sd, encoder_type: str, latent_avg=None, *, start_from_latent_avg: Optional[bool] = None,
                            num_ws: Optional[int] = None, source: str = "state dict") -> Encoder:
    """Build an :class:`Encoder` from an official ``Encoder4Editing``/``GradualStyleEncoder`` state dict.

    ``sd`` maps official keys (``input_layer.0.weight``, ``body.3.res_layer.1.weight``, ``styles.5.convs.2.bias``,
    ``latlayer1.weight``, ...; an ``encoder.`` prefix is stripped) to tensors or arrays.  Depth, width, W+ rows
    and input size are read from the shapes; ``num_ws`` (e.g. from opts.stylegan_size) is checked if given.
    ``start_from_latent_avg`` defaults to ``latent_avg is not None``.
    """
    from ..errors import CheckpointFormatError

    arrays = {(k[len("encoder."):] if k.startswith("encoder.") else k): v for k, v in sd.items()}
    reader = irse.StateDictReader(arrays, source, f"an e4e/pSp encoder ({encoder_type}) state dict")
    stage_units, stage_depths = irse.infer_stages(reader)
    if len(stage_units) != 4:
        raise CheckpointFormatError(f"{source}: the encoder body has {len(stage_units)} stages {stage_units}, "
                                    "expected 4")
    n_styles = len({k.split(".")[1] for k in arrays if k.startswith("styles.")})
    if num_ws is not None and n_styles != num_ws:
        raise CheckpointFormatError(f"{source}: {n_styles} style blocks, but the options say {num_ws} W+ rows")
    if n_styles == 0:
        raise CheckpointFormatError(f"{source}: no styles.* keys; not an e4e/pSp encoder state dict")
    styles = {}
    for i in range(n_styles):
        conv_ids = sorted({int(k.split(".")[3]) for k in arrays if k.startswith(f"styles.{i}.convs.")})
        if conv_ids != list(range(0, 2 * len(conv_ids), 2)):
            raise CheckpointFormatError(f"{source}: styles.{i}.convs has layers {conv_ids}, expected 0, 2, 4, ...")
        convs = {f"conv_{k}": reader.conv(f"styles.{i}.convs.{j}", bias=True) for k, j in enumerate(conv_ids)}
        w = reader.get(f"styles.{i}.linear.weight", 2)
        styles[_style_name(i)] = {"convs": convs, "linear": {"kernel": jnp.asarray(w.T),
                                                             "bias": jnp.asarray(reader.get(f"styles.{i}.linear.bias", 1))}}
    w_dim = int(styles[_style_name(0)]["linear"]["kernel"].shape[1])
    input_size = 2 ** len(styles[_style_name(0)]["convs"]) * 2 ** len(stage_units)
    specs = irse.unit_specs(stage_units, stage_depths)
    params = irse.backbone_from_state_dict(reader, specs)
    params["latlayer1"] = reader.conv("latlayer1", bias=True)
    params["latlayer2"] = reader.conv("latlayer2", bias=True)
    params["styles"] = styles
    unused = reader.unused()
    if unused:
        raise CheckpointFormatError(f"{source}: unexpected keys {unused[:5]}{'...' if len(unused) > 5 else ''}")
    if start_from_latent_avg is None:
        start_from_latent_avg = latent_avg is not None
    try:
        cfg = EncoderConfig(encoder_type=encoder_type, stage_units=stage_units, stage_depths=stage_depths,
                            num_ws=n_styles, w_dim=w_dim, input_size=input_size,
                            start_from_latent_avg=bool(start_from_latent_avg),
                            se="se" in params["body"][irse.unit_name(0)])
    except ValueError as e:
        raise CheckpointFormatError(f"{source}: {e}") from None
    check_params(params, cfg, source)
    if latent_avg is not None:
        latent_avg = check_latent_avg(latent_avg, cfg, source)
    elif cfg.start_from_latent_avg:
        raise CheckpointFormatError(f"{source}: start_from_latent_avg is set but the checkpoint has no latent_avg")
    return Encoder(params, cfg, latent_avg)


def check_latent_avg(latent_avg, cfg: EncoderConfig, source: str):
    from ..errors import CheckpointFormatError

    a = np.asarray(irse.to_numpy(latent_avg), np.float32)
    if a.shape not in ((cfg.w_dim,), (cfg.num_ws, cfg.w_dim)):
        raise CheckpointFormatError(f"{source}: latent_avg has shape {a.shape}, expected ({cfg.w_dim},) or "
                                    f"({cfg.num_ws}, {cfg.w_dim})")
    return jnp.asarray(a)


def check_params(params: Params, cfg: EncoderConfig, source: str) -> None:
    """Raise CheckpointFormatError naming ``source`` when the params do not have the shapes ``cfg`` implies."""
    from ..errors import CheckpointFormatError

    want = jax.eval_shape(lambda: init_encoder_params(jax.random.PRNGKey(0), cfg))
    got_paths = {jax.tree_util.keystr(p): np.shape(v) for p, v in jax.tree_util.tree_leaves_with_path(params)}
    for p, v in jax.tree_util.tree_leaves_with_path(want):
        k = jax.tree_util.keystr(p)
        if k not in got_paths:
            raise CheckpointFormatError(f"{source}: encoder params lack {k} for config {cfg}")
        if tuple(got_paths[k]) != tuple(v.shape):
            raise CheckpointFormatError(f"{source}: encoder param {k} has shape {tuple(got_paths[k])}, expected "
                                        f"{tuple(v.shape)}")
    extra = set(got_paths) - {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(want)}
    if extra:
        raise CheckpointFormatError(f"{source}: unexpected encoder params {sorted(extra)[:5]}")
