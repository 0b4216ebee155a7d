"""Readers for official PyTorch StyleGAN2 checkpoints, and their mapping to the JAX param layout.

Two formats are supported:

* **NVlabs stylegan2-ada-pytorch network pickles** (``*.pkl``, e.g. ``ffhq.pkl``): read by
  :func:`read_nvlabs_pkl` with a restricted unpickler. Nothing from the file is imported or executed:
  every global the pickle names must be on an explicit allow-list and is mapped to a local, data-only
  stand-in; anything else raises :class:`UnsafeCheckpointError` before it is touched. The tensor
  storages (embedded as legacy ``torch.save`` byte strings) are parsed here, without torch, with a
  second restricted unpickler. torch is not needed for ``.pkl`` files.
* **rosinality stylegan2-pytorch checkpoints** (``*.pt``, ``{'g_ema': state_dict, 'latent_avg': t}``,
  as used by StyleCLIP): read by :func:`read_rosinality_pt` with
  ``torch.load(..., weights_only=True)``; needs torch (``pip install 'styleclip_jax[convert]'``).

Both are mapped to one parameter layout (see :func:`nvlabs_to_params`): a nested dict that mirrors the
NVlabs ``G_ema.state_dict()`` names split on '.', float32 arrays in the official PyTorch shapes, without
the constant ``resample_filter`` buffers, plus a plain config dict.

torch is never imported at module import time.
"""
from __future__ import annotations

import collections
import io
import math
import pathlib
import pickle
import re
import struct
from typing import Any, Mapping

import numpy as np

from . import torch_pt
from .params_io import (CheckpointError, CheckpointFormatError, CheckpointNotFoundError,
                          UnsafeCheckpointError)

__all__ = [
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "read_nvlabs_pkl",
    "nvlabs_to_params",
    "read_rosinality_pt",
    "rosinality_to_params",
    "infer_channel_base",
    "load_generator_arrays",
    "detect_format",
    "flatten_params",
    "STANDARD_FILTER",
]

# outer([1,3,3,1]) / 64: the FIR filter of every official StyleGAN2 generator.
STANDARD_FILTER = (np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0]) / 64.0).astype(np.float32)

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001


# ----------------------------------------------------------------------------------------------
# Data-only stand-ins for the globals an NVlabs pickle references


class PersistentRecord(dict):
    """The ``meta`` dict of a ``torch_utils.persistence`` object (type, version, module_src,
    class_name, state). The class is never rebuilt; ``state`` holds its ``__dict__``."""


class EasyDictStub(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict subclass with no behaviour."""


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict):
        raise CheckpointFormatError(f"persistent object record is a {type(meta).__name__}, expected a dict")
    return PersistentRecord(meta)


class _StorageType:
    """Marker for ``torch.<X>Storage`` classes named inside a storage blob."""

    def __init__(self, name: str, dtype: np.dtype | None):
        self.name = name
        self.dtype = dtype  # None = bfloat16 (read as uint16 and widened to float32)

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype is None else self.dtype.itemsize


_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("float32"),
    "DoubleStorage": np.dtype("float64"),
    "HalfStorage": np.dtype("float16"),
    "BFloat16Storage": None,
    "LongStorage": np.dtype("int64"),
    "IntStorage": np.dtype("int32"),
    "ShortStorage": np.dtype("int16"),
    "CharStorage": np.dtype("int8"),
    "ByteStorage": np.dtype("uint8"),
    "BoolStorage": np.dtype("bool"),
    "UntypedStorage": np.dtype("uint8"),
}


class _Storage:
    """A flat storage read from a legacy ``torch.save`` blob (filled after its pickle is read)."""

    def __init__(self, stype: _StorageType, numel: int):
        self.stype = stype
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel


class _Tensor:
    """A tensor rebuilt from a pickle: an inert holder of a numpy copy.

    Not an ``ndarray`` subclass on purpose, so that a pickle ``BUILD`` opcode cannot reach numpy's
    ``__setstate__`` through it.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __setstate__(self, state):
        raise CheckpointFormatError("unexpected state record on a tensor")


def _storage_array(storage) -> np.ndarray:
    if isinstance(storage, _StorageView):
        base = _storage_array(storage.root)
        return base[storage.offset:storage.offset + storage.numel]
    if isinstance(storage, _Storage):
        if storage.data is None:
            raise CheckpointFormatError("tensor refers to a storage whose data was never read")
        return storage.data
    raise CheckpointFormatError(f"tensor rebuild got a {type(storage).__name__} instead of a storage")


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """Rebuild a tensor as a numpy copy, checking every index stays inside the storage."""
    flat = _storage_array(storage)
    try:
        offset = int(storage_offset)
        size = tuple(int(s) for s in size)
        stride = tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise CheckpointFormatError("malformed tensor record (offset/size/stride are not integers)") from None
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointFormatError(f"malformed tensor record: size {size}, stride {stride}, offset {offset}")
    if 0 in size:
        return _Tensor(np.zeros(size, flat.dtype))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.shape[0]:
        raise CheckpointFormatError(f"tensor of size {size} (stride {stride}, offset {offset}) reads past the "
                                    f"end of its storage of {flat.shape[0]} elements")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=tuple(s * flat.itemsize for s in stride), writeable=False)
    return _Tensor(np.array(view, copy=True))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, _Tensor):
        raise CheckpointFormatError(f"parameter rebuild got a {type(data).__name__} instead of a tensor")
    return data


