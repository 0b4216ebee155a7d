"""Reading W+ latents files (.npy, .npz, .pt) with one clear error on bad input; nothing is ever unpickled.

``.npy``/``.npz`` are read with ``allow_pickle=False`` (an object array gives the package's own message,
never numpy's advice to load it with ``allow_pickle=True``); an ``.npz`` may not declare more bytes than
64 x its size; ``.pt`` goes through the one ``torch.load(weights_only=True)`` reader, ``torch_pt``.
"""
from __future__ import annotations

import pathlib
import zipfile

import numpy as np

from ..errors import CheckpointError, InputError

_NPZ_MAX_RATIO = 64


def _check_npz(p: pathlib.Path, want: str) -> None:
    try:
        with zipfile.ZipFile(p) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InputError(f"latents file {p} could not be read (not a valid .npz archive: {e}); expected {want} "
                         "floats") from None
    if declared > _NPZ_MAX_RATIO * p.stat().st_size + (1 << 20):
        raise InputError(f"latents file {p}: its arrays declare {declared} bytes in a file of {p.stat().st_size}; "
                         f"refused (expected {want} floats)")


def _load_pt(p: pathlib.Path, want: str) -> np.ndarray:
    from . import torch_pt

    obj = torch_pt.load(p, "W+ latents file (.pt)")
    if isinstance(obj, dict):
        tensors = [(k, v) for k, v in obj.items() if hasattr(v, "numpy")]
        if len(tensors) != 1:
            raise InputError(f"{p}: a dict with {len(tensors)} tensors; expected exactly one {want} tensor")
        name, obj = tensors[0]
    else:
        name = "the latents"
    if not hasattr(obj, "numpy"):
        raise InputError(f"latents file {p} holds a {type(obj).__name__}; expected a {want} tensor")
    return torch_pt.to_numpy(obj, str(name), p)


def load_latents(path, num_ws: int, w_dim: int) -> np.ndarray:
    """Load (N, num_ws, w_dim) float32 latents from .npy / .npz (first array) / .pt (tensor, or a dict
    whose only tensor value is the latents, e.g. e4e's `latents.pt`). (num_ws, w_dim) is taken as N=1.
    A .pt is read with torch.load(weights_only=True).

    Raises InputError (a ValueError) naming the file, or a CheckpointError from the .pt reader."""
    p = pathlib.Path(path)
    want = f"(N, {num_ws}, {w_dim})"
    if not p.is_file():
        raise InputError(f"latents file {p} does not exist (expected .npy/.npz/.pt holding {want} floats)")
    try:
        if p.suffix in (".pt", ".pth"):
            arr = _load_pt(p, want)
        elif p.suffix == ".npz":
            _check_npz(p, want)
            with np.load(p, allow_pickle=False) as z:
                if not z.files:
                    raise InputError(f"latents file {p} is an empty .npz; expected {want} floats")
                arr = z[z.files[0]]
        else:
            arr = np.load(p, allow_pickle=False)
    except (InputError, CheckpointError):
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise InputError(f"latents file {p} holds Python objects (a pickled object array); only plain "
                             f"float arrays are read, and nothing from the file was unpickled. Expected {want} "
                             "floats") from None
        raise InputError(f"latents file {p} could not be read ({e}); expected {want} floats") from None
    except Exception as e:  # truncated / corrupt files
        raise InputError(f"latents file {p} could not be read ({type(e).__name__}: {e}); expected {want} "
                         "floats") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"latents file {p}: dtype {getattr(arr, 'dtype', type(arr).__name__)}, expected float {want}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (num_ws, w_dim):
        raise InputError(f"latents file {p}: shape {arr.shape}, expected {want} for this generator")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"latents file {p}: contains NaN or Inf")
    return arr.astype(np.float32)
