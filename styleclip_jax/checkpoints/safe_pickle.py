"""The allow-list unpickler: the one place the package reads a pickle; bounded in bytes, objects and depth.

Nothing named by a pickle is imported: every global it asks for must be on an explicit allow-list
(``{(module, name): stand-in}``) and resolves to a local, data-only stand-in; anything else raises
:class:`UnsafeCheckpointError` naming the file and the global. Cost is bounded by the file:

* pickle's pure-Python unpickler is used (its memo is a dict: the C unpickler allocates and clears a
  memo array as large as the biggest ``PUT`` index, 2 GB for a 10-byte file);
* no read may ask for more bytes than the file still holds, and ``BYTEARRAY8`` / out-of-band buffers
  are refused;
* every stand-in that copies data (``set(list)``, numpy arrays, tensor storages...) charges the bytes
  it would allocate against a budget proportional to the file size *before* allocating;
* at most :data:`MAX_OBJECTS` objects and container items may be created, and after loading the
  object graph may be at most :data:`MAX_DEPTH` containers deep (checked iteratively, shared
  references visited once, so the check is linear in the file size and cannot hit a RecursionError).

No torch here; the NVlabs and legacy-torch stand-ins live in ``nvlabs.py`` and ``torch_legacy.py``.
"""
from __future__ import annotations

import collections
import os
import pathlib
import pickle
import re
import struct
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError

__all__ = ["MAX_DEPTH", "MAX_OBJECTS", "PerLoad", "SafeUnpickler", "load", "load_file", "check_graph",
           "DATA_GLOBALS", "PickledArray", "BoundedReader", "refuse", "check_file"]

MAX_DEPTH = 100            # containers nested deeper than this are refused (real network pickles: ~20)
MAX_OBJECTS = 2_000_000    # objects created + container items stored (real FFHQ snapshots: ~1e5)
BUDGET_FACTOR = 4          # stand-ins may allocate at most 4x the file size (+ BUDGET_SLACK) in total
BUDGET_SLACK = 1 << 20


def check_file(path) -> pathlib.Path:
    """``path`` as a Path if it is an existing file; CheckpointNotFoundError / CheckpointFormatError otherwise."""
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: file does not exist")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: expected a file, got a directory")
    return path


class PerLoad:
    """An allow-list entry built per unpickler: ``factory(unpickler) -> stand-in`` (to charge its budget)."""

    def __init__(self, factory: Callable[["SafeUnpickler"], Any]):
        self.factory = factory


def refuse(path, module: str, name: str, where: str):
    hint = ""
    if module.startswith("dnnlib.tflib"):
        hint = (" This looks like a TensorFlow StyleGAN pickle; convert it to a PyTorch pickle with the "
                "official stylegan2-ada-pytorch legacy.py first.")
    raise UnsafeCheckpointError(
        f"{path}: refused to load global '{module}.{name}' {where}; only an allow-list of data-only "
        f"globals is accepted, so nothing from this file was imported or run.{hint}")


class BoundedReader:
    """File wrapper whose reads may never ask for more bytes than remain (no huge pre-allocation)."""

    def __init__(self, f, size: int, path):
        self._f, self._left, self._path = f, size, path

    def read(self, n=-1):
        if n is None or n < 0:
            n = self._left
        if n > self._left:
            raise CheckpointFormatError(f"{self._path}: corrupt or truncated pickle: a record declares {n} bytes but only "
                                        f"{self._left} remain in the file")
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readline(self):
        data = self._f.readline(self._left)
        self._left -= len(data)
        return data


def _count(n_items: Callable[["SafeUnpickler"], int], op):
    def wrapped(self):
        self.objects += n_items(self)
        if self.objects > MAX_OBJECTS:
            raise CheckpointFormatError(f"{self.path}: more than {MAX_OBJECTS} objects {self.where}; "
                                        "not a checkpoint this reader accepts")
        op(self)
    return wrapped


def _plain_key(k) -> bool:
    """Keys of dicts and items of sets may only be strings, bytes, None or integers below 2**60: their hashes
    are distinct (str/bytes hashes are salted), so no file can make dict or set insertion quadratic."""
    return k is None or isinstance(k, (str, bytes)) or (isinstance(k, int) and -(1 << 60) < k < (1 << 60))


def check_keys(keys, path, where: str) -> None:
    for k in keys:
        if not _plain_key(k):
            raise CheckpointFormatError(f"{path}: a dict key or set item of type {type(k).__name__} {where} is "
                                        "not accepted (only strings, bytes and small integers)")


