"""NVlabs stylegan2-ada-pytorch network pickles (``*.pkl``) -> generator ``(params, config)``, without torch.

:func:`read_nvlabs_pkl` reads one network of a snapshot with the allow-list unpickler
(:mod:`safe_pickle`): nothing from the file is imported or executed, every global it names maps to a
local data-only stand-in, and cost is bounded by the file size. The module tree is walked once per
module (a module record referenced twice is refused, never expanded), and the constructor kwargs are
converted with a memo by object identity and a bound on their expanded size.
:func:`nvlabs_to_params` maps ``G_ema.state_dict()`` + kwargs to the package's param layout.
"""
from __future__ import annotations

import collections
import pathlib
from typing import Mapping

import numpy as np

from ..errors import CheckpointFormatError, UnsafeCheckpointError
from . import safe_pickle
from .generator_params import check_filter, finish, num_ws, validate_resolution
from .torch_legacy import TENSOR_GLOBALS, Tensor

__all__ = ["read_nvlabs_pkl", "nvlabs_to_params", "PersistentRecord", "EasyDictStub", "NETWORK_GLOBALS",
           "load_network_pickle"]

MAX_MODULE_DEPTH = 32         # torch modules nested deeper than this are refused (StyleGAN2: 5)
MAX_KWARGS_DEPTH = 32         # constructor kwargs nested deeper than this are refused (StyleGAN2: 2)
MAX_KWARGS_VALUES = 100_000   # constructor kwargs may expand to at most this many values (StyleGAN2: ~40)


# ----------------------------------------------------------------------------------------------
# Data-only stand-ins for the globals an NVlabs pickle references


class PersistentRecord(dict):
    """The ``meta`` dict of a ``torch_utils.persistence`` object (type, version, module_src,
    class_name, state). The class is never rebuilt; ``state`` holds its ``__dict__``."""

    def __init__(self, *args, **kwargs):
        if kwargs or len(args) > 1:
            raise CheckpointFormatError("malformed persistent object record")
        super().__init__(*args)


class EasyDictStub(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict subclass with no behaviour."""


def _easydict(unpickler):
    """A per-load subclass whose constructor charges a copied mapping to the load's budget."""

    def __init__(self, items=(), **kwargs):
        if kwargs or not isinstance(items, dict):  # keys already checked when the dict was built
            raise CheckpointFormatError("malformed EasyDict record")
        unpickler.charge(64 * len(items), "an EasyDict")
        dict.__init__(self, items)

    return type("EasyDict", (EasyDictStub,), {"__init__": __init__})


def _reconstruct_persistent_obj(unpickler):
    def reconstruct(meta):
        if type(meta) is not dict:
            raise CheckpointFormatError(f"persistent object record is a {type(meta).__name__}, expected a dict")
        unpickler.charge(64 * len(meta), "a persistent object record")
        return PersistentRecord(meta)
    return reconstruct


NETWORK_GLOBALS = {
    **safe_pickle.DATA_GLOBALS,
    **TENSOR_GLOBALS,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): safe_pickle.PerLoad(_reconstruct_persistent_obj),
    ("dnnlib.util", "EasyDict"): safe_pickle.PerLoad(_easydict),
    ("dnnlib", "EasyDict"): safe_pickle.PerLoad(_easydict),
}


