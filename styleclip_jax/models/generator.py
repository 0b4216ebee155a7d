"""StyleGAN2 generator (NVlabs stylegan2-ada-pytorch `Generator`, skip architecture) in JAX.

The maths are pure functions of a param pytree and a static `GeneratorConfig`:

    ws  = mapping(params, config, z, truncation_psi=0.7)           # (N, z_dim) -> (N, num_ws, w_dim)
    s   = w_to_s(params, config, ws)                               # dict name -> (N, C), official order
    img = synthesis_from_s(params, config, s, noise_mode="const")  # (N, R, R, 3), NHWC, ~[-1, 1]
    img = synthesis(params, config, ws)                            # == synthesis_from_s(w_to_s(ws))

`Generator` bundles params + config (it is a pytree, so it can be passed through `jax.jit`),
and `StyleGAN2` is the thin Flax module whose `init` produces the same param pytree.

Param pytree = the official `G_ema.state_dict()` names split on '.', official tensor shapes:
  mapping/fc{i}/{weight (out, in), bias (out,)}, mapping/w_avg (w_dim,), [mapping/embed/...]
  synthesis/b4/const (C, 4, 4)
  synthesis/b{r}/{conv0,conv1}/{weight (O, I, 3, 3), bias (O,), noise_strength (), noise_const (r, r),
                                affine/{weight (I, w_dim), bias (I,)}}
  synthesis/b{r}/torgb/{weight (3, I, 1, 1), bias (3,), affine/{...}}
The fixed [1,3,3,1] resampling filters are not parameters.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Dict, Mapping, Optional

import flax.linen as nn
from flax import struct
import jax
import jax.numpy as jnp
import numpy as np

from . import layout as layout_lib
from . import ops

NOISE_MODES = ("const", "random", "none")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Static description of a generator (hashable, usable as a jit static argument)."""
    z_dim: int = 512
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    c_dim: int = 0
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: Optional[float] = None
    source: str = "nvlabs"

    @property
    def num_ws(self) -> int:
        return layout_lib.num_ws(self.img_resolution)

    @property
    def layout(self):
        return layout_lib.stylespace_layout(self.img_resolution, self.channel_base, self.channel_max,
                                            self.img_channels)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["num_ws"] = self.num_ws
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GeneratorConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names - {"num_ws", "kind"}
        if unknown:
            raise ValueError(f"GeneratorConfig: unknown fields {sorted(unknown)}")
        kw = {k: v for k, v in d.items() if k in names}
        cfg = cls(**kw)
        layout_lib.block_resolutions(cfg.img_resolution)  # validates
        if "num_ws" in d and int(d["num_ws"]) != cfg.num_ws:
            raise ValueError(f"GeneratorConfig: num_ws={d['num_ws']} does not match resolution "
                             f"{cfg.img_resolution} (expected {cfg.num_ws})")
        return cfg


# ---------------------------------------------------------------------------------------------
# Parameter shapes and initialisation
# ---------------------------------------------------------------------------------------------
def param_shapes(config: GeneratorConfig) -> Dict[str, Any]:
    """Nested dict of parameter shapes (tuples) for `config`."""
    m = {}
    in_f = config.z_dim + (config.w_dim if config.c_dim else 0)
    if config.c_dim:
        m["embed"] = {"weight": (config.w_dim, config.c_dim), "bias": (config.w_dim,)}
    for i in range(config.mapping_layers):
        out_f = config.w_dim
        m[f"fc{i}"] = {"weight": (out_f, in_f), "bias": (out_f,)}
        in_f = out_f
    m["w_avg"] = (config.w_dim,)
    syn: Dict[str, Any] = {}
    for l in config.layout:
        blk = syn.setdefault(l.block, {})
        if l.resolution == 4 and "const" not in blk:
            blk["const"] = (l.in_channels, 4, 4)
        affine = {"weight": (l.in_channels, config.w_dim), "bias": (l.in_channels,)}
        if l.is_torgb:
            blk["torgb"] = {"weight": (l.out_channels, l.in_channels, 1, 1),
                            "bias": (l.out_channels,), "affine": affine}
        else:
            blk[l.module] = {"weight": (l.out_channels, l.in_channels, 3, 3), "bias": (l.out_channels,),
                             "noise_strength": (), "noise_const": (l.resolution, l.resolution),
                             "affine": affine}
    return {"mapping": m, "synthesis": syn}


