"""Reading W+ latents files (.npy, .npz, .pt) with one clear error on bad input."""
from __future__ import annotations

import pathlib

import numpy as np


def load_latents(path, num_ws: int, w_dim: int) -> np.ndarray:
    """Load (N, num_ws, w_dim) float32 latents from .npy / .npz (first array) / .pt (tensor, or a dict
    whose only tensor value is the latents, e.g. e4e's `latents.pt`). (num_ws, w_dim) is taken as N=1.
    A .pt is read with torch.load(weights_only=True)."""
    p = pathlib.Path(path)
    want = f"(N, {num_ws}, {w_dim})"
    if not p.is_file():
        raise ValueError(f"latents file {p} does not exist (expected .npy/.npz/.pt holding {want} floats)")
    try:
        if p.suffix in (".pt", ".pth"):
            try:
                import torch
            except ImportError:
                raise ValueError(f"{p}: reading .pt latents needs torch (pip install 'styleclip_jax[convert]')") from None
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                tensors = [v for v in obj.values() if hasattr(v, "numpy")]
                if len(tensors) != 1:
                    raise ValueError(f"{p}: a dict with {len(tensors)} tensors; expected exactly one {want} tensor")
                obj = tensors[0]
            arr = obj.detach().cpu().numpy() if hasattr(obj, "detach") else np.asarray(obj)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                arr = z[z.files[0]]
        else:
            arr = np.load(p, allow_pickle=False)
    except ValueError as e:
        if str(p) in str(e):
            raise
        raise ValueError(f"latents file {p} could not be read ({e}); expected {want} floats") from None
    except Exception as e:  # truncated / corrupt files
        raise ValueError(f"latents file {p} could not be read ({type(e).__name__}: {e}); expected {want} floats") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"latents file {p}: dtype {arr.dtype}, expected float {want}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (num_ws, w_dim):
        raise ValueError(f"latents file {p}: shape {arr.shape}, expected {want} for this generator")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"latents file {p}: contains NaN or Inf")
    return arr.astype(np.float32)
