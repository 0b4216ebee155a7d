"""ArcFace IR-SE50 identity network (JAX) and the StyleCLIP identity loss.

The network is the TreB1eN / pSp ``Backbone(112, 50, mode='ir_se')`` used by StyleCLIP's
``criteria/id_loss.py``.  Everything is NHWC internally; weights converted from the PyTorch
``model_ir_se50.pth`` state dict are re-laid-out once at load time.

Architecture (eval mode: BatchNorm uses running statistics with eps 1e-5, Dropout is off):

* input layer: conv3x3(3->64, stride 1, pad 1, no bias) -> BN -> PReLU
* body: 4 stages of bottleneck units (50 layers: 3, 4, 14, 3 units with depths 64, 128, 256, 512);
  the first unit of every stage has stride 2.  One unit computes
  ``res = SE(BN(conv3x3_s(PReLU(conv3x3_1(BN(x))))))`` and adds a shortcut that is
  ``x[:, ::s, ::s]`` when the channel count does not change and ``BN(conv1x1_s(x))`` otherwise.
  SE: global mean -> 1x1 conv (C -> C/16) -> ReLU -> 1x1 conv (C/16 -> C) -> sigmoid -> scale.
* output layer: BN2d -> (Dropout, inactive) -> flatten -> Linear(512*7*7 -> 512) -> BN1d,
  then L2 normalisation.  PyTorch flattens NCHW (channel-major); the converter permutes the
  Linear weight so that it applies directly to an NHWC flatten.

Public API::

    arc = load_arcface("model_ir_se50.pth")     # or a folder written by convert_arcface.py
    f = arc.features(images)                    # (N, H, W, 3) in ~[-1, 1] -> (N, 512), unit norm
    loss = identity_loss(arc, edited, original) # scalar, gradient only through `edited`
    sim = identity_similarity(arc, a, b)        # (N,) cosine similarity

``ArcFace`` is a pytree (the params are its leaves), so it can be passed through ``jax.jit`` and
``jax.grad``; ``features_fn(params, images)`` is the equivalent pure function.
"""
from __future__ import annotations

import os
import pathlib
import re
from typing import Any, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..checkpoints import CheckpointFormatError  # a ValueError subclass; numpy-only module

Params = Dict[str, Any]

BN_EPS = 1e-5
SE_REDUCTION = 16
FACE_SIZE = 112
MODEL_NAME = "arcface_ir_se"

_STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
_STAGE_DEPTHS = (64, 128, 256, 512)
_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------
# architecture description
# --------------------------------------------------------------------------------------------
def unit_specs(num_layers: int = 50) -> Tuple[Tuple[int, int, int], ...]:
    """(in_channels, depth, stride) of every bottleneck unit, in body order."""
    if num_layers not in _STAGE_UNITS:
        raise ValueError(f"num_layers must be one of {sorted(_STAGE_UNITS)}, got {num_layers}")
    specs = []
    in_ch = 64
    for depth, n in zip(_STAGE_DEPTHS, _STAGE_UNITS[num_layers]):
        specs.append((in_ch, depth, 2))
        specs.extend((depth, depth, 1) for _ in range(n - 1))
        in_ch = depth
    return tuple(specs)


def _unit_name(i: int) -> str:
    return f"unit_{i:02d}"


# --------------------------------------------------------------------------------------------
# layers (pure functions)
# --------------------------------------------------------------------------------------------
def _conv(x, kernel, stride: int = 1, padding: int = 0):
    """x: (N,H,W,Cin), kernel: (kh,kw,Cin,Cout) HWIO -> (N,H',W',Cout), symmetric zero padding."""
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)


def _batch_norm(x, p):
    """Inference BatchNorm over the last axis. p: {'scale','bias','mean','var'} each (C,)."""
    inv = p["scale"] * jax.lax.rsqrt(p["var"] + BN_EPS)
    return (x - p["mean"]) * inv + p["bias"]


def _prelu(x, alpha):
    """Per-channel PReLU; alpha: (C,)."""
    return jnp.where(x >= 0, x, alpha * x)