class _DType:
    """Stand-in for ``numpy.dtype``: only plain numeric type strings such as 'f8' or '<i4'.

    A real ``numpy.dtype`` is never exposed to the pickle: its ``__setstate__`` accepts arbitrary
    flags (e.g. "holds objects"), which a hostile file could use to corrupt memory. Here the state
    may only choose the byte order.
    """

    __slots__ = ("spec", "order")

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or not re.fullmatch(r"[<>|=]?(?:[biufc]\d{1,2}|\?)", spec):
            raise CheckpointFormatError(f"numpy dtype {spec!r} is not a plain numeric type")
        self.spec, self.order = spec, None

    def __setstate__(self, state):
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if order not in ("<", ">", "|", "="):
            raise CheckpointFormatError("malformed numpy dtype record")
        self.order = order

    @property
    def np(self) -> np.dtype:
        dt = np.dtype(self.spec)
        if self.order in ("<", ">") and dt.itemsize > 1:
            dt = dt.newbyteorder(self.order)
        return dt


def _numpy_scalar(dtype, data=None):
    """Stand-in for ``numpy.core.multiarray.scalar``: numeric dtypes from raw bytes only."""
    if not isinstance(dtype, _DType):
        raise CheckpointFormatError("numpy scalar record without a plain numeric dtype")
    dt = dtype.np
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise CheckpointFormatError("malformed numpy scalar record")
    return np.frombuffer(bytes(data), dtype=dt)[0]


class _NdarrayMarker:
    """What ``numpy.ndarray`` resolves to: only usable as the first argument of ``_reconstruct``."""


_NDARRAY = _NdarrayMarker()


class _PickledArray:
    """Stand-in for a pickled ``numpy.ndarray``; ``value`` holds a fresh copy after ``BUILD``."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise CheckpointFormatError("malformed numpy array record")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DType) or not isinstance(raw, (bytes, bytearray)):
            raise CheckpointFormatError("numpy array record without a plain numeric dtype and raw bytes")
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise CheckpointFormatError("malformed numpy array shape") from None
        dt = dtype.np
        if any(n < 0 for n in shape) or len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise CheckpointFormatError("numpy array record has the wrong number of bytes")
        self.value = np.frombuffer(bytes(raw), dtype=dt).reshape(shape, order="F" if fortran else "C").copy()


def _numpy_reconstruct(subtype, shape, dtype_code):
    """Stand-in for ``numpy.core.multiarray._reconstruct`` (pickled numpy arrays)."""
    if subtype is not _NDARRAY:
        raise CheckpointFormatError("pickled numpy array of an unsupported class")
    return _PickledArray()


def _codecs_encode(text, encoding="utf-8"):
    """Stand-in for ``_codecs.encode`` as used by protocol-2 pickles for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointFormatError("unsupported _codecs.encode record")
    return text.encode("latin-1")


_OUTER_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDictStub,
    ("dnnlib", "EasyDict"): EasyDictStub,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    # ("torch.storage", "_load_from_bytes") is bound per unpickler (it needs the file name).
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _DType,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "dict"): dict,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


