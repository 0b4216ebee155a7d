"""The one reader of PyTorch ``.pt``/``.pth`` files: ``torch.load(weights_only=True)``, bounded, one error type.

Every ``.pt`` the package accepts (rosinality generators, IR-SE50, StyleCLIP mappers, e4e/pSp encoders,
latents) goes through :func:`load` and :func:`to_numpy`. torch is imported lazily, only here; a missing
torch, a refused global, or a corrupt file each give one `CheckpointError` naming the file in the
package's own words, never torch's advice to retry with ``weights_only=False`` or to allow-list a
global (:func:`scrub_unsafe_advice` removes such advice from any message, e.g. transformers').

Bounds: a zip archive must hold only stored (uncompressed) entries whose sizes add up to at most the
file size (no decompression bombs); before torch reads the object pickle, :mod:`safe_pickle` reads it
with inert stand-ins (declared sizes, object count, depth, plain dict keys); the loaded object may be at
most ``safe_pickle.MAX_DEPTH`` containers deep (walked iteratively, shared references once); no tensor
may view more elements than its storage holds (a stride-0 view of one float declared as 16384 x 16384 is refused before
:func:`to_numpy` would materialise it).
"""
from __future__ import annotations

import io
import pathlib
import pickle
import re
import zipfile
from typing import Any, Sequence

import numpy as np

from ..errors import CheckpointFormatError, UnsafeCheckpointError
from . import safe_pickle
from .safe_pickle import check_file
from .torch_legacy import TORCH_LEGACY_MAGIC

INSTALL_HINT = "pip install 'styleclip_jax[convert]'"


class TorchMissingError(CheckpointFormatError, ImportError):
    """torch is needed to read a ``.pt`` file but is not installed (both a package error and an ImportError)."""


def require_torch(path=None, what: str = "this checkpoint"):
    """Import torch or raise a TorchMissingError saying how to install it."""
    try:
        import torch  # noqa: F401  (lazy, optional dependency)
    except ImportError:
        where = f"{path}: " if path is not None else ""
        raise TorchMissingError(f"{where}reading {what} (a PyTorch file) needs torch; install it with "
                                    f"{INSTALL_HINT}, or pass a folder converted with checkpoints_convert/") from None
    return torch


_UNSAFE_ADVICE = re.compile(r"weights_only|safe_globals|allow_pickle|trusted source|trust th|arbitrary code|"
                            r"file an issue|documentation|PyTorch 2\\.6|two options|Weights only load failed",
                            re.IGNORECASE)


def scrub_unsafe_advice(message: str) -> str:
    """``message`` without the sentences that advise an unsafe step (``weights_only=False``,
    ``add_safe_globals``, ``allow_pickle=True``, "if you trust the source"...)."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", str(message))
    return " ".join(p.strip() for p in parts if p.strip() and not _UNSAFE_ADVICE.search(p))


def _weights_only_detail(message: str) -> str:
    """The specific reason inside torch's long 'Weights only load failed' message, in one line."""
    text = message.split("WeightsUnpickler error:", 1)[-1]
    text = scrub_unsafe_advice(text)
    return " ".join(text.split()) or "unsupported content"


_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError,
                TypeError, AttributeError, MemoryError, OverflowError, UnicodeDecodeError, RecursionError,
                AssertionError)
_REFUSED = "it asks for the Python global"
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+)|[Uu]nsupported global:? (\S+)")


def describe_error(exc: BaseException) -> str:
    """One line, in the package's words, for an exception raised while torch read a file (by
    :func:`load`, or inside a library such as transformers): the reason without torch's advice to load
    the file unsafely. A refused global gives "it asks for the Python global X, which a weights-only load
    does not allow; nothing from the file was run"."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        detail = _weights_only_detail(text)
        m = _REFUSED_GLOBAL.search(detail)
        if m:
            name = (m.group(1) or m.group(2)).strip("`'\".,")
            return (f"{_REFUSED} {name}, which a weights-only load does not allow; nothing "
                    "from the file was run")
        return f"{type(exc).__name__}: {detail[:300]}"
    first = scrub_unsafe_advice(text.strip().splitlines()[0]) if text.strip() else ""
    return f"{type(exc).__name__}: {first[:300] or 'no details'}"


def key_summary(mapping) -> list[str]:
    """Up to 8 of a mapping's keys as short strings, for messages (never the repr of a nested key)."""
    keys = []
    for k in list(mapping)[:20]:
        keys.append(k[:50] if isinstance(k, str) else f"<{type(k).__name__}>")
    return sorted(keys)[:8]


def _check_zip(path: pathlib.Path, what: str) -> None:
    """A torch zip archive may only hold stored entries that fit in the file (no decompression bomb)."""
    with open(path, "rb") as f:
        if f.read(2) != b"PK":
            return  # legacy (non-zip) torch.save file
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CheckpointFormatError(f"{path}: not a readable {what} (a damaged zip archive: {e})") from None
    total = sum(i.file_size for i in infos)
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED or i.compress_size != i.file_size]
    if packed or total > path.stat().st_size:
        raise CheckpointFormatError(f"{path}: {what} is a zip archive whose entries declare {total} bytes "
                                    f"{'(compressed: ' + str(packed[:3])[:200] + ')' if packed else ''} in a file "
                                    f"of {path.stat().st_size} bytes; torch.save writes stored entries only")


