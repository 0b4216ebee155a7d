"""IR-SE residual network building blocks (TreB1eN / pSp ``helpers.py``), shared by ArcFace and the e4e/pSp encoders.

Pure functions over a params pytree, NHWC throughout, eval mode (BatchNorm running statistics, eps 1e-5):

* input layer: conv3x3(3 -> depths[0], stride 1, pad 1, no bias) -> BN -> PReLU
* body: stages of bottleneck units; the first unit of every stage has stride 2.  One unit computes
  ``res = SE(BN(conv3x3_s(PReLU(conv3x3_1(BN(x))))))`` and adds a shortcut that is ``x[:, ::s, ::s]``
  (``MaxPool2d(1, s)``) when the channel count does not change and ``BN(conv1x1_s(x))`` otherwise.
  SE (mode 'ir_se'; absent in mode 'ir'): global mean -> 1x1 conv (C -> C/16) -> ReLU -> 1x1 conv -> sigmoid.

The official depths are 50/100/152 layers = (3, 4, 14, 3) / (3, 13, 30, 3) / (3, 8, 36, 3) units of
64/128/256/512 channels; both are configuration here (``unit_specs(stage_units, stage_depths)``).
Params: ``{'input': {'conv', 'bn', 'prelu'}, 'body': {'unit_00': {...}, ...}}``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import CheckpointFormatError

Params = Dict[str, Any]

BN_EPS = 1e-5
SE_REDUCTION = 16
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_DEPTHS = (64, 128, 256, 512)
HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------
# architecture description
# --------------------------------------------------------------------------------------------
def stage_units_for(num_layers: int) -> Tuple[int, ...]:
    """Units per stage of the official IR-SE depth ``num_layers`` (50, 100 or 152)."""
    if num_layers not in STAGE_UNITS:
        raise ValueError(f"num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}")
    return STAGE_UNITS[num_layers]


def unit_specs(stage_units: Sequence[int], stage_depths: Sequence[int] = STAGE_DEPTHS
               ) -> Tuple[Tuple[int, int, int], ...]:
    """(in_channels, depth, stride) of every bottleneck unit, in body order (input width = depths[0])."""
    if len(stage_units) != len(stage_depths) or not all(int(n) >= 1 for n in stage_units):
        raise ValueError(f"stage_units {tuple(stage_units)} and stage_depths {tuple(stage_depths)} must have "
                         "the same length and at least one unit per stage")
    specs = []
    in_ch = int(stage_depths[0])
    for depth, n in zip(stage_depths, stage_units):
        specs.append((in_ch, int(depth), 2))
        specs.extend((int(depth), int(depth), 1) for _ in range(int(n) - 1))
        in_ch = int(depth)
    return tuple(specs)


def stage_ends(stage_units: Sequence[int]) -> Tuple[int, ...]:
    """Body index of the last unit of every stage (for IR-SE-50: 2, 6, 20, 23)."""
    return tuple(int(i) - 1 for i in np.cumsum(stage_units))


def unit_name(i: int) -> str:
    return f"unit_{i:02d}"


# --------------------------------------------------------------------------------------------
# layers (pure functions)
# --------------------------------------------------------------------------------------------
def conv(x, kernel, stride: int = 1, padding: int = 0):
    """x: (N,H,W,Cin), kernel: (kh,kw,Cin,Cout) HWIO -> (N,H',W',Cout), symmetric zero padding."""
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HIGHEST)


def batch_norm(x, p):
    """Inference BatchNorm over the last axis. p: {'scale','bias','mean','var'} each (C,)."""
    inv = p["scale"] * jax.lax.rsqrt(p["var"] + BN_EPS)
    return (x - p["mean"]) * inv + p["bias"]


def prelu(x, alpha):
    """Per-channel PReLU; alpha: (C,)."""
    return jnp.where(x >= 0, x, alpha * x)


def squeeze_excite(x, p):
    """x: (N,H,W,C); p: {'fc1': (C, C/16), 'fc2': (C/16, C)}."""
    s = jnp.mean(x, axis=(1, 2))
    s = jax.nn.relu(jnp.dot(s, p["fc1"], precision=HIGHEST))
    s = jax.nn.sigmoid(jnp.dot(s, p["fc2"], precision=HIGHEST))
    return x * s[:, None, None, :]


def unit(x, p, stride: int):
    """One bottleneck unit (bottleneck_IR / bottleneck_IR_SE). x: (N,H,W,Cin) -> (N,H/s,W/s,depth)."""
    if "shortcut_conv" in p:
        shortcut = batch_norm(conv(x, p["shortcut_conv"], stride=stride), p["shortcut_bn"])
    else:  # MaxPool2d(kernel 1, stride s) == subsampling
        shortcut = x[:, ::stride, ::stride, :]
    r = batch_norm(x, p["bn1"])
    r = conv(r, p["conv1"], stride=1, padding=1)
    r = prelu(r, p["prelu"])
    r = conv(r, p["conv2"], stride=stride, padding=1)
    r = batch_norm(r, p["bn2"])
    if "se" in p:
        r = squeeze_excite(r, p["se"])
    return r + shortcut


def input_layer(p, x):
    """conv3x3 -> BN -> PReLU. x: (N,H,W,3) -> (N,H,W,depths[0])."""
    x = conv(jnp.asarray(x, jnp.float32), p["conv"], stride=1, padding=1)
    return prelu(batch_norm(x, p["bn"]), p["prelu"])


def body(params: Params, x, specs, keep: Sequence[int] = ()):
    """Input layer + every unit. x: (N,H,W,3). Returns (last features, {i: features after unit i for i in keep})."""
    x = input_layer(params["input"], x)
    kept = {}
    for i, (_, _, stride) in enumerate(specs):
        x = unit(x, params["body"][unit_name(i)], stride)
        if i in keep:
            kept[i] = x
    return x, kept


# --------------------------------------------------------------------------------------------
# random init
# --------------------------------------------------------------------------------------------
def bn_init(c):
    return {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32),
            "mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}


def he_init(key, shape):
    """Normal / sqrt(fan_in) for HWIO or (in, out) shapes."""
    fan_in = int(np.prod(shape[:-1]))
    return jax.random.normal(key, shape, jnp.float32) / np.sqrt(fan_in)


def init_backbone_params(rng, specs, se: bool = True) -> Params:
    """Random {'input', 'body'} params with the converted layout."""
    keys = iter(jax.random.split(rng, 5 * len(specs) + 2))
    body_p = {}
    for i, (cin, depth, _) in enumerate(specs):
        u = {"bn1": bn_init(cin), "conv1": he_init(next(keys), (3, 3, cin, depth)),
             "prelu": jnp.full((depth,), 0.25, jnp.float32),
             "conv2": he_init(next(keys), (3, 3, depth, depth)), "bn2": bn_init(depth)}
        if se:
            u["se"] = {"fc1": he_init(next(keys), (depth, max(depth // SE_REDUCTION, 1))),
                       "fc2": he_init(next(keys), (max(depth // SE_REDUCTION, 1), depth))}
        if cin != depth:
            u["shortcut_conv"] = he_init(next(keys), (1, 1, cin, depth))
            u["shortcut_bn"] = bn_init(depth)
        body_p[unit_name(i)] = u
    d0 = specs[0][0]
    return {"input": {"conv": he_init(next(keys), (3, 3, 3, d0)), "bn": bn_init(d0),
                      "prelu": jnp.full((d0,), 0.25, jnp.float32)},
            "body": body_p}


# --------------------------------------------------------------------------------------------
# conversion from a PyTorch state dict
# --------------------------------------------------------------------------------------------
def to_numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


class StateDictReader:
    """Reads official tensors by key with one clear error naming the source; remembers what was used.

    Conv weights OIHW -> HWIO, BatchNorm -> {'scale','bias','mean','var'}; ``unused()`` lists the rest.
    """

    def __init__(self, arrays, source: str, what: str):
        self.arrays, self.source, self.what, self.used = arrays, source, what, set()

    def __contains__(self, key):
        return key in self.arrays

    def get(self, key, ndim=None) -> np.ndarray:
        if key not in self.arrays:
            raise CheckpointFormatError(f"{self.source}: missing key {key!r}; not {self.what}")
        self.used.add(key)
        a = to_numpy(self.arrays[key]).astype(np.float32)
        if ndim is not None and a.ndim != ndim:
            raise CheckpointFormatError(f"{self.source}: key {key!r} has shape {a.shape}, expected {ndim} dims")
        return a

    def conv(self, prefix, bias: bool = False):
        k = jnp.asarray(self.get(prefix + ".weight", 4).transpose(2, 3, 1, 0))
        if not bias:
            return k
        return {"kernel": k, "bias": jnp.asarray(self.get(prefix + ".bias", 1))}

    def bn(self, prefix, affine_optional: bool = False):
        c = self.get(prefix + ".running_mean", 1).shape[0]
        self.used.add(prefix + ".num_batches_tracked")
        if affine_optional and prefix + ".weight" not in self.arrays:
            scale, bias = np.ones((c,), np.float32), np.zeros((c,), np.float32)
        else:
            scale, bias = self.get(prefix + ".weight", 1), self.get(prefix + ".bias", 1)
        return {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias),
                "mean": jnp.asarray(self.get(prefix + ".running_mean", 1)),
                "var": jnp.asarray(self.get(prefix + ".running_var", 1))}

    def unused(self):
        return sorted(k for k in self.arrays if k not in self.used)


def infer_stages(reader: StateDictReader) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(stage_units, stage_depths) from the ``body.{i}.res_layer.1.weight`` shapes: a stage starts at unit 0
    and wherever the depth changes (so stage depths must differ from one stage to the next, as officially)."""
    ids = sorted({int(m.group(1)) for k in reader.arrays for m in [re.match(r"body\.(\d+)\.", k)] if m})
    if not ids or ids != list(range(len(ids))):
        raise CheckpointFormatError(f"{reader.source}: body units {ids[:8]}... are not numbered 0..n-1; "
                                    f"not {reader.what}")
    depths = [reader.get(f"body.{i}.res_layer.1.weight", 4).shape[0] for i in ids]
    units, stage_depths = [], []
    for d in depths:
        if stage_depths and d == stage_depths[-1]:
            units[-1] += 1
        else:
            units.append(1)
            stage_depths.append(int(d))
    return tuple(units), tuple(stage_depths)