def load_network_pickle(path: pathlib.Path):
    """The whole network pickle as stand-ins (see :mod:`safe_pickle`)."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] != b"\x80":
        what = "a zip archive (a torch.save checkpoint?)" if head == b"PK" else "not a pickle"
        raise CheckpointFormatError(f"{path}: expected an NVlabs stylegan2-ada-pytorch network pickle "
                                    f"(a Python pickle), but the file is {what}")
    try:
        return safe_pickle.load_file(path, NETWORK_GLOBALS, "in the network pickle", what="network pickle")
    except UnsafeCheckpointError:
        raise
    except CheckpointFormatError as e:
        if str(path) in str(e):
            raise
        raise CheckpointFormatError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------------------------
# Walking the loaded records (linear in the file: shared references are never expanded)


_IN_PROGRESS = object()


def _plain(obj, path, what: str):
    """EasyDict stubs / OrderedDicts / numpy scalars -> plain python containers and numbers.

    Memoised by object identity (a shared sub-object is converted once and shared in the result), with
    bounded depth and a bound on the size the result would have if written out (e.g. to JSON).
    """
    memo: dict[int, object] = {}
    size: dict[int, int] = {}
    keep = []

    def fail(reason):
        raise CheckpointFormatError(f"{path}: {what} {reason}; not a StyleGAN2 network pickle")

    def conv(o, depth):
        if isinstance(o, np.generic):
            return o.item(), 1
        if isinstance(o, safe_pickle.PickledArray):
            return o.value, 1
        if isinstance(o, Tensor):
            return o.array, 1
        if not isinstance(o, (Mapping, list, tuple)):
            return o, 1
        i = id(o)
        if i in memo:
            if memo[i] is _IN_PROGRESS:
                fail("contain a reference cycle")
            return memo[i], size[i]
        if depth > MAX_KWARGS_DEPTH:
            fail(f"are nested more than {MAX_KWARGS_DEPTH} levels deep")
        memo[i] = _IN_PROGRESS
        keep.append(o)
        n = 1
        if isinstance(o, Mapping):
            out = {}
            for k, v in o.items():
                out[k], m = conv(v, depth + 1)
                n += m
        else:
            items = []
            for v in o:
                c, m = conv(v, depth + 1)
                items.append(c)
                n += m
            out = items if isinstance(o, list) else tuple(items)
        if n > MAX_KWARGS_VALUES:
            fail(f"would expand to more than {MAX_KWARGS_VALUES} values (shared references nested deep)")
        memo[i], size[i] = out, n
        return out, n

    return conv(obj, 0)[0]


def _collect_state(root, path) -> dict[str, np.ndarray]:
    """``state_dict()`` of a persistent module record: parameters and persistent buffers, in order."""
    out: dict[str, np.ndarray] = collections.OrderedDict()
    seen: dict[int, str] = {}

    def visit(record, prefix, depth):
        name = prefix.rstrip(".") or "<root>"
        if depth > MAX_MODULE_DEPTH:
            raise CheckpointFormatError(f"{path}: modules nested more than {MAX_MODULE_DEPTH} levels deep "
                                        f"(at {name[:200]})")
        if id(record) in seen:
            raise CheckpointFormatError(f"{path}: module {name[:200]} is the same record as module "
                                        f"{seen[id(record)][:200]}; shared modules are not supported")
        seen[id(record)] = name
        if not isinstance(record, PersistentRecord) or not isinstance(record.get("state"), dict):
            raise CheckpointFormatError(f"{path}: module {name[:200]} is not a persistent network record")
        state = record["state"]
        non_persistent = state.get("_non_persistent_buffers_set") or set()
        if not isinstance(non_persistent, (set, frozenset)):
            raise CheckpointFormatError(f"{path}: module {name[:200]} has a malformed buffer list")
        for group in ("_parameters", "_buffers", "_modules"):
            if not isinstance(state.get(group) or {}, Mapping):
                raise CheckpointFormatError(f"{path}: module {name[:200]} has a malformed {group} record")
        for group in ("_parameters", "_buffers"):
            for key, value in (state.get(group) or {}).items():
                if value is None or (group == "_buffers" and key in non_persistent):
                    continue
                if not isinstance(value, Tensor):
                    raise CheckpointFormatError(f"{path}: {prefix}{str(key)[:100]} is a {type(value).__name__}, "
                                                "expected a tensor")
                out[f"{prefix}{key}"] = value.array
        for key, child in (state.get("_modules") or {}).items():
            if child is not None:
                visit(child, f"{prefix}{key}.", depth + 1)

    visit(root, "", 0)
    return out


def _keys(mapping) -> list[str]:
    return sorted(str(k)[:50] for k in list(mapping)[:20])


_GENERATOR_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")


def read_nvlabs_pkl(path, key: str = "G_ema") -> tuple[dict[str, np.ndarray], dict]:
    """Read one network of an NVlabs stylegan2-ada-pytorch pickle without running code from it.

    Args:
      path: the ``.pkl`` file (the dict written by the official training loop, or a bare network).
      key: which network of the snapshot dict to read. ``'G_ema'`` (default) is the generator used
        for inference; ``'G'`` is the raw, non-averaged one.

    Returns:
      ``(state_dict, init_kwargs)``: ``{official dotted name: numpy array}`` in ``state_dict()``
      order (parameters and persistent buffers), and the network's constructor kwargs as plain dicts
      (e.g. ``{'z_dim': 512, ..., 'mapping_kwargs': {...}, 'synthesis_kwargs': {...}}``), plus
      ``'class_name'``.

    Raises:
      UnsafeCheckpointError: the pickle names a global outside the allow-list (nothing was run).
      CheckpointFormatError: the file is not such a pickle, is truncated, corrupt or out of bounds
        (sizes larger than the file, nesting too deep, too many objects), or lacks ``key``.
    """
    path = safe_pickle.check_file(path)
    data = load_network_pickle(path)
    if isinstance(data, PersistentRecord):
        net = data
    elif isinstance(data, dict):
        if key not in data:
            raise CheckpointFormatError(f"{path}: network pickle has no {key!r} entry (found {_keys(data)})")
        net = data[key]
    else:
        raise CheckpointFormatError(f"{path}: expected a dict of networks, got {type(data).__name__}")
    if not isinstance(net, PersistentRecord):
        raise CheckpointFormatError(f"{path}: entry {key!r} is a {type(net).__name__}, not a persistent network")
    state = net.get("state")
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"{path}: network record {key!r} has no state")
    state_dict = _collect_state(net, path)
    what = f"the constructor arguments of {key!r}"
    init_args = _plain(state.get("_init_args") or (), path, what)
    init_kwargs = _plain(state.get("_init_kwargs") or {}, path, what)
    if not isinstance(init_kwargs, dict) or not isinstance(init_args, (tuple, list)):
        raise CheckpointFormatError(f"{path}: malformed constructor arguments in network record {key!r}")
    init_kwargs = dict(init_kwargs)
    for name, value in zip(_GENERATOR_POSITIONAL, init_args):
        init_kwargs.setdefault(name, value)
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):  # fall back to attributes
        if name not in init_kwargs and name in state:
            init_kwargs[name] = _plain(state[name], path, f"attribute {name!r} of {key!r}")
    init_kwargs["class_name"] = str(net.get("class_name"))[:200]
    return state_dict, init_kwargs


# ----------------------------------------------------------------------------------------------
# Mapping to the param layout


def _config_from_kwargs(kw: dict, source: str) -> dict:
    mk = kw.get("mapping_kwargs") or {}
    sk = kw.get("synthesis_kwargs") or {}
    if not isinstance(mk, Mapping) or not isinstance(sk, Mapping):
        raise CheckpointFormatError(f"{source}: mapping_kwargs/synthesis_kwargs are not dicts")
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if name not in kw:
            raise CheckpointFormatError(f"{source}: constructor argument {name!r} is missing")
    arch = sk.get("architecture", "skip")
    if arch != "skip":
        raise CheckpointFormatError(f"{source}: synthesis architecture {str(arch)[:50]!r} is not supported "
                                    "(only 'skip')")
    if mk.get("activation", "lrelu") != "lrelu":
        raise CheckpointFormatError(f"{source}: mapping activation {str(mk.get('activation'))[:50]!r} is not "
                                    "supported")
    conv_clamp = sk.get("conv_clamp", None)
    try:
        config = {
            "z_dim": int(kw["z_dim"]),
            "c_dim": int(kw["c_dim"]),
            "w_dim": int(kw["w_dim"]),
            "img_resolution": validate_resolution(kw["img_resolution"], source),
            "img_channels": int(kw["img_channels"]),
            "mapping_layers": int(mk.get("num_layers", 8)),
            "mapping_lr_multiplier": float(mk.get("lr_multiplier", 0.01)),
            "channel_base": int(sk.get("channel_base", 32768)),
            "channel_max": int(sk.get("channel_max", 512)),
            "conv_clamp": None if conv_clamp is None else float(conv_clamp),
            "num_ws": num_ws(kw["img_resolution"]),
            "source": "nvlabs",
        }
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointFormatError(f"{source}: malformed constructor arguments ({type(e).__name__}: "
                                    f"{str(e)[:200]})") from None
    if config["conv_clamp"] is not None and config["conv_clamp"].is_integer():
        config["conv_clamp"] = int(config["conv_clamp"])
    return config


def nvlabs_to_params(state_dict: Mapping[str, np.ndarray], init_kwargs: Mapping,
                     *, source: str = "NVlabs state dict") -> tuple[dict, dict]:
    """Map an NVlabs ``G_ema.state_dict()`` (+ constructor kwargs) to ``(params, config)``.

    ``params`` nests the official names split on '.', all float32 in the official shapes; the
    ``resample_filter`` buffers are checked to be the standard ``outer([1,3,3,1])/64`` and dropped.
    ``config`` has keys z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_layers,
    mapping_lr_multiplier, channel_base, channel_max, conv_clamp, num_ws, source='nvlabs'.
    """
    kw = dict(init_kwargs)
    cls = kw.pop("class_name", "Generator")
    if cls not in (None, "None", "Generator"):
        raise CheckpointFormatError(f"{source}: network class is {str(cls)[:100]!r}, expected the StyleGAN2 "
                                    "'Generator'")
    config = _config_from_kwargs(kw, source)
    flat = {}
    for name, value in state_dict.items():
        if name.split(".")[-1] == "resample_filter":
            check_filter(name, value, 1.0, source)
            continue
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointFormatError(f"{source}: {name} has dtype {arr.dtype}, expected floating point")
        flat[name] = np.array(arr, dtype=np.float32, order="C")
    return finish(flat, config, source)