def _refuse(path, module, name, where):
    hint = ""
    if module.startswith("dnnlib.tflib"):
        hint = (" This looks like a TensorFlow StyleGAN pickle; convert it to a PyTorch pickle with the "
                "official stylegan2-ada-pytorch legacy.py first.")
    raise UnsafeCheckpointError(
        f"{path}: refused to load global '{module}.{name}' {where}; only an allow-list of data-only "
        f"globals is accepted, so nothing from this file was imported or run.{hint}")


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, path, allowed, where):
        super().__init__(file)
        self._path, self._allowed, self._where = path, allowed, where

    def find_class(self, module, name):
        fn = self._allowed.get((module, name))
        if fn is None:
            _refuse(self._path, module, name, self._where)
        return fn

    def persistent_load(self, pid):
        raise CheckpointFormatError(f"{self._path}: unexpected persistent id {self._where}")


class _StorageBlobUnpickler(_SafeUnpickler):
    """Restricted unpickler for the object pickle inside a legacy ``torch.save`` storage blob."""

    def __init__(self, file, path):
        super().__init__(file, path, {}, "inside an embedded tensor storage")
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        _refuse(self._path, module, name, self._where)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] not in ("storage", b"storage"):
            raise CheckpointFormatError(f"{self._path}: unexpected persistent id in an embedded tensor storage")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointFormatError(f"{self._path}: malformed storage record in an embedded tensor storage")
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(stype, numel)
        if view is not None:
            _view_key, offset, size = view
            if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset
                    and offset + size <= storage.numel):
                raise CheckpointFormatError(f"{self._path}: malformed storage view record")
            return _StorageView(storage, offset, size)
        return storage


def _read_storage_blob(blob: bytes, path) -> Any:
    """Parse the bytes given to ``torch.storage._load_from_bytes`` without torch.

    Legacy ``torch.save`` layout: pickled magic number, pickled protocol version (1001), pickled
    sys-info dict, the object pickle (storages as persistent ids), the pickled list of storage keys,
    then for each key in that order an int64 element count followed by the raw element bytes.
    """
    if not isinstance(blob, (bytes, bytearray)):
        raise CheckpointFormatError(f"{path}: embedded tensor storage is a {type(blob).__name__}, expected bytes")
    if blob[:2] == b"PK":
        raise CheckpointFormatError(f"{path}: embedded tensor storage uses the zip torch.save format; only the "
                                    "legacy format written by torch.Storage.__reduce__ is supported")
    f = io.BytesIO(blob)

    def plain(what):
        return _SafeUnpickler(f, path, {}, f"in the {what} of an embedded tensor storage").load()

    if plain("header") != _TORCH_LEGACY_MAGIC:
        raise CheckpointFormatError(f"{path}: embedded tensor storage has a bad magic number")
    if plain("header") != _TORCH_LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"{path}: embedded tensor storage has an unknown protocol version")
    sys_info = plain("header")
    little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    unpickler = _StorageBlobUnpickler(f, path)
    result = unpickler.load()
    keys = plain("key list")
    if not isinstance(keys, list):
        raise CheckpointFormatError(f"{path}: embedded tensor storage has a malformed key list")
    for key in keys:
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        storage = unpickler.storages.get(key)
        if storage is None:
            raise CheckpointFormatError(f"{path}: embedded tensor storage lists unknown key {key!r}")
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path}: embedded tensor storage is truncated")
        (count,) = struct.unpack("<q" if little else ">q", header)
        if count != storage.numel:
            raise CheckpointFormatError(f"{path}: embedded tensor storage says {count} elements, expected "
                                        f"{storage.numel}")
        nbytes = count * storage.stype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointFormatError(f"{path}: embedded tensor storage is truncated")
        if storage.stype.dtype is None:  # bfloat16 -> float32
            u16 = np.frombuffer(raw, dtype="<u2" if little else ">u2").astype(np.uint32)
            data = (u16 << 16).view(np.float32)
        else:
            data = np.frombuffer(raw, dtype=storage.stype.dtype.newbyteorder("<" if little else ">"))
            data = data.astype(storage.stype.dtype.newbyteorder("="), copy=False)
        storage.data = data
    for key, storage in unpickler.storages.items():
        if storage.data is None:
            raise CheckpointFormatError(f"{path}: embedded tensor storage {key!r} has no data")
    if not isinstance(result, (_Storage, _StorageView)):
        raise CheckpointFormatError(f"{path}: embedded tensor blob holds a {type(result).__name__}, "
                                    "expected a storage")
    return result