def _squeeze_excite(x, p):
    """x: (N,H,W,C); p: {'fc1': (C, C/16), 'fc2': (C/16, C)}."""
    s = jnp.mean(x, axis=(1, 2))
    s = jax.nn.relu(jnp.dot(s, p["fc1"], precision=_HIGHEST))
    s = jax.nn.sigmoid(jnp.dot(s, p["fc2"], precision=_HIGHEST))
    return x * s[:, None, None, :]


def _unit(x, p, stride: int):
    if "shortcut_conv" in p:
        shortcut = _batch_norm(_conv(x, p["shortcut_conv"], stride=stride), p["shortcut_bn"])
    else:  # MaxPool2d(kernel 1, stride s) == subsampling
        shortcut = x[:, ::stride, ::stride, :]
    r = _batch_norm(x, p["bn1"])
    r = _conv(r, p["conv1"], stride=1, padding=1)
    r = _prelu(r, p["prelu"])
    r = _conv(r, p["conv2"], stride=stride, padding=1)
    r = _batch_norm(r, p["bn2"])
    if "se" in p:
        r = _squeeze_excite(r, p["se"])
    return r + shortcut


def l2_normalize(x, axis: int = -1):
    """x / ||x||_2 along `axis` (no epsilon, as the official l2_norm)."""
    return x / jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True))


def backbone_fn(params: Params, faces, num_layers: int = 50):
    """IR-SE backbone. faces: (N, 112, 112, 3) float32 -> (N, 512) L2-normalised embeddings."""
    x = jnp.asarray(faces, jnp.float32)
    pin = params["input"]
    x = _conv(x, pin["conv"], stride=1, padding=1)
    x = _prelu(_batch_norm(x, pin["bn"]), pin["prelu"])
    for i, (_, _, stride) in enumerate(unit_specs(num_layers)):
        x = _unit(x, params["body"][_unit_name(i)], stride)
    pout = params["output"]
    x = _batch_norm(x, pout["bn2d"])
    x = x.reshape(x.shape[0], -1)  # NHWC flatten; the Linear kernel was permuted to match
    x = jnp.dot(x, pout["linear"]["kernel"], precision=_HIGHEST) + pout["linear"]["bias"]
    x = _batch_norm(x, pout["bn1d"])
    return l2_normalize(x)