def _init_leaf(path, shape, key, config):
    name = path[-1]
    if name == "w_avg" or name == "noise_strength":
        return jnp.zeros(shape, jnp.float32)
    if name == "bias":
        if "affine" in path:
            return jnp.ones(shape, jnp.float32)  # official bias_init=1 for affines
        return jnp.zeros(shape, jnp.float32)
    w = jax.random.normal(key, shape, jnp.float32)
    if path[0] == "mapping" and name == "weight":
        w = w / config.mapping_lr_multiplier  # official: randn / lr_multiplier
    return w


def init_params(key: jax.Array, config: GeneratorConfig) -> Dict[str, Any]:
    """Random params with the official initialisation (randn weights, zero biases, affine bias 1)."""
    shapes = param_shapes(config)
    flat = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=lambda x: isinstance(x, tuple))[0]
    keys = jax.random.split(key, len(flat))
    leaves = {}
    for (path, shape), k in zip(flat, keys):
        names = tuple(p.key for p in path)
        leaves[names] = _init_leaf(names, shape, k, config)
    out: Dict[str, Any] = {}
    for names, v in leaves.items():
        d = out
        for n in names[:-1]:
            d = d.setdefault(n, {})
        d[names[-1]] = v
    return out


def check_params(params, config: GeneratorConfig, where: str = "params") -> None:
    """Raise a clear error if `params` does not have exactly the shapes `config` implies."""
    want = param_shapes(config)

    def walk(p, s, prefix):
        if isinstance(s, tuple):
            got = tuple(np.shape(p))
            if got != s:
                raise ValueError(f"{where}: {prefix} has shape {got}, expected {s}")
            return
        if not isinstance(p, Mapping):
            raise ValueError(f"{where}: {prefix or 'root'} should be a dict")
        missing = set(s) - set(p)
        extra = set(p) - set(s)
        if missing or extra:
            raise ValueError(f"{where}: at {prefix or 'root'} missing {sorted(missing)}, unexpected {sorted(extra)}")
        for k in s:
            walk(p[k], s[k], f"{prefix}.{k}" if prefix else k)

    walk(params, want, "")


# ---------------------------------------------------------------------------------------------
# Mapping network
# ---------------------------------------------------------------------------------------------
def _normalize_2nd_moment(x, eps=1e-8):
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=1, keepdims=True) + eps)


def _fc(p, x, lr_mul, act):
    w = p["weight"] * (lr_mul / math.sqrt(p["weight"].shape[1]))
    return ops.bias_act(x @ w.T, p["bias"] * lr_mul, act=act)


def mapping(params, config: GeneratorConfig, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
    """z (N, z_dim) [, c (N, c_dim)] -> ws (N, num_ws, w_dim).

    Truncation: w_avg + psi * (w - w_avg) on rows [:truncation_cutoff] (all rows if None).
    psi == 1 (a Python number) skips it exactly as the official code does.
    """
    p = params["mapping"]
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 2 or z.shape[1] != config.z_dim:
        raise ValueError(f"mapping: z must be (N, {config.z_dim}), got {z.shape}")
    x = _normalize_2nd_moment(z)
    if config.c_dim:
        if c is None:
            raise ValueError(f"mapping: this generator is conditional (c_dim={config.c_dim}); pass c")
        y = _normalize_2nd_moment(_fc(p["embed"], jnp.asarray(c, jnp.float32), 1.0, "linear"))
        x = jnp.concatenate([x, y], axis=1)
    for i in range(config.mapping_layers):
        x = _fc(p[f"fc{i}"], x, config.mapping_lr_multiplier, "lrelu")
    ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], config.num_ws, config.w_dim))
    return truncate(ws, p["w_avg"], truncation_psi, truncation_cutoff)


def truncate(ws, w_avg, truncation_psi=1.0, truncation_cutoff=None):
    """w_avg + psi * (ws - w_avg) on rows [:cutoff] of ws (N, num_ws, w_dim)."""
    if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
        return ws
    t = w_avg + truncation_psi * (ws - w_avg)
    if truncation_cutoff is None:
        return t
    rows = jnp.arange(ws.shape[1])[None, :, None] < truncation_cutoff
    return jnp.where(rows, t, ws)