def _keys_checked(keys_of, op):
    def wrapped(self):
        check_keys(keys_of(self), self.path, self.where)
        op(self)
    return wrapped


def _refuse_opcode(what):
    def op(self):
        raise CheckpointFormatError(f"{self.path}: {what} {self.where} are not accepted")
    return op


class SafeUnpickler(pickle._Unpickler):
    """Restricted, bounded unpickler (see the module docstring).

    allowed: ``{(module, name): stand-in or PerLoad}``.
    where: a few words for messages ("in the network pickle").
    budget: bytes the stand-ins may allocate in total (``charge``).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path, allowed: Mapping, where: str, *, budget: int,
                 persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(file)
        self.path, self.where, self.budget, self.objects = path, where, int(budget), 0
        self._allowed = allowed
        self._resolved: dict = {}
        self._persistent = persistent_load

    def charge(self, nbytes: int, what: str) -> None:
        """Account ``nbytes`` a stand-in is about to allocate; refuse once the budget is spent."""
        nbytes = int(nbytes)
        if nbytes < 0 or nbytes > self.budget:
            raise CheckpointFormatError(f"{self.path}: {what} {self.where} declares {nbytes} bytes, more than "
                                        "the file can hold")
        self.budget -= nbytes

    def find_class(self, module, name):
        key = (module, name)
        if key not in self._resolved:
            fn = self._allowed.get(key)
            if fn is None:
                refuse(self.path, module, name, self.where)
            self._resolved[key] = fn.factory(self) if isinstance(fn, PerLoad) else fn
        return self._resolved[key]

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointFormatError(f"{self.path}: unexpected persistent id {self.where}")
        return self._persistent(pid)

    # -- opcodes with extra checks -------------------------------------------------------------
    def _load_build(self):
        """BUILD only on stand-ins that define ``__setstate__`` or on plain dict stand-ins (as attributes)."""
        state = self.stack.pop()
        inst = self.stack[-1]
        setstate = getattr(type(inst), "__setstate__", None)
        if setstate is not None and getattr(type(inst), "_accepts_state", False):
            inst.__setstate__(state)
            return
        if state is None or state == {}:
            return
        if isinstance(inst, dict) and type(inst) is not dict and isinstance(state, dict):
            self.charge(16 * len(state), "an object state")
            inst.__dict__.update({str(k): v for k, v in state.items()})
            return
        raise CheckpointFormatError(f"{self.path}: unexpected state record for a {type(inst).__name__} "
                                    f"{self.where}")

    def _load_newobj(self, kwargs=None):
        args = self.stack.pop()
        cls = self.stack.pop()
        if not (isinstance(cls, type) and issubclass(cls, dict) and not args and not kwargs):
            raise CheckpointFormatError(f"{self.path}: unexpected object creation (NEWOBJ of a "
                                        f"{getattr(cls, '__name__', type(cls).__name__)}) {self.where}")
        self.append(cls.__new__(cls))

    def _load_newobj_ex(self):
        kwargs = self.stack.pop()
        self._load_newobj(kwargs)

    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BYTEARRAY8[0]] = _refuse_opcode("bytearrays")
    dispatch[pickle.NEXT_BUFFER[0]] = _refuse_opcode("out-of-band buffers")
    dispatch[pickle.READONLY_BUFFER[0]] = _refuse_opcode("out-of-band buffers")
    _one = (lambda self: 1)
    _marked = (lambda self: 1 + len(self.stack))  # items between MARK and the opcode
    for _op in (pickle.EMPTY_LIST, pickle.EMPTY_DICT, pickle.EMPTY_SET, pickle.REDUCE, pickle.NEWOBJ,
                pickle.NEWOBJ_EX, pickle.BUILD, pickle.APPEND, pickle.SETITEM, pickle.TUPLE1, pickle.TUPLE2,
                pickle.TUPLE3, pickle.BINPERSID, pickle.PERSID):
        dispatch[_op[0]] = _count(_one, dispatch[_op[0]])
    for _op in (pickle.APPENDS, pickle.SETITEMS, pickle.ADDITEMS, pickle.TUPLE, pickle.LIST, pickle.DICT,
                pickle.FROZENSET, pickle.INST, pickle.OBJ):
        dispatch[_op[0]] = _count(_marked, dispatch[_op[0]])
    dispatch[pickle.SETITEM[0]] = _keys_checked(lambda self: self.stack[-2:-1], dispatch[pickle.SETITEM[0]])
    for _op in (pickle.SETITEMS, pickle.DICT):
        dispatch[_op[0]] = _keys_checked(lambda self: self.stack[0::2], dispatch[_op[0]])
    for _op in (pickle.ADDITEMS, pickle.FROZENSET):
        dispatch[_op[0]] = _keys_checked(lambda self: self.stack, dispatch[_op[0]])
    del _op, _one, _marked


_LOAD_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                struct.error, MemoryError, OverflowError, UnicodeDecodeError, RecursionError)


def load(file, path, allowed: Mapping, where: str, *, budget: int,
         persistent_load: Callable[[Any], Any] | None = None, what: str = "pickle") -> Any:
    """Unpickle one object from ``file`` (positioned at its start) and check its graph.

    Raises UnsafeCheckpointError (a global outside ``allowed``) or CheckpointFormatError naming ``path``.
    """
    unpickler = SafeUnpickler(file, path, allowed, where, budget=budget, persistent_load=persistent_load)
    try:
        obj = unpickler.load()
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except _LOAD_ERRORS as e:
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointFormatError(f"{path}: corrupt or truncated {what} {where} ({type(e).__name__}: {msg})") \
            from None
    check_graph(obj, path, where)
    return obj


def load_file(path, allowed: Mapping, where: str, *, what: str = "pickle") -> Any:
    """Open ``path`` and :func:`load` it with a budget of ``BUDGET_FACTOR`` x its size."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        reader = BoundedReader(f, size, path)
        return load(reader, path, allowed, where, budget=BUDGET_FACTOR * size + BUDGET_SLACK, what=what)


