"""ArcFace IR-SE50 identity network (JAX) and the StyleCLIP identity loss.

The network is the TreB1eN / pSp ``Backbone(112, 50, mode='ir_se')`` used by StyleCLIP's
``criteria/id_loss.py``.  Everything is NHWC internally; weights converted from the PyTorch
``model_ir_se50.pth`` state dict are re-laid-out once at load time.
The IR-SE layers, their init and the state-dict reading are the shared blocks of ``irse.py``
(also the backbone of the e4e/pSp encoders); this module adds the 112-px output head and the ID loss.

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
from flax import struct
import jax
import jax.numpy as jnp
import numpy as np

from ..checkpoints import CheckpointFormatError  # a ValueError subclass; numpy-only module
from . import irse
from .ops import l2_normalize

Params = Dict[str, Any]

BN_EPS = irse.BN_EPS
SE_REDUCTION = irse.SE_REDUCTION
FACE_SIZE = 112
MODEL_NAME = "arcface_ir_se"

_STAGE_UNITS = irse.STAGE_UNITS
_STAGE_DEPTHS = irse.STAGE_DEPTHS
_HIGHEST = irse.HIGHEST
_unit_name = irse.unit_name
_batch_norm = irse.batch_norm


# --------------------------------------------------------------------------------------------
# architecture description (the layers are the shared IR-SE blocks in irse.py)
# --------------------------------------------------------------------------------------------
def unit_specs(num_layers: int = 50) -> Tuple[Tuple[int, int, int], ...]:
    """(in_channels, depth, stride) of every bottleneck unit, in body order."""
    return irse.unit_specs(irse.stage_units_for(num_layers), _STAGE_DEPTHS)


def backbone_fn(params: Params, faces, num_layers: int = 50):
    """IR-SE backbone. faces: (N, 112, 112, 3) float32 -> (N, 512) L2-normalised embeddings."""
    x, _ = irse.body(params, faces, unit_specs(num_layers))
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
@struct.dataclass
class ArcFace:
    """IR-SE ArcFace network: params pytree (leaves) + static ``num_layers``."""
    params: Params
    num_layers: int = struct.field(pytree_node=False, default=50)

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


def init_arcface_params(rng, num_layers: int = 50, se: bool = True) -> Params:
    """Random parameters with the converted layout (for shape checks / training from scratch)."""
    k_body, k_lin = jax.random.split(rng)
    params = irse.init_backbone_params(k_body, unit_specs(num_layers), se=se)
    params["output"] = {"bn2d": irse.bn_init(512),
                        "linear": {"kernel": irse.he_init(k_lin, (512 * 7 * 7, 512)),
                                   "bias": jnp.zeros((512,), jnp.float32)},
                        "bn1d": irse.bn_init(512)}
    return params


def _has_se(params: Params) -> bool:
    return "se" in params["body"][_unit_name(0)]


# --------------------------------------------------------------------------------------------
# conversion from the PyTorch state dict
# --------------------------------------------------------------------------------------------
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
    arrays = {re.sub(r"^(module\.|facenet\.)+", "", k): v for k, v in sd.items()}
    reader = irse.StateDictReader(arrays, source, "an IR-SE50 (model_ir_se50.pth) state dict")
    stage_units, stage_depths = irse.infer_stages(reader)
    num_layers = {v: k for k, v in _STAGE_UNITS.items()}.get(stage_units)
    if num_layers is None or stage_depths != _STAGE_DEPTHS:
        raise CheckpointFormatError(f"{source}: body stages of {stage_units} units with depths {stage_depths}; "
                                    f"expected {_STAGE_UNITS[50]} (IR-SE50), 100 or 152 layers of {_STAGE_DEPTHS}")
    params = irse.backbone_from_state_dict(reader, unit_specs(num_layers))

    w = reader.get("output_layer.3.weight", 2)
    out_f, in_f = w.shape
    side = int(round(np.sqrt(in_f // 512)))
    if in_f != 512 * side * side:
        raise CheckpointFormatError(f"{source}: output_layer.3.weight has shape {w.shape}, expected (512, 512*k*k)")
    if side != 7:
        raise CheckpointFormatError(f"{source}: only the 112x112 model (Linear 512*7*7) is supported, got {side}x{side}")
    kernel = w.reshape(out_f, 512, side, side).transpose(2, 3, 1, 0).reshape(in_f, out_f)
    params["output"] = {"bn2d": reader.bn("output_layer.0"),
                        "linear": {"kernel": jnp.asarray(kernel),
                                   "bias": jnp.asarray(reader.get("output_layer.3.bias", 1))},
                        "bn1d": reader.bn("output_layer.4", affine_optional=True)}
    unused = reader.unused()
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