# ---------------------------------------------------------------------------------------------
# StyleSpace and synthesis
# ---------------------------------------------------------------------------------------------
def _layer_params(params, l: layout_lib.SLayer):
    return params["synthesis"][l.block][l.module]


def affine_style(params, l: layout_lib.SLayer, w):
    """The affine of one S layer: w (N, w_dim) -> s (N, C); FC with gain 1/sqrt(w_dim), bias gain 1."""
    a = _layer_params(params, l)["affine"]
    return w @ (a["weight"] * (1.0 / math.sqrt(a["weight"].shape[1]))).T + a["bias"]


def w_to_s(params, config: GeneratorConfig, ws) -> Dict[str, jnp.ndarray]:
    """ws (N, num_ws, w_dim) -> StyleSpace dict {name: (N, C)} in official order."""
    ws = jnp.asarray(ws, jnp.float32)
    if ws.ndim != 3 or ws.shape[1:] != (config.num_ws, config.w_dim):
        raise ValueError(f"w_to_s: ws must be (N, {config.num_ws}, {config.w_dim}), got {ws.shape}")
    return {l.name: affine_style(params, l, ws[:, l.ws_index]) for l in config.layout}


def _noise(p, l, noise_mode, key, n, dtype):
    if noise_mode == "none":
        return None
    if noise_mode == "const":
        return (p["noise_const"] * p["noise_strength"])[None, :, :, None].astype(dtype)
    if noise_mode == "random":
        if key is None:
            raise ValueError("noise_mode='random' needs a noise_key")
        r = l.resolution
        return (jax.random.normal(key, (n, r, r, 1), dtype) * p["noise_strength"]).astype(dtype)
    raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def apply_layer(params, config: GeneratorConfig, l: layout_lib.SLayer, style, x, img,
                noise_mode="const", noise_key=None, modconv=ops.modulated_conv2d):
    """Run one S layer. State is (x: (N, r, r, C) features, img: (N, r', r', 3) RGB skip or None).

    Returns the new (x, img). conv layers update x; toRGB layers update img.
    """
    p = _layer_params(params, l)
    if l.is_torgb:
        gain = 1.0 / math.sqrt(l.in_channels)
        y = modconv(x, p["weight"], style * gain, demodulate=False)
        y = ops.bias_act(y, p["bias"], act="linear", clamp=config.conv_clamp)
        if img is not None:
            img = ops.upsample2d(img)
            y = img + y
        return x, y
    if x is None:  # b4: learned constant
        x = jnp.broadcast_to(jnp.transpose(params["synthesis"]["b4"]["const"], (1, 2, 0))[None],
                             (style.shape[0], 4, 4, l.in_channels)).astype(style.dtype)
    noise = _noise(p, l, noise_mode, noise_key, style.shape[0], x.dtype)
    x = modconv(x, p["weight"], style, noise=noise, up=2 if l.up else 1, padding=1, demodulate=True)
    x = ops.bias_act(x, p["bias"], act="lrelu", clamp=config.conv_clamp)
    return x, img


def _noise_keys(config, noise_key):
    convs = [l for l in config.layout if not l.is_torgb]
    if noise_key is None:
        return {l.name: None for l in convs}
    keys = jax.random.split(noise_key, len(convs))
    return {l.name: keys[i] for i, l in enumerate(convs)}


def synthesis_layers(params, config: GeneratorConfig, s: Mapping[str, jnp.ndarray], start: int = 0,
                     stop: Optional[int] = None, state=(None, None), noise_mode="const",
                     noise_key=None, modconv=ops.modulated_conv2d, remat: bool = False):
    """Run S layers [start, stop) from `state` = (x, img); returns the state after them.

    With start=0, stop=None and state=(None, None) this is the whole synthesis network; splitting
    the range lets callers reuse the activations before a layer (global-direction sweep).
    remat: wrap every S layer in `jax.checkpoint`, so a gradient keeps only the layers' inputs and
    recomputes what is inside a layer (padded, up-sampled and pre-activation tensors) in the backward
    pass: same values, less memory, about one more forward of compute.
    """
    layers = config.layout
    stop = len(layers) if stop is None else stop
    keys = _noise_keys(config, noise_key)
    x, img = state
    for l in layers[start:stop]:
        def layer(p, style, x, img, key, l=l):
            return apply_layer(p, config, l, style, x, img, noise_mode, key, modconv)
        if remat:
            layer = jax.checkpoint(layer)
        x, img = layer(params, jnp.asarray(s[l.name], jnp.float32), x, img, keys.get(l.name))
    return x, img