def backbone_from_state_dict(reader: StateDictReader, specs) -> Params:
    """{'input', 'body'} params from official keys ``input_layer.*`` and ``body.{i}.*``."""
    body_p = {}
    for i, (cin, depth, _) in enumerate(specs):
        pre = f"body.{i}."
        u = {"bn1": reader.bn(pre + "res_layer.0"), "conv1": reader.conv(pre + "res_layer.1"),
             "prelu": jnp.asarray(reader.get(pre + "res_layer.2.weight", 1)),
             "conv2": reader.conv(pre + "res_layer.3"), "bn2": reader.bn(pre + "res_layer.4")}
        if pre + "res_layer.5.fc1.weight" in reader:
            u["se"] = {"fc1": jnp.asarray(reader.get(pre + "res_layer.5.fc1.weight", 4)[:, :, 0, 0].T),
                       "fc2": jnp.asarray(reader.get(pre + "res_layer.5.fc2.weight", 4)[:, :, 0, 0].T)}
        if cin != depth:
            u["shortcut_conv"] = reader.conv(pre + "shortcut_layer.0")
            u["shortcut_bn"] = reader.bn(pre + "shortcut_layer.1")
        for name, want in (("conv1", (3, 3, cin, depth)), ("conv2", (3, 3, depth, depth))):
            if u[name].shape != want:
                raise CheckpointFormatError(f"{reader.source}: unit {i} {name} has HWIO shape {u[name].shape}, "
                                            f"expected {want}")
        body_p[unit_name(i)] = u
    inp = {"conv": reader.conv("input_layer.0"), "bn": reader.bn("input_layer.1"),
           "prelu": jnp.asarray(reader.get("input_layer.2.weight", 1))}
    if inp["conv"].shape != (3, 3, 3, specs[0][0]):
        raise CheckpointFormatError(f"{reader.source}: input_layer.0.weight has HWIO shape {inp['conv'].shape}, "
                                    f"expected {(3, 3, 3, specs[0][0])}")
    return {"input": inp, "body": body_p}