class _NetworkPickleUnpickler(_SafeUnpickler):
    def __init__(self, file, path):
        allowed = dict(_OUTER_ALLOWED)
        allowed[("torch.storage", "_load_from_bytes")] = lambda b: _read_storage_blob(b, path)
        super().__init__(file, path, allowed, "in the network pickle")


# ----------------------------------------------------------------------------------------------
# NVlabs network pickles


def _open_checked(path) -> pathlib.Path:
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: file does not exist")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: expected a file, got a directory")
    return path


def _load_network_pickle(path: pathlib.Path):
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head[:1] != b"\x80":
            what = "a zip archive (a torch.save checkpoint?)" if head == b"PK" else "not a pickle"
            raise CheckpointFormatError(f"{path}: expected an NVlabs stylegan2-ada-pytorch network pickle "
                                        f"(a Python pickle), but the file is {what}")
        try:
            return _NetworkPickleUnpickler(f, path).load()
        except UnsafeCheckpointError:
            raise
        except CheckpointFormatError as e:
            if str(path) in str(e):
                raise
            raise CheckpointFormatError(f"{path}: {e}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, struct.error, MemoryError, OverflowError, UnicodeDecodeError,
                RecursionError) as e:
            raise CheckpointFormatError(f"{path}: corrupt or truncated network pickle "
                                        f"({type(e).__name__}: {e})") from None


def _plain(obj):
    """EasyDict stubs / OrderedDicts / numpy scalars -> plain python containers and numbers."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PickledArray):
        return obj.value
    if isinstance(obj, _Tensor):
        return obj.array
    return obj


_GENERATOR_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")


def _collect_state(record, prefix: str, out: dict, path) -> None:
    if not isinstance(record, PersistentRecord) or not isinstance(record.get("state"), dict):
        raise CheckpointFormatError(f"{path}: module {prefix.rstrip('.') or '<root>'} is not a persistent "
                                    "network record")
    state = record["state"]
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, _Tensor):
                raise CheckpointFormatError(f"{path}: {prefix}{name} is a {type(value).__name__}, "
                                            "expected a tensor")
            out[prefix + name] = value.array
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect_state(child, f"{prefix}{name}.", out, path)


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
      CheckpointFormatError: the file is not such a pickle, is truncated or corrupt, or lacks ``key``.
    """
    path = _open_checked(path)
    data = _load_network_pickle(path)
    if isinstance(data, PersistentRecord):
        net = data
    elif isinstance(data, dict):
        if key not in data:
            raise CheckpointFormatError(f"{path}: network pickle has no {key!r} entry (found {sorted(map(str, data))})")
        net = data[key]
    else:
        raise CheckpointFormatError(f"{path}: expected a dict of networks, got {type(data).__name__}")
    if not isinstance(net, PersistentRecord):
        raise CheckpointFormatError(f"{path}: entry {key!r} is a {type(net).__name__}, not a persistent network")
    state = net.get("state")
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"{path}: network record {key!r} has no state")
    state_dict: dict[str, np.ndarray] = collections.OrderedDict()
    _collect_state(net, "", state_dict, path)
    init_args = _plain(state.get("_init_args") or ())
    init_kwargs = _plain(state.get("_init_kwargs") or {})
    if not isinstance(init_kwargs, dict) or not isinstance(init_args, (tuple, list)):
        raise CheckpointFormatError(f"{path}: malformed constructor arguments in network record {key!r}")
    init_kwargs = dict(init_kwargs)
    for name, value in zip(_GENERATOR_POSITIONAL, init_args):
        init_kwargs.setdefault(name, value)
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):  # fall back to attributes
        if name not in init_kwargs and name in state:
            init_kwargs[name] = _plain(state[name])
    init_kwargs["class_name"] = str(net.get("class_name"))
    return state_dict, init_kwargs


# ----------------------------------------------------------------------------------------------
# Param layout helpers