def synthesis_from_s(params, config: GeneratorConfig, s: Mapping[str, jnp.ndarray], noise_mode="const",
                     noise_key=None, modconv=ops.modulated_conv2d, remat: bool = False):
    """StyleSpace dict {name: (N, C)} -> images (N, R, R, img_channels), NHWC, official scale (~[-1, 1])."""
    missing = [l.name for l in config.layout if l.name not in s]
    if missing:
        raise ValueError(f"synthesis_from_s: missing S layers {missing}")
    for l in config.layout:
        if tuple(np.shape(s[l.name]))[-1:] != (l.channels,):
            raise ValueError(f"synthesis_from_s: S layer {l.name} must be (N, {l.channels}), got {np.shape(s[l.name])}")
    _, img = synthesis_layers(params, config, s, noise_mode=noise_mode, noise_key=noise_key, modconv=modconv,
                              remat=remat)
    return img


def synthesis(params, config: GeneratorConfig, ws, noise_mode="const", noise_key=None,
              modconv=ops.modulated_conv2d, remat: bool = False):
    """ws (N, num_ws, w_dim) -> images (N, R, R, img_channels), NHWC float32, official scale."""
    return synthesis_from_s(params, config, w_to_s(params, config, ws), noise_mode, noise_key, modconv, remat)


def synthesis_ref(params, config, ws, noise_mode="const", noise_key=None):
    """Slow reference synthesis: per-sample modulated weights (the official fused formulation)."""
    return synthesis(params, config, ws, noise_mode, noise_key, modconv=ops.modulated_conv2d_ref)


# ---------------------------------------------------------------------------------------------
# Generator: params + config, a pytree with convenient (jitted) methods
# ---------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("config", "truncation_psi", "truncation_cutoff"))
def _mapping_jit(params, z, c, config, truncation_psi, truncation_cutoff):
    return mapping(params, config, z, c, truncation_psi, truncation_cutoff)


@functools.partial(jax.jit, static_argnames=("config", "noise_mode"))
def _synthesis_jit(params, ws, noise_key, config, noise_mode):
    return synthesis(params, config, ws, noise_mode, noise_key)


@functools.partial(jax.jit, static_argnames=("config", "noise_mode"))
def _synthesis_from_s_jit(params, s, noise_key, config, noise_mode):
    return synthesis_from_s(params, config, s, noise_mode, noise_key)


@functools.partial(jax.jit, static_argnames=("config",))
def _w_to_s_jit(params, ws, config):
    return w_to_s(params, config, ws)


def _is_static_number(x):
    return isinstance(x, (int, float)) or (isinstance(x, np.ndarray) and x.ndim == 0)


