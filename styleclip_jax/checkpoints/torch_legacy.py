"""Tensors inside pickles without torch: the legacy ``torch.save`` storage blob and the tensor-rebuild stand-ins.

A tensor in a network pickle is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
whose storage is ``torch.storage._load_from_bytes(blob)``, ``blob`` being a legacy ``torch.save`` of the
storage. Both are parsed here with :mod:`safe_pickle`; every declared size is checked against the
bytes present before anything is allocated: a storage may not declare more elements than its blob
holds, a tensor may not view more elements than its storage holds (stride 0 included), and all
allocations are charged to the loading unpickler's budget (a few times the file size).
"""
from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from ..errors import CheckpointFormatError
from . import safe_pickle
from .safe_pickle import PerLoad

__all__ = ["Tensor", "TENSOR_GLOBALS", "TORCH_LEGACY_MAGIC", "read_storage_blob"]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
MAX_NDIM = 16


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
_STORAGE_GLOBALS = {(module, name): _StorageType(name, dtype)
                    for module in ("torch", "torch.cuda") for name, dtype in _STORAGE_DTYPES.items()}


class _Storage:
    """A flat storage read from a legacy ``torch.save`` blob (filled after its pickle is read)."""

    def __init__(self, stype: _StorageType, numel: int):
        self.stype = stype
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel


class Tensor:
    """A tensor rebuilt from a pickle: an inert holder of a numpy copy.

    Not an ``ndarray`` subclass on purpose, so that a pickle ``BUILD`` opcode cannot reach numpy's
    ``__setstate__`` through it.
    """

    __slots__ = ("array",)
    _accepts_state = True

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


def _rebuild_tensor(unpickler):
    def rebuild(storage, storage_offset, size, stride, *_ignored):
        """Rebuild a tensor as a numpy copy; it may view at most the elements its storage holds."""
        flat = _storage_array(storage)
        try:
            offset = int(storage_offset)
            size = tuple(int(s) for s in size)
            stride = tuple(int(s) for s in stride)
        except (TypeError, ValueError):
            raise CheckpointFormatError("malformed tensor record (offset/size/stride are not integers)") from None
        if (len(size) != len(stride) or len(size) > MAX_NDIM or offset < 0 or any(s < 0 for s in size)
                or any(s < 0 for s in stride)):
            raise CheckpointFormatError(f"malformed tensor record: size {size}, stride {stride}, offset {offset}")
        numel = 1
        for n in size:
            numel *= n
        if numel == 0:
            return Tensor(np.zeros(size, flat.dtype))
        if numel > flat.shape[0]:
            raise CheckpointFormatError(f"tensor of size {size} (stride {stride}) declares {numel} elements but "
                                        f"its storage holds {flat.shape[0]}")
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.shape[0]:
            raise CheckpointFormatError(f"tensor of size {size} (stride {stride}, offset {offset}) reads past the "
                                        f"end of its storage of {flat.shape[0]} elements")
        unpickler.charge(numel * flat.itemsize, "a tensor")
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                               strides=tuple(s * flat.itemsize for s in stride), writeable=False)
        return Tensor(np.array(view, copy=True))
    return rebuild


def _rebuild_tensor_v2(unpickler):
    rebuild = _rebuild_tensor(unpickler)

    def rebuild_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                   metadata=None):
        return rebuild(storage, storage_offset, size, stride)
    return rebuild_v2


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, Tensor):
        raise CheckpointFormatError(f"parameter rebuild got a {type(data).__name__} instead of a tensor")
    return data


def _storage_persistent_load(path, blob_size: int, storages: dict, charge):
    where = "in an embedded tensor storage"

    def persistent_load(pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] not in ("storage", b"storage"):
            raise CheckpointFormatError(f"{path}: unexpected persistent id {where}")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointFormatError(f"{path}: malformed storage record {where}")
        key = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
        storage = storages.get(key)
        if storage is None:
            nbytes = numel * stype.itemsize
            if nbytes > blob_size:
                raise CheckpointFormatError(f"{path}: storage {key!r} {where} declares {numel} elements "
                                            f"({nbytes} bytes) but the blob holds only {blob_size} bytes")
            charge(nbytes * (2 if stype.dtype is None else 1), "a tensor storage")
            storage = storages[key] = _Storage(stype, numel)
        if view is not None:
            if not isinstance(view, tuple) or len(view) != 3:
                raise CheckpointFormatError(f"{path}: malformed storage view record")
            _view_key, offset, size = view
            if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset and 0 <= size
                    and offset + size <= storage.numel):
                raise CheckpointFormatError(f"{path}: malformed storage view record")
            return _StorageView(storage, offset, size)
        return storage
    return persistent_load


def read_storage_blob(blob: bytes, path, charge) -> Any:
    """Parse the bytes given to ``torch.storage._load_from_bytes`` without torch.

    Legacy ``torch.save`` layout: pickled magic number, pickled protocol version (1001), pickled
    sys-info dict, the object pickle (storages as persistent ids), the pickled list of storage keys,
    then for each key in that order an int64 element count followed by the raw element bytes.
    ``charge(nbytes, what)`` accounts every allocation against the enclosing load's budget.
    """
    if not isinstance(blob, bytes):
        raise CheckpointFormatError(f"{path}: embedded tensor storage is a {type(blob).__name__}, expected bytes")
    if blob[:2] == b"PK":
        raise CheckpointFormatError(f"{path}: embedded tensor storage uses the zip torch.save format; only the "
                                    "legacy format written by torch.Storage.__reduce__ is supported")
    f = safe_pickle.BoundedReader(io.BytesIO(blob), len(blob), path)
    budget = safe_pickle.BUDGET_FACTOR * len(blob) + safe_pickle.BUDGET_SLACK

    def plain(what, persistent_load=None):
        return safe_pickle.load(f, path, {}, f"in the {what} of an embedded tensor storage", budget=budget,
                                persistent_load=persistent_load)

    if plain("header") != TORCH_LEGACY_MAGIC:
        raise CheckpointFormatError(f"{path}: embedded tensor storage has a bad magic number")
    if plain("header") != _TORCH_LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"{path}: embedded tensor storage has an unknown protocol version")
    sys_info = plain("header")
    little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    storages: dict[str, _Storage] = {}
    result = safe_pickle.load(f, path, _STORAGE_GLOBALS, "inside an embedded tensor storage", budget=budget,
                              persistent_load=_storage_persistent_load(path, len(blob), storages, charge))
    keys = plain("key list")
    if not isinstance(keys, list) or len(keys) > len(storages):
        raise CheckpointFormatError(f"{path}: embedded tensor storage has a malformed key list")
    for key in keys:
        key = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
        storage = storages.get(key)
        if storage is None or storage.data is not None:
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
    for key, storage in storages.items():
        if storage.data is None:
            raise CheckpointFormatError(f"{path}: embedded tensor storage {key!r} has no data")
    if not isinstance(result, (_Storage, _StorageView)):
        raise CheckpointFormatError(f"{path}: embedded tensor blob holds a {type(result).__name__}, "
                                    "expected a storage")
    return result


def _load_from_bytes(unpickler):
    def load_from_bytes(blob):
        unpickler.charge(0, "a tensor storage")
        return read_storage_blob(blob, unpickler.path, unpickler.charge)
    return load_from_bytes


# The globals a pickled tensor needs (torch.save of one storage, then a rebuild call).
TENSOR_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): PerLoad(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor"): PerLoad(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): PerLoad(_load_from_bytes),
}