def _children(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield v
        if type(obj) is not dict and getattr(obj, "__dict__", None):
            yield from obj.__dict__.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj


def check_graph(obj, path, where: str = "", max_depth: int = MAX_DEPTH, max_objects: int = MAX_OBJECTS,
                on_leaf: Callable[[Any], None] | None = None) -> None:
    """Refuse object graphs nested deeper than ``max_depth`` containers or holding more than ``max_objects``.

    Computes the height (longest chain of containers below) of every container with an iterative
    depth-first walk that visits each container once: shared references are not expanded, and a
    reference back into the current chain (a cycle) adds no height. Linear in the graph size.
    ``on_leaf(x)`` is called once for every distinct non-container object.
    """
    height: dict[int, int] = {}
    on_path: set[int] = set()
    leaves: set[int] = set()
    keep = []  # visited containers stay alive, so their ids stay unique during the walk
    if not isinstance(obj, _CONTAINERS):
        if on_leaf is not None:
            on_leaf(obj)
        return
    stack = [[obj, iter(tuple(_children(obj))), 0]]
    on_path.add(id(obj))
    keep.append(obj)
    while stack:
        frame = stack[-1]
        child = next(frame[1], _DONE)
        if child is _DONE:
            stack.pop()
            i = id(frame[0])
            on_path.discard(i)
            h = height[i] = frame[2] + 1
            if h > max_depth:
                raise CheckpointFormatError(f"{path}: objects nested more than {max_depth} levels deep {where}; "
                                            "not a checkpoint this reader accepts")
            if stack:
                stack[-1][2] = max(stack[-1][2], h)
            continue
        i = id(child)
        if not isinstance(child, _CONTAINERS):
            if on_leaf is not None and i not in leaves:
                leaves.add(i)
                keep.append(child)
                on_leaf(child)
            continue
        if i in height:
            frame[2] = max(frame[2], height[i])
            continue
        if i in on_path:
            continue
        if len(stack) >= max_depth:
            raise CheckpointFormatError(f"{path}: objects nested more than {max_depth} levels deep {where}; "
                                        "not a checkpoint this reader accepts")
        if len(keep) >= max_objects:
            raise CheckpointFormatError(f"{path}: more than {max_objects} containers {where}; not a "
                                        "checkpoint this reader accepts")
        on_path.add(i)
        keep.append(child)
        stack.append([child, iter(tuple(_children(child))), 0])


_CONTAINERS = (dict, list, tuple, set, frozenset)
_DONE = object()


# ----------------------------------------------------------------------------------------------
# Data-only stand-ins for plain containers, numpy values and protocol-2 bytes


class _DType:
    """Stand-in for ``numpy.dtype``: only plain numeric type strings such as 'f8' or '<i4'.

    A real ``numpy.dtype`` is never exposed to the pickle: its ``__setstate__`` accepts arbitrary
    flags (e.g. "holds objects"), which a hostile file could use to corrupt memory. Here the state
    may only choose the byte order.
    """

    __slots__ = ("spec", "order")
    _accepts_state = True

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
        try:
            dt = np.dtype(self.spec)
        except TypeError:
            raise CheckpointFormatError(f"numpy dtype {self.spec!r} is not a plain numeric type") from None
        if self.order in ("<", ">") and dt.itemsize > 1:
            dt = dt.newbyteorder(self.order)
        return dt


def _numpy_scalar(dtype, data=None):
    """Stand-in for ``numpy.core.multiarray.scalar``: numeric dtypes from raw bytes only."""
    if not isinstance(dtype, _DType):
        raise CheckpointFormatError("numpy scalar record without a plain numeric dtype")
    dt = dtype.np
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise CheckpointFormatError("malformed numpy scalar record")
    return np.frombuffer(data, dtype=dt)[0]


class _NdarrayMarker:
    """What ``numpy.ndarray`` resolves to: only usable as the first argument of ``_reconstruct``."""


_NDARRAY = _NdarrayMarker()


class PickledArray:
    """Stand-in for a pickled ``numpy.ndarray``; ``value`` holds a fresh copy after ``BUILD``."""

    __slots__ = ("value", "_charge")
    _accepts_state = True

    def __init__(self, charge):
        self.value, self._charge = None, charge

    def __setstate__(self, state):
        if self.value is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise CheckpointFormatError("malformed numpy array record")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DType) or not isinstance(raw, bytes):
            raise CheckpointFormatError("numpy array record without a plain numeric dtype and raw bytes")
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise CheckpointFormatError("malformed numpy array shape") from None
        dt = dtype.np
        count = 1
        for n in shape:
            count *= n
        if len(shape) > 32 or any(n < 0 for n in shape) or len(raw) != count * dt.itemsize:
            raise CheckpointFormatError("numpy array record has the wrong number of bytes")
        self._charge(len(raw), "a numpy array")
        self.value = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C").copy()