class _Inert(dict):
    """What every global of a ``.pt`` pickle resolves to during the pre-scan: calling, creating or
    building it does nothing (nothing from the file is imported or run; torch decides later what it
    accepts)."""

    _accepts_state = True

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        pass


class _AnyGlobal(dict):
    def get(self, key, default=None):
        return _Inert


_ANY_GLOBAL = _AnyGlobal()


def _prescan(path: pathlib.Path, what: str) -> None:
    """Read the object pickle(s) of a ``.pt`` with :mod:`safe_pickle` and inert stand-ins before torch does,
    so that the file's bounds (declared sizes, nesting depth, object count, plain dict keys: no quadratic
    dict insertion) hold on the ``.pt`` path too."""
    size = path.stat().st_size
    where = f"in the {what}"
    budget = safe_pickle.BUDGET_FACTOR * size + safe_pickle.BUDGET_SLACK

    def scan(f):
        return safe_pickle.load(f, path, _ANY_GLOBAL, where, budget=budget, persistent_load=lambda pid: _Inert(),
                                what="pickle")

    with open(path, "rb") as f:
        zipped = f.read(2) == b"PK"
    if zipped:
        with zipfile.ZipFile(path) as z:
            names = [i for i in z.infolist() if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if len(names) != 1:
                raise CheckpointFormatError(f"{path}: not a readable {what} (a zip archive without one "
                                            "<name>/data.pkl record)")
            data = z.read(names[0])
        scan(safe_pickle.BoundedReader(io.BytesIO(data), len(data), path))
    else:  # legacy torch.save: magic number, protocol, sys info, the object pickle (then keys and raw data)
        with open(path, "rb") as f:
            reader = safe_pickle.BoundedReader(f, size, path)
            if scan(reader) == TORCH_LEGACY_MAGIC:
                for _ in range(3):
                    scan(reader)


def _check_tensor(t, name: str, path) -> None:
    """Refuse a tensor that is not a plain dense tensor, or that views more elements than its storage holds."""
    torch = require_torch(path)
    if t.layout != torch.strided:
        raise CheckpointFormatError(f"{path}: {name} is a {t.layout} tensor; only dense tensors are accepted")
    itemsize = t.element_size()
    held = t.untyped_storage().nbytes() // max(itemsize, 1)
    if t.numel() > held:
        raise CheckpointFormatError(f"{path}: {name} declares {tuple(t.shape)} = {t.numel()} elements but its "
                                    f"storage holds {held}; refused before allocating")


def load(path, what: str = "checkpoint", safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with one clear error per failure.

    what: a few words for messages ("IR-SE50 checkpoint", "W+ latents file", ...).
    safe_globals: extra classes torch may rebuild (e.g. ``argparse.Namespace`` for training checkpoints).
    Raises CheckpointNotFoundError, UnsafeCheckpointError (a global outside torch's weights-only set;
    nothing was run) or CheckpointFormatError (not readable as a torch file, out of bounds (see the
    module docstring), or torch missing).
    """
    path = check_file(path)
    if path.stat().st_size == 0:
        raise CheckpointFormatError(f"{path}: {what} is empty (0 bytes)")
    torch = require_torch(path, what)
    _check_zip(path, what)
    _prescan(path, what)
    try:
        ctx = getattr(torch.serialization, "safe_globals", None)
        if ctx is not None and safe_globals:
            with ctx(list(safe_globals)):
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as e:
        text = describe_error(e)
        if text.startswith(_REFUSED):
            raise UnsafeCheckpointError(f"{path}: {what} refused: {text}") from None
        raise CheckpointFormatError(f"{path}: not a readable {what} ({text})") from None
    safe_pickle.check_graph(obj, path, f"in the {what}", on_leaf=lambda x: _check_leaf(torch, x, path))
    return obj


def _check_leaf(torch, x, path) -> None:
    if isinstance(x, torch.Tensor):
        _check_tensor(x, "a tensor", path)


def to_numpy(t, name: str, path) -> np.ndarray:
    """A loaded tensor (or ndarray) as a numpy copy; bfloat16 and other non-numpy floats become float32."""
    if isinstance(t, np.ndarray):
        return t
    torch = require_torch(path)
    if not isinstance(t, torch.Tensor):
        raise CheckpointFormatError(f"{path}: {str(name)[:100]} is a {type(t).__name__}, expected a tensor")
    _check_tensor(t, str(name)[:100], path)
    t = t.detach().cpu()
    try:
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64, torch.float16):
            t = t.float()
        return t.numpy().copy()
    except (TypeError, RuntimeError) as e:
        raise CheckpointFormatError(f"{path}: {str(name)[:100]} cannot be read as a numpy array "
                                    f"({type(e).__name__}: {str(e)[:200]})") from None