# --------------------------------------------------------------------------------------------
# face crop / adaptive pooling
# --------------------------------------------------------------------------------------------
def adaptive_pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of torch AdaptiveAvgPool windows: row i averages
    input [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out))."""
    m = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m.astype(np.float32)


def adaptive_avg_pool(x, size: Tuple[int, int]):
    """torch.nn.AdaptiveAvgPool2d for NHWC input. x: (N,H,W,C) -> (N,size[0],size[1],C)."""
    ph = jnp.asarray(adaptive_pool_matrix(x.shape[1], size[0]))
    pw = jnp.asarray(adaptive_pool_matrix(x.shape[2], size[1]))
    x = jnp.einsum("ih,nhwc->niwc", ph, x, precision=_HIGHEST)
    return jnp.einsum("jw,niwc->nijc", pw, x, precision=_HIGHEST)


def face_input(images):
    """StyleCLIP ``IDLoss.extract_feats`` preprocessing.

    images: (N, H, W, 3) in ~[-1, 1].  If H != 256 (only the height is checked, as in the official
    code) the image is first adaptive-average-pooled to 256x256; then rows 35:223 and columns
    32:220 are cropped (188x188) and adaptive-average-pooled to (N, 112, 112, 3).
    """
    images = jnp.asarray(images, jnp.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be NHWC (N, H, W, C), got shape {images.shape}")
    if images.shape[1] != 256:
        images = adaptive_avg_pool(images, (256, 256))
    crop = images[:, 35:223, 32:220, :]
    return adaptive_avg_pool(crop, (FACE_SIZE, FACE_SIZE))


def features_fn(params: Params, images, num_layers: int = 50):
    """Pure identity features. images: (N, H, W, 3) ~[-1, 1] -> (N, 512), unit norm."""
    return backbone_fn(params, face_input(images), num_layers)


_backbone_jit = jax.jit(backbone_fn, static_argnames=("num_layers",))
_face_input_jit = jax.jit(face_input)


# --------------------------------------------------------------------------------------------
# ArcFace object (pytree) and losses
# --------------------------------------------------------------------------------------------
@jax.tree_util.register_pytree_node_class
class ArcFace:
    """IR-SE ArcFace network: params pytree (leaves) + static ``num_layers``."""

    def __init__(self, params: Params, num_layers: int = 50):
        self.params = params
        self.num_layers = int(num_layers)

    def tree_flatten(self):
        return (self.params,), (self.num_layers,)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)

    @property
    def config(self) -> Dict[str, Any]:
        return {"num_layers": self.num_layers, "mode": "ir_se" if _has_se(self.params) else "ir",
                "input_size": FACE_SIZE}

    def face_input(self, images):
        """(N, H, W, 3) -> cropped and pooled (N, 112, 112, 3) backbone input."""
        return _face_input_jit(images)

    def backbone(self, faces):
        """(N, 112, 112, 3) -> (N, 512) L2-normalised embeddings (no crop/pool)."""
        return _backbone_jit(self.params, faces, num_layers=self.num_layers)

    def features(self, images):
        """(N, H, W, 3) ~[-1, 1], any size -> (N, 512) L2-normalised identity features."""
        return self.backbone(self.face_input(images))

    __call__ = features

    def __repr__(self):
        n = sum(int(np.prod(np.shape(a))) for a in jax.tree_util.tree_leaves(self.params))
        return f"ArcFace(num_layers={self.num_layers}, n_params={n})"


def identity_similarity(arc: ArcFace, a, b):
    """Cosine similarity of identity features, (N, H, W, 3) x2 -> (N,)."""
    return jnp.sum(arc.features(a) * arc.features(b), axis=-1)


def identity_loss(arc: ArcFace, edited, original):
    """StyleCLIP ID loss: mean_i (1 - <f(edited)_i, stop_gradient(f(original)_i)>) -> scalar.

    edited, original: (N, H, W, 3) in ~[-1, 1]; no gradient flows into `original`.
    """
    target = jax.lax.stop_gradient(arc.features(original))
    return jnp.mean(1.0 - jnp.sum(arc.features(edited) * target, axis=-1))


# --------------------------------------------------------------------------------------------
# thin Flax module
# --------------------------------------------------------------------------------------------
class IRSE50(nn.Module):
    """Flax wrapper: variables ``{'params': {'arcface': <params pytree>}}``.

    ``__call__(images)`` maps (N, H, W, 3) ~[-1, 1] to (N, 512) identity features
    (``face_crop=False`` skips the crop/pool and expects (N, 112, 112, 3)).
    Fresh init follows PyTorch's default initialisers only loosely; load real weights with
    ``arcface_params_from_state_dict`` / ``load_arcface``.
    """

    num_layers: int = 50

    @nn.compact
    def __call__(self, images, face_crop: bool = True):
        params = self.param("arcface", lambda rng: init_arcface_params(rng, self.num_layers))
        x = face_input(images) if face_crop else images
        return backbone_fn(params, x, self.num_layers)


def _bn_init(c):
    return {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32),
            "mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}


def init_arcface_params(rng, num_layers: int = 50, se: bool = True) -> Params:
    """Random parameters with the converted layout (for shape checks / training from scratch)."""
    specs = unit_specs(num_layers)
    keys = iter(jax.random.split(rng, 8 * len(specs) + 8))

    def he(shape):  # HWIO or (in, out)
        fan_in = int(np.prod(shape[:-1]))
        return jax.random.normal(next(keys), shape, jnp.float32) / np.sqrt(fan_in)

    body = {}
    for i, (cin, depth, _) in enumerate(specs):
        u = {"bn1": _bn_init(cin), "conv1": he((3, 3, cin, depth)),
             "prelu": jnp.full((depth,), 0.25, jnp.float32),
             "conv2": he((3, 3, depth, depth)), "bn2": _bn_init(depth)}
        if se:
            u["se"] = {"fc1": he((depth, depth // SE_REDUCTION)), "fc2": he((depth // SE_REDUCTION, depth))}
        if cin != depth:
            u["shortcut_conv"] = he((1, 1, cin, depth))
            u["shortcut_bn"] = _bn_init(depth)
        body[_unit_name(i)] = u
    return {
        "input": {"conv": he((3, 3, 3, 64)), "bn": _bn_init(64), "prelu": jnp.full((64,), 0.25, jnp.float32)},
        "body": body,
        "output": {"bn2d": _bn_init(512),
                   "linear": {"kernel": he((512 * 7 * 7, 512)), "bias": jnp.zeros((512,), jnp.float32)},
                   "bn1d": _bn_init(512)},
    }


def _has_se(params: Params) -> bool:
    return "se" in params["body"][_unit_name(0)]


# --------------------------------------------------------------------------------------------
# conversion from the PyTorch state dict
# --------------------------------------------------------------------------------------------
def _np(v) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def arcface_params_from_state_dict(sd, source: str = "state dict") -> Params:
    """Convert a TreB1eN / pSp IR-SE state dict (``model_ir_se50.pth``) to the JAX params pytree.

    ``sd`` maps official keys (``input_layer.0.weight``, ``body.3.res_layer.1.weight``, ...) to torch
    tensors or numpy arrays.  Conv weights OIHW -> HWIO, SE 1x1 convs -> (in, out) matrices, and the
    output Linear (512, 512*7*7) (channel-major NCHW flatten) -> (7*7*512, 512) for an NHWC flatten.
    Also accepts ``{'state_dict': sd}`` and keys prefixed by ``module.`` or ``facenet.``.
    """
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointFormatError(f"{source}: expected a state dict (mapping of names to tensors), got {type(sd).__name__}")
    arrays = {}
    for k, v in sd.items():
        k = re.sub(r"^(module\.|facenet\.)+", "", k)
        arrays[k] = v
    used = set()

    def get(key, ndim=None):
        if key not in arrays:
            raise CheckpointFormatError(f"{source}: missing key {key!r}; not an IR-SE50 (model_ir_se50.pth) state dict")
        used.add(key)
        a = _np(arrays[key]).astype(np.float32)
        if ndim is not None and a.ndim != ndim:
            raise CheckpointFormatError(f"{source}: key {key!r} has shape {a.shape}, expected {ndim} dims")
        return a

    def conv(prefix):  # OIHW -> HWIO
        return jnp.asarray(get(prefix + ".weight", 4).transpose(2, 3, 1, 0))

    def bn(prefix, affine_optional=False):
        c = get(prefix + ".running_mean", 1).shape[0]
        used.add(prefix + ".num_batches_tracked")
        if affine_optional and prefix + ".weight" not in arrays:
            scale, bias = np.ones((c,), np.float32), np.zeros((c,), np.float32)
        else:
            scale, bias = get(prefix + ".weight", 1), get(prefix + ".bias", 1)
        return {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias),
                "mean": jnp.asarray(get(prefix + ".running_mean", 1)),
                "var": jnp.asarray(get(prefix + ".running_var", 1))}

    unit_ids = sorted({int(m.group(1)) for k in arrays for m in [re.match(r"body\.(\d+)\.", k)] if m})
    n_units = len(unit_ids)
    num_layers = {sum(v): k for k, v in _STAGE_UNITS.items()}.get(n_units)
    if num_layers is None or unit_ids != list(range(n_units)):
        raise CheckpointFormatError(f"{source}: found {n_units} body units; expected 24 (IR-SE50), 49 or 69")

    body = {}
    for i, (cin, depth, _) in enumerate(unit_specs(num_layers)):
        pre = f"body.{i}."
        u = {"bn1": bn(pre + "res_layer.0"), "conv1": conv(pre + "res_layer.1"),
             "prelu": jnp.asarray(get(pre + "res_layer.2.weight", 1)),
             "conv2": conv(pre + "res_layer.3"), "bn2": bn(pre + "res_layer.4")}
        if pre + "res_layer.5.fc1.weight" in arrays:
            u["se"] = {"fc1": jnp.asarray(get(pre + "res_layer.5.fc1.weight", 4)[:, :, 0, 0].T),
                       "fc2": jnp.asarray(get(pre + "res_layer.5.fc2.weight", 4)[:, :, 0, 0].T)}
        if cin != depth:
            u["shortcut_conv"] = conv(pre + "shortcut_layer.0")
            u["shortcut_bn"] = bn(pre + "shortcut_layer.1")
        if u["conv1"].shape != (3, 3, cin, depth):
            raise CheckpointFormatError(f"{source}: {pre}res_layer.1.weight has HWIO shape {u['conv1'].shape}, "
                             f"expected {(3, 3, cin, depth)}")
        body[_unit_name(i)] = u

    w = get("output_layer.3.weight", 2)
    out_f, in_f = w.shape
    side = int(round(np.sqrt(in_f // 512)))
    if in_f != 512 * side * side:
        raise CheckpointFormatError(f"{source}: output_layer.3.weight has shape {w.shape}, expected (512, 512*k*k)")
    if side != 7:
        raise CheckpointFormatError(f"{source}: only the 112x112 model (Linear 512*7*7) is supported, got {side}x{side}")
    kernel = w.reshape(out_f, 512, side, side).transpose(2, 3, 1, 0).reshape(in_f, out_f)
    params = {
        "input": {"conv": conv("input_layer.0"), "bn": bn("input_layer.1"),
                  "prelu": jnp.asarray(get("input_layer.2.weight", 1))},
        "body": body,
        "output": {"bn2d": bn("output_layer.0"),
                   "linear": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(get("output_layer.3.bias", 1))},
                   "bn1d": bn("output_layer.4", affine_optional=True)},
    }
    unused = sorted(k for k in arrays if k not in used)
    if unused:
        raise CheckpointFormatError(f"{source}: unexpected keys {unused[:5]}{'...' if len(unused) > 5 else ''}")
    return params


def _num_layers_from_params(params: Params) -> int:
    n = len(params["body"])
    for k, v in _STAGE_UNITS.items():
        if sum(v) == n:
            return k
    raise ValueError(f"params have {n} body units; not an IR-SE 50/100/152 network")


def load_torch_state_dict(path) -> Dict[str, Any]:
    """``model_ir_se50.pth`` through the one ``.pt`` reader (``checkpoints.torch_pt``: weights only, bounded)."""
    from ..checkpoints import torch_pt

    return torch_pt.load(path, "IR-SE50 checkpoint (.pth)")


# --------------------------------------------------------------------------------------------
# converted folder format (styleclip_jax.checkpoints: DIR/params (orbax) + DIR/config.json)
# --------------------------------------------------------------------------------------------
def save_arcface(directory, arc_or_params, overwrite: bool = False) -> pathlib.Path:
    """Write a converted ArcFace to ``directory`` via ``styleclip_jax.checkpoints.save_params``.

    The config stored next to the params is ``{"model": "arcface_ir_se", "num_layers", "mode",
    "input_size"}``.  Refuses an existing folder unless ``overwrite``.  Returns the absolute path.
    """
    from .. import checkpoints

    arc = arc_or_params if isinstance(arc_or_params, ArcFace) else \
        ArcFace(arc_or_params, _num_layers_from_params(arc_or_params))
    host = jax.tree_util.tree_map(np.asarray, arc.params)
    return checkpoints.save_params(directory, host, {"model": MODEL_NAME, **arc.config}, overwrite=overwrite)


def _load_folder(directory: pathlib.Path) -> ArcFace:
    from .. import checkpoints

    params, cfg = checkpoints.load_params(directory)
    if cfg.get("model") != MODEL_NAME:
        raise CheckpointFormatError(f"{directory}: config.json says model={cfg.get('model')!r}, expected "
                         f"{MODEL_NAME!r} (write ArcFace folders with checkpoints_convert/convert_arcface.py)")
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    num_layers = int(cfg.get("num_layers", 50))
    if _num_layers_from_params(params) != num_layers:
        raise CheckpointFormatError(f"{directory}: params have {len(params['body'])} units but config says "
                         f"num_layers={num_layers}")
    return ArcFace(params, num_layers)


def load_arcface(path) -> ArcFace:
    """Load ArcFace from a PyTorch ``model_ir_se50.pth`` or a folder written by
    ``checkpoints_convert/convert_arcface.py``."""
    path = pathlib.Path(os.fspath(path)).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"ArcFace weights not found: {path}")
    params = arcface_params_from_state_dict(load_torch_state_dict(path), source=str(path))
    return ArcFace(params, _num_layers_from_params(params))
