"""rosinality stylegan2-pytorch checkpoints (``*.pt``, as StyleCLIP uses them) -> generator ``(params, config)``.

:func:`read_rosinality_pt` reads ``{'g_ema': state_dict, 'latent_avg': tensor}`` (or a bare generator
state dict) through the one ``.pt`` reader, :mod:`torch_pt` (``torch.load(weights_only=True)``, torch
imported lazily); :func:`rosinality_to_params` maps the names to the NVlabs layout.
"""
from __future__ import annotations

import collections
import re
from typing import Mapping

import numpy as np

from ..errors import CheckpointFormatError
from . import torch_pt
from .generator_params import check_filter, finish, num_ws

__all__ = ["read_rosinality_pt", "rosinality_to_params", "infer_channel_base"]


def read_rosinality_pt(path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read a rosinality stylegan2-pytorch checkpoint with ``torch.load(weights_only=True)``.

    Accepts ``{'g_ema': state_dict, 'latent_avg': tensor, ...}`` (the converted official weights
    StyleCLIP uses, or a training checkpoint) or a bare generator state dict.

    Returns ``(state_dict as {name: numpy array}, latent_avg as numpy array or None)``.
    """
    import argparse

    # rosinality training checkpoints also store the argparse Namespace of their options.
    obj = torch_pt.load(path, "rosinality generator checkpoint (.pt)", safe_globals=[argparse.Namespace])
    if isinstance(obj, Mapping) and "g_ema" in obj:
        sd, latent_avg = obj["g_ema"], obj.get("latent_avg")
    elif isinstance(obj, Mapping) and any(str(k).startswith("style.") for k in obj):
        sd, latent_avg = obj, None
    else:
        keys = torch_pt.key_summary(obj) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointFormatError(f"{path}: expected a rosinality checkpoint {{'g_ema': state_dict, "
                                    f"'latent_avg': tensor}} or a generator state dict, got {keys}")
    if not isinstance(sd, Mapping):
        raise CheckpointFormatError(f"{path}: 'g_ema' is a {type(sd).__name__}, expected a state dict")
    state_dict = collections.OrderedDict((str(k), torch_pt.to_numpy(v, k, path)) for k, v in sd.items())
    if latent_avg is not None:
        latent_avg = torch_pt.to_numpy(latent_avg, "latent_avg", path)
    return state_dict, latent_avg


_ROS_CONV = re.compile(r"^(conv1|convs\.(\d+))\.(conv\.weight|conv\.modulation\.weight|conv\.modulation\.bias|"
                       r"conv\.blur\.kernel|noise\.weight|activate\.bias)$")
_ROS_RGB = re.compile(r"^(to_rgb1|to_rgbs\.(\d+))\.(conv\.weight|conv\.modulation\.weight|"
                      r"conv\.modulation\.bias|bias|upsample\.kernel)$")


def _rosinality_latent_avg(latent_avg, w_dim: int, source: str) -> np.ndarray:
    arr = np.asarray(latent_avg, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == w_dim and arr.shape[0] >= 1:
        if not np.array_equal(arr, np.broadcast_to(arr[:1], arr.shape)):
            raise CheckpointFormatError(f"{source}: latent_avg of shape {arr.shape} has differing rows; "
                                        "expected a single average w")
        arr = arr[0]
    if arr.shape != (w_dim,):
        raise CheckpointFormatError(f"{source}: latent_avg has shape {arr.shape}, expected ({w_dim},)")
    return np.array(arr, order="C")


def infer_channel_base(chans: Mapping[int, int], *, source: str = "generator") -> tuple[int, int]:
    """Find ``(channel_base, channel_max)`` with ``min(channel_base // res, channel_max) == chans[res]``.

    rosinality generators use 512 channels up to 32 px and ``16384 * channel_multiplier // res``
    above, i.e. channel_base = 16384 * channel_multiplier and channel_max = 512. When every resolution
    present has the maximum count the base is not determined by the weights; the official default
    32768 (channel_multiplier 2) is chosen then.
    """
    channel_max = max(chans.values())
    candidates = [32768, 16384]
    below = [r for r in sorted(chans) if chans[r] < channel_max]
    if below:
        candidates.insert(0, chans[below[0]] * below[0])
    for base in candidates:
        if all(min(base // r, channel_max) == c for r, c in chans.items()):
            return int(base), int(channel_max)
    raise CheckpointFormatError(f"{source}: channels per resolution {dict(chans)} cannot be written as "
                                "min(channel_base // res, channel_max)")


def rosinality_to_params(state_dict: Mapping[str, np.ndarray], latent_avg,
                         *, mapping_lr_multiplier: float = 0.01,
                         source: str = "rosinality state dict") -> tuple[dict, dict]:
    """Map a rosinality ``Generator`` state dict to the NVlabs-style ``(params, config)``.

    Raw stored values carry over unchanged, because rosinality's EqualLinear/ModulatedConv2d apply
    the same run-time gains as the NVlabs layers (lr multiplier on mapping weights and biases,
    1/sqrt(fan_in) on affines and toRGB; the conv weight scale cancels under demodulation):
    ``style.{i}`` -> ``mapping.fc{i-1}``, ``latent_avg`` -> ``mapping.w_avg``,
    ``input.input`` -> ``b4.const``, ``conv1``/``to_rgb1`` -> ``b4``, ``convs.{2k}``/``convs.{2k+1}``
    /``to_rgbs.{k}`` -> ``b{8*2^k}`` conv0/conv1/torgb, ``noises.noise_{i}`` -> ``noise_const``
    (``noise_0`` = b4.conv1, then conv0/conv1 of each block in order), ``modulation`` -> ``affine``,
    ``noise.weight`` -> ``noise_strength``, ``activate.bias`` -> ``bias``. FIR kernels are checked
    and dropped.

    ``latent_avg`` is required (rosinality checkpoints store it next to ``g_ema``); it cannot be
    recomputed exactly because the official estimate uses the torch RNG.
    """
    if latent_avg is None:
        raise CheckpointFormatError(
            f"{source}: no latent_avg given. rosinality checkpoints store it as ckpt['latent_avg']; "
            "pass one explicitly (e.g. the mean of mapping(z) over many z) if your checkpoint lacks it")
    sd = {str(k): np.asarray(v) for k, v in state_dict.items()}
    flat: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(key, shape=None):
        if key not in sd:
            raise CheckpointFormatError(f"{source}: missing rosinality key {key!r}")
        arr = sd[key]
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointFormatError(f"{source}: {key} has dtype {arr.dtype}, expected floating point")
        used.add(key)
        arr = np.array(arr, dtype=np.float32, order="C")
        if shape is not None:
            if arr.size != int(np.prod(shape, dtype=np.int64)):
                raise CheckpointFormatError(f"{source}: {key} has shape {arr.shape}, cannot be read as {shape}")
            arr = arr.reshape(shape)
        return arr

    # Mapping network: style.0 is PixelNorm (no params), linear layers are style.1 .. style.n_mlp.
    idx = sorted({int(m.group(1)) for k in sd for m in [re.match(r"^style\.(\d+)\.weight$", k)] if m})
    if not idx or idx != list(range(1, len(idx) + 1)):
        raise CheckpointFormatError(f"{source}: expected mapping layers style.1..style.N, found {idx}")
    w_dim = sd["style.1.weight"].shape[0]
    z_dim = sd["style.1.weight"].shape[1]
    for i in idx:
        flat[f"mapping.fc{i - 1}.weight"] = take(f"style.{i}.weight")
        flat[f"mapping.fc{i - 1}.bias"] = take(f"style.{i}.bias")
    flat["mapping.w_avg"] = _rosinality_latent_avg(latent_avg, w_dim, source)

    n_convs = len({m.group(2) for k in sd for m in [_ROS_CONV.match(k)] if m and m.group(2) is not None})
    if n_convs % 2:
        raise CheckpointFormatError(f"{source}: found {n_convs} 'convs.*' layers, expected an even number")
    n_up = n_convs // 2
    img_res = 4 * 2 ** n_up

    const = take("input.input")
    if const.ndim != 4 or const.shape[0] != 1 or const.shape[2:] != (4, 4):
        raise CheckpointFormatError(f"{source}: input.input has shape {const.shape}, expected (1, C, 4, 4)")
    flat["synthesis.b4.const"] = const[0]

    def styled_conv(src, dst, noise_index, res, up):
        w = take(f"{src}.conv.weight")
        if w.ndim != 5 or w.shape[0] != 1:
            raise CheckpointFormatError(f"{source}: {src}.conv.weight has shape {w.shape}, expected (1,O,I,k,k)")
        flat[f"{dst}.weight"] = w[0]
        flat[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        flat[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        flat[f"{dst}.noise_strength"] = take(f"{src}.noise.weight", ())
        flat[f"{dst}.bias"] = take(f"{src}.activate.bias")
        flat[f"{dst}.noise_const"] = take(f"noises.noise_{noise_index}", (res, res))
        if up:
            check_filter(f"{src}.conv.blur.kernel", take(f"{src}.conv.blur.kernel"), 4.0, source)

    def to_rgb(src, dst, up):
        w = take(f"{src}.conv.weight")
        if w.ndim != 5 or w.shape[0] != 1:
            raise CheckpointFormatError(f"{source}: {src}.conv.weight has shape {w.shape}, expected (1,O,I,1,1)")
        flat[f"{dst}.weight"] = w[0]
        flat[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        flat[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        flat[f"{dst}.bias"] = take(f"{src}.bias", (w.shape[1],))
        if up:
            check_filter(f"{src}.upsample.kernel", take(f"{src}.upsample.kernel"), 4.0, source)

    styled_conv("conv1", "synthesis.b4.conv1", 0, 4, up=False)
    to_rgb("to_rgb1", "synthesis.b4.torgb", up=False)
    for k in range(n_up):
        res = 8 * 2 ** k
        styled_conv(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1, res, up=True)
        styled_conv(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2, res, up=False)
        to_rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", up=True)

    leftover = [k for k in sd if k not in used]
    if leftover:
        raise CheckpointFormatError(f"{source}: unexpected keys for a rosinality Generator of resolution "
                                    f"{img_res}: {leftover[:8]}")

    # Channels per resolution, from the weights; find channel_base / channel_max reproducing them.
    chans = {4: flat["synthesis.b4.conv1.weight"].shape[0]}
    for k in range(n_up):
        res = 8 * 2 ** k
        chans[res] = flat[f"synthesis.b{res}.conv1.weight"].shape[0]
    channel_base, channel_max = infer_channel_base(chans, source=source)
    config = {
        "z_dim": int(z_dim),
        "c_dim": 0,
        "w_dim": int(w_dim),
        "img_resolution": img_res,
        "img_channels": int(flat["synthesis.b4.torgb.weight"].shape[0]),
        "mapping_layers": len(idx),
        "mapping_lr_multiplier": float(mapping_lr_multiplier),
        "channel_base": int(channel_base),
        "channel_max": int(channel_max),
        "conv_clamp": None,
        "num_ws": num_ws(img_res),
        "source": "rosinality",
    }
    return finish(flat, config, source)
