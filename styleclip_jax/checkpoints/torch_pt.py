"""The one reader of PyTorch ``.pt``/``.pth`` files: ``torch.load(weights_only=True)``, one error type.

Every ``.pt`` the package accepts (rosinality generators, IR-SE50, StyleCLIP mappers, e4e/pSp encoders,
latents) goes through :func:`load` and :func:`to_numpy`. torch is imported lazily, only here; a missing
torch, a refused global, or a corrupt file each give one `CheckpointError` naming the file, never torch's
advice to retry with ``weights_only=False``.
"""
from __future__ import annotations

import pathlib
import pickle
import re
from typing import Any, Sequence

import numpy as np

from ..errors import CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError

INSTALL_HINT = "pip install 'styleclip_jax[convert]'"


def require_torch(path=None, what: str = "this checkpoint"):
    """Import torch or raise a CheckpointFormatError saying how to install it."""
    try:
        import torch  # noqa: F401  (lazy, optional dependency)
    except ImportError:
        where = f"{path}: " if path is not None else ""
        raise CheckpointFormatError(f"{where}reading {what} (a PyTorch file) needs torch; install it with "
                                    f"{INSTALL_HINT}, or pass a folder converted with checkpoints_convert/") from None
    return torch


def _weights_only_detail(message: str) -> str:
    """The specific reason inside torch's long 'Weights only load failed' message, without its advice to
    load the file unsafely."""
    text = message.split("Check the documentation of torch.load")[0]
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    elif "trusted source." in text:
        text = text.split("trusted source.", 1)[1]
    text = re.sub(r"\(?\s*[^.]*weights_only[^.]*False[^.]*\.\)?", "", text)
    text = " ".join(text.split())
    return text or "unsupported content"


def check_file(path) -> pathlib.Path:
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: file does not exist")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: expected a file, got a directory")
    return path


def load(path, what: str = "checkpoint", safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with one clear error per failure.

    what: a few words for messages ("IR-SE50 checkpoint", "W+ latents file", ...).
    safe_globals: extra classes torch may rebuild (e.g. ``argparse.Namespace`` for training checkpoints).
    Raises CheckpointNotFoundError, UnsafeCheckpointError (a global outside torch's weights-only set;
    nothing was run) or CheckpointFormatError (not readable as a torch file, or torch missing).
    """
    path = check_file(path)
    torch = require_torch(path, what)
    try:
        ctx = getattr(torch.serialization, "safe_globals", None)
        if ctx is not None and safe_globals:
            with ctx(list(safe_globals)):
                return torch.load(str(path), map_location="cpu", weights_only=True)
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _weights_only_detail(str(e))
        if re.search(r"GLOBAL|global", detail):
            raise UnsafeCheckpointError(f"{path}: {what} refused: it asks for a Python global outside torch's "
                                        f"weights-only set ({detail[:300]}); nothing from the file was run") from None
        raise CheckpointFormatError(f"{path}: not a {what} that torch.load(weights_only=True) can read "
                                    f"({detail[:300]})") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError, AttributeError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointFormatError(f"{path}: not a readable {what} ({type(e).__name__}: {msg[:300]})") from None


def to_numpy(t, name: str, path) -> np.ndarray:
    """A loaded tensor (or ndarray) as a numpy copy; bfloat16 and other non-numpy floats become float32."""
    if isinstance(t, np.ndarray):
        return t
    torch = require_torch(path)
    if not isinstance(t, torch.Tensor):
        raise CheckpointFormatError(f"{path}: {name} is a {type(t).__name__}, expected a tensor")
    t = t.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64, torch.float16):
        t = t.float()
    return t.numpy().copy()