def _set_nested(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def flatten_params(params: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested param dict -> ``{dotted name: array}`` (the inverse of the nesting used here)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, Mapping):
            out.update(flatten_params(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _channels(res: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // res, channel_max)


def _expected_shapes(config: dict, embed: bool) -> dict[str, tuple]:
    """Every param name of the layout with its shape, derived from the config."""
    z, c, w = config["z_dim"], config["c_dim"], config["w_dim"]
    shapes: dict[str, tuple] = {}
    in_f = z + (w if c else 0)
    if embed:
        shapes["mapping.embed.weight"] = (w, c)
        shapes["mapping.embed.bias"] = (w,)
    for i in range(config["mapping_layers"]):
        shapes[f"mapping.fc{i}.weight"] = (w, in_f)
        shapes[f"mapping.fc{i}.bias"] = (w,)
        in_f = w
    shapes["mapping.w_avg"] = (w,)
    log2 = int(round(math.log2(config["img_resolution"])))
    ch = lambda r: _channels(r, config["channel_base"], config["channel_max"])  # noqa: E731
    for r in (2 ** k for k in range(2, log2 + 1)):
        b = f"synthesis.b{r}"
        if r == 4:
            shapes[f"{b}.const"] = (ch(4), 4, 4)
        convs = (("conv1", ch(4), ch(4)),) if r == 4 else (("conv0", ch(r // 2), ch(r)), ("conv1", ch(r), ch(r)))
        for name, cin, cout in convs:
            shapes[f"{b}.{name}.weight"] = (cout, cin, 3, 3)
            shapes[f"{b}.{name}.bias"] = (cout,)
            shapes[f"{b}.{name}.noise_strength"] = ()
            shapes[f"{b}.{name}.noise_const"] = (r, r)
            shapes[f"{b}.{name}.affine.weight"] = (cin, w)
            shapes[f"{b}.{name}.affine.bias"] = (cin,)
        shapes[f"{b}.torgb.weight"] = (config["img_channels"], ch(r), 1, 1)
        shapes[f"{b}.torgb.bias"] = (config["img_channels"],)
        shapes[f"{b}.torgb.affine.weight"] = (ch(r), w)
        shapes[f"{b}.torgb.affine.bias"] = (ch(r),)
    return shapes


def _check_layout(flat: dict, config: dict, source: str) -> None:
    expected = _expected_shapes(config, embed="mapping.embed.weight" in flat)
    missing = [k for k in expected if k not in flat]
    unexpected = [k for k in flat if k not in expected]
    if missing or unexpected:
        raise CheckpointFormatError(
            f"{source}: weights do not match a StyleGAN2 generator with config {config}: "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}")
    for k, shape in expected.items():
        if tuple(flat[k].shape) != shape:
            raise CheckpointFormatError(f"{source}: {k} has shape {tuple(flat[k].shape)}, expected {shape} "
                                        f"for config {config}")


def _check_filter(name: str, value: np.ndarray, gain: float, source: str) -> None:
    value = np.asarray(value, dtype=np.float64)
    ref = STANDARD_FILTER.astype(np.float64) * gain
    if value.shape != ref.shape or not np.allclose(value, ref, rtol=0, atol=1e-7):
        raise CheckpointFormatError(f"{source}: {name} is not the standard StyleGAN2 FIR filter "
                                    f"outer([1,3,3,1])/64{' x %g' % gain if gain != 1 else ''}; "
                                    "custom resampling filters are not supported")


def _num_ws(img_resolution: int) -> int:
    return 2 * int(round(math.log2(img_resolution))) - 2


def _validate_resolution(res, source: str) -> int:
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        raise CheckpointFormatError(f"{source}: img_resolution {res!r} is not a power of two >= 4")
    return res


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
        raise CheckpointFormatError(f"{source}: network class is {cls!r}, expected the StyleGAN2 'Generator'")
    mk = dict(kw.get("mapping_kwargs") or {})
    sk = dict(kw.get("synthesis_kwargs") or {})
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if name not in kw:
            raise CheckpointFormatError(f"{source}: constructor argument {name!r} is missing")
    arch = sk.get("architecture", "skip")
    if arch != "skip":
        raise CheckpointFormatError(f"{source}: synthesis architecture {arch!r} is not supported (only 'skip')")
    if mk.get("activation", "lrelu") != "lrelu":
        raise CheckpointFormatError(f"{source}: mapping activation {mk.get('activation')!r} is not supported")
    conv_clamp = sk.get("conv_clamp", None)
    config = {
        "z_dim": int(kw["z_dim"]),
        "c_dim": int(kw["c_dim"]),
        "w_dim": int(kw["w_dim"]),
        "img_resolution": _validate_resolution(kw["img_resolution"], source),
        "img_channels": int(kw["img_channels"]),
        "mapping_layers": int(mk.get("num_layers", 8)),
        "mapping_lr_multiplier": float(mk.get("lr_multiplier", 0.01)),
        "channel_base": int(sk.get("channel_base", 32768)),
        "channel_max": int(sk.get("channel_max", 512)),
        "conv_clamp": None if conv_clamp is None else float(conv_clamp),
        "num_ws": _num_ws(kw["img_resolution"]),
        "source": "nvlabs",
    }
    if config["conv_clamp"] is not None and config["conv_clamp"].is_integer():
        config["conv_clamp"] = int(config["conv_clamp"])
    flat = {}
    for name, value in state_dict.items():
        if name.split(".")[-1] == "resample_filter":
            _check_filter(name, value, 1.0, source)
            continue
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointFormatError(f"{source}: {name} has dtype {arr.dtype}, expected floating point")
        flat[name] = np.array(arr, dtype=np.float32, order="C")
    _check_layout(flat, config, source)
    params: dict = {}
    for name, arr in flat.items():
        _set_nested(params, name, arr)
    return params, config


# ----------------------------------------------------------------------------------------------
# rosinality checkpoints


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
        keys = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
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
        if all(_channels(r, base, channel_max) == c for r, c in chans.items()):
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
            _check_filter(f"{src}.conv.blur.kernel", take(f"{src}.conv.blur.kernel"), 4.0, source)

    def to_rgb(src, dst, up):
        w = take(f"{src}.conv.weight")
        if w.ndim != 5 or w.shape[0] != 1:
            raise CheckpointFormatError(f"{source}: {src}.conv.weight has shape {w.shape}, expected (1,O,I,1,1)")
        flat[f"{dst}.weight"] = w[0]
        flat[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        flat[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        flat[f"{dst}.bias"] = take(f"{src}.bias", (w.shape[1],))
        if up:
            _check_filter(f"{src}.upsample.kernel", take(f"{src}.upsample.kernel"), 4.0, source)

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
        "num_ws": _num_ws(img_res),
        "source": "rosinality",
    }
    _check_layout(flat, config, source)
    params: dict = {}
    for name, arr in flat.items():
        _set_nested(params, name, arr)
    return params, config


# ----------------------------------------------------------------------------------------------
# Dispatch


def detect_format(path) -> str:
    """Return 'orbax' (a checkpoint directory), 'nvlabs_pkl' or 'rosinality_pt' for ``path``.

    The extension decides (``.pkl``; ``.pt``/``.pth``/``.ckpt``); otherwise the first bytes do (a zip
    archive is a torch checkpoint; a pickle whose first object is the legacy torch magic number is a
    torch checkpoint; any other pickle is taken as a network pickle).
    """
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: file or directory does not exist")
    if path.is_dir():
        return "orbax"
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return "nvlabs_pkl"
    if suffix in (".pt", ".pth", ".ckpt"):
        return "rosinality_pt"
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:2] == b"PK":
        return "rosinality_pt"
    if head[:1] == b"\x80":
        # legacy torch.save starts with the pickled magic number (LONG1 opcode 0x8a, 10 bytes).
        if head[2:4] == b"\x8a\x0a":
            return "rosinality_pt"
        return "nvlabs_pkl"
    raise CheckpointFormatError(f"{path}: unknown checkpoint format; expected an NVlabs .pkl, a rosinality "
                                ".pt/.pth, or a converted checkpoint directory")


def load_generator_arrays(path, *, key: str = "G_ema", latent_avg=None) -> tuple[dict, dict]:
    """Load StyleGAN2 generator ``(params, config)`` from any supported source.

    * a directory written by ``checkpoints_convert/convert_stylegan2.py`` (``checkpoints.save_params``);
    * an NVlabs ``.pkl`` network pickle (``key`` picks the network, ``'G_ema'`` by default);
    * a rosinality ``.pt``/``.pth`` checkpoint (``latent_avg`` overrides/supplies the average w).

    The returned config never contains the bookkeeping key ``'kind'``.
    """
    fmt = detect_format(path)
    if fmt == "orbax":
        from .. import checkpoints

        params, config = checkpoints.load_params(path)
        kind = config.pop("kind", "stylegan2_generator")
        if kind != "stylegan2_generator":
            raise CheckpointFormatError(f"{path}: checkpoint kind is {kind!r}, expected 'stylegan2_generator'")
        return params, config
    if fmt == "nvlabs_pkl":
        sd, kwargs = read_nvlabs_pkl(path, key=key)
        return nvlabs_to_params(sd, kwargs, source=f"{path} [{key}]")
    sd, stored_avg = read_rosinality_pt(path)
    return rosinality_to_params(sd, stored_avg if latent_avg is None else latent_avg, source=str(path))