@struct.dataclass
class Generator:
    """A StyleGAN2 generator: `params` (pytree leaves) + `cfg` (the static GeneratorConfig).

    Methods take and return NHWC float32 arrays and work eagerly (jit-compiled per shape) and
    inside user `jax.jit` / `jax.vmap` / `jax.grad` (Generator is a pytree: pass it as an
    argument to keep the weights out of the compiled constants). `G.config` is the config as a dict.
    """
    params: Any
    cfg: GeneratorConfig = struct.field(pytree_node=False)

    def __post_init__(self):
        if isinstance(self.cfg, Mapping):
            object.__setattr__(self, "cfg", GeneratorConfig.from_dict(self.cfg))

    @property
    def _config(self) -> GeneratorConfig:
        return self.cfg

    @property
    def config(self) -> Dict[str, Any]:
        return self.cfg.to_dict()

    @property
    def module(self) -> "StyleGAN2":
        return StyleGAN2(self._config)

    @property
    def layout(self):
        return self._config.layout

    @property
    def num_ws(self) -> int:
        """Rows of W+ (one per style input of the synthesis network)."""
        return self._config.num_ws

    @property
    def z_dim(self) -> int:
        return self._config.z_dim

    @property
    def w_dim(self) -> int:
        return self._config.w_dim

    @property
    def img_resolution(self) -> int:
        return self._config.img_resolution

    resolution = img_resolution

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        """(N, z_dim) -> (N, num_ws, w_dim)."""
        if _is_static_number(truncation_psi):
            return _mapping_jit(self.params, z, c, self._config, float(truncation_psi), truncation_cutoff)
        return mapping(self.params, self._config, z, c, truncation_psi, truncation_cutoff)

    def synthesis(self, ws, noise_mode="const", noise_key=None):
        """(N, num_ws, w_dim) -> (N, R, R, 3) NHWC float32, official scale (~[-1, 1], not clipped)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return _synthesis_jit(self.params, ws, noise_key, self._config, noise_mode)

    def w_to_s(self, ws):
        """(N, num_ws, w_dim) -> {S layer name: (N, C)} in official order."""
        s = _w_to_s_jit(self.params, ws, self._config)
        return {l.name: s[l.name] for l in self._config.layout}  # jit sorts dict keys; restore S order

    def synthesis_from_s(self, s, noise_mode="const", noise_key=None):
        """{S layer name: (N, C)} -> (N, R, R, 3)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return _synthesis_from_s_jit(self.params, dict(s), noise_key, self._config, noise_mode)

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const", noise_key=None):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode, noise_key)

    def mean_w(self):
        """The tracked average w (w_dim,)."""
        return self.params["mapping"]["w_avg"]

    def __repr__(self):
        c = self._config
        return (f"Generator({c.img_resolution}px, z={c.z_dim}, w={c.w_dim}, num_ws={c.num_ws}, "
                f"channel_base={c.channel_base}, channel_max={c.channel_max}, source={c.source})")


def seeds_to_z(seeds, z_dim: int) -> np.ndarray:
    """Official NVlabs convention: z = np.random.RandomState(seed).randn(1, z_dim) per seed."""
    return np.concatenate([np.random.RandomState(int(s)).randn(1, z_dim) for s in seeds]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Thin Flax module
# ---------------------------------------------------------------------------------------------
class _ParamTree(nn.Module):
    """Declares a nested dict of parameters; returns them as a dict."""
    shapes: Any
    config: GeneratorConfig
    path: tuple = ()

    @nn.compact
    def __call__(self):
        out = {}
        for k, v in self.shapes.items():
            if isinstance(v, Mapping):
                out[k] = _ParamTree(v, self.config, self.path + (k,), name=k)()
            else:
                path = self.path + (k,)
                out[k] = self.param(k, lambda key, shape, path=path: _init_leaf(path, shape, key, self.config), v)
        return out


class StyleGAN2(nn.Module):
    """Flax wrapper: `variables = StyleGAN2(cfg).init(key, z)`; variables['params'] is the same
    pytree the pure functions take. Methods: __call__(z) -> images, mapping, synthesis,
    w_to_s, synthesis_from_s (use `module.apply(variables, ..., method=...)`)."""
    config: GeneratorConfig

    @nn.compact
    def _params(self):
        shapes = param_shapes(self.config)
        return {k: _ParamTree(v, self.config, (k,), name=k)() for k, v in shapes.items()}

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const", noise_key=None):
        p = self._params()
        ws = mapping(p, self.config, z, c, truncation_psi, truncation_cutoff)
        return synthesis(p, self.config, ws, noise_mode, noise_key)

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        return mapping(self._params(), self.config, z, c, truncation_psi, truncation_cutoff)

    def synthesis(self, ws, noise_mode="const", noise_key=None):
        return synthesis(self._params(), self.config, ws, noise_mode, noise_key)

    def w_to_s(self, ws):
        return w_to_s(self._params(), self.config, ws)

    def synthesis_from_s(self, s, noise_mode="const", noise_key=None):
        return synthesis_from_s(self._params(), self.config, s, noise_mode, noise_key)