def _numpy_reconstruct(unpickler):
    def reconstruct(subtype, shape, dtype_code):
        """Stand-in for ``numpy.core.multiarray._reconstruct`` (pickled numpy arrays)."""
        if subtype is not _NDARRAY:
            raise CheckpointFormatError("pickled numpy array of an unsupported class")
        return PickledArray(unpickler.charge)
    return reconstruct


def _codecs_encode(unpickler):
    def encode(text, encoding="utf-8"):
        """Stand-in for ``_codecs.encode`` as used by protocol-2 pickles for bytes."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise CheckpointFormatError("unsupported _codecs.encode record")
        unpickler.charge(len(text), "a bytes record")
        return text.encode("latin-1")
    return encode


def _charged_container(kind, what):
    def factory(unpickler):
        def build(items=()):
            if not isinstance(items, (list, tuple, set, frozenset, dict)):
                raise CheckpointFormatError(f"malformed {what} record")
            unpickler.charge(64 * len(items), f"a {what}")
            if kind in (set, frozenset) or isinstance(items, dict):
                keys = items
            elif all(isinstance(p, (list, tuple)) and len(p) == 2 for p in items):
                keys = [p[0] for p in items]
            else:
                raise CheckpointFormatError(f"malformed {what} record")
            check_keys(keys, unpickler.path, unpickler.where)
            return kind(items)
        return build
    return PerLoad(factory)


# Globals every accepted pickle may use: sets (protocols 0-3 pickle them by calling set(list)),
# OrderedDict (called with no arguments, then filled), numpy scalars/arrays/dtypes, protocol-2 bytes.
DATA_GLOBALS = {
    ("collections", "OrderedDict"): _charged_container(collections.OrderedDict, "OrderedDict"),
    ("builtins", "set"): _charged_container(set, "set"),
    ("builtins", "frozenset"): _charged_container(frozenset, "frozenset"),
    ("__builtin__", "set"): _charged_container(set, "set"),
    ("__builtin__", "frozenset"): _charged_container(frozenset, "frozenset"),
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _DType,
    ("numpy.core.multiarray", "_reconstruct"): PerLoad(_numpy_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): PerLoad(_numpy_reconstruct),
    ("numpy", "ndarray"): _NDARRAY,
    ("_codecs", "encode"): PerLoad(_codecs_encode),
}

